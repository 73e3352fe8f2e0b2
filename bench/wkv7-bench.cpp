//===- wkv7-bench.cpp - WKV7 forward + backward time of a kernel library --===//
//
//   rwkv-wkv7-bench wkv.so [--iters 3] [--warmup 1] [--threads 2]
//
// Times `rwkv_wkv7_forward` and `rwkv_wkv7_backward` of a library from
// `rwkv-compile --kernel wkv7 --batch B --ctx T --heads H --head-size N`
// (CPU or --target=cuda) on one seeded input whose state stays bounded (w
// the log-decay in (-0.6, 0), a = -kk and b = kk * iclr with kk unit-norm per
// head, as RWKV-7 makes them). Prints the mean milliseconds of each call; a
// CUDA library also gets the time inside the entry point alone (its
// kernels), without the copies of the arguments between host and device,
// which is the figure to set next to the hand-written kernels of
// ../shared/docs/peers.md §2b. No assertions: a benchmark.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/Kernel.h"

#include <boost/program_options.hpp>
#include <fmt/core.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <vector>

namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

namespace {
/// Uniform in [0, 1) from a 64-bit LCG (Knuth's MMIX constants).
struct Lcg {
  uint64_t s;
  double next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return double(s >> 11) * 0x1.0p-53;
  }
};
} // namespace

int main(int argc, char **argv) {
  std::string lib;
  int iters = 3, warmup = 1, threads = 2;
  po::options_description desc("rwkv-wkv7-bench options");
  desc.add_options()("help,h", "show this help")(
      "library", po::value(&lib), "kernel library (.so, --kernel wkv7)")(
      "iters", po::value(&iters)->default_value(3), "timed calls of each")(
      "warmup", po::value(&warmup)->default_value(1), "untimed calls first")(
      "threads", po::value(&threads)->default_value(2), "CPU threads");
  po::positional_options_description pos;
  pos.add("library", 1);
  try {
    po::variables_map vm;
    po::store(
        po::command_line_parser(argc, argv).options(desc).positional(pos).run(),
        vm);
    po::notify(vm);
    if (vm.count("help") || lib.empty()) {
      std::cout << "usage: rwkv-wkv7-bench wkv.so\n" << desc;
      return lib.empty() && !vm.count("help") ? 2 : 0;
    }
    if (iters < 1 || warmup < 0)
      throw po::error("--iters must be at least 1 and --warmup at least 0");
    rwkv::ModelOptions options;
    options.threads = threads;
    auto k = rwkv::WKV7Kernel::load(lib, options);
    const int64_t b = k->batch(), t = k->context(), h = k->heads(),
                  n = k->headSize();
    const size_t act = size_t(b * t * h * n), state = size_t(b * h * n * n);
    Lcg g{1234};
    auto uniform = [&](size_t count, double lo, double hi) {
      std::vector<float> v(count);
      for (float &x : v)
        x = float(lo + (hi - lo) * g.next());
      return v;
    };
    std::vector<float> r = uniform(act, -0.5, 0.5), kk = uniform(act, -1, 1),
                       v = uniform(act, -0.5, 0.5), w = uniform(act, -0.6, 0),
                       iclr = uniform(act, 0, 1), key = uniform(act, -0.5, 0.5),
                       s0 = uniform(state, -0.3, 0.3), dy = uniform(act, -1, 1),
                       ds = uniform(state, -1, 1);
    for (float &x : w)
      x -= 1e-3f;
    std::vector<float> a(act), bb(act);
    for (size_t row = 0; row < act; row += size_t(n)) {
      double norm = 0;
      for (int64_t j = 0; j < n; ++j)
        norm += double(kk[row + j]) * kk[row + j];
      norm = std::sqrt(norm) + 1e-12;
      for (int64_t j = 0; j < n; ++j) {
        float unit = float(kk[row + j] / norm);
        a[row + j] = -unit;
        bb[row + j] = unit * iclr[row + j];
      }
    }
    std::vector<float> y(act), s1(state), grads[6], ds0(state);
    for (auto &gr : grads)
      gr.resize(act);
    double fwd = 0, bwd = 0, fwdDev = 0, bwdDev = 0;
    for (int i = 0; i < warmup + iters; ++i) {
      auto t0 = Clock::now();
      k->forward(r.data(), w.data(), key.data(), v.data(), a.data(), bb.data(),
                 s0.data(), y.data(), s1.data());
      auto t1 = Clock::now();
      double fd = k->lastDeviceSeconds();
      k->backward(r.data(), w.data(), key.data(), v.data(), a.data(), bb.data(),
                  s0.data(), dy.data(), ds.data(), grads[0].data(),
                  grads[1].data(), grads[2].data(), grads[3].data(),
                  grads[4].data(), grads[5].data(), ds0.data());
      auto t2 = Clock::now();
      if (i < warmup)
        continue;
      fwd += std::chrono::duration<double>(t1 - t0).count();
      bwd += std::chrono::duration<double>(t2 - t1).count();
      fwdDev += fd;
      bwdDev += k->lastDeviceSeconds();
    }
    fmt::print("WKV7 B={} T={} C={} (H={} N={}), {}, {} calls each:\n", b, t,
               h * n, h, n, k->onDevice() ? "CUDA" : "CPU", iters);
    fmt::print("  forward  {:10.3f} ms\n  backward {:10.3f} ms\n"
               "  both     {:10.3f} ms\n",
               1e3 * fwd / iters, 1e3 * bwd / iters, 1e3 * (fwd + bwd) / iters);
    if (k->onDevice())
      fmt::print("  in the entry points (kernels, no copies): forward "
                 "{:.3f} ms, backward {:.3f} ms, both {:.3f} ms\n",
                 1e3 * fwdDev / iters, 1e3 * bwdDev / iters,
                 1e3 * (fwdDev + bwdDev) / iters);
    // A checksum, so that the calls cannot be skipped and a broken kernel
    // shows.
    double sum = 0;
    for (float x : y)
      sum += x;
    for (float x : grads[2])
      sum += x;
    fmt::print("  checksum {:.6g}\n", sum);
  } catch (const std::exception &e) {
    std::cerr << "rwkv-wkv7-bench: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
