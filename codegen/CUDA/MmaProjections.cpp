//===- MmaProjections.cpp - projections on the tensor cores ---------------===//
//
// A prefill or training projection multiplies T tokens by a bf16 weight.
// The generic mapping (rwkv-map-parallel-loops-to-gpu, then
// rwkv-warp-reductions) gives every output its own warp, which re-reads the
// weight row for every token from the caches and runs on the FMA units.
// Here each `linalg.generic {rwkv.projection}` with f32 activations, a bf16
// weight and f32 outputs becomes a tensor-core kernel: a warp owns a tile of
// 16 rows x 8 * NF outputs and steps through the inputs 16 at a time with
// `mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32` (../shared/docs/
// cuda-codegen.md §2.2: no upstream route above NVVM takes bf16, so this
// emits `nvvm.mma.sync` itself), fp32 accumulation.
//
// The tensor cores multiply bf16 by bf16, and the weights are bf16 already,
// but the activations are f32. Rounding them to bf16 costs about three
// decimal digits (the golden logits then miss float64 by ~0.03 instead of
// 1e-5). So x is split into bf16 pieces, each the rounded rest of the ones
// before (x - hi is exact in f32), one mma per piece, and every product of
// a piece and a weight is exact in the f32 accumulator:
//   activations=f32     hi + mid + lo: all 24 bits of x (the default; the
//                       f32 FMA path's numerics up to the summation order)
//   activations=bf16x2  hi + lo: 16 bits, two thirds of the mma
//   activations=bf16    hi: one mma, the numerics of the pip package's
//                       `cuda fp16` strategies
//
// The token count is a run-time value: the kernel runs when the projection
// has at least `min-rows` rows (rows = batch x tokens); decode steps keep
// the original op, which the generic mapping turns into a warp-per-output
// GEMV. Tiles past the last row load the last row again (valid memory; an
// mma row only feeds the same output row) and store nothing.
//
// Fragment layout (PTX ISA, mma.m16n8k16 .bf16), lane = 4 g + q, q2 = 2 q:
//   A (row-major 16 x 16): a0 = A[g][q2..+1], a1 = A[g+8][q2..+1],
//                          a2 = A[g][q2+8..+9], a3 = A[g+8][q2+8..+9]
//   B (col-major 16 x 8):  b0 = B[q2..+1][g], b1 = B[q2+8..+9][g]
//                          (= W[n + g][k + q2..+1] for a [out, in] weight)
//   C, D (16 x 8 f32):     c0, c1 = C[g][q2..+1], c2, c3 = C[g+8][q2..+1]
// each 32-bit register two bf16, the lower index in the low half.
//
//===----------------------------------------------------------------------===//

#include "codegen/CUDA/WarpUtils.h"
#include "codegen/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/StringSwitch.h"

#define DEBUG_TYPE "rwkv-mma-projections"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVMMAPROJECTIONSPASS
#include "codegen/Passes.h.inc"

namespace {

/// Warps per block; they take consecutive row tiles of the same output
/// columns, so the block's weight fragments are shared in L1.
constexpr int64_t kWarpsPerBlock = 4;

/// A projection out[rows..., n] += sum_k x[rows..., k] * W(n, k).
struct Projection {
  linalg::GenericOp op;
  Value x, w, out;
  /// W is [in, out] (the LoRA factors) rather than [out, in].
  bool wInOut = false;
  int64_t n = 0, k = 0;
};

bool isIdentityBuffer(Value v, Type elem) {
  auto t = dyn_cast<MemRefType>(v.getType());
  return t && t.getElementType() == elem && t.getLayout().isIdentity();
}

/// Whether the body is `out + x * extf(w)` (either operand order).
bool isBf16DotBody(linalg::GenericOp op) {
  Block &body = op.getRegion().front();
  Value xArg = body.getArgument(0), wArg = body.getArgument(1),
        outArg = body.getArgument(2);
  auto add = body.getTerminator()->getOperand(0).getDefiningOp<arith::AddFOp>();
  if (!add)
    return false;
  Value prod = add.getLhs() == outArg ? add.getRhs() : add.getLhs();
  if (add.getLhs() != outArg && add.getRhs() != outArg)
    return false;
  auto mul = prod.getDefiningOp<arith::MulFOp>();
  if (!mul)
    return false;
  Value wide = mul.getLhs() == xArg ? mul.getRhs() : mul.getLhs();
  if (mul.getLhs() != xArg && mul.getRhs() != xArg)
    return false;
  auto ext = wide.getDefiningOp<arith::ExtFOp>();
  return ext && ext.getIn() == wArg && body.getOperations().size() == 4;
}

std::optional<Projection> matchProjection(linalg::GenericOp op) {
  if (!op->hasAttr("rwkv.projection") || !op.hasPureBufferSemantics() ||
      op.getNumDpsInputs() != 2 || op.getNumDpsInits() != 1)
    return std::nullopt;
  Projection p{op, op.getDpsInputs()[0], op.getDpsInputs()[1],
               op.getDpsInits()[0]};
  MLIRContext *ctx = op.getContext();
  Type f32 = Float32Type::get(ctx), bf16 = BFloat16Type::get(ctx);
  if (!isIdentityBuffer(p.x, f32) || !isIdentityBuffer(p.w, bf16) ||
      !isIdentityBuffer(p.out, f32) || !isBf16DotBody(op))
    return std::nullopt;
  // Loops (rows..., n, k): the leading ones parallel, n parallel, k a
  // reduction; x = (rows..., k), out = (rows..., n), W = (n, k) or (k, n).
  unsigned loops = op.getNumLoops();
  auto its = op.getIteratorTypesArray();
  if (loops < 3 || its.back() != utils::IteratorType::reduction)
    return std::nullopt;
  for (unsigned i = 0; i + 1 < loops; ++i)
    if (its[i] != utils::IteratorType::parallel)
      return std::nullopt;
  unsigned nDim = loops - 2, kDim = loops - 1;
  SmallVector<AffineExpr> rowsK, rowsN;
  for (unsigned i = 0; i < nDim; ++i) {
    rowsK.push_back(getAffineDimExpr(i, ctx));
    rowsN.push_back(getAffineDimExpr(i, ctx));
  }
  rowsK.push_back(getAffineDimExpr(kDim, ctx));
  rowsN.push_back(getAffineDimExpr(nDim, ctx));
  auto maps = op.getIndexingMapsArray();
  auto map = [&](ArrayRef<AffineExpr> r) {
    return AffineMap::get(loops, 0, r, ctx);
  };
  AffineExpr n = getAffineDimExpr(nDim, ctx), k = getAffineDimExpr(kDim, ctx);
  if (maps[0] != map(rowsK) || maps[2] != map(rowsN))
    return std::nullopt;
  if (maps[1] == map({k, n}))
    p.wInOut = true;
  else if (maps[1] != map({n, k}))
    return std::nullopt;
  auto wType = cast<MemRefType>(p.w.getType());
  if (!wType.hasStaticShape())
    return std::nullopt;
  p.n = wType.getDimSize(p.wInOut ? 1 : 0);
  p.k = wType.getDimSize(p.wInOut ? 0 : 1);
  // Whole fragments only (every projection of an RWKV model qualifies).
  if (p.n % 8 || p.k % 16)
    return std::nullopt;
  return p;
}

/// Builds the kernel body of `p` (see the file comment) at `b`.
class KernelBuilder {
public:
  KernelBuilder(OpBuilder &b, Location loc, const Projection &p, Value rows,
                int64_t nFrags, int64_t pieces)
      : b(b), loc(loc), p(p), rows(rows), nFrags(nFrags), pieces(pieces) {}

  void build(gpu::LaunchOp launch) {
    Value tid = launch.getThreadIds().x;
    Value warp = arith::DivUIOp::create(b, loc, tid, idx(kWarpSize));
    Value lane = arith::RemUIOp::create(b, loc, tid, idx(kWarpSize));
    g = arith::DivUIOp::create(b, loc, lane, idx(4));
    q2 = arith::MulIOp::create(
        b, loc, arith::RemUIOp::create(b, loc, lane, idx(4)), idx(2));
    Value tile = arith::AddIOp::create(
        b, loc,
        arith::MulIOp::create(b, loc, launch.getBlockIds().y,
                              idx(kWarpsPerBlock)),
        warp);
    Value m0 = arith::MulIOp::create(b, loc, tile, idx(16));
    n0 = arith::MulIOp::create(b, loc, launch.getBlockIds().x, idx(8 * nFrags));
    // Warps past the last row have nothing to do (uniform per warp).
    Value live =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, m0, rows);
    auto ifLive = scf::IfOp::create(b, loc, live, /*withElse=*/false);
    b.setInsertionPointToStart(ifLive.thenBlock());
    Value r0 = arith::AddIOp::create(b, loc, m0, g);
    Value r1 = arith::AddIOp::create(b, loc, r0, idx(8));
    Value last = arith::SubIOp::create(b, loc, rows, idx(1));
    SmallVector<Value> xRow0 =
        rowIndices(arith::MinUIOp::create(b, loc, r0, last));
    SmallVector<Value> xRow1 =
        rowIndices(arith::MinUIOp::create(b, loc, r1, last));

    // The accumulators start from the output (linalg's init).
    SmallVector<Value> init;
    for (int64_t j = 0; j < nFrags; ++j)
      for (auto *row : {&xRow0, &xRow1}) {
        Value v = load(p.out, *row, col(j, q2), 2, b.getF32Type());
        for (int64_t e = 0; e < 2; ++e)
          init.push_back(vector::ExtractOp::create(b, loc, v, e));
      }
    auto loop = scf::ForOp::create(
        b, loc, idx(0), idx(p.k), idx(16), init,
        [&](OpBuilder &nested, Location, Value k0, ValueRange acc) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(nested.getInsertionBlock(),
                              nested.getInsertionPoint());
          step(k0, acc, xRow0, xRow1);
        });
    // Stores of the rows that exist.
    for (auto [rowIdx, row] : {std::pair{0, r0}, {1, r1}}) {
      Value inRange =
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, row, rows);
      auto ifStore = scf::IfOp::create(b, loc, inRange, /*withElse=*/false);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(ifStore.thenBlock());
      SmallVector<Value> outRow = rowIndices(row);
      for (int64_t j = 0; j < nFrags; ++j) {
        Value lo = loop.getResult(j * 4 + rowIdx * 2),
              hi = loop.getResult(j * 4 + rowIdx * 2 + 1);
        Value v = vector::FromElementsOp::create(
            b, loc, VectorType::get({2}, b.getF32Type()), ValueRange{lo, hi});
        SmallVector<Value> indices = outRow;
        indices.push_back(col(j, q2));
        vector::StoreOp::create(b, loc, v, p.out, indices, false,
                                llvm::MaybeAlign(8));
      }
    }
  }

private:
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }

  /// Output column `n0 + 8 j + off`.
  Value col(int64_t j, Value off) {
    return arith::AddIOp::create(
        b, loc, arith::AddIOp::create(b, loc, n0, idx(8 * j)), off);
  }

  /// The leading indices of flat row `r` (row-major over x's leading dims).
  SmallVector<Value> rowIndices(Value r) {
    auto xType = cast<MemRefType>(p.x.getType());
    int64_t lead = xType.getRank() - 1;
    SmallVector<Value> ids(lead);
    for (int64_t d = lead - 1; d >= 0; --d) {
      if (xType.getDimSize(d) == 1) {
        ids[d] = idx(0);
        continue;
      }
      if (d == 0) {
        ids[d] = r;
        break;
      }
      Value size = memref::DimOp::create(b, loc, p.x, d);
      ids[d] = arith::RemUIOp::create(b, loc, r, size);
      r = arith::DivUIOp::create(b, loc, r, size);
    }
    return ids;
  }

  /// A `width`-element vector of `buf` at `lead` + [last].
  Value load(Value buf, ArrayRef<Value> lead, Value last, int64_t width,
             Type elem) {
    SmallVector<Value> indices(lead);
    indices.push_back(last);
    return vector::LoadOp::create(
        b, loc, VectorType::get({width}, elem), buf, indices, false,
        llvm::MaybeAlign(width * elem.getIntOrFloatBitWidth() / 8));
  }

  /// Two bf16 as the i32 register mma.sync takes.
  Value pack(Value pair) {
    Value v = vector::BitCastOp::create(
        b, loc, VectorType::get({1}, b.getI32Type()), pair);
    return vector::ExtractOp::create(b, loc, v, 0);
  }

  /// One k step of 16: the A fragments (hi and lo), then per output
  /// fragment its B fragment and the mma.
  void step(Value k0, ValueRange acc, ArrayRef<Value> xRow0,
            ArrayRef<Value> xRow1) {
    auto pairBf16 = VectorType::get({2}, b.getBF16Type());
    Value kA = arith::AddIOp::create(b, loc, k0, q2);
    Value kB = arith::AddIOp::create(b, loc, kA, idx(8));
    // piece[i] = the A fragments of the i-th bf16 piece of x.
    SmallVector<SmallVector<Value>> piece(pieces);
    for (auto [row, kk] :
         {std::pair{xRow0, kA}, {xRow1, kA}, {xRow0, kB}, {xRow1, kB}}) {
      Value rest = load(p.x, row, kk, 2, b.getF32Type());
      for (int64_t i = 0; i < pieces; ++i) {
        Value h = arith::TruncFOp::create(b, loc, pairBf16, rest);
        piece[i].push_back(pack(h));
        if (i + 1 < pieces)
          rest = arith::SubFOp::create(
              b, loc, rest,
              arith::ExtFOp::create(b, loc, rest.getType(), h).getResult());
      }
    }
    Value wRow = arith::AddIOp::create(b, loc, n0, g);
    SmallVector<Value> next;
    auto structType = LLVM::LLVMStructType::getLiteral(
        b.getContext(), SmallVector<Type>(4, b.getF32Type()));
    for (int64_t j = 0; j < nFrags; ++j) {
      Value n = arith::AddIOp::create(b, loc, wRow, idx(8 * j));
      SmallVector<Value> bRegs;
      for (Value kk : {kA, kB}) {
        Value pair;
        if (!p.wInOut) {
          pair = load(p.w, n, kk, 2, b.getBF16Type());
        } else {
          // [in, out]: the pair lies in two rows (the small LoRA factors).
          Value e0 = memref::LoadOp::create(b, loc, p.w, ValueRange{kk, n});
          Value e1 = memref::LoadOp::create(
              b, loc, p.w,
              ValueRange{arith::AddIOp::create(b, loc, kk, idx(1)), n});
          pair = vector::FromElementsOp::create(b, loc, pairBf16,
                                                ValueRange{e0, e1});
        }
        bRegs.push_back(pack(pair));
      }
      SmallVector<Value> c(acc.begin() + j * 4, acc.begin() + j * 4 + 4);
      // The smallest piece first: it is added to the accumulator before
      // the large ones can swamp it.
      for (ArrayRef<Value> a : llvm::reverse(piece)) {
        Value d = NVVM::MmaOp::create(
            b, loc, structType, a, bRegs, c, ArrayRef<int64_t>{16, 8, 16},
            std::nullopt, std::nullopt,
            std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16,
                                          NVVM::MMATypes::bf16},
            std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                           NVVM::MMALayout::col});
        for (int64_t e = 0; e < 4; ++e)
          c[e] = LLVM::ExtractValueOp::create(b, loc, d, e);
      }
      next.append(c);
    }
    scf::YieldOp::create(b, loc, next);
  }

  OpBuilder &b;
  Location loc;
  const Projection &p;
  Value rows, g, q2, n0;
  int64_t nFrags;
  int64_t pieces;
};

/// Replaces `p.op` by `scf.if rows >= minRows { mma kernel } else { op }`.
void rewrite(const Projection &p, int64_t minRows, int64_t pieces) {
  linalg::GenericOp op = p.op;
  OpBuilder b(op);
  Location loc = op.getLoc();
  auto idx = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  // rows = the product of x's leading dims.
  auto xType = cast<MemRefType>(p.x.getType());
  Value rows = idx(1);
  for (int64_t d = 0; d + 1 < xType.getRank(); ++d)
    rows = arith::MulIOp::create(
        b, loc, rows,
        xType.isDynamicDim(d)
            ? memref::DimOp::create(b, loc, p.x, d).getResult()
            : idx(xType.getDimSize(d)));
  Value big = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::uge, rows,
                                    idx(minRows));
  auto ifBig = scf::IfOp::create(b, loc, big, /*withElse=*/true);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifBig.elseBlock());
    b.clone(*op);
  }
  b.setInsertionPointToStart(ifBig.thenBlock());
  // Output fragments per warp: as many as divide the width, up to 4 (the
  // A fragments are reused across them).
  int64_t nFrags = (p.n / 8) % 4 == 0 ? 4 : (p.n / 8) % 2 == 0 ? 2 : 1;
  Value gridX = idx(p.n / (8 * nFrags));
  Value gridY =
      arith::CeilDivUIOp::create(b, loc, rows, idx(16 * kWarpsPerBlock));
  Value one = idx(1);
  auto launch = gpu::LaunchOp::create(
      b, loc, gridX, gridY, one, idx(kWarpSize * kWarpsPerBlock), one, one);
  b.setInsertionPointToStart(&launch.getBody().front());
  KernelBuilder(b, loc, p, rows, nFrags, pieces).build(launch);
  b.setInsertionPointToEnd(&launch.getBody().front());
  gpu::TerminatorOp::create(b, loc);
  op.erase();
}

struct RWKVMmaProjectionsPass final
    : impl::RWKVMmaProjectionsPassBase<RWKVMmaProjectionsPass> {
  using Base::Base;

  void runOnOperation() override {
    int64_t pieces = llvm::StringSwitch<int64_t>(activations)
                         .Case("f32", 3)
                         .Case("bf16x2", 2)
                         .Case("bf16", 1)
                         .Default(0);
    if (!pieces) {
      getOperation().emitError() << "rwkv-mma-projections: activations must "
                                    "be f32, bf16x2 or bf16, got '"
                                 << activations << "'";
      return signalPassFailure();
    }
    if (minRows < 1) {
      getOperation().emitError()
          << "rwkv-mma-projections: min-rows must be at least 1, got "
          << minRows;
      return signalPassFailure();
    }
    SmallVector<Projection> found;
    getOperation().walk([&](linalg::GenericOp op) {
      if (op->getParentOfType<gpu::LaunchOp>())
        return;
      if (std::optional<Projection> p = matchProjection(op))
        found.push_back(*p);
    });
    for (const Projection &p : found)
      rewrite(p, minRows, pieces);
  }
};

} // namespace
} // namespace mlir::rwkv
