// torch.save files: the pyreft golden .bin files against expected.safetensors, writer → reader
// round trips, the container variants (DEFLATE, zip64, big-endian, legacy format) and the
// writer's error cases. Pickle-level behaviour is in torch_archive_pickle_test.cpp, mutations in
// torch_archive_fuzz_test.cpp.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "pickle/pickle_writer.h"
#include "pickle/zip_reader.h"
#include "pickle/zip_writer.h"
#include "pickle_test_util.h"
#include "reft/error.h"
#include "reft/torch_archive.h"
#include "test_util.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::error_of;

std::vector<uint8_t> read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The F32 tensors of a safetensors file: 8-byte little-endian header length, JSON header
// {name: {dtype, shape, data_offsets}}, data.
struct Expected {
  std::vector<int64_t> shape;
  std::vector<float> values;
};
std::map<std::string, Expected> read_safetensors_f32(const fs::path& file) {
  const std::vector<uint8_t> bytes = read_bytes(file);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  const json header =
      json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(header_len));
  std::map<std::string, Expected> out;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__" || info["dtype"] != "F32") continue;
    Expected e;
    e.shape = info["shape"].get<std::vector<int64_t>>();
    const auto begin = info["data_offsets"][0].get<size_t>(),
               end = info["data_offsets"][1].get<size_t>();
    e.values.resize((end - begin) / 4);
    std::memcpy(e.values.data(), bytes.data() + 8 + header_len + begin, end - begin);
    out.emplace(name, std::move(e));
  }
  return out;
}

template <class T>
ArchiveTensor make_tensor(ScalarType dtype, std::vector<int64_t> shape,
                          const std::vector<T>& values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(T));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return ArchiveTensor::from_bytes(dtype, std::move(shape), std::move(bytes));
}

ArchiveTensor iota_tensor(ScalarType dtype, std::vector<int64_t> shape) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  std::vector<uint8_t> bytes(static_cast<size_t>(numel * element_size(dtype)));
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 3);
  if (dtype == ScalarType::kBool)
    for (auto& b : bytes) b &= 1;
  return ArchiveTensor::from_bytes(dtype, std::move(shape), std::move(bytes));
}

void expect_same(const ArchiveTensor& a, const ArchiveTensor& b, const std::string& name) {
  EXPECT_EQ(a.dtype, b.dtype) << name;
  EXPECT_EQ(a.shape, b.shape) << name;
  EXPECT_EQ(a.requires_grad, b.requires_grad) << name;
  EXPECT_EQ(a.contiguous_bytes(), b.contiguous_bytes()) << name;
}

void expect_same(const TensorDict& a, const TensorDict& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    expect_same(a[i].second, b[i].second, a[i].first);
  }
}

TensorDict sample_state_dict() {
  TensorDict d;
  d.emplace_back("weight",
                 make_tensor<float>(ScalarType::kFloat32, {2, 3}, {1, -2, 3.5f, 0, 1e-8f, -0.0f}));
  d.emplace_back("bias", make_tensor<float>(ScalarType::kFloat32, {2}, {0.25f, -7}));
  d.emplace_back("num_batches_tracked", make_tensor<int64_t>(ScalarType::kInt64, {}, {42}));
  d.emplace_back("empty", iota_tensor(ScalarType::kFloat32, {0, 3}));
  return d;
}

// Re-zips the entries of an archive with other zip options (DEFLATE, zip64, no alignment).
std::vector<uint8_t> rezip(const std::vector<uint8_t>& archive, pickle::ZipWriterOptions options) {
  const pickle::ZipReader in(pickle::SharedBytes::own(archive), "in");
  std::ostringstream out;
  pickle::ZipWriter zip(out, "out", options);
  for (const auto& e : in.entries()) zip.add(e.name, in.read(e).span());
  zip.finish();
  const std::string s = std::move(out).str();
  return {s.begin(), s.end()};
}

TEST(TorchArchive, GoldenPyreftFilesMatchExpectedSafetensors) {
  REFT_REQUIRE_SHARED("golden/pyreft");
  int files = 0;
  for (const auto& dir : fs::directory_iterator(shared_path)) {
    if (!dir.is_directory() || !fs::exists(dir.path() / "expected.json")) continue;
    std::ifstream meta_in(dir.path() / "expected.json");
    const json meta = json::parse(meta_in);
    const auto expected = read_safetensors_f32(dir.path() / "expected.safetensors");
    const auto keys = meta["intervention_keys_in_order"].get<std::vector<std::string>>();
    for (size_t i = 0; i < keys.size(); ++i) {
      const fs::path bin = dir.path() / ("intkey_" + keys[i] + ".bin");
      SCOPED_TRACE(bin.string());
      const TensorDict state = read_torch_state_dict(bin);
      const std::string prefix = "intervention" + std::to_string(i) + ".";
      size_t expected_count = 0;
      for (const auto& [name, e] : expected) expected_count += name.rfind(prefix, 0) == 0;
      EXPECT_EQ(state.size(), expected_count) << "tensors in the .bin vs " << prefix << "* entries";
      for (const auto& [name, tensor] : state) {
        auto it = expected.find(prefix + name);
        ASSERT_NE(it, expected.end()) << "no " << prefix << name << " in expected.safetensors";
        EXPECT_EQ(tensor.dtype, ScalarType::kFloat32) << name;
        ASSERT_EQ(tensor.shape, it->second.shape) << name;
        const std::vector<float> got = tensor.to_float32();
        float max_diff = 0;
        size_t first_diff = got.size();
        for (size_t k = 0; k < got.size(); ++k) {
          const float d = std::abs(got[k] - it->second.values[k]);
          if (d > 0 && first_diff == got.size()) first_diff = k;
          max_diff = std::max(max_diff, d);
        }
        EXPECT_EQ(max_diff, 0.0f) << name << ": max |diff| " << max_diff << ", first at "
                                  << first_diff << ": " << got[first_diff] << " vs "
                                  << it->second.values[first_diff];
      }
      ++files;
    }
  }
  EXPECT_GT(files, 0) << "no intkey_*.bin found under " << shared_path;
}

TEST(TorchArchive, WriterReproducesTorchDataPklForGoldenFiles) {
  // torch 1.13 wrote the goldens; our pickle of the same state dict must be byte-identical.
  REFT_REQUIRE_SHARED("golden/pyreft");
  for (const auto& dir : fs::directory_iterator(shared_path)) {
    for (const fs::path& bin : test::files_with_suffix(dir.path(), ".bin")) {
      SCOPED_TRACE(bin.string());
      const pickle::ZipReader original(pickle::SharedBytes::own(read_bytes(bin)), bin.string());
      const auto ours_bytes = serialize_torch_state_dict(read_torch_state_dict(bin));
      const pickle::ZipReader ours(pickle::SharedBytes::own(ours_bytes), "ours");
      const std::string archive =
          original.entries().front().name.substr(0, original.entries().front().name.find('/'));
      auto pkl = [](const pickle::ZipReader& z, const std::string& name) {
        const auto* e = z.find(name);
        EXPECT_NE(e, nullptr) << name;
        if (!e) return std::vector<uint8_t>{};
        const auto b = z.read(*e).span();
        return std::vector<uint8_t>(b.begin(), b.end());
      };
      EXPECT_EQ(pkl(ours, "archive/data.pkl"), pkl(original, archive + "/data.pkl"));
      expect_same(parse_torch_state_dict(ours_bytes, "ours"), read_torch_state_dict(bin));
    }
  }
}

TEST(TorchArchive, RoundTripsEveryDtypeAndShape) {
  const ScalarType types[] = {ScalarType::kFloat32, ScalarType::kFloat16, ScalarType::kBFloat16,
                              ScalarType::kFloat64, ScalarType::kInt64,   ScalarType::kInt32,
                              ScalarType::kInt16,   ScalarType::kInt8,    ScalarType::kUInt8,
                              ScalarType::kBool};
  const std::vector<std::vector<int64_t>> shapes = {{},     {0},       {5},
                                                    {3, 4}, {2, 0, 3}, {2, 3, 1, 2, 2}};
  TensorDict dict;
  for (ScalarType t : types)
    for (const auto& shape : shapes)
      dict.emplace_back(std::string(scalar_type_name(t)) + "." + std::to_string(dict.size()),
                        iota_tensor(t, shape));
  dict.back().second.requires_grad = true;
  dict.emplace_back("ünïcode.名前", iota_tensor(ScalarType::kFloat32, {2}));

  test::TempDir tmp;
  const fs::path file = tmp / "state.bin";
  write_torch_state_dict(file, dict);
  EXPECT_FALSE(fs::exists(tmp / "state.bin.partial"));
  const TensorDict back = read_torch_state_dict(file);
  expect_same(back, dict);
  for (const auto& [name, t] : back) EXPECT_TRUE(t.is_contiguous()) << name;

  // The archive folder is named after the file, as torch names it.
  const pickle::ZipReader zip(pickle::SharedBytes::own(read_bytes(file)), file.string());
  EXPECT_EQ(zip.entries().front().name, "state/data.pkl");
  EXPECT_NE(zip.find("state/byteorder"), nullptr);
  EXPECT_NE(zip.find("state/version"), nullptr);
  for (const auto& e : zip.entries()) {
    EXPECT_EQ(e.data_offset % 64, 0u) << e.name;
    EXPECT_EQ(e.method, 0) << e.name;
  }
}

TEST(TorchArchive, RoundTripsMoreThanOnePicklerBatch) {
  TensorDict dict;  // CPython's pickler splits SETITEMS into batches of 1000
  for (int i = 0; i < 1003; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "t%d", i);
    dict.emplace_back(name, make_tensor<int32_t>(ScalarType::kInt32, {1}, {i}));
  }
  expect_same(parse_torch_state_dict(serialize_torch_state_dict(dict), "batch"), dict);
  dict.resize(1);  // a single item uses SETITEM
  expect_same(parse_torch_state_dict(serialize_torch_state_dict(dict), "one"), dict);
  dict.clear();
  EXPECT_TRUE(parse_torch_state_dict(serialize_torch_state_dict(dict), "none").empty());
}

TEST(TorchArchive, WritesStridedViewsContiguously) {
  // A (3, 2) transposed view of a (2, 3) storage, at offset 1 of a larger storage.
  ArchiveTensor base = make_tensor<float>(ScalarType::kFloat32, {7}, {99, 0, 1, 2, 3, 4, 5});
  ArchiveTensor view = base;
  view.shape = {3, 2};
  view.stride = {1, 3};
  view.storage_offset = 1;
  EXPECT_FALSE(view.is_contiguous());
  EXPECT_EQ(view.to_float32(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  const TensorDict back = parse_torch_state_dict(serialize_torch_state_dict({{"v", view}}), "v");
  EXPECT_EQ(back[0].second.stride, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(back[0].second.to_float32(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
}

TEST(TorchArchive, ConvertsHalfAndBfloat16Exactly) {
  const auto half =
      make_tensor<uint16_t>(ScalarType::kFloat16, {5}, {0x3c00, 0xc000, 0x0001, 0x7bff, 0x8000});
  EXPECT_EQ(half.to_float32(), (std::vector<float>{1.0f, -2.0f, 5.9604645e-8f, 65504.0f, -0.0f}));
  const auto bf16 = make_tensor<uint16_t>(ScalarType::kBFloat16, {2}, {0x3f80, 0xc040});
  EXPECT_EQ(bf16.to_float32(), (std::vector<float>{1.0f, -3.0f}));
}

TEST(TorchArchive, ReadsDeflateZip64AndUnalignedContainers) {
  TensorDict dict = sample_state_dict();
  // 1.2 MB of zeros deflate to about 1 KB: the reader's output buffer has to grow several times.
  dict.emplace_back("zeros", ArchiveTensor::from_bytes(ScalarType::kFloat32, {300000},
                                                       std::vector<uint8_t>(1200000, 0)));
  const auto plain = serialize_torch_state_dict(dict);
  expect_same(parse_torch_state_dict(rezip(plain, {.alignment = 1, .deflate = true}), "deflate"),
              dict);
  expect_same(parse_torch_state_dict(rezip(plain, {.force_zip64 = true}), "zip64"), dict);
  expect_same(parse_torch_state_dict(rezip(plain, {.alignment = 1}), "unaligned"), dict);
}

TEST(TorchArchive, ByteSwapsBigEndianArchives) {
  // The same records with byteorder "big" and every element's bytes reversed.
  const auto plain = serialize_torch_state_dict(sample_state_dict());
  const pickle::ZipReader in(pickle::SharedBytes::own(plain), "in");
  std::ostringstream out;
  pickle::ZipWriter zip(out, "out");
  const std::map<std::string, int> item = {
      {"archive/data/0", 4}, {"archive/data/1", 4}, {"archive/data/2", 8}};
  for (const auto& e : in.entries()) {
    auto b = in.read(e).span();
    std::vector<uint8_t> data(b.begin(), b.end());
    if (e.name == "archive/byteorder") data.assign({'b', 'i', 'g'});
    if (auto it = item.find(e.name); it != item.end())
      for (size_t i = 0; i < data.size(); i += static_cast<size_t>(it->second))
        std::reverse(data.begin() + static_cast<long>(i),
                     data.begin() + static_cast<long>(i) + it->second);
    zip.add(e.name, data);
  }
  zip.finish();
  const std::string s = std::move(out).str();
  expect_same(parse_torch_state_dict({s.begin(), s.end()}, "big"), sample_state_dict());
}

TEST(TorchArchive, ReadsTheLegacyFormat) {
  // _use_new_zipfile_serialization=False: magic, protocol, sys_info, object, keys, storages.
  // Tensor "a" views storage "s" (3 floats) through a legacy storage view (offset 1, 2 elements).
  pickle::PickleWriter w;
  namespace op = pickle::op;
  test::write_legacy_header(w);
  w.proto(2);
  w.global("collections", "OrderedDict");
  w.op(op::kEmptyTuple);
  w.op(op::kReduce);
  for (const char* name : {"a", "b"}) {
    w.unicode(name);
    w.global("torch._utils", "_rebuild_tensor_v2");
    w.op(op::kMark);
    w.op(op::kMark);
    w.unicode("storage");
    w.global("torch", "FloatStorage");
    w.unicode("s");
    w.unicode("cpu");
    w.integer(3);
    if (name[0] == 'a') {
      w.unicode("v");
      w.integer(1);
      w.integer(2);
      w.end_tuple(3);
    } else {
      w.op(op::kNone);
    }
    w.op(op::kTuple);
    w.op(op::kBinPersId);
    w.integer(0);
    w.integer(2);
    w.end_tuple(1);
    w.integer(1);
    w.end_tuple(1);
    w.boolean(false);
    w.global("collections", "OrderedDict");
    w.op(op::kEmptyTuple);
    w.op(op::kReduce);
    w.op(op::kTuple);
    w.op(op::kReduce);
    w.op(op::kSetItem);
  }
  w.op(op::kStop);
  w.proto(2);
  w.op(op::kMark);
  w.unicode("s");
  w.op(op::kList);
  w.op(op::kStop);
  const int64_t numel = 3;
  w.raw({reinterpret_cast<const uint8_t*>(&numel), 8});
  const float values[] = {10, 20, 30};
  w.raw({reinterpret_cast<const uint8_t*>(values), sizeof values});
  const std::vector<uint8_t> legacy = w.take();

  const TensorDict dict = parse_torch_state_dict(legacy, "legacy.pt");
  ASSERT_EQ(dict.size(), 2u);
  EXPECT_EQ(dict[0].second.to_float32(), (std::vector<float>{20, 30}));
  EXPECT_EQ(dict[1].second.to_float32(), (std::vector<float>{10, 20}));

  auto truncated = legacy;
  truncated.resize(truncated.size() - 1);
  EXPECT_NE(error_of([&] {
              parse_torch_state_dict(truncated, "legacy.pt");
            }).find("truncated storage data"),
            std::string::npos);
}

TEST(TorchArchive, ReportsContainerErrorsNamingTheFile) {
  const auto plain = serialize_torch_state_dict(sample_state_dict());
  auto check = [](std::vector<uint8_t> bytes, const std::string& needle) {
    const std::string message =
        error_of([&] { parse_torch_state_dict(std::move(bytes), "x.bin"); });
    EXPECT_NE(message.find("x.bin"), std::string::npos) << message;
    EXPECT_NE(message.find(needle), std::string::npos)
        << "wanted '" << needle << "' in: " << message;
  };
  check({}, "an empty file");
  check({'h', 'e', 'l', 'l', 'o'}, "expected a torch.save file");
  check(std::vector<uint8_t>(plain.begin(), plain.begin() + static_cast<long>(plain.size() / 2)),
        "end-of-central-directory");
  auto corrupt = plain;
  corrupt[200] ^= 0x01;  // inside data.pkl: the CRC catches it
  check(corrupt, "CRC-32");
  EXPECT_NE(
      error_of([] { read_torch_state_dict("/nonexistent/x.bin"); }).find("/nonexistent/x.bin"),
      std::string::npos);
}

TEST(TorchArchive, WriterRejectsBadInput) {
  auto t = make_tensor<float>(ScalarType::kFloat32, {2}, {1, 2});
  EXPECT_NE(error_of([&] {
              serialize_torch_state_dict({{"a", t}, {"a", t}});
            }).find("appears twice"),
            std::string::npos);
  auto bad_view = t;
  bad_view.shape = {3};
  EXPECT_NE(error_of([&] {
              serialize_torch_state_dict({{"a", bad_view}});
            }).find("does not fit"),
            std::string::npos);
  bad_view.stride = {1, 1};
  EXPECT_NE(error_of([&] {
              serialize_torch_state_dict({{"a", bad_view}});
            }).find("one stride per dim"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              serialize_torch_state_dict({{"a", t}}, {.archive_name = "a/b"});
            }).find("archive name"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              ArchiveTensor::from_bytes(ScalarType::kFloat32, {3}, {1, 2, 3});
            }).find("expected 3"),
            std::string::npos);
  test::TempDir tmp;
  EXPECT_NE(error_of([&] {
              write_torch_state_dict(tmp / "missing_dir" / "x.bin", {{"a", t}});
            }).find("cannot create"),
            std::string::npos);
}

}  // namespace
}  // namespace reft
