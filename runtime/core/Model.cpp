//===- Model.cpp - dlopen a compiled model, bind weights, run it ----------===//
//
// Model::load and the calls through `<entry>_packed`, plus the State object.
// A CUDA model (docs/ABI.md "CUDA libraries") keeps its weights and the
// states' buffers in device memory (Cuda.h); the CPU path never touches it.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/Runtime.h"

#include "runtime/core/Cuda.h"
#include "runtime/core/Library.h"

#include <fmt/format.h>

#include <dlfcn.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>

namespace rwkv {

//===----------------------------------------------------------------------===//
// State
//===----------------------------------------------------------------------===//

void State::FreeDeleter::operator()(float *p) const { std::free(p); }

/// The device side of a state that a CUDA model runs.
struct State::Device {
  /// The call reads bufs[cur] and writes bufs[cur ^ 1].
  std::vector<cuda::DeviceBuffer> bufs[2];
  int cur = 0;
  /// Which copy holds the values (at least one unless `lost`): the host
  /// one is State::bufs_[cur_].
  bool hostValid = true, deviceValid = false;
  /// A failed call may have overwritten its input when the host had no
  /// copy: the values are gone until reset() or an assignment.
  bool lost = false;
  /// Const readers of one state may download it concurrently.
  std::mutex mutex;
  /// Model::run's tokens and logits, kept for the next call.
  cuda::DeviceBuffer tokens, logits;
};

static constexpr const char *kLostState =
    "the state was lost in a failed CUDA call (the call may have overwritten "
    "it); reset or assign it before using it again";

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
    : State(std::move(layout), /*onDevice=*/false) {}

State::State(std::shared_ptr<const Layout> layout, bool onDevice)
    : layout_(std::move(layout)) {
  // A device state's second buffer is on the device only.
  for (int which = 0; which < (onDevice ? 1 : 2); ++which)
    for (const TensorInfo &t : *layout_)
      bufs_[which].push_back(allocate(t.numel));
  if (onDevice)
    attachDevice();
  reset();
}

State::State(const State &other) : State(other.layout_, other.onDevice()) {
  copyValues(other);
}

State &State::operator=(const State &other) {
  if (this == &other)
    return *this;
  if (layout_ != other.layout_) {
    *this = State(other);
    return *this;
  }
  copyValues(other);
  return *this;
}

State::State(State &&) noexcept = default;
State &State::operator=(State &&) noexcept = default;
State::~State() = default;

void State::copyValues(const State &other) {
  std::unique_lock<std::mutex> lock;
  if (other.device_) {
    Device &src = *other.device_;
    lock = std::unique_lock<std::mutex>(src.mutex);
    if (src.lost)
      throw RuntimeError(kLostState);
    if (!src.hostValid) {
      Device &dst = attachDevice();
      for (size_t i = 0; i < numTensors(); ++i)
        cuda::copyOnDevice(dst.bufs[dst.cur][i].address(),
                           src.bufs[src.cur][i].address(),
                           info(i).numel * sizeof(float));
      cuda::synchronize();
      dst.hostValid = false;
      dst.deviceValid = true;
      dst.lost = false;
      return;
    }
  }
  for (size_t i = 0; i < numTensors(); ++i)
    std::memcpy(bufs_[cur_][i].get(), other.bufs_[other.cur_][i].get(),
                info(i).numel * sizeof(float));
  if (device_) {
    device_->hostValid = true;
    device_->deviceValid = false;
    device_->lost = false;
  }
}

State::Device &State::attachDevice() {
  if (!device_) {
    auto d = std::make_unique<Device>();
    for (auto &bufs : d->bufs)
      for (const TensorInfo &t : *layout_)
        bufs.emplace_back(std::max<size_t>(t.numel, 1) * sizeof(float),
                          "state");
    device_ = std::move(d);
  }
  return *device_;
}

void State::syncToHost(bool forWriting) const {
  Device &d = *device_;
  std::lock_guard<std::mutex> lock(d.mutex);
  if (d.lost)
    throw RuntimeError(kLostState);
  if (!d.hostValid) {
    for (size_t i = 0; i < numTensors(); ++i)
      cuda::copyToHost(bufs_[cur_][i].get(), d.bufs[d.cur][i].address(),
                       info(i).numel * sizeof(float));
    d.hostValid = true;
  }
  if (forWriting)
    d.deviceValid = false;
}

FloatSpan State::tensor(size_t index) {
  if (index >= numTensors())
    throw RuntimeError(fmt::format("state has no tensor #{}", index));
  if (device_)
    syncToHost(/*forWriting=*/true);
  return {bufs_[cur_][index].get(), info(index).numel};
}

ConstFloatSpan State::tensor(size_t index) const {
  if (index >= numTensors())
    throw RuntimeError(fmt::format("state has no tensor #{}", index));
  if (device_)
    syncToHost(/*forWriting=*/false);
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
  if (device_) {
    device_->hostValid = true;
    device_->deviceValid = false;
    device_->lost = false;
  }
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

struct Model::Cuda {
  /// Declared first so that it goes last: rwkv_cuda_fini() after the
  /// weights are freed.
  std::unique_ptr<cuda::LibraryBinding> binding;
  cuda::DeviceBuffer weights;
};

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
  // Inference only: prefill's intermediates are reused call after call.
  // Training keeps malloc (TrainLibrary::reuseFreedMemory): its many
  // differently sized tape buffers coalesce there, and the cache would add
  // to a step's peak memory.
  lib.useBufferCache();
  m->info_ = ModelInfo::parse(lib.info(), libraryPath);
  m->vocabSize_ = m->info_.vocabSize();
  if (m->onDevice()) {
    // Before the checkpoint is read. The exports first: they do not depend
    // on the machine, so a GPU-less test machine checks them too.
    cuda::LibraryBinding::checkExports(lib.handle(), libraryPath);
    std::string why = cuda::loadDriver();
    if (!why.empty())
      throw RuntimeError(fmt::format(
          "model '{}' is a CUDA library ({}) but CUDA is unavailable: {}",
          libraryPath, m->info_.cudaArch, why));
  }

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
  if (m->onDevice()) {
    // From here ~Model closes the library, after rwkv_cuda_fini().
    m->handle_ = lib.release();
    m->bindCuda();
  } else if (options.weightMemory == ModelOptions::WeightMemory::HugePages) {
    m->moveWeightsToHugePages();
  }
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

  if (!m->onDevice()) {
    // Optional: "wkv:0,wkv:1", the states the library updates in place and
    // need no separate output buffer (docs/ABI.md).
    m->stateInPlace_.assign(m->stateLayout_->size(), false);
    if (auto *list =
            static_cast<const char *>(lib.symbol("rwkv_in_place_states"))) {
      std::string_view rest(list);
      while (!rest.empty()) {
        size_t comma = rest.find(',');
        std::string_view name = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view()
                                               : rest.substr(comma + 1);
        auto it =
            std::find_if(m->stateLayout_->begin(), m->stateLayout_->end(),
                         [&](const State::TensorInfo &t) {
                           return fmt::format("{}:{}", t.name, t.layer) == name;
                         });
        if (it == m->stateLayout_->end())
          throw RuntimeError(fmt::format(
              "library '{}': rwkv_in_place_states names '{}', which is not "
              "one of its states",
              libraryPath, name));
        m->stateInPlace_[size_t(it - m->stateLayout_->begin())] = true;
      }
    }

    // Optional: libraries with their own thread pool export a setter.
    lib.setThreads(options.threads);
    m->handle_ = lib.release();
  }
  return m;
}

void Model::bindCuda() {
  cuda_ = std::make_unique<Cuda>();
  cuda_->binding = cuda::LibraryBinding::bind(handle_, libraryPath_);
  // One allocation, every tensor in its own dtype at cuMemAlloc's 256-byte
  // alignment.
  constexpr size_t kAlign = 256;
  auto padded = [](size_t n) { return (n + kAlign - 1) / kAlign * kAlign; };
  size_t total = 0;
  for (const BoundWeight &w : weights_)
    total += padded(w.nbytes);
  try {
    cuda_->weights.reserve(total, "weights");
    uint64_t base = cuda_->weights.address();
    size_t offset = 0;
    for (BoundWeight &w : weights_) {
      cuda::copyToDevice(base + offset, w.data, w.nbytes);
      w.data = reinterpret_cast<const void *>(base + offset);
      w.copied = true;
      w.onDevice = true;
      offset += padded(w.nbytes);
    }
    cuda::synchronize();
  } catch (const DeviceError &e) {
    throw DeviceError(fmt::format("model '{}': uploading the weights: {}",
                                  libraryPath_, e.what()),
                      e.code);
  }
  // Nothing points into the checkpoint any more.
  copies_.clear();
  checkpoint_.reset();
}

Model::~Model() {
  // The device weights and rwkv_cuda_fini() go while the library is loaded.
  cuda_.reset();
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

State Model::newState() const { return State(stateLayout_, onDevice()); }

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
  if (onDevice()) {
    runOnDevice(fn->second, entry, tokens, count, state, logits, need);
    return;
  }

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
  // Outputs go to the other buffer: the call may clobber its inputs. A state
  // the library updates in place is both input and output.
  for (size_t i = 0; i < nState; ++i)
    descs.emplace_back(
        state.buffer(i, stateInPlace_[i] ? state.cur_ : state.cur_ ^ 1),
        state.info(i).shape);

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
  for (size_t i = 0; i < nState; ++i)
    if (stateInPlace_[i])
      state.keepBuffer(i);
}

void Model::runOnDevice(PackedFn fn, std::string_view entry,
                        const int32_t *tokens, size_t count, State &state,
                        float *logits, size_t logitsCount) const {
  if (state.device_ && state.device_->lost)
    throw RuntimeError(kLostState);
  size_t nState = state.numTensors();
  // Errors of the runtime's own copies name the model and the call too.
  auto prefixed = [&](const DeviceError &e) {
    return DeviceError(
        fmt::format("model '{}': {}: {}", libraryPath_, entry, e.what()),
        e.code);
  };
  try {
    State::Device &d = state.attachDevice();
    if (!d.deviceValid) {
      for (size_t i = 0; i < nState; ++i)
        cuda::copyToDevice(d.bufs[d.cur][i].address(),
                           state.buffer(i, state.cur_),
                           state.info(i).numel * sizeof(float));
      d.deviceValid = true;
    }
    d.tokens.reserve(count * sizeof(int32_t), "tokens");
    cuda::copyToDevice(d.tokens.address(), tokens, count * sizeof(int32_t));
    d.logits.reserve(logitsCount * sizeof(float), "logits");
    cuda::synchronize();
  } catch (const DeviceError &e) {
    throw prefixed(e);
  }
  State::Device &d = *state.device_;

  int64_t b = batch();
  int64_t t = int64_t(count) / b;
  std::vector<MemRefDesc> descs;
  descs.reserve(1 + 2 * nState + 1);
  descs.emplace_back(d.tokens.pointer(), std::vector<int64_t>{b, t});
  for (size_t i = 0; i < nState; ++i)
    descs.emplace_back(d.bufs[d.cur][i].pointer(), state.info(i).shape);
  descs.emplace_back(
      d.logits.pointer(),
      std::vector<int64_t>{b, int64_t(logitsCount) / (b * vocabSize_),
                           vocabSize_});
  for (size_t i = 0; i < nState; ++i)
    descs.emplace_back(d.bufs[d.cur ^ 1][i].pointer(), state.info(i).shape);
  std::vector<void *> ptrs;
  ptrs.reserve(descs.size() + weightDescs_.size());
  for (size_t i = 0; i <= nState; ++i)
    ptrs.push_back(descs[i].get());
  for (const MemRefDesc &w : weightDescs_)
    ptrs.push_back(const_cast<MemRefDesc &>(w).get());
  for (size_t i = nState + 1; i < descs.size(); ++i)
    ptrs.push_back(descs[i].get());

  // A failed call may have overwritten its state input: the host copy, if
  // there is one, still holds the state from before the call.
  auto failed = [&] {
    if (d.hostValid)
      d.deviceValid = false;
    else
      d.lost = true;
  };
  cuda::clearError();
  fn(ptrs.data());
  int code = 0;
  std::string error = cuda::takeError(&code);
  if (!error.empty()) {
    failed();
    throw DeviceError(
        fmt::format("model '{}': {} failed: {}", libraryPath_, entry, error),
        code);
  }
  try {
    cuda::copyToHost(logits, d.logits.address(), logitsCount * sizeof(float));
  } catch (const DeviceError &e) {
    failed();
    throw prefixed(e);
  }
  d.cur ^= 1;
  d.hostValid = false;
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
