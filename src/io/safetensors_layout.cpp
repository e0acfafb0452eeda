// The torch-free half of safetensors reading: a file's bytes and a shard index, validated.

#include "reft/safetensors_layout.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "io/paths.h"
#include "reft/error.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;

namespace {

// A header larger than this is certainly corrupt (real headers of 70B models are ~1 MiB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

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

int safetensors_itemsize(std::string_view dtype) {
  static constexpr std::pair<std::string_view, int> kSizes[] = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2},    {"I64", 8},
      {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},      {"BOOL", 1},
      {"U16", 2}, {"U32", 4}, {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  for (const auto& [name, size] : kSizes)
    if (dtype == name) return size;
  return 0;
}

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
    const int itemsize = safetensors_itemsize(e.dtype);
    if (itemsize == 0)
      fail(at, "expected a safetensors dtype (F32, F16, BF16, I64, …), found '",
           printable_name(e.dtype), "'");
    const auto sh = value.find("shape");
    if (sh == value.end() || !sh->is_array()) fail(at, "expected an array 'shape'");
    for (const auto& d : *sh) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        fail(at, "expected non-negative integer dimensions, found ", json_excerpt(d));
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
    if (!checked_nbytes(e.shape, itemsize, &nbytes))
      fail(at, "shape overflows: the header is corrupt");
    if (nbytes != e.end - e.begin)
      fail(at, "expected ", nbytes, " bytes (numel × ", itemsize, " for ", e.dtype,
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

SafetensorsLayout parse_safetensors_layout(const uint8_t* bytes, uint64_t size,
                                           const std::string& where) {
  if (size < 8)
    fail("[", where, "] expected at least 8 bytes (the header length), found ", size,
         "; the file is truncated");
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes, 8);  // little-endian hosts only (x86-64, aarch64)
  if (header_len > size - 8 || header_len > kMaxHeaderBytes)
    fail("[", where, "] expected a header length of at most ", std::min(size - 8, kMaxHeaderBytes),
         " bytes, found ", header_len, "; the file is truncated or not safetensors");
  if (header_len < 2 || bytes[8] != '{')
    fail("[", where, "] expected the header to start with '{'; the file is not safetensors");
  SafetensorsLayout layout;
  layout.data_offset = 8 + header_len;
  const std::string json_text(reinterpret_cast<const char*>(bytes + 8), header_len);
  layout.entries =
      parse_safetensors_header(json_text, size - layout.data_offset, where, &layout.metadata);
  return layout;
}

ShardIndex read_shard_index(const fs::path& dir) {
  const fs::path index = dir / "model.safetensors.index.json";
  const auto json = read_json_file(index);
  const auto map = json.find("weight_map");
  if (!json.is_object() || map == json.end() || !map->is_object())
    fail("[", index.string(), "] expected an object with a 'weight_map' object");
  ShardIndex out;
  std::map<std::string, size_t> position;  // shard file name → index in out.shards
  for (const auto& [name, shard] : map->items()) {
    if (!shard.is_string())
      fail("[", index.string(), "] weight_map.", printable_name(name),
           ": expected a file name, found ", shard.type_name());
    const std::string file = shard.get<std::string>();
    auto [it, inserted] = position.emplace(file, out.shards.size());
    if (inserted)
      out.shards.push_back(file_inside(
          dir, file, index.string() + "] [weight_map." + printable_name(name), "a shard"));
    out.shard_of[name] = it->second;
  }
  return out;
}

}  // namespace reft
