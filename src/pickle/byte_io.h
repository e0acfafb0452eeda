#pragma once
// Little helpers shared by the zip and pickle code: shared byte buffers, bounds-checked
// little-endian reads, and checked integer arithmetic for sizes taken from untrusted files.

#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "reft/error.h"

namespace reft::pickle {

static_assert(std::endian::native == std::endian::little,
              "the torch.save reader and writer assume a little-endian host");

/// Bytes that keep their owner alive: a whole file, or a slice aliasing it.
struct SharedBytes {
  std::shared_ptr<const uint8_t> data;
  size_t size = 0;

  std::span<const uint8_t> span() const { return {data.get(), size}; }

  /// Takes ownership of `bytes`.
  static SharedBytes own(std::vector<uint8_t> bytes) {
    auto holder = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
    return {std::shared_ptr<const uint8_t>(holder, holder->data()), holder->size()};
  }
  /// `size` bytes at `offset`, sharing ownership; the caller has checked the range.
  SharedBytes slice(size_t offset, size_t length) const {
    return {std::shared_ptr<const uint8_t>(data, data.get() + offset), length};
  }
};

/// `text` from a file, fit for an error message: control bytes (and every non-ASCII byte when the
/// text is not valid UTF-8) as \xNN, cut after `max_len` bytes.
std::string printable(std::string_view text, size_t max_len = 80);

/// Reads a little-endian unsigned integer of sizeof(T) bytes at `p`.
template <class T>
T load_le(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

/// a + b and a * b on sizes, or a reft::Error naming `where` when they overflow int64.
inline int64_t checked_add(int64_t a, int64_t b, const std::string& where) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) fail("[", where, "] size overflow: ", a, " + ", b);
  return r;
}
inline int64_t checked_mul(int64_t a, int64_t b, const std::string& where) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) fail("[", where, "] size overflow: ", a, " * ", b);
  return r;
}

/// A forward cursor over bytes; every read is bounds-checked against the end and fails with
/// `[where] truncated …` naming the offset.
class ByteReader {
 public:
  ByteReader(std::span<const uint8_t> bytes, std::string where)
      : bytes_(bytes), where_(std::move(where)) {}

  size_t position() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }
  bool at_end() const { return pos_ == bytes_.size(); }
  const std::string& where() const { return where_; }

  /// The next `n` bytes, consumed.
  std::span<const uint8_t> take(uint64_t n, const char* what) {
    if (n > remaining())
      fail("[", where_, "] truncated ", what, " at byte ", pos_, ": expected ", n, " bytes, found ",
           remaining());
    auto out = bytes_.subspan(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return out;
  }
  uint8_t u8(const char* what) { return take(1, what)[0]; }
  template <class T>
  T le(const char* what) {
    return load_le<T>(take(sizeof(T), what).data());
  }
  /// Bytes up to (not including) the next '\n', which is consumed; at most `max_len` bytes.
  std::string line(size_t max_len, const char* what) {
    for (size_t i = pos_; i < bytes_.size() && i - pos_ <= max_len; ++i) {
      if (bytes_[i] == '\n') {
        std::string out(reinterpret_cast<const char*>(bytes_.data()) + pos_, i - pos_);
        pos_ = i + 1;
        return out;
      }
    }
    fail("[", where_, "] truncated ", what, " at byte ", pos_, ": expected a line ending in \\n");
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
  std::string where_;
};

}  // namespace reft::pickle
