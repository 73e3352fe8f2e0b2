//===- FakeCudaDriver.cpp - A libcuda stand-in on host memory -------------===//
//
// Implements the driver functions the runtime looks up (CudaApi.h), under
// their exported names (`cuMemAlloc_v2`, ...), so that CUDA model libraries
// can be loaded and run without a GPU: device memory is aligned host memory,
// copies and memsets are memcpy/memset, modules and functions are handles
// and launches are recorded, not run. Pointers, handles and contexts are
// checked, so a runtime that passes host memory where device memory belongs,
// or a handle it never got, is caught.
//
// RWKV_FAKE_CUDA_FAIL=<function>[:<code>] makes that function (by its name
// without `_v2`) return the code (default 999, CUDA_ERROR_UNKNOWN), read at
// every call.
//
//===----------------------------------------------------------------------===//

#include "unittests/runtime/FakeCuda.h"

#include "runtime/core/CudaApi.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

using namespace rwkv::cudaapi;

namespace {

std::mutex mutex;
RwkvFakeCudaStats stats;
bool initialized = false;
/// Live allocations: address -> size.
std::map<uintptr_t, size_t> allocations;
std::set<CUmodule> modules;
std::map<std::string, std::unique_ptr<char>> functionsByName;
std::set<CUfunction> functions;
std::set<CUstream> streams;
std::set<CUevent> events;
char contextObject;
const CUcontext theContext = reinterpret_cast<CUcontext>(&contextObject);
thread_local int contextDepth = 0;

/// The injected failure for `function`, or CUDA_SUCCESS.
CUresult injected(const char *function) {
  const char *env = std::getenv("RWKV_FAKE_CUDA_FAIL");
  if (!env || !*env)
    return CUDA_SUCCESS;
  std::string spec = env;
  size_t colon = spec.find(':');
  if (spec.substr(0, colon) != function)
    return CUDA_SUCCESS;
  return colon == std::string::npos ? CUDA_ERROR_UNKNOWN
                                    : std::atoi(spec.c_str() + colon + 1);
}

bool isDevice(uintptr_t p, size_t bytes) {
  auto it = allocations.upper_bound(p);
  if (it == allocations.begin())
    return false;
  --it;
  return p >= it->first && p + bytes <= it->first + it->second;
}

CUresult bad() {
  ++stats.badArguments;
  return CUDA_ERROR_INVALID_VALUE;
}

CUresult allocate(CUdeviceptr *ptr, size_t bytes) {
  if (!ptr || !bytes)
    return bad();
  // cuMemAlloc's alignment.
  void *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!p)
    return CUDA_ERROR_OUT_OF_MEMORY;
  // Garbage, as device memory is: a runtime relying on zeros shows.
  std::memset(p, 0xa5, bytes);
  allocations[reinterpret_cast<uintptr_t>(p)] = bytes;
  ++stats.allocs;
  ++stats.liveAllocs;
  stats.liveBytes += int64_t(bytes);
  *ptr = reinterpret_cast<CUdeviceptr>(p);
  return CUDA_SUCCESS;
}

/// The size of a fatbin, cubin or PTX image, as a loader finds it.
int64_t imageSize(const void *image) {
  uint32_t magic;
  std::memcpy(&magic, image, 4);
  if (magic == 0xba55ed50u) {
    uint16_t headerSize;
    uint64_t payload;
    std::memcpy(&headerSize, static_cast<const char *>(image) + 6, 2);
    std::memcpy(&payload, static_cast<const char *>(image) + 8, 8);
    return int64_t(headerSize + payload);
  }
  return int64_t(std::strlen(static_cast<const char *>(image)) + 1);
}

CUresult loadModule(CUmodule *module, const void *image) {
  if (!module || !image)
    return bad();
  *module = reinterpret_cast<CUmodule>(new char);
  modules.insert(*module);
  ++stats.modulesLoaded;
  ++stats.liveModules;
  stats.lastImageSize = imageSize(image);
  return CUDA_SUCCESS;
}

CUresult memsetDevice(CUdeviceptr dst, const void *value, size_t width,
                      size_t count, CUstream stream) {
  if (stream && !streams.count(stream))
    return bad();
  if (!isDevice(dst, count * width)) {
    ++stats.hostTouchingCopies;
    return bad();
  }
  for (size_t i = 0; i < count; ++i)
    std::memcpy(reinterpret_cast<char *>(dst) + i * width, value, width);
  return CUDA_SUCCESS;
}

} // namespace

#define FAKE_API extern "C" __attribute__((visibility("default")))
/// Every driver function starts here: the lock, the injected failure, and
/// cuInit having been called.
#define FAKE_ENTER(name)                                                       \
  std::lock_guard<std::mutex> lock(mutex);                                     \
  if (CUresult r = injected(name))                                             \
    return r;                                                                  \
  if (!initialized)                                                            \
    return CUDA_ERROR_NOT_INITIALIZED;

FAKE_API CUresult cuInit(unsigned flags) {
  std::lock_guard<std::mutex> lock(mutex);
  if (CUresult r = injected("cuInit"))
    return r;
  if (flags != 0)
    return bad();
  initialized = true;
  ++stats.inits;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuDeviceGet(CUdevice *device, int ordinal) {
  FAKE_ENTER("cuDeviceGet");
  if (!device || ordinal != 0)
    return bad();
  *device = 0;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuDeviceGetName(char *name, int len, CUdevice device) {
  FAKE_ENTER("cuDeviceGetName");
  if (!name || len < 1 || device != 0)
    return bad();
  std::strncpy(name, "RWKV fake CUDA device", size_t(len));
  name[len - 1] = 0;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuDeviceGetAttribute(int *value, CUdevice_attribute attr,
                                       CUdevice device) {
  FAKE_ENTER("cuDeviceGetAttribute");
  if (!value || device != 0)
    return bad();
  switch (attr) {
  case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
    *value = 9;
    break;
  case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
    *value = 0;
    break;
  case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN:
    *value = 227 << 10;
    break;
  default:
    *value = 0;
  }
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuDevicePrimaryCtxRetain(CUcontext *context,
                                           CUdevice device) {
  FAKE_ENTER("cuDevicePrimaryCtxRetain");
  if (!context || device != 0)
    return bad();
  *context = theContext;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuCtxPushCurrent_v2(CUcontext context) {
  FAKE_ENTER("cuCtxPushCurrent");
  if (context != theContext)
    return bad();
  ++contextDepth;
  ++stats.contextPushes;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuCtxPopCurrent_v2(CUcontext *context) {
  FAKE_ENTER("cuCtxPopCurrent");
  if (contextDepth == 0)
    return bad();
  --contextDepth;
  ++stats.contextPops;
  if (context)
    *context = theContext;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuModuleLoadData(CUmodule *module, const void *image) {
  FAKE_ENTER("cuModuleLoadData");
  return loadModule(module, image);
}

FAKE_API CUresult cuModuleLoadDataEx(CUmodule *module, const void *image,
                                     unsigned, CUjit_option *, void **) {
  FAKE_ENTER("cuModuleLoadDataEx");
  return loadModule(module, image);
}

FAKE_API CUresult cuModuleUnload(CUmodule module) {
  FAKE_ENTER("cuModuleUnload");
  if (!modules.erase(module))
    return CUDA_ERROR_INVALID_HANDLE;
  delete reinterpret_cast<char *>(module);
  ++stats.modulesUnloaded;
  --stats.liveModules;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuModuleGetFunction(CUfunction *function, CUmodule module,
                                      const char *name) {
  FAKE_ENTER("cuModuleGetFunction");
  if (!function || !name || !modules.count(module))
    return CUDA_ERROR_INVALID_HANDLE;
  std::unique_ptr<char> &handle = functionsByName[name];
  if (!handle)
    handle.reset(new char);
  *function = reinterpret_cast<CUfunction>(handle.get());
  functions.insert(*function);
  ++stats.functionLookups;
  std::strncpy(stats.lastFunction, name, sizeof(stats.lastFunction) - 1);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuFuncSetAttribute(CUfunction function, CUfunction_attribute,
                                     int) {
  FAKE_ENTER("cuFuncSetAttribute");
  if (!functions.count(function))
    return CUDA_ERROR_INVALID_HANDLE;
  ++stats.funcAttributesSet;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuLaunchKernel(CUfunction function, unsigned gridX,
                                 unsigned gridY, unsigned gridZ,
                                 unsigned blockX, unsigned blockY,
                                 unsigned blockZ, unsigned smem,
                                 CUstream stream, void **params, void **) {
  FAKE_ENTER("cuLaunchKernel");
  if (!functions.count(function) || (stream && !streams.count(stream)))
    return CUDA_ERROR_INVALID_HANDLE;
  ++stats.launches;
  unsigned grid[3] = {gridX, gridY, gridZ}, block[3] = {blockX, blockY, blockZ};
  std::memcpy(stats.lastGrid, grid, sizeof(grid));
  std::memcpy(stats.lastBlock, block, sizeof(block));
  stats.lastSmem = smem;
  stats.lastParam0 = params ? *static_cast<void **>(params[0]) : nullptr;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuStreamCreate(CUstream *stream, unsigned) {
  FAKE_ENTER("cuStreamCreate");
  if (!stream)
    return bad();
  *stream = reinterpret_cast<CUstream>(new char);
  streams.insert(*stream);
  ++stats.streamsCreated;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuStreamDestroy_v2(CUstream stream) {
  FAKE_ENTER("cuStreamDestroy");
  if (!streams.erase(stream))
    return CUDA_ERROR_INVALID_HANDLE;
  delete reinterpret_cast<char *>(stream);
  ++stats.streamsDestroyed;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuStreamSynchronize(CUstream stream) {
  FAKE_ENTER("cuStreamSynchronize");
  if (stream && !streams.count(stream))
    return CUDA_ERROR_INVALID_HANDLE;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuStreamWaitEvent(CUstream stream, CUevent event, unsigned) {
  FAKE_ENTER("cuStreamWaitEvent");
  if ((stream && !streams.count(stream)) || !events.count(event))
    return CUDA_ERROR_INVALID_HANDLE;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuEventCreate(CUevent *event, unsigned) {
  FAKE_ENTER("cuEventCreate");
  if (!event)
    return bad();
  *event = reinterpret_cast<CUevent>(new char);
  events.insert(*event);
  ++stats.eventsCreated;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuEventDestroy_v2(CUevent event) {
  FAKE_ENTER("cuEventDestroy");
  if (!events.erase(event))
    return CUDA_ERROR_INVALID_HANDLE;
  delete reinterpret_cast<char *>(event);
  ++stats.eventsDestroyed;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuEventRecord(CUevent event, CUstream stream) {
  FAKE_ENTER("cuEventRecord");
  if (!events.count(event) || (stream && !streams.count(stream)))
    return CUDA_ERROR_INVALID_HANDLE;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuEventSynchronize(CUevent event) {
  FAKE_ENTER("cuEventSynchronize");
  if (!events.count(event))
    return CUDA_ERROR_INVALID_HANDLE;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemAlloc_v2(CUdeviceptr *ptr, size_t bytes) {
  FAKE_ENTER("cuMemAlloc");
  return allocate(ptr, bytes);
}

FAKE_API CUresult cuMemAllocManaged(CUdeviceptr *ptr, size_t bytes,
                                    unsigned flags) {
  FAKE_ENTER("cuMemAllocManaged");
  if (flags != CU_MEM_ATTACH_GLOBAL)
    return bad();
  return allocate(ptr, bytes);
}

FAKE_API CUresult cuMemFree_v2(CUdeviceptr ptr) {
  FAKE_ENTER("cuMemFree");
  auto it = allocations.find(uintptr_t(ptr));
  if (it == allocations.end())
    return bad();
  stats.liveBytes -= int64_t(it->second);
  allocations.erase(it);
  std::free(reinterpret_cast<void *>(ptr));
  ++stats.frees;
  --stats.liveAllocs;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t bytes,
                                CUstream stream) {
  FAKE_ENTER("cuMemcpyAsync");
  if (stream && !streams.count(stream))
    return CUDA_ERROR_INVALID_HANDLE;
  // Unified addressing allows host pointers; the tests expect none.
  if (!isDevice(dst, bytes) || !isDevice(src, bytes))
    ++stats.hostTouchingCopies;
  std::memmove(reinterpret_cast<void *>(dst), reinterpret_cast<void *>(src),
               bytes);
  ++stats.asyncCopies;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src,
                                  size_t bytes) {
  FAKE_ENTER("cuMemcpyHtoD");
  if (!src || !isDevice(dst, bytes) || isDevice(uintptr_t(src), 1))
    return bad();
  std::memcpy(reinterpret_cast<void *>(dst), src, bytes);
  stats.bytesToDevice += int64_t(bytes);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t bytes) {
  FAKE_ENTER("cuMemcpyDtoH");
  if (!dst || !isDevice(src, bytes) || isDevice(uintptr_t(dst), 1))
    return bad();
  std::memcpy(dst, reinterpret_cast<void *>(src), bytes);
  stats.bytesToHost += int64_t(bytes);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src,
                                  size_t bytes) {
  FAKE_ENTER("cuMemcpyDtoD");
  if (!isDevice(dst, bytes) || !isDevice(src, bytes))
    return bad();
  std::memmove(reinterpret_cast<void *>(dst), reinterpret_cast<void *>(src),
               bytes);
  stats.bytesOnDevice += int64_t(bytes);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned value,
                                   size_t count, CUstream stream) {
  FAKE_ENTER("cuMemsetD32Async");
  ++stats.memsets32;
  return memsetDevice(dst, &value, 4, count, stream);
}

FAKE_API CUresult cuMemsetD16Async(CUdeviceptr dst, unsigned short value,
                                   size_t count, CUstream stream) {
  FAKE_ENTER("cuMemsetD16Async");
  ++stats.memsets16;
  return memsetDevice(dst, &value, 2, count, stream);
}

FAKE_API void rwkv_fake_cuda_stats(RwkvFakeCudaStats *out) {
  std::lock_guard<std::mutex> lock(mutex);
  *out = stats;
}

FAKE_API void rwkv_fake_cuda_reset(void) {
  std::lock_guard<std::mutex> lock(mutex);
  int64_t liveAllocs = stats.liveAllocs, liveBytes = stats.liveBytes,
          liveModules = stats.liveModules;
  stats = RwkvFakeCudaStats();
  stats.liveAllocs = liveAllocs;
  stats.liveBytes = liveBytes;
  stats.liveModules = liveModules;
}

FAKE_API int rwkv_fake_cuda_is_device(const void *p, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mutex);
  return isDevice(reinterpret_cast<uintptr_t>(p), bytes) ? 1 : 0;
}
