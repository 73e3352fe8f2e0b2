//===- GgufTest.cpp - tests of the GGUF (llama.cpp RWKV-7) reader ---------===//
//
// make_gguf.py writes golden/tiny/model.pth as llama.cpp would (F32, F16,
// BF16, Q8_0 by convert_hf_to_gguf.py; Q4_0 by llama-quantize) at build time.
// Each file must read back as the .pth: the same names and shapes in the same
// order, the dtypes llama.cpp's type rules give, and the .pth's values —
// exactly where the stored type holds them, within fp16 rounding for F16 and
// within the block quantization error for Q8_0/Q4_0 (and Q6_K, the head of a
// real Q4_0 file). Malformed files are made by editing a valid one with a
// small GGUF writer of our own and must fail with a clear CheckpointError.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdlib.h>
#include <unistd.h>

using namespace rwkv;

namespace {

const std::string kShared = RWKV_SHARED_DIR;
const std::string kGgufDir = RWKV_GGUF_DIR; // empty: no torch at configure

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ggufPath(const std::string &type,
                     const std::string &model = "tiny") {
  return kGgufDir + "/" + model + "-" + type + ".gguf";
}

#define SKIP_WITHOUT_GGUF()                                                    \
  do {                                                                         \
    if (kGgufDir.empty())                                                      \
      GTEST_SKIP() << "no GGUF test files (configure found no Python with "    \
                      "torch and numpy)";                                      \
  } while (0)

//===----------------------------------------------------------------------===//
// A minimal GGUF editor (trusts its input: only used on make_gguf.py files)
//===----------------------------------------------------------------------===//

struct GgufFile {
  struct Kv {
    std::string key;
    uint32_t type;
    std::string value; // raw bytes as stored
  };
  struct Info {
    std::string name;
    std::vector<int64_t> ne;
    uint32_t type;
    uint64_t offset;
  };
  uint32_t version = 3;
  std::vector<Kv> kvs;
  std::vector<Info> infos;
  std::string data;

  static std::string u32(uint32_t v) { return std::string((char *)&v, 4); }
  static std::string u64(uint64_t v) { return std::string((char *)&v, 8); }
  static std::string str(const std::string &s) { return u64(s.size()) + s; }

  static GgufFile parse(const std::string &b) {
    GgufFile f;
    size_t p = 4;
    auto r32 = [&] {
      uint32_t v;
      std::memcpy(&v, b.data() + p, 4);
      p += 4;
      return v;
    };
    auto r64 = [&] {
      uint64_t v;
      std::memcpy(&v, b.data() + p, 8);
      p += 8;
      return v;
    };
    auto rstr = [&] {
      uint64_t n = r64();
      std::string s = b.substr(p, n);
      p += n;
      return s;
    };
    const size_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    f.version = r32();
    uint64_t nTensors = r64(), nKv = r64();
    for (uint64_t k = 0; k < nKv; ++k) {
      Kv kv;
      kv.key = rstr();
      kv.type = r32();
      size_t start = p;
      if (kv.type == 8) {
        rstr();
      } else if (kv.type == 9) {
        uint32_t et = r32();
        uint64_t n = r64();
        for (uint64_t i = 0; i < n; ++i)
          et == 8 ? (void)rstr() : (void)(p += sizes[et]);
      } else {
        p += sizes[kv.type];
      }
      kv.value = b.substr(start, p - start);
      f.kvs.push_back(kv);
    }
    for (uint64_t k = 0; k < nTensors; ++k) {
      Info t;
      t.name = rstr();
      uint32_t nd = r32();
      for (uint32_t d = 0; d < nd; ++d)
        t.ne.push_back(int64_t(r64()));
      t.type = r32();
      t.offset = r64();
      f.infos.push_back(t);
    }
    f.data = b.substr((p + 31) / 32 * 32);
    return f;
  }

  std::string serialize() const {
    std::string out =
        "GGUF" + u32(version) + u64(infos.size()) + u64(kvs.size());
    for (const Kv &kv : kvs)
      out += str(kv.key) + u32(kv.type) + kv.value;
    for (const Info &t : infos) {
      out += str(t.name) + u32(uint32_t(t.ne.size()));
      for (int64_t n : t.ne)
        out += u64(uint64_t(n));
      out += u32(t.type) + u64(t.offset);
    }
    out.resize((out.size() + 31) / 32 * 32, '\0');
    return out + data;
  }

  Kv *kv(const std::string &key) {
    for (Kv &k : kvs)
      if (k.key == key)
        return &k;
    return nullptr;
  }
  void set(const std::string &key, uint32_t type, std::string raw) {
    if (Kv *k = kv(key)) {
      k->type = type;
      k->value = std::move(raw);
    } else {
      kvs.push_back({key, type, std::move(raw)});
    }
  }
  void setString(const std::string &key, const std::string &s) {
    set(key, 8, str(s));
  }
  void setU32(const std::string &key, uint32_t v) { set(key, 4, u32(v)); }
  void erase(const std::string &key) {
    for (size_t i = 0; i < kvs.size(); ++i)
      if (kvs[i].key == key)
        kvs.erase(kvs.begin() + long(i));
  }
  Info *info(const std::string &name) {
    for (Info &t : infos)
      if (t.name == name)
        return &t;
    ADD_FAILURE() << "no tensor " << name;
    return &infos[0];
  }
  void eraseInfo(const std::string &name) {
    for (size_t i = 0; i < infos.size(); ++i)
      if (infos[i].name == name)
        infos.erase(infos.begin() + long(i));
  }
};

void expectError(const std::string &bytes,
                 const std::vector<std::string> &parts) {
  try {
    Checkpoint::openFromMemory(bytes.data(), bytes.size(), "bad.gguf");
    ADD_FAILURE() << "accepted; expected an error with '" << parts[0] << "'";
  } catch (const CheckpointError &e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("bad.gguf: ", 0), 0u) << msg;
    for (const std::string &p : parts)
      EXPECT_NE(msg.find(p), std::string::npos)
          << "'" << p << "' not in: " << msg;
  }
}

//===----------------------------------------------------------------------===//
// Golden: every GGUF type reads back as the .pth
//===----------------------------------------------------------------------===//

enum class Stored { F32, F16, BF16, Q8_0, Q4_0, Q6_K };

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Projections, embedding and head: what llama.cpp quantizes.
bool isMatrix(const std::string &n) {
  return n == "emb.weight" || n == "head.weight" ||
         endsWith(n, "receptance.weight") || endsWith(n, "key.weight") ||
         endsWith(n, "value.weight") || endsWith(n, "output.weight");
}
// LoRA factors that convert_hf_to_gguf stores in the output type (w1/w2 are
// forced to F32); llama-quantize keeps all of them.
bool isLoraAvg(const std::string &n) {
  for (const char *s : {".a1", ".a2", ".v1", ".v2", ".g1", ".g2"})
    if (endsWith(n, s))
      return true;
  return false;
}
// Stored transposed in GGUF (blocks run along the released first axis).
bool isLora(const std::string &n) {
  return isLoraAvg(n) || endsWith(n, ".w1") || endsWith(n, ".w2");
}

/// The type make_gguf.py (llama.cpp's rules) stores a released tensor as.
Stored storedType(const std::string &file, const std::string &name,
                  bool q6kHead = false) {
  bool big = isMatrix(name) || isLoraAvg(name);
  if (file == "f32" || !big)
    return Stored::F32;
  if (file == "f16")
    return Stored::F16;
  if (file == "bf16")
    return Stored::BF16;
  if (file == "q8_0")
    return Stored::Q8_0;
  // q4_0: llama-quantize from the BF16 file; the head gets Q6_K (Q8_0 when
  // n_embd is not a multiple of 256), the LoRA factors stay BF16.
  if (isLoraAvg(name))
    return Stored::BF16;
  if (name == "head.weight")
    return q6kHead ? Stored::Q6_K : Stored::Q8_0;
  return Stored::Q4_0;
}

// Q4_0 and Q8_0 matrices are repacked to int4 (u8 codes) and int8 (i8
// codes) with bf16 scales, not decoded; Q8_0 LoRA factors are decoded.
DType exposedDType(Stored s, const std::string &name) {
  return s == Stored::F32                      ? DType::F32
         : s == Stored::F16                    ? DType::F16
         : s == Stored::Q4_0                   ? DType::U8
         : s == Stored::Q8_0 && isMatrix(name) ? DType::I8
                                               : DType::BF16;
}

bool isRepacked(const Tensor &t) {
  return t.dtype == DType::U8 || t.dtype == DType::I8;
}

/// Element `i` (row-major, released shape) of `t` as a float; a packed int4
/// matrix (u8 [rows, cols / 2]) or a grouped int8 one (i8 [rows, cols]) is
/// decoded with its `_scale` tensor of `c` ([rows, cols / G]): code * scale,
/// both exactly as stored.
float valueAt(const Checkpoint &c, const Tensor &t, int64_t i) {
  if (!isRepacked(t))
    return t.getAsFloat(i);
  const Tensor &scale = c.get(t.name + "_scale");
  const bool int4 = t.dtype == DType::U8;
  int64_t cols = int4 ? 2 * t.shape[1] : t.shape[1], row = i / cols,
          col = i % cols;
  int code;
  if (int4) {
    uint8_t byte =
        static_cast<const uint8_t *>(t.data)[row * t.shape[1] + col / 2];
    code = ((col % 2 ? byte >> 4 : byte & 0x0F) ^ 8) - 8;
  } else {
    code = static_cast<const int8_t *>(t.data)[row * cols + col];
  }
  int64_t group = cols / scale.shape[1];
  return float(code) * scale.getAsFloat(row * scale.shape[1] + col / group);
}

/// Per element of `ref` (released layout), the largest |x| of its
/// quantization block (blocks of `block` along ggml's ne[0]).
std::vector<float> blockAbsMax(const Tensor &ref, bool transposed,
                               int64_t block) {
  int64_t n = ref.numel();
  int64_t rows = ref.shape[0], cols = n / rows;
  // GGUF order: a transposed factor [rows, cols] is stored [cols, rows].
  auto ggufIndex = [&](int64_t i) {
    return transposed ? (i % cols) * rows + i / cols : i;
  };
  std::vector<float> amaxOfBlock(size_t(n / block), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    float &m = amaxOfBlock[size_t(ggufIndex(i) / block)];
    m = std::max(m, std::fabs(ref.getAsFloat(i)));
  }
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    out[size_t(i)] = amaxOfBlock[size_t(ggufIndex(i) / block)];
  return out;
}

/// Checks every value of `got` against the .pth tensor `ref`; returns the
/// largest error relative to its block's absmax (0 where exact).
float checkValues(const Checkpoint &c, const Tensor &got, const Tensor &ref,
                  Stored stored) {
  int64_t n = ref.numel();
  float worst = 0;
  if (stored == Stored::F32 || stored == Stored::BF16 ||
      stored == Stored::F16) {
    for (int64_t i = 0; i < n; ++i) {
      float want = ref.getAsFloat(i);
      if (stored == Stored::F16)
        want = f16ToF32(f32ToF16(want));
      float have = valueAt(c, got, i);
      if (have != want) {
        ADD_FAILURE() << got.name << "[" << i << "] = " << have << ", expected "
                      << want;
        return INFINITY;
      }
    }
    return 0;
  }
  // Q8_0: |x - d q| <= d/2 with d = absmax/127; Q4_0: |d| = absmax/8 and the
  // one clipped code costs up to |d|; Q6_K (our encoder): about one step of
  // the largest sub-block, absmax/32. Plus the f16 rounding of the scales
  // and the bf16 rounding of the dequantized value.
  int64_t block = stored == Stored::Q6_K ? 256 : 32;
  float rel = stored == Stored::Q8_0   ? 1.0f / 254
              : stored == Stored::Q4_0 ? 1.0f / 8
                                       : 1.0f / 25;
  std::vector<float> amax = blockAbsMax(ref, isLora(ref.name), block);
  for (int64_t i = 0; i < n; ++i) {
    float want = ref.getAsFloat(i), have = valueAt(c, got, i);
    float a = amax[size_t(i)];
    float tol = a * (rel + 1.0f / 1024) + std::fabs(want) / 256;
    float err = std::fabs(have - want);
    if (!(err <= tol)) {
      ADD_FAILURE() << got.name << "[" << i << "] = " << have << ", .pth "
                    << want << ": error " << err << " > " << tol
                    << " (block absmax " << a << ")";
      return INFINITY;
    }
    if (a > 0)
      worst = std::max(worst, err / a);
  }
  return worst;
}

void checkAgainstPth(const std::string &ggufFile, const std::string &pthFile,
                     const std::string &type, bool q6kHead) {
  auto gguf = Checkpoint::open(ggufFile);
  auto pth = Checkpoint::open(pthFile);
  EXPECT_EQ(gguf->format(), Checkpoint::Format::Gguf);
  EXPECT_STREQ(Checkpoint::formatName(gguf->format()), "gguf");
  EXPECT_EQ(gguf->formatVersion(), 3u);
  // Each repacked Q4_0/Q8_0 matrix brings its scales, right after it.
  size_t scales = 0;
  for (const Tensor &t : gguf->tensors())
    scales += isRepacked(t);
  ASSERT_EQ(gguf->tensors().size(), pth->tensors().size() + scales);
  ModelConfig cg = detectConfig(*gguf), cp = detectConfig(*pth);
  // The model's dtype is its first float tensor's: in a Q4_0 or Q8_0 file
  // the embedding is int4 or int8, and the next tensor is an F32 vector.
  EXPECT_EQ(cg.dtype, type == "f32" || type == "q4_0" || type == "q8_0"
                          ? DType::F32
                      : type == "f16" ? DType::F16
                                      : DType::BF16);
  cg.dtype = cp.dtype;
  if (type == "q4_0" || type == "q8_0") {
    // Q4_0's head is Q6_K, or Q8_0 (repacked to int8) when n_embd is not a
    // multiple of 256.
    bool int8 = type == "q8_0" || !q6kHead;
    EXPECT_TRUE(cg.quantized);
    EXPECT_EQ(cg.int4Group, type == "q4_0" ? 32 : 0);
    EXPECT_EQ(cg.hasInt8, int8);
    EXPECT_EQ(cg.int8Group, int8 ? 32 : 0);
    cg.quantized = cg.hasInt8 = false;
    cg.int4Group = cg.int8Group = 0;
  }
  EXPECT_EQ(cg.toJson(), cp.toJson());
  std::map<Stored, float> worst;
  size_t gi = 0;
  for (size_t i = 0; i < pth->tensors().size(); ++i, ++gi) {
    const Tensor &p = pth->tensors()[i];
    ASSERT_LT(gi, gguf->tensors().size());
    const Tensor &g = gguf->tensors()[gi];
    SCOPED_TRACE(p.name);
    // The released order and names.
    ASSERT_EQ(g.name, p.name);
    Stored stored = storedType(type, p.name, q6kHead);
    EXPECT_EQ(g.dtype, exposedDType(stored, p.name))
        << dtypeName(g.dtype) << " from " << gguf->tensorSource(g.name);
    EXPECT_FALSE(gguf->tensorSource(g.name).empty());
    if (isRepacked(g)) {
      // int4: two codes per byte; one bf16 scale per Q4_0/Q8_0 block of 32.
      EXPECT_EQ(g.shape, (std::vector<int64_t>{p.shape[0], g.dtype == DType::U8
                                                               ? p.shape[1] / 2
                                                               : p.shape[1]}));
      ASSERT_LT(gi + 1, gguf->tensors().size());
      const Tensor &sc = gguf->tensors()[++gi];
      EXPECT_EQ(sc.name, p.name + "_scale");
      EXPECT_EQ(sc.dtype, DType::BF16);
      EXPECT_EQ(sc.shape, (std::vector<int64_t>{p.shape[0], p.shape[1] / 32}));
    } else {
      EXPECT_EQ(g.shape, p.shape);
    }
    float w = checkValues(*gguf, g, p, stored);
    worst[stored] = std::max(worst[stored], w);
  }
  const char *names[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q6_K"};
  for (const auto &[s, w] : worst)
    std::printf("[ %s ] %s: max |gguf - pth| / block absmax %.4f\n",
                type.c_str(), names[int(s)], w);
}

class GgufGolden : public ::testing::TestWithParam<const char *> {};

TEST_P(GgufGolden, ReadsBackAsThePth) {
  SKIP_WITHOUT_GGUF();
  checkAgainstPth(ggufPath(GetParam()), kShared + "/golden/tiny/model.pth",
                  GetParam(), false);
}

INSTANTIATE_TEST_SUITE_P(
    Types, GgufGolden, ::testing::Values("f32", "f16", "bf16", "q8_0", "q4_0"),
    [](const auto &info) { return std::string(info.param); });

// A real Q4_0 file's head is Q6_K (n_embd 256 here, from rwkv-init).
TEST(Gguf, Q6KHead) {
  SKIP_WITHOUT_GGUF();
  checkAgainstPth(ggufPath("q4_0", "small256"), kGgufDir + "/small256.pth",
                  "q4_0", true);
  auto g = Checkpoint::open(ggufPath("q4_0", "small256"));
  EXPECT_EQ(g->tensorSource("head.weight"),
            "output.weight (Q6_K dequantized to bf16, ggml ne [256, 64])");
}

// Bit-exact decoding: make_gguf.py --dequantized writes the same file with
// each Q8_0/Q4_0/Q6_K tensor decoded by gguf-py's numpy code (quants.py) and
// stored as BF16. Dequantized tensors must read back identically. A
// repacked Q4_0 matrix must hold gguf-py's codes exactly (|code| <= 8, so
// value / scale is within 8 * 2^-8 of the code) and its scale within the
// bf16 rounding of the f16 one: code * scale within 2^-8 of gguf-py's value.
// A repacked Q8_0 matrix must hold the file's codes byte for byte and its
// f16 scales rounded to bf16; code * scale is then within two bf16
// roundings (2^-7) of gguf-py's value.
TEST(Gguf, DequantizationMatchesGgufPy) {
  SKIP_WITHOUT_GGUF();
  for (const char *file : {"tiny-q8_0", "tiny-q4_0", "small256-q4_0"}) {
    SCOPED_TRACE(file);
    auto q = Checkpoint::open(kGgufDir + "/" + file + ".gguf");
    GgufFile raw = GgufFile::parse(readFile(kGgufDir + "/" + file + ".gguf"));
    auto ref = Checkpoint::open(kGgufDir + "/" + file + "-deq.gguf");
    int quantized = 0, repacked4 = 0, repacked8 = 0;
    for (const Tensor &b : ref->tensors()) {
      const Tensor &a = q->get(b.name);
      bool packed = isRepacked(a);
      if (!packed) {
        ASSERT_EQ(a.shape, b.shape) << a.name;
        ASSERT_EQ(a.dtype, b.dtype) << a.name;
      }
      std::string_view from = q->tensorSource(a.name);
      quantized += from.find("dequantized") != std::string_view::npos;
      repacked4 += from.find("Q4_0 repacked to int4") != std::string_view::npos;
      repacked8 += from.find("Q8_0 repacked to int8") != std::string_view::npos;
      EXPECT_EQ(packed, from.find("repacked") != std::string_view::npos);
      for (int64_t k = 0; k < b.numel(); ++k) {
        float have = valueAt(*q, a, k), want = b.getAsFloat(k);
        bool ok = have == want;
        if (packed && a.dtype == DType::I8) {
          ok = std::fabs(have - want) <= std::fabs(want) / 128;
        } else if (packed) {
          const Tensor &sc = q->get(a.name + "_scale");
          int64_t cols = 2 * a.shape[1];
          float s = sc.getAsFloat((k / cols) * sc.shape[1] +
                                  (k % cols) / (cols / sc.shape[1]));
          ok = s == 0 ? want == 0
                      : std::nearbyint(want / s) == have / s &&
                            std::fabs(have - want) <= std::fabs(want) / 256;
        }
        if (!ok) {
          ADD_FAILURE() << a.name << "[" << k << "] = " << have
                        << ", gguf-py decodes " << want;
          break;
        }
      }
      if (a.dtype != DType::I8)
        continue;
      // Q8_0 block j (row j / groups, group j % groups): 2 bytes of f16
      // scale, then the 32 codes.
      std::string ggufName(from.substr(0, from.find(' ')));
      const GgufFile::Info *info = raw.info(ggufName);
      ASSERT_EQ(info->type, 8u) << ggufName;
      const char *blocks = raw.data.data() + info->offset;
      const Tensor &sc = q->get(a.name + "_scale");
      ASSERT_EQ(sc.shape, (std::vector<int64_t>{a.shape[0], a.shape[1] / 32}));
      for (int64_t j = 0; j < sc.numel(); ++j) {
        uint16_t d;
        std::memcpy(&d, blocks + 34 * j, 2);
        ASSERT_EQ(sc.getAsFloat(j), bf16ToF32(f32ToBf16(f16ToF32(d))))
            << a.name << " block " << j;
        ASSERT_EQ(std::memcmp(static_cast<const int8_t *>(a.data) + 32 * j,
                              blocks + 34 * j + 2, 32),
                  0)
            << a.name << " block " << j;
      }
    }
    // golden/tiny: 12 projections, the embedding and the head are
    // repacked, the Q8_0 LoRA factors dequantized (10: layer 0's v1/v2 are
    // dropped). The Q4_0 files' head is Q8_0 (repacked to int8) or, in
    // small256, Q6_K (dequantized).
    std::string name = file;
    if (name == "tiny-q8_0") {
      EXPECT_EQ(quantized, 10);
      EXPECT_EQ(repacked4, 0);
      EXPECT_EQ(repacked8, 14);
    } else {
      EXPECT_EQ(quantized, name == "tiny-q4_0" ? 0 : 1);
      EXPECT_EQ(repacked4, 13);
      EXPECT_EQ(repacked8, name == "tiny-q4_0" ? 1 : 0);
    }
  }
}

TEST(Gguf, SourceInfoAndViews) {
  SKIP_WITHOUT_GGUF();
  auto g = Checkpoint::open(ggufPath("q8_0"));
  std::map<std::string, std::string> info(g->sourceInfo().begin(),
                                          g->sourceInfo().end());
  EXPECT_EQ(info["format"], "GGUF v3 (llama.cpp)");
  EXPECT_EQ(info["architecture"], "rwkv7");
  EXPECT_EQ(info["file_type"], "MOSTLY_Q8_0 (7)");
  EXPECT_EQ(info["tensor_types"], "F32 x36, Q8_0 x26");
  // The 14 matrices are repacked to int8; of the 12 LoRA factors, layer 0's
  // two dummy v1/v2 copies are dropped, not dequantized.
  EXPECT_EQ(info["repacked_to_int8"], "Q8_0 x14");
  EXPECT_EQ(info.count("repacked_to_int4"), 0u);
  EXPECT_EQ(info["dequantized_to_bf16"], "Q8_0 x10");
  EXPECT_NE(info["dropped"].find("blk.0.time_mix_v0/v1/v2"), std::string::npos);
  EXPECT_EQ(g->tensorSource("blocks.1.att.x_k"),
            "blk.1.time_mix_lerp_fused.weight[2] (F32, ggml ne [128, 1, 1, "
            "6])");
  EXPECT_EQ(g->tensorSource("blocks.0.att.a1"),
            "blk.0.time_mix_a1.weight (Q8_0 dequantized to bf16, ggml ne "
            "[128, 32], transposed)");
  EXPECT_EQ(g->tensorSource("blocks.0.att.key.weight"),
            "blk.0.time_mix_key.weight (Q8_0 repacked to int8, ggml ne "
            "[128, 128])");
  EXPECT_EQ(g->tensorSource("blocks.0.att.key.weight_scale"),
            "blk.0.time_mix_key.weight (Q8_0 block scales, f16 rounded to "
            "bf16)");
  EXPECT_TRUE(g->tensorSource("nothing").empty());
  // The codes and scales of the first block of the key matrix, as stored.
  const Tensor &k = g->get("blocks.0.att.key.weight");
  const Tensor &ks = g->get("blocks.0.att.key.weight_scale");
  EXPECT_EQ(k.dtype, DType::I8);
  EXPECT_EQ(k.shape, (std::vector<int64_t>{128, 128}));
  EXPECT_TRUE(k.isContiguous());
  EXPECT_EQ(ks.dtype, DType::BF16);
  EXPECT_EQ(ks.shape, (std::vector<int64_t>{128, 4}));
  ModelConfig cfg = detectConfig(*g);
  EXPECT_EQ(cfg.int8Group, 32);
  EXPECT_EQ(cfg.int4Group, 0);
  EXPECT_NE(cfg.toJson().find("\"int8_group_size\": 32"), std::string::npos)
      << cfg.toJson();

  // F32/F16/BF16 are zero-copy: views into the mapping, the LoRA factors
  // strided (transposed), r_k reshaped.
  auto b = Checkpoint::open(ggufPath("bf16"));
  const Tensor &w1 = b->get("blocks.0.att.w1");
  EXPECT_EQ(w1.shape, (std::vector<int64_t>{128, 32}));
  EXPECT_EQ(w1.strides, (std::vector<int64_t>{1, 128}));
  EXPECT_FALSE(w1.isContiguous());
  EXPECT_EQ(b->get("blocks.0.att.r_k").shape, (std::vector<int64_t>{2, 64}));
  EXPECT_TRUE(b->get("blocks.0.att.key.weight").isContiguous());
  // x_r..x_g are consecutive slices of the fused tensor.
  const Tensor &xr = b->get("blocks.0.att.x_r");
  const Tensor &xw = b->get("blocks.0.att.x_w");
  EXPECT_EQ(static_cast<const char *>(xw.data) -
                static_cast<const char *>(xr.data),
            128 * 4);
  std::map<std::string, std::string> binfo(b->sourceInfo().begin(),
                                           b->sourceInfo().end());
  EXPECT_EQ(binfo.count("dequantized_to_bf16"), 0u);
}

TEST(Gguf, OpenFromMemoryAndVersion2) {
  SKIP_WITHOUT_GGUF();
  std::string bytes = readFile(ggufPath("f16"));
  auto a = Checkpoint::open(ggufPath("f16"));
  auto m = Checkpoint::openFromMemory(bytes.data(), bytes.size(), "m.gguf");
  ASSERT_EQ(a->tensors().size(), m->tensors().size());
  for (size_t i = 0; i < a->tensors().size(); ++i) {
    const Tensor &x = a->tensors()[i], &y = m->tensors()[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.getAsFloat(x.numel() - 1), y.getAsFloat(y.numel() - 1));
  }
  // GGUF v2 has the same little-endian layout.
  GgufFile f = GgufFile::parse(bytes);
  f.version = 2;
  std::string v2 = f.serialize();
  auto c = Checkpoint::openFromMemory(v2.data(), v2.size(), "v2.gguf");
  EXPECT_EQ(c->formatVersion(), 2u);
  EXPECT_EQ(c->tensors().size(), a->tensors().size());
  // Unknown extra metadata of every value type is skipped.
  f.set("x.u8", 0, std::string(1, '\x07'));
  f.set("x.i64", 11, GgufFile::u64(uint64_t(-5)));
  f.set("x.f64", 12, GgufFile::u64(0));
  f.set("x.bool", 7, std::string(1, '\x01'));
  f.set("x.arr", 9,
        GgufFile::u32(6) + GgufFile::u64(3) + std::string(12, '\0'));
  f.set("x.empty_strings", 9, GgufFile::u32(8) + GgufFile::u64(0));
  std::string extra = f.serialize();
  EXPECT_EQ(Checkpoint::openFromMemory(extra.data(), extra.size(), "x.gguf")
                ->tensors()
                .size(),
            a->tensors().size());
}

//===----------------------------------------------------------------------===//
// Malformed files
//===----------------------------------------------------------------------===//

class GgufErrors : public ::testing::Test {
protected:
  void SetUp() override {
    if (kGgufDir.empty())
      GTEST_SKIP() << "no GGUF test files";
    bytes = readFile(ggufPath("q8_0"));
    ASSERT_FALSE(bytes.empty());
    file = GgufFile::parse(bytes);
  }
  GgufFile edit() const { return file; }
  std::string bytes;
  GgufFile file;
};

TEST_F(GgufErrors, Sanity) {
  // The editor's round trip is byte-exact, so every edit below is minimal.
  EXPECT_EQ(file.serialize(), bytes);
}

TEST_F(GgufErrors, Truncated) {
  // In the header, the metadata (the token list), the tensor infos or their
  // padding, and the data.
  size_t dataStart = bytes.size() - file.data.size();
  for (size_t cut : {size_t(6), size_t(3000), dataStart - 100, dataStart - 10})
    expectError(bytes.substr(0, cut), {"truncated GGUF file"});
  expectError(bytes.substr(0, dataStart + 100),
              {"extend past the end of the file"});
  expectError(bytes.substr(0, bytes.size() - 32), {"extend past the end"});
  // So short that the counts alone cannot fit.
  expectError(bytes.substr(0, 30),
              {"claims 21 metadata entries, more than the 30-byte file"});
  expectError(bytes.substr(0, 500),
              {"claims 62 tensors, more than the 500-byte file"});
  // Through open() (the mmap path) too.
  char tmpl[] = "/tmp/rwkv-gguf-test-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, bytes.data(), 3000), 3000);
  close(fd);
  try {
    Checkpoint::open(tmpl);
    ADD_FAILURE() << "accepted a truncated file";
  } catch (const CheckpointError &e) {
    EXPECT_NE(std::string(e.what()).find("truncated GGUF file"),
              std::string::npos)
        << e.what();
  }
  unlink(tmpl);
}

TEST_F(GgufErrors, MagicAndVersion) {
  std::string b = bytes;
  b[3] = 'X';
  expectError(b, {"not a checkpoint"});
  GgufFile f = edit();
  f.version = 4;
  expectError(f.serialize(), {"unsupported GGUF version 4"});
  f.version = 1;
  expectError(f.serialize(), {"GGUF v1"});
  f.version = 0x03000000;
  expectError(f.serialize(), {"big-endian GGUF (v3)"});
}

TEST_F(GgufErrors, HugeCounts) {
  std::string b = bytes;
  uint64_t huge = uint64_t(1) << 62;
  std::memcpy(&b[8], &huge, 8); // n_tensors
  expectError(b, {"claims 4611686018427387904 tensors"});
  b = bytes;
  std::memcpy(&b[16], &huge, 8); // n_kv
  expectError(b, {"claims 4611686018427387904 metadata entries"});
  // A string length past the end of the file (the first key's).
  b = bytes;
  std::memcpy(&b[24], &huge, 8);
  expectError(b, {"truncated GGUF file", "metadata entry 0"});
  // An array whose count the file cannot hold.
  GgufFile f = edit();
  f.set("tokenizer.ggml.tokens", 9, GgufFile::u32(8) + GgufFile::u64(huge));
  expectError(f.serialize(), {"'tokenizer.ggml.tokens' claims", "strings"});
  f = edit();
  f.set("x.ints", 9, GgufFile::u32(5) + GgufFile::u64(huge));
  expectError(f.serialize(), {"'x.ints' claims", "i32 values"});
  f = edit();
  f.set("x.nested", 9, GgufFile::u32(9) + GgufFile::u64(1));
  expectError(f.serialize(), {"'x.nested' is an array of arrays"});
  f = edit();
  f.set("x.bad", 77, "");
  expectError(f.serialize(), {"'x.bad' has unknown value type 77"});
}

TEST_F(GgufErrors, TensorInfos) {
  GgufFile f = edit();
  f.info("token_embd.weight")->ne = {128, 512, 1, 1, 1};
  expectError(f.serialize(),
              {"'token_embd.weight' has 5 dimensions; GGUF allows 1 to 4"});
  f = edit();
  f.info("blk.1.time_mix_key.weight")->ne[1] = -3;
  expectError(f.serialize(), {"'blk.1.time_mix_key.weight' has a negative "
                              "dimension ne[1] = -3"});
  f = edit();
  f.info("output.weight")->ne = {128, int64_t(1) << 40, int64_t(1) << 40};
  expectError(f.serialize(), {"'output.weight'", "more elements than fit"});
  // Found by fuzz.checkpoint.gguf: a zero dimension made the tensor empty
  // (0 bytes, so no offset check could fail) while ne[0] stayed huge, and
  // the Q8_0 dequantizer allocated a row of ne[0] floats.
  f = edit();
  f.info("output.weight")->ne = {int64_t(1) << 56, 0};
  expectError(f.serialize(), {"'output.weight' has an empty dimension "
                              "ne[1] = 0"});
  f = edit();
  f.info("output.weight")->type = 99;
  expectError(f.serialize(), {"'output.weight' has unknown ggml type 99"});
  f = edit();
  f.info("output.weight")->ne = {100, 512};
  expectError(f.serialize(), {"'output.weight' (Q8_0, ggml ne [100, 512])",
                              "not a multiple of the Q8_0 block size 32"});
  f = edit();
  f.infos.push_back(f.infos[3]);
  expectError(f.serialize(), {"duplicate tensor name '"});
  f = edit();
  f.kvs.push_back(f.kvs[0]);
  expectError(f.serialize(), {"duplicate metadata key 'general.architecture'"});
}

TEST_F(GgufErrors, OffsetsAndAlignment) {
  GgufFile f = edit();
  f.info("output.weight")->offset = uint64_t(1) << 40;
  expectError(f.serialize(), {"'output.weight' (Q8_0, ggml ne [128, 512])",
                              "extend past the end of the file"});
  f = edit();
  f.info("output.weight")->offset = uint64_t(-32);
  expectError(f.serialize(), {"'output.weight'", "extend past the end"});
  f = edit();
  f.info("output.weight")->offset += 4;
  expectError(f.serialize(),
              {"'output.weight'", "is not a multiple of the alignment 32"});
  f = edit();
  f.info("output.weight")->offset = f.info("token_embd.weight")->offset;
  expectError(f.serialize(), {"overlap in the data section"});
  f = edit();
  f.setU32("general.alignment", 3);
  expectError(f.serialize(), {"'general.alignment' is 3"});
  f = edit();
  f.set("general.alignment", 8, GgufFile::str("32"));
  expectError(f.serialize(), {"'general.alignment' is the string '32'"});
}

TEST_F(GgufErrors, Architecture) {
  GgufFile f = edit();
  f.setString("general.architecture", "llama");
  expectError(f.serialize(),
              {"general.architecture is 'llama', expected 'rwkv7'"});
  f.setString("general.architecture", "rwkv6");
  expectError(f.serialize(), {"'rwkv6'", "for RWKV-6 use the released .pth"});
  f.erase("general.architecture");
  expectError(f.serialize(), {"no 'general.architecture' metadata"});
  f = edit();
  f.setU32("general.architecture", 7);
  expectError(f.serialize(),
              {"'general.architecture' is u32 7, expected a string"});
  f = edit();
  f.setU32("split.count", 3);
  expectError(f.serialize(), {"part 1 of a 3-part split GGUF"});
}

TEST_F(GgufErrors, HyperParameters) {
  GgufFile f = edit();
  f.erase("rwkv7.wkv.head_size");
  expectError(f.serialize(), {"missing metadata 'rwkv7.wkv.head_size'"});
  f = edit();
  f.setU32("rwkv7.wkv.head_size", 48);
  expectError(f.serialize(), {"not a multiple of rwkv7.wkv.head_size 48"});
  f = edit();
  f.setU32("rwkv7.block_count", 3);
  expectError(f.serialize(), {"missing tensor 'blk.2.attn_norm.weight' "
                              "(blocks.2.ln1.weight [128]"});
  f = edit();
  f.setU32("rwkv7.block_count", 1);
  expectError(f.serialize(), {"'blk.1.", "belongs to block 1, but "
                                         "rwkv7.block_count is 1"});
  f = edit();
  f.setU32("rwkv7.block_count", 1000000);
  expectError(f.serialize(), {"rwkv7.block_count is 1000000, but the file "
                              "holds only 62 tensors"});
  f.setU32("rwkv7.block_count", 4000000000u);
  expectError(f.serialize(), {"'rwkv7.block_count' is 4000000000, not a "
                              "plausible size"});
  f = edit();
  f.setU32("rwkv7.attention.decay_lora_rank", 64);
  expectError(f.serialize(),
              {"metadata 'rwkv7.attention.decay_lora_rank' is 64, but "
               "tensor 'blk.0.time_mix_w1.weight' has 32"});
  f = edit();
  f.setU32("rwkv7.feed_forward_length", 500);
  expectError(f.serialize(), {"'rwkv7.feed_forward_length' is 500"});
  f = edit();
  float eps = 1e-6f;
  f.set("rwkv7.attention.layer_norm_epsilon", 6, std::string((char *)&eps, 4));
  expectError(f.serialize(), {"layer_norm_epsilon is 1e-06", "use 1e-5"});
  f = edit();
  f.set("rwkv7.embedding_length", 11, GgufFile::u64(uint64_t(-128)));
  expectError(f.serialize(), {"'rwkv7.embedding_length' is i64 -128"});
}

TEST_F(GgufErrors, Tensors) {
  GgufFile f = edit();
  f.eraseInfo("blk.1.time_mix_w1.weight");
  expectError(f.serialize(), {"missing tensor 'blk.1.time_mix_w1.weight' "
                              "(blocks.1.att.w1 [128, 32]"});
  f = edit();
  f.eraseInfo("blk.0.time_mix_lerp_fused.weight");
  expectError(f.serialize(),
              {"missing tensor 'blk.0.time_mix_lerp_fused.weight' "
               "(blocks.0.att.x_r"});
  f = edit();
  f.info("blk.0.time_mix_k_k.weight")->name = "blk.0.time_mix_gate.weight";
  expectError(f.serialize(), {"unexpected tensor 'blk.0.time_mix_gate."
                              "weight'"});
  f = edit();
  f.info("blk.0.time_mix_k_k.weight")->name = "blk.01.time_mix_k_k.weight";
  expectError(f.serialize(), {"unexpected tensor 'blk.01.time_mix_k_k"});
  f = edit();
  f.info("blk.0.time_mix_k_k.weight")->name = "rope_freqs.weight";
  expectError(f.serialize(), {"unexpected tensor 'rope_freqs.weight'"});
  f = edit();
  // An ARWKV-style fused lerp of 5 vectors (same bytes: fewer elements).
  f.info("blk.0.time_mix_lerp_fused.weight")->ne = {128, 1, 1, 5};
  expectError(f.serialize(), {"holds 5 token-shift vectors"});
  f = edit();
  f.info("blk.0.time_mix_w0.weight")->ne = {64};
  expectError(f.serialize(), {"'blk.0.time_mix_w0.weight' (F32, ggml ne "
                              "[64]) (blocks.0.att.w0) should be a vector "
                              "of n_embd = 128"});
  f = edit();
  f.info("blk.0.time_mix_key.weight")->ne = {128, 64};
  expectError(f.serialize(),
              {"blk.0.time_mix_key.weight (Q8_0 repacked to int8, ggml ne "
               "[128, 64]) maps to 'blocks.0.att.key.weight' with shape [64, "
               "128], expected [128, 128]"});
  f = edit();
  f.info("blk.0.time_mix_key.weight")->type = 26; // I32: 4 bytes / element
  f.info("blk.0.time_mix_key.weight")->ne = {32, 17};
  expectError(f.serialize(),
              {"has type I32, which this reader does not support"});
}

} // namespace
