// The reft CLI contract: exact output forms, exit codes and one-line errors.

#include <torch/torch.h>

#include <fstream>

#include "cli_util.h"
#include "reft/adapter.h"
#include "reft/error.h"
#include "reft/safetensors.h"
#include "reft/tokenizer.h"
#include "reft/trainer.h"
#include "torch_test_util.h"
#include "util/files.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
using test::reft;
using test::TempDir;

TEST(Cli, HelpShowsDefaults) {
  auto r = reft({"generate", "--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--max-new-tokens N"), std::string::npos);
  EXPECT_NE(r.out.find("(default: 128)"), std::string::npos);
  EXPECT_EQ(reft({}).status, 2);
  expect_error(reft({"frobnicate"}), 2, "unknown command");
  expect_error(reft({"generate", "--model"}), 2, "expects a value");
  expect_error(reft({"generate", "--bogus", "1"}), 2, "unknown flag --bogus");
}

TEST(Cli, ForwardWritesLogitsAndHiddenStates) {
  TempDir tmp;
  test::write_tiny_model(tmp / "m");
  auto r = reft({"forward", "--model", (tmp / "m").string(), "--ids", "1 5 9 3", "--out",
                 (tmp / "o.safetensors").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  auto out = load_safetensors(tmp / "o.safetensors");
  EXPECT_EQ(out.at("logits").sizes(), (std::vector<int64_t>{1, 4, 64}));
  EXPECT_EQ(out.count("hidden.3"), 1u);  // 3 layers → hidden.0 … hidden.3
  EXPECT_EQ(out.count("hidden.4"), 0u);
  std::ofstream(tmp / "ids.txt") << "1 2 3\n4 5\n";
  r = reft({"forward", "--model", (tmp / "m").string(), "--ids-file", (tmp / "ids.txt").string(),
            "--padding", "left", "--out", (tmp / "b.safetensors").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  auto batch = load_safetensors(tmp / "b.safetensors");
  EXPECT_EQ(batch.at("attention_mask")[1][0].item<int64_t>(), 0);
  // Row 1 is [pad, 4, 5]: its real positions must equal a run of "4 5" alone.
  r = reft({"forward", "--model", (tmp / "m").string(), "--ids", "4 5", "--out",
            (tmp / "single.safetensors").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  auto single = load_safetensors(tmp / "single.safetensors");
  ASSERT_EQ(single.at("logits").sizes(), (std::vector<int64_t>{1, 2, 64}));
  EXPECT_TRUE(test::tensors_close("left-padded row 1 vs its own run",
                                  batch.at("logits")[1].narrow(0, 1, 2), single.at("logits")[0],
                                  1e-5));
  EXPECT_TRUE(test::tensors_close("left-padded row 1 hidden.3 vs its own run",
                                  batch.at("hidden.3")[1].narrow(0, 1, 2), single.at("hidden.3")[0],
                                  1e-5));
  // And the padding is not ignored by accident: row 0 differs from row 1.
  EXPECT_FALSE(torch::allclose(batch.at("logits")[0].narrow(0, 1, 2),
                               batch.at("logits")[1].narrow(0, 1, 2)));
}

TEST(Cli, GenerateIdsIsDeterministic) {
  TempDir tmp;
  test::write_tiny_model(tmp / "m");
  const std::vector<std::string> args = {
      "generate",         "--model", (tmp / "m").string(), "--prompt-ids", "1 4 7",
      "--max-new-tokens", "5",       "--print-ids",        "--ignore-eos"};
  auto a = reft(args), b = reft(args);
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(std::count(a.out.begin(), a.out.end(), ','), 4) << a.out;  // 5 ids
}

TEST(Cli, BadInputIsOneLineAndExitOne) {
  TempDir tmp;
  test::write_tiny_model(tmp / "m");
  const auto m = (tmp / "m").string();
  const std::string out = (tmp / "o.safetensors").string();
  expect_error(reft({"forward", "--model", (tmp / "none").string(), "--ids", "1", "--out", out}), 1,
               "not found");
  // Corrupt weights: truncated file.
  fs::resize_file(tmp / "m" / "model.safetensors", 100);
  expect_error(reft({"forward", "--model", m, "--ids", "1", "--out", out}), 1, "model.safetensors");
  std::ofstream(tmp / "m" / "config.json", std::ios::trunc) << "{\"architectures\": [\"Nope\"]}";
  expect_error(reft({"forward", "--model", m, "--ids", "1", "--out", out}), 1, "Nope");
  std::ofstream(tmp / "m" / "config.json", std::ios::trunc) << "{ broken";
  expect_error(reft({"inspect", "--model", m}), 1, "config.json");
  expect_error(reft({"forward", "--model", m, "--ids", "1 x", "--out", out}), 2, "--ids");
}

TEST(Cli, TrainConfigErrorsAreUsageErrors) {
  TempDir tmp;
  // The built-in tiny preset: 4 layers, hidden 64, with a tokenizer.
  ASSERT_EQ(reft({"init-model", "--preset", "tiny", "--out", (tmp / "m").string()}).status, 0);
  const auto train = [&](const std::string& flag, const std::string& value) {
    return reft({"train", "--model", (tmp / "m").string(), "--output", (tmp / "o").string(),
                 "--max-steps", "1", flag, value});
  };
  expect_error(train("--layers", "4"), 2, "out of range");
  expect_error(train("--layers", "1;x"), 2, "--layers");
  expect_error(train("--rank", "65"), 2, "hidden size");
  expect_error(train("--component", "bogus"), 2, "bogus");
  expect_error(train("--type", "bogus"), 2, "bogus");
  expect_error(train("--position", "f1+zz"), 2, "--position");
  expect_error(train("--data", (tmp / "missing.jsonl").string()), 1, "missing.jsonl");
  EXPECT_FALSE(fs::exists(tmp / "o" / "reft_config.json"));
}

TEST(Cli, AdapterRecordsTheTemplateTrainedWith) {
  TempDir tmp;
  ASSERT_EQ(reft({"init-model", "--preset", "tiny", "--out", (tmp / "m").string()}).status, 0);
  std::ofstream(tmp / "alpaca.jsonl") << R"({"instruction": "Say hi", "output": "hi"})"
                                      << "\n";
  std::ofstream(tmp / "chat.jsonl")
      << R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]})"
      << "\n";
  for (const auto& [data, want] :
       {std::pair<std::string, std::string>{"alpaca", "alpaca"}, {"chat", "chatml"}}) {
    const auto out = tmp / ("o-" + data);
    auto r = reft({"train", "--model", (tmp / "m").string(), "--data",
                   (tmp / (data + ".jsonl")).string(), "--output", out.string(), "--max-steps", "1",
                   "--layers", "1"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(read_adapter_config(out)["template"], want) << data;
  }
}

TEST(Cli, WrongAdaptersAndTypesAreRefusedUpFront) {
  TempDir tmp;
  ASSERT_EQ(reft({"init-model", "--preset", "tiny", "--out", (tmp / "m").string()}).status, 0);
  const auto m = (tmp / "m").string();
  // Interchange and parameterless types cannot be trained by reft train.
  const auto train = [&](const std::string& type) {
    return reft({"train", "--model", m, "--output", (tmp / "o").string(), "--max-steps", "1",
                 "--type", type});
  };
  expect_error(train("vanilla"), 2, "needs a source run");
  expect_error(train("rotated"), 2, "reft das");
  expect_error(train("zero"), 2, "no trainable parameters");
  EXPECT_FALSE(fs::exists(tmp / "o" / "reft_config.json"));
  // A classification adapter, trained by the CLI.
  std::ofstream data(tmp / "cls.jsonl");
  for (int i = 0; i < 4; ++i)
    data << R"({"text": "the cat sat", "label": ")" << (i % 2 ? "a" : "b") << "\"}\n";
  data.close();
  auto r = reft({"train", "--model", m, "--task", "classification", "--data",
                 (tmp / "cls.jsonl").string(), "--output", (tmp / "cls").string(), "--max-steps",
                 "1", "--layers", "1"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto generate = [&](const fs::path& adapter) {
    return reft({"generate", "--model", m, "--adapter", adapter.string(), "--prompt-ids", "1 4 7",
                 "--max-new-tokens", "2", "--print-ids"});
  };
  expect_error(generate(tmp / "cls"), 2, "classification adapter");
  // A DAS adapter (interchange intervention).
  auto model = load_model(m);
  InterventionOptions o;
  o.type = InterventionType::kLowRankRotated;
  o.low_rank_dimension = 2;
  ReftModel das(*model, ReftConfig::build({1}, Component::kBlockOutput, o, "l1", false), 0);
  save_adapter(das, tmp / "das");
  expect_error(generate(tmp / "das"), 2, "source run");
}

TEST(Cli, ResumeRestoresTheSavedConfigurationAndRefusesAnother) {
  TempDir tmp;
  ASSERT_EQ(reft({"init-model", "--preset", "tiny", "--out", (tmp / "m").string()}).status, 0);
  const auto m = (tmp / "m").string(), o = (tmp / "o").string();
  auto r = reft({"train", "--model", m, "--output", o, "--max-steps", "2", "--layers", "1",
                 "--rank", "2", "--lr", "0.01"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto before = read_adapter_config(tmp / "o");
  // --resume alone: every flag comes from the saved run (no --model needed).
  r = reft({"train", "--output", o, "--resume", "--max-steps", "3"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("resumed from"), std::string::npos) << r.err;
  const auto after = read_adapter_config(tmp / "o");
  EXPECT_EQ(after["reft"], before["reft"]);
  EXPECT_EQ(after["extra"]["train_flags"]["rank"], "2");
  EXPECT_EQ(after["extra"]["train_flags"]["lr"], "0.01");
  // A conflicting flag: one line naming the saved value.
  expect_error(reft({"train", "--output", o, "--resume", "--rank", "4"}), 2, "--rank 2");
  expect_error(reft({"train", "--output", o, "--resume", "--type", "noreft"}), 2, "--type");
  expect_error(reft({"train", "--output", o, "--resume", "--share-weights"}), 2,
               "without --share-weights");
  EXPECT_EQ(read_adapter_config(tmp / "o")["reft"], before["reft"]);
  // The library refuses a checkpoint of another configuration by itself.
  auto model = load_model(m);
  auto tok = Tokenizer::load(m);
  InterventionOptions io;
  io.low_rank_dimension = 2;
  ReftModel other(*model, ReftConfig::build({2}, Component::kBlockOutput, io, "l1", false), 0);
  TrainOptions t;
  t.max_steps = 4;
  t.output_dir = tmp / "o";
  t.resume = true;
  const auto data = make_lm_dataset(builtin_example_records(), *tok, {});
  try {
    train_reft(other, data, nullptr, t, tok.get());
    ADD_FAILURE() << "resumed a checkpoint of another configuration";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("configuration"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace reft
