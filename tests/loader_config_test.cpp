// The torch-free halves of the model and pyreft loaders (reft/model_config.h,
// reft/pyreft_config.h): every malformed value is one reft::Error line naming the file and the
// field, values echoed from the file are short, and nothing the fuzz targets reach can overflow.

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "reft/model_config.h"
#include "reft/pyreft_config.h"
#include "test_util.h"

namespace reft {
namespace {

using json = nlohmann::json;
using test::error_of;
using test::TempDir;

void write(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

void expect_one_line(const std::string& message, std::initializer_list<std::string> parts) {
  for (const auto& p : parts) EXPECT_NE(message.find(p), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_LT(message.size(), 400u) << message;
}

const json kLlama = {{"architectures", {"LlamaForCausalLM"}},
                     {"hidden_size", 64},
                     {"num_attention_heads", 8},
                     {"num_hidden_layers", 2}};

TEST(ModelConfig, FolderAndFileErrors) {
  TempDir tmp;
  expect_one_line(error_of([&] { read_model_config(tmp / "absent"); }), {"absent", "not found"});
  expect_one_line(error_of([&] { read_model_config(tmp.path()); }), {"config.json", "not found"});
  write(tmp / "config.json", "[1, 2]");
  expect_one_line(error_of([&] { read_model_config(tmp.path()); }), {"config.json", "object"});
  write(tmp / "config.json", R"({"architectures": [7]})");
  expect_one_line(error_of([&] { read_model_config(tmp.path()); }), {"'architectures'"});
  write(tmp / "config.json", kLlama.dump());
  write(tmp / "generation_config.json", "3");
  expect_one_line(error_of([&] { read_model_config(tmp.path()); }),
                  {"generation_config.json", "object"});
  write(tmp / "generation_config.json", R"({"eos_token_id": [2, 3]})");
  const auto files = read_model_config(tmp.path());
  EXPECT_EQ(files.architecture(), "LlamaForCausalLM");
  ASSERT_TRUE(files.generation_config.has_value());
  EXPECT_EQ(files.generation_config->integer_list("eos_token_id"), (std::vector<int64_t>{2, 3}));
}

TEST(ModelConfig, ReaderRefusesHugeAndMistypedValues) {
  const ConfigReader c({{"a", 1e300},
                        {"b", 4096.0},
                        {"c", int64_t{1} << 40},
                        {"d", -3},
                        {"e", "x"},
                        {"f", std::string(10000, 'y')}},
                       "dir/config.json");
  expect_one_line(error_of([&] { c.integer("a"); }), {"dir/config.json", "'a'", "an integer"});
  EXPECT_EQ(c.integer("b"), 4096);
  expect_one_line(error_of([&] { c.positive("c"); }), {"'c'", "at most"});
  expect_one_line(error_of([&] { c.positive("d"); }), {"'d'", "positive"});
  expect_one_line(error_of([&] { c.boolean_or("e", false); }), {"'e'", "true or false"});
  expect_one_line(error_of([&] { c.integer("f"); }), {"'f'", "…"});
  expect_one_line(error_of([&] {
                    c.positive_any({"n_embd", "hidden_size"});
                  }),
                  {"'n_embd or hidden_size'", "missing"});
}

TEST(ModelConfig, RopeSettings) {
  const auto rope = [](const json& fields) {
    json j = kLlama;
    j.update(fields);
    return read_rope_config(ConfigReader(j, "m/config.json"), 8);
  };
  const auto error = [&](const json& fields) { return error_of([&] { rope(fields); }); };
  EXPECT_EQ(rope(json::object()).scaling, RopeConfig::Scaling::kNone);
  EXPECT_EQ(rope({{"rope_scaling", nullptr}}).scaling, RopeConfig::Scaling::kNone);
  EXPECT_EQ(rope({{"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}}}).factor, 2.0);
  const auto llama3 = rope({{"rope_theta", 500000.0},
                            {"rope_scaling",
                             {{"rope_type", "llama3"},
                              {"factor", 8.0},
                              {"low_freq_factor", 1.0},
                              {"high_freq_factor", 4.0},
                              {"original_max_position_embeddings", 8192}}}});
  EXPECT_EQ(llama3.scaling, RopeConfig::Scaling::kLlama3);
  EXPECT_EQ(llama3.theta, 500000.0);
  EXPECT_EQ(llama3.high_freq_factor, 4.0);
  // A factor that would overflow the rotary size (undefined behaviour as an integer cast).
  expect_one_line(error({{"partial_rotary_factor", 1e300}}), {"'partial_rotary_factor'"});
  expect_one_line(error({{"partial_rotary_factor", 0.5}}), {"not supported"});
  expect_one_line(error({{"rope_theta", -1.0}}), {"'rope_theta'", "positive"});
  expect_one_line(error({{"rope_scaling", {{"type", "linear"}, {"factor", 0}}}}),
                  {"[rope_scaling] field 'factor'", "positive"});
  expect_one_line(error({{"rope_scaling", {{"type", "linear"}}}}), {"'factor'", "missing"});
  expect_one_line(error({{"rope_scaling",
                          {{"rope_type", "llama3"},
                           {"factor", 8.0},
                           {"low_freq_factor", 4.0},
                           {"high_freq_factor", 4.0},
                           {"original_max_position_embeddings", 8192}}}}),
                  {"'high_freq_factor'", "above low_freq_factor"});
  expect_one_line(error({{"rope_scaling", "linear"}}), {"'rope_scaling'", "an object"});
  // An untyped scaling is echoed, cut short.
  expect_one_line(error({{"rope_scaling", {{"x", std::string(5000, 'z')}}}}),
                  {"'rope_scaling'", "…"});
}

json pyreft_config(json representations) {
  return {{"representations", std::move(representations)},
          {"intervention_types", "<class 'pyreft.interventions.LoreftIntervention'>"},
          {"mode", "parallel"}};
}

TEST(PyreftConfig, ReadsPositionalAndDictRepresentations) {
  TempDir tmp;
  json c = pyreft_config({{2, "block_output", "pos", 1, 4, nullptr},
                          {{"layer", 3}, {"component", "mlp_output"}, {"low_rank_dimension", 2}}});
  c["intervention_dimensions"] = {nullptr, 5};
  write(tmp / "config.json", c.dump());
  const auto text = read_pyreft_config(tmp.path());
  ASSERT_EQ(text.representations.size(), 2u);
  EXPECT_EQ(text.representations[0].layer, 2);
  EXPECT_EQ(text.representations[0].rank, 4);
  EXPECT_EQ(text.representations[1].component, "mlp_output");
  EXPECT_EQ(text.representations[1].type_class,
            "<class 'pyreft.interventions.LoreftIntervention'>");
  EXPECT_FALSE(text.dimensions[0].has_value());
  EXPECT_EQ(text.dimensions[1], 5);
  // One representation as a bare positional list.
  write(tmp / "config.json", pyreft_config({1, "block_output"}).dump());
  EXPECT_EQ(read_pyreft_config(tmp.path()).representations.at(0).layer, 1);
}

TEST(PyreftConfig, ErrorsAreOneShortLine) {
  TempDir tmp;
  const auto error = [&](const json& c) {
    write(tmp / "config.json", c.dump());
    return error_of([&] { read_pyreft_config(tmp.path()); });
  };
  // A huge non-list value is echoed as a short prefix, not whole.
  const std::string huge(100000, 'r');
  const std::string message = error(pyreft_config(huge));
  expect_one_line(message, {"config.json", "representations: expected a non-empty list", "…"});
  EXPECT_EQ(message.find(std::string(200, 'r')), std::string::npos);
  expect_one_line(error(pyreft_config(json::array())), {"non-empty list"});
  expect_one_line(error(pyreft_config(json(5000, json{0, "block_output"}))), {"at most 4096"});
  expect_one_line(error(pyreft_config({{{"layer", -1}}})), {"representations[0]", "layer"});
  expect_one_line(error(pyreft_config({{{"layer", 0}, {"component", "model.layers[0].mlp"}}})),
                  {"module path"});
  expect_one_line(error(pyreft_config({{{"unit", std::string(1000, 'u')}}})), {"unit", "…"});
  expect_one_line(error(pyreft_config({{{"group_key", 3}}})), {"group_key"});
  expect_one_line(error(pyreft_config({{{"colour", 3}}})), {"unexpected", "\"colour\""});
  json c = pyreft_config({{{"layer", 0}}, {{"layer", 1}}});
  c["intervention_types"] = {"<class 'x'>"};
  expect_one_line(error(c), {"intervention_types: expected 2 class strings"});
  c = pyreft_config({{{"layer", 0}}});
  c["intervention_dimensions"] = {-4};
  expect_one_line(error(c), {"intervention_dimensions[0]"});
  c["mode"] = "serial";
  expect_one_line(error(c), {"mode", "parallel"});
  expect_one_line(error(json{{"architectures", {"LlamaForCausalLM"}}}), {"a model's config.json"});
  // A type no check names (representations as a number inside a list of lists) is still one line.
  expect_one_line(error(pyreft_config({{0, 0}, 7})), {"config.json"});
}

}  // namespace
}  // namespace reft
