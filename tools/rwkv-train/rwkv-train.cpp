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
#include "runtime/text/Tokenizer.h"
#include "runtime/train/Trainer.h"

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <iostream>

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
GradientFn makeGradientFn(const TrainSetup &setup,
                          const std::vector<Param *> &params) {
  (void)setup;
  (void)params;
  throw std::runtime_error(
      "training library not available yet (rwkv-train has no compiled "
      "training step; use --fake-gradient to exercise the loop)");
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
      "RWKV World vocabulary (needed for .txt / .jsonl data)")(
      "threads", po::value<int>()->default_value(0),
      "worker threads of the training step (0: default)")(
      "fake-gradient",
      "testing only: train the toy objective mean(0.5*p^2) instead of the "
      "model's loss");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, desc), vm);
  po::notify(vm);
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
      throw UsageError(fmt::format("--{} must be >= 0", name));
  if (vm.count("epochs") && !(get<double>(vm, "epochs") > 0 &&
                              std::isfinite(get<double>(vm, "epochs"))))
    throw UsageError("--epochs must be > 0");
  double lr = get<double>(vm, "lr");
  double lrFinal = vm.count("lr-final") ? get<double>(vm, "lr-final") : lr;
  if (!(lr > 0) || !(lrFinal >= 0) || !std::isfinite(lr))
    throw UsageError("--lr must be > 0 and --lr-final >= 0");
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
    throw UsageError("--eps must be > 0");
  if (!(adam.weightDecay >= 0) || !(adam.gradClip >= 0))
    throw UsageError("--weight-decay and --grad-clip must be >= 0");
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
  if (get<int>(vm, "threads") < 0)
    throw UsageError("--threads must be >= 0");
  std::string outPath = get<std::string>(vm, "out");
  std::string modelPath = get<std::string>(vm, "model");
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

  // The data.
  std::unique_ptr<WorldTokenizer> tokenizer;
  if (vm.count("vocab"))
    tokenizer = WorldTokenizer::fromFile(get<std::string>(vm, "vocab"));
  auto data = Dataset::open(get<std::string>(vm, "data"), tokenizer.get());
  WindowSampler sampler(*data, setup.ctx,
                        sampling == "random" ? SamplingMode::Random
                                             : SamplingMode::Sequential,
                        get<uint64_t>(vm, "seed"));
  sampler.setVocabSize(config.vocab_size);
  int64_t totalSteps =
      vm.count("steps")
          ? get<int64_t>(vm, "steps")
          : std::max<int64_t>(
                1, int64_t(std::ceil(get<double>(vm, "epochs") *
                                     double(sampler.windowsPerEpoch()) /
                                     double(setup.batch))));

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
