#include "pickle/pickle_writer.h"

#include "reft/error.h"

namespace reft::pickle {

void PickleWriter::proto(uint8_t version) {
  op(op::kProto);
  out_.push_back(version);
}

void PickleWriter::global(std::string_view module, std::string_view name) {
  op(op::kGlobal);
  out_.insert(out_.end(), module.begin(), module.end());
  out_.push_back('\n');
  out_.insert(out_.end(), name.begin(), name.end());
  out_.push_back('\n');
}

void PickleWriter::unicode(std::string_view text) {
  if (text.size() > 0xffffffffu) fail("[pickle] string of ", text.size(), " bytes is too long");
  op(op::kBinUnicode);
  le<uint32_t>(static_cast<uint32_t>(text.size()));
  out_.insert(out_.end(), text.begin(), text.end());
}

void PickleWriter::integer(int64_t value) {
  if (value >= 0 && value <= 0xff) {
    op(op::kBinInt1);
    out_.push_back(static_cast<uint8_t>(value));
  } else if (value >= 0 && value <= 0xffff) {
    op(op::kBinInt2);
    le<uint16_t>(static_cast<uint16_t>(value));
  } else if (value >= INT32_MIN && value <= INT32_MAX) {
    op(op::kBinInt);
    le<uint32_t>(static_cast<uint32_t>(static_cast<int32_t>(value)));
  } else {
    // LONG1: the shortest little-endian two's complement that keeps the sign.
    std::vector<uint8_t> bytes;
    const auto u = static_cast<uint64_t>(value);
    for (size_t i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(u >> (8 * i)));
    const uint8_t fill = value < 0 ? 0xff : 0x00;
    while (bytes.size() > 1 && bytes.back() == fill &&
           ((bytes[bytes.size() - 2] & 0x80) != 0) == (value < 0))
      bytes.pop_back();
    op(op::kLong1);
    out_.push_back(static_cast<uint8_t>(bytes.size()));
    raw(bytes);
  }
}

uint32_t PickleWriter::put() {
  const uint32_t index = next_memo_++;
  if (index <= 0xff) {
    op(op::kBinPut);
    out_.push_back(static_cast<uint8_t>(index));
  } else {
    op(op::kLongBinPut);
    le<uint32_t>(index);
  }
  return index;
}

void PickleWriter::get(uint32_t index) {
  if (index <= 0xff) {
    op(op::kBinGet);
    out_.push_back(static_cast<uint8_t>(index));
  } else {
    op(op::kLongBinGet);
    le<uint32_t>(index);
  }
}

void PickleWriter::memo_global(std::string_view module, std::string_view name) {
  std::string key = "G";  // built by appends: GCC 12 misreports operator+ chains (-Wrestrict)
  key.append(module).append("\n").append(name);
  if (auto it = memo_by_value_.find(key); it != memo_by_value_.end()) return get(it->second);
  global(module, name);
  memo_by_value_.emplace(key, put());
}

void PickleWriter::memo_unicode(std::string_view text) {
  std::string key = "S";
  key.append(text);
  if (auto it = memo_by_value_.find(key); it != memo_by_value_.end()) return get(it->second);
  unicode(text);
  memo_by_value_.emplace(key, put());
}

void PickleWriter::end_tuple(size_t n) {
  switch (n) {
    case 0:
      op(op::kEmptyTuple);
      return;
    case 1:
      op(op::kTuple1);
      return;
    case 2:
      op(op::kTuple2);
      return;
    case 3:
      op(op::kTuple3);
      return;
    default:
      op(op::kTuple);
      return;
  }
}

}  // namespace reft::pickle
