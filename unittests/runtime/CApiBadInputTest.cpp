//===- CApiBadInputTest.cpp - every C API function on bad input ----------===//
//
// Null, empty, out-of-range, huge and malformed arguments, wrong files
// (missing, directories, non-libraries, truncated checkpoints) and objects
// of another model, for every function of rwkv_runtime.h: each returns the
// documented non-OK status with an rwkvrt_last_error() that names the
// function and the argument, file, key or value at fault; none crashes.
// Uses FakeModel.so / FakeTrainModel.so and the shared vocabularies, so no
// compiler is needed. Closed handles are out of scope (undefined).
//
//===----------------------------------------------------------------------===//

#include "runtime/core/rwkv_runtime.h"
#include "unittests/runtime/FakeModel.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <climits>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

/// `call` returns `code` and rwkvrt_last_error() contains every needle.
#define EXPECT_ERR(call, code, ...)                                            \
  do {                                                                         \
    int rc_ = (call);                                                          \
    EXPECT_EQ(rc_, code) << #call;                                             \
    std::string msg_ = rwkvrt_last_error();                                    \
    EXPECT_FALSE(msg_.empty()) << #call;                                       \
    for (const std::string &needle_ : std::vector<std::string>{__VA_ARGS__})   \
      EXPECT_NE(msg_.find(needle_), std::string::npos)                         \
          << #call << ": '" << msg_ << "' lacks '" << needle_ << "'";          \
  } while (0)

#define EXPECT_INVALID(call, ...)                                              \
  EXPECT_ERR(call, RWKVRT_ERR_INVALID_ARGUMENT, __VA_ARGS__)
#define EXPECT_LOAD_ERR(call, ...)                                             \
  EXPECT_ERR(call, RWKVRT_ERR_LOAD, __VA_ARGS__)

constexpr size_t kHuge = SIZE_MAX;          // e.g. (size_t)-1
constexpr size_t kMinusFive = size_t(-5);   // a negative count cast
constexpr int64_t kVocab = 40, kLayers = 2; // FakeModel.h

/// Files of one test program run, removed at the end.
class Files : public ::testing::Environment {
public:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("rwkv_badinput_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string &name) const { return dir_ / name; }

private:
  fs::path dir_;
};
Files *files =
    static_cast<Files *>(::testing::AddGlobalTestEnvironment(new Files));

std::string writeText(const std::string &name, const std::string &text) {
  std::string p = files->path(name);
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

/// A copy of `from` cut to `fraction` of its size.
std::string truncated(const std::string &from, const std::string &name,
                      double fraction) {
  std::string p = files->path(name);
  fs::copy_file(from, p, fs::copy_options::overwrite_existing);
  fs::resize_file(p, uintmax_t(double(fs::file_size(p)) * fraction));
  return p;
}

const std::string &fakePth() {
  static const std::string p = [] {
    std::string path = files->path("fake.pth");
    rwkv::writePth(path, rwkv::makeSyntheticModel(rwkv::fakeModelOptions()));
    return path;
  }();
  return p;
}

const std::string &fakeSafetensors() {
  static const std::string p = [] {
    std::string path = files->path("fake.safetensors");
    rwkv::writeSafetensors(path,
                           rwkv::makeSyntheticModel(rwkv::fakeModelOptions()));
    return path;
  }();
  return p;
}

std::string notALibrary() {
  return writeText("notalib.so", "this is not an ELF file\n");
}

/// An open fake model and a state of it, closed at the end of the test.
class FakeModelTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_EQ(rwkvrt_model_open(RWKV_FAKE_MODEL, fakePth().c_str(), 1, &m),
              RWKVRT_OK)
        << rwkvrt_last_error();
    ASSERT_EQ(rwkvrt_state_new(m, &s), RWKVRT_OK);
  }
  void TearDown() override {
    EXPECT_EQ(rwkvrt_state_free(s), RWKVRT_OK);
    EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_OK) << rwkvrt_last_error();
  }
  rwkvrt_model *m = nullptr;
  rwkvrt_state *s = nullptr;
  std::vector<float> logits = std::vector<float>(4 * kVocab);
};

//===----------------------------------------------------------------------===//
// rwkvrt_model_*
//===----------------------------------------------------------------------===//

TEST(BadModelOpen, NullAndEmptyArguments) {
  rwkvrt_model *m = reinterpret_cast<rwkvrt_model *>(0x1);
  const char *ckpt = fakePth().c_str();
  EXPECT_INVALID(rwkvrt_model_open(nullptr, ckpt, 0, &m), "rwkvrt_model_open",
                 "library_path is null");
  EXPECT_INVALID(rwkvrt_model_open(RWKV_FAKE_MODEL, nullptr, 0, &m),
                 "checkpoint_path is null");
  EXPECT_INVALID(rwkvrt_model_open(RWKV_FAKE_MODEL, ckpt, 0, nullptr),
                 "out_model is null");
  EXPECT_INVALID(rwkvrt_model_open("", ckpt, 0, &m), "library_path is empty");
  EXPECT_EQ(m, nullptr); // cleared on every failure after the null checks
  EXPECT_INVALID(rwkvrt_model_open(RWKV_FAKE_MODEL, "", 0, &m),
                 "checkpoint_path is empty");
  EXPECT_INVALID(rwkvrt_model_open(RWKV_FAKE_MODEL, ckpt, INT_MAX, &m),
                 "threads = 2147483647 is more than 1024");
  EXPECT_EQ(m, nullptr);
  // Negative threads keep the default (documented), not an error.
  ASSERT_EQ(rwkvrt_model_open(RWKV_FAKE_MODEL, ckpt, -5, &m), RWKVRT_OK)
      << rwkvrt_last_error();
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_OK);
}

TEST(BadModelOpen, BadLibraries) {
  rwkvrt_model *m = nullptr;
  const char *ckpt = fakePth().c_str();
  std::string missing = files->path("missing.so");
  EXPECT_LOAD_ERR(rwkvrt_model_open(missing.c_str(), ckpt, 0, &m),
                  "cannot load library", missing.c_str());
  std::string dir = files->path("");
  EXPECT_LOAD_ERR(rwkvrt_model_open(dir.c_str(), ckpt, 0, &m),
                  "cannot load library", dir.c_str());
  std::string text = notALibrary();
  EXPECT_LOAD_ERR(rwkvrt_model_open(text.c_str(), ckpt, 0, &m),
                  "cannot load library", text.c_str());
  // A checkpoint where the library belongs.
  EXPECT_LOAD_ERR(rwkvrt_model_open(ckpt, ckpt, 0, &m), "cannot load library",
                  ckpt);
  // A shared library that is not an rwkv-compile output.
  EXPECT_LOAD_ERR(rwkvrt_model_open(RWKVRT_LIBRARY, ckpt, 0, &m),
                  RWKVRT_LIBRARY, "has no rwkv_model_info()");
  // A training library is not a model.
  EXPECT_LOAD_ERR(rwkvrt_model_open(RWKV_FAKE_TRAIN_MODEL, ckpt, 0, &m),
                  RWKV_FAKE_TRAIN_MODEL);
  EXPECT_EQ(m, nullptr);
}

TEST(BadModelOpen, BadCheckpoints) {
  rwkvrt_model *m = nullptr;
  auto open = [&](const std::string &ckpt) {
    return rwkvrt_model_open(RWKV_FAKE_MODEL, ckpt.c_str(), 0, &m);
  };
  std::string missing = files->path("missing.pth");
  EXPECT_LOAD_ERR(open(missing), missing.c_str());
  std::string dir = files->path("adir");
  fs::create_directories(dir);
  EXPECT_LOAD_ERR(open(dir), dir.c_str());
  std::string empty = writeText("empty.pth", "");
  EXPECT_LOAD_ERR(open(empty), empty.c_str());
  std::string text = writeText("text.pth", "not a checkpoint at all\n");
  EXPECT_LOAD_ERR(open(text), text.c_str());
  // The library where the checkpoint belongs.
  EXPECT_LOAD_ERR(open(RWKV_FAKE_MODEL), RWKV_FAKE_MODEL);
  // Cut anywhere: the central directory (pth) or the data (safetensors) is
  // missing, which is reported, never read past.
  for (double f : {0.01, 0.5, 0.99}) {
    std::string pth =
        truncated(fakePth(), "cut" + std::to_string(int(f * 100)) + ".pth", f);
    EXPECT_LOAD_ERR(open(pth), pth.c_str());
    std::string st =
        truncated(fakeSafetensors(),
                  "cut" + std::to_string(int(f * 100)) + ".safetensors", f);
    EXPECT_LOAD_ERR(open(st), st.c_str());
  }
  // A safetensors header that promises more than the file holds.
  std::string header = "{\"emb.weight\":{\"dtype\":\"BF16\",\"shape\":[40,64],"
                       "\"data_offsets\":[0,5120]}}";
  std::string lengthLE(8, '\0');
  for (int i = 0; i < 8; ++i)
    lengthLE[size_t(i)] = char((header.size() >> (8 * i)) & 0xff);
  std::string lying = writeText("lying.safetensors", lengthLE + header);
  EXPECT_LOAD_ERR(open(lying), lying.c_str());
  // A header length of 2^64 - 1.
  std::string hugeHeader =
      writeText("hugeheader.safetensors", std::string(8, '\xff') + "{}");
  EXPECT_LOAD_ERR(open(hugeHeader), hugeHeader.c_str());
  // A well-formed checkpoint of another shape: the differing field.
  rwkv::SyntheticOptions other = rwkv::fakeModelOptions();
  other.n_layer = 3;
  std::string three = files->path("three.pth");
  rwkv::writePth(three, rwkv::makeSyntheticModel(other));
  EXPECT_LOAD_ERR(open(three), three.c_str(), "n_layer");
  EXPECT_EQ(m, nullptr);
}

TEST_F(FakeModelTest, ConfigAndInfoNulls) {
  rwkvrt_config cfg;
  const char *json = nullptr;
  EXPECT_INVALID(rwkvrt_model_config(nullptr, &cfg),
                 "rwkvrt_model_config: model is null");
  EXPECT_INVALID(rwkvrt_model_config(m, nullptr),
                 "rwkvrt_model_config: out_config is null");
  EXPECT_INVALID(rwkvrt_model_info_json(nullptr, &json), "model is null");
  EXPECT_INVALID(rwkvrt_model_info_json(m, nullptr), "out_json is null");
  EXPECT_EQ(rwkvrt_model_close(nullptr), RWKVRT_OK);
  EXPECT_STREQ(rwkvrt_last_error(), "");
}

//===----------------------------------------------------------------------===//
// rwkvrt_state_*
//===----------------------------------------------------------------------===//

TEST_F(FakeModelTest, StateFunctions) {
  rwkvrt_state *out = nullptr;
  EXPECT_INVALID(rwkvrt_state_new(nullptr, &out),
                 "rwkvrt_state_new: model is null");
  EXPECT_INVALID(rwkvrt_state_new(m, nullptr), "out_state is null");
  EXPECT_INVALID(rwkvrt_state_copy(nullptr, &out),
                 "rwkvrt_state_copy: src is null");
  EXPECT_INVALID(rwkvrt_state_copy(s, nullptr), "out_state is null");
  EXPECT_INVALID(rwkvrt_state_assign(nullptr, s), "dst is null");
  EXPECT_INVALID(rwkvrt_state_assign(s, nullptr), "src is null");
  EXPECT_EQ(rwkvrt_state_assign(s, s), RWKVRT_OK); // self-assignment
  EXPECT_INVALID(rwkvrt_state_reset(nullptr), "state is null");
  EXPECT_EQ(rwkvrt_state_free(nullptr), RWKVRT_OK);

  float *data = nullptr;
  size_t n = 0;
  EXPECT_INVALID(rwkvrt_state_tensor(nullptr, "wkv", 0, &data, &n),
                 "state is null");
  EXPECT_INVALID(rwkvrt_state_tensor(s, nullptr, 0, &data, &n), "name is null");
  EXPECT_INVALID(rwkvrt_state_tensor(s, "wkv", 0, nullptr, &n),
                 "out_data is null");
  EXPECT_INVALID(rwkvrt_state_tensor(s, "wkv", 0, &data, nullptr),
                 "out_count is null");
  EXPECT_INVALID(rwkvrt_state_tensor(s, "", 0, &data, &n),
                 "no tensor '' for layer 0");
  EXPECT_INVALID(rwkvrt_state_tensor(s, "wkvv", 0, &data, &n), "'wkvv'");
  EXPECT_INVALID(rwkvrt_state_tensor(s, "att.r_k", 0, &data, &n), "'att.r_k'");
  for (int64_t layer :
       {int64_t(-1), kLayers, int64_t(INT64_MAX), int64_t(INT64_MIN)})
    EXPECT_INVALID(rwkvrt_state_tensor(s, "wkv", layer, &data, &n),
                   ("layer " + std::to_string(layer)).c_str());
  EXPECT_EQ(data, nullptr);
}

// A state of another model (here another handle of the same library: its
// own layout) is refused by every call that mixes the two.
TEST_F(FakeModelTest, StateOfAnotherModel) {
  rwkvrt_model *other = nullptr;
  ASSERT_EQ(rwkvrt_model_open(RWKV_FAKE_MODEL, fakePth().c_str(), 1, &other),
            RWKVRT_OK);
  rwkvrt_state *foreign = nullptr;
  ASSERT_EQ(rwkvrt_state_new(other, &foreign), RWKVRT_OK);
  int32_t tok = 1;
  EXPECT_INVALID(rwkvrt_step(m, foreign, &tok, 1, logits.data(), kVocab),
                 "the state was made by another model");
  EXPECT_INVALID(rwkvrt_forward(m, foreign, &tok, 1, 0, logits.data(), kVocab),
                 "the state was made by another model");
  EXPECT_INVALID(rwkvrt_state_assign(s, foreign),
                 "rwkvrt_state_assign: the states belong to different models");
  EXPECT_EQ(rwkvrt_state_free(foreign), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_model_close(other), RWKVRT_OK);
}

//===----------------------------------------------------------------------===//
// rwkvrt_step / rwkvrt_forward
//===----------------------------------------------------------------------===//

TEST_F(FakeModelTest, StepAndForwardArguments) {
  int32_t toks[3] = {1, 2, 3};
  for (int all : {0, 1}) {
    auto forward = [&](const int32_t *t, size_t count, float *out, size_t cap) {
      return rwkvrt_forward(m, s, t, count, all, out, cap);
    };
    EXPECT_INVALID(
        rwkvrt_forward(nullptr, s, toks, 3, all, logits.data(), logits.size()),
        "rwkvrt_forward: model is null");
    EXPECT_INVALID(
        rwkvrt_forward(m, nullptr, toks, 3, all, logits.data(), logits.size()),
        "state is null");
    EXPECT_INVALID(forward(nullptr, 3, logits.data(), logits.size()),
                   "tokens is null");
    EXPECT_INVALID(forward(toks, 3, nullptr, logits.size()), "logits is null");
    EXPECT_INVALID(forward(toks, 0, logits.data(), logits.size()),
                   "empty token list");
    EXPECT_INVALID(forward(toks, kHuge, logits.data(), logits.size()),
                   "rwkvrt_forward: count = 18446744073709551615 is larger");
    EXPECT_INVALID(forward(toks, kMinusFive, logits.data(), logits.size()),
                   "count = 18446744073709551611");
    EXPECT_INVALID(
        forward(toks, size_t(INT32_MAX) + 1, logits.data(), logits.size()),
        "count = 2147483648");
    EXPECT_INVALID(forward(toks, 3, logits.data(), 0), "logits buffer holds 0");
    EXPECT_INVALID(forward(toks, 3, logits.data(), kVocab - 1),
                   "logits buffer holds 39");
  }
  // all_logits needs T x V floats.
  EXPECT_INVALID(rwkvrt_forward(m, s, toks, 3, 1, logits.data(), 2 * kVocab),
                 "holds 80 floats, rwkv_forward_all needs 120");
  EXPECT_EQ(rwkvrt_forward(m, s, toks, 3, 7, logits.data(), 3 * kVocab),
            RWKVRT_OK); // any non-zero all_logits means true

  EXPECT_INVALID(rwkvrt_step(nullptr, s, toks, 1, logits.data(), kVocab),
                 "rwkvrt_step: model is null");
  EXPECT_INVALID(rwkvrt_step(m, nullptr, toks, 1, logits.data(), kVocab),
                 "rwkvrt_step: state is null");
  EXPECT_INVALID(rwkvrt_step(m, s, nullptr, 1, logits.data(), kVocab),
                 "rwkvrt_step: tokens is null");
  EXPECT_INVALID(rwkvrt_step(m, s, toks, 1, nullptr, kVocab),
                 "rwkvrt_step: logits is null");
  EXPECT_INVALID(rwkvrt_step(m, s, toks, 0, logits.data(), kVocab),
                 "empty token list");
  EXPECT_INVALID(rwkvrt_step(m, s, toks, kHuge, logits.data(), kVocab),
                 "rwkvrt_step: count = 18446744073709551615");
  EXPECT_INVALID(rwkvrt_step(m, s, toks, 1, logits.data(), 0),
                 "logits buffer holds 0 floats, rwkv_step needs 40");
}

TEST_F(FakeModelTest, BadTokenIds) {
  // The state must not move on a refused call.
  float *before = nullptr;
  size_t n = 0;
  ASSERT_EQ(rwkvrt_state_tensor(s, "wkv", 0, &before, &n), RWKVRT_OK);
  std::vector<float> saved(before, before + n);
  for (int32_t bad :
       {int32_t(-1), int32_t(kVocab), int32_t(INT32_MAX), int32_t(INT32_MIN)}) {
    int32_t toks[3] = {1, bad, 2};
    std::string needle =
        "token id " + std::to_string(bad) + " at position 1 is out of range";
    EXPECT_INVALID(rwkvrt_step(m, s, toks, 3, logits.data(), kVocab),
                   needle.c_str());
    EXPECT_INVALID(
        rwkvrt_forward(m, s, toks, 3, 1, logits.data(), logits.size()),
        needle.c_str());
  }
  float *after = nullptr;
  ASSERT_EQ(rwkvrt_state_tensor(s, "wkv", 0, &after, &n), RWKVRT_OK);
  EXPECT_EQ(std::vector<float>(after, after + n), saved);
}

//===----------------------------------------------------------------------===//
// rwkvrt_batch_*
//===----------------------------------------------------------------------===//

TEST_F(FakeModelTest, BatchFunctions) {
  rwkvrt_batch *b = nullptr;
  EXPECT_INVALID(rwkvrt_batch_open(nullptr, &b),
                 "rwkvrt_batch_open: model is null");
  EXPECT_INVALID(rwkvrt_batch_open(m, nullptr), "out_batch is null");
  EXPECT_EQ(rwkvrt_batch_close(nullptr), RWKVRT_OK);
  ASSERT_EQ(rwkvrt_batch_open(m, &b), RWKVRT_OK);

  int64_t slot = -1;
  EXPECT_INVALID(rwkvrt_batch_add(nullptr, nullptr, &slot), "batch is null");
  EXPECT_INVALID(rwkvrt_batch_add(b, nullptr, nullptr), "out_slot is null");
  // Remove / export / step of a slot that is not active or not there.
  for (int64_t bad : {int64_t(0), int64_t(-1), int64_t(1), int64_t(INT64_MAX),
                      int64_t(INT64_MIN)}) {
    std::string needle = "slot " + std::to_string(bad);
    EXPECT_INVALID(rwkvrt_batch_remove(b, bad), needle.c_str());
    EXPECT_INVALID(rwkvrt_batch_export_state(b, bad, s), needle.c_str());
    int32_t tok = 1;
    EXPECT_INVALID(rwkvrt_batch_step(b, &bad, &tok, 1, logits.data(), kVocab),
                   needle.c_str());
  }
  EXPECT_INVALID(rwkvrt_batch_remove(nullptr, 0), "batch is null");
  EXPECT_INVALID(rwkvrt_batch_export_state(nullptr, 0, s), "batch is null");

  ASSERT_EQ(rwkvrt_batch_add(b, s, &slot), RWKVRT_OK);
  int64_t second = -1;
  EXPECT_INVALID(rwkvrt_batch_add(b, nullptr, &second),
                 "all 1 slots of the batch are in use");
  EXPECT_INVALID(rwkvrt_batch_export_state(b, slot, nullptr), "out is null");

  int32_t tok = 1;
  int64_t two[2] = {slot, slot};
  int32_t twoToks[2] = {1, 2};
  EXPECT_INVALID(
      rwkvrt_batch_step(nullptr, &slot, &tok, 1, logits.data(), kVocab),
      "rwkvrt_batch_step: batch is null");
  EXPECT_INVALID(rwkvrt_batch_step(b, nullptr, &tok, 1, logits.data(), kVocab),
                 "slots is null");
  EXPECT_INVALID(rwkvrt_batch_step(b, &slot, nullptr, 1, logits.data(), kVocab),
                 "tokens is null");
  EXPECT_INVALID(rwkvrt_batch_step(b, &slot, &tok, 1, nullptr, kVocab),
                 "logits is null");
  EXPECT_INVALID(rwkvrt_batch_step(b, two, twoToks, 2, logits.data(), kVocab),
                 "count = 2 is more than the batch's 1 slots");
  EXPECT_INVALID(
      rwkvrt_batch_step(b, two, twoToks, kHuge, logits.data(), kVocab),
      "count = 18446744073709551615 is more than");
  EXPECT_INVALID(rwkvrt_batch_step(b, &slot, &tok, 1, logits.data(), 10),
                 "logits buffer holds 10 floats, the step writes 40");
  for (int32_t bad : {int32_t(-1), int32_t(kVocab), int32_t(INT32_MIN)})
    EXPECT_INVALID(
        rwkvrt_batch_step(b, &slot, &bad, 1, logits.data(), kVocab),
        ("tokens[0] = " + std::to_string(bad) + " (slot 0)").c_str());
  // Nothing listed: a valid no-op step.
  EXPECT_EQ(rwkvrt_batch_step(b, nullptr, nullptr, 0, logits.data(), kVocab),
            RWKVRT_OK)
      << rwkvrt_last_error();
  EXPECT_EQ(rwkvrt_batch_remove(b, slot), RWKVRT_OK);
  EXPECT_INVALID(rwkvrt_batch_remove(b, slot), "slot 0 is not active");
  EXPECT_EQ(rwkvrt_batch_close(b), RWKVRT_OK);
}

//===----------------------------------------------------------------------===//
// rwkvrt_train_*
//===----------------------------------------------------------------------===//

TEST(BadTrain, Open) {
  rwkvrt_train *t = nullptr;
  EXPECT_INVALID(rwkvrt_train_open(nullptr, 0, &t),
                 "rwkvrt_train_open: library_path is null");
  EXPECT_INVALID(rwkvrt_train_open(RWKV_FAKE_TRAIN_MODEL, 0, nullptr),
                 "out_train is null");
  EXPECT_INVALID(rwkvrt_train_open("", 0, &t), "library_path is empty");
  EXPECT_INVALID(rwkvrt_train_open(RWKV_FAKE_TRAIN_MODEL, 5000, &t),
                 "threads = 5000 is more than 1024");
  std::string missing = files->path("missing-train.so");
  EXPECT_LOAD_ERR(rwkvrt_train_open(missing.c_str(), 0, &t), missing.c_str());
  std::string dir = files->path("");
  EXPECT_LOAD_ERR(rwkvrt_train_open(dir.c_str(), 0, &t), "cannot load library");
  std::string text = notALibrary();
  EXPECT_LOAD_ERR(rwkvrt_train_open(text.c_str(), 0, &t), text.c_str());
  EXPECT_LOAD_ERR(rwkvrt_train_open(RWKVRT_LIBRARY, 0, &t), RWKVRT_LIBRARY,
                  "rwkv_model_info");
  EXPECT_LOAD_ERR(rwkvrt_train_open(RWKV_FAKE_MODEL, 0, &t),
                  "is not a training library");
  EXPECT_EQ(t, nullptr);
  EXPECT_EQ(rwkvrt_train_close(nullptr), RWKVRT_OK);
}

/// FakeTrainModel.cpp: B = 2, T = 4, V = 8, C = 3, one layer; emb bf16,
/// head f32; ignore index -100.
TEST(BadTrain, Calls) {
  rwkvrt_train *t = nullptr;
  ASSERT_EQ(rwkvrt_train_open(RWKV_FAKE_TRAIN_MODEL, 1, &t), RWKVRT_OK)
      << rwkvrt_last_error();
  rwkvrt_train_desc d;
  const char *json = nullptr;
  EXPECT_INVALID(rwkvrt_train_config(nullptr, &d), "train is null");
  EXPECT_INVALID(rwkvrt_train_config(t, nullptr), "out_desc is null");
  EXPECT_INVALID(rwkvrt_train_info_json(nullptr, &json), "train is null");
  EXPECT_INVALID(rwkvrt_train_info_json(t, nullptr), "out_json is null");
  const char *name = nullptr;
  EXPECT_INVALID(rwkvrt_train_weight(nullptr, 0, &name, nullptr, nullptr,
                                     nullptr, nullptr),
                 "rwkvrt_train_weight: train is null");
  for (int64_t bad :
       {int64_t(-1), int64_t(2), int64_t(INT64_MAX), int64_t(INT64_MIN)})
    EXPECT_INVALID(
        rwkvrt_train_weight(t, bad, &name, nullptr, nullptr, nullptr, nullptr),
        ("weight index " + std::to_string(bad) + " is outside [0, 2)").c_str());
  EXPECT_INVALID(
      rwkvrt_train_state_shape(nullptr, 0, nullptr, nullptr, nullptr),
      "train is null");
  for (int64_t bad : {int64_t(-1), int64_t(1), int64_t(INT64_MIN)})
    EXPECT_INVALID(
        rwkvrt_train_state_shape(t, bad, nullptr, nullptr, nullptr),
        ("layer " + std::to_string(bad) + " is outside [0, 1)").c_str());

  std::vector<uint16_t> emb(24, 0x3f80);
  std::vector<float> head(24, 1.0f), gEmb(24), gHead(24);
  std::vector<int32_t> in(8, 1), tgt(8, 2);
  const void *weights[2] = {emb.data(), head.data()};
  float *grads[2] = {gEmb.data(), gHead.data()};
  float loss = 0;
  auto step = [&](const int32_t *i, const int32_t *g, const void *const *w,
                  float *const *wg, float *l) {
    return rwkvrt_train_step(t, i, g, w, nullptr, wg, nullptr, l);
  };
  EXPECT_INVALID(rwkvrt_train_step(nullptr, in.data(), tgt.data(), weights,
                                   nullptr, grads, nullptr, &loss),
                 "rwkvrt_train_step: train is null");
  EXPECT_INVALID(step(nullptr, tgt.data(), weights, grads, &loss),
                 "inputs is null");
  EXPECT_INVALID(step(in.data(), nullptr, weights, grads, &loss),
                 "targets is null");
  EXPECT_INVALID(step(in.data(), tgt.data(), nullptr, grads, &loss),
                 "weights is null");
  EXPECT_INVALID(step(in.data(), tgt.data(), weights, nullptr, &loss),
                 "weight_grads is null");
  EXPECT_INVALID(step(in.data(), tgt.data(), weights, grads, nullptr),
                 "loss is null");
  EXPECT_INVALID(rwkvrt_train_loss(nullptr, in.data(), tgt.data(), weights,
                                   nullptr, &loss),
                 "rwkvrt_train_loss: train is null");
  EXPECT_INVALID(
      rwkvrt_train_loss(t, in.data(), tgt.data(), weights, nullptr, nullptr),
      "rwkvrt_train_loss: loss is null");
  // A null entry in a pointer array names the weight.
  const void *holey[2] = {emb.data(), nullptr};
  EXPECT_INVALID(step(in.data(), tgt.data(), holey, grads, &loss),
                 "weight 'head.weight' is not bound");
  float *holeyGrads[2] = {nullptr, gHead.data()};
  EXPECT_INVALID(step(in.data(), tgt.data(), weights, holeyGrads, &loss),
                 "no gradient buffer for weight 'emb.weight'");
  // Ids outside the vocabulary, in inputs and in targets; the ignore index
  // is fine as a target only.
  for (int32_t bad : {int32_t(-1), int32_t(8), int32_t(INT32_MAX),
                      int32_t(INT32_MIN), int32_t(-100)}) {
    std::vector<int32_t> badIn = in, badTgt = tgt;
    badIn[6] = bad;
    badTgt[3] = bad;
    EXPECT_INVALID(
        step(badIn.data(), tgt.data(), weights, grads, &loss),
        ("input token " + std::to_string(bad) + " at row 1, position 2")
            .c_str());
    if (bad != -100)
      EXPECT_INVALID(
          rwkvrt_train_loss(t, in.data(), badTgt.data(), weights, nullptr,
                            &loss),
          ("target " + std::to_string(bad) + " at row 0, position 3").c_str());
  }
  EXPECT_EQ(rwkvrt_train_close(t), RWKVRT_OK);
}

//===----------------------------------------------------------------------===//
// rwkvrt_kernel_* / rwkvrt_wkv7_*
//===----------------------------------------------------------------------===//

TEST(BadKernel, OpenAndNulls) {
  rwkvrt_kernel *k = nullptr;
  EXPECT_INVALID(rwkvrt_kernel_open(nullptr, 0, &k),
                 "rwkvrt_kernel_open: library_path is null");
  EXPECT_INVALID(rwkvrt_kernel_open(RWKV_FAKE_MODEL, 0, nullptr),
                 "out_kernel is null");
  EXPECT_INVALID(rwkvrt_kernel_open("", 0, &k), "library_path is empty");
  EXPECT_INVALID(rwkvrt_kernel_open(RWKV_FAKE_MODEL, INT_MAX, &k),
                 "threads = 2147483647");
  std::string missing = files->path("missing-kernel.so");
  EXPECT_LOAD_ERR(rwkvrt_kernel_open(missing.c_str(), 0, &k), missing.c_str());
  std::string text = notALibrary();
  EXPECT_LOAD_ERR(rwkvrt_kernel_open(text.c_str(), 0, &k), text.c_str());
  EXPECT_LOAD_ERR(rwkvrt_kernel_open(RWKVRT_LIBRARY, 0, &k), RWKVRT_LIBRARY);
  // Model and training libraries are not kernel libraries.
  EXPECT_LOAD_ERR(rwkvrt_kernel_open(RWKV_FAKE_MODEL, 0, &k), RWKV_FAKE_MODEL);
  EXPECT_LOAD_ERR(rwkvrt_kernel_open(RWKV_FAKE_TRAIN_MODEL, 0, &k),
                  RWKV_FAKE_TRAIN_MODEL);
  EXPECT_EQ(k, nullptr);
  EXPECT_EQ(rwkvrt_kernel_close(nullptr), RWKVRT_OK);
  int64_t b = 0;
  EXPECT_INVALID(rwkvrt_kernel_shape(nullptr, &b, nullptr, nullptr, nullptr),
                 "rwkvrt_kernel_shape: kernel is null");

  // Every pointer is checked for null before the handle is used, so a
  // handle that is never dereferenced shows which argument is named.
  auto *h = reinterpret_cast<const rwkvrt_kernel *>(&b);
  float x = 0, *p = &x;
  EXPECT_INVALID(rwkvrt_wkv7_forward(nullptr, p, p, p, p, p, p, p, p, p),
                 "rwkvrt_wkv7_forward: kernel is null");
  const char *fwdNames[] = {"r", "w", "k", "v", "a", "b", "y", "state_out"};
  for (int i = 0; i < 8; ++i) {
    float *args[8] = {p, p, p, p, p, p, p, p};
    args[i] = nullptr;
    EXPECT_INVALID(
        rwkvrt_wkv7_forward(h, args[0], args[1], args[2], args[3], args[4],
                            args[5], nullptr, args[6], args[7]),
        (std::string("rwkvrt_wkv7_forward: ") + fwdNames[i] + " is null")
            .c_str());
  }
  EXPECT_INVALID(rwkvrt_wkv7_backward(nullptr, p, p, p, p, p, p, p, p, p, p, p,
                                      p, p, p, p, p),
                 "rwkvrt_wkv7_backward: kernel is null");
  const char *bwdNames[] = {"r",  "w",  "k",  "v",  "a",  "b", "dy",
                            "dr", "dw", "dk", "dv", "da", "db"};
  for (int i = 0; i < 13; ++i) {
    float *args[13];
    std::fill(args, args + 13, p);
    args[i] = nullptr;
    EXPECT_INVALID(
        rwkvrt_wkv7_backward(h, args[0], args[1], args[2], args[3], args[4],
                             args[5], nullptr, args[6], nullptr, args[7],
                             args[8], args[9], args[10], args[11], args[12],
                             nullptr),
        (std::string("rwkvrt_wkv7_backward: ") + bwdNames[i] + " is null")
            .c_str());
  }
}

//===----------------------------------------------------------------------===//
// rwkvrt_tokenizer_*
//===----------------------------------------------------------------------===//

const std::string worldVocab =
    std::string(RWKV_SHARED_DIR) + "/tokenizer/rwkv_vocab_v20230424.txt";
const std::string neoxVocab =
    std::string(RWKV_SHARED_DIR) + "/tokenizer/20B_tokenizer.json";

TEST(BadTokenizer, Open) {
  rwkvrt_tokenizer *t = nullptr;
  EXPECT_INVALID(rwkvrt_tokenizer_open(nullptr, &t),
                 "rwkvrt_tokenizer_open: vocab_path is null");
  EXPECT_INVALID(rwkvrt_tokenizer_open(worldVocab.c_str(), nullptr),
                 "out_tokenizer is null");
  EXPECT_INVALID(rwkvrt_tokenizer_open("", &t), "vocab_path is empty");
  std::string missing = files->path("missing_vocab.txt");
  EXPECT_LOAD_ERR(rwkvrt_tokenizer_open(missing.c_str(), &t), missing.c_str());
  std::string dir = files->path("vocabdir");
  fs::create_directories(dir);
  EXPECT_LOAD_ERR(rwkvrt_tokenizer_open(dir.c_str(), &t), dir.c_str());
  std::string empty = writeText("empty_vocab.txt", "");
  EXPECT_LOAD_ERR(rwkvrt_tokenizer_open(empty.c_str(), &t), empty.c_str());
  std::string garbage =
      writeText("garbage_vocab.txt", std::string("\x00\xff\xfe garbage\n", 12));
  EXPECT_LOAD_ERR(rwkvrt_tokenizer_open(garbage.c_str(), &t), garbage.c_str());
  std::string badLine = writeText("badline_vocab.txt", "1 'a' 1\nxyz\n");
  EXPECT_LOAD_ERR(rwkvrt_tokenizer_open(badLine.c_str(), &t), badLine.c_str());
  // A checkpoint or a library is not a vocabulary.
  EXPECT_LOAD_ERR(rwkvrt_tokenizer_open(fakePth().c_str(), &t),
                  fakePth().c_str());
  EXPECT_LOAD_ERR(rwkvrt_tokenizer_open(RWKV_FAKE_MODEL, &t), RWKV_FAKE_MODEL);
  if (fs::exists(neoxVocab)) {
    std::string cut = truncated(neoxVocab, "cut_tokenizer.json", 0.5);
    EXPECT_LOAD_ERR(rwkvrt_tokenizer_open(cut.c_str(), &t), cut.c_str());
    std::string notTok = writeText("not_tokenizer.json", "{\"model\": 3}");
    EXPECT_LOAD_ERR(rwkvrt_tokenizer_open(notTok.c_str(), &t), notTok.c_str());
  }
  EXPECT_EQ(t, nullptr);
  EXPECT_EQ(rwkvrt_tokenizer_close(nullptr), RWKVRT_OK);
}

TEST(BadTokenizer, EncodeDecode) {
  if (!fs::exists(worldVocab))
    GTEST_SKIP() << worldVocab << " is missing";
  rwkvrt_tokenizer *t = nullptr;
  ASSERT_EQ(rwkvrt_tokenizer_open(worldVocab.c_str(), &t), RWKVRT_OK)
      << rwkvrt_last_error();
  size_t n = 0;
  EXPECT_INVALID(rwkvrt_tokenizer_vocab_size(nullptr, &n), "tokenizer is null");
  EXPECT_INVALID(rwkvrt_tokenizer_vocab_size(t, nullptr), "out_size is null");
  ASSERT_EQ(rwkvrt_tokenizer_vocab_size(t, &n), RWKVRT_OK);
  const int32_t vocab = int32_t(n);

  int32_t ids[8];
  EXPECT_INVALID(rwkvrt_tokenizer_encode(nullptr, "a", 1, ids, 8, &n),
                 "rwkvrt_tokenizer_encode: tokenizer is null");
  EXPECT_INVALID(rwkvrt_tokenizer_encode(t, "a", 1, ids, 8, nullptr),
                 "out_count is null");
  EXPECT_INVALID(rwkvrt_tokenizer_encode(t, nullptr, 1, ids, 8, &n),
                 "bytes is null");
  EXPECT_INVALID(rwkvrt_tokenizer_encode(t, "a", kHuge, ids, 8, &n),
                 "length = 18446744073709551615");
  EXPECT_INVALID(rwkvrt_tokenizer_encode(t, "a", 1, ids, kHuge, &n),
                 "capacity = 18446744073709551615");
  // Empty input, a size query and malformed UTF-8 are all fine.
  EXPECT_EQ(rwkvrt_tokenizer_encode(t, nullptr, 0, ids, 8, &n), RWKVRT_OK);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(rwkvrt_tokenizer_encode(t, "\xff\xfe\xc3", 3, nullptr, 0, &n),
            RWKVRT_OK);
  EXPECT_EQ(n, 3u);

  char bytes[16];
  EXPECT_INVALID(rwkvrt_tokenizer_decode(nullptr, ids, 1, bytes, 16, &n),
                 "rwkvrt_tokenizer_decode: tokenizer is null");
  EXPECT_INVALID(rwkvrt_tokenizer_decode(t, ids, 1, bytes, 16, nullptr),
                 "out_length is null");
  EXPECT_INVALID(rwkvrt_tokenizer_decode(t, nullptr, 1, bytes, 16, &n),
                 "ids is null");
  EXPECT_INVALID(rwkvrt_tokenizer_decode(t, ids, kHuge, bytes, 16, &n),
                 "count = 18446744073709551615");
  EXPECT_INVALID(rwkvrt_tokenizer_decode(t, ids, kMinusFive, bytes, 16, &n),
                 "count = 18446744073709551611");
  EXPECT_INVALID(rwkvrt_tokenizer_decode(t, ids, 0, bytes, kHuge, &n),
                 "capacity = 18446744073709551615");
  for (int32_t bad :
       {int32_t(-1), vocab, int32_t(INT32_MAX), int32_t(INT32_MIN)}) {
    int32_t in[3] = {65, 66, bad};
    EXPECT_INVALID(
        rwkvrt_tokenizer_decode(t, in, 3, bytes, 16, &n),
        ("token id " + std::to_string(bad) + " at position 2").c_str());
  }
  EXPECT_EQ(rwkvrt_tokenizer_decode(t, nullptr, 0, nullptr, 0, &n), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_tokenizer_close(t), RWKVRT_OK);
}

} // namespace
