//===- FuzzSafetensors.cpp - libFuzzer target for the safetensors reader --===//
//
// Feeds arbitrary bytes to the safetensors header validator. Any input must
// either load or throw CheckpointError.
//
//===----------------------------------------------------------------------===//

#include "FuzzCommon.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size >= 2 && data[0] == 'P' && data[1] == 'K')
    return 0;
  rwkv::fuzz::exercise(data, size);
  return 0;
}
