// The pickle subset of torch.save files, through hand-made data.pkl records: what the VM accepts
// (protocol 2–5 opcodes, the allow-listed globals) and that every malformed or unsupported
// pickle is a reft::Error that names the file and the problem.

#include <cstring>
#include <functional>
#include <map>
#include <sstream>

#include "pickle/pickle_writer.h"
#include "pickle/zip_writer.h"
#include "reft/error.h"
#include "reft/torch_archive.h"
#include "test_util.h"

namespace reft {
namespace {

using pickle::PickleWriter;
namespace op = pickle::op;
using Storages = std::map<std::string, std::vector<uint8_t>>;

std::vector<uint8_t> zip_archive(const std::vector<uint8_t>& pkl, const Storages& storages = {},
                                 const std::string& version = "3\n") {
  std::ostringstream out;
  pickle::ZipWriter zip(out, "test");
  zip.add("archive/data.pkl", pkl);
  for (const auto& [key, bytes] : storages) zip.add("archive/data/" + key, bytes);
  zip.add("archive/version", {reinterpret_cast<const uint8_t*>(version.data()), version.size()});
  zip.finish();
  const std::string s = std::move(out).str();
  return {s.begin(), s.end()};
}

std::vector<uint8_t> floats(std::initializer_list<float> values) {
  std::vector<uint8_t> out(values.size() * 4);
  std::memcpy(out.data(), values.begin(), out.size());
  return out;
}

std::string error_of(const std::vector<uint8_t>& archive) {
  try {
    parse_torch_state_dict(archive, "bad.bin");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Expects parsing to fail with a message naming the file and containing `needle`.
void expect_error(const std::vector<uint8_t>& archive, const std::string& needle) {
  const std::string message = error_of(archive);
  EXPECT_NE(message.find("bad.bin"), std::string::npos) << message;
  EXPECT_NE(message.find(needle), std::string::npos) << "wanted '" << needle << "' in: " << message;
}

void ints(PickleWriter& w, const std::vector<int64_t>& values) {
  if (values.size() > 3) w.op(op::kMark);
  for (int64_t v : values) w.integer(v);
  w.end_tuple(values.size());
}

// _rebuild_tensor_v2(('storage', torch.<cls>, key, 'cpu', numel), offset, size, stride, False,
// OrderedDict()) — the value torch.save writes for one tensor.
void tensor(PickleWriter& w, const std::string& key, int64_t numel, std::vector<int64_t> size,
            std::vector<int64_t> stride, int64_t offset = 0, const char* cls = "FloatStorage") {
  w.global("torch._utils", "_rebuild_tensor_v2");
  w.op(op::kMark);
  w.op(op::kMark);
  w.unicode("storage");
  w.global("torch", cls);
  w.unicode(key);
  w.unicode("cpu");
  w.integer(numel);
  w.op(op::kTuple);
  w.op(op::kBinPersId);
  w.integer(offset);
  ints(w, size);
  ints(w, stride);
  w.boolean(false);
  w.global("collections", "OrderedDict");
  w.op(op::kEmptyTuple);
  w.op(op::kReduce);
  w.op(op::kTuple);
  w.op(op::kReduce);
}

// {name: tensor} as an OrderedDict; `body` emits the value.
std::vector<uint8_t> one_entry(const std::function<void(PickleWriter&)>& body) {
  PickleWriter w;
  w.proto(2);
  w.global("collections", "OrderedDict");
  w.op(op::kEmptyTuple);
  w.op(op::kReduce);
  w.unicode("x");
  body(w);
  w.op(op::kSetItem);
  w.op(op::kStop);
  return w.take();
}

std::vector<uint8_t> with_stop(PickleWriter& w) {
  w.op(op::kStop);
  return w.take();
}

void bytes_arg(PickleWriter& w, std::initializer_list<uint8_t> b) {
  w.raw(std::vector<uint8_t>(b));
}

TEST(TorchArchivePickle, ReadsProtocol4AndTheGeneralSubset) {
  PickleWriter w;
  w.proto(4);
  w.op(op::kFrame);
  bytes_arg(w, {0, 0, 0, 0, 0, 0, 0, 0});
  w.op(op::kShortBinUnicode);  // STACK_GLOBAL collections.OrderedDict, memoized
  bytes_arg(w, {11});
  w.raw(std::vector<uint8_t>{'c', 'o', 'l', 'l', 'e', 'c', 't', 'i', 'o', 'n', 's'});
  w.unicode("OrderedDict");
  w.op(op::kStackGlobal);
  w.op(op::kMemoize);
  w.op(op::kEmptyTuple);
  w.op(op::kNewObj);
  w.op(op::kMark);
  w.unicode("ints");
  w.op(op::kMark);
  w.integer(-5);
  w.integer(70000);
  w.integer(int64_t{1} << 40);
  w.integer(INT64_MIN);
  w.op(op::kLong4);
  bytes_arg(w, {2, 0, 0, 0, 0xff, 0x7f});  // 32767
  w.op(op::kList);
  w.unicode("misc");
  w.op(op::kEmptyList);
  w.op(op::kMark);
  w.op(op::kNone);
  w.boolean(true);
  w.op(op::kBinFloat);
  bytes_arg(w, {0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18});  // pi, big-endian
  w.op(op::kShortBinBytes);
  bytes_arg(w, {2, 'h', 'i'});
  w.op(op::kBinUnicode8);
  bytes_arg(w, {1, 0, 0, 0, 0, 0, 0, 0, 'u'});
  w.op(op::kAppends);
  w.unicode("nested");
  w.integer(1);
  w.integer(2);
  w.integer(3);
  w.end_tuple(3);
  w.op(op::kDup);
  w.op(op::kPop);
  w.unicode("dict");
  w.op(op::kMark);
  w.unicode("k");
  w.integer(1);
  w.op(op::kDict);
  w.unicode("device");
  w.global("torch", "device");
  w.unicode("cuda");
  w.integer(1);
  w.end_tuple(2);
  w.op(op::kReduce);
  w.unicode("size");
  w.global("torch", "Size");
  w.op(op::kMark);
  w.integer(2);
  w.integer(3);
  w.op(op::kList);
  w.end_tuple(1);
  w.op(op::kReduce);
  w.unicode("bytes");
  w.global("_codecs", "encode");
  w.unicode("a\xc3\xbf");  // "aÿ" → b"a\xff"
  w.unicode("latin1");
  w.end_tuple(2);
  w.op(op::kReduce);
  w.op(op::kSetItems);
  // nn.Module state dicts set `_metadata` through BUILD; it is read and dropped.
  w.op(op::kEmptyDict);
  w.unicode("_metadata");
  w.op(op::kBinGet);
  bytes_arg(w, {0});
  w.op(op::kEmptyTuple);
  w.op(op::kReduce);
  w.op(op::kSetItem);
  w.op(op::kBuild);
  const PickleValue v = parse_torch_archive(zip_archive(with_stop(w)), "p4.bin");

  ASSERT_EQ(v.as_dict().size(), 7u);
  const auto& i = v.find("ints")->as_list();
  ASSERT_EQ(i.size(), 5u);
  EXPECT_EQ(i[0].as_int(), -5);
  EXPECT_EQ(i[1].as_int(), 70000);
  EXPECT_EQ(i[2].as_int(), int64_t{1} << 40);
  EXPECT_EQ(i[3].as_int(), INT64_MIN);
  EXPECT_EQ(i[4].as_int(), 32767);
  const auto& misc = v.find("misc")->as_list();
  ASSERT_EQ(misc.size(), 5u);
  EXPECT_TRUE(misc[0].is_none());
  EXPECT_TRUE(misc[1].as_bool());
  EXPECT_DOUBLE_EQ(misc[2].as_float(), 3.141592653589793);
  EXPECT_EQ(misc[3].as_bytes(), "hi");
  EXPECT_EQ(misc[4].as_string(), "u");
  EXPECT_EQ(v.find("nested")->kind(), PickleValue::Kind::kTuple);
  EXPECT_EQ(v.find("dict")->find("k")->as_int(), 1);
  EXPECT_EQ(v.find("device")->as_string(), "cuda:1");
  EXPECT_EQ(v.find("size")->as_list()[1].as_int(), 3);
  EXPECT_EQ(v.find("bytes")->as_bytes(), "a\xff");
}

TEST(TorchArchivePickle, DictKeysFollowPythonEquality) {
  PickleWriter w;
  w.proto(2);
  w.op(op::kEmptyDict);
  w.op(op::kMark);
  w.integer(1);
  w.unicode("first");
  w.boolean(true);  // True == 1: replaces the value, keeps the first key
  w.unicode("second");
  w.unicode("1");
  w.unicode("str");
  w.op(op::kSetItems);
  const PickleValue v = parse_torch_archive(zip_archive(with_stop(w)), "keys.bin");
  ASSERT_EQ(v.as_dict().size(), 2u);
  EXPECT_EQ(v.as_dict()[0].first.as_int(), 1);
  EXPECT_EQ(v.as_dict()[0].second.as_string(), "second");
}

TEST(TorchArchivePickle, TensorsShareStoragesAndParametersUnwrap) {
  const auto pkl = [] {
    PickleWriter w;
    w.proto(2);
    w.op(op::kEmptyDict);
    w.op(op::kMark);
    w.unicode("row");
    tensor(w, "s", 6, {3}, {1}, 3);
    w.unicode("col");
    tensor(w, "s", 6, {2}, {3}, 1);
    w.unicode("param");  // _rebuild_parameter(tensor, True, OrderedDict())
    w.global("torch._utils", "_rebuild_parameter");
    tensor(w, "s", 6, {2, 3}, {3, 1});
    w.boolean(true);
    w.global("collections", "OrderedDict");
    w.op(op::kEmptyTuple);
    w.op(op::kReduce);
    w.end_tuple(3);
    w.op(op::kReduce);
    w.op(op::kSetItems);
    return with_stop(w);
  }();
  const TensorDict d =
      parse_torch_state_dict(zip_archive(pkl, {{"s", floats({0, 1, 2, 3, 4, 5})}}), "s.bin");
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].second.to_float32(), (std::vector<float>{3, 4, 5}));
  EXPECT_EQ(d[1].second.to_float32(), (std::vector<float>{1, 4}));
  EXPECT_EQ(d[0].second.storage, d[1].second.storage);
  EXPECT_TRUE(d[2].second.requires_grad);
  EXPECT_EQ(d[2].second.shape, (std::vector<int64_t>{2, 3}));
}

TEST(TorchArchivePickle, RejectsGlobalsOutsideTheAllowList) {
  expect_error(zip_archive(one_entry([](PickleWriter& w) {
                 w.global("os", "system");
                 w.unicode("echo hi");
                 w.end_tuple(1);
                 w.op(op::kReduce);
               })),
               "unsupported global 'os.system'");
  PickleWriter w;
  w.proto(4);
  w.unicode("builtins");
  w.unicode("eval");
  w.op(op::kStackGlobal);
  expect_error(zip_archive(with_stop(w)), "unsupported global 'builtins.eval'");
  expect_error(zip_archive(one_entry([](PickleWriter& w) {
                 w.global("torch", "FloatStorage");
                 w.op(op::kEmptyTuple);
                 w.op(op::kReduce);
               })),
               "calling torch.FloatStorage is not supported");
}

TEST(TorchArchivePickle, RejectsMalformedPickles) {
  auto raw = [](std::initializer_list<uint8_t> b) { return zip_archive(std::vector<uint8_t>(b)); };
  expect_error(raw({0x80, 2, 'h', 5, '.'}), "memo has no entry 5");
  expect_error(raw({0x80, 2, 'R', '.'}), "stack underflow");
  expect_error(raw({0x80, 2, '(', ']', 'a', '.'}),
               "stack underflow");  // APPEND cannot cross a MARK
  expect_error(raw({0x80, 2, 'N', 'N', '.'}), "expected one value");
  expect_error(raw({0x80, 2, 0xff, '.'}), "unsupported pickle opcode");
  expect_error(raw({0x80, 2, 0x8f, '.'}), "(EMPTY_SET)");
  expect_error(raw({0x80, 2, 'N'}), "truncated");
  expect_error(raw({0x80, 2, 'X', 0xff, 0xff, 0xff, 0x7f, 'a', '.'}), "runs past the end");
  expect_error(raw({0x80, 2, 'X', 2, 0, 0, 0, 0xc3, 0x28, '.'}), "UTF-8");
  expect_error(raw({0x80, 9, 'N', '.'}), "protocol 2 to 5");
  expect_error(raw({0x80, 2, 'N', '.', 'N'}), "end at STOP");
  expect_error(raw({0x80, 2, '}', ']', 'a', '.'}), "expected a list");
  expect_error(raw({0x80, 2, ']', 'N', 'N', 's', '.'}), "expected a dict");
  expect_error(raw({0x80, 2, '}', ']', 'N', 's', '.'}), "unhashable");
  expect_error(raw({0x80, 2, ']', '}', 'b', '.'}), "only an OrderedDict's state");
  expect_error(raw({0x80, 2, 'P', 'x', '\n', '.'}), "text id 'x'");
  expect_error(raw({0x80, 2, 0x8a, 9, 1, 0, 0, 0, 0, 0, 0, 0, 1, '.'}), "beyond 64 bits");
  expect_error(raw({0x80, 2, 'N', ')', 'Q', '.'}), "persistent id");
}

TEST(TorchArchivePickle, RejectsTensorsOutsideTheirStorage) {
  const Storages four = {{"0", floats({1, 2, 3, 4})}};
  auto entry = [&](int64_t numel, std::vector<int64_t> size, std::vector<int64_t> stride,
                   int64_t offset = 0) {
    return zip_archive(
        one_entry([&](PickleWriter& w) { tensor(w, "0", numel, size, stride, offset); }), four);
  };
  EXPECT_NO_THROW(parse_torch_state_dict(entry(4, {2, 2}, {2, 1}), "ok.bin"));
  expect_error(entry(4, {5}, {1}), "reaches beyond storage");
  expect_error(entry(4, {2, 2}, {3, 1}), "reaches beyond storage");
  expect_error(entry(4, {1}, {1}, 4), "reaches beyond storage");
  expect_error(entry(4, {0}, {1}, 5), "reaches beyond storage");
  expect_error(entry(4, {int64_t{1} << 62, 4}, {int64_t{1} << 62, 1}), "overflow");
  expect_error(entry(4, {-1}, {1}), "ints ≥ 0");
  expect_error(entry(4, {2}, {1, 1}), "as many strides as dims");
  expect_error(entry(5, {2}, {1}), "expected 5 float32 elements");
  expect_error(zip_archive(one_entry([&](PickleWriter& w) { tensor(w, "7", 4, {4}, {1}); }), four),
               "expected a record archive/data/7");
  expect_error(zip_archive(one_entry([&](PickleWriter& w) {
                             w.op(op::kMark);
                             tensor(w, "0", 4, {4}, {1});
                             tensor(w, "0", 2, {2}, {1}, 0, "DoubleStorage");
                             w.op(op::kList);
                           }),
                           four),
               "was first named");
}

// Sizes declared in the pickle are checked against the record's bytes and for overflow before
// anything is read or allocated from them; every error is one line naming the file.
TEST(TorchArchivePickle, RejectsSizesThatDisagreeWithTheArchive) {
  const Storages four = {{"0", floats({1, 2, 3, 4})}};
  auto entry = [&](int64_t numel, std::vector<int64_t> size, std::vector<int64_t> stride,
                   int64_t offset = 0) {
    return zip_archive(
        one_entry([&](PickleWriter& w) { tensor(w, "0", numel, size, stride, offset); }), four);
  };
  auto expect_one_line = [](const std::vector<uint8_t>& archive, const std::string& needle) {
    expect_error(archive, needle);
    EXPECT_EQ(error_of(archive).find('\n'), std::string::npos) << error_of(archive);
  };
  // Storage numel larger than its data/<key> record (16 bytes): 4 TiB is never allocated.
  expect_one_line(entry(int64_t{1} << 40, {4}, {1}),
                  "expected 1099511627776 float32 elements (4398046511104 bytes), found 16 bytes");
  expect_one_line(entry(int64_t{1} << 62, {4}, {1}), "overflows a 64-bit byte count");
  expect_one_line(entry(-4, {4}, {1}), "numel is not an int ≥ 0");
  // Sizes: negative, huge, or whose product overflows.
  expect_one_line(entry(4, {-4}, {1}), "ints ≥ 0");
  expect_one_line(entry(4, {int64_t{1} << 40}, {1}), "reaches beyond storage");
  expect_one_line(entry(4, {int64_t{1} << 32, int64_t{1} << 32, 0}, {0, 0, 1}),
                  "overflows a 64-bit element count");
  // A stride that points beyond the storage, or whose extent overflows.
  expect_one_line(entry(4, {2}, {int64_t{1} << 40}), "reaches beyond storage");
  expect_one_line(entry(4, {3}, {INT64_MAX / 2 + 1}), "overflows a 64-bit element index");
  expect_one_line(entry(4, {2}, {-1}), "ints ≥ 0");
  // An offset beyond the storage, or one that overflows with the view's extent.
  expect_one_line(entry(4, {1}, {1}, int64_t{1} << 40), "reaches beyond storage");
  expect_one_line(entry(4, {4}, {1}, INT64_MAX - 1), "overflows a 64-bit element index");
  expect_one_line(entry(4, {1}, {1}, -1), "storage offset int ≥ 0");
}

TEST(TorchArchivePickle, BoundsNestingCyclesAndSharing) {
  // A list that contains itself.
  expect_error(zip_archive(std::vector<uint8_t>{0x80, 2, ']', 'q', 0, 'h', 0, 'a', '.'}),
               "nested deeper");
  // 1000 nested lists.
  std::vector<uint8_t> deep = {0x80, 2};
  for (int i = 0; i < 1000; ++i) deep.push_back(']');
  for (int i = 0; i < 999; ++i) deep.push_back('a');
  deep.push_back('.');
  expect_error(zip_archive(deep), "nested deeper");
  // x = []; 60 times x = [x, x]: 2^60 nodes once expanded.
  std::vector<uint8_t> wide = {0x80, 2, ']', 'q', 0};
  for (int i = 0; i < 60; ++i)
    for (uint8_t b : std::initializer_list<uint8_t>{'0', 'h', 0, 'h', 0, 0x86, 'q', 0})
      wide.push_back(b);
  wide.push_back('.');
  expect_error(zip_archive(wide), "budget");
  // A dict key of tuples nested 100 deep.
  std::vector<uint8_t> key = {0x80, 2, '}', 'N'};
  for (int i = 0; i < 100; ++i) key.push_back(0x85);
  for (uint8_t b : std::initializer_list<uint8_t>{'N', 's', '.'}) key.push_back(b);
  expect_error(zip_archive(key), "nested deeper");
}

TEST(TorchArchivePickle, StateDictMustMapNamesToTensors) {
  expect_error(zip_archive(std::vector<uint8_t>{0x80, 2, ']', '.'}), "expected a state dict");
  expect_error(zip_archive(one_entry([](PickleWriter& w) { w.integer(3); })),
               "entry 'x': expected a tensor");
  PickleWriter w;
  w.proto(2);
  w.op(op::kEmptyDict);
  w.integer(1);
  w.integer(2);
  w.op(op::kSetItem);
  expect_error(zip_archive(with_stop(w)), "expected str keys");
}

TEST(TorchArchivePickle, ChecksTheVersionRecord) {
  const auto pkl = std::vector<uint8_t>{0x80, 2, '}', '.'};
  EXPECT_NO_THROW(parse_torch_state_dict(zip_archive(pkl, {}, "3\n"), "v.bin"));
  expect_error(zip_archive(pkl, {}, "three"), "format version");
  std::ostringstream out;
  pickle::ZipWriter zip(out, "test");
  zip.add("archive/data.pkl", pkl);
  zip.finish();
  const std::string s = std::move(out).str();
  expect_error({s.begin(), s.end()}, "archive/version");
}

}  // namespace
}  // namespace reft
