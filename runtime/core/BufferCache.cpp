//===- BufferCache.cpp - keeps the generated code's large buffers ---------===//

#include "runtime/core/BufferCache.h"

#include "runtime/core/Runtime.h"

#include <fmt/format.h>

#include <cstdlib>
#include <string>

namespace rwkv {

namespace {

// Each block starts with its capacity (0: not cached, a plain malloc), so
// release() needs no lookup; 64 bytes keep the payload as aligned as
// malloc's and the generated code's own padding to 64 cheap.
constexpr size_t kHeader = 64;

size_t &capacityOf(void *payload) {
  return *reinterpret_cast<size_t *>(static_cast<char *>(payload) - kHeader);
}

} // namespace

size_t BufferCache::limitFromEnvironment() {
  const char *text = std::getenv("RWKV_MLIR_BUFFER_CACHE_MB");
  if (!text)
    return BufferCache::kDefaultLimitBytes;
  std::string s(text);
  // At most 9 digits: the MiB count cannot overflow when shifted to bytes.
  if (s.empty() || s.size() > 9 ||
      s.find_first_not_of("0123456789") != std::string::npos)
    throw RuntimeError(fmt::format("RWKV_MLIR_BUFFER_CACHE_MB='{}' is not a "
                                   "number of MiB (0 turns the cache off)",
                                   s));
  return size_t(std::stoul(s)) << 20;
}

BufferCache::~BufferCache() { trim(); }

BufferCache &BufferCache::global() {
  // Never destroyed: libraries may still run (and free) during exit.
  static BufferCache *cache = new BufferCache(limitFromEnvironment());
  return *cache;
}

void *BufferCache::allocate(size_t size) {
  // Off: exactly malloc (a header would shift glibc's size classes and
  // mmap threshold; decode then faulted in 544 pages a step).
  if (limit_ == 0)
    return std::malloc(size);
  // The header and the page rounding must not wrap around (malloc fails
  // such sizes too).
  if (size > SIZE_MAX - kHeader - 4095)
    return nullptr;
  if (size >= kMinCachedBytes) {
    // Page-rounded, so that near sizes share blocks; the same request
    // finds the same capacity again.
    size_t capacity = (size + 4095) & ~size_t(4095);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.lower_bound(capacity);
      if (it != free_.end() && it->first - capacity <= capacity / 4) {
        void *p = it->second;
        stats_.cachedBytes -= it->first;
        free_.erase(it);
        ++stats_.hits;
        return p;
      }
      ++stats_.misses;
    }
    char *base = static_cast<char *>(std::malloc(capacity + kHeader));
    if (!base)
      return nullptr;
    capacityOf(base + kHeader) = capacity;
    return base + kHeader;
  }
  char *base = static_cast<char *>(std::malloc(size + kHeader));
  if (!base)
    return nullptr;
  capacityOf(base + kHeader) = 0;
  return base + kHeader;
}

void BufferCache::release(void *p) {
  if (!p)
    return;
  if (limit_ == 0) {
    std::free(p);
    return;
  }
  size_t capacity = capacityOf(p);
  if (capacity > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stats_.cachedBytes + capacity <= limit_) {
      free_.emplace(capacity, p);
      stats_.cachedBytes += capacity;
      return;
    }
  }
  std::free(static_cast<char *>(p) - kHeader);
}

void BufferCache::trim() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto &[capacity, p] : free_)
    std::free(static_cast<char *>(p) - kHeader);
  free_.clear();
  stats_.cachedBytes = 0;
}

void *BufferCache::allocateHook(void *ctx, size_t size) {
  return static_cast<BufferCache *>(ctx)->allocate(size);
}

void BufferCache::releaseHook(void *ctx, void *p) {
  static_cast<BufferCache *>(ctx)->release(p);
}

BufferCache::Stats BufferCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

} // namespace rwkv
