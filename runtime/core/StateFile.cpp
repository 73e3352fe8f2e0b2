//===- StateFile.cpp - Save and load the recurrent state ------------------===//
//
// Layout (little-endian):
//   "RWKVSTAT" u32 version u32 flags(0) u64 fingerprint
//   u32 descLen, desc bytes          model description for error messages
//   u32 numTensors, per tensor: u32 nameLen, name, i64 layer, u32 rank,
//                               i64 dims[rank]
//   u64 payloadBytes, f32 data of every tensor in order
//   u64 FNV-1a 64 of every byte before it
//
//===----------------------------------------------------------------------===//

#include "runtime/core/StateFile.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <vector>

namespace rwkv {

uint64_t fnv1a64(const void *data, size_t size, uint64_t seed) {
  const auto *p = static_cast<const uint8_t *>(data);
  uint64_t h = seed;
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

ModelFingerprint fingerprintOf(const ModelInfo &info,
                               const State::Layout &layout) {
  // A canonical text of everything that decides whether a state fits; the
  // hash of it is what files store and compare.
  std::string canon = fmt::format("abi={};batch={};dtype={};", info.abiVersion,
                                  info.batch, info.configDType);
  for (const auto &[key, value] : info.config)
    canon += fmt::format("{}={};", key, value);
  for (const State::TensorInfo &t : layout)
    canon += fmt::format("{}:{}:[{}]:f32;", t.name, t.layer,
                         fmt::join(t.shape, ","));
  ModelFingerprint fp;
  fp.hash = fnv1a64(canon.data(), canon.size());
  std::string desc;
  for (const char *key :
       {"version", "n_layer", "n_embd", "n_head", "head_size", "vocab_size"}) {
    int64_t v = info.configValue(key);
    if (v >= 0)
      desc += fmt::format("{}{}={}", desc.empty() ? "" : " ", key, v);
  }
  if (!info.configDType.empty())
    desc += " dtype=" + info.configDType;
  fp.description = fmt::format("{} ({} state tensors, fingerprint {:016x})",
                               desc, layout.size(), fp.hash);
  return fp;
}

namespace {

class Writer {
public:
  std::string bytes;
  template <typename T> void put(T value) {
    bytes.append(reinterpret_cast<const char *>(&value), sizeof(T));
  }
  void putString(std::string_view s) {
    put<uint32_t>(uint32_t(s.size()));
    bytes.append(s);
  }
};

/// Bounds-checked reads; running off the end means the file is truncated.
class Reader {
public:
  Reader(std::string_view bytes, size_t end, const std::string &path)
      : bytes(bytes), end(end), path(path) {}
  template <typename T> T get() {
    need(sizeof(T));
    T value;
    std::memcpy(&value, bytes.data() + pos, sizeof(T));
    pos += sizeof(T);
    return value;
  }
  std::string getString() {
    uint32_t n = get<uint32_t>();
    need(n);
    std::string s(bytes.substr(pos, n));
    pos += n;
    return s;
  }
  void need(size_t n) const {
    // pos > end when the file is shorter than magic + checksum (16 bytes).
    if (pos > end || n > end - pos)
      throw StateFileError(
          fmt::format("state file '{}' is truncated or corrupted ({} bytes; "
                      "the header runs past the end)",
                      path, bytes.size()));
  }
  size_t pos = 0;

private:
  std::string_view bytes;
  size_t end;
  const std::string &path;
};

} // namespace

void saveStateFile(const std::string &path, const State &state,
                   const ModelFingerprint &model) {
  Writer w;
  w.bytes.append(kStateFileMagic, sizeof(kStateFileMagic));
  w.put<uint32_t>(kStateFileVersion);
  w.put<uint32_t>(0);
  w.put<uint64_t>(model.hash);
  w.putString(model.description);
  w.put<uint32_t>(uint32_t(state.numTensors()));
  size_t payload = 0;
  for (size_t i = 0; i < state.numTensors(); ++i) {
    const State::TensorInfo &t = state.info(i);
    w.putString(t.name);
    w.put<int64_t>(t.layer);
    w.put<uint32_t>(uint32_t(t.shape.size()));
    for (int64_t d : t.shape)
      w.put<int64_t>(d);
    payload += t.numel * sizeof(float);
  }
  w.put<uint64_t>(payload);
  w.bytes.reserve(w.bytes.size() + payload + 8);
  for (size_t i = 0; i < state.numTensors(); ++i) {
    ConstFloatSpan s = state.tensor(i);
    w.bytes.append(reinterpret_cast<const char *>(s.data),
                   s.size * sizeof(float));
  }
  w.put<uint64_t>(fnv1a64(w.bytes.data(), w.bytes.size()));

  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(w.bytes.data(), std::streamsize(w.bytes.size()));
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      throw StateFileError(fmt::format("cannot write state file '{}': {}", path,
                                       std::strerror(errno)));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    throw StateFileError(fmt::format("cannot write state file '{}': {}", path,
                                     std::strerror(err)));
  }
}

void loadStateFile(const std::string &path, State &state,
                   const ModelFingerprint &model) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw StateFileError(fmt::format("cannot open state file '{}': {}", path,
                                     std::strerror(errno)));
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  loadStateFromMemory(bytes, path, state, model);
}

void loadStateFromMemory(std::string_view bytes, const std::string &path,
                         State &state, const ModelFingerprint &model) {
  if (bytes.size() < sizeof(kStateFileMagic) ||
      std::memcmp(bytes.data(), kStateFileMagic, sizeof(kStateFileMagic)))
    throw StateFileError(fmt::format(
        "'{}' is not an rwkv state file (bad magic; expected \"RWKVSTAT\")",
        path));
  // Everything but the trailing checksum is parsed; the checksum is checked
  // before anything parsed is trusted (a flipped byte in the fingerprint
  // must read as corruption, not as "another model").
  Reader r(bytes, bytes.size() - 8, path);
  r.pos = sizeof(kStateFileMagic);
  uint32_t version = r.get<uint32_t>();
  if (version != kStateFileVersion)
    throw StateFileError(fmt::format(
        "state file '{}' has format version {}; this build reads version {}",
        path, version, kStateFileVersion));
  r.get<uint32_t>(); // flags
  uint64_t fileHash = r.get<uint64_t>();
  std::string fileDesc = r.getString();
  uint32_t numTensors = r.get<uint32_t>();
  struct Entry {
    std::string name;
    int64_t layer;
    std::vector<int64_t> shape;
    size_t numel;
  };
  std::vector<Entry> entries;
  for (uint32_t i = 0; i < numTensors; ++i) {
    Entry e;
    e.name = r.getString();
    e.layer = r.get<int64_t>();
    uint32_t rank = r.get<uint32_t>();
    if (rank > 8)
      throw StateFileError(
          fmt::format("state file '{}' is corrupted (tensor {} has rank {})",
                      path, i, rank));
    e.numel = 1;
    for (uint32_t d = 0; d < rank; ++d) {
      e.shape.push_back(r.get<int64_t>());
      e.numel *= size_t(e.shape.back());
    }
    entries.push_back(std::move(e));
    if (entries.size() > (1u << 20))
      break; // a corrupted count; the checksum below will say so
  }
  uint64_t payload = r.get<uint64_t>();
  size_t expected = r.pos + payload + 8;
  if (payload > bytes.size() || bytes.size() < expected)
    throw StateFileError(
        fmt::format("state file '{}' is truncated ({} bytes, expected {})",
                    path, bytes.size(), payload > bytes.size() ? 0 : expected));
  if (bytes.size() != expected)
    throw StateFileError(
        fmt::format("state file '{}' is corrupted ({} bytes, expected {})",
                    path, bytes.size(), expected));
  uint64_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  if (stored != fnv1a64(bytes.data(), bytes.size() - 8))
    throw StateFileError(
        fmt::format("state file '{}' is corrupted (checksum mismatch)", path));

  if (fileHash != model.hash)
    throw StateFileError(fmt::format(
        "state file '{}' was saved for another model: the file is for {}; "
        "this model is {}",
        path, fileDesc, model.description));
  // Same fingerprint, so the layout should match; check anyway so that a
  // hash collision cannot write out of bounds.
  size_t payloadNeeded = 0;
  bool layoutOk = entries.size() == state.numTensors();
  for (size_t i = 0; layoutOk && i < entries.size(); ++i) {
    const State::TensorInfo &t = state.info(i);
    layoutOk = entries[i].name == t.name && entries[i].layer == t.layer &&
               entries[i].shape == t.shape;
    payloadNeeded += t.numel * sizeof(float);
  }
  if (!layoutOk || payloadNeeded != payload)
    throw StateFileError(fmt::format(
        "state file '{}' does not match this model's state layout (file: "
        "{}; model: {})",
        path, fileDesc, model.description));
  const char *p = bytes.data() + r.pos;
  for (size_t i = 0; i < entries.size(); ++i) {
    FloatSpan s = state.tensor(i);
    std::memcpy(s.data, p, s.size * sizeof(float));
    p += s.size * sizeof(float);
  }
}

void loadTimeState(const std::string &path, State &state, bool transpose) {
  std::unique_ptr<Checkpoint> ckpt;
  try {
    ckpt = Checkpoint::open(path);
  } catch (const std::exception &e) {
    throw StateFileError(
        fmt::format("cannot read initial state '{}': {}", path, e.what()));
  }
  State out(state.layout());
  size_t found = 0;
  for (size_t i = 0; i < out.numTensors(); ++i) {
    const State::TensorInfo &info = out.info(i);
    if (info.name != "wkv")
      continue;
    std::string key = fmt::format("blocks.{}.att.time_state", info.layer);
    const Tensor *t = ckpt->find(key);
    if (!t)
      throw StateFileError(fmt::format(
          "initial state '{}' has no '{}' (a state-tuning file holds "
          "blocks.<layer>.att.time_state for every layer)",
          path, key));
    // State shape is [B, H, N, N]; the file has [H, N, N].
    const std::vector<int64_t> &s = info.shape;
    int64_t b = s.size() == 4 ? s[0] : 1, h = s[s.size() - 3],
            n = s[s.size() - 1];
    if (t->shape != std::vector<int64_t>{h, n, n})
      throw StateFileError(fmt::format(
          "initial state '{}': '{}' has shape [{}], this model needs "
          "[{}, {}, {}]",
          path, key, fmt::join(t->shape, ", "), h, n, n));
    FloatSpan dst = out.tensor(i);
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t hi = 0; hi < h; ++hi)
        for (int64_t r = 0; r < n; ++r)
          for (int64_t c = 0; c < n; ++c) {
            int64_t src =
                (hi * n + (transpose ? c : r)) * n + (transpose ? r : c);
            dst[size_t(((bi * h + hi) * n + r) * n + c)] = t->getAsFloat(src);
          }
    ++found;
  }
  if (found == 0)
    throw StateFileError(
        fmt::format("initial state '{}': this model has no wkv state", path));
  state = std::move(out);
}

} // namespace rwkv
