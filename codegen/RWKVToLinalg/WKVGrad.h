//===- WKVGrad.h - helpers shared by the wkv_grad lowerings -----*- C++ -*-===//

#ifndef RWKV_CODEGEN_RWKVTOLINALG_WKVGRAD_H
#define RWKV_CODEGEN_RWKVTOLINALG_WKVGRAD_H

#include "codegen/RWKVToLinalg/Common.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

namespace mlir::rwkv::wkvgrad {

using utils::IteratorType;

using BodyFn = function_ref<void(OpBuilder &, Location, ValueRange)>;

inline ValueRange generic(OpBuilder &b, Location loc, ValueRange ins,
                          ValueRange outs, ArrayRef<AffineMap> maps,
                          ArrayRef<IteratorType> iters, BodyFn body) {
  return linalg::GenericOp::create(b, loc, TypeRange(outs), ins, outs, maps,
                                   iters, body)
      .getResults();
}

inline SmallVector<OpFoldResult> ones(OpBuilder &b, unsigned rank) {
  return SmallVector<OpFoldResult>(rank, b.getIndexAttr(1));
}

/// Builds the lowering of one op; holds the shared shapes and maps.
struct GradBuilder {
  OpBuilder &b;
  Location loc;
  int64_t heads;
  MLIRContext *ctx;
  arith::FastMathFlagsAttr fm;
  AffineMap id4, tr4, row, col;
  SmallVector<IteratorType> par, red;

  GradBuilder(OpBuilder &b, Location loc, int64_t heads)
      : b(b), loc(loc), heads(heads), ctx(b.getContext()),
        fm(reductionFastMath(b)) {
    AffineExpr d0, d1, d2, d3;
    bindDims(ctx, d0, d1, d2, d3);
    id4 = AffineMap::getMultiDimIdentityMap(4, ctx);
    tr4 = AffineMap::get(4, 0, {d0, d1, d3, d2}, ctx);
    row = AffineMap::get(4, 0, {d0, d1, d2}, ctx);
    col = AffineMap::get(4, 0, {d0, d1, d3}, ctx);
    par.assign(4, IteratorType::parallel);
    red = {IteratorType::parallel, IteratorType::parallel,
           IteratorType::parallel, IteratorType::reduction};
  }

  Value mul(OpBuilder &nb, Location l, Value x, Value y) const {
    return arith::MulFOp::create(nb, l, x, y, fm);
  }
  Value add(OpBuilder &nb, Location l, Value x, Value y) const {
    return arith::AddFOp::create(nb, l, x, y, fm);
  }

  /// `src[:, t, :]` as [B, H, N].
  Value tokenSlice(OpBuilder &nb, Location l, Value src, Value t) const {
    auto type = llvm::cast<RankedTensorType>(src.getType());
    OpFoldResult zero = nb.getIndexAttr(0);
    SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(nb, l, src);
    sizes[1] = nb.getIndexAttr(1);
    auto rowType = RankedTensorType::get(
        {type.getDimSize(0), type.getDimSize(2)}, type.getElementType());
    Value r = tensor::ExtractSliceOp::create(
        nb, l, rowType, src, ArrayRef<OpFoldResult>{zero, t, zero}, sizes,
        ones(nb, 3));
    return splitHeads(nb, l, r, heads);
  }

  /// Row t of a [B, T, C] accumulator as a zero-filled [B, H, N] tensor, so
  /// that the generic writing it and the insert below bufferize in place.
  Value rowSlot(OpBuilder &nb, Location l, Value acc, Value t) const {
    return linalg::FillOp::create(nb, l, f32Const(nb, l, 0.0),
                                  tokenSlice(nb, l, acc, t))
        .getResult(0);
  }
  Value insertRow(OpBuilder &nb, Location l, Value rowBHN, Value acc,
                  Value t) const {
    SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(nb, l, acc);
    sizes[1] = nb.getIndexAttr(1);
    OpFoldResult zero = nb.getIndexAttr(0);
    return tensor::InsertSliceOp::create(nb, l, mergeHeads(nb, l, rowBHN), acc,
                                         ArrayRef<OpFoldResult>{zero, t, zero},
                                         sizes, ones(nb, 3));
  }

  /// `buf[i]` of a buffer with a leading slot dimension (rank-reduced).
  static std::pair<SmallVector<OpFoldResult>, SmallVector<OpFoldResult>>
  slotBox(OpBuilder &nb, Location l, Value buf, Value i) {
    int64_t rank = llvm::cast<RankedTensorType>(buf.getType()).getRank();
    SmallVector<OpFoldResult> sizes = {nb.getIndexAttr(1)};
    for (int64_t d = 1; d < rank; ++d)
      sizes.push_back(tensor::getMixedSize(nb, l, buf, d));
    SmallVector<OpFoldResult> offs(sizes.size(), nb.getIndexAttr(0));
    offs[0] = i;
    return {offs, sizes};
  }
  Value slot(OpBuilder &nb, Location l, Value buf, Value i) const {
    auto type = llvm::cast<RankedTensorType>(buf.getType());
    auto [offs, sizes] = slotBox(nb, l, buf, i);
    auto slotType = RankedTensorType::get(type.getShape().drop_front(),
                                          type.getElementType());
    return tensor::ExtractSliceOp::create(nb, l, slotType, buf, offs, sizes,
                                          ones(nb, type.getRank()));
  }
  Value insertSlot(OpBuilder &nb, Location l, Value v, Value buf,
                   Value i) const {
    auto [offs, sizes] = slotBox(nb, l, buf, i);
    return tensor::InsertSliceOp::create(nb, l, v, buf, offs, sizes,
                                         ones(nb, sizes.size()));
  }
  /// buf[i] = v through a linalg.copy into the slot (in place; an
  /// insert_slice of v itself would bufferize to a memref.copy call).
  Value storeSlot(OpBuilder &nb, Location l, Value v, Value buf,
                  Value i) const {
    Value copied =
        linalg::CopyOp::create(nb, l, v, slot(nb, l, buf, i)).getResult(0);
    return insertSlot(nb, l, copied, buf, i);
  }

  Value exp(OpBuilder &nb, Location l, Value w) const {
    return buildElementwise(
        nb, l, w, {w}, [](OpBuilder &eb, Location el, ValueRange in) {
          return math::ExpOp::create(eb, el, in[0]).getResult();
        });
  }

  /// sa[i] = Σ_j S[i][j] a[j] into `init` (zero-filled).
  Value stateTimes(OpBuilder &nb, Location l, Value s, Value x,
                   Value init) const {
    return generic(nb, l, ValueRange{s, x}, ValueRange{init}, {id4, col, row},
                   red, [&](OpBuilder &gb, Location gl, ValueRange args) {
                     linalg::YieldOp::create(
                         gb, gl,
                         add(gb, gl, args[2], mul(gb, gl, args[0], args[1])));
                   })[0];
  }

  /// The forward update in place on `s`, in the order of Sequence.cpp
  /// ((S·d + k·v) + sa·b) so the recomputed states match the forward.
  Value update(OpBuilder &nb, Location l, Value s, Value decay, Value k,
               Value v, Value sa, Value bv) const {
    return generic(nb, l, ValueRange{decay, k, v, sa, bv}, ValueRange{s},
                   {col, col, row, row, col, id4}, par,
                   [](OpBuilder &gb, Location gl, ValueRange args) {
                     Value sd = arith::MulFOp::create(gb, gl, args[5], args[0]);
                     Value kv = arith::MulFOp::create(gb, gl, args[1], args[2]);
                     Value sb = arith::MulFOp::create(gb, gl, args[3], args[4]);
                     Value sum = arith::AddFOp::create(gb, gl, sd, kv);
                     linalg::YieldOp::create(
                         gb, gl,
                         arith::AddFOp::create(gb, gl, sum, sb).getResult());
                   })[0];
  }
};

/// The states at the start of every `len`-token segment, [nseg, B, H, N, N]
/// (nseg = ceil(T / len)), by the sequential recurrence. With `withFinal`
/// the final state S_T is appended as slot nseg; otherwise the last
/// segment's tokens are not run at all.
Value buildCheckpoints(OpBuilder &b, Location loc, const GradBuilder &g,
                       ValueRange rwkvab, Value s0, int64_t len, Value nseg,
                       bool withFinal);

} // namespace mlir::rwkv::wkvgrad

#endif // RWKV_CODEGEN_RWKVTOLINALG_WKVGRAD_H
