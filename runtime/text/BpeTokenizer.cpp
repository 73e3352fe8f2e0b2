//===- BpeTokenizer.cpp - GPT-NeoX 20B / Hugging Face byte-level BPE ------===//
//
// Implements spec §5.2 the way Hugging Face `tokenizers` does it (the
// `AddedVocabulary`, `NFC`, `ByteLevel` and `BPE` components), on top of
// PCRE2 (the pre-tokenizer regex), ICU (NFC) and nlohmann-json (the file).
//
//===----------------------------------------------------------------------===//

#include "runtime/text/BpeTokenizer.h"
#include "runtime/text/Utf8StreamDecoder.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <nlohmann/json.hpp>
#include <pcre2.h>
#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/unistr.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

using namespace rwkv;
using json = nlohmann::json;

// For the small helpers of the per-pre-token path, which GCC otherwise
// leaves as calls.
#if defined(__GNUC__)
#define RWKV_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define RWKV_ALWAYS_INLINE inline
#endif

namespace {

// The GPT-2 pre-tokenizer regex of HF's ByteLevel (`use_regex: true`), which
// HF runs with Oniguruma. There \s is Unicode White_Space; PCRE2's \s (UCP)
// also matches U+180E, which stopped being a space in Unicode 6.3, so U+180E
// is moved from the \s classes to the "other" class.
constexpr const char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+)"
    R"(| ?(?:[^\s\p{L}\p{N}]|\x{180E})+)"
    R"(|[^\S\x{180E}]+(?![\S\x{180E}])|[^\S\x{180E}]+)";

// The word cache holds this many distinct pre-tokens and takes no more
// once full; longer pre-tokens (rare) are not cached.
constexpr size_t kCacheCapacity = 1 << 17;
constexpr size_t kMaxCachedWord = 256;
// Pre-tokens up to this many bytes are merged by scanning, not with a heap.
constexpr size_t kShortWord = 32;

std::string hexByte(unsigned b) {
  const char *digits = "0123456789ABCDEF";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

void appendUtf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

/// Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs,
/// surrogates or code points above U+10FFFF), or 0 if there is none.
size_t utf8Length(const uint8_t *p, size_t n) {
  uint8_t c = p[0];
  auto cont = [&](size_t i) { return i < n && (p[i] & 0xC0) == 0x80; };
  if (c < 0x80)
    return 1;
  if (c < 0xC2)
    return 0;
  if (c < 0xE0)
    return cont(1) ? 2 : 0;
  if (c < 0xF0) {
    if (!cont(1) || !cont(2) || (c == 0xE0 && p[1] < 0xA0) ||
        (c == 0xED && p[1] >= 0xA0))
      return 0;
    return 3;
  }
  if (c < 0xF5) {
    if (!cont(1) || !cont(2) || !cont(3) || (c == 0xF0 && p[1] < 0x90) ||
        (c == 0xF4 && p[1] >= 0x90))
      return 0;
    return 4;
  }
  return 0;
}

uint32_t decodeUtf8(const uint8_t *p, size_t len) {
  switch (len) {
  case 1:
    return p[0];
  case 2:
    return uint32_t(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
  case 3:
    return uint32_t(p[0] & 0x0F) << 12 | uint32_t(p[1] & 0x3F) << 6 |
           (p[2] & 0x3F);
  default:
    return uint32_t(p[0] & 0x07) << 18 | uint32_t(p[1] & 0x3F) << 12 |
           uint32_t(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
  }
}

uint64_t load64(const char *p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

uint32_t load32(const char *p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

/// Length of the ASCII prefix of [p, p + n), many bytes at a time.
size_t asciiPrefix(const char *p, size_t n) {
  size_t i = 0;
#ifdef __SSE2__
  for (; i + 16 <= n; i += 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p + i));
    if (_mm_movemask_epi8(v))
      break;
  }
#endif
  for (; i + 8 <= n; i += 8)
    if (load64(p + i) & 0x8080808080808080ull)
      break;
  while (i < n && uint8_t(p[i]) < 0x80)
    ++i;
  return i;
}

bool isAscii(std::string_view s) {
  return asciiPrefix(s.data(), s.size()) == s.size();
}

/// The first i >= from with uint8_t(s[i]) >= t (t >= 0x80), or s.size().
size_t findByteAtLeast(std::string_view s, size_t from, uint8_t t) {
  const char *p = s.data();
  size_t n = s.size(), i = from;
#ifdef __SSE2__
  const __m128i ts = _mm_set1_epi8(char(t));
  for (; i + 16 <= n; i += 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p + i));
    unsigned m =
        unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, ts), v)));
    if (m)
      return i + size_t(__builtin_ctz(m));
  }
#endif
  while (i < n && uint8_t(p[i]) < t)
    ++i;
  return i;
}

/// Utf8StreamDecoder::isValid (well-formed UTF-8), skipping ASCII runs a
/// word at a time: most text is mostly ASCII.
bool isValidUtf8(std::string_view s) {
  const auto *p = reinterpret_cast<const uint8_t *>(s.data());
  for (size_t i = 0; i < s.size();) {
    i += asciiPrefix(s.data() + i, s.size() - i);
    if (i == s.size())
      break;
    size_t len = utf8Length(p + i, s.size() - i);
    if (len == 0)
      return false;
    i += len;
  }
  return true;
}

// ASCII character classes of the GPT-2 regex (PCRE2 with UCP): \p{L} is
// A-Z a-z, \p{N} 0-9, \s tab, LF, VT, FF, CR and space; everything else
// (other controls, punctuation, DEL) is "other". kHigh: a byte of a
// non-ASCII character, which only PCRE2 classifies.
enum CharClass : uint8_t { kOther, kLetter, kDigit, kSpace, kHigh };

constexpr std::array<CharClass, 256> makeClasses() {
  std::array<CharClass, 256> t{};
  for (unsigned c = 0; c < 256; ++c)
    t[c] = c >= 0x80                                ? kHigh
           : (c | 0x20) >= 'a' && (c | 0x20) <= 'z' ? kLetter
           : c >= '0' && c <= '9'                   ? kDigit
           : c == ' ' || (c >= '\t' && c <= '\r')   ? kSpace
                                                    : kOther;
  return t;
}
constexpr std::array<CharClass, 256> kClass = makeClasses();

/// The length of the GPT-2 regex's match at `pos` (which, as every
/// character matches some alternative, starts at `pos`), decided on ASCII
/// alone; 0 when the match depends on a non-ASCII character, for PCRE2 to
/// decide. The alternatives, tried in order on ASCII:
///   's 't 're 've 'm 'll 'd   contractions (lower case only)
///   ` ?` + letters / digits / others      runs of one class, greedy
///   \s+(?!\S)                            a space run not followed by a
///                                         non-space, else all but the
///                                         last space of the run
///   \s+                                   a single space before a non-space
/// A run is decided by the byte after it, so a run that reaches a non-ASCII
/// byte is undecided. Checked against PCRE2 by BpeTokenizer.AsciiPreTokenizer.
RWKV_ALWAYS_INLINE size_t asciiPreToken(const char *s, size_t n, size_t pos) {
  auto cls = [&](size_t i) { return kClass[uint8_t(s[i])]; };
  char c = s[pos];
  if (c == '\'' && pos + 1 < n) {
    char d = s[pos + 1];
    if (d == 's' || d == 't' || d == 'm' || d == 'd')
      return 2;
    if (pos + 2 < n) {
      char e = s[pos + 2];
      if ((d == 'r' && e == 'e') || (d == 'v' && e == 'e') ||
          (d == 'l' && e == 'l'))
        return 3;
    }
  }
  CharClass k = cls(pos);
  size_t i = pos + 1;
  if (c == ' ' && i < n && cls(i) != kSpace) {
    k = cls(i); // ` ?` takes the space into a run of letters, digits or others
    ++i;
  }
  if (k == kHigh)
    return 0;
  while (i < n && cls(i) == k)
    ++i;
  if (i == n)
    return n - pos;
  if (cls(i) == kHigh)
    return 0;
  if (k != kSpace)
    return i - pos;
  // A space run before a non-space: \s+(?!\S) backtracks one character,
  // unless that leaves nothing; then \s+ takes the one character.
  return i - pos >= 2 ? i - pos - 1 : 1;
}

/// Open-addressing map from a pair of token ids to (rank, merged id).
class MergeTable {
public:
  void reserve(size_t n) {
    size_t cap = 16;
    shift = 60;
    while (cap < 2 * n) {
      cap *= 2;
      --shift;
    }
    entries.assign(cap, Entry{kEmpty, 0, 0});
    mask = cap - 1;
  }
  /// Later entries replace earlier ones, as HF's HashMap collect does.
  void insert(int32_t a, int32_t b, uint32_t rank, int32_t merged) {
    uint64_t key = pack(a, b);
    size_t i = slot(key);
    while (entries[i].key != kEmpty && entries[i].key != key)
      i = (i + 1) & mask;
    entries[i] = {key, rank, merged};
  }
  /// Returns false if (a, b) is not a merge.
  bool find(int32_t a, int32_t b, uint32_t &rank, int32_t &merged) const {
    uint64_t key = pack(a, b);
    for (size_t i = slot(key);; i = (i + 1) & mask) {
      const Entry &e = entries[i];
      if (e.key == key) {
        rank = e.rank;
        merged = e.merged;
        return true;
      }
      if (e.key == kEmpty)
        return false;
    }
  }

private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  // Key and value side by side: one cache line per lookup.
  struct Entry {
    uint64_t key;
    uint32_t rank;
    int32_t merged;
  };
  static uint64_t pack(int32_t a, int32_t b) {
    return uint64_t(uint32_t(a)) << 32 | uint32_t(b);
  }
  // Fibonacci hashing: the top bits of the product.
  size_t slot(uint64_t key) const {
    return size_t((key * 0x9E3779B97F4A7C15ull) >> shift);
  }
  std::vector<Entry> entries;
  size_t mask = 0;
  unsigned shift = 60;
};

/// a[0, n) == b[0, n), with word loads for the short keys of the cache.
RWKV_ALWAYS_INLINE bool sameBytes(const char *a, const char *b, size_t n) {
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8)
      if (load64(a + i) != load64(b + i))
        return false;
    return load64(a + n - 8) == load64(b + n - 8);
  }
  if (n >= 4)
    return load32(a) == load32(b) && load32(a + n - 4) == load32(b + n - 4);
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i])
      return false;
  return true;
}

/// 64x64 -> 128-bit multiply, folded: the mixing step of wyhash.
uint64_t mix(uint64_t a, uint64_t b) {
  unsigned __int128 r = (unsigned __int128)a * b;
  return uint64_t(r) ^ uint64_t(r >> 64);
}

/// Hash of a pre-token, a few word loads and multiplies rather than a
/// multiply per byte (most pre-tokens are 2..8 bytes).
uint64_t hashWord(std::string_view word) {
  const char *p = word.data();
  size_t n = word.size();
  constexpr uint64_t k0 = 0xA0761D6478BD642Full, k1 = 0xE7037ED1A0B428DBull;
  uint64_t a = 0, b = 0, seed = k0 ^ n;
  if (n > 16) {
    const char *end = p + n;
    for (; n > 16; p += 16, n -= 16)
      seed = mix(load64(p) ^ k1, load64(p + 8) ^ seed);
    // The last 16 bytes of the word (overlapping the last block when fewer
    // remain): never past its end.
    a = load64(end - 16);
    b = load64(end - 8);
  } else if (n >= 8) {
    a = load64(p);
    b = load64(p + n - 8); // overlaps: covers the last 8..16 bytes
  } else if (n >= 4) {
    a = load32(p);
    b = load32(p + n - 4);
  } else if (n > 0) {
    a = uint64_t(uint8_t(p[0])) << 16 | uint64_t(uint8_t(p[n >> 1])) << 8 |
        uint8_t(p[n - 1]);
  }
  return mix(mix(a ^ k1, b ^ seed), k0);
}

/// Pre-token bytes -> BPE ids, shared by the threads that encode. Lookups
/// take no lock: a slot is published with a release store after its entry,
/// key and ids are written, and nothing published ever changes or moves,
/// because the cache is insert-only (like HF's, it takes no more words once
/// full). Inserts, one per new word, take a mutex.
class WordCache {
public:
  WordCache()
      : slots(new std::atomic<uint64_t>[kSlots]()),
        entries(new Entry[kCacheCapacity]), keys(new char[kKeyBytes]),
        ids(new int32_t[kIds]) {}

  /// Appends the cached ids of `word` to `out`; false if absent.
  bool find(std::string_view word, uint64_t hash,
            std::vector<int32_t> &out) const {
    for (size_t i = hash >> kShift;; i = (i + 1) & kMask) {
      uint64_t slot = slots[i].load(std::memory_order_acquire);
      if (slot == 0)
        return false;
      if (uint32_t(slot >> 32) != uint32_t(hash))
        continue;
      const Entry &e = entries[uint32_t(slot) - 1];
      if (e.keyLen == word.size() &&
          sameBytes(keys.get() + e.keyOff, word.data(), word.size())) {
        for (const int32_t *id = ids.get() + e.idOff, *end = id + e.idLen;
             id != end; ++id)
          out.push_back(*id);
        return true;
      }
    }
  }

  /// `word` is 1..kMaxCachedWord bytes, with at most as many ids as bytes.
  /// Does nothing if another thread has added it or the cache is full.
  void insert(std::string_view word, uint64_t hash,
              const std::vector<int32_t> &wordIds) {
    std::lock_guard<std::mutex> lock(writeMutex);
    if (count == kCacheCapacity || keyTop + word.size() > kKeyBytes ||
        idTop + wordIds.size() > kIds)
      return;
    size_t i = hash >> kShift;
    for (;; i = (i + 1) & kMask) {
      // Only writers store slots, and they hold the mutex.
      uint64_t slot = slots[i].load(std::memory_order_relaxed);
      if (slot == 0)
        break;
      const Entry &e = entries[uint32_t(slot) - 1];
      if (uint32_t(slot >> 32) == uint32_t(hash) && e.keyLen == word.size() &&
          sameBytes(keys.get() + e.keyOff, word.data(), word.size()))
        return;
    }
    std::memcpy(keys.get() + keyTop, word.data(), word.size());
    std::copy(wordIds.begin(), wordIds.end(), ids.get() + idTop);
    entries[count] = {uint32_t(keyTop), uint32_t(idTop), uint16_t(word.size()),
                      uint16_t(wordIds.size())};
    keyTop += word.size();
    idTop += wordIds.size();
    ++count;
    slots[i].store(uint64_t(uint32_t(hash)) << 32 | count,
                   std::memory_order_release);
  }

private:
  struct Entry {
    uint32_t keyOff, idOff;
    uint16_t keyLen, idLen;
  };
  // A slot is 0 (empty) or the low half of the hash (the top bits pick the
  // slot) over 1 + the entry index. Load <= 1/2.
  static constexpr size_t kSlots = 2 * kCacheCapacity;
  static constexpr unsigned kShift = 64 - 18;
  static_assert(kSlots == size_t(1) << 18, "kShift must match kSlots");
  static constexpr size_t kMask = kSlots - 1;
  // Fixed arenas, so that published bytes never move: 8 key bytes and 8 ids
  // per word on average (the 97,000 distinct pre-tokens of 15.5 MB of text
  // average 8 bytes).
  static constexpr size_t kKeyBytes = 8 * kCacheCapacity;
  static constexpr size_t kIds = 8 * kCacheCapacity;

  std::unique_ptr<std::atomic<uint64_t>[]> slots;
  std::unique_ptr<Entry[]> entries;
  std::unique_ptr<char[]> keys;
  std::unique_ptr<int32_t[]> ids;
  std::mutex writeMutex;
  size_t count = 0, keyTop = 0, idTop = 0; // under writeMutex
};

/// 0x80 in each byte of v that is zero, exactly (no carries between bytes).
uint64_t zeroBytes(uint64_t v) {
  constexpr uint64_t low7 = 0x7F7F7F7F7F7F7F7Full;
  return ~(((v & low7) + low7) | v | low7);
}

/// The first i >= from with s[i] == x and s[i + 1] == y, or npos.
size_t findPair(std::string_view s, size_t from, uint8_t x, uint8_t y) {
  const char *p = s.data();
  size_t n = s.size(), i = from;
#ifdef __SSE2__
  // Sixteen positions at a time: bit k of the mask flags s[i + k] == x and
  // s[i + k + 1] == y.
  const __m128i xs16 = _mm_set1_epi8(char(x)), ys16 = _mm_set1_epi8(char(y));
  for (; i + 17 <= n; i += 16) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p + i));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p + i + 1));
    unsigned m = unsigned(_mm_movemask_epi8(
        _mm_and_si128(_mm_cmpeq_epi8(a, xs16), _mm_cmpeq_epi8(b, ys16))));
    if (m)
      return i + size_t(__builtin_ctz(m));
  }
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  // Eight positions at a time: byte k of the mask flags s[i + k] == x and
  // s[i + k + 1] == y.
  const uint64_t xs = 0x0101010101010101ull * x;
  const uint64_t ys = 0x0101010101010101ull * y;
  for (; i + 9 <= n; i += 8) {
    uint64_t m =
        zeroBytes(load64(p + i) ^ xs) & zeroBytes(load64(p + i + 1) ^ ys);
    if (m)
      return i + size_t(__builtin_ctzll(m) >> 3);
  }
#endif
  for (; i + 1 < n; ++i)
    if (uint8_t(p[i]) == x && uint8_t(p[i + 1]) == y)
      return i;
  return std::string_view::npos;
}

/// Byte trie over the added tokens of one kind (normalized or not), for
/// leftmost-longest matching.
class AddedTrie {
public:
  void add(std::string_view content, int32_t id) {
    if (nodes.empty())
      nodes.emplace_back();
    uint32_t node = 0;
    for (uint8_t b : content) {
      auto &kids = nodes[node].kids;
      auto it = std::find_if(kids.begin(), kids.end(),
                             [b](const auto &e) { return e.first == b; });
      if (it != kids.end()) {
        node = it->second;
        continue;
      }
      uint32_t child = uint32_t(nodes.size());
      kids.emplace_back(b, child);
      nodes.emplace_back(); // invalidates `kids`
      node = child;
    }
    // A duplicate content keeps its first id, as HF's trie does.
    if (nodes[node].id < 0)
      nodes[node].id = id;
    if (node != 0 && !starts[uint8_t(content[0])]) {
      starts[uint8_t(content[0])] = true;
      ++numStarts;
      onlyStart = uint8_t(content[0]);
    }
    // All tokens start with the same two bytes (and none is one byte long)?
    const Node &first = nodes[nodes[0].kids[0].second];
    onlyPair =
        nodes[0].kids.size() == 1 && first.id < 0 && first.kids.size() == 1;
    if (onlyPair)
      onlySecond = first.kids[0].first;
  }

  /// The leftmost-longest match in s at or after `from`: its start, length
  /// and id; false if there is none.
  bool next(std::string_view s, size_t from, size_t &start, size_t &len,
            int32_t &id) const {
    if (nodes.empty())
      return false;
    for (size_t i = from; i < s.size(); ++i) {
      // The 20B tokens start with "<|" or "  " (one set each): a word-wide
      // scan skips to candidates, where memchr would stop at every space.
      if (onlyPair) {
        i = findPair(s, i, onlyStart, onlySecond);
        if (i == std::string_view::npos)
          return false;
      } else if (numStarts == 1) {
        const void *hit = std::memchr(s.data() + i, onlyStart, s.size() - i);
        if (!hit)
          return false;
        i = size_t(static_cast<const char *>(hit) - s.data());
      } else if (!starts[uint8_t(s[i])]) {
        continue;
      }
      uint32_t node = 0;
      int32_t best = -1;
      size_t bestLen = 0;
      for (size_t j = i; j < s.size(); ++j) {
        const auto &kids = nodes[node].kids;
        auto it = std::find_if(kids.begin(), kids.end(), [&](const auto &e) {
          return e.first == uint8_t(s[j]);
        });
        if (it == kids.end())
          break;
        node = it->second;
        if (nodes[node].id >= 0) {
          best = nodes[node].id;
          bestLen = j + 1 - i;
        }
      }
      if (best >= 0) {
        start = i;
        len = bestLen;
        id = best;
        return true;
      }
    }
    return false;
  }

private:
  struct Node {
    int32_t id = -1;
    std::vector<std::pair<uint8_t, uint32_t>> kids;
  };
  std::vector<Node> nodes;
  std::array<bool, 256> starts{};
  unsigned numStarts = 0;
  uint8_t onlyStart = 0;
  bool onlyPair = false;
  uint8_t onlySecond = 0;
};

/// A symbol of a word being merged, in a doubly linked list over the bytes.
struct Symbol {
  int32_t id;
  int32_t prev, next;
  bool alive;
};
struct Candidate {
  uint32_t rank;
  uint32_t pos;
  int32_t merged;
  // std heaps are max-heaps: inverted, to pop the lowest rank first, then
  // the leftmost position (HF's Merge ordering).
  bool operator<(const Candidate &o) const {
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

struct MatchDataDeleter {
  void operator()(pcre2_match_data *md) const { pcre2_match_data_free(md); }
};

} // namespace

//===----------------------------------------------------------------------===//
// Impl
//===----------------------------------------------------------------------===//

struct BpeTokenizer::Impl {
  std::string name;

  bool nfc = false;
  const icu::Normalizer2 *normalizer = nullptr;
  // Bytes from this one up begin the characters that isNfc() leaves to ICU:
  // 0xCC (U+0300 and up), or 0x80 if this ICU disagrees that the
  // characters below U+0300 are NFC with a boundary before each.
  uint8_t nfcHighByte = 0x80;
  pcre2_code *regex = nullptr;
  bool jit = false;

  std::array<int32_t, 256> byteId{}; // id of each byte's one-char token
  MergeTable merges;
  AddedTrie rawAdded, normalizedAdded;

  std::vector<std::string> bytesById; // decoded bytes of every id
  std::vector<bool> present;
  size_t numModel = 0, numAdded = 0, numMergeEntries = 0;
  int32_t endOfText = 0;

  mutable WordCache cache;

  ~Impl() {
    if (regex)
      pcre2_code_free(regex);
  }

  [[noreturn]] void fail(const std::string &key, const std::string &msg) const {
    throw std::runtime_error(name + ": " + key + ": " + msg);
  }

  void load(const json &doc);
  void compileRegex();

  /// Per-call scratch of encode(): PCRE2 match data cannot be shared
  /// between threads (made on first use: ASCII text needs none), and the
  /// BPE buffers are reused from word to word.
  struct Scratch {
    std::unique_ptr<pcre2_match_data, MatchDataDeleter> match;
    bool ascii = false; // the whole input is ASCII
    std::vector<Symbol> symbols;
    std::vector<Candidate> heap;
    std::string normalized;
    std::vector<int32_t> word;
  };

  /// Encodes valid UTF-8 between two raw added tokens.
  void encodeSegment(std::string_view text, std::vector<int32_t> &out,
                     Scratch &s) const;
  /// Whether valid UTF-8 `text` is in NFC.
  bool isNfc(std::string_view text) const;
  void normalize(std::string_view in, std::string &out) const;
  void preTokenize(std::string_view piece, std::vector<int32_t> &out,
                   Scratch &s) const;
  /// The regex's next match at or after `pos`, [begin, end); begin is
  /// piece.size() if there is none.
  std::pair<size_t, size_t> regexMatch(std::string_view piece, size_t pos,
                                       Scratch &s) const;

  /// Calls emit(pre-token) for each pre-token of `piece`, in order. The
  /// hand-written matcher decides those of ASCII text (with `ascii`); PCRE2
  /// takes over, one match at a time, where a non-ASCII character matters.
  template <typename Emit>
  void split(std::string_view piece, Scratch &s, bool ascii,
             Emit &&emit) const {
    size_t pos = 0;
    while (pos < piece.size()) {
      if (size_t len =
              ascii ? asciiPreToken(piece.data(), piece.size(), pos) : 0) {
        emit(piece.substr(pos, len));
        pos += len;
        continue;
      }
      auto [begin, end] = regexMatch(piece, pos, s);
      // Unmatched text is a piece of its own in HF's split (cannot happen:
      // every character is \s, \p{L}, \p{N} or none of them).
      if (begin > pos)
        emit(piece.substr(pos, begin - pos));
      if (begin == piece.size())
        return;
      if (end == begin) // no alternative matches empty; guard against a loop
        end = begin + 1;
      emit(piece.substr(begin, end - begin));
      pos = end;
    }
  }
  void encodeWord(std::string_view word, std::vector<int32_t> &out,
                  Scratch &s) const;
  void mergeWord(std::string_view word, Scratch &s) const;
  void mergeShortWord(std::string_view word, Scratch &s) const;
};

//===----------------------------------------------------------------------===//
// Loading
//===----------------------------------------------------------------------===//

namespace {

/// The GPT-2 `bytes_to_unicode` table: printable Latin-1 bytes map to
/// themselves, the others to U+0100.. in byte order.
std::array<uint32_t, 256> byteToCodePoint() {
  std::array<uint32_t, 256> cp{};
  uint32_t next = 256;
  for (unsigned b = 0; b < 256; ++b) {
    bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    cp[b] = keep ? b : next++;
  }
  return cp;
}

/// What HF's ByteLevel decoder makes of one token: every character mapped
/// back to its byte, or the token's own UTF-8 if any character is outside
/// the byte-level alphabet (added tokens such as runs of spaces).
std::string decodeToken(const std::string &token,
                        const std::unordered_map<uint32_t, uint8_t> &toByte) {
  std::string out;
  const auto *p = reinterpret_cast<const uint8_t *>(token.data());
  for (size_t i = 0; i < token.size();) {
    size_t len = utf8Length(p + i, token.size() - i);
    if (len == 0)
      return token;
    auto it = toByte.find(decodeUtf8(p + i, len));
    if (it == toByte.end())
      return token;
    out += char(it->second);
    i += len;
  }
  return out;
}

/// Whether an optional JSON member is unset.
bool isNullOrAbsent(const json &obj, const char *key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null();
}

std::string typeOf(const json &obj) {
  auto it = obj.find("type");
  if (it == obj.end() || !it->is_string())
    return "";
  return it->get<std::string>();
}

} // namespace

void BpeTokenizer::Impl::load(const json &doc) {
  if (!doc.is_object())
    fail("(top level)", "expected a JSON object (a Hugging Face "
                        "tokenizer.json)");

  // Options that change what encode() returns and that this class does not
  // implement are refused instead of ignored.
  for (const char *key : {"truncation", "padding"})
    if (!isNullOrAbsent(doc, key))
      fail(key, "must be null (truncation and padding are not supported)");

  // normalizer
  if (!isNullOrAbsent(doc, "normalizer")) {
    const json &n = doc["normalizer"];
    std::string type = n.is_object() ? typeOf(n) : "";
    if (type != "NFC")
      fail("normalizer.type",
           "'" + (type.empty() ? n.dump() : type) +
               "' is not supported (supported: NFC or null)");
    nfc = true;
    UErrorCode status = U_ZERO_ERROR;
    normalizer = icu::Normalizer2::getNFCInstance(status);
    if (U_FAILURE(status) || !normalizer)
      fail("normalizer",
           std::string("ICU has no NFC data: ") + u_errorName(status));
    nfcHighByte = 0xCC;
    for (UChar32 c = 0; c < 0x300; ++c)
      if (!normalizer->hasBoundaryBefore(c) ||
          !normalizer->isNormalized(icu::UnicodeString(c), status) ||
          U_FAILURE(status)) {
        nfcHighByte = 0x80;
        break;
      }
  }

  // pre_tokenizer: ByteLevel with the GPT-2 regex, no prefix space.
  {
    auto it = doc.find("pre_tokenizer");
    if (it == doc.end() || !it->is_object() || typeOf(*it) != "ByteLevel")
      fail("pre_tokenizer.type",
           "'" +
               (it == doc.end()   ? std::string("null")
                : it->is_object() ? typeOf(*it)
                                  : it->dump()) +
               "' is not supported (supported: ByteLevel)");
    const json &p = *it;
    auto prefix = p.find("add_prefix_space");
    if (prefix == p.end() || !prefix->is_boolean() || prefix->get<bool>())
      fail("pre_tokenizer.add_prefix_space",
           "must be false (a prefix space is not supported)");
    auto useRegex = p.find("use_regex");
    if (useRegex != p.end() &&
        (!useRegex->is_boolean() || !useRegex->get<bool>()))
      fail("pre_tokenizer.use_regex", "must be true (or absent)");
  }

  // post_processor / decoder: ByteLevel adds no tokens and maps characters
  // back to bytes; anything else would change encode() or decode().
  if (!isNullOrAbsent(doc, "post_processor") &&
      typeOf(doc["post_processor"]) != "ByteLevel")
    fail("post_processor.type", "'" + typeOf(doc["post_processor"]) +
                                    "' is not supported (supported: "
                                    "ByteLevel or null)");
  if (isNullOrAbsent(doc, "decoder") || typeOf(doc["decoder"]) != "ByteLevel")
    fail("decoder.type",
         "'" +
             (isNullOrAbsent(doc, "decoder") ? std::string("null")
                                             : typeOf(doc["decoder"])) +
             "' is not supported (supported: ByteLevel)");

  // model
  auto mit = doc.find("model");
  if (mit == doc.end() || !mit->is_object())
    fail("model", "missing or not an object");
  const json &model = *mit;
  if (model.contains("type") && typeOf(model) != "BPE")
    fail("model.type",
         "'" + typeOf(model) + "' is not supported (supported: BPE)");
  if (!isNullOrAbsent(model, "dropout") &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0))
    fail("model.dropout", "must be null (BPE dropout is not supported)");
  if (!isNullOrAbsent(model, "unk_token"))
    fail("model.unk_token", "must be null (an unknown token is not "
                            "supported; byte-level BPE needs none)");
  for (const char *key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (!isNullOrAbsent(model, key) &&
        !(model[key].is_string() && model[key].get<std::string>().empty()))
      fail(std::string("model.") + key, "must be null (not supported)");
  for (const char *key : {"byte_fallback", "ignore_merges"})
    if (!isNullOrAbsent(model, key) &&
        !(model[key].is_boolean() && !model[key].get<bool>()))
      fail(std::string("model.") + key, "must be false (not supported)");

  auto vit = model.find("vocab");
  if (vit == model.end() || !vit->is_object())
    fail("model.vocab", "missing or not an object");
  std::unordered_map<std::string, int32_t> vocab;
  vocab.reserve(vit->size());
  std::vector<std::string> tokenById;
  for (auto it = vit->begin(); it != vit->end(); ++it) {
    const json &v = it.value();
    if (!v.is_number_unsigned() ||
        v.get<uint64_t>() > uint64_t(std::numeric_limits<int32_t>::max() - 1))
      fail("model.vocab[\"" + it.key() + "\"]",
           "id must be an integer in 0..2147483646, not " + v.dump());
    int32_t id = int32_t(v.get<uint64_t>());
    if (size_t(id) >= tokenById.size()) {
      tokenById.resize(size_t(id) + 1);
      present.resize(size_t(id) + 1, false);
    }
    if (present[size_t(id)])
      fail("model.vocab[\"" + it.key() + "\"]",
           "id " + std::to_string(id) + " is also used by \"" +
               tokenById[size_t(id)] + "\"");
    present[size_t(id)] = true;
    tokenById[size_t(id)] = it.key();
    vocab.emplace(it.key(), id);
  }
  numModel = vocab.size();

  // Every byte that UTF-8 text can contain needs its one-character token,
  // or HF would silently drop it. 0xC0, 0xC1 and 0xF5..0xFF never occur in
  // UTF-8 (the 20B vocabulary has no tokens for them).
  std::array<uint32_t, 256> cps = byteToCodePoint();
  std::unordered_map<uint32_t, uint8_t> toByte;
  for (unsigned b = 0; b < 256; ++b) {
    std::string ch;
    appendUtf8(ch, cps[b]);
    toByte.emplace(cps[b], uint8_t(b));
    auto it = vocab.find(ch);
    bool inUtf8 = b < 0xC0 || (b >= 0xC2 && b <= 0xF4);
    if (it == vocab.end() && inUtf8)
      fail("model.vocab", "has no token for byte " + hexByte(b) +
                              " (the byte-level character \"" + ch + "\")");
    byteId[b] = it == vocab.end() ? -1 : it->second;
  }

  auto git = model.find("merges");
  if (git == model.end() || !git->is_array())
    fail("model.merges", "missing or not an array");
  merges.reserve(git->size());
  numMergeEntries = git->size();
  for (size_t i = 0; i < git->size(); ++i) {
    const json &m = (*git)[i];
    std::string key = "model.merges[" + std::to_string(i) + "]";
    std::string a, b;
    if (m.is_string()) {
      // "a b": HF splits on the single space (byte-level tokens hold none).
      const std::string &s = m.get_ref<const std::string &>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail(key, "expected \"left right\", got \"" + s + "\"");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() &&
               m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      fail(key, "expected \"left right\" or [left, right], got " + m.dump());
    }
    auto ia = vocab.find(a), ib = vocab.find(b), im = vocab.find(a + b);
    if (ia == vocab.end())
      fail(key, "\"" + a + "\" is not in model.vocab");
    if (ib == vocab.end())
      fail(key, "\"" + b + "\" is not in model.vocab");
    if (im == vocab.end())
      fail(key, "the merged token \"" + a + b + "\" is not in model.vocab");
    merges.insert(ia->second, ib->second, uint32_t(i), im->second);
  }

  // added_tokens
  std::vector<std::pair<int32_t, std::string>> added;
  if (!isNullOrAbsent(doc, "added_tokens")) {
    const json &list = doc["added_tokens"];
    if (!list.is_array())
      fail("added_tokens", "not an array");
    for (size_t i = 0; i < list.size(); ++i) {
      const json &t = list[i];
      std::string key = "added_tokens[" + std::to_string(i) + "]";
      if (!t.is_object())
        fail(key, "not an object");
      auto id = t.find("id");
      if (id == t.end() || !id->is_number_unsigned() ||
          id->get<uint64_t>() >
              uint64_t(std::numeric_limits<int32_t>::max() - 1))
        fail(key + ".id", "must be an integer in 0..2147483646");
      auto content = t.find("content");
      if (content == t.end() || !content->is_string() ||
          content->get_ref<const std::string &>().empty())
        fail(key + ".content", "must be a non-empty string");
      for (const char *flag : {"single_word", "lstrip", "rstrip"})
        if (!isNullOrAbsent(t, flag) &&
            !(t[flag].is_boolean() && !t[flag].get<bool>()))
          fail(key + "." + flag, "must be false (not supported)");
      bool special = t.value("special", false);
      bool normalizedFlag = t.value("normalized", !special);
      // nlohmann-json has already rejected ill-formed UTF-8 and surrogates.
      const std::string &text = content->get_ref<const std::string &>();
      int32_t tokenId = int32_t(id->get<uint64_t>());
      (normalizedFlag ? normalizedAdded : rawAdded).add(text, tokenId);
      added.emplace_back(tokenId, text);
      if (text == "<|endoftext|>")
        endOfText = tokenId;
    }
  }
  numAdded = added.size();

  // Decoded bytes of every id; an added token's id takes precedence, as in
  // HF's id_to_token.
  size_t size = tokenById.size();
  for (const auto &a : added)
    size = std::max(size, size_t(a.first) + 1);
  tokenById.resize(size);
  present.resize(size, false);
  for (const auto &a : added) {
    tokenById[size_t(a.first)] = a.second;
    present[size_t(a.first)] = true;
  }
  bytesById.resize(size);
  for (size_t id = 0; id < size; ++id)
    if (present[id])
      bytesById[id] = decodeToken(tokenById[id], toByte);

  compileRegex();
}

void BpeTokenizer::Impl::compileRegex() {
  int code = 0;
  PCRE2_SIZE offset = 0;
  regex = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern),
                        PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code,
                        &offset, nullptr);
  if (!regex) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    fail("pre_tokenizer", "cannot compile the GPT-2 regex with PCRE2: " +
                              std::string(reinterpret_cast<char *>(msg)));
  }
  // Without JIT support PCRE2 interprets the pattern: slower, same result.
  jit = pcre2_jit_compile(regex, PCRE2_JIT_COMPLETE) == 0;
}

//===----------------------------------------------------------------------===//
// Encoding
//===----------------------------------------------------------------------===//

void BpeTokenizer::Impl::normalize(std::string_view in,
                                   std::string &out) const {
  out.clear();
  UErrorCode status = U_ZERO_ERROR;
  icu::StringByteSink<std::string> sink(&out);
  // ICU takes int32_t lengths: long inputs go in pieces cut before a code
  // point that NFC never combines with what precedes it.
  constexpr size_t kPiece = size_t(1) << 28;
  const auto *p = reinterpret_cast<const uint8_t *>(in.data());
  size_t begin = 0;
  while (begin < in.size()) {
    size_t end = in.size();
    if (end - begin > kPiece) {
      end = begin + kPiece;
      while (end < in.size()) {
        size_t len = utf8Length(p + end, in.size() - end);
        if (len && normalizer->hasBoundaryBefore(decodeUtf8(p + end, len)))
          break;
        end += len ? len : 1;
      }
    }
    normalizer->normalizeUTF8(
        0, icu::StringPiece(in.data() + begin, int32_t(end - begin)), sink,
        nullptr, status);
    if (U_FAILURE(status))
      throw std::runtime_error(
          name + ": NFC normalisation failed: " + u_errorName(status));
    begin = end;
  }
}

bool BpeTokenizer::Impl::isNfc(std::string_view text) const {
  // Text made of characters below U+0300 is NFC, and it may be cut before
  // any such character (verified at load, see nfcHighByte). So ICU checks
  // only spans that hold characters from U+0300 up (lead bytes >= 0xCC; the
  // bytes of other characters are all below), from the character before
  // the first to the first character below U+0300 that no other follows
  // closely (fewer ICU calls on text such as Cyrillic words and spaces).
  const auto *p = reinterpret_cast<const uint8_t *>(text.data());
  const size_t n = text.size();
  const uint8_t high = nfcHighByte;
  auto leadLength = [](uint8_t b) -> size_t {
    return b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
  };
  constexpr size_t kGap = 32;
  for (size_t i = findByteAtLeast(text, 0, high); i < n;) {
    size_t begin = i;
    if (begin > 0) // back to the start of the preceding character
      for (--begin; begin > 0 && (p[begin] & 0xC0) == 0x80;)
        --begin;
    size_t end = i;
    while (end < n) {
      if (p[end] >= high) {
        end += leadLength(p[end]);
        continue;
      }
      size_t next = std::min(findByteAtLeast(text, end, high), n);
      if (next - end >= kGap || next == n)
        break;
      end = next;
    }
    if (end - begin > size_t(std::numeric_limits<int32_t>::max()))
      return false; // normalize() copes with it
    UErrorCode status = U_ZERO_ERROR;
    if (!normalizer->isNormalizedUTF8(
            icu::StringPiece(text.data() + begin, int32_t(end - begin)),
            status) ||
        U_FAILURE(status))
      return false;
    i = end < n ? findByteAtLeast(text, end, high) : n;
  }
  return true;
}

void BpeTokenizer::Impl::encodeSegment(std::string_view text,
                                       std::vector<int32_t> &out,
                                       Scratch &s) const {
  std::string_view normal = text;
  if (nfc && !s.ascii && !isNfc(text)) {
    normalize(text, s.normalized);
    normal = s.normalized;
  }
  // Added tokens with `normalized: true` are matched after NFC.
  size_t pos = 0, start = 0, len = 0;
  int32_t id = 0;
  while (normalizedAdded.next(normal, pos, start, len, id)) {
    preTokenize(normal.substr(pos, start - pos), out, s);
    out.push_back(id);
    pos = start + len;
  }
  preTokenize(normal.substr(pos), out, s);
}

void BpeTokenizer::Impl::preTokenize(std::string_view piece,
                                     std::vector<int32_t> &out,
                                     Scratch &s) const {
  split(piece, s, /*ascii=*/true,
        [&](std::string_view word) { encodeWord(word, out, s); });
}

std::pair<size_t, size_t> BpeTokenizer::Impl::regexMatch(std::string_view piece,
                                                         size_t pos,
                                                         Scratch &s) const {
  if (!s.match) {
    s.match.reset(pcre2_match_data_create_from_pattern(regex, nullptr));
    if (!s.match)
      throw std::bad_alloc();
  }
  const auto *subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
  // pcre2_jit_match skips pcre2_match's option checks: same result.
  int rc = jit ? pcre2_jit_match(regex, subject, piece.size(), pos,
                                 PCRE2_NO_UTF_CHECK, s.match.get(), nullptr)
               : pcre2_match(regex, subject, piece.size(), pos,
                             PCRE2_NO_UTF_CHECK, s.match.get(), nullptr);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
    rc = pcre2_match(regex, subject, piece.size(), pos,
                     PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, s.match.get(), nullptr);
  if (rc == PCRE2_ERROR_NOMATCH)
    return {piece.size(), piece.size()};
  if (rc < 0) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    throw std::runtime_error(name + ": pre-tokenizer regex failed: " +
                             reinterpret_cast<char *>(msg));
  }
  const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s.match.get());
  return {ov[0], ov[1]};
}

void BpeTokenizer::Impl::encodeWord(std::string_view word,
                                    std::vector<int32_t> &out,
                                    Scratch &s) const {
  if (word.empty())
    return;
  if (word.size() == 1) {
    out.push_back(byteId[uint8_t(word[0])]);
    return;
  }
  // Long words (runs of letters without spaces) are rare: not worth a slot.
  if (word.size() > kMaxCachedWord) {
    mergeWord(word, s);
    out.insert(out.end(), s.word.begin(), s.word.end());
    return;
  }
  uint64_t hash = hashWord(word);
  if (cache.find(word, hash, out))
    return;
  mergeWord(word, s);
  out.insert(out.end(), s.word.begin(), s.word.end());
  cache.insert(word, hash, s.word);
}

void BpeTokenizer::Impl::mergeShortWord(std::string_view word,
                                        Scratch &s) const {
  // HF's heap (mergeWord) pops the candidate of lowest (rank, position)
  // among the pairs now adjacent: a rank belongs to one pair, and an entry
  // whose pair has changed always fails the check (its merged token would
  // span other bytes). So merging the leftmost lowest-ranked adjacent pair,
  // found by a scan, makes the same merges; for a few symbols it is cheaper
  // than a heap.
  //
  // sym[i].pair is the merge of symbol i with symbol i + 1 as rank << 32 |
  // merged id (the lowest value is the lowest rank), kNone if there is none.
  constexpr uint64_t kNone = std::numeric_limits<uint64_t>::max();
  struct Sym {
    uint64_t pair;
    int32_t id;
  } sym[kShortWord];
  size_t n = std::min(word.size(), kShortWord);
  auto pair = [&](size_t i) {
    uint32_t rank = 0;
    int32_t merged = 0;
    sym[i].pair = merges.find(sym[i].id, sym[i + 1].id, rank, merged)
                      ? uint64_t(rank) << 32 | uint32_t(merged)
                      : kNone;
  };
  for (size_t i = 0; i < n; ++i)
    sym[i].id = byteId[uint8_t(word[i])];
  sym[n - 1].pair = kNone;
  for (size_t i = 0; i + 1 < n; ++i)
    pair(i);
  while (n > 1) {
    size_t best = 0;
    uint64_t low = sym[0].pair;
    for (size_t i = 1; i + 1 < n; ++i)
      if (sym[i].pair < low) {
        low = sym[i].pair;
        best = i;
      }
    if (low == kNone)
      break;
    // Symbol best + 1 is merged into best: one move closes the gap.
    sym[best].id = int32_t(uint32_t(low));
    --n;
    for (size_t i = best + 1; i < n; ++i)
      sym[i] = sym[i + 1];
    sym[n - 1].pair = kNone;
    if (best > 0)
      pair(best - 1);
    if (best + 1 < n)
      pair(best);
  }
  s.word.clear();
  for (size_t i = 0; i < n; ++i)
    s.word.push_back(sym[i].id);
}

void BpeTokenizer::Impl::mergeWord(std::string_view word, Scratch &s) const {
  if (word.size() <= kShortWord)
    return mergeShortWord(word, s);
  // HF's Word::merge_all: a min-heap of candidate merges ordered by (rank,
  // position); stale entries are skipped when popped.
  if (word.size() > size_t(std::numeric_limits<int32_t>::max()))
    throw std::length_error(name + ": a pre-token of " +
                            std::to_string(word.size()) + " bytes");
  auto &sym = s.symbols;
  sym.clear();
  for (size_t i = 0; i < word.size(); ++i)
    sym.push_back({byteId[uint8_t(word[i])], int32_t(i) - 1,
                   i + 1 < word.size() ? int32_t(i + 1) : -1, true});
  auto &heap = s.heap;
  heap.clear();
  uint32_t rank = 0;
  int32_t merged = 0;
  for (size_t i = 0; i + 1 < sym.size(); ++i)
    if (merges.find(sym[i].id, sym[i + 1].id, rank, merged))
      heap.push_back({rank, uint32_t(i), merged});
  std::make_heap(heap.begin(), heap.end());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    Candidate top = heap.back();
    heap.pop_back();
    Symbol &left = sym[top.pos];
    if (!left.alive || left.next < 0)
      continue;
    Symbol &right = sym[size_t(left.next)];
    if (!merges.find(left.id, right.id, rank, merged) || merged != top.merged)
      continue;
    left.id = top.merged;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0)
      sym[size_t(right.next)].prev = int32_t(top.pos);
    if (left.prev >= 0 &&
        merges.find(sym[size_t(left.prev)].id, left.id, rank, merged)) {
      heap.push_back({rank, uint32_t(left.prev), merged});
      std::push_heap(heap.begin(), heap.end());
    }
    if (left.next >= 0 &&
        merges.find(left.id, sym[size_t(left.next)].id, rank, merged)) {
      heap.push_back({rank, top.pos, merged});
      std::push_heap(heap.begin(), heap.end());
    }
  }
  s.word.clear();
  for (int32_t i = 0; i >= 0; i = sym[size_t(i)].next)
    s.word.push_back(sym[size_t(i)].id);
}

//===----------------------------------------------------------------------===//
// BpeTokenizer
//===----------------------------------------------------------------------===//

BpeTokenizer::BpeTokenizer(std::unique_ptr<Impl> impl)
    : impl(std::move(impl)) {}
BpeTokenizer::~BpeTokenizer() = default;

std::unique_ptr<BpeTokenizer> BpeTokenizer::fromFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error(path + ": cannot open tokenizer file");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad())
    throw std::runtime_error(path + ": error reading tokenizer file");
  return fromString(buffer.str(), path);
}

std::unique_ptr<BpeTokenizer>
BpeTokenizer::fromString(std::string_view text, const std::string &name) {
  auto impl = std::make_unique<Impl>();
  impl->name = name;
  json doc;
  try {
    doc = json::parse(text.begin(), text.end());
  } catch (const json::parse_error &e) {
    throw std::runtime_error(name + ": not valid JSON: " + e.what());
  }
  try {
    impl->load(doc);
  } catch (const json::exception &e) {
    // A member of an unexpected JSON type that the checks above let through.
    throw std::runtime_error(name + ": unexpected tokenizer JSON: " + e.what());
  }
  return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(impl)));
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view bytes) const {
  // HF takes strings: bytes that are not UTF-8 are first decoded lossily,
  // one U+FFFD per maximal invalid subpart, as Python's errors="replace".
  Impl::Scratch s;
  std::string sanitized;
  s.ascii = isAscii(bytes);
  if (!s.ascii && !isValidUtf8(bytes)) {
    sanitized = Utf8StreamDecoder::sanitize(bytes);
    bytes = sanitized;
  }
  std::vector<int32_t> out;
  out.reserve(bytes.size() / 2 + 16);
  // Added tokens with `normalized: false` are split out of the raw text.
  size_t pos = 0, start = 0, len = 0;
  int32_t id = 0;
  while (impl->rawAdded.next(bytes, pos, start, len, id)) {
    impl->encodeSegment(bytes.substr(pos, start - pos), out, s);
    out.push_back(id);
    pos = start + len;
  }
  impl->encodeSegment(bytes.substr(pos), out, s);
  return out;
}

std::string_view BpeTokenizer::tokenBytes(int32_t id) const {
  if (id < 0 || size_t(id) >= impl->bytesById.size() ||
      !impl->present[size_t(id)])
    throw std::out_of_range("token id " + std::to_string(id) +
                            " is not in the vocabulary (vocab size " +
                            std::to_string(impl->bytesById.size()) + ")");
  return impl->bytesById[size_t(id)];
}

size_t BpeTokenizer::vocabSize() const { return impl->bytesById.size(); }
int32_t BpeTokenizer::endOfTextId() const { return impl->endOfText; }
size_t BpeTokenizer::numModelTokens() const { return impl->numModel; }
size_t BpeTokenizer::numMerges() const { return impl->numMergeEntries; }
size_t BpeTokenizer::numAddedTokens() const { return impl->numAdded; }
bool BpeTokenizer::regexJit() const { return impl->jit; }

std::vector<std::string_view>
BpeTokenizer::preTokensForTesting(std::string_view text, bool regexOnly) const {
  std::vector<std::string_view> words;
  Impl::Scratch s;
  impl->split(text, s, !regexOnly,
              [&](std::string_view word) { words.push_back(word); });
  return words;
}
