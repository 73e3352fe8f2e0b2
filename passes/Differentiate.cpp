//===- Differentiate.cpp - reverse-mode differentiation of rwkv functions -===//
//
// For every function tagged `rwkv.gradient = "<name>"` whose first result is
// a scalar loss, builds `<name>`: the same forward followed by its adjoint,
// returning the loss and the gradient of every floating-point argument.
// rwkv ops bring their rule through DifferentiableOpInterface; element-wise
// and sum-reduction linalg.generics (the bodies rwkv-decompose emits) share
// one rule that differentiates the scalar body; reshapes pass gradients
// through.
//
//===----------------------------------------------------------------------===//

#include "dialect/IRUtils.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/SetVector.h"

#define DEBUG_TYPE "rwkv-differentiate"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVDIFFERENTIATEPASS
#include "passes/Passes.h.inc"

namespace {

bool isFloatTensor(Value v) {
  auto t = llvm::dyn_cast<RankedTensorType>(v.getType());
  return t && llvm::isa<FloatType>(t.getElementType());
}

RankedTensorType f32TypeOf(Value v) {
  auto t = llvm::cast<RankedTensorType>(v.getType());
  return RankedTensorType::get(t.getShape(), Float32Type::get(v.getContext()));
}

//===----------------------------------------------------------------------===//
// Scalar bodies
//===----------------------------------------------------------------------===//

/// Reverse mode over the arith/math ops of a generic's body, already cloned
/// into the builder's block. `grads` maps a body value to its adjoint.
LogicalResult differentiateScalars(OpBuilder &b, ArrayRef<Operation *> ops,
                                   DenseMap<Value, Value> &grads) {
  auto add = [&](Value v, Value g) {
    if (!g)
      return;
    auto it = grads.find(v);
    if (it == grads.end())
      grads[v] = g;
    else
      it->second = arith::AddFOp::create(b, g.getLoc(), it->second, g);
  };
  for (Operation *op : llvm::reverse(ops)) {
    if (op->getNumResults() != 1)
      continue;
    auto it = grads.find(op->getResult(0));
    if (it == grads.end())
      continue;
    Value g = it->second;
    Location loc = op->getLoc();
    Value r = op->getResult(0);
    auto mul = [&](Value x, Value y) {
      return arith::MulFOp::create(b, loc, x, y).getResult();
    };
    auto neg = [&](Value x) {
      return arith::NegFOp::create(b, loc, x).getResult();
    };
    auto zero = [&]() { return f32Const(b, loc, 0.0); };
    if (isa<arith::ConstantOp, linalg::IndexOp>(op))
      continue;
    if (isa<arith::AddFOp>(op)) {
      add(op->getOperand(0), g);
      add(op->getOperand(1), g);
    } else if (isa<arith::SubFOp>(op)) {
      add(op->getOperand(0), g);
      add(op->getOperand(1), neg(g));
    } else if (isa<arith::MulFOp>(op)) {
      add(op->getOperand(0), mul(g, op->getOperand(1)));
      add(op->getOperand(1), mul(g, op->getOperand(0)));
    } else if (isa<arith::DivFOp>(op)) {
      // d(a/b) = da/b - (a/b) db/b.
      Value gb = arith::DivFOp::create(b, loc, g, op->getOperand(1));
      add(op->getOperand(0), gb);
      add(op->getOperand(1), neg(mul(gb, r)));
    } else if (isa<arith::NegFOp>(op)) {
      add(op->getOperand(0), neg(g));
    } else if (isa<arith::ExtFOp, arith::TruncFOp>(op)) {
      add(op->getOperand(0), g);
    } else if (isa<arith::MaximumFOp, arith::MinimumFOp, arith::MaxNumFOp,
                   arith::MinNumFOp>(op)) {
      // The gradient goes to the operand that was selected (the first on
      // ties, so relu's gradient at 0 is 0 as in PyTorch for max(x, 0)).
      bool isMax = isa<arith::MaximumFOp, arith::MaxNumFOp>(op);
      Value first = arith::CmpFOp::create(
          b, loc, isMax ? arith::CmpFPredicate::OGT : arith::CmpFPredicate::OLT,
          op->getOperand(0), op->getOperand(1));
      add(op->getOperand(0), arith::SelectOp::create(b, loc, first, g, zero()));
      add(op->getOperand(1), arith::SelectOp::create(b, loc, first, zero(), g));
    } else if (isa<math::ExpOp>(op)) {
      add(op->getOperand(0), mul(g, r));
    } else if (isa<math::TanhOp>(op)) {
      Value one = f32Const(b, loc, 1.0);
      add(op->getOperand(0),
          mul(g, arith::SubFOp::create(b, loc, one, mul(r, r))));
    } else if (isa<math::LogOp>(op)) {
      add(op->getOperand(0),
          arith::DivFOp::create(b, loc, g, op->getOperand(0)));
    } else if (auto sel = dyn_cast<arith::SelectOp>(op)) {
      add(sel.getTrueValue(),
          arith::SelectOp::create(b, loc, sel.getCondition(), g, zero()));
      add(sel.getFalseValue(),
          arith::SelectOp::create(b, loc, sel.getCondition(), zero(), g));
    } else {
      return op->emitOpError("has no scalar derivative rule in a "
                             "differentiated linalg.generic body");
    }
  }
  return success();
}

//===----------------------------------------------------------------------===//
// linalg.generic
//===----------------------------------------------------------------------===//

/// The rule for a generic computing `out = f(ins)` (all parallel) or
/// `out = init + Σ f(ins)` (sum reduction): one generic over the full
/// iteration space computes `dy * ∂f/∂in_i` for each needed input, then each
/// is summed down to its input's indexing map.
LogicalResult differentiateGeneric(OpBuilder &b, linalg::GenericOp op, Value dy,
                                   ArrayRef<bool> needed,
                                   SmallVectorImpl<Value> &operandGrads) {
  Location loc = op.getLoc();
  MLIRContext *ctx = b.getContext();
  if (op.getNumDpsInits() != 1 || op->getNumResults() != 1)
    return op.emitOpError("is differentiated only with one output");
  Block &body = op.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  Value y = yield.getOperand(0);
  BlockArgument acc = body.getArgument(op.getNumDpsInputs());
  bool reduction = op.getNumReductionLoops() > 0;
  Value f = y;
  if (reduction) {
    auto addOp = y.getDefiningOp<arith::AddFOp>();
    if (!addOp || !acc.hasOneUse())
      return op.emitOpError("is differentiated only as a sum reduction "
                            "(out + f(ins))");
    f = addOp.getLhs() == acc ? addOp.getRhs() : addOp.getLhs();
    if (f == acc)
      return op.emitOpError("sums its own accumulator");
  } else if (!acc.use_empty()) {
    return op.emitOpError("reads its output in an element-wise body");
  }
  for (AffineMap m : op.getIndexingMapsArray())
    if (!m.isProjectedPermutation())
      return op.emitOpError("has an indexing map that is not a projected "
                            "permutation: ")
             << AffineMapAttr::get(m);

  unsigned nIn = op.getNumDpsInputs();
  unsigned nLoops = op.getNumLoops();
  SmallVector<Range> ranges =
      cast<linalg::LinalgOp>(op.getOperation()).createLoopRanges(b, loc);
  SmallVector<OpFoldResult> fullSizes;
  for (Range &r : ranges)
    fullSizes.push_back(r.size);

  SmallVector<unsigned> wanted;
  for (unsigned i = 0; i < nIn; ++i)
    if (needed[i] && isFloatTensor(op.getDpsInputs()[i]))
      wanted.push_back(i);

  operandGrads.assign(op->getNumOperands(), Value());
  // The accumulator's initial value contributes dy unchanged.
  if (reduction)
    operandGrads[nIn] = dy;
  if (wanted.empty())
    return success();

  SmallVector<Value> inputs(op.getDpsInputs());
  inputs.push_back(dy);
  SmallVector<AffineMap> maps;
  for (unsigned i = 0; i < nIn; ++i)
    maps.push_back(op.getMatchingIndexingMap(op.getDpsInputOperand(i)));
  maps.push_back(op.getMatchingIndexingMap(op.getDpsInitOperand(0)));
  SmallVector<Value> inits;
  SmallVector<Type> types;
  for (size_t k = 0; k < wanted.size(); ++k) {
    Value e = tensor::EmptyOp::create(b, loc, fullSizes, b.getF32Type());
    inits.push_back(e);
    types.push_back(e.getType());
    maps.push_back(AffineMap::getMultiDimIdentityMap(nLoops, ctx));
  }
  SmallVector<utils::IteratorType> iters(nLoops, utils::IteratorType::parallel);
  LogicalResult bodyResult = success();
  auto grad = linalg::GenericOp::create(
      b, loc, types, inputs, inits, maps, iters,
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        IRMapping map;
        for (unsigned i = 0; i < nIn; ++i)
          map.map(body.getArgument(i), args[i]);
        SmallVector<Operation *> cloned;
        for (Operation &o : body.without_terminator()) {
          if (&o == y.getDefiningOp() && reduction)
            continue;
          cloned.push_back(nb.clone(o, map));
        }
        DenseMap<Value, Value> grads;
        grads[map.lookupOrDefault(f)] = args[nIn];
        bodyResult = differentiateScalars(nb, cloned, grads);
        SmallVector<Value> results;
        for (unsigned i : wanted) {
          Value g = grads.lookup(args[i]);
          results.push_back(g ? g : f32Const(nb, nl, 0.0));
        }
        linalg::YieldOp::create(nb, nl, results);
      });
  if (failed(bodyResult))
    return failure();
  for (auto [k, i] : llvm::enumerate(wanted)) {
    Value in = op.getDpsInputs()[i];
    operandGrads[i] =
        buildReduceTo(b, loc, grad.getResult(k),
                      op.getMatchingIndexingMap(op.getDpsInputOperand(i)),
                      tensor::getMixedSizes(b, loc, in));
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Whole functions
//===----------------------------------------------------------------------===//

/// The layer an op belongs to: the importer names each layer's location
/// `blocks.<l>` and the decomposition keeps it on the ops it creates.
std::optional<int64_t> layerIndex(Location loc) {
  if (auto fused = dyn_cast<FusedLoc>(loc)) {
    std::optional<int64_t> found;
    for (Location l : fused.getLocations()) {
      std::optional<int64_t> i = layerIndex(l);
      if (!i || (found && *found != *i))
        return std::nullopt;
      found = i;
    }
    return found;
  }
  auto name = dyn_cast<NameLoc>(loc);
  if (!name)
    return std::nullopt;
  StringRef s = name.getName().strref();
  int64_t l;
  if (!s.consume_front("blocks.") || s.getAsInteger(10, l))
    return std::nullopt;
  return l;
}

LogicalResult differentiateFunction(func::FuncOp fwd, StringRef gradName) {
  OpBuilder b(fwd);
  b.setInsertionPointAfter(fwd);
  auto gradFn = cast<func::FuncOp>(b.clone(*fwd));
  gradFn.setSymName(gradName);
  gradFn->removeAttr("rwkv.gradient");
  gradFn->removeAttr("rwkv.recompute_layers");
  if (!gradFn.getBody().hasOneBlock())
    return fwd.emitOpError("rwkv-differentiate needs a single-block body");
  Block &block = gradFn.getBody().front();
  auto ret = cast<func::ReturnOp>(block.getTerminator());
  if (ret.getNumOperands() < 1)
    return fwd.emitOpError("returns no loss to differentiate");
  Value loss = ret.getOperand(0);
  auto lossType = llvm::dyn_cast<RankedTensorType>(loss.getType());
  if (!lossType || lossType.getRank() != 0 ||
      !lossType.getElementType().isF32())
    return fwd.emitOpError("must return the loss as tensor<f32> first, got ")
           << loss.getType();

  // Active values depend on a floating-point argument.
  DenseSet<Value> active;
  for (BlockArgument a : block.getArguments())
    if (isFloatTensor(a))
      active.insert(a);
  for (Operation &op : block.without_terminator())
    if (llvm::any_of(op.getOperands(),
                     [&](Value v) { return active.contains(v); }))
      for (Value r : op.getResults())
        active.insert(r);
  if (!active.contains(loss))
    return fwd.emitOpError("loss does not depend on any argument");

  b.setInsertionPoint(ret);
  DenseMap<Value, Value> adj;
  auto accumulate = [&](Value v, Value g) {
    if (!g || !active.contains(v))
      return;
    auto it = adj.find(v);
    if (it == adj.end())
      adj[v] = g;
    else
      it->second = buildAdd(b, g.getLoc(), it->second, g);
  };
  adj[loss] = arith::ConstantOp::create(
      b, loss.getLoc(),
      DenseElementsAttr::get(lossType, b.getF32FloatAttr(1.0f).getValue()));

  SmallVector<Operation *> ops;
  for (Operation &op : block.without_terminator())
    ops.push_back(&op);

  // Activation checkpointing: the backward of layer l runs on a copy of the
  // layer's forward, cloned from the layer's inputs right before its
  // adjoint, so the first forward's intermediates die after the forward.
  bool recompute = fwd->hasAttr("rwkv.recompute_layers");
  DenseMap<Operation *, int64_t> layerOf;
  DenseMap<int64_t, SmallVector<Operation *>> layerOps;
  if (recompute)
    for (Operation *op : ops)
      if (std::optional<int64_t> l = layerIndex(op->getLoc())) {
        layerOf[op] = *l;
        layerOps[*l].push_back(op);
      }
  IRMapping recomputed, originalOf;
  DenseSet<int64_t> clonedLayers;

  for (Operation *op : llvm::reverse(ops)) {
    SmallVector<Value> resultGrads;
    bool any = false;
    for (Value r : op->getResults()) {
      resultGrads.push_back(adj.lookup(r));
      any |= bool(resultGrads.back());
    }
    if (!any)
      continue;
    if (auto it = layerOf.find(op); it != layerOf.end()) {
      if (clonedLayers.insert(it->second).second)
        for (Operation *f : layerOps[it->second]) {
          Operation *c = b.clone(*f, recomputed);
          for (auto [o, n] : llvm::zip(f->getResults(), c->getResults()))
            originalOf.map(n, o);
        }
      op = recomputed.lookup(op->getResult(0)).getDefiningOp();
    }
    SmallVector<Value> operandGrads;
    if (auto d = dyn_cast<DifferentiableOpInterface>(op)) {
      if (failed(d.buildAdjoint(b, resultGrads, operandGrads)))
        return failure();
    } else if (auto g = dyn_cast<linalg::GenericOp>(op)) {
      SmallVector<bool> needed;
      for (Value in : g.getDpsInputs())
        needed.push_back(active.contains(originalOf.lookupOrDefault(in)));
      if (failed(
              differentiateGeneric(b, g, resultGrads[0], needed, operandGrads)))
        return failure();
    } else if (isa<arith::AddFOp>(op)) {
      // The residual additions on whole tensors.
      operandGrads.append({resultGrads[0], resultGrads[0]});
    } else if (auto e = dyn_cast<tensor::ExpandShapeOp>(op)) {
      operandGrads.push_back(tensor::CollapseShapeOp::create(
          b, e.getLoc(), f32TypeOf(e.getSrc()), resultGrads[0],
          e.getReassociationIndices()));
    } else if (auto c = dyn_cast<tensor::CollapseShapeOp>(op)) {
      operandGrads.push_back(tensor::ExpandShapeOp::create(
          b, c.getLoc(), f32TypeOf(c.getSrc()), resultGrads[0],
          c.getReassociationIndices()));
    } else if (auto c = dyn_cast<tensor::CastOp>(op)) {
      operandGrads.push_back(tensor::CastOp::create(
          b, c.getLoc(), f32TypeOf(c.getSource()), resultGrads[0]));
    } else {
      return op->emitOpError("cannot be differentiated (no adjoint rule)");
    }
    if (operandGrads.size() > op->getNumOperands())
      return op->emitOpError("adjoint rule returned too many gradients");
    // Gradients belong to the original values (a recomputed op's operands
    // map back through the clone mapping's inverse).
    for (auto [operand, g] : llvm::zip(op->getOperands(), operandGrads))
      accumulate(originalOf.lookupOrDefault(operand), g);
  }

  SmallVector<Value> results = {loss};
  for (BlockArgument a : block.getArguments()) {
    if (!isFloatTensor(a))
      continue;
    Value g = adj.lookup(a);
    results.push_back(g ? g : zerosLike(b, a.getLoc(), a));
  }
  func::ReturnOp::create(b, ret.getLoc(), results);
  ret.erase();
  gradFn.setFunctionType(FunctionType::get(b.getContext(),
                                           gradFn.getArgumentTypes(),
                                           ValueRange(results).getTypes()));
  // Result 0 is the loss; each gradient names the argument it belongs to,
  // which is how the ABI describes it.
  SmallVector<DictionaryAttr> resAttrs;
  resAttrs.push_back(b.getDictionaryAttr(
      b.getNamedAttr("rwkv.result", b.getStringAttr("loss"))));
  for (BlockArgument a : block.getArguments())
    if (isFloatTensor(a))
      resAttrs.push_back(b.getDictionaryAttr(b.getNamedAttr(
          "rwkv.gradient_of", b.getI64IntegerAttr(a.getArgNumber()))));
  gradFn.setAllResultAttrs(resAttrs);
  return success();
}

struct RWKVDifferentiatePass final
    : impl::RWKVDifferentiatePassBase<RWKVDifferentiatePass> {
  void runOnOperation() override {
    SmallVector<std::pair<func::FuncOp, std::string>> todo;
    getOperation()->walk([&](func::FuncOp f) {
      if (auto name = f->getAttrOfType<StringAttr>("rwkv.gradient"))
        todo.push_back({f, name.str()});
    });
    for (auto &[f, name] : todo)
      if (failed(differentiateFunction(f, name)))
        return signalPassFailure();
  }
};

} // namespace
} // namespace mlir::rwkv
