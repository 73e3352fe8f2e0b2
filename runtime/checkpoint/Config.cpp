//===- Config.cpp - RWKV architecture detection from a state_dict ---------===//
//
// Detects the RWKV generation from key names (spec §3.2, §4.5) and derives the
// hyper-parameters from shapes only. For RWKV-7 every expected tensor is then
// checked by name and shape, so later stages can index without re-checking.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Internal.h"

#include <nlohmann/json.hpp>

#include <cstdlib>

namespace rwkv {
namespace {

const Tensor &need(const Checkpoint &c, const std::string &name) {
  if (const Tensor *t = c.find(name))
    return *t;
  fail(c.path(), "missing key '{}'", name);
}

int64_t dim(const Checkpoint &c, const std::string &name, size_t rank,
            size_t axis) {
  const Tensor &t = need(c, name);
  if (t.shape.size() != rank)
    fail(c.path(), "key '{}' has shape {}, expected a rank-{} tensor", name,
         shapeStr(t.shape), rank);
  return t.shape[axis];
}

bool contains(const std::string &s, const char *sub) {
  return s.find(sub) != std::string::npos;
}

} // namespace

std::vector<TensorSpec> rwkv7TensorSpecs(const ModelConfig &m) {
  const int64_t C = m.n_embd, F = m.dim_ffn, V = m.vocab_size;
  std::vector<TensorSpec> s;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    s.push_back({std::move(name), m.dtype, std::move(shape)});
  };
  add("emb.weight", {V, C});
  add("blocks.0.ln0.weight", {C});
  add("blocks.0.ln0.bias", {C});
  for (int64_t l = 0; l < m.n_layer; ++l) {
    std::string b = fmt::format("blocks.{}.", l);
    std::string a = b + "att.";
    for (const char *n : {"ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"})
      add(b + n, {C});
    for (const char *n : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "w0"})
      add(a + n, {1, 1, C});
    add(a + "r_k", {m.n_head, m.head_size});
    add(a + "w1", {C, m.lora_w});
    add(a + "w2", {m.lora_w, C});
    add(a + "a1", {C, m.lora_a});
    add(a + "a2", {m.lora_a, C});
    add(a + "a0", {1, 1, C});
    add(a + "g1", {C, m.lora_g});
    add(a + "g2", {m.lora_g, C});
    if (l > 0 || m.layer0HasV) {
      add(a + "v2", {m.lora_v, C});
      add(a + "v1", {C, m.lora_v});
      add(a + "v0", {1, 1, C});
    }
    add(a + "k_k", {1, 1, C});
    add(a + "k_a", {1, 1, C});
    for (const char *n : {"receptance", "key", "value", "output"})
      add(a + n + ".weight", {C, C});
    add(a + "ln_x.weight", {C});
    add(a + "ln_x.bias", {C});
    add(b + "ffn.x_k", {1, 1, C});
    add(b + "ffn.key.weight", {F, C});
    add(b + "ffn.value.weight", {C, F});
  }
  add("ln_out.weight", {C});
  add("ln_out.bias", {C});
  add("head.weight", {V, C});
  return s;
}

namespace {

/// RWKV-4/5/6 files list, per block, ln1, ln2 (block 0: then ln0), the
/// time-mix keys, then the channel-mix keys (golden manifests' order).
std::vector<TensorSpec> olderTensorSpecs(const ModelConfig &m) {
  const int64_t C = m.n_embd, F = m.dim_ffn, V = m.vocab_size;
  const int64_t H = m.n_head, N = m.head_size;
  std::vector<TensorSpec> s;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    s.push_back({std::move(name), m.dtype, std::move(shape)});
  };
  add("emb.weight", {V, C});
  for (int64_t l = 0; l < m.n_layer; ++l) {
    std::string b = fmt::format("blocks.{}.", l);
    std::string a = b + "att.";
    for (const char *n : {"ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"})
      add(b + n, {C});
    if (l == 0) {
      add(b + "ln0.weight", {C});
      add(b + "ln0.bias", {C});
    }
    if (m.version == 4) {
      add(a + "time_decay", {C});
      add(a + "time_first", {C});
      for (const char *n : {"time_mix_k", "time_mix_v", "time_mix_r"})
        add(a + n, {1, 1, C});
      for (const char *n : {"key", "value", "receptance", "output"})
        add(a + n + ".weight", {C, C});
    } else if (m.version == 5) {
      // 5.2 has a decay and bonus per channel, the 5.0/5.1 previews one per
      // head; 5.0 has no gate.
      bool v52 = m.versionString == "5.2", gate = m.versionString != "5.0";
      for (const char *n : {"time_mix_k", "time_mix_v", "time_mix_r"})
        add(a + n, {1, 1, C});
      if (gate)
        add(a + "time_mix_g", {1, 1, C});
      std::vector<int64_t> perHead =
          v52 ? std::vector<int64_t>{H, N} : std::vector<int64_t>{H};
      add(a + "time_decay", perHead);
      add(a + (m.logBonus ? "time_first" : "time_faaaa"), perHead);
      for (const char *n : {"receptance", "key", "value", "output"})
        add(a + n + ".weight", {C, C});
      if (gate)
        add(a + "gate.weight", {C, C});
    } else {
      for (const char *n : {"time_maa_x", "time_maa_w", "time_maa_k",
                            "time_maa_v", "time_maa_r", "time_maa_g"})
        add(a + n, {1, 1, C});
      add(a + "time_maa_w1", {C, 5 * m.lora_mix});
      add(a + "time_maa_w2", {5, m.lora_mix, C});
      add(a + "time_decay", {1, 1, C});
      add(a + "time_decay_w1", {C, m.lora_w});
      add(a + "time_decay_w2", {m.lora_w, C});
      add(a + "time_faaaa", {H, N});
      for (const char *n : {"receptance", "key", "value", "output", "gate"})
        add(a + n + ".weight", {C, C});
    }
    if (m.version >= 5) {
      add(a + "ln_x.weight", {C});
      add(a + "ln_x.bias", {C});
    }
    const char *mix = m.version == 6 ? "time_maa_" : "time_mix_";
    add(b + "ffn." + mix + "k", {1, 1, C});
    add(b + "ffn." + mix + "r", {1, 1, C});
    add(b + "ffn.key.weight", {F, C});
    add(b + "ffn.receptance.weight", {C, C});
    add(b + "ffn.value.weight", {C, F});
  }
  add("ln_out.weight", {C});
  add("ln_out.bias", {C});
  add("head.weight", {V, C});
  return s;
}

} // namespace

std::vector<TensorSpec> tensorSpecs(const ModelConfig &m) {
  if (m.version == 7)
    return rwkv7TensorSpecs(m);
  if (m.version == 6 || m.version == 4 ||
      (m.version == 5 &&
       (m.versionString == "5.0" || m.versionString == "5.1" ||
        m.versionString == "5.2")))
    return olderTensorSpecs(m);
  throw CheckpointError(fmt::format(
      "RWKV-{} ('{}') checkpoints are not supported (supported: RWKV-4, "
      "5.0, 5.1, 5.2, 6 (x060) and 7 (x070))",
      m.version, m.versionString));
}

ModelConfig detectConfig(const Checkpoint &c) {
  const std::string &file = c.path();
  ModelConfig m;
  bool any = false, v6 = false, v5 = false, gate = false, v4 = false;
  int64_t maxBlock = -1;
  for (const Tensor &t : c.tensors()) {
    const std::string &k = t.name;
    if (k.compare(0, 7, "blocks.") == 0) {
      char *end = nullptr;
      long idx = std::strtol(k.c_str() + 7, &end, 10);
      if (end != k.c_str() + 7 && *end == '.' && idx >= 0 && idx < (1 << 20))
        maxBlock = std::max<int64_t>(maxBlock, idx);
    }
    v6 |= contains(k, "time_maa");
    v5 |= contains(k, "ln_x");
    gate |= contains(k, "gate.weight");
    v4 |= contains(k, "time_mix_k") || contains(k, "time_decay");
    any = true;
  }
  if (!any)
    fail(file, "checkpoint holds no tensors");
  bool v7 = c.find("blocks.0.att.r_k") || c.find("blocks.0.att.x_r") ||
            c.find("blocks.0.att.k_k");
  if (!v7 && !v6 && !v5 && !v4) {
    // Say what the file holds, so a foreign layout is recognisable.
    std::string found;
    size_t shown = 0;
    for (const Tensor &t : c.tensors()) {
      if (shown == 6) {
        found += fmt::format(", ... ({} tensors)", c.tensors().size());
        break;
      }
      found += fmt::format("{}'{}' {}", shown ? ", " : "", t.name,
                           shapeStr(t.shape));
      ++shown;
    }
    fail(file,
         "not an RWKV checkpoint: none of blocks.0.att.r_k/x_r/k_k (v7), "
         "time_maa (v6), ln_x (v5), time_mix_k (v4) found; it holds {}",
         found);
  }
  m.n_layer = maxBlock + 1;
  if (m.n_layer <= 0)
    fail(file, "no blocks.<n>.* keys found");
  m.vocab_size = dim(c, "emb.weight", 2, 0);
  m.n_embd = dim(c, "emb.weight", 2, 1);
  // A packed int4 table (rwkv-quantize --embedding int4) holds two
  // channels per byte.
  if (c.find("emb.weight")->dtype == DType::U8)
    m.n_embd *= 2;
  m.dim_ffn = dim(c, "blocks.0.ffn.key.weight", 2, 0);
  // int8 matrices (rwkv-quantize) come with f32 per-row scales
  // `<name>_scale` [out] or, grouped (rwkv-quantize --group, GGUF Q8_0),
  // bf16 or f32 scales per row and group of G inputs [out, in / G]; packed
  // int4 ones (u8 [out, in / 2]) with bf16 scales [out, in / G]. One G per
  // file for each; the model's dtype is that of its float tensors.
  m.dtype = DType::F32;
  bool haveFloat = false;
  std::string firstInt4, firstInt8;
  for (const Tensor &t : c.tensors()) {
    if (t.dtype == DType::U8) {
      if (!isQuantizableMatrix(t.name))
        fail(file,
             "tensor '{}' is int4 (u8), but only the embedding, head and "
             "linear-layer matrices may be quantized",
             t.name);
      if (t.shape.size() != 2 || t.shape[1] <= 0)
        fail(file,
             "int4 tensor '{}' has shape {}; only matrices can be int4 (u8 "
             "[out, in / 2], two weights per byte)",
             t.name, shapeStr(t.shape));
      const Tensor *scale = c.find(t.name + "_scale");
      const int64_t in = 2 * t.shape[1];
      if (!scale || scale->dtype != DType::BF16 || scale->shape.size() != 2 ||
          scale->shape[0] != t.shape[0] || scale->shape[1] <= 0 ||
          in % scale->shape[1] != 0 || (in / scale->shape[1]) % 2 != 0)
        fail(file,
             "int4 tensor '{}' needs per-group scales '{}_scale' (bf16 [{}, "
             "{} / G], G even){}",
             t.name, t.name, t.shape[0], in,
             scale ? fmt::format(", found {} {}", dtypeName(scale->dtype),
                                 shapeStr(scale->shape))
                   : std::string());
      const int64_t group = in / scale->shape[1];
      if (m.int4Group && group != m.int4Group)
        fail(file,
             "int4 tensor '{}' has groups of {} inputs, but '{}' has groups "
             "of {} (one group size per file)",
             t.name, group, firstInt4, m.int4Group);
      if (!m.int4Group)
        firstInt4 = t.name;
      m.int4Group = group;
      m.quantized = true;
      continue;
    }
    if (t.dtype == DType::I8) {
      const Tensor *scale = c.find(t.name + "_scale");
      if (!isQuantizableMatrix(t.name))
        fail(file,
             "tensor '{}' is int8, but only the embedding, head and "
             "linear-layer matrices may be quantized",
             t.name);
      if (t.shape.size() != 2)
        fail(file, "int8 tensor '{}' has shape {}; only matrices can be int8",
             t.name, shapeStr(t.shape));
      if (!scale)
        fail(file,
             "int8 tensor '{}' needs per-row scales '{}_scale' (f32 [{}]) or "
             "per-group ones (bf16 or f32 [{}, {} / G])",
             t.name, t.name, t.shape[0], t.shape[0], t.shape[1]);
      const int64_t in = t.shape[1];
      const std::string found = fmt::format(
          ", found {} {}", dtypeName(scale->dtype), shapeStr(scale->shape));
      // A matrix of scales: one per row and group of G inputs.
      int64_t group = 0;
      if (scale->shape.size() == 2) {
        if ((scale->dtype != DType::BF16 && scale->dtype != DType::F32) ||
            scale->shape[0] != t.shape[0] || scale->shape[1] <= 0 ||
            in % scale->shape[1] != 0)
          fail(file,
               "int8 tensor '{}' {} needs per-group scales '{}_scale' (bf16 "
               "or f32 [{}, {} / G], G dividing {}){}",
               t.name, shapeStr(t.shape), t.name, t.shape[0], in, in, found);
        group = in / scale->shape[1];
      } else if (scale->dtype != DType::F32 ||
                 scale->shape != std::vector<int64_t>{t.shape[0]}) {
        fail(file,
             "int8 tensor '{}' needs per-row scales '{}_scale' (f32 [{}]){}",
             t.name, t.name, t.shape[0], found);
      }
      // One layout per file, like int4: the config names one group size.
      auto layout = [](int64_t g) {
        return g ? fmt::format("groups of {} inputs", g)
                 : std::string("per-row scales");
      };
      if (m.hasInt8 && group != m.int8Group)
        fail(file, "int8 tensor '{}' has {}, but '{}' has {} ({})", t.name,
             layout(group), firstInt8, layout(m.int8Group),
             group && m.int8Group ? "one group size per file"
                                  : "per-row and grouped int8 cannot be "
                                    "mixed in one file");
      if (!m.hasInt8)
        firstInt8 = t.name;
      m.int8Group = group;
      m.quantized = m.hasInt8 = true;
      continue;
    }
    if (t.dtype != DType::F32 && t.dtype != DType::F16 &&
        t.dtype != DType::BF16)
      fail(file,
           "tensor '{}' has unsupported dtype {} (expected f32, f16, bf16, "
           "int8 with per-row or per-group scales or int4 (u8) with "
           "per-group scales)",
           t.name, dtypeName(t.dtype));
    bool isScale = t.name.size() > 6 &&
                   t.name.compare(t.name.size() - 6, 6, "_scale") == 0;
    if (!haveFloat && !isScale) {
      m.dtype = t.dtype;
      haveFloat = true;
    }
  }
  if (const Tensor *emb = c.find("emb.weight");
      emb && emb->dtype != DType::I8 && emb->dtype != DType::U8)
    m.dtype = emb->dtype;

  if (v7) {
    m.version = 7;
    m.versionString = "x070";
    m.n_head = dim(c, "blocks.0.att.r_k", 2, 0);
    m.head_size = dim(c, "blocks.0.att.r_k", 2, 1);
    m.lora_w = dim(c, "blocks.0.att.w1", 2, 1);
    m.lora_a = dim(c, "blocks.0.att.a1", 2, 1);
    m.lora_g = dim(c, "blocks.0.att.g1", 2, 1);
    m.layer0HasV = c.find("blocks.0.att.v1") != nullptr;
    if (m.layer0HasV)
      m.lora_v = dim(c, "blocks.0.att.v1", 2, 1);
    else if (m.n_layer > 1)
      m.lora_v = dim(c, "blocks.1.att.v1", 2, 1);
    if (m.n_head * m.head_size != m.n_embd)
      fail(file, "blocks.0.att.r_k shape [{}, {}] does not match n_embd {}",
           m.n_head, m.head_size, m.n_embd);
    for (const TensorSpec &s : rwkv7TensorSpecs(m)) {
      const Tensor &t = need(c, s.name);
      // Packed int4 (checked above to be a matrix): two columns per byte.
      std::vector<int64_t> logical = t.shape;
      if (t.dtype == DType::U8)
        logical[1] *= 2;
      if (logical != s.shape)
        fail(file, "key '{}' has shape {}{}, expected {}", s.name,
             shapeStr(t.shape),
             t.dtype == DType::U8 ? " (packed int4, two columns per byte)" : "",
             shapeStr(s.shape));
    }
    if (!m.layer0HasV &&
        (c.find("blocks.0.att.v0") || c.find("blocks.0.att.v2")))
      fail(file, "layer 0 has only part of v0/v1/v2 (missing key "
                 "'blocks.0.att.v1')");
    return m;
  }
  // Every key of a supported older version must be there with its shape.
  auto checkSpecs = [&] {
    for (const TensorSpec &s : tensorSpecs(m)) {
      const Tensor &t = need(c, s.name);
      if (t.shape != s.shape)
        fail(file, "key '{}' has shape {}, expected {}", s.name,
             shapeStr(t.shape), shapeStr(s.shape));
    }
  };
  if (v6) {
    m.version = 6;
    m.versionString = "x060";
    m.n_head = dim(c, "blocks.0.att.time_faaaa", 2, 0);
    m.head_size = dim(c, "blocks.0.att.time_faaaa", 2, 1);
    m.lora_w = dim(c, "blocks.0.att.time_decay_w1", 2, 1);
    int64_t mix5 = dim(c, "blocks.0.att.time_maa_w1", 2, 1);
    if (mix5 % 5 != 0)
      fail(file,
           "key 'blocks.0.att.time_maa_w1' has {} columns, expected "
           "5 x the token-shift LoRA rank",
           mix5);
    m.lora_mix = mix5 / 5;
    if (m.n_head * m.head_size != m.n_embd)
      fail(file,
           "blocks.0.att.time_faaaa shape [{}, {}] does not match "
           "n_embd {}",
           m.n_head, m.head_size, m.n_embd);
    checkSpecs();
    return m;
  }
  if (v5) {
    m.version = 5;
    // time_decay is [H] up to 5.1 and [H, N] from 5.2.
    const Tensor &td = need(c, "blocks.0.att.time_decay");
    if (td.shape.size() == 2 && td.shape[1] > 1) {
      m.versionString = "5.2";
      m.n_head = td.shape[0];
      m.head_size = td.shape[1];
      if (m.n_head * m.head_size != m.n_embd)
        fail(file,
             "blocks.0.att.time_decay shape [{}, {}] does not match "
             "n_embd {}",
             m.n_head, m.head_size, m.n_embd);
      checkSpecs();
    } else {
      m.versionString = gate ? "5.1" : "5.0";
      if (td.shape.size() != 1 || td.shape[0] <= 0 ||
          m.n_embd % td.shape[0] != 0)
        fail(file,
             "key 'blocks.0.att.time_decay' has shape {}, expected [H] "
             "(RWKV-5.0/5.1: one decay per head, H dividing n_embd {}) or "
             "[H, N] (5.2)",
             shapeStr(td.shape), m.n_embd);
      m.n_head = td.shape[0];
      m.head_size = m.n_embd / m.n_head;
      // The previews store the bonus as log(u) (time_first) or as u
      // (time_faaaa), spec §4.3.
      m.logBonus = c.find("blocks.0.att.time_faaaa") == nullptr;
      checkSpecs();
    }
    return m;
  }
  m.version = 4;
  m.versionString = "4";
  checkSpecs();
  return m;
}

std::string ModelConfig::toJson() const {
  nlohmann::ordered_json j;
  j["version"] = version;
  j["version_string"] = versionString;
  j["n_layer"] = n_layer;
  j["n_embd"] = n_embd;
  j["n_head"] = n_head;
  j["head_size"] = head_size;
  j["dim_ffn"] = dim_ffn;
  j["vocab_size"] = vocab_size;
  j["lora"] = {{"w", lora_w}, {"a", lora_a}, {"v", lora_v}, {"g", lora_g}};
  if (lora_mix)
    j["lora"]["mix"] = lora_mix;
  j["dtype"] = dtypeName(dtype);
  if (quantized)
    j["quantized"] = int4Group ? (hasInt8 ? "int4+int8" : "int4") : "int8";
  if (int4Group)
    j["group_size"] = int4Group;
  if (int8Group)
    j["int8_group_size"] = int8Group;
  j["layer0_has_v"] = layer0HasV;
  return j.dump(2);
}

} // namespace rwkv
