//===- ABI.cpp - model info and packed entry points
//------------------------===//
//
// The runtime needs two things a bare MLIR lowering does not give it: a
// description of every argument (which checkpoint tensor, which state slot,
// dtype and shape) and a uniform way to call entry points with hundreds of
// memref arguments. Both are generated here from the imported module.
//
//===----------------------------------------------------------------------===//

#include "codegen/Target/Target.h"

#include "dialect/RWKVOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::rwkv;

CompilationTarget::~CompilationTarget() = default;

LogicalResult
CompilationTarget::emitObjects(llvm::Module &module,
                               llvm::ArrayRef<std::string> paths) const {
  if (paths.size() != 1)
    return failure();
  std::error_code ec;
  llvm::raw_fd_ostream os(paths[0], ec);
  if (ec) {
    llvm::errs() << "error: " << paths[0] << ": " << ec.message() << "\n";
    return failure();
  }
  return emit(module, OutputKind::Object, os);
}

static std::string dtypeName(Type t) {
  if (t.isF32())
    return "f32";
  if (t.isBF16())
    return "bf16";
  if (t.isF16())
    return "f16";
  if (t.isInteger(32))
    return "i32";
  if (t.isInteger(64))
    return "i64";
  std::string s;
  llvm::raw_string_ostream os(s);
  os << t;
  return s;
}

static llvm::json::Array shapeJson(RankedTensorType type) {
  llvm::json::Array shape;
  for (int64_t d : type.getShape())
    shape.push_back(ShapedType::isDynamic(d) ? int64_t(-1) : d);
  return shape;
}

/// The region holding the entry points: an rwkv.model's body if the module
/// has one (before rwkv-unwrap-model), else the module itself.
static Block &entryBlock(ModuleOp module) {
  for (auto model : module.getOps<ModelOp>())
    return model.getBody().front();
  return *module.getBody();
}

SmallVector<std::string> mlir::rwkv::getEntryPointNames(ModuleOp module) {
  SmallVector<std::string> names;
  for (auto func : entryBlock(module).getOps<func::FuncOp>()) {
    if (!func.isPublic() || func.isDeclaration())
      continue;
    names.push_back(func.getName().str());
    // rwkv-differentiate adds the gradient function during the pipeline.
    if (auto g = func->getAttrOfType<StringAttr>("rwkv.gradient"))
      if (!SymbolTable::lookupSymbolIn(entryBlock(module).getParentOp(),
                                       g.getValue()))
        names.push_back(g.getValue().str());
  }
  return names;
}

/// One argument or result of an entry point.
static llvm::json::Object describeValue(Type type, DictionaryAttr attrs,
                                        StringRef defaultKind) {
  auto tensor = llvm::cast<RankedTensorType>(type);
  llvm::json::Object o;
  o["dtype"] = dtypeName(tensor.getElementType());
  // The checkpoint's dtype where the kernel binds its bytes as another type
  // (packed int4: u8 in the file, i8 in the kernel).
  if (auto d = attrs ? attrs.getAs<StringAttr>("rwkv.dtype") : nullptr)
    o["dtype"] = d.getValue().str();
  o["shape"] = shapeJson(tensor);
  if (auto w = attrs ? attrs.getAs<StringAttr>("rwkv.weight") : nullptr) {
    o["kind"] = "weight";
    o["name"] = w.getValue().str();
  } else if (auto s = attrs ? attrs.getAs<StringAttr>("rwkv.state") : nullptr) {
    auto [name, layer] = s.getValue().split(':');
    o["kind"] = "state";
    o["name"] = name.str();
    // The value a fresh state starts from, where it is not zero (RWKV-4's
    // pp starts at -1e30).
    if (auto init = attrs.getAs<FloatAttr>("rwkv.state_init"))
      o["init"] = init.getValueAsDouble();
    int64_t l = 0;
    (void)layer.getAsInteger(10, l);
    o["layer"] = l;
  } else if (auto in =
                 attrs ? attrs.getAs<StringAttr>("rwkv.input") : nullptr) {
    o["kind"] = in.getValue().str(); // "targets"
  } else if (auto r =
                 attrs ? attrs.getAs<StringAttr>("rwkv.result") : nullptr) {
    o["kind"] = r.getValue().str(); // "loss"
  } else {
    o["kind"] = defaultKind.str();
  }
  return o;
}

/// A gradient result of a training step: kind "grad", and the kind, name
/// and layer of the argument it is the gradient of.
static llvm::json::Object describeGradient(Type type,
                                           const llvm::json::Object &arg) {
  auto tensor = llvm::cast<RankedTensorType>(type);
  llvm::json::Object o;
  o["kind"] = "grad";
  o["dtype"] = dtypeName(tensor.getElementType());
  o["shape"] = shapeJson(tensor);
  if (auto k = arg.getString("kind"))
    o["of"] = k->str();
  if (auto n = arg.getString("name"))
    o["name"] = n->str();
  if (auto l = arg.getInteger("layer"))
    o["layer"] = *l;
  return o;
}

FailureOr<std::string> mlir::rwkv::buildModelInfo(
    ModuleOp module,
    llvm::ArrayRef<std::pair<std::string, std::string>> extraFields) {
  auto config = module->getAttrOfType<ModelConfigAttr>("rwkv.config");
  for (auto model : module.getOps<ModelOp>())
    config = model.getConfig();
  if (!config)
    return module.emitError("not an rwkv model module: no 'rwkv.config' "
                            "attribute"),
           failure();
  llvm::json::Object info;
  info["abi_version"] = kRWKVAbiVersion;
  for (const auto &[key, value] : extraFields)
    info[key] = value;
  info["config"] = llvm::json::Object{
      {"version", config.getVersion()},      {"n_layer", config.getNLayer()},
      {"n_embd", config.getNEmbd()},         {"n_head", config.getNHead()},
      {"head_size", config.getHeadSize()},   {"dim_ffn", config.getDimFfn()},
      {"vocab_size", config.getVocabSize()}, {"lora_w", config.getLoraW()},
      {"lora_a", config.getLoraA()},         {"lora_v", config.getLoraV()},
      {"lora_g", config.getLoraG()}};
  int64_t batch = 1;
  if (auto b = module->getAttrOfType<IntegerAttr>("rwkv.batch"))
    batch = b.getInt();
  info["batch"] = batch;
  if (auto train = module->getAttrOfType<DictionaryAttr>("rwkv.train")) {
    llvm::json::Object t;
    if (auto c = train.getAs<IntegerAttr>("context"))
      t["context"] = c.getInt();
    if (auto i = train.getAs<IntegerAttr>("ignore_index"))
      t["ignore_index"] = i.getInt();
    if (auto l = train.getAs<FloatAttr>("l2wrap"))
      t["l2wrap"] = l.getValueAsDouble();
    if (auto r = train.getAs<BoolAttr>("recompute_layers"))
      t["recompute_layers"] = r.getValue();
    info["train"] = std::move(t);
  }

  // A kernel library (rwkv-compile --kernel): entry points with their own
  // argument lists, described per entry point.
  auto kernel = module->getAttrOfType<StringAttr>("rwkv.kernel");
  if (kernel)
    info["kernel"] = kernel.getValue().str();
  llvm::json::Object entries;
  std::optional<llvm::json::Array> args;
  for (auto func : entryBlock(module).getOps<func::FuncOp>()) {
    if (!func.isPublic() || func.isDeclaration())
      continue;
    FunctionType ft = func.getFunctionType();
    llvm::json::Array fnArgs;
    for (auto [i, t] : llvm::enumerate(ft.getInputs())) {
      if (!llvm::isa<RankedTensorType>(t))
        return func.emitError("entry point argument #")
                   << i << " is not a ranked tensor",
               failure();
      fnArgs.push_back(describeValue(t, func.getArgAttrDict(i),
                                     i == 0 ? "tokens" : "unknown"));
    }
    llvm::json::Array results;
    for (auto [i, t] : llvm::enumerate(ft.getResults())) {
      if (!llvm::isa<RankedTensorType>(t))
        return func.emitError("entry point result #")
                   << i << " is not a ranked tensor",
               failure();
      DictionaryAttr attrs = func.getResultAttrDict(i);
      if (auto of =
              attrs ? attrs.getAs<IntegerAttr>("rwkv.gradient_of") : nullptr) {
        int64_t argIndex = of.getInt();
        if (argIndex < 0 || argIndex >= int64_t(fnArgs.size()))
          return func.emitError("gradient result #")
                     << i << " names argument " << argIndex
                     << " which does not exist",
                 failure();
        results.push_back(describeGradient(t, *fnArgs[argIndex].getAsObject()));
        continue;
      }
      results.push_back(describeValue(t, attrs, i == 0 ? "logits" : "unknown"));
    }
    if (kernel) {
      entries[func.getName()] =
          llvm::json::Object{{"args", std::move(fnArgs)},
                             {"results", std::move(results)},
                             {"num_args", int64_t(ft.getNumInputs())}};
      args.emplace();
      continue;
    }
    // All entry points share one argument list (docs/ABI.md).
    if (!args)
      args = fnArgs;
    else if (*args != fnArgs)
      return func.emitError("entry points must share one argument list"),
             failure();
    entries[func.getName()] =
        llvm::json::Object{{"results", std::move(results)},
                           {"num_args", int64_t(ft.getNumInputs())}};
    // The function rwkv-differentiate will add: the loss, then an f32
    // gradient per floating-point argument, in argument order.
    if (auto g = func->getAttrOfType<StringAttr>("rwkv.gradient")) {
      if (SymbolTable::lookupSymbolIn(entryBlock(module).getParentOp(),
                                      g.getValue()))
        continue; // already differentiated: described as a function
      llvm::json::Array gradResults;
      gradResults.push_back(llvm::json::Object{
          {"kind", "loss"}, {"dtype", "f32"}, {"shape", llvm::json::Array{}}});
      for (auto [i, t] : llvm::enumerate(ft.getInputs())) {
        auto tensor = llvm::cast<RankedTensorType>(t);
        if (!llvm::isa<FloatType>(tensor.getElementType()))
          continue;
        auto f32 = RankedTensorType::get(tensor.getShape(),
                                         Float32Type::get(func.getContext()));
        gradResults.push_back(describeGradient(f32, *fnArgs[i].getAsObject()));
      }
      entries[g.getValue()] =
          llvm::json::Object{{"results", std::move(gradResults)},
                             {"num_args", int64_t(ft.getNumInputs())}};
    }
  }
  if (!args)
    return module.emitError("rwkv model module has no public entry point"),
           failure();
  if (!kernel)
    info["args"] = std::move(*args);
  info["entry_points"] = std::move(entries);
  std::string out;
  llvm::raw_string_ostream os(out);
  os << llvm::json::Value(std::move(info));
  return out;
}

LogicalResult
mlir::rwkv::addABIEntryPoints(llvm::Module &module, llvm::StringRef info,
                              llvm::ArrayRef<std::string> entryPoints,
                              std::string &error) {
  llvm::LLVMContext &ctx = module.getContext();
  llvm::IRBuilder<> b(ctx);
  llvm::Type *ptrTy = llvm::PointerType::getUnqual(ctx);

  // const char *rwkv_model_info(void)
  auto *infoFnTy = llvm::FunctionType::get(ptrTy, false);
  auto *infoFn = llvm::Function::Create(
      infoFnTy, llvm::GlobalValue::ExternalLinkage, "rwkv_model_info", module);
  b.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", infoFn));
  llvm::Value *str = b.CreateGlobalString(info, "rwkv_model_info_json");
  b.CreateRet(str);

  // void <entry>_packed(void **descs): descs[i] -> i-th ciface argument.
  for (const std::string &name : entryPoints) {
    llvm::Function *callee = module.getFunction("_mlir_ciface_" + name);
    if (!callee) {
      error = "no C interface for entry point '" + name +
              "' (llvm.emit_c_interface missing?)";
      return failure();
    }
    auto *fnTy =
        llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptrTy}, false);
    auto *fn = llvm::Function::Create(fnTy, llvm::GlobalValue::ExternalLinkage,
                                      name + "_packed", module);
    b.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", fn));
    SmallVector<llvm::Value *> callArgs;
    for (unsigned i = 0, e = callee->arg_size(); i < e; ++i) {
      llvm::Value *slot = b.CreateConstInBoundsGEP1_64(ptrTy, fn->getArg(0), i);
      callArgs.push_back(b.CreateLoad(ptrTy, slot));
    }
    b.CreateCall(callee, callArgs);
    b.CreateRetVoid();
  }
  return success();
}
