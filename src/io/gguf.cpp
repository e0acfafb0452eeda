// The torch-free GGUF layer: parsing and validating a file's header, metadata and tensor infos;
// ggml's type table; dequantization of block formats; a writer. See reft/gguf.h, docs/gguf.md.
//
// Every count and length read from the file is checked against the bytes left in the file before
// anything is allocated for it, so a corrupt or hostile file costs at most a few times its own
// size in memory and gets one error line "[file] expected …, found …".

#include "reft/gguf.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "io/paths.h"
#include "reft/error.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kMaxTensorName = 63;
constexpr uint64_t kMaxNestedArrays =
    uint64_t{1}
    << 20;  // in all of a file's metadata  // ggml's GGML_MAX_NAME (64) less the terminating NUL

// ---- the ggml type table ----

constexpr GgmlTypeInfo kUnknownType{"", 0, 0};

// Indexed by type id; an empty name is an id reft does not know the layout of.
const GgmlTypeInfo* type_table(uint32_t id) {
  static const GgmlTypeInfo kTable[] = {
      {"F32", 1, 4},      {"F16", 1, 2},      {"Q4_0", 32, 18},   {"Q4_1", 32, 20},
      kUnknownType,       kUnknownType,       {"Q5_0", 32, 22},   {"Q5_1", 32, 24},
      {"Q8_0", 32, 34},   {"Q8_1", 32, 36},   {"Q2_K", 256, 84},  {"Q3_K", 256, 110},
      {"Q4_K", 256, 144}, {"Q5_K", 256, 176}, {"Q6_K", 256, 210}, {"Q8_K", 256, 292},
      kUnknownType,       kUnknownType,       kUnknownType,       kUnknownType,
      {"IQ4_NL", 32, 18}, kUnknownType,       kUnknownType,       {"IQ4_XS", 256, 136},
      {"I8", 1, 1},       {"I16", 1, 2},      {"I32", 1, 4},      {"I64", 1, 8},
      {"F64", 1, 8},      kUnknownType,       {"BF16", 1, 2},
  };
  if (id >= std::size(kTable) || kTable[id].name.empty()) return nullptr;
  return &kTable[id];
}

// ggml's names for the types whose layout reft does not know, for error messages.
std::string_view foreign_type_name(uint32_t id) {
  switch (id) {
    case 4:
      return "Q4_2 (removed from ggml)";
    case 5:
      return "Q4_3 (removed from ggml)";
    case 16:
      return "IQ2_XXS";
    case 17:
      return "IQ2_XS";
    case 18:
      return "IQ3_XXS";
    case 19:
      return "IQ1_S";
    case 21:
      return "IQ3_S";
    case 22:
      return "IQ2_S";
    case 29:
      return "IQ1_M";
    case 31:
    case 32:
    case 33:
      return "Q4_0_4_4/4_8/8_8 (removed from ggml)";
    case 34:
      return "TQ1_0";
    case 35:
      return "TQ2_0";
    case 36:
    case 37:
    case 38:
      return "IQ4_NL_4_4/4_8/8_8 (removed from ggml)";
    case 39:
      return "MXFP4";
    default:
      return "";
  }
}

int gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    default:
      return 0;  // string, array, unknown
  }
}

bool known_gguf_type(uint32_t id) { return id <= static_cast<uint32_t>(GgufType::kFloat64); }

// A scalar's bits as stored in GgufValue::bits: signed integers sign-extended.
uint64_t widen(GgufType t, uint64_t raw) {
  switch (t) {
    case GgufType::kInt8:
      return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int8_t>(raw)));
    case GgufType::kInt16:
      return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int16_t>(raw)));
    case GgufType::kInt32:
      return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(raw)));
    default:
      return raw;
  }
}

uint64_t load_le(const char* p, int size) {
  uint64_t v = 0;
  std::memcpy(&v, p, static_cast<size_t>(size));  // little-endian hosts only (x86-64, aarch64)
  return v;
}

double bits_as_double(GgufType t, uint64_t bits) {
  if (t == GgufType::kFloat32) {
    float f;
    const uint32_t b = static_cast<uint32_t>(bits);
    std::memcpy(&f, &b, 4);
    return f;
  }
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

// ---- bounded reading ----

// Where the bytes come from: memory, or a file read in buffered chunks with pread(2).
class Source {
 public:
  virtual ~Source() = default;
  // Copies [offset, offset + n) — the caller has checked it lies inside size().
  virtual void read(uint64_t offset, char* dst, size_t n) = 0;
  uint64_t size() const { return size_; }

 protected:
  uint64_t size_ = 0;
};

class MemorySource : public Source {
 public:
  explicit MemorySource(std::string_view bytes) : bytes_(bytes) { size_ = bytes.size(); }
  void read(uint64_t offset, char* dst, size_t n) override {
    std::memcpy(dst, bytes_.data() + offset, n);
  }

 private:
  std::string_view bytes_;
};

class FileSource : public Source {
 public:
  FileSource(const fs::path& path, const std::string& where) : where_(where) {
    fd_ = open_regular_file(path);
    size_ = regular_file_size(fd_);
  }
  ~FileSource() override { ::close(fd_); }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  void read(uint64_t offset, char* dst, size_t n) override {
    while (n > 0) {
      if (offset >= buf_begin_ && offset < buf_begin_ + buf_.size()) {
        const size_t at = static_cast<size_t>(offset - buf_begin_);
        const size_t take = std::min(n, buf_.size() - at);
        std::memcpy(dst, buf_.data() + at, take);
        dst += take;
        offset += take;
        n -= take;
        continue;
      }
      buf_.resize(static_cast<size_t>(std::min<uint64_t>(kChunk, size_ - offset)));
      size_t got = 0;
      while (got < buf_.size()) {
        const ssize_t r =
            ::pread(fd_, buf_.data() + got, buf_.size() - got, static_cast<off_t>(offset + got));
        if (r <= 0) {
          buf_.clear();
          fail("[", where_, "] expected to read ", size_,
               " bytes, found the file shorter or "
               "unreadable at offset ",
               offset + got, " (", r < 0 ? std::strerror(errno) : "EOF", ")");
        }
        got += static_cast<size_t>(r);
      }
      buf_begin_ = offset;
    }
  }

 private:
  static constexpr size_t kChunk = size_t{1} << 20;
  std::string where_;
  int fd_ = -1;
  std::string buf_;
  uint64_t buf_begin_ = 0;
};

// Reads the metadata and tensor infos front to back, each read bounded by the bytes left.
class Cursor {
 public:
  Cursor(Source& src, const std::string& where) : src_(src), where_(where) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return src_.size() - pos_; }
  const std::string& where() const { return where_; }

  void need(uint64_t n, const std::string& what) {
    if (n > left())
      fail("[", where_, "] expected ", n, " bytes for ", what, " at offset ", pos_, ", found ",
           left(), "; the file is truncated");
  }
  uint64_t scalar(int size, const std::string& what) {
    need(static_cast<uint64_t>(size), what);
    char b[8];
    src_.read(pos_, b, static_cast<size_t>(size));
    pos_ += static_cast<uint64_t>(size);
    return load_le(b, size);
  }
  uint32_t u32(const std::string& what) { return static_cast<uint32_t>(scalar(4, what)); }
  uint64_t u64(const std::string& what) { return scalar(8, what); }
  void bytes(std::string* out, uint64_t n, const std::string& what) {
    need(n, what);  // before the allocation
    out->resize(static_cast<size_t>(n));
    src_.read(pos_, out->data(), static_cast<size_t>(n));
    pos_ += n;
  }
  // Arrays of arrays cost ~150 bytes of memory per element for 12 bytes of file; their total is
  // capped so that such a file cannot take more than a few times its size.
  uint64_t nested_arrays_left = kMaxNestedArrays;

  std::string string(const std::string& what) {
    const uint64_t at = pos_;
    const uint64_t len = u64("the length of " + what);
    if (len > left())
      fail("[", where_, "] expected the length of ", what, " at offset ", at, " to be at most ",
           left(), " (the bytes left in the file), found ", len,
           "; the file is truncated or corrupt");
    std::string s;
    bytes(&s, len, what);
    return s;
  }

 private:
  Source& src_;
  std::string where_;
  uint64_t pos_ = 0;
};

GgufType read_value_type(Cursor& in, const std::string& what) {
  const uint64_t at = in.pos();
  const uint32_t id = in.u32("the value type of " + what);
  if (!known_gguf_type(id))
    fail("[", in.where(), "] ", what, ": expected a GGUF value type (0..12), found ", id,
         " at offset ", at, "; the file is corrupt");
  return static_cast<GgufType>(id);
}

GgufValue read_value(Cursor& in, GgufType type, const std::string& what, int depth);

void read_array(Cursor& in, GgufValue* v, const std::string& what, int depth) {
  if (depth >= kGgufMaxArrayDepth)
    fail("[", in.where(), "] ", what, ": expected arrays nested at most ", kGgufMaxArrayDepth,
         " deep, found deeper; the file is corrupt");
  v->elem_type = read_value_type(in, what + " (array element type)");
  const uint64_t at = in.pos();
  v->count = in.u64("the length of " + what);
  // The fewest bytes one element takes in the file bounds the count before any allocation.
  const int scalar = gguf_scalar_size(v->elem_type);
  const uint64_t min_bytes = scalar > 0                          ? static_cast<uint64_t>(scalar)
                             : v->elem_type == GgufType::kString ? 8
                                                                 : 12;  // nested: type + length
  if (v->count > in.left() / min_bytes)
    fail("[", in.where(), "] ", what, ": expected an array of at most ", in.left() / min_bytes, " ",
         gguf_type_name(v->elem_type), " elements (the bytes left in the file), found length ",
         v->count, " at offset ", at, "; the file is truncated or corrupt");
  if (scalar > 0) {
    in.bytes(&v->raw, v->count * static_cast<uint64_t>(scalar), what);
    if (v->elem_type == GgufType::kBool)
      for (char c : v->raw)
        if (c != 0 && c != 1)
          fail("[", in.where(), "] ", what, ": expected bools 0 or 1, found ",
               static_cast<int>(static_cast<unsigned char>(c)));
  } else if (v->elem_type == GgufType::kString) {
    v->strings.reserve(static_cast<size_t>(v->count));
    for (uint64_t i = 0; i < v->count; ++i)
      v->strings.push_back(in.string(what + "[" + std::to_string(i) + "]"));
  } else {
    if (v->count > in.nested_arrays_left)
      fail("[", in.where(), "] ", what, ": expected at most ", kMaxNestedArrays,
           " arrays inside arrays in the metadata, found more; the file is corrupt");
    in.nested_arrays_left -= v->count;
    v->arrays.reserve(static_cast<size_t>(v->count));
    for (uint64_t i = 0; i < v->count; ++i)
      v->arrays.push_back(
          read_value(in, GgufType::kArray, what + "[" + std::to_string(i) + "]", depth + 1));
  }
}

GgufValue read_value(Cursor& in, GgufType type, const std::string& what, int depth) {
  GgufValue v;
  v.type = type;
  if (type == GgufType::kString) {
    v.str = in.string(what);
  } else if (type == GgufType::kArray) {
    read_array(in, &v, what, depth);
  } else {
    const int size = gguf_scalar_size(type);
    v.bits = widen(type, in.scalar(size, what));
    if (type == GgufType::kBool && v.bits > 1)
      fail("[", in.where(), "] ", what, ": expected a bool 0 or 1, found ", v.bits);
  }
  return v;
}

// numel / block_size × type_size, saturated at 2^64 − 1 (no file holds that many bytes, so a
// saturated size always fails the bounds check that follows).
uint64_t tensor_nbytes(uint64_t numel, const GgmlTypeInfo& t) {
  const unsigned __int128 n = static_cast<unsigned __int128>(numel / t.block_size) * t.type_size;
  return n > std::numeric_limits<uint64_t>::max() ? std::numeric_limits<uint64_t>::max()
                                                  : static_cast<uint64_t>(n);
}

std::string dims_text(const std::vector<uint64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

GgufFile parse(Source& src, const std::string& where) {
  Cursor in(src, where);
  GgufFile file;
  file.where = where;
  file.file_size = src.size();

  if (src.size() < 4)
    fail("[", where, "] expected the GGUF magic 'GGUF', found a file of ", src.size(), " bytes");
  {
    std::string magic;
    in.bytes(&magic, 4, "the magic");
    if (load_le(magic.data(), 4) != kMagic)
      fail("[", where, "] expected the GGUF magic 'GGUF', found '", printable_name(magic),
           "'; this is not a GGUF file");
  }
  file.version = in.u32("the version");
  if (file.version != 2 && file.version != 3) {
    if (file.version == 1)
      fail("[", where,
           "] expected GGUF version 2 or 3, found 1 (GGUFv1 from before August 2023 "
           "is not read; convert the model again)");
    if ((file.version & 0xffff) == 0)
      fail("[", where, "] expected GGUF version 2 or 3, found ", file.version,
           " (a big-endian GGUF file? only little-endian files are read)");
    fail("[", where, "] expected GGUF version 2 or 3, found ", file.version);
  }
  const uint64_t n_tensors = in.u64("the tensor count");
  const uint64_t n_kv = in.u64("the metadata count");
  // The smallest key/value takes 13 bytes (empty key, type, a u8); a tensor info 24 bytes.
  if (n_kv > in.left() / 13)
    fail("[", where, "] expected at most ", in.left() / 13,
         " metadata entries (the bytes left in the file), found a count of ", n_kv,
         "; the file is truncated or corrupt");
  if (n_tensors > in.left() / 24)
    fail("[", where, "] expected at most ", in.left() / 24,
         " tensors (the bytes left in the file), found a count of ", n_tensors,
         "; the file is truncated or corrupt");

  file.metadata.reserve(static_cast<size_t>(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = in.string("metadata key #" + std::to_string(i));
    const std::string what = "metadata key '" + printable_name(key) + "'";
    if (file.metadata_index.count(key))
      fail("[", where, "] expected unique metadata keys, found '", printable_name(key), "' twice");
    const GgufType type = read_value_type(in, what);
    GgufValue value = read_value(in, type, what, 0);
    file.metadata_index.emplace(key, file.metadata.size());
    file.metadata.emplace_back(std::move(key), std::move(value));
  }

  if (const GgufValue* a = file.find("general.alignment")) {
    if (a->type != GgufType::kUint32)
      fail("[", where, "] expected metadata key 'general.alignment' of type uint32, found ",
           gguf_type_name(a->type));
    if (a->bits == 0 || (a->bits & (a->bits - 1)) != 0)
      fail("[", where, "] expected 'general.alignment' to be a power of two, found ", a->bits);
    file.alignment = a->bits;
  }

  std::map<std::string, size_t> tensor_index;
  file.tensors.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = in.string("the name of tensor #" + std::to_string(i));
    const std::string at = "[" + where + "] tensor '" + printable_name(t.name) + "': ";
    if (t.name.size() > kMaxTensorName)
      fail(at, "expected a name of at most ", kMaxTensorName, " bytes, found ", t.name.size());
    if (tensor_index.count(t.name))
      fail("[", where, "] expected unique tensor names, found '", printable_name(t.name),
           "' twice");
    const uint32_t n_dims =
        in.u32("the dimension count of tensor '" + printable_name(t.name) + "'");
    if (n_dims < 1 || n_dims > kGgufMaxDims)
      fail(at, "expected 1 to ", kGgufMaxDims, " dimensions, found ", n_dims);
    unsigned __int128 numel = 1;
    bool overflow = false;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t n = in.u64("the dimensions of tensor '" + printable_name(t.name) + "'");
      t.dims.push_back(n);
      if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) overflow = true;
      numel *= n;
      if (numel > static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max()))
        overflow = true;
      if (overflow) numel = 0;  // keep multiplying harmless; reported below
    }
    if (overflow)
      fail(at, "expected dimensions whose product fits in 63 bits, found ", dims_text(t.dims));
    const uint32_t type_id = in.u32("the type of tensor '" + printable_name(t.name) + "'");
    const GgmlTypeInfo* info = type_table(type_id);
    if (!info)
      fail(at,
           "expected a ggml type reft reads (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, "
           "Q2_K..Q8_K, IQ4_NL, IQ4_XS, I8..I64, F64), found type ",
           type_id,
           foreign_type_name(type_id).empty()
               ? std::string()
               : " (" + std::string(foreign_type_name(type_id)) + ")");
    t.type = static_cast<GgmlType>(type_id);
    if (t.dims[0] % info->block_size != 0)
      fail(at, "expected the first dimension to be a multiple of ", info->block_size,
           " (the block size of ", info->name, "), found ", dims_text(t.dims));
    t.nbytes = tensor_nbytes(static_cast<uint64_t>(numel), *info);
    t.offset = in.u64("the data offset of tensor '" + printable_name(t.name) + "'");
    if (t.offset % file.alignment != 0)
      fail(at, "expected a data offset that is a multiple of the alignment ", file.alignment,
           ", found ", t.offset);
    tensor_index.emplace(t.name, file.tensors.size());
    file.tensors.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t end_of_infos = in.pos();
  const uint64_t pad = (file.alignment - end_of_infos % file.alignment) % file.alignment;
  file.data_offset = end_of_infos + pad;  // end_of_infos ≤ file size < 2^63: no overflow
  if (!file.tensors.empty() && file.data_offset > file.file_size)
    fail("[", where, "] expected the data section at offset ", file.data_offset,
         " inside the file, found a file of ", file.file_size, " bytes; the file is truncated");
  const uint64_t data_size =
      file.file_size > file.data_offset ? file.file_size - file.data_offset : 0;

  std::vector<const GgufTensorInfo*> by_offset;
  for (auto& t : file.tensors) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      fail("[", where, "] tensor '", printable_name(t.name), "': expected its ", t.nbytes,
           " bytes (", dims_text(t.dims), " ", ggml_type_name(static_cast<uint32_t>(t.type)),
           ") at data offset ", t.offset, " inside the ", data_size,
           "-byte data section, found them past its end; the file is truncated or corrupt");
    t.begin = file.data_offset + t.offset;
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](const auto* a, const auto* b) {
    return a->offset < b->offset || (a->offset == b->offset && a->nbytes < b->nbytes);
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const auto& prev = *by_offset[i - 1];
    const auto& cur = *by_offset[i];
    if (prev.nbytes > 0 && cur.nbytes > 0 && cur.offset < prev.offset + prev.nbytes)
      fail("[", where, "] expected tensors not to overlap, found '", printable_name(prev.name),
           "' [", prev.offset, ", ", prev.offset + prev.nbytes, ") and '", printable_name(cur.name),
           "' [", cur.offset, ", ", cur.offset + cur.nbytes,
           ") in the data section; the file is corrupt");
  }
  return file;
}

[[noreturn]] void wrong_type(const GgufFile& f, std::string_view key, const char* expected,
                             const GgufValue* v) {
  fail("[", f.where, "] expected metadata key '", printable_name(std::string(key)), "' of type ",
       expected, ", found ",
       v ? gguf_type_name(v->type) +
               (v->type == GgufType::kArray ? " of " + gguf_type_name(v->elem_type) : std::string())
         : std::string("no such key"));
}

}  // namespace

// ---- values ----

std::string gguf_type_name(GgufType type) {
  static const char* kNames[] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                 "int32",  "float32", "bool",   "string", "array",
                                 "uint64", "int64",   "float64"};
  const auto id = static_cast<uint32_t>(type);
  return id < std::size(kNames) ? kNames[id] : "type " + std::to_string(id);
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kUint16:
    case GgufType::kInt16:
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kUint64:
    case GgufType::kInt64:
      return true;
    default:
      return false;
  }
}

bool GgufValue::is_float() const {
  return type == GgufType::kFloat32 || type == GgufType::kFloat64;
}

int64_t GgufValue::as_int(const std::string& where) const {
  if (!is_integer()) fail("[", where, "] expected an integer, found ", gguf_type_name(type));
  if (type == GgufType::kUint64 &&
      bits > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail("[", where, "] expected an integer below 2^63, found ", bits);
  return static_cast<int64_t>(bits);
}

double GgufValue::as_float(const std::string& where) const {
  if (is_float()) return bits_as_double(type, bits);
  if (is_integer())
    return type == GgufType::kUint64 ? static_cast<double>(bits)
                                     : static_cast<double>(static_cast<int64_t>(bits));
  fail("[", where, "] expected a number, found ", gguf_type_name(type));
}

bool GgufValue::as_bool(const std::string& where) const {
  if (type != GgufType::kBool) fail("[", where, "] expected a bool, found ", gguf_type_name(type));
  return bits != 0;
}

int64_t GgufValue::int_at(uint64_t i) const {
  const int size = gguf_scalar_size(elem_type);
  GgufValue e;
  e.type = elem_type;
  if (type != GgufType::kArray || i >= count || size == 0)
    fail("expected an integer array element ", i, ", found ", gguf_type_name(type), " of ", count);
  e.bits = widen(elem_type, load_le(raw.data() + i * static_cast<uint64_t>(size), size));
  return e.as_int("array element " + std::to_string(i));
}

double GgufValue::float_at(uint64_t i) const {
  const int size = gguf_scalar_size(elem_type);
  GgufValue e;
  e.type = elem_type;
  if (type != GgufType::kArray || i >= count || size == 0)
    fail("expected a numeric array element ", i, ", found ", gguf_type_name(type), " of ", count);
  e.bits = widen(elem_type, load_le(raw.data() + i * static_cast<uint64_t>(size), size));
  return e.as_float("array element " + std::to_string(i));
}

GgufValue GgufValue::u32(uint32_t v) {
  GgufValue out;
  out.type = GgufType::kUint32;
  out.bits = v;
  return out;
}
GgufValue GgufValue::i32(int32_t v) {
  GgufValue out;
  out.type = GgufType::kInt32;
  out.bits = static_cast<uint64_t>(static_cast<int64_t>(v));
  return out;
}
GgufValue GgufValue::u64(uint64_t v) {
  GgufValue out;
  out.type = GgufType::kUint64;
  out.bits = v;
  return out;
}
GgufValue GgufValue::f32(float v) {
  GgufValue out;
  out.type = GgufType::kFloat32;
  uint32_t b;
  std::memcpy(&b, &v, 4);
  out.bits = b;
  return out;
}
GgufValue GgufValue::boolean(bool v) {
  GgufValue out;
  out.type = GgufType::kBool;
  out.bits = v ? 1 : 0;
  return out;
}
GgufValue GgufValue::string(std::string v) {
  GgufValue out;
  out.type = GgufType::kString;
  out.str = std::move(v);
  return out;
}
GgufValue GgufValue::string_array(std::vector<std::string> v) {
  GgufValue out;
  out.type = GgufType::kArray;
  out.elem_type = GgufType::kString;
  out.count = v.size();
  out.strings = std::move(v);
  return out;
}
GgufValue GgufValue::i32_array(const std::vector<int32_t>& v) {
  GgufValue out;
  out.type = GgufType::kArray;
  out.elem_type = GgufType::kInt32;
  out.count = v.size();
  out.raw.assign(reinterpret_cast<const char*>(v.data()), v.size() * 4);
  return out;
}
GgufValue GgufValue::f32_array(const std::vector<float>& v) {
  GgufValue out;
  out.type = GgufType::kArray;
  out.elem_type = GgufType::kFloat32;
  out.count = v.size();
  out.raw.assign(reinterpret_cast<const char*>(v.data()), v.size() * 4);
  return out;
}
GgufValue GgufValue::array_of_arrays(std::vector<GgufValue> v) {
  GgufValue out;
  out.type = GgufType::kArray;
  out.elem_type = GgufType::kArray;
  out.count = v.size();
  out.arrays = std::move(v);
  return out;
}

// ---- types ----

const GgmlTypeInfo* ggml_type_info(uint32_t id) { return type_table(id); }

std::string ggml_type_name(uint32_t id) {
  if (const auto* t = type_table(id)) return std::string(t->name);
  const auto foreign = foreign_type_name(id);
  return foreign.empty() ? "type " + std::to_string(id) : std::string(foreign);
}

GgmlType ggml_type_from_name(std::string_view name) {
  std::string upper(name);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (uint32_t id = 0; id < 64; ++id)
    if (const auto* t = type_table(id); t && t->name == upper) return static_cast<GgmlType>(id);
  fail("expected a ggml type (f32, f16, bf16, q8_0, q4_0, q4_k, …), found '",
       printable_name(std::string(name)), "'");
}

uint64_t GgufTensorInfo::numel() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  return n;
}

// ---- the file ----

const GgufValue* GgufFile::find(std::string_view key) const {
  const auto it = metadata_index.find(std::string(key));
  return it == metadata_index.end() ? nullptr : &metadata[it->second].second;
}

const std::string& GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v || v->type != GgufType::kString) wrong_type(*this, key, "string", v);
  return v->str;
}

std::string GgufFile::get_string(std::string_view key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

int64_t GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v || !v->is_integer()) wrong_type(*this, key, "integer", v);
  return v->as_int(where + "] [" + std::string(key));
}

int64_t GgufFile::get_int(std::string_view key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v || !(v->is_float() || v->is_integer())) wrong_type(*this, key, "float", v);
  return v->as_float(where);
}

double GgufFile::get_float(std::string_view key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}

bool GgufFile::get_bool(std::string_view key, bool fallback) const {
  const GgufValue* v = find(key);
  if (!v) return fallback;
  if (v->type != GgufType::kBool) wrong_type(*this, key, "bool", v);
  return v->bits != 0;
}

const GgufValue& GgufFile::get_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v || v->type != GgufType::kArray) wrong_type(*this, key, "array", v);
  return *v;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

GgufFile parse_gguf_layout(std::string_view bytes, const std::string& where) {
  MemorySource src(bytes);
  return parse(src, where);
}

GgufFile parse_gguf_layout(const fs::path& path) {
  FileSource src(path, path.string());
  return parse(src, path.string());
}

// ---- writing ----

namespace {

void put(std::string& out, uint64_t v, int size) {
  char b[8];
  std::memcpy(b, &v, 8);  // little-endian hosts only
  out.append(b, static_cast<size_t>(size));
}

void put_string(std::string& out, const std::string& s) {
  put(out, s.size(), 8);
  out += s;
}

void put_value_body(std::string& out, const GgufValue& v, const std::string& what) {
  switch (v.type) {
    case GgufType::kString:
      put_string(out, v.str);
      return;
    case GgufType::kArray: {
      put(out, static_cast<uint32_t>(v.elem_type), 4);
      put(out, v.count, 8);
      const int size = gguf_scalar_size(v.elem_type);
      if (size > 0) {
        if (v.raw.size() != v.count * static_cast<uint64_t>(size))
          fail("[", what, "] expected ", v.count * static_cast<uint64_t>(size),
               " bytes of array elements, found ", v.raw.size());
        out += v.raw;
      } else if (v.elem_type == GgufType::kString) {
        if (v.strings.size() != v.count)
          fail("[", what, "] expected ", v.count, " strings, found ", v.strings.size());
        for (const auto& s : v.strings) put_string(out, s);
      } else if (v.elem_type == GgufType::kArray) {
        if (v.arrays.size() != v.count)
          fail("[", what, "] expected ", v.count, " arrays, found ", v.arrays.size());
        for (const auto& a : v.arrays) {
          if (a.type != GgufType::kArray)
            fail("[", what, "] expected array elements, found ", gguf_type_name(a.type));
          put_value_body(out, a, what);
        }
      } else {
        fail("[", what, "] expected a GGUF element type, found ", gguf_type_name(v.elem_type));
      }
      return;
    }
    default: {
      const int size = gguf_scalar_size(v.type);
      if (size == 0)
        fail("[", what, "] expected a GGUF value type, found ", gguf_type_name(v.type));
      put(out, v.bits, size);
    }
  }
}

}  // namespace

std::string gguf_bytes(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                       const std::vector<GgufTensorData>& tensors) {
  uint64_t alignment = 32;
  std::map<std::string, int> seen;
  for (const auto& [key, value] : metadata) {
    if (seen[key]++) fail("[gguf writer] expected unique metadata keys, found '", key, "' twice");
    if (key == "general.alignment") {
      if (value.type != GgufType::kUint32 || value.bits == 0 ||
          (value.bits & (value.bits - 1)) != 0)
        fail("[gguf writer] expected 'general.alignment' to be a uint32 power of two");
      alignment = value.bits;
    }
  }
  std::string out;
  put(out, kMagic, 4);
  put(out, 3, 4);
  put(out, tensors.size(), 8);
  put(out, metadata.size(), 8);
  for (const auto& [key, value] : metadata) {
    put_string(out, key);
    put(out, static_cast<uint32_t>(value.type), 4);
    put_value_body(out, value, "gguf writer] [" + key);
  }
  seen.clear();
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const auto& t : tensors) {
    const std::string at = "[gguf writer] tensor '" + t.name + "': ";
    if (seen[t.name]++)
      fail("[gguf writer] expected unique tensor names, found '", t.name, "' twice");
    if (t.name.size() > kMaxTensorName)
      fail(at, "expected a name of at most ", kMaxTensorName, " bytes");
    if (t.dims.empty() || t.dims.size() > kGgufMaxDims)
      fail(at, "expected 1 to ", kGgufMaxDims, " dimensions, found ", t.dims.size());
    const GgmlTypeInfo* info = type_table(static_cast<uint32_t>(t.type));
    if (!info) fail(at, "expected a known ggml type");
    uint64_t numel = 1;
    for (uint64_t d : t.dims) numel *= d;
    if (t.dims[0] % info->block_size != 0)
      fail(at, "expected the first dimension to be a multiple of ", info->block_size);
    if (tensor_nbytes(numel, *info) != t.data.size())
      fail(at, "expected ", tensor_nbytes(numel, *info), " bytes of ", info->name,
           " data for dims ", dims_text(t.dims), ", found ", t.data.size());
    put_string(out, t.name);
    put(out, t.dims.size(), 4);
    for (uint64_t d : t.dims) put(out, d, 8);
    put(out, static_cast<uint32_t>(t.type), 4);
    put(out, offset, 8);
    offsets.push_back(offset);
    offset += (t.data.size() + alignment - 1) / alignment * alignment;
  }
  out.resize((out.size() + alignment - 1) / alignment * alignment, '\0');
  const size_t data_start = out.size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    out.resize(data_start + offsets[i], '\0');
    out += tensors[i].data;
  }
  if (!tensors.empty()) out.resize(data_start + offset, '\0');
  return out;
}

void write_gguf(const fs::path& path,
                const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorData>& tensors) {
  const std::string bytes = gguf_bytes(metadata, tensors);
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

// ---- half floats ----

float fp16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  float magnitude;
  if (exp == 0) {
    magnitude = std::ldexp(static_cast<float>(mant), -24);  // zero or subnormal
  } else if (exp == 31) {
    magnitude =
        mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    const uint32_t bits = ((exp + 112) << 23) | (mant << 13);  // rebias 15 → 127
    std::memcpy(&magnitude, &bits, 4);
  }
  uint32_t bits;
  std::memcpy(&bits, &magnitude, 4);
  bits |= sign;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

uint16_t float_to_fp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  x &= 0x7fffffff;
  if (x >= 0x7f800000) return sign | (x > 0x7f800000 ? 0x7e00 : 0x7c00);  // NaN, infinity
  if (x >= 0x477ff000) return sign | 0x7c00;  // ≥ 65520 rounds to infinity
  if (x < 0x38800000) {                       // below 2^-14: a subnormal half (or zero)
    float magnitude;
    std::memcpy(&magnitude, &x, 4);
    return sign | static_cast<uint16_t>(std::nearbyint(std::ldexp(magnitude, 24)));
  }
  const uint32_t mant = x & 0x7fffff;
  uint32_t h = (((x >> 23) - 112) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // to nearest, ties to even
  return sign | static_cast<uint16_t>(h);
}

float bf16_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

// ---- dequantization ----
//
// Block layouts as ggml defines them (ggml-common.h); "d" is an IEEE half unless said otherwise.
//   Q4_0  (32, 18 B): d, qs[16]; element j < 16 = (qs[j] & 15) − 8, element j + 16 = (qs[j] >> 4) −
//   8,
//                     times d.
//   Q4_1  (32, 20 B): d, m, qs[16]; as Q4_0 without the −8, times d plus m.
//   Q5_0  (32, 22 B): d, qh (u32), qs[16]; the 5th bit of element j is bit j of qh; value − 16.
//   Q5_1  (32, 24 B): d, m, qh, qs[16]; as Q5_0 without the −16, plus m.
//   Q8_0  (32, 34 B): d, qs[32] int8.
//   Q2_K (256, 84 B): scales[16] (low nibble scale, high nibble min, per 16 elements), qs[64]
//                     (2-bit), d, dmin.
//   Q4_K (256, 144 B): d, dmin, scales[12] (eight 6-bit scales and mins), qs[128] (4-bit).
//   Q5_K (256, 176 B): d, dmin, scales[12], qh[32] (5th bits), qs[128].
//   Q6_K (256, 210 B): ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] int8, d.
//   Q3_K (256, 110 B): hmask[32] (3rd bits), qs[64] (low 2 bits), scales[12] (sixteen 6-bit
//                     scales, offset by 32), d.
//   Q8_K (256, 292 B): d (float32), qs[256] int8, bsums[16] int16 (unused here).
//   IQ4_NL (32, 18 B): d, qs[16]; 4-bit indices into a fixed table of 16 non-uniform levels,
//                     nibbles ordered as Q4_0's.
//   IQ4_XS (256, 136 B): d, scales_h (u16), scales_l[4], qs[128]; eight sub-blocks of 32 with a
//                     6-bit scale each (offset by 32), indices as IQ4_NL's.

namespace {

float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_float(h);
}

void dq_q4_0(const uint8_t* b, float* y) {
  const float d = half_at(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0f) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

void dq_q4_1(const uint8_t* b, float* y) {
  const float d = half_at(b), m = half_at(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0f) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

void dq_q5(const uint8_t* b, float* y, bool with_min) {
  const float d = half_at(b);
  const float m = with_min ? half_at(b + 2) : 0.0f;
  const uint8_t* p = b + (with_min ? 4 : 2);
  uint32_t qh;
  std::memcpy(&qh, p, 4);
  const uint8_t* qs = p + 4;
  const int bias = with_min ? 0 : 16;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
    y[j] = static_cast<float>(lo - bias) * d + m;
    y[j + 16] = static_cast<float>(hi - bias) * d + m;
  }
}

void dq_q8_0(const uint8_t* b, float* y) {
  const float d = half_at(b);
  const auto* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

void dq_q2_k(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* qs = b + 16;
  const float d = half_at(b + 80), dmin = half_at(b + 82);
  // Two halves of 128 elements, each from 32 bytes of qs: four passes over the 32 bytes take
  // bits (0,1), (2,3), (4,5), (6,7); each pass covers 32 elements in two groups of 16 with a
  // scale byte of their own.
  int s = 0;
  for (int half = 0; half < 2; ++half) {
    const uint8_t* q = qs + 32 * half;
    for (int shift = 0; shift < 8; shift += 2) {
      for (int group = 0; group < 2; ++group) {
        const float dl = d * static_cast<float>(scales[s] & 0x0f);
        const float ml = dmin * static_cast<float>(scales[s] >> 4);
        ++s;
        for (int l = 0; l < 16; ++l)
          *y++ = dl * static_cast<float>((q[16 * group + l] >> shift) & 3) - ml;
      }
    }
  }
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block's 12 scale bytes: bytes 0..3
// hold scales 0..3 in their low 6 bits, bytes 4..7 mins 0..3; sub-blocks 4..7 take their low 4
// bits from the nibbles of bytes 8..11 and their high 2 bits from the top bits of bytes 0..7.
void k4_scale_min(int j, const uint8_t* q, int* scale, int* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K and Q5_K: four chunks of 64 elements; chunk c reads 32 bytes of qs, low nibbles giving
// sub-block 2c and high nibbles sub-block 2c + 1; Q5_K's 5th bit of element l of sub-block k
// is bit k of qh[l].
void dq_q45_k(const uint8_t* b, float* y, bool five) {
  const float d = half_at(b), dmin = half_at(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + (five ? 48 : 16);
  for (int c = 0; c < 4; ++c) {
    const uint8_t* q = qs + 32 * c;
    for (int nib = 0; nib < 2; ++nib) {
      const int k = 2 * c + nib;
      int sc, mn;
      k4_scale_min(k, scales, &sc, &mn);
      const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(mn);
      for (int l = 0; l < 32; ++l) {
        int v = nib ? q[l] >> 4 : q[l] & 0x0f;
        if (five) v |= ((qh[l] >> k) & 1) << 4;
        *y++ = dl * static_cast<float>(v) - ml;
      }
    }
  }
}

// Q6_K: two halves of 128 elements; half h reads ql[64h .. 64h+63] and qh[32h .. 32h+31]. Of the
// 128, quarter r (32 elements, l = 0..31) takes its low 4 bits from the low (r even) or high (r
// odd) nibble of ql[64h + l + 32·(r & 1)] and its high 2 bits from bits 2r, 2r+1 of qh[32h + l];
// value − 32, times d and the int8 scale of its 16 elements.
void dq_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = half_at(b + 208);
  for (int h = 0; h < 2; ++h) {
    for (int r = 0; r < 4; ++r) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t low_byte = ql[64 * h + l + 32 * (r & 1)];
        const int low = r < 2 ? low_byte & 0x0f : low_byte >> 4;
        const int high = (qh[32 * h + l] >> (2 * r)) & 3;
        const int q = (low | (high << 4)) - 32;
        const int element = 128 * h + 32 * r + l;
        y[element] = d * static_cast<float>(scales[element / 16]) * static_cast<float>(q);
      }
    }
  }
}

// Q3_K: the 6-bit scale k (0..15, one per 16 elements) takes its low 4 bits from the low
// (k < 8) or high (k ≥ 8) nibble of scales[k % 8] and its high 2 bits from bits 2·(k / 4) of
// scales[8 + k % 4]. Element e (half h = e / 128, pass p = (e % 128) / 32, l = e % 32) takes
// bits 2p of qs[32h + l]; it is lowered by 4 unless bit 4h + p of hmask[l] is set.
void dq_q3_k(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  const uint8_t* sc = b + 96;
  const float d = half_at(b + 108);
  for (int e = 0; e < 256; ++e) {
    const int k = e / 16;
    const int low = k < 8 ? sc[k] & 0x0f : sc[k - 8] >> 4;
    const int high = (sc[8 + k % 4] >> (2 * (k / 4))) & 3;
    const int scale = (low | (high << 4)) - 32;
    const int h = e / 128, p = (e % 128) / 32, l = e % 32;
    const int q = (qs[32 * h + l] >> (2 * p)) & 3;
    const int lowered = (hmask[l] >> (4 * h + p)) & 1 ? 0 : 4;
    y[e] = d * static_cast<float>(scale) * static_cast<float>(q - lowered);
  }
}

// The 16 levels of IQ4_NL and IQ4_XS (ggml's kvalues_iq4nl).
constexpr int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                   1,    13,   25,  38,  53,  69,  89,  113};

void dq_iq4_nl(const uint8_t* b, float* y) {
  const float d = half_at(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(kIq4Levels[qs[j] & 0x0f]);
    y[j + 16] = d * static_cast<float>(kIq4Levels[qs[j] >> 4]);
  }
}

// IQ4_XS: sub-block k's scale has low 4 bits from nibble k % 2 of scales_l[k / 2] and high 2
// bits from bits 2k of scales_h; its 32 elements are 16 bytes of qs laid out as IQ4_NL's.
void dq_iq4_xs(const uint8_t* b, float* y) {
  const float d = half_at(b);
  uint16_t scales_h;
  std::memcpy(&scales_h, b + 2, 2);
  const uint8_t* scales_l = b + 4;
  const uint8_t* qs = b + 8;
  for (int k = 0; k < 8; ++k) {
    const int low = (scales_l[k / 2] >> (4 * (k % 2))) & 0x0f;
    const int high = (scales_h >> (2 * k)) & 3;
    const float dl = d * static_cast<float>((low | (high << 4)) - 32);
    for (int j = 0; j < 16; ++j) {
      y[32 * k + j] = dl * static_cast<float>(kIq4Levels[qs[16 * k + j] & 0x0f]);
      y[32 * k + j + 16] = dl * static_cast<float>(kIq4Levels[qs[16 * k + j] >> 4]);
    }
  }
}

void dq_q8_k(const uint8_t* b, float* y) {
  float d;
  std::memcpy(&d, b, 4);
  const auto* qs = reinterpret_cast<const int8_t*>(b + 4);
  for (int j = 0; j < 256; ++j) y[j] = d * static_cast<float>(qs[j]);
}

}  // namespace

bool can_dequantize(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
    case GgmlType::Q8_K:
    case GgmlType::IQ4_NL:
    case GgmlType::IQ4_XS:
      return true;
    default:
      return false;
  }
}

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  const auto id = static_cast<uint32_t>(type);
  const GgmlTypeInfo* info = type_table(id);
  if (!info || !can_dequantize(type))
    fail(
        "[dequantize] expected a type reft dequantizes (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, "
        "Q8_0, Q2_K..Q8_K, IQ4_NL, IQ4_XS), found ",
        ggml_type_name(id));
  if (n < 0 || n % info->block_size != 0)
    fail("[dequantize] expected a multiple of ", info->block_size, " elements for ", info->name,
         ", found ", n);
  const auto* p = static_cast<const uint8_t*>(src);
  const int64_t blocks = n / info->block_size;
  for (int64_t i = 0; i < blocks; ++i, p += info->type_size, dst += info->block_size) {
    switch (type) {
      case GgmlType::F32:
        std::memcpy(dst, p, 4);
        break;
      case GgmlType::F16:
        *dst = half_at(p);
        break;
      case GgmlType::BF16: {
        uint16_t b;
        std::memcpy(&b, p, 2);
        *dst = bf16_to_float(b);
        break;
      }
      case GgmlType::Q4_0:
        dq_q4_0(p, dst);
        break;
      case GgmlType::Q4_1:
        dq_q4_1(p, dst);
        break;
      case GgmlType::Q5_0:
        dq_q5(p, dst, false);
        break;
      case GgmlType::Q5_1:
        dq_q5(p, dst, true);
        break;
      case GgmlType::Q8_0:
        dq_q8_0(p, dst);
        break;
      case GgmlType::Q2_K:
        dq_q2_k(p, dst);
        break;
      case GgmlType::Q3_K:
        dq_q3_k(p, dst);
        break;
      case GgmlType::Q4_K:
        dq_q45_k(p, dst, false);
        break;
      case GgmlType::Q5_K:
        dq_q45_k(p, dst, true);
        break;
      case GgmlType::Q6_K:
        dq_q6_k(p, dst);
        break;
      case GgmlType::Q8_K:
        dq_q8_k(p, dst);
        break;
      case GgmlType::IQ4_NL:
        dq_iq4_nl(p, dst);
        break;
      case GgmlType::IQ4_XS:
        dq_iq4_xs(p, dst);
        break;
      default:
        break;  // excluded above
    }
  }
}

}  // namespace reft
