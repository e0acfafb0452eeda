#pragma once
// Writes zip archives the way PyTorch's PyTorchStreamWriter lays them out: STORED entries whose
// data starts at a multiple of 64 bytes (the local header carries an extra field of 'Z' padding,
// id "FB"), zip64 records only where sizes or offsets need them. DEFLATE and forced zip64 exist
// for the tests of the reader.

#include <cstdint>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace reft::pickle {

struct ZipWriterOptions {
  uint64_t alignment = 64;   // data offset of every entry is a multiple of this (1: no padding)
  bool deflate = false;      // compress entries with DEFLATE instead of storing them
  bool force_zip64 = false;  // zip64 fields and end records even where 32 bits suffice
};

class ZipWriter {
 public:
  /// Writes to `out`; `where` names the destination in errors.
  ZipWriter(std::ostream& out, std::string where, ZipWriterOptions options = {});

  /// Appends an entry (local header + data).
  void add(std::string_view name, std::span<const uint8_t> data);

  /// Writes the central directory and end records; throws reft::Error if the stream failed.
  void finish();

 private:
  struct Written {
    std::string name;
    uint64_t offset, size, compressed_size;
    uint32_t crc32;
    uint16_t method;
    bool zip64;
  };
  void put(std::span<const uint8_t> bytes);

  std::ostream& out_;
  std::string where_;
  ZipWriterOptions options_;
  uint64_t offset_ = 0;
  std::vector<Written> written_;
};

}  // namespace reft::pickle
