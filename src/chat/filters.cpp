// Filters (`x|name`, `x|name(args)`) and tests (`x is name`) of chat templates, as the reference
// defines them: its per-type tables (a filter a type lacks is an error, e.g. `undefined|trim`),
// plus Jinja's `d`, `count`, `e`/`escape`, `select`/`reject` and `map` by filter name, which
// real templates occasionally use and the reference lacks.

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "chat/errors.h"
#include "chat/interpreter.h"
#include "tokenizer/unicode.h"

namespace reft::chat {
namespace {

// compareRuntimeValues: numbers (and booleans) with each other, strings with strings.
int compare_values(const Value& a, const Value& b, bool case_sensitive) {
  if (a.is_null() && b.is_null()) return 0;
  if (a.is_null() || b.is_null())
    throw EvalError(str("Cannot compare ", type_name(a), " with ", type_name(b)));
  if (a.is_undefined() && b.is_undefined()) return 0;
  if (a.is_undefined() || b.is_undefined())
    throw EvalError(str("Cannot compare ", type_name(a), " with ", type_name(b)));
  auto numeric_like = [](const Value& v) { return v.is_number() || v.is(VType::kBool); };
  auto num = [](const Value& v) { return v.is(VType::kBool) ? (v.boolean ? 1.0 : 0.0) : v.number; };
  if (numeric_like(a) && numeric_like(b)) {
    const double x = num(a), y = num(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.type != b.type)
    throw EvalError(str("Cannot compare different types: ", type_name(a), " and ", type_name(b)));
  if (a.is_string()) {
    std::string x = a.s(), y = b.s();
    if (!case_sensitive) {
      x = js_lower(x);
      y = js_lower(y);
    }
    // JavaScript compares UTF-16 units; UTF-8 byte order agrees except across the surrogate range.
    return x < y ? -1 : x > y ? 1 : 0;
  }
  throw EvalError(str("Cannot compare type: ", type_name(a)));
}

// getAttributeValue: "a.b.0" through objects, namespaces and array indices.
Value attribute_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (v.is_container()) {
      const Value* found = v.object->find(part);
      v = found ? *found : Value::undefined();
    } else if (v.is_array()) {
      char* end = nullptr;
      const long index = std::strtol(part.c_str(), &end, 10);
      if (end == part.c_str() || index < 0 || static_cast<size_t>(index) >= v.array->size())
        return Value::undefined();
      v = (*v.array)[static_cast<size_t>(index)];
    } else {
      return Value::undefined();
    }
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

// String.prototype.split("\n").map(indent unless first/blank).join("\n").
std::string indent_lines(const std::string& s, const std::string& indent, bool first, bool blank) {
  std::string out;
  size_t start = 0, line = 0;
  while (true) {
    const size_t nl = s.find('\n', start);
    const std::string part =
        s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if (line) out += "\n";
    if ((first || line > 0) && (blank || !part.empty())) out += indent;
    out += part;
    if (nl == std::string::npos) break;
    start = nl + 1;
    ++line;
  }
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// JavaScript's parseInt(s, 10) / parseFloat(s): a leading numeric prefix, NaN when none.
double js_parse_int(const std::string& s) {
  std::string_view t = js_trim(s, true, false);
  size_t i = 0;
  bool negative = false;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) negative = t[i++] == '-';
  const size_t digits = i;
  double r = 0;
  while (i < t.size() && t[i] >= '0' && t[i] <= '9') r = r * 10 + (t[i++] - '0');
  if (i == digits) return NAN;
  return negative ? -r : r;
}
double js_parse_float(const std::string& s) {
  std::string t(js_trim(s, true, false));
  size_t i = 0;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
  if (t.compare(i, 8, "Infinity") == 0) return t[0] == '-' ? -INFINITY : INFINITY;
  size_t j = i;
  bool digits = false;
  while (j < t.size() && std::isdigit(static_cast<unsigned char>(t[j]))) ++j, digits = true;
  if (j < t.size() && t[j] == '.') {
    ++j;
    while (j < t.size() && std::isdigit(static_cast<unsigned char>(t[j]))) ++j, digits = true;
  }
  if (!digits) return NAN;
  if (j < t.size() && (t[j] == 'e' || t[j] == 'E')) {
    size_t k = j + 1;
    if (k < t.size() && (t[k] == '+' || t[k] == '-')) ++k;
    if (k < t.size() && std::isdigit(static_cast<unsigned char>(t[k]))) {
      while (k < t.size() && std::isdigit(static_cast<unsigned char>(t[k]))) ++k;
      j = k;
    }
  }
  return std::strtod(t.substr(0, j).c_str(), nullptr);
}

std::string title_case(const std::string& s) {
  // /\b\w/g with toUpperCase: a word character (ASCII) after a non-word one is uppercased.
  std::string out = s;
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  for (size_t i = 0; i < out.size(); ++i)
    if (word(out[i]) && (i == 0 || !word(out[i - 1])) && out[i] >= 'a' && out[i] <= 'z')
      out[i] = static_cast<char>(out[i] - 'a' + 'A');
  return out;
}

const Value* keyword(const Interpreter::Args& a, const char* name) {
  return a.keywords->find(name);
}
const Value& positional_or(const Interpreter::Args& a, size_t i, const char* name,
                           const Value& fallback) {
  if (i < a.positional.size()) return a.positional[i];
  if (const Value* v = keyword(a, name)) return *v;
  return fallback;
}

}  // namespace

std::string capitalize_first(const std::string& s) {
  if (s.empty()) return s;
  size_t i = 0;
  tok::next_code_point(s, i);
  return js_upper(s.substr(0, i)) + s.substr(i);
}
std::string title_string(const std::string& s) { return title_case(s); }
int compare_for_sort(const Value& a, const Value& b, bool case_sensitive) {
  return compare_values(a, b, case_sensitive);
}

bool Interpreter::has_test(const std::string& name) const {
  static const char* const kTests[] = {
      "boolean", "callable", "odd",       "even",     "false",   "true",     "none",
      "string",  "number",   "integer",   "iterable", "mapping", "sequence", "lower",
      "upper",   "defined",  "undefined", "equalto",  "eq",      "==",       "!=",
      "ne",      "in",       "sameas",    "float",    "gt",      "lt",       "ge",
      "le",      ">",        "<",         ">=",       "<="};
  for (const char* t : kTests)
    if (name == t) return true;
  return false;
}

bool Interpreter::run_test(const std::string& name, const Value& v, const Value* arg) {
  const Value other = arg ? *arg : Value::undefined();
  if (name == "boolean") return v.is(VType::kBool);
  if (name == "callable") return v.is(VType::kFunction);
  if (name == "odd" || name == "even") {
    if (!v.is(VType::kInt)) throw EvalError(str("cannot ", name, " on ", type_name(v)));
    const bool odd = std::fmod(v.number, 2) != 0;
    return name == "odd" ? odd : !odd;
  }
  if (name == "false") return v.is(VType::kBool) && !v.boolean;
  if (name == "true") return v.is(VType::kBool) && v.boolean;
  if (name == "none") return v.is_null();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is(VType::kInt);
  if (name == "float") return v.is(VType::kFloat);
  if (name == "iterable") return v.is(VType::kArray) || v.is_string();
  if (name == "mapping") return v.is_object();
  if (name == "sequence") return v.is_array() || v.is_object() || v.is_string();
  if (name == "lower") return v.is_string() && v.s() == js_lower(v.s());
  if (name == "upper") return v.is_string() && v.s() == js_upper(v.s());
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas")
    return strict_equals(v, other);
  if (name == "!=" || name == "ne") return !strict_equals(v, other);
  if (name == "in") {
    if (other.is_array())
      return std::any_of(other.array->begin(), other.array->end(),
                         [&](const Value& x) { return strict_equals(x, v); });
    if (other.is_string() && v.is_string()) return other.s().find(v.s()) != std::string::npos;
    if (other.is_object() && v.is_string()) return other.object->find(v.s()) != nullptr;
    return false;
  }
  const int c = compare_values(v, other, true);
  if (name == "gt" || name == ">") return c > 0;
  if (name == "lt" || name == "<") return c < 0;
  if (name == "ge" || name == ">=") return c >= 0;
  return c <= 0;  // le, <=
}

Value Interpreter::apply_filter(const Value& operand, const Node& filter, const EnvPtr& env) {
  if (filter.kind == NodeKind::kIdentifier) {
    const std::string& name = filter.text;
    if (name == "safe") return operand;
    if (name == "tojson") {
      std::string out = to_json(operand, JsonOptions{});
      check_size(out.size());
      return Value::of_string(std::move(out));
    }
    if (name == "d" || name == "default")
      return operand.is_undefined() ? Value::of_string("") : operand;
    if (operand.is_array()) {
      const Array& a = *operand.array;
      step(a.size());
      if (name == "list") return operand;
      if (name == "first") return a.empty() ? Value::undefined() : a.front();
      if (name == "last") return a.empty() ? Value::undefined() : a.back();
      if (name == "length" || name == "count") return Value::of_int(static_cast<double>(a.size()));
      if (name == "reverse") return Value::of_array(Array(a.rbegin(), a.rend()));
      if (name == "sort") {
        Array sorted = a;
        std::stable_sort(sorted.begin(), sorted.end(), [](const Value& x, const Value& y) {
          return compare_values(x, y, false) < 0;
        });
        return Value::of_array(std::move(sorted));
      }
      if (name == "join") {
        std::string out;
        for (const auto& x : a) {
          out += raw_join_item(x);
          check_size(out.size());
        }
        return Value::of_string(std::move(out));
      }
      if (name == "string") {
        std::string out = to_json(operand, JsonOptions{}, false);
        check_size(out.size());
        return Value::of_string(std::move(out));
      }
      if (name == "unique") {
        Array out;
        for (const auto& x : a) {
          step(out.size());
          if (std::none_of(out.begin(), out.end(),
                           [&](const Value& y) { return strict_equals(x, y); }))
            out.push_back(x);
        }
        return Value::of_array(std::move(out));
      }
      throw EvalError("Unknown ArrayValue filter: " + name);
    }
    if (operand.is_string()) {
      const std::string& s = operand.s();
      if (name == "length" || name == "count")
        return Value::of_int(static_cast<double>(js_length(s)));
      if (name == "upper") return Value::of_string(js_upper(s));
      if (name == "lower") return Value::of_string(js_lower(s));
      if (name == "title") return Value::of_string(title_case(s));
      if (name == "capitalize") return Value::of_string(capitalize_first(s));
      if (name == "trim") return Value::of_string(std::string(js_trim(s, true, true)));
      if (name == "indent") {
        std::string out = indent_lines(s, "    ", false, false);
        check_size(out.size());
        return Value::of_string(std::move(out));
      }
      if (name == "join" || name == "string") return operand;
      if (name == "e" || name == "escape") return Value::of_string(html_escape(s));
      if (name == "int") {
        const double v = js_parse_int(s);
        return Value::of_int(std::isnan(v) ? 0 : v);
      }
      if (name == "float") {
        const double v = js_parse_float(s);
        return Value::of_float(std::isnan(v) ? 0 : v);
      }
      throw EvalError("Unknown StringValue filter: " + name);
    }
    if (operand.is_number()) {
      if (name == "abs")
        return operand.is(VType::kInt) ? Value::of_int(std::fabs(operand.number))
                                       : Value::of_float(std::fabs(operand.number));
      if (name == "int") return Value::of_int(std::trunc(operand.number) + 0.0);
      if (name == "float") return Value::of_float(operand.number);
      if (name == "string") return Value::of_string(display(operand));
      throw EvalError("Unknown NumericValue filter: " + name);
    }
    if (operand.is_object()) {
      if (name == "items") {
        Array items;
        for (const auto& [k, v] : operand.object->entries)
          items.push_back(Value::of_array({Value::of_string(k), v}));
        return Value::of_array(std::move(items));
      }
      if (name == "length" || name == "count")
        return Value::of_int(static_cast<double>(operand.object->entries.size()));
      const Value builtin = builtin_member(operand, name);
      if (builtin.is(VType::kFunction)) {
        std::vector<Value> none;
        return (*builtin.function)(none, env);
      }
      if (!builtin.is_undefined()) return builtin;
      throw EvalError("Unknown ObjectValue filter: " + name);
    }
    if (operand.is(VType::kBool)) {
      if (name == "bool") return operand;
      if (name == "int") return Value::of_int(operand.boolean ? 1 : 0);
      if (name == "float") return Value::of_float(operand.boolean ? 1 : 0);
      if (name == "string") return Value::of_string(operand.boolean ? "true" : "false");
      throw EvalError("Unknown BooleanValue filter: " + name);
    }
    throw EvalError(str("Cannot apply filter \"", name, "\" to type: ", type_name(operand)));
  }

  if (filter.kind != NodeKind::kCall || filter.a->kind != NodeKind::kIdentifier)
    throw EvalError("Unknown filter");
  const std::string& name = filter.a->text;
  const auto& arg_nodes = filter.items;

  if (name == "tojson") {
    const Args a = evaluate_args(arg_nodes, env);
    JsonOptions o;
    const Value* indent = keyword(a, "indent");
    if (indent && !indent->is_null()) {
      if (!indent->is(VType::kInt)) throw EvalError("If set, indent must be a number");
      o.indent = static_cast<int>(std::clamp(indent->number, 0.0, 64.0));
    }
    if (const Value* v = keyword(a, "ensure_ascii")) {
      if (!v->is(VType::kBool)) throw EvalError("If set, ensure_ascii must be a boolean");
      o.ensure_ascii = v->boolean;
    }
    if (const Value* v = keyword(a, "sort_keys")) {
      if (!v->is(VType::kBool)) throw EvalError("If set, sort_keys must be a boolean");
      o.sort_keys = v->boolean;
    }
    if (const Value* v = keyword(a, "separators"); v && !v->is_null()) {
      if (!v->is_array()) throw EvalError("If set, separators must be a tuple of two strings");
      if (v->array->size() != 2 || !(*v->array)[0].is_string() || !(*v->array)[1].is_string())
        throw EvalError("separators must be a tuple of two strings");
      o.custom_separators = true;
      o.item_separator = (*v->array)[0].s();
      o.key_separator = (*v->array)[1].s();
    }
    std::string out = to_json(operand, o);
    check_size(out.size());
    return Value::of_string(std::move(out));
  }
  if (name == "join") {
    std::vector<std::string> parts;
    if (operand.is_string()) {
      const auto chars = code_points(operand.s());
      step(chars.size());
      for (size_t i = 0; i < chars.size(); ++i) parts.emplace_back(chars[i]);
    } else if (operand.is_array()) {
      for (const auto& x : *operand.array) parts.push_back(raw_join_item(x));
    } else {
      throw EvalError(str("Cannot apply filter \"join\" to type: ", type_name(operand)));
    }
    const Args a = evaluate_args(arg_nodes, env);
    const Value sep = positional_or(a, 0, "separator", Value::of_string(""));
    if (!sep.is_string()) throw EvalError("separator must be a string");
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (i) out += sep.s();
      out += parts[i];
      check_size(out.size());
    }
    step(parts.size());
    return Value::of_string(std::move(out));
  }
  if (name == "int" || name == "float") {
    const Args a = evaluate_args(arg_nodes, env);
    const bool is_int = name == "int";
    const Value fallback =
        positional_or(a, 0, "default", is_int ? Value::of_int(0) : Value::of_float(0));
    if (operand.is_string()) {
      const double v = is_int ? js_parse_int(operand.s()) : js_parse_float(operand.s());
      if (std::isnan(v)) return fallback;
      return is_int ? Value::of_int(v) : Value::of_float(v);
    }
    if (operand.is_number())
      return is_int ? Value::of_int(std::trunc(operand.number) + 0.0)
                    : Value::of_float(operand.number);
    if (operand.is(VType::kBool))
      return is_int ? Value::of_int(operand.boolean ? 1 : 0)
                    : Value::of_float(operand.boolean ? 1 : 0);
    throw EvalError(str("Cannot apply filter \"", name, "\" to type: ", type_name(operand)));
  }
  if (name == "default" || name == "d") {
    const Args a = evaluate_args(arg_nodes, env);
    const Value fallback = a.positional.size() > 0 ? a.positional[0] : Value::of_string("");
    const Value boolean = positional_or(a, 1, "boolean", Value::of_bool(false));
    if (!boolean.is(VType::kBool)) throw EvalError("`default` filter flag must be a boolean");
    if (operand.is_undefined() || (boolean.boolean && !truthy(operand))) return fallback;
    return operand;
  }

  if (operand.is_array()) {
    const Array& items = *operand.array;
    step(items.size());
    if (name == "sort") {
      const Args a = evaluate_args(arg_nodes, env);
      const Value reverse = positional_or(a, 0, "reverse", Value::of_bool(false));
      if (!reverse.is(VType::kBool)) throw EvalError("reverse must be a boolean");
      const Value case_sensitive = positional_or(a, 1, "case_sensitive", Value::of_bool(false));
      if (!case_sensitive.is(VType::kBool)) throw EvalError("case_sensitive must be a boolean");
      const Value attribute = positional_or(a, 2, "attribute", Value::null());
      if (!attribute.is_string() && !attribute.is(VType::kInt) && !attribute.is_null())
        throw EvalError("attribute must be a string, integer, or null");
      auto key = [&](const Value& item) {
        if (attribute.is_null()) return item;
        return attribute_path(item,
                              attribute.is_string() ? attribute.s() : js_number(attribute.number));
      };
      Array sorted = items;
      std::stable_sort(sorted.begin(), sorted.end(), [&](const Value& x, const Value& y) {
        const int c = compare_values(key(x), key(y), case_sensitive.boolean);
        return reverse.boolean ? c > 0 : c < 0;
      });
      return Value::of_array(std::move(sorted));
    }
    if (name == "selectattr" || name == "rejectattr") {
      const bool select = name == "selectattr";
      for (const auto& item : items)
        if (!item.is_container())
          throw EvalError("`" + name + "` can only be applied to array of objects");
      for (const auto& n : arg_nodes)
        if (n->kind != NodeKind::kText)
          throw EvalError("arguments of `" + name + "` must be strings");
      if (arg_nodes.empty()) throw EvalError("`" + name + "` needs an attribute name");
      const std::string attr = arg_nodes[0]->text;
      const bool has_test_name = arg_nodes.size() > 1;
      const std::string test = has_test_name ? arg_nodes[1]->text : "";
      if (has_test_name && !has_test(test)) throw EvalError("Unknown test: " + test);
      const Value value =
          arg_nodes.size() > 2 ? Value::of_string(arg_nodes[2]->text) : Value::undefined();
      Array out;
      for (const auto& item : items) {
        const Value* a = item.object->find(attr);
        bool result = false;
        if (a) result = has_test_name ? run_test(test, *a, &value) : truthy(*a);
        if (result == select) out.push_back(item);
      }
      return Value::of_array(std::move(out));
    }
    if (name == "select" || name == "reject") {
      // Jinja's select/reject (not in the reference): each item through a test, or truthiness.
      const Args a = evaluate_args(arg_nodes, env);
      std::string test;
      if (!a.positional.empty()) {
        if (!a.positional[0].is_string()) throw EvalError("the test name must be a string");
        test = a.positional[0].s();
        if (!has_test(test)) throw EvalError("Unknown test: " + test);
      }
      const Value argument = a.positional.size() > 1 ? a.positional[1] : Value::undefined();
      Array out;
      for (const auto& item : items) {
        const bool r = test.empty() ? truthy(item) : run_test(test, item, &argument);
        if (r == (name == "select")) out.push_back(item);
      }
      return Value::of_array(std::move(out));
    }
    if (name == "map") {
      const Args a = evaluate_args(arg_nodes, env);
      if (const Value* attr = keyword(a, "attribute")) {
        if (!attr->is_string()) throw EvalError("attribute must be a string");
        const Value* fallback = keyword(a, "default");
        Array out;
        for (const auto& item : items) {
          if (!item.is_container()) throw EvalError("items in map must be an object");
          const Value v = attribute_path(item, attr->s());
          out.push_back(v.is_undefined() ? (fallback ? *fallback : Value::undefined()) : v);
        }
        return Value::of_array(std::move(out));
      }
      if (!a.positional.empty() && a.positional[0].is_string()) {
        // Jinja's map('filter'): each item through a filter without arguments.
        Node f(NodeKind::kIdentifier, filter.offset);
        f.text = a.positional[0].s();
        Array out;
        for (const auto& item : items) out.push_back(apply_filter(item, f, env));
        return Value::of_array(std::move(out));
      }
      throw EvalError("`map` expressions without `attribute` set are not currently supported.");
    }
    throw EvalError("Unknown ArrayValue filter: " + name);
  }
  if (operand.is_string()) {
    if (name == "indent") {
      const Args a = evaluate_args(arg_nodes, env);
      const Value width = positional_or(a, 0, "width", Value::of_int(4));
      if (!width.is(VType::kInt) && !width.is_string())
        throw EvalError("width must be an integer or a string");
      const Value first = positional_or(a, 1, "first", Value::of_bool(false));
      const Value blank = positional_or(a, 2, "blank", Value::of_bool(false));
      const std::string unit =
          width.is_string()
              ? width.s()
              : std::string(static_cast<size_t>(std::clamp(width.number, 0.0, 4096.0)), ' ');
      std::string out = indent_lines(operand.s(), unit, truthy(first), truthy(blank));
      check_size(out.size());
      return Value::of_string(std::move(out));
    }
    if (name == "replace") {
      Args a = evaluate_args(arg_nodes, env);
      std::vector<Value> args = a.positional;
      args.push_back(Value::of_object(a.keywords, VType::kKwargs));
      return call_string_method(operand, "replace", args);
    }
    throw EvalError("Unknown StringValue filter: " + name);
  }
  if (operand.is_object()) {
    const Value builtin = builtin_member(operand, name);
    if (builtin.is(VType::kFunction)) {
      auto args = evaluate_call_args(arg_nodes, env);
      return (*builtin.function)(args, env);
    }
    throw EvalError("Unknown ObjectValue filter: " + name);
  }
  throw EvalError(str("Cannot apply filter \"", name, "\" to type: ", type_name(operand)));
}

}  // namespace reft::chat
