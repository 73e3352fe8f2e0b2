//===- Api.h - OpenAI-style request parsing and responses -------*- C++ -*-===//
//
// The request side of rwkv-serve: /v1/completions and /v1/chat/completions
// bodies are parsed and validated into a GenerationRequest, and every
// problem becomes an ApiError with an HTTP status and an OpenAI-style error
// object. Chat messages are formatted with the RWKV "User: ..\n\nAssistant:"
// template (spec §5.4), one text segment per turn, so that turn boundaries
// are token boundaries and a conversation prefix can be found in the state
// cache. See docs/serve.md.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_SERVE_API_H
#define RWKV_RUNTIME_SERVE_API_H

#include "runtime/text/Sampler.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace rwkv::serve {

/// A request that cannot be served, with what the client is told.
struct ApiError : std::runtime_error {
  ApiError(int status, const std::string &message,
           std::string type = "invalid_request_error", std::string param = "",
           std::string code = "");
  int status;
  std::string type, param, code;
};

/// {"error": {"message", "type", "param", "code"}} (param/code null when
/// empty).
nlohmann::json errorJson(const ApiError &error);

struct Limits {
  size_t maxTokens = 4096;       // the largest max_tokens a request may ask
  size_t maxPromptTokens = 8192; // after tokenization
  size_t maxN = 8;
  size_t maxStops = 16;
  size_t maxStopBytes = 256;
  size_t defaultMaxTokensCompletion = 16; // OpenAI's default
  size_t defaultMaxTokensChat = 256;
};

/// The role names of the chat template (overridable per server and per
/// request with "names": {"system", "user", "assistant"}).
struct ChatNames {
  std::string system = "System", user = "User", assistant = "Assistant";
};

enum class Endpoint { Completions, Chat };

struct GenerationRequest {
  Endpoint endpoint = Endpoint::Completions;
  std::string model;
  /// The prompt as text segments, encoded one by one and concatenated; or,
  /// when `tokenPrompt` is set, `promptTokens` as given.
  std::vector<std::string> segments;
  bool tokenPrompt = false;
  std::vector<int32_t> promptTokens;
  size_t maxTokens = 16;
  SamplerOptions sampler;
  std::optional<uint64_t> seed;
  size_t n = 1;
  bool stream = false;
  bool includeUsage = false; // stream_options.include_usage
  /// A named initial state (a state file in the server's --state-dir).
  std::string stateName;
};

/// Parses and validates a request body. Throws ApiError (400, naming the
/// parameter) on malformed JSON, wrong types, values out of range and
/// unsupported options.
GenerationRequest parseRequest(Endpoint endpoint, std::string_view body,
                               const Limits &limits,
                               const ChatNames &names = {});

/// Whether `name` may name a state file: [A-Za-z0-9_.-], not starting with
/// a dot, at most 128 bytes (no paths).
bool isValidStateName(std::string_view name);

} // namespace rwkv::serve

#endif // RWKV_RUNTIME_SERVE_API_H
