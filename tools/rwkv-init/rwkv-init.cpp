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
#include "tools/ToolOptions.h"

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <iostream>
#include <string_view>

namespace po = boost::program_options;
using namespace rwkv;

int main(int argc, char **argv) {
  try {
    po::options_description desc("rwkv-init options");
    desc.add_options()("help,h", "show this help")(
        "preset", po::value<std::string>()->default_value("tiny"),
        "tiny | 0.1b | 0.4b | 1.5b")(
        "version", po::value<std::string>()->default_value("7"),
        "RWKV version: 7 (x070) | 6 (x060) | 5 (5.2) | 5.1 | 5.0 | 4")(
        "output,o", po::value<std::string>(),
        "output file (.pth or .safetensors)")(
        "dtype", po::value<std::string>()->default_value("bf16"),
        "bf16 | fp16 | fp32")("seed", po::value<uint64_t>()->default_value(42),
                              "PRNG seed")(
        "format", po::value<std::string>(),
        "pth | safetensors (default: from the extension)")(
        "n-layer", po::value<int64_t>(), "override n_layer (1..4096)")(
        "n-embd", po::value<int64_t>(), "override n_embd (1..2^20)")(
        "head-size", po::value<int64_t>(), "override head size (1..2^20)")(
        "vocab", po::value<int64_t>(), "override vocab size (1..2^24)")(
        "dim-ffn", po::value<int64_t>(), "override FFN width (default 4*C)")(
        "lora-w", po::value<int64_t>(), "decay LoRA rank")(
        "lora-a", po::value<int64_t>(), "ICL-rate LoRA rank")(
        "lora-v", po::value<int64_t>(), "value-residual LoRA rank")(
        "lora-g", po::value<int64_t>(),
        "gate LoRA rank")("with-layer0-v", "also write blocks.0.att.v0/v1/v2");
    po::variables_map vm;
    po::parsed_options parsed = po::parse_command_line(argc, argv, desc);
    po::store(parsed, vm);
    po::notify(vm);
    tools::checkParsedValues(parsed, vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    if (!vm.count("output"))
      throw std::runtime_error("missing -o/--output");
    const std::string out = vm["output"].as<std::string>();
    if (out.empty())
      throw std::runtime_error("-o/--output: the path is empty");

    // The library's messages name the value; these name the option too.
    auto named = [](const char *option, auto &&parse) {
      try {
        return parse();
      } catch (const std::exception &e) {
        throw std::runtime_error(fmt::format("--{}: {}", option, e.what()));
      }
    };
    SyntheticOptions opt = named("preset", [&] {
      return SyntheticOptions::preset(vm["preset"].as<std::string>());
    });
    const std::string version = vm["version"].as<std::string>();
    if (version == "7" || version == "x070")
      opt.version = 7;
    else if (version == "6" || version == "x060")
      opt.version = 6;
    else if (version == "5" || version == "5.2" || version == "5.1" ||
             version == "5.0")
      opt.version = 5, opt.v5Minor = version.size() == 3 ? version[2] - '0' : 2;
    else if (version == "4")
      opt.version = 4;
    else
      throw std::runtime_error(fmt::format(
          "--version: unknown RWKV version '{}' (expected 4, 5.0, 5.1, 5 "
          "(5.2), 6 or 7)",
          version));
    opt.dtype = named(
        "dtype", [&] { return parseDType(vm["dtype"].as<std::string>()); });
    opt.seed = vm["seed"].as<uint64_t>();
    // Each dimension is checked here, naming the option; the bounds are far
    // past any released model and keep every tensor's element count within
    // int64 (the total size is checked below).
    auto override = [&](const char *key, int64_t &field) {
      if (!vm.count(key))
        return;
      field = vm[key].as<int64_t>();
      int64_t max = std::string_view(key) == "n-layer" ? int64_t(1) << 12
                    : std::string_view(key) == "vocab" ? int64_t(1) << 24
                                                       : int64_t(1) << 20;
      tools::checkRange(key, field, int64_t(1), max);
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
    if (opt.n_embd % opt.head_size)
      throw std::runtime_error(
          fmt::format("--n-embd {} is not a multiple of --head-size {}",
                      opt.n_embd, opt.head_size));

    std::string format;
    if (vm.count("format"))
      format = vm["format"].as<std::string>();
    else
      format = out.size() >= 12 &&
                       out.compare(out.size() - 12, 12, ".safetensors") == 0
                   ? "safetensors"
                   : "pth";
    if (format != "pth" && format != "safetensors")
      throw std::runtime_error(fmt::format(
          "--format: unknown format '{}' (pth or safetensors)", format));

    std::vector<TensorSpec> specs = syntheticSpecs(opt);
    // Refused before the first byte is written: a typo in a dimension would
    // otherwise fill the disk.
    double bytes = 0;
    for (const TensorSpec &s : specs)
      bytes += double(s.numel()) * double(dtypeSize(opt.dtype));
    if (bytes > double(int64_t(1) << 40))
      throw std::runtime_error(fmt::format(
          "the model would take {:.3g} bytes, more than 1 TiB; lower "
          "--n-layer, --n-embd, --dim-ffn or --vocab",
          bytes));
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
