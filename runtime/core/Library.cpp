//===- Library.cpp - dlopen a library from rwkv-compile -------------------===//

#include "runtime/core/Library.h"

#include "runtime/core/BufferCache.h"
#include "runtime/core/Runtime.h"

#include <fmt/format.h>

#include <cstdlib>
#include <dlfcn.h>

namespace rwkv {

CompiledLibrary CompiledLibrary::open(const std::string &path, int threads) {
  if (path.empty())
    throw RuntimeError("the library path is empty");
  if (threads > ModelOptions::kMaxThreads)
    throw RuntimeError(fmt::format("{} threads asked for '{}'; at most {}",
                                   threads, path, ModelOptions::kMaxThreads));
  if (threads > 0)
    setenv("OMP_NUM_THREADS", std::to_string(threads).c_str(), 1);
  std::string dlPath = path.find('/') == std::string::npos ? "./" + path : path;
  CompiledLibrary lib;
  lib.handle_ = dlopen(dlPath.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib.handle_) {
    const char *err = dlerror();
    throw RuntimeError(fmt::format("cannot load library '{}': {}", path,
                                   err ? err : "unknown error"));
  }
  using InfoFn = const char *(*)();
  auto infoFn = reinterpret_cast<InfoFn>(lib.symbol("rwkv_model_info"));
  if (!infoFn)
    throw RuntimeError(fmt::format("library '{}' has no rwkv_model_info(); "
                                   "is it an rwkv-compile output?",
                                   path));
  const char *text = infoFn();
  if (!text)
    throw RuntimeError(
        fmt::format("library '{}': rwkv_model_info() returned null", path));
  lib.info_ = text;
  lib.path_ = path;
  return lib;
}

CompiledLibrary::CompiledLibrary(CompiledLibrary &&other) noexcept
    : handle_(other.handle_), path_(std::move(other.path_)),
      info_(std::move(other.info_)) {
  other.handle_ = nullptr;
}

CompiledLibrary::~CompiledLibrary() {
  if (handle_)
    dlclose(handle_);
}

void *CompiledLibrary::symbol(const char *name) const {
  return dlsym(handle_, name);
}

void CompiledLibrary::useBufferCache() const {
  // Before any call: blocks must be freed by the allocator that made them.
  // A library opened again (the same handle) gets the same cache.
  using SetAllocatorFn =
      void (*)(void *(*)(void *, size_t), void (*)(void *, void *), void *);
  if (auto setAllocator =
          reinterpret_cast<SetAllocatorFn>(symbol("rwkv_set_allocator")))
    setAllocator(&BufferCache::allocateHook, &BufferCache::releaseHook,
                 &BufferCache::global());
}

void CompiledLibrary::setThreads(int threads) const {
  using SetThreadsFn = void (*)(int);
  if (threads > 0)
    if (auto fn =
            reinterpret_cast<SetThreadsFn>(symbol("rwkv_set_num_threads")))
      fn(threads);
}

void *CompiledLibrary::release() {
  void *h = handle_;
  handle_ = nullptr;
  return h;
}

nlohmann::json CompiledLibrary::infoObject() const {
  nlohmann::json info = nlohmann::json::parse(info_, nullptr, false);
  if (info.is_discarded() || !info.is_object())
    throw RuntimeError(path_ + ": rwkv_model_info() is not JSON");
  if (info.value("abi_version", 0) != kRuntimeAbiVersion)
    throw RuntimeError(fmt::format("library '{}' has ABI version {}, this "
                                   "runtime implements {}",
                                   path_, info.value("abi_version", 0),
                                   kRuntimeAbiVersion));
  return info;
}

void CompiledLibrary::requireCpuTarget(const nlohmann::json &info,
                                       const char *refusal) const {
  if (!info.contains("target") || info["target"] == "cpu")
    return;
  if (info["target"] == "cuda")
    throw RuntimeError(fmt::format("library '{}' is a CUDA library ({}): {}",
                                   path_, info.value("cuda_arch", "?"),
                                   refusal));
  throw RuntimeError(fmt::format("library '{}' has target {}, not 'cpu': {}",
                                 path_, info["target"].dump(), refusal));
}

} // namespace rwkv
