//===- RWKVOps.cpp - rwkv op verifiers and builders -----------------------===//
//
// Every shape rule of the spec gets a verifier with a diagnostic that names
// the operand and both shapes, so malformed IR never reaches a lowering.
//
//===----------------------------------------------------------------------===//

#include "dialect/RWKVOps.h"

#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::rwkv;

static constexpr int64_t kAny = ShapedType::kDynamic;

//===----------------------------------------------------------------------===//
// Shape helpers
//===----------------------------------------------------------------------===//

/// Prints a shape as `[1, ?, 128]`.
static std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "[";
  llvm::interleaveComma(shape, os, [&](int64_t d) {
    if (ShapedType::isDynamic(d))
      os << "?";
    else
      os << d;
  });
  os << "]";
  return s;
}

/// Two extents agree unless both are static and differ.
static bool compatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

static ArrayRef<int64_t> shapeOf(Value v) {
  return llvm::cast<RankedTensorType>(v.getType()).getShape();
}

/// Checks that `v` has the rank of `expected` and that every extent is
/// compatible with it (`kAny` in `expected` matches anything).
static LogicalResult expectShape(Operation *op, Value v, StringRef name,
                                 ArrayRef<int64_t> expected) {
  ArrayRef<int64_t> got = shapeOf(v);
  bool ok = got.size() == expected.size();
  for (size_t i = 0; ok && i < got.size(); ++i)
    ok = compatible(got[i], expected[i]);
  if (!ok)
    return op->emitOpError() << "'" << name << "' has shape " << shapeStr(got)
                             << " but expected " << shapeStr(expected);
  return success();
}

static LogicalResult expectRank(Operation *op, Value v, StringRef name,
                                size_t rank, StringRef layout) {
  if (shapeOf(v).size() != rank)
    return op->emitOpError()
           << "'" << name << "' must have rank " << rank << " " << layout
           << ", got " << shapeStr(shapeOf(v));
  return success();
}

/// Results that mirror an operand must have exactly its shape.
static LogicalResult expectSameShape(Operation *op, Value result,
                                     StringRef name, Value like) {
  return expectShape(op, result, name, shapeOf(like));
}

/// Norm epsilons: written so that NaN is rejected too.
static LogicalResult expectPositive(Operation *op, const APFloat &value,
                                    StringRef name) {
  if (!(value.convertToFloat() > 0.0f))
    return op->emitOpError() << name << " must be positive";
  return success();
}

/// Checks a per-head split: `c` channels into `heads` groups.
static LogicalResult expectDivisible(Operation *op, int64_t c, int64_t heads,
                                     StringRef what) {
  if (heads <= 0)
    return op->emitOpError() << what << " must be positive, got " << heads;
  if (!ShapedType::isDynamic(c) && c % heads != 0)
    return op->emitOpError() << "channel count " << c << " is not divisible by "
                             << what << " " << heads;
  return success();
}

//===----------------------------------------------------------------------===//
// Primitive ops
//===----------------------------------------------------------------------===//

/// How a quantized matrix is grouped: `group` columns per scale, packed
/// two int4 weights per byte unless `int8` (grouped int8).
struct QuantGroups {
  std::optional<uint64_t> group;
  bool int8 = false;
  bool packed() const { return group && !int8; }
};

template <typename OpTy> static QuantGroups groupsOf(OpTy op) {
  return {op.getGroupSize(), op.getInt8Groups()};
}

/// The column count a stored matrix stands for: two per byte when it is
/// packed int4.
static int64_t logicalCols(int64_t stored, QuantGroups q) {
  return q.packed() && !ShapedType::isDynamic(stored) ? 2 * stored : stored;
}

/// A quantized matrix needs its scales: int8 per row, `[rows]` f32; packed
/// int4 (`group` set) or grouped int8 (`group` and `int8`) per row and group
/// of `group` columns, `[rows, cols / group]` bf16 or f32. A float matrix
/// takes neither.
static LogicalResult verifyQuantScales(Operation *op, Value matrix, Value scale,
                                       QuantGroups q, StringRef name) {
  auto type = cast<RankedTensorType>(matrix.getType());
  bool quantized = type.getElementType().isInteger(8);
  if (q.int8 && !q.group)
    return op->emitOpError() << "'int8' needs a 'group' size (it marks int8 "
                                "weights with per-group scales)";
  if (q.group && !quantized)
    return op->emitOpError()
           << "'group' is only allowed with a packed int4 or int8 (i8) '"
           << name << "', got " << type.getElementType();
  StringRef kind = q.packed() ? "int4 '" : "int8 '";
  if (quantized && !scale)
    return op->emitOpError()
           << kind << name << "' needs " << (q.group ? "per-group" : "per-row")
           << " scales (a 'scale' operand)";
  if (!quantized && scale)
    return op->emitOpError() << "'scale' is only allowed with an int8 '" << name
                             << "', got " << type.getElementType();
  if (!scale || type.getRank() != 2)
    return success(); // a wrong matrix rank is reported by the caller
  Type scaleElt = cast<RankedTensorType>(scale.getType()).getElementType();
  if (!q.group) {
    if (!scaleElt.isF32())
      return op->emitOpError()
             << "int8 scales must be f32, got " << scaleElt
             << " (bf16 scales are per group: add 'group', and 'int8' for "
                "int8 weights)";
    return expectShape(op, scale, "scale", {type.getDimSize(0)});
  }
  int64_t g = static_cast<int64_t>(*q.group);
  if (q.packed() && g % 2)
    return op->emitOpError()
           << "group size " << g << " must be even (two int4 weights per byte)";
  int64_t cols = logicalCols(type.getDimSize(1), q);
  if (ShapedType::isDynamic(cols))
    return expectShape(op, scale, "scale", {type.getDimSize(0), kAny});
  if (cols % g)
    return op->emitOpError() << "group size " << g << " does not divide the "
                             << cols << " columns of " << kind << name << "'";
  return expectShape(op, scale, "scale", {type.getDimSize(0), cols / g});
}

LogicalResult DequantizeOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getInput(), "input", 2,
                        groupsOf(*this).packed() ? "[rows, cols / 2]"
                                                 : "[rows, cols]")) ||
      failed(verifyQuantScales(op, getInput(), getScale(), groupsOf(*this),
                               "input")))
    return failure();
  ArrayRef<int64_t> in = shapeOf(getInput());
  return expectShape(op, getResult(), "result",
                     {in[0], logicalCols(in[1], groupsOf(*this))});
}

namespace {
/// `op(dequantize(q, s))` -> `op(q) scale(s)` (with the int4 group): the
/// kernel then reads the int8 or packed int4 matrix and applies the scales
/// in registers instead of reading a materialised f32 copy (4x or 8x the
/// bytes).
template <typename OpTy, unsigned MatrixOperand>
struct FoldDequantize final : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    if (op.getScale())
      return failure();
    auto deq =
        op->getOperand(MatrixOperand).template getDefiningOp<DequantizeOp>();
    if (!deq)
      return failure();
    rewriter.modifyOpInPlace(op, [&] {
      op->setOperand(MatrixOperand, deq.getInput());
      op.getScaleMutable().assign(deq.getScale());
      op.setGroupSizeAttr(deq.getGroupSizeAttr());
      op.setInt8Groups(deq.getInt8Groups());
    });
    return success();
  }
};
} // namespace

void EmbedOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                          MLIRContext *context) {
  results.add<FoldDequantize<EmbedOp, 0>>(context);
}

void LinearOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                           MLIRContext *context) {
  results.add<FoldDequantize<LinearOp, 1>>(context);
}

void HeadOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                         MLIRContext *context) {
  results.add<FoldDequantize<HeadOp, 1>>(context);
}

LogicalResult EmbedOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getTable(), "table", 2, "[V, C]")) ||
      failed(expectRank(op, getTokens(), "tokens", 2, "[B, T]")) ||
      failed(verifyQuantScales(op, getTable(), getScale(), groupsOf(*this),
                               "table")))
    return failure();
  ArrayRef<int64_t> tok = shapeOf(getTokens());
  return expectShape(
      op, getResult(), "result",
      {tok[0], tok[1], logicalCols(shapeOf(getTable())[1], groupsOf(*this))});
}

LogicalResult LayerNormOp::verify() {
  Operation *op = getOperation();
  ArrayRef<int64_t> in = shapeOf(getInput());
  if (in.empty())
    return emitOpError("'input' must have rank >= 1");
  if (failed(expectShape(op, getWeight(), "weight", {in.back()})) ||
      failed(expectShape(op, getBias(), "bias", {in.back()})))
    return failure();
  if (failed(expectPositive(op, getEpsilon(), "epsilon")))
    return failure();
  return expectSameShape(op, getResult(), "result", getInput());
}

LogicalResult TokenShiftOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getInput(), "input", 3, "[B, T, C]")))
    return failure();
  ArrayRef<int64_t> in = shapeOf(getInput());
  if (in[1] == 0)
    return emitOpError("sequence length must be at least 1");
  if (failed(expectShape(op, getPrev(), "prev", {in[0], in[2]})))
    return failure();
  if (failed(expectSameShape(op, getShifted(), "shifted", getInput())))
    return failure();
  return expectSameShape(op, getLast(), "last", getPrev());
}

LogicalResult MixOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getInput(), "input", 3, "[B, T, C]")) ||
      failed(expectSameShape(op, getShifted(), "shifted", getInput())) ||
      failed(expectShape(op, getMu(), "mu", {shapeOf(getInput())[2]})))
    return failure();
  return expectSameShape(op, getResult(), "result", getInput());
}

/// `[B, T, IN]` x `[OUT, IN]` weight -> `[B, T', OUT]`, shared by linear and
/// head; `what` and `note` word the width-mismatch diagnostic.
static LogicalResult
verifyOutInProjection(Operation *op, Value input, Value weight, Value result,
                      StringRef what, StringRef note, StringRef layout,
                      std::optional<int64_t> tokens, QuantGroups q) {
  if (failed(expectRank(op, input, "input", 3, "[B, T, C]")) ||
      failed(expectRank(op, weight, "weight", 2, layout)))
    return failure();
  ArrayRef<int64_t> in = shapeOf(input);
  ArrayRef<int64_t> w = shapeOf(weight);
  if (!compatible(logicalCols(w[1], q), in[2]))
    return op->emitOpError()
           << what << " " << shapeStr(w)
           << (q.packed() ? " (packed int4, two columns per byte)" : "")
           << " does not take inputs of width " << in[2] << note;
  return expectShape(op, result, "result",
                     {in[0], tokens.value_or(in[1]), w[0]});
}

LogicalResult LinearOp::verify() {
  if (failed(verifyQuantScales(getOperation(), getWeight(), getScale(),
                               groupsOf(*this), "weight")))
    return failure();
  return verifyOutInProjection(getOperation(), getInput(), getWeight(),
                               getResult(), "weight",
                               " (weights are stored [out, in])", "[out, in]",
                               std::nullopt, groupsOf(*this));
}

LogicalResult LoraOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getInput(), "input", 3, "[B, T, C]")) ||
      failed(expectRank(op, getDown(), "down", 2, "[in, rank]")) ||
      failed(expectRank(op, getUp(), "up", 2, "[rank, out]")))
    return failure();
  ArrayRef<int64_t> in = shapeOf(getInput());
  ArrayRef<int64_t> down = shapeOf(getDown());
  ArrayRef<int64_t> up = shapeOf(getUp());
  if (!compatible(down[0], in[2]))
    return emitOpError() << "'down' " << shapeStr(down)
                         << " does not take inputs of width " << in[2];
  if (!compatible(down[1], up[0]))
    return emitOpError() << "LoRA ranks disagree: 'down' is " << shapeStr(down)
                         << " but 'up' is " << shapeStr(up);
  return expectShape(op, getResult(), "result", {in[0], in[1], up[1]});
}

LogicalResult L2NormalizeOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getInput(), "input", 3, "[B, T, C]")) ||
      failed(expectDivisible(op, shapeOf(getInput())[2], getNumHeads(),
                             "num_heads")))
    return failure();
  if (failed(expectPositive(op, getEpsilon(), "epsilon")))
    return failure();
  return expectSameShape(op, getResult(), "result", getInput());
}

/// Checks the WKV state `[B, H, N, N]` against activations `[B, T, C]`.
static LogicalResult verifyWkvState(Operation *op, Value state, StringRef name,
                                    ArrayRef<int64_t> act) {
  if (failed(expectRank(op, state, name, 4, "[B, H, N, N]")))
    return failure();
  ArrayRef<int64_t> s = shapeOf(state);
  if (ShapedType::isDynamic(s[1]) || ShapedType::isDynamic(s[2]) ||
      ShapedType::isDynamic(s[3]))
    return op->emitOpError()
           << "'" << name << "' must have static heads and head size, got "
           << shapeStr(s);
  if (s[2] != s[3])
    return op->emitOpError() << "'" << name << "' " << shapeStr(s)
                             << " must be square per head (N x N)";
  if (!ShapedType::isDynamic(act[2]) && s[1] * s[2] != act[2])
    return op->emitOpError() << "heads * head_size (" << s[1] << " * " << s[2]
                             << ") must equal the channel count " << act[2];
  if (!compatible(s[0], act[0]))
    return op->emitOpError()
           << "'" << name << "' batch " << s[0]
           << " does not match the activations' batch " << act[0];
  return success();
}

LogicalResult WKVOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getR(), "r", 3, "[B, T, C]")))
    return failure();
  // Named arrays: the temporaries of a range-for initializer die too early.
  Value operands[] = {getW(), getK(), getV(), getA(), getB()};
  StringRef names[] = {"w", "k", "v", "a", "b"};
  for (auto [v, name] : llvm::zip_equal(operands, names))
    if (failed(expectSameShape(op, v, name, getR())))
      return failure();
  if (failed(verifyWkvState(op, getState(), "state", shapeOf(getR()))))
    return failure();
  if (getChunkLengthAttr().getInt() <= 0)
    return emitOpError() << "chunk_length must be positive, got "
                         << getChunkLengthAttr().getInt();
  if (failed(expectSameShape(op, getY(), "y", getR())))
    return failure();
  return expectSameShape(op, getNewState(), "new_state", getState());
}

LogicalResult WKV4Op::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getK(), "k", 3, "[B, T, C]")))
    return failure();
  ArrayRef<int64_t> act = shapeOf(getK());
  if (failed(expectShape(op, getW(), "w", {act[2]})) ||
      failed(expectShape(op, getAa(), "aa", {act[0], act[2]})))
    return failure();
  return expectSameShape(op, getY(), "y", getK());
}

LogicalResult WKV5Op::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getR(), "r", 3, "[B, T, C]")))
    return failure();
  ArrayRef<int64_t> act = shapeOf(getR());
  if (shapeOf(getW()).size() == 1) {
    if (failed(expectShape(op, getW(), "w", {act[2]})))
      return failure();
  } else if (failed(expectSameShape(op, getW(), "w", getR()))) {
    return failure();
  }
  if (failed(expectShape(op, getU(), "u", {act[2]})) ||
      failed(verifyWkvState(op, getState(), "state", act)))
    return failure();
  return expectSameShape(op, getY(), "y", getR());
}

LogicalResult GroupNormOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getInput(), "input", 3, "[B, T, C]")))
    return failure();
  int64_t c = shapeOf(getInput())[2];
  if (failed(expectDivisible(op, c, getNumGroups(), "num_groups")) ||
      failed(expectShape(op, getWeight(), "weight", {c})) ||
      failed(expectShape(op, getBias(), "bias", {c})))
    return failure();
  if (failed(expectPositive(op, getEpsilon(), "epsilon")))
    return failure();
  return expectSameShape(op, getResult(), "result", getInput());
}

LogicalResult HeadOp::verify() {
  std::optional<int64_t> tokens;
  if (getPositions() == HeadPositions::last)
    tokens = 1;
  if (failed(verifyQuantScales(getOperation(), getWeight(), getScale(),
                               groupsOf(*this), "head weight")))
    return failure();
  return verifyOutInProjection(getOperation(), getInput(), getWeight(),
                               getResult(), "head weight", "", "[V, C]", tokens,
                               groupsOf(*this));
}

//===----------------------------------------------------------------------===//
// Training ops
//===----------------------------------------------------------------------===//

LogicalResult CrossEntropyOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getInput(), "input", 3, "[B, T, C]")) ||
      failed(expectRank(op, getWeight(), "weight", 2, "[V, C]")))
    return failure();
  ArrayRef<int64_t> in = shapeOf(getInput()), w = shapeOf(getWeight());
  if (!compatible(w[1], in[2]))
    return emitOpError() << "head weight " << shapeStr(w)
                         << " does not take inputs of width " << in[2];
  if (getL2wrap().convertToFloat() < 0.0f)
    return emitOpError("l2wrap must not be negative");
  return expectShape(op, getTargets(), "targets", {in[0], in[1]});
}

LogicalResult CrossEntropyGradOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getInput(), "input", 3, "[B, T, C]")) ||
      failed(expectRank(op, getWeight(), "weight", 2, "[V, C]")))
    return failure();
  ArrayRef<int64_t> in = shapeOf(getInput()), w = shapeOf(getWeight());
  if (!compatible(w[1], in[2]))
    return emitOpError() << "head weight " << shapeStr(w)
                         << " does not take inputs of width " << in[2];
  if (getL2wrap().convertToFloat() < 0.0f)
    return emitOpError("l2wrap must not be negative");
  if (failed(expectShape(op, getTargets(), "targets", {in[0], in[1]})) ||
      failed(expectSameShape(op, getInputGrad(), "input_grad", getInput())))
    return failure();
  return expectSameShape(op, getWeightGrad(), "weight_grad", getWeight());
}

LogicalResult EmbedGradOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getTokens(), "tokens", 2, "[B, T]")) ||
      failed(expectRank(op, getTableGrad(), "table_grad", 2, "[V, C]")))
    return failure();
  ArrayRef<int64_t> tok = shapeOf(getTokens());
  return expectShape(op, getResultGrad(), "result_grad",
                     {tok[0], tok[1], shapeOf(getTableGrad())[1]});
}

/// LayerNorm / GroupNorm gradients: `[.., C]` input and result gradient,
/// `[C]` weight and parameter gradients.
static LogicalResult verifyNormGrad(Operation *op, Value input, Value weight,
                                    Value resultGrad, Value inputGrad,
                                    Value weightGrad, Value biasGrad,
                                    const APFloat &eps) {
  ArrayRef<int64_t> in = shapeOf(input);
  if (in.empty())
    return op->emitOpError("'input' must have rank >= 1");
  if (failed(expectShape(op, weight, "weight", {in.back()})) ||
      failed(expectSameShape(op, resultGrad, "result_grad", input)) ||
      failed(expectSameShape(op, inputGrad, "input_grad", input)) ||
      failed(expectShape(op, weightGrad, "weight_grad", {in.back()})) ||
      failed(expectShape(op, biasGrad, "bias_grad", {in.back()})))
    return failure();
  return expectPositive(op, eps, "epsilon");
}

LogicalResult LayerNormGradOp::verify() {
  return verifyNormGrad(getOperation(), getInput(), getWeight(),
                        getResultGrad(), getInputGrad(), getWeightGrad(),
                        getBiasGrad(), getEpsilon());
}

LogicalResult GroupNormGradOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getInput(), "input", 3, "[B, T, C]")) ||
      failed(expectDivisible(op, shapeOf(getInput())[2], getNumGroups(),
                             "num_groups")))
    return failure();
  return verifyNormGrad(op, getInput(), getWeight(), getResultGrad(),
                        getInputGrad(), getWeightGrad(), getBiasGrad(),
                        getEpsilon());
}

LogicalResult L2NormalizeGradOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getInput(), "input", 3, "[B, T, C]")) ||
      failed(expectDivisible(op, shapeOf(getInput())[2], getNumHeads(),
                             "num_heads")))
    return failure();
  return expectPositive(op, getEpsilon(), "epsilon");
}

LogicalResult WKVGradOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getR(), "r", 3, "[B, T, C]")) ||
      failed(verifyWkvState(op, getState(), "state", shapeOf(getR()))))
    return failure();
  if (getChunkLengthAttr().getInt() <= 0)
    return emitOpError() << "chunk_length must be positive, got "
                         << getChunkLengthAttr().getInt();
  return success();
}

//===----------------------------------------------------------------------===//
// Composite ops
//===----------------------------------------------------------------------===//

/// A `[in, rank]` x `[rank, out]` pair.
static LogicalResult expectLoraPair(Operation *op, Value down, Value up,
                                    StringRef downName, StringRef upName,
                                    int64_t c) {
  if (failed(expectRank(op, down, downName, 2, "[C, rank]")) ||
      failed(expectRank(op, up, upName, 2, "[rank, C]")))
    return failure();
  ArrayRef<int64_t> d = shapeOf(down), u = shapeOf(up);
  if (!compatible(d[0], c) || !compatible(u[1], c))
    return op->emitOpError()
           << "'" << downName << "' " << shapeStr(d) << " and '" << upName
           << "' " << shapeStr(u) << " must map " << c << " channels to " << c;
  if (!compatible(d[1], u[0]))
    return op->emitOpError()
           << "LoRA ranks disagree: '" << downName << "' is " << shapeStr(d)
           << " but '" << upName << "' is " << shapeStr(u);
  return success();
}

LogicalResult TimeMixOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getInput(), "input", 3, "[B, T, C]")))
    return failure();
  ArrayRef<int64_t> in = shapeOf(getInput());
  int64_t c = in[2];
  if (failed(expectShape(op, getShiftState(), "shift_state", {in[0], c})) ||
      failed(verifyWkvState(op, getWkvState(), "wkv_state", in)))
    return failure();
  if (getVFirst() &&
      failed(expectSameShape(op, getVFirst(), "v_first", getInput())))
    return failure();

  Value vectors[] = {getXR(), getXW(),        getXK(),     getXV(), getXA(),
                     getXG(), getW0(),        getA0(),     getKK(), getKA(),
                     getRK(), getLnXWeight(), getLnXBias()};
  StringRef vectorNames[] = {"x_r", "x_w",         "x_k",      "x_v", "x_a",
                             "x_g", "w0",          "a0",       "k_k", "k_a",
                             "r_k", "ln_x_weight", "ln_x_bias"};
  for (auto [v, name] : llvm::zip_equal(vectors, vectorNames))
    if (failed(expectShape(op, v, name, {c})))
      return failure();
  if (failed(expectLoraPair(op, getW1(), getW2(), "w1", "w2", c)) ||
      failed(expectLoraPair(op, getA1(), getA2(), "a1", "a2", c)) ||
      failed(expectLoraPair(op, getG1(), getG2(), "g1", "g2", c)))
    return failure();
  Value projections[] = {getReceptance(), getKey(), getValue(), getOutput()};
  StringRef projectionNames[] = {"receptance", "key", "value", "output"};
  for (auto [v, name] : llvm::zip_equal(projections, projectionNames))
    if (failed(expectShape(op, v, name, {c, c})))
      return failure();

  // Layer 0 defines v_first; every later layer consumes it through the
  // value-residual LoRA. Mixing the two forms is malformed.
  bool hasResidual = getV0() || getV1() || getV2();
  if (hasResidual && !(getV0() && getV1() && getV2()))
    return emitOpError("value_residual needs all of v0, v1 and v2");
  if (getVFirst() && !hasResidual)
    return emitOpError("a layer that takes v_first needs value_residual "
                       "weights (v0, v1, v2)");
  if (!getVFirst() && hasResidual)
    return emitOpError("value_residual weights given without v_first: layer "
                       "0 defines v_first and takes no residual");
  if (hasResidual &&
      (failed(expectShape(op, getV0(), "v0", {c})) ||
       failed(expectLoraPair(op, getV1(), getV2(), "v1", "v2", c))))
    return failure();

  if (getChunkLengthAttr().getInt() <= 0)
    return emitOpError() << "chunk_length must be positive, got "
                         << getChunkLengthAttr().getInt();
  if (failed(expectSameShape(op, getResult(), "result", getInput())) ||
      failed(expectSameShape(op, getNewShiftState(), "new_shift_state",
                             getShiftState())) ||
      failed(expectSameShape(op, getNewWkvState(), "new_wkv_state",
                             getWkvState())))
    return failure();
  return expectSameShape(op, getVFirstOut(), "v_first_out", getInput());
}

LogicalResult ChannelMixOp::verify() {
  Operation *op = getOperation();
  if (failed(expectRank(op, getInput(), "input", 3, "[B, T, C]")))
    return failure();
  ArrayRef<int64_t> in = shapeOf(getInput());
  int64_t c = in[2];
  if (failed(expectShape(op, getShiftState(), "shift_state", {in[0], c})) ||
      failed(expectShape(op, getXK(), "x_k", {c})) ||
      failed(expectRank(op, getKey(), "key", 2, "[F, C]")))
    return failure();
  int64_t f = shapeOf(getKey())[0];
  if (failed(expectShape(op, getKey(), "key", {f, c})) ||
      failed(expectShape(op, getValue(), "value", {c, f})))
    return failure();
  if (failed(expectSameShape(op, getResult(), "result", getInput())))
    return failure();
  return expectSameShape(op, getNewShiftState(), "new_shift_state",
                         getShiftState());
}

//===----------------------------------------------------------------------===//
// Structure ops
//===----------------------------------------------------------------------===//

LogicalResult BlockOp::verify() {
  if (getLayerAttr().getInt() < 0)
    return emitOpError() << "layer index must be non-negative, got "
                         << getLayerAttr().getInt();
  auto yield = llvm::cast<YieldOp>(getBody().front().getTerminator());
  if (yield.getValues().getTypes() != getResultTypes())
    return emitOpError() << "yields " << yield.getValues().size()
                         << " values whose types do not match its "
                         << getNumResults() << " results";
  return success();
}

LogicalResult ModelOp::verify() {
  if (getSymName().empty())
    return emitOpError("needs a non-empty name");
  return success();
}

LogicalResult ModelOp::verifyRegions() {
  ModelConfigAttr config = getConfig();
  int64_t c = config.getNEmbd(), h = config.getNHead(),
          n = config.getHeadSize();
  unsigned entries = 0;
  for (Operation &op : getBody().front()) {
    auto fn = dyn_cast<FunctionOpInterface>(&op);
    if (!fn || !fn.isPublic() || fn.isExternal())
      continue;
    ++entries;
    ArrayRef<Type> inputs = fn.getArgumentTypes();
    auto tokens = inputs.empty() ? RankedTensorType()
                                 : dyn_cast<RankedTensorType>(inputs[0]);
    if (!tokens || tokens.getRank() != 2 ||
        !tokens.getElementType().isSignlessInteger())
      return emitOpError() << "entry point '" << fn.getName()
                           << "' must take token ids [B, T] first";
    for (unsigned i = 0, e = inputs.size(); i < e; ++i) {
      auto tag = fn.getArgAttrOfType<StringAttr>(i, "rwkv.state");
      if (!tag)
        continue;
      auto type = dyn_cast<RankedTensorType>(inputs[i]);
      SmallVector<int64_t> expected = {tokens.getDimSize(0)};
      if (tag.getValue().starts_with("wkv"))
        expected.append({h, n, n});
      else
        expected.push_back(c);
      bool ok = type && type.getElementType().isF32() &&
                type.getRank() == int64_t(expected.size());
      for (size_t d = 0; ok && d < expected.size(); ++d)
        ok = compatible(type.getDimSize(d), expected[d]);
      if (!ok)
        return emitOpError()
               << "entry point '" << fn.getName() << "' state argument #" << i
               << " (" << tag.getValue() << ") has type " << inputs[i]
               << " but the config implies f32 " << shapeStr(expected);
    }
  }
  if (entries == 0)
    return emitOpError("has no public entry-point function");
  return success();
}

#include "dialect/RWKVInterfaces.cpp.inc"

#define GET_OP_CLASSES
#include "dialect/RWKVOps.cpp.inc"
