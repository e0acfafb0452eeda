// util/files: every whole-file read refuses what is not a regular file before it can block, bounds
// the bytes it reads, and reports JSON problems (syntax, nesting) as one line naming the file.

#include "util/files.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "reft/error.h"
#include "test_util.h"

namespace reft {
namespace {

using test::error_of;
using test::TempDir;

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

// ---- write_directory_atomically ----

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Names in `dir`, sorted.
std::vector<std::string> listing(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

void write_version(const std::filesystem::path& dir, const std::string& version) {
  write_directory_atomically(dir, [&](const std::filesystem::path& tmp) {
    write(tmp / "a", version);
    write(tmp / "b", version);
  });
}

// The id of a process that has exited (and been reaped).
pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

TEST(Files, DirectoryIsReplacedWholeAndNoTemporaryStays) {
  TempDir dir;
  const auto out = dir / "out";
  write_version(out, "1");
  write(out / "only_in_1", "x");
  write_version(out, "2");
  EXPECT_EQ(read_text(out / "a"), "2");
  EXPECT_EQ(listing(out), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(listing(dir.path()), (std::vector<std::string>{"out"}));
}

TEST(Files, DirectoryIsReplacedWithTwoRenamesWhereExchangeIsUnsupported) {
  TempDir dir;
  const auto out = dir / "out";
  disable_rename_exchange_for_testing(true);
  write_version(out, "1");
  write_version(out, "2");
  disable_rename_exchange_for_testing(false);
  EXPECT_EQ(read_text(out / "a"), "2");
  EXPECT_EQ(listing(dir.path()), (std::vector<std::string>{"out"}));
}

TEST(Files, FillThatThrowsKeepsThePreviousDirectory) {
  TempDir dir;
  const auto out = dir / "out";
  write_version(out, "1");
  const auto e = error_of([&] {
    write_directory_atomically(out, [&](const std::filesystem::path& tmp) {
      write(tmp / "a", "2");
      fail("[test] disk full");
    });
  });
  EXPECT_EQ(e, "[test] disk full");
  EXPECT_EQ(read_text(out / "a"), "1");
  EXPECT_EQ(listing(dir.path()), (std::vector<std::string>{"out"}));
}

TEST(Files, WriterKilledWhileFillingLeavesTheOldDirectoryAndTheNextCallCleansUp) {
  TempDir dir;
  const auto out = dir / "out";
  write_version(out, "1");
  const pid_t child = ::fork();
  if (child == 0) {
    write_directory_atomically(out, [&](const std::filesystem::path& tmp) {
      write(tmp / "a", "2");
      ::raise(SIGKILL);
    });
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(read_text(out / "a"), "1");
  const auto left = listing(dir.path());
  ASSERT_EQ(left.size(), 2u) << "the killed writer's temporary directory";
  EXPECT_EQ(left[1].rfind("out.tmp." + std::to_string(child) + ".", 0), 0u) << left[1];
  write_version(out, "3");
  EXPECT_EQ(read_text(out / "a"), "3");
  EXPECT_EQ(listing(dir.path()), (std::vector<std::string>{"out"}));
}

// What a writer killed between the two renames of the fallback leaves: no `out`, its complete old
// copy, the new one. The next call (here one whose fill fails) puts the old copy back.
TEST(Files, MissingDirectoryIsRestoredFromTheOldCopyOfADeadWriter) {
  TempDir dir;
  const auto out = dir / "out";
  const std::string dead = std::to_string(dead_pid());
  std::filesystem::create_directories(dir / ("out.old.tmp." + dead + ".1"));
  write(dir / ("out.old.tmp." + dead + ".1") / "a", "old");
  std::filesystem::create_directories(dir / ("out.tmp." + dead + ".2"));
  write(dir / ("out.tmp." + dead + ".2") / "a", "partial");
  // A live writer's temporaries (this process's id) and unrelated names are left alone.
  const std::string live = std::to_string(::getpid());
  std::filesystem::create_directories(dir / ("out.tmp." + live + ".3"));
  std::filesystem::create_directories(dir / "out.tmp.notes");
  std::filesystem::create_directories(dir / ("outer.tmp." + dead + ".4"));

  const auto e = error_of([&] {
    write_directory_atomically(out, [](const std::filesystem::path&) { fail("[test] no"); });
  });
  EXPECT_EQ(e, "[test] no");
  EXPECT_EQ(read_text(out / "a"), "old");
  EXPECT_EQ(listing(dir.path()),
            (std::vector<std::string>{"out", "out.tmp." + live + ".3", "out.tmp.notes",
                                      "outer.tmp." + dead + ".4"}));
  // With `out` present, a dead writer's old copy is just removed.
  std::filesystem::create_directories(dir / ("out.old.tmp." + dead + ".5"));
  recover_directory_write(out);
  EXPECT_EQ(read_text(out / "a"), "old");
  EXPECT_FALSE(std::filesystem::exists(dir / ("out.old.tmp." + dead + ".5")));
}

}  // namespace
}  // namespace reft
