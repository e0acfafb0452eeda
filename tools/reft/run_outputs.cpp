#include "run_outputs.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "reft/error.h"
#include "util/files.h"

namespace reft::cli {
namespace fs = std::filesystem;

namespace {

// Keeps the lines of `path` whose "step" is ≤ `step`: a run resumed at step s rewrites the lines
// after s; a fresh run (s = 0) starts an empty file.
void keep_steps_until(const fs::path& path, int64_t step) {
  if (!fs::exists(path)) return;
  if (step <= 0) {
    fs::remove(path);
    return;
  }
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      if (nlohmann::json::parse(line).value("step", int64_t{0}) <= step) kept += line + "\n";
    } catch (const nlohmann::json::exception&) {
      // A line cut by a kill: dropped, the resumed run writes it again.
    }
  }
  in.close();
  write_file_atomically(path, [&](std::ostream& out) { out << kept; });
}

void append_line(const fs::path& path, const nlohmann::json& j) {
  std::ofstream out(path, std::ios::app);
  out << j.dump() << "\n";
  if (!out) fail("[", path.string(), "] cannot append a line");
}

nlohmann::json eval_json(const EvalResult& r) {
  nlohmann::json j = {{"step", r.step}, {"loss", r.loss}, {"examples", r.examples}};
  if (r.exact_match >= 0) j["exact_match"] = r.exact_match;
  for (const auto& [k, v] : r.metrics.items()) j[k] = v;
  return j;
}

}  // namespace

std::string format_duration(double s) {
  const int total = static_cast<int>(std::max(0.0, s) + 0.5);
  char buf[32];
  if (total >= 3600)
    std::snprintf(buf, sizeof buf, "%d:%02d:%02d", total / 3600, total / 60 % 60, total % 60);
  else
    std::snprintf(buf, sizeof buf, "%d:%02d", total / 60, total % 60);
  return buf;
}

TrainCallbacks progress_printer(int tty) {
  const bool redraw = tty < 0 ? isatty(fileno(stderr)) != 0 : tty > 0;
  // Length of the progress line on screen (0: none, the cursor is at a line start).
  auto shown = std::make_shared<size_t>(0);
  const auto end_line = [shown] {
    if (*shown) std::fputc('\n', stderr);
    *shown = 0;
  };
  TrainCallbacks cb;
  cb.on_step = [redraw, shown, end_line](const TrainEvent& e) {
    char line[256];
    const int n = std::snprintf(
        line, sizeof line, "step %lld/%lld  epoch %.2f  loss %.4f  lr %.2e  %.0f tok/s  ETA %s",
        static_cast<long long>(e.step), static_cast<long long>(e.total_steps), e.epoch, e.loss,
        e.lr, e.tokens_per_s, format_duration(e.eta_s).c_str());
    const size_t len = static_cast<size_t>(std::max(0, std::min<int>(n, sizeof line - 1)));
    if (!redraw) {
      std::fprintf(stderr, "%s\n", line);
      return;
    }
    // Spaces cover what is left of a longer previous line.
    std::fprintf(stderr, "\r%s%*s", line, static_cast<int>(*shown > len ? *shown - len : 0), "");
    *shown = len;
    if (e.step >= e.total_steps) end_line();
    std::fflush(stderr);
  };
  cb.on_eval = [end_line](const EvalResult& r) {
    end_line();
    std::fprintf(stderr, "eval at step %lld: loss %.4f", static_cast<long long>(r.step), r.loss);
    if (r.exact_match >= 0) std::fprintf(stderr, ", exact match %.1f%%", 100 * r.exact_match);
    std::fprintf(stderr, " (%lld examples)\n", static_cast<long long>(r.examples));
  };
  cb.on_message = [end_line](const std::string& m) {
    end_line();
    std::fprintf(stderr, "%s\n", m.c_str());
  };
  return cb;
}

RunOutputs::RunOutputs(fs::path dir) : dir_(std::move(dir)) {}

TrainCallbacks RunOutputs::wrap(TrainCallbacks inner) const {
  if (dir_.empty()) return inner;
  TrainCallbacks cb = inner;
  const fs::path dir = dir_;
  cb.on_start = [dir, inner](int64_t start_step, int64_t total_steps) {
    fs::create_directories(dir);
    keep_steps_until(dir / "metrics.jsonl", start_step);
    keep_steps_until(dir / "eval.jsonl", start_step);
    if (inner.on_start) inner.on_start(start_step, total_steps);
  };
  cb.on_step = [dir, inner](const TrainEvent& e) {
    append_line(dir / "metrics.jsonl", {{"step", e.step},
                                        {"loss", e.loss},
                                        {"lr", e.lr},
                                        {"grad_norm", e.grad_norm},
                                        {"tokens_per_s", e.tokens_per_s},
                                        {"epoch", e.epoch},
                                        {"elapsed_s", e.elapsed_s}});
    if (inner.on_step) inner.on_step(e);
  };
  cb.on_eval = [dir, inner](const EvalResult& r) {
    append_line(dir / "eval.jsonl", eval_json(r));
    if (inner.on_eval) inner.on_eval(r);
  };
  return cb;
}

void RunOutputs::finish(const TrainSummary& summary, int64_t trainable_parameters) const {
  if (dir_.empty()) return;
  nlohmann::json s = {{"final_loss", summary.final_loss},
                      {"steps", summary.steps},
                      {"seconds", summary.seconds},
                      {"tokens", summary.tokens},
                      {"start_step", summary.start_step},
                      {"losses", summary.losses},
                      {"trainable_parameters", trainable_parameters}};
  if (summary.eval) {
    s["eval_loss"] = summary.eval->loss;
    if (summary.eval->exact_match >= 0) s["eval_exact_match"] = summary.eval->exact_match;
    if (!summary.eval->metrics.empty()) s["eval_metrics"] = summary.eval->metrics;
  }
  write_file_atomically(dir_ / "summary.json",
                        [&](std::ostream& out) { out << s.dump(2) << "\n"; });
  write_file_atomically(dir_ / "loss.svg", [&](std::ostream& out) {
    out << loss_curve_svg(summary.losses, "training loss");
  });
}

}  // namespace reft::cli
