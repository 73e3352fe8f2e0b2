//===- StateCache.cpp - LRU cache of states after prompt prefixes ---------===//

#include "runtime/serve/StateCache.h"

#include <algorithm>

namespace rwkv::serve {

size_t StateCache::entryBytes(const State &state, size_t tokens,
                              size_t logits) {
  size_t floats = logits;
  for (size_t i = 0; i < state.numTensors(); ++i)
    floats += state.info(i).numel;
  // A State keeps two buffers per tensor (double buffering).
  return 2 * floats * sizeof(float) + tokens * sizeof(int32_t) + 256;
}

std::optional<StateCache::Hit>
StateCache::lookup(const std::string &origin,
                   const std::vector<int32_t> &tokens, size_t length) {
  auto best = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    size_t n = it->tokens.size();
    if (it->origin != origin || n > length ||
        (n == length && it->logits.empty()) ||
        (best != entries_.end() && n <= best->tokens.size()))
      continue;
    if (std::equal(it->tokens.begin(), it->tokens.end(), tokens.begin()))
      best = it;
  }
  if (best == entries_.end())
    return std::nullopt;
  entries_.splice(entries_.begin(), entries_, best);
  const Entry &e = entries_.front();
  return Hit{e.tokens.size(), e.state, e.logits};
}

void StateCache::insert(const std::string &origin,
                        const std::vector<int32_t> &tokens, size_t length,
                        const State &state, const std::vector<float> &logits) {
  size_t bytes = entryBytes(state, length, logits.size());
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    if (it->origin == origin && it->tokens.size() == length &&
        std::equal(it->tokens.begin(), it->tokens.end(), tokens.begin())) {
      // Keep logits an earlier insert had when this one has none.
      if (logits.empty() && !it->logits.empty()) {
        entries_.splice(entries_.begin(), entries_, it);
        return;
      }
      bytes_ -= it->bytes;
      entries_.erase(it);
      break;
    }
  if (bytes > capacity_)
    return;
  while (bytes_ + bytes > capacity_ && !entries_.empty()) {
    bytes_ -= entries_.back().bytes;
    entries_.pop_back();
    ++evictions_;
  }
  entries_.push_front(
      Entry{origin,
            std::vector<int32_t>(tokens.begin(), tokens.begin() + long(length)),
            state, logits, bytes});
  bytes_ += bytes;
}

void StateCache::clear() {
  entries_.clear();
  bytes_ = 0;
}

} // namespace rwkv::serve
