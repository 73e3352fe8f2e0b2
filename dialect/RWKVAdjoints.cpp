//===- RWKVAdjoints.cpp - DifferentiableOpInterface of the rwkv ops -------===//
#include "dialect/RWKVOps.h"
using namespace mlir;
using namespace mlir::rwkv;
#define STUB(Op)                                                               \
  LogicalResult Op::buildAdjoint(OpBuilder &, ValueRange,                      \
                                 SmallVectorImpl<Value> &) {                   \
    return emitOpError("no adjoint yet");                                      \
  }
STUB(EmbedOp)
STUB(LayerNormOp)
STUB(TokenShiftOp)
STUB(MixOp)
STUB(LinearOp)
STUB(LoraOp)
STUB(L2NormalizeOp)
STUB(WKVOp)
STUB(GroupNormOp)
STUB(CrossEntropyOp)
