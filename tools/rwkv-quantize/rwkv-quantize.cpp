//===- rwkv-quantize.cpp - write an int8 or int4 RWKV-7 checkpoint --------===//
//
// rwkv-quantize IN.pth|IN.safetensors OUT.safetensors [--type int8|int4]
//               [--group N] [--embedding bf16|keep|int8|int4]
//               [--head keep|int8|int4] [--keep-head]
// The output is memory-mapped by the runtime like any other checkpoint and
// compiled by rwkv-compile into kernels that read the int8/int4 matrices.
// --group N gives every int4 and int8 matrix one scale per N inputs.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Checkpoint.h"
#include "tools/ToolOptions.h"

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <iostream>

namespace po = boost::program_options;
using namespace rwkv;

int main(int argc, char **argv) {
  try {
    po::options_description desc(
        "usage: rwkv-quantize IN OUT.safetensors [options]\noptions");
    desc.add_options()("help,h", "show this help")(
        "type", po::value<std::string>()->default_value("int8"),
        "int8: symmetric, one f32 scale per matrix row (with --group: one "
        "bf16 scale per row and group of inputs); int4: symmetric, two "
        "weights per byte, one bf16 scale per row and group of inputs")(
        "group", po::value<int64_t>(),
        ("inputs per scale group of every int4 and int8 matrix (dividing "
         "every matrix's width, even for int4; default: " +
         std::to_string(kDefaultInt4Group) +
         " for int4, one scale per row for int8)")
            .c_str())(
        "embedding", po::value<std::string>()->default_value("bf16"),
        "emb.weight: bf16 (f32 tables rounded), keep (checkpoint dtype), "
        "int8 or int4 (smaller files, less accurate)")(
        "head", po::value<std::string>(),
        "head.weight: keep (checkpoint dtype), int8 or int4 (default: as "
        "--type)")("keep-head", "leave head.weight in the checkpoint's dtype")(
        "input", po::value<std::string>(), "checkpoint to read")(
        "output", po::value<std::string>(), "safetensors file to write");
    po::positional_options_description pos;
    pos.add("input", 1).add("output", 1);
    po::variables_map vm;
    po::store(
        po::command_line_parser(argc, argv).options(desc).positional(pos).run(),
        vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    if (!vm.count("input") || !vm.count("output"))
      throw po::error("expected an input checkpoint and an output file");
    const std::string out = vm["output"].as<std::string>();
    if (out.size() < 12 ||
        out.compare(out.size() - 12, 12, ".safetensors") != 0)
      throw po::error(fmt::format(
          "output '{}' must be a .safetensors file (int8/int4 tensors have "
          "no released .pth form)",
          out));
    // Written in place, the input would be truncated while it is mapped.
    tools::checkNotAnInput("output", out, {vm["input"].as<std::string>()});
    QuantizeOptions opts;
    opts.type = vm["type"].as<std::string>();
    opts.embedding = vm["embedding"].as<std::string>();
    opts.keepHead = vm.count("keep-head") > 0;
    if (vm.count("head")) {
      if (opts.keepHead)
        throw po::error("--keep-head and --head are exclusive");
      opts.head = vm["head"].as<std::string>();
    }
    if (vm.count("group")) {
      opts.group = vm["group"].as<int64_t>();
      // 0 would mean "the default" to quantizeCheckpoint.
      bool int4 = opts.type == "int4" || opts.head == "int4" ||
                  opts.embedding == "int4";
      if (opts.group <= 0)
        throw po::error(fmt::format("--group must be a positive{} number, "
                                    "not {}",
                                    int4 ? " even" : "", opts.group));
    }
    std::unique_ptr<Checkpoint> in =
        Checkpoint::open(vm["input"].as<std::string>());
    QuantizeReport r = quantizeCheckpoint(*in, out, opts);
    std::string int8Group =
        r.int8Group ? fmt::format(" (group {})", r.int8Group) : "";
    std::string what =
        r.int4 == 0 ? fmt::format("{} matrices int8{}", r.quantized, int8Group)
        : r.int4 == r.quantized
            ? fmt::format("{} matrices int4 (group {})", r.int4, r.group)
            : fmt::format("{} matrices int4 (group {}) and {} int8{}", r.int4,
                          r.group, r.quantized - r.int4, int8Group);
    fmt::print(stderr,
               "wrote {}: {}, {:.1f} MB -> {:.1f} MB, max |w - "
               "dequantized w| = {:.3g}\n",
               out, what, r.bytesIn / 1e6, r.bytesOut / 1e6, r.maxAbsError);
    return 0;
  } catch (const po::error &e) {
    fmt::print(stderr, "rwkv-quantize: {}\n(see rwkv-quantize --help)\n",
               e.what());
    return 2;
  } catch (const std::exception &e) {
    fmt::print(stderr, "rwkv-quantize: error: {}\n", e.what());
    return 1;
  }
}
