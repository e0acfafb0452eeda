#pragma once
// reft serve's HTTP frontend: OpenAI-compatible routes over one Engine, on cpp-httplib (Debian's
// libcpp-httplib: a maintained server with a thread pool, chunked responses for server-sent
// events and request-size limits, so no HTTP parsing is written here).

#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "reft/chat_template.h"
#include "reft/engine.h"
#include "serve/adapter_registry.h"
#include "serve/metrics.h"

namespace httplib {
class Server;
class Request;
class Response;
}  // namespace httplib

namespace reft::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;      // 0: any free port (bind() returns it)
  std::string api_key;  // "": no key needed
  size_t max_body = size_t{1} << 20;
  int http_threads = 128;                  // connections served at once (a stream holds one)
  std::string template_name;               // --template; "": unset
  std::string base_name;                   // the base model's id
  double drain_timeout_s = 30;             // SIGTERM: how long in-flight requests may still run
  int64_t default_completion_tokens = 16;  // /v1/completions without max_tokens (OpenAI's 16)
};

class Server {
 public:
  /// `chat`: the model's chat template, when it has one. Everything passed must outlive the server.
  Server(ServerOptions options, const Tokenizer& tokenizer, Engine& engine,
         AdapterRegistry& adapters, std::optional<ModelChatTemplate> chat);
  ~Server();

  /// Binds host:port; returns the port. Throws reft::Error when the address cannot be bound.
  int bind();
  /// Serves until shutdown() has finished.
  void serve();
  /// From any thread (the signal watcher): refuse new requests (503), let in-flight ones finish
  /// for up to drain_timeout_s, cancel the rest, stop listening. Idempotent.
  void shutdown();

 private:
  struct Prepared;  // a request turned into an EngineRequest, with what its response needs
  void routes();
  void completions(const std::string& body, httplib::Response& res, bool chat);
  void respond(const std::shared_ptr<Prepared>& p, httplib::Response& res);
  void respond_streaming(const std::shared_ptr<Prepared>& p, httplib::Response& res);
  std::shared_ptr<const ServedAdapter> resolve(const std::string& model) const;
  std::vector<int64_t> chat_prompt(const nlohmann::ordered_json& messages, bool add_generation,
                                   const nlohmann::ordered_json& kwargs,
                                   const ServedAdapter* adapter, std::vector<std::string>& stops);
  nlohmann::ordered_json model_entry(const std::string& id, bool adapter) const;

  ServerOptions options_;
  const Tokenizer& tokenizer_;
  Engine& engine_;
  AdapterRegistry& adapters_;
  std::optional<ModelChatTemplate> chat_;
  std::unique_ptr<httplib::Server> http_;
  HttpCounters counters_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> in_flight_{0};  // generation requests not yet answered in full
  std::atomic<bool> shut_down_{false};
  int64_t created_;  // start time (model entries' "created")
};

}  // namespace reft::serve
