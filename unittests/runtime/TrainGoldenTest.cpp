//===- TrainGoldenTest.cpp - Compiled training steps vs float64 autograd --===//
//
//   RWKVTrainGoldenTests --golden-dir=<shared>/golden --lib-dir=<dir with
//                        <model>-train<T>[-chunked].so> [gtest flags]
//
// One training step of the golden checkpoints (golden/README.md, "Training
// gradients"): the loss and the gradient of every checkpoint tensor and of
// the initial WKV state, against float64 autograd of the RWKV-LM training
// forward. The README's fp32 bound: rel = max|g - g64| / max|g64| about
// 1e-4 per tensor (its own fp32 run reaches at most 3.1e-5).
//
//===----------------------------------------------------------------------===//

#include "runtime/core/TrainStep.h"
#include "runtime/train/Optimizer.h"

#include "unittests/runtime/GoldenTestUtil.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

using namespace rwkv;

namespace {

std::string goldenDir, libDir;
constexpr double kRelTol = 1e-4;

struct Case {
  const char *model, *caseName, *library;
};
void PrintTo(const Case &c, std::ostream *os) { *os << c.library; }

/// A little-endian int64 C-order .npy (the `rowidx` files).
std::vector<int64_t> readNpyI64(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error("cannot open " + path);
  char magic[8];
  in.read(magic, 8);
  uint16_t headerLen = 0;
  in.read(reinterpret_cast<char *>(&headerLen), 2);
  std::string header(headerLen, '\0');
  in.read(header.data(), headerLen);
  if (header.find("'<i8'") == std::string::npos)
    throw std::runtime_error(path + ": expected <i8");
  std::vector<int64_t> out;
  int64_t v;
  while (in.read(reinterpret_cast<char *>(&v), 8))
    out.push_back(v);
  return out;
}

/// max|a - b| / max|b| (b the reference).
double relError(const float *a, const float *b, size_t n) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    double d = std::fabs(double(a[i]) - double(b[i]));
    if (!(d <= err))
      err = std::isnan(d) ? INFINITY : d;
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return scale > 0 ? err / scale : err;
}

class TrainGoldenTest : public ::testing::TestWithParam<Case> {
protected:
  void SetUp() override {
    const Case &c = GetParam();
    modelDir = goldenDir + "/" + c.model;
    caseDir = modelDir + "/" + c.caseName;
    lib = TrainLibrary::load(libDir + "/" + c.library, {});
    ckpt = Checkpoint::open(modelDir + "/model.pth");
    weights = bindTrainWeights(*lib, *ckpt, copies);
    std::ifstream in(caseDir + "/tokens.json");
    ASSERT_TRUE(in) << caseDir;
    nlohmann::json tok = nlohmann::json::parse(in);
    for (auto &row : tok["inputs"])
      for (auto &t : row)
        inputs.push_back(t.get<int32_t>());
    for (auto &row : tok["targets"])
      for (auto &t : row)
        targets.push_back(t.get<int32_t>());
    ASSERT_EQ(int64_t(inputs.size()), lib->batch() * lib->context());
    std::ifstream mf(caseDir + "/manifest.json");
    manifest = nlohmann::json::parse(mf);
    for (size_t i : lib->weightArgs())
      grads.emplace_back(lib->args()[i].numel);
    for (auto &g : grads)
      gradPtrs.push_back(g.data());
  }

  /// Every gradient against the reference; returns the worst rel.
  double checkGradients() {
    double worst = 0;
    for (size_t w = 0; w < lib->weightArgs().size(); ++w) {
      const TrainArg &a = lib->args()[lib->weightArgs()[w]];
      const std::vector<float> &g = grads[w];
      std::string base = caseDir + "/grads/" + a.name;
      double rel;
      if (std::ifstream(base + ".npy").good()) {
        NpyArray ref = readNpy(base + ".npy");
        if (ref.data.size() != g.size()) {
          ADD_FAILURE() << a.name << ": " << ref.data.size()
                        << " reference values for " << g.size();
          continue;
        }
        rel = relError(g.data(), ref.data.data(), g.size());
      } else {
        // Stored by rows, plus the row and column sums of the whole gradient.
        NpyArray rows = readNpy(base + ".rows.npy");
        std::vector<int64_t> idx = readNpyI64(base + ".rowidx.npy");
        NpyArray rowsum = readNpy(base + ".rowsum.npy");
        NpyArray colsum = readNpy(base + ".colsum.npy");
        size_t cols = rows.data.size() / idx.size();
        size_t nrows = g.size() / cols;
        std::vector<float> ours;
        for (int64_t r : idx)
          ours.insert(ours.end(), g.begin() + r * cols,
                      g.begin() + (r + 1) * cols);
        rel = relError(ours.data(), rows.data.data(), ours.size());
        double scale = 0;
        for (float v : rows.data)
          scale = std::max(scale, double(std::fabs(v)));
        std::vector<float> rs(nrows, 0.0f), cs(cols, 0.0f);
        for (size_t r = 0; r < nrows; ++r)
          for (size_t c = 0; c < cols; ++c) {
            rs[r] += g[r * cols + c];
            cs[c] += g[r * cols + c];
          }
        // A sum of n entries, each within rel of the largest: compare at the
        // scale of that largest entry times sqrt(n).
        double rsErr = 0, csErr = 0;
        for (size_t r = 0; r < nrows; ++r)
          rsErr = std::max(rsErr, std::fabs(double(rs[r]) - rowsum.data[r]));
        for (size_t c = 0; c < cols; ++c)
          csErr = std::max(csErr, std::fabs(double(cs[c]) - colsum.data[c]));
        double rsRel = rsErr / (scale * std::sqrt(double(cols)));
        double csRel = csErr / (scale * std::sqrt(double(nrows)));
        EXPECT_LT(rsRel, kRelTol) << a.name << " row sums";
        EXPECT_LT(csRel, kRelTol) << a.name << " column sums";
        rel = std::max({rel, rsRel, csRel});
      }
      EXPECT_LT(rel, kRelTol) << a.name;
      if (std::getenv("RWKV_TRAIN_TEST_VERBOSE"))
        std::printf("  %-34s rel %.2e\n", a.name.c_str(), rel);
      worst = std::max(worst, rel);
    }
    return worst;
  }

  std::string modelDir, caseDir;
  std::unique_ptr<TrainLibrary> lib;
  std::unique_ptr<Checkpoint> ckpt;
  std::vector<std::vector<uint8_t>> copies;
  std::vector<const void *> weights;
  std::vector<int32_t> inputs, targets;
  nlohmann::json manifest;
  std::vector<std::vector<float>> grads;
  std::vector<float *> gradPtrs;
};

TEST_P(TrainGoldenTest, LossAndEveryGradientMatchFloat64) {
  double ref = manifest["loss"]["loss_ce"].get<double>();
  // The forward-only entry point first: a step must not change its inputs.
  float fwd = lib->loss(inputs.data(), targets.data(), weights, {});
  EXPECT_NEAR(fwd, ref, 2e-5 * ref);
  float loss =
      lib->step(inputs.data(), targets.data(), weights, {}, gradPtrs, {});
  EXPECT_NEAR(loss, ref, 2e-5 * ref);
  double worst = checkGradients();
  std::printf("[ info ] %s: loss %.7f (ref %.7f), worst gradient rel %.2e\n",
              GetParam().library, loss, ref, worst);
  // Both entry points compute the same forward, and a second call (after a
  // step) the same loss: no input was clobbered.
  EXPECT_NEAR(fwd, loss, 1e-6 * ref);
  EXPECT_EQ(lib->loss(inputs.data(), targets.data(), weights, {}), fwd);
}

TEST_P(TrainGoldenTest, InitialStateGradientMatchesFloat64) {
  NpyArray s0 = readNpy(caseDir + "/state0.npy");
  NpyArray ds0 = readNpy(caseDir + "/dstate0.npy");
  int64_t layers = lib->numLayers(), batch = lib->batch();
  size_t per = s0.data.size() / size_t(layers);
  // The same state0 for every row: [B, H, N, N] per layer.
  std::vector<std::vector<float>> states(layers), dstates(layers);
  std::vector<const float *> sp;
  std::vector<float *> dp;
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t b = 0; b < batch; ++b)
      states[l].insert(states[l].end(), s0.data.begin() + l * per,
                       s0.data.begin() + (l + 1) * per);
    dstates[l].resize(states[l].size());
    sp.push_back(states[l].data());
    dp.push_back(dstates[l].data());
  }
  float loss =
      lib->step(inputs.data(), targets.data(), weights, sp, gradPtrs, dp);
  double ref = manifest["state_tuning"]["loss_ce"].get<double>();
  EXPECT_NEAR(loss, ref, 2e-5 * ref);
  // d loss / d state0 is summed over the rows that share it.
  std::vector<float> summed(s0.data.size(), 0.0f);
  for (int64_t l = 0; l < layers; ++l)
    for (int64_t b = 0; b < batch; ++b)
      for (size_t i = 0; i < per; ++i)
        summed[l * per + i] += dstates[l][b * per + i];
  double rel = relError(summed.data(), ds0.data.data(), summed.size());
  EXPECT_LT(rel, kRelTol);
  std::printf("[ info ] %s: state-tuning loss %.7f (ref %.7f), dstate0 rel "
              "%.2e\n",
              GetParam().library, loss, ref, rel);
}

// Sequential and chunked WKV (chunks of 16, and of 5 for T = 50: partial
// last chunks both), T a multiple of 16 or not.
const Case kCases[] = {
    {"tiny", "train_b2t64", "tiny-train64.so"},
    {"tiny", "train_b2t50", "tiny-train50.so"},
    {"tiny2", "train_b2t50", "tiny2-train50.so"},
    {"tiny", "train_b2t64", "tiny-train64-chunked.so"},
    {"tiny", "train_b2t50", "tiny-train50-chunked-c5.so"},
};
INSTANTIATE_TEST_SUITE_P(Goldens, TrainGoldenTest, ::testing::ValuesIn(kCases));

/// golden/tiny/train_adam: 20 Adam steps from tiny's weights on one fixed
/// batch, the whole run in fp32 (an f32-weight library, f32 master weights
/// updated in place). The loss after every update must follow the float64
/// curve; the reference's own fp32 run stays within 7.7e-7 of it, and the
/// loss falls from 10.9 to below 0.01, so any wrong gradient shows.
struct AdamVariant {
  const char *name, *library;
};
void PrintTo(const AdamVariant &v, std::ostream *os) { *os << v.name; }

class TrainAdamTest : public ::testing::TestWithParam<AdamVariant> {};

TEST_P(TrainAdamTest, LossCurveFollowsFloat64) {
  const AdamVariant &variant = GetParam();
  std::string dir = goldenDir + "/tiny";
  auto lib = TrainLibrary::load(libDir + "/" + variant.library, {});
  auto ckpt = Checkpoint::open(dir + "/model.pth");
  nlohmann::json manifest =
      nlohmann::json::parse(std::ifstream(dir + "/train_adam/manifest.json"));
  nlohmann::json tok =
      nlohmann::json::parse(std::ifstream(dir + "/train_adam/tokens.json"));
  std::vector<int32_t> inputs, targets;
  for (auto &row : tok["inputs"])
    for (auto &t : row)
      inputs.push_back(t.get<int32_t>());
  for (auto &row : tok["targets"])
    for (auto &t : row)
      targets.push_back(t.get<int32_t>());
  const nlohmann::json &v = manifest["variants"][variant.name];
  const nlohmann::json &cfg = v["config"];
  std::vector<double> ref = v["loss_f64"].get<std::vector<double>>();

  std::vector<Param> params =
      loadParams(*ckpt, cfg["w0_lr_scale"].get<float>());
  std::vector<Param *> trained;
  std::vector<const void *> weights;
  std::vector<float *> grads;
  for (size_t i : lib->weightArgs()) {
    const TrainArg &a = lib->args()[i];
    ASSERT_EQ(a.dtype, DType::F32) << a.name;
    Param *p = nullptr;
    for (Param &q : params)
      if (q.name == a.name)
        p = &q;
    ASSERT_TRUE(p) << a.name;
    trained.push_back(p);
    weights.push_back(p->value.data());
    grads.push_back(p->grad.data());
  }
  AdamWOptions opts;
  opts.beta1 = cfg["betas"][0].get<double>();
  opts.beta2 = cfg["betas"][1].get<double>();
  opts.eps = cfg["eps"].get<double>();
  opts.weightDecay = cfg["weight_decay"].get<double>();
  opts.gradClip =
      cfg["grad_clip"].is_null() ? 0.0 : cfg["grad_clip"].get<double>();
  AdamW adam(trained, opts);
  double lr = cfg["lr"].get<double>(), worst = 0;
  for (size_t k = 0; k < ref.size(); ++k) {
    float loss =
        lib->step(inputs.data(), targets.data(), weights, {}, grads, {});
    double err = std::fabs(loss - ref[k]);
    worst = std::max(worst, err);
    // fp32 against float64: within 1e-4 absolute, and 1e-3 relative once
    // the loss is small.
    EXPECT_LT(err, std::max(1e-4, 1e-3 * ref[k]))
        << "after " << k << " updates";
    if (k + 1 < ref.size())
      adam.step(lr);
  }
  std::printf("[ info ] %s: %zu losses, worst |loss - loss_f64| %.2e (final "
              "%.6f, ref %.6f)\n",
              variant.name, ref.size(), worst,
              double(lib->loss(inputs.data(), targets.data(), weights, {})),
              ref.back());
}

const AdamVariant kAdamVariants[] = {
    {"adamw_plain", "tiny-train64-f32.so"},
    {"rwkv_lm_style", "tiny-train64-f32-l2wrap.so"},
};
INSTANTIATE_TEST_SUITE_P(Adam, TrainAdamTest,
                         ::testing::ValuesIn(kAdamVariants));

/// The chunked backward against the sequential one on the same batch: the
/// same loss, and every gradient within 1e-5 of the largest entry of that
/// tensor (both are fp32; they differ only in summation order).
struct Pair {
  const char *model, *caseName, *seq, *chunked;
};
using ArrayRefPairs = std::vector<Pair>;
void comparePairs(ArrayRefPairs pairs, double tol, const char *what);

TEST(TrainChunkedTest, ChunkedGradientsEqualSequential) {
  const std::vector<Pair> pairs = {
      {"tiny", "train_b2t64", "tiny-train64.so", "tiny-train64-chunked.so"},
      {"tiny", "train_b2t50", "tiny-train50.so", "tiny-train50-chunked-c5.so"},
  };
  comparePairs(pairs, 1e-5, "chunked");
}

/// Activation checkpointing recomputes each layer's forward in the backward:
/// the same arithmetic, so bit-identical loss and gradients.
TEST(TrainRecomputeTest, RecomputedGradientsEqualStored) {
  const std::vector<Pair> pairs = {
      {"tiny", "train_b2t64", "tiny-train64.so", "tiny-train64-recompute.so"},
  };
  comparePairs(pairs, 0.0, "recompute");
}

void comparePairs(ArrayRefPairs pairs, double tol, const char *what) {
  for (const Pair &p : pairs) {
    std::string dir = goldenDir + "/" + p.model;
    auto ckpt = Checkpoint::open(dir + "/model.pth");
    nlohmann::json tok = nlohmann::json::parse(
        std::ifstream(dir + "/" + p.caseName + "/tokens.json"));
    std::vector<int32_t> inputs, targets;
    for (auto &row : tok["inputs"])
      for (auto &t : row)
        inputs.push_back(t.get<int32_t>());
    for (auto &row : tok["targets"])
      for (auto &t : row)
        targets.push_back(t.get<int32_t>());
    NpyArray s0 = readNpy(dir + "/" + p.caseName + "/state0.npy");
    std::vector<std::vector<float>> grads[2], dstates[2];
    float loss[2];
    const char *libs[2] = {p.seq, p.chunked};
    for (int k = 0; k < 2; ++k) {
      auto lib = TrainLibrary::load(libDir + "/" + libs[k], {});
      std::vector<std::vector<uint8_t>> copies;
      auto weights = bindTrainWeights(*lib, *ckpt, copies);
      std::vector<float *> gp, dp;
      for (size_t i : lib->weightArgs())
        grads[k].emplace_back(lib->args()[i].numel);
      for (auto &g : grads[k])
        gp.push_back(g.data());
      // A non-zero initial state, so the state path is exercised too.
      size_t per = s0.data.size() / size_t(lib->numLayers());
      std::vector<std::vector<float>> states(lib->numLayers());
      std::vector<const float *> sp;
      for (int64_t l = 0; l < lib->numLayers(); ++l) {
        for (int64_t b = 0; b < lib->batch(); ++b)
          states[l].insert(states[l].end(), s0.data.begin() + l * per,
                           s0.data.begin() + (l + 1) * per);
        dstates[k].emplace_back(states[l].size());
        sp.push_back(states[l].data());
      }
      for (auto &d : dstates[k])
        dp.push_back(d.data());
      loss[k] = lib->step(inputs.data(), targets.data(), weights, sp, gp, dp);
    }
    EXPECT_NEAR(loss[0], loss[1], tol * loss[0]) << p.chunked;
    double worst = 0;
    for (size_t i = 0; i < grads[0].size(); ++i) {
      double rel =
          relError(grads[1][i].data(), grads[0][i].data(), grads[0][i].size());
      EXPECT_LE(rel, tol) << p.chunked << " weight #" << i;
      worst = std::max(worst, rel);
    }
    for (size_t l = 0; l < dstates[0].size(); ++l) {
      double rel = relError(dstates[1][l].data(), dstates[0][l].data(),
                            dstates[0][l].size());
      EXPECT_LE(rel, tol) << p.chunked << " state " << l;
      worst = std::max(worst, rel);
    }
    std::printf("[ info ] %s (%s) vs %s: worst rel %.2e\n", p.chunked, what,
                p.seq, worst);
  }
}

} // namespace

int main(int argc, char **argv) {
  if (!rwkv::golden::parseTestFlags(
          argc, argv, "RWKVTrainGoldenTests",
          {{"golden-dir", &goldenDir}, {"lib-dir", &libDir}}))
    return 2;
  return RUN_ALL_TESTS();
}
