//===- Batch.h - Independent sequences stepped together ---------*- C++ -*-===//
//
// A library compiled with `rwkv-compile --batch N` steps N sequences per call
// and reads every weight once per step for all of them. BatchDecoder turns
// its N rows into slots that a caller (a server) fills and frees between
// steps: each slot has its own recurrent state, a step runs one token for
// any subset of the active slots, and the other slots keep their state.
// See docs/runtime.md, "Batched decode".
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_CORE_BATCH_H
#define RWKV_RUNTIME_CORE_BATCH_H

#include "runtime/core/Runtime.h"

#include <utility>
#include <vector>

namespace rwkv {

class BatchDecoder {
public:
  /// `model` (a --batch N library; N = capacity) must outlive the decoder.
  explicit BatchDecoder(const Model &model);

  int64_t capacity() const { return int64_t(active_.size()); }
  int64_t numActive() const;
  bool isActive(int64_t slot) const;

  /// Claims the lowest free slot with the zero state. Throws RuntimeError
  /// when every slot is taken.
  int64_t add();
  /// The same, starting from `initial`: the state of a batch-1 library of the
  /// same model (e.g. after prefilling the prompt there). Throws
  /// RuntimeError naming the tensor when its layout does not fit.
  int64_t add(const State &initial);
  /// Frees an active slot; its state is dropped.
  void remove(int64_t slot);
  /// Copies one slot's state into `out`, a batch-1 state of the same model.
  void exportState(int64_t slot, State &out) const;

  /// One token for each listed slot (each active, at most once); the slots
  /// not listed keep their state. `logits` is resized to [capacity, V]: row
  /// `slot` holds that slot's logits, the rows of unlisted slots are
  /// unspecified.
  void step(const std::vector<std::pair<int64_t, int32_t>> &tokens,
            std::vector<float> &logits);

private:
  void checkSlot(int64_t slot, const char *what) const;
  /// Copies slot `slot` of `from` (batch `fromBatch`) to slot `toSlot` of
  /// `to`, tensor by tensor.
  static void copySlot(const State &from, int64_t fromBatch, int64_t slot,
                       State &to, int64_t toSlot);

  const Model &model_;
  State state_, saved_;
  std::vector<bool> active_;
};

} // namespace rwkv

#endif // RWKV_RUNTIME_CORE_BATCH_H
