#pragma once
// GET /metrics: the engine's counters and histograms and the HTTP responses by route and status,
// in Prometheus' text exposition format (version 0.0.4).

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "reft/engine.h"

namespace reft::serve {

class HttpCounters {
 public:
  /// Counts one answered request. `route` is a fixed pattern ("/v1/completions",
  /// "/v1/adapters/{name}", "other"), so the label set stays bounded.
  void count(const std::string& route, int status);
  std::map<std::pair<std::string, int>, uint64_t> snapshot() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> counts_;
};

/// The route label of a request path.
std::string route_of(const std::string& path);

std::string prometheus_text(const EngineStats& stats, const HttpCounters& http,
                            size_t adapters_loaded, bool draining);

}  // namespace reft::serve
