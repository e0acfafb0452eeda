// reft serve's routes: OpenAI completions and chat completions (JSON or server-sent events),
// models, adapters, health, metrics and the web page.

#include "serve/server.h"

#include <httplib.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>

#include "io/paths.h"
#include "reft/data.h"
#include "reft/openai_api.h"
#include "reft/tokenizer.h"

namespace reft::serve {
namespace {

using Json = nlohmann::ordered_json;
using openai::ApiError;

// The page at GET / (tools/reft/serve/web_page.html, embedded by CMake).
const char* const kWebPage =
#include "web_page.inc"
    ;

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(dump(body) + "\n", "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message,
                const std::string& param = "", const std::string& code = "") {
  send_json(res, status, openai::error_json(status, message, param, code));
}

// Request ids and seeds of requests that give none: one generator for the server.
uint64_t random_u64() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard lock(mu);
  return rng();
}

std::string random_hex(size_t n) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) out += hex[random_u64() & 15];
  return out;
}

// Compares every byte whatever the first difference (no timing hint about the key).
bool constant_time_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size() || b.empty()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ b[i];
  return diff == 0;
}

// A request body through cpp-httplib's content reader. cpp-httplib refuses a Content-Length over
// --max-body before reading (413) but reads a chunked body whole; here a chunked one is kept only
// up to --max-body and read on (up to 16 times that, then the connection is dropped) so that the
// client, still sending, gets the 413 instead of a reset connection.
std::string read_body(const httplib::Request& req, const httplib::ContentReader& reader,
                      size_t max) {
  std::string body;
  size_t total = 0;
  const bool complete = reader([&](const char* data, size_t n) {
    total += n;
    if (total > max) {
      std::string().swap(body);
      return total <= 16 * max;
    }
    body.append(data, n);
    return true;
  });
  const auto declared = req.get_header_value("Content-Length");
  if (total > max ||
      (!complete && !declared.empty() && std::strtoull(declared.c_str(), nullptr, 10) > max))
    throw ApiError(413, "the request body is larger than this server's --max-body");
  if (!complete) throw ApiError(400, "the request body could not be read in full");
  return body;
}

// Counts a generation request as in flight from construction to destruction (the handler's end,
// or the end of its stream).
struct InFlight {
  std::atomic<int64_t>& n;
  explicit InFlight(std::atomic<int64_t>& count) : n(count) { ++n; }
  ~InFlight() { --n; }
};

}  // namespace

struct Server::Prepared {
  bool chat = false;
  std::string id, model;
  int64_t created = 0;
  openai::Sampling sampling;
  std::shared_ptr<RequestStream> stream;
  std::shared_ptr<InFlight> in_flight;
};

Server::Server(ServerOptions options, const Tokenizer& tokenizer, Engine& engine,
               AdapterRegistry& adapters, std::optional<ModelChatTemplate> chat)
    : options_(std::move(options)),
      tokenizer_(tokenizer),
      engine_(engine),
      adapters_(adapters),
      chat_(std::move(chat)),
      http_(std::make_unique<httplib::Server>()),
      created_(static_cast<int64_t>(std::time(nullptr))) {
  routes();
}

Server::~Server() = default;

int Server::bind() {
  auto& h = *http_;
  const int threads = options_.http_threads;
  h.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  h.set_payload_max_length(options_.max_body);
  h.set_keep_alive_timeout(5);
  h.set_read_timeout(30);
  h.set_write_timeout(30);
  int port = options_.port;
  if (port == 0) {
    port = h.bind_to_any_port(options_.host);
    if (port < 0) fail("[--host ", options_.host, "] expected an address to listen on, found none");
  } else if (!h.bind_to_port(options_.host, port)) {
    fail("[--port ", port, "] expected a free port on ", options_.host,
         ", found it in use or not allowed (try --port 0 for any free port)");
  }
  return port;
}

void Server::serve() { http_->listen_after_bind(); }

void Server::shutdown() {
  if (shut_down_.exchange(true)) return;
  draining_ = true;
  using Clock = std::chrono::steady_clock;
  const auto wait_idle = [&](double seconds) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    while (in_flight_ > 0 && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  };
  wait_idle(options_.drain_timeout_s);
  engine_.stop(/*cancel=*/true);  // what is still running ends as cancelled
  wait_idle(5);
  http_->stop();
}

std::shared_ptr<const ServedAdapter> Server::resolve(const std::string& model) const {
  if (model.empty() || model == options_.base_name) return nullptr;
  auto adapter = adapters_.find(model);
  if (!adapter)
    throw ApiError(404,
                   "model '" + model +
                       "' does not exist; GET /v1/models lists the base model "
                       "and the adapters",
                   "model", "model_not_found");
  return adapter;
}

Json Server::model_entry(const std::string& id, bool adapter) const {
  Json m = {{"id", id}, {"object", "model"}, {"created", created_}, {"owned_by", "reft"}};
  m["root"] = id;
  m["parent"] = adapter ? Json(options_.base_name) : Json(nullptr);
  return m;
}

std::vector<int64_t> Server::chat_prompt(const Json& messages, bool add_generation,
                                         const Json& kwargs, const ServedAdapter* adapter,
                                         std::vector<std::string>& stops) {
  // The model's own chat template, unless --template names another.
  if (chat_ && options_.template_name.empty()) {
    std::string text;
    try {
      text = chat_->render(messages, add_generation, kwargs);
    } catch (const Error& e) {
      throw ApiError(400,
                     std::string("the model's chat template refused these messages: ") + e.what(),
                     "messages");
    }
    return tokenizer_.encode(text, /*add_special_tokens=*/false);  // as apply_chat_template
  }
  // A named template (--template, else the adapter's), as training renders chat data; a single
  // user message is the prompt template applied to it, as /v1/completions does.
  const std::string tmpl = !options_.template_name.empty() ? options_.template_name
                           : adapter                       ? adapter->meta.template_name
                                                           : "none";
  nlohmann::json plain = nlohmann::json::array();
  for (const auto& m : messages)
    plain.push_back(
        {{"role", m["role"].get<std::string>()}, {"content", m["content"].get<std::string>()}});
  std::string text;
  if (plain.size() == 1 && plain[0]["role"] == "user" && add_generation)
    text = apply_template(tmpl, plain[0]["content"].get<std::string>());
  else
    text = render_chat_prompt(plain, plain.size(), tmpl);
  if (auto end = chat_turn_end(tmpl); !end.empty()) stops.push_back(end);
  return encode_prompt(tokenizer_, text);
}

void Server::completions(const std::string& body, httplib::Response& res, bool chat) {
  auto p = std::make_shared<Prepared>();
  p->in_flight = std::make_shared<InFlight>(in_flight_);
  p->chat = chat;
  p->created = static_cast<int64_t>(std::time(nullptr));
  p->id = (chat ? "chatcmpl-" : "cmpl-") + random_hex(24);
  EngineRequest er;
  std::vector<std::string> stops;
  std::shared_ptr<const ServedAdapter> adapter;
  int64_t default_tokens = 0;
  const char* prompt_field = chat ? "messages" : "prompt";
  const char* max_field = "max_tokens";
  if (chat) {
    auto r = openai::parse_chat_request(body);
    adapter = resolve(r.model);
    p->model = r.model.empty() ? options_.base_name : r.model;
    p->sampling = r.sampling;
    er.prompt =
        chat_prompt(r.messages, r.add_generation_prompt, r.template_kwargs, adapter.get(), stops);
    default_tokens = engine_.options().ctx;  // OpenAI: until the context is full
  } else {
    auto r = openai::parse_completion_request(body);
    adapter = resolve(r.model);
    p->model = r.model.empty() ? options_.base_name : r.model;
    p->sampling = r.sampling;
    if (r.prompt_text) {
      const std::string tmpl = !options_.template_name.empty() ? options_.template_name
                               : adapter                       ? adapter->meta.template_name
                                                               : "none";
      er.prompt = encode_prompt(tokenizer_, apply_template(tmpl, *r.prompt_text));
    } else {
      er.prompt = r.prompt_ids;
    }
    default_tokens = options_.default_completion_tokens;
  }
  const auto& s = p->sampling;
  const int64_t ctx = engine_.options().ctx;
  const auto n = static_cast<int64_t>(er.prompt.size());
  if (n == 0) throw ApiError(400, "the prompt is empty (no tokens)", prompt_field);
  if (n >= ctx)
    throw ApiError(400,
                   str("the prompt has ", n, " tokens; this server's context (--ctx) holds ", ctx,
                       " positions for the prompt and the completion together"),
                   prompt_field, "context_length_exceeded");
  if (s.max_tokens && n + *s.max_tokens > ctx)
    throw ApiError(400,
                   str(max_field, " ", *s.max_tokens, " plus the prompt's ", n,
                       " tokens exceed this server's context (--ctx) of ", ctx,
                       " positions; ask for at most ", ctx - n),
                   max_field, "context_length_exceeded");
  auto& g = er.options;
  g.max_new_tokens = s.max_tokens ? *s.max_tokens : std::min(default_tokens, ctx - n);
  g.temperature = s.temperature;
  g.top_p = s.top_p;
  g.top_k = s.top_k;
  g.repetition_penalty = s.repetition_penalty;
  g.seed = s.seed ? *s.seed : random_u64();
  g.stop_strings = s.stop;
  for (auto& t : stops) g.stop_strings.push_back(std::move(t));
  g.use_model_eos = !s.ignore_eos;
  er.adapter = adapter;
  try {
    p->stream = engine_.submit(std::move(er));
  } catch (const QueueFullError& e) {
    if (draining_) throw ApiError(503, "the server is shutting down");
    throw ApiError(429, e.what(), "", "queue_full");
  } catch (const UsageError& e) {
    throw ApiError(400, e.what());
  }
  if (s.stream)
    respond_streaming(p, res);
  else
    respond(p, res);
}

namespace {

Json usage_json(const StreamEvent& ev) {
  return {{"prompt_tokens", ev.prompt_tokens},
          {"completion_tokens", ev.completion_tokens},
          {"total_tokens", ev.prompt_tokens + ev.completion_tokens}};
}

const char* openai_finish(FinishReason r) { return r == FinishReason::kLength ? "length" : "stop"; }

}  // namespace

void Server::respond(const std::shared_ptr<Prepared>& p, httplib::Response& res) {
  const StreamEvent ev = p->stream->wait_all();
  if (ev.reason == FinishReason::kCancelled)
    throw ApiError(503, "the request was cancelled: the server is shutting down");
  if (ev.reason == FinishReason::kError) throw ApiError(500, "generation failed: " + ev.error);
  Json choice = {{"index", 0}};
  if (p->chat) {
    choice["message"] = {{"role", "assistant"}, {"content", ev.text}};
    choice["logprobs"] = nullptr;
  } else {
    choice["text"] = ev.text;
    choice["logprobs"] = nullptr;
  }
  choice["finish_reason"] = openai_finish(ev.reason);
  Json body = {{"id", p->id},
               {"object", p->chat ? "chat.completion" : "text_completion"},
               {"created", p->created},
               {"model", p->model},
               {"choices", Json::array({choice})},
               {"usage", usage_json(ev)}};
  send_json(res, 200, body);
}

void Server::respond_streaming(const std::shared_ptr<Prepared>& p, httplib::Response& res) {
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  struct State {
    bool sent_role = false, done = false;
    std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();
  };
  auto st = std::make_shared<State>();
  const auto chunk = [p](const Json& delta_or_text, const Json& finish) {
    Json choice = {{"index", 0}};
    if (p->chat)
      choice["delta"] = delta_or_text;
    else
      choice["text"] = delta_or_text;
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = finish;
    Json c = {{"id", p->id},
              {"object", p->chat ? "chat.completion.chunk" : "text_completion"},
              {"created", p->created},
              {"model", p->model},
              {"choices", Json::array({choice})}};
    if (p->sampling.include_usage) c["usage"] = nullptr;
    return "data: " + dump(c) + "\n\n";
  };
  res.set_chunked_content_provider(
      "text/event-stream",
      [p, st, chunk](size_t, httplib::DataSink& sink) {
        if (st->done) return false;
        const StreamEvent ev = p->stream->wait(std::chrono::milliseconds(200));
        std::string out;
        if (p->chat && !st->sent_role) {
          out += chunk(Json{{"role", "assistant"}, {"content", ""}}, nullptr);
          st->sent_role = true;
        }
        if (!ev.text.empty())
          out += chunk(p->chat ? Json{{"content", ev.text}} : Json(ev.text), nullptr);
        if (ev.finished) {
          if (ev.reason == FinishReason::kCancelled || ev.reason == FinishReason::kError) {
            const bool shutting = ev.reason == FinishReason::kCancelled;
            out += "data: " +
                   dump(openai::error_json(shutting ? 503 : 500,
                                           shutting ? "the request was cancelled: the server is "
                                                      "shutting down"
                                                    : "generation failed: " + ev.error)) +
                   "\n\n";
          } else {
            out += chunk(p->chat ? Json::object() : Json(""), openai_finish(ev.reason));
            if (p->sampling.include_usage) {
              Json u = {{"id", p->id},
                        {"object", p->chat ? "chat.completion.chunk" : "text_completion"},
                        {"created", p->created},
                        {"model", p->model},
                        {"choices", Json::array()},
                        {"usage", usage_json(ev)}};
              out += "data: " + dump(u) + "\n\n";
            }
          }
          out += "data: [DONE]\n\n";
        }
        const auto now = std::chrono::steady_clock::now();
        if (out.empty() && now - st->last_write > std::chrono::seconds(2))
          out = ": keep-alive\n\n";  // an SSE comment: finds clients that went away while waiting
        if (!out.empty()) {
          if (!sink.write(out.data(), out.size())) {
            p->stream->cancel();  // the client went away: free its row
            return false;
          }
          st->last_write = now;
        }
        if (ev.finished) {
          st->done = true;
          sink.done();
        }
        return true;
      },
      [p](bool success) {
        if (!success) p->stream->cancel();
        p->in_flight.reset();
      });
}

void Server::routes() {
  auto& h = *http_;
  h.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const bool api = req.path.rfind("/v1/", 0) == 0;
    if (api && !options_.api_key.empty()) {
      const std::string auth = req.get_header_value("Authorization");
      const std::string prefix = "Bearer ";
      if (auth.rfind(prefix, 0) != 0 ||
          !constant_time_equal(auth.substr(prefix.size()), options_.api_key)) {
        send_error(res, 401,
                   auth.empty() ? "missing API key: send the header 'Authorization: Bearer KEY'"
                                : "invalid API key",
                   "", "invalid_api_key");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (draining_ && req.path != "/metrics") {
      if (req.path == "/health")
        send_json(res, 503, {{"status", "draining"}});
      else
        send_error(res, 503, "the server is shutting down");
      res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  h.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    counters_.count(route_of(req.path), res.status);
  });
  h.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    switch (res.status) {
      case 404:
        send_error(res, 404,
                   "no route " + req.method + " " + printable_name(req.path.substr(0, 200)));
        break;
      case 413:
        send_error(res, 413, "the request body is larger than this server's --max-body");
        break;
      case 400:
        send_error(res, 400,
                   "bad HTTP request: " + req.method + " " +
                       printable_name(req.path.substr(0, 200)) +
                       " (malformed, or a method this route does not take)");
        break;
      case 405:
        send_error(res, 405, "method " + req.method + " is not allowed here");
        break;
      default:
        send_error(res, res.status,
                   "the request could not be served (HTTP " + std::to_string(res.status) + ")");
    }
  });
  h.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        try {
          std::rethrow_exception(ep);
        } catch (const ApiError& e) {
          send_error(res, e.status(), e.what(), e.param(), e.code());
        } catch (const UsageError& e) {
          send_error(res, 400, e.what());
        } catch (const std::exception& e) {
          send_error(res, 500, std::string("internal error: ") + e.what());
        } catch (...) {
          send_error(res, 500, "internal error");
        }
      });

  h.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kWebPage, "text/html; charset=utf-8");
  });
  h.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, {{"status", "ok"}});
  });
  h.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(prometheus_text(engine_.stats(), counters_, adapters_.size(), draining_),
                    "text/plain; version=0.0.4");
  });
  h.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    Json data = Json::array({model_entry(options_.base_name, false)});
    for (const auto& a : adapters_.list()) data.push_back(model_entry(a->name, true));
    send_json(res, 200, {{"object", "list"}, {"data", data}});
  });
  h.Get(R"(/v1/models/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    if (id == options_.base_name) return send_json(res, 200, model_entry(id, false));
    if (adapters_.find(id)) return send_json(res, 200, model_entry(id, true));
    send_error(res, 404, "model '" + printable_name(id.substr(0, 200)) + "' does not exist",
               "model", "model_not_found");
  });
  using Reader = httplib::ContentReader;
  h.Post("/v1/completions",
         [this](const httplib::Request& req, httplib::Response& res, const Reader& reader) {
           completions(read_body(req, reader, options_.max_body), res, false);
         });
  h.Post("/v1/chat/completions",
         [this](const httplib::Request& req, httplib::Response& res, const Reader& reader) {
           completions(read_body(req, reader, options_.max_body), res, true);
         });
  h.Post("/v1/adapters", [this](const httplib::Request& req, httplib::Response& res,
                                const Reader& reader) {
    const auto r = openai::parse_adapter_request(read_body(req, reader, options_.max_body));
    if (r.name == options_.base_name)
      throw ApiError(409, "'" + r.name + "' is the base model's id", "name", "adapter_exists");
    try {
      adapters_.load_relative(r.name, r.path);
    } catch (const ApiError&) {
      throw;
    } catch (const Error& e) {
      throw ApiError(400, std::string("cannot load adapter '") + r.name + "': " + e.what(), "path");
    }
    send_json(res, 200, model_entry(r.name, true));
  });
  h.Delete(R"(/v1/adapters/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    if (!adapters_.remove(name))
      return send_error(res, 404,
                        "no adapter named '" + printable_name(name.substr(0, 200)) + "' is loaded",
                        "model", "model_not_found");
    send_json(res, 200, {{"id", name}, {"object", "model"}, {"deleted", true}});
  });
}

}  // namespace reft::serve
