//===- Metrics.h - Prometheus counters, gauges and histograms ---*- C++ -*-===//
//
// A small thread-safe registry that renders the Prometheus text format
// (version 0.0.4) for /metrics. Metric names and label sets are fixed by the
// callers; values are doubles.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_SERVE_METRICS_H
#define RWKV_RUNTIME_SERVE_METRICS_H

#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace rwkv::serve {

class Metrics {
public:
  /// Declares a metric (HELP text and type) before use; histograms need
  /// their bucket upper bounds.
  void declare(const std::string &name, const std::string &type,
               const std::string &help, std::vector<double> buckets = {});
  /// `labels` is the rendered label set without braces, e.g.
  /// `endpoint="chat",status="200"`.
  void add(const std::string &name, double value,
           const std::string &labels = "");
  void set(const std::string &name, double value,
           const std::string &labels = "");
  void observe(const std::string &name, double value,
               const std::string &labels = "");
  double value(const std::string &name, const std::string &labels = "") const;
  std::string render() const;

private:
  struct Series {
    double value = 0;           // counter / gauge
    std::vector<double> counts; // histogram, per bucket (cumulative later)
    double sum = 0, count = 0;
  };
  struct Family {
    std::string type, help;
    std::vector<double> buckets;
    std::map<std::string, Series> series;
  };
  Family &family(const std::string &name);
  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
};

} // namespace rwkv::serve

#endif // RWKV_RUNTIME_SERVE_METRICS_H
