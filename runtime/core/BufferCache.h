//===- BufferCache.h - keeps the generated code's large buffers -*- C++ -*-===//
//
// Compiled libraries allocate their intermediates (the [T, C] activations of
// a prefill) with malloc on every call and free them before returning. glibc
// hands blocks this large back to the kernel on free (mmap/munmap), so every
// call faulted in and zeroed them again: a third of a 0.1B prefill. The
// runtime gives each library this cache through rwkv_set_allocator
// (docs/ABI.md): freed blocks of at least kMinCachedBytes are kept, up to a
// process-wide limit, and handed out again to allocations of about their
// size.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_CORE_BUFFERCACHE_H
#define RWKV_RUNTIME_CORE_BUFFERCACHE_H

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

namespace rwkv {

class BufferCache {
public:
  /// Blocks below this size go straight to malloc/free. Above it glibc
  /// either unmaps a freed block (128 KiB and more) or, once the top of its
  /// heap is free, trims it: batch-8 decode faulted in 240 pages a step with
  /// a 64 KiB threshold, none with 16 KiB. Below it the mutex would cost
  /// more than the pages (the per-tile scratch of the OpenMP regions).
  static constexpr size_t kMinCachedBytes = 16 * 1024;
  /// The default limit on cached (freed, kept) bytes;
  /// $RWKV_MLIR_BUFFER_CACHE_MB overrides it, 0 turns caching off.
  static constexpr size_t kDefaultLimitBytes = size_t(1) << 30;

  explicit BufferCache(size_t limitBytes) : limit_(limitBytes) {}
  ~BufferCache();
  BufferCache(const BufferCache &) = delete;
  BufferCache &operator=(const BufferCache &) = delete;

  /// The process's cache, shared by every library (one library may be
  /// opened by several models: they share its hook). Its limit comes from
  /// $RWKV_MLIR_BUFFER_CACHE_MB, read on first use; a value that is not a
  /// non-negative integer throws RuntimeError naming the variable.
  static BufferCache &global();
  /// $RWKV_MLIR_BUFFER_CACHE_MB in bytes (kDefaultLimitBytes when unset);
  /// throws RuntimeError naming the variable unless it is a whole number.
  static size_t limitFromEnvironment();

  /// malloc-compatible: at least 16-byte aligned, nullptr when out of
  /// memory. Large sizes are rounded up to whole pages; a cached block is
  /// reused when it holds the rounded size and at most a quarter more.
  void *allocate(size_t size);
  /// Accepts nullptr and any pointer from allocate().
  void release(void *p);
  /// Frees every cached block.
  void trim();

  /// The C signatures rwkv_set_allocator takes; `ctx` is a BufferCache.
  static void *allocateHook(void *ctx, size_t size);
  static void releaseHook(void *ctx, void *p);

  struct Stats {
    uint64_t hits = 0;      // large allocations served from the cache
    uint64_t misses = 0;    // large allocations that went to malloc
    size_t cachedBytes = 0; // freed bytes kept now
  };
  Stats stats() const;

private:
  const size_t limit_; // 0: plain malloc/free, no header
  mutable std::mutex mutex_;
  // Freed blocks by capacity.
  std::multimap<size_t, void *> free_;
  Stats stats_;
};

} // namespace rwkv

#endif // RWKV_RUNTIME_CORE_BUFFERCACHE_H
