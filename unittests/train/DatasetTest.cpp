//===- DatasetTest.cpp - Corpora readers and window sampling --------------===//

#include "runtime/train/Dataset.h"

#include "runtime/text/Tokenizer.h"
#include "unittests/train/TestUtil.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <set>

using namespace rwkv;
using namespace rwkv::test;
using ::testing::HasSubstr;

namespace {

const WorldTokenizer &world() {
  static std::unique_ptr<WorldTokenizer> tok = WorldTokenizer::fromFile(
      std::string(RWKV_SHARED_DIR) + "/tokenizer/rwkv_vocab_v20230424.txt");
  return *tok;
}

std::vector<int32_t> readAll(const Dataset &d) {
  std::vector<int32_t> out(size_t(d.numTokens()));
  d.read(0, d.numTokens(), out.data());
  return out;
}

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto &p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(TextData, OneDocumentFollowedByEndOfText) {
  TempDir dir;
  std::string text = "Hello world.\nSecond line, 中文.";
  writeFile(dir.file("a.txt"), text);
  auto d = Dataset::open(dir.file("a.txt"), &world());
  std::vector<int32_t> want = world().encode(text);
  ASSERT_GT(want.size(), 4u);
  want.push_back(0);
  EXPECT_EQ(readAll(*d), want);
  EXPECT_EQ(d->numDocuments(), 1);
  EXPECT_EQ(d->name(), dir.file("a.txt"));
}

TEST(TextData, Errors) {
  TempDir dir;
  writeFile(dir.file("empty.txt"), "");
  std::string msg = errorOf<DatasetError>(
      [&] { Dataset::open(dir.file("empty.txt"), &world()); });
  EXPECT_THAT(msg, HasSubstr("empty.txt"));
  EXPECT_THAT(msg, HasSubstr("empty data"));
  msg = errorOf<DatasetError>(
      [&] { Dataset::open(dir.file("missing.txt"), &world()); });
  EXPECT_THAT(msg, HasSubstr("missing.txt: cannot open"));
  writeFile(dir.file("b.txt"), "x");
  msg =
      errorOf<DatasetError>([&] { Dataset::open(dir.file("b.txt"), nullptr); });
  EXPECT_THAT(msg, HasSubstr("--vocab"));
  msg = errorOf<DatasetError>(
      [&] { Dataset::open(dir.file("nothing-here"), nullptr); });
  EXPECT_THAT(msg, HasSubstr("nothing-here: no such file"));
}

TEST(JsonlData, DocumentsJoinedWithZero) {
  TempDir dir;
  writeFile(dir.file("c.jsonl"),
            "{\"text\": \"first doc\"}\n\n{\"text\": \"second\", \"meta\": 1}"
            "\n{\"text\": \"\\u00e9t\\u00e9\"}\n");
  auto d = Dataset::open(dir.file("c.jsonl"), &world());
  EXPECT_EQ(d->numDocuments(), 3);
  EXPECT_EQ(readAll(*d), concat({world().encode("first doc"),
                                 {0},
                                 world().encode("second"),
                                 {0},
                                 world().encode("\xc3\xa9t\xc3\xa9"),
                                 {0}}));
}

TEST(JsonlData, BadLinesNameTheLine) {
  TempDir dir;
  writeFile(
      dir.file("bad.jsonl"),
      "{\"text\": \"ok\"}\n{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n");
  std::string msg = errorOf<DatasetError>(
      [&] { Dataset::open(dir.file("bad.jsonl"), &world()); });
  EXPECT_THAT(msg, HasSubstr("bad.jsonl:3: not valid JSON"));

  writeFile(dir.file("bad2.jsonl"), "{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n");
  msg = errorOf<DatasetError>(
      [&] { Dataset::open(dir.file("bad2.jsonl"), &world()); });
  EXPECT_THAT(msg, HasSubstr("bad2.jsonl:2: expected an object with a string "
                             "\"text\""));

  writeFile(dir.file("bad3.jsonl"), "[1, 2]\n");
  msg = errorOf<DatasetError>(
      [&] { Dataset::open(dir.file("bad3.jsonl"), &world()); });
  EXPECT_THAT(msg, HasSubstr("bad3.jsonl:1:"));

  writeFile(dir.file("blank.jsonl"), "\n  \n");
  msg = errorOf<DatasetError>(
      [&] { Dataset::open(dir.file("blank.jsonl"), &world()); });
  EXPECT_THAT(msg, HasSubstr("blank.jsonl: empty data"));
}

// The index bytes spelled out from Megatron's MMapIndexedDataset layout, so
// the reader is checked against the format and not just against writeBinidx.
std::string handMadeIdx(uint64_t version = 1, uint8_t code = 8) {
  std::string idx("MMIDIDX\0\0", 9);
  auto put = [&](auto v) {
    idx.append(reinterpret_cast<const char *>(&v), sizeof(v));
  };
  put(version);
  idx.push_back(char(code));
  put(uint64_t(2)); // sequences
  put(uint64_t(3)); // doc_idx entries
  put(int32_t(3));  // sizes
  put(int32_t(2));
  put(int64_t(0)); // byte pointers
  put(int64_t(6));
  put(int64_t(0)); // doc_idx
  put(int64_t(1));
  put(int64_t(2));
  return idx;
}
const std::string kHandMadeBin("\x01\x00\x02\x00\xff\xff\x00\x00\x05\x01", 10);

TEST(BinidxData, ReadsTheMegatronLayout) {
  TempDir dir;
  writeFile(dir.file("d.idx"), handMadeIdx());
  writeFile(dir.file("d.bin"), kHandMadeBin);
  for (std::string path : {"d", "d.bin", "d.idx"}) {
    auto d = Dataset::open(dir.file(path), nullptr);
    EXPECT_EQ(d->numTokens(), 5);
    EXPECT_EQ(d->numDocuments(), 2);
    EXPECT_EQ(readAll(*d), (std::vector<int32_t>{1, 2, 65535, 0, 261}));
    int32_t two[2];
    d->read(2, 2, two); // across the document boundary
    EXPECT_EQ(two[0], 65535);
    EXPECT_EQ(two[1], 0);
    EXPECT_THROW(d->read(4, 2, two), DatasetError);
  }
  // writeBinidx produces exactly these bytes.
  writeBinidx(dir.file("w"), {{1, 2, 65535}, {0, 261}});
  EXPECT_EQ(readFile(dir.file("w.idx")), handMadeIdx());
  EXPECT_EQ(readFile(dir.file("w.bin")), kHandMadeBin);
}

TEST(BinidxData, OtherTokenTypes) {
  TempDir dir;
  std::vector<std::vector<int32_t>> docs = {{7, 100000, 3}, {}, {65536, 0}};
  for (uint8_t code : {4, 5}) {
    std::string prefix = dir.file("t" + std::to_string(code));
    writeBinidx(prefix, docs, code);
    auto d = Dataset::fromBinidx(prefix);
    EXPECT_EQ(readAll(*d), (std::vector<int32_t>{7, 100000, 3, 65536, 0}));
  }
  writeBinidx(dir.file("neg"), {{1, -5}}, 3);
  auto d = Dataset::fromBinidx(dir.file("neg"));
  std::string msg = errorOf<DatasetError>([&] { readAll(*d); });
  EXPECT_THAT(msg, HasSubstr("neg.bin: token -5 at stream offset 1"));
}

TEST(BinidxData, MalformedFiles) {
  TempDir dir;
  auto open = [&](const std::string &name) {
    return errorOf<DatasetError>([&] { Dataset::fromBinidx(dir.file(name)); });
  };
  std::string idx = handMadeIdx();

  std::string bad = idx;
  bad[0] = 'X';
  writeFile(dir.file("magic.idx"), bad);
  writeFile(dir.file("magic.bin"), kHandMadeBin);
  EXPECT_THAT(open("magic"), HasSubstr("magic.idx: not a binidx index"));

  writeFile(dir.file("ver.idx"), handMadeIdx(2));
  writeFile(dir.file("ver.bin"), kHandMadeBin);
  EXPECT_THAT(open("ver"), HasSubstr("ver.idx: unsupported binidx version 2"));

  writeFile(dir.file("float.idx"), handMadeIdx(1, 6));
  writeFile(dir.file("float.bin"), kHandMadeBin);
  EXPECT_THAT(open("float"), HasSubstr("dtype code 6"));

  writeFile(dir.file("short.idx"), idx.substr(0, idx.size() - 3));
  writeFile(dir.file("short.bin"), kHandMadeBin);
  EXPECT_THAT(open("short"), HasSubstr("short.idx:"));
  EXPECT_THAT(open("short"), HasSubstr("truncated"));

  writeFile(dir.file("hdr.idx"), idx.substr(0, 20));
  writeFile(dir.file("hdr.bin"), kHandMadeBin);
  EXPECT_THAT(open("hdr"), HasSubstr("hdr.idx: truncated header"));

  writeFile(dir.file("cut.idx"), idx);
  writeFile(dir.file("cut.bin"), kHandMadeBin.substr(0, 9));
  EXPECT_THAT(open("cut"), HasSubstr("sequence 1 (2 tokens at byte 6) lies "
                                     "outside"));

  writeFile(dir.file("nobin.idx"), idx);
  EXPECT_THAT(open("nobin"), HasSubstr("nobin.bin: cannot open"));

  writeBinidx(dir.file("empty"), {{}, {}});
  EXPECT_THAT(open("empty"), HasSubstr("empty data"));
}

TEST(WindowSampler, RandomIsDeterministicAndInBounds) {
  std::vector<int32_t> tokens(50);
  for (int i = 0; i < 50; ++i)
    tokens[size_t(i)] = i;
  auto d = Dataset::fromTokens(tokens, "mem");
  const int64_t T = 8;
  WindowSampler a(*d, T, SamplingMode::Random, 42),
      b(*d, T, SamplingMode::Random, 42), c(*d, T, SamplingMode::Random, 43);
  std::set<int64_t> seen;
  int differ = 0;
  for (uint64_t k = 0; k < 2000; ++k) {
    int64_t s = a.windowStart(k);
    ASSERT_GE(s, 0);
    ASSERT_LE(s + T, 49); // the whole window of T + 1 tokens fits
    EXPECT_EQ(s, b.windowStart(k));
    differ += s != c.windowStart(k);
    seen.insert(s);
  }
  EXPECT_EQ(seen.size(), 50u - T); // every possible start is drawn
  EXPECT_GT(differ, 1500);         // another seed, other windows

  Batch x = a.next(3);
  EXPECT_EQ(a.position(), 3u);
  ASSERT_EQ(x.inputs.size(), 24u);
  for (int64_t r = 0; r < 3; ++r) {
    int64_t s = a.windowStart(uint64_t(r));
    for (int64_t t = 0; t < T; ++t) {
      EXPECT_EQ(x.inputs[size_t(r * T + t)], s + t);
      EXPECT_EQ(x.targets[size_t(r * T + t)], s + t + 1);
    }
  }
  // A resumed sampler continues with the same windows.
  Batch y = a.next(2);
  b.setPosition(3);
  EXPECT_EQ(b.next(2).inputs, y.inputs);
}

TEST(WindowSampler, SequentialEpochs) {
  std::vector<int32_t> tokens(23);
  for (int i = 0; i < 23; ++i)
    tokens[size_t(i)] = 100 + i;
  auto d = Dataset::fromTokens(tokens, "mem");
  WindowSampler s(*d, 5, SamplingMode::Sequential, 0);
  EXPECT_EQ(s.windowsPerEpoch(), 4); // (23 - 1) / 5
  EXPECT_EQ(s.windowStart(0), 0);
  EXPECT_EQ(s.windowStart(3), 15);
  EXPECT_EQ(s.windowStart(4), 0); // next epoch
  Batch b = s.next(2);
  EXPECT_EQ(b.inputs, (std::vector<int32_t>{100, 101, 102, 103, 104, 105, 106,
                                            107, 108, 109}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{101, 102, 103, 104, 105, 106, 107,
                                             108, 109, 110}));
  s.next(2);
  EXPECT_DOUBLE_EQ(s.epoch(), 1.0);
}

TEST(WindowSampler, Errors) {
  auto d = Dataset::fromTokens({1, 2, 3, 4}, "corpus.bin");
  std::string msg = errorOf<DatasetError>(
      [&] { WindowSampler(*d, 4, SamplingMode::Random, 1); });
  EXPECT_THAT(msg, HasSubstr("corpus.bin: the data holds 4 tokens, fewer than "
                             "one window of context 4"));
  EXPECT_THROW(WindowSampler(*d, 0, SamplingMode::Random, 1), DatasetError);
  WindowSampler ok(*d, 3, SamplingMode::Sequential, 1);
  ok.setVocabSize(4);
  msg = errorOf<DatasetError>([&] { ok.next(1); });
  EXPECT_THAT(msg, HasSubstr("corpus.bin: token 4 at offset 3 is outside the "
                             "model's vocabulary (size 4)"));
  EXPECT_THROW(Dataset::fromTokens({}, "x"), DatasetError);
}

} // namespace
