//===- BpeTokenizerTest.cpp - GPT-NeoX 20B tokenizer tests ----------------===//

#include "runtime/text/BpeTokenizer.h"
#include "TestUtil.h"
#include "runtime/text/Utf8StreamDecoder.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

using namespace rwkv;
using namespace rwkv::test;

namespace {

std::string bpePath() { return sharedPath("tokenizer/20B_tokenizer.json"); }

const BpeTokenizer &bpe() {
  static std::unique_ptr<BpeTokenizer> tok = BpeTokenizer::fromFile(bpePath());
  return *tok;
}

/// The 20B file as JSON, to derive broken variants from.
const nlohmann::json &bpeJson() {
  static nlohmann::json doc = [] {
    std::ifstream in(bpePath());
    return nlohmann::json::parse(in);
  }();
  return doc;
}

/// The message of the std::runtime_error that loading `doc` throws ("" if
/// it loads).
std::string loadError(const nlohmann::json &doc) {
  try {
    BpeTokenizer::fromString(doc.dump(), "variant.json");
  } catch (const std::runtime_error &e) {
    return e.what();
  }
  return "";
}

std::string pieces(const Tokenizer &tok, const std::vector<int32_t> &ids) {
  std::string out;
  for (int32_t id : ids)
    out += "[" + std::string(tok.tokenBytes(id)) + "]";
  return out;
}

//===----------------------------------------------------------------------===//
// Golden cases and file facts
//===----------------------------------------------------------------------===//

TEST(BpeTokenizer, GoldenCases) {
  std::ifstream in(sharedPath("golden/tokenizer_20b_cases.json"));
  ASSERT_TRUE(in) << "missing golden/tokenizer_20b_cases.json";
  nlohmann::json doc = nlohmann::json::parse(in);
  const BpeTokenizer &tok = bpe();
  EXPECT_EQ(doc["vocab_size_with_added_tokens"].get<size_t>(), tok.vocabSize());
  EXPECT_EQ(doc["vocab_size_model"].get<size_t>(), tok.numModelTokens());

  size_t numCases = 0, numNotRoundtrip = 0;
  for (const auto &c : doc["cases"]) {
    std::string bytes = fromHex(c["utf8_hex"].get<std::string>());
    ASSERT_EQ(c["text"].get<std::string>(), bytes);
    std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> got = tok.encode(bytes);
    EXPECT_EQ(got, want) << "case " << c["text"] << "\n got pieces "
                         << pieces(tok, got);
    const auto &hexPieces = c["pieces_hex"];
    ASSERT_EQ(hexPieces.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_EQ(std::string(tok.tokenBytes(want[i])),
                fromHex(hexPieces[i].get<std::string>()))
          << "id " << want[i];
    // decoded may differ from the text: the normaliser is NFC.
    std::string decoded = c["decoded"].get<std::string>();
    EXPECT_EQ(tok.decode(want), decoded) << "case " << c["text"];
    EXPECT_EQ(decoded == bytes, c["roundtrip"].get<bool>());
    if (!c["roundtrip"].get<bool>()) {
      ++numNotRoundtrip;
      // Encoding the NFC form gives the same ids.
      EXPECT_EQ(tok.encode(decoded), want);
    }
    ++numCases;
  }
  EXPECT_EQ(numCases, 28u);
  EXPECT_GE(numNotRoundtrip, 1u);
}

TEST(BpeTokenizer, FileFacts) {
  const BpeTokenizer &tok = bpe();
  EXPECT_EQ(tok.vocabSize(), 50277u);
  EXPECT_EQ(tok.numModelTokens(), 50254u);
  EXPECT_EQ(tok.numMerges(), 50009u);
  EXPECT_EQ(tok.numAddedTokens(), 25u);
  EXPECT_EQ(tok.endOfTextId(), 0);
  EXPECT_EQ(tok.tokenBytes(0), "<|endoftext|>");
  EXPECT_EQ(tok.tokenBytes(1), "<|padding|>");
  EXPECT_EQ(tok.tokenBytes(50254), std::string(24, ' '));
  EXPECT_EQ(tok.tokenBytes(50276), std::string(2, ' '));
  EXPECT_EQ(tok.tokenBytes(187), "\n");      // "Ċ"
  EXPECT_EQ(tok.tokenBytes(1533), " world"); // "Ġworld"
  // A token of a non-ASCII byte: "Ã©" is the two bytes of "é".
  EXPECT_EQ(tok.decode(tok.encode("\xC3\xA9")), "\xC3\xA9");
}

//===----------------------------------------------------------------------===//
// Pre-tokenization, added tokens, normalisation
//===----------------------------------------------------------------------===//

TEST(BpeTokenizer, SpaceRunsAreAddedTokens) {
  const BpeTokenizer &tok = bpe();
  EXPECT_EQ(tok.encode("a  b"), (std::vector<int32_t>{66, 50276, 67}));
  EXPECT_EQ(pieces(tok, tok.encode("a b")), "[a][ b]");
  // Leftmost-longest: 25 spaces are the 24-space token and one more space,
  // which the regex then joins to the word.
  std::vector<int32_t> ids = tok.encode(std::string(25, ' ') + "x");
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 50254);
  EXPECT_EQ(pieces(tok, {ids.begin() + 1, ids.end()}), "[ x]");
  EXPECT_EQ(tok.encode(std::string(48, ' ')),
            (std::vector<int32_t>{50254, 50254}));
}

TEST(BpeTokenizer, SpecialTokensInsideText) {
  const BpeTokenizer &tok = bpe();
  EXPECT_EQ(tok.encode("<|endoftext|>"), std::vector<int32_t>{0});
  EXPECT_EQ(tok.encode("<|padding|><|endoftext|>"),
            (std::vector<int32_t>{1, 0}));
  // Not quite a special token: ordinary BPE.
  std::vector<int32_t> ids = tok.encode("<|endoftext|");
  EXPECT_GT(ids.size(), 1u);
  EXPECT_EQ(tok.decode(ids), "<|endoftext|");
}

TEST(BpeTokenizer, Contractions) {
  const BpeTokenizer &tok = bpe();
  // The GPT-2 regex splits lower-case contractions only.
  EXPECT_EQ(pieces(tok, tok.encode("it's")), "[it]['s]");
  EXPECT_EQ(pieces(tok, tok.encode("we'll")), "[we]['ll]");
}

TEST(BpeTokenizer, NfcNormalisation) {
  const BpeTokenizer &tok = bpe();
  // "e" + COMBINING ACUTE ACCENT encodes as the precomposed U+00E9.
  EXPECT_EQ(tok.encode("caf"
                       "e\xCC\x81"),
            tok.encode("caf\xC3\xA9"));
  EXPECT_EQ(tok.decode(tok.encode("e\xCC\x81")), "\xC3\xA9");
  // Canonical reordering: two marks of different classes after a base.
  std::string unordered =
      "a\xCC\x81\xCC\xA3"; // a, acute (230), dot below (220)
  EXPECT_EQ(tok.decode(tok.encode(unordered)),
            "\xE1\xBA\xA1\xCC\x81"); // U+1EA1 (a with dot below), acute
  // Normalisation does not reach across an added token.
  EXPECT_EQ(tok.decode(tok.encode("e<|endoftext|>\xCC\x81")),
            "e<|endoftext|>\xCC\x81");
}

TEST(BpeTokenizer, MongolianVowelSeparatorIsNotSpace) {
  // U+180E is not White_Space (Oniguruma's \s, which HF runs the regex
  // with) but PCRE2's \s matches it. As "other", it takes the apostrophe
  // into its pre-token: "\u180E'" + "s", not "\u180E" + "'s" (id 434).
  const BpeTokenizer &tok = bpe();
  EXPECT_EQ(tok.encode("\xE1\xA0\x8E's"),
            (std::vector<int32_t>{157, 243, 225, 8, 84}));
  EXPECT_EQ(tok.encode("'s"), std::vector<int32_t>{434});
}

TEST(BpeTokenizer, AsciiPreTokenizer) {
  // encode() splits ASCII text with a hand-written matcher and leaves any
  // match that depends on a non-ASCII character to PCRE2: both must give
  // the regex's pre-tokens. Whitespace before a non-space is the tricky
  // part (\s+(?!\S) gives back one character), and contractions.
  const BpeTokenizer &tok = bpe();
  auto check = [&](const std::string &text) {
    std::vector<std::string_view> fast = tok.preTokensForTesting(text, false);
    std::vector<std::string_view> regex = tok.preTokensForTesting(text, true);
    ASSERT_EQ(fast, regex) << "text \"" << text << "\"";
    std::string joined;
    for (std::string_view w : fast)
      joined += w;
    ASSERT_EQ(joined, text);
  };
  EXPECT_EQ(tok.preTokensForTesting("a  b\t\n c's 're'X", false),
            (std::vector<std::string_view>{"a", " ", " b", "\t\n", " c", "'s",
                                           " '", "re", "'", "X"}));

  // Every string of up to 3 characters over the classes that matter.
  const std::string small =
      std::string("aZ0' \t\n\r\v\f.-_\x1c\x7fsrelvmdt") + std::string(1, '\0');
  for (char a : small) {
    check(std::string(1, a));
    for (char b : small) {
      check(std::string{a, b});
      for (char c : small)
        check(std::string{a, b, c});
    }
  }

  // Random strings: all of ASCII, weighted towards spaces, contractions and
  // class changes, and some non-ASCII characters (letters, digits, spaces
  // such as U+00A0 and U+3000, U+180E) that hand the match to PCRE2.
  const std::vector<std::string> pieces = {" ",
                                           "  ",
                                           "\t",
                                           "\n",
                                           "\r\n",
                                           "\v",
                                           "\f",
                                           "'",
                                           "'s",
                                           "'t",
                                           "'re",
                                           "'ve",
                                           "'m",
                                           "'ll",
                                           "'d",
                                           "'S",
                                           "'r",
                                           "a",
                                           "Zz",
                                           "word",
                                           "42",
                                           "7",
                                           ".",
                                           "!?",
                                           "-",
                                           "_",
                                           "\x1c",
                                           "\x1f",
                                           "\x7f",
                                           "\x01",
                                           "\xC3\xA9",
                                           "\xC2\xA0",
                                           "\xE3\x80\x80",
                                           "\xE1\xA0\x8E",
                                           "\xD9\xA3",
                                           "\xE2\x80\xA8",
                                           "\xC2\x85",
                                           "\xC2\xB2"};
  std::mt19937 rng(10);
  for (int iter = 0; iter < 20000; ++iter) {
    std::string text;
    int n = int(rng() % 24);
    bool asciiOnly = iter % 2 == 0;
    for (int i = 0; i < n; ++i) {
      if (rng() % 4 == 0) {
        text += char(rng() % 128);
        continue;
      }
      const std::string &p = pieces[rng() % pieces.size()];
      if (asciiOnly && uint8_t(p[0]) >= 0x80)
        continue;
      text += p;
    }
    check(text);
    if (testing::Test::HasFatalFailure())
      return;
  }
}

//===----------------------------------------------------------------------===//
// Bytes, robustness, threads
//===----------------------------------------------------------------------===//

TEST(BpeTokenizer, InvalidUtf8BecomesReplacementCharacters) {
  // As HF on Python's bytes.decode("utf-8", "replace"): one U+FFFD per
  // maximal invalid subpart. The 20B vocabulary has no token for 0xFF.
  const BpeTokenizer &tok = bpe();
  const std::string fffd = "\xEF\xBF\xBD";
  const std::pair<std::string, std::string> cases[] = {
      {"\xFF", fffd},
      {"a\xC3", "a" + fffd},
      {"\xE2\x82 ok", fffd + " ok"},
      {"\xED\xA0\x80 surrogate", fffd + fffd + fffd + " surrogate"},
      {"\xC0\xAF slash", fffd + fffd + " slash"},
      {"x\x80\x80y", "x" + fffd + fffd + "y"},
      {"\xF4\x90\x80\x80", fffd + fffd + fffd + fffd},
      {std::string("\0\0 nul\xFE", 7), std::string("\0\0 nul", 6) + fffd},
  };
  for (const auto &[bytes, text] : cases) {
    std::vector<int32_t> ids = tok.encode(bytes);
    EXPECT_EQ(ids, tok.encode(text));
    EXPECT_EQ(tok.decode(ids), text);
  }
}

TEST(BpeTokenizer, RandomRoundTrip) {
  // Bytes from an alphabet with ASCII, NFC multi-byte characters, space
  // runs, special-token fragments and invalid bytes: decode(encode(x)) is
  // x with its invalid parts replaced.
  const BpeTokenizer &tok = bpe();
  const std::vector<std::string> alphabet = {"a",
                                             "b",
                                             "Z",
                                             " ",
                                             "  ",
                                             "   ",
                                             "\n",
                                             "\t",
                                             "'s",
                                             "'",
                                             "1",
                                             "42",
                                             "!",
                                             "?",
                                             "<|",
                                             "|>",
                                             "<|endoftext|>",
                                             "\xC3\xA9",
                                             "\xE4\xBD\xA0",
                                             "\xF0\x9F\x98\x80",
                                             "\xFF",
                                             "\x80",
                                             "\xE2\x82",
                                             "\r\n",
                                             "\xC2\xA0"};
  std::mt19937 rng(20);
  for (int iter = 0; iter < 500; ++iter) {
    std::string text;
    int n = int(rng() % 40);
    for (int i = 0; i < n; ++i)
      text += alphabet[rng() % alphabet.size()];
    std::vector<int32_t> ids = tok.encode(text);
    for (int32_t id : ids)
      ASSERT_LT(size_t(id), tok.vocabSize());
    ASSERT_EQ(tok.decode(ids), Utf8StreamDecoder::sanitize(text))
        << "iteration " << iter;
  }
}

TEST(BpeTokenizer, LongInputs) {
  const BpeTokenizer &tok = bpe();
  const size_t n = 1 << 20;
  // One 1 MB pre-token (the BPE heap), a 1 MB space run (added tokens), a
  // 256 KB run of combining marks (NFC) and 256 KB of invalid bytes (768 KB
  // of U+FFFD, one pre-token).
  for (const std::string &text :
       {std::string(n, 'a'), std::string(n, ' ') + "x",
        "e" +
            [&] {
              std::string marks;
              for (size_t i = 0; i < n / 8; ++i)
                marks += "\xCC\x81";
              return marks;
            }(),
        std::string(n / 4, '\xFF')}) {
    std::vector<int32_t> ids = tok.encode(text);
    EXPECT_FALSE(ids.empty());
    std::string back = tok.decode(ids);
    if (text[0] == 'e')
      EXPECT_EQ(back.substr(0, 4), "\xC3\xA9\xCC\x81"); // é + the rest
    else
      EXPECT_EQ(back, Utf8StreamDecoder::sanitize(text));
  }
}

TEST(BpeTokenizer, ConcurrentEncode) {
  const BpeTokenizer &tok = bpe();
  std::string text;
  for (int i = 0; i < 2000; ++i)
    text += "word" + std::to_string(i * 7919 % 1000) + " caf\xC3\xA9, ";
  std::vector<int32_t> want = tok.encode(text);
  std::vector<std::vector<int32_t>> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 5; ++k)
        got[t] = tok.encode(text);
    });
  for (auto &t : threads)
    t.join();
  for (const auto &g : got)
    EXPECT_EQ(g, want);
}

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

TEST(BpeTokenizer, MissingFile) {
  try {
    BpeTokenizer::fromFile("/nonexistent/tokenizer.json");
    FAIL() << "no exception";
  } catch (const std::runtime_error &e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer.json"),
              std::string::npos)
        << e.what();
  }
}

TEST(BpeTokenizer, MalformedJson) {
  try {
    BpeTokenizer::fromString("{\"model\": [1, 2", "broken.json");
    FAIL() << "no exception";
  } catch (const std::runtime_error &e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("broken.json: not valid JSON", 0), 0u) << msg;
  }
}

TEST(BpeTokenizer, UnsupportedSettingsNameTheKey) {
  struct Case {
    const char *pointer; // JSON pointer of the member to change
    nlohmann::json value;
    const char *wantKey;
    const char *wantDetail;
  };
  const Case cases[] = {
      {"/normalizer", {{"type", "NFKC"}}, "normalizer.type", "NFKC"},
      {"/normalizer",
       {{"type", "Sequence"}, {"normalizers", {}}},
       "normalizer.type",
       "Sequence"},
      {"/pre_tokenizer/add_prefix_space", true,
       "pre_tokenizer.add_prefix_space", "false"},
      {"/pre_tokenizer/use_regex", false, "pre_tokenizer.use_regex", "true"},
      {"/pre_tokenizer",
       {{"type", "Whitespace"}},
       "pre_tokenizer.type",
       "Whitespace"},
      {"/decoder", {{"type", "WordPiece"}}, "decoder.type", "WordPiece"},
      {"/post_processor",
       {{"type", "TemplateProcessing"}},
       "post_processor.type",
       "TemplateProcessing"},
      {"/truncation", {{"max_length", 8}}, "truncation", "null"},
      {"/model/type", "WordPiece", "model.type", "WordPiece"},
      {"/model/dropout", 0.1, "model.dropout", "dropout"},
      {"/model/unk_token", "<|endoftext|>", "model.unk_token", "null"},
      {"/model/byte_fallback", true, "model.byte_fallback", "false"},
      {"/model/merges/5", "nosuch token", "model.merges[5]", "nosuch"},
      {"/model/merges/7", "a b c", "model.merges[7]", "left right"},
      {"/model/merges/9", nlohmann::json::array({"\xC4\xA0", "zzzzzz"}),
       "model.merges[9]", "zzzzzz"},
      {"/model/vocab/!", -3, "model.vocab[\"!\"]", "-3"},
      {"/added_tokens/0/lstrip", true, "added_tokens[0].lstrip", "false"},
      {"/added_tokens/2/content", "", "added_tokens[2].content", "empty"},
  };
  for (const Case &c : cases) {
    nlohmann::json doc = bpeJson();
    doc[nlohmann::json::json_pointer(c.pointer)] = c.value;
    std::string msg = loadError(doc);
    EXPECT_EQ(msg.rfind(std::string("variant.json: ") + c.wantKey, 0), 0u)
        << c.pointer << ": " << msg;
    EXPECT_NE(msg.find(c.wantDetail), std::string::npos)
        << c.pointer << ": " << msg;
  }
  // A vocabulary without a byte that UTF-8 text can hold ("Ā" is byte 0).
  nlohmann::json doc = bpeJson();
  doc["model"]["vocab"].erase("\xC4\x80");
  doc["model"]["merges"] = nlohmann::json::array();
  std::string msg = loadError(doc);
  EXPECT_NE(msg.find("model.vocab: has no token for byte 0x00"),
            std::string::npos)
      << msg;
  // Merges given as pairs load like "a b" strings.
  doc = bpeJson();
  for (auto &m : doc["model"]["merges"]) {
    std::string s = m.get<std::string>();
    m = nlohmann::json::array(
        {s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  auto pairs = BpeTokenizer::fromString(doc.dump(), "pairs.json");
  EXPECT_EQ(pairs->encode("Hello world"), (std::vector<int32_t>{12092, 1533}));
  // No normaliser: the combining mark stays as it is.
  doc = bpeJson();
  doc["normalizer"] = nullptr;
  auto plain = BpeTokenizer::fromString(doc.dump(), "plain.json");
  EXPECT_EQ(plain->decode(plain->encode("e\xCC\x81")), "e\xCC\x81");
}

TEST(BpeTokenizer, OutOfRangeIds) {
  const BpeTokenizer &tok = bpe();
  for (int32_t id : {-1, 50277, 1 << 30}) {
    try {
      (void)tok.tokenBytes(id);
      FAIL() << "no exception for " << id;
    } catch (const std::out_of_range &e) {
      EXPECT_NE(std::string(e.what()).find("token id " + std::to_string(id)),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_THROW(tok.decode(std::vector<int32_t>{5, 99999}), std::out_of_range);
}

//===----------------------------------------------------------------------===//
// openTokenizer
//===----------------------------------------------------------------------===//

TEST(OpenTokenizer, DispatchesOnContent) {
  auto bpeTok = openTokenizer(bpePath());
  EXPECT_NE(dynamic_cast<BpeTokenizer *>(bpeTok.get()), nullptr);
  EXPECT_EQ(bpeTok->vocabSize(), 50277u);
  auto world = openTokenizer(worldVocabPath());
  EXPECT_NE(dynamic_cast<WorldTokenizer *>(world.get()), nullptr);
  EXPECT_EQ(world->encode("Hello world"), (std::vector<int32_t>{33155, 40213}));

  // A JSON file is recognised by its first character, whatever its name;
  // its errors name it.
  std::string path = ::testing::TempDir() + "bpe-dispatch.txt";
  {
    std::ofstream out(path, std::ios::binary);
    out << "\xEF\xBB\xBF \n {\"normalizer\": {\"type\": \"NFKC\"}}";
  }
  try {
    openTokenizer(path);
    FAIL() << "no exception";
  } catch (const std::runtime_error &e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  }
  std::remove(path.c_str());
  EXPECT_THROW(openTokenizer("/nonexistent/vocab.json"), std::runtime_error);
}

} // namespace
