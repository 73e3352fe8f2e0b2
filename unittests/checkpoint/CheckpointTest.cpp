//===- CheckpointTest.cpp - tests of the checkpoint library ---------------===//
//
// Golden checkpoints written by real torch.save are read and checked against
// their manifest.json (names, shapes, dtype, content hash) and against bytes
// read by a second route (minizip's own CRC-checked inflate path). Every bad
// input is built programmatically and must fail with a specific message.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Checkpoint.h"

#include "Sha256.h"

#include <gtest/gtest.h>
#include <minizip/unzip.h>
#include <minizip/zip.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdlib.h>
#include <unistd.h>

using namespace rwkv;
using namespace std::string_literals;

namespace {

const std::string kShared = RWKV_SHARED_DIR;

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeFile(const std::string &path, const std::string &data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), std::streamsize(data.size()));
}

class TempDir {
public:
  TempDir() {
    char tmpl[] = "/tmp/rwkv-ckpt-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string path(const std::string &name) const { return dir_ + "/" + name; }

private:
  std::string dir_;
};

/// Composes a zip with minizip's writer (method 0 = stored, 8 = deflate).
void makeZip(const std::string &path,
             const std::vector<std::pair<std::string, std::string>> &entries,
             int method = 0) {
  zipFile zf = zipOpen64(path.c_str(), 0);
  ASSERT_NE(zf, nullptr);
  for (const auto &[name, data] : entries) {
    zip_fileinfo info{};
    ASSERT_EQ(zipOpenNewFileInZip64(zf, name.c_str(), &info, nullptr, 0,
                                    nullptr, 0, nullptr, method, method ? 6 : 0,
                                    0),
              ZIP_OK);
    ASSERT_EQ(zipWriteInFileInZip(zf, data.data(), unsigned(data.size())),
              ZIP_OK);
    ASSERT_EQ(zipCloseFileInZip(zf), ZIP_OK);
  }
  ASSERT_EQ(zipClose(zf, nullptr), ZIP_OK);
}

/// Reads every entry through minizip's decoding path (checks CRCs).
std::vector<std::pair<std::string, std::string>>
readZip(const std::string &path) {
  std::vector<std::pair<std::string, std::string>> out;
  unzFile zf = unzOpen64(path.c_str());
  EXPECT_NE(zf, nullptr);
  if (!zf)
    return out;
  for (int rc = unzGoToFirstFile(zf); rc == UNZ_OK; rc = unzGoToNextFile(zf)) {
    unz_file_info64 info;
    char name[512];
    unzGetCurrentFileInfo64(zf, &info, name, sizeof(name), nullptr, 0, nullptr,
                            0);
    std::string data(info.uncompressed_size, '\0');
    EXPECT_EQ(unzOpenCurrentFile(zf), UNZ_OK);
    EXPECT_EQ(unzReadCurrentFile(zf, data.data(), unsigned(data.size())),
              int(data.size()));
    EXPECT_EQ(unzCloseCurrentFile(zf), UNZ_OK) << "CRC error in " << name;
    out.emplace_back(name, data);
  }
  unzClose(zf);
  return out;
}

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i)
    s[i] = char(v >> (8 * i));
  return s;
}
std::string binInt(int64_t v) { return "J" + le32(uint32_t(int32_t(v))); }
std::string binUnicode(const std::string &s) {
  return "X" + le32(uint32_t(s.size())) + s;
}
std::string intTuple(const std::vector<int64_t> &v) {
  std::string s = "(";
  for (int64_t x : v)
    s += binInt(x);
  return s + "t";
}

/// A hand-written torch.save pickle holding one tensor `name`.
std::string tensorPickle(const std::string &name, const std::string &storage,
                         const std::string &key, int64_t numel, int64_t offset,
                         const std::vector<int64_t> &sizes,
                         const std::vector<int64_t> &strides) {
  return "\x80\x02"s + "ccollections\nOrderedDict\nq\x00)R"s +
         binUnicode(name) + "ctorch._utils\n_rebuild_tensor_v2\n" + "((" +
         binUnicode("storage") + "ctorch\n" + storage + "\n" + binUnicode(key) +
         binUnicode("cpu") + binInt(numel) + "tQ" + binInt(offset) +
         intTuple(sizes) + intTuple(strides) + "\x89h\x00)RtRs."s;
}

std::string floats(const std::vector<float> &v) {
  return std::string(reinterpret_cast<const char *>(v.data()), v.size() * 4);
}

/// Expects that opening (and detecting, if `detect`) fails with a message
/// containing every string in `parts`.
void expectError(const std::string &path, std::vector<std::string> parts,
                 bool detect = false) {
  try {
    auto c = Checkpoint::open(path);
    if (detect)
      detectConfig(*c);
    FAIL() << "expected an error mentioning '" << parts[0] << "'";
  } catch (const CheckpointError &e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const std::string &p : parts)
      EXPECT_NE(msg.find(p), std::string::npos)
          << "'" << p << "' not in: " << msg;
  }
}

/// The manifest hash: per tensor in key order, name bytes then the values as
/// little-endian float32.
std::string contentHash(const Checkpoint &c) {
  Sha256 sha;
  for (const Tensor &t : c.tensors()) {
    sha.update(t.name.data(), t.name.size());
    for (int64_t i = 0; i < t.numel(); ++i) {
      float f = t.getAsFloat(i);
      sha.update(&f, 4);
    }
  }
  return sha.hexdigest();
}

SyntheticOptions smallOptions() {
  SyntheticOptions o; // tiny preset
  return o;
}

} // namespace

//===----------------------------------------------------------------------===//
// Golden checkpoints
//===----------------------------------------------------------------------===//

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, MatchesManifest) {
  const std::string dir = kShared + "/golden/" + GetParam();
  auto manifest = nlohmann::json::parse(readFile(dir + "/manifest.json"));
  auto ckpt = Checkpoint::open(dir + "/model.pth");
  const auto &keys = manifest["checkpoint"]["keys_in_order"];
  ASSERT_EQ(ckpt->tensors().size(), keys.size());
  DType want =
      manifest["config"]["dtype"] == "float32" ? DType::F32 : DType::BF16;
  for (size_t i = 0; i < keys.size(); ++i) {
    const Tensor &t = ckpt->tensors()[i];
    EXPECT_EQ(t.name, keys[i][0].get<std::string>());
    EXPECT_EQ(t.shape, keys[i][1].get<std::vector<int64_t>>()) << t.name;
    EXPECT_EQ(t.dtype, want) << t.name;
    EXPECT_TRUE(t.isContiguous()) << t.name;
  }
  EXPECT_EQ(contentHash(*ckpt),
            manifest["checkpoint"]["content_sha256"].get<std::string>());
  int64_t params = 0;
  for (const Tensor &t : ckpt->tensors())
    params += t.numel();
  EXPECT_EQ(params, manifest["checkpoint"]["n_params"].get<int64_t>());

  ModelConfig cfg = detectConfig(*ckpt);
  const auto &mc = manifest["config"];
  EXPECT_EQ(cfg.version, 7);
  EXPECT_EQ(cfg.versionString, "x070");
  EXPECT_EQ(cfg.n_layer, mc["n_layer"].get<int64_t>());
  EXPECT_EQ(cfg.n_embd, mc["n_embd"].get<int64_t>());
  EXPECT_EQ(cfg.n_head, mc["n_head"].get<int64_t>());
  EXPECT_EQ(cfg.head_size, mc["head_size"].get<int64_t>());
  EXPECT_EQ(cfg.dim_ffn, mc["dim_ffn"].get<int64_t>());
  EXPECT_EQ(cfg.vocab_size, mc["vocab_size"].get<int64_t>());
  EXPECT_EQ(cfg.lora_w, mc["D_DECAY_LORA"].get<int64_t>());
  EXPECT_EQ(cfg.lora_a, mc["D_AAA_LORA"].get<int64_t>());
  EXPECT_EQ(cfg.lora_v, mc["D_MV_LORA"].get<int64_t>());
  EXPECT_EQ(cfg.lora_g, mc["D_GATE_LORA"].get<int64_t>());
  EXPECT_EQ(cfg.dtype, want);
  EXPECT_EQ(cfg.layer0HasV, GetParam() == "tiny2");
}

// The payload views must equal what minizip's CRC-checked read path returns.
TEST_P(GoldenTest, ZeroCopyViewsMatchSecondRoute) {
  const std::string path = kShared + "/golden/" + GetParam() + "/model.pth";
  auto ckpt = Checkpoint::open(path);
  EXPECT_EQ(ckpt->archiveName(), GetParam()); // saved as <name>.pth
  auto entries = readZip(path);
  std::map<std::string, std::string> byName(entries.begin(), entries.end());
  // torch.save numbers storages in key order: data/<i> is tensor i.
  for (size_t i = 0; i < ckpt->tensors().size(); ++i) {
    const Tensor &t = ckpt->tensors()[i];
    const std::string &raw =
        byName.at(ckpt->archiveName() + "/data/" + std::to_string(i));
    ASSERT_EQ(raw.size(), t.nbytes) << t.name;
    EXPECT_EQ(std::memcmp(raw.data(), t.data, raw.size()), 0) << t.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 64, 0u) << t.name;
  }
}

TEST_P(GoldenTest, LayerNormAndMixingValuesArePlausible) {
  auto ckpt =
      Checkpoint::open(kShared + "/golden/" + GetParam() + "/model.pth");
  // make_ckpt.py draws LN gains from 1 + U(-0.2, 0.2) and biases from
  // U(-0.1, 0.1); token-shift mixes are RWKV-LM's curve plus small noise.
  for (const char *name : {"blocks.0.ln1.weight", "ln_out.weight"}) {
    const Tensor &t = ckpt->get(name);
    for (int64_t i = 0; i < t.numel(); ++i) {
      EXPECT_GE(t.getAsFloat(i), 0.79f) << name;
      EXPECT_LE(t.getAsFloat(i), 1.21f) << name;
    }
  }
  const Tensor &bias = ckpt->get("blocks.0.ln1.bias");
  for (int64_t i = 0; i < bias.numel(); ++i)
    EXPECT_LE(std::fabs(bias.getAsFloat(i)), 0.101f);
  const Tensor &xr = ckpt->get("blocks.0.att.x_r");
  for (int64_t i = 0; i < xr.numel(); ++i) {
    EXPECT_GE(xr.getAsFloat(i), -0.05f);
    EXPECT_LE(xr.getAsFloat(i), 1.05f);
  }
  // Decay range quoted by the golden README: ~0.55 to ~0.9998.
  const Tensor &w0 = ckpt->get("blocks.0.att.w0");
  float lo = 1, hi = 0;
  for (int64_t i = 0; i < w0.numel(); ++i) {
    double sig = 1.0 / (1.0 + std::exp(-double(w0.getAsFloat(i))));
    float d = float(std::exp(-std::exp(-0.5) * sig));
    lo = std::min(lo, d), hi = std::max(hi, d);
  }
  EXPECT_LT(lo, 0.7f);
  EXPECT_GT(hi, 0.999f);
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenTest,
                         ::testing::Values("tiny", "tiny2"));

//===----------------------------------------------------------------------===//
// Writers, round trip, synthetic init
//===----------------------------------------------------------------------===//

TEST(Checkpoint, RoundTripPthSafetensors) {
  TempDir tmp;
  std::vector<OwnedTensor> model = makeSyntheticModel(smallOptions());
  writePth(tmp.path("rt.pth"), model);
  auto pth = Checkpoint::open(tmp.path("rt.pth"));
  EXPECT_EQ(pth->format(), Checkpoint::Format::Pth);
  EXPECT_EQ(pth->archiveName(), "rt");
  ASSERT_EQ(pth->tensors().size(), model.size());
  std::vector<OwnedTensor> back;
  for (const Tensor &t : pth->tensors())
    back.push_back(toOwned(t));
  writeSafetensors(tmp.path("rt.safetensors"), back);
  auto st = Checkpoint::open(tmp.path("rt.safetensors"));
  EXPECT_EQ(st->format(), Checkpoint::Format::Safetensors);
  ASSERT_EQ(st->tensors().size(), model.size());
  for (size_t i = 0; i < model.size(); ++i) {
    const Tensor &t = st->tensors()[i];
    EXPECT_EQ(t.name, model[i].name);
    EXPECT_EQ(t.shape, model[i].shape);
    EXPECT_EQ(t.dtype, model[i].dtype);
    ASSERT_EQ(t.nbytes, model[i].bytes.size());
    EXPECT_EQ(std::memcmp(t.data, model[i].bytes.data(), t.nbytes), 0)
        << t.name;
  }
  ModelConfig a = detectConfig(*pth), b = detectConfig(*st);
  EXPECT_EQ(a.toJson(), b.toJson());
  EXPECT_EQ(a.n_layer, 2);
  EXPECT_EQ(a.lora_g, 64);
  EXPECT_FALSE(a.layer0HasV);
  EXPECT_EQ(a.dtype, DType::BF16);
}

// rwkv-quantize's core: every quantizable matrix becomes int8 with per-row
// f32 scales, each weight within half a step of the original, the rest is
// copied bit for bit, and the result detects as a quantized RWKV-7 model.
TEST(Checkpoint, QuantizeInt8) {
  TempDir tmp;
  SyntheticOptions opts = smallOptions();
  opts.dtype = DType::F32;
  writeSafetensors(tmp.path("f.safetensors"), makeSyntheticModel(opts));
  auto in = Checkpoint::open(tmp.path("f.safetensors"));
  QuantizeReport r =
      quantizeCheckpoint(*in, tmp.path("q.safetensors"), QuantizeOptions());
  auto q = Checkpoint::open(tmp.path("q.safetensors"));
  // 2 layers x 6 matrices + head; the embedding is rounded to bf16.
  EXPECT_EQ(r.quantized, 13);
  EXPECT_LT(r.bytesOut, r.bytesIn / 2);
  ModelConfig c = detectConfig(*q);
  EXPECT_TRUE(c.quantized);
  EXPECT_EQ(c.dtype, DType::BF16);
  EXPECT_EQ(q->get("emb.weight").dtype, DType::BF16);
  EXPECT_EQ(q->get("blocks.0.att.w1").dtype, DType::F32);
  for (const Tensor &t : in->tensors()) {
    const Tensor &o = q->get(t.name);
    if (!isQuantizableMatrix(t.name) || t.name == "emb.weight") {
      if (t.name != "emb.weight")
        EXPECT_EQ(std::memcmp(o.data, t.data, t.nbytes), 0) << t.name;
      continue;
    }
    ASSERT_EQ(o.dtype, DType::I8) << t.name;
    const Tensor &sc = q->get(t.name + "_scale");
    ASSERT_EQ(sc.shape, std::vector<int64_t>{t.shape[0]});
    int64_t cols = t.shape[1];
    for (int64_t row = 0; row < t.shape[0]; ++row) {
      float s = sc.getAsFloat(row), amax = 0;
      for (int64_t k = 0; k < cols; ++k)
        amax = std::max(amax, std::fabs(t.getAsFloat(row * cols + k)));
      // At most 20% below absmax / 127 (the squared-error search).
      ASSERT_LE(s, amax / 127.0f * 1.0001f) << t.name << " row " << row;
      ASSERT_GE(s, amax / 127.0f * 0.79f) << t.name << " row " << row;
      for (int64_t k = 0; k < cols; ++k) {
        float w = t.getAsFloat(row * cols + k);
        float back = o.getAsFloat(row * cols + k) * s;
        // Within half a step, or clipped at +-127 steps.
        if (std::fabs(w) <= 127 * s)
          ASSERT_LE(std::fabs(back - w), 0.5f * s * 1.0001f)
              << t.name << "[" << row << ", " << k << "]";
        else
          ASSERT_EQ(std::fabs(back), 127 * s);
      }
    }
  }
  // Quantizing twice is refused, and so are types it does not know.
  EXPECT_THROW(quantizeCheckpoint(*q, tmp.path("qq.safetensors"), {}),
               CheckpointError);
  QuantizeOptions bad;
  bad.type = "int3";
  EXPECT_THROW(quantizeCheckpoint(*in, tmp.path("b.safetensors"), bad),
               CheckpointError);
}

TEST(CheckpointErrors, Int8WithoutScalesOrOutsideMatrices) {
  TempDir tmp;
  auto model = makeSyntheticModel(smallOptions());
  std::vector<OwnedTensor> noScale = model;
  for (OwnedTensor &t : noScale)
    if (t.name == "blocks.1.ffn.key.weight") {
      t.dtype = DType::I8;
      t.bytes.resize(t.bytes.size() / 2);
    }
  writeSafetensors(tmp.path("n.safetensors"), noScale);
  expectError(tmp.path("n.safetensors"),
              {"int8 tensor 'blocks.1.ffn.key.weight'",
               "needs per-row scales 'blocks.1.ffn.key.weight_scale'"},
              true);
  std::vector<OwnedTensor> lora = model;
  for (OwnedTensor &t : lora)
    if (t.name == "blocks.0.att.a1") {
      t.dtype = DType::I8;
      t.bytes.resize(t.bytes.size() / 2);
    }
  writeSafetensors(tmp.path("l.safetensors"), lora);
  expectError(tmp.path("l.safetensors"),
              {"tensor 'blocks.0.att.a1' is int8", "may be quantized"}, true);
}

// The writer's zip must be a valid zip to an independent reader (minizip's
// CRC checks) with torch.save's records and 64-byte aligned payloads.
TEST(Checkpoint, PthWriterLayoutIsTorchLike) {
  TempDir tmp;
  const std::string path = tmp.path("my-model.v1.pth");
  writePth(path, makeSyntheticModel(smallOptions()));
  auto entries = readZip(path);
  ASSERT_GE(entries.size(), 4u);
  EXPECT_EQ(entries[0].first, "my-model.v1/data.pkl");
  std::map<std::string, std::string> byName(entries.begin(), entries.end());
  EXPECT_EQ(byName.at("my-model.v1/version"), "3\n");
  EXPECT_EQ(byName.at("my-model.v1/byteorder"), "little");
  const std::string &pkl = byName.at("my-model.v1/data.pkl");
  EXPECT_EQ(pkl.substr(0, 2), "\x80\x02");
  EXPECT_NE(pkl.find("ctorch._utils\n_rebuild_tensor_v2\n"), std::string::npos);
  EXPECT_NE(pkl.find("ctorch\nBFloat16Storage\n"), std::string::npos);
  EXPECT_EQ(pkl.back(), '.');
  std::string file = readFile(path);
  auto ckpt = Checkpoint::open(path);
  for (const Tensor &t : ckpt->tensors())
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 64, 0u) << t.name;
  // Local header of the first record: flag 0x0808, stored, FB extra.
  EXPECT_EQ(file.substr(0, 4), "PK\x03\x04");
  EXPECT_EQ(uint8_t(file[6]), 0x08);
  EXPECT_EQ(uint8_t(file[7]), 0x08);
  EXPECT_EQ(file.substr(30 + 20, 2), "FB");
}

TEST(Checkpoint, SyntheticIsDeterministicAndRealistic) {
  SyntheticOptions o = smallOptions();
  auto a = makeSyntheticModel(o), b = makeSyntheticModel(o);
  o.seed = 7;
  auto c = makeSyntheticModel(o);
  ASSERT_EQ(a.size(), b.size());
  bool anyDiff = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].bytes, b[i].bytes) << a[i].name;
    anyDiff |= a[i].bytes != c[i].bytes;
  }
  EXPECT_TRUE(anyDiff);
  TempDir tmp;
  writePth(tmp.path("s.pth"), a);
  auto ckpt = Checkpoint::open(tmp.path("s.pth"));
  int64_t params = 0;
  for (const Tensor &t : ckpt->tensors())
    params += t.numel();
  EXPECT_EQ(params, 603264); // same as the golden tiny model
  auto stats = [&](const char *name) {
    const Tensor &t = ckpt->get(name);
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < t.numel(); ++i) {
      double v = t.getAsFloat(i);
      s += v, s2 += v * v;
    }
    double mean = s / double(t.numel());
    return std::make_pair(mean,
                          std::sqrt(s2 / double(t.numel()) - mean * mean));
  };
  EXPECT_NEAR(stats("blocks.0.att.k_k").first, 0.85, 0.02);
  EXPECT_NEAR(stats("blocks.1.att.k_a").first, 1.0, 0.05);
  EXPECT_NEAR(stats("blocks.0.ln1.weight").first, 1.0, 0.05);
  EXPECT_GT(stats("blocks.0.ln1.weight").second, 0.05);
  for (const char *mix :
       {"blocks.0.att.x_r", "blocks.1.att.x_g", "blocks.1.ffn.x_k"}) {
    const Tensor &t = ckpt->get(mix);
    for (int64_t i = 0; i < t.numel(); ++i) {
      EXPECT_GT(t.getAsFloat(i), 0.0f) << mix;
      EXPECT_LT(t.getAsFloat(i), 1.0f) << mix;
    }
  }
  EXPECT_GT(stats("blocks.0.att.w1").second, 0.0); // LoRA is live
  EXPECT_GT(stats("blocks.1.att.output.weight").second, 0.0);
  EXPECT_GT(stats("head.weight").second, 0.5 / std::sqrt(128.0));
  EXPECT_LT(std::fabs(stats("blocks.0.att.r_k").first), 0.04);
  EXPECT_EQ(ckpt->find("blocks.0.att.v0"), nullptr);
  EXPECT_NE(ckpt->find("blocks.1.att.v0"), nullptr);
}

TEST(Checkpoint, PresetsHaveTheReleasedShapes) {
  auto specs = syntheticSpecs(SyntheticOptions::preset("0.1b"));
  int64_t params = 0;
  for (const TensorSpec &s : specs)
    params += s.numel();
  // Spec §3.1: 7,534,848 per layer, 12 layers, plus emb + head + 4 LN vectors
  // (layer 0 lacks v0/v1/v2: 49,152 + 768 fewer).
  EXPECT_EQ(params, 12 * 7534848 + 2 * 65536 * 768 + 4 * 768 - 49152 - 768);
  auto big = SyntheticOptions::preset("1.5b");
  EXPECT_EQ(big.n_embd, 2048);
  EXPECT_EQ(big.lora_g, 256);
  EXPECT_THROW(SyntheticOptions::preset("7b"), CheckpointError);
}

TEST(Checkpoint, HalfConversions) {
  EXPECT_EQ(bf16ToF32(0x3f80), 1.0f);
  EXPECT_EQ(f32ToBf16(1.0f), 0x3f80);
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties to even.
  EXPECT_EQ(f32ToBf16(1.00390625f), 0x3f80);
  EXPECT_EQ(f32ToBf16(1.01171875f), 0x3f82); // 1 + 3*2^-8 -> up to even
  EXPECT_TRUE(std::isnan(bf16ToF32(f32ToBf16(NAN))));
  EXPECT_EQ(f16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(f16ToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f32ToF16(65504.0f), 0x7bff);
  EXPECT_EQ(f32ToF16(1e6f), 0x7c00);
  EXPECT_EQ(f32ToF16(-2.0f), 0xc000);
  for (uint32_t h = 0; h < 0x7c00; ++h) // every finite half round-trips
    ASSERT_EQ(f32ToF16(f16ToF32(uint16_t(h))), h);
}

TEST(Checkpoint, StridedViewWithOffset) {
  TempDir tmp;
  // A 2x3 transposed view (stride [1, 2]) at storage offset 1 of 8 floats.
  makeZip(tmp.path("s.pth"),
          {{"s/data.pkl",
            tensorPickle("t", "FloatStorage", "0", 8, 1, {2, 3}, {1, 2})},
           {"s/data/0", floats({0, 1, 2, 3, 4, 5, 6, 7})}});
  auto c = Checkpoint::open(tmp.path("s.pth"));
  const Tensor &t = c->get("t");
  EXPECT_FALSE(t.isContiguous());
  std::vector<float> got;
  for (int64_t i = 0; i < 6; ++i)
    got.push_back(t.getAsFloat(i));
  EXPECT_EQ(got, (std::vector<float>{1, 3, 5, 2, 4, 6}));
  EXPECT_EQ(toOwned(t).bytes.size(), 24u);
  EXPECT_THROW(t.getAsFloat(6), CheckpointError);
  try {
    c->get("nope");
    FAIL();
  } catch (const CheckpointError &e) {
    EXPECT_NE(std::string(e.what()).find("'nope'"), std::string::npos);
  }
}

TEST(Checkpoint, OpenFromMemoryMatchesOpen) {
  std::string bytes = readFile(kShared + "/golden/tiny/model.pth");
  auto m = Checkpoint::openFromMemory(bytes.data(), bytes.size(), "mem");
  auto f = Checkpoint::open(kShared + "/golden/tiny/model.pth");
  ASSERT_EQ(m->tensors().size(), f->tensors().size());
  EXPECT_EQ(m->path(), "mem");
  EXPECT_EQ(contentHash(*m), contentHash(*f));
}

//===----------------------------------------------------------------------===//
// Bad inputs: each must fail with a message naming the problem.
//===----------------------------------------------------------------------===//

TEST(CheckpointErrors, TruncatedZip) {
  TempDir tmp;
  std::string golden = readFile(kShared + "/golden/tiny/model.pth");
  writeFile(tmp.path("t.pth"), golden.substr(0, golden.size() / 2));
  expectError(tmp.path("t.pth"), {"truncated zip"});
  // Cut inside the central directory too.
  writeFile(tmp.path("t2.pth"), golden.substr(0, golden.size() - 100));
  expectError(tmp.path("t2.pth"), {"zip"});
}

TEST(CheckpointErrors, CorruptedZip) {
  TempDir tmp;
  std::string golden = readFile(kShared + "/golden/tiny/model.pth");
  // Break the central directory signature of the first entry.
  size_t cd = golden.find(std::string("PK\x01\x02", 4));
  ASSERT_NE(cd, std::string::npos);
  std::string bad = golden;
  bad[cd + 2] = 'X';
  writeFile(tmp.path("c.pth"), bad);
  expectError(tmp.path("c.pth"), {"corrupted"});
  // Break the local header of data.pkl (the central directory is intact).
  bad = golden;
  bad[2] = 'X';
  writeFile(tmp.path("c2.pth"), bad);
  auto c = Checkpoint::openFromMemory(golden.data(), golden.size());
  EXPECT_EQ(c->tensors().size(), 69u);
  try {
    Checkpoint::openFromMemory(bad.data(), bad.size(), "c2");
    FAIL();
  } catch (const CheckpointError &e) {
    EXPECT_NE(std::string(e.what()).find("not a checkpoint"), std::string::npos)
        << e.what();
  }
  bad = golden;
  size_t local = golden.find(std::string("PK\x03\x04", 4), 64);
  ASSERT_NE(local, std::string::npos);
  bad[local + 3] = 'X'; // local header of data/0
  writeFile(tmp.path("c3.pth"), bad);
  expectError(tmp.path("c3.pth"), {"bad local header", "tiny/data/0"});
}

TEST(CheckpointErrors, BadPickleOpcode) {
  TempDir tmp;
  makeZip(tmp.path("b.pth"), {{"b/data.pkl", std::string("\x80\x02}\xff.")}});
  expectError(tmp.path("b.pth"),
              {"unsupported pickle opcode 0xff", "offset 3"});
  makeZip(tmp.path("b2.pth"), {{"b2/data.pkl", std::string("\x80\x02}i.")}});
  expectError(tmp.path("b2.pth"), {"opcode 0x69 ('i')"});
}

TEST(CheckpointErrors, DisallowedGlobal) {
  TempDir tmp;
  makeZip(tmp.path("g.pth"),
          {{"g/data.pkl", std::string("\x80\x02"
                                      "cos\nsystem\n") +
                              binUnicode("echo pwned") + "\x85R."}});
  expectError(tmp.path("g.pth"), {"disallowed global 'os.system'"});
  // Via STACK_GLOBAL (protocol 4) as well.
  makeZip(tmp.path("g2.pth"),
          {{"g2/data.pkl", std::string("\x80\x04") + binUnicode("builtins") +
                               binUnicode("eval") + "\x93."}});
  expectError(tmp.path("g2.pth"), {"disallowed global 'builtins.eval'"});
}

TEST(CheckpointErrors, PickleMachineErrors) {
  TempDir tmp;
  auto check = [&](const std::string &pkl, const std::string &msg) {
    makeZip(tmp.path("p.pth"), {{"p/data.pkl", pkl}});
    expectError(tmp.path("p.pth"), {msg});
  };
  check(std::string("\x80\x02h\x05.", 5), "memo index 5 out of range");
  check(std::string("\x80\x02}s.", 5), "stack underflow in SETITEM");
  check(std::string("\x80\x02}(s.", 6), "stack underflow in SETITEM");
  check(std::string("\x80\x02t.", 4), "TUPLE without a MARK");
  check("\x80\x02X\xff\x00\x00\x00"s + "ab",
        "truncated pickle: string of 255 bytes");
  check(std::string("\x80\x02}", 3), "data.pkl is truncated");
  check(std::string("\x80\x02]."), "holds a list");
  check(std::string("\x80\x02") + "ctorch\nFloatStorage\n)R.",
        "global 'torch.FloatStorage' is not callable");
}

TEST(CheckpointErrors, MissingStorageRecord) {
  TempDir tmp;
  makeZip(
      tmp.path("m.pth"),
      {{"m/data.pkl", tensorPickle("w", "FloatStorage", "0", 4, 0, {4}, {1})}});
  expectError(tmp.path("m.pth"),
              {"missing storage record 'm/data/0'", "tensor 'w'"});
}

TEST(CheckpointErrors, TensorPastItsStorage) {
  TempDir tmp;
  // Offset 2 + 4 elements > storage of 4 floats.
  makeZip(tmp.path("p.pth"), {{"p/data.pkl", tensorPickle("w", "FloatStorage",
                                                          "0", 4, 2, {4}, {1})},
                              {"p/data/0", floats({1, 2, 3, 4})}});
  expectError(tmp.path("p.pth"),
              {"tensor 'w'", "extends past its storage", "[4]"});
  // Storage declares more elements than its record holds.
  makeZip(
      tmp.path("p2.pth"),
      {{"p2/data.pkl", tensorPickle("w", "FloatStorage", "0", 8, 0, {8}, {1})},
       {"p2/data/0", floats({1, 2, 3, 4})}});
  expectError(tmp.path("p2.pth"), {"'p2/data/0' has 16 bytes", "tensor 'w'"});
  // Huge strides must not overflow into a false "fits".
  makeZip(tmp.path("p3.pth"),
          {{"p3/data.pkl", tensorPickle("w", "FloatStorage", "0", 4, 0, {2, 2},
                                        {0x7fffffff, 1})},
           {"p3/data/0", floats({1, 2, 3, 4})}});
  expectError(tmp.path("p3.pth"), {"extends past its storage"});
}

TEST(CheckpointErrors, CompressedTensorData) {
  TempDir tmp;
  makeZip(
      tmp.path("z.pth"),
      {{"z/data.pkl", tensorPickle("w", "FloatStorage", "0", 4, 0, {4}, {1})},
       {"z/data/0", floats({1, 2, 3, 4})}},
      /*method=*/8);
  expectError(tmp.path("z.pth"), {"record 'z/data/0' is compressed"});
}

TEST(CheckpointErrors, MissingKeyAndWrongShape) {
  TempDir tmp;
  auto model = makeSyntheticModel(smallOptions());
  auto dropped = model;
  dropped.erase(std::find_if(dropped.begin(), dropped.end(), [](auto &t) {
    return t.name == "blocks.1.att.w0";
  }));
  writePth(tmp.path("k.pth"), dropped);
  expectError(tmp.path("k.pth"), {"missing key 'blocks.1.att.w0'"}, true);

  auto reshaped = model;
  for (OwnedTensor &t : reshaped)
    if (t.name == "blocks.0.att.k_k") {
      t.shape = {1, 2, 64};
    }
  writePth(tmp.path("s.pth"), reshaped);
  expectError(tmp.path("s.pth"),
              {"key 'blocks.0.att.k_k' has shape [1, 2, 64], expected [1, 1, "
               "128]"},
              true);
}

TEST(CheckpointErrors, UnsupportedDType) {
  TempDir tmp;
  auto model = makeSyntheticModel(smallOptions());
  for (OwnedTensor &t : model)
    if (t.name == "ln_out.bias") {
      t.dtype = DType::I16; // same byte size as bf16
    }
  writePth(tmp.path("d.pth"), model);
  expectError(tmp.path("d.pth"),
              {"tensor 'ln_out.bias'", "unsupported dtype i16"}, true);
  makeZip(tmp.path("d2.pth"),
          {{"d2/data.pkl",
            tensorPickle("w", "ComplexFloatStorage", "0", 1, 0, {1}, {1})}});
  expectError(tmp.path("d2.pth"), {"ComplexFloatStorage"});
}

TEST(CheckpointErrors, LyingSafetensorsHeader) {
  TempDir tmp;
  auto make = [&](const std::string &json, size_t dataBytes) {
    std::string out;
    uint64_t n = json.size();
    for (int i = 0; i < 8; ++i)
      out.push_back(char(n >> (8 * i)));
    out += json;
    out.append(dataBytes, '\0');
    writeFile(tmp.path("x.safetensors"), out);
    return tmp.path("x.safetensors");
  };
  expectError(
      make(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,32]}})", 16),
      {"'a'", "outside the data region"});
  expectError(
      make(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}})", 16),
      {"'a'", "needs 16 bytes"});
  expectError(make(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                   16),
              {"overlap"});
  expectError(
      make(R"({"a":{"dtype":"C64","shape":[2],"data_offsets":[0,16]}})", 16),
      {"unsupported dtype 'C64'"});
  expectError(make(R"({"a":{"dtype":"F32","shape":[2]}})", 16),
              {"'a' is malformed"});
  expectError(make(R"({"a": [1, 2)", 16), {"not valid JSON"});
  // Header length beyond the file.
  std::string lie = std::string("\xff\x00\x00\x00\x00\x00\x00\x00{", 9);
  writeFile(tmp.path("y.safetensors"), lie);
  expectError(tmp.path("y.safetensors"), {"exceeds the file size"});
  // A consistent header is accepted.
  auto ok = Checkpoint::open(
      make(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 16));
  EXPECT_EQ(ok->get("a").shape, (std::vector<int64_t>{2, 2}));
}

TEST(CheckpointErrors, NotACheckpoint) {
  TempDir tmp;
  writeFile(tmp.path("notes.txt"), "hello, this is a text file\n");
  expectError(tmp.path("notes.txt"), {"not a checkpoint"});
  writeFile(tmp.path("empty.pth"), "");
  expectError(tmp.path("empty.pth"), {"not a checkpoint"});
  expectError(tmp.path("absent.pth"), {"cannot open"});
  // A zip without data.pkl.
  makeZip(tmp.path("other.zip"), {{"docs/readme.txt", "hi"}});
  expectError(tmp.path("other.zip"), {"no <folder>/data.pkl"});
}

TEST(CheckpointErrors, LegacyTorchFormat) {
  TempDir tmp;
  // Legacy torch.save: pickle protocol 2 whose first object is the magic
  // number 0x1950a86a20f9469cfc6c as LONG1.
  writeFile(tmp.path("legacy.pt"),
            std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8"
                        "\x50\x19.",
                        15));
  expectError(tmp.path("legacy.pt"), {"legacy (non-zip) torch.save format"});
}

TEST(CheckpointErrors, NonRWKVCheckpoint) {
  TempDir tmp;
  writeSafetensors(
      tmp.path("x.safetensors"),
      std::vector<OwnedTensor>{
          {"fc.weight", DType::F32, {2}, std::vector<uint8_t>(8)}});
  // The message says what the file holds, so a foreign layout is
  // recognisable.
  expectError(tmp.path("x.safetensors"),
              {"not an RWKV checkpoint", "it holds 'fc.weight' [2]"}, true);
}

TEST(Checkpoint, DetectsOlderVersions) {
  TempDir tmp;
  // Complete files in each version's released layout (rwkv-init --version).
  struct Case {
    int version, v5Minor;
    const char *versionString;
    int64_t heads, headSize, dimFfn, loraW, loraMix;
    bool logBonus;
  };
  const Case cases[] = {{4, 2, "4", 0, 0, 256, 0, 0, false},
                        {5, 0, "5.0", 1, 64, 224, 0, 0, true},
                        {5, 1, "5.1", 1, 64, 224, 0, 0, false},
                        {5, 2, "5.2", 1, 64, 224, 0, 0, false},
                        {6, 2, "x060", 1, 64, 224, 64, 32, false}};
  for (const Case &k : cases) {
    SyntheticOptions o;
    o.version = k.version;
    o.v5Minor = k.v5Minor;
    o.n_embd = 64;
    o.vocab_size = 100;
    std::string path = tmp.path(std::string("v") + k.versionString + ".pth");
    writePth(path, makeSyntheticModel(o));
    ModelConfig c = detectConfig(*Checkpoint::open(path));
    EXPECT_EQ(c.version, k.version);
    EXPECT_EQ(c.versionString, k.versionString);
    EXPECT_EQ(c.n_layer, 2);
    EXPECT_EQ(c.n_head, k.heads);
    EXPECT_EQ(c.head_size, k.headSize);
    EXPECT_EQ(c.dim_ffn, k.dimFfn);
    EXPECT_EQ(c.lora_w, k.loraW);
    EXPECT_EQ(c.lora_mix, k.loraMix);
    EXPECT_EQ(c.logBonus, k.logBonus);
    EXPECT_EQ(tensorSpecs(c).size(), Checkpoint::open(path)->tensors().size());
  }

  auto t = [](std::string name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return OwnedTensor{std::move(name), DType::BF16, std::move(shape),
                       std::vector<uint8_t>(size_t(n) * 2)};
  };
  std::vector<OwnedTensor> common = {t("emb.weight", {100, 64}),
                                     t("blocks.0.ffn.key.weight", {224, 64}),
                                     t("blocks.1.ffn.key.weight", {224, 64})};
  // A supported version with keys missing: the first missing key is named.
  auto v4 = common;
  v4.push_back(t("blocks.0.att.time_mix_k", {1, 1, 64}));
  v4.push_back(t("blocks.0.att.time_decay", {64}));
  writeSafetensors(tmp.path("v4.safetensors"), v4);
  expectError(tmp.path("v4.safetensors"), {"missing key 'blocks.0.ln1.weight'"},
              true);

  // An RWKV-5.0 preview (per-head decay) with keys missing; a decay whose
  // head count does not divide n_embd.
  auto v50 = common;
  v50.push_back(t("blocks.0.att.ln_x.weight", {64}));
  v50.push_back(t("blocks.0.att.time_decay", {2}));
  writePth(tmp.path("v50.pth"), v50);
  expectError(tmp.path("v50.pth"), {"missing key 'blocks.0.ln1.weight'"}, true);
  v50.back() = t("blocks.0.att.time_decay", {3});
  writePth(tmp.path("v50h3.pth"), v50);
  expectError(tmp.path("v50h3.pth"),
              {"key 'blocks.0.att.time_decay' has shape [3], expected [H]"},
              true);
  // A version that has no spec list.
  ModelConfig c53;
  c53.version = 5;
  c53.versionString = "5.3";
  try {
    tensorSpecs(c53);
    FAIL() << "5.3 has a spec list";
  } catch (const CheckpointError &e) {
    EXPECT_NE(std::string(e.what()).find("RWKV-5 ('5.3') checkpoints are not "
                                         "supported"),
              std::string::npos)
        << e.what();
  }
}
