// reft serve end to end: the server is started by the test on a free loopback port and driven over
// HTTP. Greedy answers (batched, mixed adapters, streaming or not) must equal `reft generate`;
// bad requests get 4xx with OpenAI's error shape; adapters load and unload at run time inside
// --adapters-dir only; a dropped stream frees its row; SIGTERM drains and exits 0.

#include <torch/torch.h>

#include <future>

#include "reft/adapter.h"
#include "reft/tokenizer_builder.h"
#include "serve_util.h"
#include "torch_test_util.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::http;
using test::post;
using test::ServerProcess;

constexpr const char* kCorpus =
    "Once upon a time there was a little fox who lived in the green forest. The fox liked to run "
    "and jump and play with the rabbits. One day the fox found a shiny stone near the river. ";

// A model folder with a chat template, adapters a and b in adapters/, c outside it and
// adapters/more/late (not loaded at start: only direct subfolders are).
struct Fixture {
  test::TempDir dir;
  fs::path model, adapters, outside;

  Fixture() {
    model = dir.path() / "model";
    adapters = dir.path() / "adapters";
    outside = dir.path() / "outside";
    test::write_tiny_model(model, {{"vocab_size", 300}, {"max_position_embeddings", 2048}}, 5);
    write_byte_level_bpe_tokenizer(model, kCorpus, 300);
    auto config = json::parse(test::read_text(model / "tokenizer_config.json"));
    config["chat_template"] =
        "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}";
    std::ofstream(model / "tokenizer_config.json") << config.dump(2);
    auto base = load_model(model);
    make_adapter(*base, adapters / "a", {1}, "f1+l1", 1);
    make_adapter(*base, adapters / "b", {0, 2}, "l2", 2);
    make_adapter(*base, outside / "c", {2}, "l1", 3);
    make_adapter(*base, adapters / "more" / "late", {1}, "l1", 4);
  }

  static void make_adapter(Model& base, const fs::path& dir, const std::vector<int64_t>& layers,
                           const std::string& positions, uint64_t seed) {
    test::save_random_loreft(base, dir, layers, positions, seed, 2.0);  // an unmistakable edit
  }
};

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fixture_ = new Fixture();
    server_ = new ServerProcess({"--model", fixture_->model.string(), "--adapters-dir",
                                 fixture_->adapters.string(), "--adapter",
                                 "c=" + (fixture_->outside / "c").string(), "--max-seqs", "4",
                                 "--ctx", "256", "--max-body", "65536", "--threads", "1"});
  }
  static void TearDownTestSuite() {
    if (server_) {
      EXPECT_EQ(server_->stop(SIGTERM), 0) << server_->log();
    }
    delete server_;
    delete fixture_;
    server_ = nullptr;
    fixture_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(server_->ok()) << server_->log(); }

  static int port() { return server_->port(); }
  static Fixture& fx() { return *fixture_; }

  // `reft generate` alone: the reference for a greedy answer.
  static std::string generate(const std::string& prompt, const std::string& adapter_dir, int n) {
    std::vector<std::string> args = {"generate",        "--model",   fx().model.string(),
                                     "--prompt",        prompt,      "--max-new-tokens",
                                     std::to_string(n), "--threads", "1"};
    if (!adapter_dir.empty()) args.insert(args.end(), {"--adapter", adapter_dir});
    const auto r = test::reft(args);
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out.substr(0, r.out.size() - 1);  // generate ends with a newline
  }

  static inline Fixture* fixture_ = nullptr;
  static inline ServerProcess* server_ = nullptr;
};

// The text of a completion: the JSON answer's, or the streamed chunks' joined.
std::string completion_text(const test::HttpResponse& r, bool stream, bool chat,
                            std::string* finish = nullptr) {
  if (!stream) {
    const json j = r.json();
    const json& c = j.at("choices").at(0);
    if (finish) *finish = c.at("finish_reason");
    return chat ? c.at("message").at("content").get<std::string>()
                : c.at("text").get<std::string>();
  }
  std::string text;
  const auto events = r.events();
  EXPECT_FALSE(events.empty());
  if (events.empty()) return text;
  EXPECT_EQ(events.back(), "[DONE]");
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json c = json::parse(events[i]).at("choices").at(0);
    if (chat)
      text += c.at("delta").value("content", "");
    else
      text += c.at("text").get<std::string>();
    if (finish && !c.at("finish_reason").is_null()) *finish = c.at("finish_reason");
  }
  return text;
}

TEST_F(ServeTest, HealthModelsPageAndMetrics) {
  EXPECT_EQ(http(port(), "GET", "/health").status, 200);
  const auto models = http(port(), "GET", "/v1/models");
  ASSERT_EQ(models.status, 200) << models.body;
  const json list = models.json();
  std::vector<std::string> ids;
  for (const auto& m : list.at("data")) ids.push_back(m.at("id"));
  EXPECT_EQ(ids, (std::vector<std::string>{"model", "a", "b", "c"}));
  EXPECT_EQ(list["data"][1]["parent"], "model");
  EXPECT_TRUE(list["data"][0]["parent"].is_null());
  const auto page = http(port(), "GET", "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<html"), std::string::npos);
  const auto metrics = http(port(), "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_GE(test::metric_value(metrics.body, "reft_adapters_loaded"), 3);
  EXPECT_NE(metrics.body.find("# TYPE reft_time_to_first_token_seconds histogram"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("reft_http_requests_total{route=\"/v1/models\",code=\"200\"}"),
            std::string::npos)
      << metrics.body;
}

// Every greedy answer of a concurrent, mixed batch equals `reft generate` for that prompt alone.
TEST_F(ServeTest, GreedyCompletionsEqualGenerateAlone) {
  struct Case {
    std::string prompt, model;
    int n;
    bool stream;
  };
  const std::vector<Case> cases = {
      {"Once upon a time", "a", 12, false},    {"The fox", "model", 20, true},
      {"One day the fox found", "b", 9, true}, {"jump and play", "c", 15, false},
      {"near the river", "a", 7, true},        {"a little fox who lived", "b", 14, false},
  };
  std::vector<std::future<test::HttpResponse>> answers;
  for (const auto& c : cases)
    answers.push_back(std::async(std::launch::async, [&c] {
      return post(port(), "/v1/completions",
                  {{"model", c.model},
                   {"prompt", c.prompt},
                   {"max_tokens", c.n},
                   {"temperature", 0},
                   {"stream", c.stream}});
    }));
  std::set<std::string> distinct;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const auto r = answers[i].get();
    ASSERT_EQ(r.status, 200) << r.body;
    const std::string dir = c.model == "model" ? ""
                            : c.model == "c"   ? (fx().outside / "c").string()
                                               : (fx().adapters / c.model).string();
    const std::string got = completion_text(r, c.stream, false);
    EXPECT_EQ(got, generate(c.prompt, dir, c.n)) << c.prompt << " / " << c.model;
    if (!c.stream) {
      const json usage = r.json().at("usage");
      EXPECT_GT(usage.at("prompt_tokens").get<int>(), 0);
      EXPECT_EQ(usage.at("total_tokens").get<int>(),
                usage.at("prompt_tokens").get<int>() + usage.at("completion_tokens").get<int>());
    }
  }
  // The adapters change the answer (else the comparison says nothing about routing).
  for (const std::string m : {"model", "a", "b", "c"})
    distinct.insert(completion_text(
        post(
            port(), "/v1/completions",
            {{"model", m}, {"prompt", "Once upon a time"}, {"max_tokens", 12}, {"temperature", 0}}),
        false, false));
  EXPECT_GE(distinct.size(), 3u);
}

// Chat renders the model's chat_template (bos_token included) and tokenizes it without adding
// special tokens, as transformers' apply_chat_template does.
TEST_F(ServeTest, ChatRendersTheModelsTemplate) {
  const json messages = json::array(
      {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "The fox"}}});
  test::TempDir tmp;
  std::ofstream(tmp.path() / "m.json") << messages.dump();
  const auto rendered = test::reft({"render-chat", "--model", fx().model.string(), "--messages",
                                    (tmp.path() / "m.json").string(), "--add-generation-prompt"});
  ASSERT_EQ(rendered.status, 0) << rendered.err;
  EXPECT_EQ(rendered.out.rfind("<s>system: Be brief.\n", 0), 0u) << rendered.out;
  const auto ids = test::reft(
      {"tokenize", "--model", fx().model.string(), "--text", rendered.out, "--no-special"});
  ASSERT_EQ(ids.status, 0) << ids.err;
  for (bool stream : {false, true}) {
    const auto chat = post(port(), "/v1/chat/completions",
                           {{"model", "b"},
                            {"messages", messages},
                            {"max_tokens", 10},
                            {"temperature", 0},
                            {"stream", stream}});
    ASSERT_EQ(chat.status, 200) << chat.body;
    const auto plain = post(
        port(), "/v1/completions",
        {{"model", "b"}, {"prompt", json::parse(ids.out)}, {"max_tokens", 10}, {"temperature", 0}});
    ASSERT_EQ(plain.status, 200) << plain.body;
    EXPECT_EQ(completion_text(chat, stream, true), completion_text(plain, false, false));
    if (stream) {
      const json first = json::parse(chat.events().at(0));
      EXPECT_EQ(first["object"], "chat.completion.chunk");
      EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
    } else {
      EXPECT_EQ(chat.json()["object"], "chat.completion");
    }
  }
}

TEST_F(ServeTest, StreamingWithUsageAndStopStrings) {
  const auto r = post(port(), "/v1/completions",
                      {{"prompt", "Once upon a time"},
                       {"max_tokens", 6},
                       {"temperature", 0},
                       {"stream", true},
                       {"stream_options", {{"include_usage", true}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.headers.find("text/event-stream"), std::string::npos);
  const auto events = r.events();
  ASSERT_GE(events.size(), 3u);
  const json usage = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_GT(usage["usage"]["completion_tokens"].get<int>(), 0);
  // A stop string cuts the text before it, with finish_reason "stop".
  std::string finish;
  const std::string full = completion_text(
      post(port(), "/v1/completions",
           {{"prompt", "The fox"}, {"max_tokens", 30}, {"temperature", 0}, {"ignore_eos", true}}),
      false, false);
  // Two whole UTF-8 characters from the second half (a random model writes any bytes).
  const auto starts_char = [&](size_t i) {
    return (static_cast<unsigned char>(full[i]) & 0xC0) != 0x80;
  };
  size_t from = full.size() / 2, to = from;
  while (from < full.size() && !starts_char(from)) ++from;
  to = from;
  for (int chars = 0; chars < 2 && to < full.size(); ++chars) do
      ++to;
    while (to < full.size() && !starts_char(to));
  const std::string stop = full.substr(from, to - from);
  ASSERT_FALSE(stop.empty()) << full;
  const std::string cut = completion_text(post(port(), "/v1/completions",
                                               {{"prompt", "The fox"},
                                                {"max_tokens", 30},
                                                {"temperature", 0},
                                                {"ignore_eos", true},
                                                {"stop", stop}}),
                                          false, false, &finish);
  EXPECT_EQ(cut, full.substr(0, full.find(stop)));
  EXPECT_EQ(finish, "stop");
}

// Seeded sampling is reproducible; different seeds differ.
TEST_F(ServeTest, SeededSampling) {
  const auto ask = [](int seed) {
    return completion_text(post(port(), "/v1/completions",
                                {{"model", "a"},
                                 {"prompt", "The fox"},
                                 {"max_tokens", 16},
                                 {"temperature", 1.0},
                                 {"top_p", 0.95},
                                 {"seed", seed},
                                 {"ignore_eos", true}}),
                           false, false);
  };
  EXPECT_EQ(ask(7), ask(7));
  std::set<std::string> texts = {ask(1), ask(2), ask(3)};
  EXPECT_GE(texts.size(), 2u);
}

TEST_F(ServeTest, BadRequestsAreClear4xx) {
  const auto expect = [](const test::HttpResponse& r, int status, const std::string& needle,
                         const std::string& param = "") {
    EXPECT_EQ(r.status, status) << r.body;
    const json j = r.json();
    ASSERT_TRUE(j.is_object() && j.contains("error")) << r.body;
    const std::string message = j["error"].value("message", "");
    EXPECT_NE(message.find(needle), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_TRUE(j["error"].contains("type") && j["error"].contains("code"));
    if (!param.empty()) {
      EXPECT_EQ(j["error"]["param"], param) << r.body;
    }
  };
  expect(http(port(), "POST", "/v1/completions", "{\"prompt\": "), 400, "JSON");
  expect(http(port(), "POST", "/v1/completions", "[1, 2]"), 400, "JSON object");
  expect(http(port(), "POST", "/v1/completions", ""), 400, "empty body");
  expect(post(port(), "/v1/completions", {{"prompt", 5}}), 400, "'prompt'", "prompt");
  expect(post(port(), "/v1/completions", {{"prompt", "x"}, {"max_tokens", "9"}}), 400,
         "'max_tokens' expected an integer", "max_tokens");
  expect(post(port(), "/v1/completions", {{"prompt", "x"}, {"temperature", -1}}), 400,
         "'temperature'", "temperature");
  expect(post(port(), "/v1/completions", {{"prompt", "x"}, {"stream", "yes"}}), 400, "'stream'");
  expect(post(port(), "/v1/completions", {{"prompt", "x"}, {"n", 3}}), 400, "'n'");
  expect(post(port(), "/v1/completions", {{"prompt", "x"}, {"model", "nope"}}), 404,
         "does not exist", "model");
  expect(post(port(), "/v1/completions", {{"prompt", json::array({1, 999999})}}), 400,
         "vocabulary");
  expect(post(port(), "/v1/chat/completions", {{"messages", json::array()}}), 400, "'messages'");
  expect(post(port(), "/v1/chat/completions", {{"messages", json::array({{{"content", "hi"}}})}}),
         400, "role");
  // Longer than the context (--ctx 256), or asking for more than it holds.
  std::string long_prompt;
  for (int i = 0; i < 300; ++i) long_prompt += "fox ";
  expect(post(port(), "/v1/completions", {{"prompt", long_prompt}}), 400, "--ctx", "prompt");
  expect(post(port(), "/v1/completions", {{"prompt", "The fox"}, {"max_tokens", 100000}}), 400,
         "context", "max_tokens");
  // Over --max-body (64 KiB).
  const std::string huge = json({{"prompt", std::string(100000, 'a')}}).dump();
  expect(http(port(), "POST", "/v1/completions", huge), 413, "--max-body");
  // Chunked bodies (no Content-Length): read, and bounded by --max-body as well.
  const auto chunked = [](const std::string& body) {
    const int fd = test::connect_loopback(port());
    std::string text =
        "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (size_t at = 0; at < body.size(); at += 4096) {
      const std::string piece = body.substr(at, 4096);
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
      text += size + piece + "\r\n";
    }
    text += "0\r\n\r\n";
    test::send_all(fd, text);
    std::string raw;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<size_t>(n));
    close(fd);
    return raw.substr(0, raw.find("\r\n"));
  };
  EXPECT_EQ(chunked(json({{"prompt", "The fox"}, {"max_tokens", 2}}).dump()), "HTTP/1.1 200 OK");
  EXPECT_EQ(chunked(huge), "HTTP/1.1 413 Payload Too Large");
  expect(http(port(), "GET", "/v1/nothing"), 404, "no route");
  // The server still answers.
  EXPECT_EQ(http(port(), "GET", "/health").status, 200);
}

TEST_F(ServeTest, AdaptersLoadAndUnloadAtRunTime) {
  const auto load = [](const std::string& name, const std::string& path) {
    return post(port(), "/v1/adapters", {{"name", name}, {"path", path}});
  };
  // Inside --adapters-dir only: no "..", no absolute path, no symlink out.
  fs::create_directory_symlink(fx().outside / "c", fx().adapters / "link_out");
  for (const std::string& bad :
       std::vector<std::string>{"../outside/c", (fx().outside / "c").string(), "link_out"}) {
    const auto r = load("x", bad);
    EXPECT_EQ(r.status, 400) << bad << " " << r.body;
    EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("inside --adapters-dir"),
              std::string::npos);
  }
  EXPECT_EQ(load("x", "no/such/folder").status, 400);
  EXPECT_EQ(load("a", "more/late").status, 409);      // the name is taken
  EXPECT_EQ(load("model", "more/late").status, 409);  // the base model's id
  EXPECT_EQ(load("bad name!", "more/late").status, 400);

  const json ask = {
      {"model", "late"}, {"prompt", "The fox"}, {"max_tokens", 8}, {"temperature", 0}};
  EXPECT_EQ(post(port(), "/v1/completions", ask).status, 404);
  const auto loaded = load("late", "more/late");
  ASSERT_EQ(loaded.status, 200) << loaded.body;
  EXPECT_EQ(loaded.json()["id"], "late");
  const auto r = post(port(), "/v1/completions", ask);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(completion_text(r, false, false),
            generate("The fox", (fx().adapters / "more" / "late").string(), 8));
  EXPECT_EQ(http(port(), "GET", "/v1/models/late").status, 200);
  // A pyreft directory serves too: adapter a exported with `reft convert --to pyreft` answers
  // as a does.
  const auto exported = test::reft({"convert", "--to", "pyreft", (fx().adapters / "a").string(),
                                    "--output", (fx().adapters / "more" / "pyreft_a").string()});
  ASSERT_EQ(exported.status, 0) << exported.err;
  ASSERT_EQ(load("pa", "more/pyreft_a").status, 200);
  const json ask_a = {{"prompt", "The fox"}, {"max_tokens", 8}, {"temperature", 0}};
  json ask_pa = ask_a, ask_orig = ask_a;
  ask_pa["model"] = "pa";
  ask_orig["model"] = "a";
  EXPECT_EQ(completion_text(post(port(), "/v1/completions", ask_pa), false, false),
            completion_text(post(port(), "/v1/completions", ask_orig), false, false));
  EXPECT_EQ(http(port(), "DELETE", "/v1/adapters/pa").status, 200);
  EXPECT_EQ(http(port(), "DELETE", "/v1/adapters/late").status, 200);
  EXPECT_EQ(http(port(), "DELETE", "/v1/adapters/late").status, 404);
  EXPECT_EQ(post(port(), "/v1/completions", ask).status, 404);
  fs::remove(fx().adapters / "link_out");
}

// A client that goes away mid-stream frees its row: the engine counts it as cancelled.
TEST_F(ServeTest, DroppedStreamIsCancelled) {
  const auto cancelled = [] {
    return test::metric_value(http(port(), "GET", "/metrics").body,
                              "reft_requests_finished_total{reason=\"cancelled\"}");
  };
  const double before = cancelled();
  const int fd = test::connect_loopback(port());
  ASSERT_GE(fd, 0);
  const json body = {{"prompt", "The fox"},
                     {"max_tokens", 240},
                     {"temperature", 0},
                     {"ignore_eos", true},
                     {"stream", true}};
  ASSERT_TRUE(test::send_all(fd, test::request_text("POST", "/v1/completions", body.dump(), {})));
  char buf[256];
  ASSERT_GT(::recv(fd, buf, sizeof buf, 0), 0);  // the stream has started
  close(fd);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (cancelled() <= before && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(cancelled(), before + 1);
}

// One row, one queue slot: a third request is refused with 429 while the first runs and the
// second waits. An API key guards /v1/*. SIGTERM lets the running stream finish, answers 503
// meanwhile, and exits 0.
TEST(ServeLimits, QueueFullApiKeyAndGracefulShutdown) {
  Fixture fx;
  ServerProcess server({"--model", fx.model.string(), "--max-seqs", "1", "--max-queue", "1",
                        "--api-key", "sesame", "--threads", "1"});
  ASSERT_TRUE(server.ok()) << server.log();
  const int port = server.port();
  const std::vector<std::string> key = {"Authorization: Bearer sesame"};
  EXPECT_EQ(post(port, "/v1/completions", {{"prompt", "x"}}).status, 401);
  EXPECT_EQ(post(port, "/v1/completions", {{"prompt", "x"}}, {"Authorization: Bearer nope"}).status,
            401);
  EXPECT_EQ(http(port, "GET", "/v1/models", "", key).status, 200);
  EXPECT_EQ(http(port, "GET", "/health").status, 200);  // open without the key

  // A long stream holds the only row.
  const int fd = test::connect_loopback(port);
  ASSERT_GE(fd, 0);
  const json long_body = {{"prompt", "The fox"},
                          {"max_tokens", 1500},
                          {"temperature", 0},
                          {"ignore_eos", true},
                          {"stream", true}};
  ASSERT_TRUE(
      test::send_all(fd, test::request_text("POST", "/v1/completions", long_body.dump(), key)));
  std::string streamed;
  char buf[4096];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  streamed.append(buf, static_cast<size_t>(n));
  // A second request waits in the queue, a third is refused.
  auto second = std::async(std::launch::async, [&] {
    return post(port, "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}, key);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (test::metric_value(http(port, "GET", "/metrics").body, "reft_queue_length") < 1 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const auto third = post(port, "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}, key);
  EXPECT_EQ(third.status, 429) << third.body;

  // SIGTERM: new requests get 503 while the stream runs on to its end; then exit 0.
  kill(server.pid(), SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(http(port, "GET", "/health").status, 503);
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) streamed.append(buf, static_cast<size_t>(n));
  close(fd);
  const std::string body = test::dechunk(streamed.substr(streamed.find("\r\n\r\n") + 4));
  EXPECT_NE(body.find("\"finish_reason\":\"length\""), std::string::npos) << body.substr(0, 300);
  EXPECT_NE(body.find("data: [DONE]"), std::string::npos);
  EXPECT_EQ(second.get().status, 200);
  EXPECT_EQ(server.stop(0, 60), 0) << server.log();  // no second signal: that one exits at once
}

}  // namespace
}  // namespace reft
