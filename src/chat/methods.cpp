// Methods of values (`s.strip()`, `d.get(k)`, `d.items()`, `a.length`), as the reference's
// per-type builtins: a member that is not a key of an object falls back to these.

#include <cmath>

#include "chat/errors.h"
#include "chat/interpreter.h"
#include "tokenizer/unicode.h"

namespace reft::chat {

std::string capitalize_first(const std::string& s);                         // filters.cpp
std::string title_string(const std::string& s);                             // filters.cpp
int compare_for_sort(const Value& a, const Value& b, bool case_sensitive);  // filters.cpp

namespace {

bool is_space_run_char(std::string_view s, size_t i, size_t* width);

// Python's str.replace(old, new, count) as the reference implements it (an empty `old` inserts
// `new` between code points).
std::string replace_all(const std::string& s, const std::string& from, const std::string& to,
                        double count, Interpreter& interp) {
  double remaining = count < 0 || std::isnan(count) ? INFINITY : count;
  if (remaining == 0) return s;
  std::string out;
  if (from.empty()) {
    const auto chars = code_points(s);
    for (size_t i = 0; i <= chars.size(); ++i) {
      if (remaining > 0) {
        out += to;
        --remaining;
      }
      if (i < chars.size()) out += chars[i];
      interp.check_size(out.size());
    }
    return out;
  }
  size_t start = 0;
  while (remaining > 0) {
    const size_t at = s.find(from, start);
    if (at == std::string::npos) break;
    out.append(s, start, at - start);
    out += to;
    interp.check_size(out.size());
    start = at + from.size();
    --remaining;
  }
  out.append(s, start, std::string::npos);
  interp.check_size(out.size());
  return out;
}

bool is_space_run_char(std::string_view s, size_t i, size_t* width) {
  size_t next = i;
  const bool space = is_js_space(tok::next_code_point(s, next));
  *width = next - i;
  return space;
}

}  // namespace

Value Interpreter::call_string_method(const Value& self, const std::string& name,
                                      std::vector<Value>& args) {
  const std::string& s = self.s();
  if (name == "upper") return Value::of_string(js_upper(s));
  if (name == "lower") return Value::of_string(js_lower(s));
  if (name == "strip") return Value::of_string(std::string(js_trim(s, true, true)));
  if (name == "lstrip") return Value::of_string(std::string(js_trim(s, true, false)));
  if (name == "rstrip") return Value::of_string(std::string(js_trim(s, false, true)));
  if (name == "title") return Value::of_string(title_string(s));
  if (name == "capitalize") return Value::of_string(capitalize_first(s));
  if (name == "startswith" || name == "endswith") {
    if (args.empty()) throw EvalError(name + "() requires at least one argument");
    const bool starts = name == "startswith";
    auto test = [&](const std::string& p) {
      if (p.size() > s.size()) return false;
      return starts ? s.compare(0, p.size(), p) == 0
                    : s.compare(s.size() - p.size(), p.size(), p) == 0;
    };
    const Value& pattern = args[0];
    if (pattern.is_string()) return Value::of_bool(test(pattern.s()));
    if (pattern.is_array()) {
      for (const auto& item : *pattern.array) {
        if (!item.is_string()) throw EvalError(name + "() tuple elements must be strings");
        if (test(item.s())) return Value::of_bool(true);
      }
      return Value::of_bool(false);
    }
    throw EvalError(name + "() argument must be a string or tuple of strings");
  }
  if (name == "split") {
    const Value sep = args.size() > 0 ? args[0] : Value::null();
    if (!sep.is_string() && !sep.is_null())
      throw EvalError("sep argument must be a string or null");
    const Value maxsplit = args.size() > 1 ? args[1] : Value::of_int(-1);
    if (!maxsplit.is(VType::kInt)) throw EvalError("maxsplit argument must be a number");
    const double max = maxsplit.number;
    Array parts;
    if (sep.is_null()) {
      const std::string_view text = js_trim(s, true, false);
      size_t i = 0, w = 0;
      while (i < text.size()) {
        while (i < text.size() && is_space_run_char(text, i, &w)) i += w;
        if (i >= text.size()) break;
        if (max >= 0 && static_cast<double>(parts.size()) >= max) {
          parts.push_back(Value::of_string(std::string(text.substr(i))));
          break;
        }
        const size_t start = i;
        while (i < text.size() && !is_space_run_char(text, i, &w)) i += w;
        parts.push_back(Value::of_string(std::string(text.substr(start, i - start))));
        step();
      }
    } else {
      const std::string& d = sep.s();
      if (d.empty()) throw EvalError("empty separator");
      std::vector<std::string> pieces;
      size_t start = 0;
      while (true) {
        const size_t at = s.find(d, start);
        if (at == std::string::npos) break;
        pieces.push_back(s.substr(start, at - start));
        start = at + d.size();
        step();
      }
      pieces.push_back(s.substr(start));
      if (max >= 0 && static_cast<double>(pieces.size()) > max) {
        const size_t keep = static_cast<size_t>(max);
        std::string rest;
        for (size_t i = keep; i < pieces.size(); ++i) rest += (i > keep ? d : "") + pieces[i];
        pieces.resize(keep);
        pieces.push_back(rest);
      }
      for (auto& p : pieces) parts.push_back(Value::of_string(std::move(p)));
    }
    return Value::of_array(std::move(parts));
  }
  if (name == "replace") {
    if (args.size() < 2) throw EvalError("replace() requires at least two arguments");
    if (!args[0].is_string() || !args[1].is_string())
      throw EvalError("replace() arguments must be strings");
    Value count = Value::null();
    if (args.size() > 2) {
      if (args[2].is(VType::kKwargs)) {
        const Value* c = args[2].object->find("count");
        count = c ? *c : Value::null();
      } else {
        count = args[2];
      }
    }
    if (!count.is(VType::kInt) && !count.is_null())
      throw EvalError("replace() count argument must be a number or null");
    return Value::of_string(
        replace_all(s, args[0].s(), args[1].s(), count.is_null() ? -1 : count.number, *this));
  }
  throw EvalError("Unknown string method: " + name);
}

Value Interpreter::builtin_member(const Value& object, const std::string& name) {
  if (object.is_string()) {
    if (name == "length") return Value::of_int(static_cast<double>(js_length(object.s())));
    static const char* const kMethods[] = {"upper",      "lower",  "strip",  "title",
                                           "capitalize", "rstrip", "lstrip", "startswith",
                                           "endswith",   "split",  "replace"};
    for (const char* m : kMethods)
      if (name == m) {
        return Value::of_function([this, object, name](std::vector<Value>& args, const EnvPtr&) {
          return call_string_method(object, name, args);
        });
      }
    return Value::undefined();
  }
  if (object.is_array()) {
    if (name == "length") return Value::of_int(static_cast<double>(object.array->size()));
    return Value::undefined();
  }
  if (!object.is_object()) return Value::undefined();
  const auto data = object.object;
  auto pairs = [data] {
    Array items;
    for (const auto& [k, v] : data->entries)
      items.push_back(Value::of_array({Value::of_string(k), v}));
    return Value::of_array(std::move(items));
  };
  if (name == "get") {
    return Value::of_function([data](std::vector<Value>& args, const EnvPtr&) {
      if (args.empty() || !args[0].is_string())
        throw EvalError(str("Object key must be a string: got ",
                            args.empty() ? "UndefinedValue" : type_name(args[0])));
      if (const Value* v = data->find(args[0].s())) return *v;
      return args.size() > 1 ? args[1] : Value::null();
    });
  }
  if (name == "items")
    return Value::of_function([pairs](std::vector<Value>&, const EnvPtr&) { return pairs(); });
  if (name == "keys") {
    return Value::of_function([data](std::vector<Value>&, const EnvPtr&) {
      Array keys;
      for (const auto& [k, v] : data->entries) keys.push_back(Value::of_string(k));
      return Value::of_array(std::move(keys));
    });
  }
  if (name == "values") {
    return Value::of_function([data](std::vector<Value>&, const EnvPtr&) {
      Array values;
      for (const auto& [k, v] : data->entries) values.push_back(v);
      return Value::of_array(std::move(values));
    });
  }
  if (name == "dictsort") {
    return Value::of_function([data](std::vector<Value>& args, const EnvPtr&) {
      std::shared_ptr<ObjectData> kwargs = std::make_shared<ObjectData>();
      std::vector<Value> positional;
      for (const auto& a : args) {
        if (a.is(VType::kKwargs))
          kwargs = a.object;
        else
          positional.push_back(a);
      }
      auto arg = [&](size_t i, const char* key, Value fallback) {
        if (i < positional.size()) return positional[i];
        if (const Value* v = kwargs->find(key)) return *v;
        return fallback;
      };
      const Value case_sensitive = arg(0, "case_sensitive", Value::of_bool(false));
      if (!case_sensitive.is(VType::kBool)) throw EvalError("case_sensitive must be a boolean");
      const Value by = arg(1, "by", Value::of_string("key"));
      if (!by.is_string()) throw EvalError("by must be a string");
      if (by.s() != "key" && by.s() != "value")
        throw EvalError("by must be either 'key' or 'value'");
      const Value reverse = arg(2, "reverse", Value::of_bool(false));
      if (!reverse.is(VType::kBool)) throw EvalError("reverse must be a boolean");
      std::vector<std::pair<std::string, Value>> entries = data->entries;
      const bool by_key = by.s() == "key";
      std::stable_sort(entries.begin(), entries.end(), [&](const auto& x, const auto& y) {
        const Value a = by_key ? Value::of_string(x.first) : x.second;
        const Value b = by_key ? Value::of_string(y.first) : y.second;
        const int c = compare_for_sort(a, b, case_sensitive.boolean);
        return reverse.boolean ? c > 0 : c < 0;
      });
      Array items;
      for (auto& [k, v] : entries) items.push_back(Value::of_array({Value::of_string(k), v}));
      return Value::of_array(std::move(items));
    });
  }
  return Value::undefined();
}

}  // namespace reft::chat
