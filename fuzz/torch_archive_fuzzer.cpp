// libFuzzer target for the torch.save reader. The first input byte picks what the rest is:
//   even: a whole file (zip or legacy), as read_torch_archive() sees it;
//   odd:  a data.pkl, zipped with storages "0".."3" (64 bytes each) so that mutations reach the
//         unpickler instead of stopping at the zip CRC.
// Only reft::Error may escape; sanitizers catch the rest. See docs/pyreft-files.md for how to run.

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <vector>

#include "pickle/zip_writer.h"
#include "reft/error.h"
#include "reft/torch_archive.h"

namespace {

size_t touch(const reft::PickleValue& v) {
  using Kind = reft::PickleValue::Kind;
  size_t n = 0;
  if (v.kind() == Kind::kTuple || v.kind() == Kind::kList)
    for (const auto& item : v.as_list()) n += touch(item);
  if (v.kind() == Kind::kDict)
    for (const auto& [key, value] : v.as_dict()) n += touch(key) + touch(value);
  if (v.kind() == Kind::kTensor)
    for (uint8_t b : v.as_tensor().contiguous_bytes()) n += b;
  return n;
}

std::vector<uint8_t> zip_pickle(const uint8_t* data, size_t size) {
  std::ostringstream out;
  reft::pickle::ZipWriter zip(out, "fuzz");
  zip.add("archive/data.pkl", {data, size});
  const std::vector<uint8_t> storage(64, 0x3f);
  for (const char* key : {"0", "1", "2", "3"}) zip.add(std::string("archive/data/") + key, storage);
  const std::string version = "3\n";
  zip.add("archive/version", {reinterpret_cast<const uint8_t*>(version.data()), version.size()});
  zip.finish();
  const std::string s = std::move(out).str();
  return {s.begin(), s.end()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::vector<uint8_t> input =
      data[0] % 2 ? zip_pickle(data + 1, size - 1) : std::vector<uint8_t>(data + 1, data + size);
  try {
    touch(reft::parse_torch_archive(std::move(input), "fuzz"));
  } catch (const reft::Error&) {
  }
  return 0;
}
