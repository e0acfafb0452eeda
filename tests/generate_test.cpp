// Generation: golden greedy continuations from HF transformers, and sampling/batching invariants.

#include "reft/generate.h"

#include <torch/torch.h>

#include "reft/data.h"
#include "reft/error.h"
#include "reft/tokenizer.h"
#include "torch_test_util.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

// Every golden/generate/<model>.jsonl: the greedy new ids must match exactly, and where the model
// has a tokenizer, the decoded continuation must match `text` up to surrounding whitespace.
TEST(GoldenGenerate, AllModels) {
  REFT_REQUIRE_SHARED("golden/generate");
  int checked = 0;
  for (const auto& file : test::files_with_suffix(shared_path, ".jsonl")) {
    const fs::path model_dir = test::shared_dir() / "models" / file.stem();
    if (!fs::exists(model_dir)) continue;
    const auto config = nlohmann::json::parse(std::ifstream(model_dir / "config.json"));
    const auto archs = supported_architectures();
    if (std::find(archs.begin(), archs.end(), config["architectures"][0]) == archs.end()) {
      std::cout << "[ SKIPPED  ] " << file.stem() << ": architecture not supported yet\n";
      continue;
    }
    auto model = load_model(model_dir);
    for (const auto& row : test::read_jsonl(file)) {
      GenerationOptions opt;
      opt.max_new_tokens = row["max_new_tokens"];
      opt.use_model_eos = false;
      const auto& eos = row["eos_token_id"];
      opt.eos_token_ids = eos.is_array() ? eos.get<std::vector<int64_t>>()
                                         : std::vector<int64_t>{eos.get<int64_t>()};
      const auto prompt = row["prompt_ids"].get<std::vector<int64_t>>();
      const auto result = generate(*model, {prompt}, opt);
      EXPECT_EQ(result[0].new_ids, row["new_ids"].get<std::vector<int64_t>>())
          << file.stem() << " prompt " << prompt.size();
      if (row.contains("stopped_on_eos")) {
        EXPECT_EQ(result[0].stopped, row["stopped_on_eos"].get<bool>());
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

class GenerateInvariants : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_tiny_model(tmp_.path(), {}, 5);
    model_ = load_model(tmp_.path());
  }
  TempDir tmp_;
  std::unique_ptr<Model> model_;
};

TEST_F(GenerateInvariants, BatchedEqualsOneByOne) {
  const std::vector<std::vector<int64_t>> prompts = {{5, 9, 13, 20, 7}, {4}, {30, 31, 8}};
  GenerationOptions opt;
  opt.max_new_tokens = 12;
  opt.use_model_eos = false;
  const auto batched = generate(*model_, prompts, opt);
  for (size_t b = 0; b < prompts.size(); ++b) {
    const auto alone = generate(*model_, {prompts[b]}, opt);
    EXPECT_EQ(batched[b].new_ids, alone[0].new_ids) << "row " << b;
    EXPECT_EQ(batched[b].new_ids.size(), 12u);
  }
}

TEST_F(GenerateInvariants, GreedyMatchesArgmaxOfFullRecompute) {
  std::vector<int64_t> seq = {3, 17, 42};
  GenerationOptions opt;
  opt.max_new_tokens = 8;
  opt.use_model_eos = false;
  const auto out = generate(*model_, {seq}, opt)[0].new_ids;
  torch::NoGradGuard g;
  for (int64_t expected : out) {
    ForwardInput in;
    in.input_ids = torch::tensor(seq, torch::kInt64).unsqueeze(0);
    in.logits = LogitsMode::kLast;
    EXPECT_EQ(model_->forward(in).logits.argmax(-1).item<int64_t>(), expected);
    seq.push_back(expected);
  }
}

TEST_F(GenerateInvariants, SamplingIsSeededAndTopK1IsGreedy) {
  const std::vector<std::vector<int64_t>> prompt = {{5, 6, 7}};
  GenerationOptions opt;
  opt.max_new_tokens = 10;
  opt.use_model_eos = false;
  opt.temperature = 1.5;
  opt.seed = 42;
  const auto a = generate(*model_, prompt, opt)[0].new_ids;
  const auto b = generate(*model_, prompt, opt)[0].new_ids;
  EXPECT_EQ(a, b);
  opt.seed = 43;
  const auto c = generate(*model_, prompt, opt)[0].new_ids;
  EXPECT_NE(a, c);  // 10 tokens at temperature 1.5 over 64 ids: equal only by a wild accident
  opt.top_k = 1;
  GenerationOptions greedy;
  greedy.max_new_tokens = 10;
  greedy.use_model_eos = false;
  EXPECT_EQ(generate(*model_, prompt, opt)[0].new_ids,
            generate(*model_, prompt, greedy)[0].new_ids);
  opt.top_k = 0;
  opt.top_p = 1e-6;  // nucleus of one token
  EXPECT_EQ(generate(*model_, prompt, opt)[0].new_ids,
            generate(*model_, prompt, greedy)[0].new_ids);
}

TEST_F(GenerateInvariants, StopsOnEosAndCallback) {
  GenerationOptions opt;
  opt.max_new_tokens = 10;
  opt.use_model_eos = false;
  const auto free_run = generate(*model_, {{5, 6}}, opt)[0].new_ids;
  opt.eos_token_ids = {free_run[3]};
  const auto stopped = generate(*model_, {{5, 6}}, opt)[0];
  EXPECT_TRUE(stopped.stopped);
  const auto first = std::find(free_run.begin(), free_run.end(), free_run[3]) - free_run.begin();
  EXPECT_EQ(stopped.new_ids.size(), static_cast<size_t>(first + 1));
  opt.eos_token_ids.clear();
  int calls = 0;
  const auto cut = generate(*model_, {{5, 6}}, opt, nullptr, nullptr,
                            [&](int64_t, int64_t) { return ++calls < 4; });
  EXPECT_EQ(cut[0].new_ids.size(), 4u);
}

TEST_F(GenerateInvariants, RejectsBadInput) {
  GenerationOptions opt;
  EXPECT_THROW(generate(*model_, {{}}, opt), UsageError);
  EXPECT_THROW(generate(*model_, {{1000}}, opt), UsageError);
  opt.top_p = 0;
  EXPECT_THROW(generate(*model_, {{1}}, opt), UsageError);
}

// Past max_position_embeddings, generation goes on but says so, once.
TEST(GenerateWarnings, PastMaxPositionEmbeddings) {
  TempDir tmp;
  test::write_tiny_model(tmp.path(), {{"max_position_embeddings", 8}}, 2);
  auto model = load_model(tmp.path());
  GenerationOptions opt;
  opt.use_model_eos = false;
  std::vector<std::string> warnings;
  opt.on_warning = [&](const std::string& w) { warnings.push_back(w); };
  opt.max_new_tokens = 5;  // prompt 4: the last forward is at position 7
  generate(*model, {{1, 4, 7, 9}}, opt);
  EXPECT_TRUE(warnings.empty());
  opt.max_new_tokens = 7;  // positions 8 and 9
  auto out = generate(*model, {{1, 4, 7, 9}}, opt);
  EXPECT_EQ(out[0].new_ids.size(), 7u);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("max_position_embeddings (8) at position 8"), std::string::npos)
      << warnings[0];
}

// Prompt templates as generation renders them.

// stories260K through its tokenizer.json: this binary runs with the unit tests under ASan, where
// the SentencePiece backend cannot be loaded next to libtorch (src/tokenizer/spm_processor.cpp).
// The templates, not the backend, are under test here; both backends agree on these texts
// (tokenizer_test checks them against each other).
std::unique_ptr<Tokenizer> stories_tokenizer(const fs::path& dir) {
  TokenizerOptions o;
  o.backend = TokenizerBackend::kJson;
  return Tokenizer::load(dir, o);
}

// Meta's Llama-3 chat template starts with bos_token; the shipped llama3 tokenizer adds no BOS
// (ByteLevel post-processor), so the template must write it, and exactly once.
TEST(PromptTemplate, Llama3StartsWithBeginOfTextOnce) {
  REFT_REQUIRE_SHARED("tokenizers/llama3");
  const auto tok = Tokenizer::load(shared_path);
  const auto bos = tok->token_to_id("<|begin_of_text|>");
  ASSERT_TRUE(bos.has_value());
  const auto ids = encode_prompt(*tok, apply_template("llama3", "Hi"));
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], *bos);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *bos), 1);
  EXPECT_EQ(ids[1], *tok->token_to_id("<|start_header_id|>"));
  // Chat data rendered with llama3 starts the same way.
  Record chat{
      {{"messages",
        {{{"role", "user"}, {"content", "Hi"}}, {{"role", "assistant"}, {"content", "Yo"}}}}},
      "chat:1"};
  DataOptions o;
  o.template_name = "llama3";
  const auto ds = make_lm_dataset({chat}, *tok, o);
  EXPECT_EQ(ds.examples[0].input_ids[0], *bos);
  EXPECT_EQ(std::count(ds.examples[0].input_ids.begin(), ds.examples[0].input_ids.end(), *bos), 1);
  EXPECT_EQ(ds.examples[0].prompt, apply_template("llama3", "Hi"));
}

TEST(PromptTemplate, MarkersThatAreNotTokensAreReported) {
  REFT_REQUIRE_SHARED("tokenizers/stories260K");
  const auto tok = stories_tokenizer(shared_path);
  const auto w = template_marker_warnings("chatml", *tok);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(w[0].find("<|im_start|>"), std::string::npos) << w[0];
  EXPECT_NE(w[1].find("<|im_end|>"), std::string::npos) << w[1];
  EXPECT_TRUE(template_marker_warnings("none", *tok).empty());
  EXPECT_TRUE(template_marker_warnings("alpaca", *tok).empty());
  // Chat data rendered with chatml on this vocabulary carries the warning.
  const Record chat{
      {{"messages",
        {{{"role", "user"}, {"content", "Hi"}}, {{"role", "assistant"}, {"content", "Yo"}}}}},
      "c:1"};
  const auto ds = make_lm_dataset({chat}, *tok, {});
  ASSERT_FALSE(ds.warnings.empty());
  EXPECT_NE(ds.warnings[0].find("<|im_start|>"), std::string::npos);
  const auto llama3 = test::shared_dir() / "tokenizers" / "llama3";
  if (std::filesystem::exists(llama3)) {
    EXPECT_TRUE(template_marker_warnings("llama3", *Tokenizer::load(llama3)).empty());
  }
}

// A tokenizer that adds BOS itself and a template that writes it: still one BOS.
TEST(PromptTemplate, BosWrittenByTheTemplateIsNotDoubled) {
  REFT_REQUIRE_SHARED("tokenizers/stories260K");
  const auto tok = stories_tokenizer(shared_path);
  ASSERT_EQ(tok->bos_id(), 1);
  const auto plain = encode_prompt(*tok, "Hello");
  const auto with_bos = encode_prompt(*tok, apply_template("<s>{prompt}", "Hello"));
  EXPECT_EQ(with_bos, plain);
  EXPECT_EQ(plain[0], 1);
  EXPECT_NE(plain[1], 1);
}

// The template an adapter records is the one the prompts were rendered with.
TEST(PromptTemplate, DatasetRecordsTheTemplateUsed) {
  REFT_REQUIRE_SHARED("tokenizers/stories260K");
  const auto tok = stories_tokenizer(shared_path);
  const Record alpaca{{{"instruction", "Say hi"}, {"output", "hi"}}, "a:1"};
  const Record chat{
      {{"messages",
        {{{"role", "user"}, {"content", "Say hi"}}, {{"role", "assistant"}, {"content", "hi"}}}}},
      "c:1"};
  const Record plain{{{"prompt", "Say hi"}, {"completion", " hi"}}, "p:1"};
  const DataOptions none;
  auto a = make_lm_dataset({alpaca}, *tok, none);
  EXPECT_EQ(a.template_name, "alpaca");
  EXPECT_EQ(a.examples[0].prompt, apply_template(a.template_name, "Say hi"));
  auto c = make_lm_dataset({chat}, *tok, none);
  EXPECT_EQ(c.template_name, "chatml");
  EXPECT_EQ(c.examples[0].prompt, apply_template(c.template_name, "Say hi"));
  EXPECT_EQ(make_lm_dataset({plain}, *tok, none).template_name, "none");
  DataOptions zephyr;
  zephyr.template_name = "zephyr";
  auto z = make_lm_dataset({chat}, *tok, zephyr);
  EXPECT_EQ(z.template_name, "zephyr");
  EXPECT_EQ(z.examples[0].prompt, apply_template("zephyr", "Say hi"));
  // A chat template without a chat form renders "role: content"; the recorded one matches.
  DataOptions alpaca_for_chat;
  alpaca_for_chat.template_name = "alpaca";
  auto p = make_lm_dataset({chat}, *tok, alpaca_for_chat);
  EXPECT_EQ(p.examples[0].prompt, apply_template(p.template_name, "Say hi"));
}

}  // namespace
}  // namespace reft
