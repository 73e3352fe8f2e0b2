//===- GenerateTest.cpp - State files, generation, chunked streaming ------===//
//
//   RWKVGenerateTests --golden-dir=<shared>/golden --lib-dir=<dir with
//                     tiny.so, tiny2.so> --vocab=<World vocab> [gtest flags]
//
// Uses the golden libraries that tools/rwkv-run's ctest fixture compiles
// (rwkv_golden_libs); nothing is compiled here.
//
//===----------------------------------------------------------------------===//

#include "tools/rwkv-run/Generate.h"
#include "runtime/core/StateFile.h"

#include "unittests/runtime/GoldenTestUtil.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <unistd.h>

using namespace rwkv;

namespace {

std::string goldenDir, libDir, vocabPath;

std::unique_ptr<Model> loadGolden(const std::string &name) {
  return Model::load(libDir + "/" + name + ".so",
                     goldenDir + "/" + name + "/model.pth");
}

std::string tempPath(const std::string &stem) {
  return testing::TempDir() + "rwkv_generate_" + std::to_string(getpid()) +
         "_" + stem;
}

std::vector<int32_t> randomTokens(size_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> out(n);
  for (int32_t &t : out)
    t = dist(rng);
  return out;
}

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

void writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

bool sameState(const State &a, const State &b) {
  if (a.numTensors() != b.numTensors())
    return false;
  for (size_t i = 0; i < a.numTensors(); ++i) {
    ConstFloatSpan x = a.tensor(i), y = b.tensor(i);
    if (x.size != y.size ||
        std::memcmp(x.data, y.data, x.size * sizeof(float)) != 0)
      return false;
  }
  return true;
}

/// Max |a-b| / max(1, |b|) over every state tensor.
double stateDiff(const State &a, const State &b) {
  double m = 0;
  for (size_t i = 0; i < a.numTensors(); ++i) {
    ConstFloatSpan x = a.tensor(i), y = b.tensor(i);
    for (size_t j = 0; j < x.size; ++j)
      m = std::max(m, std::fabs(double(x[j]) - y[j]) /
                          std::max(1.0, std::fabs(double(y[j]))));
  }
  return m;
}

class GenerateTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    tiny = loadGolden("tiny").release();
    // The golden tiny model has 512 tokens: keep the World ids 1..511
    // (the first 511 lines; ids 1..256 are the single bytes).
    std::ifstream in(vocabPath);
    std::string text, line;
    for (int i = 0; i < 511 && std::getline(in, line); ++i)
      text += line + "\n";
    tokenizer = WorldTokenizer::fromString(text, vocabPath).release();
  }
  static void TearDownTestSuite() {
    delete tiny;
    delete tokenizer;
  }
  /// A state after some tokens, so that every tensor is non-zero.
  State warmState() {
    State s = tiny->newState();
    std::vector<float> logits;
    tiny->step(randomTokens(20, int32_t(tiny->vocabSize()), 7), s, logits);
    return s;
  }
  static Model *tiny;
  static WorldTokenizer *tokenizer;
};
Model *GenerateTest::tiny = nullptr;
WorldTokenizer *GenerateTest::tokenizer = nullptr;

TEST_F(GenerateTest, StateFileRoundTrip) {
  State s = warmState();
  std::string path = tempPath("roundtrip.state");
  saveStateFile(path, s, fingerprintOf(*tiny));
  State loaded = tiny->newState();
  loadStateFile(path, loaded, fingerprintOf(*tiny));
  EXPECT_TRUE(sameState(s, loaded));
  std::remove(path.c_str());
}

TEST_F(GenerateTest, StateFileFromAnotherModelIsRefused) {
  auto tiny2 = loadGolden("tiny2");
  std::string path = tempPath("tiny.state");
  saveStateFile(path, warmState(), fingerprintOf(*tiny));
  State other = tiny2->newState();
  try {
    loadStateFile(path, other, fingerprintOf(*tiny2));
    FAIL() << "a tiny state loaded into tiny2";
  } catch (const StateFileError &e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("another model"), std::string::npos) << msg;
    // Both models are described.
    EXPECT_NE(msg.find("n_embd=128"), std::string::npos) << msg;
    EXPECT_NE(msg.find("n_embd=192"), std::string::npos) << msg;
  }
  EXPECT_TRUE(sameState(other, tiny2->newState())) << "state was modified";
  std::remove(path.c_str());
}

TEST_F(GenerateTest, CorruptedStateFileIsRefused) {
  State s = warmState();
  std::string path = tempPath("corrupt.state");
  saveStateFile(path, s, fingerprintOf(*tiny));
  std::string good = readFile(path);
  auto expectRefused = [&](const std::string &bytes, const char *what,
                           const char *needle) {
    writeFile(path, bytes);
    State target = tiny->newState();
    try {
      loadStateFile(path, target, fingerprintOf(*tiny));
      ADD_FAILURE() << what << ": loaded silently";
    } catch (const StateFileError &e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
          << what << ": " << e.what();
    }
    EXPECT_TRUE(sameState(target, tiny->newState())) << what;
  };
  // A flipped byte anywhere: in the payload, in the fingerprint, in the
  // checksum itself.
  for (size_t offset : {good.size() / 2, size_t(16), good.size() - 1}) {
    std::string bad = good;
    bad[offset] ^= 0x01;
    expectRefused(bad, "flipped byte", "corrupted");
  }
  expectRefused(good.substr(0, good.size() - 100), "truncated payload",
                "truncated");
  expectRefused(good.substr(0, 30), "truncated header", "truncated");
  expectRefused(good + "x", "trailing byte", "corrupted");
  expectRefused("", "empty file", "not an rwkv state file");
  std::string future = good;
  future[8] = 99;
  expectRefused(future, "future version", "version 99");
  std::remove(path.c_str());
  State target = tiny->newState();
  EXPECT_THROW(loadStateFile(path, target, fingerprintOf(*tiny)),
               StateFileError);
}

TEST_F(GenerateTest, GenerationIsDeterministicWithASeed) {
  auto run = [&](uint64_t seed) {
    State s = tiny->newState();
    std::vector<float> logits;
    prefill(*tiny, tokenizer->encode("Hello"), s, logits, 256);
    Sampler sampler(SamplerOptions{}, seed);
    return decode(*tiny, *tokenizer, sampler, s, logits, 40).tokens;
  };
  std::vector<int32_t> a = run(42), b = run(42);
  EXPECT_EQ(a.size(), 40u);
  EXPECT_EQ(a, b);
}

TEST_F(GenerateTest, SavedStateContinuesInAFreshModel) {
  // Uninterrupted: prompt, 10 sampled tokens, then 10 more.
  std::string path = tempPath("continue.state");
  std::vector<float> logits;
  State s = tiny->newState();
  prefill(*tiny, tokenizer->encode("The state"), s, logits, 4);
  Sampler sampler(SamplerOptions{}, 3);
  decode(*tiny, *tokenizer, sampler, s, logits, 10);
  saveStateFile(path, s, fingerprintOf(*tiny));
  std::vector<float> savedLogits = logits;
  std::vector<std::vector<float>> seenA, seenB;
  Sampler a(SamplerOptions{}, 9);
  auto ra = decode(*tiny, *tokenizer, a, s, logits, 10, {},
                   [&](const std::vector<float> &l) { seenA.push_back(l); });

  // Interrupted: a separately loaded model instance reads the file.
  auto fresh = loadGolden("tiny");
  State t = fresh->newState();
  loadStateFile(path, t, fingerprintOf(*fresh));
  Sampler b(SamplerOptions{}, 9);
  std::vector<float> logitsB = savedLogits;
  auto rb = decode(*fresh, *tokenizer, b, t, logitsB, 10, {},
                   [&](const std::vector<float> &l) { seenB.push_back(l); });
  EXPECT_EQ(ra.tokens, rb.tokens);
  ASSERT_EQ(seenA.size(), seenB.size());
  // seenX[0] are the saved logits; later ones come from the loaded state.
  for (size_t i = 0; i < seenA.size(); ++i)
    EXPECT_EQ(seenA[i], seenB[i]) << "logits differ at step " << i;
  EXPECT_TRUE(sameState(s, t));
  std::remove(path.c_str());
}

TEST_F(GenerateTest, ChunkedStreamingEqualsOnePass) {
  std::vector<int32_t> tokens =
      randomTokens(300, int32_t(tiny->vocabSize()), 11);
  State one = tiny->newState();
  std::vector<float> onePass;
  tiny->forward(tokens, one, onePass);
  for (size_t chunk : {1, 16, 37, 64, 256}) {
    State s = tiny->newState();
    std::vector<float> logits;
    size_t calls = 0;
    prefill(*tiny, tokens, s, logits, chunk, [&](size_t, size_t) { ++calls; });
    EXPECT_EQ(calls, (tokens.size() + chunk - 1) / chunk);
    ASSERT_EQ(logits.size(), onePass.size());
    double m = 0;
    for (size_t i = 0; i < logits.size(); ++i)
      m = std::max(m, std::fabs(double(logits[i]) - onePass[i]) /
                          std::max(1.0, std::fabs(double(onePass[i]))));
    EXPECT_LE(m, 1e-5) << "logits, chunk " << chunk;
    EXPECT_LE(stateDiff(s, one), 1e-5) << "state, chunk " << chunk;
  }
}

TEST_F(GenerateTest, StopStringCutsTheShownText) {
  // Greedy on a byte-level model: find what it says, then stop on a piece
  // of it and check that the text ends right before the stop string.
  State s0 = tiny->newState();
  std::vector<float> l0;
  prefill(*tiny, tokenizer->encode("ab"), s0, l0, 256);
  SamplerOptions greedy;
  greedy.temperature = 0;
  greedy.alphaPresence = greedy.alphaFrequency = 0;
  State s = s0;
  std::vector<float> l = l0;
  Sampler sampler(greedy, 0);
  std::string full = decode(*tiny, *tokenizer, sampler, s, l, 12).text;
  ASSERT_GE(full.size(), 6u);
  greedy.stopStrings = {full.substr(3, 2)};
  size_t cut = full.find(greedy.stopStrings[0]);
  s = s0;
  l = l0;
  Sampler stopping(greedy, 0);
  std::string streamed;
  DecodeResult r =
      decode(*tiny, *tokenizer, stopping, s, l, 12,
             [&](std::string_view piece) { streamed.append(piece); });
  EXPECT_EQ(r.reason, DecodeResult::Stop::StopString);
  EXPECT_EQ(r.text, full.substr(0, cut));
  EXPECT_EQ(streamed, r.text);
}

TEST_F(GenerateTest, TimeStateInitialState) {
  State layoutOnly = tiny->newState();
  std::vector<OwnedTensor> tensors;
  std::vector<std::vector<float>> values;
  for (size_t i = 0; i < layoutOnly.numTensors(); ++i) {
    const State::TensorInfo &info = layoutOnly.info(i);
    if (info.name != "wkv")
      continue;
    int64_t h = info.shape[1], n = info.shape[2];
    OwnedTensor t;
    t.name = "blocks." + std::to_string(info.layer) + ".att.time_state";
    t.dtype = DType::F32;
    t.shape = {h, n, n};
    std::vector<float> v(size_t(h * n * n));
    for (size_t j = 0; j < v.size(); ++j)
      v[j] = float(j % 1000) * 0.001f + float(info.layer);
    t.bytes.resize(v.size() * sizeof(float));
    std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
    tensors.push_back(std::move(t));
    values.push_back(std::move(v));
  }
  std::string path = tempPath("time_state.pth");
  writePth(path, tensors);
  State s = tiny->newState();
  loadTimeState(path, s);
  EXPECT_EQ(std::vector<float>(s.wkv(1).begin(), s.wkv(1).end()), values[1]);
  EXPECT_EQ(s.attShift(0)[0], 0.0f);
  // Transposed: element [h][r][c] comes from file [h][c][r].
  loadTimeState(path, s, /*transpose=*/true);
  int64_t n = s.info(1).shape[3];
  EXPECT_EQ(s.wkv(0)[size_t(1 * n + 2)], values[0][size_t(2 * n + 1)]);
  // A layer missing is an error naming the tensor.
  tensors.pop_back();
  writePth(path, tensors);
  try {
    loadTimeState(path, s);
    FAIL() << "loaded a time_state file missing a layer";
  } catch (const StateFileError &e) {
    EXPECT_NE(std::string(e.what()).find("blocks.1.att.time_state"),
              std::string::npos)
        << e.what();
  }
  std::remove(path.c_str());
}

} // namespace

int main(int argc, char **argv) {
  if (!rwkv::golden::parseTestFlags(argc, argv, "RWKVGenerateTests",
                                    {{"golden-dir", &goldenDir},
                                     {"lib-dir", &libDir},
                                     {"vocab", &vocabPath}}))
    return 2;
  return RUN_ALL_TESTS();
}
