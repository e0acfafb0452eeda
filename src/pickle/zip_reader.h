#pragma once
// A read-only zip archive in memory, enough for torch.save files: STORED and DEFLATE entries,
// zip64, data descriptors (sizes come from the central directory). Every offset and size is
// checked against the file before use; a malformed archive is a reft::Error naming the file.

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pickle/byte_io.h"

namespace reft::pickle {

struct ZipEntry {
  std::string name;
  uint64_t data_offset = 0;      // first byte of the (compressed) data in the file
  uint64_t compressed_size = 0;  // bytes in the file
  uint64_t size = 0;             // bytes once extracted
  uint16_t method = 0;           // 0 STORED, 8 DEFLATE
  uint32_t crc32 = 0;            // 0 also when the writer skipped it (torch's crc32 option)
};

class ZipReader {
 public:
  /// Parses the central directory of `file`; `where` names it in errors.
  ZipReader(SharedBytes file, std::string where);

  /// Entries in central-directory order.
  const std::vector<ZipEntry>& entries() const { return entries_; }

  /// The entry called `name`, or nullptr.
  const ZipEntry* find(std::string_view name) const;

  /// The extracted bytes of `entry`: a slice of the file for STORED entries, a new buffer for
  /// DEFLATE ones. Checks the CRC-32 when the archive records one (non-zero).
  SharedBytes read(const ZipEntry& entry) const;

 private:
  SharedBytes file_;
  std::string where_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> by_name_;
};

}  // namespace reft::pickle
