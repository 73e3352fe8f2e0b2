//===- OptimizerTest.cpp - AdamW, groups, clipping, schedule, resume ------===//

#include "runtime/train/Optimizer.h"

#include "unittests/train/TestUtil.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

using namespace rwkv;
using namespace rwkv::test;
using ::testing::HasSubstr;

namespace {

Param makeParam(const std::string &name, std::vector<int64_t> shape,
                std::vector<float> value, DType dtype = DType::F32) {
  Param p;
  p.name = name;
  p.shape = std::move(shape);
  p.dtype = dtype;
  p.value = std::move(value);
  p.grad.assign(p.value.size(), 0.0f);
  p.syncStored();
  applyParamGroupRule(p);
  return p;
}

TEST(AdamW, ThreeStepsWithBiasCorrection) {
  // Expected values: the golden README's update in float64, by hand.
  Param p = makeParam("x", {2}, {1.0f, -2.0f});
  AdamWOptions o;
  o.eps = 1e-8;
  o.gradClip = 0;
  AdamW opt({&p}, o);
  const float grads[3][2] = {{0.5f, -0.1f}, {0.25f, 0.3f}, {-0.2f, 0.1f}};
  const double want[3][2] = {{0.900000002, -1.900000010},
                             {0.806655204, -1.949329823},
                             {0.760226930, -2.005022505}};
  for (int s = 0; s < 3; ++s) {
    p.grad = {grads[s][0], grads[s][1]};
    StepStats st = opt.step(0.1);
    EXPECT_EQ(opt.stepCount(), s + 1);
    EXPECT_DOUBLE_EQ(st.clipCoef, 1.0);
    EXPECT_NEAR(p.value[0], want[s][0], 2e-6) << "step " << s + 1;
    EXPECT_NEAR(p.value[1], want[s][1], 2e-6) << "step " << s + 1;
  }
  // Step 2 by hand: m = 0.07, v = 0.0031, m̂ = 0.07/0.19, v̂ = 0.0031/0.0199.
  double m2 = 0.07 / 0.19, v2 = 0.0031 / 0.0199;
  EXPECT_NEAR(0.9 - 0.1 * m2 / std::sqrt(v2), want[1][0], 1e-8);
}

TEST(AdamW, GroupRule) {
  struct Case {
    const char *name;
    std::vector<int64_t> shape;
    float lrScale;
    bool decay;
  } cases[] = {
      {"emb.weight", {16, 4}, 1, true},
      {"head.weight", {16, 4}, 1, true},
      {"blocks.0.att.receptance.weight", {4, 4}, 1, true},
      {"blocks.0.ffn.value.weight", {4, 16}, 1, true},
      {"blocks.0.att.w0", {1, 1, 4}, 2, false},
      {"blocks.0.att.w1", {4, 2}, 1, false}, // LoRA: no ".weight"
      {"blocks.0.att.x_r", {1, 1, 4}, 1, false},
      {"blocks.0.att.r_k", {2, 2}, 1, false},
      {"blocks.0.ln1.weight", {4}, 1, false},
      {"blocks.0.att.ln_x.weight", {4}, 1, false},
      {"blocks.0.thing.weight", {1, 4, 1}, 1, false}, // squeezed: 1 dim
  };
  for (const Case &c : cases) {
    Param p = makeParam(c.name, c.shape, std::vector<float>(4, 0.0f));
    EXPECT_EQ(p.lrScale, c.lrScale) << c.name;
    EXPECT_EQ(p.weightDecay, c.decay) << c.name;
  }
  Param w0 = makeParam("blocks.3.att.w0", {1, 1, 4}, {0, 0, 0, 0});
  applyParamGroupRule(w0, 1.0f);
  EXPECT_EQ(w0.lrScale, 1.0f);
}

TEST(AdamW, DecoupledWeightDecayAndLrScale) {
  Param key = makeParam("blocks.0.att.key.weight", {2, 2}, {1, -2, 4, 0.5});
  Param w0 = makeParam("blocks.0.att.w0", {1, 1, 2}, {1, -1});
  Param ln = makeParam("blocks.0.ln1.weight", {2}, {3, 3});
  AdamWOptions o;
  o.weightDecay = 0.1;
  o.gradClip = 0;
  AdamW opt({&key, &w0, &ln}, o);
  w0.grad = {0.5f, -3.0f};
  opt.step(0.01);
  // Zero gradient: only the decay acts, p -= lr·wd·p.
  EXPECT_FLOAT_EQ(key.value[0], 1.0f * (1 - 0.001f));
  EXPECT_FLOAT_EQ(key.value[1], -2.0f * (1 - 0.001f));
  EXPECT_FLOAT_EQ(key.value[2], 4.0f * (1 - 0.001f));
  // w0: 2× lr, no decay; the first Adam step moves by lr·sign(g).
  EXPECT_FLOAT_EQ(w0.value[0], 1.0f - 0.02f);
  EXPECT_FLOAT_EQ(w0.value[1], -1.0f + 0.02f);
  // ln weight: 1 dim, no decay, no gradient: unchanged.
  EXPECT_EQ(ln.value, (std::vector<float>{3, 3}));
}

TEST(AdamW, GlobalNormClipping) {
  Param a = makeParam("a", {1}, {0}), b = makeParam("b", {1}, {0});
  AdamWOptions o;
  o.gradClip = 1.0;
  o.eps = 1.0; // a large eps makes the step depend on the gradient's size
  AdamW opt({&a, &b}, o);
  a.grad = {3};
  b.grad = {4};
  StepStats st = opt.step(1.0);
  EXPECT_DOUBLE_EQ(st.gradNorm, 5.0);
  EXPECT_DOUBLE_EQ(st.clipCoef, 1.0 / (5.0 + 1e-6));
  // The first update is g_c/(|g_c| + eps) with g_c = g·coef ≈ (0.6, 0.8).
  EXPECT_NEAR(a.value[0], -0.6 / 1.6, 1e-6);
  EXPECT_NEAR(b.value[0], -0.8 / 1.8, 1e-6);
  EXPECT_EQ(a.grad[0], 3.0f); // gradients are left alone

  // Below the threshold nothing is scaled.
  a.grad = {0.3f};
  b.grad = {0.4f};
  EXPECT_DOUBLE_EQ(opt.step(1.0).clipCoef, 1.0);
}

TEST(AdamW, NonFiniteGradientNamesTheTensor) {
  Param a = makeParam("a", {2}, {0, 0}),
        b = makeParam("blocks.1.b", {2}, {0, 0});
  AdamW opt({&a, &b}, {});
  b.grad[1] = NAN;
  std::string msg = errorOf<TrainError>([&] { opt.step(1e-3); });
  EXPECT_THAT(msg, HasSubstr("step 1: the gradient of 'blocks.1.b' is not "
                             "finite (element 1"));
  b.grad = {1};
  msg = errorOf<TrainError>([&] { opt.step(1e-3); });
  EXPECT_THAT(msg, HasSubstr("gradient of 'blocks.1.b' has 1 elements"));
}

TEST(LRSchedule, WarmupThenCosine) {
  LRSchedule s{1e-3, 1e-4, 10, 110};
  EXPECT_DOUBLE_EQ(s.at(0), 1e-5);                  // 1e-3·0.01
  EXPECT_DOUBLE_EQ(s.at(5), 1e-3 * (0.01 + 0.495)); // half-way up
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);
  EXPECT_NEAR(s.at(60), 5.5e-4, 1e-15); // cosine mid-point
  EXPECT_NEAR(s.at(35), 1e-4 + 9e-4 * 0.5 * (1 + std::cos(M_PI / 4)), 1e-15);
  EXPECT_NEAR(s.at(110), 1e-4, 1e-15);
  EXPECT_NEAR(s.at(500), 1e-4, 1e-15);
  LRSchedule constant{2e-4, 2e-4, 0, 100};
  EXPECT_DOUBLE_EQ(constant.at(0), 2e-4);
  EXPECT_DOUBLE_EQ(constant.at(77), 2e-4);
  LRSchedule warmOnly{1e-3, 0, 4, 0};
  EXPECT_DOUBLE_EQ(warmOnly.at(2), 1e-3 * (0.01 + 0.495));
  EXPECT_DOUBLE_EQ(warmOnly.at(9), 1e-3);
}

TEST(AdamW, Bf16MasterWeightsAreRoundedToNearestEven) {
  // lr 2^-8 and eps 1e-18: the first step moves each value by exactly 2^-8.
  const float u = 1.0f / 256;
  Param p = makeParam("emb.weight", {2, 2}, {1 + 2 * u, 1 + 4 * u, 1.0f, -3.0f},
                      DType::BF16);
  ASSERT_EQ(p.stored.size(), 8u);
  AdamWOptions o;
  o.gradClip = 0;
  AdamW opt({&p}, o);
  p.grad = {1, 1, 0.25f, -1};
  opt.step(u);
  EXPECT_EQ(p.value[0], 1 + u);     // a tie between 0x3F80 and 0x3F81
  EXPECT_EQ(p.value[1], 1 + 3 * u); // a tie between 0x3F81 and 0x3F82
  EXPECT_EQ(p.value[2], 1 - u);
  auto bits = reinterpret_cast<const uint16_t *>(p.stored.data());
  EXPECT_EQ(bits[0], 0x3F80); // even
  EXPECT_EQ(bits[1], 0x3F82); // even
  EXPECT_EQ(bits[2], f32ToBf16(1 - u));
  EXPECT_EQ(bf16ToF32(bits[2]), 1 - u); // 0.99609375 is exact in bf16
  EXPECT_EQ(bits[3], f32ToBf16(-3 + u));
  // The master copy keeps the precision bf16 drops.
  EXPECT_NE(bf16ToF32(bits[0]), p.value[0]);

  Param h = makeParam("head.weight", {1, 1}, {1.0f}, DType::F16);
  AdamW opt16({&h}, o);
  h.grad = {1};
  opt16.step(1.0 / 4096); // 1 − 2^-12 rounds to 1 in f16 (spacing 2^-11)
  EXPECT_EQ(reinterpret_cast<const uint16_t *>(h.stored.data())[0], 0x3C00);
  EXPECT_EQ(h.value[0], 1.0f - 1.0f / 4096);
}

TEST(AdamW, SaveLoadRoundTrip) {
  TempDir dir;
  auto build = [](std::vector<Param> &ps) {
    ps = {makeParam("emb.weight", {2, 3}, {1, 2, 3, 4, 5, 6}, DType::BF16),
          makeParam("blocks.0.att.w0", {1, 1, 3}, {-1, 0, 1})};
  };
  std::vector<Param> a, b;
  build(a);
  build(b);
  AdamWOptions o;
  o.weightDecay = 0.01;
  AdamW optA({&a[0], &a[1]}, o), optB({&b[0], &b[1]}, o);
  auto setGrads = [](std::vector<Param> &ps, float s) {
    ps[0].grad = {s, -s, 2 * s, 0.5f, 0, 1};
    ps[1].grad = {0.1f * s, 1, -1};
  };
  for (int k = 1; k <= 2; ++k) {
    setGrads(a, float(k));
    optA.step(1e-2);
  }
  optA.save(dir.file("state.bin"), {12345, 7});
  // Nothing but the file itself is left in the folder.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);

  DataPosition pos = optB.load(dir.file("state.bin"));
  EXPECT_EQ(pos.samplesDrawn, 12345u);
  EXPECT_EQ(pos.seed, 7u);
  EXPECT_EQ(optB.stepCount(), 2);
  EXPECT_EQ(b[0].value, a[0].value);
  EXPECT_EQ(b[0].stored, a[0].stored);
  // The next step (which uses m, v and t) agrees bit for bit.
  setGrads(a, 3);
  setGrads(b, 3);
  optA.step(1e-2);
  optB.step(1e-2);
  EXPECT_EQ(b[0].value, a[0].value);
  EXPECT_EQ(b[1].value, a[1].value);
}

TEST(AdamW, LoadRefusesOtherModelsAndBadFiles) {
  TempDir dir;
  Param a = makeParam("emb.weight", {2, 3}, std::vector<float>(6, 1));
  AdamW opt({&a}, {});
  opt.save(dir.file("s.bin"), {});

  Param other = makeParam("emb.weight", {3, 2}, std::vector<float>(6, 1));
  AdamW optOther({&other}, {});
  std::string msg =
      errorOf<TrainError>([&] { optOther.load(dir.file("s.bin")); });
  EXPECT_THAT(msg, HasSubstr("s.bin: written for a different model"));
  EXPECT_THAT(msg, HasSubstr("tensor 0 is 'emb.weight' [2, 3] in the file but "
                             "'emb.weight' [3, 2] in the model"));

  Param c = makeParam("emb.weight", {2, 3}, std::vector<float>(6, 1)),
        d = makeParam("head.weight", {1, 1}, {0});
  AdamW optMore({&c, &d}, {});
  msg = errorOf<TrainError>([&] { optMore.load(dir.file("s.bin")); });
  EXPECT_THAT(msg, HasSubstr("1 tensors in the file, 2 in the model"));

  std::string bytes = readFile(dir.file("s.bin"));
  writeFile(dir.file("cut.bin"), bytes.substr(0, bytes.size() - 4));
  msg = errorOf<TrainError>([&] { opt.load(dir.file("cut.bin")); });
  EXPECT_THAT(msg, HasSubstr("cut.bin:"));
  EXPECT_THAT(msg, HasSubstr("truncated"));

  std::string wrong = bytes;
  wrong[0] = 'X';
  writeFile(dir.file("magic.bin"), wrong);
  msg = errorOf<TrainError>([&] { opt.load(dir.file("magic.bin")); });
  EXPECT_THAT(msg, HasSubstr("magic.bin: not an rwkv-train resume file"));

  std::string ver = bytes;
  ver[8] = 9;
  writeFile(dir.file("ver.bin"), ver);
  msg = errorOf<TrainError>([&] { opt.load(dir.file("ver.bin")); });
  EXPECT_THAT(msg, HasSubstr("ver.bin: resume file format version 9"));

  msg = errorOf<TrainError>([&] { opt.load(dir.file("none.bin")); });
  EXPECT_THAT(msg, HasSubstr("none.bin: cannot open"));
}

} // namespace
