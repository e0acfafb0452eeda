// Prometheus text for GET /metrics.

#include "serve/metrics.h"

#include <sstream>

namespace reft::serve {

void HttpCounters::count(const std::string& route, int status) {
  std::lock_guard lock(mu_);
  ++counts_[{route, status}];
}

std::map<std::pair<std::string, int>, uint64_t> HttpCounters::snapshot() const {
  std::lock_guard lock(mu_);
  return counts_;
}

std::string route_of(const std::string& path) {
  for (const char* known : {"/", "/health", "/metrics", "/v1/models", "/v1/completions",
                            "/v1/chat/completions", "/v1/adapters"})
    if (path == known) return known;
  if (path.rfind("/v1/adapters/", 0) == 0) return "/v1/adapters/{name}";
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{name}";
  return "other";
}

namespace {

void header(std::ostringstream& out, const char* name, const char* type, const char* help) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

template <class T>
void metric(std::ostringstream& out, const char* name, const char* type, const char* help,
            T value) {
  header(out, name, type, help);
  out << name << " " << value << "\n";
}

void histogram(std::ostringstream& out, const char* name, const char* help, const Histogram& h) {
  header(out, name, "histogram", help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    cumulative += h.counts[i];
    out << name << "_bucket{le=\"";
    if (i < h.bounds.size())
      out << h.bounds[i];
    else
      out << "+Inf";
    out << "\"} " << cumulative << "\n";
  }
  out << name << "_sum " << h.sum << "\n" << name << "_count " << h.count << "\n";
}

}  // namespace

std::string prometheus_text(const EngineStats& s, const HttpCounters& http, size_t adapters_loaded,
                            bool draining) {
  std::ostringstream out;
  out.precision(9);
  header(out, "reft_http_requests_total", "counter",
         "HTTP requests answered, by route and status.");
  for (const auto& [key, n] : http.snapshot())
    out << "reft_http_requests_total{route=\"" << key.first << "\",code=\"" << key.second << "\"} "
        << n << "\n";
  metric(out, "reft_queue_length", "gauge", "Requests waiting for a row of the batch.",
         s.queue_length);
  metric(out, "reft_running_requests", "gauge", "Requests in the running batch.", s.running);
  metric(out, "reft_adapters_loaded", "gauge", "Adapters the server holds.", adapters_loaded);
  metric(out, "reft_draining", "gauge", "1 while the server shuts down (SIGTERM).",
         draining ? 1 : 0);
  metric(out, "reft_requests_started_total", "counter", "Requests admitted into the batch.",
         s.requests_started);
  header(out, "reft_requests_finished_total", "counter", "Requests ended, by finish reason.");
  out << "reft_requests_finished_total{reason=\"stop\"} " << s.finished_stop << "\n"
      << "reft_requests_finished_total{reason=\"length\"} " << s.finished_length << "\n"
      << "reft_requests_finished_total{reason=\"cancelled\"} " << s.finished_cancelled << "\n"
      << "reft_requests_finished_total{reason=\"error\"} " << s.finished_error << "\n";
  metric(out, "reft_prompt_tokens_total", "counter", "Prompt tokens prefilled.", s.prompt_tokens);
  metric(out, "reft_generation_tokens_total", "counter", "Tokens generated.", s.generated_tokens);
  metric(out, "reft_decode_steps_total", "counter", "Batched decode steps.", s.decode_steps);
  metric(out, "reft_prefills_total", "counter", "Batched prefill forwards.", s.prefills);
  metric(out, "reft_prefill_seconds_total", "counter", "Engine time spent in prefills.",
         s.prefill_seconds);
  metric(out, "reft_decode_seconds_total", "counter", "Engine time spent in decode steps.",
         s.decode_seconds);
  histogram(out, "reft_batch_size", "Rows per decode step.", s.batch_size);
  histogram(out, "reft_time_to_first_token_seconds", "From arrival to the first generated token.",
            s.time_to_first_token);
  histogram(out, "reft_request_latency_seconds", "From arrival to the last token.",
            s.request_latency);
  histogram(out, "reft_queue_wait_seconds", "From arrival to admission into the batch.",
            s.queue_wait);
  return out.str();
}

}  // namespace reft::serve
