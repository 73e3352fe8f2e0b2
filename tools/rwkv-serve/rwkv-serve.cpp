//===- rwkv-serve.cpp - OpenAI-compatible HTTP server
//-----------------------===//
//
//   rwkv-serve MODEL.so --weights MODEL.pth --vocab VOCAB [--port 8080]
//
// /v1/completions, /v1/chat/completions (streamed with server-sent events or
// not), /v1/models, /health and /metrics over cpp-httplib; the generation
// itself is runtime/serve's Engine. See docs/serve.md.
//
//===----------------------------------------------------------------------===//

#include "runtime/serve/Engine.h"
#include "tools/ToolOptions.h"

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <netinet/in.h>
#include <pthread.h>
#include <random>
#include <sys/socket.h>

namespace po = boost::program_options;
using nlohmann::json;
using namespace rwkv;
using namespace rwkv::serve;
using Clock = std::chrono::steady_clock;

namespace {

struct ServerConfig {
  std::string modelName;
  ChatNames names;
  Limits limits;
};

int64_t unixTime() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string randomId(const char *prefix) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t base = std::random_device{}();
  return fmt::format("{}-{:x}{:06x}", prefix, base & 0xffffffff, ++counter);
}

void sendError(httplib::Response &res, const ApiError &e) {
  res.status = e.status;
  res.set_content(errorJson(e).dump(), "application/json");
}

json usageJson(const Job &job) {
  json u = {{"prompt_tokens", job.promptTokens()},
            {"completion_tokens", job.completionTokens()},
            {"total_tokens", job.promptTokens() + job.completionTokens()}};
  u["prompt_tokens_details"] = {{"cached_tokens", job.cachedTokens()}};
  return u;
}

/// Responses whose content provider is still alive. On shutdown the signal
/// thread waits for them before server.stop(): httplib drops a chunked
/// stream as soon as it is stopping, which would lose the final event (the
/// finish or the "shutting down" error) that the engine has just produced.
std::atomic<int> openResponses{0};

/// Everything one HTTP response needs to turn engine events into OpenAI
/// objects.
class Responder {
public:
  Responder(std::shared_ptr<Job> job, const ServerConfig &config,
            Metrics &metrics, const char *endpointLabel)
      : job_(std::move(job)), config_(config), metrics_(metrics),
        endpoint_(endpointLabel),
        chat_(job_->request().endpoint == Endpoint::Chat),
        id_(randomId(chat_ ? "chatcmpl" : "cmpl")), created_(unixTime()),
        texts_(job_->request().n), reasons_(job_->request().n) {
    ++openResponses;
  }

  ~Responder() {
    --openResponses;
    // The client went away (or the response ended): free the sequences.
    if (!finished_)
      job_->cancel();
    metrics_.observe(
        "rwkv_request_duration_seconds",
        std::chrono::duration<double>(Clock::now() - job_->submitted()).count(),
        fmt::format("endpoint=\"{}\"", endpoint_));
  }

  /// Streams: one SSE event per text piece / finish, then [DONE].
  bool stream(httplib::DataSink &sink) {
    if (!started_) {
      started_ = true;
      if (chat_)
        for (size_t i = 0; i < texts_.size(); ++i)
          if (!write(sink,
                     chunk(i, json{{"role", "assistant"}, {"content", ""}},
                           nullptr)))
            return false;
    }
    std::vector<Event> events;
    bool last = job_->wait(events, std::chrono::milliseconds(1000));
    if (events.empty() && !last)
      return writeRaw(sink, ": keep-alive\n\n"); // notices a gone client
    for (size_t k = 0; k < events.size(); ++k) {
      const Event &e = events[k];
      bool finalEvent = last && k + 1 == events.size();
      json piece;
      if (e.kind == Event::Kind::Text) {
        piece = chunk(e.index, chat_ ? json{{"content", e.text}} : json(e.text),
                      nullptr);
      } else if (e.kind == Event::Kind::Finish) {
        piece =
            chunk(e.index, chat_ ? json::object() : json(""), e.finishReason);
        if (finalEvent)
          piece["usage"] = usageJson(*job_);
      } else {
        ApiError err(500, e.text, "server_error");
        if (!writeRaw(sink, "data: " + errorJson(err).dump() + "\n\n"))
          return false;
        failed_ = true;
        continue;
      }
      if (!write(sink, piece))
        return false;
    }
    if (!last)
      return true;
    if (job_->request().includeUsage) {
      json u = base();
      u["choices"] = json::array();
      u["usage"] = usageJson(*job_);
      if (!write(sink, u))
        return false;
    }
    finished_ = true;
    countTokens();
    if (!writeRaw(sink, "data: [DONE]\n\n"))
      return false;
    sink.done();
    return true;
  }

  /// Collects every event and writes one JSON object. Writes a space while
  /// waiting (valid leading JSON whitespace) to notice a gone client.
  bool whole(httplib::DataSink &sink) {
    std::vector<Event> events;
    bool last = job_->wait(events, std::chrono::milliseconds(2000));
    std::string error;
    for (const Event &e : events) {
      if (e.kind == Event::Kind::Text)
        texts_[e.index] += e.text;
      else if (e.kind == Event::Kind::Finish)
        reasons_[e.index] = e.finishReason;
      else
        errors_ = e.text;
    }
    if (!last)
      return events.empty() ? writeRaw(sink, " ") : true;
    finished_ = true;
    countTokens();
    json out;
    if (!errors_.empty()) {
      out = errorJson(ApiError(500, errors_, "server_error"));
    } else {
      out = base();
      out["object"] = chat_ ? "chat.completion" : "text_completion";
      json choices = json::array();
      for (size_t i = 0; i < texts_.size(); ++i) {
        json c = {{"index", i},
                  {"finish_reason", reasons_[i]},
                  {"logprobs", nullptr}};
        if (chat_)
          c["message"] = {{"role", "assistant"}, {"content", texts_[i]}};
        else
          c["text"] = texts_[i];
        choices.push_back(c);
      }
      out["choices"] = choices;
      out["usage"] = usageJson(*job_);
    }
    if (!writeRaw(sink, out.dump()))
      return false;
    sink.done();
    return true;
  }

private:
  json base() const {
    return {{"id", id_},
            {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
            {"created", created_},
            {"model", config_.modelName}};
  }
  json chunk(size_t index, json content, json finishReason) const {
    json c = {{"index", index},
              {"finish_reason", finishReason},
              {"logprobs", nullptr}};
    if (chat_)
      c["delta"] = std::move(content);
    else
      c["text"] = std::move(content);
    json out = base();
    out["choices"] = json::array({c});
    return out;
  }
  bool write(httplib::DataSink &sink, const json &j) {
    return writeRaw(sink, "data: " + j.dump() + "\n\n");
  }
  static bool writeRaw(httplib::DataSink &sink, const std::string &s) {
    return sink.is_writable() && sink.write(s.data(), s.size());
  }
  void countTokens() {
    metrics_.add("rwkv_request_prompt_tokens_total",
                 double(job_->promptTokens()));
    metrics_.add("rwkv_request_completion_tokens_total",
                 double(job_->completionTokens()));
  }

  std::shared_ptr<Job> job_;
  const ServerConfig &config_;
  Metrics &metrics_;
  std::string endpoint_;
  bool chat_;
  std::string id_;
  int64_t created_;
  std::vector<std::string> texts_, reasons_;
  std::string errors_;
  bool started_ = false, finished_ = false, failed_ = false;
};

void handleGeneration(Engine &engine, const ServerConfig &config,
                      Metrics &metrics, Endpoint endpoint,
                      const httplib::Request &req, httplib::Response &res) {
  const char *label = endpoint == Endpoint::Chat ? "chat" : "completions";
  auto count = [&](int status) {
    metrics.add("rwkv_requests_total", 1,
                fmt::format("endpoint=\"{}\",status=\"{}\"", label, status));
  };
  try {
    GenerationRequest request =
        parseRequest(endpoint, req.body, config.limits, config.names);
    bool stream = request.stream;
    auto responder = std::make_shared<Responder>(
        engine.submit(std::move(request)), config, metrics, label);
    count(200);
    auto provider = [responder, stream](size_t, httplib::DataSink &sink) {
      return stream ? responder->stream(sink) : responder->whole(sink);
    };
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        stream ? "text/event-stream" : "application/json", provider);
  } catch (const ApiError &e) {
    count(e.status);
    sendError(res, e);
  } catch (const std::exception &e) {
    count(500);
    sendError(res, ApiError(500, e.what(), "server_error"));
  }
}

/// Debian's cpp-httplib 0.11 is compiled with a listen backlog of 5: a burst
/// of new connections overflows it and the kernel drops SYNs, which clients
/// retry only after a second. listen() again on the listening socket (found
/// by its port) raises the backlog; Linux allows that.
void raiseListenBacklog(int port) {
  for (const auto &entry :
       std::filesystem::directory_iterator("/proc/self/fd")) {
    int fd = std::atoi(entry.path().filename().c_str());
    int listening = 0;
    socklen_t len = sizeof(listening);
    sockaddr_storage addr{};
    socklen_t alen = sizeof(addr);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 ||
        !listening ||
        getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &alen) != 0)
      continue;
    int p = addr.ss_family == AF_INET
                ? ntohs(reinterpret_cast<sockaddr_in *>(&addr)->sin_port)
            : addr.ss_family == AF_INET6
                ? ntohs(reinterpret_cast<sockaddr_in6 *>(&addr)->sin6_port)
                : -1;
    if (p == port)
      ::listen(fd, SOMAXCONN);
  }
}

// SIGINT / SIGTERM are blocked in every thread and taken by sigwait in one.
sigset_t shutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

int run(int argc, char **argv) {
  po::options_description desc("rwkv-serve options");
  EngineOptions eo;
  ServerConfig config;
  std::string host, portFile;
  int port = 8080;
  size_t maxBody = 1 << 20, httpThreads = 0;
  double grace = 10;
  desc.add_options()("help,h", "show this help")(
      "library", po::value<std::string>(&eo.library),
      "compiled model (.so)")("weights", po::value<std::string>(&eo.weights),
                              "checkpoint (.pth or safetensors)")(
      "vocab", po::value<std::string>(&eo.vocab),
      "vocabulary: RWKV World .txt or HF tokenizer.json (20B)")(
      "prefill-library", po::value<std::string>(&eo.prefillLibrary),
      "batch-1 library of the same model for chunked prefill when the "
      "library has batch > 1")(
      "host", po::value<std::string>(&host)->default_value("127.0.0.1"),
      "address to listen on")(
      "port", po::value<int>(&port)->default_value(8080),
      "port (0: any free port)")("port-file", po::value<std::string>(&portFile),
                                 "write the port to this file once listening")(
      "model-name", po::value<std::string>(&config.modelName),
      "model id in responses (default: the weights' file name)")(
      "threads", po::value<int>(&eo.threads)->default_value(0),
      "compute threads (0: default)")(
      "http-threads", po::value<size_t>(&httpThreads)->default_value(0),
      "HTTP worker threads, at most 4096 (0: max sequences + queue + 8)")(
      "max-sequences", po::value<size_t>(&eo.maxSequences)->default_value(0),
      "sequences decoded at once, at most 4096 (0: the batch; 16 for batch 1)")(
      "max-queue", po::value<size_t>(&eo.maxQueue)->default_value(64),
      "requests waiting for a sequence before 429, at most 4096")(
      "max-body-bytes", po::value<size_t>(&maxBody)->default_value(1 << 20),
      "largest request body (413 above)")(
      "max-tokens-limit",
      po::value<size_t>(&eo.limits.maxTokens)->default_value(4096),
      "largest max_tokens a request may ask")(
      "max-prompt-tokens",
      po::value<size_t>(&eo.limits.maxPromptTokens)->default_value(8192),
      "longest prompt in tokens")(
      "max-n", po::value<size_t>(&eo.limits.maxN)->default_value(8),
      "largest n (1..4096)")("cache-mb",
                             po::value<size_t>()->default_value(256),
                             "state cache size in MiB (0: off)")(
      "cache-every", po::value<size_t>(&eo.cacheEvery)->default_value(512),
      "also cache the state every this many prompt tokens (0: off)")(
      "prefill-chunk", po::value<size_t>(&eo.prefillChunk)->default_value(128),
      "prompt tokens per prefill call between decode steps")(
      "state-dir", po::value<std::string>(&eo.stateDir),
      "directory of named initial states ('state' in a request)")(
      "system-name",
      po::value<std::string>(&config.names.system)->default_value("System"),
      "chat template role names")(
      "user-name",
      po::value<std::string>(&config.names.user)->default_value("User"),
      "")("assistant-name",
          po::value<std::string>(&config.names.assistant)
              ->default_value("Assistant"),
          "")("shutdown-grace", po::value<double>(&grace)->default_value(10),
              "seconds in-flight requests may take after SIGINT/SIGTERM");
  po::positional_options_description pos;
  pos.add("library", 1);
  po::variables_map vm;
  po::parsed_options parsed =
      po::command_line_parser(argc, argv).options(desc).positional(pos).run();
  po::store(parsed, vm);
  po::notify(vm);
  tools::checkParsedValues(parsed, vm);
  if (vm.count("help")) {
    std::cout << "usage: rwkv-serve MODEL.so --weights MODEL.pth --vocab "
                 "VOCAB [--port 8080]\n"
              << desc;
    return 0;
  }
  if (eo.library.empty() || eo.weights.empty() || eo.vocab.empty())
    throw po::error("need the model library, --weights and --vocab");
  tools::checkRange("port", port, 0, 65535);
  tools::checkRange("threads", eo.threads, 0, ModelOptions::kMaxThreads);
  // Each sequence, queued request and HTTP worker is a thread or a state:
  // beyond these a typo exhausts the machine before the server is up.
  tools::checkRange("http-threads", httpThreads, size_t(0), size_t(4096));
  tools::checkRange("max-sequences", eo.maxSequences, size_t(0), size_t(4096));
  tools::checkRange("max-queue", eo.maxQueue, size_t(0), size_t(4096));
  for (const auto &[name, value] :
       {std::pair{"max-tokens-limit", eo.limits.maxTokens},
        {"max-prompt-tokens", eo.limits.maxPromptTokens},
        {"max-n", eo.limits.maxN},
        {"max-body-bytes", maxBody},
        {"prefill-chunk", eo.prefillChunk}})
    tools::checkAtLeast(name, value, size_t(1));
  tools::checkRange("max-n", eo.limits.maxN, size_t(1), size_t(4096));
  // In seconds, converted to int64 milliseconds.
  tools::checkRange("shutdown-grace", grace, 0.0, 1e9);
  size_t cacheMb = vm["cache-mb"].as<size_t>();
  tools::checkRange("cache-mb", cacheMb, size_t(0), SIZE_MAX >> 20);
  for (const auto &[name, value] :
       {std::pair{"system-name", &config.names.system},
        {"user-name", &config.names.user},
        {"assistant-name", &config.names.assistant}})
    if (value->empty())
      throw po::error(fmt::format("--{} must not be empty", name));
  tools::checkInputFile("library", eo.library);
  tools::checkInputFile("weights", eo.weights);
  tools::checkInputFile("vocab", eo.vocab);
  tools::checkInputFile(vm, "prefill-library");
  eo.cacheBytes = cacheMb << 20;
  if (config.modelName.empty())
    config.modelName = std::filesystem::path(eo.weights).stem().string();
  config.limits = eo.limits;

  // Before any thread starts, so that every thread inherits the mask.
  sigset_t signals = shutdownSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN); // a gone client is a failed write

  Metrics metrics;
  metrics.declare("rwkv_requests_total", "counter",
                  "generation requests by endpoint and HTTP status");
  metrics.declare("rwkv_request_duration_seconds", "histogram",
                  "from submission to the end of the response",
                  {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60});
  metrics.declare("rwkv_request_prompt_tokens_total", "counter",
                  "prompt tokens of completed requests (usage)");
  metrics.declare("rwkv_request_completion_tokens_total", "counter",
                  "completion tokens of completed requests (usage)");
  Engine engine(eo, metrics);

  httplib::Server server;
  size_t workers =
      httpThreads ? httpThreads : engine.capacity() + eo.maxQueue + 8;
  server.new_task_queue = [workers] {
    return new httplib::ThreadPool(workers);
  };
  server.set_payload_max_length(maxBody);
  server.set_keep_alive_max_count(1000);
  server.set_error_handler(
      [](const httplib::Request &req, httplib::Response &res) {
        if (!res.body.empty())
          return;
        std::string message =
            res.status == 404
                ? fmt::format("no route for {} {}", req.method, req.path)
            : res.status == 413
                ? "the request body is larger than the server accepts"
                : fmt::format("HTTP error {}", res.status);
        res.set_content(
            errorJson(ApiError(res.status, message, "invalid_request_error"))
                .dump(),
            "application/json");
      });
  server.Post("/v1/completions", [&](const httplib::Request &req,
                                     httplib::Response &res) {
    handleGeneration(engine, config, metrics, Endpoint::Completions, req, res);
  });
  server.Post("/v1/chat/completions", [&](const httplib::Request &req,
                                          httplib::Response &res) {
    handleGeneration(engine, config, metrics, Endpoint::Chat, req, res);
  });
  server.Get(
      "/v1/models", [&](const httplib::Request &, httplib::Response &res) {
        json model = {{"id", config.modelName},
                      {"object", "model"},
                      {"created", unixTime()},
                      {"owned_by", "rwkv-mlir"}};
        res.set_content(json{{"object", "list"}, {"data", {model}}}.dump(),
                        "application/json");
      });
  server.Get("/health", [&](const httplib::Request &, httplib::Response &res) {
    bool ok = engine.accepting();
    res.status = ok ? 200 : 503;
    res.set_content(json{{"status", ok ? "ok" : "shutting_down"}}.dump(),
                    "application/json");
  });
  server.Get("/metrics", [&](const httplib::Request &, httplib::Response &res) {
    res.set_content(metrics.render(), "text/plain; version=0.0.4");
  });

  int bound = port == 0 ? server.bind_to_any_port(host)
                        : (server.bind_to_port(host, port) ? port : -1);
  if (bound < 0)
    throw std::runtime_error(fmt::format("cannot listen on {}:{}", host, port));
  raiseListenBacklog(bound);
  if (!portFile.empty()) {
    // Written whole and renamed, so a reader never sees a partial number.
    std::string tmp = portFile + ".tmp";
    std::ofstream(tmp) << bound << "\n";
    std::filesystem::rename(tmp, portFile);
  }
  fmt::print(stderr,
             "rwkv-serve: {} (batch {}, {} sequences, {} prefill) on "
             "http://{}:{}\n",
             config.modelName, engine.batch(), engine.capacity(),
             engine.chunkedPrefill() ? "chunked" : "in-batch", host, bound);

  std::thread signalThread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == 0)
      return;
    fmt::print(stderr,
               "rwkv-serve: signal {}, finishing requests in "
               "flight\n",
               sig);
    engine.shutdown(std::chrono::milliseconds(int64_t(grace * 1000)));
    // Every job has ended; let the handlers write their last events.
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (openResponses.load() > 0 && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    server.stop();
  });
  bool ok = server.listen_after_bind();
  // After a signal, or if listening failed: stop the engine, wake the
  // signal thread.
  engine.shutdown(std::chrono::milliseconds(0));
  pthread_kill(signalThread.native_handle(), SIGTERM);
  signalThread.join();
  fmt::print(stderr, "rwkv-serve: stopped\n");
  return ok ? 0 : 1;
}

} // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const po::error &e) {
    fmt::print(stderr,
               "error: {}\nusage: rwkv-serve MODEL.so --weights "
               "MODEL.pth --vocab VOCAB [--port 8080]\n",
               e.what());
    return 1;
  } catch (const std::exception &e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}
