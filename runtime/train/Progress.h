//===- Progress.h - Training progress display and loss log ------*- C++ -*-===//
//
// On a terminal: one self-overwriting progress line (step, loss, tokens/s,
// ETA). Otherwise (a file, a CI log): a plain line
// `step N loss X lr Y tok/s Z` every `printEvery` steps and at the last one.
// Optionally every step is appended to a CSV (`.csv`) or JSON-lines
// (`.jsonl`) loss log.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_TRAIN_PROGRESS_H
#define RWKV_RUNTIME_TRAIN_PROGRESS_H

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace rwkv {

struct ProgressOptions {
  int64_t totalSteps = 0;    // for the bar and the ETA (0: unknown)
  int64_t tokensPerStep = 0; // B·T
  int64_t printEvery = 10;   // plain mode: a line every N steps
  std::FILE *out = stdout;
  /// -1: detect (isatty on `out`), 0: plain lines, 1: progress bar.
  int terminal = -1;
  /// Loss log path (.csv or .jsonl; empty: none). Appended to when it
  /// exists already (a resumed run), else created with a header (CSV).
  std::string logPath;
};

struct StepRecord {
  int64_t step = 0; // 1-based number of the update just done
  double loss = 0, lr = 0, gradNorm = 0, clipCoef = 1;
  double epoch = 0;
};

class Progress {
public:
  /// Throws TrainError naming the log file if it cannot be opened or has
  /// an unknown extension.
  explicit Progress(ProgressOptions options);
  ~Progress();
  Progress(const Progress &) = delete;
  Progress &operator=(const Progress &) = delete;

  /// Reports one finished step. Timing starts at construction (or the last
  /// restart()), so tok/s covers the steps of this run only.
  void update(const StepRecord &record);
  /// Ends the progress line (terminal mode) and flushes the log.
  void finish();
  bool isTerminal() const { return terminal_; }

  /// Formats seconds as "1h02m03s" / "2m03s" / "3s".
  static std::string formatDuration(double seconds);

private:
  ProgressOptions options_;
  bool terminal_ = false;
  bool lineOpen_ = false;
  std::FILE *log_ = nullptr;
  bool jsonl_ = false;
  int64_t firstStep_ = -1, stepsThisRun_ = 0;
  std::chrono::steady_clock::time_point start_;
};

} // namespace rwkv

#endif // RWKV_RUNTIME_TRAIN_PROGRESS_H
