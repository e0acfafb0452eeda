#pragma once
/// Continuous-batching generation for serving: many requests, each with its own adapter or none,
/// decoded together by one engine thread over one frozen base model.
///
///   reft::Engine engine(*model, *tokenizer, {.ctx = 2048, .max_seqs = 16});
///   auto adapter = reft::load_served_adapter(*model, "shakespeare", "adapters/shakespeare");
///   auto stream = engine.submit({.prompt = ids, .adapter = adapter, .options = g});
///   for (;;) {                                    // any thread
///     auto ev = stream->wait(std::chrono::milliseconds(100));
///     std::cout << ev.text;
///     if (ev.finished) break;
///   }
///
/// Scheduling: requests wait in a FIFO queue; between decode steps the engine admits as many as
/// there are free rows (--max-seqs), prefills them together in one forward (left-padded, each row
/// with its own adapter's interventions at its own positions) and adds them to the running batch;
/// every decode step feeds one token to every running row. Rows leave the batch when they finish
/// or are cancelled. The KV cache is allocated once: max_seqs rows × ctx positions.
///
/// Interventions follow ReFT's inference mode: they edit the prompt positions of the adapter's
/// position spec during the prefill only; an adapter whose reft_config.json records
/// `"intervene_generated": true` (e.g. `reft steer` vectors) also edits every generated token.
/// A row's output equals `generate()` on that prompt alone with the same adapter and options
/// (greedy: the same ids; sampled: the same ids for the same seed).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "reft/adapter.h"
#include "reft/error.h"
#include "reft/generate.h"
#include "reft/model.h"

namespace reft {

class Tokenizer;

/// An adapter as served: loaded once onto the engine's base and never changed afterwards. Requests
/// hold a shared_ptr, so unloading it from a registry leaves in-flight requests their copy.
struct ServedAdapter {
  std::string name;
  std::filesystem::path dir;
  std::shared_ptr<ReftModel> reft;  // interventions over the engine's base (eval mode)
  AdapterMeta meta;                 // prompt template, task
  bool intervene_generated = false;
};

/// Loads `dir` (a reft adapter or a pyreft directory) onto `base` for serving. Refuses, with a
/// reft::UsageError naming `dir`, adapters that cannot generate (classification heads, interchange
/// interventions that need a source run) and adapters of another base model.
std::shared_ptr<const ServedAdapter> load_served_adapter(Model& base, const std::string& name,
                                                         const std::filesystem::path& dir);

struct EngineOptions {
  int64_t ctx = 2048;       // KV positions per row: prompt + generated tokens of one request
  int64_t max_seqs = 16;    // rows decoded together (the KV cache holds max_seqs × ctx)
  int64_t max_queue = 256;  // waiting requests; submit() refuses more with QueueFullError
  /// Tokens prefilled in one forward (sum over the admitted prompts, padded); a longer single
  /// prompt is still admitted alone.
  int64_t max_prefill_tokens = 4096;
};

/// submit() while max_queue requests are already waiting, or after stop(): the server answers
/// 429 / 503.
class QueueFullError : public Error {
 public:
  explicit QueueFullError(const std::string& message) : Error(message) {}
};

struct EngineRequest {
  std::vector<int64_t> prompt;                   // token ids, BOS included when the model uses it
  std::shared_ptr<const ServedAdapter> adapter;  // null: the base model alone
  /// max_new_tokens, sampling, seed, stop ids and strings. pad_token_id and on_warning are unused.
  GenerationOptions options;
};

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
/// "stop", "length", "cancelled", "error" ("" for kNone).
const char* finish_reason_name(FinishReason reason);

/// What a request produced since the previous wait().
struct StreamEvent {
  std::vector<int64_t> tokens;  // new token ids (a stop id, when produced, is the last one)
  std::string text;             // their newly printable text (special tokens skipped; text after
                                // a stop string, and the stop string itself, never appear)
  bool finished = false;
  FinishReason reason = FinishReason::kNone;
  std::string error;              // kError: the message
  int64_t prompt_tokens = 0;      // always filled
  int64_t completion_tokens = 0;  // generated so far (all of them once finished)
};

/// One request's channel between the engine thread and its client. Thread-safe.
class RequestStream {
 public:
  /// Waits up to `timeout` for new tokens or the end; returns what arrived (maybe nothing).
  StreamEvent wait(std::chrono::milliseconds timeout);
  /// Waits for the end and returns everything: the whole text and every token.
  StreamEvent wait_all();
  /// The client went away: the engine drops the row before its next step.
  void cancel();
  bool cancelled() const;

  // Engine side.
  struct State;
  explicit RequestStream(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};

/// Cumulative counters and histograms for /metrics. Histogram counts are per bucket (not
/// cumulative); the last bucket is +Inf.
struct Histogram {
  std::vector<double> bounds;    // upper bounds of all but the last bucket
  std::vector<uint64_t> counts;  // bounds.size() + 1
  double sum = 0;
  uint64_t count = 0;
  void observe(double value);
};

struct EngineStats {
  int64_t queue_length = 0;        // waiting requests now
  int64_t running = 0;             // rows in the batch now
  uint64_t requests_started = 0;   // admitted into the batch
  uint64_t requests_finished = 0;  // by reason, below
  uint64_t finished_stop = 0, finished_length = 0, finished_cancelled = 0, finished_error = 0;
  uint64_t prompt_tokens = 0, generated_tokens = 0;
  uint64_t decode_steps = 0, prefills = 0;
  double prefill_seconds = 0, decode_seconds = 0;  // engine-thread time in each phase
  Histogram batch_size;                            // rows per decode step
  Histogram time_to_first_token;                   // seconds from submit() to the first token
  Histogram request_latency;                       // seconds from submit() to the end
  Histogram queue_wait;                            // seconds from submit() to admission
};

class Engine {
 public:
  /// Starts the engine thread. `model` must be a decoder; `tokenizer` decodes text and stop
  /// strings. Both must outlive the engine. Throws UsageError for invalid options.
  Engine(Model& model, const Tokenizer& tokenizer, EngineOptions options = {});
  /// Token ids only (benchmarks): events carry no text and stop strings are refused.
  explicit Engine(Model& model, EngineOptions options = {});
  ~Engine();  // stop(/*cancel=*/true)
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const EngineOptions& options() const { return options_; }

  /// Queues a request. Throws UsageError for an empty prompt, ids outside the vocabulary, a
  /// prompt + max_new_tokens longer than ctx or invalid sampling options (checked here, before
  /// queueing), QueueFullError when the queue is full or the engine is stopping.
  std::shared_ptr<RequestStream> submit(EngineRequest request);

  EngineStats stats() const;

  /// Stops accepting requests; with `cancel` ends running and queued ones as cancelled, else
  /// lets them finish. Returns when the engine thread has exited. Idempotent.
  void stop(bool cancel);

  class Impl;

 private:
  Engine(Model& model, const Tokenizer* tokenizer, EngineOptions options);
  EngineOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace reft
