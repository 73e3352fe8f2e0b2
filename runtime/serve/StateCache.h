//===- StateCache.h - LRU cache of states after prompt prefixes -*- C++ -*-===//
//
// The recurrent state after a prompt prefix (a system prompt, a document, a
// conversation so far) is a fixed-size summary of it, so a request whose
// prompt extends a cached prefix starts from that state and prefills only
// the rest. Entries are keyed by the initial state they started from (a
// named state file or the zero state) and the exact token ids; the cache is
// an LRU bounded by bytes. Not thread-safe: the scheduler thread owns it.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_SERVE_STATECACHE_H
#define RWKV_RUNTIME_SERVE_STATECACHE_H

#include "runtime/core/Runtime.h"

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <vector>

namespace rwkv::serve {

class StateCache {
public:
  struct Hit {
    size_t length = 0;         // prompt tokens covered by the state
    State state;               // the state after them (a copy)
    std::vector<float> logits; // after the last of them; empty if unknown
  };

  explicit StateCache(size_t capacityBytes) : capacity_(capacityBytes) {}

  /// The longest cached prefix of `tokens` (under `origin`) that is usable:
  /// shorter than `tokens`, or equal to it when the entry kept its logits
  /// (sampling needs logits). Marks it most recently used.
  std::optional<Hit> lookup(const std::string &origin,
                            const std::vector<int32_t> &tokens, size_t length);

  /// Stores the state after tokens[0, length) (`logits` may be empty).
  /// Replaces an entry with the same key; evicts least recently used
  /// entries until the total fits; an entry larger than the capacity is not
  /// stored.
  void insert(const std::string &origin, const std::vector<int32_t> &tokens,
              size_t length, const State &state,
              const std::vector<float> &logits);

  size_t bytes() const { return bytes_; }
  size_t size() const { return entries_.size(); }
  size_t capacity() const { return capacity_; }
  uint64_t evictions() const { return evictions_; }
  void clear();

  /// The bytes an entry for this state and these tokens takes.
  static size_t entryBytes(const State &state, size_t tokens, size_t logits);

private:
  struct Entry {
    std::string origin;
    std::vector<int32_t> tokens;
    State state;
    std::vector<float> logits;
    size_t bytes;
  };
  std::list<Entry> entries_; // most recently used first
  size_t capacity_, bytes_ = 0;
  uint64_t evictions_ = 0;
};

} // namespace rwkv::serve

#endif // RWKV_RUNTIME_SERVE_STATECACHE_H
