//===- RWKVOps.h - rwkv dialect operations ----------------------*- C++ -*-===//

#ifndef RWKV_DIALECT_RWKVOPS_H
#define RWKV_DIALECT_RWKVOPS_H

#include "dialect/RWKVDialect.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialect/RWKVEnums.h.inc"
#include "dialect/RWKVInterfaces.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialect/RWKVAttrs.h.inc"

#define GET_OP_CLASSES
#include "dialect/RWKVOps.h.inc"

#endif // RWKV_DIALECT_RWKVOPS_H
