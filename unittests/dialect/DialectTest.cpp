//===- DialectTest.cpp - rwkv dialect and pass unit tests -----------------===//
//
// Parses the checked-in example model, checks its structure and the
// #rwkv.config accessors, builds ops programmatically (including malformed
// ones, whose diagnostics are captured), and runs rwkv-decompose and
// rwkv-inline-blocks through a PassManager.
//
//===----------------------------------------------------------------------===//

#include "dialect/RWKVDialect.h"
#include "dialect/RWKVOps.h"
#include "passes/Passes.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace mlir;
using namespace mlir::rwkv;

namespace {

//===----------------------------------------------------------------------===//
// Fixture
//===----------------------------------------------------------------------===//

/// Owns a context with every dialect the rwkv IR and its passes use, and
/// collects the diagnostics emitted while a test runs.
class RWKVDialectTest : public ::testing::Test {
protected:
  RWKVDialectTest() {
    DialectRegistry registry;
    registry.insert<RWKVDialect, func::FuncDialect, arith::ArithDialect,
                    linalg::LinalgDialect, tensor::TensorDialect,
                    math::MathDialect>();
    ctx.appendDialectRegistry(registry);
    ctx.loadAllAvailableDialects();
  }

  /// Parses the example model from the source tree and checks it parsed.
  OwningOpRef<ModuleOp> parseExample() {
    OwningOpRef<ModuleOp> module =
        parseSourceFile<ModuleOp>(RWKV_EXAMPLE_MODEL, &ctx);
    EXPECT_TRUE(module) << "failed to parse " << RWKV_EXAMPLE_MODEL;
    return module;
  }

  /// Counts the ops of type `OpTy` nested under `root`.
  template <typename OpTy> static int count(Operation *root) {
    int n = 0;
    root->walk([&](OpTy) { ++n; });
    return n;
  }

  /// Runs `verify` on `op` and returns the error messages it emitted.
  std::vector<std::string> verifyErrors(Operation *op) {
    std::vector<std::string> errors;
    ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &diag) {
      if (diag.getSeverity() == DiagnosticSeverity::Error)
        errors.push_back(diag.str());
      return success();
    });
    EXPECT_TRUE(failed(mlir::verify(op)));
    return errors;
  }

  static RankedTensorType tensorOf(ArrayRef<int64_t> shape, Type element) {
    return RankedTensorType::get(shape, element);
  }

  MLIRContext ctx;
};

/// True if any message contains `needle`.
bool anyContains(const std::vector<std::string> &messages,
                 llvm::StringRef needle) {
  return llvm::any_of(messages, [&](const std::string &m) {
    return llvm::StringRef(m).contains(needle);
  });
}

//===----------------------------------------------------------------------===//
// The example model
//===----------------------------------------------------------------------===//

TEST_F(RWKVDialectTest, ExampleModelParsesAndVerifies) {
  OwningOpRef<ModuleOp> module = parseExample();
  ASSERT_TRUE(module);
  EXPECT_TRUE(succeeded(mlir::verify(*module)));
}

TEST_F(RWKVDialectTest, ExampleModelOpCounts) {
  OwningOpRef<ModuleOp> module = parseExample();
  ASSERT_TRUE(module);
  Operation *root = module->getOperation();
  EXPECT_EQ(count<func::FuncOp>(root), 1);
  EXPECT_EQ(count<EmbedOp>(root), 1);
  // ln0, ln1 and ln2 of each layer, ln_out.
  EXPECT_EQ(count<LayerNormOp>(root), 6);
  EXPECT_EQ(count<BlockOp>(root), 2);
  EXPECT_EQ(count<YieldOp>(root), 2);
  EXPECT_EQ(count<TimeMixOp>(root), 2);
  EXPECT_EQ(count<ChannelMixOp>(root), 2);
  EXPECT_EQ(count<HeadOp>(root), 1);
  // Two residual additions per layer.
  EXPECT_EQ(count<arith::AddFOp>(root), 4);
  // No primitive op of the time-mix exists before decomposition.
  EXPECT_EQ(count<WKVOp>(root), 0);
  EXPECT_EQ(count<LoraOp>(root), 0);
}

TEST_F(RWKVDialectTest, ExampleModelStructure) {
  OwningOpRef<ModuleOp> module = parseExample();
  ASSERT_TRUE(module);
  auto forward = module->lookupSymbol<func::FuncOp>("forward");
  ASSERT_TRUE(forward);
  // the token ids, 6 state tensors and 69 weights in; logits and 6 state
  // tensors out.
  EXPECT_EQ(forward.getNumArguments(), 1u + 6u + 69u);
  EXPECT_EQ(forward.getNumResults(), 7u);

  SmallVector<BlockOp> blocks;
  forward.walk([&](BlockOp b) { blocks.push_back(b); });
  ASSERT_EQ(blocks.size(), 2u);
  for (auto [i, block] : llvm::enumerate(blocks)) {
    EXPECT_EQ(block.getLayer(), i);
    EXPECT_EQ(block.getNumResults(), 5u);
  }

  SmallVector<TimeMixOp> timeMixes;
  forward.walk([&](TimeMixOp op) { timeMixes.push_back(op); });
  ASSERT_EQ(timeMixes.size(), 2u);
  // Layer 0 defines v_first and has no value-residual weights.
  EXPECT_TRUE(timeMixes[0].isFirstLayer());
  EXPECT_FALSE(timeMixes[0].getV0());
  EXPECT_FALSE(timeMixes[0].getV1());
  EXPECT_FALSE(timeMixes[0].getV2());
  // Layer 1 consumes the v_first that block 0 yields (its fifth result).
  EXPECT_FALSE(timeMixes[1].isFirstLayer());
  EXPECT_TRUE(timeMixes[1].getV0());
  EXPECT_EQ(timeMixes[1].getVFirst(), blocks[0].getResult(4));
  for (TimeMixOp op : timeMixes) {
    EXPECT_EQ(op.getNumHeads(), 2);
    EXPECT_EQ(op.getMode(), WKVMode::sequential);
    EXPECT_EQ(op.getChunkLength(), 16u);
  }

  SmallVector<HeadOp> heads;
  forward.walk([&](HeadOp op) { heads.push_back(op); });
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_EQ(heads[0].getPositions(), HeadPositions::last);
  EXPECT_EQ(heads[0].getResult().getType(),
            tensorOf({1, 1, 512}, Float32Type::get(&ctx)));
}

//===----------------------------------------------------------------------===//
// #rwkv.config
//===----------------------------------------------------------------------===//

TEST_F(RWKVDialectTest, ModelConfigAccessors) {
  OwningOpRef<ModuleOp> module = parseExample();
  ASSERT_TRUE(module);
  auto config = llvm::dyn_cast_or_null<ModelConfigAttr>(
      (*module)->getAttr("rwkv.config"));
  ASSERT_TRUE(config);
  EXPECT_EQ(config.getVersion(), 7);
  EXPECT_EQ(config.getNLayer(), 2);
  EXPECT_EQ(config.getNEmbd(), 128);
  EXPECT_EQ(config.getNHead(), 2);
  EXPECT_EQ(config.getHeadSize(), 64);
  EXPECT_EQ(config.getDimFfn(), 512);
  EXPECT_EQ(config.getVocabSize(), 512);
  EXPECT_EQ(config.getLoraW(), 32);
  EXPECT_EQ(config.getLoraA(), 32);
  EXPECT_EQ(config.getLoraV(), 32);
  EXPECT_EQ(config.getLoraG(), 64);
  EXPECT_EQ(config.getNHead() * config.getHeadSize(), config.getNEmbd());

  // The config agrees with the IR it describes.
  int layers = 0;
  module->walk([&](BlockOp) { ++layers; });
  EXPECT_EQ(layers, config.getNLayer());

  // Attributes are uniqued: the same parameters give the same attribute.
  auto same =
      ModelConfigAttr::get(&ctx, 7, 2, 128, 2, 64, 512, 512, 32, 32, 32, 64);
  EXPECT_EQ(same, config);
}

TEST_F(RWKVDialectTest, ModelConfigPrintsAndParses) {
  auto config = ModelConfigAttr::get(&ctx, 6, 24, 2048, 32, 64, 7168, 65536, 64,
                                     64, 32, 128);
  std::string text;
  llvm::raw_string_ostream os(text);
  os << Attribute(config);
  EXPECT_EQ(text, "#rwkv.config<version = 6, n_layer = 24, n_embd = 2048, "
                  "n_head = 32, head_size = 64, dim_ffn = 7168, vocab_size = "
                  "65536, lora_w = 64, lora_a = 64, lora_v = 32, lora_g = "
                  "128>");
  Attribute parsed = parseAttribute(text, &ctx);
  EXPECT_EQ(parsed, config);
}

TEST_F(RWKVDialectTest, ModelConfigGetCheckedRejectsBadParameters) {
  std::vector<std::string> errors;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &diag) {
    errors.push_back(diag.str());
    return success();
  });
  auto emitError = [&] { return mlir::emitError(UnknownLoc::get(&ctx)); };
  // Parameters as int64_t so that the generated getChecked is selected, not
  // the variadic template of the attribute base class.
  auto checked = [&](int64_t version, int64_t nHead, int64_t loraA) {
    int64_t nLayer = 2, nEmbd = 128, headSize = 64, dimFfn = 512, vocab = 512,
            loraW = 32, loraV = 32, loraG = 64;
    return ModelConfigAttr::getChecked(emitError, &ctx, version, nLayer, nEmbd,
                                       nHead, headSize, dimFfn, vocab, loraW,
                                       loraA, loraV, loraG);
  };
  // n_head * head_size != n_embd.
  EXPECT_FALSE(checked(7, 3, 32));
  // Unsupported version.
  EXPECT_FALSE(checked(3, 2, 32));
  // A non-positive rank.
  EXPECT_FALSE(checked(7, 2, 0));
  // A valid one.
  EXPECT_TRUE(checked(7, 2, 32));
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0], "n_head * head_size (3 * 64) must equal n_embd (128)");
  EXPECT_EQ(errors[1], "unsupported RWKV version 3 (expected 4..7)");
  EXPECT_EQ(errors[2], "lora_a must be positive, got 0");
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

TEST_F(RWKVDialectTest, EnumStringsRoundTrip) {
  for (WKVMode m : {WKVMode::sequential, WKVMode::chunked})
    EXPECT_EQ(symbolizeWKVMode(stringifyWKVMode(m)), m);
  for (ActivationKind a :
       {ActivationKind::none, ActivationKind::tanh, ActivationKind::sigmoid})
    EXPECT_EQ(symbolizeActivationKind(stringifyActivationKind(a)), a);
  for (HeadPositions p : {HeadPositions::all, HeadPositions::last})
    EXPECT_EQ(symbolizeHeadPositions(stringifyHeadPositions(p)), p);
  EXPECT_EQ(stringifyWKVMode(WKVMode::chunked), "chunked");
  EXPECT_FALSE(symbolizeWKVMode("parallel").has_value());
  EXPECT_FALSE(symbolizeActivationKind("relu").has_value());
}

//===----------------------------------------------------------------------===//
// Building ops
//===----------------------------------------------------------------------===//

/// Builds `func.func @f(r: [B,T,C], state) { wkv; return }` with C = 8 and
/// returns the wkv op; the function is inserted into `module`.
WKVOp buildWkv(MLIRContext &ctx, ModuleOp module, RankedTensorType act,
               RankedTensorType state, int64_t chunkLength = 16) {
  OpBuilder b(&ctx);
  Location loc = UnknownLoc::get(&ctx);
  b.setInsertionPointToEnd(module.getBody());
  auto fnType = b.getFunctionType({act, state}, {});
  auto fn = func::FuncOp::create(b, loc, "f", fnType);
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  Value x = entry->getArgument(0), s = entry->getArgument(1);
  auto wkv = WKVOp::create(b, loc, act, state, x, x, x, x, x, x, s,
                           WKVModeAttr::get(&ctx, WKVMode::chunked),
                           b.getI64IntegerAttr(chunkLength));
  func::ReturnOp::create(b, loc);
  return wkv;
}

TEST_F(RWKVDialectTest, BuildValidWkv) {
  OwningOpRef<ModuleOp> module = ModuleOp::create(UnknownLoc::get(&ctx));
  Type f32 = Float32Type::get(&ctx);
  WKVOp wkv =
      buildWkv(ctx, *module, tensorOf({2, ShapedType::kDynamic, 8}, f32),
               tensorOf({2, 2, 4, 4}, f32), 32);
  EXPECT_TRUE(succeeded(mlir::verify(*module)));
  EXPECT_EQ(wkv.getMode(), WKVMode::chunked);
  EXPECT_EQ(wkv.getChunkLength(), 32u);
  EXPECT_EQ(wkv.getNewState().getType(), wkv.getState().getType());
}

TEST_F(RWKVDialectTest, BuildWkvWithWrongStateShape) {
  OwningOpRef<ModuleOp> module = ModuleOp::create(UnknownLoc::get(&ctx));
  Type f32 = Float32Type::get(&ctx);
  // 3 heads of 4 do not cover 8 channels.
  buildWkv(ctx, *module, tensorOf({1, 5, 8}, f32), tensorOf({1, 3, 4, 4}, f32));
  std::vector<std::string> errors = verifyErrors(*module);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "'rwkv.wkv' op heads * head_size (3 * 4) must equal "
                       "the channel count 8");
}

TEST_F(RWKVDialectTest, BuildWkvWithBf16State) {
  OwningOpRef<ModuleOp> module = ModuleOp::create(UnknownLoc::get(&ctx));
  Type f32 = Float32Type::get(&ctx);
  Type bf16 = BFloat16Type::get(&ctx);
  // The recurrent state is always f32.
  buildWkv(ctx, *module, tensorOf({1, 5, 8}, f32),
           tensorOf({1, 2, 4, 4}, bf16));
  std::vector<std::string> errors = verifyErrors(*module);
  EXPECT_TRUE(anyContains(
      errors, "must be ranked tensor of 32-bit float values, but got "
              "'tensor<1x2x4x4xbf16>'"))
      << (errors.empty() ? std::string("<no error>") : errors[0]);
}

TEST_F(RWKVDialectTest, BuildWkvWithZeroChunkLength) {
  OwningOpRef<ModuleOp> module = ModuleOp::create(UnknownLoc::get(&ctx));
  Type f32 = Float32Type::get(&ctx);
  buildWkv(ctx, *module, tensorOf({1, 5, 8}, f32), tensorOf({1, 2, 4, 4}, f32),
           /*chunkLength=*/0);
  std::vector<std::string> errors = verifyErrors(*module);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "'rwkv.wkv' op chunk_length must be positive, got 0");
}

TEST_F(RWKVDialectTest, BuildLoraWithDisagreeingRanks) {
  OwningOpRef<ModuleOp> module = ModuleOp::create(UnknownLoc::get(&ctx));
  OpBuilder b(&ctx);
  Location loc = UnknownLoc::get(&ctx);
  Type f32 = Float32Type::get(&ctx), bf16 = BFloat16Type::get(&ctx);
  auto act = tensorOf({1, 1, 8}, f32);
  auto down = tensorOf({8, 2}, bf16), up = tensorOf({3, 8}, bf16);
  b.setInsertionPointToEnd(module->getBody());
  auto fn =
      func::FuncOp::create(b, loc, "f", b.getFunctionType({act, down, up}, {}));
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  LoraOp::create(b, loc, act, entry->getArgument(0), entry->getArgument(1),
                 entry->getArgument(2), ActivationKind::tanh);
  func::ReturnOp::create(b, loc);
  std::vector<std::string> errors = verifyErrors(*module);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "'rwkv.lora' op LoRA ranks disagree: 'down' is [8, 2] "
                       "but 'up' is [3, 8]");
}

//===----------------------------------------------------------------------===//
// Passes
//===----------------------------------------------------------------------===//

TEST_F(RWKVDialectTest, DecomposeRemovesCompositeOps) {
  OwningOpRef<ModuleOp> module = parseExample();
  ASSERT_TRUE(module);
  PassManager pm(&ctx);
  pm.addPass(createRWKVDecomposePass());
  ASSERT_TRUE(succeeded(pm.run(*module)));
  Operation *root = module->getOperation();
  EXPECT_EQ(count<TimeMixOp>(root), 0);
  EXPECT_EQ(count<ChannelMixOp>(root), 0);
  EXPECT_TRUE(succeeded(mlir::verify(*module)));

  // The primitive ops of two layers, still grouped in their blocks.
  EXPECT_EQ(count<BlockOp>(root), 2);
  EXPECT_EQ(count<WKVOp>(root), 2);
  EXPECT_EQ(count<GroupNormOp>(root), 2);
  EXPECT_EQ(count<L2NormalizeOp>(root), 2);
  // time_mix and channel_mix each shift once per layer.
  EXPECT_EQ(count<TokenShiftOp>(root), 4);
  // Six lerps per time_mix and one per channel_mix.
  EXPECT_EQ(count<MixOp>(root), 14);
  // r, k, v, output and the two FFN projections.
  EXPECT_EQ(count<LinearOp>(root), 12);
  // w, a, g per layer and the value residual of layer 1.
  EXPECT_EQ(count<LoraOp>(root), 7);
  // Each wkv sits in the block of its layer and uses that layer's state.
  module->walk([&](WKVOp wkv) {
    auto block = wkv->getParentOfType<BlockOp>();
    ASSERT_TRUE(block);
    auto arg = llvm::dyn_cast<BlockArgument>(wkv.getState());
    ASSERT_TRUE(arg);
    EXPECT_EQ(arg.getArgNumber(), block.getLayer() == 0 ? 2u : 5u);
  });
}

TEST_F(RWKVDialectTest, InlineBlocksThenDecompose) {
  OwningOpRef<ModuleOp> module = parseExample();
  ASSERT_TRUE(module);
  PassManager pm(&ctx);
  pm.addPass(createRWKVInlineBlocksPass());
  pm.addPass(createRWKVDecomposePass());
  ASSERT_TRUE(succeeded(pm.run(*module)));
  Operation *root = module->getOperation();
  EXPECT_EQ(count<BlockOp>(root), 0);
  EXPECT_EQ(count<YieldOp>(root), 0);
  EXPECT_EQ(count<TimeMixOp>(root), 0);
  EXPECT_EQ(count<ChannelMixOp>(root), 0);
  EXPECT_EQ(count<WKVOp>(root), 2);
  EXPECT_TRUE(succeeded(mlir::verify(*module)));

  // The function now returns the primitive ops' results directly.
  auto forward = module->lookupSymbol<func::FuncOp>("forward");
  ASSERT_TRUE(forward);
  auto ret = llvm::cast<func::ReturnOp>(forward.getBody().front().back());
  EXPECT_TRUE(ret.getOperand(0).getDefiningOp<HeadOp>());
  EXPECT_TRUE(ret.getOperand(1).getDefiningOp<TokenShiftOp>());
  EXPECT_TRUE(ret.getOperand(2).getDefiningOp<WKVOp>());
}

TEST_F(RWKVDialectTest, DecomposeIsIdempotent) {
  OwningOpRef<ModuleOp> module = parseExample();
  ASSERT_TRUE(module);
  PassManager pm(&ctx);
  pm.addPass(createRWKVDecomposePass());
  ASSERT_TRUE(succeeded(pm.run(*module)));
  int ops = 0;
  module->walk([&](Operation *) { ++ops; });
  PassManager again(&ctx);
  again.addPass(createRWKVDecomposePass());
  ASSERT_TRUE(succeeded(again.run(*module)));
  int opsAfter = 0;
  module->walk([&](Operation *) { ++opsAfter; });
  EXPECT_EQ(ops, opsAfter);
}

} // namespace
