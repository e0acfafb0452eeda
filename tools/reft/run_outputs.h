#pragma once
// What a training run shows and leaves behind, fed by the trainer's callbacks: the progress on
// stderr and, beside the adapter, metrics.jsonl, eval.jsonl, summary.json and loss.svg. The
// library writes only the adapter and its checkpoint; these belong to the frontend.

#include <cstdint>
#include <filesystem>
#include <memory>

#include "reft/trainer.h"

namespace reft::cli {

/// Progress on stderr. On a terminal one line (step, loss, tokens/s, ETA) is redrawn in place with
/// '\r'; otherwise each logged step is a plain line, so logs and pipes hold no control
/// characters. `tty` < 0 asks isatty(stderr).
TrainCallbacks progress_printer(int tty = -1);

/// The run's files in `dir` (an empty path writes nothing).
class RunOutputs {
 public:
  explicit RunOutputs(std::filesystem::path dir);

  /// Callbacks that record each step and evaluation, then call `inner`'s. On start, a fresh run
  /// removes the files of an earlier one; a resumed run keeps the lines of the steps it resumes
  /// after and rewrites the rest.
  TrainCallbacks wrap(TrainCallbacks inner) const;

  /// summary.json and loss.svg, after training.
  void finish(const TrainSummary& summary, int64_t trainable_parameters) const;

 private:
  std::filesystem::path dir_;
};

/// "1:02" or "1:02:03".
std::string format_duration(double seconds);

}  // namespace reft::cli
