//===- Library.h - dlopen a library from rwkv-compile -----------*- C++ -*-===//
//
// What Model, TrainLibrary and WKV7Kernel share when they open a compiled
// library: OMP_NUM_THREADS before the OpenMP runtime starts, dlopen, the
// rwkv_model_info() text, symbol lookup, the buffer cache and
// rwkv_set_num_threads.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_CORE_LIBRARY_H
#define RWKV_RUNTIME_CORE_LIBRARY_H

#include <nlohmann/json.hpp>

#include <string>

namespace rwkv {

/// An open library; dlclose()d on destruction unless release()d.
class CompiledLibrary {
public:
  /// Sets OMP_NUM_THREADS when `threads` > 0 (OpenMP reads it once, when
  /// it starts), dlopens `path` (a bare file name is taken from the working
  /// directory, not the library search path) and reads rwkv_model_info().
  /// Throws RuntimeError naming `path`.
  static CompiledLibrary open(const std::string &path, int threads);
  CompiledLibrary(CompiledLibrary &&other) noexcept;
  CompiledLibrary(const CompiledLibrary &) = delete;
  CompiledLibrary &operator=(const CompiledLibrary &) = delete;
  ~CompiledLibrary();

  const std::string &info() const { return info_; }
  /// rwkv_model_info() as a JSON object of this runtime's ABI version;
  /// throws RuntimeError naming the library otherwise.
  nlohmann::json infoObject() const;
  /// The address of `name`, or nullptr.
  void *symbol(const char *name) const;
  /// The dlopen handle (still owned by this object).
  void *handle() const { return handle_; }
  /// Throws RuntimeError naming the library unless `info` (infoObject())
  /// is of a CPU library: only Model runs CUDA libraries so far. `refusal`
  /// says why, after "is a CUDA library (sm_XY): ".
  void requireCpuTarget(const nlohmann::json &info, const char *refusal) const;
  /// Gives the library BufferCache::global() through its
  /// rwkv_set_allocator, if it exports one; call before any entry point.
  /// Throws RuntimeError for a bad $RWKV_MLIR_BUFFER_CACHE_MB.
  void useBufferCache() const;
  /// Calls the library's rwkv_set_num_threads(threads) when `threads` > 0
  /// and the library exports it.
  void setThreads(int threads) const;
  /// Gives up ownership of the handle (the caller closes it).
  void *release();

private:
  CompiledLibrary() = default;
  void *handle_ = nullptr;
  std::string path_, info_;
};

} // namespace rwkv

#endif // RWKV_RUNTIME_CORE_LIBRARY_H
