//===- Batch.cpp - Independent sequences stepped together -----------------===//

#include "runtime/core/Batch.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace rwkv {

BatchDecoder::BatchDecoder(const Model &model)
    : model_(model), state_(model.newState()), saved_(model.newState()),
      active_(size_t(model.batch()), false) {}

int64_t BatchDecoder::numActive() const {
  return std::count(active_.begin(), active_.end(), true);
}

bool BatchDecoder::isActive(int64_t slot) const {
  return slot >= 0 && slot < capacity() && active_[size_t(slot)];
}

void BatchDecoder::checkSlot(int64_t slot, const char *what) const {
  if (slot < 0 || slot >= capacity())
    throw RuntimeError(fmt::format("{}: slot {} is out of range [0, {})", what,
                                   slot, capacity()));
  if (!active_[size_t(slot)])
    throw RuntimeError(fmt::format("{}: slot {} is not active", what, slot));
}

void BatchDecoder::copySlot(const State &from, int64_t fromBatch, int64_t slot,
                            State &to, int64_t toSlot) {
  for (size_t i = 0; i < from.numTensors(); ++i) {
    // The batch is the leading dimension of every state tensor.
    size_t per = from.info(i).numel / size_t(fromBatch);
    std::memcpy(to.tensor(i).data + size_t(toSlot) * per,
                from.tensor(i).data + size_t(slot) * per, per * sizeof(float));
  }
}

int64_t BatchDecoder::add() {
  auto it = std::find(active_.begin(), active_.end(), false);
  if (it == active_.end())
    throw RuntimeError(fmt::format(
        "cannot add a sequence: all {} slots of the batch are in use",
        capacity()));
  int64_t slot = it - active_.begin();
  for (size_t i = 0; i < state_.numTensors(); ++i) {
    size_t per = state_.info(i).numel / size_t(capacity());
    std::fill_n(state_.tensor(i).data + size_t(slot) * per, per,
                state_.info(i).init);
  }
  *it = true;
  return slot;
}

int64_t BatchDecoder::add(const State &initial) {
  if (initial.numTensors() != state_.numTensors())
    throw RuntimeError(
        fmt::format("initial state has {} tensors, the batch state {}",
                    initial.numTensors(), state_.numTensors()));
  for (size_t i = 0; i < initial.numTensors(); ++i) {
    const State::TensorInfo &a = initial.info(i), &b = state_.info(i);
    if (a.name != b.name || a.layer != b.layer || a.shape.empty() ||
        a.shape[0] != 1 || a.numel * size_t(capacity()) != b.numel)
      throw RuntimeError(fmt::format(
          "initial state tensor {}:{} does not fit one slot of the batch "
          "(expected {}:{} with {} values)",
          a.name, a.layer, b.name, b.layer, b.numel / size_t(capacity())));
  }
  int64_t slot = add();
  copySlot(initial, 1, 0, state_, slot);
  return slot;
}

void BatchDecoder::remove(int64_t slot) {
  checkSlot(slot, "remove");
  active_[size_t(slot)] = false;
}

void BatchDecoder::exportState(int64_t slot, State &out) const {
  checkSlot(slot, "exportState");
  if (out.numTensors() != state_.numTensors())
    throw RuntimeError("exportState: the state is not of a batch-1 library of "
                       "this model");
  for (size_t i = 0; i < out.numTensors(); ++i)
    if (out.info(i).numel * size_t(capacity()) != state_.info(i).numel)
      throw RuntimeError(
          fmt::format("exportState: tensor {}:{} does not hold one slot",
                      out.info(i).name, out.info(i).layer));
  copySlot(state_, capacity(), slot, out, 0);
}

void BatchDecoder::step(const std::vector<std::pair<int64_t, int32_t>> &tokens,
                        std::vector<float> &logits) {
  std::vector<int32_t> ids(size_t(capacity()), 0);
  std::vector<bool> stepped(size_t(capacity()), false);
  for (const auto &[slot, token] : tokens) {
    checkSlot(slot, "step");
    if (stepped[size_t(slot)])
      throw RuntimeError(
          fmt::format("step: slot {} is given two tokens", slot));
    stepped[size_t(slot)] = true;
    ids[size_t(slot)] = token;
  }
  // Active slots that wait this step: their state is put back afterwards
  // (free slots are reset when added).
  std::vector<int64_t> waiting;
  for (int64_t s = 0; s < capacity(); ++s)
    if (active_[size_t(s)] && !stepped[size_t(s)])
      waiting.push_back(s);
  for (int64_t s : waiting)
    copySlot(state_, capacity(), s, saved_, s);
  model_.step(ids, state_, logits);
  for (int64_t s : waiting)
    copySlot(saved_, capacity(), s, state_, s);
}

} // namespace rwkv
