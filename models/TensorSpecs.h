//===- TensorSpecs.h - exception-free access to checkpoint specs -*- C++
//-*-===//
//
// The checkpoint library throws; the MLIR libraries are built without
// exceptions. These wrappers catch everything at the boundary.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_MODELS_TENSORSPECS_H
#define RWKV_MODELS_TENSORSPECS_H

#include "runtime/checkpoint/Checkpoint.h"

#include <string>
#include <vector>

namespace mlir::rwkv::detail {

/// Fills `specs` with `rwkv::tensorSpecs(config)`. Returns false and
/// sets `error` if the checkpoint library threw.
bool getTensorSpecs(const ::rwkv::ModelConfig &config,
                    std::vector<::rwkv::TensorSpec> &specs,
                    std::string &error) noexcept;

/// `rwkv::dtypeName`, never throwing ("?" on failure).
const char *dtypeNameNoThrow(::rwkv::DType dtype) noexcept;

/// ::rwkv::isQuantizableMatrix: the matrices that may be stored int8.
bool isQuantizableMatrixNoThrow(const std::string &name) noexcept;

} // namespace mlir::rwkv::detail

#endif // RWKV_MODELS_TENSORSPECS_H
