// The README's library example is examples/quickstart.cpp, compiled by the build: the block in
// README.md must be that file's exact text, so the README never shows code that does not build.

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace {

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Readme, LibraryExampleIsTheCompiledQuickstart) {
  const std::string readme = read(REFT_SOURCE_DIR "/README.md");
  const std::string code = read(REFT_SOURCE_DIR "/examples/quickstart.cpp");
  ASSERT_FALSE(readme.empty());
  ASSERT_FALSE(code.empty());
  const auto section = readme.find("## The library");
  ASSERT_NE(section, std::string::npos) << "README.md has no '## The library' section";
  const auto begin = readme.find("```cpp\n", section);
  ASSERT_NE(begin, std::string::npos);
  const auto end = readme.find("```\n", begin + 7);
  ASSERT_NE(end, std::string::npos);
  EXPECT_EQ(readme.substr(begin + 7, end - begin - 7), code)
      << "README.md's library block differs from examples/quickstart.cpp";
}

}  // namespace
