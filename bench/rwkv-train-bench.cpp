//===- rwkv-train-bench.cpp - training step throughput vs FMA peak --------===//
//
//   rwkv-train-bench train.so --weights model.pth [--threads 2] [--steps 3]
//                    [--warmup 1] [--seed 1234]
//
// Measures, in one run: the machine's fp32 FMA peak at the same thread count
// (bench/MachineLimits), then K timed calls of the library's
// `rwkv_train_step` (loss and every weight gradient) on one random batch of
// the library's B x T (seeded LCG shared with train_torch.py), after
// `--warmup` untimed calls. Prints tokens/s (B*T / mean step time), GFLOP/s,
// the share of the FMA peak and the process peak RSS (getrusage) after the
// steps. No assertions: this is a benchmark (docs/PERFORMANCE.md,
// "Training").
//
// FLOP convention: 6 FLOP per matrix parameter per token (forward 2,
// backward 4: input and weight gradients). Matrix parameters are the 2-D
// weights that are multiplied: att receptance/key/value/output, ffn
// key/value, the LoRA factors w1 w2 a1 a2 v1 v2 g1 g2 (layer 0's v1/v2 are
// not used and not counted) and the head (which runs on every position in
// training). Not counted: the embedding (a lookup), r_k (per-channel), the
// WKV recurrence, norms and element-wise work.
//
//===----------------------------------------------------------------------===//

#include "bench/MachineLimits.h"
#include "runtime/core/TrainStep.h"

#include <boost/program_options.hpp>
#include <fmt/core.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>

namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

namespace {

/// True for the weights that are matrix-multiplied (see the FLOP convention).
bool isMatrixWeight(const rwkv::TrainArg &a) {
  if (a.shape.size() != 2 || a.name == "emb.weight")
    return false;
  const std::string &n = a.name;
  auto endsWith = [&](const char *s) {
    std::string suf(s);
    return n.size() >= suf.size() &&
           n.compare(n.size() - suf.size(), suf.size(), suf) == 0;
  };
  if (endsWith(".att.r_k"))
    return false;
  if (n == "blocks.0.att.v1" || n == "blocks.0.att.v2")
    return false; // layer 0 never uses its value-residual LoRA
  return true;
}

/// User + system CPU seconds of the whole process so far.
double cpuSeconds() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         1e-6 * double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

double peakRssMiB() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0; // ru_maxrss is in KiB on Linux
}

} // namespace

int main(int argc, char **argv) {
  std::string library, weightsPath;
  int threads = 2, steps = 3, warmup = 1;
  unsigned seed = 1234;
  bool reuseMemory = true;
  po::options_description desc("rwkv-train-bench options");
  desc.add_options()("help,h", "show this help")(
      "library", po::value(&library), "training library (.so, --train)")(
      "weights", po::value(&weightsPath), "checkpoint (.pth / safetensors)")(
      "threads", po::value(&threads)->default_value(2),
      "threads")("steps", po::value(&steps)->default_value(3), "timed steps")(
      "warmup", po::value(&warmup)->default_value(1), "untimed steps first")(
      "seed", po::value(&seed)->default_value(1234), "batch seed")(
      "reuse-memory", po::value(&reuseMemory)->default_value(true),
      "keep freed buffers in malloc's heap for the next step (as "
      "rwkv-train does); 0 returns large blocks to the kernel");
  po::positional_options_description pos;
  pos.add("library", 1);
  try {
    po::variables_map vm;
    po::store(
        po::command_line_parser(argc, argv).options(desc).positional(pos).run(),
        vm);
    po::notify(vm);
    if (vm.count("help") || library.empty() || weightsPath.empty()) {
      std::cout << "usage: rwkv-train-bench train.so --weights model.pth\n"
                << desc << "\n";
      return vm.count("help") ? 0 : 2;
    }
    if (threads < 1 || steps < 1 || warmup < 0)
      throw po::error("--threads and --steps must be positive, --warmup >= 0");

    double peak = rwkv::bench::measureFmaPeak(threads);

    rwkv::ModelOptions opts;
    opts.threads = threads;
    if (reuseMemory)
      rwkv::TrainLibrary::reuseFreedMemory();
    auto lib = rwkv::TrainLibrary::load(library, opts);
    auto ckpt = rwkv::Checkpoint::open(weightsPath);
    std::vector<std::vector<uint8_t>> copies;
    std::vector<const void *> weights =
        rwkv::bindTrainWeights(*lib, *ckpt, copies);
    const int64_t B = lib->batch(), T = lib->context(), V = lib->vocabSize();

    std::vector<std::vector<float>> grads;
    std::vector<float *> gradPtrs;
    double matrixParams = 0, weightBytes = 0;
    for (size_t i : lib->weightArgs()) {
      const rwkv::TrainArg &a = lib->args()[i];
      grads.emplace_back(a.numel);
      if (isMatrixWeight(a))
        matrixParams += double(a.numel);
      weightBytes += double(a.numel * rwkv::dtypeSize(a.dtype));
    }
    for (auto &g : grads)
      gradPtrs.push_back(g.data());

    // One random batch: a window of T + 1 ids per row (inputs [:-1],
    // targets [1:]), ids in [1, V) from a 64-bit LCG that
    // bench/train_torch.py repeats, so both benchmarks see the same batch
    // (and, on the same weights, report the same loss).
    uint64_t lcg = seed;
    auto nextId = [&] {
      lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
      return int32_t(1 + (lcg >> 33) % uint64_t(V - 1));
    };
    std::vector<int32_t> inputs(B * T), targets(B * T);
    for (int64_t b = 0; b < B; ++b) {
      int32_t prev = nextId();
      for (int64_t t = 0; t < T; ++t) {
        int32_t next = nextId();
        inputs[b * T + t] = prev;
        targets[b * T + t] = next;
        prev = next;
      }
    }
    lib->checkBatch(inputs.data(), targets.data());

    auto runStep = [&] {
      return lib->step(inputs.data(), targets.data(), weights, {}, gradPtrs,
                       {});
    };
    for (int i = 0; i < warmup; ++i)
      runStep();
    std::vector<double> secs;
    float loss = 0;
    double cpu0 = cpuSeconds();
    for (int i = 0; i < steps; ++i) {
      auto t0 = Clock::now();
      loss = runStep();
      secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    double cpu = (cpuSeconds() - cpu0) / double(steps);
    double mean = 0;
    for (double s : secs)
      mean += s;
    mean /= double(secs.size());
    double best = *std::min_element(secs.begin(), secs.end());
    double tokens = double(B * T);
    double flops = 6.0 * matrixParams * tokens;

    fmt::print("machine: {} thread(s), fp32 FMA peak {:.1f} GFLOP/s ({})\n",
               threads, peak / 1e9, rwkv::bench::fmaIsa());
    fmt::print("library: {} (B={}, T={}, V={}, {} layers), weights {} "
               "({:.1f} MB)\n",
               library, B, T, V, lib->numLayers(), weightsPath,
               weightBytes / 1e6);
    fmt::print("step:    loss {:.6f}, mean {:.3f} s, best {:.3f} s over {} "
               "step(s) ({} warm-up); {:.3f} CPU s per step = {:.2f} cores "
               "busy\n",
               loss, mean, best, steps, warmup, cpu, cpu / mean);
    fmt::print("train:   {:.1f} tokens/s (best {:.1f}), {:.2f} GFLOP/s = "
               "{:.1f}% of fp32 FMA peak ({:.1f} M matrix params, "
               "6 FLOP/param/token)\n",
               tokens / mean, tokens / best, flops / mean / 1e9,
               100.0 * flops / mean / peak, matrixParams / 1e6);
    fmt::print("memory:  peak RSS {:.0f} MiB\n", peakRssMiB());
    return 0;
  } catch (const po::error &e) {
    fmt::print(stderr, "rwkv-train-bench: error: {}\n", e.what());
    return 2;
  } catch (const std::exception &e) {
    fmt::print(stderr, "rwkv-train-bench: error: {}\n", e.what());
    return 1;
  }
}
