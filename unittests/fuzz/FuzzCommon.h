//===- FuzzCommon.h - shared body of the checkpoint fuzzers -----*- C++ -*-===//
//
// Opens the buffer, touches every tensor's first and last element (so a view
// that escaped the bounds checks trips ASan) and runs architecture detection.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_UNITTESTS_FUZZ_FUZZCOMMON_H
#define RWKV_UNITTESTS_FUZZ_FUZZCOMMON_H

#include "runtime/checkpoint/Checkpoint.h"

#include <cstdint>
#include <cstring>

namespace rwkv::fuzz {

inline void exercise(const uint8_t *data, size_t size) {
  try {
    auto ckpt = Checkpoint::openFromMemory(data, size, "fuzz");
    volatile float sink = 0;
    for (const Tensor &t : ckpt->tensors()) {
      int64_t n = t.numel();
      if (n > 0) {
        sink = sink + t.getAsFloat(0) + t.getAsFloat(n - 1);
        // The whole strided span must be readable.
        volatile uint8_t last =
            static_cast<const uint8_t *>(t.data)[t.nbytes - 1];
        (void)last;
      }
    }
    (void)detectConfig(*ckpt).toJson();
  } catch (const CheckpointError &) {
  }
}

} // namespace rwkv::fuzz

#endif
