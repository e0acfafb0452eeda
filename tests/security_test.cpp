// Security and resource bounds of the model-side parsers: names read from files (shard indexes,
// adapter and pyreft folders) cannot lead out of their folder, the pickle reader calls no global
// outside torch's tensor rebuild allow-list, and sizes read from config.json or a safetensors
// header are refused before anything is allocated from them. Every error is one line.

#include <torch/torch.h>

#include <fstream>
#include <sstream>

#include "pickle/zip_writer.h"
#include "reft/adapter.h"
#include "reft/checkpoint.h"
#include "reft/error.h"
#include "reft/model.h"
#include "reft/presets.h"
#include "reft/pyreft.h"
#include "reft/safetensors.h"
#include "reft/torch_archive.h"
#include "test_util.h"
#include "util/files.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::error_of;

void expect_one_line_error(const std::string& message, const std::string& needle) {
  EXPECT_NE(message.find(needle), std::string::npos) << "wanted '" << needle << "' in: " << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

void write_tensor_file(const fs::path& path) { save_safetensors(path, {{"w", torch::ones({2})}}); }

// ---- shard indexes ----

TEST(Security, ShardIndexNamesStayInsideTheModelFolder) {
  test::TempDir tmp;
  const fs::path dir = tmp.path() / "model";
  fs::create_directories(dir);
  write_tensor_file(tmp.path() / "outside.safetensors");
  write_tensor_file(dir / "inside.safetensors");
  const auto index_with = [&](const std::string& file) {
    write_text(dir / "model.safetensors.index.json", json{{"weight_map", {{"w", file}}}}.dump());
    return error_of([&] { Checkpoint::open(dir); });
  };
  EXPECT_EQ(index_with("inside.safetensors"), "(no error)");
  for (const std::string& bad : std::vector<std::string>{
           "../outside.safetensors", (tmp.path() / "outside.safetensors").string(), "..", ".",
           "sub/../../outside.safetensors", std::string("in\nside")})
    expect_one_line_error(index_with(bad), "expected a shard as a file name inside");

  // A symlink inside the folder that leads out of it.
  fs::create_symlink(tmp.path() / "outside.safetensors", dir / "link.safetensors");
  expect_one_line_error(index_with("link.safetensors"), "a symlink that leads out");
  // A symlink to a file inside the folder is fine.
  fs::create_symlink(dir / "inside.safetensors", dir / "alias.safetensors");
  EXPECT_EQ(index_with("alias.safetensors"), "(no error)");
}

TEST(Security, HubCacheSnapshotLinksIntoBlobsAreAccepted) {
  test::TempDir tmp;
  const fs::path snapshot = tmp.path() / "snapshots" / "abc";
  fs::create_directories(snapshot);
  fs::create_directories(tmp.path() / "blobs");
  write_tensor_file(tmp.path() / "blobs" / "1234");
  fs::create_symlink("../../blobs/1234", snapshot / "model-1.safetensors");
  write_text(snapshot / "model.safetensors.index.json",
             json{{"weight_map", {{"w", "model-1.safetensors"}}}}.dump());
  EXPECT_EQ(error_of([&] { Checkpoint::open(snapshot); }), "(no error)");
}

// ---- adapter folders ----

TEST(Security, AdapterFilesMayNotBeSymlinksOutOfTheFolder) {
  test::TempDir tmp;
  const fs::path dir = tmp.path() / "adapter";
  fs::create_directories(dir);
  write_text(tmp.path() / "secret.json", R"({"format": "reft-adapter"})");
  fs::create_symlink(tmp.path() / "secret.json", dir / "reft_config.json");
  expect_one_line_error(error_of([&] { read_adapter_config(dir); }), "a symlink that leads out");
}

TEST(Security, AdapterConfigOfTheWrongTypesIsOneLine) {
  test::TempDir tmp;
  const fs::path dir = tmp.path() / "adapter";
  fs::create_directories(dir);
  write_text(dir / "reft_config.json", R"({"format": 7})");
  expect_one_line_error(error_of([&] { read_adapter_config(dir); }), "reft-adapter");
  write_text(dir / "reft_config.json", R"({"format": "reft-adapter", "version": "x"})");
  expect_one_line_error(error_of([&] { read_adapter_config(dir); }), "field 'version'");
  write_text(dir / "reft_config.json", R"({"format": "reft-adapter", "base_model": 3})");
  expect_one_line_error(error_of([&] { read_adapter_config(dir); }), "field 'base_model'");
}

TEST(Security, PyreftFilesMayNotBeSymlinksOutOfTheFolder) {
  REFT_REQUIRE_SHARED("golden/pyreft/stories260K-loreft-l2-r4-trained");
  test::TempDir tmp;
  const fs::path dir = tmp.path() / "pyreft";
  fs::create_directories(dir);
  std::string intkey;
  for (const auto& e : fs::directory_iterator(shared_path)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("intkey_")) {
      intkey = name;
      fs::copy_file(e.path(), tmp.path() / name);  // outside the folder
      fs::create_symlink(tmp.path() / name, dir / name);
    } else if (name == "config.json") {
      fs::copy_file(e.path(), dir / name);
    }
  }
  ASSERT_FALSE(intkey.empty());
  expect_one_line_error(error_of([&] { read_pyreft_adapter(dir); }), "a symlink that leads out");
  // The same file copied inside loads.
  fs::remove(dir / intkey);
  fs::copy_file(tmp.path() / intkey, dir / intkey);
  EXPECT_EQ(error_of([&] { read_pyreft_adapter(dir); }), "(no error)");
}

// ---- pickles ----

std::vector<uint8_t> archive_of(const std::string& pkl) {
  std::ostringstream out;
  pickle::ZipWriter zip(out, "test");
  zip.add("archive/data.pkl", {reinterpret_cast<const uint8_t*>(pkl.data()), pkl.size()});
  const std::string version = "3\n";
  zip.add("archive/version", {reinterpret_cast<const uint8_t*>(version.data()), version.size()});
  zip.finish();
  const std::string s = std::move(out).str();
  return {s.begin(), s.end()};
}

std::string pickle_error(const std::string& pkl) {
  return error_of([&] { parse_torch_state_dict(archive_of(pkl), "evil.bin"); });
}

TEST(Security, PickleRefusesEveryGlobalOutsideTheAllowList) {
  // What pickle.dumps writes for an object whose __reduce__ returns (os.system, ("id",)):
  // protocol 0 GLOBAL, MARK, a string, TUPLE, REDUCE, STOP.
  for (const char* module_name : {"os\nsystem", "posix\nsystem", "nt\nsystem", "builtins\neval",
                                  "builtins\nexec", "__builtin__\neval", "subprocess\nPopen",
                                  "builtins\ngetattr", "torch\nload", "torch._utils\nsystem"}) {
    const std::string pkl = std::string("c") + module_name + "\n(S'id'\ntR.";
    const std::string message = pickle_error(pkl);
    std::string dotted = module_name;
    dotted[dotted.find('\n')] = '.';
    expect_one_line_error(message, "unsupported global '" + dotted + "'");
    EXPECT_NE(message.find("evil.bin"), std::string::npos) << message;
  }
  // Protocol 2 with BINUNICODE + STACK_GLOBAL (protocol 4's spelling) and a REDUCE.
  std::string p4 = "\x80\x04";
  for (const std::string& s : std::vector<std::string>{"os", "system"}) {
    p4 += 'X';
    const uint32_t n = s.size();
    p4.append(reinterpret_cast<const char*>(&n), 4);
    p4 += s;
  }
  p4 += "\x93)R.";
  expect_one_line_error(pickle_error(p4), "unsupported global 'os.system'");
  // A global name carrying a control character is printed escaped, still on one line.
  const std::string message = pickle_error("cos\x1b[2J\nsystem\n)R.");
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_EQ(message.find('\x1b'), std::string::npos) << message;
}

// ---- sizes from config.json and safetensors headers ----

TEST(Security, AbsurdConfigSizesAreRefusedBeforeAllocating) {
  test::TempDir tmp;
  const fs::path dir = tmp.path() / "model";
  write_preset_model("tiny", dir);
  const json original = read_json_file(dir / "config.json");
  ASSERT_NO_THROW(load_model(dir));
  const double two_40 = 1099511627776.0;
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, json>>{{"hidden_size", json(int64_t{1} << 40)},
                                                 {"head_dim", json(int64_t{1} << 40)},
                                                 {"vocab_size", json(two_40)},
                                                 {"intermediate_size", json(1e300)},
                                                 {"num_hidden_layers", json(int64_t{1} << 40)},
                                                 {"num_attention_heads", json(-8)},
                                                 {"hidden_size", json("64")}}) {
    json config = original;
    config[key] = value;
    write_text(dir / "config.json", config.dump());
    const std::string message = error_of([&] { load_model(dir); });
    expect_one_line_error(message, "field '" + key + "'");
  }
}

TEST(Security, SafetensorsHeadersAreBoundedAndNamesPrintedOnOneLine) {
  test::TempDir tmp;
  const auto with_header = [&](const std::string& header, const std::string& data = "") {
    std::string bytes(8, '\0');
    const uint64_t n = header.size();
    std::memcpy(bytes.data(), &n, 8);
    write_text(tmp.path() / "x.safetensors", bytes + header + data);
    return error_of([&] { SafetensorsFile::open(tmp.path() / "x.safetensors"); });
  };
  // Nesting deep enough to exhaust a recursive parser's stack.
  expect_one_line_error(
      with_header(R"({"a":)" + std::string(100000, '[') + std::string(100000, ']') + "}"),
      "nested at most");
  expect_one_line_error(with_header(R"({"a":)" + std::string(200000, '[')), "nested at most");
  // A tensor name with a newline and an escape sequence.
  expect_one_line_error(
      with_header(R"({"a\nb\u001b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}})"),
      "a\\nb\\x1b");
  // A shape whose product overflows, and one much larger than the data.
  expect_one_line_error(
      with_header(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296],)"
                  R"( "data_offsets": [0, 0]}})"),
      "overflows");
  expect_one_line_error(
      with_header(R"({"w": {"dtype": "F32", "shape": [1073741824], "data_offsets": [0, 4]}})",
                  "abcd"),
      "expected 4294967296 bytes");
}

}  // namespace
}  // namespace reft
