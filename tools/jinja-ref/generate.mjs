// Writes tests/data/chat_templates/expected.json: every template of
// tests/data/chat_templates/templates/ (tokenizer_config.json-like files) rendered by the reference
// with every message set of message_sets.json and its own example, the way
// tests/chat_template_test.cpp renders them with reft, and the feature cases of features.json
// (the reference's own tests). Run after changing the data:
//   (cd tools/jinja-ref && npm ci && node generate.mjs)
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { renderCase, withFixedClock } from "./render.mjs";

const DATA = new URL("../../tests/data/chat_templates/", import.meta.url);
const NOW = 1752148800; // 2025-07-10T12:00:00Z, the clock of strftime_now
const SPECIAL = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

function tokenText(v) {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof v.content === "string") return v.content;
  return "";
}

// The same context as reft::chat_context() (include/reft/chat_template.h).
export function chatContext(config, messages, addGenerationPrompt, extra = {}) {
  const context = {
    messages,
    tools: extra.tools ?? null,
    documents: extra.documents ?? null,
    add_generation_prompt: addGenerationPrompt,
  };
  for (const key of SPECIAL) {
    if (key in config && config[key] !== null) context[key] = tokenText(config[key]);
  }
  if (Array.isArray(config.additional_special_tokens)) {
    context.additional_special_tokens = config.additional_special_tokens.map((t) =>
      t && typeof t === "object" && "content" in t ? t.content : t,
    );
  }
  for (const [k, v] of Object.entries(extra)) {
    if (k !== "tools" && k !== "documents") context[k] = v;
  }
  return context;
}

export function loadCases() {
  const sets = JSON.parse(readFileSync(new URL("message_sets.json", DATA), "utf8")).sets;
  const names = readdirSync(new URL("templates/", DATA)).filter((f) => f.endsWith(".json")).sort();
  const cases = [];
  for (const file of names) {
    const config = JSON.parse(readFileSync(new URL(`templates/${file}`, DATA), "utf8"));
    const template = file.replace(/\.json$/, "");
    for (const set of sets) {
      cases.push({
        template,
        set: set.name,
        source: config.chat_template,
        context: chatContext(config, set.messages, set.add_generation_prompt, set.extra ?? {}),
      });
    }
    if (config.example) {
      const { messages = [], add_generation_prompt = false, ...extra } = config.example;
      cases.push({
        template,
        set: "example",
        source: config.chat_template,
        context: chatContext(config, messages, add_generation_prompt, extra),
      });
    }
  }
  return cases;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const version = JSON.parse(
    readFileSync(new URL("node_modules/@huggingface/jinja/package.json", import.meta.url), "utf8"),
  ).version;
  const cases = loadCases();
  const results = withFixedClock(NOW, () =>
    cases.map((c) => ({ template: c.template, set: c.set, ...renderCase(c.source, c.context) })),
  );
  // One case a line, so that a change of the reference shows as a readable diff.
  // The reference's own feature tests (features.json): one template and context each.
  const features = JSON.parse(readFileSync(new URL("features.json", DATA), "utf8")).cases;
  const featureResults = withFixedClock(NOW, () =>
    features.map((c) => ({ name: c.name, ...renderCase(c.template, c.context) })),
  );
  const text =
    `{"reference": ${JSON.stringify(`@huggingface/jinja ${version}`)}, "now": ${NOW}, "cases": [\n` +
    results.map((r) => JSON.stringify(r)).join(",\n") +
    "\n], \"features\": [\n" +
    featureResults.map((r) => JSON.stringify(r)).join(",\n") +
    "\n]}\n";
  writeFileSync(new URL("expected.json", DATA), text);
  const errors = results.filter((r) => "error" in r).length;
  console.log(
    `${results.length} cases (${errors} raise or fail) and ${features.length} feature cases -> ` +
      "tests/data/chat_templates/expected.json",
  );
}
