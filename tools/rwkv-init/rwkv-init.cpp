//===- rwkv-init.cpp - write a random-initialised RWKV checkpoint ---------===//
//
// rwkv-init --preset tiny [--version 4|5|6|7] -o model.pth
//           [--dtype bf16|fp16|fp32] [--seed N]
//           [--n-layer ... --lora-g N] [--format pth|safetensors]
// Tensors are generated and written one at a time, so even 1.5b needs only
// one tensor's worth of memory.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Checkpoint.h"

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <iostream>

namespace po = boost::program_options;
using namespace rwkv;

int main(int argc, char **argv) {
  try {
    po::options_description desc("rwkv-init options");
    desc.add_options()("help,h", "show this help")(
        "preset", po::value<std::string>()->default_value("tiny"),
        "tiny | 0.1b | 0.4b | 1.5b")(
        "version", po::value<std::string>()->default_value("7"),
        "RWKV version: 7 (x070) | 6 (x060) | 5 (5.2) | 4")(
        "output,o", po::value<std::string>(),
        "output file (.pth or .safetensors)")(
        "dtype", po::value<std::string>()->default_value("bf16"),
        "bf16 | fp16 | fp32")("seed", po::value<uint64_t>()->default_value(42),
                              "PRNG seed")(
        "format", po::value<std::string>(),
        "pth | safetensors (default: from the extension)")(
        "n-layer", po::value<int64_t>(),
        "override n_layer")("n-embd", po::value<int64_t>(), "override n_embd")(
        "head-size", po::value<int64_t>(), "override head size")(
        "vocab", po::value<int64_t>(), "override vocab size")(
        "dim-ffn", po::value<int64_t>(), "override FFN width (default 4*C)")(
        "lora-w", po::value<int64_t>(), "decay LoRA rank")(
        "lora-a", po::value<int64_t>(), "ICL-rate LoRA rank")(
        "lora-v", po::value<int64_t>(), "value-residual LoRA rank")(
        "lora-g", po::value<int64_t>(),
        "gate LoRA rank")("with-layer0-v", "also write blocks.0.att.v0/v1/v2");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    if (!vm.count("output"))
      throw std::runtime_error("missing -o/--output");
    const std::string out = vm["output"].as<std::string>();

    SyntheticOptions opt =
        SyntheticOptions::preset(vm["preset"].as<std::string>());
    const std::string version = vm["version"].as<std::string>();
    if (version == "7" || version == "x070")
      opt.version = 7;
    else if (version == "6" || version == "x060")
      opt.version = 6;
    else if (version == "5" || version == "5.2")
      opt.version = 5;
    else if (version == "4")
      opt.version = 4;
    else
      throw std::runtime_error(fmt::format(
          "--version: unknown RWKV version '{}' (expected 4, 5, 6 or 7)",
          version));
    opt.dtype = parseDType(vm["dtype"].as<std::string>());
    opt.seed = vm["seed"].as<uint64_t>();
    auto override = [&](const char *key, int64_t &field) {
      if (vm.count(key))
        field = vm[key].as<int64_t>();
    };
    override("n-layer", opt.n_layer);
    override("n-embd", opt.n_embd);
    override("head-size", opt.head_size);
    override("vocab", opt.vocab_size);
    override("dim-ffn", opt.dim_ffn);
    override("lora-w", opt.lora_w);
    override("lora-a", opt.lora_a);
    override("lora-v", opt.lora_v);
    override("lora-g", opt.lora_g);
    opt.layer0HasV = vm.count("with-layer0-v") > 0;

    std::string format;
    if (vm.count("format"))
      format = vm["format"].as<std::string>();
    else
      format = out.size() >= 12 &&
                       out.compare(out.size() - 12, 12, ".safetensors") == 0
                   ? "safetensors"
                   : "pth";
    if (format != "pth" && format != "safetensors")
      throw std::runtime_error(
          fmt::format("unknown format '{}' (pth or safetensors)", format));

    std::vector<TensorSpec> specs = syntheticSpecs(opt);
    TensorProducer produce = [&](size_t i, std::vector<uint8_t> &bytes) {
      fillSyntheticTensor(opt, specs[i], bytes);
    };
    if (format == "pth")
      writePth(out, specs, produce);
    else
      writeSafetensors(out, specs, produce);
    int64_t params = 0;
    for (const TensorSpec &s : specs)
      params += s.numel();
    fmt::print(stderr, "wrote {} ({} tensors, {} parameters, {})\n", out,
               specs.size(), params, dtypeName(opt.dtype));
    return 0;
  } catch (const std::exception &e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}
