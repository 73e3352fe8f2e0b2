//===- FuzzServeRequest.cpp - libFuzzer target for rwkv-serve requests ----===//
//
// Parses arbitrary bytes as a /v1/completions and as a /v1/chat/completions
// body (serve::parseRequest: JSON parsing, then validation against Limits).
// Each parse either returns a request within the limits or throws ApiError
// with a 4xx status whose error body serializes (rwkv-serve sends
// errorJson(e).dump()); any other exception is a finding, as are sanitizer
// reports. Small limits make the limit checks reachable from short inputs.
//
//===----------------------------------------------------------------------===//

#include "runtime/serve/Api.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

using namespace rwkv::serve;

namespace {

void check(bool ok, const char *what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz-serve-request: %s\n", what);
    std::abort();
  }
}

void checkRequest(const GenerationRequest &r, Endpoint endpoint,
                  const Limits &limits) {
  check(r.endpoint == endpoint, "wrong endpoint");
  check(r.maxTokens >= 1 && r.maxTokens <= limits.maxTokens,
        "max_tokens outside the limits");
  check(r.n >= 1 && r.n <= limits.maxN, "n outside the limits");
  const rwkv::SamplerOptions &s = r.sampler;
  check(s.temperature >= 0 && s.temperature <= 2, "temperature");
  check(s.topP >= 0 && s.topP <= 1, "top_p");
  check(s.topK >= 0, "top_k");
  check(s.alphaPresence >= -2 && s.alphaPresence <= 2, "presence_penalty");
  check(s.alphaFrequency >= -2 && s.alphaFrequency <= 2, "frequency_penalty");
  check(s.alphaDecay >= 0 && s.alphaDecay <= 1, "penalty_decay");
  for (const auto &[id, bias] : s.logitBias)
    check(id >= 0 && bias >= -100 && bias <= 100, "logit_bias");
  // Chat adds its "\n\n" turn end to the client's stop strings.
  size_t stops = s.stopStrings.size() - (endpoint == Endpoint::Chat ? 1 : 0);
  check(stops <= limits.maxStops, "too many stop strings");
  for (const std::string &stop : s.stopStrings)
    check(!stop.empty() && stop.size() <= limits.maxStopBytes,
          "stop string length");
  check(!r.includeUsage || r.stream, "include_usage without stream");
  check(r.stateName.empty() || isValidStateName(r.stateName), "state name");
  if (r.tokenPrompt) {
    check(endpoint == Endpoint::Completions && !r.promptTokens.empty() &&
              r.segments.empty(),
          "token prompt");
    for (int32_t t : r.promptTokens)
      check(t >= 0, "negative prompt token");
  } else {
    check(!r.segments.empty() && r.promptTokens.empty(), "text prompt");
  }
  // The reply turn: "<assistant name>:", the name possibly the request's.
  if (endpoint == Endpoint::Chat)
    check(r.segments.size() >= 2 && r.segments.back().size() >= 2 &&
              r.segments.back().back() == ':',
          "chat prompt does not end with the assistant's turn");
}

void parseOne(Endpoint endpoint, std::string_view body) {
  Limits limits;
  limits.maxTokens = 64;
  limits.maxN = 3;
  limits.maxStops = 3;
  limits.maxStopBytes = 8;
  ChatNames names;
  try {
    checkRequest(parseRequest(endpoint, body, limits, names), endpoint, limits);
  } catch (const ApiError &e) {
    check(e.status >= 400 && e.status < 500, "ApiError status not 4xx");
    try {
      (void)errorJson(e).dump();
    } catch (const std::exception &d) {
      std::fprintf(stderr, "errorJson(e).dump() threw: %s\n", d.what());
      check(false, "the error body does not serialize");
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "fuzz-serve-request: not an ApiError: %s\n", e.what());
    std::abort();
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view body(reinterpret_cast<const char *>(data), size);
  parseOne(Endpoint::Completions, body);
  parseOne(Endpoint::Chat, body);
  return 0;
}
