// libFuzzer target for reft adapter folders, through the torch-free layer under load_adapter
// (reft/adapter_files.h). The input is reft_config.json, then interventions.safetensors, the two
// separated by kFileMarker and written to a scratch folder (no marker: the folder has no tensors
// file). The config is read and checked as load_adapter reads it, the tensors file is located and
// its recorded checksum verified, its header validated as SafetensorsFile::open validates it, and
// the "reft" section's position spec parsed as ReftConfig::from_json parses it.
#include <string>

#include "fuzz_util.h"
#include "reft/adapter_files.h"
#include "reft/error.h"
#include "reft/positions.h"
#include "reft/safetensors_layout.h"
#include "util/files.h"

namespace {

void fuzz_adapter(const uint8_t* data, size_t size) {
  const auto& dir = reft::fuzz::scratch_dir();
  const auto parts = reft::fuzz::split_files(data, size, 2);
  reft::fuzz::write_bytes(dir / reft::kAdapterConfigFile, parts[0]);
  if (parts.size() > 1) reft::fuzz::write_bytes(dir / reft::kAdapterTensorFile, parts[1]);
  const auto config = reft::read_adapter_config(dir);
  // read_adapter_config's contract: the sections load_adapter reads with .at() exist.
  if (!config.at("base_model").is_object() || !config.at("reft").is_object()) __builtin_trap();
  const auto& reft = config.at("reft");
  if (auto it = reft.find("positions"); it != reft.end() && it->is_string()) {
    try {
      const auto spec = reft::PositionSpec::parse(it->get<std::string>());
      (void)spec.resolve(7, reft::PositionPart::kAll);
    } catch (const reft::Error&) {
      // A malformed spec ends here in the real loader too; go on to the tensors.
    }
  }
  const auto tensors = reft::adapter_tensor_file(dir, config);
  const std::string bytes = reft::read_file(tensors, size_t{1} << 20);
  const auto layout = reft::parse_safetensors_layout(reinterpret_cast<const uint8_t*>(bytes.data()),
                                                     bytes.size(), tensors.string());
  for (const auto& e : layout.entries)
    if (e.begin > e.end || e.end > bytes.size() - layout.data_offset) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    fuzz_adapter(data, size);
  } catch (const reft::Error&) {
  }
  return 0;
}
