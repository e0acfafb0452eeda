#pragma once
// Emits pickle opcodes the way CPython's pickler does at protocol 2, for the torch.save writer
// (and for tests that craft pickles by hand).

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pickle/opcodes.h"

namespace reft::pickle {

class PickleWriter {
 public:
  /// One opcode byte, without argument.
  void op(uint8_t code) { out_.push_back(code); }
  /// Raw bytes (tests: arguments of hand-made opcodes).
  void raw(std::span<const uint8_t> bytes) { out_.insert(out_.end(), bytes.begin(), bytes.end()); }
  void proto(uint8_t version);
  /// GLOBAL "module\nname\n".
  void global(std::string_view module, std::string_view name);
  /// BINUNICODE (4-byte length), the only string opcode torch's weights_only loader reads.
  void unicode(std::string_view text);
  /// BININT1 / BININT2 / BININT / LONG1, whichever CPython's save_long picks.
  void integer(int64_t value);
  void boolean(bool value) { op(value ? op::kNewTrue : op::kNewFalse); }
  /// BINPUT (or LONG_BINPUT) of the top of the stack at the next memo index, which it returns.
  uint32_t put();
  /// BINGET (or LONG_BINGET).
  void get(uint32_t index);
  /// A global or string memoized by value: emitted and put the first time, fetched afterwards
  /// (CPython memoizes by identity, which for these interned objects comes to the same).
  void memo_global(std::string_view module, std::string_view name);
  void memo_unicode(std::string_view text);
  /// Closes a tuple of `n` items: TUPLE1/2/3 after the items, or TUPLE after a MARK (n > 3); an
  /// empty tuple is EMPTY_TUPLE with no MARK. The caller emits MARK first iff n > 3.
  void end_tuple(size_t n);

  const std::vector<uint8_t>& bytes() const { return out_; }
  std::vector<uint8_t> take() { return std::move(out_); }

 private:
  template <class T>
  void le(T value) {
    for (size_t i = 0; i < sizeof(T); ++i) out_.push_back(static_cast<uint8_t>(value >> (8 * i)));
  }

  std::vector<uint8_t> out_;
  uint32_t next_memo_ = 0;
  std::unordered_map<std::string, uint32_t> memo_by_value_;
};

}  // namespace reft::pickle
