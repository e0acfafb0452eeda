// reft generate | tokenize | forward | inspect: running a frozen base model.

#include <torch/torch.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "reft/error.h"
#include "reft/generate.h"
#include "reft/model.h"
#include "reft/presets.h"
#include "reft/runtime.h"
#include "reft/safetensors.h"
#include "reft/tokenizer.h"

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

// ---- generate ----

int run_generate(const Args& args) {
  apply_runtime_flags(args);
  const std::string dir = args.get("model");
  if (args.has("prompt") == args.has("prompt-ids"))
    usage_fail("[reft generate] expected exactly one of --prompt or --prompt-ids");
  auto model = load_model(dir, load_options(args));
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<int64_t> prompt;
  if (args.has("prompt")) {
    tokenizer = Tokenizer::load(dir);
    prompt = tokenizer->encode(args.get("prompt"), /*add_special_tokens=*/true);
  } else {
    prompt = parse_ids(args.get("prompt-ids"), "prompt-ids");
    if (!args.has("print-ids")) tokenizer = Tokenizer::load(dir);
  }
  GenerationOptions g;
  g.max_new_tokens = args.get_int("max-new-tokens");
  g.temperature = args.get_double("temperature");
  g.top_k = args.get_int("top-k");
  g.top_p = args.get_double("top-p");
  g.repetition_penalty = args.get_double("repetition-penalty");
  g.seed = static_cast<uint64_t>(args.get_int("seed"));
  if (auto s = args.maybe("stop")) g.stop_strings.push_back(*s);
  if (args.has("ignore-eos")) g.use_model_eos = false;
  if (tokenizer && tokenizer->pad_id()) g.pad_token_id = *tokenizer->pad_id();

  const bool print_ids = args.has("print-ids");
  std::unique_ptr<TextStreamer> streamer;
  if (!print_ids) streamer = std::make_unique<TextStreamer>(*tokenizer);
  auto results = generate(*model, {prompt}, g, nullptr, tokenizer.get(), [&](int64_t, int64_t token) {
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

int run_tokenize(const Args& args) {
  auto tokenizer = Tokenizer::load(args.get("model"));
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
      fail("[", path, ":", line_no, "] expected whitespace-separated token ids, found '", line, "'");
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
  if (padding != "left" && padding != "right") usage_fail("[--padding] expected left or right, found '", padding, "'");
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
        usage_fail("[reft forward] token id ", id, " is outside the vocabulary [0, ", model->info().vocab_size, ")");
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
  auto out = model->forward(in);
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"input_ids", ids}, {"attention_mask", mask}, {"logits", out.logits.to(torch::kFloat32)}};
  for (size_t i = 0; i < out.hidden_states.size(); ++i)
    tensors.emplace_back("hidden." + std::to_string(i), out.hidden_states[i].to(torch::kFloat32));
  if (model->info().causal) tensors.emplace_back("last_block_raw", out.last_block.to(torch::kFloat32));
  save_safetensors(args.get("out"), tensors);
  std::cerr << "wrote " << args.get("out") << ": logits " << out.logits.sizes() << ", " << out.hidden_states.size()
            << " hidden states\n";
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
  for (const auto& [k, v] : j.items()) std::cout << k << std::string(26 - k.size(), ' ') << v.dump() << "\n";
  if (args.has("tensors"))
    for (const auto& [name, t] : model->parameters())
      std::cout << "  " << name << " " << t.sizes() << " " << dtype_name(t.scalar_type()) << "\n";
  return 0;
}

// ---- init-model ----

int run_init_model(const Args& args) {
  apply_runtime_flags(args);
  const std::string preset = args.get("preset");
  const std::string out = args.get("out");
  const int64_t seed = args.get_int("seed");
  if (seed < 0) usage_fail("[--seed] expected a non-negative integer, found ", seed);
  write_preset_model(preset, out, static_cast<uint64_t>(seed));
  auto model = load_model(out);
  std::cerr << "wrote " << out << ": " << model->info().architecture << " preset '" << preset << "', "
            << model->num_parameters() << " parameters, seed " << seed << "\n";
  return 0;
}

}  // namespace

std::vector<Command> model_commands() {
  return {
      {"generate",
       "Generate a continuation of a prompt with a decoder (greedy unless --temperature > 0). Prints only the "
       "generated text to stdout, streaming.",
       "--model DIR (--prompt TEXT | --prompt-ids \"1 2 3\") [flags]",
       with_runtime({
           {"model", "DIR", "", "HuggingFace model folder (config.json, model.safetensors, tokenizer)"},
           {"prompt", "TEXT", "", "prompt text (tokenized with the model's tokenizer, special tokens added)"},
           {"prompt-ids", "IDS", "", "prompt token ids instead of text, e.g. \"1 2 3\""},
           {"max-new-tokens", "N", "128", "maximum number of generated tokens"},
           {"temperature", "T", "0", "sampling temperature; 0 = greedy"},
           {"top-k", "K", "0", "sample among the K most likely tokens; 0 = off"},
           {"top-p", "P", "1", "nucleus sampling mass; 1 = off"},
           {"repetition-penalty", "R", "1", "HF repetition penalty; 1 = off"},
           {"seed", "S", "0", "sampling seed"},
           {"stop", "TEXT", "", "stop once the continuation contains TEXT"},
           {"ignore-eos", "", "", "do not stop on the model's eos ids"},
           {"print-ids", "", "", "print the new ids as a JSON array instead of text"},
       }),
       run_generate},
      {"tokenize", "Tokenize text and print the ids as a JSON array (a folder with only tokenizer files is enough).",
       "--model DIR (--text TEXT | --decode \"1 2 3\") [flags]",
       {
           {"model", "DIR", "", "folder with tokenizer.json, tokenizer.model, vocab.json+merges.txt or vocab.txt"},
           {"text", "TEXT", "", "text to encode"},
           {"no-special", "", "", "do not add special tokens (BOS, [CLS], …)"},
           {"tokens", "", "", "print the token strings instead of ids"},
           {"decode", "IDS", "", "decode these ids and print the text as a JSON string"},
           {"skip-special", "", "", "with --decode: drop special tokens"},
       },
       run_tokenize},
      {"forward",
       "Run one forward pass and write logits (B,T,V), hidden.<i> for i = 0..L (HF output_hidden_states) and "
       "last_block_raw to a safetensors file.",
       "--model DIR (--ids \"1 2 3\" | --text TEXT | --ids-file F) --out FILE.safetensors [flags]",
       with_runtime({
           {"model", "DIR", "", "HuggingFace model folder"},
           {"ids", "IDS", "", "one sequence of token ids"},
           {"text", "TEXT", "", "one text, tokenized with special tokens"},
           {"ids-file", "F", "", "a batch: one sequence of ids per line, padded by the tool"},
           {"padding", "SIDE", "right", "padding side for --ids-file: left or right"},
           {"out", "FILE", "", "output .safetensors"},
       }),
       run_forward},
      {"inspect", "Print a model's architecture, configuration, parameter count, dtypes and fingerprint.",
       "--model DIR [--json] [--tensors]",
       with_runtime({
           {"model", "DIR", "", "HuggingFace model folder"},
           {"json", "", "", "print one JSON object"},
           {"tensors", "", "", "also list every weight with its shape"},
       }),
       run_inspect},
      {"init-model",
       "Write a small seeded random LLaMA in real HuggingFace format (config.json, generation_config.json, "
       "model.safetensors, tokenizer.json): the built-in default for demos and tests. Presets: tiny, llama-110m.",
       "--preset tiny|llama-110m --out DIR [--seed S]",
       with_runtime({
           {"preset", "NAME", "tiny", "tiny (hidden 64, 4 layers, vocab 512) or llama-110m (hidden 768, 12 layers, "
                                      "vocab 32000)"},
           {"out", "DIR", "", "output folder"},
           {"seed", "S", "0", "random seed of the weights"},
       }),
       run_init_model},
  };
}

}  // namespace reft::cli
