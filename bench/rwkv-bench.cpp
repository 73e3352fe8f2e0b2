//===- rwkv-bench.cpp - decode/prefill against the machine's limits -------===//
//
//   rwkv-bench model.so --weights model.pth [--threads 2] [--prompt 512]
//
// Measures, in one run: the machine's DRAM read bandwidth and fp32 FMA peak
// (same thread count), then the compiled model's decode tok/s (batch 1,
// one token per call) and prefill tok/s (one GPT call over a prompt). Decode
// is reported as a fraction of the bandwidth limit (weight bytes read per
// token / bandwidth), prefill as a fraction of the FMA peak (2 FLOP per
// weight per token, embedding excluded). No assertions: this is a benchmark.
//
//===----------------------------------------------------------------------===//

#include "bench/MachineLimits.h"
#include "runtime/core/Runtime.h"

#include <boost/program_options.hpp>
#include <fmt/core.h>

#include <chrono>
#include <iostream>
#include <random>

namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

int main(int argc, char **argv) {
  std::string library, weights;
  int threads = 2, prompt = 512, decode = 64;
  std::string weightMemory = "huge-pages";
  po::options_description desc("rwkv-bench options");
  desc.add_options()("help,h", "show this help")("library", po::value(&library),
                                                 "compiled model (.so)")(
      "weights", po::value(&weights), "checkpoint (.pth / safetensors)")(
      "threads", po::value(&threads)->default_value(2), "threads")(
      "prompt", po::value(&prompt)->default_value(512),
      "prefill prompt length")("decode", po::value(&decode)->default_value(64),
                               "decode steps")(
      "weight-memory", po::value(&weightMemory)->default_value("huge-pages"),
      "huge-pages (the runtime's default) or mapped (zero-copy mmap views)");
  po::positional_options_description pos;
  pos.add("library", 1);
  try {
    po::variables_map vm;
    po::store(
        po::command_line_parser(argc, argv).options(desc).positional(pos).run(),
        vm);
    po::notify(vm);
    if (vm.count("help") || library.empty() || weights.empty()) {
      std::cout << "usage: rwkv-bench model.so --weights model.pth\n"
                << desc << "\n";
      return vm.count("help") ? 0 : 2;
    }
    if (threads < 1 || prompt < 1 || decode < 1)
      throw po::error("--threads, --prompt and --decode must be positive");

    double bw = rwkv::bench::measureReadBandwidth(threads);
    double peak = rwkv::bench::measureFmaPeak(threads);
    double bf16Peak = rwkv::bench::measureBf16DotPeak(threads);

    if (weightMemory != "huge-pages" && weightMemory != "mapped")
      throw po::error("--weight-memory must be huge-pages or mapped");
    rwkv::ModelOptions opts;
    opts.threads = threads;
    opts.weightMemory = weightMemory == "mapped"
                            ? rwkv::ModelOptions::WeightMemory::Mapped
                            : rwkv::ModelOptions::WeightMemory::HugePages;
    auto model = rwkv::Model::load(library, weights, opts);
    int64_t vocab = model->vocabSize();
    size_t weightBytes = model->weightBytes();
    size_t embBytes = model->embeddingBytes();
    // Decode streams every weight but the embedding table, plus one row.
    double bytesPerToken =
        double(weightBytes - embBytes) + double(embBytes) / double(vocab);
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int32_t> pick(1, int32_t(vocab - 1));
    std::vector<float> logits;

    // Decode: warm up, then `decode` single-token steps of every row of the
    // batch (a --batch N library steps N sequences per call).
    const int64_t batch = model->batch();
    std::vector<int32_t> next(size_t(batch), 0);
    auto draw = [&] {
      for (int32_t &t : next)
        t = pick(rng);
      return next;
    };
    rwkv::State state = model->newState();
    for (int i = 0; i < 4; ++i)
      model->step(draw(), state, logits);
    auto t0 = Clock::now();
    for (int i = 0; i < decode; ++i)
      model->step(draw(), state, logits);
    double decodeSec =
        std::chrono::duration<double>(Clock::now() - t0).count() / decode;

    // Prefill: one GPT call over `prompt` tokens per row (best of 3).
    std::vector<int32_t> tokens(size_t(prompt * batch));
    for (int32_t &t : tokens)
      t = pick(rng);
    double prefillSec = 1e30;
    for (int r = 0; r < 3; ++r) {
      rwkv::State s = model->newState();
      auto p0 = Clock::now();
      model->forward(tokens, s, logits);
      prefillSec = std::min(
          prefillSec, std::chrono::duration<double>(Clock::now() - p0).count());
    }
    // 2 FLOP per matrix weight per token; the head runs once per GPT call
    // (last position only), so it counts once.
    auto cfg = [&](const char *k) {
      return double(model->info().configValue(k, 0));
    };
    double c = cfg("n_embd"), f = cfg("dim_ffn"), layers = cfg("n_layer");
    double lora = cfg("lora_w") + cfg("lora_a") + cfg("lora_v") + cfg("lora_g");
    double bodyParams = layers * (4 * c * c + 2 * c * f + 2 * c * lora);
    double headParams = double(vocab) * c;
    double prefillFlops = 2.0 * batch * (bodyParams * prompt + headParams);

    double decodeTps = double(batch) / decodeSec;
    // Weights are read once per step, for every row of the batch.
    double decodeBw = bytesPerToken / decodeSec;
    double prefillTps = double(prompt * batch) / prefillSec;
    double prefillFlopRate = prefillFlops / prefillSec;
    fmt::print("machine: {} thread(s), DRAM read {:.1f} GB/s, fp32 FMA peak "
               "{:.1f} GFLOP/s ({})\n",
               threads, bw / 1e9, peak / 1e9, rwkv::bench::fmaIsa());
    fmt::print("model:   {} ({:.1f} MB of weights, {:.1f} MB read per "
               "decoded token; weights {})\n",
               weights, weightBytes / 1e6, bytesPerToken / 1e6,
               model->weightsOnHugePages() ? "on huge pages" : "mmap-ed");
    fmt::print("decode:  {:.1f} tok/s{}, {:.1f} GB/s = {:.1f}% of the "
               "bandwidth limit ({:.1f} steps/s)\n",
               decodeTps,
               batch > 1 ? fmt::format(" ({} sequences, {:.1f} steps/s)", batch,
                                       1.0 / decodeSec)
                         : std::string(),
               decodeBw / 1e9, 100.0 * decodeBw / bw, bw / bytesPerToken);
    fmt::print("prefill: {:.1f} tok/s ({} tokens), {:.1f} GFLOP/s = {:.1f}% "
               "of fp32 FMA peak{}\n",
               prefillTps, prompt, prefillFlopRate / 1e9,
               100.0 * prefillFlopRate / peak,
               bf16Peak > 0 ? fmt::format(", {:.1f}% of the bf16 dot peak "
                                          "({:.1f} GFLOP/s)",
                                          100.0 * prefillFlopRate / bf16Peak,
                                          bf16Peak / 1e9)
                            : std::string());
    return 0;
  } catch (const po::error &e) {
    fmt::print(stderr, "rwkv-bench: error: {}\n", e.what());
    return 2;
  } catch (const std::exception &e) {
    fmt::print(stderr, "rwkv-bench: error: {}\n", e.what());
    return 1;
  }
}
