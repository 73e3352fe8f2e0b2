//===- QuantizeInt4Test.cpp - rwkv-quantize --type int4 round trip --------===//
//
// The int4 format of runtime/checkpoint/Quantize.cpp (docs/checkpoints.md):
// u8 [out, in / 2] with column 2j in the low nibble of byte j (two's
// complement, [-8, 7]) and bf16 scales [out, in / G]. Decoded here
// independently of the compiler, against the float weights.
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
    char tmpl[] = "/tmp/rwkv-int4-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string path(const std::string &name) const { return dir_ + "/" + name; }

private:
  std::string dir_;
};

/// The signed weight of column `c` of a packed row.
int nibble(const uint8_t *row, int64_t c) {
  int v = (row[c / 2] >> (c % 2 ? 4 : 0)) & 0xf;
  return v >= 8 ? v - 16 : v;
}

float bf16Round(float v) { return bf16ToF32(f32ToBf16(v)); }

/// A synthetic f32 model with a few rows that stress the scale search: all
/// zeros, one large positive outlier, a negative maximum.
std::vector<OwnedTensor> makeModel() {
  SyntheticOptions opts; // tiny preset: n_embd 128, ffn 512, vocab 512
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
    w[3 * cols + 64] = 1e-30f;    // row 3: a group of tiny weights
    std::fill(w + 3 * cols + 65, w + 3 * cols + 96, 0.0f);
  }
  return model;
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

QuantizeOptions int4(int64_t group = 0) {
  QuantizeOptions o;
  o.type = "int4";
  o.group = group;
  return o;
}

/// Checks one int4 matrix against its float original, group by group:
/// every weight within half a step of the original unless the search chose
/// to clip a positive maximum (then within amax / 8, give or take the
/// bf16 rounding of the scale), the scale between
/// amax / 8 and amax / 6, and the squared error never above that of the
/// plain absmax / 7 scale. Returns the largest error seen.
float checkMatrix(const Tensor &w, const Tensor &q, const Tensor &sc,
                  int64_t group) {
  const int64_t rows = w.shape[0], cols = w.shape[1];
  EXPECT_EQ(q.dtype, DType::U8) << w.name;
  EXPECT_EQ(q.shape, (std::vector<int64_t>{rows, cols / 2})) << w.name;
  EXPECT_EQ(sc.dtype, DType::BF16) << w.name;
  EXPECT_EQ(sc.shape, (std::vector<int64_t>{rows, cols / group})) << w.name;
  const auto *bytes = static_cast<const uint8_t *>(q.data);
  const float eps = 1.0f / 256; // bf16 rounding of the scale
  float maxErr = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t *row = bytes + r * cols / 2;
    for (int64_t g = 0; g < cols / group; ++g) {
      float s = sc.getAsFloat(r * (cols / group) + g), amax = 0;
      for (int64_t c = g * group; c < (g + 1) * group; ++c)
        amax = std::max(amax, std::fabs(w.getAsFloat(r * cols + c)));
      std::string where =
          w.name + " row " + std::to_string(r) + " group " + std::to_string(g);
      EXPECT_GE(s, 0.0f) << where;
      EXPECT_LE(s, amax / 6 * (1 + eps)) << where;
      if (amax > 1e-36f)
        EXPECT_GE(s, amax / 8 * (1 - eps)) << where;
      float naive = bf16Round(amax / 7.0f);
      double sse = 0, naiveSse = 0;
      for (int64_t c = g * group; c < (g + 1) * group; ++c) {
        float x = w.getAsFloat(r * cols + c);
        int n = nibble(row, c);
        float err = std::fabs(float(n) * s - x);
        maxErr = std::max(maxErr, err);
        sse += double(err) * err;
        if (naive > 0) {
          float nq = std::clamp(std::nearbyint(x / naive), -8.0f, 7.0f);
          naiveSse += std::pow(double(nq) * naive - x, 2);
        } else {
          naiveSse += double(x) * x;
        }
        if (!(s > 0)) {
          EXPECT_EQ(n, 0) << where;
          continue;
        }
        if (x / s <= 7.5f)
          EXPECT_LE(err, 0.5f * s * (1 + 1e-5f)) << where << " col " << c;
        else // a positive maximum clipped to 7 steps of >= amax / 8
          EXPECT_LE(err, amax / 8 * (1 + 7 * eps)) << where << " col " << c;
      }
      EXPECT_LE(sse, naiveSse * (1 + 1e-6) + 1e-30) << where;
    }
  }
  return maxErr;
}

} // namespace

TEST(QuantizeInt4, RoundTripErrorBound) {
  Quantized q(int4());
  // 2 layers x 6 matrices + head, groups of 32; the embedding is bf16.
  EXPECT_EQ(q.report.quantized, 13);
  EXPECT_EQ(q.report.int4, 13);
  EXPECT_EQ(q.report.group, kDefaultInt4Group);
  EXPECT_EQ(kDefaultInt4Group, 32);
  float maxErr = 0;
  for (const Tensor &t : q.in->tensors()) {
    const Tensor &o = q.out->get(t.name);
    if (!isQuantizableMatrix(t.name) || t.name == "emb.weight") {
      if (t.name != "emb.weight")
        EXPECT_EQ(std::memcmp(o.data, t.data, t.nbytes), 0) << t.name;
      continue;
    }
    maxErr =
        std::max(maxErr, checkMatrix(t, o, q.out->get(t.name + "_scale"), 32));
  }
  EXPECT_FLOAT_EQ(q.report.maxAbsError, maxErr);

  // The edge rows: zeros stay zeros, the outlier row keeps its outlier
  // within a step, the negative maximum is representable.
  const Tensor &k = q.out->get("blocks.0.att.key.weight");
  const Tensor &ks = q.out->get("blocks.0.att.key.weight_scale");
  const auto *kb = static_cast<const uint8_t *>(k.data);
  for (int64_t c = 0; c < 128; ++c)
    EXPECT_EQ(nibble(kb, c), 0);
  EXPECT_EQ(ks.getAsFloat(0), 0.0f);
  EXPECT_NEAR(nibble(kb + 64, 5) * ks.getAsFloat(4), 3.0f, 3.0f / 12);
  EXPECT_NEAR(nibble(kb + 128, 40) * ks.getAsFloat(8 + 1), -2.5f, 2.5f / 14);

  ModelConfig c = detectConfig(*q.out);
  EXPECT_TRUE(c.quantized);
  EXPECT_FALSE(c.hasInt8);
  EXPECT_EQ(c.int4Group, 32);
  EXPECT_EQ(c.n_embd, 128);
  EXPECT_EQ(c.dtype, DType::BF16);
  EXPECT_NE(c.toJson().find("\"quantized\": \"int4\""), std::string::npos);
}

TEST(QuantizeInt4, GroupsOf64Int8HeadInt4Embedding) {
  QuantizeOptions o = int4(64);
  o.head = "int8";
  o.embedding = "int4";
  Quantized q(o);
  EXPECT_EQ(q.report.quantized, 14);
  EXPECT_EQ(q.report.int4, 13);
  for (const char *name : {"emb.weight", "blocks.1.ffn.value.weight",
                           "blocks.0.att.output.weight"})
    checkMatrix(q.in->get(name), q.out->get(name),
                q.out->get(std::string(name) + "_scale"), 64);
  // --group applies to the int8 head too: f32 scales per 64 inputs.
  EXPECT_EQ(q.report.int8Group, 64);
  EXPECT_EQ(q.out->get("head.weight").dtype, DType::I8);
  EXPECT_EQ(q.out->get("head.weight_scale").dtype, DType::F32);
  EXPECT_EQ(q.out->get("head.weight_scale").shape,
            (std::vector<int64_t>{512, 2}));
  ModelConfig c = detectConfig(*q.out);
  EXPECT_TRUE(c.hasInt8);
  EXPECT_EQ(c.int4Group, 64);
  EXPECT_EQ(c.int8Group, 64);
  // The packed table is [V, C / 2]; the model is still C wide.
  EXPECT_EQ(c.n_embd, 128);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_NE(c.toJson().find("\"quantized\": \"int4+int8\""), std::string::npos);
}

TEST(QuantizeInt4, BadOptionsRefused) {
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
  refused(int4(3), "int4 group size 3 must be a positive even number");
  refused(int4(-2), "int4 group size -2 must be a positive even number");
  refused(int4(48), "int4 group size 48 does not divide the 128 inputs of "
                    "'blocks.0.att.receptance.weight'");
  QuantizeOptions head = int4();
  head.head = "bf16";
  refused(head, "unknown head type 'bf16' (keep, int8 or int4)");
  QuantizeOptions emb = int4();
  emb.embedding = "int3";
  refused(emb, "unknown embedding type 'int3'");
}
