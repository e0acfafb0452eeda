// The public face of the chat-template renderer: parsing, the globals a template sees, the
// context transformers builds (messages, special tokens, tools) and picking the template out of
// tokenizer_config.json.

#include "reft/chat_template.h"

#include <cmath>
#include <cstdlib>

#include "chat/errors.h"
#include "chat/interpreter.h"
#include "chat/lexer.h"
#include "tokenizer/unicode.h"
#include "util/files.h"

namespace reft {

using chat::Array;
using chat::EvalError;
using chat::ObjectData;
using chat::Value;
using chat::VType;

namespace {

// A canonical array index ("0", "17", not "017"): JavaScript objects list those keys first.
bool is_array_index(const std::string& key) {
  if (key.empty() || key.size() > 10) return false;
  if (key.size() > 1 && key[0] == '0') return false;
  for (char c : key)
    if (c < '0' || c > '9') return false;
  return std::stoull(key) < 4294967295ull;
}

std::string valid_utf8(const std::string& s) {
  return tok::find_invalid_utf8(s) == std::string::npos ? s : tok::utf8_lossy(s);
}

// convertToRuntimeValues of the JSON the reference would get from JSON.parse.
Value from_json(const nlohmann::ordered_json& j, int depth) {
  if (depth > 512) fail("[chat_template] the context is nested deeper than 512 levels");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::null();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::of_bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
    case nlohmann::ordered_json::value_t::number_unsigned:
    case nlohmann::ordered_json::value_t::number_float: {
      const double d = j.get<double>();
      return std::isfinite(d) && std::trunc(d) == d ? Value::of_int(d) : Value::of_float(d);
    }
    case nlohmann::ordered_json::value_t::string:
      return Value::of_string(valid_utf8(j.get<std::string>()));
    case nlohmann::ordered_json::value_t::array: {
      Array items;
      items.reserve(j.size());
      for (const auto& x : j) items.push_back(from_json(x, depth + 1));
      return Value::of_array(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      auto data = std::make_shared<ObjectData>();
      std::vector<std::pair<unsigned long long, std::string>> index_keys;
      for (const auto& [k, v] : j.items())
        if (is_array_index(k)) index_keys.emplace_back(std::stoull(k), k);
      std::sort(index_keys.begin(), index_keys.end());
      for (const auto& [n, k] : index_keys) data->set(k, from_json(j.at(k), depth + 1));
      for (const auto& [k, v] : j.items())
        if (!is_array_index(k)) data->set(valid_utf8(k), from_json(v, depth + 1));
      return Value::of_object(std::move(data));
    }
    default:
      fail("[chat_template] the context holds a value JSON cannot carry (binary)");
  }
}

// utils.ts strftime: %Y %m %d %b %B %H %M %% (UTC, English month names).
std::string strftime_subset(std::time_t now, const std::string& format) {
  std::tm tm{};
  gmtime_r(&now, &tm);
  static const char* const kLong[] = {"January",   "February", "March",    "April",
                                      "May",       "June",     "July",     "August",
                                      "September", "October",  "November", "December"};
  static const char* const kShort[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  auto pad2 = [](int n) { return (n < 10 ? "0" : "") + std::to_string(n); };
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] == '%' && i + 1 < format.size()) {
      const char c = format[i + 1];
      std::string piece;
      switch (c) {
        case 'Y':
          piece = std::to_string(tm.tm_year + 1900);
          break;
        case 'm':
          piece = pad2(tm.tm_mon + 1);
          break;
        case 'd':
          piece = pad2(tm.tm_mday);
          break;
        case 'b':
          piece = kShort[tm.tm_mon];
          break;
        case 'B':
          piece = kLong[tm.tm_mon];
          break;
        case 'H':
          piece = pad2(tm.tm_hour);
          break;
        case 'M':
          piece = pad2(tm.tm_min);
          break;
        case '%':
          piece = "%";
          break;
        default:
          break;
      }
      if (!piece.empty()) {
        out += piece;
        ++i;
        continue;
      }
    }
    out += format[i];
  }
  return out;
}

void install_globals(chat::Env& env, chat::Interpreter& interp) {
  env.vars["false"] = Value::of_bool(false);
  env.vars["true"] = Value::of_bool(true);
  env.vars["none"] = Value::null();
  env.vars["False"] = Value::of_bool(false);
  env.vars["True"] = Value::of_bool(true);
  env.vars["None"] = Value::null();
  env.vars["raise_exception"] =
      Value::of_function([](std::vector<Value>& args, const chat::EnvPtr&) -> Value {
        const Value message = args.empty() ? Value::undefined() : args[0];
        throw chat::RaisedError(message.is_undefined() ? "" : chat::raw_string(message));
      });
  env.vars["range"] = Value::of_function([&interp](std::vector<Value>& args, const chat::EnvPtr&) {
    for (const auto& a : args)
      if (!a.is_number())
        throw EvalError(str("range() expects numbers, found ", chat::type_name(a)));
    if (args.empty()) throw EvalError("range expected at least 1 argument, got 0");
    double start = 0, stop = args[0].number, step = 1;
    if (args.size() > 1) {
      start = args[0].number;
      stop = args[1].number;
    }
    if (args.size() > 2) step = args[2].number;
    if (step == 0) throw EvalError("range() step must not be zero");
    const double count = std::ceil((stop - start) / step);
    if (count > 0) interp.step(static_cast<size_t>(std::min(count, 1e15)));
    Array items;
    if (step > 0)
      for (double i = start; i < stop; i += step) items.push_back(Value::of_int(i));
    else
      for (double i = start; i > stop; i += step) items.push_back(Value::of_int(i));
    for (auto& v : items)
      if (std::trunc(v.number) != v.number) v = Value::of_float(v.number);
    return Value::of_array(std::move(items));
  });
  env.vars["strftime_now"] =
      Value::of_function([&interp](std::vector<Value>& args, const chat::EnvPtr&) {
        if (args.empty() || !args[0].is_string())
          throw EvalError("strftime_now() expects a format string");
        return Value::of_string(strftime_subset(interp.now(), args[0].s()));
      });
  env.vars["namespace"] = Value::of_function([&interp](std::vector<Value>& args,
                                                       const chat::EnvPtr&) {
    std::vector<Value> positional = args;
    std::shared_ptr<ObjectData> kwargs;
    if (!positional.empty() && positional.back().is(VType::kKwargs)) {
      kwargs = positional.back().object;
      positional.pop_back();
    }
    if (positional.size() > 1)
      throw EvalError(str("namespace expected at most 1 argument, got ", positional.size()));
    auto data = std::make_shared<ObjectData>();
    if (positional.size() == 1) {
      const Value& source = positional[0];
      if (source.is_object()) {
        data->entries = source.object->entries;
      } else if (source.is_array()) {
        for (const auto& pair : *source.array) {
          Array kv;
          if (pair.is_array()) {
            kv = *pair.array;
          } else if (pair.is_string()) {
            const auto chars = chat::code_points(pair.s());
            for (size_t i = 0; i < chars.size() && i < 3; ++i)
              kv.push_back(Value::of_string(std::string(chars[i])));
          }
          if (kv.size() != 2)
            throw EvalError("namespace expected an object or an iterable of [key, value] pairs");
          if (!kv[0].is_string()) throw EvalError("namespace keys must be strings");
          data->set(kv[0].s(), kv[1]);
        }
      } else {
        throw EvalError(str("'", chat::type_name(source), "' object is not iterable"));
      }
    }
    if (kwargs)
      for (const auto& [k, v] : kwargs->entries) data->set(k, v);
    interp.namespaces.push_back(data);
    return Value::of_object(std::move(data), VType::kNamespace);
  });
}

}  // namespace

ChatTemplate ChatTemplate::parse(std::string source) {
  ChatTemplate t;
  t.source_ = std::make_shared<const std::string>(valid_utf8(source));
  const auto tokens = chat::tokenize(*t.source_);
  t.program_ = chat::parse_tokens(tokens, *t.source_);
  return t;
}

std::string ChatTemplate::render(const nlohmann::ordered_json& context,
                                 const ChatRenderOptions& options) const {
  if (!program_) fail("[chat_template] expected a parsed template, found an empty ChatTemplate");
  if (!context.is_object())
    fail("[chat_template] expected the context to be a JSON object, found ", context.type_name());
  const std::time_t now = options.now ? *options.now : std::time(nullptr);
  chat::Interpreter interp(*source_, options.limits, now);
  auto globals = std::make_shared<chat::Env>();
  install_globals(*globals, interp);
  for (const auto& [key, value] : context.items()) {
    if (globals->vars.count(key)) fail("[chat_template] Variable already declared: ", key);
    globals->vars[key] = from_json(value, 0);
  }
  struct Cleanup {
    chat::Interpreter& interp;
    chat::EnvPtr& globals;
    ~Cleanup() {
      // Namespaces can hold themselves (ns.self = ns): empty them so that nothing leaks.
      for (auto& weak : interp.namespaces)
        if (auto ns = weak.lock()) ns->entries.clear();
      globals->vars.clear();
    }
  } cleanup{interp, globals};
  return interp.run(*program_, globals);
}

std::string select_chat_template(const nlohmann::ordered_json& config, const std::string& name,
                                 const std::string& where) {
  const std::string at = where.empty() ? "tokenizer_config.json" : where;
  if (!config.is_object() || !config.contains("chat_template") || config["chat_template"].is_null())
    fail("[", at, "] expected a chat_template, found none; this model has no chat template");
  const auto& t = config["chat_template"];
  if (t.is_string()) {
    if (!name.empty() && name != "default")
      fail("[", at, "] expected a chat template named '", name,
           "', found a single unnamed template (use it without a name)");
    return t.get<std::string>();
  }
  if (!t.is_array())
    fail("[", at, ".chat_template] expected a string or a list of {name, template}, found ",
         t.type_name());
  std::vector<std::string> names;
  const std::string wanted = name.empty() ? "default" : name;
  for (const auto& entry : t) {
    if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() ||
        !entry.contains("template") || !entry["template"].is_string())
      fail("[", at, ".chat_template] expected entries {\"name\": string, \"template\": string}");
    names.push_back(entry["name"].get<std::string>());
    if (names.back() == wanted) return entry["template"].get<std::string>();
  }
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  fail("[", at, ".chat_template] expected a template named '", wanted, "', found ",
       names.empty() ? "none" : list, name.empty() ? "; choose one by name" : "");
}

std::string special_token_text(const nlohmann::ordered_json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return "";
  const auto& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}

nlohmann::ordered_json chat_context(const nlohmann::ordered_json& config,
                                    const nlohmann::ordered_json& messages,
                                    bool add_generation_prompt,
                                    const nlohmann::ordered_json& extra) {
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  context["messages"] = messages;
  // transformers passes tools=None and documents=None when none are given.
  context["tools"] = extra.is_object() && extra.contains("tools") ? extra["tools"] : nullptr;
  context["documents"] =
      extra.is_object() && extra.contains("documents") ? extra["documents"] : nullptr;
  context["add_generation_prompt"] = add_generation_prompt;
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                          "cls_token", "mask_token"}) {
    if (config.is_object() && config.contains(key) && !config[key].is_null())
      context[key] = special_token_text(config, key);
  }
  if (config.is_object() && config.contains("additional_special_tokens") &&
      config["additional_special_tokens"].is_array()) {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const auto& t : config["additional_special_tokens"])
      list.push_back(t.is_object() && t.contains("content") ? t["content"] : t);
    context["additional_special_tokens"] = list;
  }
  if (extra.is_object())
    for (const auto& [k, v] : extra.items())
      if (k != "tools" && k != "documents") context[k] = v;
  return context;
}

nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& where) {
  constexpr int kMaxNesting = 256;
  try {
    return nlohmann::ordered_json::parse(text, [&](int depth, nlohmann::ordered_json::parse_event_t,
                                                   nlohmann::ordered_json&) {
      if (depth > kMaxNesting)
        fail("[", where, "] expected JSON nested at most ", kMaxNesting, " levels, found deeper");
      return true;
    });
  } catch (const nlohmann::json::exception& e) {
    fail("[", where, "] expected JSON, found a syntax error: ", json_error_summary(e));
  }
}

ModelChatTemplate load_chat_template(const std::filesystem::path& dir, const std::string& name) {
  const auto config_path = dir / "tokenizer_config.json";
  const auto jinja_path = dir / "chat_template.jinja";
  ModelChatTemplate out;
  const bool have_config = std::filesystem::exists(config_path);
  if (have_config)
    out.tokenizer_config = parse_ordered_json(read_file(config_path), config_path.string());
  const bool config_has_template = have_config && out.tokenizer_config.is_object() &&
                                   out.tokenizer_config.contains("chat_template") &&
                                   !out.tokenizer_config["chat_template"].is_null();
  if (!config_has_template && std::filesystem::exists(jinja_path)) {
    if (!name.empty() && name != "default")
      fail("[", jinja_path.string(), "] expected a chat template named '", name,
           "', found a single unnamed template");
    out.chat_template = ChatTemplate::parse(read_file(jinja_path));
    if (!have_config) out.tokenizer_config = nlohmann::ordered_json::object();
    return out;
  }
  if (!have_config)
    fail("[", dir.string(),
         "] expected tokenizer_config.json (or chat_template.jinja), found neither");
  out.chat_template =
      ChatTemplate::parse(select_chat_template(out.tokenizer_config, name, config_path.string()));
  return out;
}

std::string ModelChatTemplate::render(const nlohmann::ordered_json& messages,
                                      bool add_generation_prompt,
                                      const nlohmann::ordered_json& extra,
                                      const ChatRenderOptions& options) const {
  return chat_template.render(
      chat_context(tokenizer_config, messages, add_generation_prompt, extra), options);
}

}  // namespace reft
