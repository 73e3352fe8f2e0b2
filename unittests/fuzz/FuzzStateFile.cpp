//===- FuzzStateFile.cpp - libFuzzer target for state files ---------------===//
//
// Feeds arbitrary bytes to loadStateFromMemory (the parser behind
// loadStateFile) for the state of a real model: the small library and
// checkpoint the build compiles for the seed corpus, whose rwkv-run
// --state-out files are the seeds. Each input is loaded three times:
//  1. as it is, for that model;
//  2. with the trailing checksum recomputed, so mutations get past it to the
//     fingerprint, layout and payload checks;
//  3. like 2 but with a model whose fingerprint hash is the one in the file
//     (a hash collision: the layout check must still stop a mismatch).
// Every load either succeeds or throws StateFileError. A failed load leaves
// the state untouched; a successful one holds the file's payload exactly.
//
// RWKV_FUZZ_EXPECT_LOAD=1 makes a failed first load fatal: the ctest that
// runs the seeds once checks with it that they load (and so that the
// fuzzer's model is the one that wrote them).
//
//===----------------------------------------------------------------------===//

#include "runtime/core/StateFile.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct Target {
  std::unique_ptr<rwkv::Model> model;
  rwkv::ModelFingerprint fingerprint;
  size_t payloadBytes = 0;
  bool expectLoad = false;
};

const Target &target() {
  static Target *t = [] {
    auto *t = new Target;
    rwkv::ModelOptions options;
    options.threads = 1;
    options.weightMemory = rwkv::ModelOptions::WeightMemory::Mapped;
    t->model = rwkv::Model::load(RWKV_FUZZ_STATE_MODEL ".so",
                                 RWKV_FUZZ_STATE_MODEL ".pth", options);
    t->fingerprint = rwkv::fingerprintOf(*t->model);
    rwkv::State s = t->model->newState();
    for (size_t i = 0; i < s.numTensors(); ++i)
      t->payloadBytes += s.info(i).numel * sizeof(float);
    const char *env = std::getenv("RWKV_FUZZ_EXPECT_LOAD");
    t->expectLoad = env && *env == '1';
    return t;
  }();
  return *t;
}

void check(bool ok, const char *what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz-state-file: %s\n", what);
    std::abort();
  }
}

/// Whether `state` holds exactly `bytes` (the concatenated f32 tensors).
bool holds(const rwkv::State &state, const char *bytes, size_t size) {
  size_t off = 0;
  for (size_t i = 0; i < state.numTensors(); ++i) {
    rwkv::ConstFloatSpan s = state.tensor(i);
    size_t n = s.size * sizeof(float);
    if (off + n > size || std::memcmp(s.data, bytes + off, n) != 0)
      return false;
    off += n;
  }
  return off == size;
}

/// Loads `bytes` into a state filled with a marker pattern; returns whether
/// the load succeeded.
bool load(const Target &t, std::string_view bytes,
          const rwkv::ModelFingerprint &fingerprint) {
  rwkv::State state = t.model->newState();
  std::string marker(t.payloadBytes, '\x5a');
  for (size_t i = 0, off = 0; i < state.numTensors(); ++i) {
    rwkv::FloatSpan s = state.tensor(i);
    std::memcpy(s.data, marker.data() + off, s.size * sizeof(float));
    off += s.size * sizeof(float);
  }
  try {
    rwkv::loadStateFromMemory(bytes, "fuzz", state, fingerprint);
  } catch (const rwkv::StateFileError &) {
    check(holds(state, marker.data(), marker.size()),
          "a failed load changed the state");
    return false;
  }
  // The payload is the t.payloadBytes before the checksum.
  check(bytes.size() >= t.payloadBytes + 8, "loaded a too short file");
  check(holds(state, bytes.data() + bytes.size() - 8 - t.payloadBytes,
              t.payloadBytes),
        "the loaded state is not the file's payload");
  return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const Target &t = target();
  std::string_view input(reinterpret_cast<const char *>(data), size);
  bool loaded = load(t, input, t.fingerprint);
  if (t.expectLoad)
    check(loaded, "RWKV_FUZZ_EXPECT_LOAD: the input did not load");
  if (size < sizeof(rwkv::kStateFileMagic) + 8)
    return 0;
  std::string fixed(input);
  uint64_t sum = rwkv::fnv1a64(fixed.data(), fixed.size() - 8);
  std::memcpy(&fixed[fixed.size() - 8], &sum, 8);
  load(t, fixed, t.fingerprint);
  // The fingerprint hash is at offset 16, after magic, version and flags.
  if (size >= 24) {
    rwkv::ModelFingerprint collision = t.fingerprint;
    std::memcpy(&collision.hash, fixed.data() + 16, 8);
    load(t, fixed, collision);
  }
  return 0;
}
