//===- RWKVInterfaces.td - rwkv op interfaces --------------*- tablegen -*-===//
//
// DifferentiableOpInterface: how an op builds its adjoint, so that
// `rwkv-differentiate` needs no per-op knowledge and a new op (or a new RWKV
// version) brings its own gradient rule.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_DIALECT_RWKVINTERFACES_TD
#define RWKV_DIALECT_RWKVINTERFACES_TD

include "mlir/IR/OpBase.td"

def RWKV_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let cppNamespace = "::mlir::rwkv";
  let description = [{
    An op that reverse-mode differentiation can pass through. Given the
    gradient of the loss with respect to each result (a null Value where the
    result does not reach the loss), `buildAdjoint` creates the ops that
    compute the gradient with respect to each operand at the builder's
    insertion point and appends one Value per operand to `operandGrads`
    (null where no gradient flows, e.g. token ids). Gradients are f32 tensors
    of the operand's shape, also for bf16/f16 weights. The op's own operands
    and results may be used: the forward values are available in the
    backward.
  }];
  let methods = [
    InterfaceMethod<
      /*desc=*/"Builds the operand gradients from the result gradients.",
      /*retTy=*/"::llvm::LogicalResult",
      /*methodName=*/"buildAdjoint",
      /*args=*/(ins "::mlir::OpBuilder &":$builder,
                    "::mlir::ValueRange":$resultGrads,
                    "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>
  ];
}

#endif // RWKV_DIALECT_RWKVINTERFACES_TD
