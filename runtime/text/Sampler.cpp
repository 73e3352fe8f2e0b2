//===- Sampler.cpp - RWKV PIPELINE_ARGS sampling, penalties, stop rules ---===//

#include "runtime/text/Sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

using namespace rwkv;

//===----------------------------------------------------------------------===//
// Rng
//===----------------------------------------------------------------------===//

void Rng::reseed(uint64_t seed) {
  // splitmix64 spreads any seed (including 0) over the whole state.
  for (uint64_t &word : s) {
    uint64_t z = (seed += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    word = z ^ (z >> 31);
  }
}

static inline uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

//===----------------------------------------------------------------------===//
// StopStringDetector
//===----------------------------------------------------------------------===//

StopStringDetector::StopStringDetector(std::vector<std::string> stopStrings)
    : stops(std::move(stopStrings)) {
  for (const std::string &s : stops)
    maxStop = std::max(maxStop, s.size());
}

std::optional<StopMatch> StopStringDetector::feed(std::string_view piece) {
  if (found)
    return found;
  size_t oldSize = buffer.size();
  buffer.append(piece.data(), piece.size());
  if (maxStop == 0 || piece.empty())
    return std::nullopt;
  // Only a match overlapping the new piece can be new.
  size_t start = oldSize >= maxStop - 1 ? oldSize - (maxStop - 1) : 0;
  for (size_t i = 0; i < stops.size(); ++i) {
    if (stops[i].empty())
      continue;
    size_t at = buffer.find(stops[i], start);
    if (at != std::string::npos && (!found || at < found->offset))
      found = StopMatch{i, at};
  }
  return found;
}

size_t StopStringDetector::safeLength() const {
  if (found)
    return found->offset;
  size_t n = buffer.size();
  size_t longest = std::min(n, maxStop > 0 ? maxStop - 1 : 0);
  // Hold back the longest suffix that could still grow into a stop string.
  for (size_t k = longest; k > 0; --k) {
    std::string_view tail(buffer.data() + n - k, k);
    for (const std::string &s : stops)
      if (s.size() > k && std::string_view(s).substr(0, k) == tail)
        return n - k;
  }
  return n;
}

void StopStringDetector::reset() {
  buffer.clear();
  found.reset();
}

//===----------------------------------------------------------------------===//
// Sampler
//===----------------------------------------------------------------------===//

Sampler::Sampler(SamplerOptions options, uint64_t seed)
    : opts(std::move(options)), rng(seed), stop(opts.stopStrings) {}

bool Sampler::isStopToken(int32_t token) const {
  return std::find(opts.tokenStop.begin(), opts.tokenStop.end(), token) !=
         opts.tokenStop.end();
}

double Sampler::occurrence(int32_t token) const {
  auto it = occurrences.find(token);
  return it == occurrences.end() ? 0.0 : it->second;
}

void Sampler::addOccurrence(int32_t token, std::string_view tokenBytes) {
  for (auto &entry : occurrences)
    entry.second *= opts.alphaDecay;
  // Python `ttt in ' \t0123456789'`: substring test, true for "" as well.
  // Bytes that are not valid UTF-8 decode to U+FFFD in the reference, which
  // is never a substring; raw non-ASCII bytes never are either.
  double www = std::string_view(" \t0123456789").find(tokenBytes) !=
                       std::string_view::npos
                   ? 0.0
                   : 1.0;
  occurrences[token] += www; // a www=0 token still becomes a key
}

void Sampler::accept(int32_t token, std::string_view tokenBytes) {
  addOccurrence(token, tokenBytes);
  stop.feed(utf8.feed(tokenBytes));
}

void Sampler::reset() {
  occurrences.clear();
  utf8.reset();
  stop.reset();
}

void Sampler::reset(uint64_t seed) {
  reset();
  rng.reseed(seed);
}

int32_t Sampler::sample(const float *logits, size_t n) {
  work.assign(logits, logits + n);
  const float negInf = -std::numeric_limits<float>::infinity();
  for (auto [t, bias] : opts.logitBias)
    if (t >= 0 && static_cast<size_t>(t) < n)
      work[static_cast<size_t>(t)] =
          bias <= -100.0f ? negInf : work[static_cast<size_t>(t)] + bias;
  for (int32_t t : opts.tokenBan)
    if (t >= 0 && static_cast<size_t>(t) < n)
      work[static_cast<size_t>(t)] = negInf;
  // float32 arithmetic, as the reference does on its float32 logits tensor.
  for (const auto &entry : occurrences)
    if (entry.first >= 0 && static_cast<size_t>(entry.first) < n)
      work[static_cast<size_t>(entry.first)] -= static_cast<float>(
          opts.alphaPresence + entry.second * opts.alphaFrequency);
  return sampleLogits(work.data(), n);
}

/// Nucleus cutoff (spec §5.3): sort the probabilities in descending order,
/// take the first one at which the cumulative sum reaches topP; tokens
/// strictly below it are dropped, so ties at the cutoff stay. Found by
/// three-way quickselect on the mass instead of sorting; only the rounding of
/// the cumulative sum can differ from a sorted cumsum. If rounding keeps the
/// total below topP nothing is dropped (0 is returned).
static double nucleusCutoff(const std::vector<double> &probs, double topP,
                            std::vector<detail::RankedProb> &items) {
  if (topP <= 0) // greedy: the maximum, with its ties
    return *std::max_element(probs.begin(), probs.end());
  items.clear();
  for (size_t i = 0; i < probs.size(); ++i)
    if (probs[i] > 0)
      items.push_back({probs[i], static_cast<int32_t>(i)});
  auto lo = items.begin(), hi = items.end();
  double above = 0; // mass of the items ranked before [lo, hi)
  while (lo != hi) {
    // Median-of-three pivot keeps the expected cost linear.
    double a = lo->p, b = (lo + (hi - lo) / 2)->p, c = (hi - 1)->p;
    double pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));
    auto gtEnd =
        std::partition(lo, hi, [&](const auto &x) { return x.p > pivot; });
    auto eqEnd =
        std::partition(gtEnd, hi, [&](const auto &x) { return x.p == pivot; });
    double greater = 0;
    for (auto it = lo; it != gtEnd; ++it)
      greater += it->p;
    if (above + greater >= topP) {
      hi = gtEnd; // the cutoff is strictly above the pivot
      continue;
    }
    above += greater;
    for (auto it = gtEnd; it != eqEnd; ++it) {
      above += it->p;
      if (above >= topP)
        return pivot;
    }
    lo = eqEnd;
  }
  return 0.0;
}

/// Zeroes all but the k largest probabilities; equal probabilities rank the
/// higher index first, as the reverse of a stable ascending argsort does.
static void applyTopK(std::vector<double> &probs, size_t k,
                      std::vector<detail::RankedProb> &items) {
  items.resize(probs.size());
  for (size_t i = 0; i < probs.size(); ++i)
    items[i] = {probs[i], static_cast<int32_t>(i)};
  std::nth_element(items.begin(),
                   items.begin() + static_cast<std::ptrdiff_t>(k), items.end(),
                   [](const auto &x, const auto &y) {
                     return x.p != y.p ? x.p > y.p : x.id > y.id;
                   });
  for (size_t r = k; r < items.size(); ++r)
    probs[static_cast<size_t>(items[r].id)] = 0;
}

int32_t Sampler::sampleLogits(const float *logits, size_t n) {
  double temperature = opts.temperature;
  double topP = opts.topP;
  if (temperature == 0) { // greedy; ties at the maximum are kept
    temperature = 1.0;
    topP = 0.0;
  }
  if (n == 0 || n > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    throw std::invalid_argument("sampler: bad logits size");

  // Softmax: exp in float32 (as the reference's float32 softmax; 3x faster
  // than double exp on a 65k vocab), normalisation and sums in float64.
  float maxLogit = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < n; ++i)
    if (!std::isnan(logits[i]))
      maxLogit = std::max(maxLogit, logits[i]);
  if (!std::isfinite(maxLogit))
    throw std::invalid_argument("sampler: no token has a finite logit");
  probs.resize(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    float d = logits[i] - maxLogit;
    probs[i] = std::isnan(d) ? 0.0 : static_cast<double>(std::exp(d));
    sum += probs[i];
  }
  for (double &p : probs)
    p /= sum;

  // Both filters keep a top prefix of the probabilities sorted in
  // descending order, so they are computed on the original probabilities
  // (they commute). Selection instead of a full sort: sorting a 65k vocab
  // costs ~10 ms per token.
  double cutoff = topP < 1.0 ? nucleusCutoff(probs, topP, ranked) : 0.0;
  if (opts.topK > 0 && static_cast<size_t>(opts.topK) < n)
    applyTopK(probs, static_cast<size_t>(opts.topK), ranked);
  for (double &p : probs)
    if (p < cutoff)
      p = 0;

  if (temperature != 1.0) {
    double inv = 1.0 / temperature;
    for (double &p : probs)
      if (p > 0)
        p = std::pow(p, inv);
  }

  double total = 0;
  for (double p : probs)
    total += p;
  if (!(total > 0) || !std::isfinite(total)) {
    // Extreme temperatures can underflow/overflow every weight: fall back to
    // the most likely token.
    return static_cast<int32_t>(std::max_element(probs.begin(), probs.end()) -
                                probs.begin());
  }
  // Inverse CDF in index order, like numpy.random.choice.
  double u = rng.uniform() * total;
  double acc = 0;
  int32_t lastNonZero = -1;
  for (size_t i = 0; i < n; ++i) {
    if (probs[i] <= 0)
      continue;
    acc += probs[i];
    lastNonZero = static_cast<int32_t>(i);
    if (u < acc)
      return lastNonZero;
  }
  return lastNonZero;
}

size_t rwkv::stopSafeLength(const std::string &text,
                            const std::vector<std::string> &stops) {
  size_t hold = 0;
  for (const std::string &stop : stops)
    for (size_t k = std::min(stop.size() - (stop.empty() ? 0 : 1), text.size());
         k > hold; --k)
      if (text.compare(text.size() - k, k, stop, 0, k) == 0) {
        hold = k;
        break;
      }
  return text.size() - hold;
}
