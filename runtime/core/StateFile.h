//===- StateFile.h - Save and load the recurrent state ----------*- C++ -*-===//
//
// A state file holds one State (every att_shift / wkv / ffn_shift tensor,
// f32) behind a versioned header with a model fingerprint, and ends in a
// checksum of everything before it. Loading refuses a file written for
// another model (naming both), a corrupted or truncated file, or a newer
// format version; it never half-loads. See docs/generate.md for the layout.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_CORE_STATEFILE_H
#define RWKV_RUNTIME_CORE_STATEFILE_H

#include "runtime/core/Runtime.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rwkv {

/// "RWKVSTAT" followed by a format version.
constexpr char kStateFileMagic[8] = {'R', 'W', 'K', 'V', 'S', 'T', 'A', 'T'};
constexpr uint32_t kStateFileVersion = 1;

struct StateFileError : RuntimeError {
  using RuntimeError::RuntimeError;
};

/// 64-bit FNV-1a, continuing from `seed` (pass the previous result to hash
/// a stream in pieces).
uint64_t fnv1a64(const void *data, size_t size,
                 uint64_t seed = 0xcbf29ce484222325ULL);

/// What a state belongs to: a hash of the library's config (every integer
/// field, the dtype, the batch) and the state layout (names, layers, shapes,
/// f32), plus a readable description for error messages.
struct ModelFingerprint {
  uint64_t hash = 0;
  std::string description;
};
ModelFingerprint fingerprintOf(const ModelInfo &info,
                               const State::Layout &layout);
inline ModelFingerprint fingerprintOf(const Model &model) {
  return fingerprintOf(model.info(), *model.newState().layout());
}

/// Writes `state` to `path` (via a temporary file renamed into place, so a
/// crash never leaves a half-written file under the final name). Throws
/// StateFileError on I/O failure.
void saveStateFile(const std::string &path, const State &state,
                   const ModelFingerprint &model);

/// Reads `path` into `state`. Throws StateFileError naming the file and the
/// problem: missing, not a state file, unsupported version, checksum
/// mismatch, truncated, or saved for another model (both described). `state`
/// is untouched on failure.
void loadStateFile(const std::string &path, State &state,
                   const ModelFingerprint &model);

/// loadStateFile on the bytes of a file already in memory; `name` stands for
/// the path in error messages. The parser behind loadStateFile (fuzzed by
/// unittests/fuzz/FuzzStateFile.cpp).
void loadStateFromMemory(std::string_view bytes, const std::string &name,
                         State &state, const ModelFingerprint &model);

/// Loads a state-tuned initial state: the `blocks.<l>.att.time_state`
/// tensors ([H, N, N], any float dtype) of a .pth/safetensors file into the
/// wkv tensors of `state` (which is reset first; shifts stay zero). By
/// default the file is taken to be in the runtime's [H, N(value), N(key)]
/// layout; `transpose` swaps the last two axes (the v6 [H, key, value]
/// convention). Throws StateFileError naming the tensor on a missing layer
/// or a shape mismatch.
void loadTimeState(const std::string &path, State &state,
                   bool transpose = false);

} // namespace rwkv

#endif // RWKV_RUNTIME_CORE_STATEFILE_H
