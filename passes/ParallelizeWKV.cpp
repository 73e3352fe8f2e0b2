//===- ParallelizeWKV.cpp - one WKV recurrence per (batch row, head) ------===//
//
// The WKV recurrence is sequential over tokens but independent across batch
// rows and heads. Lowered whole, one thread walks every [B, H, N, N] state
// token by token; the training backward (several state-sized products per
// token) then dominates a step, and a prefill forks threads for every token.
// This pass wraps each rwkv.wkv / rwkv.wkv_grad over T > 1 tokens in an
// scf.forall over (b, h) that runs the same op on one head's slices ([1, T, N]
// activations, [1, 1, N, N] states); the forall becomes an OpenMP loop, and
// each head's state stays in L1/L2. A dynamic T gets it behind scf.if T > 1.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

#define DEBUG_TYPE "rwkv-parallelize-wkv"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVPARALLELIZEWKVPASS
#include "passes/Passes.h.inc"

namespace {

/// Marks the whole op of the one-token branch of a dynamic T (not rewritten
/// again).
constexpr llvm::StringLiteral kOneTokenBranch = "rwkv.one_token_branch";

/// Rewrites a WKV-shaped op (activations [B, T, H*N], states [B, H, N, N];
/// both as operands and results) into an scf.forall over (b, h).
template <typename OpTy>
struct ParallelizeWKVPattern final : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;

  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    auto stateType = dyn_cast<RankedTensorType>(op.getState().getType());
    auto actType = dyn_cast<RankedTensorType>(op.getR().getType());
    if (!stateType || !actType || stateType.getRank() != 4 ||
        actType.getRank() != 3)
      return failure();
    int64_t batch = stateType.getDimSize(0), heads = stateType.getDimSize(1),
            headSize = stateType.getDimSize(2);
    if (ShapedType::isDynamic(batch) || ShapedType::isDynamic(heads) ||
        ShapedType::isDynamic(headSize))
      return rewriter.notifyMatchFailure(op, "dynamic batch or heads");
    // Already one head, or one token (decode: the fork would cost more than
    // the work), or the one-token branch built below.
    if (batch * heads == 1 || actType.getDimSize(1) == 1 ||
        op->hasAttr(kOneTokenBranch))
      return rewriter.notifyMatchFailure(op, "nothing to parallelize");
    if (!ShapedType::isDynamic(actType.getDimSize(1))) {
      rewriter.replaceOp(op, buildPerHead(rewriter, op, batch, heads, headSize,
                                          /*stateInPlace=*/false));
      return success();
    }
    // A dynamic T is an inference function that also decodes one token at a
    // time: there the per-head slices and their fresh result buffers (a state
    // copy per call) cost more than the whole recurrence (0.1B decode: 69 ->
    // 45 tokens/s). So the per-head form runs only for T > 1 (prefill, and
    // several tokens in one rwkv_step); one token keeps the whole op, which
    // updates the state in place.
    Location loc = op.getLoc();
    Value tokens = tensor::DimOp::create(rewriter, loc, op.getR(), 1);
    Value many = arith::CmpIOp::create(
        rewriter, loc, arith::CmpIPredicate::ugt, tokens,
        arith::ConstantIndexOp::create(rewriter, loc, 1));
    auto ifOp = scf::IfOp::create(rewriter, loc, op->getResultTypes(), many,
                                  /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPointToStart(ifOp.thenBlock());
      scf::ForallOp forall = buildPerHead(rewriter, op, batch, heads, headSize,
                                          /*stateInPlace=*/true);
      scf::YieldOp::create(rewriter, loc, forall.getResults());
      rewriter.setInsertionPointToStart(ifOp.elseBlock());
      Operation *whole = rewriter.clone(*op);
      whole->setAttr(kOneTokenBranch, rewriter.getUnitAttr());
      scf::YieldOp::create(rewriter, loc, whole->getResults());
    }
    rewriter.replaceOp(op, ifOp.getResults());
    return success();
  }

  /// The scf.forall over (b, h) running `op` on each head's slices. With
  /// `stateInPlace` (a forward op with one state result) the new state is
  /// inserted into the state operand: each head reads its slice of the old
  /// state from the forall's shared output and overwrites it, so the state
  /// bufferizes in place like the one-token branch's whole op. Both branches
  /// then yield the state argument's buffer, the function result is
  /// equivalent to that argument and is dropped, and a decoded token copies
  /// no state (0.1B, batch 8: two state copies of 1.5 MB per layer and step).
  static scf::ForallOp buildPerHead(PatternRewriter &rewriter, OpTy op,
                                    int64_t batch, int64_t heads,
                                    int64_t headSize, bool stateInPlace) {
    Location loc = op.getLoc();
    auto isState = [](Type t) {
      return cast<RankedTensorType>(t).getRank() == 4;
    };
    auto sliceType = [&](Type t) {
      auto rt = cast<RankedTensorType>(t);
      return isState(t) ? RankedTensorType::get({1, 1, headSize, headSize},
                                                rt.getElementType())
                        : RankedTensorType::get({1, rt.getDimSize(1), headSize},
                                                rt.getElementType());
    };
    // The slice of `v` (a full operand or result) that head (b, h) owns.
    auto sliceParams = [&](OpBuilder &b, Value v, Value bi, Value hi, Value col,
                           SmallVectorImpl<OpFoldResult> &offsets,
                           SmallVectorImpl<OpFoldResult> &sizes,
                           SmallVectorImpl<OpFoldResult> &strides) {
      OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
      OpFoldResult n = b.getIndexAttr(headSize);
      if (isState(v.getType())) {
        offsets.assign({bi, hi, zero, zero});
        sizes.assign({one, one, n, n});
        strides.assign(4, one);
        return;
      }
      offsets.assign({bi, zero, col});
      sizes.assign({one, tensor::getMixedSize(b, loc, v, 1), n});
      strides.assign(3, one);
    };

    // The result updated in place: the only state-shaped one, if asked.
    std::optional<unsigned> inPlace;
    if (stateInPlace && llvm::count_if(op->getResultTypes(), isState) == 1)
      inPlace = llvm::find_if(op->getResultTypes(), isState) -
                op->getResultTypes().begin();
    SmallVector<Value> inits;
    // Results are shaped like r (activations) or the state; sizes come
    // from those operands, not from the results being replaced.
    for (OpResult res : op->getResults()) {
      if (inPlace == res.getResultNumber()) {
        inits.push_back(op.getState());
        continue;
      }
      inits.push_back(tensor::EmptyOp::create(
          rewriter, loc,
          tensor::getMixedSizes(rewriter, loc,
                                isState(res.getType()) ? op.getState()
                                                       : op.getR()),
          cast<RankedTensorType>(res.getType()).getElementType()));
    }
    SmallVector<OpFoldResult> ubs = {rewriter.getIndexAttr(batch),
                                     rewriter.getIndexAttr(heads)};
    // Built without a body builder so that the op adds its own terminator.
    auto forall = scf::ForallOp::create(rewriter, loc, ubs, inits,
                                        /*mapping=*/std::nullopt);
    {
      OpBuilder::InsertionGuard guard(rewriter);
      Block *body = forall.getBody();
      rewriter.setInsertionPointToStart(body);
      Value bi = body->getArgument(0), hi = body->getArgument(1);
      Value col = arith::MulIOp::create(
          rewriter, loc, hi,
          arith::ConstantIndexOp::create(rewriter, loc, headSize));
      SmallVector<OpFoldResult> offsets, sizes, strides;
      SmallVector<Value> operands;
      for (Value v : op->getOperands()) {
        // The old state is read through the shared output it is updated in.
        if (inPlace && v == op.getState())
          v = forall.getRegionIterArgs()[*inPlace];
        sliceParams(rewriter, v, bi, hi, col, offsets, sizes, strides);
        operands.push_back(tensor::ExtractSliceOp::create(
            rewriter, loc, sliceType(v.getType()), v, offsets, sizes, strides));
      }
      SmallVector<Type> types;
      for (Type t : op->getResultTypes())
        types.push_back(sliceType(t));
      OperationState state(loc, op->getName(), operands, types, op->getAttrs());
      Operation *inner = rewriter.create(state);
      // The insert positions are computed in the body: the terminator
      // holds only the parallel inserts.
      SmallVector<SmallVector<OpFoldResult>> outOffsets, outSizes, outStrides;
      for (Value out : forall.getRegionIterArgs()) {
        sliceParams(rewriter, out, bi, hi, col, offsets, sizes, strides);
        outOffsets.push_back(offsets);
        outSizes.push_back(sizes);
        outStrides.push_back(strides);
      }
      rewriter.setInsertionPointToStart(forall.getTerminator().getBody());
      for (auto [i, res, out] :
           llvm::enumerate(inner->getResults(), forall.getRegionIterArgs()))
        tensor::ParallelInsertSliceOp::create(
            rewriter, loc, res, out, outOffsets[i], outSizes[i], outStrides[i]);
    }
    return forall;
  }
};

struct RWKVParallelizeWKVPass final
    : impl::RWKVParallelizeWKVPassBase<RWKVParallelizeWKVPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateParallelizeWKVPatterns(patterns);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

void populateParallelizeWKVPatterns(RewritePatternSet &patterns) {
  patterns.add<ParallelizeWKVPattern<WKVOp>, ParallelizeWKVPattern<WKVGradOp>>(
      patterns.getContext());
}

} // namespace mlir::rwkv
