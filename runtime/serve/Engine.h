//===- Engine.h - Continuous batching scheduler for rwkv-serve --*- C++ -*-===//
//
// The engine owns the model, the tokenizer and the state cache, and runs the
// batch loop on its own thread. HTTP threads submit() requests and read
// their Job's events; between two decode steps the loop admits queued
// requests, runs at most one prefill chunk (so a long prompt never stalls
// the sequences that decode), samples one token for every sequence that has
// logits, and advances them all with one batched step (BatchDecoder over a
// --batch N library; one Model::step per sequence for batch 1).
//
// Each sequence has its own Sampler (and random generator, seeded from the
// request), and a sequence's logits depend only on its own tokens, so a
// seeded request gives the same text alone or among others.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_SERVE_ENGINE_H
#define RWKV_RUNTIME_SERVE_ENGINE_H

#include "runtime/core/Batch.h"
#include "runtime/core/Runtime.h"
#include "runtime/core/StateFile.h"
#include "runtime/serve/Api.h"
#include "runtime/serve/Metrics.h"
#include "runtime/serve/StateCache.h"
#include "runtime/text/Tokenizer.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace rwkv::serve {

struct EngineOptions {
  std::string library, weights, vocab;
  /// A batch-1 library of the same model for chunked GPT-mode prefill when
  /// `library` has batch N > 1. Without it such prompts are fed one token
  /// per batched step.
  std::string prefillLibrary;
  /// Directory of named initial states (state files or .pth time_state).
  std::string stateDir;
  int threads = 0;
  /// Sequences decoded at once; 0: the library's batch (16 for batch 1).
  size_t maxSequences = 0;
  size_t maxQueue = 64; // requests waiting for a sequence
  size_t cacheBytes = size_t(256) << 20;
  size_t prefillChunk = 128; // tokens per prefill call
  size_t cacheEvery = 512;   // also cache every this many tokens
  Limits limits;
};

struct Event {
  enum class Kind { Text, Finish, Error };
  Kind kind = Kind::Text;
  size_t index = 0;         // the choice
  std::string text;         // Text: the new text; Error: the message
  std::string finishReason; // Finish: "stop" or "length"
};

/// One request in flight: the HTTP side waits for its events, the engine
/// pushes them.
class Job {
public:
  using Clock = std::chrono::steady_clock;

  /// Waits up to `timeout` for events and appends them to `out`. Returns
  /// true once every choice has finished (or failed) and `out` holds the
  /// last events.
  bool wait(std::vector<Event> &out, std::chrono::milliseconds timeout);
  /// The client is gone: the engine frees its sequences at the next step.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  const GenerationRequest &request() const { return request_; }
  size_t promptTokens() const { return prompt_->size(); }
  size_t cachedTokens() const { return cachedTokens_; }
  size_t completionTokens() const { return completionTokens_; }
  Clock::time_point submitted() const { return submitted_; }

private:
  friend class Engine;
  void push(Event event, bool last);

  GenerationRequest request_;
  std::shared_ptr<const std::vector<int32_t>> prompt_;
  std::vector<size_t> cachePoints_; // ascending, end of prompt included
  std::string origin_;              // "" or the state name
  std::shared_ptr<const State> initial_;
  Clock::time_point submitted_ = Clock::now();
  std::atomic<bool> cancelled_{false};
  std::atomic<size_t> cachedTokens_{0}, completionTokens_{0};
  bool firstToken_ = false; // engine thread only

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  size_t remaining_ = 0; // choices not yet finished
};

class Engine {
public:
  /// Loads the library (and prefill library), the weights and the
  /// vocabulary, and starts the loop. Throws RuntimeError / runtime_error
  /// naming the file at fault.
  Engine(const EngineOptions &options, Metrics &metrics);
  ~Engine();
  Engine(const Engine &) = delete;
  Engine &operator=(const Engine &) = delete;

  /// Tokenizes and queues a request. Throws ApiError: 400 for a prompt that
  /// is empty, too long or has ids outside the model, or an unknown state;
  /// 429 when the queue is full; 503 once shutdown has begun.
  std::shared_ptr<Job> submit(GenerationRequest request);

  /// Stops accepting requests, lets the running ones finish for up to
  /// `grace`, then ends the rest with an error event, and stops the loop.
  void shutdown(std::chrono::milliseconds grace);
  bool accepting() const { return accepting_; }

  int64_t batch() const { return model_->batch(); }
  size_t capacity() const { return capacity_; }
  const Tokenizer &tokenizer() const { return *tokenizer_; }
  const Model &model() const { return *model_; }
  bool chunkedPrefill() const { return prefillModel_ != nullptr; }

private:
  struct Sequence;
  void loop();
  void admit(const std::shared_ptr<Job> &job);
  bool prefillOne();
  void sampleAll();
  void stepAll();
  void emit(Sequence &seq, size_t upTo);
  void finish(Sequence &seq, const char *reason);
  void fail(Sequence &seq, const std::string &message);
  void release(Sequence &seq);
  void insertCache(Sequence &seq, const State &state, bool withLogits);
  State newSlotState() const;
  std::shared_ptr<const State> persona(const std::string &name);
  void updateGauges();

  EngineOptions options_;
  Metrics &metrics_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Model> model_, prefillOwned_;
  const Model *prefillModel_ = nullptr; // batch 1, for chunked prefill
  std::unique_ptr<BatchDecoder> decoder_;
  /// The layout of one sequence's state (batch 1) and its fingerprint.
  std::shared_ptr<const State::Layout> slotLayout_;
  ModelFingerprint fingerprint_;
  size_t capacity_ = 0;
  size_t vocab_ = 0;       // the model's
  size_t sampleVocab_ = 0; // ids both model and tokenizer have

  StateCache cache_;
  std::vector<std::unique_ptr<Sequence>> active_; // engine thread only
  std::vector<float> batchLogits_;

  std::mutex personaMutex_;
  std::map<std::string, std::shared_ptr<const State>> personas_;

  std::mutex mutex_;
  std::condition_variable cv_, idle_;
  std::deque<std::shared_ptr<Job>> queue_;
  size_t activeCount_ = 0; // active_.size(), for other threads
  bool stop_ = false, cancelAll_ = false;
  std::atomic<bool> accepting_{true};
  std::thread thread_;
};

} // namespace rwkv::serve

#endif // RWKV_RUNTIME_SERVE_ENGINE_H
