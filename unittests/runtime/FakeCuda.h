//===- FakeCuda.h - What the fake CUDA driver and model share ---*- C++ -*-===//
//
// FakeCudaDriver.cpp is a libcuda stand-in on host memory (the runtime
// loads it through RWKV_CUDA_DRIVER); FakeCudaModel.cpp is a CUDA model
// library (docs/ABI.md "CUDA libraries") that does all its work through the
// imported mgpu functions. The tests read the driver's counters through
// rwkv_fake_cuda_stats().
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_UNITTESTS_RUNTIME_FAKECUDA_H
#define RWKV_UNITTESTS_RUNTIME_FAKECUDA_H

#include <cstdint>

/// The size of the image that FakeCudaModel passes to mgpuModuleLoad: a
/// fatbin header (magic 0xba55ed50, header size 16, payload size) and zeros.
constexpr int64_t kFakeCudaImageSize = 1024;

/// Counters of the fake driver since the last rwkv_fake_cuda_reset().
struct RwkvFakeCudaStats {
  int64_t inits;
  int64_t allocs, frees, liveAllocs, liveBytes;
  int64_t bytesToDevice, bytesToHost, bytesOnDevice; // synchronous copies
  int64_t asyncCopies;
  /// Async copies or memsets that touched memory the fake did not allocate:
  /// a library must only get device memory.
  int64_t hostTouchingCopies;
  int64_t memsets32, memsets16;
  int64_t modulesLoaded, modulesUnloaded, liveModules;
  int64_t lastImageSize; // bytes of the last image loaded
  int64_t functionLookups;
  char lastFunction[64];
  int64_t launches;
  unsigned lastGrid[3], lastBlock[3], lastSmem;
  /// The first kernel parameter of the last launch, read as a pointer.
  const void *lastParam0;
  int64_t funcAttributesSet;
  int64_t streamsCreated, streamsDestroyed;
  int64_t eventsCreated, eventsDestroyed;
  int64_t contextPushes, contextPops;
  /// Calls given a pointer, handle or context the fake does not know.
  int64_t badArguments;
};

extern "C" {
/// Copies the counters into `out`.
void rwkv_fake_cuda_stats(RwkvFakeCudaStats *out);
/// Zeroes the counters (live allocations and modules stay).
void rwkv_fake_cuda_reset(void);
/// 1 when `[p, p + bytes)` lies in one live allocation of the fake.
int rwkv_fake_cuda_is_device(const void *p, uint64_t bytes);
}

#endif // RWKV_UNITTESTS_RUNTIME_FAKECUDA_H
