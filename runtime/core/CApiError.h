//===- CApiError.h - The C API's per-thread error message -------*- C++ -*-===//
//
// rwkvrt_last_error() (CApi.cpp) returns this string; every C entry point,
// in whichever file, clears it on entry and sets it on failure.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_CORE_CAPIERROR_H
#define RWKV_RUNTIME_CORE_CAPIERROR_H

#include <string>

namespace rwkv::capi {

/// The calling thread's last error message.
std::string &lastErrorMessage();

} // namespace rwkv::capi

#endif // RWKV_RUNTIME_CORE_CAPIERROR_H
