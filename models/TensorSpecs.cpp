//===- TensorSpecs.cpp - exception-free access to checkpoint specs --------===//
//
// Compiled with -fexceptions: the only translation unit of MLIRRWKVModels that
// calls into RWKVCheckpoint, so that no exception crosses into MLIR code.
//
//===----------------------------------------------------------------------===//

#include "models/TensorSpecs.h"

#include <exception>

namespace mlir::rwkv::detail {

bool getTensorSpecs(const ::rwkv::ModelConfig &config,
                    std::vector<::rwkv::TensorSpec> &specs,
                    std::string &error) noexcept {
  try {
    specs = ::rwkv::tensorSpecs(config);
    return true;
  } catch (const std::exception &e) {
    error = e.what();
  } catch (...) {
    error = "unknown error";
  }
  return false;
}

const char *dtypeNameNoThrow(::rwkv::DType dtype) noexcept {
  try {
    return ::rwkv::dtypeName(dtype);
  } catch (...) {
    return "?";
  }
}

bool isQuantizableMatrixNoThrow(const std::string &name) noexcept {
  try {
    return ::rwkv::isQuantizableMatrix(name);
  } catch (...) {
    return false;
  }
}

} // namespace mlir::rwkv::detail
