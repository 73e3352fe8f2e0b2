//===- VectorizeProjections.cpp - register-blocked projection tiles -------===//
//
// After rwkv-tile-and-fuse every projection is a small contraction inside an
// scf.forall tile. Lowered as it is (convert-linalg-to-loops after
// bufferization) its accumulator goes through memory on every multiply-add,
// and LLVM cannot keep it in a register or vectorise the loop: inside the
// OpenMP-outlined region it cannot prove that the accumulator does not alias
// the inputs. The dot products must therefore be vectorised here, on tensors,
// where the accumulators are SSA values and no aliasing question arises
// (docs: toolchain.md, pitfall 10, "vectorize and hoist on tensors").
//
// Each tiled projection out[b, t, o] += x[b, t, i] * extf(W[.., ..]) is
// rewritten into scf.for loops over (b, t, o) around a reduction loop whose
// accumulators are loop-carried vectors (scf.for iter_args), so they live in
// registers and the loop body is a sequence of vector multiply-adds that
// LLVM fuses into FMAs (the flags carry `contract`):
//
//  * W[o, i] (linear layers, head: `i` contiguous): `i` is the vector
//    dimension. Several output rows are handled per step, each with its own
//    vector accumulator acc[o] += x[i:i+VL] * W[o, i:i+VL]; one horizontal
//    reduction per output at the end of the reduction loop.
//  * W[i, o] (LoRA factors: `o` contiguous): `o` is the vector dimension,
//    the outer-product form acc[o:o+VL] += broadcast(x[i]) * W[i, o:o+VL].
//
// Tiles that do not fit the scheme (a reduction extent that is not a static
// multiple of the vector width, or a dynamic output extent in the W[i, o]
// form) are left to the scalar path; they are correct, only slower.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Matchers.h"

#include <numeric>

#define DEBUG_TYPE "rwkv-vectorize-projections"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVVECTORIZEPROJECTIONSPASS
#include "codegen/Passes.h.inc"

namespace {

/// The pieces of a projection contraction that the rewrite needs.
struct Projection {
  Value x, w, acc;
  /// W is [out, in] (`i` contiguous) rather than [in, out].
  bool outMajor;
  /// Whether the body widens the weight (bf16 storage).
  bool extendsWeight;
  arith::FastMathFlags mulFlags, addFlags;
};

/// Matches the generic built by `buildProjection`: maps (b, t, i), (o, i) or
/// (i, o), (b, t, o) and the body acc + x * extf(w). Anything else is left
/// alone, so that a change of the contraction cannot be silently miscompiled.
std::optional<Projection> matchProjection(linalg::GenericOp op) {
  if (!op->hasAttr(kProjectionAttr) || op.getNumLoops() != 4 ||
      op.getNumDpsInputs() != 2 || op.getNumDpsInits() != 1 ||
      !op.hasPureTensorSemantics())
    return std::nullopt;
  MLIRContext *ctx = op.getContext();
  AffineExpr d0, d1, d2, d3;
  bindDims(ctx, d0, d1, d2, d3);
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  if (maps[0] != AffineMap::get(4, 0, {d0, d1, d3}, ctx) ||
      maps[2] != AffineMap::get(4, 0, {d0, d1, d2}, ctx))
    return std::nullopt;
  Projection p;
  if (maps[1] == AffineMap::get(4, 0, {d2, d3}, ctx))
    p.outMajor = true;
  else if (maps[1] == AffineMap::get(4, 0, {d3, d2}, ctx))
    p.outMajor = false;
  else
    return std::nullopt;

  Block &body = op.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto add = yield.getOperand(0).getDefiningOp<arith::AddFOp>();
  if (!add)
    return std::nullopt;
  Value accArg = body.getArgument(2);
  Value prod = add.getLhs() == accArg ? add.getRhs() : add.getLhs();
  if ((add.getLhs() != accArg && add.getRhs() != accArg) || prod == accArg)
    return std::nullopt;
  auto mul = prod.getDefiningOp<arith::MulFOp>();
  if (!mul)
    return std::nullopt;
  Value xArg = body.getArgument(0), wArg = body.getArgument(1);
  Value other = mul.getLhs() == xArg ? mul.getRhs() : mul.getLhs();
  if (mul.getLhs() != xArg && mul.getRhs() != xArg)
    return std::nullopt;
  if (other == wArg) {
    p.extendsWeight = false;
  } else if (auto ext = other.getDefiningOp<arith::ExtFOp>();
             ext && ext.getIn() == wArg) {
    p.extendsWeight = true;
  } else {
    return std::nullopt;
  }
  // Exactly yield(add(acc, mul(x, [extf] w))): nothing else in the body.
  if (body.getOperations().size() != (p.extendsWeight ? 4u : 3u))
    return std::nullopt;

  Type f32 = Float32Type::get(ctx);
  if (xArg.getType() != f32 || accArg.getType() != f32)
    return std::nullopt;
  p.x = op.getDpsInputOperand(0)->get();
  p.w = op.getDpsInputOperand(1)->get();
  p.acc = op.getDpsInitOperand(0)->get();
  p.mulFlags = mul.getFastmath();
  p.addFlags = add.getFastmath();
  return p;
}

struct RWKVVectorizeProjectionsPass final
    : impl::RWKVVectorizeProjectionsPassBase<RWKVVectorizeProjectionsPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<std::pair<linalg::GenericOp, Projection>> todo;
    getOperation()->walk([&](linalg::GenericOp op) {
      if (std::optional<Projection> p = matchProjection(op))
        todo.emplace_back(op, *p);
    });
    IRRewriter rewriter(&getContext());
    for (auto &[op, p] : todo) {
      rewriter.setInsertionPoint(op);
      if (Value result = rewrite(rewriter, op.getLoc(), p))
        rewriter.replaceOp(op, result);
    }
  }

private:
  Value cst(OpBuilder &b, Location loc, int64_t v) const {
    return arith::ConstantIndexOp::create(b, loc, v);
  }

  /// Vector multiply-add with the contraction's own fastmath flags (which
  /// include `contract`, so LLVM forms FMAs).
  Value mulAdd(OpBuilder &b, Location loc, const Projection &p, Value x,
               Value w, Value acc) const {
    if (p.extendsWeight) {
      auto vt = cast<VectorType>(w.getType()).clone(b.getF32Type());
      w = arith::ExtFOp::create(b, loc, vt, w);
    }
    Value m = arith::MulFOp::create(b, loc, x, w, p.mulFlags);
    return arith::AddFOp::create(b, loc, acc, m, p.addFlags);
  }

  /// Loops over b and t around `inner(b, t, acc)`.
  Value loopBT(OpBuilder &b, Location loc, Value acc,
               function_ref<Value(OpBuilder &, Location, Value, Value, Value)>
                   inner) const {
    Value c0 = cst(b, loc, 0), c1 = cst(b, loc, 1);
    Value nB = tensor::DimOp::create(b, loc, acc, 0);
    Value nT = tensor::DimOp::create(b, loc, acc, 1);
    auto forB = scf::ForOp::create(
        b, loc, c0, nB, c1, ValueRange{acc},
        [&](OpBuilder &bb, Location l, Value ib, ValueRange accB) {
          auto forT = scf::ForOp::create(
              bb, l, c0, nT, c1, accB,
              [&](OpBuilder &tb, Location tl, Value it, ValueRange accT) {
                Value r = inner(tb, tl, ib, it, accT[0]);
                scf::YieldOp::create(tb, tl, r);
              });
          scf::YieldOp::create(bb, l, forT.getResult(0));
        });
    return forB.getResult(0);
  }

  /// W[o, i]: `rows` output rows per step, `chunks` vectors of the reduction
  /// per row and step, one vector accumulator per (row, chunk).
  Value rewriteOutMajor(OpBuilder &b, Location loc, const Projection &p,
                        int64_t nI) const {
    int64_t vl = vectorWidth;
    auto accType = cast<RankedTensorType>(p.acc.getType());
    int64_t nO = accType.getDimSize(2);
    int64_t rows = ShapedType::isDynamic(nO) ? 1 : std::gcd(nO, int64_t(4));
    int64_t chunks = nI % (2 * vl) == 0 ? 2 : 1;
    Type wElt = cast<RankedTensorType>(p.w.getType()).getElementType();
    auto xVec = VectorType::get({vl}, b.getF32Type());
    auto wVec = VectorType::get({vl}, wElt);
    return loopBT(
        b, loc, p.acc,
        [&](OpBuilder &tb, Location l, Value ib, Value it, Value acc) -> Value {
          Value c0 = cst(tb, l, 0);
          Value oEnd = tensor::DimOp::create(tb, l, acc, 2);
          auto forO = scf::ForOp::create(
              tb, l, c0, oEnd, cst(tb, l, rows), ValueRange{acc},
              [&](OpBuilder &ob, Location ol, Value io, ValueRange accO) {
                Value zero =
                    arith::ConstantOp::create(ob, ol, ob.getZeroAttr(xVec));
                SmallVector<Value> inits(rows * chunks, zero);
                Value padX = arith::ConstantOp::create(
                    ob, ol, ob.getZeroAttr(ob.getF32Type()));
                Value padW =
                    arith::ConstantOp::create(ob, ol, ob.getZeroAttr(wElt));
                SmallVector<Value> rowIdx;
                for (int64_t r = 0; r < rows; ++r)
                  rowIdx.push_back(r == 0 ? io
                                          : arith::AddIOp::create(
                                                ob, ol, io, cst(ob, ol, r)));
                // The reduction: accumulators are iter_args, i.e. registers.
                auto forI = scf::ForOp::create(
                    ob, ol, cst(ob, ol, 0), cst(ob, ol, nI),
                    cst(ob, ol, vl * chunks), inits,
                    [&](OpBuilder &ib2, Location il, Value ii,
                        ValueRange vacc) {
                      SmallVector<Value> next(vacc.begin(), vacc.end());
                      for (int64_t c = 0; c < chunks; ++c) {
                        Value i = c == 0
                                      ? ii
                                      : arith::AddIOp::create(
                                            ib2, il, ii, cst(ib2, il, c * vl));
                        Value xv = vector::TransferReadOp::create(
                            ib2, il, xVec, p.x, ValueRange{ib, it, i}, padX,
                            ArrayRef<bool>{true});
                        for (int64_t r = 0; r < rows; ++r) {
                          Value wv = vector::TransferReadOp::create(
                              ib2, il, wVec, p.w, ValueRange{rowIdx[r], i},
                              padW, ArrayRef<bool>{true});
                          int64_t k = r * chunks + c;
                          next[k] = mulAdd(ib2, il, p, xv, wv, next[k]);
                        }
                      }
                      scf::YieldOp::create(ib2, il, next);
                    });
                // One horizontal reduction per output, added to the initial
                // accumulator value (the fused fill, or a partial sum).
                Value out = accO[0];
                for (int64_t r = 0; r < rows; ++r) {
                  Value v = forI.getResult(r * chunks);
                  for (int64_t c = 1; c < chunks; ++c)
                    v = arith::AddFOp::create(
                        ob, ol, v, forI.getResult(r * chunks + c), p.addFlags);
                  SmallVector<Value> idx = {ib, it, rowIdx[r]};
                  Value init = tensor::ExtractOp::create(ob, ol, out, idx);
                  Value s = vector::ReductionOp::create(
                      ob, ol, vector::CombiningKind::ADD, v, init, p.addFlags);
                  out = tensor::InsertOp::create(ob, ol, s, out, idx);
                }
                scf::YieldOp::create(ob, ol, out);
              });
          return forO.getResult(0);
        });
  }

  /// W[i, o]: `chunks` output vectors per step, outer-product form.
  Value rewriteInMajor(OpBuilder &b, Location loc, const Projection &p,
                       int64_t nO, int64_t nI) const {
    int64_t vl = vectorWidth;
    int64_t chunks = (nO / vl) % 4 == 0 ? 4 : (nO / vl) % 2 == 0 ? 2 : 1;
    Type wElt = cast<RankedTensorType>(p.w.getType()).getElementType();
    auto xVec = VectorType::get({vl}, b.getF32Type());
    auto wVec = VectorType::get({vl}, wElt);
    return loopBT(
        b, loc, p.acc,
        [&](OpBuilder &tb, Location l, Value ib, Value it, Value acc) -> Value {
          auto forO = scf::ForOp::create(
              tb, l, cst(tb, l, 0), cst(tb, l, nO), cst(tb, l, vl * chunks),
              ValueRange{acc},
              [&](OpBuilder &ob, Location ol, Value io, ValueRange accO) {
                Value padX = arith::ConstantOp::create(
                    ob, ol, ob.getZeroAttr(ob.getF32Type()));
                Value padW =
                    arith::ConstantOp::create(ob, ol, ob.getZeroAttr(wElt));
                SmallVector<Value> oIdx, inits;
                for (int64_t c = 0; c < chunks; ++c) {
                  oIdx.push_back(c == 0 ? io
                                        : arith::AddIOp::create(
                                              ob, ol, io, cst(ob, ol, c * vl)));
                  inits.push_back(vector::TransferReadOp::create(
                      ob, ol, xVec, accO[0], ValueRange{ib, it, oIdx[c]}, padX,
                      ArrayRef<bool>{true}));
                }
                auto forI = scf::ForOp::create(
                    ob, ol, cst(ob, ol, 0), cst(ob, ol, nI), cst(ob, ol, 1),
                    inits,
                    [&](OpBuilder &ib2, Location il, Value i, ValueRange vacc) {
                      Value xs = tensor::ExtractOp::create(
                          ib2, il, p.x, ValueRange{ib, it, i});
                      Value xv = vector::BroadcastOp::create(ib2, il, xVec, xs);
                      SmallVector<Value> next;
                      for (int64_t c = 0; c < chunks; ++c) {
                        Value wv = vector::TransferReadOp::create(
                            ib2, il, wVec, p.w, ValueRange{i, oIdx[c]}, padW,
                            ArrayRef<bool>{true});
                        next.push_back(mulAdd(ib2, il, p, xv, wv, vacc[c]));
                      }
                      scf::YieldOp::create(ib2, il, next);
                    });
                Value out = accO[0];
                for (int64_t c = 0; c < chunks; ++c)
                  out = vector::TransferWriteOp::create(
                            ob, ol, forI.getResult(c), out,
                            ValueRange{ib, it, oIdx[c]}, ArrayRef<bool>{true})
                            .getResult();
                scf::YieldOp::create(ob, ol, out);
              });
          return forO.getResult(0);
        });
  }

  /// Returns the replacement of the projection, or null to leave it scalar.
  Value rewrite(OpBuilder &b, Location loc, const Projection &p) const {
    auto xType = cast<RankedTensorType>(p.x.getType());
    auto accType = cast<RankedTensorType>(p.acc.getType());
    int64_t nI = xType.getDimSize(2);
    int64_t vl = vectorWidth;
    if (vl <= 0 || ShapedType::isDynamic(nI))
      return {};
    if (p.outMajor)
      return nI % vl ? Value() : rewriteOutMajor(b, loc, p, nI);
    int64_t nO = accType.getDimSize(2);
    if (ShapedType::isDynamic(nO) || nO % vl)
      return {};
    return rewriteInMajor(b, loc, p, nO, nI);
  }
};

} // namespace
} // namespace mlir::rwkv
