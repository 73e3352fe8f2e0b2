//===- IRUtils.cpp - IR-building helpers shared by rwkv passes ----------===//

#include "dialect/IRUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

using namespace mlir;

Value rwkv::f32Const(OpBuilder &b, Location loc, double v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
}

Value rwkv::toF32(OpBuilder &b, Location loc, Value v) {
  if (v.getType().isF32())
    return v;
  if (v.getType().isSignlessInteger())
    return arith::SIToFPOp::create(b, loc, b.getF32Type(), v);
  return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
}

Value rwkv::sigmoid(OpBuilder &b, Location loc, Value x) {
  // 1 / (1 + exp(-x)); math.exp of a large positive argument gives +inf and
  // the quotient 0, which is the correct limit.
  Value neg = arith::NegFOp::create(b, loc, x);
  Value e = math::ExpOp::create(b, loc, neg);
  Value one = f32Const(b, loc, 1.0);
  Value den = arith::AddFOp::create(b, loc, one, e);
  return arith::DivFOp::create(b, loc, one, den);
}

Value rwkv::emptyLike(OpBuilder &b, Location loc, Value like,
                      Type elementType) {
  auto type = llvm::cast<RankedTensorType>(like.getType());
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, like);
  return tensor::EmptyOp::create(
      b, loc, sizes, elementType ? elementType : type.getElementType());
}

Value rwkv::buildElementwise(OpBuilder &b, Location loc, Value like,
                             ValueRange inputs, ElementwiseBodyFn body) {
  auto type = llvm::cast<RankedTensorType>(like.getType());
  unsigned rank = type.getRank();
  MLIRContext *ctx = b.getContext();
  SmallVector<AffineMap> maps;
  for (Value in : inputs) {
    unsigned r = llvm::cast<RankedTensorType>(in.getType()).getRank();
    if (r == rank)
      maps.push_back(AffineMap::getMultiDimIdentityMap(rank, ctx));
    else if (r == 1)
      maps.push_back(
          AffineMap::get(rank, 0, {getAffineDimExpr(rank - 1, ctx)}, ctx));
    else
      llvm_unreachable("element-wise operands are full rank or per-channel");
  }
  maps.push_back(AffineMap::getMultiDimIdentityMap(rank, ctx));
  SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
  Value init = emptyLike(b, loc, like, b.getF32Type());
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, inputs, ValueRange{init}, maps, iters,
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        SmallVector<Value> widened;
        for (Value a : args.drop_back())
          widened.push_back(toF32(nb, nloc, a));
        Value result = body(nb, nloc, widened);
        linalg::YieldOp::create(nb, nloc, result);
      });
  return generic.getResult(0);
}

Value rwkv::splitHeads(OpBuilder &b, Location loc, Value v, int64_t heads) {
  auto type = llvm::cast<RankedTensorType>(v.getType());
  SmallVector<int64_t> shape(type.getShape().drop_back());
  int64_t c = type.getShape().back();
  shape.push_back(heads);
  shape.push_back(ShapedType::isDynamic(c) ? c : c / heads);
  SmallVector<ReassociationIndices> reassoc;
  for (int64_t i = 0, e = type.getRank() - 1; i < e; ++i)
    reassoc.push_back({i});
  reassoc.push_back({type.getRank() - 1, type.getRank()});
  auto resultType = RankedTensorType::get(shape, type.getElementType());
  return tensor::ExpandShapeOp::create(b, loc, resultType, v, reassoc);
}

Value rwkv::mergeHeads(OpBuilder &b, Location loc, Value v) {
  int64_t rank = llvm::cast<RankedTensorType>(v.getType()).getRank();
  SmallVector<ReassociationIndices> reassoc;
  for (int64_t i = 0; i < rank - 2; ++i)
    reassoc.push_back({i});
  reassoc.push_back({rank - 2, rank - 1});
  return tensor::CollapseShapeOp::create(b, loc, v, reassoc);
}

Value rwkv::dimValue(OpBuilder &b, Location loc, Value v, int64_t dim) {
  return b.createOrFold<tensor::DimOp>(loc, v, dim);
}

Value rwkv::zerosF32(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes) {
  Value init = tensor::EmptyOp::create(b, loc, sizes, b.getF32Type());
  return linalg::FillOp::create(b, loc, f32Const(b, loc, 0.0), init)
      .getResult(0);
}

Value rwkv::zerosLike(OpBuilder &b, Location loc, Value like) {
  return zerosF32(b, loc, tensor::getMixedSizes(b, loc, like));
}

Value rwkv::buildContraction(OpBuilder &b, Location loc, Value lhs,
                             AffineMap lhsMap, Value rhs, AffineMap rhsMap,
                             AffineMap outMap,
                             ArrayRef<OpFoldResult> outSizes) {
  unsigned n = outMap.getNumDims();
  SmallVector<utils::IteratorType> iters(n, utils::IteratorType::reduction);
  for (AffineExpr e : outMap.getResults())
    iters[llvm::cast<AffineDimExpr>(e).getPosition()] =
        utils::IteratorType::parallel;
  Value acc = zerosF32(b, loc, outSizes);
  return linalg::GenericOp::create(
             b, loc, TypeRange{acc.getType()}, ValueRange{lhs, rhs},
             ValueRange{acc}, ArrayRef<AffineMap>{lhsMap, rhsMap, outMap},
             iters,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value p = arith::MulFOp::create(nb, nl, toF32(nb, nl, args[0]),
                                               toF32(nb, nl, args[1]));
               linalg::YieldOp::create(
                   nb, nl,
                   arith::AddFOp::create(nb, nl, args[2], p).getResult());
             })
      .getResult(0);
}

Value rwkv::buildInt4Nibble(OpBuilder &b, Location loc, Value byte,
                            Value column) {
  Type i8 = b.getI8Type();
  auto c = [&](int64_t v) {
    return arith::ConstantOp::create(b, loc, b.getIntegerAttr(i8, v));
  };
  // Only the parity of the column matters, so truncating it to i8 is exact.
  Value col = arith::IndexCastOp::create(b, loc, i8, column);
  Value odd = arith::AndIOp::create(b, loc, col, c(1));
  Value four = c(4);
  Value left = arith::SubIOp::create(b, loc, four,
                                     arith::ShLIOp::create(b, loc, odd, c(2)));
  // The wanted nibble to the top, then an arithmetic shift back: the sign
  // of the nibble fills the upper bits.
  Value top = arith::ShLIOp::create(b, loc, byte, left);
  return arith::ShRSIOp::create(b, loc, top, four);
}

Value rwkv::buildProjection(OpBuilder &b, Location loc, Value x, Value w,
                            bool transposed, Value init, Value rowScale,
                            int64_t group, bool int8Groups) {
  assert((!rowScale || transposed) && "row scales need an [out, in] weight");
  assert((!group || rowScale) && "grouped weights need their group scales");
  bool packed = group && !int8Groups;
  MLIRContext *ctx = b.getContext();
  int64_t outDim = transposed ? 0 : 1;
  Value acc = init;
  if (!acc) {
    SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, x);
    sizes.back() = tensor::getMixedSize(b, loc, w, outDim);
    acc = zerosF32(b, loc, sizes);
  }
  AffineExpr d0, d1, d2, d3;
  bindDims(ctx, d0, d1, d2, d3);
  // (b, t, o, i): x[b, t, i] * w[o, i] (or w[i, o]).
  auto xMap = AffineMap::get(4, 0, {d0, d1, d3}, ctx);
  // A packed int4 row holds column i in byte i / 2.
  auto wMap = packed       ? AffineMap::get(4, 0, {d2, d3.floorDiv(2)}, ctx)
              : transposed ? AffineMap::get(4, 0, {d2, d3}, ctx)
                           : AffineMap::get(4, 0, {d3, d2}, ctx);
  auto outMap = AffineMap::get(4, 0, {d0, d1, d2}, ctx);
  SmallVector<utils::IteratorType> iters = {
      utils::IteratorType::parallel, utils::IteratorType::parallel,
      utils::IteratorType::parallel, utils::IteratorType::reduction};
  auto fm = reductionFastMath(b);
  SmallVector<Value> inputs = {x, w};
  SmallVector<AffineMap> maps = {xMap, wMap};
  if (rowScale) {
    inputs.push_back(rowScale);
    maps.push_back(group ? AffineMap::get(4, 0, {d2, d3.floorDiv(group)}, ctx)
                         : AffineMap::get(4, 0, {d2}, ctx));
  }
  maps.push_back(outMap);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{acc.getType()}, inputs, ValueRange{acc}, maps, iters,
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value wv = args[1];
        if (packed)
          wv = buildInt4Nibble(nb, nl, wv, linalg::IndexOp::create(nb, nl, 3));
        wv = toF32(nb, nl, wv);
        if (rowScale)
          wv = arith::MulFOp::create(nb, nl, wv, toF32(nb, nl, args[2]), fm);
        Value p = arith::MulFOp::create(nb, nl, args[0], wv, fm);
        Value s = arith::AddFOp::create(nb, nl, args.back(), p, fm);
        linalg::YieldOp::create(nb, nl, s);
      });
  generic->setAttr(kProjectionAttr, b.getUnitAttr());
  return generic.getResult(0);
}

Value rwkv::buildTranspose(OpBuilder &b, Location loc, Value v) {
  MLIRContext *ctx = b.getContext();
  auto type = llvm::cast<RankedTensorType>(v.getType());
  SmallVector<OpFoldResult> sizes = {tensor::getMixedSize(b, loc, v, 1),
                                     tensor::getMixedSize(b, loc, v, 0)};
  Value init = tensor::EmptyOp::create(b, loc, sizes, type.getElementType());
  AffineExpr d0, d1;
  bindDims(ctx, d0, d1);
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{v}, ValueRange{init},
             ArrayRef<AffineMap>{AffineMap::get(2, 0, {d1, d0}, ctx),
                                 AffineMap::getMultiDimIdentityMap(2, ctx)},
             SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               linalg::YieldOp::create(nb, nl, args[0]);
             })
      .getResult(0);
}

Value rwkv::buildTokenReduction(OpBuilder &b, Location loc, Value a, Value c) {
  // [B, T, X] -> [N, X] -> [X, N].
  auto tokensLast = [&](Value v) {
    Value flat = tensor::CollapseShapeOp::create(
        b, loc, v, SmallVector<ReassociationIndices>{{0, 1}, {2}});
    return buildTranspose(b, loc, flat);
  };
  Value aT = tokensLast(a), cT = tokensLast(c);
  auto aTType = llvm::cast<RankedTensorType>(aT.getType());
  SmallVector<OpFoldResult> xSizes = {b.getIndexAttr(1),
                                      tensor::getMixedSize(b, loc, aT, 0),
                                      tensor::getMixedSize(b, loc, aT, 1)};
  SmallVector<int64_t> xShape = {1, aTType.getDimSize(0), aTType.getDimSize(1)};
  Value x = tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get(xShape, aTType.getElementType()), aT,
      SmallVector<ReassociationIndices>{{0, 1}, {2}}, xSizes);
  // out[0, p, q] = Σ_n aT[0, p, n] cT[q, n].
  Value out = buildProjection(b, loc, x, cT, /*transposed=*/true);
  return tensor::CollapseShapeOp::create(
      b, loc, out, SmallVector<ReassociationIndices>{{0, 1}, {2}});
}

Value rwkv::buildReduceTo(OpBuilder &b, Location loc, Value full, AffineMap map,
                          ArrayRef<OpFoldResult> sizes) {
  unsigned n = map.getNumDims();
  if (map.isIdentity())
    return full;
  SmallVector<utils::IteratorType> iters(n, utils::IteratorType::reduction);
  for (AffineExpr e : map.getResults())
    iters[llvm::cast<AffineDimExpr>(e).getPosition()] =
        utils::IteratorType::parallel;
  Value acc = zerosF32(b, loc, sizes);
  return linalg::GenericOp::create(
             b, loc, TypeRange{acc.getType()}, ValueRange{full},
             ValueRange{acc},
             ArrayRef<AffineMap>{
                 AffineMap::getMultiDimIdentityMap(n, b.getContext()), map},
             iters,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               linalg::YieldOp::create(
                   nb, nl,
                   arith::AddFOp::create(nb, nl, args[1], args[0]).getResult());
             })
      .getResult(0);
}

Value rwkv::buildAdd(OpBuilder &b, Location loc, Value x, Value y) {
  return buildElementwise(
      b, loc, x, {x, y}, [](OpBuilder &nb, Location nl, ValueRange in) {
        return arith::AddFOp::create(nb, nl, in[0], in[1]).getResult();
      });
}
