//===- Sampler.h - RWKV PIPELINE_ARGS sampling, penalties, stop rules -----===//
//
// Reproduces the reference `PIPELINE.sample_logits` / `generate` semantics
// (spec §5.3): bans, presence/frequency penalties with decayed occurrence
// counts, nucleus (top-p, ties kept), top-k, temperature applied to the
// truncated probabilities, stop tokens and stop strings. Randomness comes
// from an in-house xoshiro256** generator so a seed gives the same tokens on
// every platform.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_TEXT_SAMPLER_H
#define RWKV_RUNTIME_TEXT_SAMPLER_H

#include "runtime/text/Utf8StreamDecoder.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rwkv {

namespace detail {
/// Scratch entry for the sampler's top-p/top-k selection.
struct RankedProb {
  double p;
  int32_t id;
};
} // namespace detail

/// xoshiro256** seeded through splitmix64; uniform() has 53 random bits.
class Rng {
public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed);
  uint64_t next();
  /// Uniform double in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

private:
  uint64_t s[4];
};

/// Mirrors pip's PIPELINE_ARGS (defaults included).
struct SamplerOptions {
  double temperature = 1.0; // 0 means greedy
  double topP = 0.85;
  int topK = 0; // 0 disables
  double alphaFrequency = 0.2;
  double alphaPresence = 0.2;
  double alphaDecay = 0.996;
  std::vector<int32_t> tokenBan; // logits set to -inf
  /// Added to the logits before sampling (OpenAI's logit_bias); a bias of
  /// -100 or less bans the token.
  std::vector<std::pair<int32_t, float>> logitBias;
  std::vector<int32_t> tokenStop; // see Sampler::isStopToken
  std::vector<std::string> stopStrings;
};

/// Where a stop string was found in the generated text.
struct StopMatch {
  size_t index;  // which stop string (index into the list)
  size_t offset; // byte offset in the text where it starts: cut here
};

/// Length of the prefix of `text` that can no longer become part of a stop
/// string: a suffix that is a proper prefix of some stop string is held back.
size_t stopSafeLength(const std::string &text,
                      const std::vector<std::string> &stops);

/// Detects stop strings in a text stream that arrives in arbitrary pieces
/// (so a stop string split across tokens is still found).
class StopStringDetector {
public:
  explicit StopStringDetector(std::vector<std::string> stops = {});

  /// Appends text; returns the earliest match in the whole text so far (the
  /// first stop string in list order on equal offsets). Once a match is
  /// found it is returned again by every later call.
  std::optional<StopMatch> feed(std::string_view piece);

  std::optional<StopMatch> match() const { return found; }
  const std::string &text() const { return buffer; }

  /// Length of the text prefix that can be shown: it can no longer become
  /// part of a stop string (the text before the match once one is found).
  size_t safeLength() const;

  void reset();

private:
  std::vector<std::string> stops;
  std::string buffer;
  size_t maxStop = 0;
  std::optional<StopMatch> found;
};

/// Samples one token at a time. Typical loop:
///   int32_t t = s.sample(logits, n);
///   if (s.isStopToken(t)) break;
///   s.accept(t, tokenizer.tokenBytes(t));
///   if (s.stopMatch()) break;
class Sampler {
public:
  explicit Sampler(SamplerOptions options = {}, uint64_t seed = 0);

  /// Applies bans and penalties to a copy of the logits, then samples.
  /// Throws std::invalid_argument if no token has a finite logit.
  int32_t sample(const float *logits, size_t n);

  /// The pure sample_logits step (no bans or penalties), with this sampler's
  /// temperature/top-p/top-k and random generator.
  int32_t sampleLogits(const float *logits, size_t n);

  /// Records a generated token: decays every occurrence by alphaDecay and
  /// adds weight 1 to the token, or 0 when its bytes are a substring of
  /// " \t0123456789" (spaces, tabs, digit runs, and the empty token). Also
  /// feeds the token bytes to the stop-string detector.
  void accept(int32_t token, std::string_view tokenBytes);

  /// Records tokens the model was fed but did not generate (e.g. earlier
  /// turns), without touching the text stream. Same bookkeeping as accept().
  void addOccurrence(int32_t token, std::string_view tokenBytes);

  bool isStopToken(int32_t token) const;

  /// The first stop string found in the accepted text, if any.
  std::optional<StopMatch> stopMatch() const { return stop.match(); }

  /// Decoded (valid UTF-8) text of all accepted tokens so far.
  const std::string &text() const { return stop.text(); }

  /// The occurrence weight of a token (0 if it never occurred).
  double occurrence(int32_t token) const;

  /// Clears occurrences and the text stream, and reseeds.
  void reset(uint64_t seed);
  /// Clears occurrences and the text stream; the random stream continues.
  void reset();

  const SamplerOptions &options() const { return opts; }

private:
  SamplerOptions opts;
  Rng rng;
  std::unordered_map<int32_t, double> occurrences;
  Utf8StreamDecoder utf8;
  StopStringDetector stop;
  std::vector<float> work;
  std::vector<double> probs;
  std::vector<detail::RankedProb> ranked; // scratch for top-p/top-k selection
};

} // namespace rwkv

#endif // RWKV_RUNTIME_TEXT_SAMPLER_H
