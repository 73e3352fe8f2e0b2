//===- QuantizeInt8Test.cpp - grouped int8: rwkv-quantize and detection ---===//
//
// Grouped int8 (docs/checkpoints.md): i8 [out, in] with bf16 or f32 scales
// [out, in / G]. rwkv-quantize --type int8 --group G writes it (f32
// scales); detectConfig accepts it and names the tensor and
// shapes of every malformed scale. Decoded here independently of the
// compiler, against the float weights.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Checkpoint.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

using namespace rwkv;

namespace {

class TempDir {
public:
  TempDir() {
    char tmpl[] = "/tmp/rwkv-int8-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string path(const std::string &name) const { return dir_ + "/" + name; }

private:
  std::string dir_;
};

/// The tiny synthetic f32 model (n_embd 128, ffn 512, vocab 512) with edge
/// rows in one matrix: all zeros, a lone outlier, a negative maximum.
std::vector<OwnedTensor> makeModel() {
  SyntheticOptions opts;
  opts.dtype = DType::F32;
  std::vector<OwnedTensor> model = makeSyntheticModel(opts);
  for (OwnedTensor &t : model) {
    if (t.name != "blocks.0.att.key.weight")
      continue;
    auto *w = reinterpret_cast<float *>(t.bytes.data());
    int64_t cols = t.shape[1];
    std::fill(w, w + cols, 0.0f); // row 0
    w[cols + 5] = 3.0f;           // row 1: an outlier in group 0
    w[2 * cols + 40] = -2.5f;     // row 2: a negative maximum
  }
  return model;
}

QuantizeOptions int8(int64_t group) {
  QuantizeOptions o;
  o.type = "int8";
  o.group = group;
  return o;
}

struct Quantized {
  TempDir tmp;
  std::unique_ptr<Checkpoint> in, out;
  QuantizeReport report;
  Quantized(const QuantizeOptions &options) {
    writeSafetensors(tmp.path("f.safetensors"), makeModel());
    in = Checkpoint::open(tmp.path("f.safetensors"));
    report = quantizeCheckpoint(*in, tmp.path("q.safetensors"), options);
    out = Checkpoint::open(tmp.path("q.safetensors"));
  }
};

/// Checks one grouped int8 matrix against its float original, group by
/// group: the codes are exactly clamp(round(w / s), -127, 127) for the
/// stored f32 scale s; every weight is within s / 2 unless the search chose
/// to clip it (|w| beyond 127.5 steps); s lies between 0.8 and 1 times
/// amax / 127; and the squared error is never above that of the plain
/// amax / 127 scale. Returns the largest error seen.
float checkMatrix(const Tensor &w, const Tensor &q, const Tensor &sc,
                  int64_t group) {
  const int64_t rows = w.shape[0], cols = w.shape[1], groups = cols / group;
  EXPECT_EQ(q.dtype, DType::I8) << w.name;
  EXPECT_EQ(q.shape, w.shape) << w.name;
  EXPECT_EQ(sc.dtype, DType::F32) << w.name;
  EXPECT_EQ(sc.shape, (std::vector<int64_t>{rows, groups})) << w.name;
  const auto *codes = static_cast<const int8_t *>(q.data);
  const float eps = 1e-6f; // f32 rounding of the scale
  float maxErr = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      float s = sc.getAsFloat(r * groups + g), amax = 0;
      for (int64_t c = g * group; c < (g + 1) * group; ++c)
        amax = std::max(amax, std::fabs(w.getAsFloat(r * cols + c)));
      std::string where =
          w.name + " row " + std::to_string(r) + " group " + std::to_string(g);
      EXPECT_LE(s, amax / 127 * (1 + eps)) << where;
      EXPECT_GE(s, 0.8f * amax / 127 * (1 - eps)) << where;
      float naive = amax / 127.0f;
      double sse = 0, naiveSse = 0;
      for (int64_t c = g * group; c < (g + 1) * group; ++c) {
        float x = w.getAsFloat(r * cols + c);
        int code = codes[r * cols + c];
        if (!(s > 0)) {
          EXPECT_EQ(code, 0) << where;
          naiveSse += double(x) * x;
          continue;
        }
        float expect = std::clamp(std::nearbyint(x / s), -127.0f, 127.0f);
        EXPECT_EQ(float(code), expect) << where << " col " << c;
        float err = std::fabs(float(code) * s - x);
        maxErr = std::max(maxErr, err);
        sse += double(err) * err;
        float nq = std::clamp(std::nearbyint(x / naive), -127.0f, 127.0f);
        naiveSse += std::pow(double(nq) * naive - x, 2);
        if (std::fabs(x) / s <= 127.5f)
          EXPECT_LE(err, 0.5f * s * (1 + 1e-5f)) << where << " col " << c;
        else // clipped to 127 steps of >= 0.8 amax / 127
          EXPECT_LE(err, 0.2f * amax * (1 + eps) + amax * eps)
              << where << " col " << c;
      }
      EXPECT_LE(sse, naiveSse * (1 + 1e-4)) << where;
    }
  }
  return maxErr;
}

/// Rewrites the checkpoint `in` to `path` after `edit` changed its tensors.
void rewrite(const Checkpoint &in, const std::string &path,
             const std::function<void(std::vector<OwnedTensor> &)> &edit) {
  std::vector<OwnedTensor> tensors;
  for (const Tensor &t : in.tensors())
    tensors.push_back(toOwned(t));
  edit(tensors);
  writeSafetensors(path, tensors);
}

OwnedTensor &named(std::vector<OwnedTensor> &ts, const std::string &name) {
  for (OwnedTensor &t : ts)
    if (t.name == name)
      return t;
  ADD_FAILURE() << "no tensor " << name;
  return ts[0];
}

void expectError(const std::string &path,
                 const std::vector<std::string> &parts) {
  try {
    detectConfig(*Checkpoint::open(path));
    ADD_FAILURE() << "accepted; expected an error with '" << parts[0] << "'";
  } catch (const CheckpointError &e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
    for (const std::string &p : parts)
      EXPECT_NE(msg.find(p), std::string::npos)
          << "'" << p << "' not in: " << msg;
  }
}

} // namespace

TEST(QuantizeInt8, GroupedRoundTrip) {
  QuantizeOptions o = int8(32);
  o.embedding = "int8";
  Quantized q(o);
  // 2 layers x 6 matrices, head and embedding.
  EXPECT_EQ(q.report.quantized, 14);
  EXPECT_EQ(q.report.int4, 0);
  EXPECT_EQ(q.report.group, 0);
  EXPECT_EQ(q.report.int8Group, 32);
  float maxErr = 0;
  for (const Tensor &t : q.in->tensors()) {
    const Tensor &o = q.out->get(t.name);
    if (!isQuantizableMatrix(t.name)) {
      EXPECT_EQ(std::memcmp(o.data, t.data, t.nbytes), 0) << t.name;
      continue;
    }
    maxErr =
        std::max(maxErr, checkMatrix(t, o, q.out->get(t.name + "_scale"), 32));
  }
  EXPECT_FLOAT_EQ(q.report.maxAbsError, maxErr);

  // The edge rows: zeros stay zeros, the outlier and the negative maximum
  // within half a step.
  const Tensor &k = q.out->get("blocks.0.att.key.weight");
  const Tensor &ks = q.out->get("blocks.0.att.key.weight_scale");
  const auto *kc = static_cast<const int8_t *>(k.data);
  for (int64_t c = 0; c < 128; ++c)
    EXPECT_EQ(kc[c], 0);
  EXPECT_EQ(ks.getAsFloat(0), 0.0f);
  EXPECT_NEAR(kc[128 + 5] * ks.getAsFloat(4), 3.0f, 3.0f / 254);
  EXPECT_NEAR(kc[256 + 40] * ks.getAsFloat(8 + 1), -2.5f, 2.5f / 254);

  ModelConfig c = detectConfig(*q.out);
  EXPECT_TRUE(c.quantized);
  EXPECT_TRUE(c.hasInt8);
  EXPECT_EQ(c.int8Group, 32);
  EXPECT_EQ(c.int4Group, 0);
  EXPECT_EQ(c.n_embd, 128);
  EXPECT_EQ(c.vocab_size, 512);
  // The first float tensor (blocks.0.ln0.weight) is f32.
  EXPECT_EQ(c.dtype, DType::F32);
  std::string json = c.toJson();
  EXPECT_NE(json.find("\"quantized\": \"int8\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"int8_group_size\": 32"), std::string::npos) << json;
  EXPECT_EQ(json.find("\"group_size\""), std::string::npos) << json;
}

// Without --group, int8 keeps one f32 scale per row.
TEST(QuantizeInt8, PerRowUnchanged) {
  Quantized q(int8(0));
  EXPECT_EQ(q.report.int8Group, 0);
  const Tensor &s = q.out->get("blocks.0.att.value.weight_scale");
  EXPECT_EQ(s.dtype, DType::F32);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{128}));
  ModelConfig c = detectConfig(*q.out);
  EXPECT_TRUE(c.hasInt8);
  EXPECT_EQ(c.int8Group, 0);
  EXPECT_EQ(c.toJson().find("int8_group_size"), std::string::npos);
}

// One --group for both: int8 matrices and an int4 head.
TEST(QuantizeInt8, GroupAppliesToInt4Too) {
  QuantizeOptions o = int8(64);
  o.head = "int4";
  Quantized q(o);
  EXPECT_EQ(q.report.quantized, 13);
  EXPECT_EQ(q.report.int4, 1);
  EXPECT_EQ(q.report.group, 64);
  EXPECT_EQ(q.report.int8Group, 64);
  checkMatrix(q.in->get("blocks.1.ffn.value.weight"),
              q.out->get("blocks.1.ffn.value.weight"),
              q.out->get("blocks.1.ffn.value.weight_scale"), 64);
  EXPECT_EQ(q.out->get("head.weight").dtype, DType::U8);
  EXPECT_EQ(q.out->get("head.weight_scale").shape,
            (std::vector<int64_t>{512, 2}));
  ModelConfig c = detectConfig(*q.out);
  EXPECT_EQ(c.int4Group, 64);
  EXPECT_EQ(c.int8Group, 64);
  std::string json = c.toJson();
  EXPECT_NE(json.find("\"quantized\": \"int4+int8\""), std::string::npos);
  EXPECT_NE(json.find("\"group_size\": 64,\n  \"int8_group_size\": 64"),
            std::string::npos)
      << json;
}

TEST(QuantizeInt8, BadGroupRefused) {
  TempDir tmp;
  writeSafetensors(tmp.path("f.safetensors"), makeModel());
  auto in = Checkpoint::open(tmp.path("f.safetensors"));
  auto refused = [&](const QuantizeOptions &o, const std::string &what) {
    try {
      quantizeCheckpoint(*in, tmp.path("o.safetensors"), o);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const CheckpointError &e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos)
          << e.what();
    }
  };
  refused(int8(48), "int8 group size 48 does not divide the 128 inputs of "
                    "'blocks.0.att.receptance.weight' (shape [128, 128])");
  refused(int8(-4), "int8 group size -4 must be positive");
  // An odd group is fine for int8, not with an int4 matrix.
  QuantizeOptions odd = int8(1);
  odd.head = "int4";
  refused(odd, "int4 group size 1 must be a positive even number");
}

// f32 and bf16 group scales are accepted; a malformed one is refused with
// the tensor, its shape and the scales found.
TEST(QuantizeInt8, Detection) {
  Quantized q(int8(32));
  const std::string key = "blocks.0.att.key.weight";
  const std::string p = q.tmp.path("e.safetensors");

  // bf16 group scales (GGUF Q8_0's): the same layout. The cases below
  // start from this file.
  const std::string pb = q.tmp.path("bf16.safetensors");
  rewrite(*q.out, pb, [&](std::vector<OwnedTensor> &ts) {
    OwnedTensor &s = named(ts, key + "_scale");
    std::vector<uint8_t> bf16(s.bytes.size() / 2);
    for (size_t i = 0; i < bf16.size() / 2; ++i) {
      float v;
      std::memcpy(&v, s.bytes.data() + 4 * i, 4);
      uint16_t b = f32ToBf16(v);
      std::memcpy(bf16.data() + 2 * i, &b, 2);
    }
    s.dtype = DType::BF16;
    s.bytes = std::move(bf16);
  });
  std::unique_ptr<Checkpoint> base = Checkpoint::open(pb);
  EXPECT_EQ(detectConfig(*q.out).int8Group, 32);
  EXPECT_EQ(detectConfig(*base).int8Group, 32);

  // f16 scales.
  rewrite(*base, p, [&](std::vector<OwnedTensor> &ts) {
    named(ts, key + "_scale").dtype = DType::F16;
  });
  expectError(p, {"int8 tensor '" + key +
                  "' [128, 128] needs per-group "
                  "scales '" +
                  key +
                  "_scale' (bf16 or f32 [128, 128 / G], "
                  "G dividing 128), found f16 [128, 4]"});
  // Wrong row count.
  rewrite(*base, p, [&](std::vector<OwnedTensor> &ts) {
    OwnedTensor &s = named(ts, key + "_scale");
    s.shape = {64, 8};
  });
  expectError(p, {"int8 tensor '" + key + "'", "found bf16 [64, 8]"});
  // G not dividing the width: 3 groups of 128.
  rewrite(*base, p, [&](std::vector<OwnedTensor> &ts) {
    OwnedTensor &s = named(ts, key + "_scale");
    s.shape = {128, 3};
    s.bytes.resize(128 * 3 * 2);
  });
  expectError(p, {"int8 tensor '" + key + "'", "G dividing 128",
                  "found bf16 [128, 3]"});
  // A 1-D scale still means per-row, f32 [out].
  rewrite(*base, p, [&](std::vector<OwnedTensor> &ts) {
    OwnedTensor &s = named(ts, key + "_scale");
    s.shape = {512};
  });
  expectError(p, {"int8 tensor '" + key + "' needs per-row scales '" + key +
                  "_scale' (f32 [128]), found bf16 [512]"});
  // Missing scales.
  rewrite(*base, p, [&](std::vector<OwnedTensor> &ts) {
    ts.erase(std::find_if(ts.begin(), ts.end(), [&](const OwnedTensor &t) {
      return t.name == key + "_scale";
    }));
  });
  expectError(p, {"int8 tensor '" + key + "' needs per-row scales '" + key +
                  "_scale' (f32 [128]) or per-group ones (bf16 or f32 [128, "
                  "128 / G])"});
  // Two group sizes: groups of 64 in the key matrix.
  rewrite(*base, p, [&](std::vector<OwnedTensor> &ts) {
    OwnedTensor &s = named(ts, key + "_scale");
    s.shape = {128, 2};
    s.bytes.resize(128 * 2 * 2);
  });
  expectError(p, {"int8 tensor '" + key +
                  "' has groups of 64 inputs, but "
                  "'blocks.0.att.receptance.weight' has groups of 32 inputs "
                  "(one group size per file)"});
  // Per-row and grouped int8 mixed.
  rewrite(*base, p, [&](std::vector<OwnedTensor> &ts) {
    OwnedTensor &s = named(ts, key + "_scale");
    s.dtype = DType::F32;
    s.shape = {128};
    s.bytes.resize(128 * 4);
  });
  expectError(p, {"int8 tensor '" + key +
                  "' has per-row scales, but "
                  "'blocks.0.att.receptance.weight' has groups of 32 inputs "
                  "(per-row and grouped int8 cannot be mixed in one file)"});
}
