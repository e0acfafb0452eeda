// safetensors: round trips, zero-copy, sharded checkpoints and every kind of corrupt file.

#include "reft/safetensors.h"

#include <torch/torch.h>

#include <fstream>

#include "reft/checkpoint.h"
#include "reft/error.h"
#include "test_util.h"

namespace reft {
namespace {

using test::TempDir;

void write_raw(const std::filesystem::path& path, const std::string& header,
               const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << data;
}

// Expects open() to throw a reft::Error whose message names the file and contains `needle`.
void expect_rejected(const std::filesystem::path& path, const std::string& needle) {
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << "expected an error for " << path;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "expected '" << needle << "' in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
}

TEST(Safetensors, RoundTripAllDtypes) {
  TempDir tmp;
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"f32", torch::randn({3, 4})},
      {"f16", torch::randn({5}).to(torch::kFloat16)},
      {"bf16", torch::randn({2, 2, 2}).to(torch::kBFloat16)},
      {"i64", torch::arange(7, torch::kInt64)},
      {"i32", torch::arange(3, torch::kInt32)},
      {"u8", torch::arange(9, torch::kUInt8)},
      {"bool", torch::tensor({true, false})},
      {"scalar", torch::tensor(3.5)},
      {"empty", torch::empty({0, 3})},
  };
  save_safetensors(tmp / "a.safetensors", tensors, {{"format", "pt"}});
  auto file = SafetensorsFile::open(tmp / "a.safetensors");
  EXPECT_EQ(file->metadata().at("format"), "pt");
  for (const auto& [name, t] : tensors) {
    auto back = file->tensor(name);
    EXPECT_EQ(back.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(back.equal(t)) << name;
  }
}

TEST(Safetensors, TensorsShareTheMapping) {
  TempDir tmp;
  save_safetensors(tmp / "a.safetensors", {{"x", torch::arange(1024, torch::kFloat32)}});
  torch::Tensor x;
  {
    auto file = SafetensorsFile::open(tmp / "a.safetensors");
    x = file->tensor("x");
    auto y = file->tensor("x");
    EXPECT_EQ(x.data_ptr(), y.data_ptr());  // zero-copy views of one mapping
  }
  // The tensor keeps the mapping alive after the file object is gone.
  EXPECT_FLOAT_EQ(x[1000].item<float>(), 1000.0f);
}

TEST(Safetensors, UnalignedDataIsCopied) {
  TempDir tmp;
  // Header padded so that the F32 tensor starts at an odd address.
  const std::string header =
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  float v[2] = {1.5f, -2.0f};
  std::string data(1, '\x07');
  data.append(reinterpret_cast<const char*>(v), 8);
  write_raw(tmp / "u.safetensors", header, data);
  auto file = SafetensorsFile::open(tmp / "u.safetensors");
  auto b = file->tensor("b");
  EXPECT_FLOAT_EQ(b[0].item<float>(), 1.5f);
  EXPECT_FLOAT_EQ(b[1].item<float>(), -2.0f);
}

TEST(Safetensors, CorruptFiles) {
  TempDir tmp;
  const auto p = [&](const std::string& n) { return tmp / (n + ".safetensors"); };
  {
    std::ofstream(p("short")) << "abc";
    expect_rejected(p("short"), "truncated");
  }
  {
    std::ofstream out(p("lies"), std::ios::binary);
    const uint64_t n = 1000000;
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << "{}";
    out.close();
    expect_rejected(p("lies"), "header length");
  }
  write_raw(p("badjson"), "{\"a\": [1, 2", "");
  expect_rejected(p("badjson"), "invalid JSON");
  write_raw(p("notobj"), "[1, 2]", "");
  expect_rejected(p("notobj"), "start with '{'");
  write_raw(p("dtype"), R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})",
            std::string(4, 0));
  expect_rejected(p("dtype"), "F33");
  write_raw(p("range"), R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
            std::string(8, 0));
  expect_rejected(p("range"), "data_offsets inside");
  write_raw(p("nbytes"), R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
            std::string(8, 0));
  expect_rejected(p("nbytes"), "expected 12 bytes");
  write_raw(
      p("overlap"),
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      std::string(12, 0));
  expect_rejected(p("overlap"), "overlap");
  write_raw(p("reversed"), R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})",
            std::string(8, 0));
  expect_rejected(p("reversed"), "begin <= end");
  write_raw(p("negshape"), R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})",
            std::string(4, 0));
  expect_rejected(p("negshape"), "non-negative");
  write_raw(p("overflow"),
            R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}})",
            std::string(4, 0));
  expect_rejected(p("overflow"), "overflow");
  write_raw(p("meta"), R"({"__metadata__":{"a":1}})", "");
  expect_rejected(p("meta"), "__metadata__");
  write_raw(p("extra"), R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})",
            std::string(4, 0));
  expect_rejected(p("extra"), "unknown key");
  expect_rejected(p("missing"), "no such file");
}

TEST(Safetensors, RandomCorruptionNeverCrashes) {
  TempDir tmp;
  save_safetensors(tmp / "ok.safetensors",
                   {{"a", torch::randn({4, 4})}, {"b", torch::arange(5, torch::kInt64)}});
  const std::string good = [&] {
    std::ifstream in(tmp / "ok.safetensors", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  std::mt19937 rng(7);
  int rejected = 0;
  for (int i = 0; i < 400; ++i) {
    std::string bad = good;
    const int kind = i % 3;
    if (kind == 0) bad.resize(rng() % bad.size());
    if (kind == 1)
      for (int k = 0; k < 3; ++k) bad[8 + rng() % 120] = static_cast<char>(rng());
    if (kind == 2) bad[rng() % 8] = static_cast<char>(rng());
    const auto path = tmp / "bad.safetensors";
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
    try {
      auto f = SafetensorsFile::open(path);
      for (const auto& e : f->entries()) (void)f->tensor(e.name).sum();
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 100);
}

TEST(Checkpoint, ShardedIndex) {
  TempDir tmp;
  save_safetensors(tmp / "model-00001-of-00002.safetensors", {{"a", torch::ones({2})}});
  save_safetensors(tmp / "model-00002-of-00002.safetensors", {{"b", torch::zeros({3})}});
  std::ofstream(tmp / "model.safetensors.index.json")
      << R"({"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}})";
  auto ckpt = Checkpoint::open(tmp.path());
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(ckpt.get("b").equal(torch::zeros({3})));

  std::ofstream(tmp / "model.safetensors.index.json", std::ios::trunc)
      << R"({"weight_map":{"a":"model-00002-of-00002.safetensors"}})";
  EXPECT_THROW(Checkpoint::open(tmp.path()), Error);
  std::ofstream(tmp / "model.safetensors.index.json", std::ios::trunc)
      << R"({"weight_map":{"a":"../x"}})";
  EXPECT_THROW(Checkpoint::open(tmp.path()), Error);
}

}  // namespace
}  // namespace reft
