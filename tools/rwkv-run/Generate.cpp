//===- Generate.cpp - Prefill and sampling loop for rwkv-run --------------===//

#include "tools/rwkv-run/Generate.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <stdexcept>

namespace rwkv {

void prefill(const Model &model, const std::vector<int32_t> &tokens,
             State &state, std::vector<float> &logits, size_t chunk,
             const std::function<void(size_t, size_t)> &progress) {
  if (tokens.empty())
    return;
  chunk = std::max<size_t>(chunk, 1);
  bool gpt = model.hasEntry("rwkv_forward");
  std::vector<int32_t> piece;
  for (size_t done = 0; done < tokens.size();) {
    size_t n = std::min(chunk, tokens.size() - done);
    piece.assign(tokens.begin() + long(done), tokens.begin() + long(done + n));
    if (gpt)
      model.forward(piece, state, logits);
    else
      model.step(piece, state, logits);
    done += n;
    if (progress)
      progress(done, tokens.size());
  }
}

DecodeResult
decode(const Model &model, const Tokenizer &tokenizer, Sampler &sampler,
       State &state, std::vector<float> &logits, size_t maxTokens,
       const std::function<void(std::string_view)> &onText,
       const std::function<void(const std::vector<float> &)> &onLogits) {
  DecodeResult result;
  auto t0 = std::chrono::steady_clock::now();
  // The sampler's text is cumulative (it may hold earlier turns); only what
  // this call adds is ours.
  size_t base = sampler.text().size(), shown = base;
  auto show = [&](size_t upTo) {
    if (upTo <= shown)
      return;
    std::string_view piece(sampler.text().data() + shown, upTo - shown);
    result.text.append(piece);
    if (onText)
      onText(piece);
    shown = upTo;
  };
  size_t vocab = size_t(model.vocabSize());
  for (size_t i = 0; i < maxTokens; ++i) {
    if (onLogits)
      onLogits(logits);
    // Sample only among ids the tokenizer can print (a model's vocab may be
    // padded past the tokenizer's).
    size_t n = std::min(vocab, tokenizer.vocabSize());
    int32_t token = sampler.sample(logits.data() + logits.size() - vocab, n);
    if (sampler.isStopToken(token)) {
      result.reason = DecodeResult::Stop::StopToken;
      break;
    }
    sampler.accept(token, tokenizer.tokenBytes(token));
    result.tokens.push_back(token);
    // Feed it before looking at stop strings so the state always covers
    // every generated token (what the chat demo does, and what --state-out
    // needs to continue seamlessly).
    model.step({token}, state, logits);
    if (auto stop = sampler.stopMatch()) {
      show(std::max(stop->offset, base));
      result.reason = DecodeResult::Stop::StopString;
      break;
    }
    show(std::max(stopSafeLength(sampler.text(), sampler.options().stopStrings),
                  base));
  }
  if (result.reason == DecodeResult::Stop::MaxTokens ||
      result.reason == DecodeResult::Stop::StopToken)
    show(sampler.text().size());
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  return result;
}

std::vector<int32_t> parseIdList(const std::string &text,
                                 const std::string &what) {
  std::vector<int32_t> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string item = text.substr(
        pos, comma == std::string::npos ? std::string::npos : comma - pos);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) {
      size_t used = 0;
      long long v = 0;
      try {
        v = std::stoll(item, &used);
      } catch (const std::exception &) {
        used = 0;
      }
      if (used != item.size() || v < INT32_MIN || v > INT32_MAX)
        throw std::invalid_argument(
            fmt::format("bad token id '{}' in {}", item, what));
      out.push_back(int32_t(v));
    }
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  return out;
}

} // namespace rwkv
