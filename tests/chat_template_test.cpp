// Chat templates against the reference renderer (@huggingface/jinja): every collected real
// template (tests/data/chat_templates/templates/) with every message set, byte for byte, including
// the message of raise_exception; plus the bounds, errors and context rules of the renderer.
// The reference's own feature tests (tests/data/chat_templates/features.json) likewise. When node
// and tools/jinja-ref/node_modules are present, the template cases are also rendered live by the
// reference with the contexts reft builds.

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "reft/chat_template.h"
#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

const ordered_json kEmpty = ordered_json::object();
const fs::path kData = fs::path(REFT_SOURCE_DIR) / "tests/data/chat_templates";

ordered_json read_json(const fs::path& file) {
  std::ifstream in(file);
  EXPECT_TRUE(in) << file;
  return ordered_json::parse(in);
}

std::string render(const std::string& source, const ordered_json& context = ordered_json::object(),
                   const reft::ChatRenderOptions& options = {}) {
  return reft::ChatTemplate::parse(source).render(context, options);
}

std::string error_of(const std::string& source,
                     const ordered_json& context = ordered_json::object(),
                     const reft::ChatRenderOptions& options = {}) {
  try {
    render(source, context, options);
  } catch (const reft::Error& e) {
    return e.what();
  }
  return "(no error)";
}

struct Case {
  std::string id;      // template/set
  std::string source;  // the template
  ordered_json context;
};

// The cases of tools/jinja-ref/generate.mjs, with the contexts built by reft::chat_context().
std::vector<Case> load_cases() {
  const auto sets = read_json(kData / "message_sets.json")["sets"];
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(kData / "templates"))
    if (e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::vector<Case> cases;
  for (const auto& file : files) {
    const auto config = read_json(file);
    const std::string name = file.stem().string();
    const std::string source = reft::select_chat_template(config);
    for (const auto& set : sets) {
      const auto extra = set.contains("extra") ? set["extra"] : ordered_json::object();
      cases.push_back({name + "/" + set["name"].get<std::string>(), source,
                       reft::chat_context(config, set["messages"],
                                          set["add_generation_prompt"].get<bool>(), extra)});
    }
    if (config.contains("example")) {
      ordered_json extra = config["example"];
      const auto messages = extra.value("messages", ordered_json::array());
      const bool add = extra.value("add_generation_prompt", false);
      extra.erase("messages");
      extra.erase("add_generation_prompt");
      cases.push_back(
          {name + "/example", source, reft::chat_context(config, messages, add, extra)});
    }
  }
  return cases;
}

struct Outcome {
  bool ok = false;
  std::string text;  // the rendering or the error message
};

Outcome run_case(const Case& c, std::time_t now) {
  reft::ChatRenderOptions options;
  options.now = now;
  try {
    return {true, render(c.source, c.context, options)};
  } catch (const reft::Error& e) {
    return {false, e.what()};
  }
}

// Our runtime errors carry "[chat_template line L, column C] "; raise_exception's are bare.
std::string without_location(const std::string& message) {
  if (message.rfind("[chat_template", 0) != 0) return message;
  const size_t end = message.find("] ");
  return end == std::string::npos ? message : message.substr(end + 2);
}

// Jinja filters the reference lacks and reft implements (docs/chat_templates.md): where a template
// uses one, the reference fails and reft renders what Python's Jinja (transformers) renders.
bool is_superset_filter(const std::string& reference_error) {
  for (const char* f : {"d", "count", "e", "escape", "select", "reject"})
    for (const char* type :
         {"ArrayValue", "StringValue", "ObjectValue", "NumericValue", "BooleanValue"})
      if (reference_error == reft::str("Unknown ", type, " filter: ", f)) return true;
  return reference_error ==
         "`map` expressions without `attribute` set are not currently supported.";
}
const std::string kSuperset = "(reft renders a Jinja filter the reference lacks)";

// Compares one case with the reference's result; "" when they agree, kSuperset for the above.
std::string compare(const Outcome& ours, const ordered_json& expected) {
  if (expected.contains("output")) {
    if (!ours.ok) return "reference rendered, reft failed: " + ours.text;
    const std::string want = expected["output"].get<std::string>();
    if (ours.text == want) return "";
    size_t at = 0;
    while (at < want.size() && at < ours.text.size() && want[at] == ours.text[at]) ++at;
    return reft::str("renderings differ at byte ", at, ": reference \"",
                     want.substr(at > 20 ? at - 20 : 0, 80), "\", reft \"",
                     ours.text.substr(at > 20 ? at - 20 : 0, 80), "\"");
  }
  const std::string want = expected["error"].get<std::string>();
  if (ours.ok && is_superset_filter(want)) return kSuperset;
  if (ours.ok) return "reference failed (" + want + "), reft rendered";
  if (without_location(ours.text) != want)
    return "errors differ: reference \"" + want + "\", reft \"" + ours.text + "\"";
  return "";
}

}  // namespace

TEST(ChatTemplateReference, EveryTemplateAndMessageSetMatchesTheRecordedReference) {
  const auto expected = read_json(kData / "expected.json");
  const auto cases = load_cases();
  ASSERT_EQ(cases.size(), expected["cases"].size())
      << "tests/data/chat_templates changed: regenerate expected.json "
         "(tools/jinja-ref/generate.mjs)";
  const std::time_t now = expected["now"].get<std::time_t>();
  size_t matched = 0, raised = 0, superset = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& want = expected["cases"][i];
    ASSERT_EQ(cases[i].id,
              want["template"].get<std::string>() + "/" + want["set"].get<std::string>());
    const Outcome ours = run_case(cases[i], now);
    const std::string diff = compare(ours, want);
    if (diff == kSuperset) {
      ++superset;
      continue;
    }
    EXPECT_EQ(diff, "") << cases[i].id;
    matched += diff.empty();
    raised += !ours.ok;
  }
  std::printf(
      "chat templates: %zu of %zu cases equal the reference (%s), %zu of them errors; %zu where "
      "the reference lacks a Jinja filter the template uses and reft renders\n",
      matched, cases.size(), expected["reference"].get<std::string>().c_str(), raised, superset);
  EXPECT_LE(superset, 10u);  // only the few templates that use such filters
  EXPECT_GT(cases.size(), 2000u);
}

// The reference's own feature tests (operators, filters, slicing, macros, scoping, ...), each a
// template with a plain-JSON context, against the recorded results.
TEST(ChatTemplateReference, FeatureTestsOfTheReference) {
  const auto expected = read_json(kData / "expected.json");
  const auto features = read_json(kData / "features.json")["cases"];
  ASSERT_EQ(features.size(), expected["features"].size()) << "regenerate expected.json";
  size_t matched = 0;
  for (size_t i = 0; i < features.size(); ++i) {
    const auto& f = features[i];
    ASSERT_EQ(f["name"], expected["features"][i]["name"]);
    const Case c{f["name"].get<std::string>(), f["template"].get<std::string>(), f["context"]};
    const std::string diff =
        compare(run_case(c, expected["now"].get<std::time_t>()), expected["features"][i]);
    EXPECT_EQ(diff, "") << c.id << ": " << c.source;  // no superset case here
    matched += diff.empty();
  }
  std::printf("reference feature tests: %zu of %zu equal\n", matched, features.size());
  EXPECT_GT(features.size(), 100u);
}

TEST(ChatTemplateReference, LiveReferenceAgreesWithReftContexts) {
  const fs::path tool = fs::path(REFT_SOURCE_DIR) / "tools/jinja-ref";
  if (!fs::exists(tool / "node_modules/@huggingface/jinja") ||
      std::system("node --version > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "node or tools/jinja-ref/node_modules absent (cd tools/jinja-ref && npm ci)";
  reft::test::TempDir tmp;
  const auto cases = load_cases();
  const std::time_t now = 1752148800;
  ordered_json batch = {{"now", now}, {"cases", ordered_json::array()}};
  for (const auto& c : cases)
    batch["cases"].push_back({{"template", c.source}, {"context", c.context}});
  std::ofstream(tmp / "batch.json") << batch.dump();
  const std::string cmd = "node " + (tool / "render.mjs").string() + " < " +
                          (tmp / "batch.json").string() + " > " + (tmp / "out.json").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto results = read_json(tmp / "out.json");
  ASSERT_EQ(results.size(), cases.size());
  size_t matched = 0, superset = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string diff = compare(run_case(cases[i], now), results[i]);
    if (diff == kSuperset) {
      ++superset;
      continue;
    }
    EXPECT_EQ(diff, "") << cases[i].id;
    matched += diff.empty();
  }
  std::printf("chat templates (live reference): %zu of %zu cases equal, %zu superset\n", matched,
              cases.size(), superset);
}

TEST(ChatTemplate, WhitespaceControlAsTransformers) {
  // trim_blocks drops the newline after a block, lstrip_blocks the indentation before one, and a
  // single trailing newline of the template is dropped.
  EXPECT_EQ(render("{% if true %}\n  yes\n  {% endif %}\nend\n"), "  yes\nend");
  EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
  EXPECT_EQ(render("{{- ' x ' -}}\n\n{# c #}\n{{ 1 }}"), " x 1");
  EXPECT_EQ(render("x\n{%- generation %} y {% endgeneration -%}\n"), "x y ");
}

TEST(ChatTemplate, ValuesPrintAsTheReference) {
  EXPECT_EQ(
      render("{{ true }} {{ none }}|{{ 1.0 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }}"),
      "true |1.0 3.5 3 -1 1024");
  EXPECT_EQ(render("{{ [1, 'a', none, 1.5] }} {{ {'k': [true]} }}"),
            "[1, \"a\", null, 1.5] {\"k\": [true]}");
  EXPECT_EQ(render("{{ 1.0 ~ '' }} {{ 'a' + 1 }} {{ [1, 2] | join('-') }}"), "1 a1 1-2");
  EXPECT_EQ(render("{{ {'b': 1, 'a': {'c': 'é\"\n'}} | tojson(indent=2) }}"),
            "{\n  \"b\": 1,\n  \"a\": {\n    \"c\": \"é\\\"\\n\"\n  }\n}");
  EXPECT_EQ(
      render(
          "{{ 'é' | tojson(ensure_ascii=true) }} {{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"),
      "\"\\u00e9\" {\"a\": 2, \"b\": 1}");
  EXPECT_EQ(render("{{ x }}", {{"x", 3.0}}), "3");  // JSON 3.0 is an integer, as in JavaScript
}

TEST(ChatTemplate, UndefinedSemantics) {
  EXPECT_EQ(render("[{{ missing }}][{{ missing.attr }}][{{ missing.a.b is defined }}]"),
            "[][][false]");
  EXPECT_EQ(render("{{ d.nothing is defined }} {{ d.get('nothing') is none }} {{ d.k }}",
                   {{"d", {{"k", "v"}}}}),
            "false true v");
  EXPECT_EQ(render("{{ missing | default('fallback') }} {{ '' | default('x', true) }}"),
            "fallback x");
  EXPECT_EQ(render("{{ missing ~ 'a' }}|{{ 1 in missing }}"), "a|false");
}

TEST(ChatTemplate, StatementsAndScopes) {
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}"
                   "{% set local = i %}{% endfor %}{{ ns.n }}|{{ local }}"),
            "6|");
  EXPECT_EQ(
      render("{% for k, v in d.items() %}{{ loop.index }}{{ k }}={{ v }}{% if not loop.last %},"
             "{% endif %}{% endfor %}",
             {{"d", {{"a", 1}, {"b", 2}}}}),
      "1a=1,2b=2");
  EXPECT_EQ(render("{% for x in [3, 1, 2] | sort | reverse if x != 2 %}{{ x }}{{ loop.revindex0 }}"
                   "{% endfor %}"),
            "3110");
  EXPECT_EQ(render("{% macro m(a, b='B') %}<{{ a }}{{ b }}{{ caller() if caller is defined }}>"
                   "{% endmacro %}{{ m(1) }}{{ m(2, b=3) }}{% call m(4) %}C{% endcall %}"),
            "<1B><23><4BC>");
  EXPECT_EQ(render("{% set x %}block {{ 1 }}{% endset %}{{ x | upper }}{% filter title %}ab cd{% "
                   "endfilter %}"),
            "BLOCK 1Ab Cd");
  EXPECT_EQ(
      render("{{ 'abcdef'[::-1] }} {{ 'abcdef'[1:3] }} {{ [1, 2, 3][-1] }} {{ 'a,b'.split(',') }}"),
      "fedcba bc 3 [\"a\", \"b\"]");
  EXPECT_EQ(render("{{ ' x '.strip() }}|{{ 'ab'.startswith('a') }}|{{ 'Hello World'.lower() }}|"
                   "{{ 'x' if false else 'y' }}|{{ 'a' ~ 'b' is string }}"),
            "x|true|hello world|y|atrue");  // tests bind tighter than ~
  EXPECT_EQ(render("{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='c') | list }}",
                   {{"ms", {{{"role", "user"}, {"c", 1}}, {{"role", "x"}, {"c", 2}}}}}),
            "[1]");
}

TEST(ChatTemplate, RaiseExceptionCarriesTheMessageAlone) {
  EXPECT_EQ(error_of("{{ raise_exception('Roles must alternate') }}"), "Roles must alternate");
  EXPECT_EQ(error_of("{% if true %}{{ raise_exception('n=' ~ 3) }}{% endif %}"), "n=3");
}

TEST(ChatTemplate, ErrorsNameLineAndColumn) {
  EXPECT_EQ(error_of("ok\n{% if x %}"),
            "[chat_template line 2, column 11] expected {% elif %} or {% else %} or {% endif %}, "
            "found the end of the template");
  EXPECT_EQ(error_of("a\n  {{ 1 + }}"), "[chat_template line 2, column 10] unexpected '}}'");
  EXPECT_EQ(error_of("{% frobnicate %}"),
            "[chat_template line 1, column 4] unknown statement 'frobnicate'");
  EXPECT_EQ(error_of("{{ 'x' | nosuchfilter }}"),
            "[chat_template line 1, column 8] Unknown StringValue filter: nosuchfilter");
  EXPECT_EQ(error_of("x\n{% for m in 3 %}{% endfor %}"),
            "[chat_template line 2, column 1] Expected iterable or object type in for loop: got "
            "IntegerValue");
  EXPECT_EQ(error_of("{{ x 'a\nb' }}"),
            "[chat_template line 1, column 6] expected '}}', found 'a\\nb'");
  EXPECT_NE(error_of("{% break %}").find("{% break %} inside a for loop"), std::string::npos);
  EXPECT_NE(error_of("{% macro m() %}{% continue %}{% endmacro %}{{ m() }}").find("continue"),
            std::string::npos);
  EXPECT_EQ(render("{% macro m() %}{% break %}{% endmacro %}{% for i in [1, 2] %}{{ i }}{{ m() }}"
                   "{% endfor %}"),
            "");  // as the reference: a break (here in a macro) drops its iteration's output
  const std::string e = error_of("{% for x in missing %}{% endfor %}");
  EXPECT_NE(e.find("got UndefinedValue"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
}

TEST(ChatTemplate, RenderingIsBounded) {
  reft::ChatRenderOptions small;
  small.limits.max_steps = 100000;
  small.limits.max_output_bytes = 1 << 20;
  EXPECT_NE(error_of("{% for i in range(10**9) %}{% endfor %}", kEmpty, small).find("max_steps"),
            std::string::npos);
  EXPECT_NE(
      error_of("{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}",
               kEmpty, small)
          .find("max_steps"),
      std::string::npos);
  EXPECT_NE(
      error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("max_call_depth"),
      std::string::npos);
  EXPECT_NE(
      error_of(
          "{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
          "{% endfor %}",
          kEmpty, small)
          .find("max_output_bytes"),
      std::string::npos);
  const std::string parens =
      error_of("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}");
  EXPECT_NE(parens.find("nested deeper"), std::string::npos) << parens;
  EXPECT_NE(error_of("{{ " + std::string(3000, '-') + "1 }}").find("nested deeper"),
            std::string::npos);
  std::string chain = "{{ 1";
  for (int i = 0; i < 2000; ++i) chain += " + 1";
  EXPECT_NE(error_of(chain + " }}").find("nested deeper"), std::string::npos);
  // Values nested far deeper than the stack allows are freed without recursion; printing one is
  // an error, not a crash.
  reft::ChatRenderOptions many;
  many.limits.max_steps = 10'000'000;
  EXPECT_EQ(
      render("{% set ns = namespace(x=[]) %}{% for i in range(300000) %}{% set ns.x = [ns.x] %}"
             "{% set ns.y = {'p': ns.y} %}{% endfor %}ok",
             kEmpty, many),
      "ok");
  EXPECT_NE(
      error_of("{% set ns = namespace(x=[]) %}{% for i in range(1000) %}{% set ns.x = [ns.x] %}"
               "{% endfor %}{{ ns.x }}")
          .find("nested deeper than 512"),
      std::string::npos);
  // A namespace that holds itself renders (and is freed: the ASan run checks for leaks).
  EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.me = ns %}ok"), "ok");
}

TEST(ChatTemplate, StrftimeNowUsesTheGivenClock) {
  reft::ChatRenderOptions options;
  options.now = 1752148800;  // 2025-07-10T12:00:00Z
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y, %B %H:%M %%') }}", kEmpty, options),
            "10 Jul 2025, July 12:00 %");
}

TEST(ChatTemplateConfig, SelectsTheTemplate) {
  const ordered_json single = {{"chat_template", "A"}};
  EXPECT_EQ(reft::select_chat_template(single), "A");
  const ordered_json list = {
      {"chat_template",
       {{{"name", "default"}, {"template", "D"}}, {{"name", "tool_use"}, {"template", "T"}}}}};
  EXPECT_EQ(reft::select_chat_template(list), "D");
  EXPECT_EQ(reft::select_chat_template(list, "tool_use"), "T");
  try {
    reft::select_chat_template(list, "rag");
    FAIL();
  } catch (const reft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("found default, tool_use"), std::string::npos) << e.what();
  }
  EXPECT_THROW(reft::select_chat_template(ordered_json::object()), reft::Error);
  EXPECT_THROW(reft::select_chat_template({{"chat_template", 3}}), reft::Error);
}

TEST(ChatTemplateConfig, ContextHasTheSpecialTokensAsStrings) {
  const ordered_json config = {
      {"bos_token", {{"content", "<s>"}, {"lstrip", false}, {"__type", "AddedToken"}}},
      {"eos_token", "</s>"},
      {"unk_token", nullptr}};
  const auto ctx =
      reft::chat_context(config, ordered_json::array(), true, {{"date_string", "today"}});
  EXPECT_EQ(ctx["bos_token"], "<s>");
  EXPECT_EQ(ctx["eos_token"], "</s>");
  EXPECT_FALSE(ctx.contains("unk_token"));
  EXPECT_FALSE(ctx.contains("pad_token"));
  EXPECT_TRUE(ctx["tools"].is_null());
  EXPECT_EQ(ctx["add_generation_prompt"], true);
  EXPECT_EQ(ctx["date_string"], "today");
  EXPECT_EQ(reft::special_token_text(config, "bos_token"), "<s>");
}
