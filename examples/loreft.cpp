// pyreft's README example in C++: a rank-1 LoReFT on one layer's block_output, trained to answer in
// a fixed style, then saved, reloaded and used for generation.
//
//   build/bin/loreft_example MODEL_DIR [OUT_DIR]
//
// MODEL_DIR is any supported HuggingFace folder (e.g. one from `reft init-model --preset tiny`).

#include <reft/adapter.h>
#include <reft/data.h>
#include <reft/error.h>
#include <reft/generate.h>
#include <reft/model.h>
#include <reft/reft_model.h>
#include <reft/runtime.h>
#include <reft/tokenizer.h>
#include <reft/trainer.h>

#include <algorithm>
#include <iostream>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: loreft_example MODEL_DIR [OUT_DIR]\n";
    return 2;
  }
  const std::string out = argc > 2 ? argv[2] : "loreft-example";
  try {
    reft::init_runtime();
    auto model = reft::load_model(argv[1]);
    auto tokenizer = reft::Tokenizer::load(argv[1]);

    // pyreft: ReftConfig(representations={"layer": 19, "component": "block_output",
    //                    "low_rank_dimension": 1, "intervention": LoreftIntervention(...)})
    const int64_t layer = std::min<int64_t>(19, model->info().num_layers - 1);
    reft::InterventionOptions loreft{.type = reft::InterventionType::kLoReFT,
                                     .low_rank_dimension = 1};
    auto config =
        reft::ReftConfig::build({layer}, reft::Component::kBlockOutput, loreft, "l1", false);
    reft::ReftModel reft_model(*model, config, /*seed=*/0);
    std::cout << reft_model.trainable_parameters_summary() << "\n";

    // A few prompt → completion pairs: the intervention learns to answer with a sound.
    std::vector<reft::Record> records;
    for (const auto& [prompt, completion] :
         std::vector<std::pair<std::string, std::string>>{{"Who are you?", " Meow meow."},
                                                          {"What is the sky?", " Meow meow."},
                                                          {"Tell me a story.", " Meow meow."}})
      records.push_back({{{"prompt", prompt}, {"completion", completion}}, "example"});
    auto data = reft::make_lm_dataset(records, *tokenizer, {});

    reft::TrainOptions train{.max_steps = 100, .lr = 4e-3, .batch_size = 3, .max_grad_norm = 0};
    train.output_dir = out;
    const auto summary = reft::train_reft(reft_model, data, nullptr, train);
    std::cout << "loss " << summary.losses.front() << " -> " << summary.final_loss << "\n";

    // Reload the adapter from disk and generate with it.
    auto loaded = reft::load_adapter(*model, out);
    auto hooks = loaded.reft->generation_hooks();
    reft::GenerationOptions gen{.max_new_tokens = 8};
    auto result =
        reft::generate(*model, {tokenizer->encode("Where is the moon?")}, gen, hooks.get());
    std::cout << "Where is the moon? ->" << tokenizer->decode(result[0].new_ids, true) << "\n";
  } catch (const reft::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
