//===- CudaApi.h - The driver API that the runtime uses ---------*- C++ -*-===//
//
// Declared here instead of including the toolkit's cuda.h: the runtime must
// build on machines without the toolkit, and it never links libcuda (the
// driver is dlopen()ed, Cuda.cpp). Types and values are those of cuda.h
// (CUDA 12/13); unittests/runtime/CudaApiCheck.cpp compares them with cuda.h
// where the toolkit is installed. The fake driver of the unit tests
// (unittests/runtime/FakeCudaDriver.cpp) implements the same declarations.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_CORE_CUDAAPI_H
#define RWKV_RUNTIME_CORE_CUDAAPI_H

#include <cstddef>

// Global, as in cuda.h, so that the handle types are the same in a file
// that includes both.
struct CUctx_st;
struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;
struct CUevent_st;

namespace rwkv::cudaapi {

/// cuda.h's enums are int-sized; passed and returned as int.
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = CUctx_st *;
using CUmodule = CUmod_st *;
using CUfunction = CUfunc_st *;
using CUstream = CUstream_st *;
using CUevent = CUevent_st *;
using CUjit_option = int;
using CUdevice_attribute = int;
using CUfunction_attribute = int;

constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUresult CUDA_ERROR_INVALID_VALUE = 1;
constexpr CUresult CUDA_ERROR_OUT_OF_MEMORY = 2;
constexpr CUresult CUDA_ERROR_NOT_INITIALIZED = 3;
constexpr CUresult CUDA_ERROR_STUB_LIBRARY = 34;
constexpr CUresult CUDA_ERROR_NO_DEVICE = 100;
constexpr CUresult CUDA_ERROR_INVALID_IMAGE = 200;
constexpr CUresult CUDA_ERROR_INVALID_HANDLE = 400;
constexpr CUresult CUDA_ERROR_NOT_FOUND = 500;
constexpr CUresult CUDA_ERROR_LAUNCH_FAILED = 719;
constexpr CUresult CUDA_ERROR_UNKNOWN = 999;

constexpr unsigned CU_STREAM_NON_BLOCKING = 0x1;
constexpr unsigned CU_EVENT_DISABLE_TIMING = 0x2;
constexpr unsigned CU_MEM_ATTACH_GLOBAL = 0x1;
constexpr CUfunction_attribute CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES =
    8;
constexpr CUdevice_attribute CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr CUdevice_attribute CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
constexpr CUdevice_attribute
    CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
constexpr CUjit_option CU_JIT_ERROR_LOG_BUFFER = 5;
constexpr CUjit_option CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;
constexpr CUjit_option CU_JIT_OPTIMIZATION_LEVEL = 7;

/// The name of a CUresult as cuda.h spells it ("CUDA_ERROR_STUB_LIBRARY"),
/// or nullptr for a value this table does not know. The stub library's
/// cuGetErrorName fails too, so the runtime does not ask the driver.
const char *errorName(CUresult result);

// The driver functions, by the symbol that libcuda.so.1 exports: cuda.h
// maps several names to a `_v2` symbol (the original ones keep 32-bit
// sizes for old binaries), so those are looked up by their `_v2` name.
#define RWKV_CUDA_DRIVER_FUNCTIONS(X)                                          \
  X(cuInit, "cuInit", CUresult, (unsigned flags))                              \
  X(cuDeviceGet, "cuDeviceGet", CUresult, (CUdevice * device, int ordinal))    \
  X(cuDeviceGetName, "cuDeviceGetName", CUresult,                              \
    (char *name, int len, CUdevice device))                                    \
  X(cuDeviceGetAttribute, "cuDeviceGetAttribute", CUresult,                    \
    (int *value, CUdevice_attribute attribute, CUdevice device))               \
  X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", CUresult,            \
    (CUcontext * context, CUdevice device))                                    \
  X(cuCtxPushCurrent, "cuCtxPushCurrent_v2", CUresult, (CUcontext context))    \
  X(cuCtxPopCurrent, "cuCtxPopCurrent_v2", CUresult, (CUcontext * context))    \
  X(cuModuleLoadData, "cuModuleLoadData", CUresult,                            \
    (CUmodule * module, const void *image))                                    \
  X(cuModuleLoadDataEx, "cuModuleLoadDataEx", CUresult,                        \
    (CUmodule * module, const void *image, unsigned numOptions,                \
     CUjit_option *options, void **optionValues))                              \
  X(cuModuleUnload, "cuModuleUnload", CUresult, (CUmodule module))             \
  X(cuModuleGetFunction, "cuModuleGetFunction", CUresult,                      \
    (CUfunction * function, CUmodule module, const char *name))                \
  X(cuFuncSetAttribute, "cuFuncSetAttribute", CUresult,                        \
    (CUfunction function, CUfunction_attribute attribute, int value))          \
  X(cuLaunchKernel, "cuLaunchKernel", CUresult,                                \
    (CUfunction function, unsigned gridX, unsigned gridY, unsigned gridZ,      \
     unsigned blockX, unsigned blockY, unsigned blockZ, unsigned smem,         \
     CUstream stream, void **params, void **extra))                            \
  X(cuStreamCreate, "cuStreamCreate", CUresult,                                \
    (CUstream * stream, unsigned flags))                                       \
  X(cuStreamDestroy, "cuStreamDestroy_v2", CUresult, (CUstream stream))        \
  X(cuStreamSynchronize, "cuStreamSynchronize", CUresult, (CUstream stream))   \
  X(cuStreamWaitEvent, "cuStreamWaitEvent", CUresult,                          \
    (CUstream stream, CUevent event, unsigned flags))                          \
  X(cuEventCreate, "cuEventCreate", CUresult,                                  \
    (CUevent * event, unsigned flags))                                         \
  X(cuEventDestroy, "cuEventDestroy_v2", CUresult, (CUevent event))            \
  X(cuEventRecord, "cuEventRecord", CUresult,                                  \
    (CUevent event, CUstream stream))                                          \
  X(cuEventSynchronize, "cuEventSynchronize", CUresult, (CUevent event))       \
  X(cuMemAlloc, "cuMemAlloc_v2", CUresult, (CUdeviceptr * ptr, size_t bytes))  \
  X(cuMemAllocManaged, "cuMemAllocManaged", CUresult,                          \
    (CUdeviceptr * ptr, size_t bytes, unsigned flags))                         \
  X(cuMemFree, "cuMemFree_v2", CUresult, (CUdeviceptr ptr))                    \
  X(cuMemcpyAsync, "cuMemcpyAsync", CUresult,                                  \
    (CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream))         \
  X(cuMemcpyHtoD, "cuMemcpyHtoD_v2", CUresult,                                 \
    (CUdeviceptr dst, const void *src, size_t bytes))                          \
  X(cuMemcpyDtoH, "cuMemcpyDtoH_v2", CUresult,                                 \
    (void *dst, CUdeviceptr src, size_t bytes))                                \
  X(cuMemcpyDtoD, "cuMemcpyDtoD_v2", CUresult,                                 \
    (CUdeviceptr dst, CUdeviceptr src, size_t bytes))                          \
  X(cuMemsetD32Async, "cuMemsetD32Async", CUresult,                            \
    (CUdeviceptr dst, unsigned value, size_t count, CUstream stream))          \
  X(cuMemsetD16Async, "cuMemsetD16Async", CUresult,                            \
    (CUdeviceptr dst, unsigned short value, size_t count, CUstream stream))

} // namespace rwkv::cudaapi

#endif // RWKV_RUNTIME_CORE_CUDAAPI_H
