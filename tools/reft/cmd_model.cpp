// reft generate | tokenize | forward | inspect: running a frozen base model.

#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli.h"
#include "reft/adapter.h"
#include "reft/data.h"
#include "reft/error.h"
#include "reft/generate.h"
#include "reft/model.h"
#include "reft/presets.h"
#include "reft/pyreft.h"
#include "reft/runtime.h"
#include "reft/safetensors.h"
#include "reft/tokenizer.h"
#include "util/files.h"

namespace reft::cli {
namespace {

std::vector<Flag> with_runtime(std::vector<Flag> flags) {
  for (auto& f : runtime_flags()) flags.push_back(std::move(f));
  return flags;
}

LoadOptions load_options(const Args& args) {
  LoadOptions opt;
  opt.device = parse_device(args.get("device"));
  opt.dtype = parse_dtype(args.get("dtype"));
  return opt;
}

std::vector<std::string> read_lines(const std::string& path);

// ---- adapters ----

// Loads --adapter (when given) onto `model`. The one place the CLI opens adapters.
std::optional<LoadedAdapter> open_adapter(const Args& args, Model& model) {
  auto dir = args.maybe("adapter");
  if (!dir) return std::nullopt;
  AdapterLoadOptions options;
  options.allow_base_mismatch = args.has("allow-base-mismatch");
  options.positions = args.maybe("position");
  return load_adapter_auto(model, *dir, options);  // reft or pyreft directories
}

// The prompt template: --template, else the adapter's, else none.
std::string prompt_template(const Args& args, const std::optional<LoadedAdapter>& adapter) {
  if (auto t = args.maybe("template")) return *t;
  return adapter ? adapter->meta.template_name : "none";
}

// ---- generate ----

int run_generate(const Args& args) {
  apply_runtime_flags(args);
  const std::string dir = args.get("model");
  const int sources = args.has("prompt") + args.has("prompt-ids") + args.has("prompts-file");
  if (sources != 1)
    usage_fail("[reft generate] expected exactly one of --prompt, --prompt-ids or --prompts-file");
  if (args.has("intervene-generated") && !args.has("adapter"))
    usage_fail("[--intervene-generated] needs --adapter");
  GenerationOptions g;
  g.max_new_tokens = args.get_int("max-new-tokens");
  g.temperature = args.get_double("temperature");
  g.top_k = args.get_int("top-k");
  g.top_p = args.get_double("top-p");
  g.repetition_penalty = args.get_double("repetition-penalty");
  const int64_t seed = args.get_int("seed");
  if (seed < 0) usage_fail("[--seed] expected a non-negative integer, found ", seed);
  g.seed = static_cast<uint64_t>(seed);
  if (auto s = args.maybe("stop")) g.stop_strings.push_back(*s);
  if (args.has("ignore-eos")) g.use_model_eos = false;
  if (auto t = args.maybe("template")) apply_template(*t, "x");  // validate before loading anything

  auto model = load_model(dir, load_options(args));
  auto adapter = open_adapter(args, *model);
  if (adapter) require_generation_adapter(*adapter, "--adapter " + args.get("adapter"));
  const std::string tmpl = prompt_template(args, adapter);
  const bool print_ids = args.has("print-ids");
  std::unique_ptr<Tokenizer> tokenizer;
  if (!args.has("prompt-ids") || !print_ids || !g.stop_strings.empty())
    tokenizer = Tokenizer::load(dir);
  std::vector<std::string> texts;
  std::vector<std::vector<int64_t>> prompts;
  if (args.has("prompt-ids")) {
    prompts.push_back(parse_ids(args.get("prompt-ids"), "prompt-ids"));
  } else {
    if (args.has("prompt"))
      texts.push_back(args.get("prompt"));
    else
      texts = read_lines(args.get("prompts-file"));
    for (const auto& t : texts)
      prompts.push_back(encode_prompt(*tokenizer, apply_template(tmpl, t)));
  }
  if (tokenizer && tokenizer->pad_id()) g.pad_token_id = *tokenizer->pad_id();
  g.on_warning = [](const std::string& w) { std::fprintf(stderr, "warning: %s\n", w.c_str()); };
  if (tokenizer && !texts.empty())
    for (const auto& w : template_marker_warnings(tmpl, *tokenizer)) g.on_warning(w);
  std::shared_ptr<SiteHooks> hooks;
  if (adapter) hooks = adapter->reft->generation_hooks(args.has("intervene-generated"));

  if (prompts.size() > 1) {
    // Batched: one JSON object per prompt on stdout.
    auto results = generate(*model, prompts, g, hooks.get(), tokenizer.get());
    for (size_t i = 0; i < results.size(); ++i) {
      nlohmann::ordered_json j = {{"prompt", texts[i]}};
      if (print_ids)
        j["new_ids"] = results[i].new_ids;
      else
        j["completion"] = tokenizer->decode(results[i].new_ids, true);
      j["stopped"] = results[i].stopped;
      std::cout << j.dump() << "\n";
    }
    return 0;
  }
  std::unique_ptr<TextStreamer> streamer;
  if (!print_ids) streamer = std::make_unique<TextStreamer>(*tokenizer);
  auto results =
      generate(*model, prompts, g, hooks.get(), tokenizer.get(), [&](int64_t, int64_t token) {
        if (streamer) std::cout << streamer->push(token) << std::flush;
        return true;
      });
  if (print_ids) {
    std::cout << json_ids(results[0].new_ids) << "\n";
  } else {
    std::cout << streamer->finish() << "\n";
  }
  return 0;
}

// ---- tokenize ----

// One --input record: a string to encode or an array of ids to decode, itself or under `field`.
void tokenize_record(const Tokenizer& tokenizer, const Args& args, const nlohmann::json& record,
                     const std::string& where) {
  const std::string field = args.get("field");
  const nlohmann::json* value = &record;
  if (record.is_object()) {
    auto it = record.find(field);
    if (it == record.end()) fail("[", where, "] expected a field \"", field, "\" (--field)");
    value = &*it;
  }
  if (value->is_string()) {
    const auto ids = tokenizer.encode(value->get<std::string>(), !args.has("no-special"));
    std::cout << (args.has("tokens") ? nlohmann::json(tokenizer.tokens(ids)).dump() : json_ids(ids))
              << "\n";
    return;
  }
  if (value->is_array()) {
    std::vector<int64_t> ids;
    for (const auto& v : *value) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0)
        fail("[", where, "] expected an array of non-negative token ids, found ", v.dump());
      ids.push_back(v.get<int64_t>());
    }
    std::cout << nlohmann::json(tokenizer.decode(ids, args.has("skip-special"))).dump() << "\n";
    return;
  }
  fail("[", where, "] expected a string to encode or an array of ids to decode, found ",
       value->dump());
}

int run_tokenize(const Args& args) {
  const int given = args.has("text") + args.has("decode") + args.has("data");
  if (given != 1) usage_fail("[reft tokenize] expected exactly one of --text, --decode or --data");
  auto tokenizer = Tokenizer::load(args.get("model"));
  if (args.has("data")) {
    const std::string path = args.get("data");
    std::ifstream in(path);
    if (!in) fail("[", path, "] cannot read the file");
    std::string line;
    for (int line_no = 1; std::getline(in, line); ++line_no) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = path + ":" + std::to_string(line_no);
      nlohmann::json record;
      try {
        record = nlohmann::json::parse(line);
      } catch (const nlohmann::json::parse_error& e) {
        fail("[", where, "] not valid JSON: ", e.what());
      }
      tokenize_record(*tokenizer, args, record, where);
    }
    return 0;
  }
  if (args.has("decode")) {
    auto ids = parse_ids(args.get("decode"), "decode");
    std::cout << nlohmann::json(tokenizer->decode(ids, args.has("skip-special"))).dump() << "\n";
    return 0;
  }
  const auto ids = tokenizer->encode(args.get("text"), !args.has("no-special"));
  if (args.has("tokens")) {
    std::cout << nlohmann::json(tokenizer->tokens(ids)).dump() << "\n";
    return 0;
  }
  std::cout << json_ids(ids) << "\n";
  return 0;
}

// ---- forward ----

// Reads one sequence of ids per non-empty line.
// Non-empty lines of a text file.
std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("[", path, "] cannot read the file");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  if (lines.empty()) fail("[", path, "] expected at least one non-empty line");
  return lines;
}

std::vector<std::vector<int64_t>> read_ids_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("[", path, "] cannot read the ids file");
  std::vector<std::vector<int64_t>> rows;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      rows.push_back(parse_ids(line, "ids-file"));
    } catch (const UsageError& e) {
      fail("[", path, ":", line_no, "] expected whitespace-separated token ids, found '", line,
           "'");
    }
  }
  if (rows.empty()) fail("[", path, "] expected at least one line of ids, found none");
  return rows;
}

int run_forward(const Args& args) {
  apply_runtime_flags(args);
  const std::string dir = args.get("model");
  const int given = args.has("ids") + args.has("text") + args.has("ids-file");
  if (given != 1) usage_fail("[reft forward] expected exactly one of --ids, --text or --ids-file");
  const std::string padding = args.get("padding");
  if (padding != "left" && padding != "right")
    usage_fail("[--padding] expected left or right, found '", padding, "'");
  std::vector<std::vector<int64_t>> rows;
  if (args.has("ids")) rows.push_back(parse_ids(args.get("ids"), "ids"));
  if (args.has("ids-file")) rows = read_ids_file(args.get("ids-file"));
  auto model = load_model(dir, load_options(args));
  if (args.has("text")) rows.push_back(Tokenizer::load(dir)->encode(args.get("text"), true));
  int64_t T = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].empty()) usage_fail("[reft forward] sequence ", i, " is empty");
    for (int64_t id : rows[i])
      if (id >= model->info().vocab_size)
        usage_fail("[reft forward] token id ", id, " is outside the vocabulary [0, ",
                   model->info().vocab_size, ")");
    T = std::max<int64_t>(T, rows[i].size());
  }
  const int64_t B = rows.size();
  const int64_t pad = model->info().pad_token_id.value_or(0);
  auto ids = torch::full({B, T}, pad, torch::kInt64);
  auto mask = torch::zeros({B, T}, torch::kInt64);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = rows[b].size(), start = padding == "left" ? T - n : 0;
    ids[b].narrow(0, start, n).copy_(torch::tensor(rows[b], torch::kInt64));
    mask[b].narrow(0, start, n).fill_(1);
  }
  torch::NoGradGuard no_grad;
  ForwardInput in;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.output_hidden_states = true;
  ForwardOutput out;
  if (auto adapter = open_adapter(args, *model)) {
    // The whole input is the prompt (as in generation's prefill) unless --prompt-length says less.
    ReftBatch batch;
    batch.input_ids = ids;
    batch.attention_mask = mask;
    const int64_t prompt_length = args.get_int("prompt-length");
    for (const auto& row : rows)
      batch.prompt_lengths.push_back(
          prompt_length > 0 ? std::min<int64_t>(prompt_length, row.size()) : row.size());
    out = adapter->reft->forward(batch, in);
  } else {
    out = model->forward(in);
  }
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {{"input_ids", ids},
                                                                {"attention_mask", mask}};
  if (out.logits.defined())
    tensors.emplace_back("logits", out.logits.to(torch::kFloat32));  // headless: none
  for (size_t i = 0; i < out.hidden_states.size(); ++i)
    tensors.emplace_back("hidden." + std::to_string(i), out.hidden_states[i].to(torch::kFloat32));
  if (model->info().causal)
    tensors.emplace_back("last_block_raw", out.last_block.to(torch::kFloat32));
  save_safetensors(args.get("output"), tensors);
  std::cerr << "wrote " << args.get("output") << ": "
            << (out.logits.defined() ? "logits " + str(out.logits.sizes())
                                     : std::string("no logits (headless model)"))
            << ", " << out.hidden_states.size() << " hidden states\n";
  return 0;
}

// ---- inspect ----

int run_inspect(const Args& args) {
  apply_runtime_flags(args);
  auto model = load_model(args.get("model"), load_options(args));
  const auto& i = model->info();
  nlohmann::ordered_json j;
  j["architecture"] = i.architecture;
  j["model_type"] = i.model_type;
  j["hidden_size"] = i.hidden_size;
  j["num_layers"] = i.num_layers;
  j["num_heads"] = i.num_heads;
  j["num_kv_heads"] = i.num_kv_heads;
  j["head_dim"] = i.head_dim;
  j["intermediate_size"] = i.intermediate_size;
  j["vocab_size"] = i.vocab_size;
  j["max_position_embeddings"] = i.max_position_embeddings;
  j["eos_token_ids"] = i.eos_token_ids;
  j["parameters"] = model->num_parameters();
  j["stored_dtype"] = i.stored_dtype;
  j["compute_dtype"] = dtype_name(i.dtype);
  j["device"] = i.device.str();
  j["fingerprint"] = i.fingerprint;
  if (args.has("json")) {
    std::cout << j.dump() << "\n";
    return 0;
  }
  for (const auto& [k, v] : j.items())
    std::cout << k << std::string(26 - k.size(), ' ') << v.dump() << "\n";
  if (args.has("tensors"))
    for (const auto& [name, t] : model->parameters())
      std::cout << "  " << name << " " << t.sizes() << " " << dtype_name(t.scalar_type()) << "\n";
  return 0;
}

// ---- init-model ----

int run_init_model(const Args& args) {
  apply_runtime_flags(args);
  const std::string out = args.get("output");
  const int64_t seed = args.get_int("seed");
  if (seed < 0) usage_fail("[--seed] expected a non-negative integer, found ", seed);
  std::string what;
  if (auto config = args.maybe("config")) {
    // Any architecture load_model supports, from a config.json (no tokenizer is written).
    write_random_model(out, read_json_file(*config), static_cast<uint64_t>(seed));
    what = "config " + *config;
  } else {
    what = "preset '" + args.get("preset") + "'";
    write_preset_model(args.get("preset"), out, static_cast<uint64_t>(seed));
  }
  auto model = load_model(out);
  std::cerr << "wrote " << out << ": " << model->info().architecture << " " << what << ", "
            << model->num_parameters() << " parameters, seed " << seed << "\n";
  return 0;
}

}  // namespace

std::vector<Command> model_commands() {
  return {
      {"generate",
       "Generate a continuation of a prompt with a decoder (greedy unless --temperature > 0). "
       "Prints only the "
       "generated text to stdout, streaming.",
       "--model DIR (--prompt TEXT | --prompt-ids \"1 2 3\" | --prompts-file F) [--adapter DIR] "
       "[flags]",
       with_runtime({
           {"model", "DIR", "",
            "HuggingFace model folder (config.json, model.safetensors, tokenizer)"},
           {"prompt", "TEXT", "",
            "prompt text (tokenized with the model's tokenizer, special tokens added)"},
           {"prompt-ids", "IDS", "", "prompt token ids instead of text, e.g. \"1 2 3\""},
           {"max-new-tokens", "N", "128", "maximum number of generated tokens"},
           {"temperature", "T", "0", "sampling temperature; 0 = greedy"},
           {"top-k", "K", "0", "sample among the K most likely tokens; 0 = off"},
           {"top-p", "P", "1", "nucleus sampling mass; 1 = off"},
           {"repetition-penalty", "R", "1", "HF repetition penalty; 1 = off"},
           {"seed", "S", "0", "sampling seed"},
           {"prompts-file", "F", "",
            "one prompt per line, generated as a batch; prints one JSON object per prompt"},
           {"adapter", "DIR", "",
            "apply a trained adapter (interventions at the prompt positions during prefill)"},
           {"template", "T", "", "prompt template (default: the adapter's, else none)"},
           {"intervene-generated", "", "", "with --adapter: also edit every generated token"},
           {"position", "P", "",
            "pyreft adapters: their positions (default f1+l1 for pyreft's untied layout, else l1)"},
           {"allow-base-mismatch", "", "",
            "load an adapter trained on a different checkpoint of the same shape"},
           {"stop", "TEXT", "", "stop once the continuation contains TEXT"},
           {"ignore-eos", "", "", "do not stop on the model's eos ids"},
           {"print-ids", "", "", "print the new ids as a JSON array instead of text"},
       }),
       run_generate},
      {"tokenize",
       "Tokenize text and print the ids as a JSON array (a folder with only tokenizer files is "
       "enough).",
       "--model DIR (--text TEXT | --decode \"1 2 3\" | --data FILE.jsonl) [flags]",
       {
           {"model", "DIR", "",
            "folder with tokenizer.json, tokenizer.model, vocab.json+merges.txt or vocab.txt"},
           {"text", "TEXT", "", "text to encode"},
           {"no-special", "", "", "do not add special tokens (BOS, [CLS], …)"},
           {"tokens", "", "", "print the token strings instead of ids"},
           {"decode", "IDS", "", "decode these ids and print the text as a JSON string"},
           {"skip-special", "", "", "with --decode: drop special tokens"},
           {"data", "FILE", "",
            "JSON Lines, one output line per record: a string (or an object's --field) is "
            "encoded; an array of ids is decoded",
            {"input"}},
           {"field", "NAME", "text", "with --data: the field of object records"},
       },
       run_tokenize},
      {"forward",
       "Run one forward pass and write logits (B,T,V), hidden.<i> for i = 0..L (HF "
       "output_hidden_states) and "
       "last_block_raw to a safetensors file.",
       "--model DIR (--ids \"1 2 3\" | --text TEXT | --ids-file F) --output FILE.safetensors [flags]",
       with_runtime({
           {"model", "DIR", "", "HuggingFace model folder"},
           {"ids", "IDS", "", "one sequence of token ids"},
           {"text", "TEXT", "", "one text, tokenized with special tokens"},
           {"ids-file", "F", "", "a batch: one sequence of ids per line, padded by the tool"},
           {"padding", "SIDE", "right", "padding side for --ids-file: left or right"},
           {"adapter", "DIR", "",
            "apply a trained adapter; the logits are then the intervened ones"},
           {"prompt-length", "N", "0",
            "with --adapter: prompt tokens per row for the position spec (0 = all)"},
           {"position", "P", "",
            "pyreft adapters: their positions (default f1+l1 for pyreft's untied layout, else l1)"},
           {"allow-base-mismatch", "", "",
            "load an adapter trained on a different checkpoint of the same shape"},
           {"output", "FILE", "", "output .safetensors", {"out"}},
       }),
       run_forward},
      {"inspect",
       "Print a model's architecture, configuration, parameter count, dtypes and fingerprint.",
       "--model DIR [--json] [--tensors]",
       with_runtime({
           {"model", "DIR", "", "HuggingFace model folder"},
           {"json", "", "", "print one JSON object"},
           {"tensors", "", "", "also list every weight with its shape"},
       }),
       run_inspect},
      {"init-model",
       "Write a small seeded random LLaMA in real HuggingFace format (config.json, "
       "generation_config.json, "
       "model.safetensors, tokenizer.json): the built-in default for demos and tests. Presets: "
       "tiny, llama-110m.",
       "(--preset tiny|llama-110m | --config FILE) --output DIR [--seed S]",
       with_runtime({
           {"preset", "NAME", "tiny",
            "tiny (hidden 64, 4 layers, vocab 512) or llama-110m (hidden 768, 12 layers, "
            "vocab 32000)"},
           {"config", "FILE", "",
            "instead of a preset: a config.json of any supported architecture (weights only)"},
           {"output", "DIR", "", "output folder", {"out"}},
           {"seed", "S", "0", "random seed of the weights"},
       }),
       run_init_model},
  };
}

}  // namespace reft::cli
