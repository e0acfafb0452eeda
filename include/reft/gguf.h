#pragma once
/// The torch-free GGUF file layer: a GGUF v2/v3 file's header, metadata and tensor infos, read
/// and validated against the file's size before anything is allocated; ggml's type table (block
/// sizes and bytes per block); dequantization of the common block formats to float; and a writer
/// (tests, `reft convert --to gguf` later). Loading a model from GGUF is built on top of it; the
/// fuzz target fuzz/gguf_fuzzer.cpp calls it without libtorch. See docs/gguf.md.
///
/// Layout of a GGUF file (little-endian): magic "GGUF", u32 version, u64 tensor count, u64
/// metadata count; the metadata key/values (key = u64 length + bytes, u32 value type, value);
/// the tensor infos (name, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset); padding to
/// the alignment (`general.alignment`, default 32); the data section, each tensor at its offset
/// from the data section's start (a multiple of the alignment).
///
/// Dimensions are in ggml's order: dims[0] is the contiguous one (a row), so an HF weight of
/// shape [out, in] is dims {in, out}.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace reft {

/// The value types of GGUF metadata (their ids in the file).
enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

/// "uint32", "string", "array", … ("type 99" for an id GGUF lacks).
std::string gguf_type_name(GgufType type);

/// One metadata value. Scalars keep their bits; arrays keep their elements packed as in the file
/// (so a parsed value never takes much more memory than its bytes in the file).
struct GgufValue {
  GgufType type = GgufType::kUint32;
  uint64_t bits = 0;  // a scalar: integers zero/sign-extended to 64 bits, floats as IEEE bits
  std::string str;    // kString

  // kArray: element type and count; elements in `raw` (fixed-size scalars, little-endian as in
  // the file), `strings` (kString) or `arrays` (kArray: nested arrays).
  GgufType elem_type = GgufType::kUint8;
  uint64_t count = 0;
  std::string raw;
  std::vector<std::string> strings;
  std::vector<GgufValue> arrays;

  bool is_integer() const;  // a scalar of an integer type (not bool)
  bool is_float() const;    // kFloat32 / kFloat64
  /// An integer scalar as int64 (a uint64 above INT64_MAX throws); `where` names the value.
  int64_t as_int(const std::string& where) const;
  /// A float or integer scalar as double.
  double as_float(const std::string& where) const;
  bool as_bool(const std::string& where) const;
  /// Element `i` of an array of integers / floats (as double).
  int64_t int_at(uint64_t i) const;
  double float_at(uint64_t i) const;

  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue string(std::string v);
  static GgufValue string_array(std::vector<std::string> v);
  static GgufValue i32_array(const std::vector<int32_t>& v);
  static GgufValue f32_array(const std::vector<float>& v);
  /// An array of arrays (each element a kArray value).
  static GgufValue array_of_arrays(std::vector<GgufValue> v);
};

/// ggml's tensor types (ids as in the file). Only those reft knows the block layout of.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ4_NL = 20,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

/// A ggml type's block geometry: `block_size` elements are stored in `type_size` bytes.
struct GgmlTypeInfo {
  std::string_view name;  // "Q4_K"
  uint32_t block_size;
  uint32_t type_size;
};

/// The geometry of ggml type id `id`, or nullptr when reft does not know it.
const GgmlTypeInfo* ggml_type_info(uint32_t id);
/// The name of a ggml type id: the table's name, ggml's name for the types reft does not read
/// (IQ*, TQ*, MXFP4), "type <id>" otherwise.
std::string ggml_type_name(uint32_t id);
/// Parses "f32", "Q8_0", … (case-insensitive); throws reft::Error for other names.
GgmlType ggml_type_from_name(std::string_view name);

/// One tensor of a GGUF file.
struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order: dims[0] is contiguous (≤ 4 dims)
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;  // from the start of the data section (a multiple of the alignment)
  uint64_t nbytes = 0;  // numel / block_size × type_size
  uint64_t begin = 0;   // byte range in the file: [begin, begin + nbytes)

  uint64_t numel() const;
};

/// A GGUF file's validated layout (no tensor data is read).
struct GgufFile {
  std::string where;  // the file name used in errors
  uint32_t version = 3;
  std::vector<std::pair<std::string, GgufValue>> metadata;  // in file order, keys unique
  std::map<std::string, size_t> metadata_index;             // key → position in `metadata`
  std::vector<GgufTensorInfo> tensors;                      // in file order, names unique
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // where the data section starts in the file
  uint64_t file_size = 0;

  const GgufValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }
  /// Typed getters: throw reft::Error "[where] expected metadata key 'k' of type …, found …"
  /// when the key is missing or of another type; the two-argument forms return the fallback when
  /// the key is missing (and still throw for a wrong type).
  const std::string& get_string(std::string_view key) const;
  std::string get_string(std::string_view key, const std::string& fallback) const;
  int64_t get_int(std::string_view key) const;
  int64_t get_int(std::string_view key, int64_t fallback) const;
  double get_float(std::string_view key) const;
  double get_float(std::string_view key, double fallback) const;
  bool get_bool(std::string_view key, bool fallback) const;
  const GgufValue& get_array(std::string_view key) const;

  const GgufTensorInfo* find_tensor(std::string_view name) const;
};

/// Limits a parse applies beyond the file's size.
inline constexpr uint32_t kGgufMaxDims = 4;
inline constexpr int kGgufMaxArrayDepth = 8;  // arrays of arrays, nested at most this deep
// (and at most 2^20 arrays inside arrays in a file's metadata, all nesting levels together)

/// Reads and validates the header, metadata and tensor infos of the GGUF file at `path`
/// (a regular file; read through a bounded buffered reader, never whole). Every count, length
/// and offset is checked against the file's size before any allocation; tensors must lie in the
/// data section, aligned, without overlapping. Throws reft::Error, one line naming the file.
GgufFile parse_gguf_layout(const std::filesystem::path& path);

/// The same for a file's bytes in memory; `where` names it in errors.
GgufFile parse_gguf_layout(std::string_view bytes, const std::string& where);

/// One tensor to write: `data` holds exactly its bytes in ggml's layout for `type`.
struct GgufTensorData {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order
  GgmlType type = GgmlType::F32;
  std::string data;
};

/// A GGUF v3 file's bytes: the metadata in the given order, then the tensors, each aligned to
/// `general.alignment` when the metadata sets it (as a uint32), else 32. Throws reft::Error for a
/// tensor whose data size does not match its dims and type, or a duplicate key or name.
std::string gguf_bytes(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                       const std::vector<GgufTensorData>& tensors);

/// Writes gguf_bytes() to `path` atomically (a temporary sibling, then rename).
void write_gguf(const std::filesystem::path& path,
                const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorData>& tensors);

/// IEEE half ↔ float (round to nearest even; NaN and infinities kept) and bfloat16 → float.
float fp16_to_float(uint16_t h);
uint16_t float_to_fp16(float f);
float bf16_to_float(uint16_t b);

/// Whether dequantize_row() reads `type`.
bool can_dequantize(GgmlType type);

/// Expands `n` elements of `type` at `src` (n / block_size blocks, as stored in a GGUF tensor's
/// row) into `dst`. Reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K,
/// Q5_K, Q6_K, Q8_K, IQ4_NL, IQ4_XS; throws reft::Error for other types and for an `n` that is not
/// a whole number of blocks.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

}  // namespace reft
