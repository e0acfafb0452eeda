#include "pickle/zip_writer.h"

#include <zlib.h>

#include <limits>

#include "reft/error.h"

namespace reft::pickle {
namespace {

constexpr uint32_t k32 = 0xffffffff;
constexpr uint16_t kUtf8NamesFlag = 1 << 11;

// Little-endian field appender.
struct Fields {
  std::vector<uint8_t> bytes;
  template <class T>
  Fields& le(T value) {
    for (size_t i = 0; i < sizeof(T); ++i) bytes.push_back(static_cast<uint8_t>(value >> (8 * i)));
    return *this;
  }
  Fields& raw(std::string_view s) {
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }
};

std::vector<uint8_t> deflate_bytes(std::span<const uint8_t> in, const std::string& where) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    fail("[", where, "] zlib deflateInit2 failed");
  if (in.size() > std::numeric_limits<uInt>::max())
    fail("[", where, "] entry too large to deflate");
  std::vector<uint8_t> out(deflateBound(&zs, static_cast<uLong>(in.size())));
  uint8_t empty_input = 0;
  zs.next_in = in.empty() ? &empty_input : const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) fail("[", where, "] zlib deflate failed");
  return out;
}

}  // namespace

ZipWriter::ZipWriter(std::ostream& out, std::string where, ZipWriterOptions options)
    : out_(out), where_(std::move(where)), options_(options) {
  if (options_.alignment == 0) options_.alignment = 1;
}

void ZipWriter::put(std::span<const uint8_t> bytes) {
  out_.write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  offset_ += bytes.size();
}

void ZipWriter::add(std::string_view name, std::span<const uint8_t> data) {
  if (name.empty() || name.size() > 0xffff) fail("[", where_, "] bad zip entry name '", name, "'");
  std::vector<uint8_t> packed;
  if (options_.deflate) packed = deflate_bytes(data, where_);
  const std::span<const uint8_t> body = options_.deflate ? std::span<const uint8_t>(packed) : data;

  Written w{std::string(name),
            offset_,
            data.size(),
            body.size(),
            static_cast<uint32_t>(crc32_z(0, data.data(), data.size())),
            static_cast<uint16_t>(options_.deflate ? 8 : 0),
            false};
  w.zip64 = options_.force_zip64 || w.size >= k32 || w.compressed_size >= k32 || w.offset >= k32;

  Fields extra;
  if (w.zip64) extra.le<uint16_t>(0x0001).le<uint16_t>(16).le(w.size).le(w.compressed_size);
  // Pad with an "FB" field so the data starts on the alignment boundary, as torch does.
  const uint64_t header_end = w.offset + 30 + name.size() + extra.bytes.size() + 4;
  const uint64_t pad = (options_.alignment - header_end % options_.alignment) % options_.alignment;
  if (options_.alignment > 1) {
    extra.le<uint16_t>(0x4246).le<uint16_t>(static_cast<uint16_t>(pad));
    extra.bytes.insert(extra.bytes.end(), pad, 'Z');
  }

  Fields header;
  header.le<uint32_t>(0x04034b50)
      .le<uint16_t>(w.zip64 ? 45 : 20)
      .le<uint16_t>(kUtf8NamesFlag)
      .le<uint16_t>(w.method)
      .le<uint16_t>(0)  // time
      .le<uint16_t>(0)  // date
      .le<uint32_t>(w.crc32)
      .le<uint32_t>(w.zip64 ? k32 : static_cast<uint32_t>(w.compressed_size))
      .le<uint32_t>(w.zip64 ? k32 : static_cast<uint32_t>(w.size))
      .le<uint16_t>(static_cast<uint16_t>(name.size()))
      .le<uint16_t>(static_cast<uint16_t>(extra.bytes.size()))
      .raw(name);
  header.bytes.insert(header.bytes.end(), extra.bytes.begin(), extra.bytes.end());
  put(header.bytes);
  put(body);
  written_.push_back(std::move(w));
}

void ZipWriter::finish() {
  const uint64_t cd_offset = offset_;
  for (const Written& w : written_) {
    Fields extra;
    if (w.zip64)
      extra.le<uint16_t>(0x0001).le<uint16_t>(24).le(w.size).le(w.compressed_size).le(w.offset);
    Fields entry;
    entry.le<uint32_t>(0x02014b50)
        .le<uint16_t>(w.zip64 ? 45 : 20)  // version made by
        .le<uint16_t>(w.zip64 ? 45 : 20)  // version needed
        .le<uint16_t>(kUtf8NamesFlag)
        .le<uint16_t>(w.method)
        .le<uint16_t>(0)
        .le<uint16_t>(0)
        .le<uint32_t>(w.crc32)
        .le<uint32_t>(w.zip64 ? k32 : static_cast<uint32_t>(w.compressed_size))
        .le<uint32_t>(w.zip64 ? k32 : static_cast<uint32_t>(w.size))
        .le<uint16_t>(static_cast<uint16_t>(w.name.size()))
        .le<uint16_t>(static_cast<uint16_t>(extra.bytes.size()))
        .le<uint16_t>(0)  // comment
        .le<uint16_t>(0)  // disk
        .le<uint16_t>(0)  // internal attributes
        .le<uint32_t>(0)  // external attributes
        .le<uint32_t>(w.zip64 ? k32 : static_cast<uint32_t>(w.offset))
        .raw(w.name);
    entry.bytes.insert(entry.bytes.end(), extra.bytes.begin(), extra.bytes.end());
    put(entry.bytes);
  }
  const uint64_t cd_size = offset_ - cd_offset;
  const uint64_t count = written_.size();
  bool zip64 = options_.force_zip64 || count >= 0xffff || cd_offset >= k32 || cd_size >= k32;
  for (const Written& w : written_) zip64 = zip64 || w.zip64;

  Fields end;
  if (zip64) {
    const uint64_t end64_offset = offset_;
    end.le<uint32_t>(0x06064b50)
        .le<uint64_t>(44)
        .le<uint16_t>(45)
        .le<uint16_t>(45)
        .le<uint32_t>(0)
        .le<uint32_t>(0)
        .le<uint64_t>(count)
        .le<uint64_t>(count)
        .le<uint64_t>(cd_size)
        .le<uint64_t>(cd_offset);
    end.le<uint32_t>(0x07064b50).le<uint32_t>(0).le<uint64_t>(end64_offset).le<uint32_t>(1);
  }
  const bool saturate = options_.force_zip64;
  end.le<uint32_t>(0x06054b50)
      .le<uint16_t>(0)
      .le<uint16_t>(0)
      .le<uint16_t>(saturate || count >= 0xffff ? 0xffff : static_cast<uint16_t>(count))
      .le<uint16_t>(saturate || count >= 0xffff ? 0xffff : static_cast<uint16_t>(count))
      .le<uint32_t>(saturate || cd_size >= k32 ? k32 : static_cast<uint32_t>(cd_size))
      .le<uint32_t>(saturate || cd_offset >= k32 ? k32 : static_cast<uint32_t>(cd_offset))
      .le<uint16_t>(0);
  put(end.bytes);
  out_.flush();
  if (!out_) fail("[", where_, "] write failed (disk full or not writable?)");
}

}  // namespace reft::pickle
