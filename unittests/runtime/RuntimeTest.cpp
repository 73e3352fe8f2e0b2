//===- RuntimeTest.cpp - RWKVRuntime tests that need no compiled model ----===//
//
// Info parsing, descriptors, weight binding, .npy and State on plain data;
// Model and the C API against FakeModel.so (a hand-written library with the
// ABI of docs/ABI.md and a toy computation).
//
//===----------------------------------------------------------------------===//

#include "runtime/core/BufferCache.h"
#include "runtime/core/Runtime.h"
#include "runtime/core/rwkv_runtime.h"
#include "unittests/runtime/FakeModel.h"

#include "mlir/ExecutionEngine/CRunnerUtils.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <dlfcn.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>

using namespace rwkv;
using Json = nlohmann::json;

namespace {

/// Removes every temporary file when the test program ends.
struct TempFiles : ::testing::Environment {
  std::vector<std::string> paths;
  void TearDown() override {
    for (const std::string &p : paths)
      std::remove(p.c_str());
  }
};
TempFiles *tempFiles = static_cast<TempFiles *>(
    ::testing::AddGlobalTestEnvironment(new TempFiles));

std::string tempPath(const std::string &name) {
  std::string path =
      ::testing::TempDir() + "rwkv_rt_" + std::to_string(getpid()) + "_" + name;
  tempFiles->paths.push_back(path);
  return path;
}

/// Writes the synthetic checkpoint for `o` once per name.
std::string writeCheckpoint(const std::string &name,
                            const SyntheticOptions &o) {
  std::string path = tempPath(name);
  writePth(path, makeSyntheticModel(o));
  return path;
}

const std::string &fakeCheckpoint() {
  static const std::string path =
      writeCheckpoint("fake.pth", fakeModelOptions());
  return path;
}

std::string fakeInfoJson() {
  void *h = dlopen(RWKV_FAKE_MODEL, RTLD_NOW | RTLD_LOCAL);
  EXPECT_NE(h, nullptr) << dlerror();
  auto fn = reinterpret_cast<const char *(*)()>(dlsym(h, "rwkv_model_info"));
  std::string text = fn();
  dlclose(h);
  return text;
}

template <typename F> std::string errorOf(F &&f) {
  try {
    f();
  } catch (const std::exception &e) {
    return e.what();
  }
  return "<no error>";
}

//===----------------------------------------------------------------------===//
// Plain data
//===----------------------------------------------------------------------===//

// The allocator compiled libraries get through rwkv_set_allocator.
TEST(BufferCache, ReusesFreedBlocksOfAboutTheSameSize) {
  BufferCache cache(size_t(64) << 20);
  const size_t big = 1 << 20;
  void *a = BufferCache::allocateHook(&cache, big);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 16, 0u);
  std::memset(a, 1, big);
  BufferCache::releaseHook(&cache, a);
  EXPECT_EQ(cache.stats().cachedBytes, big);
  // A quarter smaller still fits in the block; twice smaller does not.
  void *b = cache.allocate(big - big / 8);
  EXPECT_EQ(b, a);
  EXPECT_EQ(cache.stats().cachedBytes, 0u);
  cache.release(b);
  void *c = cache.allocate(big / 2);
  EXPECT_NE(c, a);
  void *d = cache.allocate(big + 1);
  EXPECT_NE(d, a);
  BufferCache::Stats s = cache.stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 3u);
  cache.release(c);
  cache.release(d);
  cache.release(nullptr);
  cache.trim();
  EXPECT_EQ(cache.stats().cachedBytes, 0u);
}

// Sizes are page-rounded before the quarter tolerance: a request that is
// not a page multiple finds its own block again (it used to miss every
// time when the rounding was more than a quarter of the request).
TEST(BufferCache, SameRequestFindsItsRoundedBlock) {
  BufferCache cache(size_t(64) << 20);
  const size_t size = BufferCache::kMinCachedBytes + 100;
  void *a = cache.allocate(size);
  cache.release(a);
  EXPECT_EQ(cache.allocate(size), a);
  cache.release(a);
  EXPECT_EQ(cache.stats().hits, 1u);
  EXPECT_EQ(cache.stats().misses, 1u);
}

TEST(BufferCache, SmallBlocksAndTheLimitBypassTheCache) {
  BufferCache cache(size_t(3) << 20);
  void *small = cache.allocate(100);
  ASSERT_NE(small, nullptr);
  std::memset(small, 2, 100);
  cache.release(small);
  EXPECT_EQ(cache.stats().cachedBytes, 0u);
  EXPECT_EQ(cache.stats().misses, 0u);
  // Zero bytes is a valid malloc request; sizes near SIZE_MAX fail as
  // malloc's do, instead of wrapping around in the header or the rounding.
  cache.release(cache.allocate(0));
  EXPECT_EQ(cache.allocate(SIZE_MAX), nullptr);
  EXPECT_EQ(cache.allocate(SIZE_MAX - 100), nullptr);
  // Two 2 MiB blocks: only one fits under the 3 MiB limit.
  void *x = cache.allocate(2 << 20), *y = cache.allocate(2 << 20);
  cache.release(x);
  cache.release(y);
  EXPECT_EQ(cache.stats().cachedBytes, size_t(2) << 20);
  // Limit 0: nothing is kept.
  BufferCache off(0);
  off.release(off.allocate(4 << 20));
  EXPECT_EQ(off.stats().cachedBytes, 0u);
  EXPECT_EQ(off.stats().misses, 0u);
}

TEST(BufferCache, LimitFromEnvironmentNamesTheVariable) {
  ASSERT_EQ(unsetenv("RWKV_MLIR_BUFFER_CACHE_MB"), 0);
  EXPECT_EQ(BufferCache::limitFromEnvironment(),
            BufferCache::kDefaultLimitBytes);
  setenv("RWKV_MLIR_BUFFER_CACHE_MB", "16", 1);
  EXPECT_EQ(BufferCache::limitFromEnvironment(), size_t(16) << 20);
  setenv("RWKV_MLIR_BUFFER_CACHE_MB", "0", 1);
  EXPECT_EQ(BufferCache::limitFromEnvironment(), 0u);
  for (const char *bad : {"", "-1", "1.5", "lots", "99999999999"}) {
    setenv("RWKV_MLIR_BUFFER_CACHE_MB", bad, 1);
    try {
      BufferCache::limitFromEnvironment();
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const RuntimeError &e) {
      EXPECT_NE(std::string(e.what()).find("RWKV_MLIR_BUFFER_CACHE_MB"),
                std::string::npos)
          << e.what();
    }
  }
  unsetenv("RWKV_MLIR_BUFFER_CACHE_MB");
}

TEST(MemRefDesc, MatchesStridedMemRefType) {
  float data[2 * 3 * 4];
  MemRefDesc d(data, {2, 3, 4});
  auto *m = static_cast<StridedMemRefType<float, 3> *>(d.get());
  EXPECT_EQ(m->basePtr, data);
  EXPECT_EQ(m->data, data);
  EXPECT_EQ(m->offset, 0);
  EXPECT_EQ(m->sizes[0], 2);
  EXPECT_EQ(m->sizes[2], 4);
  EXPECT_EQ(m->strides[0], 12);
  EXPECT_EQ(m->strides[1], 4);
  EXPECT_EQ(m->strides[2], 1);
  EXPECT_EQ(d.rank(), 3);
  EXPECT_EQ(d.data(), data);

  MemRefDesc r1(data, {7});
  auto *m1 = static_cast<StridedMemRefType<float, 1> *>(r1.get());
  EXPECT_EQ(m1->sizes[0], 7);
  EXPECT_EQ(m1->strides[0], 1);
}

TEST(ModelInfo, ParsesFakeLibraryInfo) {
  ModelInfo info = ModelInfo::parse(fakeInfoJson());
  EXPECT_EQ(info.abiVersion, 1);
  EXPECT_EQ(info.batch, 1);
  EXPECT_EQ(info.vocabSize(), 40);
  EXPECT_EQ(info.configValue("n_layer"), 2);
  EXPECT_EQ(info.configValue("nope", 9), 9);
  EXPECT_TRUE(info.hasEntry("rwkv_step"));
  EXPECT_TRUE(info.hasEntry("rwkv_forward_all"));
  EXPECT_FALSE(info.hasEntry("rwkv_other"));
  ASSERT_EQ(info.args[0].kind, ArgInfo::Kind::Tokens);
  EXPECT_EQ(info.args[2].name, "wkv");
  EXPECT_EQ(info.args[2].layer, 0);
  EXPECT_EQ(info.args[2].shape, (std::vector<int64_t>{1, 2, 32, 32}));
  EXPECT_EQ(info.args[7].kind, ArgInfo::Kind::Weight);
  EXPECT_EQ(info.args[7].name, "emb.weight");
  // Anonymous state results take the names of the state arguments.
  const auto &res = info.results.at("rwkv_forward_all");
  EXPECT_EQ(res[0].shape, (std::vector<int64_t>{1, -1, 40}));
  EXPECT_EQ(res[6].name, "ffn_shift");
  EXPECT_EQ(res[6].layer, 1);
}

Json minimalInfo() {
  Json state = {{"kind", "state"},
                {"name", "att_shift:0"},
                {"dtype", "f32"},
                {"shape", {1, 8}}};
  return {{"abi_version", 1},
          {"config", {{"n_layer", 1}, {"vocab_size", 10}}},
          {"entry_points", {"rwkv_step"}},
          {"args",
           {{{"kind", "tokens"}, {"dtype", "i32"}, {"shape", {1, -1}}},
            state,
            {{"kind", "weight"},
             {"name", "emb.weight"},
             {"dtype", "bf16"},
             {"shape", {10, 8}}}}},
          {"results",
           {{"rwkv_step",
             {{{"kind", "logits"}, {"dtype", "f32"}, {"shape", {1, 1, 10}}},
              state}}}}};
}

TEST(ModelInfo, AcceptsListFormAndStateColonLayer) {
  ModelInfo info = ModelInfo::parse(minimalInfo().dump());
  EXPECT_EQ(info.entryPoints, std::vector<std::string>{"rwkv_step"});
  EXPECT_EQ(info.args[1].name, "att_shift");
  EXPECT_EQ(info.args[1].layer, 0);
}

TEST(ModelInfo, RejectsBadInfo) {
  EXPECT_NE(errorOf([] {
              ModelInfo::parse("{", "lib.so");
            }).find("lib.so: bad rwkv_model_info: not JSON"),
            std::string::npos);

  Json j = minimalInfo();
  j["abi_version"] = 2;
  EXPECT_EQ(errorOf([&] { ModelInfo::parse(j.dump(), "lib.so"); }),
            "lib.so: library has ABI version 2, this runtime implements "
            "version 1");

  j = minimalInfo();
  j.erase("abi_version");
  EXPECT_NE(errorOf([&] { ModelInfo::parse(j.dump()); }).find("abi_version"),
            std::string::npos);

  j = minimalInfo();
  std::swap(j["args"][0], j["args"][1]);
  EXPECT_NE(errorOf([&] {
              ModelInfo::parse(j.dump());
            }).find("first argument is not the tokens"),
            std::string::npos);

  j = minimalInfo();
  j["results"]["rwkv_step"][1]["shape"] = {1, 9};
  EXPECT_NE(errorOf([&] {
              ModelInfo::parse(j.dump());
            }).find("is not the new state 'att_shift:0'"),
            std::string::npos);

  j = minimalInfo();
  j["args"][2]["shape"] = {-1, 8};
  EXPECT_NE(errorOf([&] {
              ModelInfo::parse(j.dump());
            }).find("'emb.weight') has a dynamic shape"),
            std::string::npos);

  j = minimalInfo();
  j["args"][2]["kind"] = "bogus";
  EXPECT_NE(
      errorOf([&] { ModelInfo::parse(j.dump()); }).find("unknown kind 'bogus'"),
      std::string::npos);

  j = minimalInfo();
  j["results"].erase("rwkv_step");
  EXPECT_NE(errorOf([&] {
              ModelInfo::parse(j.dump());
            }).find("entry point 'rwkv_step' has no results"),
            std::string::npos);
}

TEST(CheckConfig, NamesFieldAndBothValues) {
  ModelInfo info = ModelInfo::parse(fakeInfoJson());
  ModelConfig c;
  c.version = 7;
  c.n_layer = 2;
  c.n_embd = 64;
  c.n_head = 2;
  c.head_size = 32;
  c.dim_ffn = 256;
  c.vocab_size = 40;
  c.lora_w = c.lora_a = c.lora_v = c.lora_g = 8;
  EXPECT_NO_THROW(checkConfig(info, c, "lib.so", "m.pth"));
  c.n_layer = 3;
  EXPECT_EQ(errorOf([&] { checkConfig(info, c, "lib.so", "m.pth"); }),
            "checkpoint 'm.pth' does not fit library 'lib.so': n_layer is 3 "
            "in the checkpoint but 2 in the library");
}

TEST(BindWeights, PointsIntoTheCheckpointAndFlattensRk) {
  ModelInfo info = ModelInfo::parse(fakeInfoJson());
  auto ckpt = Checkpoint::open(fakeCheckpoint());
  std::vector<std::vector<uint8_t>> copies;
  std::vector<BoundWeight> w = bindWeights(info, *ckpt, copies);
  EXPECT_TRUE(copies.empty());
  ASSERT_EQ(w.size(), syntheticSpecs(fakeModelOptions()).size());
  for (const BoundWeight &b : w) {
    const Tensor &t = ckpt->get(b.name);
    EXPECT_EQ(b.data, t.data) << b.name; // zero copy
    EXPECT_EQ(b.dtype, DType::BF16);
    EXPECT_FALSE(b.copied);
    if (b.name == "blocks.1.att.r_k") {
      EXPECT_EQ(b.shape, std::vector<int64_t>{64});
    }
  }
}

TEST(BindWeights, RefusesShapeDtypeAndMissingTensors) {
  ModelInfo info = ModelInfo::parse(fakeInfoJson());
  std::vector<std::vector<uint8_t>> copies;

  SyntheticOptions wide = fakeModelOptions();
  wide.n_embd = 96;
  auto ckpt = Checkpoint::open(writeCheckpoint("wide.pth", wide));
  std::string err = errorOf([&] { bindWeights(info, *ckpt, copies); });
  EXPECT_NE(err.find("tensor 'emb.weight'"), std::string::npos) << err;
  EXPECT_NE(err.find("the library expects [40, 64] bf16, the checkpoint has "
                     "[40, 96] bf16"),
            std::string::npos)
      << err;

  SyntheticOptions f32 = fakeModelOptions();
  f32.dtype = DType::F32;
  auto ckpt32 = Checkpoint::open(writeCheckpoint("f32.pth", f32));
  err = errorOf([&] { bindWeights(info, *ckpt32, copies); });
  EXPECT_NE(err.find("[40, 64] bf16, the checkpoint has [40, 64] f32"),
            std::string::npos)
      << err;

  Json j = Json::parse(fakeInfoJson());
  j["args"].push_back({{"kind", "weight"},
                       {"name", "head.extra"},
                       {"dtype", "bf16"},
                       {"shape", {3}}});
  ModelInfo extra = ModelInfo::parse(j.dump());
  auto ok = Checkpoint::open(fakeCheckpoint());
  err = errorOf([&] { bindWeights(extra, *ok, copies); });
  EXPECT_NE(err.find("has no tensor 'head.extra' (the library expects [3] "
                     "bf16)"),
            std::string::npos)
      << err;
}

TEST(Npy, RoundTrip) {
  std::vector<float> v = {1.5f, -2.f, 3.25f, 0.f, 1e-30f, -0.f};
  std::string path = tempPath("a.npy");
  writeNpy(path, v.data(), {2, 3});
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 10u);
  size_t headerLen = uint8_t(bytes[8]) | size_t(uint8_t(bytes[9])) << 8;
  EXPECT_EQ((10 + headerLen) % 64, 0u);
  EXPECT_EQ(bytes.size(), 10 + headerLen + v.size() * 4);
  EXPECT_NE(bytes.find("'shape': (2, 3)"), std::string::npos);
  NpyArray a = readNpy(path);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.data, v);

  writeNpy(path, v.data(), {6});
  a = readNpy(path);
  EXPECT_EQ(a.shape, std::vector<int64_t>{6});
  std::remove(path.c_str());
  EXPECT_NE(errorOf([&] { readNpy(path); }).find("cannot open"),
            std::string::npos);
}

TEST(State, ZeroedCopyResetAndSet) {
  auto layout = std::make_shared<State::Layout>(
      State::Layout{{"att_shift", 0, {1, 4}, 4}, {"wkv", 0, {1, 1, 2, 2}, 4}});
  State s(layout);
  for (float x : s.attShift(0))
    EXPECT_EQ(x, 0.f);
  s.set("wkv", 0, {1, 2, 3, 4});
  EXPECT_EQ(s.wkv(0)[3], 4.f);
  State c = s;
  c.wkv(0)[0] = 9;
  EXPECT_EQ(s.wkv(0)[0], 1.f); // deep copy
  s = c;
  EXPECT_EQ(s.wkv(0)[0], 9.f);
  s.reset();
  EXPECT_EQ(s.wkv(0)[0], 0.f);
  EXPECT_EQ(c.wkv(0)[0], 9.f);
  EXPECT_NE(
      errorOf([&] { s.ffnShift(0); }).find("no tensor 'ffn_shift' for layer 0"),
      std::string::npos);
  EXPECT_NE(errorOf([&] { s.set("wkv", 0, {1}); }).find("holds 4 floats"),
            std::string::npos);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(s.wkv(0).data) % 64, 0u);
}

//===----------------------------------------------------------------------===//
// Model against FakeModel.so
//===----------------------------------------------------------------------===//

/// The toy model of FakeModel.cpp, computed here.
std::vector<float> expectedLogits(const Checkpoint &ckpt,
                                  const std::vector<int32_t> &tokens) {
  const Tensor &emb = ckpt.get("emb.weight");
  int64_t c = 64, v = 40;
  std::vector<float> att(c, 0.f), out;
  float count = 0;
  for (int32_t id : tokens) {
    for (int64_t j = 0; j < c; ++j)
      att[j] += emb.getAsFloat(id * c + j);
    count += 1;
    for (int64_t k = 0; k < v; ++k)
      out.push_back(att[k % c] + count);
  }
  return out;
}

class FakeModelTest : public ::testing::Test {
protected:
  void SetUp() override {
    model = Model::load(RWKV_FAKE_MODEL, fakeCheckpoint());
  }
  std::unique_ptr<Model> model;
};

TEST_F(FakeModelTest, LoadsAndDescribes) {
  EXPECT_EQ(model->vocabSize(), 40);
  EXPECT_EQ(model->numLayers(), 2);
  EXPECT_EQ(model->batch(), 1);
  EXPECT_EQ(model->config().n_embd, 64);
  EXPECT_EQ(model->embeddingBytes(), 40u * 64 * 2);
  auto ckpt = Checkpoint::open(fakeCheckpoint());
  size_t total = 0;
  for (const Tensor &t : ckpt->tensors())
    total += size_t(t.numel()) * dtypeSize(t.dtype);
  EXPECT_EQ(model->weightBytes(), total);
  State s = model->newState();
  EXPECT_EQ(s.numTensors(), 6u);
  EXPECT_EQ(s.wkv(1).size, 2u * 32 * 32);
}

// Weights copied to huge-page memory (the default) hold the checkpoint's
// bytes at 64-byte aligned addresses outside its mapping; `Mapped` keeps
// zero-copy views; both give the same logits.
TEST(ModelLoad, WeightMemory) {
  auto ckpt = Checkpoint::open(fakeCheckpoint());
  ModelOptions mapped;
  mapped.weightMemory = ModelOptions::WeightMemory::Mapped;
  auto a = Model::load(RWKV_FAKE_MODEL, fakeCheckpoint());
  auto b = Model::load(RWKV_FAKE_MODEL, fakeCheckpoint(), mapped);
  EXPECT_FALSE(b->weightsOnHugePages());
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  bool available =
      std::getline(thp, line) && line.find("[never]") == std::string::npos;
  EXPECT_EQ(a->weightsOnHugePages(), available);
  ASSERT_EQ(a->weights().size(), b->weights().size());
  for (size_t i = 0; i < a->weights().size(); ++i) {
    const BoundWeight &wa = a->weights()[i], &wb = b->weights()[i];
    ASSERT_EQ(wa.nbytes, wb.nbytes);
    EXPECT_EQ(std::memcmp(wa.data, wb.data, wa.nbytes), 0) << wa.name;
    if (a->weightsOnHugePages()) {
      EXPECT_NE(wa.data, wb.data) << wa.name;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(wa.data) % 64, 0u) << wa.name;
    }
  }
  std::vector<float> la, lb;
  State sa = a->newState(), sb = b->newState();
  a->forward({3, 0, 39, 7}, sa, la, true);
  b->forward({3, 0, 39, 7}, sb, lb, true);
  EXPECT_EQ(la, lb);
}

TEST_F(FakeModelTest, StepForwardAndForwardAllAgree) {
  auto ckpt = Checkpoint::open(fakeCheckpoint());
  std::vector<int32_t> toks = {3, 0, 39, 7, 7};
  std::vector<float> want = expectedLogits(*ckpt, toks);

  State a = model->newState();
  std::vector<float> all;
  model->forward(toks, a, all, true);
  EXPECT_EQ(all, want);

  // Token by token; the library clobbers its inputs, so this also checks
  // that state in/out never alias.
  State b = model->newState();
  std::vector<float> logits;
  for (size_t i = 0; i < toks.size(); ++i) {
    model->step({toks[i]}, b, logits);
    ASSERT_EQ(logits.size(), 40u);
    EXPECT_EQ(logits, std::vector<float>(want.begin() + 40 * i,
                                         want.begin() + 40 * (i + 1)));
  }
  State c = model->newState();
  model->forward({3, 0}, c, logits);
  model->step({39}, c, logits);
  model->forward({7, 7}, c, logits);
  EXPECT_EQ(logits, std::vector<float>(want.end() - 40, want.end()));
  for (size_t i = 0; i < a.numTensors(); ++i) {
    ConstFloatSpan x = a.tensor(i), y = b.tensor(i), z = c.tensor(i);
    EXPECT_EQ(std::vector<float>(x.begin(), x.end()),
              std::vector<float>(y.begin(), y.end()));
    EXPECT_EQ(std::vector<float>(x.begin(), x.end()),
              std::vector<float>(z.begin(), z.end()));
  }
  EXPECT_EQ(a.wkv(1)[0], 5.f);
}

TEST_F(FakeModelTest, CopiedStateReproducesLogits) {
  State s = model->newState();
  std::vector<float> first, second;
  model->forward({1, 2, 3}, s, first);
  State saved = s;
  model->step({4}, s, first);
  model->step({5}, s, second);
  s = saved;
  std::vector<float> again;
  model->step({4}, s, again);
  EXPECT_EQ(again, first);
}

TEST_F(FakeModelTest, RefusesBadTokens) {
  State s = model->newState();
  std::vector<float> logits;
  EXPECT_EQ(errorOf([&] {
              model->step({1, 40}, s, logits);
            }),
            "token id 40 at position 1 is out of range [0, 40)");
  EXPECT_EQ(errorOf([&] { model->forward({-3}, s, logits); }),
            "token id -3 at position 0 is out of range [0, 40)");
  EXPECT_EQ(errorOf([&] { model->step({}, s, logits); }), "empty token list");
  EXPECT_EQ(s.wkv(0)[0], 0.f); // nothing ran
  float small[10];
  int32_t tok = 1;
  EXPECT_NE(errorOf([&] {
              model->run("rwkv_step", &tok, 1, s, small, 10);
            }).find("holds 10 floats"),
            std::string::npos);
  EXPECT_NE(errorOf([&] {
              model->run("nope", &tok, 1, s, small, 10);
            }).find("no entry point 'nope'"),
            std::string::npos);
}

TEST_F(FakeModelTest, RefusesStateOfAnotherModel) {
  auto other = Model::load(RWKV_FAKE_MODEL, fakeCheckpoint());
  State s = other->newState();
  std::vector<float> logits;
  EXPECT_EQ(errorOf([&] { model->step({1}, s, logits); }),
            "the state was made by another model");
}

TEST(ModelLoad, RefusesMismatchedCheckpointNamingATensor) {
  SyntheticOptions wide = fakeModelOptions();
  wide.n_embd = 96;
  std::string path = writeCheckpoint("wide2.pth", wide);
  std::string err = errorOf([&] { Model::load(RWKV_FAKE_MODEL, path); });
  EXPECT_NE(err.find("n_embd is 96 in the checkpoint but 64 in the library"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("tensor 'emb.weight'"), std::string::npos) << err;
}

TEST(ModelLoad, ReportsLoadErrors) {
  EXPECT_NE(errorOf([] {
              Model::load("/nonexistent/x.so", "m.pth");
            }).find("cannot load library '/nonexistent/x.so'"),
            std::string::npos);
  EXPECT_NE(errorOf([] {
              Model::load(RWKV_FAKE_MODEL, "/nonexistent.pth");
            }).find("/nonexistent.pth"),
            std::string::npos);
}

// rwkv_in_place_states may only name the library's own states.
TEST(ModelLoad, RefusesUnknownInPlaceState) {
  std::string err = errorOf(
      [] { Model::load(RWKV_FAKE_MODEL_BAD_IN_PLACE, fakeCheckpoint()); });
  EXPECT_NE(err.find("rwkv_in_place_states names 'nope:3', which is not one "
                     "of its states"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find(RWKV_FAKE_MODEL_BAD_IN_PLACE), std::string::npos) << err;
}

TEST(ModelLoad, SetsThreads) {
  ModelOptions o;
  o.threads = 3;
  auto m = Model::load(RWKV_FAKE_MODEL, fakeCheckpoint(), o);
  EXPECT_EQ(m->threads(), 3);
  EXPECT_STREQ(getenv("OMP_NUM_THREADS"), "3");
  // Same handle: dlopen returns the already loaded library.
  void *h = dlopen(RWKV_FAKE_MODEL, RTLD_NOW | RTLD_LOCAL);
  auto get = reinterpret_cast<int (*)()>(dlsym(h, "rwkv_fake_num_threads"));
  ASSERT_NE(get, nullptr);
  EXPECT_EQ(get(), 3);
  dlclose(h);
}

TEST(CApi, RoundTripAndErrors) {
  rwkvrt_model *m = nullptr;
  EXPECT_EQ(rwkvrt_model_open("/nonexistent/x.so", "m.pth", 0, &m),
            RWKVRT_ERR_LOAD);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(rwkvrt_last_error()).find("cannot load library"),
            std::string::npos);
  EXPECT_EQ(rwkvrt_model_open(nullptr, "m.pth", 0, &m),
            RWKVRT_ERR_INVALID_ARGUMENT);

  ASSERT_EQ(rwkvrt_model_open(RWKV_FAKE_MODEL, fakeCheckpoint().c_str(), 1, &m),
            RWKVRT_OK)
      << rwkvrt_last_error();
  EXPECT_STREQ(rwkvrt_last_error(), "");
  rwkvrt_config cfg;
  ASSERT_EQ(rwkvrt_model_config(m, &cfg), RWKVRT_OK);
  EXPECT_EQ(cfg.vocab_size, 40);
  EXPECT_EQ(cfg.n_layer, 2);
  EXPECT_EQ(cfg.batch, 1);
  const char *info = nullptr;
  ASSERT_EQ(rwkvrt_model_info_json(m, &info), RWKVRT_OK);
  EXPECT_NE(std::string(info).find("\"abi_version\""), std::string::npos);

  rwkvrt_state *s = nullptr, *saved = nullptr;
  ASSERT_EQ(rwkvrt_state_new(m, &s), RWKVRT_OK);
  int32_t toks[] = {1, 2, 3};
  std::vector<float> all(3 * 40), last(40), again(40);
  ASSERT_EQ(rwkvrt_forward(m, s, toks, 3, 1, all.data(), all.size()),
            RWKVRT_OK);
  ASSERT_EQ(rwkvrt_state_copy(s, &saved), RWKVRT_OK);
  ASSERT_EQ(rwkvrt_step(m, s, toks, 1, last.data(), last.size()), RWKVRT_OK);
  ASSERT_EQ(rwkvrt_state_assign(s, saved), RWKVRT_OK);
  ASSERT_EQ(rwkvrt_step(m, s, toks, 1, again.data(), again.size()), RWKVRT_OK);
  EXPECT_EQ(last, again);
  float *data = nullptr;
  size_t n = 0;
  ASSERT_EQ(rwkvrt_state_tensor(s, "wkv", 1, &data, &n), RWKVRT_OK);
  EXPECT_EQ(n, 2u * 32 * 32);
  EXPECT_EQ(data[0], 4.f);
  EXPECT_EQ(rwkvrt_state_tensor(s, "wkv", 7, &data, &n),
            RWKVRT_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(rwkvrt_state_reset(s), RWKVRT_OK);
  ASSERT_EQ(rwkvrt_state_tensor(s, "wkv", 1, &data, &n), RWKVRT_OK);
  EXPECT_EQ(data[0], 0.f);

  int32_t bad[] = {1, 99};
  EXPECT_EQ(rwkvrt_step(m, s, bad, 2, last.data(), last.size()),
            RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(rwkvrt_last_error(),
               "token id 99 at position 1 is out of range [0, 40)");
  EXPECT_EQ(rwkvrt_forward(m, s, toks, 3, 1, all.data(), 10),
            RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rwkvrt_step(m, nullptr, toks, 1, last.data(), 40),
            RWKVRT_ERR_INVALID_ARGUMENT);

  EXPECT_EQ(rwkvrt_state_free(saved), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_state_free(s), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_state_free(nullptr), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_model_close(nullptr), RWKVRT_OK);
}

// The batch C API over the (batch-1) fake model: a slot steps like a plain
// state, a full batch and short buffers are refused without stepping.
TEST(CApi, BatchSlots) {
  rwkvrt_model *m = nullptr;
  ASSERT_EQ(rwkvrt_model_open(RWKV_FAKE_MODEL, fakeCheckpoint().c_str(), 1, &m),
            RWKVRT_OK)
      << rwkvrt_last_error();
  rwkvrt_batch *b = nullptr;
  ASSERT_EQ(rwkvrt_batch_open(m, &b), RWKVRT_OK) << rwkvrt_last_error();
  int64_t slot = -1;
  ASSERT_EQ(rwkvrt_batch_add(b, nullptr, &slot), RWKVRT_OK);
  EXPECT_EQ(slot, 0);
  int64_t other = -1;
  EXPECT_EQ(rwkvrt_batch_add(b, nullptr, &other), RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rwkvrt_last_error()).find("all 1 slots"),
            std::string::npos)
      << rwkvrt_last_error();
  rwkvrt_state *s = nullptr;
  ASSERT_EQ(rwkvrt_state_new(m, &s), RWKVRT_OK);
  std::vector<float> viaBatch(40), viaState(40), small(10);
  int32_t toks[] = {3, 7, 39};
  for (int32_t t : toks) {
    ASSERT_EQ(rwkvrt_batch_step(b, &slot, &t, 1, viaBatch.data(), 40),
              RWKVRT_OK)
        << rwkvrt_last_error();
    ASSERT_EQ(rwkvrt_step(m, s, &t, 1, viaState.data(), 40), RWKVRT_OK);
    EXPECT_EQ(viaBatch, viaState);
  }
  // Too small a buffer: refused before the state moves on.
  int32_t t = 5;
  EXPECT_EQ(rwkvrt_batch_step(b, &slot, &t, 1, small.data(), small.size()),
            RWKVRT_ERR_INVALID_ARGUMENT);
  rwkvrt_state *out = nullptr;
  ASSERT_EQ(rwkvrt_state_new(m, &out), RWKVRT_OK);
  ASSERT_EQ(rwkvrt_batch_export_state(b, slot, out), RWKVRT_OK);
  float *a = nullptr, *e = nullptr;
  size_t na = 0, ne = 0;
  ASSERT_EQ(rwkvrt_state_tensor(s, "wkv", 1, &a, &na), RWKVRT_OK);
  ASSERT_EQ(rwkvrt_state_tensor(out, "wkv", 1, &e, &ne), RWKVRT_OK);
  ASSERT_EQ(na, ne);
  EXPECT_EQ(std::vector<float>(a, a + na), std::vector<float>(e, e + ne));
  ASSERT_EQ(rwkvrt_batch_remove(b, slot), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_batch_step(b, &slot, &t, 1, viaBatch.data(), 40),
            RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(rwkvrt_last_error(), "step: slot 0 is not active");
  // Re-added from a state: continues that sequence.
  ASSERT_EQ(rwkvrt_batch_add(b, out, &slot), RWKVRT_OK);
  ASSERT_EQ(rwkvrt_batch_step(b, &slot, &t, 1, viaBatch.data(), 40), RWKVRT_OK);
  ASSERT_EQ(rwkvrt_step(m, s, &t, 1, viaState.data(), 40), RWKVRT_OK);
  EXPECT_EQ(viaBatch, viaState);
  EXPECT_EQ(rwkvrt_batch_close(b), RWKVRT_OK);
  rwkvrt_state_free(out);
  rwkvrt_state_free(s);
  rwkvrt_model_close(m);
}

TEST(CApi, TrainOpenErrors) {
  rwkvrt_train *t = nullptr;
  EXPECT_EQ(rwkvrt_train_open("/nonexistent/train.so", 0, &t), RWKVRT_ERR_LOAD);
  EXPECT_EQ(t, nullptr);
  std::string err = rwkvrt_last_error();
  EXPECT_NE(err.find("cannot load library"), std::string::npos) << err;
  EXPECT_NE(err.find("/nonexistent/train.so"), std::string::npos) << err;
  EXPECT_EQ(rwkvrt_train_open(nullptr, 0, &t), RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(rwkvrt_last_error(), "rwkvrt_train_open: library_path is null");
  EXPECT_EQ(rwkvrt_train_open(RWKV_FAKE_TRAIN_MODEL, 0, nullptr),
            RWKVRT_ERR_INVALID_ARGUMENT);
  // An inference library is refused with a hint.
  EXPECT_EQ(rwkvrt_train_open(RWKV_FAKE_MODEL, 0, &t), RWKVRT_ERR_LOAD);
  err = rwkvrt_last_error();
  EXPECT_NE(err.find("is not a training library"), std::string::npos) << err;
  EXPECT_NE(err.find(RWKV_FAKE_MODEL), std::string::npos) << err;
  EXPECT_EQ(t, nullptr);

  // Null handles and outputs.
  rwkvrt_train_desc d;
  const char *s = nullptr;
  EXPECT_EQ(rwkvrt_train_config(nullptr, &d), RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rwkvrt_train_info_json(nullptr, &s), RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(
      rwkvrt_train_weight(nullptr, 0, &s, nullptr, nullptr, nullptr, nullptr),
      RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rwkvrt_train_state_shape(nullptr, 0, nullptr, nullptr, nullptr),
            RWKVRT_ERR_INVALID_ARGUMENT);
  float loss = 0;
  int32_t tok[1] = {0};
  EXPECT_EQ(rwkvrt_train_step(nullptr, tok, tok, nullptr, nullptr, nullptr,
                              nullptr, &loss),
            RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rwkvrt_train_loss(nullptr, tok, tok, nullptr, nullptr, &loss),
            RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rwkvrt_train_close(nullptr), RWKVRT_OK);
}

/// FakeTrainModel.cpp: B = 2, T = 4, V = 8, C = 3, emb bf16, head f32,
/// loss = mean over counted positions of emb[in] . head[tgt] + |state|^2 / 2.
TEST(CApi, TrainRoundTrip) {
  rwkvrt_train *t = nullptr;
  ASSERT_EQ(rwkvrt_train_open(RWKV_FAKE_TRAIN_MODEL, 1, &t), RWKVRT_OK)
      << rwkvrt_last_error();
  rwkvrt_train_desc d;
  ASSERT_EQ(rwkvrt_train_config(t, &d), RWKVRT_OK);
  EXPECT_EQ(d.batch, 2);
  EXPECT_EQ(d.context, 4);
  EXPECT_EQ(d.vocab_size, 8);
  EXPECT_EQ(d.n_layer, 1);
  EXPECT_EQ(d.n_weights, 2);
  EXPECT_EQ(d.ignore_index, -100);
  const char *json = nullptr;
  ASSERT_EQ(rwkvrt_train_info_json(t, &json), RWKVRT_OK);
  EXPECT_NE(std::string(json).find("rwkv_train_step"), std::string::npos);

  const char *name = nullptr, *dtype = nullptr;
  const int64_t *shape = nullptr;
  size_t rank = 0, numel = 0;
  ASSERT_EQ(rwkvrt_train_weight(t, 0, &name, &dtype, &shape, &rank, &numel),
            RWKVRT_OK);
  EXPECT_STREQ(name, "emb.weight");
  EXPECT_STREQ(dtype, "bf16");
  ASSERT_EQ(rank, 2u);
  EXPECT_EQ(shape[0], 8);
  EXPECT_EQ(shape[1], 3);
  EXPECT_EQ(numel, 24u);
  ASSERT_EQ(rwkvrt_train_weight(t, 1, &name, &dtype, nullptr, nullptr, nullptr),
            RWKVRT_OK);
  EXPECT_STREQ(name, "head.weight");
  EXPECT_STREQ(dtype, "f32");
  EXPECT_EQ(
      rwkvrt_train_weight(t, 2, &name, nullptr, nullptr, nullptr, nullptr),
      RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(rwkvrt_last_error(), "weight index 2 is outside [0, 2)");
  ASSERT_EQ(rwkvrt_train_state_shape(t, 0, &shape, &rank, &numel), RWKVRT_OK);
  ASSERT_EQ(rank, 4u);
  EXPECT_EQ(shape[0], 2);
  EXPECT_EQ(numel, 8u);
  EXPECT_EQ(rwkvrt_train_state_shape(t, 1, &shape, &rank, &numel),
            RWKVRT_ERR_INVALID_ARGUMENT);

  // emb = 1 everywhere (bf16 0x3f80), head[v][c] = v.
  std::vector<uint16_t> emb(24, 0x3f80);
  std::vector<float> head(24), gEmb(24, -1), gHead(24, -1), gState(8, -1);
  for (int v = 0; v < 8; ++v)
    for (int c = 0; c < 3; ++c)
      head[v * 3 + c] = float(v);
  int32_t in[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  int32_t tgt[8] = {1, 2, 3, 4, 5, 6, 7, -100};
  const void *weights[2] = {emb.data(), head.data()};
  float *grads[2] = {gEmb.data(), gHead.data()};
  float loss = 0;
  // Zero states: loss = 3 * (1 + ... + 7) / 7 = 12.
  ASSERT_EQ(
      rwkvrt_train_step(t, in, tgt, weights, nullptr, grads, nullptr, &loss),
      RWKVRT_OK)
      << rwkvrt_last_error();
  EXPECT_FLOAT_EQ(loss, 12.0f);
  EXPECT_FLOAT_EQ(gEmb[3 * 2], 3.0f / 7); // in 2 -> target 3
  EXPECT_FLOAT_EQ(gEmb[3 * 7], 0.0f);     // ignored position
  EXPECT_FLOAT_EQ(gHead[3 * 1], 1.0f / 7);
  EXPECT_FLOAT_EQ(gHead[0], 0.0f);
  // With a state and its gradient.
  std::vector<float> s0(8, 2.0f);
  const float *states[1] = {s0.data()};
  float *stateGrads[1] = {gState.data()};
  ASSERT_EQ(
      rwkvrt_train_step(t, in, tgt, weights, states, grads, stateGrads, &loss),
      RWKVRT_OK);
  EXPECT_FLOAT_EQ(loss, 12.0f + 16.0f);
  EXPECT_FLOAT_EQ(gState[5], 2.0f);
  float fwd = 0;
  ASSERT_EQ(rwkvrt_train_loss(t, in, tgt, weights, states, &fwd), RWKVRT_OK);
  EXPECT_FLOAT_EQ(fwd, loss);

  // Bad ids are invalid arguments naming the position.
  in[5] = 8;
  EXPECT_EQ(
      rwkvrt_train_step(t, in, tgt, weights, nullptr, grads, nullptr, &loss),
      RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rwkvrt_last_error()).find("row 1, position 1"),
            std::string::npos)
      << rwkvrt_last_error();
  in[5] = 5;
  EXPECT_EQ(
      rwkvrt_train_step(t, in, tgt, weights, nullptr, nullptr, nullptr, &loss),
      RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rwkvrt_train_close(t), RWKVRT_OK);
}

} // namespace
