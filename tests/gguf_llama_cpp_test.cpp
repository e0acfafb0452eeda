// reft's GGUF layer held to llama.cpp (node-llama-cpp 3.21.1, tools/llama-cpp-ref): a tiny
// llama-architecture model written by reft's GGUF writer must load in llama.cpp, and for every
// tensor type reft dequantizes, llama.cpp's embedding of one token must be reft's dequantized
// row of token_embd (normalised). The model is built so that this holds exactly: one layer whose
// attention output and FFN down projections are zero leave the hidden state equal to the token's
// embedding row, and the final RMSNorm has unit weights, so llama.cpp's embedding is the row
// divided by its RMS. The rows are random blocks (sane scales), so any misread bit of a block
// layout shows. Skips without node or tools/llama-cpp-ref/node_modules (cd tools/llama-cpp-ref &&
// npm ci; about 700 MB with the GPU variants npm installs beside the CPU one).

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "reft/gguf.h"
#include "test_util.h"
#include "util/files.h"

namespace fs = std::filesystem;
using reft::GgmlType;
using reft::GgufTensorData;
using reft::GgufValue;

namespace {

constexpr uint64_t kEmbd = 256, kHeads = 4, kHeadsKv = 2, kFf = 64, kHeadDim = kEmbd / kHeads;

struct Rng {
  uint32_t state;
  uint32_t next() { return state = state * 1664525u + 1013904223u; }
  float uniform() { return (static_cast<float>(next() >> 8) / 16777216.0f - 0.5f) * 0.4f; }
};

GgufTensorData f32_tensor(const std::string& name, std::vector<uint64_t> dims, Rng* rng,
                          float constant = 0) {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  GgufTensorData t{name, std::move(dims), GgmlType::F32, {}};
  for (uint64_t i = 0; i < n; ++i) {
    const float v = rng ? rng->uniform() : constant;
    t.data.append(reinterpret_cast<const char*>(&v), 4);
  }
  return t;
}

GgufTensorData f16_tensor(const std::string& name, std::vector<uint64_t> dims, Rng& rng) {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  GgufTensorData t{name, std::move(dims), GgmlType::F16, {}};
  for (uint64_t i = 0; i < n; ++i) {
    const uint16_t h = reft::float_to_fp16(rng.uniform());
    t.data.append(reinterpret_cast<const char*>(&h), 2);
  }
  return t;
}

// The byte offsets of the fp16 scales in one block of `type` (random bytes there could be NaN).
std::vector<int> scale_offsets(GgmlType type) {
  switch (type) {
    case GgmlType::Q8_0:
    case GgmlType::Q4_0:
    case GgmlType::Q5_0:
    case GgmlType::IQ4_NL:
    case GgmlType::IQ4_XS:
      return {0};
    case GgmlType::Q3_K:
      return {108};
    case GgmlType::Q4_1:
    case GgmlType::Q5_1:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
      return {0, 2};
    case GgmlType::Q6_K:
      return {208};
    case GgmlType::Q2_K:
      return {80, 82};
    default:
      return {};
  }
}

// token_embd of `type`: random blocks with sane scales (and finite F16/BF16 values).
GgufTensorData random_embedding(GgmlType type, uint64_t vocab, Rng& rng) {
  const auto* info = reft::ggml_type_info(static_cast<uint32_t>(type));
  GgufTensorData t{"token_embd.weight", {kEmbd, vocab}, type, {}};
  for (uint64_t b = 0; b < kEmbd * vocab / info->block_size; ++b) {
    std::string block(info->type_size, '\0');
    for (auto& c : block) c = static_cast<char>(rng.next() >> 24);
    if (type == GgmlType::F16) {
      const uint16_t h = reft::float_to_fp16(rng.uniform());
      std::memcpy(block.data(), &h, 2);
    } else if (type == GgmlType::BF16) {
      const float f = rng.uniform();
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      const auto h = static_cast<uint16_t>(bits >> 16);
      std::memcpy(block.data(), &h, 2);
    }
    for (int at : scale_offsets(type)) {
      const uint16_t h = reft::float_to_fp16(0.01f + std::fabs(rng.uniform()) * 0.1f);
      std::memcpy(block.data() + at, &h, 2);
    }
    t.data += block;
  }
  return t;
}

// A one-layer llama with a SentencePiece-style vocabulary (byte tokens, "▁a" = 259, …).
std::vector<std::pair<std::string, GgufValue>> tiny_llama_metadata() {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};  // unknown, control, control
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    tokens.push_back(name);
    scores.push_back(0);
    types.push_back(6);  // byte
  }
  for (const char* piece : {"\xe2\x96\x81"
                            "a",
                            "\xe2\x96\x81"
                            "b",
                            "a", "b", "\xe2\x96\x81"}) {
    tokens.push_back(piece);
    scores.push_back(-1.0f - static_cast<float>(tokens.size()) * 0.01f);
    types.push_back(1);  // normal
  }
  return {
      {"general.architecture", GgufValue::string("llama")},
      {"general.name", GgufValue::string("reft tiny llama")},
      {"llama.context_length", GgufValue::u32(128)},
      {"llama.embedding_length", GgufValue::u32(kEmbd)},
      {"llama.block_count", GgufValue::u32(1)},
      {"llama.feed_forward_length", GgufValue::u32(kFf)},
      {"llama.attention.head_count", GgufValue::u32(kHeads)},
      {"llama.attention.head_count_kv", GgufValue::u32(kHeadsKv)},
      {"llama.attention.layer_norm_rms_epsilon", GgufValue::f32(1e-5f)},
      {"llama.rope.dimension_count", GgufValue::u32(kHeadDim)},
      {"llama.rope.freq_base", GgufValue::f32(10000.0f)},
      {"tokenizer.ggml.model", GgufValue::string("llama")},
      {"tokenizer.ggml.tokens", GgufValue::string_array(tokens)},
      {"tokenizer.ggml.scores", GgufValue::f32_array(scores)},
      {"tokenizer.ggml.token_type", GgufValue::i32_array(types)},
      {"tokenizer.ggml.bos_token_id", GgufValue::u32(1)},
      {"tokenizer.ggml.eos_token_id", GgufValue::u32(2)},
      {"tokenizer.ggml.unknown_token_id", GgufValue::u32(0)},
  };
}

constexpr uint64_t kVocab = 3 + 256 + 5;
constexpr int kTokenA = 259;  // "▁a"

std::vector<GgufTensorData> tiny_llama_tensors(GgmlType embedding_type, uint32_t seed) {
  Rng rng{seed};
  return {
      random_embedding(embedding_type, kVocab, rng),
      f32_tensor("output_norm.weight", {kEmbd}, nullptr, 1.0f),
      f16_tensor("output.weight", {kEmbd, kVocab}, rng),
      f32_tensor("blk.0.attn_norm.weight", {kEmbd}, nullptr, 1.0f),
      f16_tensor("blk.0.attn_q.weight", {kEmbd, kEmbd}, rng),
      f16_tensor("blk.0.attn_k.weight", {kEmbd, kHeadsKv * kHeadDim}, rng),
      f16_tensor("blk.0.attn_v.weight", {kEmbd, kHeadsKv * kHeadDim}, rng),
      f32_tensor("blk.0.attn_output.weight", {kEmbd, kEmbd}, nullptr, 0.0f),
      f32_tensor("blk.0.ffn_norm.weight", {kEmbd}, nullptr, 1.0f),
      f16_tensor("blk.0.ffn_gate.weight", {kEmbd, kFf}, rng),
      f16_tensor("blk.0.ffn_up.weight", {kEmbd, kFf}, rng),
      f32_tensor("blk.0.ffn_down.weight", {kFf, kEmbd}, nullptr, 0.0f),
  };
}

std::string run_command(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return {};
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  pclose(pipe);
  return out;
}

std::vector<float> unit(std::vector<float> v) {
  double norm = 0;
  for (float x : v) norm += static_cast<double>(x) * x;
  for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
  return v;
}

TEST(GgufLlamaCpp, WriterFilesLoadAndDequantizationMatches) {
  const fs::path tool = fs::path(REFT_SOURCE_DIR) / "tools/llama-cpp-ref";
  if (!fs::exists(tool / "node_modules/node-llama-cpp") ||
      std::system("node --version > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "node or tools/llama-cpp-ref/node_modules absent (cd tools/llama-cpp-ref && "
                    "npm ci)";
  reft::test::TempDir tmp;
  const GgmlType kTypes[] = {GgmlType::F16,    GgmlType::BF16,  GgmlType::Q8_0, GgmlType::Q4_0,
                             GgmlType::Q4_1,   GgmlType::Q5_0,  GgmlType::Q5_1, GgmlType::Q2_K,
                             GgmlType::Q3_K,   GgmlType::Q4_K,  GgmlType::Q5_K, GgmlType::Q6_K,
                             GgmlType::IQ4_NL, GgmlType::IQ4_XS};
  std::map<std::string, std::vector<float>> expected;  // file → reft's row of "▁a", normalised
  std::string command = "cd '" + tool.string() + "' && node embedding.mjs a";
  uint32_t seed = 1;
  for (GgmlType type : kTypes) {
    const std::string name(reft::ggml_type_info(static_cast<uint32_t>(type))->name);
    const fs::path file = tmp / (name + ".gguf");
    const auto tensors = tiny_llama_tensors(type, seed++);
    reft::write_gguf(file, tiny_llama_metadata(), tensors);
    // reft's reading of the row, through the parsed layout of the written file.
    const auto layout = reft::parse_gguf_layout(file);
    const auto* embd = layout.find_tensor("token_embd.weight");
    ASSERT_NE(embd, nullptr);
    const auto* info = reft::ggml_type_info(static_cast<uint32_t>(type));
    const uint64_t row_bytes = kEmbd / info->block_size * info->type_size;
    const std::string bytes = reft::read_file(file);
    std::vector<float> row(kEmbd);
    reft::dequantize_row(type, bytes.data() + embd->begin + kTokenA * row_bytes, row.data(), kEmbd);
    expected[file.string()] = unit(row);
    command += " '" + file.string() + "'";
  }
  const std::string output = run_command(command + " 2>&1");
  std::istringstream lines(output);
  std::string line;
  size_t checked = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] != '{') continue;
    const auto j = nlohmann::json::parse(line);
    const std::string file = j.at("file");
    SCOPED_TRACE(fs::path(file).filename().string());
    ASSERT_FALSE(j.contains("error")) << "llama.cpp refused reft's file: " << j["error"];
    EXPECT_EQ(j.at("tokens"), nlohmann::json::array({kTokenA}));
    const auto got = unit(j.at("embedding").get<std::vector<float>>());
    const auto& want = expected.at(file);
    ASSERT_EQ(got.size(), want.size());
    float max_diff = 0;
    for (size_t i = 0; i < got.size(); ++i)
      max_diff = std::max(max_diff, std::fabs(got[i] - want[i]));
    EXPECT_LT(max_diff, 1e-5f) << "reft's dequantization differs from llama.cpp's";
    ++checked;
  }
  EXPECT_EQ(checked, std::size(kTypes)) << output;
}

}  // namespace
