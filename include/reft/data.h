#pragma once
/// Training data: JSONL / JSON / CSV records turned into tokenized examples with prompt-only
/// masking, in pyreft's conventions (the text is prompt + completion tokenized together, BOS
/// added by the tokenizer, EOS appended, prompt tokens labelled −100).

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace reft {

class Tokenizer;

/// One record of a data file with where it came from (for errors: "file:line").
struct Record {
  nlohmann::json fields;  // an object
  std::string where;      // "data.jsonl:17"
};

/// Reads every record of a .jsonl, .json (an array of objects, or {"data": [...]}) or .csv
/// (header row, RFC 4180 quoting) file. Errors name file:line.
std::vector<Record> read_records(const std::filesystem::path& path);

/// Prompt templates by name: "none" ({prompt} verbatim), "alpaca", "chatml", "llama2", "llama3",
/// "zephyr", "tinystories" ("{prompt}"), or any string containing "{prompt}".
std::string apply_template(std::string_view template_name, std::string_view prompt,
                           std::string_view input = {});
/// The names above (for --help and errors).
std::vector<std::string> template_names();

/// A chat conversation in a named template, as training renders the prompt of chat data: the
/// first `count` of `messages` ({"role", "content"} strings), then the assistant's header
/// (chatml, llama2, llama3, zephyr; any other name gives plain "role: content" lines and
/// "assistant: ").
std::string render_chat_prompt(const nlohmann::json& messages, size_t count,
                               std::string_view template_name);
/// The end-of-turn text a named chat template puts after a reply ("<|im_end|>" for chatml), or "".
std::string chat_turn_end(std::string_view template_name);

/// Encodes a rendered prompt (or prompt + completion) with the tokenizer's special tokens. A
/// template that writes the BOS text itself (llama3's "<|begin_of_text|>", as Meta's chat
/// template does) keeps exactly one: when the tokenizer adds BOS too, the duplicate is dropped.
std::vector<int64_t> encode_prompt(const Tokenizer& tokenizer, std::string_view text);

/// Warning lines for the markers a named template writes ("<|im_start|>", "<|eot_id|>", …) that
/// are not single tokens of `tokenizer`'s vocabulary: such a marker is split into ordinary pieces
/// the model never learned as a turn boundary. Empty when every marker is a token (and for
/// templates without markers: none, alpaca, llama2, custom strings).
std::vector<std::string> template_marker_warnings(std::string_view template_name,
                                                  const Tokenizer& tokenizer);

enum class DataFormat { kAuto, kPromptCompletion, kAlpaca, kChat, kClassification };
DataFormat parse_data_format(std::string_view name);

struct DataOptions {
  DataFormat format = DataFormat::kAuto;  // auto: decided from the first record's fields
  std::string prompt_field = "prompt", completion_field = "completion";
  std::string instruction_field = "instruction", input_field = "input", output_field = "output";
  std::string messages_field = "messages";
  std::string text_field = "text", text_pair_field = "text_pair", label_field = "label";
  /// Template applied to prompts ("none" keeps them verbatim; chat data uses it as the chat
  /// template and defaults to chatml).
  std::string template_name = "none";
  bool add_eos = true;
  int64_t max_length = 512;
};

/// A tokenized training example.
struct Example {
  std::vector<int64_t> input_ids;
  std::vector<int64_t> labels;          // −100 on prompt tokens (causal LM)
  int64_t prompt_length = 0;            // tokens of the prompt, BOS included
  std::string prompt, completion;       // after templating (for evaluation by generation)
  std::vector<int64_t> token_type_ids;  // encoders with segment ids (classification)
  std::string label;                    // classification label as text
  std::string where;
};

struct Dataset {
  std::vector<Example> examples;
  std::vector<std::string> warnings;  // truncations, skipped records
  /// The template the prompts were rendered with: DataOptions::template_name, or the format's
  /// default when that is "none" (alpaca data → "alpaca", chat data → "chatml"). An adapter
  /// records this one, so that generation renders prompts as training did.
  std::string template_name = "none";
  int64_t num_tokens() const;
};

/// Tokenizes records for causal-LM training (prompt/completion, alpaca, chat).
Dataset make_lm_dataset(const std::vector<Record>& records, const Tokenizer& tokenizer,
                        const DataOptions& options);

/// Tokenizes records for classification (text [+ text_pair] → label as text).
Dataset make_classification_dataset(const std::vector<Record>& records, const Tokenizer& tokenizer,
                                    const DataOptions& options);

/// The built-in example dataset of the README's first command: short question → answer pairs
/// (written for reft) that a small LoReFT can memorise.
std::vector<Record> builtin_example_records();

}  // namespace reft
