#pragma once
// What the file-based fuzz targets share: a scratch folder of their own (reft's loaders read model
// folders, not bytes) and splitting one input into several files at NUL bytes (no JSON or text
// file of a tokenizer folder contains a raw NUL, so a mutation rarely moves the split) or, for
// binary files, at a marker.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace reft::fuzz {

/// A folder under $TMPDIR unique to this process, emptied at each call.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() /
             ("reft-fuzz-" + std::to_string(static_cast<long>(getpid())));
    std::filesystem::create_directories(d);
    return d;
  }();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
    std::filesystem::remove_all(entry.path(), ec);
  return dir;
}

inline void write_bytes(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// The input cut at NUL bytes into at most `parts` pieces (the last one keeps any further NULs);
/// missing pieces are absent from the result.
inline std::vector<std::string_view> split_parts(const uint8_t* data, size_t size, size_t parts) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> out;
  while (out.size() + 1 < parts) {
    const size_t nul = rest.find('\0');
    if (nul == std::string_view::npos) break;
    out.push_back(rest.substr(0, nul));
    rest.remove_prefix(nul + 1);
  }
  out.push_back(rest);
  return out;
}

/// Binary files (safetensors, torch.save archives) hold NULs: several of them in one input are
/// separated by this marker instead.
inline constexpr std::string_view kFileMarker("\0\0FILE\0\0", 8);

/// The input cut at kFileMarker into at most `parts` pieces (the last one keeps any further
/// markers).
inline std::vector<std::string_view> split_files(const uint8_t* data, size_t size, size_t parts) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> out;
  while (out.size() + 1 < parts) {
    const size_t at = rest.find(kFileMarker);
    if (at == std::string_view::npos) break;
    out.push_back(rest.substr(0, at));
    rest.remove_prefix(at + kFileMarker.size());
  }
  out.push_back(rest);
  return out;
}

}  // namespace reft::fuzz
