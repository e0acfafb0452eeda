#pragma once
// Helpers for tests that craft torch.save files by hand.

#include <cstdint>

#include "pickle/pickle_writer.h"

namespace reft::test {

/// The first three pickles of torch's legacy (non-zip) format: the magic number
/// 0x1950a86a20f9469cfc6c, the protocol version 1001 and a sys_info dict.
inline void write_legacy_header(pickle::PickleWriter& w) {
  namespace op = pickle::op;
  const uint8_t magic[] = {10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  w.proto(2);
  w.op(op::kLong1);
  w.raw(magic);  // LONG1's length byte, then the little-endian digits
  w.op(op::kStop);
  w.proto(2);
  w.integer(1001);
  w.op(op::kStop);
  w.proto(2);
  w.op(op::kEmptyDict);
  w.unicode("little_endian");
  w.boolean(true);
  w.op(op::kSetItem);
  w.op(op::kStop);
}

}  // namespace reft::test
