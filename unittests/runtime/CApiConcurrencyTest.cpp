//===- CApiConcurrencyTest.cpp - C API handles shared between threads ----===//
//
// FakeLifetime / FakeConcurrency (FakeModel.so, no compiler needed): a
// handle is not closed or freed while something uses it (RWKVRT_ERR_BUSY
// naming what), calls held inside the library from another thread count as
// users, and many threads stepping one model agree with a serial run.
// GoldenConcurrency (--lib-dir / --golden-dir, the golden libraries of the
// rwkv_golden_libs fixture): the same bit for bit on compiled models.
// Labelled "concurrency" so that a ThreadSanitizer build can run just these.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/rwkv_runtime.h"
#include "unittests/runtime/FakeModel.h"

#include <gtest/gtest.h>

#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string goldenDir, libDir;
std::string fakePath; // written on first use, removed by main

const std::string &fakeCheckpoint() {
  if (fakePath.empty()) {
    std::string p = ::testing::TempDir() + "rwkv_conc_" +
                    std::to_string(getpid()) + "_fake.pth";
    rwkv::writePth(p, rwkv::makeSyntheticModel(rwkv::fakeModelOptions()));
    fakePath = p;
  }
  return fakePath;
}

std::string lastError() { return rwkvrt_last_error(); }

#define EXPECT_CONTAINS(haystack, needle)                                      \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos)             \
      << "'" << (haystack) << "' lacks '" << (needle) << "'"

//===----------------------------------------------------------------------===//
// Holding a call inside a fake library
//===----------------------------------------------------------------------===//

/// The fake libraries call a hook at the start of every entry point
/// (rwkv_fake_set_call_hook); this one blocks there until released, so a
/// test knows a call is in progress on another thread.
std::mutex gateMutex;
std::condition_variable gateCv;
bool gateOpen = true;
int callsInside = 0;

void gateHook() {
  std::unique_lock<std::mutex> lock(gateMutex);
  ++callsInside;
  gateCv.notify_all();
  gateCv.wait(lock, [] { return gateOpen; });
}

/// Runs `call` on a thread and returns once it is inside the library.
class HeldCall {
public:
  HeldCall(const char *library, std::function<int()> call) {
    // The library the model loaded: dlopen returns the same handle.
    if (void *h = dlopen(library, RTLD_NOW | RTLD_NOLOAD)) {
      setHook_ = reinterpret_cast<void (*)(void (*)())>(
          dlsym(h, "rwkv_fake_set_call_hook"));
      dlclose(h);
    }
    if (!setHook_) {
      ADD_FAILURE() << "no rwkv_fake_set_call_hook in " << library;
      return;
    }
    {
      std::lock_guard<std::mutex> lock(gateMutex);
      gateOpen = false;
      callsInside = 0;
    }
    setHook_(gateHook);
    thread_ = std::thread([this, call] { rc_ = call(); });
    std::unique_lock<std::mutex> lock(gateMutex);
    gateCv.wait(lock, [] { return callsInside > 0; });
  }
  /// Lets the call finish; its status.
  int release() {
    if (!setHook_)
      return -1;
    {
      std::lock_guard<std::mutex> lock(gateMutex);
      gateOpen = true;
    }
    gateCv.notify_all();
    thread_.join();
    setHook_(nullptr);
    return rc_;
  }
  ~HeldCall() {
    if (thread_.joinable())
      release();
  }

private:
  void (*setHook_)(void (*)()) = nullptr;
  std::thread thread_;
  int rc_ = -1;
};

rwkvrt_model *openFake() {
  rwkvrt_model *m = nullptr;
  EXPECT_EQ(rwkvrt_model_open(RWKV_FAKE_MODEL, fakeCheckpoint().c_str(), 1, &m),
            RWKVRT_OK)
      << lastError();
  return m;
}

//===----------------------------------------------------------------------===//
// FakeLifetime
//===----------------------------------------------------------------------===//

TEST(FakeLifetime, ModelCloseRefusedWhileStatesLive) {
  rwkvrt_model *m = openFake();
  ASSERT_NE(m, nullptr);
  rwkvrt_state *a = nullptr, *b = nullptr, *c = nullptr;
  ASSERT_EQ(rwkvrt_state_new(m, &a), RWKVRT_OK);
  ASSERT_EQ(rwkvrt_state_new(m, &b), RWKVRT_OK);
  ASSERT_EQ(rwkvrt_state_copy(a, &c), RWKVRT_OK); // a copy counts too
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_ERR_BUSY);
  EXPECT_EQ(lastError(),
            "the model is in use by 3 states: free the states and close the "
            "batches first, and wait for the calls to return");
  // Refused means untouched: the model still steps.
  int32_t tok = 3;
  std::vector<float> logits(40);
  EXPECT_EQ(rwkvrt_step(m, c, &tok, 1, logits.data(), logits.size()), RWKVRT_OK)
      << lastError();
  EXPECT_EQ(rwkvrt_state_free(a), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_state_free(b), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_ERR_BUSY);
  EXPECT_CONTAINS(lastError(), "in use by 1 state:");
  EXPECT_EQ(rwkvrt_state_free(c), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_OK) << lastError();
  EXPECT_EQ(lastError(), "");
}

TEST(FakeLifetime, ModelCloseRefusedWhileBatchOpen) {
  rwkvrt_model *m = openFake();
  ASSERT_NE(m, nullptr);
  rwkvrt_batch *b1 = nullptr, *b2 = nullptr;
  ASSERT_EQ(rwkvrt_batch_open(m, &b1), RWKVRT_OK);
  ASSERT_EQ(rwkvrt_batch_open(m, &b2), RWKVRT_OK);
  rwkvrt_state *s = nullptr;
  ASSERT_EQ(rwkvrt_state_new(m, &s), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_ERR_BUSY);
  EXPECT_CONTAINS(lastError(), "the model is in use by 1 state, 2 batches");
  EXPECT_EQ(rwkvrt_batch_close(b1), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_state_free(s), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_ERR_BUSY);
  EXPECT_CONTAINS(lastError(), "in use by 1 batch:");
  EXPECT_EQ(rwkvrt_batch_close(b2), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_OK) << lastError();
}

// A step held inside the library on another thread: the model, the state
// it steps and a second use of that state are all refused until it returns.
TEST(FakeLifetime, RefusedDuringAStepOnAnotherThread) {
  rwkvrt_model *m = openFake();
  ASSERT_NE(m, nullptr);
  rwkvrt_state *s = nullptr;
  ASSERT_EQ(rwkvrt_state_new(m, &s), RWKVRT_OK);
  std::vector<float> held(40), mine(40);
  int32_t tok = 5;
  {
    HeldCall call(RWKV_FAKE_MODEL, [&] {
      return rwkvrt_step(m, s, &tok, 1, held.data(), held.size());
    });
    EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_ERR_BUSY);
    EXPECT_CONTAINS(lastError(),
                    "the model is in use by 1 call in progress, 1 state:");
    EXPECT_EQ(rwkvrt_state_free(s), RWKVRT_ERR_BUSY);
    EXPECT_CONTAINS(lastError(),
                    "the state is in use by a call on another thread");
    EXPECT_EQ(rwkvrt_step(m, s, &tok, 1, mine.data(), mine.size()),
              RWKVRT_ERR_BUSY);
    EXPECT_CONTAINS(lastError(), "the state is in use");
    rwkvrt_state *copy = nullptr;
    EXPECT_EQ(rwkvrt_state_copy(s, &copy), RWKVRT_ERR_BUSY);
    EXPECT_EQ(copy, nullptr);
    EXPECT_CONTAINS(lastError(), "the source state is in use");
    EXPECT_EQ(rwkvrt_state_reset(s), RWKVRT_ERR_BUSY);
    float *data = nullptr;
    size_t n = 0;
    EXPECT_EQ(rwkvrt_state_tensor(s, "wkv", 0, &data, &n), RWKVRT_ERR_BUSY);
    // Other states of the model are free to step meanwhile.
    rwkvrt_state *other = nullptr;
    ASSERT_EQ(rwkvrt_state_new(m, &other), RWKVRT_OK);
    EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_ERR_BUSY);
    EXPECT_CONTAINS(lastError(), "1 call in progress, 2 states:");
    EXPECT_EQ(rwkvrt_state_free(other), RWKVRT_OK);
    EXPECT_EQ(call.release(), RWKVRT_OK);
  }
  // The held step went through exactly once.
  float *data = nullptr;
  size_t n = 0;
  ASSERT_EQ(rwkvrt_state_tensor(s, "wkv", 0, &data, &n), RWKVRT_OK);
  EXPECT_EQ(data[0], 1.0f);
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_ERR_BUSY);
  EXPECT_EQ(rwkvrt_state_free(s), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_OK) << lastError();
}

TEST(FakeLifetime, BatchCloseRefusedDuringAStep) {
  rwkvrt_model *m = openFake();
  ASSERT_NE(m, nullptr);
  rwkvrt_batch *b = nullptr;
  ASSERT_EQ(rwkvrt_batch_open(m, &b), RWKVRT_OK);
  int64_t slot = -1;
  ASSERT_EQ(rwkvrt_batch_add(b, nullptr, &slot), RWKVRT_OK);
  std::vector<float> logits(40);
  int32_t tok = 7;
  {
    HeldCall call(RWKV_FAKE_MODEL, [&] {
      return rwkvrt_batch_step(b, &slot, &tok, 1, logits.data(), logits.size());
    });
    EXPECT_EQ(rwkvrt_batch_close(b), RWKVRT_ERR_BUSY);
    EXPECT_CONTAINS(lastError(), "the batch is in use by a call on another");
    EXPECT_EQ(rwkvrt_batch_remove(b, slot), RWKVRT_ERR_BUSY);
    EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_ERR_BUSY);
    EXPECT_CONTAINS(lastError(), "the model is in use by 1 batch:");
    EXPECT_EQ(call.release(), RWKVRT_OK);
  }
  EXPECT_EQ(rwkvrt_batch_close(b), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_OK) << lastError();
}

TEST(FakeLifetime, TrainCloseRefusedDuringAStep) {
  rwkvrt_train *t = nullptr;
  ASSERT_EQ(rwkvrt_train_open(RWKV_FAKE_TRAIN_MODEL, 1, &t), RWKVRT_OK)
      << lastError();
  // FakeTrainModel.cpp: B = 2, T = 4, V = 8, C = 3; emb bf16, head f32.
  std::vector<uint16_t> emb(24, 0x3f80);
  std::vector<float> head(24, 1.0f), gEmb(24), gHead(24);
  std::vector<int32_t> in(8, 1), tgt(8, 2);
  const void *weights[2] = {emb.data(), head.data()};
  float *grads[2] = {gEmb.data(), gHead.data()};
  float loss = 0;
  {
    HeldCall call(RWKV_FAKE_TRAIN_MODEL, [&] {
      return rwkvrt_train_step(t, in.data(), tgt.data(), weights, nullptr,
                               grads, nullptr, &loss);
    });
    EXPECT_EQ(rwkvrt_train_close(t), RWKVRT_ERR_BUSY);
    EXPECT_CONTAINS(lastError(),
                    "the training library is in use by 1 call in progress");
    EXPECT_EQ(call.release(), RWKVRT_OK);
  }
  EXPECT_FLOAT_EQ(loss, 3.0f);
  EXPECT_EQ(rwkvrt_train_close(t), RWKVRT_OK) << lastError();
}

//===----------------------------------------------------------------------===//
// Many threads, one model: the same results as one thread
//===----------------------------------------------------------------------===//

/// What one sequence produced: the logits of every call, then its final
/// state tensors.
struct Trace {
  std::vector<float> logits, state;
  int status = RWKVRT_OK;
  std::string error;
  bool operator==(const Trace &o) const {
    // Bit for bit (NaN payloads included): memcmp, not float ==.
    return status == o.status && logits.size() == o.logits.size() &&
           state.size() == o.state.size() &&
           std::memcmp(logits.data(), o.logits.data(),
                       logits.size() * sizeof(float)) == 0 &&
           std::memcmp(state.data(), o.state.data(),
                       state.size() * sizeof(float)) == 0;
  }
};

std::vector<int32_t> randomTokens(int seed, size_t n, int64_t vocab) {
  std::mt19937 rng(uint32_t(seed) * 7919u + 1);
  std::uniform_int_distribution<int32_t> dist(0, int32_t(vocab - 1));
  std::vector<int32_t> out(n);
  for (int32_t &t : out)
    t = dist(rng);
  return out;
}

void appendState(rwkvrt_state *s, int64_t layers, Trace &trace) {
  for (int64_t l = 0; l < layers; ++l)
    for (const char *name : {"att_shift", "wkv", "ffn_shift"}) {
      float *data = nullptr;
      size_t n = 0;
      if (rwkvrt_state_tensor(s, name, l, &data, &n) == RWKVRT_OK)
        trace.state.insert(trace.state.end(), data, data + n);
    }
}

/// Sequence `seed` on `m` from a fresh state: a token at a time through
/// rwkvrt_step, then (if the library has it) a chunk through rwkvrt_forward.
Trace runSequence(rwkvrt_model *m, int seed, size_t steps, size_t chunk,
                  bool forward) {
  Trace trace;
  rwkvrt_config cfg;
  rwkvrt_model_config(m, &cfg);
  rwkvrt_state *s = nullptr;
  auto check = [&](int rc) {
    if (rc != RWKVRT_OK && trace.status == RWKVRT_OK) {
      trace.status = rc;
      trace.error = rwkvrt_last_error();
    }
    return rc == RWKVRT_OK;
  };
  if (!check(rwkvrt_state_new(m, &s)))
    return trace;
  std::vector<int32_t> toks = randomTokens(seed, steps + chunk, cfg.vocab_size);
  std::vector<float> logits(size_t(cfg.vocab_size) * (chunk + 1));
  for (size_t i = 0; i < steps; ++i) {
    if (!check(rwkvrt_step(m, s, &toks[i], 1, logits.data(), logits.size())))
      break;
    trace.logits.insert(trace.logits.end(), logits.begin(),
                        logits.begin() + cfg.vocab_size);
  }
  if (forward && chunk &&
      check(rwkvrt_forward(m, s, toks.data() + steps, chunk, 1, logits.data(),
                           logits.size())))
    trace.logits.insert(trace.logits.end(), logits.begin(),
                        logits.begin() + cfg.vocab_size * int64_t(chunk));
  appendState(s, cfg.n_layer, trace);
  check(rwkvrt_state_free(s));
  return trace;
}

/// Runs `sequences` sequences on `threads` threads at once (each its own
/// state) and expects every trace to equal the serial one; meanwhile the
/// main thread's rwkvrt_model_close is refused.
void expectThreadsMatchSerial(rwkvrt_model *m, int threads, int sequences,
                              size_t steps, size_t chunk, bool forward) {
  std::vector<Trace> serial;
  for (int i = 0; i < sequences; ++i) {
    serial.push_back(runSequence(m, i, steps, chunk, forward));
    ASSERT_EQ(serial.back().status, RWKVRT_OK) << serial.back().error;
    ASSERT_FALSE(serial.back().logits.empty() || serial.back().state.empty());
  }
  std::vector<Trace> parallel(static_cast<size_t>(sequences));
  std::atomic<int> next{0}, started{0};
  std::atomic<bool> closeTried{false};
  std::vector<std::thread> pool;
  // Each thread holds a state of its own until the close below has been
  // tried, so that the close is refused however the threads are scheduled
  // (a fast model's threads could otherwise finish every sequence and free
  // their states before the main thread runs again).
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      rwkvrt_state *keep = nullptr;
      rwkvrt_state_new(m, &keep);
      ++started;
      while (started.load() < threads)
        std::this_thread::yield();
      for (int i; (i = next++) < sequences;)
        parallel[size_t(i)] = runSequence(m, i, steps, chunk, forward);
      while (!closeTried.load())
        std::this_thread::yield();
      rwkvrt_state_free(keep);
    });
  while (started.load() < threads)
    std::this_thread::yield();
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_ERR_BUSY);
  EXPECT_CONTAINS(lastError(), "the model is in use by");
  closeTried = true;
  for (std::thread &t : pool)
    t.join();
  for (int i = 0; i < sequences; ++i) {
    EXPECT_EQ(parallel[size_t(i)].status, RWKVRT_OK)
        << parallel[size_t(i)].error;
    EXPECT_TRUE(parallel[size_t(i)] == serial[size_t(i)])
        << "sequence " << i << " differs from its serial run";
  }
}

TEST(FakeConcurrency, ThreadsMatchSerialRun) {
  rwkvrt_model *m = openFake();
  ASSERT_NE(m, nullptr);
  expectThreadsMatchSerial(m, 8, 32, 16, 8, true);
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_OK) << lastError();
}

// Several threads opening and closing states and batches on one model while
// others step: the counts stay exact (the model closes at the end).
TEST(FakeConcurrency, StatesAndBatchesComeAndGo) {
  rwkvrt_model *m = openFake();
  ASSERT_NE(m, nullptr);
  std::vector<std::thread> pool;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t)
    pool.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        rwkvrt_state *s = nullptr, *c = nullptr;
        rwkvrt_batch *b = nullptr;
        int32_t tok = (t + i) % 40;
        std::vector<float> logits(40);
        int64_t slot = -1;
        bool ok = rwkvrt_state_new(m, &s) == RWKVRT_OK &&
                  rwkvrt_step(m, s, &tok, 1, logits.data(), 40) == RWKVRT_OK &&
                  rwkvrt_state_copy(s, &c) == RWKVRT_OK &&
                  rwkvrt_batch_open(m, &b) == RWKVRT_OK &&
                  rwkvrt_batch_add(b, c, &slot) == RWKVRT_OK &&
                  rwkvrt_batch_step(b, &slot, &tok, 1, logits.data(), 40) ==
                      RWKVRT_OK;
        ok &= rwkvrt_batch_close(b) == RWKVRT_OK;
        ok &= rwkvrt_state_free(c) == RWKVRT_OK;
        ok &= rwkvrt_state_free(s) == RWKVRT_OK;
        if (!ok)
          ++failures;
      }
    });
  for (std::thread &t : pool)
    t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_OK) << lastError();
}

//===----------------------------------------------------------------------===//
// GoldenConcurrency: compiled golden models
//===----------------------------------------------------------------------===//

#define REQUIRE_GOLDEN()                                                       \
  if (libDir.empty() || goldenDir.empty())                                     \
  GTEST_SKIP() << "needs --lib-dir and --golden-dir"

rwkvrt_model *openGolden(const std::string &lib, const std::string &model) {
  rwkvrt_model *m = nullptr;
  std::string so = libDir + "/" + lib + ".so";
  std::string pth = goldenDir + "/" + model + "/model.pth";
  EXPECT_EQ(rwkvrt_model_open(so.c_str(), pth.c_str(), 1, &m), RWKVRT_OK)
      << lastError();
  return m;
}

TEST(GoldenConcurrency, ThreadsMatchSerialRun) {
  REQUIRE_GOLDEN();
  rwkvrt_model *m = openGolden("tiny", "tiny");
  ASSERT_NE(m, nullptr);
  expectThreadsMatchSerial(m, 8, 32, 24, 40, true);
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_OK) << lastError();
}

// One batch per thread on a --batch 2 library: each slot's logits and the
// exported states match the same batch stepped alone.
TEST(GoldenConcurrency, BatchesMatchSerialRun) {
  REQUIRE_GOLDEN();
  rwkvrt_model *b2 = openGolden("tiny-b2", "tiny");
  rwkvrt_model *b1 = openGolden("tiny", "tiny");
  ASSERT_NE(b2, nullptr);
  ASSERT_NE(b1, nullptr);
  rwkvrt_config cfg;
  ASSERT_EQ(rwkvrt_model_config(b2, &cfg), RWKVRT_OK);
  ASSERT_EQ(cfg.batch, 2);
  const size_t v = size_t(cfg.vocab_size), steps = 24;
  auto runBatch = [&](int seed) {
    Trace trace;
    rwkvrt_batch *b = nullptr;
    rwkvrt_state *out = nullptr;
    int64_t slots[2] = {-1, -1};
    std::vector<float> logits(2 * v);
    std::vector<int32_t> toks = randomTokens(seed, 2 * steps, cfg.vocab_size);
    auto check = [&](int rc) {
      if (rc != RWKVRT_OK && trace.status == RWKVRT_OK) {
        trace.status = rc;
        trace.error = rwkvrt_last_error();
      }
      return rc == RWKVRT_OK;
    };
    if (check(rwkvrt_batch_open(b2, &b)) &&
        check(rwkvrt_batch_add(b, nullptr, &slots[0])) &&
        check(rwkvrt_batch_add(b, nullptr, &slots[1]))) {
      for (size_t i = 0; i < steps; ++i) {
        // Slot 1 waits every third step.
        size_t n = i % 3 == 2 ? 1 : 2;
        if (!check(rwkvrt_batch_step(b, slots, &toks[2 * i], n, logits.data(),
                                     logits.size())))
          break;
        trace.logits.insert(trace.logits.end(), logits.begin(),
                            logits.begin() + ptrdiff_t(n * v));
      }
      for (int64_t s : slots)
        if (check(rwkvrt_state_new(b1, &out)) &&
            check(rwkvrt_batch_export_state(b, s, out))) {
          appendState(out, cfg.n_layer, trace);
          rwkvrt_state_free(out);
        }
    }
    check(rwkvrt_batch_close(b));
    return trace;
  };
  const int threads = 8;
  std::vector<Trace> serial, parallel(threads);
  for (int i = 0; i < threads; ++i) {
    serial.push_back(runBatch(i));
    ASSERT_EQ(serial.back().status, RWKVRT_OK) << serial.back().error;
    ASSERT_FALSE(serial.back().logits.empty() || serial.back().state.empty());
  }
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&, i] { parallel[size_t(i)] = runBatch(i); });
  for (std::thread &t : pool)
    t.join();
  for (int i = 0; i < threads; ++i) {
    EXPECT_EQ(parallel[size_t(i)].status, RWKVRT_OK)
        << parallel[size_t(i)].error;
    EXPECT_TRUE(parallel[size_t(i)] == serial[size_t(i)]) << "batch " << i;
  }
  // Closing with a batch open is refused; after it is closed it works.
  rwkvrt_batch *open = nullptr;
  ASSERT_EQ(rwkvrt_batch_open(b2, &open), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_model_close(b2), RWKVRT_ERR_BUSY);
  EXPECT_CONTAINS(lastError(), "in use by 1 batch");
  EXPECT_EQ(rwkvrt_batch_close(open), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_model_close(b2), RWKVRT_OK) << lastError();
  EXPECT_EQ(rwkvrt_model_close(b1), RWKVRT_OK) << lastError();
}

} // namespace

int main(int argc, char **argv) {
  // The golden flags are optional: without them only the fake tests run.
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--golden-dir=", 0) == 0)
      goldenDir = a.substr(13);
    else if (a.rfind("--lib-dir=", 0) == 0)
      libDir = a.substr(10);
  }
  int rc = RUN_ALL_TESTS();
  if (!fakePath.empty())
    std::remove(fakePath.c_str());
  return rc;
}
