//===- Optimizer.cpp - AdamW, gradient clipping, lr schedule --------------===//

#include "runtime/train/Optimizer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

namespace rwkv {

double LRSchedule::at(int64_t step) const {
  double lr = lrInit;
  if (totalSteps > warmupSteps) {
    double progress =
        double(step - warmupSteps) / double(totalSteps - warmupSteps);
    progress = std::clamp(progress, 0.0, 1.0);
    lr = lrFinal + (lrInit - lrFinal) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  if (step < warmupSteps)
    lr *= 0.01 + 0.99 * double(step) / double(warmupSteps);
  return lr;
}

AdamW::AdamW(std::vector<Param *> params, AdamWOptions options)
    : params_(std::move(params)), options_(options) {
  for (const Param *p : params_) {
    m_.emplace_back(p->value.size(), 0.0f);
    v_.emplace_back(p->value.size(), 0.0f);
  }
}

double AdamW::gradNorm() const {
  double sum = 0;
  for (const Param *p : params_) {
    if (p->grad.size() != p->value.size())
      throw TrainError(fmt::format("gradient of '{}' has {} elements, the "
                                   "tensor {} (shape [{}])",
                                   p->name, p->grad.size(), p->value.size(),
                                   fmt::join(p->shape, ", ")));
    for (float g : p->grad)
      sum += double(g) * double(g);
  }
  return std::sqrt(sum);
}

StepStats AdamW::step(double lr) {
  StepStats stats;
  stats.lr = lr;
  stats.gradNorm = gradNorm();
  if (!std::isfinite(stats.gradNorm)) {
    for (const Param *p : params_)
      for (size_t i = 0; i < p->grad.size(); ++i)
        if (!std::isfinite(p->grad[i]))
          throw TrainError(fmt::format(
              "step {}: the gradient of '{}' is not finite (element {} is "
              "{})",
              step_ + 1, p->name, i, p->grad[i]));
    throw TrainError(
        fmt::format("step {}: the gradient norm overflows", step_ + 1));
  }
  if (options_.gradClip > 0)
    stats.clipCoef = std::min(1.0, options_.gradClip / (stats.gradNorm + 1e-6));

  ++step_;
  const float b1 = float(options_.beta1), b2 = float(options_.beta2);
  // 1 − β in double, as a PyTorch-style optimizer with Python-float betas
  // computes it.
  const float c1 = float(1.0 - options_.beta1),
              c2 = float(1.0 - options_.beta2);
  const float eps = float(options_.eps);
  const float coef = float(stats.clipCoef);
  // Bias corrections in double, then applied in float like FusedAdam.
  const float bc1 = float(1.0 - std::pow(options_.beta1, double(step_)));
  const float bc2 = float(1.0 - std::pow(options_.beta2, double(step_)));
  for (size_t k = 0; k < params_.size(); ++k) {
    Param &p = *params_[k];
    float *m = m_[k].data(), *v = v_[k].data(), *w = p.value.data();
    const float *g = p.grad.data();
    const float plr = float(lr * double(p.lrScale));
    const float wd = p.weightDecay ? float(options_.weightDecay) : 0.0f;
    for (size_t i = 0, n = p.value.size(); i < n; ++i) {
      float gi = g[i] * coef;
      m[i] = b1 * m[i] + c1 * gi;
      v[i] = b2 * v[i] + c2 * gi * gi;
      float update = (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps) + wd * w[i];
      w[i] -= plr * update;
    }
    p.syncStored();
  }
  return stats;
}

//===----------------------------------------------------------------------===//
// Resume file
//===----------------------------------------------------------------------===//

namespace {
constexpr char kMagic[8] = {'R', 'W', 'K', 'V', 'A', 'D', 'A', 'M'};
constexpr uint32_t kVersion = 1;
constexpr size_t kPrefix = 8 + 4 + 8; // magic, version, header length

std::string shapeString(const std::vector<int64_t> &shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}
} // namespace

void AdamW::save(const std::string &path, const DataPosition &position) const {
  std::vector<const Param *> cparams(params_.begin(), params_.end());
  nlohmann::ordered_json header;
  header["model_identity"] = fmt::format("{:016x}", modelIdentity(cparams));
  header["step"] = step_;
  header["samples_drawn"] = position.samplesDrawn;
  header["seed"] = position.seed;
  header["options"] = {{"beta1", options_.beta1},
                       {"beta2", options_.beta2},
                       {"eps", options_.eps},
                       {"weight_decay", options_.weightDecay},
                       {"grad_clip", options_.gradClip}};
  nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
  for (const Param *p : params_)
    tensors.push_back({{"name", p->name}, {"shape", p->shape}});
  header["tensors"] = std::move(tensors);
  std::string text = header.dump();

  writeFileAtomically(path, [&](const std::string &tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw TrainError(
          fmt::format("{}: cannot create: {}", tmp, std::strerror(errno)));
    uint64_t len = text.size();
    out.write(kMagic, 8);
    out.write(reinterpret_cast<const char *>(&kVersion), 4);
    out.write(reinterpret_cast<const char *>(&len), 8);
    out.write(text.data(), std::streamsize(len));
    for (size_t k = 0; k < params_.size(); ++k)
      for (const std::vector<float> *buf :
           {static_cast<const std::vector<float> *>(&params_[k]->value), &m_[k],
            &v_[k]})
        out.write(reinterpret_cast<const char *>(buf->data()),
                  std::streamsize(buf->size() * sizeof(float)));
    out.flush();
    if (!out)
      throw TrainError(fmt::format("{}: write failed (disk full?)", path));
  });
}

DataPosition AdamW::load(const std::string &path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in)
    throw TrainError(
        fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  uint64_t fileSize = uint64_t(in.tellg());
  in.seekg(0);
  char prefix[kPrefix];
  if (fileSize < kPrefix || !in.read(prefix, kPrefix) ||
      std::memcmp(prefix, kMagic, 8) != 0)
    throw TrainError(fmt::format(
        "{}: not an rwkv-train resume file (magic 'RWKVADAM' missing)", path));
  uint32_t version;
  uint64_t len;
  std::memcpy(&version, prefix + 8, 4);
  std::memcpy(&len, prefix + 12, 8);
  if (version != kVersion)
    throw TrainError(fmt::format("{}: resume file format version {}, this "
                                 "build reads version {}",
                                 path, version, kVersion));
  if (len > fileSize - kPrefix)
    throw TrainError(fmt::format("{}: truncated (header of {} bytes, file of "
                                 "{})",
                                 path, len, fileSize));
  std::string text(len, '\0');
  in.read(text.data(), std::streamsize(len));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception &e) {
    throw TrainError(fmt::format("{}: corrupt header: {}", path, e.what()));
  }

  std::vector<const Param *> cparams(params_.begin(), params_.end());
  std::string want = fmt::format("{:016x}", modelIdentity(cparams));
  uint64_t payload = 0;
  DataPosition position;
  int64_t step = 0;
  try {
    const auto &tensors = header.at("tensors");
    std::string have = header.at("model_identity").get<std::string>();
    if (have != want || tensors.size() != params_.size()) {
      // Name the first difference so the user sees which model it was for.
      std::string diff = fmt::format("{} tensors in the file, {} in the model",
                                     tensors.size(), params_.size());
      for (size_t k = 0; k < std::min(tensors.size(), params_.size()); ++k) {
        auto name = tensors[k].at("name").get<std::string>();
        auto shape = tensors[k].at("shape").get<std::vector<int64_t>>();
        if (name != params_[k]->name || shape != params_[k]->shape) {
          diff = fmt::format("tensor {} is '{}' {} in the file but '{}' {} in "
                             "the model",
                             k, name, shapeString(shape), params_[k]->name,
                             shapeString(params_[k]->shape));
          break;
        }
      }
      throw TrainError(fmt::format("{}: written for a different model "
                                   "(identity {} vs {}; {})",
                                   path, have, want, diff));
    }
    step = header.at("step").get<int64_t>();
    position.samplesDrawn = header.at("samples_drawn").get<uint64_t>();
    position.seed = header.at("seed").get<uint64_t>();
  } catch (const nlohmann::json::exception &e) {
    throw TrainError(fmt::format("{}: corrupt header: {}", path, e.what()));
  }
  for (const Param *p : params_)
    payload += 3 * p->value.size() * sizeof(float);
  if (fileSize != kPrefix + len + payload)
    throw TrainError(fmt::format("{}: {} bytes, expected {} for this model "
                                 "(truncated or corrupt)",
                                 path, fileSize, kPrefix + len + payload));
  for (size_t k = 0; k < params_.size(); ++k) {
    for (std::vector<float> *buf : {&params_[k]->value, &m_[k], &v_[k]})
      in.read(reinterpret_cast<char *>(buf->data()),
              std::streamsize(buf->size() * sizeof(float)));
    params_[k]->syncStored();
  }
  if (!in)
    throw TrainError(fmt::format("{}: read failed", path));
  step_ = step;
  return position;
}

} // namespace rwkv
