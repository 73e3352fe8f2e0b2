//===- CudaApiCheck.cpp - CudaApi.h against the toolkit's cuda.h ----------===//
//
// Compile-time only, built where cuda.h is found: the runtime declares the
// driver API itself (runtime/core/CudaApi.h) so that it builds without the
// toolkit. This checks those declarations: every value, the exported
// symbol that cuda.h maps each function to (`cuMemAlloc` -> `cuMemAlloc_v2`)
// and each signature (enums count as int, as the C ABI passes them).
//
//===----------------------------------------------------------------------===//

#include <cuda.h>

#include "runtime/core/CudaApi.h"

#include <string_view>
#include <type_traits>

namespace {

namespace api = rwkv::cudaapi;

template <typename A, typename B> constexpr bool compatible() {
  if constexpr (std::is_same_v<A, B>)
    return true;
  else if constexpr (std::is_enum_v<A> && std::is_same_v<B, int>)
    return sizeof(A) == sizeof(int);
  else if constexpr (std::is_pointer_v<A> && std::is_pointer_v<B>)
    return compatible<std::remove_pointer_t<A>, std::remove_pointer_t<B>>();
  else
    return false;
}

template <typename R1, typename... A1, typename R2, typename... A2>
constexpr bool sameSignature(R1 (*)(A1...), R2 (*)(A2...)) {
  if constexpr (sizeof...(A1) != sizeof...(A2))
    return false;
  else
    return compatible<R1, R2>() && (compatible<A1, A2>() && ...);
}

#define RWKV_STR2(x) #x
#define RWKV_STR(x) RWKV_STR2(x)

static_assert(api::CUDA_SUCCESS == CUDA_SUCCESS);
static_assert(api::CUDA_ERROR_INVALID_VALUE == CUDA_ERROR_INVALID_VALUE);
static_assert(api::CUDA_ERROR_OUT_OF_MEMORY == CUDA_ERROR_OUT_OF_MEMORY);
static_assert(api::CUDA_ERROR_NOT_INITIALIZED == CUDA_ERROR_NOT_INITIALIZED);
static_assert(api::CUDA_ERROR_STUB_LIBRARY == CUDA_ERROR_STUB_LIBRARY);
static_assert(api::CUDA_ERROR_NO_DEVICE == CUDA_ERROR_NO_DEVICE);
static_assert(api::CUDA_ERROR_INVALID_IMAGE == CUDA_ERROR_INVALID_IMAGE);
static_assert(api::CUDA_ERROR_INVALID_HANDLE == CUDA_ERROR_INVALID_HANDLE);
static_assert(api::CUDA_ERROR_NOT_FOUND == CUDA_ERROR_NOT_FOUND);
static_assert(api::CUDA_ERROR_LAUNCH_FAILED == CUDA_ERROR_LAUNCH_FAILED);
static_assert(api::CUDA_ERROR_UNKNOWN == CUDA_ERROR_UNKNOWN);
static_assert(api::CU_STREAM_NON_BLOCKING == CU_STREAM_NON_BLOCKING);
static_assert(api::CU_EVENT_DISABLE_TIMING == CU_EVENT_DISABLE_TIMING);
static_assert(api::CU_MEM_ATTACH_GLOBAL == CU_MEM_ATTACH_GLOBAL);
static_assert(api::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES ==
              CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES);
static_assert(api::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR ==
              CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
static_assert(api::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR ==
              CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
static_assert(api::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN ==
              CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
static_assert(api::CU_JIT_ERROR_LOG_BUFFER == CU_JIT_ERROR_LOG_BUFFER);
static_assert(api::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES ==
              CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES);
static_assert(api::CU_JIT_OPTIMIZATION_LEVEL == CU_JIT_OPTIMIZATION_LEVEL);
static_assert(std::is_same_v<api::CUdeviceptr, CUdeviceptr>);
static_assert(std::is_same_v<api::CUdevice, CUdevice>);
static_assert(std::is_same_v<api::CUcontext, CUcontext>);
static_assert(std::is_same_v<api::CUmodule, CUmodule>);
static_assert(std::is_same_v<api::CUfunction, CUfunction>);
static_assert(std::is_same_v<api::CUstream, CUstream>);
static_assert(std::is_same_v<api::CUevent, CUevent>);

} // namespace

// Inside the namespace, so that the list's unqualified types are the
// runtime's; `::name` is cuda.h's declaration.
namespace rwkv::cudaapi {
#define RWKV_CHECK(name, symbol, ret, params)                                  \
  static_assert(std::string_view(RWKV_STR(name)) == symbol,                    \
                "cuda.h exports " #name " under another symbol");              \
  static_assert(sameSignature(&::name, static_cast<ret(*) params>(nullptr)),   \
                "the signature of " #name " differs from cuda.h's");
RWKV_CUDA_DRIVER_FUNCTIONS(RWKV_CHECK)
#undef RWKV_CHECK
} // namespace rwkv::cudaapi
