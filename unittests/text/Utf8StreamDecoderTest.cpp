//===- Utf8StreamDecoderTest.cpp - Streaming UTF-8 decoder tests ----------===//

#include "runtime/text/Utf8StreamDecoder.h"
#include "TestUtil.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

using namespace rwkv;
using namespace rwkv::test;

namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

TEST(Utf8StreamDecoder, HoldsBackSplitCharacter) {
  Utf8StreamDecoder d;
  const std::string emoji = "\xF0\x9F\x98\x80"; // U+1F600
  EXPECT_EQ(d.feed("a"), "a");
  for (size_t i = 0; i + 1 < emoji.size(); ++i) {
    EXPECT_EQ(d.feed(emoji.substr(i, 1)), "") << "byte " << i;
    EXPECT_EQ(d.pendingBytes(), i + 1);
  }
  EXPECT_EQ(d.feed(emoji.substr(3) + "b"), emoji + "b");
  EXPECT_EQ(d.pendingBytes(), 0u);
  EXPECT_EQ(d.flush(), "");
}

TEST(Utf8StreamDecoder, InvalidBytesBecomeReplacement) {
  Utf8StreamDecoder d;
  EXPECT_EQ(d.feed("\xFF"), kFFFD); // never valid: emitted at once
  EXPECT_EQ(d.feed("\x80x"), kFFFD + "x");
  // Incomplete sequence broken by an ASCII byte: one U+FFFD, then the byte.
  EXPECT_EQ(d.feed("\xE2\x82"), "");
  EXPECT_EQ(d.feed("A"), kFFFD + "A");
  // Surrogates and overlongs are rejected at the first impossible byte.
  EXPECT_EQ(d.feed("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD);
  EXPECT_EQ(d.feed("\xC0\x80"), kFFFD + kFFFD);
  EXPECT_EQ(d.feed("\xF4\x90\x80\x80"), kFFFD + kFFFD + kFFFD + kFFFD);
  // A truncated sequence at the end becomes one U+FFFD on flush.
  EXPECT_EQ(d.feed("\xF0\x9F"), "");
  EXPECT_EQ(d.flush(), kFFFD);
  EXPECT_EQ(d.flush(), "");
  // reset() drops pending bytes silently.
  EXPECT_EQ(d.feed("\xE4\xBD"), "");
  d.reset();
  EXPECT_EQ(d.feed("z"), "z");
}

TEST(Utf8StreamDecoder, SanitizeAndIsValid) {
  EXPECT_EQ(Utf8StreamDecoder::sanitize("\xC3\x28"), kFFFD + "(");
  EXPECT_EQ(Utf8StreamDecoder::sanitize("ok \xE4\xBD\xA0"), "ok \xE4\xBD\xA0");
  EXPECT_EQ(Utf8StreamDecoder::sanitize("\xE4\xBD"), kFFFD);
  EXPECT_TRUE(Utf8StreamDecoder::isValid("\xE4\xBD\xA0\xF0\x9F\x98\x80"));
  EXPECT_TRUE(Utf8StreamDecoder::isValid(""));
  EXPECT_FALSE(Utf8StreamDecoder::isValid("\xE4\xBD"));
  EXPECT_FALSE(Utf8StreamDecoder::isValid("\xED\xA0\x80"));
}

/// Streams every golden case token by token: the output is always valid
/// UTF-8, equals the input for valid inputs, and multi-byte characters split
/// across tokens are held back until complete.
TEST(Utf8StreamDecoder, GoldenCasesTokenByToken) {
  std::ifstream in(sharedPath("golden/tokenizer_cases.json"));
  ASSERT_TRUE(in);
  nlohmann::json doc = nlohmann::json::parse(in);
  const WorldTokenizer &tok = worldTokenizer();
  size_t heldBack = 0;
  for (const auto &c : doc["cases"]) {
    std::string bytes = fromHex(c["utf8_hex"].get<std::string>());
    Utf8StreamDecoder d;
    std::string out;
    for (int32_t id : c["ids"].get<std::vector<int32_t>>()) {
      std::string piece = d.feed(tok.tokenBytes(id));
      ASSERT_TRUE(Utf8StreamDecoder::isValid(piece));
      if (piece.empty() && d.pendingBytes() > 0)
        ++heldBack;
      out += piece;
    }
    out += d.flush();
    if (c["text"].is_null()) {
      EXPECT_FALSE(Utf8StreamDecoder::isValid(bytes));
      EXPECT_EQ(out, Utf8StreamDecoder::sanitize(bytes));
      EXPECT_NE(out.find(kFFFD), std::string::npos);
    } else {
      EXPECT_EQ(out, bytes);
    }
  }
  // The emoji/ZWJ/flag and math-letter cases split characters over tokens.
  EXPECT_GT(heldBack, 0u);
}

TEST(Utf8StreamDecoder, EmojiCaseEmitsOnlyWholeCharacters) {
  const WorldTokenizer &tok = worldTokenizer();
  // Family ZWJ sequence and a flag: each emoji is 4 bytes.
  const std::string text = "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 "
                           "\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7";
  Utf8StreamDecoder d;
  std::string out;
  size_t silentTokens = 0;
  for (int32_t id : tok.encode(text)) {
    std::string_view bytes = tok.tokenBytes(id);
    std::string piece = d.feed(bytes);
    if (piece.empty())
      ++silentTokens; // a character is still incomplete
    // What has been emitted is always a prefix of the text ending on a
    // character boundary.
    out += piece;
    ASSERT_EQ(text.compare(0, out.size(), out), 0);
    ASSERT_TRUE(Utf8StreamDecoder::isValid(out));
  }
  EXPECT_EQ(out + d.flush(), text);
  EXPECT_GT(silentTokens, 0u);
}

} // namespace
