//===- tokenizer-bench.cpp - Encode speed of the World and 20B tokenizers -===//
//
//   rwkv-tokenizer-bench --world rwkv_vocab_v20230424.txt
//                        --bpe 20B_tokenizer.json [--repeat 3] FILE...
//
// Concatenates the files and encodes the text with each tokenizer in the same
// process, the two alternating. Every repetition loads the tokenizer afresh
// (not timed) and encodes twice: "encode" is the first call (the 20B word
// cache cold), "again" the second. The best repetition is reported as MB/s
// (10^6 bytes) of input, with the token count. Decoding is timed on the ids.
//
//===----------------------------------------------------------------------===//

#include "runtime/text/BpeTokenizer.h"
#include "runtime/text/Tokenizer.h"

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>

namespace po = boost::program_options;
using namespace rwkv;

namespace {

double seconds(const std::function<void()> &body) {
  auto t0 = std::chrono::steady_clock::now();
  body();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

struct Subject {
  std::string label;
  std::function<std::unique_ptr<Tokenizer>()> open;
  double encode = 1e30, warm = 1e30, decode = 1e30; // best seconds
  size_t tokens = 0;
};

/// One repetition: a freshly loaded tokenizer encodes the text twice (cold,
/// then warm: the 20B word cache filled) and decodes the ids.
void measure(Subject &s, const std::string &text) {
  std::unique_ptr<Tokenizer> tok = s.open();
  std::vector<int32_t> ids;
  s.encode = std::min(s.encode, seconds([&] { ids = tok->encode(text); }));
  s.warm = std::min(s.warm, seconds([&] { ids = tok->encode(text); }));
  std::string back;
  s.decode = std::min(s.decode, seconds([&] { back = tok->decode(ids); }));
  s.tokens = ids.size();
}

int run(int argc, char **argv) {
  po::options_description desc("rwkv-tokenizer-bench options");
  desc.add_options()("help,h", "show this help")(
      "world", po::value<std::string>(), "RWKV World vocabulary")(
      "bpe", po::value<std::string>(), "HF tokenizer.json (20B)")(
      "repeat", po::value<int>()->default_value(3),
      "repetitions, each with a fresh tokenizer (the best counts)")(
      "files", po::value<std::vector<std::string>>(), "text files");
  po::positional_options_description pos;
  pos.add("files", -1);
  po::variables_map vm;
  po::store(
      po::command_line_parser(argc, argv).options(desc).positional(pos).run(),
      vm);
  po::notify(vm);
  if (vm.count("help") || !vm.count("files")) {
    std::cout << "usage: rwkv-tokenizer-bench --world VOCAB --bpe JSON "
                 "FILE...\n"
              << desc;
    return vm.count("help") ? 0 : 1;
  }
  std::string text;
  for (const std::string &f : vm["files"].as<std::vector<std::string>>()) {
    std::ifstream in(f, std::ios::binary);
    if (!in)
      throw std::runtime_error(f + ": cannot open");
    std::ostringstream buf;
    buf << in.rdbuf();
    text += buf.str();
  }
  int repeat = std::max(vm["repeat"].as<int>(), 1);
  fmt::print("text: {:.2f} MB from {} files\n", double(text.size()) / 1e6,
             vm["files"].as<std::vector<std::string>>().size());
  std::vector<Subject> subjects;
  if (vm.count("world")) {
    std::string path = vm["world"].as<std::string>();
    subjects.push_back(
        {"World", [path] { return WorldTokenizer::fromFile(path); }});
  }
  if (vm.count("bpe")) {
    std::string path = vm["bpe"].as<std::string>();
    subjects.push_back(
        {"20B", [path] { return BpeTokenizer::fromFile(path); }});
  }
  // Interleaved, so that both see the same load on a shared machine.
  for (int r = 0; r < repeat; ++r)
    for (Subject &s : subjects)
      measure(s, text);
  double mb = double(text.size()) / 1e6;
  for (const Subject &s : subjects)
    fmt::print("{:<6} encode {:6.2f} MB/s ({:.3f} s), again {:6.2f} MB/s  {} "
               "tokens, {:.2f} bytes/token  decode {:6.1f} MB/s\n",
               s.label, mb / s.encode, s.encode, mb / s.warm, s.tokens,
               double(text.size()) / double(std::max<size_t>(s.tokens, 1)),
               mb / s.decode);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception &e) {
    std::cerr << "error: " << e.what() << "\n";
  }
  return 1;
}
