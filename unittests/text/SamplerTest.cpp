//===- SamplerTest.cpp - PIPELINE_ARGS sampler tests ----------------------===//

#include "runtime/text/Sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>

using namespace rwkv;

namespace {

SamplerOptions noPenalty() {
  SamplerOptions o;
  o.alphaPresence = 0;
  o.alphaFrequency = 0;
  return o;
}

std::vector<float> pseudoRandomLogits(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> l(n);
  for (float &x : l)
    x = static_cast<float>(r.uniform() * 8.0 - 4.0);
  return l;
}

int32_t argmax(const std::vector<float> &l) {
  return static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
}

TEST(Rng, PinnedOutputAndRange) {
  // xoshiro256** seeded by splitmix64(0); pinned so seeds reproduce
  // everywhere.
  Rng r(0);
  EXPECT_EQ(r.next(), 0x99ec5f36cb75f2b4ull);
  EXPECT_EQ(r.next(), 0xbf6e1f784956452aull);
  EXPECT_EQ(r.next(), 0x1a5f849d4933e6e0ull);
  Rng a(7), b(7), c(8);
  bool differs = false;
  for (int i = 0; i < 1000; ++i) {
    double u = a.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    EXPECT_EQ(u, b.uniform());
    differs |= u != c.uniform();
  }
  EXPECT_TRUE(differs);
}

TEST(Sampler, DefaultsMatchPipelineArgs) {
  SamplerOptions o;
  EXPECT_EQ(o.temperature, 1.0);
  EXPECT_EQ(o.topP, 0.85);
  EXPECT_EQ(o.topK, 0);
  EXPECT_EQ(o.alphaFrequency, 0.2);
  EXPECT_EQ(o.alphaPresence, 0.2);
  EXPECT_EQ(o.alphaDecay, 0.996);
}

TEST(Sampler, GreedyTopK1AndTinyTopPPickArgmax) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::vector<float> l = pseudoRandomLogits(1000, seed);
    int32_t best = argmax(l);
    SamplerOptions greedy = noPenalty();
    greedy.temperature = 0;
    SamplerOptions topK = noPenalty();
    topK.topP = 1.0;
    topK.topK = 1;
    SamplerOptions topP = noPenalty();
    topP.topP = 1e-6;
    topP.temperature = 1.5;
    Sampler a(greedy, seed), b(topK, seed), c(topP, seed);
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(a.sample(l.data(), l.size()), best);
      EXPECT_EQ(b.sample(l.data(), l.size()), best);
      EXPECT_EQ(c.sample(l.data(), l.size()), best);
    }
  }
}

TEST(Sampler, GreedyKeepsTies) {
  SamplerOptions o = noPenalty();
  o.temperature = 0;
  Sampler s(o, 1);
  std::vector<float> l = {1.0f, 3.0f, 3.0f, 0.0f};
  std::set<int32_t> seen;
  for (int i = 0; i < 200; ++i)
    seen.insert(s.sample(l.data(), l.size()));
  EXPECT_EQ(seen, (std::set<int32_t>{1, 2}));
}

TEST(Sampler, NucleusCutoffKeepsTies) {
  // Probabilities 0.4, 0.3, 0.3: top_p 0.5 reaches the cutoff at 0.3, and
  // both tokens tied at 0.3 survive.
  std::vector<float> l = {std::log(0.4f), std::log(0.3f), std::log(0.3f)};
  SamplerOptions o = noPenalty();
  o.topP = 0.5;
  Sampler s(o, 3);
  std::set<int32_t> seen;
  for (int i = 0; i < 300; ++i)
    seen.insert(s.sample(l.data(), l.size()));
  EXPECT_EQ(seen, (std::set<int32_t>{0, 1, 2}));

  // Probabilities 0.5, 0.3, 0.2: top_p 0.7 keeps tokens 0 and 1, in the
  // ratio 5:3.
  l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  o.topP = 0.7;
  Sampler t(o, 4);
  int counts[3] = {0, 0, 0};
  const int draws = 20000;
  for (int i = 0; i < draws; ++i)
    ++counts[t.sample(l.data(), l.size())];
  EXPECT_EQ(counts[2], 0);
  EXPECT_NEAR(counts[0] / double(draws), 0.625, 0.015);
}

TEST(Sampler, TopKAndTemperatureOnTruncatedProbs) {
  // probs 0.5, 0.3, 0.2 with top_k 2 and temperature 0.5: p**2 on the kept
  // tokens gives 0.25 : 0.09, i.e. P(0) = 0.25 / 0.34.
  std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplerOptions o = noPenalty();
  o.topP = 1.0;
  o.topK = 2;
  o.temperature = 0.5;
  Sampler s(o, 5);
  int counts[3] = {0, 0, 0};
  const int draws = 20000;
  for (int i = 0; i < draws; ++i)
    ++counts[s.sample(l.data(), l.size())];
  EXPECT_EQ(counts[2], 0);
  EXPECT_NEAR(counts[0] / double(draws), 0.25 / 0.34, 0.015);
}

TEST(Sampler, TopKBreaksTiesTowardsHigherIndex) {
  // Reverse of a stable ascending argsort: among equal probabilities the
  // higher index ranks first, so top_k 1 always keeps token 2.
  std::vector<float> l = {1.0f, 1.0f, 1.0f, 0.0f};
  SamplerOptions o = noPenalty();
  o.topP = 1.0;
  o.topK = 1;
  Sampler s(o, 6);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(s.sample(l.data(), l.size()), 2);
  o.topK = 2;
  Sampler t(o, 6);
  std::set<int32_t> seen;
  for (int i = 0; i < 200; ++i)
    seen.insert(t.sample(l.data(), l.size()));
  EXPECT_EQ(seen, (std::set<int32_t>{1, 2}));
}

TEST(Sampler, NucleusOnLargeVocabMatchesSortedCumsum) {
  // Checks the selection-based cutoff against a plain sort + cumsum on a
  // 65536-token distribution, for several top_p values.
  std::vector<float> l = pseudoRandomLogits(65536, 77);
  double mx = *std::max_element(l.begin(), l.end()), z = 0;
  std::vector<double> p(l.size());
  for (size_t i = 0; i < l.size(); ++i)
    z += p[i] = std::exp(double(l[i]) - mx);
  for (double &x : p)
    x /= z;
  std::vector<double> sorted = p;
  std::sort(sorted.begin(), sorted.end(), std::greater<double>());
  for (double topP : {0.01, 0.3, 0.85, 0.99}) {
    double cum = 0, cutoff = 0;
    for (double x : sorted)
      if ((cum += x) >= topP) {
        cutoff = x;
        break;
      }
    SamplerOptions o = noPenalty();
    o.topP = topP;
    Sampler s(o, 8);
    std::set<int32_t> seen;
    for (int i = 0; i < 150; ++i) {
      int32_t t = s.sample(l.data(), l.size());
      ASSERT_GE(p[static_cast<size_t>(t)], cutoff * (1 - 1e-6)) << topP;
      seen.insert(t);
    }
    // The nucleus is large enough that many distinct tokens appear.
    if (topP >= 0.3) {
      EXPECT_GT(seen.size(), 50u) << topP;
    }
  }
}

TEST(Sampler, EmpiricalDistributionMatchesSoftmax) {
  std::vector<float> l = {1.0f, 0.0f, -1.0f, 2.0f, 0.5f};
  double z = 0;
  for (float x : l)
    z += std::exp(double(x));
  SamplerOptions o = noPenalty();
  o.topP = 1.0;
  Sampler s(o, 2024);
  std::vector<int> counts(l.size(), 0);
  const int draws = 20000;
  for (int i = 0; i < draws; ++i)
    ++counts[static_cast<size_t>(s.sample(l.data(), l.size()))];
  for (size_t i = 0; i < l.size(); ++i)
    EXPECT_NEAR(counts[i] / double(draws), std::exp(double(l[i])) / z, 0.015)
        << "token " << i;
}

TEST(Sampler, BannedTokensAreNeverSampled) {
  std::vector<float> l = {0.0f, 0.1f, 5.0f, 0.2f, 0.0f};
  SamplerOptions o = noPenalty();
  o.topP = 1.0;
  o.tokenBan = {2, 0};
  Sampler s(o, 9);
  std::set<int32_t> seen;
  for (int i = 0; i < 2000; ++i)
    seen.insert(s.sample(l.data(), l.size()));
  EXPECT_EQ(seen, (std::set<int32_t>{1, 3, 4}));
  o.temperature = 0;
  Sampler g(o, 9);
  EXPECT_EQ(g.sample(l.data(), l.size()), 3);
  // Everything banned: nothing can be sampled.
  o.tokenBan = {0, 1, 2, 3, 4};
  Sampler none(o, 9);
  EXPECT_THROW(none.sample(l.data(), l.size()), std::invalid_argument);
}

TEST(Sampler, PenaltiesByHand) {
  // Greedy with presence 0.2, frequency 0.2, decay 0.996.
  SamplerOptions o;
  o.temperature = 0;
  Sampler s(o, 0);
  std::vector<float> l = {2.0f, 1.9f, 0.5f, 0.0f};
  EXPECT_EQ(s.sample(l.data(), 4), 0);
  s.accept(0, "A");
  EXPECT_DOUBLE_EQ(s.occurrence(0), 1.0);
  // Token 0: 2.0 - (0.2 + 1 * 0.2) = 1.6 < 1.9.
  EXPECT_EQ(s.sample(l.data(), 4), 1);
  s.accept(1, "B");
  EXPECT_DOUBLE_EQ(s.occurrence(0), 0.996);
  EXPECT_DOUBLE_EQ(s.occurrence(1), 1.0);
  // Token 0: 2.0 - (0.2 + 0.996 * 0.2) = 1.6008; token 1: 1.9 - 0.4 = 1.5.
  EXPECT_EQ(s.sample(l.data(), 4), 0);
  s.accept(0, "A");
  EXPECT_DOUBLE_EQ(s.occurrence(0), 0.996 * 0.996 + 1);
  EXPECT_DOUBLE_EQ(s.occurrence(1), 0.996);
  // Token 0: 2.0 - 0.2 - 1.992016 * 0.2 = 1.4016; token 1: 1.9 - 0.3992 =
  // 1.5008; token 2 is untouched at 0.5.
  EXPECT_EQ(s.sample(l.data(), 4), 1);
  EXPECT_EQ(s.occurrence(2), 0.0);

  // reset() forgets occurrences.
  s.reset();
  EXPECT_EQ(s.occurrence(0), 0.0);
  EXPECT_EQ(s.sample(l.data(), 4), 0);
}

TEST(Sampler, WhitespaceAndDigitTokensGetPresencePenaltyOnly) {
  SamplerOptions o;
  o.temperature = 0;
  o.alphaPresence = 0.2;
  o.alphaFrequency = 1.0;
  Sampler s(o, 0);
  s.accept(0, "12"); // substring of ' \t0123456789': weight 0
  EXPECT_EQ(s.occurrence(0), 0.0);
  std::vector<float> l = {1.0f, 0.9f};
  // Still a key: 1.0 - 0.2 = 0.8 < 0.9.
  EXPECT_EQ(s.sample(l.data(), 2), 1);

  // Which token texts count as whitespace/digits (Python `in` on strings).
  const std::pair<const char *, double> cases[] = {
      {" ", 0},  {"\t", 0}, {"7", 0},       {"345", 0}, {"\t01", 0},
      {"", 0},   {"  ", 1}, {"1 ", 1},      {" 1", 1},  {"a", 1},
      {"13", 1}, {"\n", 1}, {"\xE4\xBD", 1}};
  for (const auto &[text, weight] : cases) {
    Sampler t(o, 0);
    t.accept(5, text);
    EXPECT_EQ(t.occurrence(5), weight) << "'" << text << "'";
  }
}

TEST(Sampler, StopTokens) {
  SamplerOptions o;
  o.tokenStop = {0, 261};
  Sampler s(o, 0);
  EXPECT_TRUE(s.isStopToken(0));
  EXPECT_TRUE(s.isStopToken(261));
  EXPECT_FALSE(s.isStopToken(260));
}

TEST(Sampler, SeedReproducibility) {
  std::vector<float> flat(1000, 0.0f);
  SamplerOptions o = noPenalty();
  o.topP = 1.0;
  auto run = [&](uint64_t seed) {
    Sampler s(o, seed);
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i)
      out.push_back(s.sample(flat.data(), flat.size()));
    return out;
  };
  std::vector<int32_t> a = run(42);
  EXPECT_EQ(a, run(42));
  EXPECT_NE(a, run(43));
  // On a flat distribution 50 draws from 1000 tokens are nearly all distinct.
  EXPECT_GT(std::set<int32_t>(a.begin(), a.end()).size(), 40u);
  // reset(seed) restarts the same stream.
  Sampler s(o, 42);
  (void)s.sample(flat.data(), flat.size());
  s.reset(42);
  EXPECT_EQ(s.sample(flat.data(), flat.size()), a[0]);
}

TEST(StopStringDetector, AcrossPieces) {
  StopStringDetector d({"User:", "\n\n"});
  EXPECT_FALSE(d.feed("Hello Us"));
  EXPECT_EQ(d.safeLength(), 6u); // "Us" may still become "User:"
  EXPECT_FALSE(d.feed("e"));
  EXPECT_EQ(d.safeLength(), 6u);
  auto m = d.feed("r: hi");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->index, 0u);
  EXPECT_EQ(m->offset, 6u);
  EXPECT_EQ(d.safeLength(), 6u);
  // Later text does not move the first match.
  EXPECT_EQ(d.feed("\n\n")->offset, 6u);

  StopStringDetector e({"User:", "\n\n"});
  EXPECT_FALSE(e.feed("abc\n"));
  EXPECT_EQ(e.safeLength(), 3u);
  m = e.feed("\nUser:");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->index, 1u); // the earliest occurrence wins
  EXPECT_EQ(m->offset, 3u);

  StopStringDetector none;
  EXPECT_FALSE(none.feed("anything"));
  EXPECT_EQ(none.safeLength(), 8u);
}

TEST(Sampler, StopStringsOnDecodedTokenStream) {
  SamplerOptions o;
  o.stopStrings = {"\n\n", "世界"};
  Sampler s(o, 0);
  s.accept(10, "Hi ");
  s.accept(11, "\xE4\xB8"); // first two bytes of 世
  EXPECT_FALSE(s.stopMatch());
  EXPECT_EQ(s.text(), "Hi ");
  s.accept(12, "\x96\xE7\x95"); // rest of 世, start of 界
  EXPECT_FALSE(s.stopMatch());
  EXPECT_EQ(s.text(), "Hi 世");
  s.accept(13, "\x8C!");
  auto m = s.stopMatch();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->index, 1u);
  EXPECT_EQ(m->offset, 3u);
  EXPECT_EQ(s.text().substr(0, m->offset), "Hi ");

  s.reset();
  EXPECT_FALSE(s.stopMatch());
  s.accept(1, "a\n");
  s.accept(2, "\nb");
  ASSERT_TRUE(s.stopMatch());
  EXPECT_EQ(s.stopMatch()->index, 0u);
  EXPECT_EQ(s.stopMatch()->offset, 1u);
}

} // namespace
