//===- Kernel.cpp - dlopen a kernel library and call it -------------------===//

#include "runtime/core/Kernel.h"
#include "runtime/core/Cuda.h"
#include "runtime/core/Library.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <dlfcn.h>
#include <vector>

namespace rwkv {

namespace {

/// Checks that entry point `name` takes f32 arguments of the kinds `kinds`
/// in this order, each with shape `act` or (names containing "state")
/// `state`, and returns as many results of `resultKinds`.
void checkEntry(const nlohmann::json &entries, const std::string &name,
                const std::vector<std::string> &kinds,
                const std::vector<std::string> &resultKinds,
                const std::vector<int64_t> &act,
                const std::vector<int64_t> &state, const std::string &path) {
  if (!entries.is_object() || !entries.contains(name))
    throw RuntimeError(fmt::format("{}: no entry point '{}'", path, name));
  const nlohmann::json &e = entries[name];
  auto check = [&](const nlohmann::json &list,
                   const std::vector<std::string> &expected, const char *what) {
    if (!list.is_array() || list.size() != expected.size())
      throw RuntimeError(fmt::format("{}: {} takes {} {}, expected {}", path,
                                     name, list.is_array() ? list.size() : 0,
                                     what, expected.size()));
    for (size_t i = 0; i < expected.size(); ++i) {
      const nlohmann::json &a = list[i];
      std::vector<int64_t> shape = a.value("shape", std::vector<int64_t>{});
      const std::vector<int64_t> &want =
          expected[i].find("state") != std::string::npos ? state : act;
      if (a.value("kind", "") != expected[i] || a.value("dtype", "") != "f32" ||
          shape != want)
        throw RuntimeError(fmt::format("{}: {} {} #{} is not '{}' f32 [{}]",
                                       path, name, what, i, expected[i],
                                       fmt::join(want, ", ")));
    }
  };
  check(e.value("args", nlohmann::json::array()), kinds, "arguments");
  check(e.value("results", nlohmann::json::array()), resultKinds, "results");
}

} // namespace

/// A CUDA kernel library bound to the driver, and its copying caller.
struct WKV7Kernel::Device {
  /// Declared first so that it goes last: rwkv_cuda_fini() after the frees.
  std::unique_ptr<cuda::LibraryBinding> binding;
  cuda::CopyingCaller caller;
};

double WKV7Kernel::lastDeviceSeconds() const {
  return device_ ? device_->caller.lastCallSeconds() : 0.0;
}

WKV7Kernel::~WKV7Kernel() {
  // The device memory and rwkv_cuda_fini() go while the library is loaded.
  device_.reset();
  if (handle_)
    dlclose(handle_);
}

std::unique_ptr<WKV7Kernel> WKV7Kernel::load(const std::string &libraryPath,
                                             const ModelOptions &options) {
  CompiledLibrary handle = CompiledLibrary::open(libraryPath, options.threads);
  std::unique_ptr<WKV7Kernel> lib(new WKV7Kernel());
  lib->path_ = libraryPath;
  lib->json_ = handle.info();
  nlohmann::json info = handle.infoObject();
  bool onDevice = info.contains("target") && info["target"] == "cuda";
  if (!onDevice)
    handle.requireCpuTarget(info, "not a target this runtime runs");
  if (info.value("kernel", "") != "wkv7")
    throw RuntimeError(fmt::format(
        "library '{}' is not a WKV7 kernel library; compile one with "
        "rwkv-compile --kernel wkv7 --batch B --ctx T --heads H --head-size N",
        libraryPath));
  lib->batch_ = info.value("batch", int64_t(1));
  if (info.contains("config")) {
    lib->heads_ = info["config"].value("n_head", int64_t(0));
    lib->headSize_ = info["config"].value("head_size", int64_t(0));
  }
  const nlohmann::json &entries = info["entry_points"];
  if (entries.is_object() && entries.contains("rwkv_wkv7_forward")) {
    const nlohmann::json &args = entries["rwkv_wkv7_forward"]["args"];
    if (args.is_array() && !args.empty() && args[0].contains("shape") &&
        args[0]["shape"].size() == 3)
      lib->context_ = args[0]["shape"][1].get<int64_t>();
  }
  if (lib->batch_ < 1 || lib->context_ < 1 || lib->heads_ < 1 ||
      lib->headSize_ < 1)
    throw RuntimeError(libraryPath + ": bad kernel shape in rwkv_model_info()");
  std::vector<int64_t> act{lib->batch_, lib->context_,
                           lib->heads_ * lib->headSize_};
  std::vector<int64_t> state{lib->batch_, lib->heads_, lib->headSize_,
                             lib->headSize_};
  checkEntry(entries, "rwkv_wkv7_forward",
             {"r", "w", "k", "v", "a", "b", "state0"}, {"y", "state"}, act,
             state, libraryPath);
  checkEntry(entries, "rwkv_wkv7_backward",
             {"r", "w", "k", "v", "a", "b", "state0", "dy", "dstate"},
             {"dr", "dw", "dk", "dv", "da", "db", "dstate0"}, act, state,
             libraryPath);
  lib->forwardFn_ =
      reinterpret_cast<PackedFn>(handle.symbol("rwkv_wkv7_forward_packed"));
  lib->backwardFn_ =
      reinterpret_cast<PackedFn>(handle.symbol("rwkv_wkv7_backward_packed"));
  if (!lib->forwardFn_ || !lib->backwardFn_)
    throw RuntimeError(
        libraryPath +
        ": missing rwkv_wkv7_forward_packed/rwkv_wkv7_backward_packed");
  if (onDevice) {
    cuda::requireDriver(handle.handle(), libraryPath, info, "kernel");
    // From here ~WKV7Kernel closes the library, after rwkv_cuda_fini().
    lib->handle_ = handle.release();
    lib->device_ = std::make_unique<Device>();
    lib->device_->binding =
        cuda::LibraryBinding::bind(lib->handle_, libraryPath);
    return lib;
  }
  handle.setThreads(options.threads);
  lib->handle_ = handle.release();
  return lib;
}

/// Calls `fn` on `inputs` then `outputs` (results in order, as out-params
/// after the arguments); pointers with a true `isState` get the state shape.
/// A CUDA library gets device copies of them.
void WKV7Kernel::call(PackedFn fn, const char *entry,
                      const std::vector<const float *> &inputs,
                      const std::vector<float *> &outputs,
                      const std::vector<bool> &inputIsState,
                      const std::vector<bool> &outputIsState) const {
  std::vector<int64_t> act{batch_, context_, heads_ * headSize_};
  std::vector<int64_t> state{batch_, heads_, headSize_, headSize_};
  auto numel = [](const std::vector<int64_t> &shape) {
    size_t n = 1;
    for (int64_t d : shape)
      n *= size_t(d);
    return n;
  };
  for (size_t i = 0; i < inputs.size(); ++i)
    if (!inputs[i])
      throw RuntimeError(fmt::format("kernel input #{} is null", i));
  for (size_t i = 0; i < outputs.size(); ++i)
    if (!outputs[i])
      throw RuntimeError(fmt::format("kernel output #{} is null", i));
  if (device_) {
    std::vector<cuda::CopiedArg> args;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const std::vector<int64_t> &shape = inputIsState[i] ? state : act;
      args.push_back({inputs[i], nullptr, numel(shape) * sizeof(float), shape});
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
      const std::vector<int64_t> &shape = outputIsState[i] ? state : act;
      args.push_back(
          {nullptr, outputs[i], numel(shape) * sizeof(float), shape});
    }
    device_->caller.call(
        fn, fmt::format("kernel library '{}': {}", path_, entry), args);
    return;
  }
  std::vector<MemRefDesc> descs;
  descs.reserve(inputs.size() + outputs.size());
  for (size_t i = 0; i < inputs.size(); ++i)
    descs.emplace_back(inputs[i], inputIsState[i] ? state : act);
  for (size_t i = 0; i < outputs.size(); ++i)
    descs.emplace_back(outputs[i], outputIsState[i] ? state : act);
  std::vector<void *> ptrs;
  for (MemRefDesc &d : descs)
    ptrs.push_back(d.get());
  fn(ptrs.data());
}

void WKV7Kernel::forward(const float *r, const float *w, const float *k,
                         const float *v, const float *a, const float *b,
                         const float *state0, float *y, float *stateOut) const {
  call(forwardFn_, "rwkv_wkv7_forward", {r, w, k, v, a, b, state0},
       {y, stateOut}, {false, false, false, false, false, false, true},
       {false, true});
}

void WKV7Kernel::backward(const float *r, const float *w, const float *k,
                          const float *v, const float *a, const float *b,
                          const float *state0, const float *dy,
                          const float *dstate, float *dr, float *dw, float *dk,
                          float *dv, float *da, float *db,
                          float *dstate0) const {
  call(backwardFn_, "rwkv_wkv7_backward",
       {r, w, k, v, a, b, state0, dy, dstate},
       {dr, dw, dk, dv, da, db, dstate0},
       {false, false, false, false, false, false, true, false, true},
       {false, false, false, false, false, false, true});
}

} // namespace rwkv
