//===- Checkpoint.cpp - Checkpoint object, dtypes, open/mmap --------------===//
//
// Format-independent parts: dtype helpers, half-precision conversions, the
// Tensor view accessors, and Checkpoint::open, which maps the file and
// dispatches on its magic bytes (zip, safetensors, GGUF).
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Internal.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rwkv {

const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "f32";
  case DType::F16:
    return "f16";
  case DType::BF16:
    return "bf16";
  case DType::F64:
    return "f64";
  case DType::I64:
    return "i64";
  case DType::I32:
    return "i32";
  case DType::I16:
    return "i16";
  case DType::I8:
    return "i8";
  case DType::U8:
    return "u8";
  case DType::Bool:
    return "bool";
  }
  return "?";
}

size_t dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::F64:
  case DType::I64:
    return 8;
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F16:
  case DType::BF16:
  case DType::I16:
    return 2;
  case DType::I8:
  case DType::U8:
  case DType::Bool:
    return 1;
  }
  return 1;
}

DType parseDType(std::string_view name) {
  struct Alias {
    const char *name;
    DType dtype;
  };
  static const Alias aliases[] = {
      {"f32", DType::F32},   {"fp32", DType::F32},      {"float32", DType::F32},
      {"f16", DType::F16},   {"fp16", DType::F16},      {"float16", DType::F16},
      {"bf16", DType::BF16}, {"bfloat16", DType::BF16}, {"f64", DType::F64},
      {"fp64", DType::F64},  {"float64", DType::F64},   {"i64", DType::I64},
      {"i32", DType::I32},   {"i16", DType::I16},       {"i8", DType::I8},
      {"u8", DType::U8},     {"bool", DType::Bool}};
  for (const Alias &a : aliases)
    if (name == a.name)
      return a.dtype;
  throw CheckpointError(fmt::format("unknown dtype '{}'", name));
}

float bf16ToF32(uint16_t bits) {
  uint32_t u = uint32_t(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32ToBf16(float value) {
  uint32_t u;
  std::memcpy(&u, &value, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) // NaN: keep it quiet, don't round
    return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u); // round to nearest, ties to even
  return uint16_t(u >> 16);
}

float f16ToF32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    u = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    u = sign;
  } else { // subnormal: value = mant * 2^-24, exact in f32
    float f = std::ldexp(float(mant), -24);
    std::memcpy(&u, &f, 4);
    u |= sign;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32ToF16(float value) {
  uint32_t u;
  std::memcpy(&u, &value, 4);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t absU = u & 0x7fffffffu;
  if (absU > 0x7f800000u)
    return sign | 0x7e00u;
  if (absU >= 0x477ff000u) // rounds to >= 65520 -> inf
    return sign | 0x7c00u;
  if (absU < 0x38800000u) { // below the smallest normal half (2^-14)
    // Scale so that the half subnormal unit (2^-24) becomes 1, then let the
    // FPU's round-to-nearest-even do the rounding.
    float f;
    std::memcpy(&f, &absU, 4);
    return sign | uint16_t(std::nearbyint(f * 16777216.0f));
  }
  uint32_t mant = absU & 0x7fffffu;
  uint32_t exp = (absU >> 23) - 112u;
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
    ++h; // may carry into the exponent, which is still correct
  return sign | uint16_t(h);
}

std::string shapeStr(const std::vector<int64_t> &shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

bool stridedSpan(const std::vector<int64_t> &shape,
                 const std::vector<int64_t> &strides, size_t elemSize,
                 uint64_t &spanBytes) {
  if (shape.size() != strides.size())
    return false;
  uint64_t lastIndex = 0;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0 || strides[i] < 0)
      return false;
    if (shape[i] == 0) {
      spanBytes = 0;
      return true;
    }
  }
  for (size_t i = 0; i < shape.size(); ++i) {
    uint64_t term;
    if (!mulOk(uint64_t(shape[i] - 1), uint64_t(strides[i]), term) ||
        !addOk(lastIndex, term, lastIndex))
      return false;
  }
  uint64_t count;
  return addOk(lastIndex, 1, count) && mulOk(count, elemSize, spanBytes);
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

bool Tensor::isContiguous() const {
  int64_t expected = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] != 1 && strides[i] != expected)
      return false;
    expected *= shape[i];
  }
  return true;
}

float Tensor::getAsFloat(int64_t flatIndex) const {
  if (flatIndex < 0 || flatIndex >= numel())
    throw CheckpointError(fmt::format("{}: index {} out of range for shape {}",
                                      name, flatIndex, shapeStr(shape)));
  int64_t offset = 0, rest = flatIndex;
  for (size_t i = shape.size(); i-- > 0;) {
    offset += (rest % shape[i]) * strides[i];
    rest /= shape[i];
  }
  const uint8_t *p =
      static_cast<const uint8_t *>(data) + size_t(offset) * dtypeSize(dtype);
  auto load = [p](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  switch (dtype) {
  case DType::F32:
    return load(float());
  case DType::F16:
    return f16ToF32(load(uint16_t()));
  case DType::BF16:
    return bf16ToF32(load(uint16_t()));
  case DType::F64:
    return float(load(double()));
  case DType::I64:
    return float(load(int64_t()));
  case DType::I32:
    return float(load(int32_t()));
  case DType::I16:
    return float(load(int16_t()));
  case DType::I8:
    return float(load(int8_t()));
  case DType::U8:
    return float(load(uint8_t()));
  case DType::Bool:
    return load(uint8_t()) ? 1.0f : 0.0f;
  }
  return 0.0f;
}

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

Checkpoint::Impl::~Impl() {
  if (mapping)
    ::munmap(mapping, mappingSize);
}

Checkpoint::~Checkpoint() = default;

void Checkpoint::addTensor(Tensor t) {
  auto [it, inserted] = index_.emplace(t.name, tensors_.size());
  if (!inserted) { // later keys win, as in a Python dict
    tensors_[it->second] = std::move(t);
    return;
  }
  tensors_.push_back(std::move(t));
}

const Tensor *Checkpoint::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const char *Checkpoint::formatName(Format format) {
  switch (format) {
  case Format::Pth:
    return "pth";
  case Format::Safetensors:
    return "safetensors";
  case Format::Gguf:
    return "gguf";
  }
  return "?";
}

std::string_view Checkpoint::tensorSource(std::string_view name) const {
  auto it = tensorSources_.find(std::string(name));
  return it == tensorSources_.end() ? std::string_view() : it->second;
}

const Tensor &Checkpoint::get(std::string_view name) const {
  if (const Tensor *t = find(name))
    return *t;
  throw CheckpointError(
      fmt::format("{}: missing tensor '{}'", path_, std::string(name)));
}

namespace {
// Dispatches on the first bytes: zip local header, GGUF magic, safetensors
// (u64 header length then '{'), or a legacy torch pickle stream.
void loadByMagic(Checkpoint &ckpt, const std::string &path) {
  Checkpoint::Impl &impl = CheckpointLoader::impl(ckpt);
  const uint8_t *d = impl.data;
  size_t n = impl.size;
  if (n >= 4 && std::memcmp(d, "PK\x03\x04", 4) == 0) {
    CheckpointLoader::loadPth(ckpt);
    return;
  }
  if (n >= 4 && std::memcmp(d, "PK\x05\x06", 4) == 0)
    fail(path, "empty zip archive (no data.pkl): not a torch checkpoint");
  if (n >= 4 && std::memcmp(d, "GGUF", 4) == 0) {
    CheckpointLoader::loadGguf(ckpt);
    return;
  }
  if (n >= 9 && d[8] == '{') {
    CheckpointLoader::loadSafetensors(ckpt);
    return;
  }
  if (n >= 2 && d[0] == 0x80 && d[1] <= 5)
    fail(path, "legacy (non-zip) torch.save format is not supported; re-save "
               "it with a PyTorch >= 1.6 torch.save");
  if (n >= 262 && std::memcmp(d + 257, "ustar", 5) == 0)
    fail(path, "legacy tar-based torch.save format is not supported");
  fail(path,
       "not a checkpoint: neither a zip-based .pth, a safetensors nor a "
       "GGUF file ({} bytes)",
       n);
}
} // namespace

std::unique_ptr<Checkpoint> Checkpoint::open(const std::string &path) {
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
  ckpt->path_ = path;
  ckpt->impl_ = std::make_unique<Impl>();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fail(path, "cannot open: {}", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  size_t size = size_t(st.st_size);
  if (size > 0) {
    void *m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      fail(path, "mmap failed: {}", std::strerror(err));
    }
    ckpt->impl_->mapping = m;
    ckpt->impl_->mappingSize = size;
    ckpt->impl_->data = static_cast<const uint8_t *>(m);
  }
  ::close(fd);
  ckpt->impl_->size = size;
  loadByMagic(*ckpt, path);
  return ckpt;
}

void Checkpoint::releaseResidentPages() const {
  if (impl_->mapping)
    ::madvise(impl_->mapping, impl_->mappingSize, MADV_DONTNEED);
}

std::unique_ptr<Checkpoint>
Checkpoint::openFromMemory(const void *data, size_t size,
                           const std::string &name) {
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
  ckpt->path_ = name;
  ckpt->impl_ = std::make_unique<Impl>();
  const uint8_t *bytes = static_cast<const uint8_t *>(data);
  ckpt->impl_->buffer.assign(bytes, bytes + size);
  ckpt->impl_->data = ckpt->impl_->buffer.data();
  ckpt->impl_->size = size;
  loadByMagic(*ckpt, name);
  return ckpt;
}

OwnedTensor toOwned(const Tensor &t) {
  OwnedTensor o;
  o.name = t.name;
  o.dtype = t.dtype;
  o.shape = t.shape;
  size_t es = dtypeSize(t.dtype);
  int64_t n = t.numel();
  o.bytes.resize(size_t(n) * es);
  if (t.isContiguous()) {
    if (n > 0)
      std::memcpy(o.bytes.data(), t.data, o.bytes.size());
    return o;
  }
  const uint8_t *base = static_cast<const uint8_t *>(t.data);
  for (int64_t i = 0; i < n; ++i) {
    int64_t offset = 0, rest = i;
    for (size_t d = t.shape.size(); d-- > 0;) {
      offset += (rest % t.shape[d]) * t.strides[d];
      rest /= t.shape[d];
    }
    std::memcpy(o.bytes.data() + size_t(i) * es, base + size_t(offset) * es,
                es);
  }
  return o;
}

} // namespace rwkv
