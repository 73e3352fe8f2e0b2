//===- Quantize.cpp - int8 weight quantization of RWKV-7 checkpoints ------===//
//
// Symmetric int8 with one f32 scale per row (per output of a projection, per
// token of the embedding): scale = max|w| / 127, q = round(w / scale). The
// compiled kernels read q and apply the scale once per output, so the file
// holds exactly what decode streams from memory.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Internal.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace rwkv {

bool isQuantizableMatrix(const std::string &name) {
  auto endsWith = [&](const char *suffix) {
    size_t n = std::strlen(suffix);
    return name.size() >= n && name.compare(name.size() - n, n, suffix) == 0;
  };
  return name == "emb.weight" || name == "head.weight" ||
         endsWith(".att.receptance.weight") || endsWith(".att.key.weight") ||
         endsWith(".att.value.weight") || endsWith(".att.output.weight") ||
         endsWith(".ffn.key.weight") || endsWith(".ffn.value.weight");
}

/// The scale of one row: absmax / 127 shrunk by up to 20% where that lowers
/// the squared rounding error of the row (clipping a lone outlier a little
/// buys a finer step for every other weight).
static float bestScale(const float *w, int64_t n, float amax) {
  if (!(amax > 0))
    return 0;
  float best = amax / 127.0f;
  double bestErr = -1;
  for (int k = 0; k <= 20; ++k) {
    float scale = amax * (1.0f - 0.01f * k) / 127.0f;
    double err = 0;
    for (int64_t i = 0; i < n; ++i) {
      float q = std::clamp(std::nearbyint(w[i] / scale), -127.0f, 127.0f);
      double d = double(q * scale) - w[i];
      err += d * d;
    }
    if (bestErr < 0 || err < bestErr) {
      bestErr = err;
      best = scale;
    }
  }
  return best;
}

QuantizeReport quantizeCheckpoint(const Checkpoint &in,
                                  const std::string &outPath,
                                  const QuantizeOptions &options) {
  if (options.type != "int8")
    throw CheckpointError(fmt::format(
        "unknown quantization type '{}' (supported: int8)", options.type));
  ModelConfig config = detectConfig(in);
  if (config.version != 7)
    fail(in.path(),
         "only RWKV-7 (x070) checkpoints can be quantized, this "
         "one is RWKV version {}",
         config.version);
  if (config.quantized)
    fail(in.path(), "the checkpoint is already quantized");
  if (options.embedding != "bf16" && options.embedding != "keep" &&
      options.embedding != "int8")
    throw CheckpointError(fmt::format(
        "unknown embedding type '{}' (bf16, keep or int8)", options.embedding));

  struct Entry {
    const Tensor *source;
    bool quantize, scales, toBf16;
  };
  std::vector<Entry> entries;
  std::vector<TensorSpec> specs;
  for (const Tensor &t : in.tensors()) {
    bool emb = t.name == "emb.weight";
    bool q = isQuantizableMatrix(t.name) &&
             !(emb && options.embedding != "int8") &&
             !(t.name == "head.weight" && options.keepHead);
    bool toBf16 = emb && options.embedding == "bf16" && t.dtype == DType::F32;
    entries.push_back({&t, q, false, toBf16});
    specs.push_back({t.name,
                     q        ? DType::I8
                     : toBf16 ? DType::BF16
                              : t.dtype,
                     t.shape});
    if (q) {
      entries.push_back({&t, false, true, false});
      specs.push_back({t.name + "_scale", DType::F32, {t.shape[0]}});
    }
  }

  QuantizeReport report;
  std::vector<float> row;
  TensorProducer produce = [&](size_t i, std::vector<uint8_t> &bytes) {
    const Entry &e = entries[i];
    const Tensor &t = *e.source;
    if (e.toBf16) {
      bytes.resize(size_t(t.numel()) * 2);
      auto *out = reinterpret_cast<uint16_t *>(bytes.data());
      for (int64_t k = 0; k < t.numel(); ++k)
        out[k] = f32ToBf16(t.getAsFloat(k));
      report.bytesOut += bytes.size();
      return;
    }
    if (!e.quantize && !e.scales) {
      OwnedTensor owned = toOwned(t);
      bytes = std::move(owned.bytes);
      report.bytesOut += bytes.size();
      return;
    }
    const int64_t rows = t.shape[0], cols = t.shape[1];
    bytes.resize(size_t(e.quantize ? rows * cols : rows * 4));
    row.resize(size_t(cols));
    for (int64_t r = 0; r < rows; ++r) {
      float amax = 0;
      for (int64_t c = 0; c < cols; ++c) {
        row[c] = t.getAsFloat(r * cols + c);
        if (!std::isfinite(row[c]))
          fail(in.path(), "tensor '{}' has a non-finite value at [{}, {}]",
               t.name, r, c);
        amax = std::max(amax, std::fabs(row[c]));
      }
      float scale = bestScale(row.data(), cols, amax);
      if (e.scales) {
        std::memcpy(bytes.data() + 4 * r, &scale, 4);
        continue;
      }
      auto *q = reinterpret_cast<int8_t *>(bytes.data()) + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        float v = scale > 0 ? std::nearbyint(row[c] / scale) : 0.0f;
        q[c] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
        report.maxAbsError = std::max(report.maxAbsError,
                                      std::fabs(float(q[c]) * scale - row[c]));
      }
    }
    if (e.quantize)
      ++report.quantized;
    report.bytesOut += bytes.size();
  };
  writeSafetensors(outPath, specs, produce);
  for (const Tensor &t : in.tensors())
    report.bytesIn += size_t(t.numel()) * dtypeSize(t.dtype);
  return report;
}

} // namespace rwkv
