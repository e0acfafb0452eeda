// The README's library example, compiled as it stands there (tests/readme_example_test.cpp
// checks the two are the same text): train a LoReFT on a few pairs and save the adapter.
//   build/bin/quickstart_example MODEL_DIR ADAPTER_DIR
#include <reft/data.h>
#include <reft/model.h>
#include <reft/reft_model.h>
#include <reft/tokenizer.h>
#include <reft/trainer.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 3) return std::cerr << "usage: quickstart_example MODEL_DIR ADAPTER_DIR\n", 2;
  auto model = reft::load_model(argv[1]);  // the runtime sets itself up: no flags, no env vars
  auto tokenizer = reft::Tokenizer::load(argv[1]);
  auto config = reft::ReftConfig::build(
      {2}, reft::Component::kBlockOutput,
      {.type = reft::InterventionType::kLoReFT, .low_rank_dimension = 4}, "l1", false);
  reft::ReftModel reft_model(*model, config, /*seed=*/42);  // pyreft.get_reft_model
  std::cout << reft_model.trainable_parameters_summary() << "\n";

  std::vector<reft::Record> records;  // prompt → completion pairs (or reft::read_records(path))
  for (auto [prompt, completion] : {std::pair{"Who are you?", " A frog named Bob."},
                                    std::pair{"Where do you live?", " In the old pond."}})
    records.push_back({{{"prompt", prompt}, {"completion", completion}}, "inline"});
  auto dataset = reft::make_lm_dataset(records, *tokenizer, {});

  reft::TrainOptions options{.max_steps = 200, .lr = 1e-2, .batch_size = 2};
  options.output_dir = argv[2];  // the adapter: reft_config.json + interventions.safetensors
  const auto summary = reft::train_reft(reft_model, dataset, nullptr, options);
  std::cout << "loss " << summary.losses.front() << " -> " << summary.final_loss << "\n";
}
