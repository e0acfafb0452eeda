// reft serve driven by real clients: the official OpenAI client for node (the `openai` npm package,
// tests/serve/openai_client_test.mjs) and curl. Greedy answers, streamed or not, must equal
// `reft generate` for the same prompt alone. Skips when node, tests/serve/node_modules (installed
// by scripts/setup.sh: npm ci in tests/serve) or curl is absent.

#include "serve_node_util.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kKey = "client-test-key";
constexpr const char* kPrompt = "Lily and Ben went to the park.";
constexpr int kTokens = 20;

class ServeClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    served_ = new test::ServedStories();
    base_ = served_->generate(kPrompt, "", kTokens);
    adapted_ = served_->generate(kPrompt, "a", kTokens);
    server_ = served_->serve({"--api-key", kKey, "--max-seqs", "4"}).release();
  }
  static void TearDownTestSuite() {
    if (server_) {
      EXPECT_EQ(server_->stop(SIGTERM), 0) << server_->log();
    }
    delete server_;
    delete served_;
  }
  void SetUp() override {
    ASSERT_TRUE(server_->ok()) << server_->log();
    ASSERT_NE(base_, adapted_) << "adapter a changes nothing: the checks could not tell them apart";
  }
  static std::string url() { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  static inline test::ServedStories* served_ = nullptr;
  static inline test::ServerProcess* server_ = nullptr;
  static inline std::string base_, adapted_;
};

TEST_F(ServeClientTest, OfficialOpenAIClient) {
  const std::string node = test::find_program("node");
  if (node.empty()) GTEST_SKIP() << "node is not installed (scripts/setup.sh installs nodejs)";
  if (!fs::exists(fs::path(REFT_SOURCE_DIR) / "tests/serve/node_modules/openai/package.json"))
    GTEST_SKIP() << "the openai npm package is not installed: run scripts/setup.sh (npm ci in "
                    "tests/serve)";
  // stories260K has no chat_template and the adapters no prompt template: a chat of one user
  // message is then that message as the prompt, so chat answers equal the completions'.
  const auto r =
      test::run_program(test::node_command(node, test::serve_script("openai_client_test.mjs"),
                                           {{"--url", url()},
                                            {"--adapter", "a"},
                                            {"--prompt", kPrompt},
                                            {"--max-tokens", std::to_string(kTokens)},
                                            {"--expect-base", base_},
                                            {"--expect-adapter", adapted_},
                                            {"--expect-chat-base", base_},
                                            {"--expect-chat-adapter", adapted_},
                                            {"--api-key", kKey}}),
                        240);
  if (r.status == test::kSkipStatus) GTEST_SKIP() << r.err;
  EXPECT_EQ(r.status, 0) << r.describe();
}

// curl's answer: the body, then the HTTP status on the last line (-w).
struct CurlResult {
  int status = 0;
  std::string body;
};

CurlResult curl(const std::string& curl_path, std::vector<std::string> args) {
  std::vector<std::string> argv = {curl_path, "-sS", "--max-time", "120", "-w", "\n%{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto r = test::run_program(argv, 150);
  EXPECT_EQ(r.status, 0) << r.describe();
  CurlResult c;
  const size_t nl = r.out.rfind('\n');
  if (nl == std::string::npos) return c;
  c.status = std::atoi(r.out.c_str() + nl + 1);
  c.body = r.out.substr(0, nl);
  return c;
}

TEST_F(ServeClientTest, Curl) {
  const std::string curl_path = test::find_program("curl");
  if (curl_path.empty()) GTEST_SKIP() << "curl is not installed";
  const std::vector<std::string> post = {"-H", "Content-Type: application/json", "-H",
                                         std::string("Authorization: Bearer ") + kKey};
  const auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), post.begin(), post.end());
    return more;
  };

  // Not streaming: the adapter's greedy answer, and usage.
  const json body = {
      {"model", "a"}, {"prompt", kPrompt}, {"max_tokens", kTokens}, {"temperature", 0}};
  auto c = curl(curl_path, with({"-d", body.dump(), url() + "/v1/completions"}));
  ASSERT_EQ(c.status, 200) << c.body;
  const json j = json::parse(c.body);
  EXPECT_EQ(j["choices"][0]["text"], adapted_);
  EXPECT_EQ(j["usage"]["total_tokens"],
            j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());

  // Streaming with -N (no buffering): events ending with [DONE] that join into the base's answer.
  json chat = {{"model", "stories260K"},
               {"messages", {{{"role", "user"}, {"content", kPrompt}}}},
               {"max_tokens", kTokens},
               {"temperature", 0},
               {"stream", true}};
  c = curl(curl_path, with({"-N", "-d", chat.dump(), url() + "/v1/chat/completions"}));
  ASSERT_EQ(c.status, 200) << c.body;
  test::HttpResponse sse;
  sse.body = c.body;
  const auto events = sse.events();
  ASSERT_GE(events.size(), 2u) << c.body;
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i)
    text += json::parse(events[i])["choices"][0]["delta"].value("content", "");
  EXPECT_EQ(text, base_);

  // Errors: OpenAI's error JSON with a clear message.
  c = curl(curl_path,
           with({"-d", R"({"model": "nope", "prompt": "x"})", url() + "/v1/completions"}));
  EXPECT_EQ(c.status, 404) << c.body;
  EXPECT_EQ(json::parse(c.body)["error"]["code"], "model_not_found") << c.body;
  c = curl(curl_path, with({"-d", R"({"model": "a", "prompt": )", url() + "/v1/completions"}));
  EXPECT_EQ(c.status, 400) << c.body;
  EXPECT_TRUE(json::parse(c.body)["error"]["message"].is_string()) << c.body;
  c = curl(curl_path, {url() + "/v1/models"});  // no key
  EXPECT_EQ(c.status, 401) << c.body;
  c = curl(curl_path, {url() + "/health"});  // open without the key
  EXPECT_EQ(c.status, 200) << c.body;
  c = curl(curl_path, with({url() + "/v1/models"}));
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(json::parse(c.body)["data"].size(), 4u) << c.body;  // the base and a, b, c
}

}  // namespace
}  // namespace reft
