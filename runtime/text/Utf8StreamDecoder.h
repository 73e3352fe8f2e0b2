//===- Utf8StreamDecoder.h - Incremental, lossy UTF-8 validation ----------===//
//
// Token byte strings can split a multi-byte character. The stream decoder
// returns only complete, valid UTF-8: an incomplete trailing sequence is held
// back until more bytes arrive, and bytes that can never form a valid
// character are replaced by U+FFFD (one per maximal invalid subpart, the
// Unicode-recommended practice), so output never blocks forever.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_TEXT_UTF8STREAMDECODER_H
#define RWKV_RUNTIME_TEXT_UTF8STREAMDECODER_H

#include <cstddef>
#include <string>
#include <string_view>

namespace rwkv {

class Utf8StreamDecoder {
public:
  /// Appends bytes and returns the newly completed valid UTF-8 text.
  std::string feed(std::string_view bytes);

  /// Ends the stream: any held-back incomplete sequence becomes U+FFFD.
  std::string flush();

  /// Drops held-back bytes without emitting them.
  void reset() { pending.clear(); }

  /// Number of bytes held back waiting for completion (at most 3).
  size_t pendingBytes() const { return pending.size(); }

  /// Decodes a complete byte string lossily (invalid parts become U+FFFD).
  static std::string sanitize(std::string_view bytes);

  /// Whether `bytes` is entirely valid UTF-8.
  static bool isValid(std::string_view bytes);

private:
  std::string pending;
};

} // namespace rwkv

#endif // RWKV_RUNTIME_TEXT_UTF8STREAMDECODER_H
