//===- TrainerTest.cpp - Training loop, params I/O, progress output -------===//

#include "runtime/train/Trainer.h"

#include "unittests/train/TestUtil.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <numeric>

#include <nlohmann/json.hpp>

using namespace rwkv;
using namespace rwkv::test;
using ::testing::HasSubstr;

namespace {

/// Toy objective: loss = mean over all elements of 0.5·(p − c)² where c is
/// the batch's first input token; d loss / dp = (p − c) / n.
float toyGradient(const Batch &batch, const std::vector<Param *> &params) {
  double c = batch.inputs.at(0), loss = 0;
  size_t n = 0;
  for (const Param *p : params)
    n += p->value.size();
  for (Param *p : params)
    for (size_t i = 0; i < p->value.size(); ++i) {
      double d = p->value[i] - c;
      loss += 0.5 * d * d / double(n);
      p->grad[i] += float(d / double(n));
    }
  return float(loss);
}

std::vector<Param> toyParams() {
  std::vector<Param> ps(2);
  ps[0].name = "emb.weight";
  ps[0].shape = {2, 2};
  ps[0].value = {1, 2, 3, 4};
  ps[0].dtype = DType::BF16;
  ps[1].name = "blocks.0.att.w0";
  ps[1].shape = {1, 1, 2};
  ps[1].value = {-1, 1};
  for (Param &p : ps) {
    p.grad.assign(p.value.size(), 0);
    p.syncStored();
    applyParamGroupRule(p);
  }
  return ps;
}

std::vector<Param *> ptrs(std::vector<Param> &ps) {
  std::vector<Param *> out;
  for (Param &p : ps)
    out.push_back(&p);
  return out;
}

TEST(Trainer, LoopSavesStopsAndResumesExactly) {
  TempDir dir;
  auto data = Dataset::fromTokens(std::vector<int32_t>(64, 5), "mem");
  TrainLoopOptions lo;
  lo.batchSize = 2;
  lo.totalSteps = 6;
  lo.schedule = {0.1, 0.01, 2, 6};

  // Reference: 6 uninterrupted steps.
  std::vector<Param> ref = toyParams();
  AdamW refOpt(ptrs(ref), {});
  WindowSampler refSampler(*data, 4, SamplingMode::Random, 3);
  std::vector<double> losses;
  GradientFn recording = [&](const Batch &b, const std::vector<Param *> &ps) {
    EXPECT_EQ(b.B, 2);
    EXPECT_EQ(b.T, 4);
    for (const Param *p : ps) // zeroed before every call
      for (float g : p->grad)
        EXPECT_EQ(g, 0.0f);
    float l = toyGradient(b, ps);
    losses.push_back(l);
    return l;
  };
  TrainResult r = runTraining(refOpt, refSampler, recording, nullptr, lo);
  EXPECT_EQ(r.stepsDone, 6);
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(refSampler.position(), 12u);
  ASSERT_EQ(losses.size(), 6u);
  EXPECT_LT(losses.back(), losses.front()); // the toy objective goes down

  // Interrupted after 4 steps (saving every 3 and on the stop), resumed.
  std::vector<Param> a = toyParams();
  AdamW optA(ptrs(a), {});
  WindowSampler samplerA(*data, 4, SamplingMode::Random, 3);
  std::vector<int64_t> savedAt;
  TrainLoopOptions la = lo;
  la.saveEvery = 3;
  la.save = [&] {
    savedAt.push_back(optA.stepCount());
    optA.save(dir.file("resume.bin"), {samplerA.position(), samplerA.seed()});
  };
  la.stopRequested = [&] { return optA.stepCount() == 4; };
  r = runTraining(optA, samplerA, toyGradient, nullptr, la);
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.stepsDone, 4);
  EXPECT_EQ(savedAt, (std::vector<int64_t>{3, 4}));

  std::vector<Param> b = toyParams();
  AdamW optB(ptrs(b), {});
  DataPosition pos = optB.load(dir.file("resume.bin"));
  WindowSampler samplerB(*data, 4, SamplingMode::Random, pos.seed);
  samplerB.setPosition(pos.samplesDrawn);
  r = runTraining(optB, samplerB, toyGradient, nullptr, lo);
  EXPECT_EQ(r.stepsDone, 2);
  for (size_t k = 0; k < ref.size(); ++k) {
    EXPECT_EQ(b[k].value, ref[k].value) << ref[k].name;
    EXPECT_EQ(b[k].stored, ref[k].stored) << ref[k].name;
  }
}

TEST(Trainer, DivergenceIsReported) {
  auto data = Dataset::fromTokens(std::vector<int32_t>(16, 1), "mem");
  std::vector<Param> ps = toyParams();
  AdamW opt(ptrs(ps), {});
  WindowSampler s(*data, 4, SamplingMode::Sequential, 0);
  TrainLoopOptions lo;
  lo.totalSteps = 3;
  int calls = 0;
  GradientFn nan = [&](const Batch &, const std::vector<Param *> &) {
    return ++calls == 2 ? NAN : 1.0f;
  };
  std::string msg =
      errorOf<TrainError>([&] { runTraining(opt, s, nan, nullptr, lo); });
  EXPECT_THAT(msg, HasSubstr("step 2: the loss is nan"));
}

TEST(Params, LoadAndWritePthKeepsDtypesAndValues) {
  TempDir dir;
  SyntheticOptions so;
  so.n_layer = 1;
  so.n_embd = 64;
  so.head_size = 64;
  so.vocab_size = 16;
  so.lora_w = so.lora_a = so.lora_v = so.lora_g = 32;
  writePth(dir.file("base.pth"), makeSyntheticModel(so));
  auto ckpt = Checkpoint::open(dir.file("base.pth"));
  std::vector<Param> params = loadParams(*ckpt);
  ASSERT_EQ(params.size(), ckpt->tensors().size());
  const Param *w0 = nullptr, *emb = nullptr;
  for (const Param &p : params) {
    EXPECT_EQ(p.dtype, DType::BF16) << p.name;
    if (p.name == "blocks.0.att.w0")
      w0 = &p;
    if (p.name == "emb.weight")
      emb = &p;
  }
  ASSERT_TRUE(w0 && emb);
  EXPECT_EQ(w0->lrScale, 2.0f);
  EXPECT_TRUE(emb->weightDecay);

  params[0].value[0] += 1.0f;
  params[0].syncStored();
  std::vector<const Param *> cps;
  for (const Param &p : params)
    cps.push_back(&p);
  writeParamsPth(dir.file("out.pth"), cps);
  // Only base.pth and out.pth: no temporary left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            2);
  auto out = Checkpoint::open(dir.file("out.pth"));
  EXPECT_EQ(out->archiveName(), "out");
  ASSERT_EQ(out->tensors().size(), params.size());
  for (size_t k = 0; k < params.size(); ++k) {
    const Tensor &t = out->tensors()[k];
    EXPECT_EQ(t.name, params[k].name);
    EXPECT_EQ(t.shape, params[k].shape);
    EXPECT_EQ(t.dtype, DType::BF16);
    EXPECT_EQ(std::memcmp(t.data, params[k].stored.data(), t.nbytes), 0)
        << t.name;
  }
  EXPECT_EQ(out->tensors()[0].getAsFloat(0),
            bf16ToF32(f32ToBf16(params[0].value[0])));
  EXPECT_NO_THROW(detectConfig(*out));
  EXPECT_NE(modelIdentity(cps), 0u);

  // A failing write leaves the old file untouched and no temporary.
  std::string before = readFile(dir.file("out.pth"));
  EXPECT_THROW(writeFileAtomically(dir.file("out.pth"),
                                   [](const std::string &tmp) {
                                     writeFile(tmp, "partial");
                                     throw TrainError("disk full");
                                   }),
               TrainError);
  EXPECT_EQ(readFile(dir.file("out.pth")), before);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            2);
}

TEST(Params, StateTuningParams) {
  ModelConfig cfg;
  cfg.n_layer = 2;
  cfg.n_head = 3;
  cfg.head_size = 4;
  std::vector<Param> ps = makeStateParams(cfg);
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[1].name, "blocks.1.att.time_state");
  EXPECT_EQ(ps[1].shape, (std::vector<int64_t>{3, 4, 4}));
  EXPECT_EQ(ps[1].value, std::vector<float>(48, 0.0f));
  EXPECT_FALSE(ps[1].weightDecay);
  EXPECT_THROW(makeStateParams(ModelConfig{}), TrainError);
}

std::string captured(std::FILE *f) {
  std::fflush(f);
  std::rewind(f);
  std::string out;
  char buf[256];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    out.append(buf, n);
  return out;
}

TEST(Progress, PlainLinesAndCsvLog) {
  TempDir dir;
  std::FILE *out = std::tmpfile();
  {
    ProgressOptions o;
    o.totalSteps = 5;
    o.tokensPerStep = 128;
    o.printEvery = 2;
    o.out = out;
    o.terminal = 0;
    o.logPath = dir.file("loss.csv");
    Progress p(o);
    EXPECT_FALSE(p.isTerminal());
    for (int s = 1; s <= 5; ++s)
      p.update({s, 10.0 / s, 1e-3, 2.5, 0.4, 0.1 * s});
  }
  std::string text = captured(out);
  std::fclose(out);
  EXPECT_THAT(text, HasSubstr("step 2 loss 5.000000 lr 0.001 tok/s "));
  EXPECT_THAT(text, HasSubstr("step 4 loss 2.500000"));
  EXPECT_THAT(text, HasSubstr("step 5 loss 2.000000")); // the last step
  EXPECT_THAT(text, ::testing::Not(HasSubstr("step 1 ")));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("step 3 ")));

  std::string csv = readFile(dir.file("loss.csv"));
  EXPECT_THAT(csv, ::testing::StartsWith(
                       "step,loss,lr,grad_norm,clip_coef,epoch,tokens,"
                       "elapsed_s\n1,10,0.001,2.5,0.4,0.1,128,"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 6);

  // A resumed run appends without a second header.
  {
    ProgressOptions o;
    o.out = std::tmpfile();
    o.terminal = 0;
    o.logPath = dir.file("loss.csv");
    Progress p(o);
    p.update({6, 1.0, 1e-3, 1, 1, 0});
    std::fclose(o.out);
  }
  csv = readFile(dir.file("loss.csv"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7);
  EXPECT_EQ(csv.find("step,", 1), std::string::npos);
}

TEST(Progress, TerminalBarJsonlAndErrors) {
  TempDir dir;
  std::FILE *out = std::tmpfile();
  {
    ProgressOptions o;
    o.totalSteps = 4;
    o.tokensPerStep = 10;
    o.out = out;
    o.terminal = 1;
    o.logPath = dir.file("loss.jsonl");
    Progress p(o);
    p.update({1, 3.0, 1e-4, 1, 1, 0});
    p.update({2, 2.0, 1e-4, 1, 1, 0});
  }
  std::string text = captured(out);
  std::fclose(out);
  EXPECT_THAT(text, HasSubstr("\r[############............] step 2/4 loss "
                              "2.0000 lr 0.0001"));
  EXPECT_THAT(text, HasSubstr("ETA "));
  EXPECT_EQ(text.back(), '\n'); // finish() ends the line

  std::string log = readFile(dir.file("loss.jsonl"));
  size_t nl = log.find('\n');
  auto first = nlohmann::json::parse(log.substr(0, nl));
  EXPECT_EQ(first["step"], 1);
  EXPECT_EQ(first["loss"], 3.0);
  EXPECT_EQ(first["tokens"], 10);

  ProgressOptions bad;
  bad.logPath = dir.file("loss.txt");
  std::string msg = errorOf<TrainError>([&] { Progress p(bad); });
  EXPECT_THAT(msg, HasSubstr("loss.txt: the loss log must end in .csv or "
                             ".jsonl"));
  bad.logPath = dir.file("no/such/dir/loss.csv");
  msg = errorOf<TrainError>([&] { Progress p(bad); });
  EXPECT_THAT(msg, HasSubstr("cannot open the loss log"));

  EXPECT_EQ(Progress::formatDuration(5), "5s");
  EXPECT_EQ(Progress::formatDuration(125), "2m05s");
  EXPECT_EQ(Progress::formatDuration(3723), "1h02m03s");
  EXPECT_EQ(Progress::formatDuration(NAN), "?");
}

} // namespace
