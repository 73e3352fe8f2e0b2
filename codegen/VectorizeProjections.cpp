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
//    dimension. A register block is 4 output rows x 2 tokens (prefill) or
//    x 1 token (decode), each (row, token) with its own vector accumulator
//    acc[t, o] += x[t, i:i+VL] * W[o, i:i+VL]; one horizontal reduction per
//    output at the end of the reduction loop. Each weight vector is loaded
//    once per block, so prefill does 2 FMAs per weight load instead of 1.
//    With a static batch of several rows in the tile (a --batch N library)
//    the block is 4 output rows x one token of 2 or 4 batch rows instead:
//    batched decode reads and widens each weight vector once for several
//    sequences.
//  * Packed int4 W[o, i / 2] with scales per group of inputs: as W[o, i],
//    stepping over the bytes. A vector of VL bytes holds 2·VL weights; the
//    low nibbles (even i) and the high nibbles (odd i) are sign-extended
//    with shifts and converted to two f32 vectors, each multiplied by the
//    group's scale, and x is split into its even and odd elements with
//    vector.deinterleave (as for the bf16 pairs). The weights stay 4 bits
//    in memory: decode streams half the bytes of int8.
//  * Grouped int8 W[o, i] with scales per group of inputs (llama.cpp's
//    Q8_0): as W[o, i]; with one token the parts of a step are summed and
//    scaled by their group's scale once, with several each weight vector is
//    scaled.
//  * W[i, o] (LoRA factors: `o` contiguous): `o` is the vector dimension,
//    the outer-product form acc[o:o+VL] += broadcast(x[i]) * W[i, o:o+VL];
//    with a static batch, each weight vector serves up to 4 batch rows.
//
// After the reduction loop the accumulators of an integer-dot block are
// summed jointly (reduceJointly: transposing adds), not one horizontal
// reduction each.
//
// Tiles that do not fit the scheme (a reduction extent that is not a static
// multiple of the vector width, or a dynamic output extent in the W[i, o]
// form) are left to the scalar path; they are correct, only slower.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/IR/Matchers.h"

#include <numeric>

#define DEBUG_TYPE "rwkv-vectorize-projections"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVVECTORIZEPROJECTIONSPASS
#include "codegen/Passes.h.inc"

namespace {

/// x quantized per token for the integer dot products (int-dot=vnni or
/// vnni8), as tensors over the same batch rows and tokens as x
/// ([B, T, ...]): x[b, t, :] ~ scale[b, t] * q[b, t, :]. With vnni, q is in
/// [-32512, 32512], 15 bits, so that the weights' quantization stays the
/// only error that matters, and that a prompt and a token-by-token decode
/// of it (whose x differ by float rounding) round to the same q almost
/// everywhere; q is stored as two signed byte parts, q = 256 * hi + lo,
/// hi = (q + 128) >> 8 and lo in [-128, 127]. With vnni8, q is in
/// [-127, 127] and is its own single part: one vpdpbusd per step instead of
/// two, at 8-bit activation precision (llama.cpp's Q8_0 x Q8 dot products).
struct QuantizedX {
  /// i32 lanes of the vpdpbusd steps (the steps are 4·lanes bytes).
  int64_t lanes = 0;
  /// [B, T] f32.
  Value scale;
  /// The byte parts of q, most significant first ({hi, lo} or {q}); part k
  /// weighs 256^(parts - 1 - k).
  /// int8 weights: `bytes` ([B, T, I] i8 per part) and `cum`, the prefix
  /// sums of q at every step boundary ([B, T, I / step + 1] i32; row
  /// scales) or per part `corr`, -128 times the sum of each 4 consecutive
  /// elements ([B, T, I / 4] i32: one vpdpbusd lane; group scales).
  /// Packed int4 weights: per part its even and odd elements like the
  /// nibbles (`even`, `odd`: [B, T, I / 2] i8), and `corr`, -8 times the
  /// sum of each 8 consecutive elements ([B, T, I / 8] i32: one vpdpbusd
  /// lane).
  SmallVector<Value, 2> bytes, even, odd, corr;
  Value cum;
  int64_t parts() const { return std::max(bytes.size(), even.size()); }
};

/// How the weights of an integer-dot projection are coded, which decides
/// the layout of the quantized x.
enum class WeightCode { Int8Row, Int8Group, Int4 };

/// The pieces of a projection contraction that the rewrite needs.
struct Projection {
  Value x, w, acc;
  /// W is [out, in] (`i` contiguous) rather than [in, out].
  bool outMajor;
  /// Whether the body widens the weight (bf16/f16 storage: extf; int8:
  /// sitofp).
  bool extendsWeight;
  /// Per-output-row scales of an int8 weight (null otherwise): applied to
  /// each output's sum once, after the reduction.
  Value scale;
  /// Group-quantized weight: the inputs per scale group, 0 otherwise.
  /// `groupScale` is then [out, in / group]. Packed int4 (`int4`: W is
  /// [out, in / 2] bytes) or grouped int8 (W is [out, in] i8).
  int64_t group = 0;
  bool int4 = false;
  Value groupScale;
  arith::FastMathFlags mulFlags, addFlags;
  /// bf16-dot: x converted once per projection (or tile) to bf16 parts
  /// whose sum is x (`exact`: 3 parts; `round`: 1), read by the vdpbf16ps
  /// steps.
  SmallVector<Value, 3> xParts;
  /// int-dot=vnni: x quantized per token, read by vpdpbusd steps.
  QuantizedX qx;
};

/// Whether `v` is the integer constant `c`.
bool isConstant(Value v, int64_t c) {
  APInt value;
  return matchPattern(v, m_ConstantInt(&value)) && value.getSExtValue() == c;
}

/// Whether `v` is `buildInt4Nibble(wArg, linalg.index 3)`:
///   shrsi(shli(wArg, subi(4, shli(andi(index_cast(index 3), 1), 2))), 4)
/// i.e. the low nibble for even columns and the high one for odd columns,
/// the layout the vector code assumes. Adds the ops it matched to `seen`.
bool isInt4Nibble(Value v, Value wArg, unsigned &seen) {
  auto shr = v.getDefiningOp<arith::ShRSIOp>();
  if (!shr || !isConstant(shr.getRhs(), 4))
    return false;
  auto shl = shr.getLhs().getDefiningOp<arith::ShLIOp>();
  if (!shl || shl.getLhs() != wArg)
    return false;
  auto left = shl.getRhs().getDefiningOp<arith::SubIOp>();
  if (!left || !isConstant(left.getLhs(), 4))
    return false;
  auto times4 = left.getRhs().getDefiningOp<arith::ShLIOp>();
  if (!times4 || !isConstant(times4.getRhs(), 2))
    return false;
  auto odd = times4.getLhs().getDefiningOp<arith::AndIOp>();
  if (!odd || !isConstant(odd.getRhs(), 1))
    return false;
  auto cast = odd.getLhs().getDefiningOp<arith::IndexCastOp>();
  if (!cast)
    return false;
  auto index = cast.getIn().getDefiningOp<linalg::IndexOp>();
  if (!index || index.getDim() != 3)
    return false;
  seen += 7;
  return true;
}

/// Matches the generic built by `buildProjection`: maps (b, t, i), (o, i) or
/// (i, o), (b, t, o) and the body acc + x * extf(w); int8: (o) row scales and
/// acc + x * (sitofp(w) * s); packed int4: (o, i floordiv 2) bytes,
/// (o, i floordiv G) group scales and acc + x * (sitofp(nibble(w, i)) *
/// widen(s)). Anything else is left alone, so that a change of the
/// contraction cannot be silently miscompiled.
std::optional<Projection> matchProjection(linalg::GenericOp op) {
  unsigned numInputs = op.getNumDpsInputs();
  if (!op->hasAttr(kProjectionAttr) || op.getNumLoops() != 4 ||
      (numInputs != 2 && numInputs != 3) || op.getNumDpsInits() != 1 ||
      !op.hasPureTensorSemantics())
    return std::nullopt;
  MLIRContext *ctx = op.getContext();
  AffineExpr d0, d1, d2, d3;
  bindDims(ctx, d0, d1, d2, d3);
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  if (maps[0] != AffineMap::get(4, 0, {d0, d1, d3}, ctx) ||
      maps.back() != AffineMap::get(4, 0, {d0, d1, d2}, ctx))
    return std::nullopt;
  Projection p;
  bool scaled = numInputs == 3;
  if (maps[1] == AffineMap::get(4, 0, {d2, d3}, ctx)) {
    p.outMajor = true;
  } else if (maps[1] == AffineMap::get(4, 0, {d3, d2}, ctx)) {
    p.outMajor = false;
  } else if (scaled &&
             maps[1] == AffineMap::get(4, 0, {d2, d3.floorDiv(2)}, ctx)) {
    p.outMajor = true;
    p.int4 = true;
  } else {
    return std::nullopt;
  }
  // Group scales (packed int4, grouped int8): the group size is the divisor
  // of the scales' map.
  if (scaled && maps[2].getNumResults() == 2) {
    auto g = dyn_cast<AffineBinaryOpExpr>(maps[2].getResult(1));
    auto gc = g ? dyn_cast<AffineConstantExpr>(g.getRHS()) : nullptr;
    if (!p.outMajor || !g || g.getKind() != AffineExprKind::FloorDiv ||
        g.getLHS() != d3 || !gc || gc.getValue() <= 0 ||
        maps[2].getResult(0) != d2)
      return std::nullopt;
    p.group = gc.getValue();
  }
  if (p.int4 && !p.group)
    return std::nullopt;
  // int8 row scales: only of W[o, i], indexed by the output.
  if (scaled && !p.group &&
      (!p.outMajor || maps[2] != AffineMap::get(4, 0, {d2}, ctx)))
    return std::nullopt;

  Block &body = op.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto add = yield.getOperand(0).getDefiningOp<arith::AddFOp>();
  if (!add)
    return std::nullopt;
  Value accArg = body.getArguments().back();
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
  unsigned matched = 3; // yield, add, mul
  if (scaled) {
    // other = widen(w) * scale (int4: * widen(scale)).
    auto scaleMul = other.getDefiningOp<arith::MulFOp>();
    if (!scaleMul)
      return std::nullopt;
    Value sArg = body.getArgument(2), sVal = sArg;
    if (p.group && sArg.getType() != Float32Type::get(ctx)) {
      auto ext = [&](Value v) {
        auto e = v.getDefiningOp<arith::ExtFOp>();
        return e && e.getIn() == sArg;
      };
      if (ext(scaleMul.getLhs()))
        sVal = scaleMul.getLhs();
      else if (ext(scaleMul.getRhs()))
        sVal = scaleMul.getRhs();
      else
        return std::nullopt;
      ++matched;
    }
    if (scaleMul.getLhs() != sVal && scaleMul.getRhs() != sVal)
      return std::nullopt;
    other = scaleMul.getLhs() == sVal ? scaleMul.getRhs() : scaleMul.getLhs();
    ++matched;
  }
  if (p.int4) {
    auto widen = other.getDefiningOp<arith::SIToFPOp>();
    if (!widen || !isInt4Nibble(widen.getIn(), wArg, matched))
      return std::nullopt;
    p.extendsWeight = true;
    ++matched;
  } else if (p.group) {
    auto widen = other.getDefiningOp<arith::SIToFPOp>();
    if (!widen || widen.getIn() != wArg)
      return std::nullopt;
    p.extendsWeight = true;
    ++matched;
  } else if (other == wArg) {
    p.extendsWeight = false;
  } else if (Operation *widen = other.getDefiningOp();
             widen && isa<arith::ExtFOp, arith::SIToFPOp>(widen) &&
             widen->getOperand(0) == wArg) {
    p.extendsWeight = true;
    ++matched;
  } else {
    return std::nullopt;
  }
  // Exactly yield(add(acc, mul(x, [[widen] w [* scale]]))) and, for int4,
  // the nibble's ops: nothing else (the int4 constants may have been
  // hoisted out of the body by canonicalization).
  unsigned ops = 0;
  for (Operation &o : body.getOperations())
    if (!p.int4 || !isa<arith::ConstantOp>(o))
      ++ops;
  if (ops != matched)
    return std::nullopt;

  Type f32 = Float32Type::get(ctx);
  if (xArg.getType() != f32 || accArg.getType() != f32)
    return std::nullopt;
  p.x = op.getDpsInputOperand(0)->get();
  p.w = op.getDpsInputOperand(1)->get();
  if (scaled && p.group)
    p.groupScale = op.getDpsInputOperand(2)->get();
  else if (scaled)
    p.scale = op.getDpsInputOperand(2)->get();
  p.acc = op.getDpsInitOperand(0)->get();
  p.mulFlags = mul.getFastmath();
  p.addFlags = add.getFastmath();
  return p;
}

/// Widens a weight vector to f32: sitofp for int8, extf for bf16/f16.
Value widenToF32(OpBuilder &b, Location loc, Value w) {
  auto vt = cast<VectorType>(w.getType());
  auto f32Vec = vt.clone(b.getF32Type());
  if (vt.getElementType().isSignlessInteger())
    return arith::SIToFPOp::create(b, loc, f32Vec, w);
  return arith::ExtFOp::create(b, loc, f32Vec, w);
}

/// The sums of the lanes of each of `vs` (vectors of one type), all
/// reduced together: pairs of vectors are transposed and added level by
/// level (at level h, one shuffle takes the first h lanes of each block of
/// 2h from both vectors, another the last h, and one add sums them), so
/// that K vectors of W lanes take K - 1 adds and 2 (K - 1) shuffles instead
/// of K separate reductions of log2(W) shuffle-add steps each; a single
/// vector left with lanes to spare is folded onto itself. Returns, for each
/// of `vs`, its sum as a scalar.
SmallVector<Value> reduceJointly(OpBuilder &b, Location loc, ValueRange vs,
                                 arith::FastMathFlags flags) {
  auto type = cast<VectorType>(vs.front().getType());
  int64_t w = type.getNumElements();
  bool isFloat = isa<FloatType>(type.getElementType());
  auto add = [&](Value x, Value y) -> Value {
    if (isFloat)
      return arith::AddFOp::create(b, loc, x, y, flags);
    return arith::AddIOp::create(b, loc, x, y);
  };
  // Each vector with, per lane, the index in `vs` of the sum it holds a
  // part of. Invariant: at level h, the blocks of 2h lanes are uniform.
  struct Part {
    Value v;
    SmallVector<int64_t> label;
  };
  SmallVector<Part> cur;
  for (auto [i, v] : llvm::enumerate(vs))
    cur.push_back({v, SmallVector<int64_t>(w, int64_t(i))});
  for (int64_t h = w / 2; h >= 1; h /= 2) {
    if (cur.size() == 1) {
      SmallVector<int64_t> swap;
      for (int64_t base = 0; base < w; base += 2 * h) {
        for (int64_t j = 0; j < h; ++j)
          swap.push_back(base + h + j);
        for (int64_t j = 0; j < h; ++j)
          swap.push_back(base + j);
      }
      cur[0].v = add(cur[0].v, vector::ShuffleOp::create(b, loc, cur[0].v,
                                                         cur[0].v, swap));
      continue;
    }
    if (cur.size() % 2)
      cur.push_back({arith::ConstantOp::create(b, loc, b.getZeroAttr(type)),
                     SmallVector<int64_t>(w, -1)});
    SmallVector<Part> next;
    for (size_t k = 0; k < cur.size(); k += 2) {
      const Part &x = cur[k], &y = cur[k + 1];
      SmallVector<int64_t> first, second, label;
      for (int64_t base = 0; base < w; base += 2 * h) {
        for (int64_t j = 0; j < h; ++j) {
          first.push_back(base + j);
          second.push_back(base + h + j);
          label.push_back(x.label[base + j]);
        }
        for (int64_t j = 0; j < h; ++j) {
          first.push_back(w + base + j);
          second.push_back(w + base + h + j);
          label.push_back(y.label[base + j]);
        }
      }
      Value sum = add(vector::ShuffleOp::create(b, loc, x.v, y.v, first),
                      vector::ShuffleOp::create(b, loc, x.v, y.v, second));
      next.push_back({sum, label});
    }
    cur = std::move(next);
  }
  SmallVector<Value> sums(vs.size());
  for (const Part &part : cur)
    for (int64_t l = 0; l < w; ++l)
      if (part.label[l] >= 0 && !sums[part.label[l]])
        sums[part.label[l]] = vector::ExtractOp::create(b, loc, part.v, l);
  return sums;
}

struct RWKVVectorizeProjectionsPass final
    : impl::RWKVVectorizeProjectionsPassBase<RWKVVectorizeProjectionsPass> {
  using Base::Base;

  void runOnOperation() override {
    if (bf16Dot != "off" && bf16Dot != "exact" && bf16Dot != "round") {
      getOperation()->emitError()
          << "rwkv-vectorize-projections: bf16-dot must be off, exact or "
             "round, not '"
          << bf16Dot << "'";
      return signalPassFailure();
    }
    if (intDot != "off" && intDot != "vnni" && intDot != "vnni8") {
      getOperation()->emitError()
          << "rwkv-vectorize-projections: int-dot must be off, vnni or vnni8, "
             "not '"
          << intDot << "'";
      return signalPassFailure();
    }
    SmallVector<linalg::GenericOp> todo;
    getOperation()->walk([&](linalg::GenericOp op) {
      if (matchProjection(op))
        todo.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (linalg::GenericOp op : todo) {
      // Matched again here: a projection may read another's result directly
      // (an untiled chain, e.g. a LoRA's down then up projection when one
      // tile covers the whole batch and sequence), which the rewrite of the
      // first has replaced since the walk.
      std::optional<Projection> p = matchProjection(op);
      if (!p)
        continue;
      rewriter.setInsertionPoint(op);
      if (Value result = rewrite(rewriter, op.getLoc(), *p))
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
    if (p.extendsWeight)
      w = widenToF32(b, loc, w);
    Value m = arith::MulFOp::create(b, loc, x, w, p.mulFlags);
    return arith::AddFOp::create(b, loc, acc, m, p.addFlags);
  }

  /// Loops over the batch rows and tokens of `shaped` (its dims 0 and 1)
  /// around `inner(b, t, values)`, carrying `inits`; returns the results.
  SmallVector<Value>
  loopBT(OpBuilder &b, Location loc, Value shaped, ValueRange inits,
         function_ref<SmallVector<Value>(OpBuilder &, Location, Value, Value,
                                         ValueRange)>
             inner) const {
    Value c0 = cst(b, loc, 0), c1 = cst(b, loc, 1);
    Value nB = tensor::DimOp::create(b, loc, shaped, 0);
    Value nT = tensor::DimOp::create(b, loc, shaped, 1);
    auto forB = scf::ForOp::create(
        b, loc, c0, nB, c1, inits,
        [&](OpBuilder &bb, Location l, Value ib, ValueRange accB) {
          auto forT = scf::ForOp::create(
              bb, l, c0, nT, c1, accB,
              [&](OpBuilder &tb, Location tl, Value it, ValueRange accT) {
                scf::YieldOp::create(tb, tl, inner(tb, tl, ib, it, accT));
              });
          scf::YieldOp::create(bb, l, forT.getResults());
        });
    return forB.getResults();
  }

  /// One row of x: batch row and token.
  struct TokenPos {
    Value b, t;
  };

  /// How the reduction of a W[o, i] projection is stepped.
  struct ReductionStep {
    /// Reduction elements per iteration.
    int64_t size;
    /// f32 vectors per row (and per token) and iteration.
    int64_t parts;
    /// bf16 weights read as packed pairs: one vector<2·vl x bf16> load gives
    /// the even elements (`<< 16`) and the odd ones (`& 0xffff0000`) as two
    /// f32 vectors, and x is split the same way with vector.deinterleave.
    /// The dot product is the same sum in another order, but each weight
    /// vector costs one load and one ALU op instead of a widening load, a
    /// shuffle and a shift; in decode that keeps more weight loads in flight.
    bool pairedBf16;
    /// Packed int4: one vector<vl x i8> load gives the even (low nibbles)
    /// and odd (high nibbles) elements; x is deinterleaved as for bf16
    /// pairs, and the reduction loop steps over bytes (vl per step).
    bool int4 = false;
    /// bf16-dot: one vector<2·vl x bf16> of W per step, multiplied with
    /// each of `p.xParts` by vdpbf16ps, without widening.
    bool dotBf16 = false;
    /// int-dot=vnni on int8 with row scales (4·vl weights), packed int4
    /// (8·vl weights, 4·vl bytes) or grouped int8 (4·vl weights) per step:
    /// emitIntDotBlock.
    bool vnni8 = false, vnni4 = false, vnni8g = false;
    bool deinterleavesX() const { return pairedBf16 || int4; }
    bool intDot() const { return vnni8 || vnni4 || vnni8g; }
  };

  ReductionStep chooseStep(const Projection &p, int64_t nI) const {
    int64_t vl = vectorWidth;
    if (p.qx.scale) {
      int64_t lanes = p.qx.lanes;
      ReductionStep step{p.int4 ? 8 * lanes : 4 * lanes, 1, false};
      (p.int4 ? step.vnni4 : p.group ? step.vnni8g : step.vnni8) = true;
      return step;
    }
    if (p.int4)
      return {2 * vl, 2, false, true};
    if (!p.xParts.empty())
      return {2 * vl, static_cast<int64_t>(p.xParts.size()), false, false,
              true};
    // A step of grouped int8 stays inside one group.
    if (nI % (2 * vl) || (p.group && p.group % (2 * vl)))
      return {vl, 1, false};
    bool bf16 = cast<RankedTensorType>(p.w.getType()).getElementType().isBF16();
    return {2 * vl, 2, bf16};
  }

  /// The scale of group `g` of weight row `row` of a group-quantized
  /// projection, widened to f32 and broadcast to a vector.
  Value loadGroupScale(OpBuilder &b, Location loc, const Projection &p,
                       Value row, Value g) const {
    Value s =
        tensor::ExtractOp::create(b, loc, p.groupScale, ValueRange{row, g});
    if (!s.getType().isF32())
      s = arith::ExtFOp::create(b, loc, b.getF32Type(), s);
    return vector::BroadcastOp::create(
        b, loc, VectorType::get({vectorWidth}, b.getF32Type()), s);
  }

  /// The even and odd weights of packed int4 bytes `W[row, j : j + vl]`
  /// (columns 2j ...) as f32 vectors, multiplied by `scale` unless it is
  /// null (the caller then scales the sum). The bytes are sign-extended to
  /// i32 first (x86 has no 8-bit shifts). The high nibble is then one
  /// arithmetic shift and a conversion; the low one is converted without
  /// shifts: flipping its sign bit (xor 8) gives q + 8 in [0, 15], which as
  /// the mantissa of 2^23 is the float 2^23 + q + 8, and subtracting
  /// 2^23 + 8 leaves q exactly (two ops instead of three, in a loop that is
  /// bound by these ops rather than by memory).
  SmallVector<Value> loadInt4Parts(OpBuilder &b, Location loc,
                                   const Projection &p, Value row, Value j,
                                   Value scale) const {
    int64_t vl = vectorWidth;
    Value pad = arith::ConstantOp::create(b, loc, b.getI8IntegerAttr(0));
    Value bytes = vector::TransferReadOp::create(
        b, loc, VectorType::get({vl}, b.getI8Type()), p.w, ValueRange{row, j},
        pad, ArrayRef<bool>{true});
    auto i32Vec = VectorType::get({vl}, b.getI32Type());
    auto f32Vec = VectorType::get({vl}, b.getF32Type());
    auto splat = [&](int32_t v) {
      return arith::ConstantOp::create(
          b, loc, DenseElementsAttr::get(i32Vec, b.getI32IntegerAttr(v)));
    };
    Value wide = arith::ExtSIOp::create(b, loc, i32Vec, bytes);
    Value loBits = arith::XOrIOp::create(
        b, loc, arith::AndIOp::create(b, loc, wide, splat(0xf)),
        splat(0x4b000008));
    Value even = arith::SubFOp::create(
        b, loc, vector::BitCastOp::create(b, loc, f32Vec, loBits),
        arith::ConstantOp::create(
            b, loc,
            DenseElementsAttr::get(f32Vec, b.getF32FloatAttr(8388616.0f))));
    Value odd = arith::SIToFPOp::create(
        b, loc, f32Vec, arith::ShRSIOp::create(b, loc, wide, splat(4)));
    SmallVector<Value> parts = {even, odd};
    if (scale)
      for (Value &v : parts)
        v = arith::MulFOp::create(b, loc, v, scale, p.mulFlags);
    return parts;
  }

  /// The f32 parts of `W[row, i : i + step.size]`.
  SmallVector<Value> loadWeightParts(OpBuilder &b, Location loc,
                                     const Projection &p,
                                     const ReductionStep &step, Value row,
                                     Value i) const {
    int64_t vl = vectorWidth;
    Type wElt = cast<RankedTensorType>(p.w.getType()).getElementType();
    Value pad = arith::ConstantOp::create(b, loc, b.getZeroAttr(wElt));
    auto f32Vec = VectorType::get({vl}, b.getF32Type());
    if (step.dotBf16)
      return {vector::TransferReadOp::create(
          b, loc, VectorType::get({2 * vl}, wElt), p.w, ValueRange{row, i}, pad,
          ArrayRef<bool>{true})};
    if (step.pairedBf16) {
      auto i32Vec = VectorType::get({vl}, b.getI32Type());
      Value packed = vector::TransferReadOp::create(
          b, loc, VectorType::get({2 * vl}, wElt), p.w, ValueRange{row, i}, pad,
          ArrayRef<bool>{true});
      Value bits = vector::BitCastOp::create(b, loc, i32Vec, packed);
      auto splat = [&](int32_t v) {
        return arith::ConstantOp::create(
            b, loc, DenseElementsAttr::get(i32Vec, b.getI32IntegerAttr(v)));
      };
      Value even = arith::ShLIOp::create(b, loc, bits, splat(16));
      Value odd = arith::AndIOp::create(
          b, loc, bits, splat(static_cast<int32_t>(0xffff0000)));
      return {vector::BitCastOp::create(b, loc, f32Vec, even),
              vector::BitCastOp::create(b, loc, f32Vec, odd)};
    }
    SmallVector<Value> parts;
    for (int64_t k = 0; k < step.parts; ++k) {
      Value ik =
          k == 0 ? i : arith::AddIOp::create(b, loc, i, cst(b, loc, k * vl));
      Value w = vector::TransferReadOp::create(
          b, loc, VectorType::get({vl}, wElt), p.w, ValueRange{row, ik}, pad,
          ArrayRef<bool>{true});
      if (p.extendsWeight)
        w = widenToF32(b, loc, w);
      parts.push_back(w);
    }
    return parts;
  }

  /// The parts of `x[b, t, i : i + step.size]`, in the order of the weights.
  SmallVector<Value> loadInputParts(OpBuilder &b, Location loc,
                                    const Projection &p,
                                    const ReductionStep &step, Value ib,
                                    Value it, Value i) const {
    int64_t vl = vectorWidth;
    if (step.dotBf16) {
      Value pad =
          arith::ConstantOp::create(b, loc, b.getZeroAttr(b.getBF16Type()));
      SmallVector<Value> parts;
      for (Value xb : p.xParts)
        parts.push_back(vector::TransferReadOp::create(
            b, loc, VectorType::get({2 * vl}, b.getBF16Type()), xb,
            ValueRange{ib, it, i}, pad, ArrayRef<bool>{true}));
      return parts;
    }
    Value pad =
        arith::ConstantOp::create(b, loc, b.getZeroAttr(b.getF32Type()));
    if (step.deinterleavesX()) {
      Value x = vector::TransferReadOp::create(
          b, loc, VectorType::get({2 * vl}, b.getF32Type()), p.x,
          ValueRange{ib, it, i}, pad, ArrayRef<bool>{true});
      auto split = vector::DeinterleaveOp::create(b, loc, x);
      return {split.getRes1(), split.getRes2()};
    }
    SmallVector<Value> parts;
    for (int64_t k = 0; k < step.parts; ++k) {
      Value ik =
          k == 0 ? i : arith::AddIOp::create(b, loc, i, cst(b, loc, k * vl));
      parts.push_back(vector::TransferReadOp::create(
          b, loc, VectorType::get({vl}, b.getF32Type()), p.x,
          ValueRange{ib, it, ik}, pad, ArrayRef<bool>{true}));
    }
    return parts;
  }

  /// One register block of a W[o, i] projection: `tokens` tokens from `t0`
  /// times `rows` output rows from `o0`. Each weight vector is loaded (and
  /// widened) once and used for every token of the block, each input vector
  /// once for every row. With one token the parts of a step go to separate
  /// accumulators (independent FMA chains); with several tokens the
  /// token x row accumulators already give enough independent chains and
  /// must leave registers for the weights.
  Value emitOutMajorBlock(OpBuilder &b, Location loc, const Projection &p,
                          const ReductionStep &step, Value i0, int64_t len,
                          int64_t rows, int64_t tokens, Value ib, Value t0,
                          Value o0, Value acc) const {
    SmallVector<TokenPos> toks;
    for (int64_t t = 0; t < tokens; ++t)
      toks.push_back(
          {ib,
           t == 0 ? t0 : arith::AddIOp::create(b, loc, t0, cst(b, loc, t))});
    return emitOutMajorBlock(b, loc, p, step, i0, len, rows, toks, o0, acc);
  }

  /// The same for any (batch row, token) positions, e.g. one token of each
  /// of several batch rows (batched decode).
  Value emitOutMajorBlock(OpBuilder &b, Location loc, const Projection &p,
                          const ReductionStep &step, Value i0, int64_t len,
                          int64_t rows, ArrayRef<TokenPos> toks, Value o0,
                          Value acc) const {
    if (step.intDot())
      return emitIntDotBlock(b, loc, p, step, i0, len, rows, toks, o0, acc);
    int64_t tokens = toks.size();
    auto f32Vec = VectorType::get({vectorWidth}, b.getF32Type());
    // Group scales with one token keep one accumulator per row: the parts
    // of a step are summed first and scaled by their group's scale once
    // (one FMA) instead of scaling each weight vector (two multiplies).
    bool scaleSums = p.group && tokens == 1;
    int64_t perPair = tokens == 1 && !scaleSums ? step.parts : 1;
    auto offset = [&](Value base, int64_t k) -> Value {
      return k == 0 ? base
                    : arith::AddIOp::create(b, loc, base, cst(b, loc, k));
    };
    SmallVector<Value> rowIdx;
    for (int64_t r = 0; r < rows; ++r)
      rowIdx.push_back(offset(o0, r));
    Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(f32Vec));
    SmallVector<Value> inits(tokens * rows * perPair, zero);
    // The reduction: accumulators are iter_args, i.e. registers. Packed
    // int4 steps over the bytes (two weights each), so that the weight
    // reads are indexed by the induction variable (rwkv-prefetch-weight-rows
    // looks for that) and x by twice it.
    Value lb = i0, ub = arith::AddIOp::create(b, loc, i0, cst(b, loc, len));
    int64_t stride = step.size;
    if (step.int4) {
      lb = arith::DivUIOp::create(b, loc, lb, cst(b, loc, 2));
      ub = arith::DivUIOp::create(b, loc, ub, cst(b, loc, 2));
      stride /= 2;
    }
    auto forI = scf::ForOp::create(
        b, loc, lb, ub, cst(b, loc, stride), inits,
        [&](OpBuilder &ib2, Location il, Value iv, ValueRange vacc) {
          SmallVector<Value> next(vacc.begin(), vacc.end());
          Value i = step.int4
                        ? arith::MulIOp::create(ib2, il, iv, cst(ib2, il, 2))
                              .getResult()
                        : iv;
          // A step never straddles two groups (group % step == 0).
          Value g = p.group ? arith::DivUIOp::create(ib2, il, i,
                                                     cst(ib2, il, p.group))
                                  .getResult()
                            : Value();
          SmallVector<SmallVector<Value>> xs;
          for (int64_t t = 0; t < tokens; ++t)
            xs.push_back(
                loadInputParts(ib2, il, p, step, toks[t].b, toks[t].t, i));
          for (int64_t r = 0; r < rows; ++r) {
            if (scaleSums) {
              Value scale = loadGroupScale(ib2, il, p, rowIdx[r], g);
              SmallVector<Value> ws =
                  step.int4 ? loadInt4Parts(ib2, il, p, rowIdx[r], iv, Value())
                            : loadWeightParts(ib2, il, p, step, rowIdx[r], i);
              Value sum;
              for (int64_t k = 0; k < step.parts; ++k) {
                Value m =
                    arith::MulFOp::create(ib2, il, xs[0][k], ws[k], p.mulFlags);
                sum = k == 0
                          ? m
                          : arith::AddFOp::create(ib2, il, sum, m, p.addFlags);
              }
              Value &a = next[r];
              Value m = arith::MulFOp::create(ib2, il, sum, scale, p.mulFlags);
              a = arith::AddFOp::create(ib2, il, a, m, p.addFlags);
              continue;
            }
            SmallVector<Value> ws =
                step.int4
                    ? loadInt4Parts(ib2, il, p, rowIdx[r], iv,
                                    loadGroupScale(ib2, il, p, rowIdx[r], g))
                    : loadWeightParts(ib2, il, p, step, rowIdx[r], i);
            if (p.group && !step.int4) {
              Value scale = loadGroupScale(ib2, il, p, rowIdx[r], g);
              for (Value &w : ws)
                w = arith::MulFOp::create(ib2, il, w, scale, p.mulFlags);
            }
            for (int64_t t = 0; t < tokens; ++t)
              for (int64_t k = 0; k < step.parts; ++k) {
                Value &a = next[(t * rows + r) * perPair + k % perPair];
                if (step.dotBf16) {
                  // The x parts share the one weight vector.
                  a = x86vector::DotBF16Op::create(ib2, il, a.getType(), a,
                                                   xs[t][k], ws[0]);
                  continue;
                }
                Value m =
                    arith::MulFOp::create(ib2, il, xs[t][k], ws[k], p.mulFlags);
                a = arith::AddFOp::create(ib2, il, a, m, p.addFlags);
              }
          }
          scf::YieldOp::create(ib2, il, next);
        });
    // One horizontal reduction per output, added to the initial accumulator
    // value (the fused fill, or a partial sum).
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t r = 0; r < rows; ++r) {
        int64_t base = (t * rows + r) * perPair;
        Value v = forI.getResult(base);
        for (int64_t k = 1; k < perPair; ++k)
          v = arith::AddFOp::create(b, loc, v, forI.getResult(base + k),
                                    p.addFlags);
        SmallVector<Value> idx = {toks[t].b, toks[t].t, rowIdx[r]};
        Value init = tensor::ExtractOp::create(b, loc, acc, idx);
        Value s;
        if (p.scale) {
          // sum_i x * (w * scale) = scale * sum_i x * w: one multiply per
          // output instead of one per weight.
          Value sum = vector::ReductionOp::create(
              b, loc, vector::CombiningKind::ADD, v, Value(), p.addFlags);
          Value sc = tensor::ExtractOp::create(b, loc, p.scale, rowIdx[r]);
          Value m = arith::MulFOp::create(b, loc, sum, sc, p.mulFlags);
          s = arith::AddFOp::create(b, loc, init, m, p.addFlags);
        } else {
          s = vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD, v,
                                          init, p.addFlags);
        }
        acc = tensor::InsertOp::create(b, loc, s, acc, idx);
      }
    return acc;
  }

  /// The i32 lanes of the vpdpbusd steps if int-dot=vnni applies, else 0:
  /// int8 W[o, i] with row scales whose reduction is a multiple of a step
  /// (4·lanes bytes), or packed int4 (grouped int8) whose groups are whole
  /// vpdpbusd lanes (8 weights; 4) inside one step of 8·lanes weights
  /// (4·lanes) or whole steps. The
  /// vector width if it fits, else half of it (a 192-wide input takes ymm
  /// steps on AVX-512), so that fewer projections are left to the widening
  /// path.
  int64_t intDotLanes(const Projection &p, int64_t nI) const {
    if ((intDot != "vnni" && intDot != "vnni8") || (!p.scale && !p.group))
      return 0;
    int64_t vl = vectorWidth;
    for (int64_t lanes : {vl, vl / 2}) {
      if (lanes != 4 && lanes != 8 && lanes != 16)
        continue;
      int64_t perLane = p.int4 ? 8 : 4, perStep = perLane * lanes;
      if (p.group && nI % perStep == 0 && p.group % perLane == 0 &&
          (perStep % p.group == 0 || p.group % perStep == 0))
        return lanes;
      if (!p.group && p.outMajor && nI % (4 * lanes) == 0)
        return lanes;
    }
    return 0;
  }

  /// vpdpbusd: acc[l] + sum_{k < 4} u8[4l + k] * s8[4l + k], with `u8`
  /// read as unsigned bytes and `s8` as signed ones (i32 lanes; a lane
  /// sum of 4 products of at most 255 * 128 cannot overflow).
  Value dpbusd(OpBuilder &b, Location loc, Value acc, Value u8,
               Value s8) const {
    return X86DotBytesOp::create(b, loc, acc.getType(), acc, u8, s8);
  }

  /// Computes tensors from x [B, T, I] row by row (one row per batch row and
  /// token), once per projection where possible: when the tile's x is a
  /// slice of whole rows of a tensor defined outside the tile loop, `fn`
  /// runs on that tensor before the loop and every tile slices the results
  /// (a decode step would otherwise repeat the work, and its allocation, in
  /// each of the projection's tiles: 1024 times for the 0.1B head). The
  /// results are [B, T, ...], each row computed from the same row of x.
  SmallVector<Value> perRowOnce(
      OpBuilder &b, Location loc, Value x,
      function_ref<SmallVector<Value>(OpBuilder &, Location, Value)> fn) const {
    auto slice = x.getDefiningOp<tensor::ExtractSliceOp>();
    auto forall = b.getInsertionBlock()->getParentOp();
    if (!isa<scf::ForallOp>(forall))
      forall = forall->getParentOfType<scf::ForallOp>();
    auto xType = cast<RankedTensorType>(x.getType());
    if (!slice || !forall || slice.getSourceType().getRank() != 3 ||
        !slice.hasUnitStride() ||
        slice.getSourceType().getDimSize(2) != xType.getDimSize(2) ||
        !isConstantIntValue(slice.getMixedOffsets()[2], 0) ||
        forall->isAncestor(slice.getSource().getParentBlock()->getParentOp()))
      return fn(b, loc, x);
    SmallVector<Value> whole;
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(forall);
      whole = fn(b, loc, slice.getSource());
    }
    SmallVector<OpFoldResult> offsets = slice.getMixedOffsets(),
                              sizes = slice.getMixedSizes();
    SmallVector<Value> sliced;
    for (Value q : whole) {
      if (!q) {
        sliced.push_back(q);
        continue;
      }
      auto type = cast<RankedTensorType>(q.getType());
      SmallVector<OpFoldResult> off(offsets.begin(), offsets.begin() + 2),
          size(sizes.begin(), sizes.begin() + 2);
      for (int64_t d = 2; d < type.getRank(); ++d) {
        off.push_back(b.getIndexAttr(0));
        size.push_back(b.getIndexAttr(type.getDimSize(d)));
      }
      SmallVector<OpFoldResult> strides(type.getRank(), b.getIndexAttr(1));
      sliced.push_back(
          tensor::ExtractSliceOp::create(b, loc, q, off, size, strides));
    }
    return sliced;
  }

  /// x quantized per token, once per projection where possible
  /// (perRowOnce).
  QuantizedX quantizeInput(OpBuilder &b, Location loc, Value x, WeightCode code,
                           int64_t lanes) const {
    QuantizedX shape;
    SmallVector<Value> flat =
        perRowOnce(b, loc, x, [&](OpBuilder &qb, Location ql, Value src) {
          QuantizedX q = quantize(qb, ql, src, code, lanes);
          shape = q;
          SmallVector<Value> vs = {q.scale};
          vs.append(q.bytes.begin(), q.bytes.end());
          vs.push_back(q.cum);
          for (auto *list : {&q.even, &q.odd, &q.corr})
            vs.append(list->begin(), list->end());
          return vs;
        });
    QuantizedX out = shape;
    size_t k = 0;
    out.scale = flat[k++];
    for (Value &v : out.bytes)
      v = flat[k++];
    out.cum = flat[k++];
    for (auto *list : {&out.even, &out.odd, &out.corr})
      for (Value &v : *list)
        v = flat[k++];
    return out;
  }

  /// Quantizes x [B, T, I] per token (QuantizedX): scale = absmax / k
  /// (k = 32512, or 127 for vnni8), q = round(x / scale), each token in two
  /// passes over its row. A row of
  /// zeros gets scale 0 and q = 0; a NaN or infinite x gives a non-finite
  /// scale, so the outputs are not finite either, as in f32.
  QuantizedX quantize(OpBuilder &b, Location loc, Value x, WeightCode code,
                      int64_t lanes) const {
    bool int4 = code == WeightCode::Int4, int8g = code == WeightCode::Int8Group;
    int64_t vl = lanes, step = int4 ? 8 * vl : 4 * vl;
    auto xType = cast<RankedTensorType>(x.getType());
    int64_t nI = xType.getDimSize(2);
    SmallVector<Value> dyn;
    for (int64_t d = 0; d < 2; ++d)
      if (xType.isDynamicDim(d))
        dyn.push_back(tensor::DimOp::create(b, loc, x, d));
    auto empty = [&](std::optional<int64_t> tail, Type elt) -> Value {
      SmallVector<int64_t> shape = {xType.getDimSize(0), xType.getDimSize(1)};
      if (tail)
        shape.push_back(*tail);
      return tensor::EmptyOp::create(b, loc, shape, elt, dyn);
    };
    Type i8 = b.getI8Type(), i32 = b.getI32Type(), f32 = b.getF32Type();
    // Iteration results: scale, then per part its bytes (int8) or its even
    // and odd elements (int4), then `cum` (int8, row scales) or per part
    // its lane corrections (grouped int8, int4).
    int64_t nP = intDot == "vnni8" ? 1 : 2;
    SmallVector<Value> inits = {empty(std::nullopt, f32)};
    for (int64_t k = 0; k < nP; ++k) {
      if (int4)
        inits.append({empty(nI / 2, i8), empty(nI / 2, i8)});
      else
        inits.push_back(empty(nI, i8));
    }
    if (int4 || int8g) {
      for (int64_t k = 0; k < nP; ++k)
        inits.push_back(empty(nI / (int4 ? 8 : 4), i32));
    } else {
      inits.push_back(empty(nI / step + 1, i32));
    }
    int64_t numOut = inits.size() - 1;
    int64_t perPart = int4 ? 2 : 1;
    float k = nP == 1 ? 127.0f : 32512.0f;
    auto f32Vec = VectorType::get({vl}, f32);
    auto stepF32 = VectorType::get({step}, f32);
    auto stepI32 = VectorType::get({step}, i32);
    auto splatI = [&](OpBuilder &bb, Location l, VectorType t, int64_t v) {
      return arith::ConstantOp::create(
          bb, l,
          DenseElementsAttr::get(t, bb.getIntegerAttr(t.getElementType(), v)));
    };
    auto splatF = [&](OpBuilder &bb, Location l, VectorType t, float v) {
      return arith::ConstantOp::create(
          bb, l, DenseElementsAttr::get(t, bb.getF32FloatAttr(v)));
    };
    // `factor` times the sums of each 2^rounds consecutive elements of `v`
    // (one vpdpbusd lane: 8 int4 or 4 int8 weights), by rounds of pairwise
    // sums: the correction that starts the lane.
    auto laneCorrection = [&](OpBuilder &bb, Location l, Value v, int rounds,
                              int64_t factor) -> Value {
      for (int r = 0; r < rounds; ++r) {
        auto pair = vector::DeinterleaveOp::create(bb, l, v);
        v = arith::AddIOp::create(bb, l, pair.getRes1(), pair.getRes2());
      }
      return arith::MulIOp::create(
          bb, l, v, splatI(bb, l, cast<VectorType>(v.getType()), factor));
    };
    Value c0 = cst(b, loc, 0);
    auto perToken = [&](OpBuilder &tb, Location tl, Value ib, Value it,
                        ValueRange outs) -> SmallVector<Value> {
      Value pad = arith::ConstantOp::create(tb, tl, tb.getF32FloatAttr(0));
      // Pass 1: absmax.
      auto maxLoop = scf::ForOp::create(
          tb, tl, cst(tb, tl, 0), cst(tb, tl, nI), cst(tb, tl, vl),
          ValueRange{splatF(tb, tl, f32Vec, 0)},
          [&](OpBuilder &ib2, Location il, Value i, ValueRange m) {
            Value v = vector::TransferReadOp::create(ib2, il, f32Vec, x,
                                                     ValueRange{ib, it, i}, pad,
                                                     ArrayRef<bool>{true});
            Value a = math::AbsFOp::create(ib2, il, v);
            scf::YieldOp::create(
                ib2, il,
                ValueRange{arith::MaximumFOp::create(ib2, il, m[0], a)});
          });
      Value absmax = vector::ReductionOp::create(
          tb, tl, vector::CombiningKind::MAXIMUMF, maxLoop.getResult(0));
      Value kc = arith::ConstantOp::create(tb, tl, tb.getF32FloatAttr(k));
      Value zeroF = arith::ConstantOp::create(tb, tl, tb.getF32FloatAttr(0));
      Value scale = arith::DivFOp::create(tb, tl, absmax, kc);
      Value positive = arith::CmpFOp::create(tb, tl, arith::CmpFPredicate::OGT,
                                             absmax, zeroF);
      Value inv = arith::SelectOp::create(
          tb, tl, positive, arith::DivFOp::create(tb, tl, kc, absmax), zeroF);
      SmallVector<Value> res(outs.begin(), outs.end());
      res[0] =
          tensor::InsertOp::create(tb, tl, scale, res[0], ValueRange{ib, it});
      Value zeroI = arith::ConstantOp::create(tb, tl, tb.getI32IntegerAttr(0));
      if (code == WeightCode::Int8Row)
        res[1 + nP] = tensor::InsertOp::create(tb, tl, zeroI, res[1 + nP],
                                               ValueRange{ib, it, c0});
      // Pass 2: q, stored in the layout the dot products read.
      SmallVector<Value> iterInit(res.begin() + 1, res.end());
      iterInit.push_back(zeroI);
      auto qLoop = scf::ForOp::create(
          tb, tl, cst(tb, tl, 0), cst(tb, tl, nI), cst(tb, tl, step), iterInit,
          [&](OpBuilder &ib2, Location il, Value i, ValueRange st) {
            Value v = vector::TransferReadOp::create(ib2, il, stepF32, x,
                                                     ValueRange{ib, it, i}, pad,
                                                     ArrayRef<bool>{true});
            Value y = arith::MulFOp::create(
                ib2, il, v, vector::BroadcastOp::create(ib2, il, stepF32, inv));
            // Clamping also maps NaN to a bound, so that the conversion
            // below is always defined.
            y = arith::MinNumFOp::create(ib2, il, y,
                                         splatF(ib2, il, stepF32, k));
            y = arith::MaxNumFOp::create(ib2, il, y,
                                         splatF(ib2, il, stepF32, -k));
            Value q = arith::FPToSIOp::create(
                ib2, il, stepI32, math::RoundEvenOp::create(ib2, il, y));
            auto write = [&](Value v, Value into, Value idx) {
              auto vt = cast<VectorType>(v.getType());
              if (vt.getElementType() !=
                  cast<RankedTensorType>(into.getType()).getElementType())
                v = arith::TruncIOp::create(ib2, il, vt.clone(i8), v);
              return vector::TransferWriteOp::create(ib2, il, v, into,
                                                     ValueRange{ib, it, idx},
                                                     ArrayRef<bool>{true})
                  .getResult();
            };
            SmallVector<Value> next(st.begin(), st.end());
            // q = 256 * hi + lo with hi = (q + 128) >> 8, both in
            // [-128, 127] since |q| <= 32512; or q itself.
            SmallVector<Value, 2> parts = {q};
            if (nP == 2) {
              Value hi = arith::ShRSIOp::create(
                  ib2, il,
                  arith::AddIOp::create(ib2, il, q,
                                        splatI(ib2, il, stepI32, 128)),
                  splatI(ib2, il, stepI32, 8));
              Value lo = arith::SubIOp::create(
                  ib2, il, q,
                  arith::ShLIOp::create(ib2, il, hi,
                                        splatI(ib2, il, stepI32, 8)));
              parts = {hi, lo};
            }
            for (int64_t k = 0; k < nP; ++k) {
              Value part = parts[k];
              if (int4) {
                // Even and odd elements, then the sums of 8 consecutive
                // ones by three rounds of pairwise sums.
                Value half =
                    arith::DivUIOp::create(ib2, il, i, cst(ib2, il, 2));
                Value lane =
                    arith::DivUIOp::create(ib2, il, i, cst(ib2, il, 8));
                auto split = vector::DeinterleaveOp::create(ib2, il, part);
                next[2 * k] = write(split.getRes1(), next[2 * k], half);
                next[2 * k + 1] = write(split.getRes2(), next[2 * k + 1], half);
                next[2 * nP + k] = write(laneCorrection(ib2, il, part, 3, -8),
                                         next[2 * nP + k], lane);
                continue;
              }
              next[k] = write(part, next[k], i);
              if (int8g) {
                // -128 (the weights' offset) times the sums of 4
                // consecutive elements.
                Value lane =
                    arith::DivUIOp::create(ib2, il, i, cst(ib2, il, 4));
                next[nP + k] = write(laneCorrection(ib2, il, part, 2, -128),
                                     next[nP + k], lane);
              }
            }
            if (code == WeightCode::Int8Row) {
              next[nP + 1] = arith::AddIOp::create(
                  ib2, il, next[nP + 1],
                  vector::ReductionOp::create(ib2, il,
                                              vector::CombiningKind::ADD, q));
              Value at = arith::AddIOp::create(
                  ib2, il,
                  arith::DivUIOp::create(ib2, il, i, cst(ib2, il, step)),
                  cst(ib2, il, 1));
              next[nP] = tensor::InsertOp::create(
                  ib2, il, next[nP + 1], next[nP], ValueRange{ib, it, at});
            }
            scf::YieldOp::create(ib2, il, next);
          });
      for (int64_t r = 0; r < numOut; ++r)
        res[r + 1] = qLoop.getResult(r);
      return res;
    };
    SmallVector<Value> r = loopBT(b, loc, x, inits, perToken);
    QuantizedX q;
    q.lanes = lanes;
    q.scale = r[0];
    for (int64_t k = 0; k < nP; ++k) {
      if (int4) {
        q.even.push_back(r[1 + 2 * k]);
        q.odd.push_back(r[2 + 2 * k]);
      } else {
        q.bytes.push_back(r[1 + k]);
      }
      if (int4 || int8g)
        q.corr.push_back(r[1 + perPart * nP + k]);
    }
    if (code == WeightCode::Int8Row)
      q.cum = r[1 + nP];
    return q;
  }

  /// The group scales of one vpdpbusd step of weight row `row` from input
  /// `i` (8·vl int4 or 4·vl int8 weights), as one f32 per lane: a lane sums
  /// 8 (4) consecutive weights, so with groups smaller than the step each
  /// scale repeats over group / 8 (4) lanes.
  Value groupScaleVector(OpBuilder &b, Location loc, const Projection &p,
                         Value row, Value i) const {
    int64_t vl = p.qx.lanes, n = (p.int4 ? 8 : 4) * vl / p.group;
    Value g = arith::DivUIOp::create(b, loc, i, cst(b, loc, p.group));
    if (n <= 1)
      return loadGroupScale(b, loc, p, row, g);
    Type elt = cast<RankedTensorType>(p.groupScale.getType()).getElementType();
    Value pad = arith::ConstantOp::create(b, loc, b.getZeroAttr(elt));
    Value s = vector::TransferReadOp::create(b, loc, VectorType::get({n}, elt),
                                             p.groupScale, ValueRange{row, g},
                                             pad, ArrayRef<bool>{true});
    if (!elt.isF32())
      s = arith::ExtFOp::create(b, loc, VectorType::get({n}, b.getF32Type()),
                                s);
    SmallVector<int64_t> mask;
    for (int64_t l = 0; l < vl; ++l)
      mask.push_back(l * n / vl);
    return vector::ShuffleOp::create(b, loc, s, s, mask);
  }

  /// One register block of an int8 or packed int4 projection on integer
  /// dot products (int-dot=vnni): as emitOutMajorBlock, with the weight
  /// bytes as loaded (no widening) and x as the bytes of QuantizedX.
  ///  * int8: vpdpbusd wants one unsigned operand; the weights are made
  ///    unsigned (w + 128 = w xor 0x80, once per weight vector for every
  ///    token), which adds 128 * sum(q) to the dot product: subtracted
  ///    per output from the prefix sums. Each (token, row) has an i32
  ///    accumulator for hi and one for lo; the sum is 256 * hi + lo.
  ///  * int4: the nibbles made unsigned (q + 8 = nibble xor 8: one xor for
  ///    both nibbles, an and for the low ones, a shift for the high ones)
  ///    meet x's even and odd bytes; the i32 lanes of a step start from
  ///    `corr` (-8 * the lane's x sum), are converted once and scaled by
  ///    their group's scale into the f32 accumulator.
  ///  * grouped int8: the weights made unsigned as for int8 meet x's hi and
  ///    lo bytes; as for int4 the i32 lanes start from `corr` (-128 * the
  ///    lane's x sum), so each step's lanes are exact sums and are scaled
  ///    by their group's scale into the f32 accumulator.
  Value emitIntDotBlock(OpBuilder &b, Location loc, const Projection &p,
                        const ReductionStep &step, Value i0, int64_t len,
                        int64_t rows, ArrayRef<TokenPos> toks, Value o0,
                        Value acc) const {
    int64_t vl = p.qx.lanes, tokens = toks.size();
    bool int4 = step.vnni4, int8g = step.vnni8g;
    auto bytes = VectorType::get({4 * vl}, b.getI8Type());
    auto i32Vec = VectorType::get({vl}, b.getI32Type());
    auto f32Vec = VectorType::get({vl}, b.getF32Type());
    auto splat8 = [&](OpBuilder &bb, Location l, int8_t v) {
      return arith::ConstantOp::create(
          bb, l, DenseElementsAttr::get(bytes, bb.getI8IntegerAttr(v)));
    };
    SmallVector<Value> rowIdx;
    for (int64_t r = 0; r < rows; ++r)
      rowIdx.push_back(
          r == 0
              ? o0
              : arith::AddIOp::create(b, loc, o0, cst(b, loc, r)).getResult());
    // Accumulators per (token, row): int8 one i32 vector per part of q;
    // int4 and grouped int8 one f32 vector.
    int64_t nP = p.qx.parts();
    int64_t perPair = int4 || int8g ? 1 : nP;
    Value zero = arith::ConstantOp::create(
        b, loc, b.getZeroAttr(int4 || int8g ? f32Vec : i32Vec));
    SmallVector<Value> inits(tokens * rows * perPair, zero);
    // The loop steps over weight bytes (int4: half the inputs), so that the
    // weight reads are indexed by the induction variable
    // (rwkv-prefetch-weight-rows looks for that).
    Value lb = i0, ub = arith::AddIOp::create(b, loc, i0, cst(b, loc, len));
    if (int4) {
      lb = arith::DivUIOp::create(b, loc, lb, cst(b, loc, 2));
      ub = arith::DivUIOp::create(b, loc, ub, cst(b, loc, 2));
    }
    Value c256 = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(f32Vec, b.getF32FloatAttr(256)));
    Value pad8 = arith::ConstantOp::create(b, loc, b.getI8IntegerAttr(0));
    Value pad32 = arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(0));
    auto read = [&](OpBuilder &bb, Location l, VectorType t, Value from,
                    ValueRange idx) -> Value {
      return vector::TransferReadOp::create(
          bb, l, t, from, idx, t.getElementType().isInteger(8) ? pad8 : pad32,
          ArrayRef<bool>{true});
    };
    auto forI = scf::ForOp::create(
        b, loc, lb, ub, cst(b, loc, 4 * vl), inits,
        [&](OpBuilder &ib2, Location il, Value iv, ValueRange vacc) {
          SmallVector<Value> next(vacc.begin(), vacc.end());
          // Per token and part of q: the x bytes of this step (and the
          // corrections): int8 {bytes}; grouped int8 {bytes, corr}; int4
          // {even, odd, corr}.
          SmallVector<SmallVector<Value, 6>> xs;
          for (const TokenPos &tok : toks) {
            SmallVector<Value, 6> &x = xs.emplace_back();
            Value lane = int4 || int8g ? arith::DivUIOp::create(ib2, il, iv,
                                                                cst(ib2, il, 4))
                                             .getResult()
                                       : Value();
            for (int64_t k = 0; k < nP; ++k) {
              if (int4) {
                x.append(
                    {read(ib2, il, bytes, p.qx.even[k], {tok.b, tok.t, iv}),
                     read(ib2, il, bytes, p.qx.odd[k], {tok.b, tok.t, iv}),
                     read(ib2, il, i32Vec, p.qx.corr[k],
                          {tok.b, tok.t, lane})});
              } else {
                x.push_back(
                    read(ib2, il, bytes, p.qx.bytes[k], {tok.b, tok.t, iv}));
                if (int8g)
                  x.push_back(read(ib2, il, i32Vec, p.qx.corr[k],
                                   {tok.b, tok.t, lane}));
              }
            }
          }
          // The step's lanes of each part, as f32, weighted 256^(parts - 1 -
          // k) and summed.
          auto combine = [&](OpBuilder &cb, Location cl, ArrayRef<Value> part) {
            Value f = part[0];
            for (size_t k = 1; k < part.size(); ++k)
              f = arith::AddFOp::create(
                  cb, cl, arith::MulFOp::create(cb, cl, f, c256, p.mulFlags),
                  part[k], p.addFlags);
            return f;
          };
          for (int64_t r = 0; r < rows; ++r) {
            Value w = read(ib2, il, bytes, p.w, {rowIdx[r], iv});
            if (int4) {
              Value flipped =
                  arith::XOrIOp::create(ib2, il, w, splat8(ib2, il, -120));
              Value low =
                  arith::AndIOp::create(ib2, il, flipped, splat8(ib2, il, 15));
              Value high =
                  arith::ShRUIOp::create(ib2, il, flipped, splat8(ib2, il, 4));
              Value i = arith::MulIOp::create(ib2, il, iv, cst(ib2, il, 2));
              Value sv = groupScaleVector(ib2, il, p, rowIdx[r], i);
              for (int64_t t = 0; t < tokens; ++t) {
                // The step's lanes of each part, from their corrections.
                SmallVector<Value, 2> part;
                for (int64_t k = 0; k < nP; ++k) {
                  Value d =
                      dpbusd(ib2, il, xs[t][3 * k + 2], low, xs[t][3 * k]);
                  d = dpbusd(ib2, il, d, high, xs[t][3 * k + 1]);
                  part.push_back(arith::SIToFPOp::create(ib2, il, f32Vec, d));
                }
                Value m = arith::MulFOp::create(ib2, il, combine(ib2, il, part),
                                                sv, p.mulFlags);
                Value &a = next[t * rows + r];
                a = arith::AddFOp::create(ib2, il, a, m, p.addFlags);
              }
              continue;
            }
            Value wu = arith::XOrIOp::create(ib2, il, w, splat8(ib2, il, -128));
            if (int8g) {
              Value sv = groupScaleVector(ib2, il, p, rowIdx[r], iv);
              for (int64_t t = 0; t < tokens; ++t) {
                SmallVector<Value, 2> part;
                for (int64_t k = 0; k < nP; ++k)
                  part.push_back(arith::SIToFPOp::create(
                      ib2, il, f32Vec,
                      dpbusd(ib2, il, xs[t][2 * k + 1], wu, xs[t][2 * k])));
                Value m = arith::MulFOp::create(ib2, il, combine(ib2, il, part),
                                                sv, p.mulFlags);
                Value &a = next[t * rows + r];
                a = arith::AddFOp::create(ib2, il, a, m, p.addFlags);
              }
              continue;
            }
            for (int64_t t = 0; t < tokens; ++t)
              for (int64_t k = 0; k < nP; ++k) {
                Value &a = next[(t * rows + r) * nP + k];
                a = dpbusd(ib2, il, a, wu, xs[t][k]);
              }
          }
          scf::YieldOp::create(ib2, il, next);
        });
    // Every accumulator's lanes summed at once (int8: exactly, in i32: a
    // part's sum is at most 255 * 128 per input).
    SmallVector<Value> sums =
        reduceJointly(b, loc, forI.getResults(), p.addFlags);
    for (int64_t t = 0; t < tokens; ++t) {
      SmallVector<Value> tokIdx = {toks[t].b, toks[t].t};
      Value xScale = tensor::ExtractOp::create(b, loc, p.qx.scale, tokIdx);
      // int8: 128 * sum(q) over this block's inputs, from the prefix sums.
      Value bias;
      if (!int4 && !int8g) {
        auto at = [&](Value i) {
          Value k = arith::DivUIOp::create(b, loc, i, cst(b, loc, step.size));
          return tensor::ExtractOp::create(b, loc, p.qx.cum,
                                           ValueRange{toks[t].b, toks[t].t, k});
        };
        Value sum = arith::SubIOp::create(b, loc, at(ub), at(lb));
        bias = arith::MulFOp::create(
            b, loc, arith::SIToFPOp::create(b, loc, b.getF32Type(), sum),
            arith::ConstantOp::create(b, loc, b.getF32FloatAttr(128)));
      }
      for (int64_t r = 0; r < rows; ++r) {
        Value sum;
        if (int4 || int8g) {
          sum = sums[t * rows + r];
        } else {
          for (int64_t k = 0; k < nP; ++k) {
            Value part = arith::SIToFPOp::create(b, loc, b.getF32Type(),
                                                 sums[(t * rows + r) * nP + k]);
            sum = k == 0 ? part
                         : arith::AddFOp::create(
                               b, loc,
                               arith::MulFOp::create(
                                   b, loc, sum,
                                   arith::ConstantOp::create(
                                       b, loc, b.getF32FloatAttr(256)),
                                   p.mulFlags),
                               part, p.addFlags);
          }
        }
        Value scale = xScale;
        if (!int4 && !int8g) {
          sum = arith::SubFOp::create(b, loc, sum, bias);
          Value ws = tensor::ExtractOp::create(b, loc, p.scale, rowIdx[r]);
          if (!ws.getType().isF32())
            ws = arith::ExtFOp::create(b, loc, b.getF32Type(), ws);
          scale = arith::MulFOp::create(b, loc, scale, ws);
        }
        SmallVector<Value> idx = {toks[t].b, toks[t].t, rowIdx[r]};
        Value init = tensor::ExtractOp::create(b, loc, acc, idx);
        Value m = arith::MulFOp::create(b, loc, sum, scale, p.mulFlags);
        Value s = arith::AddFOp::create(b, loc, init, m, p.addFlags);
        acc = tensor::InsertOp::create(b, loc, s, acc, idx);
      }
    }
    return acc;
  }

  /// The reduction chunk of a multi-token block: the block's weight rows
  /// (`rows` x chunk) must stay in L1 while every token block of the tile
  /// reads them, so long rows (the 3072-wide FFN value) are split into the
  /// largest chunk of at most 16 KiB that divides the row.
  int64_t reductionChunk(const Projection &p, const ReductionStep &step,
                         int64_t nI, int64_t rows) const {
    constexpr int64_t kWeightBytesInL1 = 16 * 1024;
    int64_t eltBits =
        p.int4 ? 4
               : cast<RankedTensorType>(p.w.getType()).getElementTypeBitWidth();
    int64_t limit = kWeightBytesInL1 * 8 / (rows * eltBits);
    if (nI <= limit)
      return nI;
    for (int64_t c = limit - limit % step.size; c >= step.size; c -= step.size)
      if (nI % c == 0)
        return c;
    return nI;
  }

  /// x [b, t, i] as `n` bf16 tensors for the vdpbf16ps steps: part k is
  /// bf16(x - parts before it). Each remainder is exact in f32, and three
  /// parts hold all 24 bits of x's significand (8 each), so with `n = 3`
  /// the sum of the parts is x and every product with a bf16 weight is
  /// exact: the dot products are as accurate as f32 FMAs. Once per
  /// projection where possible (perRowOnce), otherwise per tile, vl
  /// elements at a time: O(tokens · inputs) against the tile's
  /// O(tokens · inputs · rows) dot products.
  SmallVector<Value, 3> convertToBf16(OpBuilder &b, Location loc, Value x,
                                      int64_t n) const {
    int64_t vl = vectorWidth;
    auto xType = cast<RankedTensorType>(x.getType());
    auto bf16Type = xType.clone(b.getBF16Type());
    SmallVector<Value> dynSizes;
    for (int64_t d = 0; d < xType.getRank(); ++d)
      if (xType.isDynamicDim(d))
        dynSizes.push_back(tensor::DimOp::create(b, loc, x, d));
    SmallVector<Value> inits;
    for (int64_t k = 0; k < n; ++k)
      inits.push_back(tensor::EmptyOp::create(b, loc, bf16Type, dynSizes));
    Value c0 = cst(b, loc, 0);
    auto f32Vec = VectorType::get({vl}, b.getF32Type());
    auto bf16Vec = VectorType::get({vl}, b.getBF16Type());
    Value pad =
        arith::ConstantOp::create(b, loc, b.getZeroAttr(b.getF32Type()));
    SmallVector<Value> parts = loopBT(
        b, loc, x, inits,
        [&](OpBuilder &tb, Location tl, Value ib, Value it,
            ValueRange outT) -> SmallVector<Value> {
          auto forI = scf::ForOp::create(
              tb, tl, c0, tensor::DimOp::create(tb, tl, x, 2), cst(tb, tl, vl),
              outT, [&](OpBuilder &ib2, Location il, Value i, ValueRange out) {
                SmallVector<Value> idx = {ib, it, i};
                Value rest = vector::TransferReadOp::create(
                    ib2, il, f32Vec, x, idx, pad, ArrayRef<bool>{true});
                SmallVector<Value> next;
                for (int64_t k = 0; k < n; ++k) {
                  Value part = arith::TruncFOp::create(ib2, il, bf16Vec, rest);
                  next.push_back(
                      vector::TransferWriteOp::create(ib2, il, part, out[k],
                                                      idx, ArrayRef<bool>{true})
                          .getResult());
                  if (k + 1 < n)
                    rest = arith::SubFOp::create(
                        ib2, il, rest,
                        arith::ExtFOp::create(ib2, il, f32Vec, part));
                }
                scf::YieldOp::create(ib2, il, next);
              });
          return forI.getResults();
        });
    return SmallVector<Value, 3>(parts.begin(), parts.end());
  }

  /// W[o, i]: blocks of `rows` output rows; per row block, the tokens in
  /// blocks of `tokenBlock` (prefill: weights reused from registers across
  /// tokens, and from L1 across token blocks, one reduction chunk at a
  /// time), then the remaining tokens one at a time over the whole
  /// reduction (decode: every weight is read once, as one stream per row).
  Value rewriteOutMajor(OpBuilder &b, Location loc, const Projection &pIn,
                        int64_t nI) const {
    Projection p = pIn;
    if (bf16Dot != "off" && !p.group && !p.scale &&
        nI % (2 * vectorWidth) == 0 &&
        cast<RankedTensorType>(p.w.getType()).getElementType().isBF16())
      p.xParts = SmallVector<Value, 3>(
          perRowOnce(b, loc, p.x, [&](OpBuilder &xb, Location xl, Value src) {
            return SmallVector<Value>(
                convertToBf16(xb, xl, src, bf16Dot == "exact" ? 3 : 1));
          }));
    if (int64_t lanes = intDotLanes(p, nI))
      p.qx = quantizeInput(b, loc, p.x,
                           p.int4    ? WeightCode::Int4
                           : p.group ? WeightCode::Int8Group
                                     : WeightCode::Int8Row,
                           lanes);
    auto accType = cast<RankedTensorType>(p.acc.getType());
    int64_t nO = accType.getDimSize(2);
    int64_t rows = ShapedType::isDynamic(nO) ? 1 : std::gcd(nO, int64_t(4));
    // Integer dot products keep two accumulators per (token, row) (int8) or
    // unpack two nibble vectors per row (int4): blocks of 2 tokens fit the
    // 32 zmm registers, 4 would spill.
    // With 8-bit x (vnni8) int8 rows keep one: 4 tokens fit.
    bool oneIntAcc = p.qx.scale && p.qx.parts() == 1 && !p.int4 && !p.group;
    int64_t tb = tokenBlock > 0                                   ? tokenBlock
                 : vectorWidth < 16 || (p.qx.scale && !oneIntAcc) ? 2
                                                                  : 4;
    ReductionStep step = chooseStep(p, nI);
    int64_t nBStatic = accType.getDimSize(0);
    if (!ShapedType::isDynamic(nBStatic) && nBStatic > 1)
      return rewriteOutMajorBatched(b, loc, p, step, nI, rows,
                                    std::gcd(nBStatic, tb));
    int64_t chunk = reductionChunk(p, step, nI, rows);
    Value c0 = cst(b, loc, 0), c1 = cst(b, loc, 1);
    Value nB = tensor::DimOp::create(b, loc, p.acc, 0);
    auto forB = scf::ForOp::create(
        b, loc, c0, nB, c1, ValueRange{p.acc},
        [&](OpBuilder &bb, Location l, Value ib, ValueRange accB) {
          Value oEnd = tensor::DimOp::create(bb, l, accB[0], 2);
          Value nT = tensor::DimOp::create(bb, l, accB[0], 1);
          Value tbV = cst(bb, l, tb);
          Value nTMain = arith::SubIOp::create(
              bb, l, nT, arith::RemUIOp::create(bb, l, nT, tbV));
          auto forO = scf::ForOp::create(
              bb, l, c0, oEnd, cst(bb, l, rows), accB,
              [&](OpBuilder &ob, Location ol, Value io, ValueRange accO) {
                auto tokenLoop = [&](OpBuilder &lb, Value from, Value to,
                                     int64_t tokens, Value i0, int64_t len,
                                     Value acc) {
                  return scf::ForOp::create(
                             lb, ol, from, to, cst(lb, ol, tokens),
                             ValueRange{acc},
                             [&](OpBuilder &tb2, Location tl, Value it,
                                 ValueRange accT) {
                               scf::YieldOp::create(
                                   tb2, tl,
                                   emitOutMajorBlock(tb2, tl, p, step, i0, len,
                                                     rows, tokens, ib, it, io,
                                                     accT[0]));
                             })
                      .getResult(0);
                };
                Value acc = accO[0];
                if (tb > 1) {
                  // Partial sums of each chunk accumulate in `acc`.
                  acc = scf::ForOp::create(ob, ol, c0, cst(ob, ol, nI),
                                           cst(ob, ol, chunk), ValueRange{acc},
                                           [&](OpBuilder &kb, Location kl,
                                               Value i0, ValueRange accK) {
                                             scf::YieldOp::create(
                                                 kb, kl,
                                                 tokenLoop(kb, c0, nTMain, tb,
                                                           i0, chunk, accK[0]));
                                           })
                            .getResult(0);
                }
                acc = tokenLoop(ob, tb > 1 ? nTMain : c0, nT, 1, c0, nI, acc);
                scf::YieldOp::create(ob, ol, acc);
              });
          scf::YieldOp::create(bb, l, forO.getResult(0));
        });
    return forB.getResult(0);
  }

  /// W[o, i] over a tile of several batch rows (a --batch N library):
  /// register blocks of `rows` weight rows x one token of `bb` batch rows,
  /// so batched decode (one token per row) reads and widens each weight
  /// vector once for `bb` sequences instead of once per sequence. Longer
  /// sequences walk their tokens one at a time under the same blocks.
  Value rewriteOutMajorBatched(OpBuilder &b, Location loc, const Projection &p,
                               const ReductionStep &step, int64_t nI,
                               int64_t rows, int64_t bb) const {
    Value c0 = cst(b, loc, 0), c1 = cst(b, loc, 1);
    Value nB = tensor::DimOp::create(b, loc, p.acc, 0);
    Value nT = tensor::DimOp::create(b, loc, p.acc, 1);
    Value oEnd = tensor::DimOp::create(b, loc, p.acc, 2);
    auto forO = scf::ForOp::create(
        b, loc, c0, oEnd, cst(b, loc, rows), ValueRange{p.acc},
        [&](OpBuilder &ob, Location ol, Value io, ValueRange accO) {
          auto forB = scf::ForOp::create(
              ob, ol, c0, nB, cst(ob, ol, bb), accO,
              [&](OpBuilder &bb2, Location bl, Value ib, ValueRange accB) {
                auto forT = scf::ForOp::create(
                    bb2, bl, c0, nT, c1, accB,
                    [&](OpBuilder &tb2, Location tl, Value it,
                        ValueRange accT) {
                      SmallVector<TokenPos> toks;
                      for (int64_t k = 0; k < bb; ++k)
                        toks.push_back(
                            {k == 0 ? ib
                                    : arith::AddIOp::create(tb2, tl, ib,
                                                            cst(tb2, tl, k)),
                             it});
                      scf::YieldOp::create(tb2, tl,
                                           emitOutMajorBlock(tb2, tl, p, step,
                                                             c0, nI, rows, toks,
                                                             io, accT[0]));
                    });
                scf::YieldOp::create(bb2, bl, forT.getResult(0));
              });
          scf::YieldOp::create(ob, ol, forB.getResult(0));
        });
    return forO.getResult(0);
  }

  /// W[i, o]: `chunks` output vectors per step, outer-product form
  /// acc[k][c] += broadcast(x[b + k, t, i]) * W[i, o_c]. With a static batch
  /// (a --batch N library: the LoRA factors of a batched step) a block of
  /// up to 4 batch rows shares each weight vector, loaded and widened once.
  Value rewriteInMajor(OpBuilder &b, Location loc, const Projection &p,
                       int64_t nO, int64_t nI) const {
    int64_t chunks = (nO / vectorWidth) % 4 == 0   ? 4
                     : (nO / vectorWidth) % 2 == 0 ? 2
                                                   : 1;
    // At most 16 accumulators (rows x chunks); bb divides the batch.
    int64_t nBStatic = cast<RankedTensorType>(p.acc.getType()).getDimSize(0);
    int64_t bb = ShapedType::isDynamic(nBStatic)
                     ? 1
                     : std::min<int64_t>(std::gcd(nBStatic, 16 / chunks), 4);
    int64_t vl = vectorWidth;
    Type wElt = cast<RankedTensorType>(p.w.getType()).getElementType();
    auto xVec = VectorType::get({vl}, b.getF32Type());
    auto wVec = VectorType::get({vl}, wElt);
    Value c0 = cst(b, loc, 0), c1 = cst(b, loc, 1);
    Value nB = tensor::DimOp::create(b, loc, p.acc, 0);
    Value nT = tensor::DimOp::create(b, loc, p.acc, 1);
    auto forB = scf::ForOp::create(
        b, loc, c0, nB, cst(b, loc, bb), ValueRange{p.acc},
        [&](OpBuilder &bb2, Location bl, Value ib, ValueRange accB) {
          auto forT = scf::ForOp::create(
              bb2, bl, c0, nT, c1, accB,
              [&](OpBuilder &tb, Location tl, Value it, ValueRange accT) {
                SmallVector<Value> rows;
                for (int64_t k = 0; k < bb; ++k)
                  rows.push_back(
                      k == 0 ? ib
                             : arith::AddIOp::create(tb, tl, ib, cst(tb, tl, k))
                                   .getResult());
                auto forO = scf::ForOp::create(
                    tb, tl, c0, cst(tb, tl, nO), cst(tb, tl, vl * chunks), accT,
                    [&](OpBuilder &ob, Location ol, Value io, ValueRange accO) {
                      Value padX = arith::ConstantOp::create(
                          ob, ol, ob.getZeroAttr(ob.getF32Type()));
                      Value padW = arith::ConstantOp::create(
                          ob, ol, ob.getZeroAttr(wElt));
                      SmallVector<Value> oIdx, inits;
                      for (int64_t c = 0; c < chunks; ++c)
                        oIdx.push_back(
                            c == 0 ? io
                                   : arith::AddIOp::create(ob, ol, io,
                                                           cst(ob, ol, c * vl))
                                         .getResult());
                      for (int64_t k = 0; k < bb; ++k)
                        for (int64_t c = 0; c < chunks; ++c)
                          inits.push_back(vector::TransferReadOp::create(
                              ob, ol, xVec, accO[0],
                              ValueRange{rows[k], it, oIdx[c]}, padX,
                              ArrayRef<bool>{true}));
                      auto forI = scf::ForOp::create(
                          ob, ol, c0, cst(ob, ol, nI), c1, inits,
                          [&](OpBuilder &ib2, Location il, Value i,
                              ValueRange vacc) {
                            SmallVector<Value> xs, ws;
                            for (int64_t k = 0; k < bb; ++k) {
                              Value xk = tensor::ExtractOp::create(
                                  ib2, il, p.x, ValueRange{rows[k], it, i});
                              xs.push_back(vector::BroadcastOp::create(
                                  ib2, il, xVec, xk));
                            }
                            for (int64_t c = 0; c < chunks; ++c) {
                              Value w = vector::TransferReadOp::create(
                                  ib2, il, wVec, p.w, ValueRange{i, oIdx[c]},
                                  padW, ArrayRef<bool>{true});
                              ws.push_back(
                                  p.extendsWeight ? widenToF32(ib2, il, w) : w);
                            }
                            SmallVector<Value> next;
                            for (int64_t k = 0; k < bb; ++k)
                              for (int64_t c = 0; c < chunks; ++c) {
                                Value m = arith::MulFOp::create(
                                    ib2, il, xs[k], ws[c], p.mulFlags);
                                next.push_back(arith::AddFOp::create(
                                    ib2, il, vacc[k * chunks + c], m,
                                    p.addFlags));
                              }
                            scf::YieldOp::create(ib2, il, next);
                          });
                      Value out = accO[0];
                      for (int64_t k = 0; k < bb; ++k)
                        for (int64_t c = 0; c < chunks; ++c)
                          out = vector::TransferWriteOp::create(
                                    ob, ol, forI.getResult(k * chunks + c), out,
                                    ValueRange{rows[k], it, oIdx[c]},
                                    ArrayRef<bool>{true})
                                    .getResult();
                      scf::YieldOp::create(ob, ol, out);
                    });
                scf::YieldOp::create(tb, tl, forO.getResult(0));
              });
          scf::YieldOp::create(bb2, bl, forT.getResult(0));
        });
    return forB.getResult(0);
  }

  /// Returns the replacement of the projection, or null to leave it scalar.
  Value rewrite(OpBuilder &b, Location loc, const Projection &p) const {
    auto xType = cast<RankedTensorType>(p.x.getType());
    auto accType = cast<RankedTensorType>(p.acc.getType());
    int64_t nI = xType.getDimSize(2);
    int64_t vl = vectorWidth;
    if (vl <= 0 || ShapedType::isDynamic(nI))
      return {};
    // Packed int4: steps of 2·vl weights, each inside one scale group;
    // grouped int8: steps of at least vl weights, likewise.
    if (p.int4)
      return !intDotLanes(p, nI) && (nI % (2 * vl) || p.group % (2 * vl))
                 ? Value()
                 : rewriteOutMajor(b, loc, p, nI);
    if (p.group)
      return !intDotLanes(p, nI) && (nI % vl || p.group % vl)
                 ? Value()
                 : rewriteOutMajor(b, loc, p, nI);
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
