#include "reft/presets.h"

#include <torch/torch.h>

#include "models/loading.h"
#include "reft/error.h"
#include "reft/safetensors.h"
#include "reft/tokenizer_builder.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;

const std::string& builtin_corpus() {
  // Written for reft: plain short stories, so that the tiny preset's tokenizer learns real words.
  static const std::string text =
      R"(Once upon a time, there was a little girl named Lily. She loved to play in the park with her red ball.
One day, Lily saw a big dog near the tree. The dog was sad because it had lost its bone. Lily said, "Do not be sad. I will help you find it."
They looked under the bench and behind the flowers. At last, Lily found the bone in the sand. The dog wagged its tail and licked her hand. Lily smiled and said, "Now we are friends."
Tom had a small boat. Every morning he took the boat to the lake with his dad. They watched the ducks swim and the fish jump.
One morning the wind was very strong. The boat started to shake. Tom was scared, but his dad held his hand and said, "We will be safe. Hold on tight."
When they came back home, mom made warm soup. Tom told her about the wind and the waves. Mom hugged him and said he was very brave.
Ben liked to draw pictures of the sun, the moon and the stars. He used blue, yellow and green. His sister Mia wanted to draw too.
Ben gave her a pencil and some paper. Together they drew a big house with a garden, a cat on the roof and a bird in the sky.
The cat in the picture looked happy. Mia laughed and said, "Let us put it on the wall." Their grandma said it was the best picture she had ever seen.
In a quiet forest lived an old owl. The owl knew many things. Animals came to ask him questions every night.
A young rabbit asked, "Why does the moon change its shape?" The owl answered, "The moon does not change. We only see the part the sun lights."
The rabbit thought about it for a long time. Then he ran home to tell his mother what he had learned.
Sara wanted to bake a cake for her friend. She took flour, eggs, milk and sugar. She mixed them in a bowl and put the bowl in the oven.
The kitchen smelled sweet. When the cake was ready, Sara put red berries on top. Her friend came and they ate the cake in the garden.
It was a sunny day. The children went to the beach. They built a castle of sand with tall towers and a deep moat.
A wave came and washed the castle away. The children did not cry. They laughed and started to build a new one, even bigger than before.
Max the puppy could not find his way home. He walked past the shop, the school and the big bridge.
A kind woman saw him and read the name on his collar. She called his family, and soon a boy came running. Max jumped into his arms.
The farmer had three cows, two pigs and many hens. Every day he gave them food and water. The hens gave him eggs and the cows gave him milk.
One night a fox tried to get into the hen house. The farmer's dog barked loudly and the fox ran away into the dark field.
Question: What color is the sky on a clear day? Answer: The sky is blue.
Question: How many legs does a cat have? Answer: A cat has four legs.
Question: What do bees make? Answer: Bees make honey.
Question: Where do fish live? Answer: Fish live in water.
Translate to French: cat. Answer: chat. Translate to French: dog. Answer: chien. Translate to French: house. Answer: maison.
The numbers are one, two, three, four, five, six, seven, eight, nine and ten.
)";
  return text;
}

std::vector<std::string> model_presets() { return {"tiny", "llama-110m"}; }

nlohmann::json preset_config(const std::string& preset) {
  nlohmann::json c = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"bos_token_id", kBuiltBosId},
      {"eos_token_id", kBuiltEosId},
      {"pad_token_id", kBuiltPadId},
      {"hidden_act", "silu"},
      {"initializer_range", 0.02},
      {"mlp_bias", false},
      {"pretraining_tp", 1},
      {"rope_scaling", nullptr},
      {"rope_theta", 10000.0},
      {"torch_dtype", "float32"},
      {"use_cache", true},
  };
  if (preset == "tiny") {
    // A wider init than HF's 0.02: with tied embeddings of std 0.02 and D = 64 the largest logit a
    // normed state can reach is ~1.3, so no intervention could make the model confident. At 0.2
    // the random model can express sharp predictions, and the demo's LoReFT visibly learns.
    c.update({{"initializer_range", 0.2},
              {"hidden_size", 64},
              {"intermediate_size", 172},
              {"num_hidden_layers", 4},
              {"num_attention_heads", 4},
              {"num_key_value_heads", 2},
              {"head_dim", 16},
              {"max_position_embeddings", 512},
              {"rms_norm_eps", 1e-5},
              {"tie_word_embeddings", true},
              {"vocab_size", 512}});
    return c;
  }
  if (preset == "llama-110m") {
    c.update({{"hidden_size", 768},
              {"intermediate_size", 2048},
              {"num_hidden_layers", 12},
              {"num_attention_heads", 12},
              {"num_key_value_heads", 12},
              {"head_dim", 64},
              {"max_position_embeddings", 2048},
              {"rms_norm_eps", 1e-5},
              {"tie_word_embeddings", true},
              {"vocab_size", 32000}});
    return c;
  }
  std::string names;
  for (const auto& p : model_presets()) names += (names.empty() ? "" : ", ") + p;
  usage_fail("[--preset] expected one of ", names, ", found '", preset, "'");
}

namespace {

bool is_norm_weight(const std::string& name) {
  const auto ends = [&](const char* s) {
    const std::string suffix(s);
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends("norm.weight") || ends("layernorm.weight") || ends("LayerNorm.weight") ||
         ends("ln_1.weight") || ends("ln_2.weight") || ends("ln_f.weight");
}

}  // namespace

void write_random_model(const fs::path& dir, const nlohmann::json& config, uint64_t seed) {
  fs::create_directories(dir);
  ConfigReader reader(config, (dir / "config.json").string());
  const double std_dev = reader.number_or("initializer_range", 0.02);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  ModelSource source{dir, reader, std::nullopt, std::nullopt, LoadOptions{}, {}};
  source.synthesize = [&](const std::string& name, const std::vector<int64_t>& shape) {
    const std::string suffix = ".bias";
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return torch::zeros(shape);
    if (is_norm_weight(name)) return torch::ones(shape);
    return torch::normal(0.0, std_dev, shape, gen);
  };
  auto model = build_model(source);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& [name, t] : model->parameters()) tensors.emplace_back(name, t.contiguous());
  save_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
  write_file_atomically(dir / "config.json",
                        [&](std::ostream& out) { out << config.dump(2) << "\n"; });
}

void write_preset_model(const std::string& preset, const fs::path& dir, uint64_t seed) {
  const auto config = preset_config(preset);
  write_random_model(dir, config, seed);
  const nlohmann::json generation = {
      {"bos_token_id", kBuiltBosId}, {"eos_token_id", kBuiltEosId}, {"pad_token_id", kBuiltPadId}};
  write_file_atomically(dir / "generation_config.json",
                        [&](std::ostream& out) { out << generation.dump(2) << "\n"; });
  write_byte_level_bpe_tokenizer(dir, builtin_corpus(), config["vocab_size"].get<int>());
}

}  // namespace reft
