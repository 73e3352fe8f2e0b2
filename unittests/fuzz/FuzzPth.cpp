//===- FuzzPth.cpp - libFuzzer target for the .pth reader -----------------===//
//
// Feeds arbitrary bytes to the zip walker and pickle machine. Any input must
// either load or throw CheckpointError; sanitizers catch everything else.
//
//===----------------------------------------------------------------------===//

#include "FuzzCommon.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // Keep this target on the zip path; the other fuzzer covers safetensors.
  if (size < 4 || data[0] != 'P' || data[1] != 'K')
    return 0;
  rwkv::fuzz::exercise(data, size);
  return 0;
}
