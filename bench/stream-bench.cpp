//===- stream-bench.cpp - Constant memory over unbounded input ------------===//
//
//   rwkv-stream-bench model.so --weights model.pth [--tokens 1000000]
//                     [--chunk 256] [--threads N] [--max-seconds S]
//
// Streams random valid token ids through the model in GPT-mode chunks
// (Model::forward, state carried) and prints, at 10k, 100k and 1M tokens
// (and at the end), the throughput and the peak/current RSS. An RNN's
// memory must not grow with the input: the peak RSS after 1M tokens should
// equal the one after 10k. --max-seconds stops early and projects the time
// the whole run would take.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/Runtime.h"

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <random>
#include <sys/resource.h>

namespace po = boost::program_options;
using namespace rwkv;

namespace {

/// A field of /proc/self/status in KiB (VmHWM, VmRSS), or -1.
long procStatusKiB(const std::string &field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0)
      return std::stol(line.substr(field.size() + 1));
  return -1;
}

long peakRssKiB() {
  long hwm = procStatusKiB("VmHWM");
  if (hwm >= 0)
    return hwm;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss; // KiB on Linux
}

int run(int argc, char **argv) {
  po::options_description desc("rwkv-stream-bench options");
  desc.add_options()("help,h", "show this help")(
      "library", po::value<std::string>(), "compiled model (.so)")(
      "weights", po::value<std::string>(), "checkpoint")(
      "tokens", po::value<size_t>()->default_value(1000000),
      "tokens to stream")("chunk", po::value<size_t>()->default_value(256),
                          "tokens per forward call")(
      "threads", po::value<int>()->default_value(0), "worker threads")(
      "max-seconds", po::value<double>()->default_value(0),
      "stop after this long and project the full run (0: no limit)")(
      "seed", po::value<uint32_t>()->default_value(1), "token seed");
  po::positional_options_description pos;
  pos.add("library", 1);
  po::variables_map vm;
  po::store(
      po::command_line_parser(argc, argv).options(desc).positional(pos).run(),
      vm);
  po::notify(vm);
  if (vm.count("help") || !vm.count("library") || !vm.count("weights")) {
    std::cout << "usage: rwkv-stream-bench model.so --weights model.pth\n"
              << desc;
    return vm.count("help") ? 0 : 1;
  }
  size_t total = vm["tokens"].as<size_t>();
  size_t chunk = std::max<size_t>(vm["chunk"].as<size_t>(), 1);
  double maxSeconds = vm["max-seconds"].as<double>();
  ModelOptions options;
  options.threads = vm["threads"].as<int>();
  auto model = Model::load(vm["library"].as<std::string>(),
                           vm["weights"].as<std::string>(), options);

  std::mt19937 rng(vm["seed"].as<uint32_t>());
  std::uniform_int_distribution<int32_t> dist(0,
                                              int32_t(model->vocabSize() - 1));
  State state = model->newState();
  std::vector<int32_t> tokens(chunk);
  std::vector<float> logits;
  // One warm-up chunk so that the baseline includes the code, the touched
  // weights and the per-call buffers of this chunk size.
  for (int32_t &t : tokens)
    t = dist(rng);
  model->forward(tokens, state, logits);
  state.reset();
  long baseline = peakRssKiB();
  fmt::print("model {} ({} layers, vocab {}), chunk {} tokens, threads {}\n",
             model->libraryPath(), model->numLayers(), model->vocabSize(),
             chunk, options.threads);
  fmt::print("peak RSS after load + one warm-up chunk: {:.1f} MiB\n\n",
             baseline / 1024.0);
  fmt::print("{:>10} {:>10} {:>12} {:>14} {:>14} {:>12}\n", "tokens", "seconds",
             "tok/s", "peak RSS MiB", "RSS MiB", "growth KiB");

  std::vector<size_t> marks;
  for (size_t m : {size_t(10000), size_t(100000), size_t(1000000)})
    if (m < total)
      marks.push_back(m);
  marks.push_back(total);
  size_t done = 0, next = 0;
  auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
        .count();
  };
  auto report = [&](size_t n) {
    double sec = elapsed();
    long peak = peakRssKiB();
    fmt::print("{:>10} {:>10.2f} {:>12.1f} {:>14.1f} {:>14.1f} {:>12}\n", n,
               sec, double(n) / sec, peak / 1024.0,
               procStatusKiB("VmRSS") / 1024.0, peak - baseline);
    std::fflush(stdout);
  };
  while (done < total) {
    size_t n = std::min(chunk, total - done);
    // The last chunk may be shorter: only that call sees the odd size.
    tokens.resize(n);
    for (int32_t &t : tokens)
      t = dist(rng);
    model->forward(tokens, state, logits);
    done += n;
    // Marks are hit exactly when the chunk divides them, else at the first
    // chunk past them (the row shows the true count).
    if (next < marks.size() && done >= marks[next]) {
      report(done);
      while (next < marks.size() && done >= marks[next])
        ++next;
    }
    if (maxSeconds > 0 && elapsed() > maxSeconds && done < total) {
      report(done);
      double rate = double(done) / elapsed();
      fmt::print("stopped after {:.1f} s; {} tokens would take about {:.0f} "
                 "s at {:.1f} tok/s\n",
                 elapsed(), total, double(total) / rate, rate);
      break;
    }
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception &e) {
    fmt::print(stderr, "error: {}\n", e.what());
  }
  return 1;
}
