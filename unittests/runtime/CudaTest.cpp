//===- CudaTest.cpp - CUDA model libraries without a GPU ------------------===//
//
// The runtime side of CUDA libraries (docs/ABI.md "CUDA libraries"): the
// `target` field, the refusal with a reason when there is no usable driver
// (a missing one, the toolkit's stub), and, with the fake driver of
// FakeCudaDriver.cpp, everything a call does: the import table, the
// embedded image, weights uploaded once, state double-buffered on the
// device, tokens up and logits down, launches, memory freed at close, and
// driver errors turned into RuntimeError / C API errors. Nothing here runs
// on a real GPU.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/Cuda.h"
#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/core/Batch.h"
#include "runtime/core/Kernel.h"
#include "runtime/core/Runtime.h"
#include "runtime/core/StateFile.h"
#include "runtime/core/TrainStep.h"
#include "runtime/core/rwkv_runtime.h"
#include "unittests/runtime/FakeCuda.h"
#include "unittests/runtime/FakeModel.h"

#include <gtest/gtest.h>

#include <dlfcn.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

using namespace rwkv;

namespace {

/// Removes every temporary file when the test program ends.
struct TempFiles : ::testing::Environment {
  std::vector<std::string> paths;
  void TearDown() override {
    for (const std::string &p : paths)
      std::remove(p.c_str());
  }
};
TempFiles *tempFiles = static_cast<TempFiles *>(
    ::testing::AddGlobalTestEnvironment(new TempFiles));

std::string tempPath(const std::string &name) {
  std::string path = ::testing::TempDir() + "rwkv_cuda_" +
                     std::to_string(getpid()) + "_" + name;
  tempFiles->paths.push_back(path);
  return path;
}

const std::string &fakeCheckpoint() {
  static const std::string path = [] {
    std::string p = tempPath("fake.pth");
    writePth(p, makeSyntheticModel(fakeModelOptions()));
    return p;
  }();
  return path;
}

template <typename F> std::string errorOf(F &&f) {
  try {
    f();
  } catch (const std::exception &e) {
    return e.what();
  }
  return "<no error>";
}

/// What the runtime says when `RWKV_CUDA_DRIVER` is `driver` (unset if
/// null).
std::string loadErrorWithDriver(const char *driver) {
  if (driver)
    setenv("RWKV_CUDA_DRIVER", driver, 1);
  else
    unsetenv("RWKV_CUDA_DRIVER");
  return errorOf([] { Model::load(RWKV_FAKE_CUDA_MODEL, fakeCheckpoint()); });
}

std::string unavailable(const std::string &reason) {
  return std::string("model '") + RWKV_FAKE_CUDA_MODEL +
         "' is a CUDA library (sm_90) but CUDA is unavailable: " + reason;
}

int32_t asInt(float f) {
  int32_t i;
  std::memcpy(&i, &f, 4);
  return i;
}

//===----------------------------------------------------------------------===//
// rwkv_model_info, the import table, refusals
//===----------------------------------------------------------------------===//

TEST(CudaInfo, ParsesTargetAndArch) {
  nlohmann::ordered_json j = fakeModelInfo();
  EXPECT_EQ(ModelInfo::parse(j.dump()).target, ModelInfo::Target::Cpu);
  j["target"] = "cpu";
  EXPECT_EQ(ModelInfo::parse(j.dump()).target, ModelInfo::Target::Cpu);
  j["target"] = "cuda";
  j["cuda_arch"] = "sm_90";
  ModelInfo info = ModelInfo::parse(j.dump());
  EXPECT_EQ(info.target, ModelInfo::Target::Cuda);
  EXPECT_EQ(info.cudaArch, "sm_90");

  j.erase("cuda_arch");
  EXPECT_EQ(errorOf([&] { ModelInfo::parse(j.dump(), "lib.so"); }),
            "lib.so: bad rwkv_model_info: a CUDA library has no string "
            "'cuda_arch'");
  j["target"] = "rocm";
  EXPECT_EQ(errorOf([&] { ModelInfo::parse(j.dump(), "lib.so"); }),
            "lib.so: bad rwkv_model_info: unknown target 'rocm' (this runtime "
            "runs 'cpu' and 'cuda' libraries)");
}

TEST(CudaInfo, ImportTable) {
  std::vector<std::string> names;
  for (const cuda::Import &i : cuda::imports()) {
    names.push_back(i.name);
    EXPECT_NE(i.address, nullptr) << i.name;
  }
  for (const char *name :
       {"mgpuModuleLoad", "mgpuModuleLoadJIT", "mgpuModuleUnload",
        "mgpuModuleGetFunction", "mgpuLaunchKernel", "mgpuStreamCreate",
        "mgpuStreamDestroy", "mgpuStreamSynchronize", "mgpuStreamWaitEvent",
        "mgpuEventCreate", "mgpuEventDestroy", "mgpuEventSynchronize",
        "mgpuEventRecord", "mgpuMemAlloc", "mgpuMemFree", "mgpuMemcpy",
        "mgpuMemset32", "mgpuMemset16"})
    EXPECT_NE(cuda::importAddress(name), nullptr) << name;
  EXPECT_EQ(names.size(), 18u);
  EXPECT_EQ(cuda::importAddress("mgpuFrobnicate"), nullptr);
}

TEST(CudaLoad, MissingDriverNamesLibraryArchAndReason) {
  EXPECT_EQ(loadErrorWithDriver("/nonexistent/libcuda.so.1"),
            unavailable("/nonexistent/libcuda.so.1: cannot open shared "
                        "object file: No such file or directory"));
}

TEST(CudaLoad, DefaultDriverPath) {
  if (void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
    dlclose(h);
    GTEST_SKIP() << "this machine has a CUDA driver";
  }
  unsetenv("RWKV_CUDA_DRIVER");
  EXPECT_EQ(cuda::driverPath(), "libcuda.so.1");
  EXPECT_EQ(loadErrorWithDriver(nullptr),
            unavailable("libcuda.so.1: cannot open shared object file: No "
                        "such file or directory"));
}

TEST(CudaLoad, ToolkitStubIsNotADriver) {
  std::string stub;
  std::vector<std::string> candidates = {
      "/usr/local/cuda/lib64/stubs/libcuda.so",
      "/usr/local/cuda/targets/x86_64-linux/lib/stubs/libcuda.so"};
  if (const char *home = std::getenv("CUDA_HOME"))
    candidates.insert(candidates.begin(),
                      std::string(home) + "/lib64/stubs/libcuda.so");
  for (const std::string &c : candidates)
    if (std::ifstream(c).good()) {
      stub = c;
      break;
    }
  if (stub.empty())
    GTEST_SKIP() << "no CUDA toolkit stub library";
  EXPECT_EQ(loadErrorWithDriver(stub.c_str()),
            unavailable("cuInit failed: error 34 (CUDA_ERROR_STUB_LIBRARY) "
                        "in '" +
                        stub + "'"));
}

TEST(CudaLoad, ALibraryWithoutCuInitIsNotADriver) {
  EXPECT_EQ(loadErrorWithDriver(RWKV_FAKE_MODEL),
            unavailable(std::string("'") + RWKV_FAKE_MODEL +
                        "' has no cuInit (is it a CUDA driver?)"));
}

TEST(CudaLoad, CApiReportsTheReason) {
  setenv("RWKV_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
  rwkvrt_model *m = nullptr;
  EXPECT_EQ(
      rwkvrt_model_open(RWKV_FAKE_CUDA_MODEL, fakeCheckpoint().c_str(), 0, &m),
      RWKVRT_ERR_LOAD);
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(rwkvrt_last_error(),
            unavailable("/nonexistent/libcuda.so.1: cannot open shared "
                        "object file: No such file or directory"));
}

// Checked before the driver: a machine without one catches a library whose
// imports this runtime lacks.
TEST(CudaLoad, UnknownImportIsNamed) {
  setenv("RWKV_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
  std::string error = errorOf(
      [] { Model::load(RWKV_FAKE_CUDA_MODEL_BAD_IMPORT, fakeCheckpoint()); });
  EXPECT_NE(error.find(std::string("CUDA library '") +
                       RWKV_FAKE_CUDA_MODEL_BAD_IMPORT +
                       "' imports 'mgpuFrobnicate' (rwkv_cuda_imports), "
                       "which this runtime does not provide; it provides "
                       "mgpuModuleLoad, mgpuModuleLoadJIT,"),
            std::string::npos)
      << error;
}

TEST(CudaLoad, InferenceLibraryIsNoTrainingOrKernelLibrary) {
  // On CUDA as on the CPU, each loader takes only its own kind of library.
  EXPECT_EQ(errorOf([] { TrainLibrary::load(RWKV_FAKE_CUDA_MODEL); }),
            std::string("library '") + RWKV_FAKE_CUDA_MODEL +
                "' is not a training library (no rwkv_train_step); compile "
                "one with rwkv-compile --train --ctx T");
  EXPECT_EQ(errorOf([] { WKV7Kernel::load(RWKV_FAKE_CUDA_MODEL); }),
            std::string("library '") + RWKV_FAKE_CUDA_MODEL +
                "' is not a WKV7 kernel library; compile one with "
                "rwkv-compile --kernel wkv7 --batch B --ctx T --heads H "
                "--head-size N");
}

//===----------------------------------------------------------------------===//
// With the fake driver
//===----------------------------------------------------------------------===//

class FakeCuda : public ::testing::Test {
protected:
  void SetUp() override {
    setenv("RWKV_CUDA_DRIVER", RWKV_FAKE_CUDA_DRIVER, 1);
    unsetenv("RWKV_FAKE_CUDA_FAIL");
    // The same handle as the runtime's (same path): its counters.
    driver = dlopen(RWKV_FAKE_CUDA_DRIVER, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(driver, nullptr) << dlerror();
    statsFn = reinterpret_cast<void (*)(RwkvFakeCudaStats *)>(
        dlsym(driver, "rwkv_fake_cuda_stats"));
    isDeviceFn = reinterpret_cast<int (*)(const void *, uint64_t)>(
        dlsym(driver, "rwkv_fake_cuda_is_device"));
    reinterpret_cast<void (*)()>(dlsym(driver, "rwkv_fake_cuda_reset"))();
    liveBefore = stats().liveAllocs;
  }
  void TearDown() override {
    unsetenv("RWKV_FAKE_CUDA_FAIL");
    dlclose(driver);
  }
  RwkvFakeCudaStats stats() const {
    RwkvFakeCudaStats s;
    statsFn(&s);
    return s;
  }
  bool isDevice(const void *p, size_t bytes) const {
    return isDeviceFn(p, bytes) != 0;
  }
  /// Every allocation, stream, event and module made since SetUp is gone,
  /// and no call got a pointer or handle the driver did not make.
  void expectAllReleased() const {
    RwkvFakeCudaStats s = stats();
    EXPECT_EQ(s.allocs, s.frees);
    EXPECT_EQ(s.liveAllocs, liveBefore);
    EXPECT_EQ(s.streamsCreated, s.streamsDestroyed);
    EXPECT_EQ(s.eventsCreated, s.eventsDestroyed);
    EXPECT_EQ(s.modulesLoaded, s.modulesUnloaded);
    EXPECT_EQ(s.contextPushes, s.contextPops);
    EXPECT_EQ(s.badArguments, 0);
    EXPECT_EQ(s.hostTouchingCopies, 0);
  }
  /// Fills tensor i with i * 1000 + j.
  static void fill(State &s) {
    for (size_t i = 0; i < s.numTensors(); ++i) {
      FloatSpan t = s.tensor(i);
      for (size_t j = 0; j < t.size; ++j)
        t[j] = float(i * 1000 + j);
    }
  }
  static void expectFilled(const State &s) {
    for (size_t i = 0; i < s.numTensors(); ++i) {
      ConstFloatSpan t = s.tensor(i);
      for (size_t j = 0; j < t.size; ++j)
        ASSERT_EQ(t[j], float(i * 1000 + j))
            << "tensor " << i << " [" << j << "]";
    }
  }

  void *driver = nullptr;
  void (*statsFn)(RwkvFakeCudaStats *) = nullptr;
  int (*isDeviceFn)(const void *, uint64_t) = nullptr;
  int64_t liveBefore = 0;
};

TEST_F(FakeCuda, UploadsWeightsOnceAndRuns) {
  auto model = Model::load(RWKV_FAKE_CUDA_MODEL, fakeCheckpoint());
  EXPECT_TRUE(model->onDevice());
  EXPECT_FALSE(model->weightsOnHugePages());
  RwkvFakeCudaStats s = stats();
  EXPECT_EQ(s.modulesLoaded, 1);
  EXPECT_EQ(s.lastImageSize, kFakeCudaImageSize);

  // Every weight in device memory, in its own dtype, byte for byte.
  auto ckpt = Checkpoint::open(fakeCheckpoint());
  size_t total = 0;
  for (const BoundWeight &w : model->weights()) {
    EXPECT_TRUE(w.onDevice) << w.name;
    ASSERT_TRUE(isDevice(w.data, w.nbytes)) << w.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(w.data) % 256, 0u) << w.name;
    const Tensor &t = ckpt->get(w.name);
    ASSERT_EQ(w.nbytes, size_t(t.numel()) * dtypeSize(t.dtype)) << w.name;
    EXPECT_EQ(std::memcmp(w.data, t.data, w.nbytes), 0) << w.name;
    EXPECT_EQ(w.dtype, t.dtype) << w.name;
    total += w.nbytes;
  }
  EXPECT_GE(s.bytesToDevice, int64_t(total));
  EXPECT_EQ(s.allocs, 1); // one allocation for all weights
  {
    State state = model->newState();
    EXPECT_TRUE(state.onDevice());
    fill(state);
    std::vector<float> logits;
    model->step({3, 0, 39, 7}, state, logits);
    ASSERT_EQ(logits.size(), 40u);
    EXPECT_EQ(asInt(logits[0]), 3);
    EXPECT_EQ(asInt(logits[1]), 0);
    EXPECT_EQ(asInt(logits[2]), 39);
    EXPECT_EQ(asInt(logits[3]), 7);
    for (size_t k = 4; k < logits.size(); ++k)
      ASSERT_EQ(logits[k], 0.5f) << k;
    // The call copied the state to its output buffer and clobbered the
    // input: reading back the swapped buffer gives the values set.
    expectFilled(state);

    s = stats();
    EXPECT_EQ(s.launches, 2);
    EXPECT_STREQ(s.lastFunction, "fake_kernel_smem");
    EXPECT_EQ(s.lastGrid[0], 1u);
    EXPECT_EQ(s.lastBlock[0], 128u);
    EXPECT_EQ(s.lastSmem, 64u << 10);
    EXPECT_EQ(s.funcAttributesSet, 1); // above 48 KiB a launch opts in
    EXPECT_TRUE(isDevice(s.lastParam0, 4 * sizeof(int32_t)));
    EXPECT_EQ(s.memsets16, 1);

    // Twice more, the second time with every position's logits.
    model->step({5}, state, logits);
    EXPECT_EQ(asInt(logits[0]), 5);
    model->forward({1, 2, 3, 4, 5, 6}, state, logits, /*allLogits=*/true);
    ASSERT_EQ(logits.size(), 6u * 40);
    for (int k = 0; k < 6; ++k)
      EXPECT_EQ(asInt(logits[size_t(k)]), k + 1);
    EXPECT_EQ(logits[6], 0.5f);
    EXPECT_EQ(logits.back(), 0.5f);
    expectFilled(state);
    EXPECT_EQ(stats().launches, 6);
  }
  model.reset();
  expectAllReleased();
}

TEST_F(FakeCuda, StateCopiesResetsAndFiles) {
  auto model = Model::load(RWKV_FAKE_CUDA_MODEL, fakeCheckpoint());
  {
    State a = model->newState();
    fill(a);
    std::vector<float> logits;
    model->step({1}, a, logits); // the values are now on the device only
    int64_t onDevice = stats().bytesOnDevice;
    State b = a;
    EXPECT_TRUE(b.onDevice());
    EXPECT_GT(stats().bytesOnDevice, onDevice); // copied device to device
    expectFilled(b);
    b.reset();
    for (size_t i = 0; i < b.numTensors(); ++i)
      for (float x : b.tensor(i))
        ASSERT_EQ(x, 0.0f);
    model->step({2}, b, logits);
    for (float x : b.tensor(0))
      ASSERT_EQ(x, 0.0f);
    expectFilled(a);

    // Set, save, load: the host copy goes up before the next call.
    std::vector<float> wkv(a.wkv(1).size, 2.5f);
    a.set("wkv", 1, wkv);
    model->step({3}, a, logits);
    EXPECT_EQ(a.wkv(1)[17], 2.5f);
    std::string file = tempPath("state.bin");
    saveStateFile(file, a, fingerprintOf(*model));
    State c = model->newState();
    loadStateFile(file, c, fingerprintOf(*model));
    model->step({4}, c, logits);
    EXPECT_EQ(c.wkv(1)[17], 2.5f);
    EXPECT_EQ(c.attShift(0)[3], a.attShift(0)[3]);

    // A host-only state of the same layout gets device buffers when run.
    State host(a.layout());
    EXPECT_FALSE(host.onDevice());
    host = a;
    model->step({5}, host, logits);
    EXPECT_TRUE(host.onDevice());
    EXPECT_EQ(host.wkv(1)[17], 2.5f);

    // A batch decoder over device states: slots wait and resume.
    BatchDecoder batch(*model);
    int64_t slot = batch.add(a);
    batch.step({{slot, 9}}, logits);
    EXPECT_EQ(asInt(logits[0]), 9);
    State out = model->newState();
    batch.exportState(slot, out);
    EXPECT_EQ(out.wkv(1)[17], 2.5f);
  }
  model.reset();
  expectAllReleased();
}

TEST_F(FakeCuda, OneLibraryIsInitializedOnce) {
  auto a = Model::load(RWKV_FAKE_CUDA_MODEL, fakeCheckpoint());
  auto b = Model::load(RWKV_FAKE_CUDA_MODEL, fakeCheckpoint());
  EXPECT_EQ(stats().modulesLoaded, 1);
  a.reset();
  EXPECT_EQ(stats().modulesUnloaded, 0);
  {
    State s = b->newState();
    std::vector<float> logits;
    b->step({1}, s, logits);
  }
  b.reset();
  EXPECT_EQ(stats().modulesUnloaded, 1);
  // Opened again after the last close: initialized again.
  auto c = Model::load(RWKV_FAKE_CUDA_MODEL, fakeCheckpoint());
  EXPECT_EQ(stats().modulesLoaded, 2);
  c.reset();
  expectAllReleased();
}

// Threads with their own states on one model: per-thread errors and context
// pushes, no state shared.
TEST_F(FakeCuda, ThreadsWithTheirOwnStates) {
  auto model = Model::load(RWKV_FAKE_CUDA_MODEL, fakeCheckpoint());
  std::vector<std::string> errors(4);
  std::vector<std::thread> threads;
  for (size_t k = 0; k < errors.size(); ++k)
    threads.emplace_back([&, k] {
      errors[k] = errorOf([&] {
        State state = model->newState();
        fill(state);
        std::vector<float> logits;
        for (int i = 0; i < 20; ++i) {
          model->step({int32_t(k), int32_t(i)}, state, logits);
          if (asInt(logits[0]) != int32_t(k) || asInt(logits[1]) != i)
            throw std::runtime_error("wrong logits");
        }
        expectFilled(state);
      });
    });
  for (std::thread &t : threads)
    t.join();
  for (const std::string &e : errors)
    EXPECT_EQ(e, "<no error>");
  EXPECT_EQ(stats().launches, 2 * 20 * int64_t(errors.size()));
  model.reset();
  expectAllReleased();
}

TEST_F(FakeCuda, LaunchFailureIsARuntimeError) {
  auto model = Model::load(RWKV_FAKE_CUDA_MODEL, fakeCheckpoint());
  {
    State state = model->newState();
    fill(state); // the host copy is current
    std::vector<float> logits;
    setenv("RWKV_FAKE_CUDA_FAIL", "cuLaunchKernel:719", 1);
    try {
      model->step({1, 2}, state, logits);
      FAIL() << "no error";
    } catch (const DeviceError &e) {
      EXPECT_EQ(e.code, 719);
      EXPECT_EQ(std::string(e.what()),
                std::string("model '") + RWKV_FAKE_CUDA_MODEL +
                    "': rwkv_step failed: mgpuLaunchKernel (kernel "
                    "'fake_kernel'): cuLaunchKernel failed: error 719 "
                    "(CUDA_ERROR_LAUNCH_FAILED)");
    }
    // Nothing after the failed launch ran, but the stream was released.
    RwkvFakeCudaStats s = stats();
    EXPECT_EQ(s.launches, 0);
    EXPECT_EQ(s.streamsCreated, s.streamsDestroyed);
    // The state is what it was before the call.
    expectFilled(state);

    unsetenv("RWKV_FAKE_CUDA_FAIL");
    model->step({1, 2}, state, logits);
    expectFilled(state);

    // Failing when only the device holds the state loses it, loudly.
    model->step({1}, state, logits);
    setenv("RWKV_FAKE_CUDA_FAIL", "cuLaunchKernel:719", 1);
    EXPECT_THROW(model->step({3}, state, logits), DeviceError);
    unsetenv("RWKV_FAKE_CUDA_FAIL");
    EXPECT_EQ(errorOf([&] { state.tensor(0); }),
              "the state was lost in a failed CUDA call (the call may have "
              "overwritten it); reset or assign it before using it again");
    EXPECT_THROW(model->step({3}, state, logits), RuntimeError);
    state.reset();
    model->step({3}, state, logits);
    EXPECT_EQ(state.tensor(0)[0], 0.0f);
  }
  model.reset();
  expectAllReleased();
}

TEST_F(FakeCuda, CApiReportsDeviceErrors) {
  rwkvrt_model *m = nullptr;
  ASSERT_EQ(
      rwkvrt_model_open(RWKV_FAKE_CUDA_MODEL, fakeCheckpoint().c_str(), 0, &m),
      RWKVRT_OK)
      << rwkvrt_last_error();
  rwkvrt_state *s = nullptr;
  ASSERT_EQ(rwkvrt_state_new(m, &s), RWKVRT_OK);
  float *data = nullptr;
  size_t count = 0;
  ASSERT_EQ(rwkvrt_state_tensor(s, "wkv", 0, &data, &count), RWKVRT_OK);
  data[5] = 42.0f;
  int32_t tokens[] = {7, 8};
  float logits[40];
  ASSERT_EQ(rwkvrt_step(m, s, tokens, 2, logits, 40), RWKVRT_OK)
      << rwkvrt_last_error();
  EXPECT_EQ(asInt(logits[1]), 8);
  ASSERT_EQ(rwkvrt_state_tensor(s, "wkv", 0, &data, &count), RWKVRT_OK);
  EXPECT_EQ(data[5], 42.0f);

  setenv("RWKV_FAKE_CUDA_FAIL", "cuLaunchKernel:719", 1);
  EXPECT_EQ(rwkvrt_step(m, s, tokens, 2, logits, 40), RWKVRT_ERR_RUNTIME);
  EXPECT_NE(std::string(rwkvrt_last_error())
                .find("rwkv_step failed: mgpuLaunchKernel (kernel "
                      "'fake_kernel'): cuLaunchKernel failed: error 719 "
                      "(CUDA_ERROR_LAUNCH_FAILED)"),
            std::string::npos)
      << rwkvrt_last_error();
  unsetenv("RWKV_FAKE_CUDA_FAIL");
  ASSERT_EQ(rwkvrt_step(m, s, tokens, 2, logits, 40), RWKVRT_OK);
  ASSERT_EQ(rwkvrt_state_tensor(s, "wkv", 0, &data, &count), RWKVRT_OK);
  EXPECT_EQ(data[5], 42.0f);

  EXPECT_EQ(rwkvrt_state_free(s), RWKVRT_OK);
  EXPECT_EQ(rwkvrt_model_close(m), RWKVRT_OK);
  expectAllReleased();
}

TEST_F(FakeCuda, InitFailureNamesDeviceAndError) {
  setenv("RWKV_FAKE_CUDA_FAIL", "cuModuleLoadData:200", 1);
  EXPECT_EQ(
      errorOf([] { Model::load(RWKV_FAKE_CUDA_MODEL, fakeCheckpoint()); }),
      std::string("CUDA library '") + RWKV_FAKE_CUDA_MODEL +
          "': rwkv_cuda_init failed on device 0 'RWKV fake CUDA device' "
          "(sm_90): mgpuModuleLoad: cuModuleLoadData failed: error 200 "
          "(CUDA_ERROR_INVALID_IMAGE)");
  unsetenv("RWKV_FAKE_CUDA_FAIL");
  // Not left half-initialized: the next load initializes it.
  auto model = Model::load(RWKV_FAKE_CUDA_MODEL, fakeCheckpoint());
  EXPECT_EQ(stats().modulesLoaded, 1);
  model.reset();
  expectAllReleased();
}

TEST_F(FakeCuda, OutOfDeviceMemory) {
  setenv("RWKV_FAKE_CUDA_FAIL", "cuMemAlloc:2", 1);
  std::string error =
      errorOf([] { Model::load(RWKV_FAKE_CUDA_MODEL, fakeCheckpoint()); });
  EXPECT_EQ(error.find(std::string("model '") + RWKV_FAKE_CUDA_MODEL +
                       "': uploading the weights: cuMemAlloc of "),
            0u)
      << error;
  EXPECT_NE(error.find("for the weights failed: error 2 "
                       "(CUDA_ERROR_OUT_OF_MEMORY)"),
            std::string::npos)
      << error;
  rwkvrt_model *m = nullptr;
  EXPECT_EQ(
      rwkvrt_model_open(RWKV_FAKE_CUDA_MODEL, fakeCheckpoint().c_str(), 0, &m),
      RWKVRT_ERR_OUT_OF_MEMORY);
  EXPECT_EQ(m, nullptr);
  // rwkv_cuda_fini() ran: the module is unloaded again.
  expectAllReleased();
}

} // namespace

//===----------------------------------------------------------------------===//
// A library from rwkv-compile --target=cuda on the fake driver
//===----------------------------------------------------------------------===//

// The generated host code of golden tiny (ctest passes its path): it loads
// its one device image, allocates and copies device memory only, launches
// its kernels on streams it releases, and leaves nothing behind. The kernels
// themselves do not run here (the fake only records launches); their
// numerics are the goldengpu suite (--cuda-emulate).
TEST_F(FakeCuda, GeneratedLibraryRunsItsHostCode) {
  const char *lib = std::getenv("RWKV_GENERATED_CUDA_LIB");
  std::string weights = RWKV_SHARED_DIR "/golden/tiny/model.pth";
  ASSERT_TRUE(lib) << "ctest sets RWKV_GENERATED_CUDA_LIB";
  {
    auto model = Model::load(lib, weights);
    EXPECT_TRUE(model->onDevice());
    RwkvFakeCudaStats s = stats();
    EXPECT_EQ(s.modulesLoaded, 1);
    EXPECT_GT(s.lastImageSize, 4096);
    State state = model->newState();
    std::vector<float> logits;
    model->step({187, 510, 1}, state, logits);
    s = stats();
    int64_t stepLaunches = s.launches;
    EXPECT_GT(stepLaunches, 50);
    EXPECT_GT(s.streamsCreated, 0);
    model->forward({156, 310}, state, logits);
    s = stats();
    EXPECT_GT(s.launches, stepLaunches);
    EXPECT_EQ(s.badArguments, 0);
    EXPECT_EQ(s.hostTouchingCopies, 0);
    EXPECT_EQ(s.streamsCreated, s.streamsDestroyed);
  }
  expectAllReleased();
}

// The generated host code of golden tiny's training step (rwkv-compile
// --train --target=cuda; ctest passes its path): without a driver it is
// refused by name; on the fake driver every argument goes to device memory,
// the step and the loss launch their kernels, the loss and every gradient
// come back, and nothing is left behind. The kernels' numerics are the
// traingpu suite (--cuda-emulate).
TEST_F(FakeCuda, GeneratedTrainingLibraryRunsItsHostCode) {
  const char *lib = std::getenv("RWKV_GENERATED_CUDA_TRAIN_LIB");
  ASSERT_TRUE(lib) << "ctest sets RWKV_GENERATED_CUDA_TRAIN_LIB";
  setenv("RWKV_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
  std::string error = errorOf([&] { TrainLibrary::load(lib); });
  EXPECT_NE(error.find(std::string("training library '") + lib +
                       "' is a CUDA library (sm_80) but CUDA is "
                       "unavailable: /nonexistent/libcuda.so.1"),
            std::string::npos)
      << error;
  setenv("RWKV_CUDA_DRIVER", RWKV_FAKE_CUDA_DRIVER, 1);
  {
    auto train = TrainLibrary::load(lib);
    RwkvFakeCudaStats s = stats();
    EXPECT_EQ(s.modulesLoaded, 1);
    auto ckpt = Checkpoint::open(RWKV_SHARED_DIR "/golden/tiny/model.pth");
    std::vector<std::vector<uint8_t>> copies;
    std::vector<const void *> weights = bindTrainWeights(*train, *ckpt, copies);
    size_t n = size_t(train->batch() * train->context());
    std::vector<int32_t> inputs(n, 1), targets(n, 2);
    // Gradient buffers the fake's copies must overwrite: NaN before.
    std::vector<std::vector<float>> grads;
    std::vector<float *> gradPtrs;
    for (size_t i : train->weightArgs()) {
      grads.emplace_back(train->args()[i].numel, std::nanf(""));
      gradPtrs.push_back(grads.back().data());
    }
    train->loss(inputs.data(), targets.data(), weights, {});
    s = stats();
    int64_t lossLaunches = s.launches;
    EXPECT_GT(lossLaunches, 50);
    train->step(inputs.data(), targets.data(), weights, {}, gradPtrs, {});
    s = stats();
    EXPECT_GT(s.launches, 2 * lossLaunches);
    EXPECT_EQ(s.badArguments, 0);
    EXPECT_EQ(s.hostTouchingCopies, 0);
    EXPECT_EQ(s.streamsCreated, s.streamsDestroyed);
    // The kernels do not run, so each gradient is the fake device memory's
    // fill, 0xa5 bytes: copied back from the device.
    for (const std::vector<float> &g : grads)
      for (float v : g) {
        uint32_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        ASSERT_EQ(bits, 0xa5a5a5a5u) << "a gradient was not copied back";
      }
  }
  expectAllReleased();
}

// The same for a WKV7 kernel library (rwkv-compile --kernel wkv7
// --target=cuda; ctest passes its path): refused by name without a driver;
// on the fake one, forward and backward launch their kernels on device
// copies of the arguments and every result comes back from the device.
TEST_F(FakeCuda, GeneratedKernelLibraryRunsItsHostCode) {
  const char *lib = std::getenv("RWKV_GENERATED_CUDA_KERNEL_LIB");
  ASSERT_TRUE(lib) << "ctest sets RWKV_GENERATED_CUDA_KERNEL_LIB";
  setenv("RWKV_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
  std::string error = errorOf([&] { WKV7Kernel::load(lib); });
  EXPECT_NE(error.find(std::string("kernel library '") + lib +
                       "' is a CUDA library (sm_80) but CUDA is "
                       "unavailable: /nonexistent/libcuda.so.1"),
            std::string::npos)
      << error;
  setenv("RWKV_CUDA_DRIVER", RWKV_FAKE_CUDA_DRIVER, 1);
  {
    auto k = WKV7Kernel::load(lib);
    EXPECT_TRUE(k->onDevice());
    size_t act = size_t(k->batch() * k->context() * k->heads() * k->headSize()),
           state =
               size_t(k->batch() * k->heads() * k->headSize() * k->headSize());
    std::vector<float> in(act, 0.5f), s0(state, 0.25f), ds(state, 0.125f),
        y(act, 1.0f), s1(state, 1.0f);
    k->forward(in.data(), in.data(), in.data(), in.data(), in.data(), in.data(),
               s0.data(), y.data(), s1.data());
    int64_t forwardLaunches = stats().launches;
    EXPECT_GT(forwardLaunches, 0);
    std::vector<std::vector<float>> g(6, std::vector<float>(act, 1.0f));
    std::vector<float> ds0(state, 1.0f);
    k->backward(in.data(), in.data(), in.data(), in.data(), in.data(),
                in.data(), s0.data(), in.data(), ds.data(), g[0].data(),
                g[1].data(), g[2].data(), g[3].data(), g[4].data(), g[5].data(),
                ds0.data());
    RwkvFakeCudaStats s = stats();
    EXPECT_GT(s.launches, forwardLaunches);
    EXPECT_EQ(s.badArguments, 0);
    EXPECT_EQ(s.hostTouchingCopies, 0);
    EXPECT_GE(k->lastDeviceSeconds(), 0.0);
    // The kernels do not run: each activation result holds the fake device
    // memory's 0xa5 fill, copied back from the device; the state results
    // hold what the library's host code copied into them on the device
    // before its kernels would update them in place (state0 and dstate).
    auto copiedBack = [](const std::vector<float> &v) {
      for (float x : v) {
        uint32_t bits;
        std::memcpy(&bits, &x, sizeof bits);
        if (bits != 0xa5a5a5a5u)
          return false;
      }
      return true;
    };
    EXPECT_TRUE(copiedBack(y));
    for (const std::vector<float> &v : g)
      EXPECT_TRUE(copiedBack(v));
    EXPECT_EQ(s1, s0);
    EXPECT_EQ(ds0, ds);
  }
  expectAllReleased();
}
