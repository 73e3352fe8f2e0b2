//===- Cuda.cpp - mgpu* functions and device memory over libcuda ----------===//
//
// The driver is dlopen()ed, never linked: the runtime must start on machines
// without one, and a CUDA model library must fail to load with a reason
// rather than abort the process (../shared/docs/cuda-codegen.md §3.4).
//
//===----------------------------------------------------------------------===//

#include "runtime/core/Cuda.h"

#include "runtime/core/CudaApi.h"
#include "runtime/core/Runtime.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <dlfcn.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>

using namespace rwkv::cudaapi;

const char *rwkv::cudaapi::errorName(CUresult result) {
  // cuda.h (CUDA 13.0), enum cudaError_enum.
  static const std::map<CUresult, const char *> names = {
      {0, "CUDA_SUCCESS"},
      {1, "CUDA_ERROR_INVALID_VALUE"},
      {2, "CUDA_ERROR_OUT_OF_MEMORY"},
      {3, "CUDA_ERROR_NOT_INITIALIZED"},
      {4, "CUDA_ERROR_DEINITIALIZED"},
      {5, "CUDA_ERROR_PROFILER_DISABLED"},
      {6, "CUDA_ERROR_PROFILER_NOT_INITIALIZED"},
      {7, "CUDA_ERROR_PROFILER_ALREADY_STARTED"},
      {8, "CUDA_ERROR_PROFILER_ALREADY_STOPPED"},
      {34, "CUDA_ERROR_STUB_LIBRARY"},
      {36, "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER"},
      {46, "CUDA_ERROR_DEVICE_UNAVAILABLE"},
      {100, "CUDA_ERROR_NO_DEVICE"},
      {101, "CUDA_ERROR_INVALID_DEVICE"},
      {102, "CUDA_ERROR_DEVICE_NOT_LICENSED"},
      {200, "CUDA_ERROR_INVALID_IMAGE"},
      {201, "CUDA_ERROR_INVALID_CONTEXT"},
      {202, "CUDA_ERROR_CONTEXT_ALREADY_CURRENT"},
      {205, "CUDA_ERROR_MAP_FAILED"},
      {206, "CUDA_ERROR_UNMAP_FAILED"},
      {207, "CUDA_ERROR_ARRAY_IS_MAPPED"},
      {208, "CUDA_ERROR_ALREADY_MAPPED"},
      {209, "CUDA_ERROR_NO_BINARY_FOR_GPU"},
      {210, "CUDA_ERROR_ALREADY_ACQUIRED"},
      {211, "CUDA_ERROR_NOT_MAPPED"},
      {212, "CUDA_ERROR_NOT_MAPPED_AS_ARRAY"},
      {213, "CUDA_ERROR_NOT_MAPPED_AS_POINTER"},
      {214, "CUDA_ERROR_ECC_UNCORRECTABLE"},
      {215, "CUDA_ERROR_UNSUPPORTED_LIMIT"},
      {216, "CUDA_ERROR_CONTEXT_ALREADY_IN_USE"},
      {217, "CUDA_ERROR_PEER_ACCESS_UNSUPPORTED"},
      {218, "CUDA_ERROR_INVALID_PTX"},
      {219, "CUDA_ERROR_INVALID_GRAPHICS_CONTEXT"},
      {220, "CUDA_ERROR_NVLINK_UNCORRECTABLE"},
      {221, "CUDA_ERROR_JIT_COMPILER_NOT_FOUND"},
      {222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"},
      {223, "CUDA_ERROR_JIT_COMPILATION_DISABLED"},
      {224, "CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY"},
      {225, "CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC"},
      {226, "CUDA_ERROR_CONTAINED"},
      {300, "CUDA_ERROR_INVALID_SOURCE"},
      {301, "CUDA_ERROR_FILE_NOT_FOUND"},
      {302, "CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND"},
      {303, "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED"},
      {304, "CUDA_ERROR_OPERATING_SYSTEM"},
      {400, "CUDA_ERROR_INVALID_HANDLE"},
      {401, "CUDA_ERROR_ILLEGAL_STATE"},
      {402, "CUDA_ERROR_LOSSY_QUERY"},
      {500, "CUDA_ERROR_NOT_FOUND"},
      {600, "CUDA_ERROR_NOT_READY"},
      {700, "CUDA_ERROR_ILLEGAL_ADDRESS"},
      {701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"},
      {702, "CUDA_ERROR_LAUNCH_TIMEOUT"},
      {703, "CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING"},
      {704, "CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED"},
      {705, "CUDA_ERROR_PEER_ACCESS_NOT_ENABLED"},
      {708, "CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE"},
      {709, "CUDA_ERROR_CONTEXT_IS_DESTROYED"},
      {710, "CUDA_ERROR_ASSERT"},
      {711, "CUDA_ERROR_TOO_MANY_PEERS"},
      {712, "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED"},
      {713, "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED"},
      {714, "CUDA_ERROR_HARDWARE_STACK_ERROR"},
      {715, "CUDA_ERROR_ILLEGAL_INSTRUCTION"},
      {716, "CUDA_ERROR_MISALIGNED_ADDRESS"},
      {717, "CUDA_ERROR_INVALID_ADDRESS_SPACE"},
      {718, "CUDA_ERROR_INVALID_PC"},
      {719, "CUDA_ERROR_LAUNCH_FAILED"},
      {720, "CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE"},
      {721, "CUDA_ERROR_TENSOR_MEMORY_LEAK"},
      {800, "CUDA_ERROR_NOT_PERMITTED"},
      {801, "CUDA_ERROR_NOT_SUPPORTED"},
      {802, "CUDA_ERROR_SYSTEM_NOT_READY"},
      {803, "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH"},
      {804, "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE"},
      {805, "CUDA_ERROR_MPS_CONNECTION_FAILED"},
      {806, "CUDA_ERROR_MPS_RPC_FAILURE"},
      {807, "CUDA_ERROR_MPS_SERVER_NOT_READY"},
      {808, "CUDA_ERROR_MPS_MAX_CLIENTS_REACHED"},
      {809, "CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED"},
      {810, "CUDA_ERROR_MPS_CLIENT_TERMINATED"},
      {811, "CUDA_ERROR_CDP_NOT_SUPPORTED"},
      {812, "CUDA_ERROR_CDP_VERSION_MISMATCH"},
      {900, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"},
      {901, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"},
      {902, "CUDA_ERROR_STREAM_CAPTURE_MERGE"},
      {903, "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED"},
      {904, "CUDA_ERROR_STREAM_CAPTURE_UNJOINED"},
      {905, "CUDA_ERROR_STREAM_CAPTURE_ISOLATION"},
      {906, "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT"},
      {907, "CUDA_ERROR_CAPTURED_EVENT"},
      {908, "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD"},
      {909, "CUDA_ERROR_TIMEOUT"},
      {910, "CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE"},
      {911, "CUDA_ERROR_EXTERNAL_DEVICE"},
      {912, "CUDA_ERROR_INVALID_CLUSTER_SIZE"},
      {913, "CUDA_ERROR_FUNCTION_NOT_LOADED"},
      {914, "CUDA_ERROR_INVALID_RESOURCE_TYPE"},
      {915, "CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION"},
      {916, "CUDA_ERROR_KEY_ROTATION"},
      {999, "CUDA_ERROR_UNKNOWN"},
  };
  auto it = names.find(result);
  return it == names.end() ? nullptr : it->second;
}

namespace rwkv::cuda {
namespace {

//===----------------------------------------------------------------------===//
// The driver
//===----------------------------------------------------------------------===//

struct Driver {
#define RWKV_DECLARE(name, symbol, ret, params) ret(*name) params = nullptr;
  RWKV_CUDA_DRIVER_FUNCTIONS(RWKV_DECLARE)
#undef RWKV_DECLARE
  std::string path;
  CUdevice device = 0;
  CUcontext context = nullptr;
  std::string deviceName;
  int ccMajor = 0, ccMinor = 0;
  /// The most dynamic shared memory a launch may opt in to.
  int maxSharedOptin = 48 << 10;
};

std::mutex driverMutex;
/// Set once and never freed: libraries and device buffers use it until the
/// process exits.
std::atomic<const Driver *> activeDriver{nullptr};

std::string describe(CUresult result) {
  if (const char *name = errorName(result))
    return fmt::format("error {} ({})", result, name);
  return fmt::format("error {}", result);
}

/// Loads the driver at `path` into `out`, or says why it cannot.
std::string tryLoad(const std::string &path, std::unique_ptr<Driver> &out) {
  dlerror();
  // Left open when a later step fails: unloading a driver that may have
  // started threads is not safe, and a retry gets the same handle back.
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *err = dlerror();
    return err ? err : path + ": cannot be loaded";
  }
  auto d = std::make_unique<Driver>();
  d->path = path;
#define RWKV_LOOKUP(name, symbol, ret, params)                                 \
  d->name = reinterpret_cast<ret(*) params>(dlsym(handle, symbol));            \
  if (!d->name)                                                                \
    return fmt::format("'{}' has no {} (is it a CUDA driver?)", path, symbol);
  RWKV_CUDA_DRIVER_FUNCTIONS(RWKV_LOOKUP)
#undef RWKV_LOOKUP
  auto failed = [&](const char *function, CUresult result) {
    return fmt::format("{} failed: {} in '{}'", function, describe(result),
                       path);
  };
  if (CUresult r = d->cuInit(0))
    return failed("cuInit", r);
  if (CUresult r = d->cuDeviceGet(&d->device, 0))
    return failed("cuDeviceGet", r);
  // The primary context is the one the CUDA runtime (and PyTorch) share.
  if (CUresult r = d->cuDevicePrimaryCtxRetain(&d->context, d->device))
    return failed("cuDevicePrimaryCtxRetain", r);
  char name[256] = {};
  if (d->cuDeviceGetName(name, int(sizeof(name)) - 1, d->device) ==
      CUDA_SUCCESS)
    d->deviceName = name;
  d->cuDeviceGetAttribute(
      &d->ccMajor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d->device);
  d->cuDeviceGetAttribute(
      &d->ccMinor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d->device);
  int optin = 0;
  if (d->cuDeviceGetAttribute(
          &optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
          d->device) == CUDA_SUCCESS &&
      optin > 0)
    d->maxSharedOptin = optin;
  out = std::move(d);
  return "";
}

/// The loaded driver for the runtime's own calls; throws if there is none.
const Driver &requireDriver() {
  const Driver *d = activeDriver.load();
  if (!d)
    throw DeviceError("the CUDA driver is not loaded", -1);
  return *d;
}

/// Makes the primary context current for the scope and restores the
/// caller's afterwards, as MLIR's ScopedContext does: the process may use
/// other contexts too.
class ContextScope {
public:
  explicit ContextScope(const Driver &d) : driver_(d) {
    result_ = d.cuCtxPushCurrent(d.context);
  }
  ~ContextScope() {
    if (result_ == CUDA_SUCCESS) {
      CUcontext popped;
      driver_.cuCtxPopCurrent(&popped);
    }
  }
  ContextScope(const ContextScope &) = delete;
  ContextScope &operator=(const ContextScope &) = delete;
  CUresult result() const { return result_; }

private:
  const Driver &driver_;
  CUresult result_;
};

/// For the runtime's own calls: throws DeviceError naming `function`, the
/// bytes it moved and what for.
void check(CUresult result, const char *function, size_t bytes = 0,
           const char *purpose = nullptr) {
  if (result == CUDA_SUCCESS)
    return;
  std::string what = function;
  if (bytes)
    what += fmt::format(" of {} bytes", bytes);
  if (purpose)
    what += fmt::format(" for the {}", purpose);
  throw DeviceError(fmt::format("{} failed: {}", what, describe(result)),
                    result);
}

//===----------------------------------------------------------------------===//
// Errors of the mgpu functions
//===----------------------------------------------------------------------===//

// Per thread: a library's host code runs on the thread that called its
// entry point, and several threads may run one model with their own states.
thread_local std::string pendingError;
thread_local int pendingCode = 0;
// The kernel that mgpuModuleGetFunction resolved last, to name it when the
// launch that follows fails (the lowering looks up a kernel per launch).
thread_local CUfunction lastFunction = nullptr;
thread_local const char *lastFunctionName = nullptr;

void record(int code, std::string message) {
  if (!pendingError.empty())
    return;
  pendingError = std::move(message);
  pendingCode = code;
}

/// One mgpu call: the driver, the primary context and error recording.
class Call {
public:
  /// `releases`: the call frees something, so it runs even when an earlier
  /// call failed (that one's error is kept).
  explicit Call(const char *function, bool releases = false)
      : function_(function), driver_(activeDriver.load()) {
    if (!driver_) {
      record(-1, fmt::format("{}: the CUDA driver is not loaded", function));
      return;
    }
    if (!releases && !pendingError.empty())
      return;
    context_.emplace(*driver_);
    ok_ = check(context_->result(), "cuCtxPushCurrent");
  }
  explicit operator bool() const { return ok_; }
  const Driver &driver() const { return *driver_; }

  /// Records a failure of `driverFunction`; `detail()` follows the mgpu
  /// name (only built on failure: launches are the hot path).
  template <typename Detail>
  bool check(CUresult result, const char *driverFunction, Detail &&detail) {
    if (result == CUDA_SUCCESS)
      return true;
    record(result, fmt::format("{}{}: {} failed: {}", function_, detail(),
                               driverFunction, describe(result)));
    return false;
  }
  bool check(CUresult result, const char *driverFunction) {
    return check(result, driverFunction, [] { return std::string(); });
  }

private:
  const char *function_;
  const Driver *driver_;
  std::optional<ContextScope> context_;
  bool ok_ = false;
};

std::string kernelName(CUfunction function) {
  if (function && function == lastFunction && lastFunctionName)
    return fmt::format(" (kernel '{}')", lastFunctionName);
  return "";
}

//===----------------------------------------------------------------------===//
// The mgpu functions (signatures of MLIR's CudaRuntimeWrappers.cpp)
//===----------------------------------------------------------------------===//

CUmodule mgpuModuleLoad(void *data, size_t /*gpuBlobSize*/) {
  Call call("mgpuModuleLoad");
  CUmodule module = nullptr;
  if (call)
    call.check(call.driver().cuModuleLoadData(&module, data),
               "cuModuleLoadData");
  return module;
}

/// For a PTX image (`gpu-module-to-binary format=isa`): JIT-compiled by the
/// driver, whose log goes into the error.
CUmodule mgpuModuleLoadJIT(void *data, int optLevel) {
  Call call("mgpuModuleLoadJIT");
  CUmodule module = nullptr;
  if (!call)
    return module;
  char log[4096] = {};
  CUjit_option options[] = {CU_JIT_ERROR_LOG_BUFFER,
                            CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                            CU_JIT_OPTIMIZATION_LEVEL};
  void *values[] = {log, reinterpret_cast<void *>(sizeof(log)),
                    reinterpret_cast<void *>(intptr_t(optLevel))};
  CUresult r =
      call.driver().cuModuleLoadDataEx(&module, data, 3, options, values);
  log[sizeof(log) - 1] = 0;
  if (r != CUDA_SUCCESS)
    record(r, fmt::format("mgpuModuleLoadJIT: cuModuleLoadDataEx failed: "
                          "{}{}{}",
                          describe(r), log[0] ? ": " : "", log));
  return module;
}

void mgpuModuleUnload(CUmodule module) {
  Call call("mgpuModuleUnload", /*releases=*/true);
  if (call && module)
    call.check(call.driver().cuModuleUnload(module), "cuModuleUnload");
}

CUfunction mgpuModuleGetFunction(CUmodule module, const char *name) {
  Call call("mgpuModuleGetFunction");
  CUfunction function = nullptr;
  if (call &&
      call.check(call.driver().cuModuleGetFunction(&function, module, name),
                 "cuModuleGetFunction", [&] {
                   return fmt::format(" (kernel '{}')", name ? name : "(null)");
                 })) {
    lastFunction = function;
    lastFunctionName = name;
  }
  return function;
}

// intptr_t sizes, as MLIR's index type; the driver takes unsigned.
void mgpuLaunchKernel(CUfunction function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t smem, CUstream stream,
                      void **params, void **extra, size_t /*paramsCount*/) {
  Call call("mgpuLaunchKernel");
  if (!call)
    return;
  const Driver &d = call.driver();
  auto fits = [](intptr_t v) { return v >= 1 && v <= intptr_t(UINT32_MAX); };
  if (!fits(gridX) || !fits(gridY) || !fits(gridZ) || !fits(blockX) ||
      !fits(blockY) || !fits(blockZ) || smem < 0) {
    record(CUDA_ERROR_INVALID_VALUE,
           fmt::format("mgpuLaunchKernel{}: grid ({}, {}, {}), block ({}, "
                       "{}, {}), {} bytes of shared memory is out of range",
                       kernelName(function), gridX, gridY, gridZ, blockX,
                       blockY, blockZ, smem));
    return;
  }
  // Above the default 48 KiB a kernel must opt in (upstream does the same).
  if (smem > (48 << 10)) {
    if (smem > d.maxSharedOptin) {
      record(CUDA_ERROR_INVALID_VALUE,
             fmt::format("mgpuLaunchKernel{}: {} bytes of dynamic shared "
                         "memory, the device allows {}",
                         kernelName(function), smem, d.maxSharedOptin));
      return;
    }
    if (!call.check(d.cuFuncSetAttribute(
                        function,
                        CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem),
                    "cuFuncSetAttribute", [&] { return kernelName(function); }))
      return;
  }
  call.check(d.cuLaunchKernel(function, unsigned(gridX), unsigned(gridY),
                              unsigned(gridZ), unsigned(blockX),
                              unsigned(blockY), unsigned(blockZ),
                              unsigned(smem), stream, params, extra),
             "cuLaunchKernel", [&] { return kernelName(function); });
}

CUstream mgpuStreamCreate() {
  Call call("mgpuStreamCreate");
  CUstream stream = nullptr;
  if (call)
    call.check(call.driver().cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING),
               "cuStreamCreate");
  return stream;
}

void mgpuStreamDestroy(CUstream stream) {
  Call call("mgpuStreamDestroy", /*releases=*/true);
  if (call && stream)
    call.check(call.driver().cuStreamDestroy(stream), "cuStreamDestroy");
}

// Runs after a failure too: work launched before it must finish before the
// runtime may free or reuse the buffers.
void mgpuStreamSynchronize(CUstream stream) {
  Call call("mgpuStreamSynchronize", /*releases=*/true);
  if (call && stream)
    call.check(call.driver().cuStreamSynchronize(stream),
               "cuStreamSynchronize");
}

void mgpuStreamWaitEvent(CUstream stream, CUevent event) {
  Call call("mgpuStreamWaitEvent");
  if (call)
    call.check(call.driver().cuStreamWaitEvent(stream, event, 0),
               "cuStreamWaitEvent");
}

CUevent mgpuEventCreate() {
  Call call("mgpuEventCreate");
  CUevent event = nullptr;
  if (call)
    call.check(call.driver().cuEventCreate(&event, CU_EVENT_DISABLE_TIMING),
               "cuEventCreate");
  return event;
}

void mgpuEventDestroy(CUevent event) {
  Call call("mgpuEventDestroy", /*releases=*/true);
  if (call && event)
    call.check(call.driver().cuEventDestroy(event), "cuEventDestroy");
}

void mgpuEventSynchronize(CUevent event) {
  Call call("mgpuEventSynchronize", /*releases=*/true);
  if (call && event)
    call.check(call.driver().cuEventSynchronize(event), "cuEventSynchronize");
}

void mgpuEventRecord(CUevent event, CUstream stream) {
  Call call("mgpuEventRecord");
  if (call)
    call.check(call.driver().cuEventRecord(event, stream), "cuEventRecord");
}

void *mgpuMemAlloc(uint64_t sizeBytes, CUstream /*stream*/, bool isHostShared) {
  Call call("mgpuMemAlloc");
  CUdeviceptr ptr = 0;
  if (!call || sizeBytes == 0)
    return nullptr;
  auto detail = [&] { return fmt::format(" ({} bytes)", sizeBytes); };
  if (isHostShared)
    call.check(
        call.driver().cuMemAllocManaged(&ptr, sizeBytes, CU_MEM_ATTACH_GLOBAL),
        "cuMemAllocManaged", detail);
  else
    call.check(call.driver().cuMemAlloc(&ptr, sizeBytes), "cuMemAlloc", detail);
  return reinterpret_cast<void *>(ptr);
}

void mgpuMemFree(void *ptr, CUstream /*stream*/) {
  Call call("mgpuMemFree", /*releases=*/true);
  if (call && ptr)
    call.check(call.driver().cuMemFree(reinterpret_cast<CUdeviceptr>(ptr)),
               "cuMemFree");
}

void mgpuMemcpy(void *dst, void *src, size_t sizeBytes, CUstream stream) {
  Call call("mgpuMemcpy");
  if (call && sizeBytes)
    call.check(call.driver().cuMemcpyAsync(reinterpret_cast<CUdeviceptr>(dst),
                                           reinterpret_cast<CUdeviceptr>(src),
                                           sizeBytes, stream),
               "cuMemcpyAsync",
               [&] { return fmt::format(" ({} bytes)", sizeBytes); });
}

void mgpuMemset32(void *dst, unsigned int value, size_t count,
                  CUstream stream) {
  Call call("mgpuMemset32");
  if (call && count)
    call.check(call.driver().cuMemsetD32Async(
                   reinterpret_cast<CUdeviceptr>(dst), value, count, stream),
               "cuMemsetD32Async");
}

void mgpuMemset16(void *dst, unsigned short value, size_t count,
                  CUstream stream) {
  Call call("mgpuMemset16");
  if (call && count)
    call.check(call.driver().cuMemsetD16Async(
                   reinterpret_cast<CUdeviceptr>(dst), value, count, stream),
               "cuMemsetD16Async");
}

#define RWKV_MGPU_FUNCTIONS(X)                                                 \
  X(mgpuModuleLoad)                                                            \
  X(mgpuModuleLoadJIT)                                                         \
  X(mgpuModuleUnload)                                                          \
  X(mgpuModuleGetFunction)                                                     \
  X(mgpuLaunchKernel)                                                          \
  X(mgpuStreamCreate)                                                          \
  X(mgpuStreamDestroy)                                                         \
  X(mgpuStreamSynchronize)                                                     \
  X(mgpuStreamWaitEvent)                                                       \
  X(mgpuEventCreate)                                                           \
  X(mgpuEventDestroy)                                                          \
  X(mgpuEventSynchronize)                                                      \
  X(mgpuEventRecord)                                                           \
  X(mgpuMemAlloc)                                                              \
  X(mgpuMemFree)                                                               \
  X(mgpuMemcpy)                                                                \
  X(mgpuMemset32)                                                              \
  X(mgpuMemset16)

/// Live bindings per dlopen handle (LibraryBinding).
std::mutex bindingsMutex;
std::map<void *, int> bindings;

std::vector<std::string> importList(void *handle, const std::string &path) {
  auto *list = static_cast<const char *>(dlsym(handle, "rwkv_cuda_imports"));
  if (!list)
    throw RuntimeError(fmt::format(
        "CUDA library '{}' does not export rwkv_cuda_imports", path));
  std::vector<std::string> names;
  std::string_view rest(list);
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view name = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name[0])))
      name.remove_prefix(1);
    while (!name.empty() &&
           std::isspace(static_cast<unsigned char>(name.back())))
      name.remove_suffix(1);
    if (!name.empty())
      names.emplace_back(name);
  }
  return names;
}

using LibraryFn = void (*)();

LibraryFn libraryFunction(void *handle, const char *name) {
  return reinterpret_cast<LibraryFn>(dlsym(handle, name));
}

} // namespace

//===----------------------------------------------------------------------===//
// Public interface
//===----------------------------------------------------------------------===//

std::string driverPath() {
  const char *env = std::getenv("RWKV_CUDA_DRIVER");
  return env && *env ? env : "libcuda.so.1";
}

std::string loadDriver() {
  std::string path = driverPath();
  std::lock_guard<std::mutex> lock(driverMutex);
  const Driver *active = activeDriver.load();
  if (active && active->path == path)
    return "";
  std::unique_ptr<Driver> d;
  std::string why = tryLoad(path, d);
  if (!why.empty())
    return why;
  // Libraries and buffers of the first driver still call it.
  if (active)
    return fmt::format("the CUDA driver '{}' is already in use in this "
                       "process; cannot switch to '{}'",
                       active->path, path);
  activeDriver.store(d.release());
  return "";
}

std::string deviceDescription() {
  const Driver *d = activeDriver.load();
  if (!d)
    return "no device (the CUDA driver is not loaded)";
  return fmt::format("device 0 '{}' (sm_{}{})", d->deviceName, d->ccMajor,
                     d->ccMinor);
}

const std::vector<Import> &imports() {
  static const std::vector<Import> table = {
#define RWKV_IMPORT(name) {#name, reinterpret_cast<void *>(&name)},
      RWKV_MGPU_FUNCTIONS(RWKV_IMPORT)
#undef RWKV_IMPORT
  };
  return table;
}

void *importAddress(std::string_view name) {
  for (const Import &i : imports())
    if (name == i.name)
      return i.address;
  return nullptr;
}

void clearError() {
  pendingError.clear();
  pendingCode = 0;
}

std::string takeError(int *code) {
  if (code)
    *code = pendingCode;
  std::string error = std::move(pendingError);
  clearError();
  return error;
}

//===----------------------------------------------------------------------===//
// DeviceBuffer and copies
//===----------------------------------------------------------------------===//

DeviceBuffer::DeviceBuffer(size_t bytes, const char *what) {
  reserve(bytes, what);
}

DeviceBuffer::~DeviceBuffer() {
  if (!address_)
    return;
  // Freeing never throws; a failure here would only repeat an earlier one.
  if (const Driver *d = activeDriver.load()) {
    ContextScope context(*d);
    d->cuMemFree(address_);
  }
}

DeviceBuffer::DeviceBuffer(DeviceBuffer &&other) noexcept
    : address_(other.address_), size_(other.size_) {
  other.address_ = 0;
  other.size_ = 0;
}

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&other) noexcept {
  if (this != &other) {
    DeviceBuffer old(std::move(*this));
    address_ = other.address_;
    size_ = other.size_;
    other.address_ = 0;
    other.size_ = 0;
  }
  return *this;
}

void DeviceBuffer::reserve(size_t bytes, const char *what) {
  if (bytes <= size_)
    return;
  *this = DeviceBuffer();
  const Driver &d = requireDriver();
  ContextScope context(d);
  check(context.result(), "cuCtxPushCurrent");
  CUdeviceptr ptr = 0;
  check(d.cuMemAlloc(&ptr, bytes), "cuMemAlloc", bytes, what);
  address_ = ptr;
  size_ = bytes;
}

void copyToDevice(uint64_t dst, const void *src, size_t bytes) {
  if (!bytes)
    return;
  const Driver &d = requireDriver();
  ContextScope context(d);
  check(context.result(), "cuCtxPushCurrent");
  check(d.cuMemcpyHtoD(dst, src, bytes), "cuMemcpyHtoD", bytes);
}

void copyToHost(void *dst, uint64_t src, size_t bytes) {
  if (!bytes)
    return;
  const Driver &d = requireDriver();
  ContextScope context(d);
  check(context.result(), "cuCtxPushCurrent");
  check(d.cuMemcpyDtoH(dst, src, bytes), "cuMemcpyDtoH", bytes);
}

void copyOnDevice(uint64_t dst, uint64_t src, size_t bytes) {
  if (!bytes)
    return;
  const Driver &d = requireDriver();
  ContextScope context(d);
  check(context.result(), "cuCtxPushCurrent");
  check(d.cuMemcpyDtoD(dst, src, bytes), "cuMemcpyDtoD", bytes);
}

void synchronize() {
  const Driver &d = requireDriver();
  ContextScope context(d);
  check(context.result(), "cuCtxPushCurrent");
  check(d.cuStreamSynchronize(nullptr),
        "cuStreamSynchronize of the default stream");
}

//===----------------------------------------------------------------------===//
// LibraryBinding
//===----------------------------------------------------------------------===//

void LibraryBinding::checkExports(void *handle, const std::string &path) {
  for (const std::string &name : importList(handle, path)) {
    if (!importAddress(name)) {
      std::vector<std::string_view> known;
      for (const Import &i : imports())
        known.push_back(i.name);
      throw RuntimeError(fmt::format(
          "CUDA library '{}' imports '{}' (rwkv_cuda_imports), which this "
          "runtime does not provide; it provides {}",
          path, name, fmt::join(known, ", ")));
    }
    std::string symbol = "rwkv_cuda_import_" + name;
    if (!dlsym(handle, symbol.c_str()))
      throw RuntimeError(fmt::format(
          "CUDA library '{}' lists '{}' in rwkv_cuda_imports but does not "
          "export '{}'",
          path, name, symbol));
  }
  for (const char *symbol : {"rwkv_cuda_init", "rwkv_cuda_fini"})
    if (!libraryFunction(handle, symbol))
      throw RuntimeError(
          fmt::format("CUDA library '{}' does not export {}()", path, symbol));
}

std::unique_ptr<LibraryBinding> LibraryBinding::bind(void *handle,
                                                     const std::string &path) {
  checkExports(handle, path);
  std::lock_guard<std::mutex> lock(bindingsMutex);
  int &count = bindings[handle];
  if (count == 0) {
    // A library dlclose()d and opened again starts with null pointers.
    for (const std::string &name : importList(handle, path))
      *static_cast<void **>(dlsym(
          handle, ("rwkv_cuda_import_" + name).c_str())) = importAddress(name);
    clearError();
    libraryFunction(handle, "rwkv_cuda_init")();
    int code = 0;
    std::string error = takeError(&code);
    if (!error.empty()) {
      // Releases whatever the initialization got before it failed.
      libraryFunction(handle, "rwkv_cuda_fini")();
      clearError();
      bindings.erase(handle);
      throw DeviceError(fmt::format("CUDA library '{}': rwkv_cuda_init "
                                    "failed on {}: {}",
                                    path, deviceDescription(), error),
                        code);
    }
  }
  ++count;
  return std::unique_ptr<LibraryBinding>(new LibraryBinding(handle));
}

LibraryBinding::~LibraryBinding() {
  std::lock_guard<std::mutex> lock(bindingsMutex);
  auto it = bindings.find(handle_);
  if (it == bindings.end() || --it->second > 0)
    return;
  bindings.erase(it);
  libraryFunction(handle_, "rwkv_cuda_fini")();
  // Nobody is left to report an error of the unload to.
  clearError();
}

void requireDriver(void *handle, const std::string &path,
                   const nlohmann::json &info, const char *kind) {
  LibraryBinding::checkExports(handle, path);
  if (!info.contains("cuda_arch") || !info["cuda_arch"].is_string())
    throw RuntimeError(
        fmt::format("{}: a CUDA library has no string 'cuda_arch'", path));
  std::string why = loadDriver();
  if (!why.empty())
    throw RuntimeError(fmt::format(
        "{} library '{}' is a CUDA library ({}) but CUDA is unavailable: {}",
        kind, path, info["cuda_arch"].get<std::string>(), why));
}

void CopyingCaller::call(void (*fn)(void **), const std::string &what,
                         const std::vector<CopiedArg> &args) {
  // Every argument at cuMemAlloc's 256-byte alignment in one arena.
  constexpr size_t kAlign = 256;
  auto padded = [](size_t n) { return (n + kAlign - 1) / kAlign * kAlign; };
  size_t total = 0;
  for (const CopiedArg &a : args)
    total += padded(a.bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  auto prefixed = [&](const DeviceError &e) {
    return DeviceError(fmt::format("{}: {}", what, e.what()), e.code);
  };
  std::vector<MemRefDesc> descs;
  descs.reserve(args.size());
  try {
    arena_.reserve(total, "call arguments");
    uint64_t at = arena_.address();
    for (const CopiedArg &a : args) {
      if (a.in)
        copyToDevice(at, a.in, a.bytes);
      descs.emplace_back(reinterpret_cast<const void *>(at), a.shape);
      at += padded(a.bytes);
    }
    synchronize();
  } catch (const DeviceError &e) {
    throw prefixed(e);
  }
  std::vector<void *> ptrs;
  for (MemRefDesc &d : descs)
    ptrs.push_back(d.get());
  clearError();
  auto start = std::chrono::steady_clock::now();
  fn(ptrs.data());
  lastSeconds_ =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  int code = 0;
  std::string error = takeError(&code);
  if (!error.empty())
    throw DeviceError(fmt::format("{} failed: {}", what, error), code);
  try {
    uint64_t at = arena_.address();
    for (const CopiedArg &a : args) {
      if (a.out)
        copyToHost(a.out, at, a.bytes);
      at += padded(a.bytes);
    }
  } catch (const DeviceError &e) {
    throw prefixed(e);
  }
}

} // namespace rwkv::cuda
