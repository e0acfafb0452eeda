// reft serve's web page (GET /) in a real headless browser: tests/serve/web_page_test.mjs drives
// Debian's chromium over the DevTools protocol (type the API key, pick models, chat, side by side
// base vs adapter, an error), checks that the greedy answers the page streamed equal those of
// `reft generate`, and saves a screenshot (build/serve_web_page.png), checked here as a PNG of the
// window's size. Skips when node or chromium is absent (scripts/setup.sh installs both).

#include "serve_node_util.h"

namespace reft {
namespace {

namespace fs = std::filesystem;

constexpr const char* kKey = "web-test-key";

// Big-endian 32-bit value at `pos`.
uint32_t be32(const std::string& s, size_t pos) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[pos + i]);
  return v;
}

// Without a browser: the page is one self-contained HTML document that loads nothing else.
TEST(ServeWeb, PageIsSelfContained) {
  test::ServedStories s;
  auto server = s.serve({"--api-key", kKey});
  ASSERT_TRUE(server->ok()) << server->log();
  const auto r = test::http(server->port(), "GET", "/");  // open without the key
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.headers.find("text/html"), std::string::npos) << r.headers;
  EXPECT_EQ(r.body.rfind("<!doctype html>", 0), 0u);
  for (const char* external : {"src=\"http", "href=\"http", "url(http", "@import", "<link"})
    EXPECT_EQ(r.body.find(external), std::string::npos) << "the page refers to " << external;
  EXPECT_LT(r.body.size(), 64u << 10);
  EXPECT_EQ(server->stop(SIGTERM), 0) << server->log();
}

TEST(ServeWeb, ChatAndSideBySideInHeadlessChromium) {
  const std::string node = test::find_program("node");
  const std::string chromium = test::find_program("chromium");
  if (node.empty()) GTEST_SKIP() << "node is not installed (scripts/setup.sh installs nodejs)";
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (scripts/setup.sh installs it)";
  test::ServedStories s;
  const std::string prompt = "Once upon a time";
  const int n = 24;
  const std::string base = s.generate(prompt, "", n), adapted = s.generate(prompt, "b", n);
  ASSERT_NE(base, adapted)
      << "adapter b changes nothing: side by side would show two equal columns";

  auto server = s.serve({"--api-key", kKey, "--max-seqs", "4"});
  ASSERT_TRUE(server->ok()) << server->log();
  const fs::path shot = fs::path(REFT_BINARY_DIR) / "serve_web_page.png";
  fs::remove(shot);
  const std::string url = "http://127.0.0.1:" + std::to_string(server->port()) + "/";
  const auto r = test::run_program(test::node_command(node, test::serve_script("web_page_test.mjs"),
                                                      {{"--url", url},
                                                       {"--adapter", "b"},
                                                       {"--prompt", prompt},
                                                       {"--max-tokens", std::to_string(n)},
                                                       {"--expect-base", base},
                                                       {"--expect-adapter", adapted},
                                                       {"--api-key", kKey},
                                                       {"--chromium", chromium},
                                                       {"--screenshot", shot.string()},
                                                       {"--timeout-s", "240"}}),
                                   300);
  if (r.status == test::kSkipStatus) GTEST_SKIP() << r.err;
  EXPECT_EQ(r.status, 0) << r.describe();

  // The screenshot: a PNG (signature, IHDR first) of the 1280x900 window, not a tiny blank file.
  const std::string png = test::read_text(shot);
  ASSERT_GT(png.size(), 20000u) << shot << " is missing or nearly empty";
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(png.substr(12, 4), "IHDR");
  EXPECT_EQ(be32(png, 16), 1280u);
  EXPECT_EQ(be32(png, 20), 900u);
  EXPECT_EQ(server->stop(SIGTERM), 0) << server->log();
}

}  // namespace
}  // namespace reft
