//===- PthWriter.cpp - torch.save-compatible .pth writer ------------------===//
//
// Reproduces what PyTorch's miniz-based writer emits: stored entries with
// data descriptors (flag 0x0808), an "FB" extra field padding each payload to
// a 64-byte boundary, ZIP64 extras only where a value overflows 32 bits, and
// a ZIP64 end-of-central-directory record always. data.pkl is a protocol-2
// OrderedDict of _rebuild_tensor_v2 calls, memoised like Python's pickler.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Internal.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>

namespace rwkv {
namespace {

constexpr uint64_t kU32Max = 0xffffffffu;
constexpr size_t kAlignment = 64;

void put16(std::string &b, uint16_t v) {
  b.push_back(char(v & 0xff));
  b.push_back(char(v >> 8));
}
void put32(std::string &b, uint32_t v) {
  for (int k = 0; k < 4; ++k)
    b.push_back(char((v >> (8 * k)) & 0xff));
}
void put64(std::string &b, uint64_t v) {
  for (int k = 0; k < 8; ++k)
    b.push_back(char((v >> (8 * k)) & 0xff));
}

/// Protocol-2 pickle emitter with a memo keyed by caller-chosen identities.
class PickleWriter {
public:
  std::string out;

  void proto() { out += "\x80\x02"; }
  void memoize() {
    uint32_t idx = next_++;
    if (idx < 256) {
      out.push_back('q');
      out.push_back(char(idx));
    } else {
      out.push_back('r');
      put32(out, idx);
    }
  }
  /// Emits BINGET for a memoised identity, or runs `emit` and memoises it.
  template <typename F> void memoOr(const std::string &id, F emit) {
    auto it = ids_.find(id);
    if (it != ids_.end()) {
      if (it->second < 256) {
        out.push_back('h');
        out.push_back(char(it->second));
      } else {
        out.push_back('j');
        put32(out, it->second);
      }
      return;
    }
    emit();
    ids_[id] = next_;
    memoize();
  }
  void global(const std::string &module, const std::string &name) {
    memoOr("global:" + module + "." + name,
           [&] { out += "c" + module + "\n" + name + "\n"; });
  }
  void str(const std::string &s, const std::string *sharedId = nullptr) {
    auto emit = [&] {
      out.push_back('X');
      put32(out, uint32_t(s.size()));
      out += s;
    };
    if (sharedId) {
      memoOr(*sharedId, emit);
    } else {
      emit();
      memoize();
    }
  }
  void integer(int64_t v) {
    if (v >= 0 && v <= 0xff) {
      out.push_back('K');
      out.push_back(char(v));
    } else if (v >= 0 && v <= 0xffff) {
      out.push_back('M');
      put16(out, uint16_t(v));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      out.push_back('J');
      put32(out, uint32_t(int32_t(v)));
    } else { // LONG1: minimal little-endian two's complement
      std::string bytes;
      uint64_t u = uint64_t(v);
      for (int k = 0; k < 8; ++k)
        bytes.push_back(char((u >> (8 * k)) & 0xff));
      while (bytes.size() > 1) {
        char last = bytes.back(), prev = bytes[bytes.size() - 2];
        if ((last == 0 && !(prev & 0x80)) ||
            (last == char(0xff) && (prev & 0x80)))
          bytes.pop_back();
        else
          break;
      }
      out.push_back(char(0x8a));
      out.push_back(char(bytes.size()));
      out += bytes;
    }
  }
  void intTuple(const std::vector<int64_t> &v) {
    if (v.empty()) {
      out.push_back(')');
      return;
    }
    if (v.size() > 3)
      out.push_back('(');
    for (int64_t x : v)
      integer(x);
    out.push_back(v.size() > 3 ? 't' : char(0x84 + v.size()));
    memoize();
  }

private:
  uint32_t next_ = 0;
  std::map<std::string, uint32_t> ids_;
};

const char *storageName(DType d) {
  switch (d) {
  case DType::F32:
    return "FloatStorage";
  case DType::F16:
    return "HalfStorage";
  case DType::BF16:
    return "BFloat16Storage";
  case DType::F64:
    return "DoubleStorage";
  case DType::I64:
    return "LongStorage";
  case DType::I32:
    return "IntStorage";
  case DType::I16:
    return "ShortStorage";
  case DType::I8:
    return "CharStorage";
  case DType::U8:
    return "ByteStorage";
  case DType::Bool:
    return "BoolStorage";
  }
  return "FloatStorage";
}

std::string makePickle(const std::vector<TensorSpec> &specs) {
  PickleWriter p;
  p.proto();
  p.global("collections", "OrderedDict");
  p.out.push_back(')');
  p.out.push_back('R');
  p.memoize(); // memo 1: the state_dict itself
  // Python's pickler batches dict items by 1000; a batch of one uses SETITEM.
  for (size_t begin = 0; begin < specs.size(); begin += 1000) {
    size_t end = std::min(specs.size(), begin + 1000);
    if (end - begin > 1)
      p.out.push_back('(');
    for (size_t i = begin; i < end; ++i) {
      const TensorSpec &s = specs[i];
      p.str(s.name);
      p.global("torch._utils", "_rebuild_tensor_v2");
      p.out += "((";
      static const std::string storageId = "str:storage", cpuId = "str:cpu";
      p.str("storage", &storageId);
      p.global("torch", storageName(s.dtype));
      p.str(std::to_string(i));
      p.str("cpu", &cpuId);
      p.integer(s.numel());
      p.out.push_back('t');
      p.memoize();
      p.out.push_back('Q'); // BINPERSID
      p.integer(0);         // storage_offset
      p.intTuple(s.shape);
      std::vector<int64_t> strides(s.shape.size());
      int64_t st = 1;
      for (size_t k = s.shape.size(); k-- > 0;) {
        strides[k] = st;
        st *= s.shape[k];
      }
      p.intTuple(strides);
      p.out.push_back(char(0x89)); // requires_grad = False
      p.out.push_back('h');        // BINGET 0: the OrderedDict global
      p.out.push_back('\0');
      p.out += ")R"; // backward_hooks = OrderedDict()
      p.memoize();
      p.out.push_back('t');
      p.memoize();
      p.out.push_back('R');
      p.memoize();
    }
    p.out.push_back(end - begin > 1 ? 'u' : 's');
  }
  p.out.push_back('.');
  return p.out;
}

struct CentralEntry {
  std::string name;
  uint64_t offset, size;
  uint32_t crc;
};

class ZipWriter {
public:
  explicit ZipWriter(const std::string &path) : path_(path) {
    f_ = std::fopen(path.c_str(), "wb");
    if (!f_)
      fail(path, "cannot create: {}", std::strerror(errno));
  }
  ~ZipWriter() {
    if (f_)
      std::fclose(f_);
  }

  void add(const std::string &name, const uint8_t *data, uint64_t size) {
    uint64_t offset = pos_;
    bool zip64 = size >= kU32Max || offset >= kU32Max;
    std::string zip64Extra;
    if (zip64) { // as miniz: only the fields that overflow, in this order
      std::string fields;
      if (size >= kU32Max) {
        put64(fields, size);
        put64(fields, size);
      }
      if (offset >= kU32Max)
        put64(fields, offset);
      put16(zip64Extra, 0x0001);
      put16(zip64Extra, uint16_t(fields.size()));
      zip64Extra += fields;
    }
    // "FB" padding so that the payload starts on a 64-byte boundary.
    uint64_t start = offset + 30 + name.size() + zip64Extra.size() + 4;
    uint64_t pad = (kAlignment - start % kAlignment) % kAlignment;
    std::string h;
    put32(h, 0x04034b50);
    put16(h, zip64 ? 45 : 0); // version needed (miniz leaves 0)
    put16(h, 0x0808);         // data descriptor + UTF-8 names
    put16(h, 0);              // stored
    put32(h, 0);              // time/date
    put32(h, 0);              // crc (in the descriptor)
    put32(h, 0);
    put32(h, 0);
    put16(h, uint16_t(name.size()));
    put16(h, uint16_t(zip64Extra.size() + 4 + pad));
    h += name;
    h += zip64Extra;
    h += "FB";
    put16(h, uint16_t(pad));
    h.append(pad, 'Z');
    write(h.data(), h.size());
    uint32_t crc = uint32_t(crc32(0, nullptr, 0));
    for (uint64_t done = 0; done < size;) {
      uInt chunk = uInt(std::min<uint64_t>(size - done, 1u << 30));
      crc = uint32_t(crc32(crc, data + done, chunk));
      done += chunk;
    }
    write(data, size);
    std::string dd;
    put32(dd, 0x08074b50);
    put32(dd, crc);
    if (zip64) {
      put64(dd, size);
      put64(dd, size);
    } else {
      put32(dd, uint32_t(size));
      put32(dd, uint32_t(size));
    }
    write(dd.data(), dd.size());
    entries_.push_back({name, offset, size, crc});
  }

  void finish() {
    uint64_t cdOffset = pos_;
    std::string cd;
    for (const CentralEntry &e : entries_) {
      bool bigSize = e.size >= kU32Max, bigOff = e.offset >= kU32Max;
      std::string extra;
      if (bigSize || bigOff) {
        std::string fields;
        if (bigSize) {
          put64(fields, e.size);
          put64(fields, e.size);
        }
        if (bigOff)
          put64(fields, e.offset);
        put16(extra, 0x0001);
        put16(extra, uint16_t(fields.size()));
        extra += fields;
      }
      put32(cd, 0x02014b50);
      put16(cd, 0); // version made by (as miniz in PyTorch)
      put16(cd, extra.empty() ? 0 : 45);
      put16(cd, 0x0808);
      put16(cd, 0);
      put32(cd, 0);
      put32(cd, e.crc);
      put32(cd, bigSize ? uint32_t(kU32Max) : uint32_t(e.size));
      put32(cd, bigSize ? uint32_t(kU32Max) : uint32_t(e.size));
      put16(cd, uint16_t(e.name.size()));
      put16(cd, uint16_t(extra.size()));
      put16(cd, 0); // comment
      put16(cd, 0); // disk
      put16(cd, 0); // internal attributes
      put32(cd, 0); // external attributes
      put32(cd, bigOff ? uint32_t(kU32Max) : uint32_t(e.offset));
      cd += e.name;
      cd += extra;
    }
    write(cd.data(), cd.size());
    uint64_t z64Offset = pos_;
    uint64_t n = entries_.size();
    std::string end;
    put32(end, 0x06064b50); // ZIP64 end of central directory
    put64(end, 44);
    put16(end, 0x031e);
    put16(end, 45);
    put32(end, 0);
    put32(end, 0);
    put64(end, n);
    put64(end, n);
    put64(end, cd.size());
    put64(end, cdOffset);
    put32(end, 0x07064b50); // ZIP64 locator
    put32(end, 0);
    put64(end, z64Offset);
    put32(end, 1);
    put32(end, 0x06054b50); // classic end of central directory
    put16(end, 0);
    put16(end, 0);
    put16(end, uint16_t(std::min<uint64_t>(n, 0xffff)));
    put16(end, uint16_t(std::min<uint64_t>(n, 0xffff)));
    put32(end, uint32_t(std::min<uint64_t>(cd.size(), kU32Max)));
    put32(end, uint32_t(std::min<uint64_t>(cdOffset, kU32Max)));
    put16(end, 0);
    write(end.data(), end.size());
    if (std::fflush(f_) != 0 || std::fclose(f_) != 0) {
      f_ = nullptr;
      fail(path_, "write failed: {}", std::strerror(errno));
    }
    f_ = nullptr;
  }

private:
  void write(const void *d, uint64_t n) {
    if (n && std::fwrite(d, 1, n, f_) != n)
      fail(path_, "write failed: {}", std::strerror(errno));
    pos_ += n;
  }
  std::string path_;
  FILE *f_ = nullptr;
  uint64_t pos_ = 0;
  std::vector<CentralEntry> entries_;
};

std::string archiveFolder(const std::string &path) {
  size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  size_t dot = base.find_last_of('.');
  if (dot != std::string::npos && dot > 0) // splitext keeps ".pth" whole
    base = base.substr(0, dot);
  return base.empty() ? "archive" : base;
}

} // namespace

void writePth(const std::string &path, const std::vector<TensorSpec> &specs,
              const TensorProducer &produce) {
  std::string folder = archiveFolder(path);
  ZipWriter zip(path);
  std::string pkl = makePickle(specs);
  zip.add(folder + "/data.pkl", reinterpret_cast<const uint8_t *>(pkl.data()),
          pkl.size());
  const std::string little = "little";
  zip.add(folder + "/byteorder",
          reinterpret_cast<const uint8_t *>(little.data()), little.size());
  // torch.save writes storages in sorted (string) key order.
  std::vector<std::string> keys;
  for (size_t i = 0; i < specs.size(); ++i)
    keys.push_back(std::to_string(i));
  std::sort(keys.begin(), keys.end());
  std::vector<uint8_t> bytes;
  for (const std::string &k : keys) {
    size_t i = std::stoul(k);
    produce(i, bytes);
    if (bytes.size() != specs[i].nbytes())
      fail(path, "tensor '{}' produced {} bytes, expected {}", specs[i].name,
           bytes.size(), specs[i].nbytes());
    zip.add(folder + "/data/" + k, bytes.data(), bytes.size());
  }
  const std::string version = "3\n";
  zip.add(folder + "/version",
          reinterpret_cast<const uint8_t *>(version.data()), version.size());
  zip.finish();
}

void writePth(const std::string &path,
              const std::vector<OwnedTensor> &tensors) {
  std::vector<TensorSpec> specs;
  for (const OwnedTensor &t : tensors)
    specs.push_back({t.name, t.dtype, t.shape});
  writePth(path, specs,
           [&](size_t i, std::vector<uint8_t> &b) { b = tensors[i].bytes; });
}

} // namespace rwkv
