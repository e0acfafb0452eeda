// libFuzzer target for the chat-template renderer. The input is cut at the first NUL byte into a
// Jinja template and the JSON context it is rendered with (messages, tokens, tools; a default
// context when the second part is absent or not JSON). Rendering runs under small limits: a
// template that loops forever, recurses or doubles a string must fail with reft::Error, not hang.
#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "reft/chat_template.h"

namespace {
const nlohmann::ordered_json& default_context() {
  static const nlohmann::ordered_json context = nlohmann::ordered_json::parse(R"({
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                 {"role": "assistant", "content": "Hello", "tool_calls": [{"id": "call123456",
                  "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]},
                 {"role": "tool", "tool_call_id": "call123456", "content": "42"}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>",
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "documents": null})");
  return context;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = reft::fuzz::split_parts(data, size, 2);
  nlohmann::ordered_json context = default_context();
  if (parts.size() > 1) {
    try {
      auto parsed = reft::parse_ordered_json(parts[1], "context");
      if (parsed.is_object()) context = std::move(parsed);
    } catch (const reft::Error&) {
    }
  }
  reft::ChatRenderOptions options;
  options.now = 1752148800;
  options.limits.max_steps = 200'000;
  options.limits.max_output_bytes = size_t{1} << 20;
  options.limits.max_call_depth = 50;
  try {
    const auto tmpl = reft::ChatTemplate::parse(std::string(parts[0]));
    tmpl.render(context, options);
  } catch (const reft::Error&) {
  }
  return 0;
}
