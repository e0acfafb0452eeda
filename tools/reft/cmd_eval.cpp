// reft eval | predict: evaluating adapters on labelled data and writing predictions.

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>

#include "cli.h"
#include "reft/adapter.h"
#include "reft/classifier.h"
#include "reft/error.h"
#include "reft/generate.h"
#include "reft/runtime.h"
#include "reft/tokenizer.h"
#include "reft/trainer.h"
#include "util/files.h"

namespace reft::cli {
namespace {

struct Opened {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  nlohmann::json adapter_config;
  DataOptions data;
};

Opened open_all(const Args& args) {
  apply_runtime_flags(args);
  Opened o;
  LoadOptions lo;
  lo.device = parse_device(args.get("device"));
  lo.dtype = parse_dtype(args.get("dtype"));
  o.model = load_model(args.get("model"), lo);
  o.tokenizer = Tokenizer::load(args.get("model"));
  o.adapter_config = read_adapter_config(args.get("adapter"));
  for (const char* key : {"task", "template"})
    if (o.adapter_config.contains(key) && !o.adapter_config[key].is_string())
      fail("[", args.get("adapter"), "/reft_config.json] field '", key,
           "': expected a string, found ", o.adapter_config[key].dump());
  o.data = data_options(args);
  // The adapter's template unless --template overrides it.
  if (!args.has("template")) o.data.template_name = o.adapter_config.value("template", "none");
  return o;
}

void write_text(const std::string& path, const std::string& text) {
  write_file_atomically(path, [&](std::ostream& out) { out << text; });
}

int run_eval(const Args& args) {
  auto o = open_all(args);
  const auto records = read_records(args.get("data"));
  const int64_t batch = args.get_int("batch-size");
  if (batch < 1) usage_fail("[--batch-size] expected >= 1, found ", batch);
  nlohmann::json result;
  if (o.adapter_config.value("task", "causal_lm") == "classification") {
    auto loaded = load_classifier(*o.model, args.get("adapter"), args.has("allow-base-mismatch"));
    auto data = make_classification_dataset(records, *o.tokenizer, o.data);
    auto logits = predict_logits(*loaded.classifier, data, batch);
    std::vector<size_t> all(data.examples.size());
    std::iota(all.begin(), all.end(), 0);
    auto targets =
        loaded.classifier->targets(data, all);  // unknown labels fail here, naming file:line
    const auto& labels = loaded.classifier->labels();
    const auto m = classification_metrics(labels, logits, targets);
    result = m.to_json(labels);
    result["loss"] = loaded.classifier->loss(logits, targets).item<double>();
    if (auto svg = args.maybe("confusion"); svg && !m.confusion.empty())
      write_text(*svg, confusion_matrix_svg(m, labels));
  } else {
    auto loaded = load_adapter(*o.model, args.get("adapter"), args.has("allow-base-mismatch"));
    auto data = make_lm_dataset(records, *o.tokenizer, o.data);
    result = {{"examples", data.examples.size()},
              {"loss", evaluate_loss(*loaded.reft, data, batch)}};
    if (!args.has("no-generate")) {
      // Exact match of greedy continuations with the reference completions.
      auto hooks = loaded.reft->generation_hooks(false);
      int64_t hits = 0;
      GenerationOptions g;
      if (o.tokenizer->pad_id()) g.pad_token_id = *o.tokenizer->pad_id();
      for (const auto& e : data.examples) {
        const auto want = o.tokenizer->encode(e.completion, false);
        g.max_new_tokens = static_cast<int64_t>(want.size()) + 8;
        auto out = generate(*o.model, {encode_prompt(*o.tokenizer, e.prompt)}, g, hooks.get());
        const auto trim = [](const std::string& s) {
          const auto a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
          return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
        };
        hits += trim(o.tokenizer->decode(out[0].new_ids, true)) == trim(e.completion);
      }
      result["exact_match"] =
          data.examples.empty() ? 0.0 : static_cast<double>(hits) / data.examples.size();
    }
  }
  const std::string text = result.dump(2) + "\n";
  if (auto out = args.maybe("output")) write_text(*out, text);
  std::cout << text;
  return 0;
}

int run_predict(const Args& args) {
  auto o = open_all(args);
  if (o.adapter_config.value("task", "causal_lm") != "classification")
    usage_fail(
        "[reft predict] expects a classification adapter; use reft generate --prompts-file for "
        "text");
  auto loaded = load_classifier(*o.model, args.get("adapter"), args.has("allow-base-mismatch"));
  // Labels are not needed for prediction: give unlabelled records a placeholder.
  auto records = read_records(args.get("data"));
  for (auto& r : records)
    if (!r.fields.contains(o.data.label_field)) r.fields[o.data.label_field] = "";
  auto data = make_classification_dataset(records, *o.tokenizer, o.data);
  auto logits = predict_logits(*loaded.classifier, data, args.get_int("batch-size"));
  const auto& labels = loaded.classifier->labels();
  // Integer labels are indices; the base model's id2label (HF config.json) names them.
  std::vector<std::string> names = labels.names;
  const auto config = read_json_file(std::filesystem::path(args.get("model")) / "config.json");
  if (auto id2label = config.find("id2label");
      id2label != config.end() && id2label->is_object())
    for (auto& n : names)
      if (auto it = id2label->find(n); it != id2label->end() && it->is_string())
        n = it->get<std::string>();
  std::string out;
  for (size_t i = 0; i < data.examples.size(); ++i) {
    nlohmann::ordered_json j = {{"text", data.examples[i].prompt}};
    auto row = logits[i];
    if (labels.problem == ProblemType::kRegression) {
      j["prediction"] = row[0].item<double>();
    } else if (labels.problem == ProblemType::kMultiLabel) {
      std::vector<std::string> on;
      for (int64_t k = 0; k < row.size(0); ++k)
        if (row[k].item<double>() > 0) on.push_back(names[k]);
      j["prediction"] = on;
      j["probabilities"] =
          std::vector<double>(row.sigmoid().to(torch::kFloat64).data_ptr<double>(),
                              row.sigmoid().to(torch::kFloat64).data_ptr<double>() + row.size(0));
    } else {
      auto probs = row.softmax(-1).to(torch::kFloat64).contiguous();
      j["prediction"] = names[row.argmax().item<int64_t>()];
      j["probabilities"] =
          std::vector<double>(probs.data_ptr<double>(), probs.data_ptr<double>() + probs.numel());
    }
    out += j.dump() + "\n";
  }
  if (auto path = args.maybe("output"))
    write_text(*path, out);
  else
    std::cout << out;
  return 0;
}

std::vector<Flag> common_flags() {
  std::vector<Flag> f = {
      {"model", "DIR", "", "the base model folder"},
      {"adapter", "DIR", "", "the adapter (reft train --output)"},
      {"data", "FILE", "", ".jsonl/.json/.csv records"},
      {"batch-size", "B", "16", "examples per forward"},
      {"output", "FILE", "", "also write the result to FILE"},
      {"allow-base-mismatch", "", "",
       "load an adapter trained on a different checkpoint of the same shape"},
  };
  for (auto& x : data_flags()) f.push_back(x);
  for (auto& x : runtime_flags()) f.push_back(x);
  return f;
}

}  // namespace

std::vector<Command> eval_commands() {
  auto eval = common_flags();
  eval.push_back(
      {"confusion", "FILE", "", "classification: write the confusion matrix as an SVG picture"});
  eval.push_back(
      {"no-generate", "", "", "causal LM: skip the exact-match generations (loss only)"});
  return {
      {"eval",
       "Evaluate an adapter on labelled data. Classification: accuracy, macro-F1, Matthews "
       "correlation (or "
       "Pearson/Spearman for regression), confusion matrix. Causal LM: loss and exact match of "
       "greedy generations. "
       "Prints JSON.",
       "--model DIR --adapter DIR --data FILE [--confusion FILE.svg] [--output FILE.json]", eval,
       run_eval},
      {"predict", "Predict labels with a classification adapter: one JSON object per record.",
       "--model DIR --adapter DIR --data FILE [--output FILE.jsonl]", common_flags(), run_predict},
  };
}

}  // namespace reft::cli
