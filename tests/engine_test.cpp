// The serving engine: continuous batching with a different adapter per row must give every request
// what generate() gives for it alone (greedy and seeded sampling), through queueing, joins between
// decode steps, cache compaction, stop strings and cancellation.

#include "reft/engine.h"

#include <torch/torch.h>

#include <thread>

#include "reft/tokenizer.h"
#include "reft/tokenizer_builder.h"
#include "torch_test_util.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

constexpr const char* kCorpus =
    "Once upon a time there was a little fox who lived in the green forest. The fox liked to run "
    "and jump and play with the rabbits. One day the fox found a shiny stone near the river. ";

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_tiny_model(dir_.path(), {{"vocab_size", 300}, {"max_position_embeddings", 512}},
                           11);
    write_byte_level_bpe_tokenizer(dir_.path(), kCorpus, 300);
    model_ = load_model(dir_.path());
    tokenizer_ = Tokenizer::load(dir_.path());
    // Three adapters: two prompt-only LoReFTs at different sites and positions, and one that also
    // edits generated tokens (as `reft steer` adapters do).
    make_adapter("a", {1}, "f1+l1", 4, 1, false);
    make_adapter("b", {0, 2}, "l2", 2, 2, false);
    make_adapter("g", {1}, "l1", 3, 3, true);
  }

  void make_adapter(const std::string& name, const std::vector<int64_t>& layers,
                    const std::string& positions, int64_t rank, uint64_t seed,
                    bool intervene_generated) {
    InterventionOptions o;
    o.type = InterventionType::kLoReFT;
    o.low_rank_dimension = rank;
    auto config = ReftConfig::build(layers, Component::kBlockOutput, o, positions, false);
    ReftModel reft(*model_, config, seed);
    // Random W and R with b = 0 edit a lot already; a bias makes the edit unmistakable.
    {
      torch::NoGradGuard g;
      for (auto& [n, t] : reft.named_parameters())
        if (n.find("bias") != std::string::npos) t.normal_(0, 2.0);
    }
    AdapterMeta meta;
    if (intervene_generated) meta.extra["intervene_generated"] = true;
    save_adapter(reft, dir_.path() / name, meta);
    adapters_[name] = load_served_adapter(*model_, name, dir_.path() / name);
  }

  // generate() alone with a freshly loaded copy of the adapter: the reference.
  std::vector<int64_t> alone(const std::vector<int64_t>& prompt, const std::string& adapter,
                             const GenerationOptions& g) {
    if (adapter.empty()) return generate(*model_, {prompt}, g, nullptr, tokenizer_.get())[0].new_ids;
    auto loaded = load_adapter(*model_, dir_.path() / adapter);
    auto hooks = loaded.reft->generation_hooks(adapters_[adapter]->intervene_generated);
    return generate(*model_, {prompt}, g, hooks.get(), tokenizer_.get())[0].new_ids;
  }

  EngineRequest request(const std::string& text, const std::string& adapter,
                        const GenerationOptions& g) {
    EngineRequest r;
    r.prompt = tokenizer_->encode(text, true);
    if (!adapter.empty()) r.adapter = adapters_.at(adapter);
    r.options = g;
    return r;
  }

  TempDir dir_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::map<std::string, std::shared_ptr<const ServedAdapter>> adapters_;
};

struct Case {
  std::string prompt, adapter;
  int64_t max_new_tokens;
};

const std::vector<Case> kCases = {
    {"Once upon a time", "a", 12},
    {"The fox", "", 20},
    {"One day the fox found a shiny stone", "b", 7},
    {"jump and play", "g", 15},
    {"the green forest", "a", 3},
    {"The fox liked to run and jump", "b", 18},
    {"a little fox who lived", "", 9},
    {"near the river", "g", 11},
    {"Once", "b", 16},
};

// More requests than rows: requests queue, join between decode steps and leave at different
// times; the small context forces the timeline to be compacted. Every row equals its run alone.
TEST_F(EngineTest, MixedAdaptersEqualGenerateAlone) {
  Engine engine(*model_, *tokenizer_, {.ctx = 40, .max_seqs = 3, .max_queue = 64});
  GenerationOptions g;
  g.use_model_eos = false;
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& c : kCases) {
    g.max_new_tokens = c.max_new_tokens;
    streams.push_back(engine.submit(request(c.prompt, c.adapter, g)));
  }
  for (size_t i = 0; i < kCases.size(); ++i) {
    const auto& c = kCases[i];
    g.max_new_tokens = c.max_new_tokens;
    const auto ev = streams[i]->wait_all();
    const auto prompt = tokenizer_->encode(c.prompt, true);
    EXPECT_EQ(ev.tokens, alone(prompt, c.adapter, g)) << c.prompt << " / " << c.adapter;
    EXPECT_EQ(ev.text, tokenizer_->decode(ev.tokens, true));
    EXPECT_TRUE(ev.finished);
    EXPECT_EQ(ev.reason, FinishReason::kLength);
    EXPECT_EQ(ev.prompt_tokens, static_cast<int64_t>(prompt.size()));
    EXPECT_EQ(ev.completion_tokens, c.max_new_tokens);
  }
  const auto stats = engine.stats();
  EXPECT_EQ(stats.requests_finished, kCases.size());
  EXPECT_EQ(stats.finished_length, kCases.size());
  EXPECT_GT(stats.decode_steps, 0u);
  EXPECT_LE(stats.batch_size.sum / stats.batch_size.count, 3.0);
}

// The adapters must actually change the output, or the test above proves nothing about routing.
TEST_F(EngineTest, AdaptersChangeTheOutput) {
  GenerationOptions g;
  g.use_model_eos = false;
  g.max_new_tokens = 12;
  const auto prompt = tokenizer_->encode("Once upon a time", true);
  const auto base = alone(prompt, "", g);
  for (const auto* name : {"a", "b", "g"}) EXPECT_NE(alone(prompt, name, g), base) << name;
}

// Sampled rows draw from their own generator: a row equals generate() with the same seed.
TEST_F(EngineTest, SeededSamplingEqualsGenerateAlone) {
  Engine engine(*model_, *tokenizer_, {.ctx = 64, .max_seqs = 4});
  GenerationOptions g;
  g.use_model_eos = false;
  g.max_new_tokens = 10;
  g.temperature = 1.3;
  g.top_k = 40;
  g.top_p = 0.9;
  g.repetition_penalty = 1.2;
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (size_t i = 0; i < 5; ++i) {
    g.seed = 100 + i;
    streams.push_back(engine.submit(request(kCases[i].prompt, kCases[i].adapter, g)));
  }
  for (size_t i = 0; i < 5; ++i) {
    g.seed = 100 + i;
    const auto prompt = tokenizer_->encode(kCases[i].prompt, true);
    EXPECT_EQ(streams[i]->wait_all().tokens, alone(prompt, kCases[i].adapter, g)) << i;
  }
}

// A stop string ends the row like generate() does, and neither it nor what follows is handed out.
TEST_F(EngineTest, StopStringsEndTheRowAndAreCut) {
  Engine engine(*model_, *tokenizer_, {.ctx = 128, .max_seqs = 2});
  GenerationOptions g;
  g.use_model_eos = false;
  g.max_new_tokens = 30;
  const auto prompt = tokenizer_->encode("The fox", true);
  const auto free_run = alone(prompt, "", g);
  const std::string text = tokenizer_->decode(free_run, true);
  ASSERT_GT(text.size(), 8u);
  const std::string stop = text.substr(text.size() / 2, 3);
  g.stop_strings = {stop};
  const auto expected = alone(prompt, "", g);
  auto stream = engine.submit(request("The fox", "", g));
  std::string streamed;
  std::vector<int64_t> tokens;
  for (;;) {
    auto ev = stream->wait(std::chrono::milliseconds(50));
    streamed += ev.text;
    tokens.insert(tokens.end(), ev.tokens.begin(), ev.tokens.end());
    if (ev.finished) {
      EXPECT_EQ(ev.reason, FinishReason::kStop);
      break;
    }
  }
  EXPECT_EQ(tokens, expected);
  EXPECT_EQ(streamed, text.substr(0, text.find(stop)));
}

TEST_F(EngineTest, CancelEndsTheRow) {
  Engine engine(*model_, *tokenizer_, {.ctx = 500, .max_seqs = 2});
  GenerationOptions g;
  g.use_model_eos = false;
  g.max_new_tokens = 480;
  auto stream = engine.submit(request("Once upon a time", "a", g));
  auto ev = stream->wait(std::chrono::seconds(30));
  ASSERT_FALSE(ev.tokens.empty());
  stream->cancel();
  ev = stream->wait_all();
  EXPECT_EQ(ev.reason, FinishReason::kCancelled);
  EXPECT_LT(ev.completion_tokens, 480);
  // The engine goes on serving.
  g.max_new_tokens = 4;
  EXPECT_EQ(engine.submit(request("The fox", "", g))->wait_all().tokens.size(), 4u);
  EXPECT_EQ(engine.stats().finished_cancelled, 1u);
}

TEST_F(EngineTest, RefusesWhatCannotRun) {
  Engine engine(*model_, *tokenizer_, {.ctx = 16, .max_seqs = 2});
  GenerationOptions g;
  g.max_new_tokens = 10;
  EXPECT_THROW(engine.submit(request("Once upon a time there was a little fox", "", g)),
               UsageError);  // prompt + max_tokens > ctx
  EngineRequest empty;
  EXPECT_THROW(engine.submit(empty), UsageError);
  EngineRequest bad = request("fox", "", g);
  bad.prompt.push_back(300);  // outside the vocabulary
  EXPECT_THROW(engine.submit(bad), UsageError);
  g.top_p = 0;
  EXPECT_THROW(engine.submit(request("fox", "", g)), UsageError);
  g.top_p = 1;
  g.max_new_tokens = 0;
  const auto ev = engine.submit(request("fox", "", g))->wait_all();
  EXPECT_TRUE(ev.tokens.empty());
  EXPECT_EQ(ev.reason, FinishReason::kLength);
  engine.stop(/*cancel=*/false);
  EXPECT_THROW(engine.submit(request("fox", "", g)), QueueFullError);
}

// Requests from many threads at once: every one finishes with its own tokens.
TEST_F(EngineTest, ConcurrentSubmitters) {
  Engine engine(*model_, *tokenizer_, {.ctx = 64, .max_seqs = 4, .max_queue = 64});
  GenerationOptions g;
  g.use_model_eos = false;
  g.max_new_tokens = 6;
  std::vector<std::vector<int64_t>> got(12);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t)
    threads.emplace_back([&, t] {
      const auto& c = kCases[t % kCases.size()];
      got[t] = engine.submit(request(c.prompt, c.adapter, g))->wait_all().tokens;
    });
  for (auto& t : threads) t.join();
  for (size_t t = 0; t < got.size(); ++t) {
    const auto& c = kCases[t % kCases.size()];
    EXPECT_EQ(got[t], alone(tokenizer_->encode(c.prompt, true), c.adapter, g)) << t;
  }
}

// A classification adapter or an interchange adapter cannot be served for generation.
TEST_F(EngineTest, RefusesAdaptersThatCannotGenerate) {
  InterventionOptions o;
  o.type = InterventionType::kVanilla;
  auto config = ReftConfig::build({1}, Component::kBlockOutput, o, "l1", false);
  ReftModel reft(*model_, config, 0);
  save_adapter(reft, dir_.path() / "das");
  try {
    load_served_adapter(*model_, "das", dir_.path() / "das");
    FAIL() << "expected an error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("source run"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace reft
