// Deterministic mutation testing of the torch.save reader: thousands of corrupted variants of
// archives made by our writer (plain, DEFLATE, zip64, legacy format) and of the golden pyreft
// files. Every input must either parse or fail with reft::Error — no other exception, crash,
// hang or out-of-bounds access (run this under REFT_SANITIZE=ON to check the last).

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
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
namespace op = pickle::op;
using Bytes = std::vector<uint8_t>;

// Reads every tensor element, so a view that escaped the bounds checks would be caught.
size_t touch(const PickleValue& v) {
  size_t n = 0;
  switch (v.kind()) {
    case PickleValue::Kind::kTuple:
    case PickleValue::Kind::kList:
      for (const auto& item : v.as_list()) n += touch(item);
      break;
    case PickleValue::Kind::kDict:
      for (const auto& [key, value] : v.as_dict()) n += touch(key) + touch(value);
      break;
    case PickleValue::Kind::kTensor: {
      const auto bytes = v.as_tensor().contiguous_bytes();
      for (uint8_t b : bytes) n += b;
      n += v.as_tensor().to_float32().size();
      break;
    }
    default:
      break;
  }
  return n;
}

// Parses one input both ways. Returns an empty string, or what escaped other than reft::Error.
std::string parse_all(const Bytes& input) {
  try {
    try {
      touch(parse_torch_archive(input, "fuzz.bin"));
    } catch (const Error&) {
    }
    try {
      for (const auto& [name, t] : parse_torch_state_dict(input, "fuzz.bin")) t.contiguous_bytes();
    } catch (const Error&) {
    }
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

TensorDict sample() {
  TensorDict d;
  auto add = [&](const char* name, ScalarType t, std::vector<int64_t> shape) {
    int64_t n = element_size(t);
    for (int64_t s : shape) n *= s;
    Bytes b(static_cast<size_t>(n));
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 37 + 11);
    d.emplace_back(name, ArchiveTensor::from_bytes(t, std::move(shape), std::move(b)));
  };
  add("weight", ScalarType::kFloat32, {4, 8});
  add("bias", ScalarType::kFloat32, {4});
  add("rotate_layer", ScalarType::kBFloat16, {8, 4});
  add("steps", ScalarType::kInt64, {});
  return d;
}

Bytes rezip(const pickle::ZipReader& in, pickle::ZipWriterOptions options,
            const std::string& replace_name = "", const Bytes& replacement = {}) {
  std::ostringstream out;
  pickle::ZipWriter zip(out, "fuzz", options);
  for (const auto& e : in.entries()) {
    if (e.name == replace_name) {
      zip.add(e.name, replacement);
    } else {
      zip.add(e.name, in.read(e).span());
    }
  }
  zip.finish();
  const std::string s = std::move(out).str();
  return {s.begin(), s.end()};
}

// The same state dict in the legacy (non-zip) format, each tensor a view of one shared storage.
Bytes legacy(const TensorDict& d) {
  pickle::PickleWriter w;
  test::write_legacy_header(w);
  w.proto(2);
  w.memo_global("collections", "OrderedDict");
  w.op(op::kEmptyTuple);
  w.op(op::kReduce);
  w.op(op::kMark);
  for (size_t i = 0; i < d.size(); ++i) {
    const ArchiveTensor& t = d[i].second;
    w.unicode(d[i].first);
    w.memo_global("torch._utils", "_rebuild_tensor_v2");
    w.op(op::kMark);
    w.op(op::kMark);
    w.memo_unicode("storage");
    w.memo_global("torch", t.dtype == ScalarType::kFloat32    ? "FloatStorage"
                           : t.dtype == ScalarType::kBFloat16 ? "BFloat16Storage"
                                                              : "LongStorage");
    w.unicode(std::to_string(i));
    w.memo_unicode("cpu");
    w.integer(t.numel());
    w.op(op::kNone);
    w.op(op::kTuple);
    w.op(op::kBinPersId);
    w.integer(0);
    for (const auto* dims : {&t.shape, &t.stride}) {
      if (dims->size() > 3) w.op(op::kMark);
      for (int64_t v : *dims) w.integer(v);
      w.end_tuple(dims->size());
    }
    w.boolean(false);
    w.memo_global("collections", "OrderedDict");
    w.op(op::kEmptyTuple);
    w.op(op::kReduce);
    w.op(op::kTuple);
    w.op(op::kReduce);
  }
  w.op(op::kSetItems);
  w.op(op::kStop);
  w.proto(2);
  w.op(op::kMark);
  for (size_t i = 0; i < d.size(); ++i) w.unicode(std::to_string(i));
  w.op(op::kList);
  w.op(op::kStop);
  for (const auto& [name, t] : d) {
    const int64_t numel = t.numel();
    w.raw({reinterpret_cast<const uint8_t*>(&numel), 8});
    w.raw(t.storage_bytes());
  }
  return w.take();
}

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  size_t below(size_t n) {
    return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  }

  uint32_t interesting() {
    static constexpr uint32_t kValues[] = {0,          1,          2,          0x7f,      0x80,
                                           0xff,       0x100,      0x7fff,     0xffff,    0x10000,
                                           0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff};
    return below(4) == 0 ? static_cast<uint32_t>(rng_()) : kValues[below(std::size(kValues))];
  }

  // A generic byte-level mutation; `kind` is set to its name.
  Bytes mutate(Bytes b, std::string& kind) {
    switch (below(b.empty() ? 1 : 7)) {
      case 0:
        kind = "insert";
        b.insert(b.begin() + static_cast<long>(below(b.size() + 1)), 1 + below(16),
                 static_cast<uint8_t>(interesting()));
        return b;
      case 1:
        kind = "bit flips";
        for (size_t n = 1 + below(4); n-- > 0;)
          b[below(b.size())] ^= static_cast<uint8_t>(1u << below(8));
        return b;
      case 2:
        kind = "interesting byte";
        b[below(b.size())] = static_cast<uint8_t>(interesting());
        return b;
      case 3:
        kind = "truncate";
        b.resize(below(b.size()));
        return b;
      case 4: {
        kind = "delete range";
        const size_t at = below(b.size());
        b.erase(b.begin() + static_cast<long>(at),
                b.begin() + static_cast<long>(std::min(b.size(), at + 1 + below(16))));
        return b;
      }
      case 5: {
        kind = "copy range";
        const size_t from = below(b.size()), to = below(b.size()),
                     n = std::min(1 + below(32), b.size() - from);
        const Bytes chunk(b.begin() + static_cast<long>(from),
                          b.begin() + static_cast<long>(from + n));
        b.insert(b.begin() + static_cast<long>(to), chunk.begin(), chunk.end());
        return b;
      }
      default: {
        kind = "random opcode";  // meaningful inside pickles, a byte change elsewhere
        static constexpr uint8_t kOps[] = {
            '(',  '.',  '0',  '1',  '2',  'J',  'K',  'M',  'N',  'Q',  'R',  'X',
            'a',  'b',  'c',  'd',  '}',  'e',  'h',  'j',  'l',  ']',  'q',  'r',
            's',  't',  ')',  'u',  'G',  0x80, 0x81, 0x85, 0x86, 0x87, 0x88, 0x89,
            0x8a, 0x8b, 0x8c, 0x8d, 0x93, 0x94, 0x95, 'B',  'C',  'P',  0x8f};
        b[below(b.size())] = kOps[below(std::size(kOps))];
        return b;
      }
    }
  }

  // Overwrites one 16- or 32-bit field of a zip header (local, central, end records).
  Bytes corrupt_zip_field(Bytes b, std::string& kind) {
    std::vector<size_t> headers;
    for (size_t i = 0; i + 4 <= b.size(); ++i)
      if (b[i] == 'P' && b[i + 1] == 'K' && b[i + 2] >= 1 && b[i + 2] <= 7 && b[i + 3] >= 2 &&
          b[i + 3] <= 8)
        headers.push_back(i);
    if (headers.empty()) return mutate(std::move(b), kind);
    kind = "zip field";
    const size_t at = headers[below(headers.size())] + 4 + 2 * below(22);
    const uint32_t v = interesting();
    const size_t width = below(2) ? 4 : 2;
    for (size_t k = 0; k < width && at + k < b.size(); ++k)
      b[at + k] = static_cast<uint8_t>(v >> (8 * k));
    return b;
  }

 private:
  std::mt19937_64 rng_;
};

struct Target {
  std::string name;
  Bytes bytes;
};

void fuzz_bytes(const Target& target, int count, uint64_t seed, int& failures) {
  Mutator m(seed);
  for (int i = 0; i < count && failures < 5; ++i) {
    std::string kind;
    const Bytes input =
        m.below(3) == 0 ? m.corrupt_zip_field(target.bytes, kind) : m.mutate(target.bytes, kind);
    if (std::string escaped = parse_all(input); !escaped.empty()) {
      ADD_FAILURE() << target.name << " mutation " << i << " (" << kind
                    << "): non-reft exception: " << escaped;
      ++failures;
    }
  }
}

TEST(TorchArchiveFuzz, MutatedContainersFailCleanly) {
  const Bytes plain = serialize_torch_state_dict(sample());
  const pickle::ZipReader zip(pickle::SharedBytes::own(plain), "sample");
  std::vector<Target> targets = {
      {"plain", plain},
      {"deflate", rezip(zip, {.alignment = 1, .deflate = true})},
      {"zip64", rezip(zip, {.force_zip64 = true})},
      {"legacy", legacy(sample())},
  };
  for (const auto& t : targets) ASSERT_EQ(parse_all(t.bytes), "") << t.name;
  ASSERT_EQ(parse_torch_state_dict(targets.back().bytes, "legacy").size(), 4u);

  if (const fs::path golden = test::shared_dir() / "golden/pyreft";
      !test::shared_dir().empty() && fs::exists(golden))
    for (const auto& dir : fs::directory_iterator(golden))
      for (const fs::path& bin : test::files_with_suffix(dir.path(), ".bin")) {
        std::ifstream in(bin, std::ios::binary);
        targets.push_back({bin.filename().string(), {std::istreambuf_iterator<char>(in), {}}});
      }

  int failures = 0;
  uint64_t seed = 1;
  for (const auto& t : targets) fuzz_bytes(t, 600, seed++, failures);
}

TEST(TorchArchiveFuzz, MutatedPicklesFailCleanly) {
  // Mutate data.pkl itself and re-zip, so the CRC does not stop the input before the unpickler.
  const Bytes plain = serialize_torch_state_dict(sample());
  const pickle::ZipReader zip(pickle::SharedBytes::own(plain), "sample");
  const auto pkl_span = zip.read(*zip.find("archive/data.pkl")).span();
  const Bytes pkl(pkl_span.begin(), pkl_span.end());
  Mutator m(99);
  int failures = 0;
  for (int i = 0; i < 2000 && failures < 5; ++i) {
    std::string kind;
    Bytes mutated = m.mutate(pkl, kind);
    for (size_t extra = m.below(3); extra-- > 0;) mutated = m.mutate(std::move(mutated), kind);
    if (std::string escaped = parse_all(rezip(zip, {}, "archive/data.pkl", mutated));
        !escaped.empty()) {
      ADD_FAILURE() << "data.pkl mutation " << i << " (" << kind
                    << "): non-reft exception: " << escaped;
      ++failures;
    }
  }
}

}  // namespace
}  // namespace reft
