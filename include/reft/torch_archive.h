#pragma once
/// Reading and writing PyTorch `torch.save` files without libtorch.
///
/// pyreft saves each intervention as `intkey_<key>.bin`, a `torch.save` of the intervention's
/// `state_dict()`. This header reads such files (and other torch.save files of plain data) and
/// writes state dicts that `torch.load` (1.13 through 2.x, `weights_only=True` included) and
/// `pyreft.ReftModel.load` accept. docs/pyreft-files.md describes the format and the subset.
///
/// Supported on reading:
///   - the zip container of torch ≥ 1.6 (`<archive>/data.pkl`, `<archive>/data/<key>`,
///     `<archive>/version`, optional `<archive>/byteorder`), STORED or DEFLATE entries, zip64;
///   - the legacy format of `torch.save(..., _use_new_zipfile_serialization=False)`;
///   - a safe pickle VM (protocols 2–5, no code execution) that constructs only an allow-list of
///     globals: `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` / `_rebuild_tensor` /
///     `_rebuild_parameter`, the typed `torch.*Storage` classes, `torch.device`, `torch.Size`,
///     and `_codecs.encode` (how protocol 2 pickles `bytes`).
/// Every malformed or unsupported input is a `reft::Error` naming the file and what is wrong.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace reft {

/// Element types of torch.save tensors: one per typed storage class (`torch.FloatStorage` is
/// kFloat32, `HalfStorage` kFloat16, `BFloat16Storage`, `DoubleStorage`, `LongStorage` kInt64,
/// `IntStorage` kInt32, `ShortStorage` kInt16, `CharStorage` kInt8, `ByteStorage` kUInt8,
/// `BoolStorage`).
enum class ScalarType {
  kFloat32,
  kFloat16,
  kBFloat16,
  kFloat64,
  kInt64,
  kInt32,
  kInt16,
  kInt8,
  kUInt8,
  kBool
};

/// Bytes per element of `type` (4 for kFloat32, 1 for kBool, …).
int64_t element_size(ScalarType type);

/// The torch dtype name without `torch.`: "float32", "float16", "bfloat16", "int64", "bool", ….
std::string_view scalar_type_name(ScalarType type);

/// A tensor read from, or to be written to, a torch.save file: a strided view into a storage of
/// little-endian bytes. `shape`, `stride` and `storage_offset` count elements, as in torch.
struct ArchiveTensor {
  ScalarType dtype = ScalarType::kFloat32;
  std::vector<int64_t> shape;   // empty for a 0-dim tensor
  std::vector<int64_t> stride;  // one per dim of shape, each ≥ 0
  int64_t storage_offset = 0;
  /// The first byte of the storage. Tensors read from one storage share it; it may point into a
  /// larger buffer that it keeps alive (the bytes of the whole file) and is only byte-aligned.
  std::shared_ptr<const uint8_t> storage;
  int64_t storage_nbytes = 0;
  bool requires_grad = false;

  /// The product of `shape` (1 for a 0-dim tensor).
  int64_t numel() const;

  /// Whether `stride` is the row-major stride of `shape` (size-1 dims ignored, as torch does).
  bool is_contiguous() const;

  /// The storage bytes, `storage_nbytes` long.
  std::span<const uint8_t> storage_bytes() const {
    return {storage.get(), static_cast<size_t>(storage_nbytes)};
  }

  /// The elements in row-major order: numel() * element_size(dtype) little-endian bytes.
  /// Throws reft::Error when the view does not fit in its storage (never the case for tensors the
  /// readers return).
  std::vector<uint8_t> contiguous_bytes() const;

  /// The elements in row-major order converted to float (float16/bfloat16 exactly, float64 and
  /// int64 rounded, bool as 0/1). Throws like contiguous_bytes().
  std::vector<float> to_float32() const;

  /// A contiguous tensor that owns `bytes` (row-major, little-endian). Throws reft::Error unless
  /// `bytes.size()` equals the product of `shape` times element_size(dtype) and every dim is ≥ 0.
  static ArchiveTensor from_bytes(ScalarType dtype, std::vector<int64_t> shape,
                                  std::vector<uint8_t> bytes);
};

/// A state dict: names to tensors, in file (insertion) order.
using TensorDict = std::vector<std::pair<std::string, ArchiveTensor>>;

/// One value of the object tree pickled in a torch.save file. Python `str` is kString and `bytes`
/// kBytes (both UTF-8/raw in a std::string); `torch.device` reads as its string ("cpu", "cuda:0");
/// `torch.Size` as a tuple; dict and OrderedDict as kDict in insertion order. An OrderedDict's
/// attributes (nn.Module state dicts carry `_metadata`) are read and dropped.
class PickleValue {
 public:
  enum class Kind { kNone, kBool, kInt, kFloat, kString, kBytes, kTuple, kList, kDict, kTensor };
  using List = std::vector<PickleValue>;
  using Dict = std::vector<std::pair<PickleValue, PickleValue>>;

  /// None.
  PickleValue() = default;
  static PickleValue make_bool(bool value);
  static PickleValue make_int(int64_t value);
  static PickleValue make_float(double value);
  static PickleValue make_string(std::string value);
  static PickleValue make_bytes(std::string value);
  static PickleValue make_tuple(List items);
  static PickleValue make_list(List items);
  static PickleValue make_dict(Dict entries);
  static PickleValue make_tensor(ArchiveTensor tensor);

  Kind kind() const { return kind_; }
  bool is_none() const { return kind_ == Kind::kNone; }

  /// Typed access. Each throws reft::Error("expected <kind>, found <kind>") on another kind.
  bool as_bool() const;
  int64_t as_int() const;
  double as_float() const;
  const std::string& as_string() const;  // kString only
  const std::string& as_bytes() const;   // kBytes only
  const List& as_list() const;           // kTuple or kList
  List& as_list();
  const Dict& as_dict() const;
  Dict& as_dict();
  const ArchiveTensor& as_tensor() const;
  ArchiveTensor& as_tensor();

  /// In a dict, the value whose key is the string `key`; nullptr when absent. Throws reft::Error
  /// when this is not a dict.
  const PickleValue* find(std::string_view key) const;

 private:
  Kind kind_ = Kind::kNone;
  std::variant<std::monostate, bool, int64_t, double, std::string, List, Dict, ArchiveTensor>
      value_;
};

/// "none", "bool", "int", "float", "str", "bytes", "tuple", "list", "dict", "tensor".
std::string_view kind_name(PickleValue::Kind kind);

/// Reads the object saved in a torch.save file (zip or legacy format). Tensors alias the file's
/// bytes, which stay in memory while any of them lives. Throws reft::Error naming the file when
/// it cannot be read, is malformed, or uses a global outside the allow-list (the error names it).
PickleValue read_torch_archive(const std::filesystem::path& file);

/// read_torch_archive() on the bytes of a file; `name` stands for the file in error messages.
PickleValue parse_torch_archive(std::vector<uint8_t> bytes, std::string_view name);

/// Reads a torch.save file of a state dict: a dict or OrderedDict of str → tensor (0-dim tensors,
/// e.g. integer buffers, included), in file order. Throws reft::Error as read_torch_archive()
/// does, and when the object is not such a dict (the error names the first offending key).
TensorDict read_torch_state_dict(const std::filesystem::path& file);

/// read_torch_state_dict() on the bytes of a file; `name` stands for the file in error messages.
TensorDict parse_torch_state_dict(std::vector<uint8_t> bytes, std::string_view name);

/// Options of write_torch_state_dict().
struct TorchSaveOptions {
  /// The folder inside the zip that holds every record. Empty: what torch.save picks, the file
  /// name up to its last '.' ("intkey_x#0" for "intkey_x#0.bin"), or "archive" when that is empty
  /// or not ASCII (and for serialize_torch_state_dict()). torch.load ignores the name.
  std::string archive_name;
};

/// Writes `tensors` as `torch.save(OrderedDict(tensors))` does with torch ≥ 1.6 defaults: a zip of
/// STORED records with 64-byte aligned data: `data.pkl` (pickle protocol 2: an OrderedDict of
/// `torch._utils._rebuild_tensor_v2` calls on persistent storage ids), `byteorder` ("little"),
/// `data/<i>` (one storage per tensor, written contiguous) and `version` ("3"). The file is
/// written beside `file` (`<file>.partial`) and renamed over it when complete. Throws reft::Error
/// on a duplicate or non-UTF-8 name, a tensor whose view does not fit its storage, or an I/O
/// failure.
void write_torch_state_dict(const std::filesystem::path& file, const TensorDict& tensors,
                            const TorchSaveOptions& options = {});

/// The bytes write_torch_state_dict() would write (archive name "archive" unless set).
std::vector<uint8_t> serialize_torch_state_dict(const TensorDict& tensors,
                                                const TorchSaveOptions& options = {});

}  // namespace reft
