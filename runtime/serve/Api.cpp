//===- Api.cpp - OpenAI-style request parsing and responses ---------------===//

#include "runtime/serve/Api.h"
#include "runtime/text/Prompt.h"
#include "runtime/text/Utf8StreamDecoder.h"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace rwkv::serve {

using nlohmann::json;

ApiError::ApiError(int status, const std::string &message, std::string type,
                   std::string param, std::string code)
    : std::runtime_error(message), status(status), type(std::move(type)),
      param(std::move(param)), code(std::move(code)) {}

json errorJson(const ApiError &e) {
  // Messages can quote the request (a JSON parse error quotes the bytes it
  // stopped at), and dump() throws on invalid UTF-8.
  json err = {{"message", Utf8StreamDecoder::sanitize(e.what())},
              {"type", e.type}};
  err["param"] = e.param.empty() ? json(nullptr) : json(e.param);
  err["code"] = e.code.empty() ? json(nullptr) : json(e.code);
  return {{"error", err}};
}

bool isValidStateName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name[0] == '.')
    return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
          c == '.'))
      return false;
  return true;
}

namespace {

ApiError badParam(const std::string &param, const std::string &message) {
  return ApiError(400, message, "invalid_request_error", param);
}

/// A number field within [lo, hi], or `fallback` when absent or null.
double number(const json &body, const char *key, double fallback, double lo,
              double hi) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null())
    return fallback;
  if (!it->is_number())
    throw badParam(key, fmt::format("'{}' must be a number", key));
  double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    throw badParam(key, fmt::format("'{}' must be between {} and {}, got {}",
                                    key, lo, hi, v));
  return v;
}

/// An integer field within [lo, hi], or `fallback` when absent or null.
int64_t integer(const json &body, const char *key, int64_t fallback, int64_t lo,
                int64_t hi) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null())
    return fallback;
  if (!it->is_number_integer())
    throw badParam(key, fmt::format("'{}' must be an integer", key));
  // Unsigned values above INT64_MAX are out of range too.
  if (it->is_number_unsigned() &&
      it->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    throw badParam(key,
                   fmt::format("'{}' must be between {} and {}", key, lo, hi));
  int64_t v = it->get<int64_t>();
  if (v < lo || v > hi)
    throw badParam(key, fmt::format("'{}' must be between {} and {}, got {}",
                                    key, lo, hi, v));
  return v;
}

bool boolean(const json &body, const char *key, bool fallback) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null())
    return fallback;
  if (!it->is_boolean())
    throw badParam(key, fmt::format("'{}' must be a boolean", key));
  return it->get<bool>();
}

std::string messageText(const json &content, const std::string &param) {
  if (content.is_string())
    return content.get<std::string>();
  if (content.is_array()) {
    // [{"type": "text", "text": "..."}, ...]: text parts only.
    std::string text;
    for (const json &part : content) {
      // Not part.value("type", ""): that throws json's type_error (a 500)
      // when "type" is not a string.
      if (!part.is_object() || !part.contains("type") ||
          part["type"] != "text" || !part.contains("text") ||
          !part["text"].is_string())
        throw badParam(param, "only text content parts "
                              "({\"type\": \"text\", \"text\": ...}) are "
                              "supported");
      text += part["text"].get<std::string>();
    }
    return text;
  }
  throw badParam(param, "message content must be a string or an array of "
                        "text parts");
}

void parseChat(const json &body, const ChatNames &defaults,
               GenerationRequest &r) {
  ChatNames names = defaults;
  if (auto it = body.find("names"); it != body.end() && !it->is_null()) {
    if (!it->is_object())
      throw badParam("names", "'names' must be an object with 'system', "
                              "'user' and/or 'assistant' strings");
    for (auto [key, field] :
         {std::pair{"system", &names.system}, std::pair{"user", &names.user},
          std::pair{"assistant", &names.assistant}}) {
      if (!it->contains(key))
        continue;
      const json &v = (*it)[key];
      if (!v.is_string() || cleanChatText(v.get<std::string>()).empty() ||
          v.get<std::string>().size() > 64)
        throw badParam(std::string("names.") + key,
                       "role names must be non-empty strings of at most 64 "
                       "bytes");
      *field = cleanChatText(v.get<std::string>());
    }
  }
  auto it = body.find("messages");
  if (it == body.end() || !it->is_array() || it->empty())
    throw badParam("messages", "'messages' must be a non-empty array");
  for (size_t i = 0; i < it->size(); ++i) {
    const json &m = (*it)[i];
    std::string param = fmt::format("messages[{}]", i);
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw badParam(param, "each message needs a string 'role'");
    std::string role = m["role"].get<std::string>();
    const std::string *name = nullptr;
    if (role == "system" || role == "developer")
      name = &names.system;
    else if (role == "user")
      name = &names.user;
    else if (role == "assistant")
      name = &names.assistant;
    else
      throw badParam(param + ".role",
                     fmt::format("unsupported role '{}' (use system, "
                                 "developer, user or assistant)",
                                 role));
    if (!m.contains("content") || m["content"].is_null())
      throw badParam(param + ".content", "each message needs 'content'");
    // A blank line inside a message would read as a turn separator.
    std::string text = cleanChatText(messageText(m["content"], param));
    r.segments.push_back(*name + ": " + text + "\n\n");
  }
  // The reply turn; the model continues after "Assistant:".
  r.segments.push_back(names.assistant + ":");
}

void parseCompletionPrompt(const json &body, GenerationRequest &r) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null())
    throw badParam("prompt", "'prompt' is required");
  const json *p = &*it;
  // A batch of one prompt is accepted; several prompts in one request are not.
  if (p->is_array() && p->size() == 1 &&
      ((*p)[0].is_string() || (*p)[0].is_array()))
    p = &(*p)[0];
  if (p->is_string()) {
    r.segments.push_back(p->get<std::string>());
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
    r.tokenPrompt = true;
    for (const json &t : *p) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
          t.get<int64_t>() > std::numeric_limits<int32_t>::max())
        throw badParam("prompt", "a token prompt must be an array of "
                                 "non-negative integer ids");
      r.promptTokens.push_back(int32_t(t.get<int64_t>()));
    }
  } else if (p->is_array() && p->size() > 1) {
    throw badParam("prompt", "one prompt per request (use 'n' for several "
                             "completions of one prompt)");
  } else {
    throw badParam("prompt", "'prompt' must be a string or an array of token "
                             "ids");
  }
}

} // namespace

GenerationRequest parseRequest(Endpoint endpoint, std::string_view text,
                               const Limits &limits, const ChatNames &names) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::exception &e) {
    throw ApiError(
        400, fmt::format("the request body is not valid JSON: {}", e.what()));
  }
  if (!body.is_object())
    throw ApiError(400, "the request body must be a JSON object");

  GenerationRequest r;
  r.endpoint = endpoint;
  if (auto it = body.find("model"); it != body.end() && !it->is_null()) {
    if (!it->is_string())
      throw badParam("model", "'model' must be a string");
    r.model = it->get<std::string>();
  }
  if (endpoint == Endpoint::Chat)
    parseChat(body, names, r);
  else
    parseCompletionPrompt(body, r);

  // Options this server does not implement are refused rather than ignored,
  // so a client never gets silently different semantics.
  for (const char *key :
       {"logprobs", "top_logprobs", "echo", "suffix", "tools", "functions"}) {
    auto it = body.find(key);
    if (it != body.end() && !it->is_null() && *it != false &&
        !(it->is_object() && it->empty()) && !(it->is_array() && it->empty()))
      throw badParam(key, fmt::format("'{}' is not supported", key));
  }
  if (integer(body, "best_of", 1, 1, 1) != 1)
    throw badParam("best_of", "'best_of' is not supported");

  size_t defaultMax = endpoint == Endpoint::Chat
                          ? limits.defaultMaxTokensChat
                          : limits.defaultMaxTokensCompletion;
  defaultMax = std::min(defaultMax, limits.maxTokens);
  int64_t maxTokens = integer(body, "max_tokens", int64_t(defaultMax), 1,
                              std::numeric_limits<int64_t>::max());
  maxTokens = integer(body, "max_completion_tokens", maxTokens, 1,
                      std::numeric_limits<int64_t>::max());
  if (size_t(maxTokens) > limits.maxTokens)
    throw badParam("max_tokens",
                   fmt::format("max_tokens is {}, this server allows at most "
                               "{}",
                               maxTokens, limits.maxTokens));
  r.maxTokens = size_t(maxTokens);

  // OpenAI's defaults (temperature 1, top_p 1, no penalties); top_k and
  // penalty_decay are RWKV extensions with the pip package's meaning.
  SamplerOptions &s = r.sampler;
  s.temperature = number(body, "temperature", 1.0, 0.0, 2.0);
  s.topP = number(body, "top_p", 1.0, 0.0, 1.0);
  s.topK = int(integer(body, "top_k", 0, 0, 1 << 24));
  s.alphaPresence = number(body, "presence_penalty", 0.0, -2.0, 2.0);
  s.alphaFrequency = number(body, "frequency_penalty", 0.0, -2.0, 2.0);
  s.alphaDecay = number(body, "penalty_decay", 0.996, 0.0, 1.0);
  // Token 0 is end-of-text: the natural end of a completion.
  s.tokenStop = {0};
  // OpenAI's logit_bias: {"<token id>": bias in [-100, 100]}; -100 bans.
  // Ids are checked against the model's vocabulary by the engine.
  if (auto it = body.find("logit_bias"); it != body.end() && !it->is_null()) {
    if (!it->is_object())
      throw badParam("logit_bias", "'logit_bias' must be an object mapping "
                                   "token ids to numbers");
    for (const auto &[key, value] : it->items()) {
      char *end = nullptr;
      errno = 0;
      long long id = std::strtoll(key.c_str(), &end, 10);
      if (key.empty() || *end != '\0' || errno || id < 0 ||
          id > std::numeric_limits<int32_t>::max())
        throw badParam(
            "logit_bias",
            fmt::format("'logit_bias' key '{}' is not a token id", key));
      if (!value.is_number() || !(value.get<double>() >= -100.0) ||
          !(value.get<double>() <= 100.0))
        throw badParam("logit_bias",
                       fmt::format("'logit_bias' of token {} must be a number "
                                   "in [-100, 100]",
                                   key));
      s.logitBias.emplace_back(int32_t(id), value.get<float>());
    }
  }

  if (auto it = body.find("stop"); it != body.end() && !it->is_null()) {
    std::vector<std::string> stops;
    if (it->is_string())
      stops.push_back(it->get<std::string>());
    else if (it->is_array())
      for (const json &v : *it) {
        if (!v.is_string())
          throw badParam("stop", "'stop' must be a string or an array of "
                                 "strings");
        stops.push_back(v.get<std::string>());
      }
    else
      throw badParam("stop", "'stop' must be a string or an array of strings");
    if (stops.size() > limits.maxStops)
      throw badParam("stop",
                     fmt::format("at most {} stop strings", limits.maxStops));
    for (const std::string &stop : stops) {
      if (stop.empty() || stop.size() > limits.maxStopBytes)
        throw badParam("stop", fmt::format("stop strings must have 1 to {} "
                                           "bytes",
                                           limits.maxStopBytes));
      s.stopStrings.push_back(stop);
    }
  }
  // An RWKV reply ends at a blank line (spec §5.4).
  if (endpoint == Endpoint::Chat)
    s.stopStrings.push_back("\n\n");

  if (auto it = body.find("seed"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer())
      throw badParam("seed", "'seed' must be an integer");
    r.seed = it->is_number_unsigned() ? it->get<uint64_t>()
                                      : uint64_t(it->get<int64_t>());
  }
  r.n = size_t(integer(body, "n", 1, 1, int64_t(limits.maxN)));
  r.stream = boolean(body, "stream", false);
  if (auto it = body.find("stream_options");
      it != body.end() && !it->is_null()) {
    if (!it->is_object())
      throw badParam("stream_options", "'stream_options' must be an object");
    if (!r.stream)
      throw badParam("stream_options",
                     "'stream_options' is only allowed with 'stream': true");
    r.includeUsage = boolean(*it, "include_usage", false);
  }
  if (auto it = body.find("state"); it != body.end() && !it->is_null()) {
    if (!it->is_string() || !isValidStateName(it->get<std::string>()))
      throw badParam("state", "'state' must name a state file of the "
                              "server's --state-dir ([A-Za-z0-9_.-])");
    r.stateName = it->get<std::string>();
  }
  return r;
}

} // namespace rwkv::serve
