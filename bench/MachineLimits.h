//===- MachineLimits.h - measured memory bandwidth and FMA peak -*- C++ -*-===//
//
// Benchmarks report ratios against what this machine can do, measured in the
// same run (docs/toolchain.md §5 has the reference figures).
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_BENCH_MACHINELIMITS_H
#define RWKV_BENCH_MACHINELIMITS_H

#include <cstddef>

namespace rwkv::bench {

/// DRAM read bandwidth in bytes/s: `threads` threads each sum their own
/// `bytesPerThread` array (first-touched by that thread); best of `reps`.
double measureReadBandwidth(int threads, size_t bytesPerThread = 512u << 20,
                            int reps = 5);

/// Peak fp32 FMA throughput in FLOP/s (2 FLOP per lane per FMA) with
/// `threads` threads, using the widest vector FMA the CPU has.
double measureFmaPeak(int threads, int reps = 5);
/// Peak bf16 dot-product rate (AVX512-BF16 vdpbf16ps, 2 FLOP per bf16
/// product) in FLOP/s, or 0 where the CPU lacks the instruction.
double measureBf16DotPeak(int threads, int reps = 5);

/// The ISA the FMA probe used ("avx512", "avx2" or "scalar").
const char *fmaIsa();

} // namespace rwkv::bench

#endif // RWKV_BENCH_MACHINELIMITS_H
