//===- TokenizerCApiTest.cpp - rwkvrt_tokenizer_* through librwkvrt.so ----===//
//
// Linked against the shared librwkvrt.so, as python/rwkv_mlir binds it, so
// the export map is covered too.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/rwkv_runtime.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

std::string sharedPath(const std::string &rel) {
  return std::string(RWKV_SHARED_DIR) + "/" + rel;
}

struct Handle {
  rwkvrt_tokenizer *tok = nullptr;
  explicit Handle(const std::string &path) {
    EXPECT_EQ(rwkvrt_tokenizer_open(path.c_str(), &tok), RWKVRT_OK)
        << rwkvrt_last_error();
  }
  ~Handle() { EXPECT_EQ(rwkvrt_tokenizer_close(tok), RWKVRT_OK); }
};

std::vector<int32_t> encode(rwkvrt_tokenizer *tok, const std::string &text) {
  size_t count = 0;
  EXPECT_EQ(rwkvrt_tokenizer_encode(tok, text.data(), text.size(), nullptr, 0,
                                    &count),
            RWKVRT_OK);
  std::vector<int32_t> ids(count);
  size_t again = 0;
  EXPECT_EQ(rwkvrt_tokenizer_encode(tok, text.data(), text.size(), ids.data(),
                                    ids.size(), &again),
            RWKVRT_OK);
  EXPECT_EQ(again, count);
  return ids;
}

TEST(TokenizerCApi, BothVocabularies) {
  struct Case {
    const char *file;
    size_t vocab;
    std::vector<int32_t> hello;
    std::string invalidBack; // what "a\xFF\xC3 \0z" decodes back to
  };
  const std::string fffd = "\xEF\xBF\xBD";
  const Case cases[] = {
      // World has a token for every byte.
      {"tokenizer/rwkv_vocab_v20230424.txt",
       65530,
       {33155, 40213},
       std::string("a\xFF\xC3 \0z", 6)},
      // 20B encodes the text lossily decoded: one U+FFFD per invalid part.
      {"tokenizer/20B_tokenizer.json",
       50277,
       {12092, 1533},
       "a" + fffd + fffd + std::string(" \0z", 3)},
  };
  for (const Case &c : cases) {
    Handle h(sharedPath(c.file));
    ASSERT_NE(h.tok, nullptr);
    size_t vocab = 0;
    EXPECT_EQ(rwkvrt_tokenizer_vocab_size(h.tok, &vocab), RWKVRT_OK);
    EXPECT_EQ(vocab, c.vocab) << c.file;
    EXPECT_EQ(encode(h.tok, "Hello world"), c.hello) << c.file;
    EXPECT_STREQ(rwkvrt_last_error(), "");

    // A short buffer gets the first ids and the full count.
    int32_t first = -1;
    size_t count = 0;
    EXPECT_EQ(
        rwkvrt_tokenizer_encode(h.tok, "Hello world", 11, &first, 1, &count),
        RWKVRT_OK);
    EXPECT_EQ(first, c.hello[0]);
    EXPECT_EQ(count, 2u);

    // Decode: size query, short buffer, full buffer.
    size_t length = 0;
    EXPECT_EQ(rwkvrt_tokenizer_decode(h.tok, c.hello.data(), c.hello.size(),
                                      nullptr, 0, &length),
              RWKVRT_OK);
    EXPECT_EQ(length, 11u);
    char buf[16] = {};
    EXPECT_EQ(rwkvrt_tokenizer_decode(h.tok, c.hello.data(), c.hello.size(),
                                      buf, 3, &length),
              RWKVRT_OK);
    EXPECT_EQ(std::string(buf), "Hel");
    EXPECT_EQ(length, 11u);
    EXPECT_EQ(rwkvrt_tokenizer_decode(h.tok, c.hello.data(), c.hello.size(),
                                      buf, sizeof buf, &length),
              RWKVRT_OK);
    EXPECT_EQ(std::string(buf, length), "Hello world");

    // Raw bytes both ways, including invalid UTF-8.
    std::string bytes("a\xFF\xC3 \0z", 6);
    std::vector<int32_t> ids = encode(h.tok, bytes);
    std::string back(16, '?');
    EXPECT_EQ(rwkvrt_tokenizer_decode(h.tok, ids.data(), ids.size(),
                                      back.data(), back.size(), &length),
              RWKVRT_OK);
    EXPECT_EQ(back.substr(0, length), c.invalidBack) << c.file;

    // Empty input, with NULL pointers.
    EXPECT_EQ(rwkvrt_tokenizer_encode(h.tok, nullptr, 0, nullptr, 0, &count),
              RWKVRT_OK);
    EXPECT_EQ(count, 0u);
    EXPECT_EQ(rwkvrt_tokenizer_decode(h.tok, nullptr, 0, nullptr, 0, &length),
              RWKVRT_OK);
    EXPECT_EQ(length, 0u);
  }
}

TEST(TokenizerCApi, Errors) {
  Handle h(sharedPath("tokenizer/20B_tokenizer.json"));
  ASSERT_NE(h.tok, nullptr);
  const int32_t bad[] = {5, 50277};
  size_t length = 123;
  EXPECT_EQ(rwkvrt_tokenizer_decode(h.tok, bad, 2, nullptr, 0, &length),
            RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(rwkvrt_last_error(), "token id 50277 at position 1 is not in "
                                    "the vocabulary (0..50276)");
  EXPECT_EQ(length, 0u);
  const int32_t negative[] = {-7};
  EXPECT_EQ(rwkvrt_tokenizer_decode(h.tok, negative, 1, nullptr, 0, &length),
            RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rwkvrt_last_error()).find("token id -7 at position 0"),
            std::string::npos);

  size_t count = 0;
  EXPECT_EQ(rwkvrt_tokenizer_encode(nullptr, "x", 1, nullptr, 0, &count),
            RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rwkvrt_tokenizer_encode(h.tok, nullptr, 3, nullptr, 0, &count),
            RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rwkvrt_tokenizer_encode(h.tok, "x", 1, nullptr, 0, nullptr),
            RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rwkvrt_tokenizer_vocab_size(h.tok, nullptr),
            RWKVRT_ERR_INVALID_ARGUMENT);

  rwkvrt_tokenizer *t = reinterpret_cast<rwkvrt_tokenizer *>(1);
  EXPECT_EQ(rwkvrt_tokenizer_open("/nonexistent/20B_tokenizer.json", &t),
            RWKVRT_ERR_LOAD);
  EXPECT_EQ(t, nullptr);
  EXPECT_NE(
      std::string(rwkvrt_last_error()).find("/nonexistent/20B_tokenizer.json"),
      std::string::npos)
      << rwkvrt_last_error();
  EXPECT_EQ(rwkvrt_tokenizer_open(nullptr, &t), RWKVRT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rwkvrt_tokenizer_close(nullptr), RWKVRT_OK);
  EXPECT_STREQ(rwkvrt_last_error(), "");
}

} // namespace
