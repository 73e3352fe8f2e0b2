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
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/SetVector.h"

#include <map>
#include <memory>

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

/// Ops that are cheaper to rebuild in a backward function than to pass from
/// the forward one.
bool isRematerializable(Operation *op) {
  return isa<arith::ConstantOp, tensor::EmptyOp, tensor::ExpandShapeOp,
             tensor::CollapseShapeOp, tensor::CastOp, linalg::FillOp>(op);
}

/// The backward of a call: `bwd(args..., dresults..., tape...)` returns the
/// gradients of the arguments in `argMask`. With stored activations the
/// forward calls `fwd`, which returns the callee's results followed by the
/// tape (the forward values the backward reads); with recomputation `fwd` is
/// null, there is no tape, and `bwd` runs the callee's forward itself.
struct CallAdjoint {
  func::FuncOp fwd, bwd;
  SmallVector<bool> argMask, resMask;
};

/// Builds gradient functions. A call to a function (an outlined layer) is
/// differentiated by a backward function built once per callee, so every
/// layer of the same shape shares one forward and one backward: code size and
/// compile time do not grow with the number of layers, and each layer's
/// temporaries are freed when its function returns.
class Differentiator {
public:
  explicit Differentiator(ModuleOp module) : module(module), symbols(module) {}

  LogicalResult differentiateFunction(func::FuncOp fwd, StringRef gradName);

private:
  /// The per-call state of a reverse sweep.
  struct Sweep {
    DenseSet<Value> active;
    DenseMap<Value, Value> adj;
    /// Layer-by-location recomputation (flat bodies only).
    bool recomputeLayers = false;
    /// Forward calls rewritten to their `fwd` function, with their tape.
    DenseMap<Operation *, std::pair<CallAdjoint *, SmallVector<Value>>>
        storedCalls;
  };

  LogicalResult sweep(OpBuilder &b, ArrayRef<Operation *> ops, Sweep &s);
  LogicalResult adjointOfCall(OpBuilder &b, func::CallOp call,
                              ArrayRef<Value> resultGrads, Sweep &s,
                              SmallVectorImpl<Value> &operandGrads);
  FailureOr<CallAdjoint *> getCallAdjoint(func::CallOp call, bool stored,
                                          ArrayRef<bool> argMask,
                                          ArrayRef<bool> resMask);
  FailureOr<func::FuncOp> buildVjp(func::FuncOp callee, ArrayRef<bool> argMask,
                                   ArrayRef<bool> resMask, StringRef name,
                                   unsigned &numPrimalOps,
                                   SmallVectorImpl<Value> &primalResults);
  LogicalResult splitVjp(func::FuncOp vjp, func::FuncOp callee,
                         unsigned numPrimalOps, ArrayRef<Value> primalResults,
                         CallAdjoint &adjoint);
  func::FuncOp createFunction(Operation *after, Location loc, StringRef name,
                              FunctionType type);

  ModuleOp module;
  SymbolTable symbols;
  std::map<std::string, std::unique_ptr<CallAdjoint>> adjoints;
};

/// Values that depend on an active block argument, in program order.
void propagateActivity(ArrayRef<Operation *> ops, DenseSet<Value> &active) {
  for (Operation *op : ops)
    if (llvm::any_of(op->getOperands(),
                     [&](Value v) { return active.contains(v); }))
      for (Value r : op->getResults())
        active.insert(r);
}

func::FuncOp Differentiator::createFunction(Operation *after, Location loc,
                                            StringRef name, FunctionType type) {
  OpBuilder b(after);
  b.setInsertionPointAfter(after);
  auto fn = func::FuncOp::create(b, loc, name, type);
  fn.setPrivate();
  symbols.insert(fn, b.getInsertionPoint()); // uniquifies the name
  fn.addEntryBlock();
  return fn;
}

LogicalResult Differentiator::sweep(OpBuilder &b, ArrayRef<Operation *> ops,
                                    Sweep &s) {
  auto accumulate = [&](Value v, Value g) {
    if (!g || !s.active.contains(v))
      return;
    auto it = s.adj.find(v);
    if (it == s.adj.end())
      s.adj[v] = g;
    else
      it->second = buildAdd(b, g.getLoc(), it->second, g);
  };

  // Activation checkpointing of a flat body: the backward of layer l runs on
  // a copy of the layer's forward, cloned from the layer's inputs right
  // before its adjoint, so the first forward's intermediates die after the
  // forward. (Outlined layers are calls, recomputed by their backward.)
  DenseMap<Operation *, int64_t> layerOf;
  DenseMap<int64_t, SmallVector<Operation *>> layerOps;
  if (s.recomputeLayers)
    for (Operation *op : ops)
      if (std::optional<int64_t> l = layerIndex(op->getLoc());
          l && !isa<func::CallOp>(op)) {
        layerOf[op] = *l;
        layerOps[*l].push_back(op);
      }
  IRMapping recomputed, originalOf;
  DenseSet<int64_t> clonedLayers;

  for (Operation *op : llvm::reverse(ops)) {
    SmallVector<Value> resultGrads;
    bool any = false;
    for (Value r : op->getResults()) {
      resultGrads.push_back(s.adj.lookup(r));
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
        needed.push_back(s.active.contains(originalOf.lookupOrDefault(in)));
      if (failed(
              differentiateGeneric(b, g, resultGrads[0], needed, operandGrads)))
        return failure();
    } else if (auto call = dyn_cast<func::CallOp>(op)) {
      if (failed(adjointOfCall(b, call, resultGrads, s, operandGrads)))
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
  return success();
}

LogicalResult
Differentiator::adjointOfCall(OpBuilder &b, func::CallOp call,
                              ArrayRef<Value> resultGrads, Sweep &s,
                              SmallVectorImpl<Value> &operandGrads) {
  Location loc = call.getLoc();
  CallAdjoint *adjoint = nullptr;
  SmallVector<Value> tape;
  auto stored = s.storedCalls.find(call);
  if (stored != s.storedCalls.end()) {
    adjoint = stored->second.first;
    tape = stored->second.second;
  } else {
    SmallVector<bool> argMask, resMask;
    for (Value v : call.getOperands())
      argMask.push_back(s.active.contains(v) && isFloatTensor(v));
    for (auto [r, g] : llvm::zip(call.getResults(), resultGrads))
      resMask.push_back(bool(g) && isFloatTensor(r));
    FailureOr<CallAdjoint *> got =
        getCallAdjoint(call, /*stored=*/false, argMask, resMask);
    if (failed(got))
      return failure();
    adjoint = *got;
  }
  unsigned numResults = adjoint->resMask.size();
  SmallVector<Value> args(
      call.getOperands().take_front(adjoint->argMask.size()));
  for (unsigned i = 0; i < numResults; ++i) {
    if (!adjoint->resMask[i])
      continue;
    Value g = resultGrads[i];
    args.push_back(g ? g : zerosLike(b, loc, call.getResult(i)));
  }
  args.append(tape);
  auto bwdCall = func::CallOp::create(b, loc, adjoint->bwd, args);
  unsigned k = 0;
  operandGrads.assign(call.getNumOperands(), Value());
  for (auto [i, wanted] : llvm::enumerate(adjoint->argMask))
    if (wanted)
      operandGrads[i] = bwdCall.getResult(k++);
  return success();
}

FailureOr<CallAdjoint *>
Differentiator::getCallAdjoint(func::CallOp call, bool stored,
                               ArrayRef<bool> argMask, ArrayRef<bool> resMask) {
  auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
  if (!callee || callee.isExternal() || !callee.getBody().hasOneBlock())
    return call.emitOpError("calls a function without a single-block body, "
                            "which cannot be differentiated");
  std::string key = (callee.getName() + (stored ? "/s/" : "/r/")).str();
  for (bool m : argMask)
    key += m ? '1' : '0';
  key += '/';
  for (bool m : resMask)
    key += m ? '1' : '0';
  std::unique_ptr<CallAdjoint> &slot = adjoints[key];
  if (slot)
    return slot.get();

  auto adjoint = std::make_unique<CallAdjoint>();
  adjoint->argMask.assign(argMask.begin(), argMask.end());
  adjoint->resMask.assign(resMask.begin(), resMask.end());
  unsigned numPrimalOps = 0;
  SmallVector<Value> primalResults;
  FailureOr<func::FuncOp> vjp =
      buildVjp(callee, argMask, resMask, (callee.getName() + "_vjp").str(),
               numPrimalOps, primalResults);
  if (failed(vjp))
    return failure();
  if (!stored) {
    adjoint->bwd = *vjp;
  } else {
    if (failed(splitVjp(*vjp, callee, numPrimalOps, primalResults, *adjoint)))
      return failure();
    symbols.erase(*vjp);
  }
  slot = std::move(adjoint);
  return slot.get();
}

FailureOr<func::FuncOp>
Differentiator::buildVjp(func::FuncOp callee, ArrayRef<bool> argMask,
                         ArrayRef<bool> resMask, StringRef name,
                         unsigned &numPrimalOps,
                         SmallVectorImpl<Value> &primalResults) {
  Location loc = callee.getLoc();
  FunctionType calleeType = callee.getFunctionType();
  SmallVector<Type> inputs(calleeType.getInputs());
  auto ret = cast<func::ReturnOp>(callee.getBody().front().getTerminator());
  for (auto [v, wanted] : llvm::zip(ret.getOperands(), resMask))
    if (wanted)
      inputs.push_back(f32TypeOf(v));
  func::FuncOp vjp = createFunction(
      callee, loc, name, FunctionType::get(callee.getContext(), inputs, {}));
  Block &entry = vjp.getBody().front();
  OpBuilder b = OpBuilder::atBlockEnd(&entry);

  // The forward, cloned.
  IRMapping map;
  for (auto [from, to] :
       llvm::zip(callee.getArguments(),
                 entry.getArguments().take_front(calleeType.getNumInputs())))
    map.map(from, to);
  SmallVector<Operation *> primal;
  for (Operation &op : callee.getBody().front().without_terminator())
    primal.push_back(b.clone(op, map));
  numPrimalOps = primal.size();
  for (Value v : ret.getOperands())
    primalResults.push_back(map.lookupOrDefault(v));

  Sweep s;
  for (auto [a, wanted] : llvm::zip(entry.getArguments(), argMask))
    if (wanted)
      s.active.insert(a);
  propagateActivity(primal, s.active);
  unsigned k = calleeType.getNumInputs();
  for (auto [v, wanted] : llvm::zip(primalResults, resMask)) {
    if (!wanted)
      continue;
    Value g = entry.getArgument(k++);
    if (!s.active.contains(v))
      continue;
    auto it = s.adj.find(v);
    if (it == s.adj.end())
      s.adj[v] = g;
    else
      it->second = buildAdd(b, loc, it->second, g);
  }
  if (failed(sweep(b, primal, s)))
    return failure();

  SmallVector<Value> grads;
  for (auto [a, wanted] : llvm::zip(entry.getArguments(), argMask)) {
    if (!wanted)
      continue;
    Value g = s.adj.lookup(a);
    grads.push_back(g ? g : zerosLike(b, loc, a));
  }
  func::ReturnOp::create(b, loc, grads);
  vjp.setFunctionType(FunctionType::get(callee.getContext(), inputs,
                                        ValueRange(grads).getTypes()));
  return vjp;
}

LogicalResult Differentiator::splitVjp(func::FuncOp vjp, func::FuncOp callee,
                                       unsigned numPrimalOps,
                                       ArrayRef<Value> primalResults,
                                       CallAdjoint &adjoint) {
  Block &body = vjp.getBody().front();
  SmallVector<Operation *> all;
  for (Operation &op : body.without_terminator())
    all.push_back(&op);
  ArrayRef<Operation *> primal =
      ArrayRef<Operation *>(all).take_front(numPrimalOps);
  ArrayRef<Operation *> backward =
      ArrayRef<Operation *>(all).drop_front(numPrimalOps);
  DenseSet<Operation *> isPrimal(primal.begin(), primal.end());

  // The forward values the backward reads: stored in the tape, or rebuilt
  // when that is cheaper (constants, empty tensors, reshapes of the tape).
  llvm::SetVector<Value> tape;
  DenseSet<Operation *> remat;
  std::function<void(Value)> need = [&](Value v) {
    Operation *def = v.getDefiningOp();
    if (!def || !isPrimal.contains(def))
      return;
    if (isRematerializable(def)) {
      if (remat.insert(def).second)
        for (Value operand : def->getOperands())
          need(operand);
      return;
    }
    tape.insert(v);
  };
  for (Operation *op : backward)
    op->walk([&](Operation *inner) {
      for (Value v : inner->getOperands())
        need(v);
    });
  SmallVector<Type> tapeTypes;
  for (Value v : tape)
    tapeTypes.push_back(v.getType());
  MLIRContext *ctx = vjp.getContext();
  Location loc = vjp.getLoc();
  unsigned numInputs = callee.getNumArguments();

  // fwd(args...) -> (results..., tape...)
  SmallVector<Type> fwdResults(callee.getResultTypes());
  fwdResults.append(tapeTypes);
  adjoint.fwd = createFunction(
      callee, loc, (callee.getName() + "_fwd").str(),
      FunctionType::get(ctx, callee.getArgumentTypes(), fwdResults));
  {
    Block &entry = adjoint.fwd.getBody().front();
    OpBuilder b = OpBuilder::atBlockEnd(&entry);
    IRMapping map;
    for (unsigned i = 0; i < numInputs; ++i)
      map.map(body.getArgument(i), entry.getArgument(i));
    for (Operation *op : primal)
      b.clone(*op, map);
    SmallVector<Value> results;
    for (Value v : primalResults)
      results.push_back(map.lookupOrDefault(v));
    for (Value v : tape)
      results.push_back(map.lookup(v));
    func::ReturnOp::create(b, loc, results);
  }

  // bwd(args..., dresults..., tape...) -> grads
  SmallVector<Type> bwdInputs(vjp.getArgumentTypes());
  bwdInputs.append(tapeTypes);
  adjoint.bwd =
      createFunction(adjoint.fwd, loc, (callee.getName() + "_bwd").str(),
                     FunctionType::get(ctx, bwdInputs, vjp.getResultTypes()));
  {
    Block &entry = adjoint.bwd.getBody().front();
    OpBuilder b = OpBuilder::atBlockEnd(&entry);
    IRMapping map;
    for (unsigned i = 0; i < body.getNumArguments(); ++i)
      map.map(body.getArgument(i), entry.getArgument(i));
    for (auto [i, v] : llvm::enumerate(tape))
      map.map(v, entry.getArgument(body.getNumArguments() + i));
    for (Operation *op : primal)
      if (remat.contains(op))
        b.clone(*op, map);
    for (Operation *op : backward)
      b.clone(*op, map);
    b.clone(*body.getTerminator(), map);
  }
  return success();
}

LogicalResult Differentiator::differentiateFunction(func::FuncOp fwd,
                                                    StringRef gradName) {
  OpBuilder b(fwd);
  b.setInsertionPointAfter(fwd);
  auto gradFn = cast<func::FuncOp>(b.clone(*fwd));
  gradFn.setSymName(gradName);
  gradFn->removeAttr("rwkv.gradient");
  gradFn->removeAttr("rwkv.recompute_layers");
  symbols.insert(gradFn);
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

  bool recompute = fwd->hasAttr("rwkv.recompute_layers");
  auto collectOps = [&] {
    SmallVector<Operation *> ops;
    for (Operation &op : block.without_terminator())
      ops.push_back(&op);
    return ops;
  };
  auto activeArgs = [&](DenseSet<Value> &active) {
    for (BlockArgument a : block.getArguments())
      if (isFloatTensor(a))
        active.insert(a);
  };
  Sweep s;
  s.recomputeLayers = recompute;
  SmallVector<Operation *> ops = collectOps();
  activeArgs(s.active);
  propagateActivity(ops, s.active);
  if (!s.active.contains(loss))
    return fwd.emitOpError("loss does not depend on any argument");

  if (!recompute) {
    // Stored activations: each call's forward also returns the values its
    // backward will read. Which results need a gradient: those on a path
    // to the loss.
    DenseSet<Value> useful = {loss};
    for (Operation *op : llvm::reverse(ops))
      if (llvm::any_of(op->getResults(),
                       [&](Value r) { return useful.contains(r); }))
        for (Value v : op->getOperands())
          if (s.active.contains(v))
            useful.insert(v);
    for (Operation *op : ops) {
      auto call = dyn_cast<func::CallOp>(op);
      if (!call)
        continue;
      SmallVector<bool> argMask, resMask;
      for (Value v : call.getOperands())
        argMask.push_back(s.active.contains(v) && isFloatTensor(v));
      for (Value r : call.getResults())
        resMask.push_back(useful.contains(r) && isFloatTensor(r));
      if (!llvm::is_contained(resMask, true))
        continue;
      FailureOr<CallAdjoint *> adjoint =
          getCallAdjoint(call, /*stored=*/true, argMask, resMask);
      if (failed(adjoint))
        return failure();
      b.setInsertionPoint(call);
      auto fwdCall = func::CallOp::create(b, call.getLoc(), (*adjoint)->fwd,
                                          call.getOperands());
      unsigned n = call.getNumResults();
      // Later calls' masks read the activity of these results.
      for (unsigned i = 0; i < n; ++i) {
        if (s.active.contains(call.getResult(i)))
          s.active.insert(fwdCall.getResult(i));
        if (useful.contains(call.getResult(i)))
          useful.insert(fwdCall.getResult(i));
      }
      call.replaceAllUsesWith(fwdCall.getResults().take_front(n));
      s.storedCalls[fwdCall] = {
          *adjoint, SmallVector<Value>(fwdCall.getResults().drop_front(n))};
      call.erase();
    }
    loss = ret.getOperand(0);
    ops = collectOps();
    s.active.clear();
    activeArgs(s.active);
    propagateActivity(ops, s.active);
  }

  b.setInsertionPoint(ret);
  s.adj[loss] = arith::ConstantOp::create(
      b, loss.getLoc(),
      DenseElementsAttr::get(lossType, b.getF32FloatAttr(1.0f).getValue()));
  if (failed(sweep(b, ops, s)))
    return failure();

  SmallVector<Value> results = {loss};
  for (BlockArgument a : block.getArguments()) {
    if (!isFloatTensor(a))
      continue;
    Value g = s.adj.lookup(a);
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
    Differentiator differentiator(getOperation());
    for (auto &[f, name] : todo)
      if (failed(differentiator.differentiateFunction(f, name)))
        return signalPassFailure();
  }
};

} // namespace
} // namespace mlir::rwkv
