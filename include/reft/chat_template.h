#pragma once
/// Chat templates: the Jinja templates that HF models ship in tokenizer_config.json
/// (`chat_template`), rendered as transformers' `apply_chat_template` renders them.
///
/// The renderer follows @huggingface/jinja, the reference implementation of HF chat templates
/// (used by transformers.js and the Hub), byte for byte: the same whitespace handling (Jinja's
/// trim_blocks and lstrip_blocks, which transformers sets, and the trailing newline dropped), the
/// same printing of values (`true`, `2.0`, lists as JSON) and the same errors. Torch-free.
///
///   auto tmpl = reft::ChatTemplate::parse(source);
///   std::string prompt = tmpl.render(reft::chat_context(tokenizer_config, messages, true));
///
/// docs/chat_templates.md lists the supported Jinja subset.

#include <cstddef>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "reft/error.h"

namespace reft {

namespace chat {
struct Node;
}

/// Bounds on one rendering; exceeding one is a reft::Error, never a hang or an allocation storm.
struct ChatTemplateLimits {
  size_t max_output_bytes = size_t{16} << 20;  // the rendering and every string built on the way
  size_t max_steps = 50'000'000;               // expression evaluations and loop iterations
  int max_call_depth = 100;                    // nested macro calls (recursion)
};

struct ChatRenderOptions {
  ChatTemplateLimits limits;
  /// The clock of `strftime_now` (seconds since the epoch, formatted in UTC); now when unset.
  std::optional<std::time_t> now;
};

/// A parsed chat template (immutable; render() may be called from several threads at once).
class ChatTemplate {
 public:
  /// Parses Jinja source. Throws reft::Error "[chat_template line L, column C] …" on bad syntax.
  /// Invalid UTF-8 in `source` is replaced by U+FFFD first.
  static ChatTemplate parse(std::string source);

  /// Renders with `context` as the template's variables (an object: messages,
  /// add_generation_prompt, bos_token, …; see chat_context()). Besides them the template sees
  /// `raise_exception(msg)`, `strftime_now(fmt)`, `range`, `namespace`, true/false/none.
  /// Throws reft::Error: raise_exception(msg) gives exactly `msg` as the message; other runtime
  /// errors "[chat_template line L, column C] …".
  std::string render(const nlohmann::ordered_json& context,
                     const ChatRenderOptions& options = {}) const;

  const std::string& source() const { return *source_; }

 private:
  std::shared_ptr<const std::string> source_;
  std::shared_ptr<const chat::Node> program_;
};

/// The template text of tokenizer_config.json's `chat_template`: a string, or a list of
/// {"name", "template"} from which `name` is picked ("default" when `name` is empty; a single
/// unnamed choice is taken as is). Throws reft::Error when there is none or `name` is not listed
/// (the message lists the names there are).
std::string select_chat_template(const nlohmann::ordered_json& tokenizer_config,
                                 const std::string& name = "", const std::string& where = "");

/// A special token of tokenizer_config.json as a string: the value itself, or the `content` of an
/// AddedToken object ({"content": "<s>", "lstrip": false, …}); empty when absent or null.
std::string special_token_text(const nlohmann::ordered_json& tokenizer_config, const char* key);

/// The variables HF's apply_chat_template gives a template: `messages`, `add_generation_prompt`,
/// `bos_token`, `eos_token`, `pad_token`, `unk_token` (from the config, strings even when stored
/// as AddedToken objects; absent ones are left undefined), and `tools` / `documents` when
/// `extra` has them. Every other key of `extra` (e.g. `date_string`, `enable_thinking`) is passed
/// through as well.
nlohmann::ordered_json chat_context(
    const nlohmann::ordered_json& tokenizer_config, const nlohmann::ordered_json& messages,
    bool add_generation_prompt,
    const nlohmann::ordered_json& extra = nlohmann::ordered_json::object());

/// A model's chat template with the tokenizer_config.json it came from.
struct ModelChatTemplate {
  ChatTemplate chat_template;
  nlohmann::ordered_json tokenizer_config;

  /// Renders `messages` with chat_context(tokenizer_config, messages, add_generation_prompt,
  /// extra).
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                     const nlohmann::ordered_json& extra = nlohmann::ordered_json::object(),
                     const ChatRenderOptions& options = {}) const;
};

/// Loads the chat template of a model directory: DIR/tokenizer_config.json's `chat_template`
/// (picked by `name`, see select_chat_template), or DIR/chat_template.jinja (where newer
/// transformers versions save it) when the config has none. Nothing else of DIR is read.
ModelChatTemplate load_chat_template(const std::filesystem::path& dir,
                                     const std::string& name = "");

/// Parses JSON keeping the order of object keys (which `tojson` shows), nesting at most 256
/// levels; errors are one line "[where] expected JSON, …".
nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& where);

}  // namespace reft
