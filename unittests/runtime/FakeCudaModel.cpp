//===- FakeCudaModel.cpp - A stand-in for an rwkv-compile CUDA library ----===//
//
// The contract of docs/ABI.md "CUDA libraries" for the model of FakeModel.h:
// rwkv_model_info() with "target": "cuda", rwkv_cuda_imports, one
// `rwkv_cuda_import_<NAME>` pointer per import, rwkv_cuda_init/fini and the
// packed entry points. Like generated host code it never dereferences a
// device pointer: everything goes through the imported mgpu functions, so
// with the fake driver (FakeCudaDriver.cpp) the tests see what a call did.
//
// Per call, on a stream of its own:
//   state_out = state_in (device to device), then state_in is overwritten
//     with NaNs, as compiled code may clobber its inputs;
//   logits = 0.5 everywhere, then the first min(T, V) floats hold the bits
//     of the token ids (so the tests can check the tokens that arrived);
//   one launch of "fake_kernel" (grid T, block 32) on the tokens'
//     descriptor, one of "fake_kernel_smem" with 64 KiB of shared memory;
//   a 64-byte scratch buffer allocated, memset16 and freed; an event
//     recorded, waited for and destroyed.
//
// RWKV_FAKE_CUDA_EXTRA_IMPORT (a compile definition) appends a name to
// rwkv_cuda_imports, for the library that imports what the runtime lacks.
//
//===----------------------------------------------------------------------===//

#include "unittests/runtime/FakeCuda.h"
#include "unittests/runtime/FakeModel.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

using namespace rwkv;

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

// The handle types are opaque pointers to the library.
using Module = void *;
using Function = void *;
using Stream = void *;
using Event = void *;

#define FAKE_IMPORTS(X)                                                        \
  X(mgpuModuleLoad, Module, (void *, size_t))                                  \
  X(mgpuModuleUnload, void, (Module))                                          \
  X(mgpuModuleGetFunction, Function, (Module, const char *))                   \
  X(mgpuLaunchKernel, void,                                                    \
    (Function, intptr_t, intptr_t, intptr_t, intptr_t, intptr_t, intptr_t,     \
     int32_t, Stream, void **, void **, size_t))                               \
  X(mgpuStreamCreate, Stream, ())                                              \
  X(mgpuStreamDestroy, void, (Stream))                                         \
  X(mgpuStreamSynchronize, void, (Stream))                                     \
  X(mgpuStreamWaitEvent, void, (Stream, Event))                                \
  X(mgpuEventCreate, Event, ())                                                \
  X(mgpuEventDestroy, void, (Event))                                           \
  X(mgpuEventSynchronize, void, (Event))                                       \
  X(mgpuEventRecord, void, (Event, Stream))                                    \
  X(mgpuMemAlloc, void *, (uint64_t, Stream, bool))                            \
  X(mgpuMemFree, void, (void *, Stream))                                       \
  X(mgpuMemcpy, void, (void *, void *, size_t, Stream))                        \
  X(mgpuMemset32, void, (void *, unsigned, size_t, Stream))                    \
  X(mgpuMemset16, void, (void *, unsigned short, size_t, Stream))

// The import table, filled by the runtime before rwkv_cuda_init(), and the
// list of names.
#ifndef RWKV_FAKE_CUDA_EXTRA_IMPORT
#define RWKV_FAKE_CUDA_EXTRA_IMPORT ""
#endif
#define FAKE_POINTER(name, ret, params)                                        \
  __attribute__((visibility("default"))) void *rwkv_cuda_import_##name =       \
      nullptr;
#define FAKE_NAME(name, ret, params) #name ","
extern "C" {
FAKE_IMPORTS(FAKE_POINTER)
// Declared extern first: a const definition alone has internal linkage.
__attribute__((visibility("default"))) extern const char rwkv_cuda_imports[];
const char rwkv_cuda_imports[] =
    FAKE_IMPORTS(FAKE_NAME) RWKV_FAKE_CUDA_EXTRA_IMPORT;
}
#undef FAKE_NAME
#undef FAKE_POINTER

namespace {

// Typed calls through the import pointers.
#define FAKE_CALLER(name, ret, params)                                         \
  template <typename... Args> ret name(Args... args) {                         \
    return reinterpret_cast<ret(*) params>(rwkv_cuda_import_##name)(args...);  \
  }
FAKE_IMPORTS(FAKE_CALLER)
#undef FAKE_CALLER

/// A fatbin header (magic, version, header size, payload size) and zeros.
struct alignas(16) Image {
  uint32_t magic = 0xba55ed50u;
  uint16_t version = 1;
  uint16_t headerSize = 16;
  uint64_t payload = kFakeCudaImageSize - 16;
  char zeros[kFakeCudaImageSize - 16] = {};
};
const Image image;

Module module = nullptr;

/// Rank-4 view of a descriptor: the runtime passes ranks 2 to 4.
struct Desc {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[4];
};

int64_t numel(const Desc *d, int rank) {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i)
    n *= d->sizes[i];
  return n;
}

void run(void **descs) {
  SyntheticOptions o = fakeModelOptions();
  int64_t v = o.vocab_size;
  size_t nState = size_t(3 * o.n_layer);
  size_t nWeights = syntheticSpecs(o).size();
  auto *tokens = static_cast<Desc *>(descs[0]);
  int64_t t = tokens->sizes[1];
  auto *logits = static_cast<Desc *>(descs[1 + nState + nWeights]);

  Stream stream = mgpuStreamCreate();
  for (size_t i = 0; i < nState; ++i) {
    auto *in = static_cast<Desc *>(descs[1 + i]);
    auto *out = static_cast<Desc *>(descs[2 + nState + nWeights + i]);
    size_t n = size_t(numel(in, i % 3 == 1 ? 4 : 2));
    mgpuMemcpy(out->aligned, in->aligned, n * sizeof(float), stream);
    mgpuMemset32(in->aligned, 0xffffffffu, n, stream);
  }
  size_t nLogits = size_t(numel(logits, 3));
  float half = 0.5f;
  unsigned halfBits;
  std::memcpy(&halfBits, &half, 4);
  mgpuMemset32(logits->aligned, halfBits, nLogits, stream);
  mgpuMemcpy(logits->aligned, tokens->aligned,
             size_t(std::min(t, v)) * sizeof(int32_t), stream);

  // The tokens' descriptor as kernel parameters (3 + 2 * rank).
  void *params[] = {&tokens->allocated, &tokens->aligned,  &tokens->offset,
                    &tokens->sizes[0],  &tokens->sizes[1], &tokens->sizes[2],
                    &tokens->sizes[3]};
  Function kernel = mgpuModuleGetFunction(module, "fake_kernel");
  mgpuLaunchKernel(kernel, t, 1, 1, 32, 1, 1, 0, stream, params, nullptr, 7);
  Function big = mgpuModuleGetFunction(module, "fake_kernel_smem");
  mgpuLaunchKernel(big, 1, 1, 1, 128, 1, 1, 64 << 10, stream, params, nullptr,
                   7);

  void *scratch = mgpuMemAlloc(64, stream, false);
  mgpuMemset16(scratch, 0x3c00, 32, stream);
  Event event = mgpuEventCreate();
  mgpuEventRecord(event, stream);
  mgpuStreamWaitEvent(stream, event);
  mgpuEventSynchronize(event);
  mgpuEventDestroy(event);
  mgpuMemFree(scratch, stream);
  mgpuStreamSynchronize(stream);
  mgpuStreamDestroy(stream);
}

} // namespace

FAKE_EXPORT const char *rwkv_model_info(void) {
  static const std::string text = [] {
    nlohmann::ordered_json info = fakeModelInfo();
    info["target"] = "cuda";
    info["cuda_arch"] = "sm_90";
    return info.dump();
  }();
  return text.c_str();
}

FAKE_EXPORT void rwkv_cuda_init(void) {
  module = mgpuModuleLoad(const_cast<Image *>(&image), sizeof(image));
}

FAKE_EXPORT void rwkv_cuda_fini(void) {
  mgpuModuleUnload(module);
  module = nullptr;
}

FAKE_EXPORT void rwkv_step_packed(void **descs) { run(descs); }
FAKE_EXPORT void rwkv_forward_packed(void **descs) { run(descs); }
FAKE_EXPORT void rwkv_forward_all_packed(void **descs) { run(descs); }
