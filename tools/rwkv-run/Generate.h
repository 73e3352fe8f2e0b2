//===- Generate.h - Prefill and sampling loop for rwkv-run ------*- C++ -*-===//
//
// The pieces of `rwkv-run generate` / `chat` that tests also drive: chunked
// GPT-mode prefill that carries the state (bounded memory, progress), and
// the RNN-mode decode loop that samples, feeds each token back and streams
// only complete UTF-8 text that can no longer be part of a stop string.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_TOOLS_RWKV_RUN_GENERATE_H
#define RWKV_TOOLS_RWKV_RUN_GENERATE_H

#include "runtime/core/Runtime.h"
#include "runtime/text/Sampler.h"
#include "runtime/text/Tokenizer.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace rwkv {

/// Default number of tokens per forward call during prefill (the reference
/// PIPELINE_ARGS chunk_len).
constexpr size_t kDefaultPrefillChunk = 256;

/// Runs `tokens` through the model from `state` in forward calls of at most
/// `chunk` tokens (rwkv_step when the library has no rwkv_forward), carrying
/// the state; `logits` ends as the last position's logits. `progress(done,
/// total)` is called after every chunk. Empty `tokens` is a no-op.
void prefill(const Model &model, const std::vector<int32_t> &tokens,
             State &state, std::vector<float> &logits, size_t chunk,
             const std::function<void(size_t, size_t)> &progress = {});

struct DecodeResult {
  enum class Stop { MaxTokens, StopToken, StopString };
  Stop reason = Stop::MaxTokens;
  /// Tokens sampled and fed to the model (a stop token is not included: it
  /// is never fed).
  std::vector<int32_t> tokens;
  /// The text shown (cut before a stop string).
  std::string text;
  double seconds = 0; // wall time of the loop
};

/// Samples up to `maxTokens` tokens, starting from `logits` (the logits
/// after the last fed token). Each accepted token is fed to the model with
/// Model::step, so `state` and `logits` always match the tokens generated so
/// far. `onText` receives the displayable text as it becomes final.
/// `onLogits`, if set, sees the logits each token was sampled from.
DecodeResult
decode(const Model &model, const Tokenizer &tokenizer, Sampler &sampler,
       State &state, std::vector<float> &logits, size_t maxTokens,
       const std::function<void(std::string_view)> &onText = {},
       const std::function<void(const std::vector<float> &)> &onLogits = {});

/// Parses "1,2, 3" into ids; throws std::invalid_argument naming `what` and
/// the bad item.
std::vector<int32_t> parseIdList(const std::string &text,
                                 const std::string &what);

} // namespace rwkv

#endif // RWKV_TOOLS_RWKV_RUN_GENERATE_H
