//===- rwkv-train.cpp - fine-tune an RWKV-7 checkpoint --------------------===//
//
//   rwkv-train --model base.pth --data corpus(.txt|.jsonl|binidx prefix)
//              --out tuned.pth --ctx T [--batch B] (--steps N | --epochs E)
//              [--lr 6e-4 --lr-final 1e-5 --warmup 0] [--beta1 0.9
//              --beta2 0.99 --eps 1e-18 --weight-decay 0 --grad-clip 1]
//              [--seed 0] [--save-every N] [--resume FILE] [--log F.csv]
//              [--tune all|state] [--vocab FILE] [--threads N]
//
// Writes tuned.pth in the input's dtypes (atomically); every --save-every
// steps and on SIGINT also the resume file tuned.pth.resume. See
// docs/train.md.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/core/TrainStep.h"
#include "runtime/text/Tokenizer.h"
#include "runtime/train/Trainer.h"
#include "tools/ToolOptions.h"

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <unistd.h>

namespace po = boost::program_options;
using namespace rwkv;

namespace {

struct UsageError : std::runtime_error {
  using runtime_error::runtime_error;
};

/// What the training step needs to know about the run.
struct TrainSetup {
  const Checkpoint *checkpoint = nullptr; // the base model (frozen weights)
  ModelConfig config;
  std::string tune; // "all" or "state"
  int64_t batch = 1, ctx = 0;
  int threads = 0; // 0: the library's default
  // The compiled training step: a given library, or one compiled (and
  // cached in cacheDir) for this model, B, T and loss.
  std::string library, cacheDir, trainWkv = "sequential";
  double l2wrap = 1e-4;
  bool recompute = false;
};

//===----------------------------------------------------------------------===//
// makeGradientFn: THE PLUG-IN POINT for the compiled training step.
//
// Return a GradientFn that, for a [B, T] batch, computes the mean
// cross-entropy (spec §2.7; L2Wrap in the backward as RWKV-LM does) at the
// current parameter values and writes d loss / d param into every
// Param::grad. With --tune all the params are every checkpoint tensor in file
// order (f32 master copy in Param::value, the checkpoint-dtype copy at
// Param::data()); with --tune state they are the per-layer initial WKV
// states `blocks.<l>.att.time_state` [H, N, N] and the model weights come
// from setup.checkpoint. Throw on failure (the message is printed as is).
//===----------------------------------------------------------------------===//
/// rwkv-compile: $RWKV_MLIR_COMPILER (as the Python package), else beside
/// this executable, else on PATH.
std::string findCompiler() {
  if (const char *env = std::getenv("RWKV_MLIR_COMPILER"); env && *env)
    return env;
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto beside = self.parent_path() / "rwkv-compile";
    if (std::filesystem::exists(beside))
      return beside.string();
  }
  return "rwkv-compile";
}

/// Compiles (or finds in the cache) the training library of this model
/// shape: `rwkv-compile MODEL --train --batch B --ctx T`. The cache key
/// covers the tensor names/shapes/dtypes, the options and the compiler
/// binary, so the same model never compiles twice.
std::string trainLibraryFor(const TrainSetup &setup) {
  std::string compiler = findCompiler();
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const std::string &s) {
    for (unsigned char c : s)
      h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  };
  for (const Tensor &t : setup.checkpoint->tensors()) {
    mix(t.name);
    mix(dtypeName(t.dtype));
    for (int64_t d : t.shape)
      mix(std::to_string(d));
  }
  mix(fmt::format("B{} T{} l2wrap{} wkv{} recompute{}", setup.batch, setup.ctx,
                  setup.l2wrap, setup.trainWkv, setup.recompute));
  std::error_code ec;
  if (std::filesystem::exists(compiler, ec)) {
    mix(std::to_string(std::filesystem::file_size(compiler, ec)));
    mix(std::to_string(std::filesystem::last_write_time(compiler, ec)
                           .time_since_epoch()
                           .count()));
  }
  std::string dir = setup.cacheDir;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    throw std::runtime_error(fmt::format(
        "cannot create the cache folder {}: {}", dir, ec.message()));
  std::string lib = fmt::format("{}/train-{:016x}.so", dir, h);
  if (std::filesystem::exists(lib))
    return lib;
  std::string tmp = lib + ".tmp" + std::to_string(getpid());
  std::string cmd = fmt::format(
      "'{}' '{}' --train --batch {} --ctx {} --l2wrap {} --train-wkv {}{} -o "
      "'{}'",
      compiler, setup.checkpoint->path(), setup.batch, setup.ctx, setup.l2wrap,
      setup.trainWkv, setup.recompute ? " --recompute" : "", tmp);
  fmt::print("compiling the training step: {}\n", cmd);
  std::fflush(stdout);
  if (std::system(cmd.c_str()) != 0) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error("rwkv-compile failed for the training step "
                             "(command above)");
  }
  std::filesystem::rename(tmp, lib);
  return lib;
}

GradientFn makeGradientFn(const TrainSetup &setup,
                          const std::vector<Param *> &params) {
  std::string path =
      setup.library.empty() ? trainLibraryFor(setup) : setup.library;
  ModelOptions mo;
  mo.threads = setup.threads;
  TrainLibrary::reuseFreedMemory();
  std::shared_ptr<TrainLibrary> lib = TrainLibrary::load(path, mo);
  if (lib->batch() != setup.batch || lib->context() != setup.ctx)
    throw std::runtime_error(fmt::format(
        "{} was compiled for batch {} and context {}, the run needs {} and {}",
        path, lib->batch(), lib->context(), setup.batch, setup.ctx));
  size_t nw = lib->weightArgs().size(), nl = lib->stateArgs().size();
  // Where each weight comes from: a trained Param, or the frozen checkpoint.
  auto weightParams = std::make_shared<std::vector<Param *>>(nw, nullptr);
  auto frozen = std::make_shared<std::vector<const void *>>();
  auto copies = std::make_shared<std::vector<std::vector<uint8_t>>>();
  auto stateParams = std::make_shared<std::vector<Param *>>(nl, nullptr);
  if (setup.tune == "all") {
    for (size_t i = 0; i < nw; ++i) {
      const TrainArg &a = lib->args()[lib->weightArgs()[i]];
      for (Param *p : params)
        if (p->name == a.name)
          (*weightParams)[i] = p;
      if (!(*weightParams)[i])
        throw std::runtime_error(fmt::format(
            "{}: the training library needs '{}', which the model lacks", path,
            a.name));
      if ((*weightParams)[i]->dtype != a.dtype)
        throw std::runtime_error(fmt::format(
            "'{}' is {} in the model but {} in {}", a.name,
            dtypeName((*weightParams)[i]->dtype), dtypeName(a.dtype), path));
    }
  } else {
    *frozen = bindTrainWeights(*lib, *setup.checkpoint, *copies);
    for (size_t l = 0; l < nl; ++l) {
      std::string name = fmt::format("blocks.{}.att.time_state", l);
      for (Param *p : params)
        if (p->name == name)
          (*stateParams)[l] = p;
      if (!(*stateParams)[l])
        throw std::runtime_error("no trained state for layer " +
                                 std::to_string(l));
    }
  }
  auto stateBuf = std::make_shared<std::vector<std::vector<float>>>(nl);
  auto stateGrad = std::make_shared<std::vector<std::vector<float>>>(nl);
  auto weightGrad = std::make_shared<std::vector<std::vector<float>>>(nw);
  for (size_t l = 0; l < nl; ++l) {
    (*stateBuf)[l].assign(lib->args()[lib->stateArgs()[l]].numel, 0.0f);
    (*stateGrad)[l].assign((*stateBuf)[l].size(), 0.0f);
  }
  for (size_t i = 0; i < nw; ++i)
    (*weightGrad)[i].assign(lib->args()[lib->weightArgs()[i]].numel, 0.0f);
  bool tuneState = setup.tune == "state";
  int64_t batch = setup.batch;
  return [=](const Batch &b, const std::vector<Param *> &) {
    std::vector<const void *> weights(nw);
    for (size_t i = 0; i < nw; ++i)
      weights[i] = tuneState ? (*frozen)[i] : (*weightParams)[i]->data();
    std::vector<const float *> states;
    std::vector<float *> sg, wg;
    for (size_t l = 0; l < nl; ++l) {
      if (tuneState) {
        // One trained state shared by every row of the batch.
        const std::vector<float> &v = (*stateParams)[l]->value;
        for (int64_t r = 0; r < batch; ++r)
          std::copy(v.begin(), v.end(), (*stateBuf)[l].begin() + r * v.size());
      }
      states.push_back((*stateBuf)[l].data());
      sg.push_back((*stateGrad)[l].data());
    }
    for (auto &g : *weightGrad)
      wg.push_back(g.data());
    float loss =
        lib->step(b.inputs.data(), b.targets.data(), weights, states, wg, sg);
    if (tuneState) {
      for (size_t l = 0; l < nl; ++l) {
        std::vector<float> &g = (*stateParams)[l]->grad;
        size_t n = g.size();
        for (size_t i = 0; i < n; ++i) {
          float s = 0;
          for (int64_t r = 0; r < batch; ++r)
            s += (*stateGrad)[l][r * n + i];
          g[i] = s;
        }
      }
    } else {
      for (size_t i = 0; i < nw; ++i)
        std::copy((*weightGrad)[i].begin(), (*weightGrad)[i].end(),
                  (*weightParams)[i]->grad.begin());
    }
    return loss;
  };
}

/// Testing aid: the toy objective mean(0.5·p²) over every trained element,
/// so the loop, saving, resuming and SIGINT handling can be run end to end
/// without the compiled training step.
GradientFn makeFakeGradientFn() {
  return [](const Batch &, const std::vector<Param *> &params) {
    double n = 0, loss = 0;
    for (const Param *p : params)
      n += double(p->value.size());
    for (Param *p : params)
      for (size_t i = 0; i < p->value.size(); ++i) {
        loss += 0.5 * double(p->value[i]) * p->value[i] / n;
        p->grad[i] = float(p->value[i] / n);
      }
    return float(loss);
  };
}

std::atomic<bool> gStop{false};
extern "C" void onSigint(int) {
  gStop.store(true);
  // A second Ctrl-C kills the process the usual way.
  std::signal(SIGINT, SIG_DFL);
}

template <typename T> T get(const po::variables_map &vm, const char *name) {
  return vm[name].as<T>();
}

void requirePositive(const po::variables_map &vm, const char *name) {
  if (vm.count(name) && get<int64_t>(vm, name) < 1)
    throw UsageError(
        fmt::format("--{} must be >= 1, not {}", name, get<int64_t>(vm, name)));
}

int run(int argc, char **argv) {
  po::options_description desc("rwkv-train options");
  desc.add_options()("help,h", "show this help")(
      "model", po::value<std::string>(), "base checkpoint (.pth/safetensors)")(
      "data", po::value<std::string>(),
      "corpus: FILE.txt, FILE.jsonl ({\"text\": ...} per line) or a binidx "
      "prefix (X for X.bin + X.idx)")("out", po::value<std::string>(),
                                      "output checkpoint (.pth)")(
      "ctx", po::value<int64_t>(), "context length T of each window")(
      "batch", po::value<int64_t>()->default_value(1),
      "windows per step B")("steps", po::value<int64_t>(), "optimizer steps")(
      "epochs", po::value<double>(),
      "instead of --steps: passes over the data (sequential windows)")(
      "sampling", po::value<std::string>(),
      "random (default with --steps) or sequential (default with --epochs)")(
      "lr", po::value<double>()->default_value(6e-4), "initial learning rate")(
      "lr-final", po::value<double>(),
      "final learning rate of the cosine (default: --lr, constant)")(
      "warmup", po::value<int64_t>()->default_value(0), "warm-up steps")(
      "beta1", po::value<double>()->default_value(0.9), "Adam beta1")(
      "beta2", po::value<double>()->default_value(0.99), "Adam beta2")(
      "eps", po::value<double>()->default_value(1e-18),
      "Adam epsilon")("weight-decay", po::value<double>()->default_value(0.0),
                      "decoupled weight decay (2-D .weight tensors only)")(
      "grad-clip", po::value<double>()->default_value(1.0),
      "clip the global gradient L2 norm (0: off)")(
      "w0-lr-scale", po::value<double>()->default_value(2.0),
      "learning-rate multiplier of att.w0 (RWKV-LM: 2)")(
      "seed", po::value<uint64_t>()->default_value(0), "window sampling seed")(
      "save-every", po::value<int64_t>()->default_value(0),
      "write the output and the resume file every N steps (0: only at the "
      "end / on Ctrl-C)")(
      "resume", po::value<std::string>(),
      "continue from a resume file (OUT.resume of an earlier run)")(
      "log", po::value<std::string>(), "loss log (.csv or .jsonl)")(
      "print-every", po::value<int64_t>()->default_value(10),
      "without a terminal: a progress line every N steps")(
      "tune", po::value<std::string>()->default_value("all"),
      "all (every weight) or state (the initial WKV state only)")(
      "vocab", po::value<std::string>(),
      "vocabulary, World .txt or HF tokenizer.json (for .txt / .jsonl data)")(
      "threads", po::value<int>()->default_value(0),
      "worker threads of the training step (0: default)")(
      "l2wrap", po::value<double>()->default_value(1e-4),
      "RWKV-LM's L2Wrap gradient factor (0: plain cross-entropy)")(
      "train-wkv", po::value<std::string>()->default_value("sequential"),
      "WKV form of the training step: sequential or chunked")(
      "recompute",
      "activation checkpointing: recompute each layer's forward in the "
      "backward instead of keeping it (less memory, more compute)")(
      "library", po::value<std::string>(),
      "a training library from rwkv-compile --train (default: compile one "
      "into the cache)")("cache-dir", po::value<std::string>(),
                         "where compiled training steps are kept (default: "
                         "$XDG_CACHE_HOME/rwkv-mlir or ~/.cache/rwkv-mlir)")(
      "fake-gradient",
      "testing only: train the toy objective mean(0.5*p^2) instead of the "
      "model's loss");
  po::variables_map vm;
  po::parsed_options parsed = po::parse_command_line(argc, argv, desc);
  po::store(parsed, vm);
  po::notify(vm);
  tools::checkParsedValues(parsed, vm);
  if (vm.count("help")) {
    std::cout << "usage: rwkv-train --model base.pth --data corpus --out "
                 "tuned.pth --ctx T (--steps N | --epochs E) [options]\n"
              << desc;
    return 0;
  }

  // Option checks first: nothing is loaded for a bad command line.
  for (const char *name : {"model", "data", "out", "ctx"})
    if (!vm.count(name))
      throw UsageError(fmt::format("missing --{}", name));
  if (vm.count("steps") == vm.count("epochs"))
    throw UsageError("give exactly one of --steps and --epochs");
  for (const char *name : {"ctx", "batch", "steps", "print-every"})
    requirePositive(vm, name);
  for (const char *name : {"warmup", "save-every"})
    if (get<int64_t>(vm, name) < 0)
      throw UsageError(fmt::format("--{} must be >= 0, not {}", name,
                                   get<int64_t>(vm, name)));
  // Shapes and step counts far past any real run would overflow the token
  // counts (B * T, steps * B) or fail to allocate after the model is read.
  tools::checkRange(vm, "batch", int64_t(1), int64_t(1) << 20);
  tools::checkRange(vm, "ctx", int64_t(1), int64_t(1) << 24);
  tools::checkRange(vm, "steps", int64_t(1), int64_t(1) << 40);
  if (get<int64_t>(vm, "batch") * get<int64_t>(vm, "ctx") > int64_t(1) << 31)
    throw UsageError(
        fmt::format("--batch {} x --ctx {} is more than 2^31 tokens per step",
                    get<int64_t>(vm, "batch"), get<int64_t>(vm, "ctx")));
  if (vm.count("epochs") && !(get<double>(vm, "epochs") > 0 &&
                              std::isfinite(get<double>(vm, "epochs"))))
    throw UsageError(
        fmt::format("--epochs must be > 0, not {}", get<double>(vm, "epochs")));
  double lr = get<double>(vm, "lr");
  double lrFinal = vm.count("lr-final") ? get<double>(vm, "lr-final") : lr;
  if (!(lr > 0))
    throw UsageError(fmt::format("--lr must be > 0, not {}", lr));
  tools::checkAtLeast("lr-final", lrFinal, 0.0);
  tools::checkAtLeast(vm, "w0-lr-scale", 0.0);
  AdamWOptions adam;
  adam.beta1 = get<double>(vm, "beta1");
  adam.beta2 = get<double>(vm, "beta2");
  adam.eps = get<double>(vm, "eps");
  adam.weightDecay = get<double>(vm, "weight-decay");
  adam.gradClip = get<double>(vm, "grad-clip");
  for (auto [name, v] : {std::pair{"beta1", adam.beta1}, {"beta2", adam.beta2}})
    if (!(v >= 0 && v < 1))
      throw UsageError(fmt::format("--{} must be in [0, 1), not {}", name, v));
  if (!(adam.eps > 0))
    throw UsageError(fmt::format("--eps must be > 0, not {}", adam.eps));
  tools::checkAtLeast("weight-decay", adam.weightDecay, 0.0);
  tools::checkAtLeast("grad-clip", adam.gradClip, 0.0);
  std::string tune = get<std::string>(vm, "tune");
  if (tune != "all" && tune != "state")
    throw UsageError(
        fmt::format("--tune must be all or state, not '{}'", tune));
  std::string sampling = vm.count("sampling")
                             ? get<std::string>(vm, "sampling")
                             : (vm.count("epochs") ? "sequential" : "random");
  if (sampling != "random" && sampling != "sequential")
    throw UsageError(fmt::format(
        "--sampling must be random or sequential, not '{}'", sampling));
  tools::checkRange(vm, "threads", 0, ModelOptions::kMaxThreads);
  tools::checkAtLeast(vm, "l2wrap", 0.0);
  for (const char *file : {"model", "vocab", "resume", "library"})
    tools::checkInputFile(vm, file);
  std::string outPath = get<std::string>(vm, "out");
  std::string modelPath = get<std::string>(vm, "model");
  if (outPath.empty())
    throw UsageError("--out: the path is empty");
  if (std::filesystem::exists(outPath) &&
      std::filesystem::equivalent(outPath, modelPath))
    throw UsageError("--out must differ from --model");
  std::string resumePath = outPath + ".resume";

  // The model.
  auto checkpoint = Checkpoint::open(modelPath);
  ModelConfig config = detectConfig(*checkpoint);
  if (config.version != 7)
    throw UsageError(fmt::format("{}: an RWKV-{} model; rwkv-train trains "
                                 "RWKV-7 (x070) only",
                                 modelPath, config.versionString));
  TrainSetup setup;
  setup.checkpoint = checkpoint.get();
  setup.config = config;
  setup.tune = tune;
  setup.batch = get<int64_t>(vm, "batch");
  setup.ctx = get<int64_t>(vm, "ctx");
  setup.threads = get<int>(vm, "threads");
  setup.l2wrap = get<double>(vm, "l2wrap");
  setup.trainWkv = get<std::string>(vm, "train-wkv");
  setup.recompute = vm.count("recompute") > 0;
  if (setup.trainWkv != "sequential" && setup.trainWkv != "chunked")
    throw UsageError(fmt::format(
        "--train-wkv must be sequential or chunked, not '{}'", setup.trainWkv));
  if (vm.count("library"))
    setup.library = get<std::string>(vm, "library");
  if (vm.count("cache-dir")) {
    setup.cacheDir = get<std::string>(vm, "cache-dir");
  } else if (const char *x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    setup.cacheDir = std::string(x) + "/rwkv-mlir";
  } else {
    const char *home = std::getenv("HOME");
    setup.cacheDir =
        std::string(home && *home ? home : "/tmp") + "/.cache/rwkv-mlir";
  }

  // The data.
  std::unique_ptr<Tokenizer> tokenizer;
  if (vm.count("vocab"))
    tokenizer = openTokenizer(get<std::string>(vm, "vocab"));
  auto data = Dataset::open(get<std::string>(vm, "data"), tokenizer.get());
  WindowSampler sampler(*data, setup.ctx,
                        sampling == "random" ? SamplingMode::Random
                                             : SamplingMode::Sequential,
                        get<uint64_t>(vm, "seed"));
  sampler.setVocabSize(config.vocab_size);
  double epochSteps =
      vm.count("epochs")
          ? std::ceil(get<double>(vm, "epochs") *
                      double(sampler.windowsPerEpoch()) / double(setup.batch))
          : 0.0;
  // The same bound as --steps (and no overflow converting to int64).
  if (epochSteps > double(int64_t(1) << 40))
    throw UsageError(fmt::format("--epochs {} is {:.3g} steps of this data, "
                                 "more than 2^40",
                                 get<double>(vm, "epochs"), epochSteps));
  int64_t totalSteps = vm.count("steps")
                           ? get<int64_t>(vm, "steps")
                           : std::max<int64_t>(1, int64_t(epochSteps));

  // The trained tensors and the optimizer.
  std::vector<Param> params =
      tune == "all"
          ? loadParams(*checkpoint, float(get<double>(vm, "w0-lr-scale")))
          : makeStateParams(config);
  std::vector<Param *> trained;
  for (Param &p : params)
    trained.push_back(&p);
  std::vector<const Param *> toWrite(trained.begin(), trained.end());
  AdamW optimizer(trained, adam);
  if (vm.count("resume")) {
    DataPosition pos = optimizer.load(get<std::string>(vm, "resume"));
    if (vm["seed"].defaulted() == false && pos.seed != sampler.seed())
      fmt::print(stderr,
                 "note: --seed {} ignored, the resumed run keeps its "
                 "seed {}\n",
                 sampler.seed(), pos.seed);
    sampler = WindowSampler(*data, setup.ctx, sampler.mode(), pos.seed);
    sampler.setVocabSize(config.vocab_size);
    sampler.setPosition(pos.samplesDrawn);
    if (optimizer.stepCount() >= totalSteps)
      throw UsageError(fmt::format(
          "{}: already at step {} of {}; raise --steps to train further",
          get<std::string>(vm, "resume"), optimizer.stepCount(), totalSteps));
  }

  GradientFn gradient = vm.count("fake-gradient")
                            ? makeFakeGradientFn()
                            : makeGradientFn(setup, trained);

  fmt::print(
      "{}: {} layers, n_embd {}, vocab {}; training {} tensors ({} "
      "values, --tune {})\n",
      modelPath, config.n_layer, config.n_embd, config.vocab_size,
      params.size(),
      [&] {
        int64_t n = 0;
        for (const Param &p : params)
          n += p.numel();
        return n;
      }(),
      tune);
  fmt::print("{}: {} tokens, {} documents; {} steps of {}x{} ({} sampling, "
             "{:.2f} epochs)\n",
             data->name(), data->numTokens(), data->numDocuments(), totalSteps,
             setup.batch, setup.ctx, sampling,
             double(totalSteps * setup.batch) /
                 double(sampler.windowsPerEpoch()));
  std::fflush(stdout);

  auto saveAll = [&] {
    writeParamsPth(outPath, toWrite);
    optimizer.save(resumePath, {sampler.position(), sampler.seed()});
  };
  ProgressOptions po;
  po.totalSteps = totalSteps;
  po.tokensPerStep = setup.batch * setup.ctx;
  po.printEvery = get<int64_t>(vm, "print-every");
  if (vm.count("log"))
    po.logPath = get<std::string>(vm, "log");
  Progress progress(po);

  TrainLoopOptions loop;
  loop.batchSize = setup.batch;
  loop.totalSteps = totalSteps;
  loop.schedule = {lr, lrFinal, get<int64_t>(vm, "warmup"), totalSteps};
  loop.saveEvery = get<int64_t>(vm, "save-every");
  loop.save = saveAll;
  loop.stopRequested = [] { return gStop.load(); };
  std::signal(SIGINT, onSigint);
  TrainResult result =
      runTraining(optimizer, sampler, gradient, &progress, loop);
  std::signal(SIGINT, SIG_DFL);
  if (result.interrupted) {
    fmt::print(stderr,
               "interrupted at step {}: wrote {} and {} (continue with "
               "--resume {})\n",
               optimizer.stepCount(), outPath, resumePath, resumePath);
    return 130;
  }
  writeParamsPth(outPath, toWrite);
  fmt::print("wrote {} (step {}, last loss {:.6f})\n", outPath,
             optimizer.stepCount(), result.lastLoss);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const po::error &e) {
    fmt::print(stderr, "error: {}\n", e.what());
  } catch (const std::exception &e) {
    fmt::print(stderr, "error: {}\n", e.what());
  }
  return 1;
}
