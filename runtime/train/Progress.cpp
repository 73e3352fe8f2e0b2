//===- Progress.cpp - Training progress display and loss log --------------===//

#include "runtime/train/Progress.h"

#include "runtime/train/Param.h"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include <sys/stat.h>
#include <unistd.h>

namespace rwkv {

namespace {
bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
} // namespace

Progress::Progress(ProgressOptions options)
    : options_(std::move(options)), start_(std::chrono::steady_clock::now()) {
  terminal_ = options_.terminal < 0 ? isatty(fileno(options_.out)) != 0
                                    : options_.terminal == 1;
  if (options_.printEvery < 1)
    options_.printEvery = 1;
  if (options_.logPath.empty())
    return;
  bool csv = endsWith(options_.logPath, ".csv");
  jsonl_ = endsWith(options_.logPath, ".jsonl");
  if (!csv && !jsonl_)
    throw TrainError(fmt::format("{}: the loss log must end in .csv or .jsonl",
                                 options_.logPath));
  struct stat st;
  bool fresh = stat(options_.logPath.c_str(), &st) != 0 || st.st_size == 0;
  log_ = std::fopen(options_.logPath.c_str(), "a");
  if (!log_)
    throw TrainError(fmt::format("{}: cannot open the loss log: {}",
                                 options_.logPath, std::strerror(errno)));
  if (csv && fresh)
    std::fputs("step,loss,lr,grad_norm,clip_coef,epoch,tokens,elapsed_s\n",
               log_);
}

Progress::~Progress() {
  finish();
  if (log_)
    std::fclose(log_);
}

std::string Progress::formatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0)
    return "?";
  int64_t s = int64_t(seconds + 0.5);
  if (s >= 3600)
    return fmt::format("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60);
  if (s >= 60)
    return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

void Progress::update(const StepRecord &r) {
  if (firstStep_ < 0)
    firstStep_ = r.step - 1;
  stepsThisRun_ = r.step - firstStep_;
  double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
          .count();
  double tokPerSec =
      elapsed > 0 ? double(stepsThisRun_ * options_.tokensPerStep) / elapsed
                  : 0.0;
  bool last = options_.totalSteps > 0 && r.step >= options_.totalSteps;

  if (terminal_) {
    std::string bar;
    if (options_.totalSteps > 0) {
      const int width = 24;
      int filled = int(width * std::min<int64_t>(r.step, options_.totalSteps) /
                       options_.totalSteps);
      bar = "[" + std::string(size_t(filled), '#') +
            std::string(size_t(width - filled), '.') + "] ";
    }
    double eta = stepsThisRun_ > 0 && options_.totalSteps > 0
                     ? elapsed / double(stepsThisRun_) *
                           double(options_.totalSteps - r.step)
                     : NAN;
    std::string total = options_.totalSteps > 0
                            ? fmt::format("/{}", options_.totalSteps)
                            : std::string();
    fmt::print(options_.out,
               "\r{}step {}{} loss {:.4f} lr {:.3g} {:.0f} tok/s ETA {}\x1b[K",
               bar, r.step, total, r.loss, r.lr, tokPerSec,
               formatDuration(eta));
    std::fflush(options_.out);
    lineOpen_ = true;
  } else if (r.step % options_.printEvery == 0 || last) {
    fmt::print(options_.out, "step {} loss {:.6f} lr {:.6g} tok/s {:.1f}\n",
               r.step, r.loss, r.lr, tokPerSec);
    std::fflush(options_.out);
  }

  if (log_) {
    int64_t tokens = r.step * options_.tokensPerStep;
    if (jsonl_)
      fmt::print(log_,
                 "{{\"step\": {}, \"loss\": {:.9g}, \"lr\": {:.9g}, "
                 "\"grad_norm\": {:.9g}, \"clip_coef\": {:.9g}, \"epoch\": "
                 "{:.6g}, \"tokens\": {}, \"elapsed_s\": {:.3f}}}\n",
                 r.step, r.loss, r.lr, r.gradNorm, r.clipCoef, r.epoch, tokens,
                 elapsed);
    else
      fmt::print(log_, "{},{:.9g},{:.9g},{:.9g},{:.9g},{:.6g},{},{:.3f}\n",
                 r.step, r.loss, r.lr, r.gradNorm, r.clipCoef, r.epoch, tokens,
                 elapsed);
    std::fflush(log_); // a crash or SIGINT keeps the curve so far
  }
}

void Progress::finish() {
  if (lineOpen_) {
    std::fputc('\n', options_.out);
    std::fflush(options_.out);
    lineOpen_ = false;
  }
  if (log_)
    std::fflush(log_);
}

} // namespace rwkv
