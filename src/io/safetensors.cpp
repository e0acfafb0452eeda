#include "reft/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "io/paths.h"
#include "reft/error.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;

namespace {

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

}  // namespace

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

  auto layout = parse_safetensors_layout(file->map_, size, where);
  file->data_ = file->map_ + layout.data_offset;
  file->entries_ = std::move(layout.entries);
  file->metadata_ = std::move(layout.metadata);
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
