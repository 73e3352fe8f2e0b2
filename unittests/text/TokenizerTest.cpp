//===- TokenizerTest.cpp - RWKV World tokenizer tests ---------------------===//

#include "runtime/text/Tokenizer.h"
#include "TestUtil.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <unordered_map>

using namespace rwkv;
using namespace rwkv::test;

namespace {

//===----------------------------------------------------------------------===//
// Golden cases and spec vectors
//===----------------------------------------------------------------------===//

TEST(WorldTokenizer, GoldenCases) {
  std::ifstream in(sharedPath("golden/tokenizer_cases.json"));
  ASSERT_TRUE(in) << "missing golden/tokenizer_cases.json";
  nlohmann::json doc = nlohmann::json::parse(in);
  const WorldTokenizer &tok = worldTokenizer();
  EXPECT_EQ(doc["vocab_entries"].get<size_t>(), tok.numEntries());

  size_t numCases = 0, numInvalid = 0;
  for (const auto &c : doc["cases"]) {
    std::string bytes = fromHex(c["utf8_hex"].get<std::string>());
    // A null "text" marks the raw, invalid-UTF-8 byte case.
    if (c["text"].is_null())
      ++numInvalid;
    else
      EXPECT_EQ(c["text"].get<std::string>(), bytes);
    std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> got = tok.encode(bytes);
    EXPECT_EQ(got, want) << "case hex " << c["utf8_hex"];
    EXPECT_EQ(tok.decode(got), bytes) << "case hex " << c["utf8_hex"];
    const auto &pieces = c["pieces_hex"];
    ASSERT_EQ(pieces.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_EQ(std::string(tok.tokenBytes(want[i])),
                fromHex(pieces[i].get<std::string>()));
    ++numCases;
  }
  EXPECT_GE(numCases, 20u);
  EXPECT_EQ(numInvalid, 1u);
}

TEST(WorldTokenizer, SpecVectors) {
  const WorldTokenizer &tok = worldTokenizer();
  const std::pair<std::string, std::vector<int32_t>> cases[] = {
      {"Hello world", {33155, 40213}},
      {"User: hi\n\nAssistant:", {24281, 59, 4571, 261, 5585, 41693, 59}},
      {"\n\n", {261}},
      {" 12345 67", {3485, 654, 54, 3540}},
      {"你好，世界", {10464, 11685, 19137, 10267, 14610}},
      {"The Eiffel tower is in the city of",
       {6699, 304, 25740, 109, 39990, 4600, 4596, 22590, 30449, 4706}},
  };
  for (const auto &[text, ids] : cases) {
    EXPECT_EQ(tok.encode(text), ids) << text;
    EXPECT_EQ(tok.decode(ids), text);
  }
}

TEST(WorldTokenizer, VocabFacts) {
  const WorldTokenizer &tok = worldTokenizer();
  EXPECT_EQ(tok.numEntries(), 65529u);
  EXPECT_EQ(tok.vocabSize(), 65530u);
  EXPECT_EQ(tok.maxTokenLength(), 128u);
  EXPECT_EQ(tok.tokenBytes(2423), std::string("\xC2\x80"));
  EXPECT_EQ(tok.tokenBytes(0), "");
  EXPECT_EQ(tok.endOfTextId(), 0);
  for (int b = 0; b < 256; ++b)
    ASSERT_EQ(tok.tokenBytes(b + 1), std::string(1, static_cast<char>(b)))
        << "byte " << b;
  EXPECT_EQ(tok.tokenBytes(261), "\n\n");
  EXPECT_EQ(tok.tokenBytes(9804), "\xE2\x80\x82"); // '\u2002'
  EXPECT_EQ(tok.tokenBytes(40), "'");              // "'"
  EXPECT_EQ(tok.tokenBytes(1661), "\\$");          // '\\$'
  EXPECT_EQ(tok.decode({0, 33155, 0}), "Hello");
  // Every token is its own encoding: no token is split by greedy matching.
  size_t longest = 0;
  for (size_t id = 1; id < tok.vocabSize(); ++id) {
    std::string_view bytes = tok.tokenBytes(static_cast<int32_t>(id));
    longest = std::max(longest, bytes.size());
    ASSERT_EQ(tok.encode(bytes), std::vector<int32_t>{static_cast<int32_t>(id)})
        << "id " << id;
  }
  EXPECT_EQ(longest, 128u);
}

TEST(WorldTokenizer, OutOfRangeIdsNameTheId) {
  const WorldTokenizer &tok = worldTokenizer();
  for (int32_t bad : {65530, 65535, -1, 1 << 30}) {
    try {
      (void)tok.tokenBytes(bad);
      FAIL() << "no error for id " << bad;
    } catch (const std::out_of_range &e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(bad)),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_THROW(tok.decode({33155, 70000}), std::out_of_range);
}

/// Reference greedy longest match by brute force over a hash map, to check
/// the trie independently.
static std::vector<int32_t>
bruteForceEncode(const std::unordered_map<std::string, int32_t> &byBytes,
                 size_t maxLen, const std::string &s) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < s.size();) {
    for (size_t len = std::min(maxLen, s.size() - i); len > 0; --len) {
      auto it = byBytes.find(s.substr(i, len));
      if (it != byBytes.end()) {
        ids.push_back(it->second);
        i += len;
        break;
      }
    }
  }
  return ids;
}

TEST(WorldTokenizer, MatchesBruteForceOnRandomInput) {
  const WorldTokenizer &tok = worldTokenizer();
  std::unordered_map<std::string, int32_t> byBytes;
  for (size_t id = 1; id < tok.vocabSize(); ++id)
    byBytes.emplace(std::string(tok.tokenBytes(static_cast<int32_t>(id))),
                    static_cast<int32_t>(id));
  std::mt19937 gen(1234); // fixed seed; the exact stream does not matter
  for (int round = 0; round < 300; ++round) {
    // Mix whole vocabulary pieces (to hit long tokens and their prefixes)
    // with random bytes (to hit invalid UTF-8 and unusual boundaries).
    std::string s;
    int parts = static_cast<int>(gen() % 12);
    for (int p = 0; p < parts; ++p) {
      if (gen() % 3 == 0) {
        s += static_cast<char>(gen() & 0xFF);
      } else {
        auto id = static_cast<int32_t>(1 + gen() % (tok.vocabSize() - 1));
        std::string_view piece = tok.tokenBytes(id);
        s += piece.substr(0, 1 + gen() % piece.size());
      }
    }
    std::vector<int32_t> ids = tok.encode(s);
    ASSERT_EQ(ids, bruteForceEncode(byBytes, tok.maxTokenLength(), s));
    ASSERT_EQ(tok.decode(ids), s);
  }
}

TEST(WorldTokenizer, EncodesOneMegabyteQuickly) {
  const WorldTokenizer &tok = worldTokenizer();
  std::string text;
  const char *chunk = "The quick brown fox jumps over the lazy dog. "
                      "你好，世界！ 😀 1234567890\n\n";
  while (text.size() < (1u << 20))
    text += chunk;
  auto start = std::chrono::steady_clock::now();
  std::vector<int32_t> ids = tok.encode(text);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_LT(seconds, 0.5) << "encoding 1 MiB took " << seconds << " s";
}

//===----------------------------------------------------------------------===//
// Literal parsing
//===----------------------------------------------------------------------===//

TEST(WorldTokenizer, PythonLiterals) {
  auto p = [](const char *lit) {
    return WorldTokenizer::parsePythonLiteral(lit);
  };
  EXPECT_EQ(p("'abc'"), "abc");
  EXPECT_EQ(p("\"'\""), "'");
  EXPECT_EQ(p("'\\''"), "'");
  EXPECT_EQ(p("'\\\"'"), "\"");
  EXPECT_EQ(p("'\\\\'"), "\\");
  EXPECT_EQ(p("'\\n\\t\\r'"), "\n\t\r");
  EXPECT_EQ(p("'\\a\\b\\f\\v'"), "\a\b\f\v");
  EXPECT_EQ(p("'\\0'"), std::string(1, '\0'));
  EXPECT_EQ(p("'\\101'"), "A");
  EXPECT_EQ(p("'\\x80'"), "\xC2\x80"); // str: code point U+0080
  EXPECT_EQ(p("'\\xff'"), "\xC3\xBF");
  EXPECT_EQ(p("b'\\x80'"), "\x80"); // bytes: raw byte
  EXPECT_EQ(p("b'\\xFF\\x00'"), std::string("\xFF\0", 2));
  EXPECT_EQ(p("'\\u2002'"), "\xE2\x80\x82");
  EXPECT_EQ(p("'\\U0001F600'"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(p("b'\\u12'"), "\\u12"); // not an escape in bytes
  EXPECT_EQ(p("'\\q'"), "\\q");      // unknown escapes stay verbatim
  EXPECT_EQ(p("'é'"), "é");
  EXPECT_EQ(p("' '"), " ");
  for (const char *bad :
       {"abc", "'abc", "'a'b'", "'\\xZZ'", "'\\x8'", "b'é'", "'\\ud800'",
        "'\\U00110000'", "'abc\\'", "'a\"", "''x"})
    EXPECT_THROW(p(bad), std::invalid_argument) << bad;
}

//===----------------------------------------------------------------------===//
// Small and malformed vocabulary files
//===----------------------------------------------------------------------===//

/// 256 single-byte lines in b'\xHH' form (lines 1..256).
static std::string byteVocab() {
  std::string out;
  char buf[32];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof(buf), "%d b'\\x%02x' 1\n", b + 1, b);
    out += buf;
  }
  return out;
}

static std::string writeTemp(const std::string &name,
                             const std::string &content) {
  std::string path = ::testing::TempDir() + "rwkv_text_" + name + ".txt";
  std::ofstream out(path, std::ios::binary);
  out << content;
  return path;
}

/// Loads `content` from a temp file and returns the error message.
static std::string loadError(const std::string &name,
                             const std::string &content,
                             std::string *pathOut = nullptr) {
  std::string path = writeTemp(name, content);
  if (pathOut)
    *pathOut = path;
  try {
    WorldTokenizer::fromFile(path);
  } catch (const std::runtime_error &e) {
    std::remove(path.c_str());
    return e.what();
  }
  std::remove(path.c_str());
  return "";
}

TEST(WorldTokenizer, SmallVocabGreedyLongest) {
  std::string path = writeTemp(
      "small", byteVocab() + "257 'ab' 2\n258 'abc' 3\n259 'abcd' 4\r\n"
                             "260 '\\u4f60' 3\n");
  auto tok = WorldTokenizer::fromFile(path);
  std::remove(path.c_str());
  EXPECT_EQ(tok->numEntries(), 260u);
  EXPECT_EQ(tok->maxTokenLength(), 4u);
  EXPECT_EQ(tok->encode("abcab"), (std::vector<int32_t>{258, 257}));
  EXPECT_EQ(tok->encode("abcd"), (std::vector<int32_t>{259}));
  // "abc" then 'e': falls back to the last token seen on the trie walk.
  EXPECT_EQ(tok->encode("abce"), (std::vector<int32_t>{258, 'e' + 1}));
  EXPECT_EQ(tok->encode("abx"), (std::vector<int32_t>{257, 'x' + 1}));
  EXPECT_EQ(tok->encode("你"), (std::vector<int32_t>{260}));
  EXPECT_EQ(tok->encode(""), std::vector<int32_t>{});
}

TEST(WorldTokenizer, MissingFile) {
  std::string path = ::testing::TempDir() + "rwkv_text_does_not_exist.txt";
  try {
    WorldTokenizer::fromFile(path);
    FAIL() << "no error";
  } catch (const std::runtime_error &e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(WorldTokenizer, MalformedFilesNameFileAndLine) {
  const std::string base = byteVocab(); // lines 1..256
  const std::pair<std::string, std::string> cases[] = {
      {"nospace", "257 'ab'2\n"},       // only one space
      {"badid", "2x57 'ab' 2\n"},       // id not a number
      {"badlen", "257 'ab' two\n"},     // length not a number
      {"mismatch", "257 '\\x80' 1\n"},  // decodes to 2 bytes
      {"duplicate", "256 'ab' 2\n"},    // id 256 already defined
      {"idzero", "0 'ab' 2\n"},         // id 0 is reserved
      {"badliteral", "257 'ab 3\n"},    // unterminated literal
      {"badescape", "257 '\\xq1' 1\n"}, // bad hex digits
      {"empty", "257 '' 0\n"},          // empty token
  };
  for (const auto &[name, line] : cases) {
    std::string path;
    std::string msg = loadError(name, base + line, &path);
    EXPECT_NE(msg.find(path + ":257:"), std::string::npos)
        << name << ": " << msg;
  }
  // The line number counts lines, not entries.
  std::string path;
  std::string msg = loadError("third", "1 'a' 1\n2 'b' 1\n3 oops 1\n", &path);
  EXPECT_NE(msg.find(path + ":3:"), std::string::npos) << msg;
  // A vocabulary that cannot encode every byte is rejected.
  msg = loadError("nobytes", "1 'a' 1\n", &path);
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("byte"), std::string::npos) << msg;
}

} // namespace
