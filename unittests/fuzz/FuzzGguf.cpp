//===- FuzzGguf.cpp - libFuzzer target for the GGUF reader ----------------===//
//
// Feeds arbitrary bytes to the GGUF reader (runtime/checkpoint/Gguf.cpp):
// header, metadata values and arrays, tensor infos, alignment and offsets,
// the rwkv7 name mapping and the Q8_0/Q4_0/Q6_K dequantizers. Any input must
// either load or throw CheckpointError; sanitizers catch everything else.
//
//===----------------------------------------------------------------------===//

#include "FuzzCommon.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // Keep this target on the GGUF path; the others cover zip and safetensors.
  if (size < 4 || std::memcmp(data, "GGUF", 4) != 0)
    return 0;
  rwkv::fuzz::exercise(data, size);
  return 0;
}
