// util/files: every whole-file read refuses what is not a regular file before it can block, bounds
// the bytes it reads, and reports JSON problems (syntax, nesting) as one line naming the file.

#include "util/files.h"

#include <sys/stat.h>

#include <fstream>

#include "reft/error.h"
#include "test_util.h"

namespace reft {
namespace {

using test::TempDir;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void write(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

TEST(Files, RefusesWhatIsNotARegularFile) {
  TempDir dir;
  const auto fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // A FIFO with no writer: opening it for a plain read would block forever.
  auto e = error_of([&] { read_file(fifo); });
  EXPECT_EQ(e, "[" + fifo.string() + "] expected a regular file, found a FIFO");
  e = error_of([&] { read_json_file(fifo); });
  EXPECT_NE(e.find("found a FIFO"), std::string::npos) << e;
  e = error_of([&] { read_file("/dev/zero"); });
  EXPECT_EQ(e, "[/dev/zero] expected a regular file, found a character device");
  e = error_of([&] { read_file(dir.path()); });
  EXPECT_NE(e.find("found a directory"), std::string::npos) << e;
  e = error_of([&] { read_file(dir / "missing"); });
  EXPECT_NE(e.find("expected a file, found no such file"), std::string::npos) << e;
}

TEST(Files, BoundsTheBytesRead) {
  TempDir dir;
  write(dir / "ten", "0123456789");
  EXPECT_EQ(read_file(dir / "ten"), "0123456789");
  EXPECT_EQ(read_file(dir / "ten", 10), "0123456789");
  const auto e = error_of([&] { read_file(dir / "ten", 9); });
  EXPECT_NE(e.find("expected a file of at most 9 bytes, found 10 bytes"), std::string::npos) << e;
  write(dir / "empty", "");
  EXPECT_EQ(read_file(dir / "empty"), "");
}

TEST(Files, JsonErrorsAreOneLine) {
  TempDir dir;
  write(dir / "bad.json", "{\"a\": [1, 2,");
  auto e = error_of([&] { read_json_file(dir / "bad.json"); });
  EXPECT_EQ(e.rfind("[" + (dir / "bad.json").string() + "] expected valid JSON, found ", 0), 0u)
      << e;
  EXPECT_EQ(e.find("json.exception"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  // Deep nesting is refused before anything walks it recursively.
  write(dir / "deep.json", std::string(100000, '[') + std::string(100000, ']'));
  e = error_of([&] { read_json_file(dir / "deep.json"); });
  EXPECT_NE(e.find("nested at most 256 levels"), std::string::npos) << e;
  write(dir / "ok.json", std::string(200, '[') + std::string(200, ']'));
  EXPECT_TRUE(read_json_file(dir / "ok.json").is_array());
}

}  // namespace
}  // namespace reft
