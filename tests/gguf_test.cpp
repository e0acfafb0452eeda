// The torch-free GGUF layer (reft/gguf.h): writer → parser round trips, every bound the parser
// checks (each failure one line "[file] expected …"), the type table, half floats and the
// dequantization of ggml's block formats against blocks computed by hand.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "reft/error.h"
#include "reft/gguf.h"

namespace fs = std::filesystem;
using reft::GgmlType;
using reft::GgufTensorData;
using reft::GgufType;
using reft::GgufValue;

namespace {

using Metadata = std::vector<std::pair<std::string, GgufValue>>;

GgufValue scalar(GgufType type, uint64_t bits) {
  GgufValue v;
  v.type = type;
  v.bits = bits;
  return v;
}

std::string f32_bytes(const std::vector<float>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * 4};
}

std::string u16_bytes(const std::vector<uint16_t>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * 2};
}

Metadata sample_metadata() {
  return {
      {"general.architecture", GgufValue::string("llama")},
      {"t.u8", scalar(GgufType::kUint8, 200)},
      {"t.i8", scalar(GgufType::kInt8, static_cast<uint64_t>(int64_t{-5}))},
      {"t.u16", scalar(GgufType::kUint16, 60000)},
      {"t.i16", scalar(GgufType::kInt16, static_cast<uint64_t>(int64_t{-300}))},
      {"t.u32", GgufValue::u32(4000000000u)},
      {"t.i32", GgufValue::i32(-70000)},
      {"t.f32", GgufValue::f32(0.25f)},
      {"t.bool", GgufValue::boolean(true)},
      {"t.u64", GgufValue::u64(uint64_t{1} << 40)},
      {"t.i64", scalar(GgufType::kInt64, static_cast<uint64_t>(int64_t{-(int64_t{1} << 40)}))},
      {"t.f64", scalar(GgufType::kFloat64,
                       [] {
                         double d = -1.5;
                         uint64_t b;
                         std::memcpy(&b, &d, 8);
                         return b;
                       }())},
      {"tokenizer.ggml.tokens", GgufValue::string_array({"<s>", "</s>", "a", "",
                                                         "\xe2\x96\x81"
                                                         "b"})},
      {"tokenizer.ggml.token_type", GgufValue::i32_array({3, 3, 1, 1, 1})},
      {"tokenizer.ggml.scores", GgufValue::f32_array({0.0f, 0.0f, -1.0f, -2.0f, -3.5f})},
      {"t.nested",
       GgufValue::array_of_arrays({GgufValue::i32_array({1, 2}), GgufValue::string_array({"x"}),
                                   GgufValue::array_of_arrays({})})},
  };
}

std::vector<GgufTensorData> sample_tensors() {
  std::string q8(68, '\0');
  for (size_t i = 0; i < q8.size(); ++i) q8[i] = static_cast<char>(i * 7);
  return {
      {"a.weight", {4, 2}, GgmlType::F32, f32_bytes({1, 2, 3, 4, 5, 6, 7, 8})},
      {"b.bias", {3}, GgmlType::F16, u16_bytes({0x3c00, 0x4000, 0xbc00})},
      {"c.weight", {32, 2}, GgmlType::Q8_0, q8},
  };
}

std::string sample_file() { return reft::gguf_bytes(sample_metadata(), sample_tensors()); }

// Parses `bytes` and checks the failure: a reft::Error, one line, naming the file, saying what
// was expected and containing `needle`.
void expect_error(const std::string& bytes, const std::string& needle) {
  try {
    reft::parse_gguf_layout(bytes, "t.gguf");
    ADD_FAILURE() << "accepted a file that should fail with '" << needle << "'";
  } catch (const reft::Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind("[t.gguf]", 0), 0u) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_NE(m.find("expected"), std::string::npos) << m;
    EXPECT_NE(m.find(needle), std::string::npos) << "message: " << m << "\nwanted: " << needle;
  }
}

void put_u32(std::string& bytes, size_t at, uint32_t v) { std::memcpy(bytes.data() + at, &v, 4); }
void put_u64(std::string& bytes, size_t at, uint64_t v) { std::memcpy(bytes.data() + at, &v, 8); }

// The position just after the GGUF string `text` (its u64 length and bytes) in `bytes`.
size_t after_string(const std::string& bytes, const std::string& text) {
  std::string pattern(8, '\0');
  put_u64(pattern, 0, text.size());
  pattern += text;
  const size_t at = bytes.find(pattern);
  if (at == std::string::npos) throw std::runtime_error("no string " + text);
  return at + pattern.size();
}

// Where a tensor info's fields are: n_dims at `at`, then dims, type, offset.
struct InfoAt {
  size_t n_dims, dims, type, offset;
};
InfoAt tensor_info_at(const std::string& bytes, const std::string& name) {
  const size_t at = after_string(bytes, name);
  uint32_t n;
  std::memcpy(&n, bytes.data() + at, 4);
  return {at, at + 4, at + 4 + 8 * n, at + 8 + 8 * n};
}

fs::path temp_dir() {
  const fs::path d = fs::temp_directory_path() / ("reft-gguf-test-" + std::to_string(getpid()));
  fs::create_directories(d);
  return d;
}

// ---- round trips ----

TEST(Gguf, RoundTripMetadataAndTensors) {
  const std::string bytes = sample_file();
  const auto f = reft::parse_gguf_layout(bytes, "t.gguf");
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.alignment, 32u);
  EXPECT_EQ(f.data_offset % 32, 0u);
  EXPECT_EQ(f.file_size, bytes.size());
  ASSERT_EQ(f.metadata.size(), sample_metadata().size());
  // In file order.
  EXPECT_EQ(f.metadata[0].first, "general.architecture");
  EXPECT_EQ(f.metadata.back().first, "t.nested");

  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("t.u8"), 200);
  EXPECT_EQ(f.get_int("t.i8"), -5);
  EXPECT_EQ(f.get_int("t.u16"), 60000);
  EXPECT_EQ(f.get_int("t.i16"), -300);
  EXPECT_EQ(f.get_int("t.u32"), 4000000000);
  EXPECT_EQ(f.get_int("t.i32"), -70000);
  EXPECT_EQ(f.get_float("t.f32"), 0.25);
  EXPECT_TRUE(f.get_bool("t.bool", false));
  EXPECT_EQ(f.get_int("t.u64"), int64_t{1} << 40);
  EXPECT_EQ(f.get_int("t.i64"), -(int64_t{1} << 40));
  EXPECT_EQ(f.get_float("t.f64"), -1.5);
  EXPECT_EQ(f.get_int("missing", 7), 7);
  EXPECT_EQ(f.get_string("missing", "x"), "x");

  const auto& tokens = f.get_array("tokenizer.ggml.tokens");
  EXPECT_EQ(tokens.elem_type, GgufType::kString);
  EXPECT_EQ(tokens.strings, (std::vector<std::string>{"<s>", "</s>", "a", "",
                                                      "\xe2\x96\x81"
                                                      "b"}));
  const auto& types = f.get_array("tokenizer.ggml.token_type");
  ASSERT_EQ(types.count, 5u);
  EXPECT_EQ(types.int_at(0), 3);
  EXPECT_EQ(types.int_at(4), 1);
  const auto& scores = f.get_array("tokenizer.ggml.scores");
  EXPECT_EQ(scores.float_at(4), -3.5);
  const auto& nested = f.get_array("t.nested");
  ASSERT_EQ(nested.arrays.size(), 3u);
  EXPECT_EQ(nested.arrays[0].int_at(1), 2);
  EXPECT_EQ(nested.arrays[1].strings, std::vector<std::string>{"x"});
  EXPECT_EQ(nested.arrays[2].count, 0u);

  const auto tensors = sample_tensors();
  ASSERT_EQ(f.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = f.tensors[i];
    EXPECT_EQ(t.name, tensors[i].name);
    EXPECT_EQ(t.dims, tensors[i].dims);
    EXPECT_EQ(t.type, tensors[i].type);
    EXPECT_EQ(t.nbytes, tensors[i].data.size());
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(t.begin, f.data_offset + t.offset);
    EXPECT_EQ(bytes.substr(t.begin, t.nbytes), tensors[i].data) << t.name;
  }
  EXPECT_EQ(f.find_tensor("b.bias")->numel(), 3u);
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
}

TEST(Gguf, RoundTripThroughAFileAndCustomAlignment) {
  auto metadata = sample_metadata();
  metadata.emplace_back("general.alignment", GgufValue::u32(64));
  const fs::path path = temp_dir() / "aligned.gguf";
  reft::write_gguf(path, metadata, sample_tensors());
  const auto f = reft::parse_gguf_layout(path);
  EXPECT_EQ(f.where, path.string());
  EXPECT_EQ(f.alignment, 64u);
  EXPECT_EQ(f.data_offset % 64, 0u);
  for (const auto& t : f.tensors) EXPECT_EQ(t.offset % 64, 0u) << t.name;
  EXPECT_EQ(f.file_size, fs::file_size(path));
  fs::remove_all(path.parent_path());
}

TEST(Gguf, EmptyFileOfNoTensorsParses) {
  const auto f = reft::parse_gguf_layout(reft::gguf_bytes({}, {}), "t.gguf");
  EXPECT_TRUE(f.metadata.empty());
  EXPECT_TRUE(f.tensors.empty());
}

TEST(Gguf, WriterRefusesInconsistentTensors) {
  EXPECT_THROW(reft::gguf_bytes({}, {{"x", {4}, GgmlType::F32, f32_bytes({1, 2, 3})}}),
               reft::Error);
  EXPECT_THROW(reft::gguf_bytes({}, {{"x", {16}, GgmlType::Q8_0, std::string(17, '\0')}}),
               reft::Error);  // 16 is not a whole Q8_0 block
  EXPECT_THROW(reft::gguf_bytes({}, {{"x", {1}, GgmlType::F32, f32_bytes({1})},
                                     {"x", {1}, GgmlType::F32, f32_bytes({1})}}),
               reft::Error);
  EXPECT_THROW(reft::gguf_bytes({{"general.alignment", GgufValue::u32(3)}}, {}), reft::Error);
}

// ---- files that do not parse ----

TEST(Gguf, TruncatedAtEveryCutPoint) {
  const std::string bytes = sample_file();
  // Every prefix shorter than the last tensor's end fails with one line; none crashes.
  const auto f = reft::parse_gguf_layout(bytes, "t.gguf");
  const uint64_t needed = f.tensors.back().begin + f.tensors.back().nbytes;
  for (size_t cut = 0; cut < needed; ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    try {
      reft::parse_gguf_layout(std::string_view(bytes).substr(0, cut), "t.gguf");
      ADD_FAILURE() << "accepted a file cut at " << cut;
    } catch (const reft::Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(m.rfind("[t.gguf] ", 0), 0u) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
      EXPECT_NE(m.find("expected"), std::string::npos) << m;
    }
  }
  // The padding after the last tensor is not needed.
  EXPECT_NO_THROW(reft::parse_gguf_layout(std::string_view(bytes).substr(0, needed), "t.gguf"));
}

TEST(Gguf, MagicAndVersion) {
  std::string bytes = sample_file();
  expect_error("PK\x03\x04 and more", "expected the GGUF magic 'GGUF', found 'PK\\x03\\x04'");
  expect_error("GG", "found a file of 2 bytes");
  put_u32(bytes, 4, 1);
  expect_error(bytes, "found 1 (GGUFv1");
  put_u32(bytes, 4, 0x03000000);
  expect_error(bytes, "big-endian");
  put_u32(bytes, 4, 7);
  expect_error(bytes, "expected GGUF version 2 or 3, found 7");
  put_u32(bytes, 4, 2);  // v2 has the same layout as v3
  EXPECT_NO_THROW(reft::parse_gguf_layout(bytes, "t.gguf"));
}

TEST(Gguf, AbsurdCounts) {
  const std::string good = sample_file();
  std::string bytes = good;
  put_u64(bytes, 8, uint64_t{1} << 62);  // tensor count
  expect_error(bytes, "tensors (the bytes left in the file), found a count of 4611686018427387904");
  bytes = good;
  put_u64(bytes, 16, ~uint64_t{0});  // metadata count
  expect_error(bytes, "metadata entries (the bytes left in the file)");
  bytes = good;
  put_u64(bytes, 16, 1000);  // more entries than there are: runs into the tensor infos
  EXPECT_THROW(reft::parse_gguf_layout(bytes, "t.gguf"), reft::Error);
}

TEST(Gguf, HugeStringAndArrayLengths) {
  const std::string good = sample_file();
  std::string bytes = good;
  put_u64(bytes, 24, uint64_t{1} << 63);  // the first key's length
  expect_error(bytes, "found 9223372036854775808; the file is truncated or corrupt");
  // The value of "general.architecture": type (4 bytes), then the string's length.
  bytes = good;
  put_u64(bytes, after_string(good, "general.architecture") + 4, uint64_t{1} << 50);
  expect_error(bytes, "metadata key 'general.architecture' at offset");
  // The length of the token array: type, element type, count.
  bytes = good;
  put_u64(bytes, after_string(good, "tokenizer.ggml.tokens") + 8, uint64_t{1} << 60);
  expect_error(bytes,
               "string elements (the bytes left in the file), found length 1152921504606846976");
  bytes = good;
  put_u64(bytes, after_string(good, "tokenizer.ggml.scores") + 8, ~uint64_t{0} / 2);
  expect_error(bytes, "float32 elements (the bytes left in the file)");
  // One token string of absurd length inside the array.
  bytes = good;
  put_u64(bytes, after_string(good, "tokenizer.ggml.tokens") + 16, uint64_t{1} << 40);
  expect_error(bytes, "metadata key 'tokenizer.ggml.tokens'[0] at offset");
}

TEST(Gguf, BadValues) {
  const std::string good = sample_file();
  std::string bytes = good;
  put_u32(bytes, after_string(good, "t.u32"), 13);  // value type
  expect_error(bytes, "metadata key 't.u32': expected a GGUF value type (0..12), found 13");
  bytes = good;
  bytes[after_string(good, "t.bool") + 4] = 2;
  expect_error(bytes, "expected a bool 0 or 1, found 2");
  // A duplicate key: rename t.i8 to t.u8.
  bytes = good;
  bytes[after_string(good, "t.i8") - 2] = 'u';
  expect_error(bytes, "expected unique metadata keys, found 't.u8' twice");
  // A wrong type through a getter.
  const auto f = reft::parse_gguf_layout(good, "t.gguf");
  try {
    f.get_string("t.u32");
    ADD_FAILURE();
  } catch (const reft::Error& e) {
    EXPECT_STREQ(e.what(), "[t.gguf] expected metadata key 't.u32' of type string, found uint32");
  }
  try {
    f.get_array("nope");
    ADD_FAILURE();
  } catch (const reft::Error& e) {
    EXPECT_STREQ(e.what(),
                 "[t.gguf] expected metadata key 'nope' of type array, found no such key");
  }
  EXPECT_THROW(f.get_int("general.architecture"), reft::Error);
  EXPECT_THROW(f.get_bool("t.u8", false), reft::Error);
}

TEST(Gguf, ArraysNestedTooDeep) {
  GgufValue v = GgufValue::i32_array({1});
  for (int i = 0; i < reft::kGgufMaxArrayDepth; ++i) v = GgufValue::array_of_arrays({v});
  expect_error(reft::gguf_bytes({{"deep", v}}, {}), "expected arrays nested at most 8 deep");
  GgufValue ok = GgufValue::i32_array({1});
  for (int i = 0; i + 1 < reft::kGgufMaxArrayDepth; ++i) ok = GgufValue::array_of_arrays({ok});
  EXPECT_NO_THROW(reft::parse_gguf_layout(reft::gguf_bytes({{"deep", ok}}, {}), "t.gguf"));
}

TEST(Gguf, ArraysOfArraysAreCapped) {
  // One array of 2^20 + 1 empty arrays (12 bytes each in the file) is refused before the
  // ~150 MB it would take parsed; 2^20 of them are read.
  auto file_of = [](uint32_t n) {
    std::string bytes = reft::gguf_bytes({{"many", GgufValue::array_of_arrays({})}}, {});
    put_u64(bytes, after_string(bytes, "many") + 8, n);  // the outer count
    bytes.resize(after_string(bytes, "many") + 16);
    for (uint32_t i = 0; i < n; ++i) bytes += std::string("\x05\0\0\0\0\0\0\0\0\0\0\0", 12);
    return bytes;
  };
  expect_error(file_of((1u << 20) + 1),
               "metadata key 'many': expected at most 1048576 arrays inside arrays");
  EXPECT_EQ(reft::parse_gguf_layout(file_of(1u << 20), "t.gguf").get_array("many").arrays.size(),
            1u << 20);
}

TEST(Gguf, BadAlignment) {
  auto metadata = sample_metadata();
  metadata.emplace_back("general.alignment", GgufValue::u32(64));
  const std::string good = reft::gguf_bytes(metadata, sample_tensors());
  const size_t value = after_string(good, "general.alignment") + 4;
  std::string bytes = good;
  put_u32(bytes, value, 0);
  expect_error(bytes, "expected 'general.alignment' to be a power of two, found 0");
  put_u32(bytes, value, 48);
  expect_error(bytes, "expected 'general.alignment' to be a power of two, found 48");
  bytes = good;
  put_u32(bytes, value - 4, static_cast<uint32_t>(GgufType::kInt32));
  expect_error(bytes, "expected metadata key 'general.alignment' of type uint32, found int32");
  // A smaller power of two moves the data section (the offsets are relative to it).
  bytes = good;
  put_u32(bytes, value, 16);
  const auto f = reft::parse_gguf_layout(bytes, "t.gguf");
  EXPECT_EQ(f.alignment, 16u);
  EXPECT_EQ(f.data_offset % 16, 0u);
}

TEST(Gguf, BadTensorInfos) {
  const std::string good = sample_file();
  const InfoAt a = tensor_info_at(good, "a.weight");
  const InfoAt b = tensor_info_at(good, "b.bias");
  const InfoAt c = tensor_info_at(good, "c.weight");
  std::string bytes;

  bytes = good;
  put_u32(bytes, a.type, 99);
  expect_error(bytes, "tensor 'a.weight': expected a ggml type reft reads");
  expect_error(bytes, "found type 99");
  bytes = good;
  put_u32(bytes, a.type, 21);
  expect_error(bytes, "found type 21 (IQ3_S)");

  bytes = good;
  put_u32(bytes, a.n_dims, 5);
  expect_error(bytes, "tensor 'a.weight': expected 1 to 4 dimensions, found 5");
  bytes = good;
  put_u32(bytes, a.n_dims, 0);
  expect_error(bytes, "expected 1 to 4 dimensions, found 0");
  bytes = good;
  put_u32(bytes, a.n_dims, 0xffffffffu);
  expect_error(bytes, "found 4294967295");

  bytes = good;
  put_u64(bytes, a.dims, uint64_t{1} << 40);
  put_u64(bytes, a.dims + 8, uint64_t{1} << 40);
  expect_error(bytes,
               "expected dimensions whose product fits in 63 bits, found [1099511627776, "
               "1099511627776]");
  bytes = good;
  put_u64(bytes, a.dims, ~uint64_t{0});
  expect_error(bytes, "fits in 63 bits");
  bytes = good;
  put_u64(bytes, a.dims, uint64_t{1} << 40);  // fits, but not in the file
  expect_error(bytes, "tensor 'a.weight': expected its 8796093022208 bytes");

  bytes = good;
  put_u64(bytes, c.dims, 16);  // half a Q8_0 block
  expect_error(bytes,
               "expected the first dimension to be a multiple of 32 (the block size of "
               "Q8_0), found [16, 2]");

  bytes = good;
  put_u64(bytes, b.offset, 40);
  expect_error(bytes,
               "tensor 'b.bias': expected a data offset that is a multiple of the "
               "alignment 32, found 40");
  bytes = good;
  put_u64(bytes, c.offset, uint64_t{1} << 40);
  expect_error(bytes,
               "tensor 'c.weight': expected its 68 bytes ([32, 2] Q8_0) at data offset "
               "1099511627776 inside the");
  bytes = good;
  put_u64(bytes, c.offset, ~uint64_t{0} - 31);  // aligned, and offset + size overflows
  expect_error(bytes, "past its end");
  bytes = good;
  put_u64(bytes, b.offset, 0);  // on top of a.weight
  expect_error(bytes,
               "expected tensors not to overlap, found 'b.bias' [0, 6) and 'a.weight' "
               "[0, 32)");

  // A duplicate name (same length): rename c.weight to a.weight.
  bytes = good;
  bytes[c.n_dims - 8] = 'a';
  expect_error(bytes, "expected unique tensor names, found 'a.weight' twice");

  // A name longer than ggml's limit.
  std::string long_name(64, 'n');
  expect_error(std::string(reft::gguf_bytes({}, {{"x", {1}, GgmlType::F32, f32_bytes({1})}}))
                   .replace(24, 9, std::string("\x40\0\0\0\0\0\0\0", 8) + long_name),
               "expected a name of at most 63 bytes, found 64");
}

TEST(Gguf, RefusesNonRegularFiles) {
  for (const char* path : {"/dev/zero", "/"}) {
    try {
      reft::parse_gguf_layout(fs::path(path));
      ADD_FAILURE() << path;
    } catch (const reft::Error& e) {
      EXPECT_NE(std::string(e.what()).find("expected a regular file"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_THROW(reft::parse_gguf_layout(fs::path("/nonexistent/x.gguf")), reft::Error);
}

// ---- types ----

TEST(Gguf, TypeTable) {
  const std::pair<GgmlType, std::pair<int, int>> kExpected[] = {
      {GgmlType::F32, {1, 4}},        {GgmlType::F16, {1, 2}},      {GgmlType::BF16, {1, 2}},
      {GgmlType::Q4_0, {32, 18}},     {GgmlType::Q4_1, {32, 20}},   {GgmlType::Q5_0, {32, 22}},
      {GgmlType::Q5_1, {32, 24}},     {GgmlType::Q8_0, {32, 34}},   {GgmlType::Q2_K, {256, 84}},
      {GgmlType::Q3_K, {256, 110}},   {GgmlType::Q4_K, {256, 144}}, {GgmlType::Q5_K, {256, 176}},
      {GgmlType::Q6_K, {256, 210}},   {GgmlType::Q8_K, {256, 292}}, {GgmlType::IQ4_NL, {32, 18}},
      {GgmlType::IQ4_XS, {256, 136}},
  };
  for (const auto& [type, geometry] : kExpected) {
    const auto* info = reft::ggml_type_info(static_cast<uint32_t>(type));
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(static_cast<int>(info->block_size), geometry.first) << info->name;
    EXPECT_EQ(static_cast<int>(info->type_size), geometry.second) << info->name;
    EXPECT_EQ(reft::ggml_type_from_name(info->name), type);
  }
  EXPECT_EQ(reft::ggml_type_from_name("q4_k"), GgmlType::Q4_K);
  EXPECT_THROW(reft::ggml_type_from_name("q4_2"), reft::Error);
  EXPECT_EQ(reft::ggml_type_info(4), nullptr);
  EXPECT_EQ(reft::ggml_type_info(1000), nullptr);
  EXPECT_EQ(reft::ggml_type_name(12), "Q4_K");
  EXPECT_EQ(reft::ggml_type_name(20), "IQ4_NL");
  EXPECT_EQ(reft::ggml_type_name(77), "type 77");
}

TEST(Gguf, HalfFloats) {
  EXPECT_EQ(reft::fp16_to_float(0x3c00), 1.0f);
  EXPECT_EQ(reft::fp16_to_float(0xc000), -2.0f);
  EXPECT_EQ(reft::fp16_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(reft::fp16_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(reft::fp16_to_float(0x3555), 0.333251953125f);
  EXPECT_TRUE(std::isinf(reft::fp16_to_float(0xfc00)));
  EXPECT_TRUE(std::isnan(reft::fp16_to_float(0x7e00)));
  EXPECT_EQ(reft::bf16_to_float(0x3f80), 1.0f);
  EXPECT_EQ(reft::bf16_to_float(0xc0a0), -5.0f);
  // Every half survives half → float → half.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = reft::fp16_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(reft::float_to_fp16(f), h) << std::hex << h;
  }
  // Rounding: to nearest, ties to even; overflow to infinity.
  EXPECT_EQ(reft::float_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie → even
  EXPECT_EQ(reft::float_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie → even
  EXPECT_EQ(reft::float_to_fp16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
  EXPECT_EQ(reft::float_to_fp16(65520.0f), 0x7c00);
  EXPECT_EQ(reft::float_to_fp16(65519.0f), 0x7bff);
  EXPECT_EQ(reft::float_to_fp16(-1e-10f), 0x8000);
  EXPECT_EQ(reft::float_to_fp16(std::ldexp(1.0f, -25) * 3), 0x0002);  // 1.5 ulp → 2 (even)
}

// ---- dequantization against hand-computed blocks ----

void put_half(uint8_t* p, uint16_t h) { std::memcpy(p, &h, 2); }

TEST(GgufDequantize, FloatTypes) {
  const std::vector<float> f32 = {1.5f, -2.0f};
  std::vector<float> out(2);
  reft::dequantize_row(GgmlType::F32, f32.data(), out.data(), 2);
  EXPECT_EQ(out, f32);
  const std::vector<uint16_t> f16 = {0x3800, 0xc400};  // 0.5, -4
  reft::dequantize_row(GgmlType::F16, f16.data(), out.data(), 2);
  EXPECT_EQ(out, (std::vector<float>{0.5f, -4.0f}));
  const std::vector<uint16_t> bf16 = {0x4040, 0xbe00};  // 3, -0.125
  reft::dequantize_row(GgmlType::BF16, bf16.data(), out.data(), 2);
  EXPECT_EQ(out, (std::vector<float>{3.0f, -0.125f}));
}

TEST(GgufDequantize, Q8_0) {
  // Two blocks: d = 0.5 with qs = -16..15, then d = -2 with qs = 127, -128, 0, …
  uint8_t b[68] = {};
  put_half(b, 0x3800);
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
  put_half(b + 34, 0xc000);
  b[36] = 127;
  b[37] = 0x80;
  std::vector<float> y(64);
  reft::dequantize_row(GgmlType::Q8_0, b, y.data(), 64);
  EXPECT_EQ(y[0], -8.0f);
  EXPECT_EQ(y[1], -7.5f);
  EXPECT_EQ(y[16], 0.0f);
  EXPECT_EQ(y[31], 7.5f);
  EXPECT_EQ(y[32], -254.0f);
  EXPECT_EQ(y[33], 256.0f);
  EXPECT_EQ(y[34], 0.0f);  // -0 × 0
}

TEST(GgufDequantize, Q4_0) {
  // d = 0.25; byte j = low nibble j, high nibble 15 − j: element j = (j − 8)·d, element j + 16 =
  // (7 − j)·d.
  uint8_t b[18];
  put_half(b, 0x3400);
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  std::vector<float> y(32);
  reft::dequantize_row(GgmlType::Q4_0, b, y.data(), 32);
  const float expected[32] = {-2,    -1.75, -1.5,  -1.25, -1,    -0.75, -0.5,  -0.25,
                              0,     0.25,  0.5,   0.75,  1,     1.25,  1.5,   1.75,
                              1.75,  1.5,   1.25,  1,     0.75,  0.5,   0.25,  0,
                              -0.25, -0.5,  -0.75, -1,    -1.25, -1.5,  -1.75, -2};
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], expected[i]) << i;
}

TEST(GgufDequantize, Q4_1) {
  // d = 2, m = −1: byte 0 = 0x5a → element 0 = 10·2 − 1 = 19, element 16 = 5·2 − 1 = 9.
  uint8_t b[20] = {};
  put_half(b, 0x4000);
  put_half(b + 2, 0xbc00);
  b[4] = 0x5a;
  std::vector<float> y(32);
  reft::dequantize_row(GgmlType::Q4_1, b, y.data(), 32);
  EXPECT_EQ(y[0], 19.0f);
  EXPECT_EQ(y[16], 9.0f);
  EXPECT_EQ(y[1], -1.0f);
}

TEST(GgufDequantize, Q5_0AndQ5_1) {
  // qh bit 0 sets the 5th bit of element 0, bit 16 that of element 16, bit 31 that of element 31.
  uint8_t b[22] = {};
  put_half(b, 0x3c00);  // d = 1
  const uint32_t qh = 1u | (1u << 16) | (1u << 31);
  std::memcpy(b + 2, &qh, 4);
  b[6] = 0x3f;   // element 0: low 15 | 16 = 31 → 15; element 16: 3 | 16 = 19 → 3
  b[21] = 0x70;  // element 15: 0 → −16; element 31: 7 | 16 = 23 → 7
  std::vector<float> y(32);
  reft::dequantize_row(GgmlType::Q5_0, b, y.data(), 32);
  EXPECT_EQ(y[0], 15.0f);
  EXPECT_EQ(y[16], 3.0f);
  EXPECT_EQ(y[15], -16.0f);
  EXPECT_EQ(y[31], 7.0f);
  EXPECT_EQ(y[1], -16.0f);

  uint8_t c[24] = {};
  put_half(c, 0x3800);      // d = 0.5
  put_half(c + 2, 0x4200);  // m = 3
  std::memcpy(c + 4, &qh, 4);
  c[8] = 0x3f;
  std::vector<float> z(32);
  reft::dequantize_row(GgmlType::Q5_1, c, z.data(), 32);
  EXPECT_EQ(z[0], 31 * 0.5f + 3);
  EXPECT_EQ(z[16], 19 * 0.5f + 3);
  EXPECT_EQ(z[1], 3.0f);
  EXPECT_EQ(z[31], 16 * 0.5f + 3);  // only its 5th bit is set
}

// Packs eight 6-bit scales and mins the way Q4_K/Q5_K store them (12 bytes).
void pack_k4_scales(const int scale[8], const int min[8], uint8_t out[12]) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>((scale[j] & 63) | ((scale[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>((min[j] & 63) | ((min[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((scale[j + 4] & 15) | ((min[j + 4] & 15) << 4));
  }
}

const int kScales[8] = {1, 2, 63, 4, 17, 33, 50, 63};
const int kMins[8] = {0, 5, 1, 62, 48, 16, 3, 63};

TEST(GgufDequantize, Q4_K) {
  uint8_t b[144] = {};
  put_half(b, 0x3c00);      // d = 1
  put_half(b + 2, 0x3800);  // dmin = 0.5
  pack_k4_scales(kScales, kMins, b + 4);
  // Element e sits in chunk e / 64, byte (e % 32), low nibble when e % 64 < 32.
  auto q_of = [](int e) { return (e * 7 + 3) % 16; };
  for (int e = 0; e < 256; ++e) {
    uint8_t& byte = b[16 + 32 * (e / 64) + e % 32];
    byte |= static_cast<uint8_t>(e % 64 < 32 ? q_of(e) : q_of(e) << 4);
  }
  std::vector<float> y(256);
  reft::dequantize_row(GgmlType::Q4_K, b, y.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const int sub = e / 32;
    EXPECT_EQ(y[e], 1.0f * kScales[sub] * q_of(e) - 0.5f * kMins[sub]) << e;
  }
  // Two values by hand: element 0 (sub-block 0: scale 1, min 0, q 3) = 3; element 200
  // (sub-block 6: scale 50, min 3, q = 1403 % 16 = 11) = 550 − 1.5.
  EXPECT_EQ(y[0], 3.0f);
  EXPECT_EQ(y[200], 548.5f);
}

TEST(GgufDequantize, Q5_K) {
  uint8_t b[176] = {};
  put_half(b, 0x3800);      // d = 0.5
  put_half(b + 2, 0x3c00);  // dmin = 1
  pack_k4_scales(kScales, kMins, b + 4);
  auto q_of = [](int e) { return (e * 11 + 5) % 32; };
  for (int e = 0; e < 256; ++e) {
    const int sub = e / 32, l = e % 32;
    b[48 + 32 * (e / 64) + l] |=
        static_cast<uint8_t>(sub % 2 == 0 ? q_of(e) & 15 : (q_of(e) & 15) << 4);
    b[16 + l] |= static_cast<uint8_t>((q_of(e) >> 4) << sub);  // 5th bit: bit `sub` of qh[l]
  }
  std::vector<float> y(256);
  reft::dequantize_row(GgmlType::Q5_K, b, y.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const int sub = e / 32;
    EXPECT_EQ(y[e], 0.5f * kScales[sub] * q_of(e) - 1.0f * kMins[sub]) << e;
  }
  EXPECT_EQ(y[255], 0.5f * 63 * ((255 * 11 + 5) % 32) - 63);
}

TEST(GgufDequantize, Q6_K) {
  uint8_t b[210] = {};
  const int8_t scales[16] = {1, -1, 2, -2, 3, -3, 127, -128, 5, 6, 7, 8, -9, -10, 11, 12};
  std::memcpy(b + 192, scales, 16);
  put_half(b + 208, 0x3400);                            // d = 0.25
  auto q_of = [](int e) { return (e * 13 + 1) % 64; };  // stored 0..63, value q − 32
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, r = (e % 128) / 32, l = e % 32;
    uint8_t& low = b[64 * h + l + 32 * (r & 1)];
    low |= static_cast<uint8_t>(r < 2 ? q_of(e) & 15 : (q_of(e) & 15) << 4);
    b[128 + 32 * h + l] |= static_cast<uint8_t>((q_of(e) >> 4) << (2 * r));
  }
  std::vector<float> y(256);
  reft::dequantize_row(GgmlType::Q6_K, b, y.data(), 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 0.25f * scales[e / 16] * (q_of(e) - 32)) << e;
  // By hand: element 100 (scale 127, q = 1301 % 64 = 21 → −11) = 0.25 · 127 · −11.
  EXPECT_EQ(y[100], -349.25f);
}

TEST(GgufDequantize, Q2_KAndQ8_K) {
  uint8_t b[84] = {};
  for (int s = 0; s < 16; ++s) b[s] = static_cast<uint8_t>((s % 16) | ((15 - s) << 4));
  auto q_of = [](int e) { return (e * 5 + 2) % 4; };
  // Element e: half e / 128; within it, pass (e % 128) / 32 takes bits 2·pass; byte
  // 32·half + e % 32; scale byte e / 16.
  for (int e = 0; e < 256; ++e)
    b[16 + 32 * (e / 128) + e % 32] |= static_cast<uint8_t>(q_of(e) << (2 * ((e % 128) / 32)));
  put_half(b + 80, 0x4000);  // d = 2
  put_half(b + 82, 0x3800);  // dmin = 0.5
  std::vector<float> y(256);
  reft::dequantize_row(GgmlType::Q2_K, b, y.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 16;
    EXPECT_EQ(y[e], 2.0f * (s % 16) * q_of(e) - 0.5f * (15 - s)) << e;
  }

  uint8_t k[292] = {};
  const float d = -0.5f;
  std::memcpy(k, &d, 4);
  k[4] = 100;
  k[259] = 0x81;  // −127
  std::vector<float> z(256);
  reft::dequantize_row(GgmlType::Q8_K, k, z.data(), 256);
  EXPECT_EQ(z[0], -50.0f);
  EXPECT_EQ(z[255], 63.5f);
  EXPECT_EQ(z[1], -0.0f);
}

TEST(GgufDequantize, Q3_K) {
  uint8_t b[110] = {};
  // Sixteen 6-bit scales (stored + 32): low nibbles in bytes 0..7 (k < 8 low, k ≥ 8 high),
  // high 2 bits in bytes 8..11 at bits 2·(k / 4).
  const int scale[16] = {-32, -1, 0, 1, 31, 5, -7, 9, 12, -20, 3, 30, -31, 2, 17, -4};
  for (int k = 0; k < 16; ++k) {
    const int stored = scale[k] + 32;
    b[96 + k % 8] |= static_cast<uint8_t>(k < 8 ? stored & 15 : (stored & 15) << 4);
    b[96 + 8 + k % 4] |= static_cast<uint8_t>((stored >> 4) << (2 * (k / 4)));
  }
  put_half(b + 108, 0x3800);  // d = 0.5
  auto q_of = [](int e) { return (e * 3 + 1) % 4; };
  auto high_bit = [](int e) { return (e / 7) % 2; };
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, p = (e % 128) / 32, l = e % 32;
    b[32 + 32 * h + l] |= static_cast<uint8_t>(q_of(e) << (2 * p));
    b[l] |= static_cast<uint8_t>(high_bit(e) << (4 * h + p));
  }
  std::vector<float> y(256);
  reft::dequantize_row(GgmlType::Q3_K, b, y.data(), 256);
  for (int e = 0; e < 256; ++e)
    EXPECT_EQ(y[e], 0.5f * scale[e / 16] * (q_of(e) - (high_bit(e) ? 0 : 4))) << e;
  // By hand: element 0 (scale −32, q 1, no high bit → 1 − 4 = −3) = 0.5 · −32 · −3 = 48.
  EXPECT_EQ(y[0], 48.0f);
}

TEST(GgufDequantize, IQ4) {
  // IQ4_NL: d = 2, byte 0 = 0xf0 → element 0 = level 0 (−127), element 16 = level 15 (113).
  uint8_t nl[18] = {};
  put_half(nl, 0x4000);
  nl[2] = 0xf0;
  nl[17] = 0x78;  // element 15 = level 8 (1), element 31 = level 7 (−10)
  std::vector<float> y(256);
  reft::dequantize_row(GgmlType::IQ4_NL, nl, y.data(), 32);
  EXPECT_EQ(y[0], -254.0f);
  EXPECT_EQ(y[16], 226.0f);
  EXPECT_EQ(y[15], 2.0f);
  EXPECT_EQ(y[31], -20.0f);
  EXPECT_EQ(y[1], -254.0f);

  // IQ4_XS: d = 0.5; sub-block k scale = low nibble k % 2 of scales_l[k / 2] | bits 2k of
  // scales_h << 4, minus 32.
  uint8_t xs[136] = {};
  put_half(xs, 0x3800);
  const int scale[8] = {-32, 31, 0, 1, -1, 7, 16, -20};
  uint16_t scales_h = 0;
  for (int k = 0; k < 8; ++k) {
    const int stored = scale[k] + 32;
    xs[4 + k / 2] |= static_cast<uint8_t>((stored & 15) << (4 * (k % 2)));
    scales_h |= static_cast<uint16_t>((stored >> 4) << (2 * k));
  }
  std::memcpy(xs + 2, &scales_h, 2);
  for (int i = 0; i < 128; ++i) xs[8 + i] = static_cast<uint8_t>(i * 37);
  reft::dequantize_row(GgmlType::IQ4_XS, xs, y.data(), 256);
  const int levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
  for (int e = 0; e < 256; ++e) {
    const int k = e / 32, j = e % 32;
    const uint8_t byte = xs[8 + 16 * k + j % 16];
    EXPECT_EQ(y[e], 0.5f * scale[k] * levels[j < 16 ? byte & 15 : byte >> 4]) << e;
  }
}

TEST(GgufDequantize, RefusesWhatItCannotRead) {
  std::vector<uint8_t> b(110 * 2);
  std::vector<float> y(512);
  try {
    reft::dequantize_row(GgmlType::Q8_1, b.data(), y.data(), 32);
    ADD_FAILURE();
  } catch (const reft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("found Q8_1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(reft::dequantize_row(static_cast<GgmlType>(21), b.data(), y.data(), 256),
               reft::Error);
  EXPECT_THROW(reft::dequantize_row(GgmlType::Q8_0, b.data(), y.data(), 33), reft::Error);
  EXPECT_THROW(reft::dequantize_row(GgmlType::Q4_K, b.data(), y.data(), 128), reft::Error);
}

}  // namespace
