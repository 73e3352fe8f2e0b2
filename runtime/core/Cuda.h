//===- Cuda.h - The CUDA driver behind CUDA model libraries -----*- C++ -*-===//
//
// A CUDA model library (docs/ABI.md "CUDA libraries") does not link the
// CUDA driver or MLIR's CUDA runtime: it calls the `mgpu*` functions of
// MLIR's CudaRuntimeWrappers through pointers that the runtime fills in.
// This file provides those functions over libcuda.so.1, which is dlopen()ed
// on first use ($RWKV_CUDA_DRIVER overrides the path), and the device memory
// the runtime itself needs (weights, state, tokens, logits).
//
// Nothing here aborts: a missing driver is a reason string, and a failing
// driver call inside a library's entry point is recorded as the calling
// thread's first error, which Model::run turns into a DeviceError after the
// call. See docs/runtime.md "CUDA libraries".
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_CORE_CUDA_H
#define RWKV_RUNTIME_CORE_CUDA_H

#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace rwkv::cuda {

/// $RWKV_CUDA_DRIVER when set and not empty, else "libcuda.so.1".
std::string driverPath();

/// Loads and initializes the driver at driverPath() (cuInit, device 0, its
/// primary context) unless that driver is already loaded. Returns an empty
/// string on success, else why CUDA is unavailable ("libcuda.so.1: cannot
/// open shared object file: No such file or directory", "cuInit failed:
/// error 34 (CUDA_ERROR_STUB_LIBRARY) in '...'"). A success is kept for the
/// life of the process; a failure is retried on the next call.
std::string loadDriver();

/// "device 0 'NAME' (sm_XY)" once the driver is loaded.
std::string deviceDescription();

/// One `mgpu*` function that CUDA libraries may import.
struct Import {
  const char *name;
  void *address;
};
/// Every mgpu function this runtime provides, with the signatures of MLIR's
/// CudaRuntimeWrappers.cpp (LLVM 22).
const std::vector<Import> &imports();
/// The address of the mgpu function `name`, or nullptr.
void *importAddress(std::string_view name);

/// The first error an mgpu function recorded on this thread since the last
/// clearError() ("mgpuLaunchKernel (kernel 'k'): cuLaunchKernel failed:
/// error 719 (CUDA_ERROR_LAUNCH_FAILED)"); empty if none. While one is
/// pending, the mgpu functions that do work (launches, copies, allocations,
/// module loads) return at once; those that release resources still run.
void clearError();
/// Returns and clears it; `code` (if given) receives its CUresult, or -1
/// when it was not a driver error.
std::string takeError(int *code = nullptr);

/// Device memory owned by the runtime. The driver calls below throw
/// DeviceError (Runtime.h) naming the driver function and the error.
class DeviceBuffer {
public:
  DeviceBuffer() = default;
  /// `what` names the buffer in an out-of-memory message.
  DeviceBuffer(size_t bytes, const char *what);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer &&other) noexcept;
  DeviceBuffer &operator=(DeviceBuffer &&other) noexcept;
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;

  uint64_t address() const { return address_; }
  /// The device address as a pointer, for memref descriptors.
  void *pointer() const { return reinterpret_cast<void *>(address_); }
  size_t size() const { return size_; }
  /// Makes the buffer hold at least `bytes` (the contents are lost if it
  /// has to grow).
  void reserve(size_t bytes, const char *what);

private:
  uint64_t address_ = 0;
  size_t size_ = 0;
};

void copyToDevice(uint64_t dst, const void *src, size_t bytes);
void copyToHost(void *dst, uint64_t src, size_t bytes);
void copyOnDevice(uint64_t dst, uint64_t src, size_t bytes);
/// Waits until the copies above have reached the device. They run on the
/// legacy default stream, which the libraries' non-blocking streams do not
/// wait for, and a host-to-device copy from pageable memory may return
/// before its DMA is done.
void synchronize();

/// One argument of CopyingCaller::call: `bytes` from `in` copied to the
/// device before the call (an input), or from the device to `out` after it
/// (a result); `shape` is its memref descriptor's.
struct CopiedArg {
  const void *in = nullptr;
  void *out = nullptr;
  size_t bytes = 0;
  std::vector<int64_t> shape;
};

/// Calls an entry point of a CUDA library on host buffers: every argument is
/// copied into one device arena (kept and grown between calls), the entry
/// point runs on device descriptors, its recorded error is checked, and the
/// results are copied back. Calls are serialized (the arena is shared). For
/// libraries whose callers hold host data: training steps, kernels.
class CopyingCaller {
public:
  /// `what` names the call in errors ("training library 'x':
  /// rwkv_train_step"). Throws DeviceError.
  void call(void (*fn)(void **), const std::string &what,
            const std::vector<CopiedArg> &args);
  /// Seconds the last call spent in the entry point itself (its device work
  /// included, the copies not).
  double lastCallSeconds() const { return lastSeconds_; }

private:
  DeviceBuffer arena_;
  std::mutex mutex_;
  double lastSeconds_ = 0;
};

/// What a loader of CUDA training or kernel libraries checks before it binds
/// one (LibraryBinding::bind): the exports (no driver needed, so GPU-less
/// machines check them too), a string `cuda_arch` in `info` (the
/// library's rwkv_model_info()), and a loadable driver. Throws RuntimeError
/// ("<kind> library '<path>' is a CUDA library (sm_80) but CUDA is
/// unavailable: ...").
void requireDriver(void *handle, const std::string &path,
                   const nlohmann::json &info, const char *kind);

/// A CUDA model library bound to the driver: its import pointers filled and
/// rwkv_cuda_init() run. A library opened several times (dlopen returns the
/// same handle) is initialized once; rwkv_cuda_fini() runs when its last
/// binding goes.
class LibraryBinding {
public:
  /// Checks what needs no driver: `rwkv_cuda_imports` names only functions
  /// of imports(), each has its `rwkv_cuda_import_<NAME>` pointer, and
  /// rwkv_cuda_init/fini exist. Throws RuntimeError naming `path` and the
  /// name or symbol.
  static void checkExports(void *handle, const std::string &path);
  /// Fills the import pointers and runs rwkv_cuda_init() (the driver must
  /// be loaded). Throws RuntimeError naming `path`, the device and the
  /// recorded error if the initialization fails.
  static std::unique_ptr<LibraryBinding> bind(void *handle,
                                              const std::string &path);
  ~LibraryBinding();
  LibraryBinding(const LibraryBinding &) = delete;
  LibraryBinding &operator=(const LibraryBinding &) = delete;

private:
  explicit LibraryBinding(void *handle) : handle_(handle) {}
  void *handle_;
};

} // namespace rwkv::cuda

#endif // RWKV_RUNTIME_CORE_CUDA_H
