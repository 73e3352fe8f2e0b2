//===- Metrics.cpp - Prometheus counters, gauges and histograms -----------===//

#include "runtime/serve/Metrics.h"

#include <fmt/format.h>

#include <stdexcept>

namespace rwkv::serve {

void Metrics::declare(const std::string &name, const std::string &type,
                      const std::string &help, std::vector<double> buckets) {
  std::lock_guard<std::mutex> lock(mutex_);
  Family &f = families_[name];
  f.type = type;
  f.help = help;
  f.buckets = std::move(buckets);
}

Metrics::Family &Metrics::family(const std::string &name) {
  auto it = families_.find(name);
  if (it == families_.end())
    throw std::logic_error("undeclared metric " + name);
  return it->second;
}

void Metrics::add(const std::string &name, double value,
                  const std::string &labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  family(name).series[labels].value += value;
}

void Metrics::set(const std::string &name, double value,
                  const std::string &labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  family(name).series[labels].value = value;
}

void Metrics::observe(const std::string &name, double value,
                      const std::string &labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  Family &f = family(name);
  Series &s = f.series[labels];
  s.counts.resize(f.buckets.size());
  for (size_t i = 0; i < f.buckets.size(); ++i)
    if (value <= f.buckets[i])
      s.counts[i] += 1;
  s.sum += value;
  s.count += 1;
}

double Metrics::value(const std::string &name,
                      const std::string &labels) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto f = families_.find(name);
  if (f == families_.end())
    return 0;
  auto s = f->second.series.find(labels);
  if (s == f->second.series.end())
    return 0;
  return f->second.type == "histogram" ? s->second.count : s->second.value;
}

std::string Metrics::render() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  auto braces = [](const std::string &labels, const std::string &extra) {
    std::string all = labels;
    if (!extra.empty())
      all += (all.empty() ? "" : ",") + extra;
    return all.empty() ? std::string() : "{" + all + "}";
  };
  for (const auto &[name, f] : families_) {
    out +=
        fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, f.help, name, f.type);
    for (const auto &[labels, s] : f.series) {
      if (f.type != "histogram") {
        out += fmt::format("{}{} {}\n", name, braces(labels, ""), s.value);
        continue;
      }
      for (size_t i = 0; i < f.buckets.size(); ++i)
        out +=
            fmt::format("{}_bucket{} {}\n", name,
                        braces(labels, fmt::format("le=\"{}\"", f.buckets[i])),
                        i < s.counts.size() ? s.counts[i] : 0.0);
      out += fmt::format("{}_bucket{} {}\n", name,
                         braces(labels, "le=\"+Inf\""), s.count);
      out +=
          fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces(labels, ""),
                      s.sum, name, braces(labels, ""), s.count);
    }
  }
  return out;
}

} // namespace rwkv::serve
