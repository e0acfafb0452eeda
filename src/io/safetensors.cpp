#include "reft/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "io/paths.h"
#include "reft/error.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;

namespace {

// A header larger than this is certainly corrupt (real headers of 70B models are ~1 MiB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DtypeInfo {
  const char* name;
  int itemsize;
  std::optional<torch::Dtype> torch_dtype;  // nullopt: valid safetensors dtype torch lacks
};

const DtypeInfo kDtypes[] = {
    {"F64", 8, torch::kFloat64},   {"F32", 4, torch::kFloat32},  {"F16", 2, torch::kFloat16},
    {"BF16", 2, torch::kBFloat16}, {"I64", 8, torch::kInt64},    {"I32", 4, torch::kInt32},
    {"I16", 2, torch::kInt16},     {"I8", 1, torch::kInt8},      {"U8", 1, torch::kUInt8},
    {"BOOL", 1, torch::kBool},     {"U16", 2, std::nullopt},     {"U32", 4, std::nullopt},
    {"U64", 8, std::nullopt},      {"F8_E4M3", 1, std::nullopt}, {"F8_E5M2", 1, std::nullopt},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

// numel × itemsize with overflow detection.
bool checked_nbytes(const std::vector<int64_t>& shape, int itemsize, uint64_t* out) {
  unsigned __int128 n = static_cast<unsigned>(itemsize);
  for (int64_t d : shape) {
    n *= static_cast<uint64_t>(d);
    if (n > std::numeric_limits<uint64_t>::max()) return false;
  }
  *out = static_cast<uint64_t>(n);
  return true;
}

}  // namespace

std::vector<SafetensorsEntry> parse_safetensors_header(
    const std::string& json_text, uint64_t data_size, const std::string& where,
    std::map<std::string, std::string>* metadata) {
  nlohmann::json header;
  try {
    header = parse_json_bounded(json_text, where);
  } catch (const Error& e) {
    fail(e.what(), " (invalid JSON: the header is corrupt or this is not safetensors)");
  }
  if (!header.is_object())
    fail("[", where, "] expected the header to be a JSON object, found ", header.type_name());

  std::vector<SafetensorsEntry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object())
        fail("[", where, "] expected __metadata__ to be an object, found ", value.type_name());
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string())
          fail("[", where, "] expected __metadata__.", printable_name(k), " to be a string, found ",
               v.type_name());
        if (metadata) (*metadata)[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string at = "[" + where + "] tensor '" + printable_name(name) + "': ";
    if (!value.is_object()) fail(at, "expected an object, found ", value.type_name());
    for (const auto& [k, v] : value.items())
      if (k != "dtype" && k != "shape" && k != "data_offsets")
        fail(at, "expected keys dtype, shape, data_offsets, found unknown key '", printable_name(k),
             "'");
    SafetensorsEntry e;
    e.name = name;
    const auto dt = value.find("dtype");
    if (dt == value.end() || !dt->is_string()) fail(at, "expected a string 'dtype'");
    e.dtype = dt->get<std::string>();
    const DtypeInfo* info = find_dtype(e.dtype);
    if (!info)
      fail(at, "expected a safetensors dtype (F32, F16, BF16, I64, …), found '",
           printable_name(e.dtype), "'");
    const auto sh = value.find("shape");
    if (sh == value.end() || !sh->is_array()) fail(at, "expected an array 'shape'");
    for (const auto& d : *sh) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        fail(at, "expected non-negative integer dimensions, found ", d.dump());
      e.shape.push_back(d.get<int64_t>());
    }
    const auto off = value.find("data_offsets");
    if (off == value.end() || !off->is_array() || off->size() != 2 ||
        !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
      fail(at, "expected 'data_offsets' = [begin, end] of non-negative integers");
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    if (e.begin > e.end)
      fail(at, "expected begin <= end, found data_offsets [", e.begin, ", ", e.end, "]");
    if (e.end > data_size)
      fail(at, "expected data_offsets inside the ", data_size, "-byte data section, found end ",
           e.end, "; the file is truncated or the header lies");
    uint64_t nbytes = 0;
    if (!checked_nbytes(e.shape, info->itemsize, &nbytes))
      fail(at, "shape overflows: the header is corrupt");
    if (nbytes != e.end - e.begin)
      fail(at, "expected ", nbytes, " bytes (numel × ", info->itemsize, " for ", e.dtype,
           "), found data_offsets spanning ", e.end - e.begin);
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
  });
  for (size_t i = 1; i < entries.size(); ++i) {
    const auto& prev = entries[i - 1];
    const auto& cur = entries[i];
    if (cur.begin < prev.end && cur.end > cur.begin && prev.end > prev.begin)
      fail("[", where, "] tensors '", printable_name(prev.name), "' [", prev.begin, ", ", prev.end,
           ") and '", printable_name(cur.name), "' [", cur.begin, ", ", cur.end,
           ") overlap; the header is corrupt");
  }
  return entries;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const fs::path& path) {
  const std::string where = path.string();
  const int fd = open_regular_file(path);
  const uint64_t size = regular_file_size(fd);
  if (size < 8) {
    ::close(fd);
    fail("[", where, "] expected at least 8 bytes (the header length), found ", size,
         "; the file is truncated");
  }
  auto file = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  file->path_ = path;
  // Private writable mapping: tensors can be handed out as ordinary (writable) tensors; a write
  // would only touch this process's copy-on-write page.
  void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) fail("[", where, "] cannot mmap: ", std::strerror(errno));
  file->map_ = static_cast<uint8_t*>(map);
  file->map_size_ = size;

  uint64_t header_len = 0;
  std::memcpy(&header_len, file->map_, 8);  // little-endian hosts only (x86-64, aarch64)
  if (header_len > size - 8 || header_len > kMaxHeaderBytes)
    fail("[", where, "] expected a header length of at most ", std::min(size - 8, kMaxHeaderBytes),
         " bytes, found ", header_len, "; the file is truncated or not safetensors");
  if (header_len < 2 || file->map_[8] != '{')
    fail("[", where, "] expected the header to start with '{'; the file is not safetensors");
  const std::string json_text(reinterpret_cast<const char*>(file->map_ + 8), header_len);
  file->data_ = file->map_ + 8 + header_len;
  file->entries_ =
      parse_safetensors_header(json_text, size - 8 - header_len, where, &file->metadata_);
  for (size_t i = 0; i < file->entries_.size(); ++i) file->index_[file->entries_[i].name] = i;
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) munmap(map_, map_size_);
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

torch::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry* e = find(name);
  if (!e) fail("[", path_.string(), "] tensor '", name, "' not found");
  const DtypeInfo* info = find_dtype(e->dtype);
  if (!info->torch_dtype)
    fail("[", path_.string(), "] tensor '", name, "': dtype ", e->dtype,
         " is valid safetensors but has no libtorch equivalent here");
  const auto options = torch::TensorOptions().dtype(*info->torch_dtype);
  void* ptr = const_cast<uint8_t*>(data_ + e->begin);
  if (reinterpret_cast<uintptr_t>(ptr) % info->itemsize != 0) {
    auto out = torch::empty(e->shape, options);
    if (e->end > e->begin) std::memcpy(out.data_ptr(), ptr, e->end - e->begin);
    return out;
  }
  auto keep = shared_from_this();
  return torch::from_blob(
      ptr, e->shape, [keep](void*) {}, options);
}

std::string safetensors_dtype(torch::Dtype dtype) {
  for (const auto& d : kDtypes)
    if (d.torch_dtype && *d.torch_dtype == dtype) return d.name;
  fail("[safetensors] expected a dtype safetensors can store, found ", c10::toString(dtype));
}

torch::Dtype torch_dtype_of(const std::string& name) {
  const DtypeInfo* d = find_dtype(name);
  if (!d || !d->torch_dtype) fail("[safetensors] expected a supported dtype, found '", name, "'");
  return *d->torch_dtype;
}

void save_safetensors(const fs::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (!seen.insert(name).second) fail("[", path.string(), "] duplicate tensor name '", name, "'");
    if (!t.defined()) fail("[", path.string(), "] tensor '", name, "' is undefined");
    auto c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = c.numel() * c.element_size();
    header[name] = {{"dtype", safetensors_dtype(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(std::move(c));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data section to 8 bytes
  write_file_atomically(path, [&](std::ostream& out) {
    const uint64_t n = text.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(text.data(), text.size());
    for (const auto& t : data)
      out.write(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  });
}

std::map<std::string, torch::Tensor> load_safetensors(const fs::path& path) {
  auto file = SafetensorsFile::open(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& e : file->entries()) out[e.name] = file->tensor(e.name);
  return out;
}

}  // namespace reft
