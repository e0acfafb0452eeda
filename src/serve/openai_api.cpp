// OpenAI-compatible request bodies: parsed into plain structs, every field type- and range-checked,
// each failure an ApiError (400) naming the field.

#include "reft/openai_api.h"

#include <algorithm>
#include <cmath>

#include "reft/chat_template.h"

namespace reft::openai {
namespace {

using Json = nlohmann::ordered_json;

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError(400, message, param);
}

// A short, one-line rendering of a value for messages.
std::string shown(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

Json parse_body(std::string_view body) {
  if (body.empty()) bad("", "expected a JSON object as the request body, found an empty body");
  Json j;
  try {
    j = parse_ordered_json(body, "request body");
  } catch (const Error& e) {
    bad("", e.what());
  }
  if (!j.is_object())
    bad("", "expected a JSON object as the request body, found " + std::string(j.type_name()));
  return j;
}

bool present(const Json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

double number(const Json& j, const char* key, double lo, double hi) {
  const Json& v = j[key];
  if (!v.is_number()) bad(key, std::string("'") + key + "' expected a number, found " + shown(v));
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    bad(key, str("'", key, "' expected a number in [", lo, ", ", hi, "], found ", shown(v)));
  return d;
}

int64_t integer(const Json& j, const char* key, int64_t lo, int64_t hi) {
  const Json& v = j[key];
  if (!v.is_number_integer() &&
      !(v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
        std::fabs(v.get<double>()) < 9e15))
    bad(key, std::string("'") + key + "' expected an integer, found " + shown(v));
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
    bad(key, str("'", key, "' expected an integer in [", lo, ", ", hi, "], found ", shown(v)));
  const int64_t i = v.is_number_float() ? static_cast<int64_t>(v.get<double>()) : v.get<int64_t>();
  if (i < lo || i > hi)
    bad(key, str("'", key, "' expected an integer in [", lo, ", ", hi, "], found ", shown(v)));
  return i;
}

bool boolean(const Json& j, const char* key) {
  const Json& v = j[key];
  if (!v.is_boolean())
    bad(key, std::string("'") + key + "' expected true or false, found " + shown(v));
  return v.get<bool>();
}

std::string string(const Json& j, const char* key) {
  const Json& v = j[key];
  if (!v.is_string()) bad(key, std::string("'") + key + "' expected a string, found " + shown(v));
  return v.get<std::string>();
}

// Fields whose only supported value is their default: refused when set to anything else.
void refuse_unsupported(const Json& j) {
  if (present(j, "n") && !(j["n"].is_number_integer() && j["n"].get<int64_t>() == 1))
    bad("n", "'n' other than 1 is not supported; send one request per completion");
  if (present(j, "best_of") &&
      !(j["best_of"].is_number_integer() && j["best_of"].get<int64_t>() == 1))
    bad("best_of", "'best_of' other than 1 is not supported");
  for (const char* key : {"frequency_penalty", "presence_penalty"})
    if (present(j, key) && !(j[key].is_number() && j[key].get<double>() == 0.0))
      bad(key, std::string("'") + key +
                   "' is not supported (only 0); use 'repetition_penalty' (HF semantics)");
  if (present(j, "logprobs") && !(j["logprobs"].is_boolean() && !j["logprobs"].get<bool>()))
    bad("logprobs", "'logprobs' is not supported");
  if (present(j, "top_logprobs")) bad("top_logprobs", "'top_logprobs' is not supported");
  if (present(j, "echo") && !(j["echo"].is_boolean() && !j["echo"].get<bool>()))
    bad("echo", "'echo' is not supported");
  if (present(j, "suffix")) bad("suffix", "'suffix' (insertion) is not supported");
  if (present(j, "logit_bias") && !(j["logit_bias"].is_object() && j["logit_bias"].empty()))
    bad("logit_bias", "'logit_bias' is not supported");
  for (const char* key : {"tools", "functions"})
    if (present(j, key) && !(j[key].is_array() && j[key].empty()))
      bad(key, std::string("'") + key + "' (tool calling) is not supported");
  if (present(j, "response_format")) {
    const Json& f = j["response_format"];
    if (!(f.is_object() && f.contains("type") && f["type"] == "text"))
      bad("response_format", "'response_format' other than {\"type\": \"text\"} is not supported");
  }
}

Sampling parse_sampling(const Json& j, const char* max_tokens_key) {
  Sampling s;
  if (present(j, max_tokens_key)) s.max_tokens = integer(j, max_tokens_key, 0, int64_t{1} << 40);
  if (present(j, "temperature")) s.temperature = number(j, "temperature", 0, 100);
  if (present(j, "top_p")) {
    s.top_p = number(j, "top_p", 0, 1);
    if (s.top_p <= 0) bad("top_p", "'top_p' expected a number in (0, 1], found 0");
  }
  if (present(j, "top_k")) {
    s.top_k = integer(j, "top_k", -1, int64_t{1} << 31);
    if (s.top_k < 0) s.top_k = 0;  // vLLM: -1 = off
  }
  if (present(j, "repetition_penalty")) {
    s.repetition_penalty = number(j, "repetition_penalty", 0, 100);
    if (s.repetition_penalty <= 0)
      bad("repetition_penalty", "'repetition_penalty' expected a number > 0, found 0");
  }
  if (present(j, "seed")) {
    const Json& v = j["seed"];
    if (!v.is_number_integer()) bad("seed", "'seed' expected an integer, found " + shown(v));
    s.seed = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
  }
  if (present(j, "stop")) {
    const Json& v = j["stop"];
    if (v.is_string()) {
      s.stop.push_back(v.get<std::string>());
    } else if (v.is_array()) {
      if (v.size() > kMaxStopStrings)
        bad("stop", str("'stop' expected at most ", kMaxStopStrings, " strings, found ", v.size()));
      for (const auto& e : v) {
        if (!e.is_string()) bad("stop", "'stop' expected strings, found " + shown(e));
        s.stop.push_back(e.get<std::string>());
      }
    } else {
      bad("stop", "'stop' expected a string or a list of strings, found " + shown(v));
    }
    for (const auto& t : s.stop) {
      if (t.empty()) bad("stop", "'stop' expected non-empty strings, found \"\"");
      if (t.size() > kMaxStopLength)
        bad("stop",
            str("'stop' expected strings of at most ", kMaxStopLength, " bytes, found ", t.size()));
    }
  }
  if (present(j, "ignore_eos")) s.ignore_eos = boolean(j, "ignore_eos");
  if (present(j, "stream")) s.stream = boolean(j, "stream");
  if (present(j, "stream_options")) {
    const Json& o = j["stream_options"];
    if (!o.is_object())
      bad("stream_options", "'stream_options' expected an object, found " + shown(o));
    if (!s.stream) bad("stream_options", "'stream_options' is only allowed with \"stream\": true");
    if (present(o, "include_usage")) s.include_usage = boolean(o, "include_usage");
  }
  return s;
}

std::string parse_model(const Json& j) {
  if (!present(j, "model")) return "";
  std::string m = string(j, "model");
  if (!valid_model_name(m))
    throw ApiError(404, "model '" + shown(j["model"]) + "' does not exist", "model",
                   "model_not_found");
  return m;
}

// A message's content: a string, or a list of {"type": "text", "text": …} parts joined.
std::string message_text(const Json& content, size_t i) {
  const std::string where = str("messages[", i, "].content");
  if (content.is_string()) return content.get<std::string>();
  if (content.is_array()) {
    std::string out;
    for (const auto& part : content) {
      if (!part.is_object() || !part.contains("type") || part["type"] != "text" ||
          !part.contains("text") || !part["text"].is_string())
        bad(where, "'" + where +
                       "' expected a string or a list of {\"type\": \"text\", \"text\": …} "
                       "parts (reft serves text models), found " +
                       shown(part));
      out += part["text"].get<std::string>();
    }
    return out;
  }
  bad(where, "'" + where + "' expected a string, found " + shown(content));
}

}  // namespace

const char* error_type(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 409:
      return "conflict_error";
    case 413:
      return "invalid_request_error";
    case 429:
      return "rate_limit_error";
    case 503:
      return "service_unavailable";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

nlohmann::ordered_json error_json(int status, const std::string& message, const std::string& param,
                                  const std::string& code) {
  Json e;
  e["message"] = message;
  e["type"] = error_type(status);
  e["param"] = param.empty() ? Json(nullptr) : Json(param);
  e["code"] = code.empty() ? Json(nullptr) : Json(code);
  return Json{{"error", e}};
}

bool valid_model_name(std::string_view name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == ':';
  });
}

CompletionRequest parse_completion_request(std::string_view body) {
  const Json j = parse_body(body);
  refuse_unsupported(j);
  CompletionRequest r;
  r.model = parse_model(j);
  if (!present(j, "prompt")) bad("prompt", "'prompt' is required");
  const Json& p = j["prompt"];
  if (p.is_string()) {
    r.prompt_text = p.get<std::string>();
  } else if (p.is_array() && !p.empty() && p[0].is_number()) {
    for (const auto& id : p) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
          id.get<int64_t>() > (int64_t{1} << 31))
        bad("prompt",
            "'prompt' expected a list of token ids (non-negative integers), found " + shown(id));
      r.prompt_ids.push_back(id.get<int64_t>());
    }
  } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
    r.prompt_text = p[0].get<std::string>();
  } else if (p.is_array() && p.size() > 1) {
    bad("prompt",
        str("'prompt' with ", p.size(), " prompts is not supported; send one request per prompt"));
  } else {
    bad("prompt", "'prompt' expected a string or a list of token ids, found " + shown(p));
  }
  r.sampling = parse_sampling(j, "max_tokens");
  return r;
}

ChatRequest parse_chat_request(std::string_view body) {
  const Json j = parse_body(body);
  refuse_unsupported(j);
  ChatRequest r;
  r.model = parse_model(j);
  if (!present(j, "messages")) bad("messages", "'messages' is required");
  const Json& m = j["messages"];
  if (!m.is_array() || m.empty())
    bad("messages",
        "'messages' expected a non-empty list of {\"role\", \"content\"}, found " + shown(m));
  if (m.size() > kMaxMessages)
    bad("messages",
        str("'messages' expected at most ", kMaxMessages, " messages, found ", m.size()));
  r.messages = Json::array();
  for (size_t i = 0; i < m.size(); ++i) {
    const Json& msg = m[i];
    const std::string where = str("messages[", i, "]");
    if (!msg.is_object()) bad(where, "'" + where + "' expected an object, found " + shown(msg));
    if (!msg.contains("role") || !msg["role"].is_string())
      bad(where + ".role", "'" + where + ".role' expected a string");
    Json out = msg;
    out["content"] = msg.contains("content") && !msg["content"].is_null()
                         ? Json(message_text(msg["content"], i))
                         : Json("");
    r.messages.push_back(std::move(out));
  }
  if (present(j, "max_completion_tokens") && present(j, "max_tokens"))
    bad("max_tokens", "give 'max_tokens' or 'max_completion_tokens', not both");
  r.sampling = parse_sampling(
      j, present(j, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens");
  if (present(j, "add_generation_prompt"))
    r.add_generation_prompt = boolean(j, "add_generation_prompt");
  if (present(j, "chat_template_kwargs")) {
    const Json& k = j["chat_template_kwargs"];
    if (!k.is_object())
      bad("chat_template_kwargs", "'chat_template_kwargs' expected an object, found " + shown(k));
    for (const auto& [key, value] : k.items())
      if (key == "messages" || key == "add_generation_prompt")
        bad("chat_template_kwargs", "'chat_template_kwargs' cannot set '" + key + "'");
    r.template_kwargs = k;
  }
  return r;
}

AdapterLoadRequest parse_adapter_request(std::string_view body) {
  const Json j = parse_body(body);
  AdapterLoadRequest r;
  // "name"/"path" (reft), or vLLM's "lora_name"/"lora_path".
  const char* name_key = present(j, "lora_name") && !present(j, "name") ? "lora_name" : "name";
  const char* path_key = present(j, "lora_path") && !present(j, "path") ? "lora_path" : "path";
  if (!present(j, name_key)) bad("name", "'name' is required");
  if (!present(j, path_key)) bad("path", "'path' is required");
  r.name = string(j, name_key);
  r.path = string(j, path_key);
  if (!valid_model_name(r.name))
    bad("name",
        "'name' expected 1 to 128 characters of A-Z a-z 0-9 . _ : - (not starting with "
        "'.'), found " +
            shown(j[name_key]));
  if (r.path.empty() || r.path.size() > 4096 || r.path.find('\0') != std::string::npos)
    bad("path",
        "'path' expected a folder inside the server's --adapters-dir, found " + shown(j[path_key]));
  return r;
}

}  // namespace reft::openai
