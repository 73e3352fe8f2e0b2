//===- ModelInfo.cpp - Parse rwkv_model_info() and bind weights -----------===//
//
// Everything here works on plain data (JSON text, a Checkpoint), so it is
// unit-testable without a compiled library.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/Runtime.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <set>

namespace rwkv {

using Json = nlohmann::json;

const char *argKindName(ArgInfo::Kind kind) {
  switch (kind) {
  case ArgInfo::Kind::Tokens:
    return "tokens";
  case ArgInfo::Kind::State:
    return "state";
  case ArgInfo::Kind::Weight:
    return "weight";
  case ArgInfo::Kind::Logits:
    return "logits";
  }
  return "?";
}

static std::string shapeStr(const std::vector<int64_t> &shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

//===----------------------------------------------------------------------===//
// ModelInfo
//===----------------------------------------------------------------------===//

namespace {
struct InfoParser {
  const std::string &source;

  [[noreturn]] void fail(const std::string &what) const {
    throw RuntimeError(
        fmt::format("{}: bad rwkv_model_info: {}", source, what));
  }

  /// `resultIndex` >= 0 for results: those may lack a kind/name (the state
  /// attribute sits on arguments only), and are then matched by position.
  ArgInfo parseArg(const Json &j, const std::string &where,
                   int64_t resultIndex) const {
    if (!j.is_object())
      fail(fmt::format("{} is not an object", where));
    ArgInfo a;
    std::string kind = j.value("kind", "");
    bool anonymous = false;
    if (resultIndex >= 0 && (kind.empty() || kind == "unknown")) {
      kind = resultIndex == 0 ? "logits" : "state";
      anonymous = true;
    }
    if (kind == "tokens")
      a.kind = ArgInfo::Kind::Tokens;
    else if (kind == "state")
      a.kind = ArgInfo::Kind::State;
    else if (kind == "weight")
      a.kind = ArgInfo::Kind::Weight;
    else if (kind == "logits")
      a.kind = ArgInfo::Kind::Logits;
    else
      fail(fmt::format("{} has unknown kind '{}'", where, kind));
    a.name = j.value("name", std::string(argKindName(a.kind)));
    if (j.contains("layer") && j["layer"].is_number_integer())
      a.layer = j["layer"].get<int64_t>();
    // The MLIR attribute spells state as "<name>:<layer>"; accept it too.
    if (a.kind == ArgInfo::Kind::State) {
      size_t colon = a.name.find(':');
      if (colon != std::string::npos) {
        if (a.layer < 0)
          a.layer = std::atoll(a.name.c_str() + colon + 1);
        a.name.resize(colon);
      }
      if (j.contains("init")) {
        if (!j["init"].is_number())
          fail(fmt::format("{} (state '{}') has a non-numeric init", where,
                           a.name));
        a.init = j["init"].get<float>();
      }
      if (anonymous && !j.contains("name"))
        a.name.clear();
      else if (a.layer < 0)
        fail(fmt::format("{} (state '{}') has no layer", where, a.name));
    }
    try {
      a.dtype = parseDType(j.value("dtype", ""));
    } catch (const CheckpointError &) {
      fail(fmt::format("{} ('{}') has unknown dtype '{}'", where, a.name,
                       j.value("dtype", "")));
    }
    if (!j.contains("shape") || !j["shape"].is_array())
      fail(fmt::format("{} ('{}') has no shape", where, a.name));
    for (const Json &d : j["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < -1)
        fail(fmt::format("{} ('{}') has a bad shape {}", where, a.name,
                         j["shape"].dump()));
      a.shape.push_back(d.get<int64_t>());
    }
    return a;
  }

  std::vector<ArgInfo> parseList(const Json &j, const std::string &where,
                                 bool results) const {
    if (!j.is_array())
      fail(fmt::format("{} is not an array", where));
    std::vector<ArgInfo> out;
    for (size_t i = 0; i < j.size(); ++i)
      out.push_back(parseArg(j[i], fmt::format("{}[{}]", where, i),
                             results ? int64_t(i) : -1));
    return out;
  }
};

bool hasDynamic(const std::vector<int64_t> &shape) {
  return std::find(shape.begin(), shape.end(), -1) != shape.end();
}
} // namespace

ModelInfo ModelInfo::parse(std::string_view text, const std::string &source) {
  InfoParser p{source};
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception &e) {
    p.fail(fmt::format("not JSON ({})", e.what()));
  }
  if (!j.is_object())
    p.fail("not a JSON object");

  ModelInfo info;
  info.json = std::string(text);
  // Check the version first: another ABI may change everything else.
  if (!j.contains("abi_version") || !j["abi_version"].is_number_integer())
    p.fail("no integer 'abi_version'");
  info.abiVersion = j["abi_version"].get<int>();
  if (info.abiVersion != kRuntimeAbiVersion)
    throw RuntimeError(fmt::format(
        "{}: library has ABI version {}, this runtime implements version {}",
        source, info.abiVersion, kRuntimeAbiVersion));

  // A library without a target is a CPU one (as before targets existed).
  if (j.contains("target")) {
    if (!j["target"].is_string())
      p.fail("'target' is not a string");
    std::string target = j["target"].get<std::string>();
    if (target == "cuda")
      info.target = ModelInfo::Target::Cuda;
    else if (target != "cpu")
      p.fail(fmt::format("unknown target '{}' (this runtime runs 'cpu' and "
                         "'cuda' libraries)",
                         target));
  }
  if (info.target == ModelInfo::Target::Cuda) {
    if (!j.contains("cuda_arch") || !j["cuda_arch"].is_string())
      p.fail("a CUDA library has no string 'cuda_arch'");
    info.cudaArch = j["cuda_arch"].get<std::string>();
  }

  if (!j.contains("config") || !j["config"].is_object())
    p.fail("no 'config' object");
  for (const auto &[key, value] : j["config"].items()) {
    if (value.is_number_integer())
      info.config.emplace_back(key, value.get<int64_t>());
    else if (key == "dtype" && value.is_string())
      info.configDType = value.get<std::string>();
  }
  if (j.contains("batch")) {
    if (!j["batch"].is_number_integer() || j["batch"].get<int64_t>() < 1)
      p.fail("'batch' is not a positive integer");
    info.batch = j["batch"].get<int64_t>();
  }

  if (j.contains("kernel") && j["kernel"].is_string())
    p.fail("is a kernel library ('" + j["kernel"].get<std::string>() +
           "'), not a model; open it with rwkvrt_kernel_open");
  if (!j.contains("args"))
    p.fail("no 'args' list");
  info.args = p.parseList(j["args"], "args", false);

  // entry_points: {name: {results}} as rwkv-compile writes it, or a list of
  // names / {name, results}; results may also be a top-level object keyed by
  // entry point.
  if (!j.contains("entry_points") || j["entry_points"].empty() ||
      !(j["entry_points"].is_array() || j["entry_points"].is_object()))
    p.fail("no 'entry_points'");
  if (j["entry_points"].is_object()) {
    for (const auto &[name, e] : j["entry_points"].items()) {
      info.entryPoints.push_back(name);
      if (e.is_object() && e.contains("results"))
        info.results[name] =
            p.parseList(e["results"], fmt::format("{}.results", name), true);
    }
  }
  for (const Json &e :
       j["entry_points"].is_array() ? j["entry_points"] : Json::array()) {
    std::string name;
    if (e.is_string()) {
      name = e.get<std::string>();
    } else if (e.is_object() && e.contains("name") && e["name"].is_string()) {
      name = e["name"].get<std::string>();
      if (e.contains("results"))
        info.results[name] =
            p.parseList(e["results"], fmt::format("{}.results", name), true);
    } else {
      p.fail(fmt::format("bad entry point {}", e.dump()));
    }
    info.entryPoints.push_back(name);
  }
  if (j.contains("results")) {
    const Json &r = j["results"];
    if (r.is_object()) {
      for (const auto &[name, list] : r.items())
        info.results[name] =
            p.parseList(list, fmt::format("results.{}", name), true);
    } else {
      std::vector<ArgInfo> shared = p.parseList(r, "results", true);
      for (const std::string &name : info.entryPoints)
        info.results.emplace(name, shared);
    }
  }

  // Structure: tokens, then state, then weights.
  const auto &args = info.args;
  if (args.empty() || args[0].kind != ArgInfo::Kind::Tokens)
    p.fail("the first argument is not the tokens");
  if (args[0].dtype != DType::I32 || args[0].shape.size() != 2)
    p.fail(fmt::format("tokens must be i32 [B, T], got {} {}",
                       dtypeName(args[0].dtype), shapeStr(args[0].shape)));
  if (args[0].shape[0] != -1 && args[0].shape[0] != info.batch)
    p.fail(fmt::format("tokens batch {} differs from 'batch' {}",
                       args[0].shape[0], info.batch));
  std::set<std::pair<std::string, int64_t>> seenState;
  std::set<std::string> seenWeight;
  for (size_t i = 1; i < args.size(); ++i) {
    const ArgInfo &a = args[i];
    if (a.kind == ArgInfo::Kind::Tokens || a.kind == ArgInfo::Kind::Logits)
      p.fail(fmt::format("args[{}] has kind '{}'", i, argKindName(a.kind)));
    if (a.kind == ArgInfo::Kind::State &&
        args[i - 1].kind == ArgInfo::Kind::Weight)
      p.fail(fmt::format("state argument args[{}] follows the weights", i));
    if (hasDynamic(a.shape))
      p.fail(fmt::format("args[{}] ('{}') has a dynamic shape {}", i, a.name,
                         shapeStr(a.shape)));
    if (a.kind == ArgInfo::Kind::State) {
      if (a.dtype != DType::F32)
        p.fail(fmt::format("state '{}:{}' is {}, not f32", a.name, a.layer,
                           dtypeName(a.dtype)));
      if (!seenState.insert({a.name, a.layer}).second)
        p.fail(fmt::format("state '{}:{}' is listed twice", a.name, a.layer));
    } else if (!seenWeight.insert(a.name).second) {
      p.fail(fmt::format("weight '{}' is listed twice", a.name));
    }
  }

  for (const std::string &entry : info.entryPoints) {
    auto it = info.results.find(entry);
    if (it == info.results.end())
      p.fail(fmt::format("entry point '{}' has no results", entry));
    std::vector<ArgInfo> &res = it->second;
    if (res.empty() || res[0].kind != ArgInfo::Kind::Logits ||
        res[0].dtype != DType::F32 || res[0].shape.size() != 3)
      p.fail(fmt::format("the first result of '{}' is not f32 logits [B, T, V]",
                         entry));
    size_t r = 1;
    for (const ArgInfo &a : args) {
      if (a.kind != ArgInfo::Kind::State)
        continue;
      if (r < res.size() && res[r].kind == ArgInfo::Kind::State &&
          res[r].name.empty()) {
        res[r].name = a.name;
        res[r].layer = a.layer;
      }
      if (r >= res.size() || res[r].kind != ArgInfo::Kind::State ||
          res[r].name != a.name || res[r].layer != a.layer ||
          res[r].dtype != a.dtype || res[r].shape != a.shape)
        p.fail(fmt::format("result {} of '{}' is not the new state '{}:{}' {}",
                           r, entry, a.name, a.layer, shapeStr(a.shape)));
      ++r;
    }
    if (r != res.size())
      p.fail(fmt::format("'{}' has {} results, expected {}", entry, res.size(),
                         r));
  }
  if (info.vocabSize() <= 0)
    p.fail("no vocab_size");
  return info;
}

int64_t ModelInfo::configValue(std::string_view key, int64_t fallback) const {
  for (const auto &[k, v] : config)
    if (k == key)
      return v;
  return fallback;
}

int64_t ModelInfo::vocabSize() const {
  int64_t v = configValue("vocab_size");
  if (v > 0)
    return v;
  for (const auto &[entry, res] : results)
    if (!res.empty() && res[0].shape.size() == 3 && res[0].shape[2] > 0)
      return res[0].shape[2];
  return -1;
}

bool ModelInfo::hasEntry(std::string_view name) const {
  return std::find(entryPoints.begin(), entryPoints.end(), name) !=
         entryPoints.end();
}

//===----------------------------------------------------------------------===//
// MemRefDesc
//===----------------------------------------------------------------------===//

MemRefDesc::MemRefDesc(const void *data, const std::vector<int64_t> &sizes) {
  size_t rank = sizes.size();
  words_.assign(3 + 2 * rank, 0);
  auto ptr = int64_t(reinterpret_cast<intptr_t>(data));
  words_[0] = ptr; // allocated
  words_[1] = ptr; // aligned
  words_[2] = 0;   // offset
  int64_t stride = 1;
  for (size_t d = rank; d-- > 0;) {
    words_[3 + d] = sizes[d];
    words_[3 + rank + d] = stride;
    stride *= sizes[d];
  }
}

const void *MemRefDesc::data() const {
  return reinterpret_cast<const void *>(intptr_t(words_[1]));
}

//===----------------------------------------------------------------------===//
// Config check and weight binding
//===----------------------------------------------------------------------===//

void checkConfig(const ModelInfo &info, const ModelConfig &config,
                 const std::string &libraryName,
                 const std::string &checkpointName) {
  const std::pair<const char *, int64_t> fields[] = {
      {"version", config.version},       {"n_layer", config.n_layer},
      {"n_embd", config.n_embd},         {"n_head", config.n_head},
      {"head_size", config.head_size},   {"dim_ffn", config.dim_ffn},
      {"vocab_size", config.vocab_size}, {"lora_w", config.lora_w},
      {"lora_a", config.lora_a},         {"lora_v", config.lora_v},
      {"lora_g", config.lora_g}};
  // In the order of `fields`: the most telling difference first.
  for (const auto &[name, ckpt] : fields)
    for (const auto &[key, lib] : info.config)
      if (key == name && lib != ckpt)
        throw RuntimeError(fmt::format(
            "checkpoint '{}' does not fit library '{}': {} is {} in the "
            "checkpoint but {} in the library",
            checkpointName, libraryName, key, ckpt, lib));
  if (!info.configDType.empty()) {
    DType lib;
    try {
      lib = parseDType(info.configDType);
    } catch (const CheckpointError &) {
      throw RuntimeError(fmt::format("library '{}' has unknown dtype '{}'",
                                     libraryName, info.configDType));
    }
    if (lib != config.dtype)
      throw RuntimeError(fmt::format(
          "checkpoint '{}' does not fit library '{}': dtype is {} in the "
          "checkpoint but {} in the library",
          checkpointName, libraryName, dtypeName(config.dtype),
          dtypeName(lib)));
  }
}

static std::vector<int64_t> squeezed(const std::vector<int64_t> &shape) {
  std::vector<int64_t> out;
  for (int64_t d : shape)
    if (d != 1)
      out.push_back(d);
  return out;
}

std::vector<BoundWeight>
bindWeights(const ModelInfo &info, const Checkpoint &checkpoint,
            std::vector<std::vector<uint8_t>> &copies) {
  std::vector<BoundWeight> out;
  for (const ArgInfo &a : info.args) {
    if (a.kind != ArgInfo::Kind::Weight)
      continue;
    const Tensor *t = checkpoint.find(a.name);
    if (!t)
      throw RuntimeError(fmt::format(
          "checkpoint '{}' has no tensor '{}' (the library expects {} {})",
          checkpoint.path(), a.name, shapeStr(a.shape), dtypeName(a.dtype)));
    int64_t expectNumel = 1;
    for (int64_t d : a.shape)
      expectNumel *= d;
    // Unit dimensions are squeezed and r_k [H, N] is flattened to [C]: any
    // contiguous tensor may be viewed flat.
    bool shapeOk = squeezed(t->shape) == squeezed(a.shape) ||
                   (squeezed(a.shape).size() <= 1 && t->numel() == expectNumel);
    if (t->dtype != a.dtype || !shapeOk)
      throw RuntimeError(fmt::format(
          "tensor '{}' of checkpoint '{}': the library expects {} {}, the "
          "checkpoint has {} {}",
          a.name, checkpoint.path(), shapeStr(a.shape), dtypeName(a.dtype),
          shapeStr(t->shape), dtypeName(t->dtype)));
    BoundWeight w;
    w.name = a.name;
    w.dtype = a.dtype;
    w.shape = a.shape;
    w.nbytes = size_t(expectNumel) * dtypeSize(a.dtype);
    bool aligned =
        reinterpret_cast<uintptr_t>(t->data) % dtypeSize(a.dtype) == 0;
    if (t->isContiguous() && aligned) {
      w.data = t->data;
    } else {
      // One-time copy: the compiled code assumes dense, aligned elements.
      OwnedTensor owned = toOwned(*t);
      copies.push_back(std::move(owned.bytes));
      w.data = copies.back().data();
      w.copied = true;
    }
    out.push_back(std::move(w));
  }
  return out;
}

} // namespace rwkv
