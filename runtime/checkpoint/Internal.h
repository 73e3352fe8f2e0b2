//===- Internal.h - Checkpoint library internals ----------------*- C++ -*-===//
//
// Shared between the readers: the backing storage of a Checkpoint and the
// loader entry points (a friend of Checkpoint, so readers can fill it).
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_CHECKPOINT_INTERNAL_H
#define RWKV_RUNTIME_CHECKPOINT_INTERNAL_H

#include "runtime/checkpoint/Checkpoint.h"

#include <fmt/format.h>

namespace rwkv {

struct Checkpoint::Impl {
  void *mapping = nullptr; // mmap of the file, or null
  size_t mappingSize = 0;
  std::vector<uint8_t> buffer; // openFromMemory copy
  // Buffers for entries that cannot be viewed in place.
  std::vector<std::unique_ptr<std::vector<uint8_t>>> owned;
  const uint8_t *data = nullptr;
  size_t size = 0;
  ~Impl();
};

struct CheckpointLoader {
  static void loadPth(Checkpoint &ckpt);
  static void loadSafetensors(Checkpoint &ckpt);
  static void loadGguf(Checkpoint &ckpt);
  static Checkpoint::Impl &impl(Checkpoint &c) { return *c.impl_; }
  static void setFormat(Checkpoint &c, Checkpoint::Format f) { c.format_ = f; }
  static void setArchive(Checkpoint &c, std::string a) {
    c.archiveName_ = std::move(a);
  }
  static void addTensor(Checkpoint &c, Tensor t) { c.addTensor(std::move(t)); }
  static void setFormatVersion(Checkpoint &c, uint32_t v) {
    c.formatVersion_ = v;
  }
  static void addSourceInfo(Checkpoint &c, std::string key, std::string text) {
    c.sourceInfo_.emplace_back(std::move(key), std::move(text));
  }
  static void setTensorSource(Checkpoint &c, const std::string &name,
                              std::string text) {
    c.tensorSources_[name] = std::move(text);
  }
};

template <typename... Args>
[[noreturn]] void fail(const std::string &file, const char *fmtStr,
                       Args &&...args) {
  throw CheckpointError(
      fmt::format("{}: ", file) +
      fmt::format(fmt::runtime(fmtStr), std::forward<Args>(args)...));
}

std::string shapeStr(const std::vector<int64_t> &shape);

/// a*b and a+b with overflow detection (returns false on overflow).
inline bool mulOk(uint64_t a, uint64_t b, uint64_t &out) {
  return !__builtin_mul_overflow(a, b, &out);
}
inline bool addOk(uint64_t a, uint64_t b, uint64_t &out) {
  return !__builtin_add_overflow(a, b, &out);
}

/// Bytes spanned by a strided view (0 for an empty one), or false when the
/// arithmetic overflows or a size/stride is negative.
bool stridedSpan(const std::vector<int64_t> &shape,
                 const std::vector<int64_t> &strides, size_t elemSize,
                 uint64_t &spanBytes);

} // namespace rwkv

#endif // RWKV_RUNTIME_CHECKPOINT_INTERNAL_H
