//===- ModelBuilderTest.cpp - tests of the RWKV-7 model importer ----------===//
//
// Builds the module of docs/ABI.md for the golden checkpoints and checks its
// entry points, argument order and attributes, the layer-0 v_first rule, the
// error messages of bad inputs, and that the CPU pipeline accepts the output.
//
//===----------------------------------------------------------------------===//

#include "models/ModelBuilder.h"

#include "codegen/Passes.h"
#include "codegen/Pipelines.h"
#include "dialect/RWKVOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Verifier.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

#include <gtest/gtest.h>

#include <string>

using namespace mlir;
using namespace mlir::rwkv;

namespace {

const std::string kShared = RWKV_SHARED_DIR;

/// Config and weight infos of a golden checkpoint.
struct Golden {
  ::rwkv::ModelConfig config;
  SmallVector<WeightInfo> weights;
};

Golden loadGolden(const std::string &name) {
  auto ckpt =
      ::rwkv::Checkpoint::open(kShared + "/golden/" + name + "/model.pth");
  Golden g;
  g.config = ::rwkv::detectConfig(*ckpt);
  for (const ::rwkv::Tensor &t : ckpt->tensors())
    g.weights.push_back({t.name, t.dtype, t.shape});
  return g;
}

struct BuildResult {
  OwningOpRef<ModuleOp> module;
  std::string errors;
};

BuildResult build(MLIRContext &ctx, const ::rwkv::ModelConfig &config,
                  ArrayRef<WeightInfo> weights,
                  const ModelBuildOptions &opts = {}) {
  BuildResult r;
  auto module =
      buildRWKVModule(ctx, config, weights, opts, [&](const llvm::Twine &msg) {
        r.errors += msg.str();
        r.errors += "\n";
      });
  if (succeeded(module))
    r.module = std::move(*module);
  return r;
}

StringRef stringArgAttr(func::FuncOp f, unsigned i, StringRef name) {
  auto attr = f.getArgAttrOfType<StringAttr>(i, name);
  return attr ? attr.getValue() : StringRef();
}

/// Checks the ABI shape of one built model.
void checkModule(ModuleOp module, const Golden &g) {
  const ::rwkv::ModelConfig &c = g.config;
  const int64_t L = c.n_layer;
  ASSERT_TRUE(succeeded(verify(module)));

  auto config = module->getAttrOfType<ModelConfigAttr>("rwkv.config");
  ASSERT_TRUE(config);
  EXPECT_EQ(config.getNLayer(), L);
  EXPECT_EQ(config.getNEmbd(), c.n_embd);
  EXPECT_EQ(config.getVocabSize(), c.vocab_size);
  auto batch = module->getAttrOfType<IntegerAttr>("rwkv.batch");
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch.getInt(), 1);

  // The ABI's weights: every checkpoint tensor but layer-0 v0/v1/v2, in
  // rwkv7TensorSpecs order.
  ::rwkv::ModelConfig noV = c;
  noV.layer0HasV = false;
  std::vector<::rwkv::TensorSpec> specs = ::rwkv::rwkv7TensorSpecs(noV);

  for (StringRef name : {"rwkv_step", "rwkv_forward", "rwkv_forward_all"}) {
    SCOPED_TRACE(name.str());
    auto f = module.lookupSymbol<func::FuncOp>(name);
    ASSERT_TRUE(f);
    EXPECT_TRUE(f.isPublic());
    ASSERT_EQ(f.getNumArguments(), 1 + 3 * L + specs.size());
    ASSERT_EQ(f.getNumResults(), 1 + 3 * L);

    auto tokens = cast<RankedTensorType>(f.getArgumentTypes()[0]);
    EXPECT_EQ(tokens.getShape(), ArrayRef<int64_t>({1, ShapedType::kDynamic}));
    EXPECT_TRUE(tokens.getElementType().isInteger(32));

    for (int64_t l = 0; l < L; ++l) {
      std::string suffix = ":" + std::to_string(l);
      EXPECT_EQ(stringArgAttr(f, 1 + 3 * l, "rwkv.state"),
                "att_shift" + suffix);
      EXPECT_EQ(stringArgAttr(f, 2 + 3 * l, "rwkv.state"), "wkv" + suffix);
      EXPECT_EQ(stringArgAttr(f, 3 + 3 * l, "rwkv.state"),
                "ffn_shift" + suffix);
      EXPECT_EQ(
          cast<RankedTensorType>(f.getArgumentTypes()[2 + 3 * l]).getShape(),
          ArrayRef<int64_t>({1, c.n_head, c.head_size, c.head_size}));
    }
    Type elem = c.dtype == ::rwkv::DType::F32
                    ? Type(Float32Type::get(module.getContext()))
                    : Type(BFloat16Type::get(module.getContext()));
    for (auto [i, spec] : llvm::enumerate(specs)) {
      unsigned arg = 1 + 3 * L + i;
      EXPECT_EQ(stringArgAttr(f, arg, "rwkv.weight"), spec.name);
      auto ty = cast<RankedTensorType>(f.getArgumentTypes()[arg]);
      EXPECT_EQ(ty.getElementType(), elem) << spec.name;
      int64_t numel = 1;
      for (int64_t d : spec.shape)
        numel *= d;
      EXPECT_EQ(ty.getNumElements(), numel) << spec.name;
      bool vector =
          spec.shape.size() == 3 || StringRef(spec.name).ends_with(".att.r_k");
      if (vector)
        EXPECT_EQ(ty.getShape(), ArrayRef<int64_t>({c.n_embd})) << spec.name;
      else
        EXPECT_EQ(ty.getShape(), ArrayRef<int64_t>(spec.shape)) << spec.name;
    }

    auto logits = cast<RankedTensorType>(f.getResultTypes()[0]);
    int64_t t = name == "rwkv_forward_all" ? ShapedType::kDynamic : 1;
    EXPECT_EQ(logits.getShape(), ArrayRef<int64_t>({1, t, c.vocab_size}));

    // Layer 0 defines v_first; every later layer takes it.
    SmallVector<TimeMixOp> mixes;
    f.walk([&](TimeMixOp op) { mixes.push_back(op); });
    ASSERT_EQ(static_cast<int64_t>(mixes.size()), L);
    for (auto [l, mix] : llvm::enumerate(mixes)) {
      EXPECT_EQ(mix.isFirstLayer(), l == 0) << "layer " << l;
      EXPECT_EQ(static_cast<bool>(mix.getV0()), l != 0) << "layer " << l;
      WKVMode mode =
          name == "rwkv_step" ? WKVMode::sequential : WKVMode::chunked;
      EXPECT_EQ(mix.getMode(), mode);
    }
    int64_t blocks = 0;
    f.walk([&](BlockOp) { ++blocks; });
    EXPECT_EQ(blocks, L);
  }
}

TEST(ModelBuilder, TinyGolden) {
  Golden g = loadGolden("tiny");
  ASSERT_FALSE(g.config.layer0HasV);
  MLIRContext ctx;
  BuildResult r = build(ctx, g.config, g.weights);
  ASSERT_TRUE(r.module) << r.errors;
  EXPECT_TRUE(r.errors.empty()) << r.errors;
  checkModule(*r.module, g);
}

TEST(ModelBuilder, Tiny2Layer0ValueResidualIsNotAnArgument) {
  Golden g = loadGolden("tiny2");
  ASSERT_TRUE(g.config.layer0HasV);
  ASSERT_EQ(g.config.dtype, ::rwkv::DType::F32);
  MLIRContext ctx;
  BuildResult r = build(ctx, g.config, g.weights);
  ASSERT_TRUE(r.module) << r.errors;
  checkModule(*r.module, g);
  auto f = r.module->lookupSymbol<func::FuncOp>("rwkv_step");
  for (unsigned i = 0; i < f.getNumArguments(); ++i) {
    StringRef key = stringArgAttr(f, i, "rwkv.weight");
    EXPECT_TRUE(key != "blocks.0.att.v0" && key != "blocks.0.att.v1" &&
                key != "blocks.0.att.v2")
        << key.str();
  }
  // The checkpoint holds 3 more tensors than the functions take.
  EXPECT_EQ(f.getNumArguments(),
            1 + 3 * g.config.n_layer + g.weights.size() - 3);
}

TEST(ModelBuilder, DefaultWeightsAndBatch) {
  Golden g = loadGolden("tiny");
  SmallVector<WeightInfo> weights = defaultWeightInfos(g.config);
  ASSERT_EQ(weights.size(), g.weights.size());
  MLIRContext ctx;
  ModelBuildOptions opts;
  opts.batch = 4;
  opts.chunkLength = 32;
  BuildResult r = build(ctx, g.config, weights, opts);
  ASSERT_TRUE(r.module) << r.errors;
  EXPECT_EQ(r.module->getOperation()
                ->getAttrOfType<IntegerAttr>("rwkv.batch")
                .getInt(),
            4);
  auto f = r.module->lookupSymbol<func::FuncOp>("rwkv_forward");
  EXPECT_EQ(cast<RankedTensorType>(f.getArgumentTypes()[0]).getDimSize(0), 4);
  f.walk([&](TimeMixOp op) { EXPECT_EQ(op.getChunkLength(), 32u); });
}

TEST(ModelBuilder, MixedDtypes) {
  Golden g = loadGolden("tiny");
  // Projections in f16, everything else bf16: each argument keeps its own.
  for (WeightInfo &w : g.weights)
    if (StringRef(w.name).ends_with(".receptance.weight"))
      w.dtype = ::rwkv::DType::F16;
  MLIRContext ctx;
  BuildResult r = build(ctx, g.config, g.weights);
  ASSERT_TRUE(r.module) << r.errors;
  auto f = r.module->lookupSymbol<func::FuncOp>("rwkv_step");
  int64_t f16Args = 0;
  for (Type t : f.getArgumentTypes())
    if (auto rt = dyn_cast<RankedTensorType>(t);
        rt && rt.getElementType().isF16())
      ++f16Args;
  EXPECT_EQ(f16Args, g.config.n_layer);
}

TEST(ModelBuilder, MissingWeight) {
  Golden g = loadGolden("tiny");
  llvm::erase_if(g.weights, [](const WeightInfo &w) {
    return w.name == "blocks.1.att.k_a";
  });
  MLIRContext ctx;
  BuildResult r = build(ctx, g.config, g.weights);
  EXPECT_FALSE(r.module);
  EXPECT_NE(r.errors.find("missing weight 'blocks.1.att.k_a'"),
            std::string::npos)
      << r.errors;
}

TEST(ModelBuilder, MissingLayer1ValueResidual) {
  Golden g = loadGolden("tiny");
  llvm::erase_if(g.weights, [](const WeightInfo &w) {
    return w.name == "blocks.1.att.v1";
  });
  MLIRContext ctx;
  BuildResult r = build(ctx, g.config, g.weights);
  EXPECT_FALSE(r.module);
  EXPECT_NE(r.errors.find("'blocks.1.att.v1'"), std::string::npos) << r.errors;
}

TEST(ModelBuilder, WrongShape) {
  Golden g = loadGolden("tiny");
  for (WeightInfo &w : g.weights)
    if (w.name == "blocks.0.ffn.key.weight")
      w.shape = {g.config.dim_ffn, g.config.n_embd + 1};
  MLIRContext ctx;
  BuildResult r = build(ctx, g.config, g.weights);
  EXPECT_FALSE(r.module);
  EXPECT_NE(r.errors.find("weight 'blocks.0.ffn.key.weight' has shape [512, "
                          "129], expected [512, 128]"),
            std::string::npos)
      << r.errors;
}

TEST(ModelBuilder, SqueezedShapeIsNotACheckpointShape) {
  Golden g = loadGolden("tiny");
  for (WeightInfo &w : g.weights)
    if (w.name == "blocks.0.att.x_r")
      w.shape = {g.config.n_embd};
  MLIRContext ctx;
  BuildResult r = build(ctx, g.config, g.weights);
  EXPECT_FALSE(r.module);
  EXPECT_NE(r.errors.find("'blocks.0.att.x_r' has shape [128], expected [1, "
                          "1, 128]"),
            std::string::npos)
      << r.errors;
}

TEST(ModelBuilder, UnsupportedDtype) {
  Golden g = loadGolden("tiny");
  for (WeightInfo &w : g.weights)
    if (w.name == "head.weight")
      w.dtype = ::rwkv::DType::I16;
  MLIRContext ctx;
  BuildResult r = build(ctx, g.config, g.weights);
  EXPECT_FALSE(r.module);
  EXPECT_NE(r.errors.find("'head.weight' has dtype i16"), std::string::npos)
      << r.errors;
}

// int8 matrices need their per-row scales, bind through rwkv.dequantize, and
// are refused where no kernel reads int8 (LoRA factors) and for training.
TEST(ModelBuilder, Int8Weights) {
  Golden g = loadGolden("tiny");
  for (WeightInfo &w : g.weights)
    if (w.name == "head.weight")
      w.dtype = ::rwkv::DType::I8;
  {
    MLIRContext ctx;
    BuildResult r = build(ctx, g.config, g.weights);
    EXPECT_FALSE(r.module);
    EXPECT_NE(r.errors.find("int8 weight 'head.weight' has no per-row scales "
                            "'head.weight_scale' (expected f32 [512])"),
              std::string::npos)
        << r.errors;
  }
  g.weights.push_back({"head.weight_scale", ::rwkv::DType::F32, {512}});
  {
    MLIRContext ctx;
    BuildResult r = build(ctx, g.config, g.weights);
    ASSERT_TRUE(r.module) << r.errors;
    int dequantized = 0;
    (*r.module)->walk([&](DequantizeOp op) {
      ++dequantized;
      EXPECT_EQ(op.getInput().getType(),
                RankedTensorType::get({512, 128}, IntegerType::get(&ctx, 8)));
    });
    EXPECT_EQ(dequantized, 3); // one head per entry point
  }
  {
    ModelBuildOptions train;
    train.trainContext = 8;
    MLIRContext ctx;
    BuildResult r = build(ctx, g.config, g.weights, train);
    EXPECT_FALSE(r.module);
    EXPECT_NE(r.errors.find("a quantized checkpoint cannot be trained"),
              std::string::npos)
        << r.errors;
  }
  for (WeightInfo &w : g.weights)
    if (w.name == "blocks.0.att.w1")
      w.dtype = ::rwkv::DType::I8;
  MLIRContext ctx;
  BuildResult r = build(ctx, g.config, g.weights);
  EXPECT_FALSE(r.module);
  EXPECT_NE(r.errors.find("weight 'blocks.0.att.w1' is int8, but only"),
            std::string::npos)
      << r.errors;
}

// Packed int4 matrices (u8 [out, in / 2]) need bf16 scales [out, in / G]
// with an even G, bind as i8 bytes through rwkv.dequantize with that group
// (the argument tells the ABI "u8"), and are refused where no kernel reads
// them and for training.
TEST(ModelBuilder, Int4Weights) {
  Golden g = loadGolden("tiny");
  for (WeightInfo &w : g.weights)
    if (w.name == "head.weight") {
      w.dtype = ::rwkv::DType::U8;
      w.shape = {512, 64};
    }
  auto expectError = [&](ArrayRef<WeightInfo> weights, StringRef what,
                         const ModelBuildOptions &opts = {}) {
    MLIRContext ctx;
    BuildResult r = build(ctx, g.config, weights, opts);
    EXPECT_FALSE(r.module);
    EXPECT_NE(r.errors.find(what.str()), std::string::npos) << r.errors;
  };
  expectError(g.weights, "int4 weight 'head.weight' needs per-group scales "
                         "'head.weight_scale' (bf16 [512, 128 / G], G even)");
  auto withScale = [&](::rwkv::DType dtype, std::vector<int64_t> shape) {
    SmallVector<WeightInfo> w = g.weights;
    w.push_back({"head.weight_scale", dtype, std::move(shape)});
    return w;
  };
  expectError(withScale(::rwkv::DType::F32, {512, 4}),
              "(bf16 [512, 128 / G], G even), found f32 [512, 4]");
  expectError(withScale(::rwkv::DType::BF16, {256, 4}), "found bf16 [256, 4]");
  expectError(withScale(::rwkv::DType::BF16, {512, 3}), "found bf16 [512, 3]");
  // G = 1 would put two groups in one byte.
  expectError(withScale(::rwkv::DType::BF16, {512, 128}),
              "found bf16 [512, 128]");
  SmallVector<WeightInfo> ok = withScale(::rwkv::DType::BF16, {512, 4});
  {
    MLIRContext ctx;
    BuildResult r = build(ctx, g.config, ok);
    ASSERT_TRUE(r.module) << r.errors;
    int dequantized = 0;
    (*r.module)->walk([&](DequantizeOp op) {
      ++dequantized;
      EXPECT_EQ(op.getInput().getType(),
                RankedTensorType::get({512, 64}, IntegerType::get(&ctx, 8)));
      EXPECT_EQ(op.getGroupSize(), std::optional<uint64_t>(32));
      EXPECT_EQ(op.getType(),
                RankedTensorType::get({512, 128}, Float32Type::get(&ctx)));
    });
    EXPECT_EQ(dequantized, 3); // one head per entry point
    (*r.module)->walk([&](func::FuncOp f) {
      for (unsigned i = 0; i < f.getNumArguments(); ++i) {
        if (stringArgAttr(f, i, "rwkv.weight") == "head.weight") {
          EXPECT_EQ(stringArgAttr(f, i, "rwkv.dtype"), "u8");
        }
      }
    });
  }
  ModelBuildOptions train;
  train.trainContext = 8;
  expectError(ok,
              "weight 'head.weight' is int4: a quantized checkpoint "
              "cannot be trained",
              train);
  // Packed bytes of the wrong width.
  SmallVector<WeightInfo> narrow = ok;
  for (WeightInfo &w : narrow)
    if (w.name == "head.weight")
      w.shape = {512, 32};
  expectError(narrow, "weight 'head.weight' has shape [512, 32] (packed int4: "
                      "two columns per byte), expected [512, 64]");
  for (WeightInfo &w : ok)
    if (w.name == "blocks.0.att.w1")
      w.dtype = ::rwkv::DType::U8;
  expectError(ok, "weight 'blocks.0.att.w1' is int4, but only");
}

TEST(ModelBuilder, DuplicateWeight) {
  Golden g = loadGolden("tiny");
  g.weights.push_back(g.weights.front());
  MLIRContext ctx;
  BuildResult r = build(ctx, g.config, g.weights);
  EXPECT_FALSE(r.module);
  EXPECT_NE(r.errors.find("'emb.weight' is given twice"), std::string::npos)
      << r.errors;
}

TEST(ModelBuilder, BadConfig) {
  Golden g = loadGolden("tiny");
  MLIRContext ctx;
  {
    ::rwkv::ModelConfig c = g.config;
    c.version = 5;
    c.versionString = "5.3";
    BuildResult r = build(ctx, c, g.weights);
    EXPECT_FALSE(r.module);
    EXPECT_NE(r.errors.find("unsupported RWKV version 5 ('5.3')"),
              std::string::npos)
        << r.errors;
  }
  {
    // A supported older version whose weights are not there.
    ::rwkv::ModelConfig c = g.config;
    c.version = 6;
    c.versionString = "x060";
    c.lora_mix = 32;
    BuildResult r = build(ctx, c, g.weights);
    EXPECT_FALSE(r.module);
    EXPECT_NE(r.errors.find("missing weight 'blocks.0.att.time_maa_x'"),
              std::string::npos)
        << r.errors;
  }
  {
    ::rwkv::ModelConfig c = g.config;
    c.head_size = 32;
    BuildResult r = build(ctx, c, g.weights);
    EXPECT_FALSE(r.module);
    EXPECT_NE(r.errors.find("n_head * head_size (2 * 32) must equal n_embd "
                            "(128)"),
              std::string::npos)
        << r.errors;
  }
}

TEST(ModelBuilder, CpuPipelineAcceptsModule) {
  Golden g = loadGolden("tiny");
  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  MLIRContext ctx(registry);
  BuildResult r = build(ctx, g.config, g.weights);
  ASSERT_TRUE(r.module) << r.errors;

  registerAllPasses();
  registerRWKVPasses();
  registerRWKVCodegenPasses();
  registerRWKVPipelines();
  // Anchored on builtin.module so that the pipeline runs on the module
  // itself rather than on modules nested in it.
  PassManager pm(&ctx, ModuleOp::getOperationName());
  std::string pipelineErrors;
  llvm::raw_string_ostream errOs(pipelineErrors);
  ASSERT_TRUE(succeeded(parsePassPipeline("rwkv-cpu-pipeline", pm, errOs)))
      << pipelineErrors;
  std::string diags;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    diags += d.str() + "\n";
    return success();
  });
  EXPECT_TRUE(succeeded(pm.run(*r.module))) << diags;
  // Everything is in the LLVM dialect afterwards: no rwkv op is left.
  int64_t rwkvOps = 0;
  r.module->walk([&](Operation *op) {
    if (op->getDialect() && op->getDialect()->getNamespace() == "rwkv")
      ++rwkvOps;
  });
  EXPECT_EQ(rwkvOps, 0);
}

} // namespace
