// ScalarType, ArchiveTensor and PickleValue: the plain data types of torch_archive.h.

#include <bit>
#include <cmath>
#include <cstring>

#include "reft/error.h"
#include "reft/torch_archive.h"

namespace reft {
namespace {

// IEEE half → float, exact (subnormals included).
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  if (exp == 0) {  // zero or subnormal: mant · 2^-24
    const float magnitude = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -magnitude : magnitude;
  }
  const uint32_t bits =
      exp == 0x1f ? sign | 0x7f800000 | (mant << 13) : sign | ((exp + 112) << 23) | (mant << 13);
  return std::bit_cast<float>(bits);
}

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

int64_t element_size(ScalarType type) {
  switch (type) {
    case ScalarType::kFloat64:
    case ScalarType::kInt64:
      return 8;
    case ScalarType::kFloat32:
    case ScalarType::kInt32:
      return 4;
    case ScalarType::kFloat16:
    case ScalarType::kBFloat16:
    case ScalarType::kInt16:
      return 2;
    case ScalarType::kInt8:
    case ScalarType::kUInt8:
    case ScalarType::kBool:
      return 1;
  }
  fail("[torch.save] unknown scalar type ", static_cast<int>(type));
}

std::string_view scalar_type_name(ScalarType type) {
  switch (type) {
    case ScalarType::kFloat32:
      return "float32";
    case ScalarType::kFloat16:
      return "float16";
    case ScalarType::kBFloat16:
      return "bfloat16";
    case ScalarType::kFloat64:
      return "float64";
    case ScalarType::kInt64:
      return "int64";
    case ScalarType::kInt32:
      return "int32";
    case ScalarType::kInt16:
      return "int16";
    case ScalarType::kInt8:
      return "int8";
    case ScalarType::kUInt8:
      return "uint8";
    case ScalarType::kBool:
      return "bool";
  }
  return "unknown";
}

int64_t ArchiveTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

bool ArchiveTensor::is_contiguous() const {
  if (stride.size() != shape.size()) return false;
  int64_t expected = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] == 0) return true;
    if (shape[d] != 1 && stride[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

std::vector<uint8_t> ArchiveTensor::contiguous_bytes() const {
  const std::string where = "[ArchiveTensor] ";
  if (stride.size() != shape.size())
    fail(where, "expected one stride per dim, found ", stride.size(), " strides for ", shape.size(),
         " dims");
  const int64_t item = element_size(dtype);
  int64_t count = 1, last = storage_offset;
  bool overflow = storage_offset < 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    overflow |= shape[d] < 0 || stride[d] < 0 || __builtin_mul_overflow(count, shape[d], &count);
    int64_t reach = 0;
    if (shape[d] > 0)
      overflow |= __builtin_mul_overflow(shape[d] - 1, stride[d], &reach) ||
                  __builtin_add_overflow(last, reach, &last);
  }
  int64_t bytes_needed = 0;
  overflow |= __builtin_mul_overflow(count, item, &bytes_needed);
  if (overflow || (count > 0 && (!storage || last >= storage_nbytes / item)))
    fail(where, "the ", scalar_type_name(dtype), " view (offset ", storage_offset, ", ",
         shape.size(), " dims) does not fit its storage of ", storage_nbytes, " bytes");

  std::vector<uint8_t> out(static_cast<size_t>(bytes_needed));
  if (count == 0) return out;
  const uint8_t* base = storage.get();
  if (is_contiguous()) {
    std::memcpy(out.data(), base + storage_offset * item, out.size());
    return out;
  }
  // Walk the index space row-major; copy runs along the last dim when it is dense.
  const size_t rank = shape.size();
  const int64_t run = shape[rank - 1];
  const bool dense_last = stride[rank - 1] == 1;
  std::vector<int64_t> index(rank, 0);
  uint8_t* dst = out.data();
  for (int64_t done = 0; done < count; done += run) {
    int64_t offset = storage_offset;
    for (size_t d = 0; d + 1 < rank; ++d) offset += index[d] * stride[d];
    if (dense_last) {
      std::memcpy(dst, base + offset * item, static_cast<size_t>(run * item));
      dst += run * item;
    } else {
      for (int64_t k = 0; k < run; ++k, dst += item)
        std::memcpy(dst, base + (offset + k * stride[rank - 1]) * item, static_cast<size_t>(item));
    }
    for (size_t d = rank - 1; d-- > 0;) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

std::vector<float> ArchiveTensor::to_float32() const {
  const std::vector<uint8_t> bytes = contiguous_bytes();
  const size_t item = static_cast<size_t>(element_size(dtype));
  std::vector<float> out(bytes.size() / item);
  for (size_t i = 0; i < out.size(); ++i) {
    const uint8_t* p = bytes.data() + i * item;
    switch (dtype) {
      case ScalarType::kFloat32:
        out[i] = load<float>(p);
        break;
      case ScalarType::kFloat16:
        out[i] = half_to_float(load<uint16_t>(p));
        break;
      case ScalarType::kBFloat16:
        out[i] = std::bit_cast<float>(static_cast<uint32_t>(load<uint16_t>(p)) << 16);
        break;
      case ScalarType::kFloat64:
        out[i] = static_cast<float>(load<double>(p));
        break;
      case ScalarType::kInt64:
        out[i] = static_cast<float>(load<int64_t>(p));
        break;
      case ScalarType::kInt32:
        out[i] = static_cast<float>(load<int32_t>(p));
        break;
      case ScalarType::kInt16:
        out[i] = static_cast<float>(load<int16_t>(p));
        break;
      case ScalarType::kInt8:
        out[i] = static_cast<float>(load<int8_t>(p));
        break;
      case ScalarType::kUInt8:
        out[i] = static_cast<float>(*p);
        break;
      case ScalarType::kBool:
        out[i] = *p != 0 ? 1.0f : 0.0f;
        break;
    }
  }
  return out;
}

ArchiveTensor ArchiveTensor::from_bytes(ScalarType dtype, std::vector<int64_t> shape,
                                        std::vector<uint8_t> bytes) {
  ArchiveTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.stride.assign(t.shape.size(), 1);
  int64_t count = 1;
  for (size_t d = t.shape.size(); d-- > 0;) {
    if (t.shape[d] < 0) fail("[ArchiveTensor] negative dim ", t.shape[d]);
    t.stride[d] = count;
    if (__builtin_mul_overflow(count, t.shape[d], &count)) fail("[ArchiveTensor] shape overflows");
  }
  int64_t nbytes = 0;
  if (__builtin_mul_overflow(count, element_size(dtype), &nbytes) ||
      static_cast<uint64_t>(nbytes) != bytes.size())
    fail("[ArchiveTensor] expected ", count, " ", scalar_type_name(dtype), " elements (", nbytes,
         " bytes), found ", bytes.size(), " bytes");
  auto holder = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  t.storage = std::shared_ptr<const uint8_t>(holder, holder->data());
  t.storage_nbytes = nbytes;
  return t;
}

std::string_view kind_name(PickleValue::Kind kind) {
  using K = PickleValue::Kind;
  switch (kind) {
    case K::kNone:
      return "none";
    case K::kBool:
      return "bool";
    case K::kInt:
      return "int";
    case K::kFloat:
      return "float";
    case K::kString:
      return "str";
    case K::kBytes:
      return "bytes";
    case K::kTuple:
      return "tuple";
    case K::kList:
      return "list";
    case K::kDict:
      return "dict";
    case K::kTensor:
      return "tensor";
  }
  return "unknown";
}

namespace {
[[noreturn]] void wrong_kind(const char* expected, PickleValue::Kind found) {
  fail("[PickleValue] expected ", expected, ", found ", kind_name(found));
}
}  // namespace

#define REFT_PICKLE_MAKER(fn, K, T)  \
  PickleValue PickleValue::fn(T v) { \
    PickleValue out;                 \
    out.kind_ = Kind::K;             \
    out.value_ = std::move(v);       \
    return out;                      \
  }
REFT_PICKLE_MAKER(make_bool, kBool, bool)
REFT_PICKLE_MAKER(make_int, kInt, int64_t)
REFT_PICKLE_MAKER(make_float, kFloat, double)
REFT_PICKLE_MAKER(make_string, kString, std::string)
REFT_PICKLE_MAKER(make_bytes, kBytes, std::string)
REFT_PICKLE_MAKER(make_tuple, kTuple, List)
REFT_PICKLE_MAKER(make_list, kList, List)
REFT_PICKLE_MAKER(make_dict, kDict, Dict)
REFT_PICKLE_MAKER(make_tensor, kTensor, ArchiveTensor)
#undef REFT_PICKLE_MAKER

bool PickleValue::as_bool() const {
  if (kind_ != Kind::kBool) wrong_kind("bool", kind_);
  return std::get<bool>(value_);
}
int64_t PickleValue::as_int() const {
  if (kind_ != Kind::kInt) wrong_kind("int", kind_);
  return std::get<int64_t>(value_);
}
double PickleValue::as_float() const {
  if (kind_ != Kind::kFloat) wrong_kind("float", kind_);
  return std::get<double>(value_);
}
const std::string& PickleValue::as_string() const {
  if (kind_ != Kind::kString) wrong_kind("str", kind_);
  return std::get<std::string>(value_);
}
const std::string& PickleValue::as_bytes() const {
  if (kind_ != Kind::kBytes) wrong_kind("bytes", kind_);
  return std::get<std::string>(value_);
}
const PickleValue::List& PickleValue::as_list() const {
  if (kind_ != Kind::kTuple && kind_ != Kind::kList) wrong_kind("tuple or list", kind_);
  return std::get<List>(value_);
}
PickleValue::List& PickleValue::as_list() {
  if (kind_ != Kind::kTuple && kind_ != Kind::kList) wrong_kind("tuple or list", kind_);
  return std::get<List>(value_);
}
const PickleValue::Dict& PickleValue::as_dict() const {
  if (kind_ != Kind::kDict) wrong_kind("dict", kind_);
  return std::get<Dict>(value_);
}
PickleValue::Dict& PickleValue::as_dict() {
  if (kind_ != Kind::kDict) wrong_kind("dict", kind_);
  return std::get<Dict>(value_);
}
const ArchiveTensor& PickleValue::as_tensor() const {
  if (kind_ != Kind::kTensor) wrong_kind("tensor", kind_);
  return std::get<ArchiveTensor>(value_);
}
ArchiveTensor& PickleValue::as_tensor() {
  if (kind_ != Kind::kTensor) wrong_kind("tensor", kind_);
  return std::get<ArchiveTensor>(value_);
}

const PickleValue* PickleValue::find(std::string_view key) const {
  for (const auto& [k, v] : as_dict())
    if (k.kind() == Kind::kString && k.as_string() == key) return &v;
  return nullptr;
}

}  // namespace reft
