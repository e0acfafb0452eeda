// libFuzzer target for a pyreft directory's config.json (a pyvene IntervenableConfig), through the
// torch-free layer under read_pyreft_adapter (reft/pyreft_config.h). The input is the file,
// written to a scratch folder and read and checked as read_pyreft_adapter reads it; what comes
// back must hold the contract the rest of the reader relies on. (The intkey_*.bin pickles are
// fuzzed by torch_archive_fuzzer.)
#include "fuzz_util.h"
#include "reft/error.h"
#include "reft/pyreft_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& dir = reft::fuzz::scratch_dir();
  reft::fuzz::write_bytes(dir / "config.json", {reinterpret_cast<const char*>(data), size});
  try {
    const auto config = reft::read_pyreft_config(dir);
    const size_t n = config.representations.size();
    if (n == 0 || n > reft::kMaxPyreftRepresentations || config.dimensions.size() != n)
      __builtin_trap();
    for (const auto& r : config.representations)
      if (r.layer < 0 || (r.rank && *r.rank < 1) || r.type_class.empty() ||
          r.component.find('.') != std::string::npos)
        __builtin_trap();
    for (const auto& d : config.dimensions)
      if (d && *d < 0) __builtin_trap();
  } catch (const reft::Error&) {
  }
  return 0;
}
