//===- Commands.cpp - rwkv-run tokenize/detokenize/generate/chat ----------===//
//
//   rwkv-run tokenize --vocab FILE            < text   > [ids]
//   rwkv-run detokenize --vocab FILE          < [ids]  > bytes
//   rwkv-run generate model.so --weights W --vocab V --prompt TEXT ...
//   rwkv-run chat model.so --weights W --vocab V ...
//
// See docs/generate.md.
//
//===----------------------------------------------------------------------===//

#include "tools/rwkv-run/Commands.h"
#include "runtime/core/StateFile.h"
#include "runtime/text/Prompt.h"
#include "tools/ToolOptions.h"
#include "tools/rwkv-run/Generate.h"

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <climits>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <unistd.h>

namespace po = boost::program_options;

namespace rwkv {
namespace {

using Clock = std::chrono::steady_clock;
double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

po::variables_map parse(int argc, char **argv,
                        const po::options_description &desc,
                        const po::positional_options_description &pos) {
  po::variables_map vm;
  po::parsed_options parsed =
      po::command_line_parser(argc, argv).options(desc).positional(pos).run();
  po::store(parsed, vm);
  po::notify(vm);
  tools::checkParsedValues(parsed, vm);
  return vm;
}

std::unique_ptr<Tokenizer> loadVocab(const po::variables_map &vm) {
  if (!vm.count("vocab"))
    throw UsageError("missing --vocab (a vocabulary file: RWKV World "
                     "rwkv_vocab_v20230424.txt or 20B_tokenizer.json)");
  tools::checkInputFile(vm, "vocab");
  return openTokenizer(vm["vocab"].as<std::string>());
}

std::string readAll(std::istream &in) {
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

void writeOut(std::string_view bytes) {
  std::fwrite(bytes.data(), 1, bytes.size(), stdout);
  std::fflush(stdout);
}

//===----------------------------------------------------------------------===//
// Model + sampler options shared by generate and chat
//===----------------------------------------------------------------------===//

void addModelOptions(po::options_description &desc) {
  desc.add_options()("library", po::value<std::string>(),
                     "compiled model (.so)")(
      "weights", po::value<std::string>(), "checkpoint (.pth or safetensors)")(
      "vocab", po::value<std::string>(),
      "vocabulary: RWKV World .txt or HF tokenizer.json (20B)")(
      "threads", po::value<int>()->default_value(0),
      "worker threads (0: default)")(
      "chunk", po::value<size_t>()->default_value(kDefaultPrefillChunk),
      "prefill tokens per forward call")(
      "init-state", po::value<std::string>(),
      "state-tuned initial state: .pth with blocks.L.att.time_state")(
      "init-state-transpose",
      "time_state is [H, key, value] (v6 convention): swap the last axes");
}

void addSamplerOptions(po::options_description &desc, const SamplerOptions &d) {
  desc.add_options()("seed", po::value<uint64_t>()->default_value(0),
                     "random seed")(
      "temperature", po::value<double>()->default_value(d.temperature),
      "0: greedy")("top-p", po::value<double>()->default_value(d.topP),
                   "nucleus sampling threshold")(
      "top-k", po::value<int>()->default_value(d.topK), "0: off")(
      "presence-penalty", po::value<double>()->default_value(d.alphaPresence),
      "")("frequency-penalty",
          po::value<double>()->default_value(d.alphaFrequency), "")(
      "penalty-decay", po::value<double>()->default_value(d.alphaDecay),
      "occurrence decay per token")("ban", po::value<std::string>(),
                                    "comma-separated token ids never sampled")(
      "stop-token", po::value<std::string>(),
      "comma-separated token ids that end generation")(
      "stop", po::value<std::vector<std::string>>()->composing(),
      "stop string (repeatable); the text is cut before it");
}

SamplerOptions samplerOptions(const po::variables_map &vm,
                              const SamplerOptions &defaults) {
  SamplerOptions o = defaults;
  o.temperature = vm["temperature"].as<double>();
  o.topP = vm["top-p"].as<double>();
  o.topK = vm["top-k"].as<int>();
  o.alphaPresence = vm["presence-penalty"].as<double>();
  o.alphaFrequency = vm["frequency-penalty"].as<double>();
  o.alphaDecay = vm["penalty-decay"].as<double>();
  // (Finite: checked when parsed.)
  tools::checkAtLeast("temperature", o.temperature, 0.0);
  tools::checkRange("top-p", o.topP, 0.0, 1.0);
  tools::checkAtLeast("top-k", o.topK, 0);
  tools::checkRange("penalty-decay", o.alphaDecay, 0.0, 1.0);
  try {
    if (vm.count("ban"))
      o.tokenBan = parseIdList(vm["ban"].as<std::string>(), "--ban");
    if (vm.count("stop-token"))
      o.tokenStop =
          parseIdList(vm["stop-token"].as<std::string>(), "--stop-token");
  } catch (const std::invalid_argument &e) {
    throw UsageError(e.what());
  }
  if (vm.count("stop"))
    for (const std::string &s : vm["stop"].as<std::vector<std::string>>()) {
      if (s.empty())
        throw UsageError("--stop: a stop string must not be empty");
      o.stopStrings.push_back(s);
    }
  return o;
}

/// --ban and --stop-token ids must be tokens of the model.
void checkSamplerIds(const SamplerOptions &o, int64_t vocabSize) {
  for (const auto &[name, ids] :
       {std::pair{"ban", &o.tokenBan}, {"stop-token", &o.tokenStop}})
    for (int32_t id : *ids)
      if (id < 0 || id >= vocabSize)
        throw UsageError(fmt::format(
            "--{}: token id {} is outside the model's vocabulary [0, {})", name,
            id, vocabSize));
}

struct Session {
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Model> model;
  ModelFingerprint fingerprint;
  State initial{std::make_shared<State::Layout>()};
  size_t chunk = kDefaultPrefillChunk;
};

Session openSession(const po::variables_map &vm) {
  Session s;
  if (!vm.count("library"))
    throw UsageError("missing the model library (.so)");
  if (!vm.count("weights"))
    throw UsageError("missing --weights");
  tools::checkRange(vm, "threads", 0, ModelOptions::kMaxThreads);
  tools::checkAtLeast(vm, "chunk", size_t(1));
  for (const char *file : {"library", "weights", "init-state"})
    tools::checkInputFile(vm, file);
  s.tokenizer = loadVocab(vm);
  ModelOptions options;
  options.threads = vm["threads"].as<int>();
  s.model = Model::load(vm["library"].as<std::string>(),
                        vm["weights"].as<std::string>(), options);
  if (s.model->batch() != 1)
    throw UsageError(fmt::format("generation drives batch-1 libraries; this "
                                 "one has batch {}",
                                 s.model->batch()));
  s.fingerprint = fingerprintOf(*s.model);
  s.initial = s.model->newState();
  if (vm.count("init-state"))
    loadTimeState(vm["init-state"].as<std::string>(), s.initial,
                  vm.count("init-state-transpose") > 0);
  s.chunk = vm["chunk"].as<size_t>();
  return s;
}

/// The vocabulary file may hold more tokens than the model was trained on.
void checkPromptTokens(const Session &s, const std::vector<int32_t> &tokens) {
  for (int32_t t : tokens)
    if (t >= s.model->vocabSize())
      throw UsageError(fmt::format(
          "the text encodes to token {} but the model has only {} tokens: "
          "the vocabulary file ({} tokens) does not fit this model",
          t, s.model->vocabSize(), s.tokenizer->vocabSize()));
}

/// A one-line progress bar on stderr, only when stderr is a terminal (a
/// piped log should not fill with carriage returns).
class Progress {
public:
  explicit Progress(size_t total)
      : enabled(isatty(STDERR_FILENO) && total > 0) {}
  void operator()(size_t done, size_t total) {
    if (!enabled)
      return;
    const int width = 30;
    int filled = int(double(done) / double(total) * width);
    fmt::print(stderr, "\rprefill [{}{}] {}/{} tokens",
               std::string(filled, '#'), std::string(width - filled, ' '), done,
               total);
    if (done == total)
      fmt::print(stderr, "\r\033[K");
    std::fflush(stderr);
  }

private:
  bool enabled;
};

} // namespace

std::vector<int32_t> parseIdJson(const std::string &text,
                                 const std::string &what) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_array())
    throw UsageError(fmt::format("{} is not a JSON array of token ids", what));
  std::vector<int32_t> ids;
  for (size_t i = 0; i < j.size(); ++i) {
    const nlohmann::json &e = j[i];
    bool ok = e.is_number_unsigned()  ? e.get<uint64_t>() <= INT32_MAX
              : e.is_number_integer() ? e.get<int64_t>() >= INT32_MIN &&
                                            e.get<int64_t>() <= INT32_MAX
                                      : false;
    if (!ok)
      throw UsageError(fmt::format("{} is not a JSON array of token ids: "
                                   "element {} ({}) is not an int32 integer",
                                   what, i, e.dump()));
    ids.push_back(e.get<int32_t>());
  }
  return ids;
}

//===----------------------------------------------------------------------===//
// tokenize / detokenize
//===----------------------------------------------------------------------===//

int tokenizeMain(int argc, char **argv) {
  po::options_description desc("rwkv-run tokenize options");
  desc.add_options()("help,h", "show this help")(
      "vocab", po::value<std::string>(),
      "vocabulary: RWKV World .txt or HF tokenizer.json (20B)");
  po::variables_map vm = parse(argc, argv, desc, {});
  if (vm.count("help")) {
    std::cout << "usage: rwkv-run tokenize --vocab FILE < text\n"
                 "Prints the token ids of stdin (all bytes, including a "
                 "trailing newline) as a JSON array.\n"
              << desc;
    return 0;
  }
  auto tokenizer = loadVocab(vm);
  std::string text = readAll(std::cin);
  std::vector<int32_t> ids = tokenizer->encode(text);
  writeOut(nlohmann::json(ids).dump() + "\n");
  return 0;
}

int detokenizeMain(int argc, char **argv) {
  po::options_description desc("rwkv-run detokenize options");
  desc.add_options()("help,h", "show this help")(
      "vocab", po::value<std::string>(),
      "vocabulary: RWKV World .txt or HF tokenizer.json (20B)");
  po::variables_map vm = parse(argc, argv, desc, {});
  if (vm.count("help")) {
    std::cout << "usage: rwkv-run detokenize --vocab FILE < ids.json\n"
                 "Reads a JSON array of token ids and writes their bytes.\n"
              << desc;
    return 0;
  }
  auto tokenizer = loadVocab(vm);
  std::vector<int32_t> ids = parseIdJson(readAll(std::cin), "stdin");
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || size_t(ids[i]) >= tokenizer->vocabSize())
      throw UsageError(fmt::format("token id {} at position {} is not in the "
                                   "vocabulary (0..{})",
                                   ids[i], i, tokenizer->vocabSize() - 1));
  writeOut(tokenizer->decode(ids));
  return 0;
}

//===----------------------------------------------------------------------===//
// generate
//===----------------------------------------------------------------------===//

int generateMain(int argc, char **argv) {
  po::options_description desc("rwkv-run generate options");
  desc.add_options()("help,h", "show this help")(
      "prompt", po::value<std::string>(), "prompt text")(
      "prompt-file", po::value<std::string>(), "read the prompt from a file")(
      "max-tokens", po::value<size_t>()->default_value(100),
      "tokens to generate at most")(
      "state-in", po::value<std::string>(),
      "continue from a state file (instead of the zero/initial state)")(
      "state-out", po::value<std::string>(),
      "save the final state (prompt + generated tokens)");
  addModelOptions(desc);
  addSamplerOptions(desc, SamplerOptions{});
  po::positional_options_description pos;
  pos.add("library", 1);
  po::variables_map vm = parse(argc, argv, desc, pos);
  if (vm.count("help")) {
    std::cout << "usage: rwkv-run generate model.so --weights model.pth "
                 "--vocab FILE --prompt TEXT [--max-tokens N] [--seed S]\n"
              << desc;
    return 0;
  }
  if (vm.count("prompt") == vm.count("prompt-file"))
    throw UsageError("give exactly one of --prompt and --prompt-file");
  if (vm.count("state-in") && vm.count("init-state"))
    throw UsageError("give --state-in or --init-state, not both");
  std::string prompt;
  if (vm.count("prompt")) {
    prompt = vm["prompt"].as<std::string>();
  } else {
    tools::checkInputFile(vm, "prompt-file");
    std::ifstream in(vm["prompt-file"].as<std::string>(), std::ios::binary);
    if (!in)
      throw UsageError(fmt::format("cannot open prompt file '{}'",
                                   vm["prompt-file"].as<std::string>()));
    prompt = readAll(in);
  }
  SamplerOptions sopts = samplerOptions(vm, SamplerOptions{});
  tools::checkInputFile(vm, "state-in");
  if (vm.count("state-out") && vm.count("library") && vm.count("weights"))
    tools::checkNotAnInput(
        "state-out", vm["state-out"].as<std::string>(),
        {vm["library"].as<std::string>(), vm["weights"].as<std::string>()});
  Session s = openSession(vm);
  checkSamplerIds(sopts, s.model->vocabSize());
  std::vector<int32_t> tokens = s.tokenizer->encode(prompt);
  if (tokens.empty())
    throw UsageError("the prompt is empty (the first token needs logits to "
                     "sample from)");
  checkPromptTokens(s, tokens);

  State state = s.initial;
  if (vm.count("state-in"))
    loadStateFile(vm["state-in"].as<std::string>(), state, s.fingerprint);

  std::vector<float> logits;
  Progress progress(tokens.size() > s.chunk ? tokens.size() : 0);
  auto t0 = Clock::now();
  prefill(*s.model, tokens, state, logits, s.chunk, std::ref(progress));
  double prefillSec = secondsSince(t0);

  Sampler sampler(sopts, vm["seed"].as<uint64_t>());
  DecodeResult r = decode(*s.model, *s.tokenizer, sampler, state, logits,
                          vm["max-tokens"].as<size_t>(),
                          [](std::string_view piece) { writeOut(piece); });
  if (!r.text.empty() && r.text.back() != '\n' && isatty(STDOUT_FILENO))
    writeOut("\n");
  if (vm.count("state-out"))
    saveStateFile(vm["state-out"].as<std::string>(), state, s.fingerprint);

  const char *why = r.reason == DecodeResult::Stop::StopToken    ? "stop token"
                    : r.reason == DecodeResult::Stop::StopString ? "stop string"
                                                                 : "max tokens";
  fmt::print(stderr,
             "prefill: {} tokens, {:.1f} tok/s; decode: {} tokens, {:.1f} "
             "tok/s ({})\n",
             tokens.size(), double(tokens.size()) / std::max(prefillSec, 1e-9),
             r.tokens.size(),
             double(r.tokens.size()) / std::max(r.seconds, 1e-9), why);
  return 0;
}

//===----------------------------------------------------------------------===//
// chat
//===----------------------------------------------------------------------===//

int chatMain(int argc, char **argv) {
  // The chat demo's settings (spec §5.3): token 0 never sampled, a reply
  // ends at a blank line.
  SamplerOptions chatDefaults;
  chatDefaults.temperature = 1.0;
  chatDefaults.topP = 0.3;
  chatDefaults.alphaPresence = 0.5;
  chatDefaults.alphaFrequency = 0.5;
  chatDefaults.alphaDecay = 0.996;
  chatDefaults.tokenBan = {0};
  chatDefaults.stopStrings = {"\n\n"};

  po::options_description desc("rwkv-run chat options");
  desc.add_options()("help,h", "show this help")(
      "system", po::value<std::string>(), "system prompt (first turn)")(
      "max-tokens", po::value<size_t>()->default_value(500),
      "tokens per reply at most");
  addModelOptions(desc);
  addSamplerOptions(desc, chatDefaults);
  po::positional_options_description pos;
  pos.add("library", 1);
  po::variables_map vm = parse(argc, argv, desc, pos);
  if (vm.count("help")) {
    std::cout << "usage: rwkv-run chat model.so --weights model.pth --vocab "
                 "FILE\nOne message per line; commands: /reset, /save FILE, "
                 "/load FILE, /quit\n"
              << desc;
    return 0;
  }
  SamplerOptions sopts = samplerOptions(vm, chatDefaults);
  Session s = openSession(vm);
  checkSamplerIds(sopts, s.model->vocabSize());
  size_t maxTokens = vm["max-tokens"].as<size_t>();
  std::string system =
      vm.count("system") ? cleanChatText(vm["system"].as<std::string>()) : "";

  State state = s.initial;
  std::vector<float> logits;
  // The conversation fed so far ends in "\n\n" (a finished turn) unless a
  // reply was cut by --max-tokens; then the separator is fed first.
  bool needSeparator = false;
  auto feed = [&](const std::string &text) {
    std::vector<int32_t> tokens = s.tokenizer->encode(text);
    checkPromptTokens(s, tokens);
    Progress progress(tokens.size() > s.chunk ? tokens.size() : 0);
    prefill(*s.model, tokens, state, logits, s.chunk, std::ref(progress));
  };
  auto start = [&] {
    state = s.initial;
    needSeparator = false;
    if (!system.empty())
      feed("System: " + system + "\n\n");
  };
  start();

  Sampler sampler(sopts, vm["seed"].as<uint64_t>());
  bool interactive = isatty(STDIN_FILENO);
  std::string line;
  while (true) {
    if (interactive)
      writeOut("User: ");
    if (!std::getline(std::cin, line))
      break;
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.rfind("/", 0) == 0) {
      std::string cmd = line.substr(0, line.find(' '));
      std::string arg = line.find(' ') == std::string::npos
                            ? ""
                            : line.substr(line.find(' ') + 1);
      arg = cleanChatText(arg);
      try {
        if (cmd == "/quit" || cmd == "/exit") {
          break;
        } else if (cmd == "/reset") {
          start();
          writeOut("[chat reset]\n\n");
        } else if (cmd == "/save" && !arg.empty()) {
          saveStateFile(arg, state, s.fingerprint);
          writeOut(fmt::format("[state saved to {}]\n\n", arg));
        } else if (cmd == "/load" && !arg.empty()) {
          loadStateFile(arg, state, s.fingerprint);
          needSeparator = false;
          writeOut(fmt::format("[state loaded from {}]\n\n", arg));
        } else {
          writeOut(fmt::format(
              "[unknown command '{}'; use /reset, /save FILE, /load FILE, "
              "/quit]\n\n",
              line));
        }
      } catch (const RuntimeError &e) {
        // A bad file must not end the conversation.
        fmt::print(stderr, "error: {}\n", e.what());
        writeOut("\n");
      }
      continue;
    }
    std::string message = cleanChatText(line);
    if (message.empty())
      continue;
    feed(std::string(needSeparator ? "\n\n" : "") + "User: " + message +
         "\n\nAssistant:");
    writeOut("Assistant:");
    sampler.reset(); // occurrences count within one reply, as in the demo
    DecodeResult r =
        decode(*s.model, *s.tokenizer, sampler, state, logits, maxTokens,
               [](std::string_view piece) { writeOut(piece); });
    needSeparator = r.reason != DecodeResult::Stop::StopString;
    writeOut("\n\n");
  }
  if (interactive)
    writeOut("\n");
  return 0;
}

} // namespace rwkv
