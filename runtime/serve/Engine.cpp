//===- Engine.cpp - Continuous batching scheduler for rwkv-serve ----------===//

#include "runtime/serve/Engine.h"
#include "runtime/core/StateFile.h"
#include "runtime/text/Sampler.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <random>

namespace rwkv::serve {

using Clock = std::chrono::steady_clock;

//===----------------------------------------------------------------------===//
// Job
//===----------------------------------------------------------------------===//

bool Job::wait(std::vector<Event> &out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait_for(lock, timeout,
               [&] { return !events_.empty() || remaining_ == 0; });
  while (!events_.empty()) {
    out.push_back(std::move(events_.front()));
    events_.pop_front();
  }
  return remaining_ == 0;
}

void Job::push(Event event, bool last) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back(std::move(event));
    if (last && remaining_ > 0)
      --remaining_;
  }
  cv_.notify_all();
}

//===----------------------------------------------------------------------===//
// Engine
//===----------------------------------------------------------------------===//

struct Engine::Sequence {
  std::shared_ptr<Job> job;
  size_t index = 0;
  size_t fed = 0;              // prompt tokens in the state
  std::optional<State> state;  // own state (prefill model / batch 1)
  int64_t slot = -1;           // BatchDecoder slot
  bool inBatchPrefill = false; // prompt fed through the batched steps
  std::vector<float> logits;
  bool ready = false; // logits are fresh: sample next
  int32_t pending = -1;
  Sampler sampler;
  size_t generated = 0, shown = 0;
  bool done = false;

  const std::vector<int32_t> &prompt() const { return *job->prompt_; }
  bool isCachePoint(size_t n) const {
    const auto &p = job->cachePoints_;
    return std::binary_search(p.begin(), p.end(), n);
  }
};

Engine::Engine(const EngineOptions &options, Metrics &metrics)
    : options_(options), metrics_(metrics), cache_(options.cacheBytes) {
  tokenizer_ = openTokenizer(options.vocab);
  ModelOptions mo;
  mo.threads = options.threads;
  model_ = Model::load(options.library, options.weights, mo);
  vocab_ = size_t(model_->vocabSize());
  sampleVocab_ = std::min(vocab_, tokenizer_->vocabSize());
  if (model_->batch() == 1) {
    prefillModel_ = model_.get();
    capacity_ = options.maxSequences ? options.maxSequences : 16;
  } else {
    decoder_ = std::make_unique<BatchDecoder>(*model_);
    capacity_ = options.maxSequences
                    ? std::min<size_t>(options.maxSequences, model_->batch())
                    : size_t(model_->batch());
    if (!options.prefillLibrary.empty()) {
      prefillOwned_ = Model::load(options.prefillLibrary, options.weights, mo);
      if (prefillOwned_->batch() != 1)
        throw RuntimeError(fmt::format(
            "--prefill-library '{}' must be a batch-1 library (it has batch "
            "{})",
            options.prefillLibrary, prefillOwned_->batch()));
      if (prefillOwned_->vocabSize() != model_->vocabSize())
        throw RuntimeError("--prefill-library is not the same model");
      prefillModel_ = prefillOwned_.get();
    }
  }
  if (prefillModel_) {
    slotLayout_ = prefillModel_->newState().layout();
    fingerprint_ = fingerprintOf(*prefillModel_);
  } else {
    // One row of the batch state: what a batch-1 library of this model has,
    // so state files written by rwkv-run fit.
    auto layout = std::make_shared<State::Layout>(*model_->newState().layout());
    for (State::TensorInfo &t : *layout) {
      t.numel /= size_t(model_->batch());
      t.shape[0] = 1;
    }
    ModelInfo info = model_->info();
    info.batch = 1;
    fingerprint_ = fingerprintOf(info, *layout);
    slotLayout_ = std::move(layout);
  }
  if (!options.stateDir.empty() &&
      !std::filesystem::is_directory(options.stateDir))
    throw RuntimeError(
        fmt::format("--state-dir '{}' is not a directory", options.stateDir));

  std::vector<double> secs = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                              0.5,   1,    2.5,   5,    10,  30};
  std::vector<double> rows;
  for (size_t i = 1; i <= std::max<size_t>(capacity_, 1); i *= 2)
    rows.push_back(double(i));
  metrics_.declare("rwkv_active_sequences", "gauge",
                   "sequences being prefilled or decoded");
  metrics_.declare("rwkv_queued_requests", "gauge",
                   "requests waiting for a sequence slot");
  metrics_.declare("rwkv_sequence_capacity", "gauge",
                   "sequences decoded at once at most");
  metrics_.declare("rwkv_batch_occupancy", "histogram",
                   "sequences advanced per decode step", rows);
  metrics_.declare("rwkv_decode_steps_total", "counter",
                   "batched decode steps");
  metrics_.declare("rwkv_step_seconds", "histogram",
                   "wall time of one decode step", secs);
  metrics_.declare("rwkv_prompt_tokens_total", "counter",
                   "prompt tokens of admitted sequences");
  metrics_.declare("rwkv_prompt_cached_tokens_total", "counter",
                   "prompt tokens taken from the state cache");
  metrics_.declare("rwkv_prefill_tokens_total", "counter",
                   "prompt tokens run through the model");
  metrics_.declare("rwkv_generated_tokens_total", "counter", "tokens sampled");
  metrics_.declare("rwkv_time_to_first_token_seconds", "histogram",
                   "from submission to the first sampled token", secs);
  metrics_.declare("rwkv_state_cache_bytes", "gauge", "state cache size");
  metrics_.declare("rwkv_state_cache_entries", "gauge",
                   "states in the state cache");
  metrics_.declare("rwkv_state_cache_evictions_total", "counter",
                   "states evicted from the state cache");
  metrics_.set("rwkv_sequence_capacity", double(capacity_));
  updateGauges();
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    cancelAll_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

State Engine::newSlotState() const {
  return prefillModel_ ? prefillModel_->newState() : State(slotLayout_);
}

std::shared_ptr<const State> Engine::persona(const std::string &name) {
  std::lock_guard<std::mutex> lock(personaMutex_);
  if (auto it = personas_.find(name); it != personas_.end())
    return it->second;
  if (options_.stateDir.empty())
    throw ApiError(400,
                   "this server has no --state-dir: 'state' cannot be "
                   "used",
                   "invalid_request_error", "state");
  std::filesystem::path path = std::filesystem::path(options_.stateDir) / name;
  if (!std::filesystem::is_regular_file(path))
    throw ApiError(404, fmt::format("no state named '{}'", name),
                   "invalid_request_error", "state", "state_not_found");
  auto state = std::make_shared<State>(newSlotState());
  try {
    std::string ext = path.extension().string();
    if (ext == ".pth" || ext == ".safetensors")
      loadTimeState(path.string(), *state);
    else
      loadStateFile(path.string(), *state, fingerprint_);
  } catch (const RuntimeError &e) {
    throw ApiError(400,
                   fmt::format("state '{}' cannot be used: {}", name, e.what()),
                   "invalid_request_error", "state");
  }
  personas_[name] = state;
  return state;
}

std::shared_ptr<Job> Engine::submit(GenerationRequest request) {
  if (!accepting_)
    throw ApiError(503, "the server is shutting down", "server_error", "",
                   "shutting_down");
  if (request.n > capacity_)
    throw ApiError(400,
                   fmt::format("n is {}, this server decodes at most {} "
                               "sequences at once",
                               request.n, capacity_),
                   "invalid_request_error", "n");
  for (auto [id, bias] : request.sampler.logitBias)
    if (size_t(id) >= vocab_)
      throw ApiError(400,
                     fmt::format("logit_bias names token {}, outside the "
                                 "model's vocabulary [0, {})",
                                 id, vocab_),
                     "invalid_request_error", "logit_bias");
  auto job = std::make_shared<Job>();
  auto tokens = std::make_shared<std::vector<int32_t>>();
  std::vector<size_t> points;
  if (request.tokenPrompt) {
    *tokens = request.promptTokens;
    for (size_t i = 0; i < tokens->size(); ++i)
      if (size_t((*tokens)[i]) >= vocab_)
        throw ApiError(400,
                       fmt::format("token id {} at position {} is outside "
                                   "the model's vocabulary [0, {})",
                                   (*tokens)[i], i, vocab_),
                       "invalid_request_error", "prompt");
  } else {
    // Segment by segment, so turn boundaries are token boundaries (and
    // cache points).
    for (const std::string &segment : request.segments) {
      std::vector<int32_t> ids = tokenizer_->encode(segment);
      tokens->insert(tokens->end(), ids.begin(), ids.end());
      if (tokens->size() > options_.limits.maxPromptTokens)
        break;
      if (!ids.empty())
        points.push_back(tokens->size());
    }
    for (size_t i = 0; i < tokens->size(); ++i)
      if (size_t((*tokens)[i]) >= vocab_)
        throw ApiError(400,
                       fmt::format("the prompt encodes to token {} but the "
                                   "model has only {} tokens",
                                   (*tokens)[i], vocab_),
                       "invalid_request_error", "prompt");
  }
  if (tokens->empty())
    throw ApiError(400, "the prompt is empty", "invalid_request_error",
                   request.endpoint == Endpoint::Chat ? "messages" : "prompt");
  if (tokens->size() > options_.limits.maxPromptTokens)
    throw ApiError(400,
                   fmt::format("the prompt has {} tokens, this server allows "
                               "at most {}",
                               tokens->size(), options_.limits.maxPromptTokens),
                   "invalid_request_error",
                   request.endpoint == Endpoint::Chat ? "messages" : "prompt",
                   "context_length_exceeded");
  for (size_t k = options_.cacheEvery;
       options_.cacheEvery && k < tokens->size(); k += options_.cacheEvery)
    points.push_back(k);
  points.push_back(tokens->size());
  std::sort(points.begin(), points.end());
  points.erase(std::unique(points.begin(), points.end()), points.end());

  if (!request.stateName.empty()) {
    job->initial_ = persona(request.stateName);
    job->origin_ = request.stateName;
  }
  job->prompt_ = std::move(tokens);
  job->cachePoints_ = std::move(points);
  job->remaining_ = request.n;
  if (!request.seed) {
    // Unseeded requests still get independent streams.
    std::random_device rd;
    request.seed = (uint64_t(rd()) << 32) ^ rd();
  }
  job->request_ = std::move(request);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!accepting_)
      throw ApiError(503, "the server is shutting down", "server_error", "",
                     "shutting_down");
    if (queue_.size() >= options_.maxQueue)
      throw ApiError(429,
                     fmt::format("the server is busy: {} requests are "
                                 "waiting already",
                                 queue_.size()),
                     "rate_limit_error", "", "queue_full");
    queue_.push_back(job);
    metrics_.set("rwkv_queued_requests", double(queue_.size()));
  }
  cv_.notify_all();
  return job;
}

void Engine::shutdown(std::chrono::milliseconds grace) {
  accepting_ = false;
  std::unique_lock<std::mutex> lock(mutex_);
  idle_.wait_for(lock, grace,
                 [&] { return queue_.empty() && activeCount_ == 0; });
  cancelAll_ = true;
  cv_.notify_all();
  idle_.wait(lock, [&] { return queue_.empty() && activeCount_ == 0; });
  stop_ = true;
  cv_.notify_all();
}

void Engine::updateGauges() {
  metrics_.set("rwkv_active_sequences", double(active_.size()));
  metrics_.set("rwkv_state_cache_bytes", double(cache_.bytes()));
  metrics_.set("rwkv_state_cache_entries", double(cache_.size()));
}

void Engine::admit(const std::shared_ptr<Job> &job) {
  const std::vector<int32_t> &prompt = *job->prompt_;
  metrics_.add("rwkv_prompt_tokens_total", double(prompt.size()));
  for (size_t i = 0; i < job->request_.n; ++i) {
    auto seq = std::make_unique<Sequence>();
    seq->job = job;
    seq->index = i;
    seq->sampler = Sampler(job->request_.sampler, *job->request_.seed + i);
    if (auto hit = cache_.lookup(job->origin_, prompt, prompt.size())) {
      seq->fed = hit->length;
      seq->state.emplace(std::move(hit->state));
      if (hit->length == prompt.size()) {
        seq->logits = std::move(hit->logits);
        seq->ready = true;
      }
      job->cachedTokens_ = std::max<size_t>(job->cachedTokens_, hit->length);
      metrics_.add("rwkv_prompt_cached_tokens_total", double(hit->length));
    } else {
      seq->state.emplace(job->initial_ ? *job->initial_ : newSlotState());
    }
    if (decoder_ && (seq->ready || !prefillModel_)) {
      seq->slot = decoder_->add(*seq->state);
      seq->state.reset();
      seq->inBatchPrefill = !seq->ready;
    }
    active_.push_back(std::move(seq));
  }
}

void Engine::insertCache(Sequence &seq, const State &state, bool withLogits) {
  static const std::vector<float> none;
  cache_.insert(seq.job->origin_, seq.prompt(), seq.fed, state,
                withLogits ? seq.logits : none);
  metrics_.set("rwkv_state_cache_evictions_total", double(cache_.evictions()));
}

bool Engine::prefillOne() {
  // The oldest sequence first: finishing one prompt beats advancing many.
  for (auto &p : active_) {
    Sequence &seq = *p;
    if (seq.done || seq.ready || seq.inBatchPrefill || !seq.state ||
        seq.fed >= seq.prompt().size())
      continue;
    const std::vector<int32_t> &prompt = seq.prompt();
    // Chunks end at multiples of the chunk size and at cache points, both
    // fixed by the prompt alone, so the arithmetic (and the result) does
    // not depend on what else runs.
    size_t chunk = std::max<size_t>(options_.prefillChunk, 1);
    size_t end = std::min(prompt.size(), (seq.fed / chunk + 1) * chunk);
    const auto &points = seq.job->cachePoints_;
    auto next = std::upper_bound(points.begin(), points.end(), seq.fed);
    if (next != points.end())
      end = std::min(end, *next);
    std::vector<int32_t> piece(prompt.begin() + long(seq.fed),
                               prompt.begin() + long(end));
    if (prefillModel_->hasEntry("rwkv_forward"))
      prefillModel_->forward(piece, *seq.state, seq.logits);
    else
      prefillModel_->step(piece, *seq.state, seq.logits);
    metrics_.add("rwkv_prefill_tokens_total", double(piece.size()));
    seq.fed = end;
    bool last = end == prompt.size();
    if (seq.isCachePoint(end))
      insertCache(seq, *seq.state, last);
    if (last) {
      seq.ready = true;
      if (decoder_) {
        seq.slot = decoder_->add(*seq.state);
        seq.state.reset();
      }
    }
    return true;
  }
  return false;
}

void Engine::emit(Sequence &seq, size_t upTo) {
  const std::string &text = seq.sampler.text();
  upTo = std::min(upTo, text.size());
  if (upTo <= seq.shown)
    return;
  Event e;
  e.kind = Event::Kind::Text;
  e.index = seq.index;
  e.text = text.substr(seq.shown, upTo - seq.shown);
  seq.shown = upTo;
  seq.job->push(std::move(e), false);
}

void Engine::release(Sequence &seq) {
  if (seq.slot >= 0 && decoder_)
    decoder_->remove(seq.slot);
  seq.slot = -1;
  seq.state.reset();
  seq.done = true;
}

void Engine::finish(Sequence &seq, const char *reason) {
  release(seq);
  Event e;
  e.kind = Event::Kind::Finish;
  e.index = seq.index;
  e.finishReason = reason;
  seq.job->push(std::move(e), true);
}

void Engine::fail(Sequence &seq, const std::string &message) {
  release(seq);
  Event e;
  e.kind = Event::Kind::Error;
  e.index = seq.index;
  e.text = message;
  seq.job->push(std::move(e), true);
}

void Engine::sampleAll() {
  for (auto &p : active_) {
    Sequence &seq = *p;
    if (seq.done || !seq.ready)
      continue;
    seq.ready = false;
    Job &job = *seq.job;
    try {
      int32_t token = seq.sampler.sample(seq.logits.data(), sampleVocab_);
      if (!job.firstToken_) {
        job.firstToken_ = true;
        metrics_.observe(
            "rwkv_time_to_first_token_seconds",
            std::chrono::duration<double>(Clock::now() - job.submitted_)
                .count());
      }
      if (seq.sampler.isStopToken(token)) {
        emit(seq, seq.sampler.text().size());
        finish(seq, "stop");
        continue;
      }
      seq.sampler.accept(token, tokenizer_->tokenBytes(token));
      ++seq.generated;
      ++job.completionTokens_;
      metrics_.add("rwkv_generated_tokens_total", 1);
      const auto &stops = job.request_.sampler.stopStrings;
      if (auto stop = seq.sampler.stopMatch()) {
        emit(seq, stop->offset);
        finish(seq, "stop");
      } else if (seq.generated >= job.request_.maxTokens) {
        emit(seq, seq.sampler.text().size());
        finish(seq, "length");
      } else {
        emit(seq, stopSafeLength(seq.sampler.text(), stops));
        seq.pending = token;
      }
    } catch (const std::exception &e) {
      fail(seq, fmt::format("sampling failed: {}", e.what()));
    }
  }
}

void Engine::stepAll() {
  if (decoder_) {
    std::vector<std::pair<int64_t, int32_t>> tokens;
    std::vector<Sequence *> stepped;
    for (auto &p : active_) {
      Sequence &seq = *p;
      if (seq.done || seq.slot < 0)
        continue;
      if (seq.inBatchPrefill)
        tokens.push_back({seq.slot, seq.prompt()[seq.fed]});
      else if (seq.pending >= 0)
        tokens.push_back({seq.slot, seq.pending});
      else
        continue;
      stepped.push_back(&seq);
    }
    if (tokens.empty())
      return;
    auto t0 = Clock::now();
    decoder_->step(tokens, batchLogits_);
    metrics_.observe("rwkv_step_seconds",
                     std::chrono::duration<double>(Clock::now() - t0).count());
    metrics_.observe("rwkv_batch_occupancy", double(tokens.size()));
    metrics_.add("rwkv_decode_steps_total", 1);
    for (Sequence *seq : stepped) {
      const float *row = batchLogits_.data() + size_t(seq->slot) * vocab_;
      seq->logits.assign(row, row + vocab_);
      if (seq->inBatchPrefill) {
        metrics_.add("rwkv_prefill_tokens_total", 1);
        ++seq->fed;
        bool last = seq->fed == seq->prompt().size();
        if (seq->isCachePoint(seq->fed)) {
          State copy = newSlotState();
          decoder_->exportState(seq->slot, copy);
          insertCache(*seq, copy, last);
        }
        if (last) {
          seq->inBatchPrefill = false;
          seq->ready = true;
        }
      } else {
        seq->pending = -1;
        seq->ready = true;
      }
    }
    return;
  }
  // Batch 1: one step per sequence.
  size_t rows = 0;
  auto t0 = Clock::now();
  for (auto &p : active_) {
    Sequence &seq = *p;
    if (seq.done || seq.pending < 0)
      continue;
    model_->step({seq.pending}, *seq.state, seq.logits);
    seq.pending = -1;
    seq.ready = true;
    ++rows;
  }
  if (rows) {
    metrics_.observe("rwkv_step_seconds",
                     std::chrono::duration<double>(Clock::now() - t0).count());
    metrics_.observe("rwkv_batch_occupancy", double(rows));
    metrics_.add("rwkv_decode_steps_total", 1);
  }
}

void Engine::loop() {
  while (true) {
    bool cancelAll;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] {
        return stop_ || cancelAll_ || !queue_.empty() || !active_.empty();
      });
      cancelAll = cancelAll_;
      if (cancelAll) {
        for (auto &job : queue_) {
          Event e;
          e.kind = Event::Kind::Error;
          e.text = "the server is shutting down";
          for (size_t i = 0; i < job->request_.n; ++i)
            job->push(e, true);
        }
        queue_.clear();
      }
      // Whole requests only, so the n choices of one run together.
      while (!queue_.empty() &&
             active_.size() + queue_.front()->request_.n <= capacity_) {
        std::shared_ptr<Job> job = std::move(queue_.front());
        queue_.pop_front();
        if (job->cancelled()) {
          std::lock_guard<std::mutex> jl(job->mutex_);
          job->remaining_ = 0;
          continue;
        }
        try {
          admit(job);
        } catch (const std::exception &e) {
          Event ev;
          ev.kind = Event::Kind::Error;
          ev.text = e.what();
          for (size_t i = 0; i < job->request_.n; ++i)
            job->push(ev, true);
        }
      }
      metrics_.set("rwkv_queued_requests", double(queue_.size()));
      if (stop_ && active_.empty() && queue_.empty())
        break;
    }
    try {
      for (auto &p : active_)
        if (!p->done && (cancelAll || p->job->cancelled())) {
          if (p->job->cancelled())
            finish(*p, "cancelled");
          else
            fail(*p, "the server is shutting down");
        }
      prefillOne();
      sampleAll();
      stepAll();
    } catch (const std::exception &e) {
      // A model error fails every sequence in flight; the server goes on.
      for (auto &p : active_)
        if (!p->done)
          fail(*p, fmt::format("internal error: {}", e.what()));
    }
    active_.erase(std::remove_if(active_.begin(), active_.end(),
                                 [](const auto &p) { return p->done; }),
                  active_.end());
    updateGauges();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      activeCount_ = active_.size();
      if (active_.empty() && queue_.empty())
        idle_.notify_all();
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  activeCount_ = 0;
  idle_.notify_all();
}

} // namespace rwkv::serve
