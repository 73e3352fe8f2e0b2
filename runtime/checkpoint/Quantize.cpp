//===- Quantize.cpp - int8 and int4 weight quantization of RWKV-7 ---------===//
//
// int8: symmetric, one f32 scale per row (per output of a projection, per
// token of the embedding): scale = max|w| / 127, q = round(w / scale); with a
// group size G, one f32 scale per row and group of G inputs instead.
// int4: symmetric, q in [-8, 7], two per byte along the row (column 2j in
// the low nibble of byte j), one bf16 scale per row and group of G inputs.
// The compiled kernels read q and apply the scales in registers, so the
// file holds exactly what decode streams from memory.
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

/// The bf16 value nearest to `v`, as f32.
static float roundToBf16(float v) { return bf16ToF32(f32ToBf16(v)); }

static float quantizeInt8(float w, float scale) {
  return scale > 0 ? std::clamp(std::nearbyint(w / scale), -127.0f, 127.0f)
                   : 0.0f;
}

/// The scale of one grouped int8 group: as bestScale, over the group.
/// Stored f32: bf16 scales cost the golden logits 0.02 (docs/checkpoints.md).
static float bestInt8GroupScale(const float *w, int64_t n) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i)
    amax = std::max(amax, std::fabs(w[i]));
  return bestScale(w, n, amax);
}

static float quantizeInt4(float w, float scale) {
  return scale > 0 ? std::clamp(std::nearbyint(w / scale), -8.0f, 7.0f) : 0.0f;
}

/// The scale of one int4 group: amax / d for the d in [6, 8] (steps of 0.1)
/// whose bf16-rounded scale gives the lowest squared rounding error. d = 7
/// never clips; d up to 8 uses the -8 level (and clips a positive maximum
/// to 7 steps) where that pays. The scale is chosen after rounding to bf16,
/// so storing it in bf16 adds no error.
static float bestInt4Scale(const float *w, int64_t n) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i)
    amax = std::max(amax, std::fabs(w[i]));
  if (!(amax > 0))
    return 0;
  float best = 0;
  double bestErr = -1;
  for (int k = 0; k <= 20; ++k) {
    float scale = roundToBf16(amax / (6.0f + 0.1f * k));
    if (!(scale > 0))
      continue;
    double err = 0;
    for (int64_t i = 0; i < n; ++i) {
      double d = double(quantizeInt4(w[i], scale) * scale) - w[i];
      err += d * d;
    }
    if (bestErr < 0 || err < bestErr) {
      bestErr = err;
      best = scale;
    }
  }
  return best;
}

namespace {
/// How one tensor of the input is written.
enum class Kind { Copy, Bf16, Int8, Int4 };
} // namespace

static Kind parseKind(const std::string &type, const char *what,
                      const char *allowed) {
  if (type == "int8")
    return Kind::Int8;
  if (type == "int4")
    return Kind::Int4;
  if (type == "keep")
    return Kind::Copy;
  if (type == "bf16" && std::string(what) == "embedding")
    return Kind::Bf16;
  throw CheckpointError(
      fmt::format("unknown {} type '{}' ({})", what, type, allowed));
}

QuantizeReport quantizeCheckpoint(const Checkpoint &in,
                                  const std::string &outPath,
                                  const QuantizeOptions &options) {
  if (options.type != "int8" && options.type != "int4")
    throw CheckpointError(
        fmt::format("unknown quantization type '{}' (supported: int8, int4)",
                    options.type));
  const Kind matrixKind = options.type == "int4" ? Kind::Int4 : Kind::Int8;
  const Kind embKind =
      parseKind(options.embedding, "embedding", "bf16, keep, int8 or int4");
  const Kind headKind =
      options.keepHead ? Kind::Copy
      : options.head.empty()
          ? matrixKind
          : parseKind(options.head, "head", "keep, int8 or int4");
  const bool anyInt4 = matrixKind == Kind::Int4 || embKind == Kind::Int4 ||
                       headKind == Kind::Int4;
  // One --group applies to every int4 and int8 matrix; without one, int4
  // takes the default and int8 one scale per row.
  const int64_t group = options.group ? options.group : kDefaultInt4Group;
  if (anyInt4 && (group <= 0 || group % 2 != 0))
    throw CheckpointError(fmt::format(
        "int4 group size {} must be a positive even number (two weights per "
        "byte)",
        group));
  const int64_t int8Group = options.group;
  if (int8Group < 0)
    throw CheckpointError(
        fmt::format("int8 group size {} must be positive", int8Group));

  ModelConfig config = detectConfig(in);
  if (config.version != 7)
    fail(in.path(),
         "only RWKV-7 (x070) checkpoints can be quantized, this "
         "one is RWKV version {}",
         config.version);
  if (config.quantized)
    fail(in.path(), "the checkpoint is already quantized");

  struct Entry {
    const Tensor *source;
    Kind kind;
    bool scales; // the `_scale` tensor of an Int8/Int4 source
  };
  std::vector<Entry> entries;
  std::vector<TensorSpec> specs;
  QuantizeReport report;
  for (const Tensor &t : in.tensors()) {
    Kind kind = Kind::Copy;
    if (t.name == "emb.weight")
      kind =
          embKind == Kind::Bf16 && t.dtype != DType::F32 ? Kind::Copy : embKind;
    else if (t.name == "head.weight")
      kind = headKind;
    else if (isQuantizableMatrix(t.name))
      kind = matrixKind;
    entries.push_back({&t, kind, false});
    switch (kind) {
    case Kind::Copy:
      specs.push_back({t.name, t.dtype, t.shape});
      break;
    case Kind::Bf16:
      specs.push_back({t.name, DType::BF16, t.shape});
      break;
    case Kind::Int8:
      specs.push_back({t.name, DType::I8, t.shape});
      if (!int8Group) {
        specs.push_back({t.name + "_scale", DType::F32, {t.shape[0]}});
      } else {
        if (t.shape[1] % int8Group != 0)
          throw CheckpointError(fmt::format(
              "int8 group size {} does not divide the {} inputs of '{}' "
              "(shape {}); choose a --group that divides every matrix's "
              "width",
              int8Group, t.shape[1], t.name, shapeStr(t.shape)));
        specs.push_back({t.name + "_scale",
                         DType::F32,
                         {t.shape[0], t.shape[1] / int8Group}});
        report.int8Group = int8Group;
      }
      entries.push_back({&t, kind, true});
      break;
    case Kind::Int4:
      if (t.shape[1] % group != 0)
        throw CheckpointError(fmt::format(
            "int4 group size {} does not divide the {} inputs of '{}' (shape "
            "{}); choose a --group that divides every matrix's width",
            group, t.shape[1], t.name, shapeStr(t.shape)));
      specs.push_back({t.name, DType::U8, {t.shape[0], t.shape[1] / 2}});
      specs.push_back(
          {t.name + "_scale", DType::BF16, {t.shape[0], t.shape[1] / group}});
      entries.push_back({&t, kind, true});
      report.group = group;
      break;
    }
  }

  std::vector<float> row;
  TensorProducer produce = [&](size_t i, std::vector<uint8_t> &bytes) {
    const Entry &e = entries[i];
    const Tensor &t = *e.source;
    if (e.kind == Kind::Bf16) {
      bytes.resize(size_t(t.numel()) * 2);
      auto *out = reinterpret_cast<uint16_t *>(bytes.data());
      for (int64_t k = 0; k < t.numel(); ++k)
        out[k] = f32ToBf16(t.getAsFloat(k));
      report.bytesOut += bytes.size();
      return;
    }
    if (e.kind == Kind::Copy) {
      OwnedTensor owned = toOwned(t);
      bytes = std::move(owned.bytes);
      report.bytesOut += bytes.size();
      return;
    }
    const int64_t rows = t.shape[0], cols = t.shape[1];
    const bool int4 = e.kind == Kind::Int4;
    // Inputs per scale: per-row int8 has one f32 scale per row, the others
    // one f32 (int8) or bf16 (int4) scale per group.
    const int64_t width = int4 ? group : int8Group ? int8Group : cols;
    const int64_t groups = cols / width;
    const bool bf16Scales = int4;
    if (e.scales)
      bytes.resize(size_t(rows * groups) * (bf16Scales ? 2 : 4));
    else
      bytes.resize(size_t(int4 ? rows * cols / 2 : rows * cols));
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
      for (int64_t g = 0; g < groups; ++g) {
        const float *w = row.data() + g * width;
        float scale = int4        ? bestInt4Scale(w, width)
                      : int8Group ? bestInt8GroupScale(w, width)
                                  : bestScale(w, cols, amax);
        if (e.scales) {
          if (bf16Scales) {
            uint16_t bits = f32ToBf16(scale);
            std::memcpy(bytes.data() + 2 * (r * groups + g), &bits, 2);
          } else {
            std::memcpy(bytes.data() + 4 * (r * groups + g), &scale, 4);
          }
          continue;
        }
        if (int4) {
          uint8_t *q = bytes.data() + r * cols / 2 + g * width / 2;
          for (int64_t c = 0; c < width; c += 2) {
            float lo = quantizeInt4(w[c], scale);
            float hi = quantizeInt4(w[c + 1], scale);
            q[c / 2] = uint8_t((int(lo) & 0xf) | ((int(hi) & 0xf) << 4));
            report.maxAbsError =
                std::max({report.maxAbsError, std::fabs(lo * scale - w[c]),
                          std::fabs(hi * scale - w[c + 1])});
          }
          continue;
        }
        auto *q =
            reinterpret_cast<int8_t *>(bytes.data()) + r * cols + g * width;
        for (int64_t c = 0; c < width; ++c) {
          q[c] = static_cast<int8_t>(quantizeInt8(w[c], scale));
          report.maxAbsError = std::max(report.maxAbsError,
                                        std::fabs(float(q[c]) * scale - w[c]));
        }
      }
    }
    if (!e.scales) {
      ++report.quantized;
      report.int4 += int4;
    }
    report.bytesOut += bytes.size();
  };
  writeSafetensors(outPath, specs, produce);
  for (const Tensor &t : in.tensors())
    report.bytesIn += size_t(t.numel()) * dtypeSize(t.dtype);
  return report;
}

} // namespace rwkv
