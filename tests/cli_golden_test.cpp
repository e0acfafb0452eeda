// The acceptance checks through the reft CLI itself, against the shared golden data: generation
// text and ids, tokenization, forward passes, the pyreft training-parity run, classification train
// + eval, pyreft adapter directories, and the bench's JSON keys. Each skips with a message when
// ../shared is absent.

#include <torch/torch.h>

#include <fstream>
#include <random>

#include "cli_util.h"
#include "reft/safetensors.h"
#include "torch_test_util.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::reft;
using test::TempDir;
using test::trim;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string join_ids(const json& ids) {
  std::string s;
  for (const auto& id : ids) s += (s.empty() ? "" : " ") + std::to_string(id.get<int64_t>());
  return s;
}

// Every golden/generate/<model>.jsonl: text prompts must print exactly the golden continuation;
// id prompts must print exactly the golden new ids.
TEST(CliGolden, GenerateMatchesTransformers) {
  REFT_REQUIRE_SHARED("golden/generate");
  int checked = 0;
  for (const auto& file : test::files_with_suffix(shared_path, ".jsonl")) {
    const fs::path model = test::shared_dir() / "models" / file.stem();
    if (!fs::exists(model / "config.json") || !test::architecture_supported(model)) continue;
    for (const auto& row : test::read_jsonl(file)) {
      const std::string n = std::to_string(row["max_new_tokens"].get<int64_t>());
      if (row.contains("prompt")) {
        const auto r = reft({"generate", "--model", model.string(), "--prompt", row["prompt"],
                             "--max-new-tokens", n, "--temperature", "0"});
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_EQ(trim(r.out), trim(row["text"].get<std::string>()))
            << file.stem() << " " << row["prompt"];
      }
      const auto r =
          reft({"generate", "--model", model.string(), "--prompt-ids", join_ids(row["prompt_ids"]),
                "--max-new-tokens", n, "--temperature", "0", "--print-ids"});
      ASSERT_EQ(r.status, 0) << r.err;
      EXPECT_EQ(json::parse(r.out), row["new_ids"]) << file.stem() << " " << row["prompt_ids"];
      ++checked;
    }
  }
  EXPECT_GE(checked, 5);
}

// Every line of golden/tokenizers/<name>.jsonl through `reft tokenize --input`: ids with and
// without special tokens, token strings and the three decodings (batched: one process per mode).
TEST(CliGolden, TokenizeMatchesTransformersJs) {
  REFT_REQUIRE_SHARED("golden/tokenizers");
  TempDir tmp;
  int checked = 0;
  for (const auto& file : test::files_with_suffix(shared_path, ".jsonl")) {
    const auto rows = test::read_jsonl(file);
    const std::string folder = (test::shared_dir() / "tokenizers" / file.stem()).string();
    SCOPED_TRACE(file.stem().string());
    // Texts, then ids to decode, in one input file per mode.
    const auto run = [&](const std::string& ids_field, const std::vector<std::string>& flags) {
      std::ofstream in(tmp / "in.jsonl", std::ios::trunc);
      for (const auto& row : rows) in << json{{"text", row["text"]}}.dump() << "\n";
      for (const auto& row : rows) in << json{{"text", row[ids_field]}}.dump() << "\n";
      in.close();
      std::vector<std::string> args = {"tokenize", "--model", folder, "--input",
                                       (tmp / "in.jsonl").string()};
      args.insert(args.end(), flags.begin(), flags.end());
      const auto r = reft(args);
      EXPECT_EQ(r.status, 0) << r.err;
      auto out = lines_of(r.out);
      EXPECT_EQ(out.size(), 2 * rows.size());
      out.resize(2 * rows.size());
      return out;
    };
    const auto plain = run("ids", {"--no-special"});
    const auto special = run("ids_with_special", {});
    const auto skip = run("ids_with_special", {"--no-special", "--tokens", "--skip-special"});
    const size_t n = rows.size();
    for (size_t k = 0; k < n; ++k) {
      const auto& row = rows[k];
      const std::string where = "row " + std::to_string(k) + " " + row["text"].dump();
      // The SentencePiece backend (used when tokenizer.model is present) has its own golden ids.
      const bool sp =
          row.contains("sentencepiece_ids") && fs::exists(fs::path(folder) / "tokenizer.model");
      EXPECT_EQ(json::parse(plain[k]), sp ? row["sentencepiece_ids"] : row["ids"]) << where;
      if (sp) {
        // What the fast tokenizer adds around the text, around SentencePiece's ids.
        auto want = row["ids_with_special"].get<std::vector<int64_t>>();
        want.resize(want.size() - row["ids"].size());
        for (const auto& id : row["sentencepiece_ids"]) want.push_back(id.get<int64_t>());
        EXPECT_EQ(json::parse(special[k]), json(want)) << where;
      } else {
        EXPECT_EQ(json::parse(special[k]), row["ids_with_special"]) << where;
      }
      EXPECT_EQ(json::parse(plain[n + k]), row["decoded"]) << where;
      EXPECT_EQ(json::parse(special[n + k]), row["decoded_with_special"]) << where;
      EXPECT_EQ(json::parse(skip[n + k]), row["decoded_skip_special"]) << where;
      if (!sp) {
        EXPECT_EQ(json::parse(skip[k]), row["tokens"]) << where;
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 40);
}

// Every golden/models/<name>.safetensors through `reft forward --ids-file`, each case with its own
// padding side: logits, hidden states and the raw last block at the real positions.
TEST(CliGolden, ForwardMatchesTransformers) {
  REFT_REQUIRE_SHARED("golden/models");
  TempDir tmp;
  int checked = 0;
  for (const auto& file : test::files_with_suffix(shared_path, ".safetensors")) {
    const fs::path model = test::shared_dir() / "models" / file.stem();
    if (!fs::exists(model / "config.json") || !test::architecture_supported(model)) continue;
    const auto golden = load_safetensors(file);
    for (int k = 0; golden.count("case" + std::to_string(k) + ".input_ids"); ++k) {
      const std::string c = "case" + std::to_string(k) + ".";
      const std::string what = file.stem().string() + " " + c;
      const auto ids = golden.at(c + "input_ids"), mask = golden.at(c + "attention_mask");
      // case2 is left-padded: its first column holds padding in some row.
      const bool left = (mask.select(1, 0) == 0).any().item<bool>();
      std::ofstream rows(tmp / "ids.txt", std::ios::trunc);
      for (int64_t b = 0; b < ids.size(0); ++b) {
        for (int64_t t = 0; t < ids.size(1); ++t)
          if (mask[b][t].item<int64_t>()) rows << ids[b][t].item<int64_t>() << " ";
        rows << "\n";
      }
      rows.close();
      const auto r =
          reft({"forward", "--model", model.string(), "--ids-file", (tmp / "ids.txt").string(),
                "--padding", left ? "left" : "right", "--out", (tmp / "out.safetensors").string()});
      ASSERT_EQ(r.status, 0) << what << r.err;
      const auto out = load_safetensors(tmp / "out.safetensors");
      EXPECT_TRUE(torch::equal(out.at("attention_mask"), mask)) << what;
      const auto m = mask.unsqueeze(-1);
      const auto& logits = golden.at(c + "logits");
      EXPECT_TRUE(test::tensors_close(what + "logits", out.at("logits"), logits, 1e-4, 0,
                                      logits.dim() == 3 ? m : torch::Tensor()));
      for (const auto& [name, tensor] : golden) {
        if (name.rfind(c + "hidden.", 0) && name != c + "last_block_raw") continue;
        const std::string key = name.substr(c.size());
        ASSERT_TRUE(out.count(key)) << what << key;
        EXPECT_TRUE(test::tensors_close(what + key, out.at(key), tensor, 1e-4, 0, m));
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 10);
}

// golden/reft/train-run-stories260K.json through `reft train`: a prompt/completion JSONL and flags.
TEST(CliGolden, TrainMatchesThePyreftRun) {
  REFT_REQUIRE_SHARED("golden/reft/train-run-stories260K.json");
  std::ifstream golden_in(shared_path);
  const auto golden = json::parse(golden_in);
  const auto& cfg = golden["config"];
  TempDir tmp;
  std::ofstream data(tmp / "pairs.jsonl");
  for (const auto& pair : cfg["pairs"])
    data << json{{"prompt", pair[0]}, {"completion", pair[1]}}.dump() << "\n";
  data.close();
  std::string layers;
  for (const auto& l : cfg["layers"])
    layers += (layers.empty() ? "" : ";") + std::to_string(l.get<int>());
  const auto r = reft({"train",
                       "--model",
                       (test::shared_dir() / "models/stories260K").string(),
                       "--data",
                       (tmp / "pairs.jsonl").string(),
                       "--output",
                       (tmp / "out").string(),
                       "--layers",
                       layers,
                       "--rank",
                       std::to_string(cfg["rank"].get<int>()),
                       "--position",
                       "l1",
                       "--lr",
                       json(cfg["lr"]).dump(),
                       "--max-steps",
                       std::to_string(cfg["steps"].get<int>()),
                       "--batch-size",
                       std::to_string(cfg["pairs"].size()),
                       "--max-grad-norm",
                       "0",
                       "--log-every",
                       "1",
                       "--seed",
                       "1"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("trainable intervention params: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("|| trainable model params: 0"), std::string::npos) << r.err;
  std::ifstream summary_in(tmp / "out/summary.json");
  const auto summary = json::parse(summary_in);
  const double final_loss = summary["final_loss"], lo = golden["final_loss_min"],
               hi = golden["final_loss_max"];
  std::cout << "reft train final loss " << final_loss << ", pyreft " << lo << " … " << hi << "\n";
  EXPECT_GE(final_loss, 0.95 * lo);
  EXPECT_LE(final_loss, 1.05 * hi);
  EXPECT_EQ(summary["steps"], cfg["steps"]);
  // The logged curve (every 10 steps) stays within 10% of pyreft's mean curve.
  std::map<int64_t, double> curve;
  for (const auto& row : test::read_jsonl(tmp / "out/metrics.jsonl"))
    if (row.contains("loss") && row.contains("step"))
      curve[row["step"].get<int64_t>()] = row["loss"];
  const auto& runs = golden["runs"];
  int compared = 0;
  for (size_t k = 0; k < runs[0]["curve_every_10"].size(); ++k) {
    double mean = 0;
    for (const auto& run : runs) mean += run["curve_every_10"][k].get<double>() / runs.size();
    // metrics.jsonl counts steps from 1; pyreft's curve point k is the loss of step 10k (0-based).
    const auto it = curve.find(static_cast<int64_t>(k * 10 + 1));
    if (it == curve.end()) continue;
    EXPECT_NEAR(it->second, mean, 0.10 * mean) << "step " << k * 10;
    ++compared;
  }
  EXPECT_GE(compared, 20);
  EXPECT_TRUE(fs::exists(tmp / "out/loss.svg"));
}

// The tests' 3-class animal task as JSONL: 270 training and 90 held-out records.
void write_animals(const fs::path& train_file, const fs::path& test_file) {
  const auto rows = test::animal_sentences(7);
  std::ofstream a(train_file), b(test_file);
  for (size_t k = 0; k < 360; ++k) (k < 270 ? a : b) << rows[k].dump() << "\n";
}

// Decoder classification through the CLI: reft train --task classification, then reft eval.
TEST(CliGolden, ClassificationTrainAndEval) {
  REFT_REQUIRE_SHARED("models/stories260K");
  TempDir tmp;
  write_animals(tmp / "train.jsonl", tmp / "test.jsonl");
  const auto r = reft({"train",
                       "--model",
                       shared_path.string(),
                       "--task",
                       "classification",
                       "--data",
                       (tmp / "train.jsonl").string(),
                       "--output",
                       (tmp / "out").string(),
                       "--layers",
                       "1;3",
                       "--rank",
                       "4",
                       "--epochs",
                       "6",
                       "--batch-size",
                       "16",
                       "--lr",
                       "0.01",
                       "--log-every",
                       "20"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto e =
      reft({"eval", "--model", shared_path.string(), "--adapter", (tmp / "out").string(), "--data",
            (tmp / "test.jsonl").string(), "--confusion", (tmp / "confusion.svg").string()});
  ASSERT_EQ(e.status, 0) << e.err;
  const auto metrics = json::parse(e.out);
  std::cout << "CLI classification, held-out: " << metrics.dump() << "\n";
  EXPECT_GE(metrics["accuracy"].get<double>(), 0.9);
  EXPECT_TRUE(metrics.contains("macro_f1"));
  EXPECT_TRUE(metrics.contains("mcc"));
  EXPECT_TRUE(fs::exists(tmp / "confusion.svg"));
  // An unknown label at eval time is a clear error naming the line.
  std::ofstream(tmp / "bad.jsonl")
      << json{{"text", "Tom saw a fish."}, {"label", "fish"}}.dump() << "\n";
  test::expect_error(reft({"eval", "--model", shared_path.string(), "--adapter",
                           (tmp / "out").string(), "--data", (tmp / "bad.jsonl").string()}),
                     1, "fish");
}

// A pyreft directory is an adapter for forward and generate: each row of the golden batch through
// `reft forward --adapter DIR` with its last prompt token as the position reproduces pyreft's
// logits.
TEST(CliGolden, PyreftDirectoryReproducesPyreftLogits) {
  REFT_REQUIRE_SHARED("golden/pyreft/stories260K-loreft-l2-r4-trained");
  const std::string model = (test::shared_dir() / "models/stories260K").string();
  const auto expected = load_safetensors(shared_path / "expected.safetensors");
  const auto ids = expected.at("input_ids"), mask = expected.at("attention_mask");
  const auto positions = expected.at("positions");  // (1, B, 1): the last prompt token
  TempDir tmp;
  for (int64_t b = 0; b < ids.size(0); ++b) {
    std::string row;
    std::vector<int64_t> real;
    for (int64_t t = 0; t < ids.size(1); ++t)
      if (mask[b][t].item<int64_t>()) {
        row += (row.empty() ? "" : " ") + std::to_string(ids[b][t].item<int64_t>());
        real.push_back(t);
      }
    ASSERT_EQ(real.front(), 0) << "expected right padding";
    const int64_t position = positions[0][b][0].item<int64_t>();
    const auto r =
        reft({"forward", "--model", model, "--ids", row, "--adapter", shared_path.string(),
              "--position", "l1", "--prompt-length", std::to_string(position + 1), "--out",
              (tmp / "out.safetensors").string()});
    ASSERT_EQ(r.status, 0) << r.err;
    const auto got = load_safetensors(tmp / "out.safetensors").at("logits")[0];
    const auto want = expected.at("logits")[b].narrow(0, 0, static_cast<int64_t>(real.size()));
    EXPECT_TRUE(test::tensors_close("row " + std::to_string(b), got, want, 1e-4));
    const auto base = expected.at("base_logits")[b].narrow(0, 0, static_cast<int64_t>(real.size()));
    EXPECT_GT((got - base).abs().max().item<double>(), 1e-2)
        << "row " << b << ": the adapter changed nothing";
  }
  // And generation with it is deterministic.
  const std::vector<std::string> gen = {"generate",
                                        "--model",
                                        model,
                                        "--adapter",
                                        shared_path.string(),
                                        "--prompt",
                                        "Once upon a time",
                                        "--max-new-tokens",
                                        "8",
                                        "--temperature",
                                        "0"};
  const auto a = reft(gen), c = reft(gen);
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out, c.out);
}

// `reft bench generate|train --json`: one JSON object with the documented keys.
TEST(CliGolden, BenchJsonKeys) {
  REFT_REQUIRE_SHARED("models/stories260K");
  const auto g =
      reft({"bench", "generate", "--model", shared_path.string(), "--json", "--prefill-batch", "2",
            "--prefill-tokens", "32", "--decode-tokens", "8", "--repeats", "1"});
  ASSERT_EQ(g.status, 0) << g.err;
  const auto gj = json::parse(g.out);
  for (const char* key : {"prefill_tokens_per_s", "decode_tokens_per_s", "gemm_gflops", "copy_gbps",
                          "prefill_mfu", "decode_bandwidth_utilisation"}) {
    ASSERT_TRUE(gj.contains(key)) << key << " in " << g.out;
    EXPECT_GT(gj[key].get<double>(), 0) << key;
  }
  const auto t = reft({"bench", "train", "--model", shared_path.string(), "--json", "--layers", "2",
                       "--rank", "4", "--batch-size", "2", "--seq-len", "32", "--steps", "2"});
  ASSERT_EQ(t.status, 0) << t.err;
  const auto tj = json::parse(t.out);
  for (const char* key : {"tokens_per_s", "step_s", "gemm_gflops", "mfu"}) {
    ASSERT_TRUE(tj.contains(key)) << key << " in " << t.out;
    EXPECT_GT(tj[key].get<double>(), 0) << key;
  }
}

}  // namespace
}  // namespace reft
