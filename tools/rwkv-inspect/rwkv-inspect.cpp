//===- rwkv-inspect.cpp - print a checkpoint's detected architecture ------===//
//
// rwkv-inspect model.pth [--tensors]: JSON on stdout with the detected RWKV
// version and hyper-parameters and the container format (for GGUF: its
// version and what the file says about its source); --tensors adds every
// tensor's name, shape and dtype in file order (and, for GGUF, the tensor it
// was read from).
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Checkpoint.h"

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>

namespace po = boost::program_options;
using namespace rwkv;

int main(int argc, char **argv) {
  try {
    po::options_description desc("rwkv-inspect options");
    desc.add_options()("help,h", "show this help")(
        "input", po::value<std::string>(),
        "checkpoint (.pth, safetensors or GGUF)")(
        "tensors", "list every tensor with its shape and dtype");
    po::positional_options_description pos;
    pos.add("input", 1);
    po::variables_map vm;
    po::store(
        po::command_line_parser(argc, argv).options(desc).positional(pos).run(),
        vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << "usage: rwkv-inspect model.pth [--tensors]\n" << desc;
      return 0;
    }
    if (!vm.count("input"))
      throw std::runtime_error("missing input checkpoint");
    if (vm["input"].as<std::string>().empty())
      throw std::runtime_error("the input checkpoint path is empty");
    auto ckpt = Checkpoint::open(vm["input"].as<std::string>());
    ModelConfig config = detectConfig(*ckpt);
    auto j = nlohmann::ordered_json::parse(config.toJson());
    j["format"] = Checkpoint::formatName(ckpt->format());
    if (ckpt->formatVersion())
      j["format_version"] = ckpt->formatVersion();
    if (!ckpt->sourceInfo().empty()) {
      auto source = nlohmann::ordered_json::object();
      for (const auto &[key, text] : ckpt->sourceInfo())
        source[key] = text;
      j["source"] = source;
    }
    if (vm.count("tensors")) {
      auto list = nlohmann::ordered_json::array();
      for (const Tensor &t : ckpt->tensors()) {
        nlohmann::ordered_json e = {{"name", t.name},
                                    {"shape", t.shape},
                                    {"dtype", dtypeName(t.dtype)}};
        if (std::string_view from = ckpt->tensorSource(t.name); !from.empty())
          e["from"] = std::string(from);
        list.push_back(std::move(e));
      }
      j["tensors"] = list;
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  } catch (const std::exception &e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}
