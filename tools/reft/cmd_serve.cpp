// reft serve: an OpenAI-compatible HTTP server over one base model and many adapters, decoded
// together by the continuous-batching engine (reft/engine.h). The routes are in serve/server.cpp.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <thread>

#include "cli.h"
#include "reft/chat_template.h"
#include "reft/engine.h"
#include "reft/model.h"
#include "reft/openai_api.h"
#include "reft/runtime.h"
#include "reft/tokenizer.h"
#include "serve/server.h"
#include "util/files.h"

namespace reft::cli {
namespace {
namespace fs = std::filesystem;

// SIGTERM / SIGINT: the handler only writes a byte to a pipe; a watcher thread reads it and shuts
// the server down (drain, then exit 0). A second signal ends the process at once.
int g_signal_pipe[2] = {-1, -1};
std::atomic<int> g_signals{0};

void on_signal(int) {
  if (g_signals.fetch_add(1) >= 1) _exit(130);
  const char byte = 1;
  [[maybe_unused]] auto n = write(g_signal_pipe[1], &byte, 1);
}

void install_signal_handlers() {
  if (pipe2(g_signal_pipe, O_CLOEXEC) != 0) fail("[reft serve] cannot create a pipe for signals");
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that went away is a failed write, not a dead server
}

// The model's chat template when it has one (tokenizer_config.json's chat_template or
// chat_template.jinja); a template that does not parse stops the server at start.
std::optional<ModelChatTemplate> model_chat_template(const fs::path& dir) {
  bool has = fs::exists(dir / "chat_template.jinja");
  if (!has && fs::exists(dir / "tokenizer_config.json")) {
    const auto config = parse_ordered_json(read_file(dir / "tokenizer_config.json"),
                                           (dir / "tokenizer_config.json").string());
    has = config.is_object() && config.contains("chat_template") &&
          !config["chat_template"].is_null();
  }
  if (!has) return std::nullopt;
  return load_chat_template(dir);
}

int64_t positive(const Args& args, const std::string& name, int64_t lo, int64_t hi) {
  const int64_t v = args.get_int(name);
  if (v < lo || v > hi)
    usage_fail("[--", name, "] expected an integer in [", lo, ", ", hi, "], found ", v);
  return v;
}

int run_serve(const Args& args) {
  install_signal_handlers();
  apply_runtime_flags(args);
  const fs::path dir = args.get("model");
  serve::ServerOptions so;
  so.host = args.get("host");
  so.port = static_cast<int>(positive(args, "port", 0, 65535));
  so.api_key = args.maybe("api-key").value_or("");
  if (const char* env = std::getenv("REFT_API_KEY"); so.api_key.empty() && env) so.api_key = env;
  so.max_body = static_cast<size_t>(positive(args, "max-body", 1024, int64_t{1} << 32));
  so.http_threads = static_cast<int>(positive(args, "http-threads", 1, 4096));
  so.drain_timeout_s = args.get_double("drain-timeout");
  if (!(so.drain_timeout_s >= 0 && so.drain_timeout_s <= 86400))
    usage_fail("[--drain-timeout] expected seconds in [0, 86400], found ", so.drain_timeout_s);
  if (auto t = args.maybe("template")) {
    apply_template(*t, "x");  // validates the name before anything is loaded
    so.template_name = *t;
  }
  EngineOptions eo;
  eo.max_seqs = positive(args, "max-seqs", 1, 4096);
  eo.max_queue = positive(args, "max-queue", 1, 1 << 20);
  eo.max_prefill_tokens = positive(args, "max-prefill-tokens", 1, int64_t{1} << 24);
  const int64_t ctx_flag = positive(args, "ctx", 0, int64_t{1} << 24);
  std::vector<std::pair<std::string, std::string>> named;
  for (const auto& spec : args.all("adapter")) {
    const auto eq = spec.find('=');
    std::string name =
        eq == std::string::npos ? fs::path(spec).filename().string() : spec.substr(0, eq);
    std::string path = eq == std::string::npos ? spec : spec.substr(eq + 1);
    if (!openai::valid_model_name(name))
      usage_fail(
          "[--adapter] expected NAME=DIR with NAME of A-Z a-z 0-9 . _ : - (the model id "
          "clients send), found '",
          spec, "'");
    named.emplace_back(name, path);
  }
  const std::string adapters_dir = args.maybe("adapters-dir").value_or("");
  if (!adapters_dir.empty() && !fs::is_directory(adapters_dir))
    usage_fail("[--adapters-dir] expected a folder, found '", adapters_dir, "'");

  LoadOptions lo;
  lo.device = parse_device(args.get("device"));
  lo.dtype = parse_dtype(args.get("dtype"));
  auto model = load_model(dir, lo);
  auto tokenizer = Tokenizer::load(dir);
  auto chat = model_chat_template(dir);
  const auto& info = model->info();
  eo.ctx = ctx_flag > 0
               ? ctx_flag
               : std::min<int64_t>(
                     2048, info.max_position_embeddings > 0 ? info.max_position_embeddings : 2048);
  so.base_name = args.maybe("served-model-name")
                     .value_or(fs::absolute(dir).lexically_normal().filename().string());
  if (so.base_name.empty()) so.base_name = fs::absolute(dir).parent_path().filename().string();
  if (!openai::valid_model_name(so.base_name))
    usage_fail("[--served-model-name] expected a model id of A-Z a-z 0-9 . _ : -, found '",
               so.base_name, "' (name it with --served-model-name)");

  serve::AdapterRegistry adapters(*model, adapters_dir);
  for (const auto& [name, path] : named) adapters.load(name, path);
  if (!adapters_dir.empty()) adapters.load_root();

  Engine engine(*model, *tokenizer, eo);
  serve::Server server(so, *tokenizer, engine, adapters, std::move(chat));
  const int port = server.bind();
  std::thread watcher([&] {
    char byte = 0;
    while (read(g_signal_pipe[0], &byte, 1) < 0 && errno == EINTR) {
    }
    if (byte == 1) std::cerr << "reft serve: shutting down (finishing requests in flight)\n";
    server.shutdown();
  });
  std::cerr << "reft serve: " << info.architecture << " " << so.base_name << ", " << adapters.size()
            << " adapter(s), ctx " << eo.ctx << ", max-seqs " << eo.max_seqs
            << (so.api_key.empty() ? "" : ", API key required") << "\n";
  std::cerr << "reft serve: listening on http://" << so.host << ":" << port << std::endl;
  server.serve();
  const char stop = 2;  // the server stopped by itself: release the watcher
  [[maybe_unused]] auto n = write(g_signal_pipe[1], &stop, 1);
  watcher.join();
  engine.stop(/*cancel=*/true);
  std::cerr << "reft serve: stopped\n";
  return 0;
}

}  // namespace

std::vector<Command> serve_commands() {
  std::vector<Flag> flags = {
      {"model", "DIR", "", "HuggingFace model folder (a decoder: config.json, weights, tokenizer)"},
      {"adapter",
       "NAME=DIR",
       "",
       "serve an adapter (reft or pyreft folder) under the model id NAME",
       {},
       true},
      {"adapters-dir", "DIR", "",
       "serve every adapter folder in DIR (named by folder) and allow POST /v1/adapters for "
       "folders inside DIR"},
      {"host", "ADDR", "127.0.0.1", "address to listen on (0.0.0.0: every interface)"},
      {"port", "N", "8080", "port to listen on; 0 = any free port (printed at start)"},
      {"api-key", "KEY", "",
       "require 'Authorization: Bearer KEY' on /v1/* (also from $REFT_API_KEY)"},
      {"ctx", "N", "0",
       "KV positions per request, prompt and completion together; 0 = the model's "
       "max_position_embeddings, at most 2048"},
      {"max-seqs", "N", "16", "requests decoded together in one batch (KV memory: N × ctx)"},
      {"max-queue", "N", "256", "requests waiting for a batch row; more are answered 429"},
      {"max-prefill-tokens", "N", "4096", "prompt tokens prefilled in one forward"},
      {"max-body", "BYTES", "1048576", "largest request body; larger ones are answered 413"},
      {"http-threads", "N", "128", "connections served at once (each stream holds one)"},
      {"template", "T", "",
       "prompt template for every request (default: the adapter's for completions; for chat the "
       "model's chat_template, else the adapter's)"},
      {"served-model-name", "NAME", "", "the base model's id (default: the model folder's name)"},
      {"drain-timeout", "S", "30",
       "on SIGTERM, seconds in-flight requests may still run before they are cancelled"},
  };
  for (auto& f : runtime_flags()) flags.push_back(std::move(f));
  return {{"serve",
           "Serve the model and its adapters over HTTP: OpenAI-compatible /v1/completions, "
           "/v1/chat/completions (streaming or not) and /v1/models, adapters loaded at run time, "
           "/health, /metrics and a web page at /. Requests for different adapters share one "
           "batch.",
           "--model DIR [--adapter NAME=DIR ...] [--adapters-dir DIR] [--port 8080] [flags]", flags,
           run_serve}};
}

}  // namespace reft::cli
