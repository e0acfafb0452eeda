// The load test (scripts/serve_load_test.mjs) at a bounded size: 64 concurrent clients, 2000
// requests over the base model and three adapters, completions and chat, streaming and not, 10 %
// malformed, a few streams dropped mid-way. No well-formed request may fail, identical greedy
// requests must agree, every malformed one gets a 4xx, the server's memory stays flat and it
// exits 0 on SIGTERM afterwards. Skips when node is absent.

#include "serve_node_util.h"

namespace reft {
namespace {

using nlohmann::json;

TEST(ServeLoad, MixedClientsAdaptersAndMalformedRequests) {
  const std::string node = test::find_program("node");
  if (node.empty()) GTEST_SKIP() << "node is not installed (scripts/setup.sh installs nodejs)";
  test::ServedStories s;
  auto server = s.serve({"--max-seqs", "16", "--max-queue", "256", "--ctx", "256", "--max-body",
                         "65536", "--http-threads", "96"});
  ASSERT_TRUE(server->ok()) << server->log();
  const std::string script =
      (std::filesystem::path(REFT_SOURCE_DIR) / "scripts" / "serve_load_test.mjs").string();
  const auto r = test::run_program(
      test::node_command(node, script,
                         {{"--url", "http://127.0.0.1:" + std::to_string(server->port())},
                          {"--adapters", "a,b,c"},
                          {"--clients", "64"},
                          {"--requests", "2000"},
                          {"--malformed-share", "0.1"},
                          {"--max-tokens", "8"},
                          {"--ctx", "256"},
                          {"--max-body", "65536"},
                          {"--timeout-s", "600"},
                          {"--pid", std::to_string(server->pid())}}),
      700);
  EXPECT_EQ(r.status, 0) << r.describe() << "\nreport:\n" << r.out;
  const json report = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(report.is_object()) << r.out << r.err;
  EXPECT_TRUE(report["ok"].get<bool>()) << report["violations"].dump(2);
  EXPECT_EQ(report["counts"]["sent"], 2000);
  EXPECT_GT(report["counts"]["malformed"].get<int>(), 100);
  EXPECT_EQ(report["counts"]["malformed_4xx"], report["counts"]["malformed"]);
  EXPECT_EQ(report["failures"]["well_formed"], 0) << report["examples"].dump(2);
  EXPECT_EQ(report["by_model"].size(), 4u) << report["by_model"].dump();
  EXPECT_TRUE(report["memory"]["flat"].get<bool>()) << report["memory"].dump();
  std::cerr << "load test: " << report["counts"].dump() << " latency_ms " << report["latency_ms"]
            << " memory " << report["memory"].dump() << "\n";
  EXPECT_EQ(server->stop(SIGTERM), 0) << server->log();
}

}  // namespace
}  // namespace reft
