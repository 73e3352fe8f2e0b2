//===- ChunkLengthTest.cpp - chunked WKV vs the sequential recurrence -----===//
//
//   RWKVChunkLengthTests --golden-dir=<shared>/golden --lib-dir=<dir with
//                        tiny-c<L>.so, tiny2-c<L>.so> [gtest flags]
//
// GPT mode (rwkv_forward_all) lowers rwkv.wkv in its chunk-parallel form
// with the chunk length given to rwkv-compile; RNN mode (rwkv_step) keeps the
// sequential recurrence. For several chunk lengths and prompt lengths that
// are not multiples of them (T < L, T = 1, partial last chunks), every
// position's logits and the final state must agree with RNN mode, and the
// logits with the float64 reference, within the golden tolerance (1e-4).
// Registered by tools/rwkv-run/CMakeLists.txt after a fixture compiles the
// libraries.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/Runtime.h"

#include "unittests/runtime/GoldenTestUtil.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

using namespace rwkv;

namespace {

std::string goldenDir, libDir;
constexpr float kTol = 1e-4f;

struct Case {
  const char *model, *caseName;
  int chunk;
};
const Case kCases[] = {{"tiny", "seq128", 1},  {"tiny", "seq128", 3},
                       {"tiny", "seq128", 16}, {"tiny", "seq128", 64},
                       {"tiny2", "seq200", 5}, {"tiny2", "seq200", 64}};
void PrintTo(const Case &c, std::ostream *os) {
  *os << c.model << " chunk " << c.chunk;
}

using rwkv::golden::maxAbsDiff;

/// Largest difference over all tensors of two states.
float stateDiff(const State &a, const State &b, std::string *worst) {
  float m = 0;
  for (size_t i = 0; i < a.numTensors(); ++i) {
    float d = maxAbsDiff(a.tensor(i).data, b.tensor(i).data, a.tensor(i).size);
    if (!(d <= m)) {
      m = d;
      *worst = a.info(i).name + ":" + std::to_string(a.info(i).layer);
    }
  }
  return m;
}

class ChunkLengthTest : public ::testing::TestWithParam<Case> {
protected:
  void SetUp() override {
    const Case &c = GetParam();
    std::string dir = goldenDir + "/" + c.model;
    model = Model::load(libDir + "/" + c.model + "-c" +
                            std::to_string(c.chunk) + ".so",
                        dir + "/model.pth");
    std::ifstream in(dir + "/" + c.caseName + "/tokens.json");
    ASSERT_TRUE(in);
    tokens = nlohmann::json::parse(in).get<std::vector<int32_t>>();
    ref = readNpy(dir + "/" + c.caseName + "/logits_ref64.npy");
    vocab = size_t(model->vocabSize());
    ASSERT_EQ(ref.data.size(), tokens.size() * vocab);

    // Prompt lengths around the chunk boundaries, plus the whole case.
    int64_t lc = c.chunk, n = int64_t(tokens.size());
    for (int64_t len : {int64_t(1), int64_t(2), lc - 1, lc + 1, 2 * lc + 1,
                        3 * lc - 1, int64_t(37), n})
      if (len >= 1 && len <= n)
        lengths.push_back(len);
    std::sort(lengths.begin(), lengths.end());
    lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());

    // RNN mode token by token: logits of every position, and the state
    // after each prompt length.
    State s = model->newState();
    std::vector<float> logits;
    for (int64_t t = 0; t < n; ++t) {
      model->step({tokens[t]}, s, logits);
      rnn.insert(rnn.end(), logits.begin(), logits.end());
      if (std::binary_search(lengths.begin(), lengths.end(), t + 1))
        rnnStates.emplace(t + 1, s);
    }
  }

  std::unique_ptr<Model> model;
  std::vector<int32_t> tokens;
  NpyArray ref;
  size_t vocab = 0;
  std::vector<int64_t> lengths;
  std::vector<float> rnn;
  std::map<int64_t, State> rnnStates;
};

TEST_P(ChunkLengthTest, GptEqualsRnnForEveryPromptLength) {
  float worstLogit = 0, worstState = 0;
  for (int64_t len : lengths) {
    State g = model->newState();
    std::vector<float> gpt;
    model->forward(std::vector<int32_t>(tokens.begin(), tokens.begin() + len),
                   g, gpt, /*allLogits=*/true);
    ASSERT_EQ(gpt.size(), size_t(len) * vocab);
    float eRnn = maxAbsDiff(gpt.data(), rnn.data(), gpt.size());
    float eRef = maxAbsDiff(gpt.data(), ref.data.data(), gpt.size());
    std::string where;
    float eState = stateDiff(g, rnnStates.at(len), &where);
    EXPECT_LT(eRnn, kTol) << "T = " << len << ": logits vs rnn";
    EXPECT_LT(eRef, kTol) << "T = " << len << ": logits vs ref64";
    EXPECT_LT(eState, kTol) << "T = " << len << ": state " << where;
    worstLogit = std::max({worstLogit, eRnn, eRef});
    worstState = std::max(worstState, eState);
  }
  std::printf("[ %s chunk %d ] %zu prompt lengths: max logit error %.3g, "
              "max state difference %.3g\n",
              GetParam().model, GetParam().chunk, lengths.size(), worstLogit,
              worstState);
}

TEST_P(ChunkLengthTest, ChunkedFromCarriedState) {
  // A prompt in two GPT calls: the second starts from a non-zero state and
  // with its chunks offset from the first call's.
  int64_t n = int64_t(tokens.size()), split = 7;
  State g = model->newState();
  std::vector<float> first, second;
  model->forward(std::vector<int32_t>(tokens.begin(), tokens.begin() + split),
                 g, first, true);
  model->forward(std::vector<int32_t>(tokens.begin() + split, tokens.end()), g,
                 second, true);
  ASSERT_EQ(second.size(), size_t(n - split) * vocab);
  EXPECT_LT(
      maxAbsDiff(second.data(), rnn.data() + split * vocab, second.size()),
      kTol);
  std::string where;
  EXPECT_LT(stateDiff(g, rnnStates.at(n), &where), kTol) << where;
}

INSTANTIATE_TEST_SUITE_P(ChunkLengths, ChunkLengthTest,
                         ::testing::ValuesIn(kCases), [](const auto &info) {
                           return std::string(info.param.model) + "_c" +
                                  std::to_string(info.param.chunk);
                         });

} // namespace

int main(int argc, char **argv) {
  if (!rwkv::golden::parseTestFlags(
          argc, argv, "RWKVChunkLengthTests",
          {{"golden-dir", &goldenDir}, {"lib-dir", &libDir}}))
    return 2;
  return RUN_ALL_TESTS();
}
