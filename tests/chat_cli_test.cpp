// reft render-chat: a model directory with only tokenizer_config.json, the prompt printed exactly,
// raise_exception as exit 1 with its message, the expected renderings of the reference.

#include <gtest/gtest.h>

#include <fstream>

#include "cli_util.h"
#include "reft/chat_template.h"
#include "test_util.h"

namespace fs = std::filesystem;
using reft::test::TempDir;

namespace {

const std::string kZephyr =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
    "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' "
    "+ "
    "message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ "
    "'<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and "
    "add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

reft::test::Run cli(const std::vector<std::string>& args) { return reft::test::reft(args); }

void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

fs::path model_dir(const TempDir& tmp, const nlohmann::ordered_json& config,
                   const std::string& name = "model") {
  const fs::path dir = tmp / name;
  fs::create_directories(dir);
  write(dir / "tokenizer_config.json", config.dump());
  return dir;
}

}  // namespace

TEST(RenderChat, PrintsThePromptExactly) {
  TempDir tmp;
  const auto dir = model_dir(tmp, {{"chat_template", kZephyr},
                                   {"eos_token", {{"content", "</s>"}, {"__type", "AddedToken"}}}});
  write(tmp / "m.json",
        R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])");
  const auto r = cli({"render-chat", "--model", dir.string(), "--messages",
                      (tmp / "m.json").string(), "--add-generation-prompt"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n");
  EXPECT_EQ(r.err, "");
  const auto no_prompt =
      cli({"render-chat", "--model", dir.string(), "--messages", (tmp / "m.json").string()});
  EXPECT_EQ(no_prompt.out, "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n");
}

TEST(RenderChat, RaiseExceptionExitsOneWithItsMessage) {
  TempDir tmp;
  const auto dir = model_dir(
      tmp, {{"chat_template",
             "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
             "{{ raise_exception('Conversation roles must alternate "
             "user/assistant/user/assistant/...') }}"
             "{% endif %}{{ m['content'] }}{% endfor %}"}});
  write(tmp / "m.json", R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])");
  const auto r =
      cli({"render-chat", "--model", dir.string(), "--messages", (tmp / "m.json").string()});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "reft: error: Conversation roles must alternate user/assistant/user/assistant/...\n");
}

TEST(RenderChat, NamedTemplatesToolsAndExtraVariables) {
  TempDir tmp;
  const auto dir = model_dir(
      tmp, {{"chat_template",
             {{{"name", "default"}, {"template", "D:{{ messages[0].content }}"}},
              {{"name", "tool_use"}, {"template", "T:{{ tools | tojson }}|{{ flavour }}"}}}}});
  write(
      tmp / "m.json",
      R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"b": 1, "a": 2}], "flavour": "mint"})");
  const std::string m = (tmp / "m.json").string();
  EXPECT_EQ(cli({"render-chat", "--model", dir.string(), "--messages", m}).out, "D:x");
  const auto t =
      cli({"render-chat", "--model", dir.string(), "--messages", m, "--template-name", "tool_use"});
  EXPECT_EQ(t.out, "T:[{\"b\": 1, \"a\": 2}]|mint") << t.err;  // key order kept
  reft::test::expect_error(
      cli({"render-chat", "--model", dir.string(), "--messages", m, "--template-name", "rag"}), 1,
      "expected a template named 'rag', found default, tool_use");
}

TEST(RenderChat, ClearErrors) {
  TempDir tmp;
  const auto dir = model_dir(tmp, {{"chat_template", "{% if %}"}});
  write(tmp / "m.json", "[]");
  const std::string m = (tmp / "m.json").string();
  reft::test::expect_error(cli({"render-chat", "--model", dir.string(), "--messages", m}), 1,
                           "[chat_template line 1, column 7]");
  const auto none = model_dir(tmp, {{"eos_token", "</s>"}}, "no_template");
  reft::test::expect_error(cli({"render-chat", "--model", none.string(), "--messages", m}), 1,
                           "expected a chat_template");
  reft::test::expect_error(
      cli({"render-chat", "--model", (tmp / "nowhere").string(), "--messages", m}), 1,
      "expected tokenizer_config.json");
  write(tmp / "bad.json", "{\"role\": ");
  reft::test::expect_error(
      cli({"render-chat", "--model", dir.string(), "--messages", (tmp / "bad.json").string()}), 1,
      "bad.json] expected JSON");
  reft::test::expect_error(cli({"render-chat", "--messages", m}), 2, "--model");
}

// The CLI renders the collected templates as the reference recorded them.
TEST(RenderChat, RecordedReferenceThroughTheCli) {
  const fs::path data = fs::path(REFT_SOURCE_DIR) / "tests/data/chat_templates";
  std::ifstream in(data / "expected.json");
  const auto expected = nlohmann::ordered_json::parse(in);
  std::ifstream sets_in(data / "message_sets.json");
  const auto sets = nlohmann::ordered_json::parse(sets_in)["sets"];
  TempDir tmp;
  int checked = 0;
  for (const auto& c : expected["cases"]) {
    const std::string name = c["template"], set_name = c["set"];
    // The templates of ../shared/tokenizers with every message set that needs no tools/documents
    // (tests/chat_template_test.cpp checks all the others through the library).
    if (name.rfind("shared-", 0) != 0) continue;
    const nlohmann::ordered_json* set = nullptr;
    for (const auto& s : sets)
      if (s["name"] == set_name) set = &s;
    if (!set || set->contains("extra")) continue;
    std::ifstream config_in(data / "templates" / (name + ".json"));
    const auto dir = model_dir(tmp, nlohmann::ordered_json::parse(config_in));
    write(tmp / "m.json", (*set)["messages"].dump());
    std::vector<std::string> args = {"render-chat", "--model", dir.string(), "--messages",
                                     (tmp / "m.json").string()};
    if ((*set)["add_generation_prompt"].get<bool>()) args.push_back("--add-generation-prompt");
    const auto r = cli(args);
    if (c.contains("output")) {
      EXPECT_EQ(r.status, 0) << name << "/" << set_name << ": " << r.err;
      EXPECT_EQ(r.out, c["output"].get<std::string>()) << name << "/" << set_name;
    } else {
      EXPECT_EQ(r.status, 1) << name << "/" << set_name;
      EXPECT_NE(r.err.find(c["error"].get<std::string>()), std::string::npos) << r.err;
    }
    ++checked;
  }
  EXPECT_GT(checked, 20);
}
