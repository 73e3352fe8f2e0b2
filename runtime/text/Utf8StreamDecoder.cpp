//===- Utf8StreamDecoder.cpp - Incremental, lossy UTF-8 validation --------===//

#include "runtime/text/Utf8StreamDecoder.h"

#include <cstdint>

using namespace rwkv;

static const char kReplacement[] = "\xEF\xBF\xBD"; // U+FFFD

namespace {
enum class Scan { Complete, Incomplete, Invalid };
} // namespace

/// Examines the sequence starting at s[0] (n > 0 bytes available). On
/// Complete, `len` is the sequence length; on Invalid, `len` is the length of
/// the maximal invalid subpart to replace; on Incomplete, every available
/// byte is a valid prefix of some character.
static Scan scanSequence(const uint8_t *s, size_t n, size_t &len) {
  uint8_t b0 = s[0];
  if (b0 < 0x80) {
    len = 1;
    return Scan::Complete;
  }
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF; // valid range of the second byte (Table 3-7)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0)
      lo = 0xA0; // overlong
    else if (b0 == 0xED)
      hi = 0x9F; // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0)
      lo = 0x90; // overlong
    else if (b0 == 0xF4)
      hi = 0x8F; // above U+10FFFF
  } else {
    len = 1; // continuation byte, C0/C1 or F5..FF: never valid as a lead
    return Scan::Invalid;
  }
  for (size_t k = 1; k < need; ++k) {
    if (k >= n)
      return Scan::Incomplete;
    uint8_t b = s[k];
    bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) {
      len = k;
      return Scan::Invalid;
    }
  }
  len = need;
  return Scan::Complete;
}

/// Appends the valid text of `bytes` to `out`, replacing invalid subparts.
/// Returns how many trailing bytes form an incomplete sequence (not
/// consumed).
static size_t decodeInto(std::string_view bytes, std::string &out) {
  const auto *s = reinterpret_cast<const uint8_t *>(bytes.data());
  size_t n = bytes.size(), i = 0;
  while (i < n) {
    size_t len = 0;
    switch (scanSequence(s + i, n - i, len)) {
    case Scan::Complete:
      out.append(bytes.data() + i, len);
      i += len;
      break;
    case Scan::Invalid:
      out += kReplacement;
      i += len;
      break;
    case Scan::Incomplete:
      return n - i;
    }
  }
  return 0;
}

std::string Utf8StreamDecoder::feed(std::string_view bytes) {
  pending.append(bytes.data(), bytes.size());
  std::string out;
  size_t held = decodeInto(pending, out);
  pending.erase(0, pending.size() - held);
  return out;
}

std::string Utf8StreamDecoder::flush() {
  std::string out = pending.empty() ? std::string() : kReplacement;
  pending.clear();
  return out;
}

std::string Utf8StreamDecoder::sanitize(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  if (decodeInto(bytes, out) != 0)
    out += kReplacement;
  return out;
}

bool Utf8StreamDecoder::isValid(std::string_view bytes) {
  const auto *s = reinterpret_cast<const uint8_t *>(bytes.data());
  size_t n = bytes.size(), i = 0, len = 0;
  while (i < n) {
    if (scanSequence(s + i, n - i, len) != Scan::Complete)
      return false;
    i += len;
  }
  return true;
}
