//===- ServeTest.cpp - rwkv-serve request parsing, state cache, metrics ---===//

#include "runtime/serve/Api.h"
#include "runtime/serve/Metrics.h"
#include "runtime/serve/StateCache.h"

#include <gtest/gtest.h>

using namespace rwkv;
using namespace rwkv::serve;

namespace {

ApiError parseError(Endpoint endpoint, const std::string &body) {
  try {
    parseRequest(endpoint, body, Limits{});
  } catch (const ApiError &e) {
    return e;
  }
  ADD_FAILURE() << "no error for " << body;
  return ApiError(0, "");
}

TEST(ServeApi, CompletionDefaultsAndOptions) {
  GenerationRequest r = parseRequest(Endpoint::Completions,
                                     R"({"model": "m", "prompt": "hi"})", {});
  EXPECT_EQ(r.segments, std::vector<std::string>{"hi"});
  EXPECT_EQ(r.maxTokens, 16u);
  EXPECT_EQ(r.sampler.temperature, 1.0);
  EXPECT_EQ(r.sampler.topP, 1.0);
  EXPECT_EQ(r.sampler.alphaPresence, 0.0);
  EXPECT_EQ(r.sampler.tokenStop, std::vector<int32_t>{0});
  EXPECT_FALSE(r.seed);
  r = parseRequest(Endpoint::Completions,
                   R"({"prompt": [1, 2, 3], "max_tokens": 5, "seed": -1,
                       "stop": "x", "n": 2, "top_k": 4, "stream": true,
                       "stream_options": {"include_usage": true}})",
                   {});
  EXPECT_TRUE(r.tokenPrompt);
  EXPECT_EQ(r.promptTokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(*r.seed, ~uint64_t(0));
  EXPECT_EQ(r.sampler.stopStrings, std::vector<std::string>{"x"});
  EXPECT_EQ(r.n, 2u);
  EXPECT_EQ(r.sampler.topK, 4);
  EXPECT_TRUE(r.stream && r.includeUsage);
  r = parseRequest(Endpoint::Completions,
                   R"({"prompt": "a", "logit_bias": {"0": -100, "7": 2.5}})",
                   {});
  using Bias = std::vector<std::pair<int32_t, float>>;
  EXPECT_EQ(r.sampler.logitBias, (Bias{{0, -100.0f}, {7, 2.5f}}));
}

TEST(ServeApi, LogitBiasInTheSampler) {
  // -100 bans; other values shift the logit.
  SamplerOptions o;
  o.temperature = 0; // greedy
  o.alphaPresence = o.alphaFrequency = 0;
  std::vector<float> logits = {5.0f, 1.0f, 0.0f};
  o.logitBias = {{0, -100.0f}};
  EXPECT_EQ(Sampler(o, 1).sample(logits.data(), logits.size()), 1);
  o.logitBias = {{2, 4.5f}};
  EXPECT_EQ(Sampler(o, 1).sample(logits.data(), logits.size()), 0);
  o.logitBias = {{2, 5.5f}};
  EXPECT_EQ(Sampler(o, 1).sample(logits.data(), logits.size()), 2);
}

TEST(ServeApi, ChatTemplate) {
  GenerationRequest r = parseRequest(
      Endpoint::Chat,
      R"({"messages": [{"role": "system", "content": " Be brief.\r\n\r\nOK "},
                       {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                       {"role": "assistant", "content": "Hello"},
                       {"role": "user", "content": "Bye"}]})",
      {});
  EXPECT_EQ(r.segments,
            (std::vector<std::string>{"System: Be brief.\nOK\n\n",
                                      "User: Hi\n\n", "Assistant: Hello\n\n",
                                      "User: Bye\n\n", "Assistant:"}));
  EXPECT_EQ(r.maxTokens, 256u);
  EXPECT_EQ(r.sampler.stopStrings, std::vector<std::string>{"\n\n"});
  r = parseRequest(Endpoint::Chat,
                   R"({"messages": [{"role": "user", "content": "x"}],
                       "names": {"user": "Q", "assistant": "A"}})",
                   {});
  EXPECT_EQ(r.segments, (std::vector<std::string>{"Q: x\n\n", "A:"}));
}

TEST(ServeApi, Errors) {
  struct Case {
    Endpoint endpoint;
    const char *body;
    int status;
    const char *param;
  };
  const Case cases[] = {
      {Endpoint::Completions, "{", 400, ""},
      {Endpoint::Completions, "[]", 400, ""},
      {Endpoint::Completions, "{}", 400, "prompt"},
      {Endpoint::Completions, R"({"prompt": ["a", "b"]})", 400, "prompt"},
      {Endpoint::Completions, R"({"prompt": [1, -2]})", 400, "prompt"},
      {Endpoint::Completions, R"({"prompt": "a", "max_tokens": 0})", 400,
       "max_tokens"},
      {Endpoint::Completions, R"({"prompt": "a", "max_tokens": 5000})", 400,
       "max_tokens"},
      {Endpoint::Completions,
       R"({"prompt": "a", "max_tokens": 18446744073709551615})", 400,
       "max_tokens"},
      {Endpoint::Completions, R"({"prompt": "a", "temperature": "hot"})", 400,
       "temperature"},
      {Endpoint::Completions, R"({"prompt": "a", "top_p": 1.5})", 400, "top_p"},
      {Endpoint::Completions, R"({"prompt": "a", "n": 9})", 400, "n"},
      {Endpoint::Completions, R"({"prompt": "a", "stop": [""]})", 400, "stop"},
      {Endpoint::Completions, R"({"prompt": "a", "stop": [1]})", 400, "stop"},
      {Endpoint::Completions, R"({"prompt": "a", "logprobs": 1})", 400,
       "logprobs"},
      {Endpoint::Completions, R"({"prompt": "a", "best_of": 2})", 400,
       "best_of"},
      {Endpoint::Completions, R"({"prompt": "a", "logit_bias": [1]})", 400,
       "logit_bias"},
      {Endpoint::Completions, R"({"prompt": "a", "logit_bias": {"x": 1}})", 400,
       "logit_bias"},
      {Endpoint::Completions, R"({"prompt": "a", "logit_bias": {"-1": 1}})",
       400, "logit_bias"},
      {Endpoint::Completions, R"({"prompt": "a", "logit_bias": {"1": 101}})",
       400, "logit_bias"},
      {Endpoint::Completions, R"({"prompt": "a", "stream_options": {}})", 400,
       "stream_options"},
      {Endpoint::Completions, R"({"prompt": "a", "state": "../x"})", 400,
       "state"},
      {Endpoint::Chat, R"({"messages": []})", 400, "messages"},
      {Endpoint::Chat, R"({"messages": [{"role": "tool", "content": "x"}]})",
       400, "messages[0].role"},
      {Endpoint::Chat, R"({"messages": [{"role": "user"}]})", 400,
       "messages[0].content"},
      {Endpoint::Chat,
       R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       400, "messages[0]"},
  };
  for (const Case &c : cases) {
    ApiError e = parseError(c.endpoint, c.body);
    EXPECT_EQ(e.status, c.status) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body;
    nlohmann::json j = errorJson(e);
    EXPECT_TRUE(j["error"].contains("message") && j["error"].contains("type") &&
                j["error"].contains("param") && j["error"].contains("code"));
  }
}

TEST(ServeApi, StateNames) {
  EXPECT_TRUE(isValidStateName("persona-1.state"));
  EXPECT_FALSE(isValidStateName(""));
  EXPECT_FALSE(isValidStateName(".hidden"));
  EXPECT_FALSE(isValidStateName("a/b"));
  EXPECT_FALSE(isValidStateName(std::string(200, 'a')));
}

std::shared_ptr<const State::Layout> smallLayout() {
  auto layout = std::make_shared<State::Layout>();
  layout->push_back({"wkv", 0, {1, 4}, 4, 0.0f});
  return layout;
}

TEST(ServeStateCache, LongestPrefixAndLogits) {
  auto layout = smallLayout();
  StateCache cache(1 << 20);
  State s(layout);
  s.tensor(0)[0] = 1;
  std::vector<int32_t> prompt = {1, 2, 3, 4, 5};
  cache.insert("", prompt, 2, s, {});
  s.tensor(0)[0] = 3;
  cache.insert("", prompt, 3, s, {0.5f});
  EXPECT_FALSE(cache.lookup("persona", prompt, 5));
  auto hit = cache.lookup("", prompt, 5);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->length, 3u);
  EXPECT_EQ(hit->state.tensor(0)[0], 3.0f);
  // The whole prompt cached: usable only with its logits.
  std::vector<int32_t> two = {1, 2};
  hit = cache.lookup("", two, 2);
  EXPECT_FALSE(hit);
  std::vector<int32_t> three = {1, 2, 3};
  hit = cache.lookup("", three, 3);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->logits, std::vector<float>{0.5f});
  std::vector<int32_t> other = {1, 9, 9};
  EXPECT_FALSE(cache.lookup("", other, 3));
}

TEST(ServeStateCache, EvictsLeastRecentlyUsed) {
  auto layout = smallLayout();
  State s(layout);
  size_t entry = StateCache::entryBytes(s, 1, 0);
  StateCache cache(2 * entry);
  std::vector<int32_t> a = {1, 7}, b = {2, 7}, c = {3, 7};
  cache.insert("", a, 1, s, {});
  cache.insert("", b, 1, s, {});
  EXPECT_TRUE(cache.lookup("", a, 2)); // a is now the most recent
  cache.insert("", c, 1, s, {});
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.evictions(), 1u);
  EXPECT_TRUE(cache.lookup("", a, 2));
  EXPECT_FALSE(cache.lookup("", b, 2));
  EXPECT_TRUE(cache.lookup("", c, 2));
  EXPECT_LE(cache.bytes(), cache.capacity());
  StateCache off(0); // --cache-mb 0
  off.insert("", a, 1, s, {});
  EXPECT_EQ(off.size(), 0u);
}

TEST(ServeMetrics, PrometheusText) {
  Metrics m;
  m.declare("req_total", "counter", "requests");
  m.declare("lat", "histogram", "latency", {0.1, 1});
  m.add("req_total", 2, "code=\"200\"");
  m.observe("lat", 0.5);
  m.observe("lat", 5);
  std::string text = m.render();
  EXPECT_NE(text.find("# TYPE req_total counter"), std::string::npos);
  EXPECT_NE(text.find("req_total{code=\"200\"} 2"), std::string::npos);
  EXPECT_NE(text.find("lat_bucket{le=\"0.1\"} 0"), std::string::npos);
  EXPECT_NE(text.find("lat_bucket{le=\"1\"} 1"), std::string::npos);
  EXPECT_NE(text.find("lat_bucket{le=\"+Inf\"} 2"), std::string::npos);
  EXPECT_NE(text.find("lat_count 2"), std::string::npos);
  EXPECT_THROW(m.add("nope", 1), std::logic_error);
}

} // namespace
