//===- RWKVDialect.h - rwkv dialect declaration -----------------*- C++ -*-===//

#ifndef RWKV_DIALECT_RWKVDIALECT_H
#define RWKV_DIALECT_RWKVDIALECT_H

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Dialect.h"

#include "dialect/RWKVOpsDialect.h.inc"

#endif // RWKV_DIALECT_RWKVDIALECT_H
