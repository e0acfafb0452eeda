// Training against pyreft on the real stories260K model: the tokenized examples token for token,
// and a whole 300-step training run's loss curve. (Separate from train_test because the
// SentencePiece tokenizer cannot be loaded next to libtorch in sanitizer builds.)

#include <torch/torch.h>

#include "reft/data.h"
#include "reft/tokenizer.h"
#include "reft/trainer.h"
#include "torch_test_util.h"
#include "util/files.h"

namespace reft {
namespace {

TEST(Data, PyreftExampleIdsTokenForToken) {
  REFT_REQUIRE_SHARED("golden/reft/train-run-stories260K.json");
  const auto golden = read_json_file(shared_path);
  auto tok = Tokenizer::load(test::shared_dir() / "models" / "stories260K");
  std::vector<Record> records;
  for (const auto& pair : golden["config"]["pairs"])
    records.push_back({{{"prompt", pair[0]}, {"completion", pair[1]}}, "pairs"});
  auto ds = make_lm_dataset(records, *tok, {});
  ASSERT_EQ(ds.examples.size(), golden["example_ids"].size());
  for (size_t i = 0; i < ds.examples.size(); ++i) {
    const auto& want = golden["example_ids"][i];
    EXPECT_EQ(ds.examples[i].input_ids, want["input_ids"].get<std::vector<int64_t>>()) << i;
    EXPECT_EQ(ds.examples[i].labels, want["labels"].get<std::vector<int64_t>>()) << i;
    // l1 = the last prompt token, where pyreft put every intervention.
    EXPECT_EQ(PositionSpec::parse("l1").resolve(ds.examples[i].prompt_length),
              std::vector<int64_t>{want["intervention_locations"][0][0].get<int64_t>()});
  }
}

// The whole pyreft training run of golden/reft/train-run-stories260K.json: within pyreft's range of
// final losses widened by 5%, and within 10% of its mean curve (sampled every 10 steps).
TEST(TrainParity, Stories260KMatchesPyreftRun) {
  REFT_REQUIRE_SHARED("golden/reft/train-run-stories260K.json");
  const auto golden = read_json_file(shared_path);
  const auto& cfg = golden["config"];
  auto model = load_model(test::shared_dir() / "models" / "stories260K");
  auto tok = Tokenizer::load(test::shared_dir() / "models" / "stories260K");
  std::vector<Record> records;
  for (const auto& pair : cfg["pairs"])
    records.push_back({{{"prompt", pair[0]}, {"completion", pair[1]}}, "pairs"});
  auto data = make_lm_dataset(records, *tok, {});
  InterventionOptions o;
  o.low_rank_dimension = cfg["rank"];
  auto config = ReftConfig::build(cfg["layers"].get<std::vector<int64_t>>(),
                                  Component::kBlockOutput, o, "l1", false);
  ReftModel reft(*model, config, 1);
  TrainOptions t;
  t.max_steps = cfg["steps"];
  t.lr = cfg["lr"];
  t.batch_size = static_cast<int64_t>(data.examples.size());
  t.max_grad_norm = 0;
  const auto s = train_reft(reft, data, nullptr, t);
  const double lo = golden["final_loss_min"], hi = golden["final_loss_max"];
  EXPECT_GE(s.final_loss, 0.95 * lo);
  EXPECT_LE(s.final_loss, 1.05 * hi);
  const auto& runs = golden["runs"];
  const size_t points = runs[0]["curve_every_10"].size();
  for (size_t k = 0; k < points; ++k) {
    double mean = 0;
    for (const auto& r : runs) mean += r["curve_every_10"][k].get<double>() / runs.size();
    EXPECT_NEAR(s.losses[k * 10], mean, 0.10 * mean) << "step " << k * 10;
  }
}

}  // namespace
}  // namespace reft
