//===- Model.cpp - dlopen a compiled model, bind weights, run it ----------===//
//
// Model::load and the calls through `<entry>_packed`, plus the State object.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/Runtime.h"

#include "runtime/core/Library.h"

#include <fmt/format.h>

#include <dlfcn.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace rwkv {

//===----------------------------------------------------------------------===//
// State
//===----------------------------------------------------------------------===//

void State::FreeDeleter::operator()(float *p) const { std::free(p); }

State::Buffer State::allocate(size_t numel) {
  // 64-byte aligned so the compiled code may use aligned vector loads.
  size_t bytes = (std::max<size_t>(numel, 1) * sizeof(float) + 63) / 64 * 64;
  void *p = std::aligned_alloc(64, bytes);
  if (!p)
    throw RuntimeError(fmt::format("out of memory allocating {} bytes of "
                                   "state",
                                   bytes));
  std::memset(p, 0, bytes);
  return Buffer(static_cast<float *>(p));
}

State::State(std::shared_ptr<const Layout> layout)
    : layout_(std::move(layout)) {
  for (auto &bufs : bufs_)
    for (const TensorInfo &t : *layout_)
      bufs.push_back(allocate(t.numel));
  reset();
}

State::State(const State &other) : State(other.layout_) {
  for (size_t i = 0; i < numTensors(); ++i)
    std::memcpy(bufs_[0][i].get(), other.bufs_[other.cur_][i].get(),
                info(i).numel * sizeof(float));
}

State &State::operator=(const State &other) {
  if (this == &other)
    return *this;
  if (layout_ != other.layout_) {
    *this = State(other);
    return *this;
  }
  for (size_t i = 0; i < numTensors(); ++i)
    std::memcpy(bufs_[cur_][i].get(), other.bufs_[other.cur_][i].get(),
                info(i).numel * sizeof(float));
  return *this;
}

FloatSpan State::tensor(size_t index) {
  if (index >= numTensors())
    throw RuntimeError(fmt::format("state has no tensor #{}", index));
  return {bufs_[cur_][index].get(), info(index).numel};
}

ConstFloatSpan State::tensor(size_t index) const {
  if (index >= numTensors())
    throw RuntimeError(fmt::format("state has no tensor #{}", index));
  return {bufs_[cur_][index].get(), info(index).numel};
}

size_t State::indexOf(std::string_view name, int64_t layer) const {
  for (size_t i = 0; i < numTensors(); ++i)
    if (info(i).name == name && info(i).layer == layer)
      return i;
  throw RuntimeError(
      fmt::format("state has no tensor '{}' for layer {}", name, layer));
}

FloatSpan State::tensor(std::string_view name, int64_t layer) {
  return tensor(indexOf(name, layer));
}

ConstFloatSpan State::tensor(std::string_view name, int64_t layer) const {
  return tensor(indexOf(name, layer));
}

void State::set(std::string_view name, int64_t layer,
                const std::vector<float> &values) {
  FloatSpan t = tensor(name, layer);
  if (values.size() != t.size)
    throw RuntimeError(fmt::format("state '{}:{}' holds {} floats, got {}",
                                   name, layer, t.size, values.size()));
  std::memcpy(t.data, values.data(), t.size * sizeof(float));
}

void State::reset() {
  for (size_t i = 0; i < numTensors(); ++i) {
    float *p = bufs_[cur_][i].get();
    if (info(i).init == 0.0f)
      std::memset(p, 0, info(i).numel * sizeof(float));
    else
      std::fill(p, p + info(i).numel, info(i).init);
  }
}

//===----------------------------------------------------------------------===//
// Model
//===----------------------------------------------------------------------===//

/// Whether the kernel backs madvise(MADV_HUGEPAGE) regions with huge pages.
static bool transparentHugePagesAvailable() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  return std::getline(f, line) && line.find("[never]") == std::string::npos;
}

void Model::moveWeightsToHugePages() {
  constexpr size_t kHuge = size_t(2) << 20, kAlign = 64;
  if (!transparentHugePagesAvailable())
    return;
  size_t total = 0;
  for (const BoundWeight &w : weights_)
    total += (w.nbytes + kAlign - 1) / kAlign * kAlign;
  // One extra huge page to align the start.
  size_t size = (total + kHuge - 1) / kHuge * kHuge + kHuge;
  void *mem = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED)
    return; // keep the mapped views: slower, not wrong
  auto base = reinterpret_cast<uintptr_t>(mem);
  char *p = reinterpret_cast<char *>((base + kHuge - 1) / kHuge * kHuge);
  ::madvise(p, total, MADV_HUGEPAGE);
  for (BoundWeight &w : weights_) {
    std::memcpy(p, w.data, w.nbytes);
    w.data = p;
    w.copied = true;
    p += (w.nbytes + kAlign - 1) / kAlign * kAlign;
  }
  weightArena_ = mem;
  weightArenaSize_ = size;
  ::mprotect(mem, size, PROT_READ);
  copies_.clear();
  // Nothing points into the checkpoint any more: unmap it and free what its
  // reader owns too (a quantized GGUF's dequantized tensors), which
  // releaseResidentPages() would keep.
  checkpoint_.reset();
}

std::unique_ptr<Model> Model::load(const std::string &libraryPath,
                                   const std::string &checkpointPath,
                                   const ModelOptions &options) {
  std::unique_ptr<Model> m(new Model());
  m->options_ = options;
  m->libraryPath_ = libraryPath;
  m->checkpointPath_ = checkpointPath;

  CompiledLibrary lib = CompiledLibrary::open(libraryPath, options.threads);
  m->info_ = ModelInfo::parse(lib.info(), libraryPath);
  m->vocabSize_ = m->info_.vocabSize();

  for (const std::string &entry : m->info_.entryPoints) {
    std::string sym = entry + "_packed";
    auto fn = reinterpret_cast<PackedFn>(lib.symbol(sym.c_str()));
    if (!fn)
      throw RuntimeError(fmt::format(
          "library '{}' lists entry point '{}' but does not export '{}'",
          libraryPath, entry, sym));
    m->entries_.emplace(entry, fn);
  }

  try {
    m->checkpoint_ = Checkpoint::open(checkpointPath);
    m->config_ = detectConfig(*m->checkpoint_);
  } catch (const CheckpointError &e) {
    throw RuntimeError(e.what());
  }
  try {
    checkConfig(m->info_, m->config_, libraryPath, checkpointPath);
  } catch (const RuntimeError &e) {
    // Name a tensor too: that is what a user can look up in the file.
    std::string msg = e.what();
    try {
      std::vector<std::vector<uint8_t>> scratch;
      bindWeights(m->info_, *m->checkpoint_, scratch);
    } catch (const std::exception &w) {
      msg += fmt::format(" ({})", w.what());
    }
    throw RuntimeError(msg);
  }
  try {
    m->weights_ = bindWeights(m->info_, *m->checkpoint_, m->copies_);
  } catch (const CheckpointError &e) {
    throw RuntimeError(e.what());
  }
  if (options.weightMemory == ModelOptions::WeightMemory::HugePages)
    m->moveWeightsToHugePages();
  for (const BoundWeight &w : m->weights_)
    m->weightDescs_.emplace_back(w.data, w.shape);

  auto layout = std::make_shared<State::Layout>();
  for (const ArgInfo &a : m->info_.args) {
    if (a.kind != ArgInfo::Kind::State)
      continue;
    size_t numel = 1;
    for (int64_t d : a.shape)
      numel *= size_t(d);
    layout->push_back({a.name, a.layer, a.shape, numel, a.init});
  }
  m->stateLayout_ = std::move(layout);

  // Optional: libraries with their own thread pool export a setter.
  lib.setThreads(options.threads);
  m->handle_ = lib.release();
  return m;
}

Model::~Model() {
  // The compiled code may reference nothing of ours, but keep the weights
  // alive until the library is gone anyway.
  if (handle_)
    dlclose(handle_);
  if (weightArena_)
    ::munmap(weightArena_, weightArenaSize_);
}

size_t Model::weightBytes() const {
  size_t total = 0;
  for (const BoundWeight &w : weights_)
    total += w.nbytes;
  return total;
}

size_t Model::embeddingBytes() const {
  for (const BoundWeight &w : weights_)
    if (w.name == "emb.weight")
      return w.nbytes;
  return 0;
}

State Model::newState() const { return State(stateLayout_); }

void Model::checkTokens(const int32_t *tokens, size_t count) const {
  if (count == 0)
    throw RuntimeError("empty token list");
  if (count % size_t(batch()) != 0)
    throw RuntimeError(
        fmt::format("{} tokens do not split into the library's batch of {}",
                    count, batch()));
  for (size_t i = 0; i < count; ++i)
    if (tokens[i] < 0 || tokens[i] >= vocabSize_)
      throw RuntimeError(
          fmt::format("token id {} at position {} is out of range [0, {})",
                      tokens[i], i, vocabSize_));
}

size_t Model::logitsSize(std::string_view entry, size_t tokenCount) const {
  auto it = info_.results.find(std::string(entry));
  if (it == info_.results.end())
    throw RuntimeError(fmt::format("library '{}' has no entry point '{}'",
                                   libraryPath_, entry));
  size_t b = size_t(batch());
  int64_t t = it->second[0].shape[1];
  size_t positions = t < 0 ? tokenCount / b : size_t(t);
  return b * positions * size_t(vocabSize_);
}

void Model::run(std::string_view entry, const int32_t *tokens, size_t count,
                State &state, float *logits, size_t logitsCapacity) const {
  auto fn = entries_.find(entry);
  if (fn == entries_.end())
    throw RuntimeError(fmt::format("library '{}' has no entry point '{}'",
                                   libraryPath_, entry));
  checkTokens(tokens, count);
  if (state.layout() != stateLayout_)
    throw RuntimeError("the state was made by another model");
  size_t need = logitsSize(entry, count);
  if (!logits || logitsCapacity < need)
    throw RuntimeError(
        fmt::format("the logits buffer holds {} floats, {} needs {}",
                    logitsCapacity, entry, need));

  int64_t b = batch();
  int64_t t = int64_t(count) / b;
  size_t nState = state.numTensors();
  std::vector<MemRefDesc> descs;
  descs.reserve(1 + 2 * nState + 1);
  descs.emplace_back(tokens, std::vector<int64_t>{b, t});
  for (size_t i = 0; i < nState; ++i)
    descs.emplace_back(state.buffer(i, state.cur_), state.info(i).shape);
  descs.emplace_back(
      logits,
      std::vector<int64_t>{b, int64_t(need) / (b * vocabSize_), vocabSize_});
  // Outputs go to the other buffer: the call may clobber its inputs.
  for (size_t i = 0; i < nState; ++i)
    descs.emplace_back(state.buffer(i, state.cur_ ^ 1), state.info(i).shape);

  std::vector<void *> ptrs;
  ptrs.reserve(descs.size() + weightDescs_.size());
  for (size_t i = 0; i <= nState; ++i)
    ptrs.push_back(descs[i].get());
  // The callee only reads descriptors; the cached weight ones are shared.
  for (const MemRefDesc &w : weightDescs_)
    ptrs.push_back(const_cast<MemRefDesc &>(w).get());
  for (size_t i = nState + 1; i < descs.size(); ++i)
    ptrs.push_back(descs[i].get());

  fn->second(ptrs.data());
  state.swapBuffers();
}

void Model::step(const std::vector<int32_t> &tokens, State &state,
                 std::vector<float> &logits) const {
  logits.resize(logitsSize("rwkv_step", tokens.size()));
  run("rwkv_step", tokens.data(), tokens.size(), state, logits.data(),
      logits.size());
}

void Model::forward(const std::vector<int32_t> &tokens, State &state,
                    std::vector<float> &logits, bool allLogits) const {
  const char *entry = allLogits ? "rwkv_forward_all" : "rwkv_forward";
  logits.resize(logitsSize(entry, tokens.size()));
  run(entry, tokens.data(), tokens.size(), state, logits.data(), logits.size());
}

} // namespace rwkv
