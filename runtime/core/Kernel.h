//===- Kernel.h - Run a compiled kernel library -----------------*- C++ -*-===//
//
// A library from `rwkv-compile --kernel wkv7 --batch B --ctx T --heads H
// --head-size N` exports the WKV7 recurrence alone (docs/ABI.md, "Kernel
// libraries"): rwkv_wkv7_forward and rwkv_wkv7_backward on static f32 shapes.
// WKV7Kernel loads one, checks its description and calls it on caller-owned
// contiguous buffers. Errors throw RuntimeError naming the library.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_CORE_KERNEL_H
#define RWKV_RUNTIME_CORE_KERNEL_H

#include "runtime/core/Runtime.h"

#include <memory>
#include <string>

namespace rwkv {

class WKV7Kernel {
public:
  static std::unique_ptr<WKV7Kernel> load(const std::string &libraryPath,
                                          const ModelOptions &options = {});
  ~WKV7Kernel();
  WKV7Kernel(const WKV7Kernel &) = delete;
  WKV7Kernel &operator=(const WKV7Kernel &) = delete;

  int64_t batch() const { return batch_; }
  int64_t context() const { return context_; }
  int64_t heads() const { return heads_; }
  int64_t headSize() const { return headSize_; }
  const std::string &path() const { return path_; }
  const std::string &infoJson() const { return json_; }

  /// y, state_out = WKV7(r, w, k, v, a, b, state0); r..b, y are [B, T, H*N],
  /// the states [B, H, N, N]; w is the log-decay.
  void forward(const float *r, const float *w, const float *k, const float *v,
               const float *a, const float *b, const float *state0, float *y,
               float *stateOut) const;
  /// The gradients of r..b and state0 given those of y and the final state.
  void backward(const float *r, const float *w, const float *k, const float *v,
                const float *a, const float *b, const float *state0,
                const float *dy, const float *dstate, float *dr, float *dw,
                float *dk, float *dv, float *da, float *db,
                float *dstate0) const;

  /// A CUDA library (`--target=cuda`): the arguments are copied to the
  /// device and the results back on every call.
  bool onDevice() const { return device_ != nullptr; }
  /// CUDA libraries: seconds the last forward or backward spent in the
  /// entry point (its kernels), without the copies; 0 on the CPU.
  double lastDeviceSeconds() const;

private:
  WKV7Kernel() = default;
  using PackedFn = void (*)(void **);
  struct Device;
  void call(PackedFn fn, const char *entry,
            const std::vector<const float *> &inputs,
            const std::vector<float *> &outputs,
            const std::vector<bool> &inputIsState,
            const std::vector<bool> &outputIsState) const;
  std::string path_, json_;
  void *handle_ = nullptr;
  std::unique_ptr<Device> device_; // CUDA libraries only
  PackedFn forwardFn_ = nullptr, backwardFn_ = nullptr;
  int64_t batch_ = 0, context_ = 0, heads_ = 0, headSize_ = 0;
};

} // namespace rwkv

#endif // RWKV_RUNTIME_CORE_KERNEL_H
