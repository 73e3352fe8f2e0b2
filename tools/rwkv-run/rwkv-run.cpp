//===- rwkv-run.cpp - run a compiled RWKV model on tokens -----------------===//
//
//   rwkv-run model.so --weights model.pth --tokens 1,2,3 [--mode rnn|gpt]
//            [--token-by-token] [--top-k 5] [--vocab FILE]
//            [--logits-out out.npy] [--threads N] [--bench]
//            [--state-in F | --init-state tuned.pth] [--state-out F]
//   rwkv-run tokenize|detokenize|generate|chat ...   (Commands.cpp)
//
// Prints the top-k logits of the last position; --logits-out writes every
// position's logits as a [T, V] float32 .npy; --bench measures decode and
// prefill speed and the decode memory bandwidth.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/Runtime.h"
#include "runtime/core/StateFile.h"
#include "runtime/text/Tokenizer.h"
#include "tools/ToolOptions.h"
#include "tools/rwkv-run/Commands.h"
#include "tools/rwkv-run/Generate.h"

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <numeric>
#include <random>

namespace po = boost::program_options;
using namespace rwkv;

namespace {

std::vector<int32_t> parseTokenList(const std::string &text) {
  try {
    return parseIdList(text, "--tokens");
  } catch (const std::invalid_argument &e) {
    throw UsageError(e.what());
  }
}

std::vector<int32_t> readTokensFile(const std::string &path) {
  tools::checkInputFile("tokens-file", path);
  std::ifstream in(path);
  if (!in)
    throw UsageError(fmt::format("cannot open tokens file '{}'", path));
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  return parseIdJson(text, fmt::format("tokens file '{}'", path));
}

using Clock = std::chrono::steady_clock;
double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void printTopK(const float *logits, int64_t vocab, int topK,
               const Tokenizer *tokenizer) {
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  size_t k = std::min<size_t>(size_t(std::max(topK, 0)), ids.size());
  std::partial_sort(
      ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
      });
  for (size_t i = 0; i < k; ++i) {
    std::string line = fmt::format("{:>8} {:>12.6f}", ids[i], logits[ids[i]]);
    if (tokenizer && size_t(ids[i]) < tokenizer->vocabSize()) {
      std::string bytes(tokenizer->tokenBytes(ids[i]));
      line +=
          " " + nlohmann::json(bytes).dump(
                    -1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    fmt::print("{}\n", line);
  }
}

void bench(const Model &model) {
  const int decodeSteps = 64, prefillTokens = 512;
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> dist(0,
                                              int32_t(model.vocabSize() - 1));
  std::vector<float> logits;

  State s = model.newState();
  model.step({dist(rng)}, s, logits); // warm-up (page in the weights)
  auto t0 = Clock::now();
  for (int i = 0; i < decodeSteps; ++i)
    model.step({dist(rng)}, s, logits);
  double decodeSec = secondsSince(t0) / decodeSteps;

  std::string prefillEntry =
      model.hasEntry("rwkv_forward") ? "rwkv_forward" : "rwkv_step";
  std::vector<int32_t> prompt(prefillTokens);
  for (int32_t &t : prompt)
    t = dist(rng);
  State p = model.newState();
  t0 = Clock::now();
  if (prefillEntry == "rwkv_forward")
    model.forward(prompt, p, logits);
  else
    model.step(prompt, p, logits);
  double prefillSec = secondsSince(t0);

  // Decode reads every weight once per token, but only one embedding row.
  size_t embBytes = model.embeddingBytes();
  size_t rowBytes =
      model.vocabSize() > 0 ? embBytes / size_t(model.vocabSize()) : 0;
  double bytesPerToken = double(model.weightBytes() - embBytes + rowBytes);
  fmt::print("decode:  {:.2f} tok/s ({:.3f} ms/token, {} steps)\n",
             1.0 / decodeSec, decodeSec * 1e3, decodeSteps);
  fmt::print("prefill: {:.2f} tok/s ({} tokens via {}, {:.3f} s)\n",
             prefillTokens / prefillSec, prefillTokens, prefillEntry,
             prefillSec);
  fmt::print("decode bandwidth: {:.3f} GB/s ({:.2f} MB of weights per "
             "token)\n",
             bytesPerToken / decodeSec / 1e9, bytesPerToken / 1e6);
}

int run(int argc, char **argv) {
  po::options_description desc("rwkv-run options");
  desc.add_options()("help,h", "show this help")(
      "library", po::value<std::string>(), "compiled model (.so)")(
      "weights", po::value<std::string>(), "checkpoint (.pth or safetensors)")(
      "tokens", po::value<std::string>(), "comma-separated token ids")(
      "tokens-file", po::value<std::string>(), "JSON array of token ids")(
      "mode", po::value<std::string>()->default_value("rnn"),
      "rnn (rwkv_step) or gpt (rwkv_forward)")(
      "token-by-token", "rnn mode: one rwkv_step call per token")(
      "top-k", po::value<int>()->default_value(5),
      "how many of the last position's logits to print")(
      "vocab", po::value<std::string>(),
      "vocabulary (World .txt or HF tokenizer.json), to print token text")(
      "logits-out", po::value<std::string>(),
      "write every position's logits as a [T, V] float32 .npy")(
      "threads", po::value<int>()->default_value(0),
      "worker threads (0: default)")(
      "bench", "measure decode/prefill tok/s and decode bandwidth")(
      "state-in", po::value<std::string>(),
      "start from a state file instead of the zero state")(
      "init-state", po::value<std::string>(),
      "start from a state-tuned initial state: .pth with "
      "blocks.L.att.time_state")(
      "init-state-transpose",
      "time_state is [H, key, value] (v6 convention): swap the last axes")(
      "state-out", po::value<std::string>(),
      "save the state after the tokens to a file");
  po::positional_options_description pos;
  pos.add("library", 1);
  po::variables_map vm;
  po::parsed_options parsed =
      po::command_line_parser(argc, argv).options(desc).positional(pos).run();
  po::store(parsed, vm);
  po::notify(vm);
  tools::checkParsedValues(parsed, vm);
  if (vm.count("help")) {
    std::cout << "usage: rwkv-run model.so --weights model.pth "
                 "(--tokens 1,2,3 | --tokens-file t.json | --bench)\n"
                 "       rwkv-run tokenize|detokenize|generate|chat --help\n"
              << desc;
    return 0;
  }
  if (!vm.count("library"))
    throw UsageError("missing the model library (.so)");
  if (!vm.count("weights"))
    throw UsageError("missing --weights");
  std::string mode = vm["mode"].as<std::string>();
  if (mode != "rnn" && mode != "gpt")
    throw UsageError(fmt::format("--mode must be rnn or gpt, not '{}'", mode));
  if (vm.count("tokens") && vm.count("tokens-file"))
    throw UsageError("give --tokens or --tokens-file, not both");
  if (vm.count("state-in") && vm.count("init-state"))
    throw UsageError("give --state-in or --init-state, not both");
  bool byToken = vm.count("token-by-token") > 0;
  if (byToken && mode != "rnn")
    throw UsageError("--token-by-token needs --mode rnn");
  tools::checkRange(vm, "threads", 0, ModelOptions::kMaxThreads);
  tools::checkAtLeast(vm, "top-k", 0);
  for (const char *file :
       {"library", "weights", "vocab", "state-in", "init-state"})
    tools::checkInputFile(vm, file);
  for (const char *out : {"logits-out", "state-out"})
    if (vm.count(out))
      tools::checkNotAnInput(
          out, vm[out].as<std::string>(),
          {vm["library"].as<std::string>(), vm["weights"].as<std::string>()});

  std::vector<int32_t> tokens;
  bool haveTokens = vm.count("tokens") || vm.count("tokens-file");
  if (vm.count("tokens"))
    tokens = parseTokenList(vm["tokens"].as<std::string>());
  else if (vm.count("tokens-file"))
    tokens = readTokensFile(vm["tokens-file"].as<std::string>());
  if (haveTokens && tokens.empty())
    throw UsageError("the token list is empty");
  if (!haveTokens && !vm.count("bench"))
    throw UsageError("give --tokens, --tokens-file or --bench");

  std::unique_ptr<Tokenizer> tokenizer;
  if (vm.count("vocab"))
    tokenizer = openTokenizer(vm["vocab"].as<std::string>());

  ModelOptions options;
  options.threads = vm["threads"].as<int>();
  auto model = Model::load(vm["library"].as<std::string>(),
                           vm["weights"].as<std::string>(), options);
  if (model->batch() != 1)
    throw UsageError(fmt::format("rwkv-run drives batch-1 libraries; this "
                                 "one has batch {}",
                                 model->batch()));
  int64_t vocab = model->vocabSize();

  if (haveTokens) {
    model->checkTokens(tokens.data(), tokens.size());
    State state = model->newState();
    ModelFingerprint fingerprint = fingerprintOf(*model);
    if (vm.count("state-in"))
      loadStateFile(vm["state-in"].as<std::string>(), state, fingerprint);
    if (vm.count("init-state"))
      loadTimeState(vm["init-state"].as<std::string>(), state,
                    vm.count("init-state-transpose") > 0);
    std::vector<float> logits, all;
    bool wantAll = vm.count("logits-out") > 0;
    auto t0 = Clock::now();
    if (mode == "gpt") {
      model->forward(tokens, state, logits, wantAll);
      if (wantAll)
        all = logits;
    } else if (byToken || wantAll) {
      // One step per token: rwkv_step only returns the last logits.
      for (int32_t t : tokens) {
        model->step({t}, state, logits);
        if (wantAll)
          all.insert(all.end(), logits.begin(), logits.end());
      }
    } else {
      model->step(tokens, state, logits);
    }
    double sec = secondsSince(t0);
    const float *last = logits.data() + logits.size() - size_t(vocab);
    fmt::print("{} tokens, {} mode{}, {:.3f} ms\n", tokens.size(), mode,
               mode == "rnn" && (byToken || wantAll) ? " (token by token)" : "",
               sec * 1e3);
    fmt::print("top-{} logits of the last position:\n", vm["top-k"].as<int>());
    printTopK(last, vocab, vm["top-k"].as<int>(), tokenizer.get());
    if (wantAll) {
      std::string out = vm["logits-out"].as<std::string>();
      writeNpy(out, all.data(), {int64_t(tokens.size()), vocab});
      fmt::print("wrote {} ([{}, {}] float32)\n", out, tokens.size(), vocab);
    }
    if (vm.count("state-out"))
      saveStateFile(vm["state-out"].as<std::string>(), state, fingerprint);
  }
  if (vm.count("bench"))
    bench(*model);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  try {
    // A subcommand as the first argument; otherwise the original
    // `rwkv-run model.so --weights ...` interface.
    if (argc > 1) {
      std::string_view cmd = argv[1];
      if (cmd == "tokenize")
        return tokenizeMain(argc - 1, argv + 1);
      if (cmd == "detokenize")
        return detokenizeMain(argc - 1, argv + 1);
      if (cmd == "generate")
        return generateMain(argc - 1, argv + 1);
      if (cmd == "chat")
        return chatMain(argc - 1, argv + 1);
    }
    return run(argc, argv);
  } catch (const po::error &e) {
    fmt::print(stderr, "error: {}\n", e.what());
  } catch (const std::exception &e) {
    fmt::print(stderr, "error: {}\n", e.what());
  }
  return 1;
}
