//===- Synthetic.cpp - deterministic random RWKV-7 weights ----------------===//
//
// Modelled on RWKV-LM train_temp/src/model.py (x070) initialisation, except
// that the matrices RWKV-LM zero-initialises (LoRA down-projections, output,
// ffn.value) get small nonzero values so every path of the model is live.
// Randomness is splitmix64 seeded by (seed, tensor name): reproducible across
// platforms and independent of the order tensors are generated in.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Internal.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace rwkv {
namespace {

struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in [-1, 1).
  double uniform() { return double(next() >> 11) * 0x1.0p-52 - 1.0; }
};

uint64_t fnv1a(const std::string &s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : s)
    h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

bool endsWith(const std::string &s, const char *suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

void encode(const std::vector<float> &v, DType dtype,
            std::vector<uint8_t> &bytes) {
  bytes.resize(v.size() * dtypeSize(dtype));
  uint8_t *out = bytes.data();
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(out + 4 * i, &v[i], 4);
    } else {
      uint16_t h = dtype == DType::BF16 ? f32ToBf16(v[i]) : f32ToF16(v[i]);
      out[2 * i] = uint8_t(h & 0xff);
      out[2 * i + 1] = uint8_t(h >> 8);
    }
  }
}

/// Initialises the keys only RWKV-4/5/6 have; false for any other key.
bool fillOlderVersionTensor(const std::string &name, std::vector<float> &v,
                            SplitMix64 &rng, double C, double L, int64_t layer,
                            int64_t N, int64_t in) {
  const double r01 = L > 1 ? double(layer) / (L - 1) : 0.0;
  const double r1a0 = 1.0 - double(layer) / L;
  const int64_t n = int64_t(v.size());
  auto perChannel = [&](auto f) {
    for (int64_t i = 0; i < n; ++i)
      v[size_t(i)] = float(f(i));
  };
  auto uniformStd = [&](double stddev) {
    for (float &x : v)
      x = float(stddev * std::sqrt(3.0) * rng.uniform());
  };
  auto ddd = [&](int64_t i) { return double(i) / C; };
  auto mix = [&](double x) {
    return std::clamp(x + 0.02 * rng.uniform(), 0.005, 0.995);
  };
  // Per-channel decay speeds spread over the channels (RWKV-LM).
  auto speed = [&](int64_t i, double lo, double span) {
    return lo + span * std::pow(double(i) / (C - 1), 0.7 + 1.3 * r01);
  };
  auto zig = [&](int64_t i) { return double((i + 1) % 3 - 1); };
  if (endsWith(name, "att.time_decay") && name.find("_w") == std::string::npos)
    // RWKV-4 keeps -exp(td) per channel, 5/6 exp(-exp(td)); the 5.0/5.1
    // previews one per head ([H]), spread like the heads' middle channels.
    perChannel([&](int64_t i) {
      if (n < int64_t(C))
        return speed((2 * i + 1) * int64_t(C) / (2 * n), -6.0, 5.0);
      return N > 0 ? speed(i, -6.0, 5.0) : speed(i, -5.0, 8.0);
    });
  else if (endsWith(name, "att.time_first"))
    perChannel([&](int64_t i) { return std::log(0.3) + zig(i) * 0.5; });
  else if (endsWith(name, "att.time_faaaa"))
    perChannel([&](int64_t i) {
      return r01 * (1.0 - double(i) / (C - 1)) + zig(i) * 0.1;
    });
  else if (endsWith(name, "time_mix_k") || endsWith(name, "time_mix_r") ||
           endsWith(name, "time_mix_g"))
    perChannel([&](int64_t i) {
      double p = endsWith(name, "att.time_mix_k") ||
                         name.find("ffn.") != std::string::npos
                     ? r1a0
                     : 0.5 * r1a0;
      return mix(std::pow(ddd(i), p));
    });
  else if (endsWith(name, "time_mix_v"))
    perChannel(
        [&](int64_t i) { return mix(std::pow(ddd(i), r1a0) + 0.3 * r01); });
  else if (name.find("time_maa_") != std::string::npos &&
           !endsWith(name, "_w1") && !endsWith(name, "_w2"))
    perChannel([&](int64_t i) {
      double p =
          (endsWith(name, "_r") || endsWith(name, "_g")) ? 0.5 * r1a0 : r1a0;
      double extra = endsWith(name, "att.time_maa_v") ? 0.3 * r01 : 0.0;
      return mix(1.0 - (std::pow(ddd(i), p) + extra));
    });
  else if (endsWith(name, "time_maa_w1") || endsWith(name, "time_decay_w1"))
    uniformStd(0.5 / std::sqrt(C));
  else if (endsWith(name, "time_maa_w2") || endsWith(name, "time_decay_w2"))
    uniformStd(0.1 / std::sqrt(double(in > 1 ? in : 32)));
  else if (endsWith(name, "att.gate.weight") ||
           endsWith(name, "ffn.receptance.weight"))
    uniformStd(0.5 / std::sqrt(double(in)));
  else
    return false;
  return true;
}

} // namespace

SyntheticOptions SyntheticOptions::preset(const std::string &name) {
  SyntheticOptions o;
  if (name == "tiny")
    return o; // the defaults: L2 C128 H2 V512, LoRA 32/32/32/64
  o.vocab_size = 65536;
  if (name == "0.1b") {
    o.n_layer = 12, o.n_embd = 768;
    o.lora_w = 64, o.lora_a = 64, o.lora_v = 32, o.lora_g = 128;
  } else if (name == "0.4b") {
    o.n_layer = 24, o.n_embd = 1024;
    o.lora_w = 64, o.lora_a = 64, o.lora_v = 32, o.lora_g = 128;
  } else if (name == "1.5b") {
    o.n_layer = 24, o.n_embd = 2048;
    o.lora_w = 96, o.lora_a = 96, o.lora_v = 64, o.lora_g = 256;
  } else {
    throw CheckpointError(fmt::format(
        "unknown preset '{}' (expected tiny, 0.1b, 0.4b or 1.5b)", name));
  }
  return o;
}

std::vector<TensorSpec> syntheticSpecs(const SyntheticOptions &o) {
  if (o.n_layer <= 0 || o.n_embd <= 0 || o.head_size <= 0 ||
      o.vocab_size <= 0 || o.dim_ffn < 0 || o.lora_w <= 0 || o.lora_a <= 0 ||
      o.lora_v <= 0 || o.lora_g <= 0)
    throw CheckpointError("synthetic model: every dimension must be positive");
  if (o.n_embd % o.head_size)
    throw CheckpointError(fmt::format(
        "synthetic model: n_embd {} is not a multiple of head_size {}",
        o.n_embd, o.head_size));
  if (o.dtype != DType::F32 && o.dtype != DType::F16 && o.dtype != DType::BF16)
    throw CheckpointError(fmt::format("synthetic model: unsupported dtype {}",
                                      dtypeName(o.dtype)));
  if (o.version < 4 || o.version > 7)
    throw CheckpointError(fmt::format(
        "synthetic model: unknown RWKV version {} (expected 4, 5, 6 or 7)",
        o.version));
  ModelConfig m;
  m.version = o.version;
  if (o.version == 5 && (o.v5Minor < 0 || o.v5Minor > 2))
    throw CheckpointError(fmt::format(
        "synthetic model: unknown RWKV-5 variant 5.{} (expected 5.0, 5.1 or "
        "5.2)",
        o.v5Minor));
  m.versionString = o.version == 7   ? "x070"
                    : o.version == 6 ? "x060"
                    : o.version == 5 ? fmt::format("5.{}", o.v5Minor)
                                     : "4";
  m.logBonus = o.version == 5 && o.v5Minor == 0;
  m.n_layer = o.n_layer;
  m.n_embd = o.n_embd;
  m.head_size = o.head_size;
  m.n_head = o.n_embd / o.head_size;
  m.vocab_size = o.vocab_size;
  // RWKV-LM's defaults: 4C for RWKV-4 and 7, 3.5C (rounded to 32) for 5/6.
  m.dim_ffn = o.dim_ffn ? o.dim_ffn
              : (o.version == 5 || o.version == 6)
                  ? (o.n_embd * 7 / 2) / 32 * 32
                  : 4 * o.n_embd;
  m.dtype = o.dtype;
  if (o.version == 7) {
    m.lora_w = o.lora_w, m.lora_a = o.lora_a, m.lora_v = o.lora_v,
    m.lora_g = o.lora_g;
    m.layer0HasV = o.layer0HasV;
  } else if (o.version == 6) {
    // RWKV-LM x060's ranks: 64 / 32 below C = 4096, 128 / 64 from there.
    m.lora_w = o.n_embd < 4096 ? 64 : 128;
    m.lora_mix = o.n_embd < 4096 ? o.lora_mix : 2 * o.lora_mix;
    if (m.lora_mix <= 0)
      throw CheckpointError("synthetic model: every dimension must be "
                            "positive");
  }
  if (o.version == 4)
    m.n_head = m.head_size = 0;
  return tensorSpecs(m);
}

void fillSyntheticTensor(const SyntheticOptions &o, const TensorSpec &spec,
                         std::vector<uint8_t> &bytes) {
  const std::string &name = spec.name;
  const int64_t n = spec.numel();
  const double C = double(o.n_embd), L = double(o.n_layer);
  const int64_t N = o.head_size;
  SplitMix64 rng{o.seed ^ fnv1a(name)};
  std::vector<float> v(size_t(n), 0.0f);

  int64_t layer = 0;
  if (name.compare(0, 7, "blocks.") == 0)
    layer = std::atoll(name.c_str() + 7);
  const double r01 = L > 1 ? double(layer) / (L - 1) : 0.0; // 0 -> 1
  const double r1a0 = 1.0 - double(layer) / L;              // 1 -> ~0
  // Per-channel helpers of the RWKV-LM init (index i along n_embd).
  auto ddd = [&](int64_t i) { return double(i) / C; };
  auto linear = [&](int64_t i) { return double(i) / (C - 1) - 0.5; };
  auto zigzag = [&](int64_t i) {
    double z = (double(i % N) - (N - 1) / 2.0) / ((N - 1) / 2.0);
    return z * std::fabs(z);
  };
  auto perChannel = [&](auto f) {
    for (int64_t i = 0; i < n; ++i)
      v[size_t(i)] = float(f(i));
  };
  auto uniform = [&](double scale) {
    for (float &x : v)
      x = float(scale * rng.uniform());
  };
  // Linear [out, in] / LoRA [in, rank] matrices: uniform with the given
  // standard deviation (uniform(-a, a) has std a / sqrt(3)).
  auto uniformStd = [&](double stddev) { uniform(stddev * std::sqrt(3.0)); };
  // Token-shift mixes: RWKV-LM's curve plus small noise, kept strictly
  // inside (0, 1) even after rounding to bf16.
  auto mixNoise = [&](double x) {
    return std::clamp(x + 0.02 * rng.uniform(), 0.005, 0.995);
  };
  const int64_t in = spec.shape.size() == 2 ? spec.shape[1] : 1;

  // RWKV-4/5/6 (RWKV-LM v4neo / v5 / v6 initialisation, with the
  // near-zero LoRAs given enough weight that every path is live).
  if (fillOlderVersionTensor(name, v, rng, C, L, layer,
                             spec.shape.size() == 1 ? 0 : N, in)) {
    encode(v, o.dtype, bytes);
    return;
  }

  struct MixExp {
    const char *suffix;
    double power;
  };
  static const MixExp mixes[] = {{"att.x_r", 0.2}, {"att.x_w", 0.9},
                                 {"att.x_k", 0.7}, {"att.x_v", 0.7},
                                 {"att.x_a", 0.9}, {"att.x_g", 0.2}};
  for (const MixExp &mx : mixes)
    if (endsWith(name, mx.suffix)) {
      perChannel([&](int64_t i) {
        return mixNoise(1.0 - std::pow(ddd(i), mx.power * r1a0));
      });
      encode(v, o.dtype, bytes);
      return;
    }

  if (endsWith(name, "ln_x.weight")) {
    double w = std::pow((1.0 + double(layer)) / L, 0.7);
    for (float &x : v)
      x = float(w + 0.1 * rng.uniform());
  } else if (endsWith(name, ".weight") &&
             (name.find(".ln") != std::string::npos ||
              name.compare(0, 7, "ln_out.") == 0)) {
    // LayerNorm gains near 1 and biases near 0, perturbed (as the golden
    // files are) so that a swapped weight/bias or a skipped LN shows up.
    for (float &x : v)
      x = float(1.0 + 0.2 * rng.uniform());
  } else if (endsWith(name, ".bias")) {
    uniform(0.1);
  } else if (endsWith(name, "att.w0")) {
    // Decay d = exp(-e^-0.5 * sigmoid(w0)) spreads from ~0.64 to ~0.9999.
    perChannel([&](int64_t i) {
      double speed = -7.0 + 5.0 * std::pow(double(i) / (C - 1),
                                           0.85 + 1.0 * std::sqrt(r01));
      return speed + 0.5 + zigzag(i) * 2.5;
    });
  } else if (endsWith(name, "att.a0")) {
    perChannel(
        [&](int64_t i) { return -0.19 + zigzag(i) * 0.3 + linear(i) * 0.4; });
  } else if (endsWith(name, "att.v0")) {
    perChannel([&](int64_t i) { return 0.73 - linear(i) * 0.4; });
  } else if (endsWith(name, "att.k_k")) {
    perChannel([&](int64_t i) { return 0.85 - linear(i) * 0.1; });
  } else if (endsWith(name, "att.k_a")) {
    perChannel([&](int64_t i) { return 1.02 - linear(i) * 0.04; });
  } else if (endsWith(name, "att.r_k")) {
    uniform(0.04);
  } else if (endsWith(name, "att.w1") || endsWith(name, "att.a1") ||
             endsWith(name, "att.v1") || endsWith(name, "att.g1")) {
    uniformStd(0.5 / std::sqrt(C)); // x @ W1 has std ~0.5: tanh/sigmoid live
  } else if (endsWith(name, "att.w2") || endsWith(name, "att.a2") ||
             endsWith(name, "att.v2") || endsWith(name, "att.g2")) {
    uniformStd(0.1 / std::sqrt(C)); // RWKV-LM: orthogonal, gain 0.1
  } else if (endsWith(name, "ffn.x_k")) {
    perChannel([&](int64_t i) {
      return mixNoise(1.0 - std::pow(ddd(i), std::pow(r1a0, 4.0)));
    });
  } else if (endsWith(name, "att.key.weight")) {
    uniformStd(0.3 / std::sqrt(double(in)));
  } else if (endsWith(name, "att.receptance.weight") ||
             endsWith(name, "att.value.weight") ||
             endsWith(name, "att.output.weight") ||
             endsWith(name, "ffn.value.weight")) {
    uniformStd(0.5 / std::sqrt(double(in)));
  } else if (endsWith(name, "ffn.key.weight")) {
    uniformStd(1.0 / std::sqrt(double(in)));
  } else if (name == "emb.weight") {
    uniform(1e-4); // as RWKV-LM; ln0 renormalises it
  } else if (name == "head.weight") {
    uniformStd(1.0 / std::sqrt(C)); // logits of std ~1 after ln_out
  } else {
    throw CheckpointError(
        fmt::format("synthetic model: no initialiser for '{}'", name));
  }
  encode(v, o.dtype, bytes);
}

std::vector<OwnedTensor> makeSyntheticModel(const SyntheticOptions &o) {
  std::vector<OwnedTensor> out;
  for (const TensorSpec &s : syntheticSpecs(o)) {
    OwnedTensor t{s.name, s.dtype, s.shape, {}};
    fillSyntheticTensor(o, s, t.bytes);
    out.push_back(std::move(t));
  }
  return out;
}

} // namespace rwkv
