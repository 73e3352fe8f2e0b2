//===- Param.cpp - Trainable tensors --------------------------------------===//

#include "runtime/train/Param.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <unistd.h>

namespace rwkv {

void Param::syncStored() {
  if (dtype == DType::F32) {
    stored.clear();
    return;
  }
  stored.resize(value.size() * 2);
  auto *out = reinterpret_cast<uint16_t *>(stored.data());
  if (dtype == DType::BF16)
    for (size_t i = 0; i < value.size(); ++i)
      out[i] = f32ToBf16(value[i]);
  else
    for (size_t i = 0; i < value.size(); ++i)
      out[i] = f32ToF16(value[i]);
}

namespace {
bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
} // namespace

void applyParamGroupRule(Param &param, float w0LrScale) {
  int squeezedDims = 0;
  for (int64_t d : param.shape)
    squeezedDims += d != 1;
  bool w0 = endsWith(param.name, "att.w0");
  param.lrScale = w0 ? w0LrScale : 1.0f;
  param.weightDecay = !w0 && param.name.find(".weight") != std::string::npos &&
                      squeezedDims >= 2;
}

std::vector<Param> loadParams(const Checkpoint &checkpoint, float w0LrScale) {
  std::vector<Param> params;
  params.reserve(checkpoint.tensors().size());
  for (const Tensor &t : checkpoint.tensors()) {
    if (t.dtype != DType::F32 && t.dtype != DType::F16 &&
        t.dtype != DType::BF16)
      throw TrainError(fmt::format("{}: tensor '{}' has dtype {}; only "
                                   "f32/f16/bf16 tensors can be trained",
                                   checkpoint.path(), t.name,
                                   dtypeName(t.dtype)));
    Param p;
    p.name = t.name;
    p.shape = t.shape;
    p.dtype = t.dtype;
    p.value.resize(size_t(t.numel()));
    for (int64_t i = 0; i < t.numel(); ++i)
      p.value[size_t(i)] = t.getAsFloat(i);
    p.grad.assign(p.value.size(), 0.0f);
    p.syncStored();
    applyParamGroupRule(p, w0LrScale);
    params.push_back(std::move(p));
  }
  return params;
}

uint64_t modelIdentity(const std::vector<const Param *> &params) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&](const void *data, size_t n) {
    auto p = static_cast<const uint8_t *>(data);
    for (size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 0x100000001b3ull;
    }
  };
  for (const Param *p : params) {
    mix(p->name.data(), p->name.size() + 1); // include the terminator
    uint64_t rank = p->shape.size();
    mix(&rank, sizeof(rank));
    mix(p->shape.data(), p->shape.size() * sizeof(int64_t));
  }
  return h;
}

void writeFileAtomically(
    const std::string &path,
    const std::function<void(const std::string &)> &write) {
  namespace fs = std::filesystem;
  fs::path target(path);
  // A private folder beside the target keeps the file name (writePth names
  // the archive folder after it) and makes the final rename atomic.
  fs::path dir =
      target.parent_path().empty() ? fs::path(".") : target.parent_path();
  fs::path tmpDir =
      dir / fmt::format(".{}.tmp-{}", target.filename().string(), getpid());
  std::error_code ec;
  fs::remove_all(tmpDir, ec);
  if (!fs::create_directory(tmpDir, ec))
    throw TrainError(fmt::format("{}: cannot create a temporary folder {}: {}",
                                 path, tmpDir.string(), ec.message()));
  fs::path tmp = tmpDir / target.filename();
  try {
    write(tmp.string());
    fs::rename(tmp, target);
  } catch (const fs::filesystem_error &e) {
    fs::remove_all(tmpDir, ec);
    throw TrainError(fmt::format("{}: cannot move the finished file into "
                                 "place: {}",
                                 path, e.code().message()));
  } catch (...) {
    fs::remove_all(tmpDir, ec);
    throw;
  }
  fs::remove_all(tmpDir, ec);
}

void writeParamsPth(const std::string &path,
                    const std::vector<const Param *> &params) {
  std::vector<TensorSpec> specs;
  specs.reserve(params.size());
  for (const Param *p : params)
    specs.push_back({p->name, p->dtype, p->shape});
  writeFileAtomically(path, [&](const std::string &tmp) {
    writePth(tmp, specs, [&](size_t i, std::vector<uint8_t> &bytes) {
      const Param &p = *params[i];
      auto src = static_cast<const uint8_t *>(p.data());
      bytes.assign(src, src + specs[i].nbytes());
    });
  });
}

} // namespace rwkv
