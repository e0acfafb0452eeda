// reft render-chat: renders a model's chat template (tokenizer_config.json's chat_template) for a
// list of messages and prints the prompt exactly, so that templates can be checked on their own.

#include <iostream>

#include "cli.h"
#include "reft/chat_template.h"
#include "reft/error.h"
#include "util/files.h"

namespace reft::cli {
namespace {

int run_render_chat(const Args& args) {
  const std::string messages_file = args.get("messages");
  const auto input = parse_ordered_json(read_file(messages_file, size_t{256} << 20), messages_file);
  // A list of messages, or {"messages": [...], "tools": [...], "documents": [...], …} whose other
  // keys become template variables too (e.g. "enable_thinking", "date_string").
  nlohmann::ordered_json messages, extra = nlohmann::ordered_json::object();
  if (input.is_array()) {
    messages = input;
  } else if (input.is_object() && input.contains("messages") && input["messages"].is_array()) {
    messages = input["messages"];
    for (const auto& [key, value] : input.items())
      if (key != "messages") extra[key] = value;
  } else {
    fail("[", messages_file, "] expected a JSON list of messages or an object with \"messages\"");
  }
  for (const auto& m : messages)
    if (!m.is_object())
      fail("[", messages_file,
           "] expected every message to be an object {\"role\", \"content\"}, "
           "found ",
           m.type_name());
  const auto model =
      load_chat_template(args.get("model"), args.maybe("template-name").value_or(""));
  const std::string prompt = model.render(messages, args.flag("add-generation-prompt"), extra);
  std::cout << prompt << std::flush;
  return 0;
}

}  // namespace

std::vector<Command> chat_commands() {
  std::vector<Flag> flags = {
      {"model", "DIR", "",
       "model directory; only its tokenizer_config.json (or chat_template.jinja) is read"},
      {"messages", "FILE", "",
       "JSON list of messages, or {\"messages\": [...], \"tools\": [...], …} (other keys become "
       "template variables)"},
      {"add-generation-prompt", "", "", "end with the assistant's turn header"},
      {"template-name", "NAME", "",
       "which of a list of named templates (default: the one named \"default\")"},
  };
  return {{"render-chat",
           "Render a model's chat template for a list of messages and print the prompt exactly "
           "(no newline added). A template that calls raise_exception fails with its message.",
           "--model DIR --messages FILE.json [--add-generation-prompt] [--template-name NAME]",
           flags, run_render_chat}};
}

}  // namespace reft::cli
