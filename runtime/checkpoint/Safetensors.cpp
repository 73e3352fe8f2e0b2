//===- Safetensors.cpp - safetensors reader and writer --------------------===//
//
// Layout: u64 little-endian header length N, N bytes of JSON, then the data
// region. Every header entry is validated against the data region (bounds,
// size = numel * dtype size, no overlaps) before a view is handed out.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Internal.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace rwkv {
namespace {

struct StDType {
  const char *name;
  DType dtype;
};
const StDType kStDTypes[] = {{"F32", DType::F32},   {"F16", DType::F16},
                             {"BF16", DType::BF16}, {"F64", DType::F64},
                             {"I64", DType::I64},   {"I32", DType::I32},
                             {"I16", DType::I16},   {"I8", DType::I8},
                             {"U8", DType::U8},     {"BOOL", DType::Bool}};

const char *stName(DType d) {
  for (const StDType &s : kStDTypes)
    if (s.dtype == d)
      return s.name;
  return "?";
}

// Header sizes above this are rejected before allocating (the reference
// implementation uses the same 100 MB cap).
constexpr uint64_t kMaxHeader = 100u << 20;

} // namespace

void CheckpointLoader::loadSafetensors(Checkpoint &ckpt) {
  const std::string &file = ckpt.path();
  Checkpoint::Impl &impl = CheckpointLoader::impl(ckpt);
  setFormat(ckpt, Checkpoint::Format::Safetensors);
  const uint8_t *d = impl.data;
  uint64_t size = impl.size;
  if (size < 8)
    fail(file, "truncated safetensors file");
  uint64_t hlen = 0;
  for (int k = 0; k < 8; ++k)
    hlen |= uint64_t(d[k]) << (8 * k);
  if (hlen > kMaxHeader || hlen > size - 8)
    fail(file,
         "safetensors header length {} exceeds the file size {} (truncated "
         "or not a safetensors file)",
         hlen, size);
  const char *hbegin = reinterpret_cast<const char *>(d + 8);
  nlohmann::ordered_json header;
  try {
    header = nlohmann::ordered_json::parse(hbegin, hbegin + hlen);
  } catch (const nlohmann::json::exception &e) {
    fail(file, "safetensors header is not valid JSON: {}", e.what());
  }
  if (!header.is_object())
    fail(file, "safetensors header is not a JSON object");
  const uint8_t *dataBase = d + 8 + hlen;
  uint64_t dataSize = size - 8 - hlen;

  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  std::vector<Tensor> out;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string &name = it.key();
    const auto &e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object())
        fail(file, "safetensors __metadata__ is not an object");
      continue;
    }
    if (!e.is_object() || !e.contains("dtype") || !e["dtype"].is_string() ||
        !e.contains("shape") || !e["shape"].is_array() ||
        !e.contains("data_offsets") || !e["data_offsets"].is_array() ||
        e["data_offsets"].size() != 2)
      fail(file,
           "safetensors entry '{}' is malformed (needs dtype, shape, "
           "data_offsets[2])",
           name);
    std::string dt = e["dtype"].get<std::string>();
    const StDType *sd = nullptr;
    for (const StDType &s : kStDTypes)
      if (dt == s.name)
        sd = &s;
    if (!sd)
      fail(file, "safetensors entry '{}' has unsupported dtype '{}'", name, dt);
    Tensor t;
    t.name = name;
    t.dtype = sd->dtype;
    uint64_t numel = 1;
    for (const auto &dim : e["shape"]) {
      if (!dim.is_number_unsigned())
        fail(file, "safetensors entry '{}' has a bad shape {}", name,
             e["shape"].dump());
      uint64_t v = dim.get<uint64_t>();
      if (v > uint64_t(INT64_MAX) || !mulOk(numel, v, numel))
        fail(file, "safetensors entry '{}' shape {} overflows", name,
             e["shape"].dump());
      t.shape.push_back(int64_t(v));
    }
    const auto &offs = e["data_offsets"];
    if (!offs[0].is_number_unsigned() || !offs[1].is_number_unsigned())
      fail(file, "safetensors entry '{}' has bad data_offsets {}", name,
           offs.dump());
    uint64_t b = offs[0].get<uint64_t>(), en = offs[1].get<uint64_t>();
    uint64_t want;
    if (b > en || en > dataSize)
      fail(file,
           "safetensors entry '{}' data_offsets [{}, {}] lie outside the "
           "data region of {} bytes",
           name, b, en, dataSize);
    if (!mulOk(numel, dtypeSize(t.dtype), want) || want != en - b)
      fail(file,
           "safetensors entry '{}': {} {} shape {} needs {} bytes but "
           "data_offsets [{}, {}] span {}",
           name, numel, dt, shapeStr(t.shape), want, b, en, en - b);
    t.strides.resize(t.shape.size());
    int64_t stride = 1;
    for (size_t k = t.shape.size(); k-- > 0;) {
      t.strides[k] = stride;
      stride *= t.shape[k];
    }
    t.data = dataBase + b;
    t.nbytes = size_t(want);
    if (en > b)
      ranges.push_back({b, en, name});
    out.push_back(std::move(t));
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range &x, const Range &y) { return x.begin < y.begin; });
  for (size_t k = 1; k < ranges.size(); ++k)
    if (ranges[k].begin < ranges[k - 1].end)
      fail(file, "safetensors entries '{}' and '{}' overlap",
           ranges[k - 1].name, ranges[k].name);
  for (Tensor &t : out)
    addTensor(ckpt, std::move(t));
}

void writeSafetensors(const std::string &path,
                      const std::vector<TensorSpec> &specs,
                      const TensorProducer &produce) {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const TensorSpec &s : specs) {
    uint64_t n = s.nbytes();
    header[s.name] = {{"dtype", stName(s.dtype)},
                      {"shape", s.shape},
                      {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8) // keep the data region 8-byte aligned
    h.push_back(' ');
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    fail(path, "cannot create: {}", std::strerror(errno));
  std::unique_ptr<FILE, int (*)(FILE *)> guard(f, std::fclose);
  uint8_t len[8];
  for (int k = 0; k < 8; ++k)
    len[k] = uint8_t(uint64_t(h.size()) >> (8 * k));
  bool ok = std::fwrite(len, 1, 8, f) == 8 &&
            std::fwrite(h.data(), 1, h.size(), f) == h.size();
  std::vector<uint8_t> bytes;
  for (size_t i = 0; ok && i < specs.size(); ++i) {
    produce(i, bytes);
    if (bytes.size() != specs[i].nbytes())
      fail(path, "tensor '{}' produced {} bytes, expected {}", specs[i].name,
           bytes.size(), specs[i].nbytes());
    ok = bytes.empty() ||
         std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  }
  if (!ok || std::fflush(f) != 0)
    fail(path, "write failed: {}", std::strerror(errno));
}

void writeSafetensors(const std::string &path,
                      const std::vector<OwnedTensor> &tensors) {
  std::vector<TensorSpec> specs;
  for (const OwnedTensor &t : tensors)
    specs.push_back({t.name, t.dtype, t.shape});
  writeSafetensors(path, specs, [&](size_t i, std::vector<uint8_t> &b) {
    b = tensors[i].bytes;
  });
}

} // namespace rwkv
