// Zip container of torch.save files. Layout (APPNOTE.TXT): local header + data per entry, then
// the central directory, then [zip64 end record + zip64 locator] + end-of-central-directory record.
// torch writes STORED entries whose local header carries padding in an extra field (so data is
// 64-byte aligned) and whose sizes live in a data descriptor; the central directory is the truth.

#include "pickle/zip_reader.h"

#include <zlib.h>

#include <algorithm>
#include <limits>

namespace reft::pickle {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50;
constexpr uint32_t kEnd64LocatorSig = 0x07064b50;
constexpr size_t kEndSize = 22;
constexpr size_t kEnd64Size = 56;
constexpr size_t kLocatorSize = 20;
constexpr size_t kCentralSize = 46;
constexpr size_t kLocalSize = 30;
constexpr uint16_t kZip64ExtraId = 0x0001;
// DEFLATE cannot expand more than ~1032:1; a larger claimed size is corrupt (and would otherwise
// let a tiny file request a huge allocation).
constexpr uint64_t kMaxDeflateRatio = 1032;

struct EndRecord {
  uint64_t entries = 0;
  uint64_t cd_size = 0;
  uint64_t cd_offset = 0;
  uint64_t cd_limit = 0;  // where the central directory must end (the first end record)
};

EndRecord read_end_record(std::span<const uint8_t> file, const std::string& where) {
  if (file.size() < kEndSize)
    fail("[", where, "] expected a zip archive of at least ", kEndSize, " bytes, found ",
         file.size(), " bytes; the file is truncated");
  // The end record is the last 22 bytes plus a comment of up to 64 KiB: scan back for a signature
  // whose comment length reaches exactly the end of the file.
  size_t end_pos = SIZE_MAX;
  const size_t lowest = file.size() >= kEndSize + 0xffff ? file.size() - kEndSize - 0xffff : 0;
  for (size_t pos = file.size() - kEndSize + 1; pos-- > lowest;) {
    if (load_le<uint32_t>(&file[pos]) == kEndSig &&
        pos + kEndSize + load_le<uint16_t>(&file[pos + 20]) == file.size()) {
      end_pos = pos;
      break;
    }
  }
  if (end_pos == SIZE_MAX)
    fail("[", where,
         "] expected a zip end-of-central-directory record, found none; the file is "
         "truncated or not a zip archive");

  ByteReader end(file.subspan(end_pos, kEndSize), where);
  end.le<uint32_t>("end record");
  const uint16_t disk = end.le<uint16_t>("end record");
  const uint16_t cd_disk = end.le<uint16_t>("end record");
  const uint16_t entries_on_disk = end.le<uint16_t>("end record");
  EndRecord rec;
  rec.entries = end.le<uint16_t>("end record");
  rec.cd_size = end.le<uint32_t>("end record");
  rec.cd_offset = end.le<uint32_t>("end record");
  rec.cd_limit = end_pos;

  const bool has_locator = end_pos >= kLocatorSize &&
                           load_le<uint32_t>(&file[end_pos - kLocatorSize]) == kEnd64LocatorSig;
  const bool saturated = disk == 0xffff || cd_disk == 0xffff || entries_on_disk == 0xffff ||
                         rec.entries == 0xffff || rec.cd_size == 0xffffffff ||
                         rec.cd_offset == 0xffffffff;
  if (!has_locator) {
    if (saturated)
      fail("[", where,
           "] expected a zip64 end-record locator before the end record (its fields "
           "are saturated), found none; the file is corrupt");
    if (disk != 0 || cd_disk != 0 || entries_on_disk != rec.entries)
      fail("[", where, "] expected a single-disk zip archive, found disk ", disk,
           " of a spanned "
           "archive");
    return rec;
  }

  const size_t locator_pos = end_pos - kLocatorSize;
  ByteReader locator(file.subspan(locator_pos, kLocatorSize), where);
  locator.le<uint32_t>("zip64 locator");
  const uint32_t end64_disk = locator.le<uint32_t>("zip64 locator");
  const uint64_t end64_pos = locator.le<uint64_t>("zip64 locator");
  const uint32_t total_disks = locator.le<uint32_t>("zip64 locator");
  if (end64_disk != 0 || total_disks > 1)
    fail("[", where, "] expected a single-disk zip64 archive, found ", total_disks, " disks");
  if (end64_pos > locator_pos || locator_pos - end64_pos < kEnd64Size)
    fail("[", where, "] zip64 end record offset ", end64_pos, " is out of range (locator at ",
         locator_pos, "); the file is corrupt");
  ByteReader end64(file.subspan(end64_pos, kEnd64Size), where);
  if (end64.le<uint32_t>("zip64 end record") != kEnd64Sig)
    fail("[", where, "] expected the zip64 end-record signature at byte ", end64_pos,
         ", found other bytes; the file is corrupt");
  end64.le<uint64_t>("zip64 end record");  // record size (extensible data is ignored)
  end64.le<uint16_t>("zip64 end record");  // version made by
  end64.le<uint16_t>("zip64 end record");  // version needed
  const uint32_t disk64 = end64.le<uint32_t>("zip64 end record");
  const uint32_t cd_disk64 = end64.le<uint32_t>("zip64 end record");
  const uint64_t entries_on_disk64 = end64.le<uint64_t>("zip64 end record");
  rec.entries = end64.le<uint64_t>("zip64 end record");
  rec.cd_size = end64.le<uint64_t>("zip64 end record");
  rec.cd_offset = end64.le<uint64_t>("zip64 end record");
  rec.cd_limit = end64_pos;
  if (disk64 != 0 || cd_disk64 != 0 || entries_on_disk64 != rec.entries)
    fail("[", where, "] expected a single-disk zip64 archive, found disk ", disk64);
  return rec;
}

// Replaces the saturated 32-bit fields of a central entry with the zip64 extra field's values.
void apply_zip64_extra(std::span<const uint8_t> extra, uint64_t& size, uint64_t& csize,
                       uint64_t& offset, uint16_t disk, const std::string& where) {
  ByteReader fields(extra, where);
  while (fields.remaining() >= 4) {
    const uint16_t id = fields.le<uint16_t>("extra field");
    const uint16_t len = fields.le<uint16_t>("extra field");
    auto body = fields.take(len, "extra field");
    if (id != kZip64ExtraId) continue;
    ByteReader z(body, where);
    if (size == 0xffffffff) size = z.le<uint64_t>("zip64 extra field");
    if (csize == 0xffffffff) csize = z.le<uint64_t>("zip64 extra field");
    if (offset == 0xffffffff) offset = z.le<uint64_t>("zip64 extra field");
    if (disk == 0xffff && z.le<uint32_t>("zip64 extra field") != 0)
      fail("[", where, "] expected entries on disk 0, found another disk");
    return;
  }
  if (!fields.at_end()) fail("[", where, "] truncated extra field in the central directory");
  if (size == 0xffffffff || csize == 0xffffffff || offset == 0xffffffff)
    fail("[", where, "] expected a zip64 extra field for a saturated size or offset, found none");
}

// Inflates a raw DEFLATE stream that must yield exactly `size` bytes. The buffer grows with the
// output (zlib allows a new output buffer between calls), so a header that lies about the size
// cannot make us allocate it up front.
std::vector<uint8_t> inflate_exact(std::span<const uint8_t> in, uint64_t size,
                                   const std::string& what) {
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) fail("[", what, "] zlib inflateInit2 failed");
  std::vector<uint8_t> out(static_cast<size_t>(std::min<uint64_t>(size, 4 * in.size() + 65536)));
  uint8_t empty_output = 0;  // zlib rejects a null next_out even when nothing is to be written
  zs.next_out = &empty_output;
  size_t in_pos = 0, out_pos = 0;  // bytes handed to zlib so far
  int rc = Z_OK;
  constexpr size_t kChunk = std::numeric_limits<uInt>::max();
  while (rc == Z_OK) {
    if (zs.avail_in == 0 && in_pos < in.size()) {
      const size_t n = std::min(kChunk, in.size() - in_pos);
      zs.next_in = const_cast<Bytef*>(in.data() + in_pos);
      zs.avail_in = static_cast<uInt>(n);
      in_pos += n;
    }
    if (zs.avail_out == 0) {
      if (out_pos == out.size() && out.size() < size)
        out.resize(static_cast<size_t>(std::min<uint64_t>(size, 2 * out.size())));
      if (out_pos < out.size()) {
        const size_t n = std::min(kChunk, out.size() - out_pos);
        zs.next_out = out.data() + out_pos;
        zs.avail_out = static_cast<uInt>(n);
        out_pos += n;
      }
    }
    const uInt before_in = zs.avail_in, before_out = zs.avail_out;
    rc = inflate(&zs, Z_NO_FLUSH);
    // No progress with input or output exhausted: the stream wants more than the entry has.
    if (rc == Z_BUF_ERROR || (rc == Z_OK && zs.avail_in == before_in && zs.avail_out == before_out))
      break;
  }
  const bool done =
      rc == Z_STREAM_END && zs.total_out == size && zs.avail_in == 0 && in_pos == in.size();
  const std::string message = zs.msg ? zs.msg : "";
  inflateEnd(&zs);
  if (!done)
    fail("[", what, "] expected a DEFLATE stream of ", in.size(), " bytes inflating to ", size,
         " bytes, found a corrupt or mismatched stream", message.empty() ? "" : " (", message,
         message.empty() ? "" : ")");
  return out;
}

}  // namespace

ZipReader::ZipReader(SharedBytes file, std::string where)
    : file_(std::move(file)), where_(std::move(where)) {
  const auto bytes = file_.span();
  const EndRecord end = read_end_record(bytes, where_);
  if (end.cd_offset > end.cd_limit || end.cd_size > end.cd_limit - end.cd_offset)
    fail("[", where_, "] zip central directory (offset ", end.cd_offset, ", ", end.cd_size,
         " bytes) does not fit before the end record at byte ", end.cd_limit,
         "; the file is truncated or corrupt");
  if (end.entries > end.cd_size / kCentralSize)
    fail("[", where_, "] zip central directory of ", end.cd_size, " bytes cannot hold ",
         end.entries, " entries; the file is corrupt");

  ByteReader cd(bytes.subspan(end.cd_offset, end.cd_size), where_ + ": central directory");
  entries_.reserve(end.entries);
  for (uint64_t i = 0; i < end.entries; ++i) {
    if (cd.le<uint32_t>("central directory entry") != kCentralSig)
      fail("[", where_, "] expected the signature of central directory entry ", i, " at byte ",
           end.cd_offset + cd.position() - 4, ", found other bytes; the file is corrupt");
    cd.take(4, "central directory entry");  // versions
    const uint16_t flags = cd.le<uint16_t>("central directory entry");
    ZipEntry e;
    e.method = cd.le<uint16_t>("central directory entry");
    cd.take(4, "central directory entry");  // time, date
    e.crc32 = cd.le<uint32_t>("central directory entry");
    e.compressed_size = cd.le<uint32_t>("central directory entry");
    e.size = cd.le<uint32_t>("central directory entry");
    const uint16_t name_len = cd.le<uint16_t>("central directory entry");
    const uint16_t extra_len = cd.le<uint16_t>("central directory entry");
    const uint16_t comment_len = cd.le<uint16_t>("central directory entry");
    const uint16_t disk = cd.le<uint16_t>("central directory entry");
    cd.take(6, "central directory entry");  // attributes
    uint64_t local_offset = cd.le<uint32_t>("central directory entry");
    const auto name = cd.take(name_len, "entry name");
    e.name.assign(reinterpret_cast<const char*>(name.data()), name.size());
    const auto extra = cd.take(extra_len, "extra field");
    cd.take(comment_len, "entry comment");
    apply_zip64_extra(extra, e.size, e.compressed_size, local_offset, disk, where_);
    if (disk != 0 && disk != 0xffff)
      fail("[", where_, "] zip entry '", printable(e.name), "': expected disk 0, found disk ",
           disk);

    const std::string what = where_ + ": " + printable(e.name);
    if (e.name.empty()) fail("[", where_, "] zip entry ", i, " has an empty name");
    if (flags & 1) fail("[", what, "] expected an unencrypted zip entry, found an encrypted one");
    if (e.method != 0 && e.method != 8)
      fail("[", what, "] expected zip compression method 0 (stored) or 8 (deflate), found ",
           e.method);
    if (e.method == 0 && e.size != e.compressed_size)
      fail("[", what, "] stored zip entry: expected equal sizes, found ", e.compressed_size,
           " bytes compressed and ", e.size, " bytes uncompressed; the file is corrupt");
    if (e.method == 8 && e.size / kMaxDeflateRatio > e.compressed_size + 1)
      fail("[", what, "] deflated zip entry claims ", e.size, " bytes from ", e.compressed_size,
           " compressed bytes, beyond DEFLATE's maximum ratio; the file is corrupt");

    // The local header: its name must match, and the data must end before the central directory.
    if (local_offset > end.cd_offset || end.cd_offset - local_offset < kLocalSize)
      fail("[", what, "] local header offset ", local_offset,
           " is out of range (central directory at byte ", end.cd_offset, "); the file is corrupt");
    ByteReader local(bytes.subspan(local_offset, end.cd_offset - local_offset), what);
    if (local.le<uint32_t>("local header") != kLocalSig)
      fail("[", what, "] expected a local header signature at byte ", local_offset,
           ", found other bytes; the file is corrupt");
    local.take(22, "local header");
    const uint16_t local_name_len = local.le<uint16_t>("local header");
    const uint16_t local_extra_len = local.le<uint16_t>("local header");
    const auto local_name = local.take(local_name_len, "local header name");
    local.take(local_extra_len, "local header extra field");
    if (!std::equal(local_name.begin(), local_name.end(), name.begin(), name.end()))
      fail("[", what, "] local header names '",
           printable({reinterpret_cast<const char*>(local_name.data()), local_name.size()}),
           "', expected the central directory's name; the file is corrupt");
    if (e.compressed_size > local.remaining())
      fail("[", what, "] expected ", e.compressed_size, " bytes of data at byte ",
           local_offset + local.position(), ", found ", local.remaining(),
           " before the central directory; the file is truncated or corrupt");
    e.data_offset = local_offset + local.position();

    if (!by_name_.emplace(e.name, entries_.size()).second)
      fail("[", where_, "] zip entry '", printable(e.name), "' appears twice; the file is corrupt");
    entries_.push_back(std::move(e));
  }
  if (!cd.at_end())
    fail("[", where_, "] expected the central directory to end after ", end.entries,
         " entries, found ", cd.remaining(), " more bytes; the file is corrupt");
}

const ZipEntry* ZipReader::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &entries_[it->second];
}

SharedBytes ZipReader::read(const ZipEntry& entry) const {
  const std::string what = where_ + ": " + printable(entry.name);
  SharedBytes out;
  const auto packed = file_.span().subspan(entry.data_offset, entry.compressed_size);
  if (entry.method == 0) {
    out = file_.slice(entry.data_offset, entry.compressed_size);
  } else {
    out = SharedBytes::own(inflate_exact(packed, entry.size, what));
  }
  if (entry.crc32 != 0) {
    const uint32_t crc = static_cast<uint32_t>(crc32_z(0, out.data.get(), out.size));
    if (crc != entry.crc32)
      fail("[", what, "] expected CRC-32 ", entry.crc32, ", found ", crc, "; the data is corrupt");
  }
  return out;
}

}  // namespace reft::pickle
