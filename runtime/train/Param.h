//===- Param.h - Trainable tensors: f32 master copy and gradient -*- C++
//-*-===//
//
// A Param is one trainable tensor. Training updates the float32 master copy
// `value`; when the checkpoint stored the tensor as bf16/f16, `stored` holds
// the value rounded (to nearest even) into that dtype, refreshed after every
// optimizer step: it is what the model sees and what the output .pth holds.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_TRAIN_PARAM_H
#define RWKV_RUNTIME_TRAIN_PARAM_H

#include "runtime/checkpoint/Checkpoint.h"

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace rwkv {

struct TrainError : std::runtime_error {
  using runtime_error::runtime_error;
};

struct Param {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::F32;    // the checkpoint's dtype (f32, f16 or bf16)
  std::vector<float> value;    // f32 master weights, row-major
  std::vector<float> grad;     // d loss / d value, filled by the GradientFn
  std::vector<uint8_t> stored; // value rounded to `dtype` (empty for f32)

  // Optimizer group (paramGroupRule): learning-rate multiplier and whether
  // decoupled weight decay applies.
  float lrScale = 1.0f;
  bool weightDecay = false;

  int64_t numel() const { return int64_t(value.size()); }
  /// Pointer to the tensor in its checkpoint dtype (`stored`, or `value`
  /// for f32 tensors).
  const void *data() const {
    return dtype == DType::F32 ? static_cast<const void *>(value.data())
                               : static_cast<const void *>(stored.data());
  }
  /// Rounds `value` into `stored` (round to nearest even; no-op for f32).
  void syncStored();
};

/// RWKV-LM's optimizer groups (train_temp/src/model.py configure_optimizers,
/// spec §2.7): `att.w0` gets `w0LrScale` × lr; decoupled weight decay applies
/// to tensors whose name contains ".weight" and whose squeezed shape has at
/// least 2 dims (emb, head, att.receptance/key/value/output, ffn.key/value),
/// never to w0.
void applyParamGroupRule(Param &param, float w0LrScale = 2.0f);

/// Loads every tensor of a checkpoint as a Param (f32 master copy, rounded
/// copy for bf16/f16) in file order, with the group rule applied. Throws
/// TrainError naming the file and key on a dtype other than f32/f16/bf16.
std::vector<Param> loadParams(const Checkpoint &checkpoint,
                              float w0LrScale = 2.0f);

/// 64-bit FNV-1a over every tensor's name and shape, in order: identifies
/// the model a resume file belongs to.
uint64_t modelIdentity(const std::vector<const Param *> &params);

/// Writes the params (in their checkpoint dtypes, in order) as a torch.save
/// .pth. The file is written beside `path` under a temporary name and
/// renamed into place, so an interrupted write never leaves a partial file.
void writeParamsPth(const std::string &path,
                    const std::vector<const Param *> &params);

/// Runs `write(tmpPath)` for a temporary path in `path`'s folder that keeps
/// `path`'s file name, then renames it onto `path`; the temporary is
/// removed if `write` throws.
void writeFileAtomically(const std::string &path,
                         const std::function<void(const std::string &)> &write);

} // namespace rwkv

#endif // RWKV_RUNTIME_TRAIN_PARAM_H
