//===- ModelBuilder.cpp - RWKV model importer -----------------------------===//
//
// Mirrors scripts/gen_example_model.py for any shape: embed -> ln0 -> L x
// rwkv.block {ln1, time_mix, residual, ln2, channel_mix, residual} -> ln_out
// -> head, once per entry point of docs/ABI.md. The layer body of RWKV-4,
// 5.2 and 6 comes from LayerBuilder.h (one file per version).
//
//===----------------------------------------------------------------------===//

#include "models/ModelBuilder.h"
#include "models/LayerBuilder.h"

#include "dialect/RWKVDialect.h"
#include "dialect/RWKVOps.h"
#include "models/TensorSpecs.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/raw_ostream.h"

#include <tuple>

using namespace mlir;
using namespace mlir::rwkv;

namespace {

std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << '[';
  llvm::interleaveComma(shape, os);
  os << ']';
  return s;
}

/// The element type a checkpoint dtype is bound as, or null if weights of
/// that dtype are not supported.
Type elementType(MLIRContext &ctx, ::rwkv::DType dtype) {
  switch (dtype) {
  case ::rwkv::DType::F32:
    return Float32Type::get(&ctx);
  case ::rwkv::DType::F16:
    return Float16Type::get(&ctx);
  case ::rwkv::DType::BF16:
    return BFloat16Type::get(&ctx);
  default:
    return {};
  }
}

/// The key suffix of the scales of an int8 or int4 matrix (rwkv-quantize).
constexpr llvm::StringLiteral kScaleSuffix = "_scale";

/// One weight argument: checkpoint key and squeezed type.
struct WeightArg {
  std::string key;
  RankedTensorType type;
  /// A packed int4 matrix: u8 `[out, in / 2]` in the checkpoint, bound as
  /// i8 bytes (arith has no unsigned types); the argument says "u8" to the
  /// runtime through `rwkv.dtype` (docs/ABI.md).
  bool packedInt4 = false;
};

/// The entry points of docs/ABI.md.
struct EntryPoint {
  StringRef name;
  WKVMode mode;
  HeadPositions positions;
};

class ModelModuleBuilder {
public:
  ModelModuleBuilder(MLIRContext &ctx, const ::rwkv::ModelConfig &config,
                     ArrayRef<WeightArg> weightArgs,
                     const ModelBuildOptions &opts)
      : ctx(ctx), cfg(config), opts(opts), weightArgs(weightArgs), b(&ctx) {
    for (auto [i, w] : llvm::enumerate(weightArgs))
      weightIndex[w.key] = i;
    Type f32 = Float32Type::get(&ctx);
    int64_t batch = opts.batch, c = cfg.n_embd;
    actTy = RankedTensorType::get({batch, ShapedType::kDynamic, c}, f32);
    shiftTy = RankedTensorType::get({batch, c}, f32);
    wkvTy = RankedTensorType::get(
        {batch, cfg.n_head, cfg.head_size, cfg.head_size}, f32);
    tokensTy = RankedTensorType::get({batch, ShapedType::kDynamic},
                                     IntegerType::get(&ctx, 32));
    if (cfg.version == 4)
      slots = rwkv4StateSlots(shiftTy);
    else
      slots = {{"att_shift", shiftTy}, {"wkv", wkvTy}, {"ffn_shift", shiftTy}};
  }

  OwningOpRef<ModuleOp> build() {
    Location loc = NameLoc::get(b.getStringAttr(
        cfg.version == 7 ? std::string("rwkv7")
                         : "rwkv" + std::to_string(cfg.version)));
    OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
    module->getOperation()->setAttr(
        "rwkv.config",
        ModelConfigAttr::get(&ctx, cfg.version, cfg.n_layer, cfg.n_embd,
                             cfg.n_head, cfg.head_size, cfg.dim_ffn,
                             cfg.vocab_size, cfg.lora_w, cfg.lora_a, cfg.lora_v,
                             cfg.lora_g));
    module->getOperation()->setAttr("rwkv.batch",
                                    b.getI64IntegerAttr(opts.batch));
    b.setInsertionPointToEnd(module->getBody());
    if (opts.trainContext > 0) {
      module->getOperation()->setAttr(
          "rwkv.train",
          b.getDictionaryAttr(
              {b.getNamedAttr("context",
                              b.getI64IntegerAttr(opts.trainContext)),
               b.getNamedAttr("ignore_index",
                              b.getI64IntegerAttr(opts.ignoreIndex)),
               b.getNamedAttr("l2wrap", b.getF64FloatAttr(opts.l2wrap)),
               b.getNamedAttr("recompute_layers",
                              b.getBoolAttr(opts.recomputeLayers))}));
      buildTrainLoss(loc);
      return module;
    }
    const EntryPoint entries[] = {
        {"rwkv_step", WKVMode::sequential, HeadPositions::last},
        {"rwkv_forward", WKVMode::chunked, HeadPositions::last},
        {"rwkv_forward_all", WKVMode::chunked, HeadPositions::all},
    };
    for (const EntryPoint &entry : entries)
      buildEntry(loc, entry);
    return module;
  }

private:
  void buildEntry(Location loc, const EntryPoint &entry) {
    const int64_t numLayers = cfg.n_layer;
    // Arguments: tokens, per-layer state, weights (docs/ABI.md).
    const int64_t numSlots = slots.size();
    SmallVector<Type> argTypes{tokensTy};
    SmallVector<Type> stateTypes;
    for (int64_t l = 0; l < numLayers; ++l)
      for (const StateSlot &slot : slots)
        stateTypes.push_back(slot.type);
    argTypes.append(stateTypes);
    for (const WeightArg &w : weightArgs)
      argTypes.push_back(w.type);
    int64_t logitsT =
        entry.positions == HeadPositions::last ? 1 : ShapedType::kDynamic;
    auto logitsTy = RankedTensorType::get({opts.batch, logitsT, cfg.vocab_size},
                                          Float32Type::get(&ctx));
    SmallVector<Type> resultTypes{logitsTy};
    resultTypes.append(stateTypes);

    OpBuilder::InsertionGuard guard(b);
    auto func = func::FuncOp::create(b, loc, entry.name,
                                     b.getFunctionType(argTypes, resultTypes));
    for (int64_t l = 0; l < numLayers; ++l) {
      for (auto [s, slot] : llvm::enumerate(slots)) {
        unsigned arg = 1 + numSlots * l + s;
        func.setArgAttr(arg, "rwkv.state",
                        b.getStringAttr(slot.name + ":" + llvm::Twine(l)));
        if (slot.init != 0.0f)
          func.setArgAttr(arg, "rwkv.state_init", b.getF32FloatAttr(slot.init));
      }
    }
    weightBase = 1 + numSlots * numLayers;
    for (auto [i, w] : llvm::enumerate(weightArgs)) {
      func.setArgAttr(weightBase + i, "rwkv.weight", b.getStringAttr(w.key));
      if (w.packedInt4)
        func.setArgAttr(weightBase + i, "rwkv.dtype", b.getStringAttr("u8"));
    }

    Block *body = func.addEntryBlock();
    b.setInsertionPointToStart(body);
    this->func = func;

    Value tokens = body->getArgument(0);
    Value x = EmbedOp::create(b, loc, actTy, weight("emb.weight"), tokens);
    x = layerNorm(loc, x, "blocks.0.ln0.weight", "blocks.0.ln0.bias");

    SmallVector<Value> newStates;
    Value vFirst;
    for (int64_t l = 0; l < numLayers; ++l) {
      if (cfg.version != 7) {
        BlockOp block = buildOlderLayer(
            l, x, body->getArguments().slice(1 + numSlots * l, numSlots));
        x = block.getResult(0);
        llvm::append_range(newStates, block.getResults().drop_front());
        continue;
      }
      Value states[3] = {body->getArgument(1 + 3 * l),
                         body->getArgument(2 + 3 * l),
                         body->getArgument(3 + 3 * l)};
      BlockOp block = buildLayer(l, x, states, vFirst, entry.mode);
      x = block.getResult(0);
      newStates.append(
          {block.getResult(1), block.getResult(2), block.getResult(3)});
      vFirst = block.getResult(4);
    }

    x = layerNorm(loc, x, "ln_out.weight", "ln_out.bias");
    Value logits = HeadOp::create(b, loc, logitsTy, x, weight("head.weight"),
                                  entry.positions);
    SmallVector<Value> results{logits};
    results.append(newStates);
    func::ReturnOp::create(b, loc, results);
  }

  /// `rwkv_train_loss(tokens, targets, wkv0..., weights...) -> loss`: the
  /// training forward of spec §2.1 on [B, T] (token shifts start at zero,
  /// the WKV states at the given initial states), ending in the fused head
  /// and cross-entropy.
  void buildTrainLoss(Location loc) {
    const int64_t numLayers = cfg.n_layer, batch = opts.batch;
    Type f32 = Float32Type::get(&ctx);
    actTy = RankedTensorType::get({batch, opts.trainContext, cfg.n_embd}, f32);
    tokensTy = RankedTensorType::get({batch, opts.trainContext},
                                     IntegerType::get(&ctx, 32));
    SmallVector<Type> argTypes{tokensTy, tokensTy};
    for (int64_t l = 0; l < numLayers; ++l)
      argTypes.push_back(wkvTy);
    for (const WeightArg &w : weightArgs)
      argTypes.push_back(w.type);
    auto lossTy = RankedTensorType::get({}, f32);

    OpBuilder::InsertionGuard guard(b);
    auto func = func::FuncOp::create(b, loc, "rwkv_train_loss",
                                     b.getFunctionType(argTypes, {lossTy}));
    func->setAttr("rwkv.gradient", b.getStringAttr("rwkv_train_step"));
    if (opts.recomputeLayers)
      func->setAttr("rwkv.recompute_layers", b.getUnitAttr());
    func.setArgAttr(1, "rwkv.input", b.getStringAttr("targets"));
    // The callee must not write into any argument: the backward re-reads the
    // initial states, and callers reuse tokens, weights and states across
    // steps (one-shot-bufferize copies instead of updating in place).
    for (unsigned i = 0; i < argTypes.size(); ++i)
      func.setArgAttr(i, "bufferization.writable", b.getBoolAttr(false));
    for (int64_t l = 0; l < numLayers; ++l)
      func.setArgAttr(2 + l, "rwkv.state",
                      b.getStringAttr("wkv:" + llvm::Twine(l)));
    weightBase = 2 + numLayers;
    for (auto [i, w] : llvm::enumerate(weightArgs))
      func.setArgAttr(weightBase + i, "rwkv.weight", b.getStringAttr(w.key));
    func.setResultAttr(0, "rwkv.result", b.getStringAttr("loss"));

    Block *body = func.addEntryBlock();
    b.setInsertionPointToStart(body);
    this->func = func;
    Value x = EmbedOp::create(b, loc, actTy, weight("emb.weight"),
                              body->getArgument(0));
    x = layerNorm(loc, x, "blocks.0.ln0.weight", "blocks.0.ln0.bias");
    Value zeroShift = arith::ConstantOp::create(
        b, loc,
        DenseElementsAttr::get(shiftTy, b.getF32FloatAttr(0.0f).getValue()));
    Value vFirst;
    WKVMode mode = opts.trainChunked ? WKVMode::chunked : WKVMode::sequential;
    for (int64_t l = 0; l < numLayers; ++l) {
      Value states[3] = {zeroShift, body->getArgument(2 + l), zeroShift};
      BlockOp block = buildLayer(l, x, states, vFirst, mode);
      x = block.getResult(0);
      vFirst = block.getResult(4);
    }
    x = layerNorm(loc, x, "ln_out.weight", "ln_out.bias");
    Value loss = CrossEntropyOp::create(
        b, loc, lossTy, x, weight("head.weight"), body->getArgument(1),
        b.getI64IntegerAttr(opts.ignoreIndex),
        b.getF32FloatAttr(static_cast<float>(opts.l2wrap)));
    func::ReturnOp::create(b, loc, loss);
  }

  /// One `rwkv.block`; yields the residual stream, the three new states and
  /// v_first (defined by layer 0, forwarded by the others).
  BlockOp buildLayer(int64_t l, Value x, Value (&states)[3], Value vFirst,
                     WKVMode mode) {
    std::string p = "blocks." + std::to_string(l) + ".";
    std::string a = p + "att.";
    Location loc = NameLoc::get(b.getStringAttr("blocks." + std::to_string(l)));
    auto w = [&](const std::string &key) { return weight(key); };

    auto block = BlockOp::create(
        b, loc, TypeRange{actTy, shiftTy, wkvTy, shiftTy, actTy},
        static_cast<uint64_t>(l));
    OpBuilder::InsertionGuard guard(b);
    b.createBlock(&block.getBody());

    Value xa = layerNorm(loc, x, p + "ln1.weight", p + "ln1.bias");
    // Layer 0 defines v_first and takes no value-residual weights.
    bool first = !vFirst;
    Value v0 = first ? Value() : w(a + "v0");
    Value v1 = first ? Value() : w(a + "v1");
    Value v2 = first ? Value() : w(a + "v2");
    auto att = TimeMixOp::create(
        b, loc, actTy, shiftTy, wkvTy, actTy, xa, states[0], states[1], vFirst,
        w(a + "x_r"), w(a + "x_w"), w(a + "x_k"), w(a + "x_v"), w(a + "x_a"),
        w(a + "x_g"), w(a + "w0"), w(a + "w1"), w(a + "w2"), w(a + "a0"),
        w(a + "a1"), w(a + "a2"), v0, v1, v2, w(a + "g1"), w(a + "g2"),
        w(a + "k_k"), w(a + "k_a"), w(a + "r_k"), w(a + "receptance.weight"),
        w(a + "key.weight"), w(a + "value.weight"), w(a + "output.weight"),
        w(a + "ln_x.weight"), w(a + "ln_x.bias"), mode,
        static_cast<uint64_t>(opts.chunkLength));
    Value x1 = arith::AddFOp::create(b, loc, x, att.getResult());
    Value xf = layerNorm(loc, x1, p + "ln2.weight", p + "ln2.bias");
    auto ffn = ChannelMixOp::create(b, loc, actTy, shiftTy, xf, states[2],
                                    w(p + "ffn.x_k"), w(p + "ffn.key.weight"),
                                    w(p + "ffn.value.weight"));
    Value x2 = arith::AddFOp::create(b, loc, x1, ffn.getResult());
    YieldOp::create(b, loc,
                    ValueRange{x2, att.getNewShiftState(), att.getNewWkvState(),
                               ffn.getNewShiftState(), att.getVFirstOut()});
    return block;
  }

  /// One RWKV-4/5.2/6 `rwkv.block`; yields the residual stream and the new
  /// states in slot order.
  BlockOp buildOlderLayer(int64_t l, Value x, ValueRange states) {
    Location loc = NameLoc::get(b.getStringAttr("blocks." + std::to_string(l)));
    SmallVector<Type> types{actTy};
    for (Value s : states)
      types.push_back(s.getType());
    auto block = BlockOp::create(b, loc, types, static_cast<uint64_t>(l));
    OpBuilder::InsertionGuard guard(b);
    b.createBlock(&block.getBody());
    auto lookup = [&](const std::string &key) { return weight(key); };
    LayerContext layer{b,
                       loc,
                       lookup,
                       actTy,
                       shiftTy,
                       cfg.n_head,
                       "blocks." + std::to_string(l) + "."};
    RWKV5Variant variant;
    variant.v6 = cfg.version == 6;
    variant.perHead = cfg.version == 5 && cfg.versionString != "5.2";
    variant.logBonus = cfg.logBonus;
    variant.gate = cfg.versionString != "5.0";
    SmallVector<Value> results =
        cfg.version == 4 ? buildRWKV4Layer(layer, x, states)
                         : buildRWKV5Layer(layer, variant, x, states);
    YieldOp::create(b, loc, results);
    return block;
  }

  Value layerNorm(Location loc, Value x, StringRef weightKey,
                  StringRef biasKey) {
    return LayerNormOp::create(b, loc, actTy, x, weight(weightKey),
                               weight(biasKey), llvm::APFloat(1.0e-5f));
  }

  /// The argument bound to checkpoint key `key`; every key used here was
  /// checked against the spec list before building. An int8 or packed int4
  /// matrix is bound with its `<key>_scale` argument through
  /// `rwkv.dequantize` (int4 and grouped int8: with the group size the
  /// scales' shape implies), created where it is used (inside the layer's
  /// block, so outlining takes the quantized arguments with it); the
  /// projections fold it (canonicalization).
  Value weight(StringRef key) {
    auto it = weightIndex.find(key);
    assert(it != weightIndex.end() && "weight not in the spec list");
    Value arg = func.getArgument(weightBase + it->second);
    auto type = cast<RankedTensorType>(arg.getType());
    if (!type.getElementType().isInteger(8))
      return arg;
    Value scale = weight((key + kScaleSuffix).str());
    Type f32 = Float32Type::get(&ctx);
    auto scaleType = cast<RankedTensorType>(scale.getType());
    if (!weightArgs[it->second].packedInt4) {
      // int8: per row, or per group when the scales are a matrix.
      if (scaleType.getRank() == 1)
        return DequantizeOp::create(b, arg.getLoc(), type.clone(f32), arg,
                                    scale, IntegerAttr(), UnitAttr());
      return DequantizeOp::create(
          b, arg.getLoc(), type.clone(f32), arg, scale,
          b.getI64IntegerAttr(type.getDimSize(1) / scaleType.getDimSize(1)),
          b.getUnitAttr());
    }
    int64_t rows = type.getDimSize(0), cols = 2 * type.getDimSize(1);
    int64_t groups = cast<RankedTensorType>(scale.getType()).getDimSize(1);
    return DequantizeOp::create(
        b, arg.getLoc(), RankedTensorType::get({rows, cols}, f32), arg, scale,
        b.getI64IntegerAttr(cols / groups), UnitAttr());
  }

  MLIRContext &ctx;
  const ::rwkv::ModelConfig &cfg;
  const ModelBuildOptions &opts;
  ArrayRef<WeightArg> weightArgs;
  llvm::StringMap<unsigned> weightIndex;
  OpBuilder b;
  RankedTensorType actTy, shiftTy, wkvTy, tokensTy;
  SmallVector<StateSlot> slots;
  func::FuncOp func;
  unsigned weightBase = 0;
};

/// The ABI type of a checkpoint tensor: unit dims of `[1, 1, C]` squeezed and
/// `r_k` `[H, N]` flattened, both views of the same contiguous bytes.
SmallVector<int64_t> squeezedShape(StringRef key, ArrayRef<int64_t> shape) {
  if (shape.size() == 3 && shape[0] == 1 && shape[1] == 1)
    return {shape[2]};
  if ((key.ends_with(".att.r_k") || key.ends_with(".att.time_faaaa") ||
       key.ends_with(".att.time_decay")) &&
      shape.size() == 2)
    return {shape[0] * shape[1]};
  return SmallVector<int64_t>(shape);
}

bool isLayer0ValueResidual(StringRef key) {
  return key == "blocks.0.att.v0" || key == "blocks.0.att.v1" ||
         key == "blocks.0.att.v2";
}

} // namespace

FailureOr<OwningOpRef<ModuleOp>> mlir::rwkv::buildRWKVModule(
    MLIRContext &ctx, const ::rwkv::ModelConfig &config,
    ArrayRef<WeightInfo> weights, const ModelBuildOptions &opts,
    llvm::function_ref<void(const llvm::Twine &)> emitError) {
  const int version = config.version;
  const StringRef v5 = config.versionString;
  if (version != 4 && version != 6 && version != 7 &&
      !(version == 5 && (v5 == "5.0" || v5 == "5.1" || v5 == "5.2"))) {
    emitError("unsupported RWKV version " + llvm::Twine(version) + " ('" +
              config.versionString +
              "'): the importer builds RWKV-4, 5.0, 5.1, 5.2, 6 (x060) and "
              "7 (x070)");
    return failure();
  }
  if (version != 7 && opts.trainContext != 0) {
    emitError("training is implemented for RWKV-7 (x070) only, not for "
              "RWKV-" +
              llvm::Twine(config.versionString));
    return failure();
  }
  // Which hyper-parameters the version has (RWKV-4 has no heads; only 7
  // and 6's decay have LoRAs).
  bool heads = version >= 5, v7 = version == 7;
  const std::tuple<const char *, int64_t, bool> dims[] = {
      {"n_layer", config.n_layer, true},
      {"n_embd", config.n_embd, true},
      {"n_head", config.n_head, heads},
      {"head_size", config.head_size, heads},
      {"dim_ffn", config.dim_ffn, true},
      {"vocab_size", config.vocab_size, true},
      {"lora_w", config.lora_w, v7 || version == 6},
      {"lora_a", config.lora_a, v7},
      {"lora_v", config.lora_v, v7},
      {"lora_g", config.lora_g, v7}};
  for (auto [name, value, needed] : dims) {
    if (needed && value <= 0) {
      emitError(llvm::Twine("config ") + name + " must be positive, got " +
                llvm::Twine(value));
      return failure();
    }
  }
  if (heads && config.n_head * config.head_size != config.n_embd) {
    emitError("config n_head * head_size (" + llvm::Twine(config.n_head) +
              " * " + llvm::Twine(config.head_size) + ") must equal n_embd (" +
              llvm::Twine(config.n_embd) + ")");
    return failure();
  }
  if (opts.trainContext < 0) {
    emitError("training context must be positive, got " +
              llvm::Twine(opts.trainContext));
    return failure();
  }
  if (opts.batch <= 0 || opts.chunkLength <= 0) {
    emitError("batch (" + llvm::Twine(opts.batch) + ") and chunk length (" +
              llvm::Twine(opts.chunkLength) + ") must be positive");
    return failure();
  }

  // The ABI order is the spec order without layer-0 v0/v1/v2, whether or not
  // the checkpoint holds them.
  ::rwkv::ModelConfig specConfig = config;
  specConfig.layer0HasV = false;
  std::vector<::rwkv::TensorSpec> specs;
  std::string specError;
  if (!detail::getTensorSpecs(specConfig, specs, specError)) {
    emitError("cannot list the model's tensors: " + llvm::Twine(specError));
    return failure();
  }

  llvm::StringMap<const WeightInfo *> byName;
  for (const WeightInfo &w : weights) {
    if (!byName.try_emplace(w.name, &w).second) {
      emitError("weight '" + llvm::Twine(w.name) + "' is given twice");
      return failure();
    }
  }

  SmallVector<WeightArg> weightArgs;
  weightArgs.reserve(specs.size());
  for (const ::rwkv::TensorSpec &spec : specs) {
    if (isLayer0ValueResidual(spec.name))
      continue;
    auto it = byName.find(spec.name);
    if (it == byName.end()) {
      emitError("missing weight '" + llvm::Twine(spec.name) +
                "' (expected shape " + shapeStr(spec.shape) + ")");
      return failure();
    }
    const WeightInfo &w = *it->second;
    // A packed int4 matrix (u8) holds two columns per byte.
    const bool int4 = w.dtype == ::rwkv::DType::U8;
    if ((int4 || w.dtype == ::rwkv::DType::I8) &&
        !detail::isQuantizableMatrixNoThrow(spec.name)) {
      emitError("weight '" + llvm::Twine(spec.name) + "' is " +
                (int4 ? "int4" : "int8") +
                ", but only the embedding, head and linear-layer "
                "matrices may be quantized");
      return failure();
    }
    std::vector<int64_t> logical = w.shape;
    if (int4 && logical.size() == 2)
      logical[1] *= 2;
    if (logical != spec.shape) {
      emitError(
          "weight '" + llvm::Twine(spec.name) + "' has shape " +
          shapeStr(w.shape) +
          (int4 ? " (packed int4: two columns per byte)" : "") + ", expected " +
          shapeStr(int4 && spec.shape.size() == 2
                       ? std::vector<int64_t>{spec.shape[0], spec.shape[1] / 2}
                       : spec.shape));
      return failure();
    }
    if (w.dtype == ::rwkv::DType::I8 || int4) {
      const char *kind = int4 ? "int4" : "int8";
      if (opts.trainContext > 0) {
        emitError("weight '" + llvm::Twine(spec.name) + "' is " + kind +
                  ": a quantized checkpoint cannot be trained "
                  "(train the float checkpoint, then rwkv-quantize it)");
        return failure();
      }
      std::string scaleKey = spec.name + kScaleSuffix.str();
      auto sit = byName.find(scaleKey);
      auto i8 = IntegerType::get(&ctx, 8);
      if (int4) {
        // bf16 scales [out, in / G], G even and dividing `in`.
        const WeightInfo *sc = sit == byName.end() ? nullptr : sit->second;
        int64_t in = spec.shape[1];
        bool ok = sc && sc->dtype == ::rwkv::DType::BF16 &&
                  sc->shape.size() == 2 && sc->shape[0] == spec.shape[0] &&
                  sc->shape[1] > 0 && in % sc->shape[1] == 0 &&
                  (in / sc->shape[1]) % 2 == 0;
        if (!ok) {
          emitError("int4 weight '" + llvm::Twine(spec.name) +
                    "' needs per-group scales '" + scaleKey + "' (bf16 [" +
                    llvm::Twine(spec.shape[0]) + ", " + llvm::Twine(in) +
                    " / G], G even)" +
                    (sc ? std::string(", found ") +
                              detail::dtypeNameNoThrow(sc->dtype) + " " +
                              shapeStr(sc->shape)
                        : std::string()));
          return failure();
        }
        WeightArg q{spec.name,
                    RankedTensorType::get({spec.shape[0], in / 2}, i8)};
        q.packedInt4 = true;
        weightArgs.push_back(q);
        weightArgs.push_back(
            {scaleKey,
             RankedTensorType::get(sc->shape, BFloat16Type::get(&ctx))});
        continue;
      }
      // Grouped int8 (llama.cpp's Q8_0, rwkv-quantize --group): bf16 or
      // f32 scales [out, in / G], G dividing `in`.
      if (sit != byName.end() && sit->second->shape.size() == 2) {
        const WeightInfo *sc = sit->second;
        int64_t in = spec.shape[1];
        if ((sc->dtype != ::rwkv::DType::BF16 &&
             sc->dtype != ::rwkv::DType::F32) ||
            sc->shape[0] != spec.shape[0] || sc->shape[1] <= 0 ||
            in % sc->shape[1] != 0) {
          emitError("int8 weight '" + llvm::Twine(spec.name) +
                    "' has per-group scales '" + scaleKey + "' " +
                    detail::dtypeNameNoThrow(sc->dtype) + " " +
                    shapeStr(sc->shape) + ", expected bf16 or f32 [" +
                    llvm::Twine(spec.shape[0]) + ", " + llvm::Twine(in) +
                    " / G]");
          return failure();
        }
        weightArgs.push_back(
            {spec.name, RankedTensorType::get(spec.shape, i8)});
        weightArgs.push_back(
            {scaleKey, RankedTensorType::get(
                           sc->shape, sc->dtype == ::rwkv::DType::BF16
                                          ? Type(BFloat16Type::get(&ctx))
                                          : Type(Float32Type::get(&ctx)))});
        continue;
      }
      std::vector<int64_t> scaleShape = {spec.shape[0]};
      if (sit == byName.end()) {
        emitError("int8 weight '" + llvm::Twine(spec.name) +
                  "' has no per-row scales '" + scaleKey + "' (expected f32 " +
                  shapeStr(scaleShape) + ")");
        return failure();
      }
      if (sit->second->dtype != ::rwkv::DType::F32 ||
          sit->second->shape != scaleShape) {
        emitError("scales '" + llvm::Twine(scaleKey) + "' are " +
                  detail::dtypeNameNoThrow(sit->second->dtype) + " " +
                  shapeStr(sit->second->shape) + ", expected f32 " +
                  shapeStr(scaleShape));
        return failure();
      }
      weightArgs.push_back({spec.name, RankedTensorType::get(spec.shape, i8)});
      weightArgs.push_back({scaleKey, RankedTensorType::get(
                                          scaleShape, Float32Type::get(&ctx))});
      continue;
    }
    Type elemTy = elementType(ctx, w.dtype);
    if (!elemTy) {
      emitError("weight '" + llvm::Twine(spec.name) + "' has dtype " +
                detail::dtypeNameNoThrow(w.dtype) +
                ", expected bf16, f16 or f32");
      return failure();
    }
    weightArgs.push_back(
        {spec.name,
         RankedTensorType::get(squeezedShape(spec.name, spec.shape), elemTy)});
  }

  ctx.loadDialect<RWKVDialect, func::FuncDialect, arith::ArithDialect,
                  tensor::TensorDialect, linalg::LinalgDialect,
                  math::MathDialect>();
  // Verifier diagnostics (e.g. a norm whose weight and bias dtypes differ)
  // go to the caller rather than to the context's default handler.
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &diag) {
    if (diag.getSeverity() == DiagnosticSeverity::Error)
      emitError(diag.str());
    return success();
  });
  OwningOpRef<ModuleOp> module =
      ModelModuleBuilder(ctx, config, weightArgs, opts).build();
  if (failed(verify(*module)))
    return failure();
  return module;
}

SmallVector<WeightInfo>
mlir::rwkv::defaultWeightInfos(const ::rwkv::ModelConfig &config) {
  std::vector<::rwkv::TensorSpec> specs;
  std::string error;
  SmallVector<WeightInfo> infos;
  if (!detail::getTensorSpecs(config, specs, error))
    return infos;
  for (::rwkv::TensorSpec &spec : specs)
    infos.push_back(
        {std::move(spec.name), config.dtype, std::move(spec.shape)});
  return infos;
}

FailureOr<OwningOpRef<ModuleOp>> mlir::rwkv::buildWKV7KernelModule(
    MLIRContext &ctx, const WKV7KernelOptions &opts,
    llvm::function_ref<void(const llvm::Twine &)> emitError) {
  const std::pair<const char *, int64_t> dims[] = {
      {"batch", opts.batch},
      {"context", opts.context},
      {"heads", opts.heads},
      {"head size", opts.headSize},
      {"chunk length", opts.chunkLength}};
  for (auto [name, value] : dims) {
    if (value <= 0) {
      emitError(llvm::Twine("WKV7 kernel: ") + name +
                " must be positive, got " + llvm::Twine(value));
      return failure();
    }
  }
  ctx.loadDialect<RWKVDialect, func::FuncDialect, arith::ArithDialect,
                  tensor::TensorDialect>();
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &diag) {
    if (diag.getSeverity() == DiagnosticSeverity::Error)
      emitError(diag.str());
    return success();
  });

  const int64_t B = opts.batch, T = opts.context, H = opts.heads,
                N = opts.headSize, C = H * N;
  OpBuilder b(&ctx);
  Location loc = NameLoc::get(b.getStringAttr("wkv7"));
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  Operation *m = module->getOperation();
  m->setAttr("rwkv.kernel", b.getStringAttr("wkv7"));
  m->setAttr("rwkv.config",
             ModelConfigAttr::get(&ctx, /*version=*/7, /*n_layer=*/1, C, H, N,
                                  /*dim_ffn=*/1, /*vocab_size=*/1, 1, 1, 1, 1));
  m->setAttr("rwkv.batch", b.getI64IntegerAttr(B));
  b.setInsertionPointToEnd(module->getBody());

  Type f32 = Float32Type::get(&ctx);
  auto actTy = RankedTensorType::get({B, T, C}, f32);
  auto stateTy = RankedTensorType::get({B, H, N, N}, f32);
  WKVMode mode = opts.chunked ? WKVMode::chunked : WKVMode::sequential;
  auto chunk = static_cast<uint64_t>(opts.chunkLength);

  auto makeFunc = [&](StringRef name, ArrayRef<StringRef> argKinds,
                      ArrayRef<StringRef> resultKinds) {
    auto kindType = [&](StringRef kind) -> Type {
      return kind.contains("state") ? stateTy : actTy;
    };
    SmallVector<Type> argTypes, resultTypes;
    for (StringRef k : argKinds)
      argTypes.push_back(kindType(k));
    for (StringRef k : resultKinds)
      resultTypes.push_back(kindType(k));
    auto func = func::FuncOp::create(b, loc, name,
                                     b.getFunctionType(argTypes, resultTypes));
    // Callers (torch) reuse their tensors: the kernel must not write into
    // any argument.
    for (auto [i, k] : llvm::enumerate(argKinds)) {
      func.setArgAttr(i, "rwkv.input", b.getStringAttr(k));
      func.setArgAttr(i, "bufferization.writable", b.getBoolAttr(false));
    }
    for (auto [i, k] : llvm::enumerate(resultKinds))
      func.setResultAttr(i, "rwkv.result", b.getStringAttr(k));
    return func;
  };

  {
    OpBuilder::InsertionGuard guard(b);
    auto func =
        makeFunc("rwkv_wkv7_forward", {"r", "w", "k", "v", "a", "b", "state0"},
                 {"y", "state"});
    Block *body = func.addEntryBlock();
    b.setInsertionPointToStart(body);
    auto a = body->getArguments();
    auto wkv = WKVOp::create(b, loc, TypeRange{actTy, stateTy}, a[0], a[1],
                             a[2], a[3], a[4], a[5], a[6], mode, chunk);
    func::ReturnOp::create(b, loc, wkv->getResults());
  }
  {
    OpBuilder::InsertionGuard guard(b);
    auto func =
        makeFunc("rwkv_wkv7_backward",
                 {"r", "w", "k", "v", "a", "b", "state0", "dy", "dstate"},
                 {"dr", "dw", "dk", "dv", "da", "db", "dstate0"});
    Block *body = func.addEntryBlock();
    b.setInsertionPointToStart(body);
    auto a = body->getArguments();
    auto grad = WKVGradOp::create(
        b, loc, TypeRange{actTy, actTy, actTy, actTy, actTy, actTy, stateTy},
        a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], mode, chunk);
    func::ReturnOp::create(b, loc, grad->getResults());
  }
  if (failed(verify(*module)))
    return failure();
  return module;
}
