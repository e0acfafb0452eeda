#pragma once
/// The OpenAI-compatible request bodies `reft serve` accepts, parsed and checked before any model
/// is involved (torch-free; fuzzed by fuzz/openai_request_fuzzer.cpp), and OpenAI's error shape.
///
///   auto req = reft::openai::parse_completion_request(body);   // throws openai::ApiError
///
/// Fields follow OpenAI's API; `top_k`, `repetition_penalty`, `ignore_eos` and
/// `chat_template_kwargs` are the vLLM extensions of the same names. Fields reft cannot honour
/// (logprobs, n > 1, tools, …) are refused with a 400 naming them rather than silently ignored;
/// fields that change nothing (`user`, `presence_penalty: 0`, …) are accepted.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "reft/error.h"

namespace reft::openai {

/// A request the server answers with an error: the HTTP status and OpenAI's error fields.
class ApiError : public Error {
 public:
  ApiError(int status, const std::string& message, std::string param = "", std::string code = "")
      : Error(message), status_(status), param_(std::move(param)), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }  // the offending field; "" = none
  const std::string& code() const { return code_; }    // e.g. "model_not_found"; "" = none

 private:
  int status_;
  std::string param_, code_;
};

/// OpenAI's error type for an HTTP status ("invalid_request_error", "authentication_error", …).
const char* error_type(int status);
/// {"error": {"message", "type", "param", "code"}} (null for empty param/code).
nlohmann::ordered_json error_json(int status, const std::string& message,
                                  const std::string& param = "", const std::string& code = "");

/// Sampling and stopping, shared by both endpoints.
struct Sampling {
  std::optional<int64_t> max_tokens;  // unset: the endpoint's default
  double temperature = 1.0;           // OpenAI's default; 0 = greedy
  double top_p = 1.0;
  int64_t top_k = 0;
  double repetition_penalty = 1.0;
  std::optional<uint64_t> seed;  // unset: a fresh random seed per request
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with `usage`
};

struct CompletionRequest {
  std::string model;  // "" = the base model
  /// The prompt: text, or token ids (OpenAI accepts a list of ints).
  std::optional<std::string> prompt_text;
  std::vector<int64_t> prompt_ids;
  Sampling sampling;
};

struct ChatRequest {
  std::string model;
  /// A non-empty list of {"role": string, "content": string, …}; list-of-parts contents
  /// ([{"type": "text", "text": …}]) are joined into one string. Other keys are kept for templates.
  nlohmann::ordered_json messages;
  bool add_generation_prompt = true;  // vLLM's extension; false continues the last message
  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();  // extra variables
  Sampling sampling;
};

struct AdapterLoadRequest {
  std::string name;
  std::string path;  // relative to the server's --adapters-dir
};

/// Limits on what one body may ask for.
inline constexpr size_t kMaxStopStrings = 16;
inline constexpr size_t kMaxStopLength = 256;
inline constexpr size_t kMaxMessages = 4096;

CompletionRequest parse_completion_request(std::string_view body);
ChatRequest parse_chat_request(std::string_view body);
AdapterLoadRequest parse_adapter_request(std::string_view body);

/// A model or adapter id: 1 to 128 characters of [A-Za-z0-9._:-], not starting with '.'.
bool valid_model_name(std::string_view name);

}  // namespace reft::openai
