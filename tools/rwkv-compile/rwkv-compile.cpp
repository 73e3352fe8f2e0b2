//===- rwkv-compile.cpp - ahead-of-time RWKV model compiler
//----------------===//
//
//   rwkv-compile model.pth -o model.so            checkpoint -> shared library
//   rwkv-compile model.pth --emit=mlir            the imported rwkv module
//   (model.safetensors and llama.cpp's RWKV-7 model.gguf work the same way)
//   rwkv-compile model.mlir --emit=lowered|llvm|asm|obj|so
//   rwkv-compile model.pth --target=cuda [--cuda-arch=sm_90] [--emit=ptx]
//
// The passes are exactly those of `rwkv-opt --rwkv-cpu-pipeline`
// (`--print-pipeline` shows the string). Options this tool does not know are
// handed to MLIR/LLVM (e.g. --mlir-print-ir-after-all).
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "codegen/Pipelines.h"
#include "codegen/Target/Target.h"
#include "dialect/RWKVDialect.h"
#include "models/ModelBuilder.h"
#include "passes/Passes.h"
#include "runtime/checkpoint/Checkpoint.h"
#include "tools/ToolOptions.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/xxhash.h"

#include <boost/program_options.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>
#include <unistd.h>

namespace po = boost::program_options;
using namespace mlir;

namespace {

struct Options {
  std::string input, output, emit = "so", target = "cpu", targetCpu,
                             targetFeatures, pipelineOptions, cacheDir,
                             cudaArch = "sm_90";
  bool cudaEmulate = false;
  /// Identity of this compiler build (executable size and time), for keys.
  std::string compilerId;
  unsigned optLevel = 3;
  int64_t batch = 1, chunkLength = 16;
  bool printPipeline = false;
  // Training library (docs/ABI.md, "Training").
  bool train = false, recompute = false;
  int64_t ctx = 0, ignoreIndex = -100;
  std::string trainWkv = "sequential", trainWeights = "checkpoint";
  double l2wrap = 0.0;
  // Kernel library (--kernel wkv7): no checkpoint.
  std::string kernel;
  int64_t heads = 0, headSize = 0;
};

const char *const kEmitKinds[] = {"mlir", "lowered", "llvm", "asm",
                                  "obj",  "so",      "ptx",  "cubin"};

bool isCheckpoint(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  char magic[8] = {};
  f.read(magic, sizeof(magic));
  // A zip (.pth), a GGUF file or a safetensors header (8-byte length, then
  // '{').
  if (f.gcount() >= 2 && magic[0] == 'P' && magic[1] == 'K')
    return true;
  if (f.gcount() >= 4 && std::memcmp(magic, "GGUF", 4) == 0)
    return true;
  char brace = 0;
  return f.gcount() == 8 && f.get(brace) && brace == '{';
}

/// Imports a checkpoint as an rwkv module (docs/ABI.md).
OwningOpRef<ModuleOp> importCheckpoint(MLIRContext &ctx, const Options &opts) {
  std::unique_ptr<::rwkv::Checkpoint> ckpt =
      ::rwkv::Checkpoint::open(opts.input);
  ::rwkv::ModelConfig config = ::rwkv::detectConfig(*ckpt);
  SmallVector<mlir::rwkv::WeightInfo> weights;
  for (const ::rwkv::Tensor &t : ckpt->tensors())
    weights.push_back({t.name, t.dtype, t.shape});
  // Training on f32 copies of the weights (an fp32 run, or f32 master
  // weights passed straight to the step) instead of the checkpoint's dtype.
  if (opts.train && opts.trainWeights == "f32")
    for (mlir::rwkv::WeightInfo &w : weights)
      if (w.dtype == ::rwkv::DType::BF16 || w.dtype == ::rwkv::DType::F16)
        w.dtype = ::rwkv::DType::F32;
  mlir::rwkv::ModelBuildOptions buildOpts;
  buildOpts.batch = opts.batch;
  buildOpts.chunkLength = opts.chunkLength;
  if (opts.train) {
    buildOpts.trainContext = opts.ctx;
    buildOpts.trainChunked = opts.trainWkv == "chunked";
    buildOpts.ignoreIndex = opts.ignoreIndex;
    buildOpts.l2wrap = opts.l2wrap;
    buildOpts.recomputeLayers = opts.recompute;
  }
  std::string error;
  auto module = mlir::rwkv::buildRWKVModule(
      ctx, config, weights, buildOpts,
      [&](const llvm::Twine &msg) { error = msg.str(); });
  if (failed(module))
    throw std::runtime_error(fmt::format("{}: {}", opts.input, error));
  return std::move(*module);
}

/// The module of a standalone kernel library (--kernel).
OwningOpRef<ModuleOp> buildKernel(MLIRContext &ctx, const Options &opts) {
  mlir::rwkv::WKV7KernelOptions k;
  k.batch = opts.batch;
  k.context = opts.ctx;
  k.heads = opts.heads;
  k.headSize = opts.headSize;
  k.chunked = opts.trainWkv == "chunked";
  k.chunkLength = opts.chunkLength;
  std::string error;
  auto module = mlir::rwkv::buildWKV7KernelModule(
      ctx, k, [&](const llvm::Twine &msg) { error = msg.str(); });
  if (failed(module))
    throw std::runtime_error(error);
  return std::move(*module);
}

OwningOpRef<ModuleOp> parseMlir(MLIRContext &ctx, llvm::SourceMgr &sm,
                                const Options &opts) {
  std::string err;
  auto file = openInputFile(opts.input, &err);
  if (!file)
    throw std::runtime_error(fmt::format("{}: {}", opts.input, err));
  sm.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  return parseSourceFile<ModuleOp>(sm, &ctx);
}

std::unique_ptr<llvm::ToolOutputFile> openOutput(const std::string &path,
                                                 bool binary) {
  std::string err;
  auto out = openOutputFile(path, &err);
  if (!out)
    throw std::runtime_error(fmt::format("{}: {}", path, err));
  (void)binary;
  return out;
}

int run(const Options &opts,
        const mlir::rwkv::RWKVPipelineOptions &pipelineOpts) {
  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerAllToLLVMIRTranslations(registry);
  registry.insert<mlir::rwkv::RWKVDialect>();
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  // Diagnostics name the location; a dump of a whole model module is noise.
  ctx.printOpOnDiagnostic(false);
  llvm::SourceMgr sm;
  SourceMgrDiagnosticHandler diagHandler(sm, &ctx);

  OwningOpRef<ModuleOp> module = !opts.kernel.empty() ? buildKernel(ctx, opts)
                                 : isCheckpoint(opts.input)
                                     ? importCheckpoint(ctx, opts)
                                     : parseMlir(ctx, sm, opts);
  if (!module || failed(verify(*module)))
    return 1;

  std::string output = opts.output;
  if (output.empty())
    output = opts.emit == "so" || opts.emit == "obj" || opts.emit == "asm"
                 ? (llvm::sys::path::stem(opts.kernel.empty() ? opts.input
                                                              : opts.kernel) +
                    (opts.emit == "so"    ? ".so"
                     : opts.emit == "obj" ? ".o"
                                          : ".s"))
                       .str()
                 : "-";

  if (opts.emit == "mlir") {
    auto out = openOutput(output, false);
    module->print(out->os());
    out->keep();
    return 0;
  }

  // A library is a function of the imported module (shapes, dtypes, config:
  // never the weight values, which are loaded at run time), the options and
  // the compiler build. With --cache-dir the same key never compiles twice.
  std::string cached;
  if (!opts.cacheDir.empty() && opts.emit == "so") {
    std::string key;
    llvm::raw_string_ostream ks(key);
    module->print(ks);
    ks << "\n"
       << opts.target << "|" << opts.cudaArch << "|" << opts.cudaEmulate << "|"
       << opts.targetCpu << "|" << opts.targetFeatures << "|" << opts.optLevel
       << "|" << opts.compilerId << "|";
    pipelineOpts.print(ks);
    if (std::error_code ec = llvm::sys::fs::create_directories(opts.cacheDir))
      throw std::runtime_error(
          fmt::format("cannot create the cache folder {}: {}", opts.cacheDir,
                      ec.message()));
    cached = fmt::format("{}/rwkv-{:016x}.so", opts.cacheDir,
                         llvm::xxh3_64bits(key));
    if (llvm::sys::fs::exists(cached)) {
      if (std::error_code ec = llvm::sys::fs::copy_file(cached, output))
        throw std::runtime_error(fmt::format("{}: {}", output, ec.message()));
      llvm::errs() << "rwkv-compile: " << output << " is the cached " << cached
                   << " (same module, options and compiler)\n";
      return 0;
    }
  }

  std::string error;
  mlir::rwkv::TargetOptions targetOpts;
  targetOpts.cpu = opts.targetCpu;
  targetOpts.features = opts.targetFeatures;
  targetOpts.optLevel = opts.optLevel;
  std::unique_ptr<mlir::rwkv::CompilationTarget> target;
  if (opts.target == "cuda") {
    // The host code: the given (or this) CPU when the kernels run on it,
    // the portable x86-64 baseline when it only launches them.
    mlir::rwkv::TargetOptions hostOpts = targetOpts;
    if (!opts.cudaEmulate)
      hostOpts.cpu = "x86-64";
    targetOpts.cpu = opts.cudaArch;
    target = mlir::rwkv::createCudaTarget(targetOpts, hostOpts,
                                          opts.cudaEmulate, error);
  } else {
    target = mlir::rwkv::createCpuTarget(targetOpts, error);
  }
  if (!target)
    throw std::runtime_error("target: " + error);
  bool deviceCode = opts.emit == "ptx" || opts.emit == "cubin";

  // The ABI description comes from the imported module, before lowering;
  // only the library-producing stages need it.
  bool needsInfo = opts.emit != "lowered" && !deviceCode;
  FailureOr<std::string> info = std::string();
  if (needsInfo) {
    info = mlir::rwkv::buildModelInfo(*module, target->modelInfoFields());
    if (failed(info))
      return 1;
  }
  SmallVector<std::string> entries = mlir::rwkv::getEntryPointNames(*module);

  PassManager pm(&ctx, ModuleOp::getOperationName(),
                 OpPassManager::Nesting::Implicit);
  target->buildPipeline(pm, pipelineOpts);
  if (failed(applyPassManagerCLOptions(pm)))
    return 1;
  if (opts.printPipeline) {
    pm.printAsTextualPipeline(llvm::outs());
    llvm::outs() << "\n";
  }
  if (failed(pm.run(*module)))
    return 1;
  if (opts.emit == "lowered") {
    auto out = openOutput(output, false);
    module->print(out->os());
    out->keep();
    return 0;
  }
  if (deviceCode) {
    auto out = openOutput(output, opts.emit == "cubin");
    if (failed(mlir::rwkv::writeDeviceCode(*module, out->os())))
      return 1;
    out->keep();
    return 0;
  }

  // The rwkv.* argument and result attributes served the ABI description
  // above; LLVM IR translation has no use for them.
  module->walk([](LLVM::LLVMFuncOp fn) {
    auto strip = [](DictionaryAttr attrs) {
      SmallVector<NamedAttribute> kept;
      if (attrs)
        for (NamedAttribute a : attrs)
          if (!a.getName().strref().starts_with("rwkv."))
            kept.push_back(a);
      return kept;
    };
    for (unsigned i = 0, e = fn.getNumArguments(); i < e; ++i)
      fn.setArgAttrs(i, strip(fn.getArgAttrDict(i)));
    for (unsigned i = 0, e = fn.getNumResults(); i < e; ++i)
      fn.setResultAttrs(i, strip(fn.getResultAttrDict(i)));
  });

  llvm::LLVMContext llvmCtx;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*module, llvmCtx, "rwkv_model");
  if (!llvmModule)
    throw std::runtime_error("translation to LLVM IR failed");
  if (failed(mlir::rwkv::addABIEntryPoints(*llvmModule, *info, entries, error)))
    throw std::runtime_error(error);
  if (failed(target->finalize(*llvmModule)) ||
      failed(target->optimize(*llvmModule)))
    return 1;

  if (opts.emit == "llvm") {
    auto out = openOutput(output, false);
    llvmModule->print(out->os(), nullptr);
    out->keep();
    return 0;
  }
  if (opts.emit == "asm" || opts.emit == "obj") {
    auto out = openOutput(output, opts.emit == "obj");
    if (failed(target->emit(*llvmModule,
                            opts.emit == "asm"
                                ? mlir::rwkv::OutputKind::Assembly
                                : mlir::rwkv::OutputKind::Object,
                            out->os())))
      return 1;
    out->keep();
    return 0;
  }

  // --emit=so: objects to temporary files (code generation split over the
  // cores, at most 4 parts), then link.
  unsigned numParts = std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
  std::vector<std::string> objPaths;
  std::vector<std::unique_ptr<llvm::FileRemover>> removers;
  for (unsigned i = 0; i < numParts; ++i) {
    llvm::SmallString<128> objPath;
    if (std::error_code ec =
            llvm::sys::fs::createTemporaryFile("rwkv-model", "o", objPath))
      throw std::runtime_error("cannot create a temporary object file: " +
                               ec.message());
    removers.push_back(std::make_unique<llvm::FileRemover>(objPath));
    objPaths.push_back(objPath.str().str());
  }
  if (failed(target->emitObjects(*llvmModule, objPaths)))
    return 1;
  if (failed(target->link(objPaths, output)))
    return 1;
  if (!cached.empty()) {
    // Written aside, then renamed: a concurrent reader never sees half a file.
    std::string tmp = fmt::format("{}.tmp{}", cached, ::getpid());
    if (std::error_code ec = llvm::sys::fs::copy_file(output, tmp)) {
      llvm::errs() << "rwkv-compile: warning: not cached (" << tmp << ": "
                   << ec.message() << ")\n";
      return 0;
    }
    if (std::error_code ec = llvm::sys::fs::rename(tmp, cached)) {
      llvm::sys::fs::remove(tmp);
      llvm::errs() << "rwkv-compile: warning: not cached (" << cached << ": "
                   << ec.message() << ")\n";
    }
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  // Passes and pipelines are registered first so that forwarded MLIR
  // options (--mlir-print-ir-after=<pass>) can name them.
  registerAllPasses();
  mlir::rwkv::registerRWKVPasses();
  mlir::rwkv::registerRWKVCodegenPasses();
  mlir::rwkv::registerRWKVPipelines();
  registerPassManagerCLOptions();
  registerAsmPrinterCLOptions();
  registerMLIRContextCLOptions();

  Options opts;
  po::options_description desc(
      "rwkv-compile: compile an RWKV checkpoint (.pth / safetensors / GGUF) or "
      "an rwkv MLIR module ahead of time\n\nUsage: rwkv-compile INPUT [options]"
      "\n       rwkv-compile --kernel wkv7 --batch B --ctx T --heads H "
      "--head-size N [--train-wkv sequential|chunked] -o wkv.so"
      "\n\nOptions");
  desc.add_options()("help,h", "print this help")(
      "input", po::value(&opts.input), "checkpoint or .mlir file")(
      "output,o", po::value(&opts.output),
      "output file (default: INPUT stem + .so/.o/.s, or stdout for text)")(
      "emit", po::value(&opts.emit)->default_value("so"),
      "stop after: mlir | lowered | llvm | asm | obj | so; with --target=cuda "
      "also ptx (the kernels' PTX) | cubin (the embedded device binary)")(
      "target", po::value(&opts.target)->default_value("cpu"),
      "code generation target: cpu | cuda")(
      "cuda-arch", po::value(&opts.cudaArch)->default_value("sm_90"),
      "CUDA: SM architecture of the kernels, e.g. sm_80, sm_89, sm_90 (the "
      "fatbin holds its SASS plus PTX for newer GPUs)")(
      "cuda-emulate", po::bool_switch(&opts.cudaEmulate),
      "CUDA: run the GPU-mapped kernels on the host instead (a CPU library "
      "that checks the CUDA pipeline's mapping and index arithmetic)")(
      "target-cpu", po::value(&opts.targetCpu),
      "LLVM CPU name, e.g. x86-64-v3, skylake-avx512, znver4 (default: host)")(
      "target-features", po::value(&opts.targetFeatures),
      "LLVM feature string, e.g. +avx2,+fma (default: the CPU's)")(
      "opt-level,O", po::value(&opts.optLevel)->default_value(3),
      "LLVM optimisation level 0-3")("batch",
                                     po::value(&opts.batch)->default_value(1),
                                     "batch size of the compiled entry points")(
      "chunk-length", po::value(&opts.chunkLength)->default_value(16),
      "chunk length of the chunked WKV form (lowered as such with "
      "--pipeline-options chunked-wkv=1)")(
      "cache-dir", po::value(&opts.cacheDir),
      "keep every --emit=so library in DIR, keyed by the imported module, the "
      "options and this compiler build, and copy it from there instead of "
      "compiling the same key again")(
      "pipeline-options", po::value(&opts.pipelineOptions),
      "rwkv-cpu-pipeline options, e.g. 'tile-tokens=32 token-block=3'")(
      "print-pipeline", po::bool_switch(&opts.printPipeline),
      "print the pass pipeline as rwkv-opt accepts it")(
      "train", po::bool_switch(&opts.train),
      "emit a training library (rwkv_train_loss, rwkv_train_step: loss and "
      "gradients) instead of the inference entry points")(
      "ctx", po::value(&opts.ctx)->default_value(0),
      "training: tokens per sequence (required with --train or --kernel)")(
      "train-wkv", po::value(&opts.trainWkv)->default_value("sequential"),
      "training: WKV forward/backward form, sequential | chunked")(
      "train-weights",
      po::value(&opts.trainWeights)->default_value("checkpoint"),
      "training: weight dtype the step reads, checkpoint (bf16 stays bf16) "
      "| f32")("ignore-index",
               po::value(&opts.ignoreIndex)->default_value(-100),
               "training: target id that does not count in the loss")(
      "l2wrap", po::value(&opts.l2wrap)->default_value(0.0),
      "training: RWKV-LM's L2Wrap gradient factor (RWKV-LM uses 1e-4)")(
      "recompute", po::bool_switch(&opts.recompute),
      "training: activation checkpointing, the backward recomputes each "
      "layer's forward instead of keeping its intermediates")(
      "kernel", po::value(&opts.kernel),
      "build a kernel library instead of a model (no INPUT): wkv7, the WKV7 "
      "recurrence forward and backward on [B, T, H*N] f32 (rwkv_wkv7_forward, "
      "rwkv_wkv7_backward); needs --batch, --ctx, --heads, --head-size; "
      "--train-wkv and --chunk-length choose the form")(
      "heads", po::value(&opts.heads)->default_value(0),
      "kernel: number of heads H")("head-size",
                                   po::value(&opts.headSize)->default_value(0),
                                   "kernel: head size N");
  po::positional_options_description pos;
  pos.add("input", 1);

  try {
    po::variables_map vm;
    po::parsed_options parsed = po::command_line_parser(argc, argv)
                                    .options(desc)
                                    .positional(pos)
                                    .allow_unregistered()
                                    .run();
    po::store(parsed, vm);
    po::notify(vm);
    ::rwkv::tools::checkParsedValues(parsed, vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    // (LLVM's create_directories succeeds on an existing file.)
    if (!opts.cacheDir.empty() && llvm::sys::fs::exists(opts.cacheDir) &&
        !llvm::sys::fs::is_directory(opts.cacheDir))
      throw po::error("--cache-dir '" + opts.cacheDir +
                      "' exists and is not a directory");
    if (!opts.cacheDir.empty()) {
      std::string exe = llvm::sys::fs::getMainExecutable(
          argv[0], reinterpret_cast<void *>(&main));
      llvm::sys::fs::file_status st;
      if (!exe.empty() && !llvm::sys::fs::status(exe, st))
        opts.compilerId = fmt::format(
            "{}:{}:{}", exe, st.getSize(),
            st.getLastModificationTime().time_since_epoch().count());
      else
        throw po::error("--cache-dir: cannot identify this compiler build");
    }
    // Unknown options go to MLIR/LLVM's own command line.
    std::vector<std::string> rest =
        po::collect_unrecognized(parsed.options, po::exclude_positional);
    std::vector<const char *> clArgs = {argv[0]};
    for (const std::string &a : rest)
      clArgs.push_back(a.c_str());
    if (!llvm::cl::ParseCommandLineOptions(int(clArgs.size()), clArgs.data(),
                                           "rwkv-compile", &llvm::errs()))
      return 1;

    if (!opts.kernel.empty()) {
      if (opts.kernel != "wkv7")
        throw po::error("unknown --kernel '" + opts.kernel +
                        "' (known kernels: wkv7)");
      if (!opts.input.empty())
        throw po::error("--kernel builds a library without an input file; "
                        "drop '" +
                        opts.input + "'");
      if (opts.train)
        throw po::error("--kernel and --train are exclusive (a kernel "
                        "library has its backward already)");
      if (opts.ctx < 1)
        throw po::error("--kernel needs --ctx T (tokens per sequence, T >= 1)");
      if (opts.heads < 1)
        throw po::error("--kernel needs --heads H (H >= 1)");
      if (opts.headSize < 1)
        throw po::error("--kernel needs --head-size N (N >= 1)");
    } else {
      if (opts.input.empty())
        throw po::error("no input file (see --help)");
      if (opts.heads != 0 || opts.headSize != 0)
        throw po::error("--heads and --head-size are kernel options: add "
                        "--kernel wkv7");
    }
    if (std::find(std::begin(kEmitKinds), std::end(kEmitKinds), opts.emit) ==
        std::end(kEmitKinds))
      throw po::error("--emit must be one of mlir, lowered, llvm, asm, obj, "
                      "so, ptx, cubin; got '" +
                      opts.emit + "'");
    if (opts.target != "cpu" && opts.target != "cuda")
      throw po::error("--target must be cpu or cuda, got '" + opts.target +
                      "'");
    if (opts.target != "cuda" &&
        (vm.count("cuda-arch") && !vm["cuda-arch"].defaulted()))
      throw po::error("--cuda-arch needs --target=cuda");
    if (opts.target != "cuda" && opts.cudaEmulate)
      throw po::error("--cuda-emulate needs --target=cuda");
    if ((opts.emit == "ptx" || opts.emit == "cubin") &&
        (opts.target != "cuda" || opts.cudaEmulate))
      throw po::error("--emit=" + opts.emit +
                      " needs --target=cuda (without --cuda-emulate)");
    if (opts.target == "cuda" && !opts.cudaEmulate &&
        (!opts.targetCpu.empty() || !opts.targetFeatures.empty()))
      throw po::error("--target-cpu and --target-features are CPU options; "
                      "--target=cuda takes --cuda-arch (they apply to "
                      "--cuda-emulate's host code)");
    if (opts.optLevel > 3)
      throw po::error(
          fmt::format("--opt-level must be 0..3, not {}", opts.optLevel));
    if (opts.batch < 1)
      throw po::error("--batch must be at least 1");
    if (opts.chunkLength < 1)
      throw po::error("--chunk-length must be at least 1");
    // Static shapes far past any real use would overflow the element
    // counts of the compiled tensors (B * T * H * N ...) or allocate
    // terabytes at run time; they are refused here, naming the option.
    using ::rwkv::tools::checkRange;
    checkRange("batch", opts.batch, int64_t(1), int64_t(1) << 16);
    checkRange("chunk-length", opts.chunkLength, int64_t(1), int64_t(1) << 12);
    checkRange("ctx", opts.ctx, int64_t(0), int64_t(1) << 20);
    checkRange("heads", opts.heads, int64_t(0), int64_t(1) << 12);
    checkRange("head-size", opts.headSize, int64_t(0), int64_t(1) << 12);
    if ((opts.train || !opts.kernel.empty()) &&
        opts.batch * opts.ctx > int64_t(1) << 24)
      throw po::error(fmt::format("--batch {} x --ctx {} is more than 2^24 "
                                  "tokens per call",
                                  opts.batch, opts.ctx));
    if (opts.heads * opts.headSize > int64_t(1) << 16)
      throw po::error(fmt::format("--heads {} x --head-size {} is more than "
                                  "2^16 channels",
                                  opts.heads, opts.headSize));
    if (opts.train && opts.ctx < 1)
      throw po::error("--train needs --ctx N (tokens per sequence, N >= 1)");
    if (!opts.train && opts.recompute)
      throw po::error("--recompute is a training option: add --train");
    if (!opts.train && opts.kernel.empty() && opts.ctx != 0)
      throw po::error("--ctx is a training option: add --train");
    if (opts.trainWkv != "sequential" && opts.trainWkv != "chunked")
      throw po::error("--train-wkv must be sequential or chunked, got '" +
                      opts.trainWkv + "'");
    if (opts.trainWeights != "checkpoint" && opts.trainWeights != "f32")
      throw po::error("--train-weights must be checkpoint or f32, got '" +
                      opts.trainWeights + "'");
    if (!(opts.l2wrap >= 0.0))
      throw po::error(
          fmt::format("--l2wrap must be >= 0, not {}", opts.l2wrap));
    mlir::rwkv::RWKVPipelineOptions pipelineOpts;
    if (failed(pipelineOpts.parseFromString(opts.pipelineOptions)))
      throw po::error("invalid --pipeline-options '" + opts.pipelineOptions +
                      "' (the options of rwkv-opt --rwkv-cpu-pipeline)");
    if (pipelineOpts.gpuFormat != "fatbin" && pipelineOpts.gpuFormat != "bin" &&
        pipelineOpts.gpuFormat != "isa")
      throw po::error("gpu-format must be fatbin, bin or isa, got '" +
                      pipelineOpts.gpuFormat.getValue() + "'");
    if (!llvm::is_contained({"f32", "bf16x2", "bf16", "off"},
                            pipelineOpts.gpuMma.getValue()))
      throw po::error("gpu-mma must be f32, bf16x2, bf16 or off, got '" +
                      pipelineOpts.gpuMma.getValue() + "'");
    if (pipelineOpts.gpuBlockSize < 1 || pipelineOpts.gpuBlockSize > 1024)
      throw po::error(fmt::format("gpu-block-size must be 1..1024, not {}",
                                  int64_t(pipelineOpts.gpuBlockSize)));
    if (opts.emit == "ptx")
      pipelineOpts.gpuFormat = "isa";
    else if (opts.emit == "cubin" && pipelineOpts.gpuFormat == "isa")
      throw po::error("--emit=cubin with gpu-format=isa: use --emit=ptx");
    // The chunked training form needs the chunked WKV lowerings.
    if ((opts.train || !opts.kernel.empty()) && opts.trainWkv == "chunked")
      pipelineOpts.chunkedWKV = true;
    if (opts.kernel.empty() && !llvm::sys::fs::exists(opts.input))
      throw std::runtime_error(opts.input + ": no such file");
    if (opts.kernel.empty() && llvm::sys::fs::is_directory(opts.input))
      throw std::runtime_error(opts.input + ": is a directory, not a file");
    // Writing the output over the input would destroy the checkpoint.
    if (!opts.output.empty() && opts.output != "-")
      ::rwkv::tools::checkNotAnInput("output", opts.output, {opts.input});
    return run(opts, pipelineOpts);
  } catch (const po::error &e) {
    fmt::print(stderr, "rwkv-compile: error: {}\n", e.what());
    return 2;
  } catch (const std::exception &e) {
    fmt::print(stderr, "rwkv-compile: error: {}\n", e.what());
    return 1;
  }
}
