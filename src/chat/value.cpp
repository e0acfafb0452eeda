// Values of the chat-template interpreter: printing, JSON and equality as the reference
// (@huggingface/jinja, i.e. JavaScript) does them.

#include "chat/value.h"

#include <unicode/locid.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "chat/errors.h"
#include "reft/error.h"
#include "tokenizer/unicode.h"

namespace reft::chat {

void Value::release_containers() noexcept {
  // While a release is under way, a Value being destroyed hands the containers it alone holds to
  // the work list instead of destroying them (and their Values) on the stack.
  thread_local std::vector<std::shared_ptr<const void>>* pending = nullptr;
  auto take = [](auto& p, std::vector<std::shared_ptr<const void>>& out) {
    if (p && p.use_count() == 1) out.push_back(std::move(p));
  };
  if (pending) {
    take(array, *pending);
    take(object, *pending);
    take(function, *pending);
    return;
  }
  std::vector<std::shared_ptr<const void>> work;
  pending = &work;
  take(array, work);
  take(object, work);
  take(function, work);
  while (!work.empty()) {
    auto next = std::move(work.back());
    work.pop_back();
    next.reset();  // its Values push their own containers onto `work`
  }
  pending = nullptr;
}

const char* type_name(const Value& v) {
  switch (v.type) {
    case VType::kUndefined:
      return "UndefinedValue";
    case VType::kNull:
      return "NullValue";
    case VType::kBool:
      return "BooleanValue";
    case VType::kInt:
      return "IntegerValue";
    case VType::kFloat:
      return "FloatValue";
    case VType::kString:
      return "StringValue";
    case VType::kArray:
      return "ArrayValue";
    case VType::kTuple:
      return "TupleValue";
    case VType::kObject:
      return "ObjectValue";
    case VType::kKwargs:
      return "KeywordArgumentsValue";
    case VType::kNamespace:
      return "NamespaceValue";
    case VType::kFunction:
      return "FunctionValue";
  }
  return "RuntimeValue";
}

bool truthy(const Value& v) {
  switch (v.type) {
    case VType::kUndefined:
    case VType::kNull:
      return false;
    case VType::kBool:
      return v.boolean;
    case VType::kInt:
    case VType::kFloat:
      return v.number != 0 && !std::isnan(v.number);
    case VType::kString:
      return !v.s().empty();
    case VType::kArray:
    case VType::kTuple:
      return !v.array->empty();
    case VType::kObject:
    case VType::kKwargs:
      return !v.object->entries.empty();
    case VType::kNamespace:
    case VType::kFunction:
      return true;
  }
  return false;
}

std::string js_number(double n) {
  if (std::isnan(n)) return "NaN";
  if (std::isinf(n)) return n > 0 ? "Infinity" : "-Infinity";
  if (n == 0) return "0";
  // Shortest round-trip digits and decimal exponent, then ECMAScript's Number::toString layout.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, std::fabs(n), std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  const size_t e = sci.find('e');
  std::string digits;
  for (size_t i = 0; i < e; ++i)
    if (sci[i] != '.') digits += sci[i];
  const int exponent = std::atoi(sci.c_str() + e + 1);
  const int k = static_cast<int>(digits.size());
  const int point = exponent + 1;  // position of the decimal point in `digits`
  std::string out = n < 0 ? "-" : "";
  if (k <= point && point <= 21) {
    out += digits + std::string(point - k, '0');
  } else if (0 < point && point <= 21) {
    out += digits.substr(0, point) + "." + digits.substr(point);
  } else if (-6 < point && point <= 0) {
    out += "0." + std::string(-point, '0') + digits;
  } else {
    out += digits.substr(0, 1);
    if (k > 1) out += "." + digits.substr(1);
    out += "e";
    out += point - 1 >= 0 ? "+" : "-";
    out += std::to_string(std::abs(point - 1));
  }
  return out;
}

namespace {

// FloatValue.toString: integral values keep one decimal ("2.0"), others print as JavaScript.
std::string float_string(double n) {
  if (n == 0 && std::signbit(n)) return "-0.0";
  if (std::isfinite(n) && std::fmod(n, 1.0) == 0) {
    if (std::fabs(n) >= 1e21) return js_number(n);  // toFixed switches to exponent form
    char buf[400];
    std::snprintf(buf, sizeof buf, "%.1f", n);
    return buf;
  }
  return js_number(n);
}

void append_hex4(std::string& out, unsigned unit) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\u%04x", unit);
  out += buf;
}

// JSON.stringify of a string; with ensure_ascii every UTF-16 unit >= 0x7f becomes \uXXXX.
std::string json_string(std::string_view s, bool ensure_ascii) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (c < 0x20 || (ensure_ascii && c == 0x7f))
            append_hex4(out, c);
          else
            out += static_cast<char>(c);
      }
      continue;
    }
    const size_t start = i;
    const char32_t cp = tok::next_code_point(s, i);
    if (!ensure_ascii) {
      out.append(s.substr(start, i - start));
    } else if (cp < 0x10000) {
      append_hex4(out, cp);
    } else {
      const char32_t v = cp - 0x10000;
      append_hex4(out, 0xD800 + (v >> 10));
      append_hex4(out, 0xDC00 + (v & 0x3FF));
    }
  }
  return out + "\"";
}

void to_json_into(std::string& out, const Value& v, const JsonOptions& o, int depth,
                  bool undefined_as_null) {
  std::string item_sep = ", ", key_sep = ": ";
  if (o.custom_separators) {
    item_sep = o.item_separator;
    key_sep = o.key_separator;
  } else if (o.indent > 0) {
    item_sep = ",";
  }
  switch (v.type) {
    case VType::kNull:
      out += "null";
      return;
    case VType::kUndefined:
      out += undefined_as_null ? "null" : "undefined";
      return;
    case VType::kBool:
      out += v.boolean ? "true" : "false";
      return;
    case VType::kInt:
    case VType::kFloat:
      out += std::isfinite(v.number) ? js_number(v.number) : "null";
      return;
    case VType::kString:
      out += json_string(v.s(), o.ensure_ascii);
      return;
    case VType::kArray:
    case VType::kTuple:
    case VType::kObject:
    case VType::kKwargs:
    case VType::kNamespace:
      break;
    case VType::kFunction:
      throw EvalError("Cannot convert to JSON: FunctionValue");
  }
  if (depth > 512) throw EvalError("Cannot convert to JSON: nested deeper than 512 levels");
  const std::string unit(o.indent > 0 ? o.indent : 0, ' ');
  std::string base = "\n";
  for (int i = 0; i < depth; ++i) base += unit;
  const std::string child = base + unit;
  if (v.is_array()) {
    if (v.array->empty()) {
      out += "[]";
      return;
    }
    out += "[";
    if (o.indent > 0) out += child;
    for (size_t i = 0; i < v.array->size(); ++i) {
      if (i) out += item_sep + (o.indent > 0 ? child : "");
      to_json_into(out, (*v.array)[i], o, depth + 1, undefined_as_null);
    }
    if (o.indent > 0) out += base;
    out += "]";
    return;
  }
  auto entries = v.object->entries;
  if (o.sort_keys)
    std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
      // localeCompare; code-point order is close enough for keys (documented difference).
      return a.first < b.first;
    });
  if (entries.empty()) {
    out += "{}";
    return;
  }
  out += "{";
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i) out += item_sep;
    if (o.indent > 0) out += child;
    out += json_string(entries[i].first, o.ensure_ascii);
    out += key_sep;
    to_json_into(out, entries[i].second, o, depth + 1, undefined_as_null);
  }
  if (o.indent > 0) out += base;
  out += "}";
}

// JavaScript's ToNumber of a string: trimmed; "" is 0; decimal, 0x/0o/0b, Infinity; else NaN.
double js_string_to_number(std::string_view s) {
  s = js_trim(s, true, true);
  if (s.empty()) return 0;
  std::string text(s);
  if (text == "Infinity" || text == "+Infinity") return INFINITY;
  if (text == "-Infinity") return -INFINITY;
  if (text.size() > 2 && text[0] == '0' &&
      (text[1] == 'x' || text[1] == 'X' || text[1] == 'o' || text[1] == 'O' || text[1] == 'b' ||
       text[1] == 'B')) {
    const int base = (text[1] == 'x' || text[1] == 'X')   ? 16
                     : (text[1] == 'o' || text[1] == 'O') ? 8
                                                          : 2;
    double r = 0;
    for (size_t i = 2; i < text.size(); ++i) {
      const char c = text[i];
      int d = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : 99;
      if (d >= base) return NAN;
      r = r * base + d;
    }
    return r;
  }
  for (char c : text)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == 'E' ||
          c == '+' || c == '-'))
      return NAN;
  char* end = nullptr;
  const double r = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() ? r : NAN;
}

// JavaScript's ToNumber of a primitive raw value.
double to_number(const Value& v) {
  switch (v.type) {
    case VType::kBool:
      return v.boolean ? 1 : 0;
    case VType::kInt:
    case VType::kFloat:
      return v.number;
    case VType::kString:
      return js_string_to_number(v.s());
    case VType::kNull:
      return 0;
    default:
      return NAN;
  }
}

bool is_primitive(const Value& v) {
  return v.type == VType::kBool || v.is_number() || v.is_string() || v.is_null() ||
         v.is_undefined();
}

bool same_container(const Value& a, const Value& b) {
  if (a.is_array() && b.is_array()) return a.array == b.array;
  if (a.is_container() && b.is_container()) return a.object == b.object;
  if (a.type == VType::kFunction && b.type == VType::kFunction) return a.function == b.function;
  return false;
}

}  // namespace

std::string display(const Value& v) {
  switch (v.type) {
    case VType::kUndefined:
      return "undefined";
    case VType::kNull:
      return "null";
    case VType::kBool:
      return v.boolean ? "true" : "false";
    case VType::kInt:
      return js_number(v.number);
    case VType::kFloat:
      return float_string(v.number);
    case VType::kString:
      return v.s();
    case VType::kFunction:
      return "[function]";
    default:
      return to_json(v, JsonOptions{}, false);
  }
}

std::string raw_join_item(const Value& v) {
  switch (v.type) {
    case VType::kUndefined:
    case VType::kNull:
      return "";
    default:
      return raw_string(v);
  }
}

std::string raw_string(const Value& v) {
  switch (v.type) {
    case VType::kUndefined:
      return "undefined";
    case VType::kNull:
      return "null";
    case VType::kBool:
      return v.boolean ? "true" : "false";
    case VType::kInt:
    case VType::kFloat:
      return js_number(v.number);
    case VType::kString:
      return v.s();
    case VType::kArray:
    case VType::kTuple: {
      // Array.prototype.toString joins the elements' RuntimeValue.toString() with ",".
      std::string out;
      for (size_t i = 0; i < v.array->size(); ++i) {
        if (i) out += ",";
        out += display((*v.array)[i]);
      }
      return out;
    }
    case VType::kFunction:
      return "[function]";
    default:
      return "[object Map]";
  }
}

std::string to_json(const Value& v, const JsonOptions& options, bool undefined_as_null) {
  std::string out;
  to_json_into(out, v, options, 0, undefined_as_null);
  return out;
}

bool loose_equals(const Value& a, const Value& b) {
  const bool a_nullish = a.is_null() || a.is_undefined();
  const bool b_nullish = b.is_null() || b.is_undefined();
  if (a_nullish || b_nullish) return a_nullish && b_nullish;
  if (!is_primitive(a) || !is_primitive(b)) {
    if (!is_primitive(a) && !is_primitive(b)) return same_container(a, b);
    // An array or map against a primitive: JavaScript compares its string form.
    const Value& obj = is_primitive(a) ? b : a;
    const Value& prim = is_primitive(a) ? a : b;
    const std::string text = raw_string(obj);
    if (prim.is_string()) return text == prim.s();
    return js_string_to_number(text) == to_number(prim);
  }
  if (a.is_string() && b.is_string()) return a.s() == b.s();
  return to_number(a) == to_number(b);
}

bool strict_equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return a.number == b.number;
  if (a.type != b.type) {
    if (a.is_array() && b.is_array()) return a.array == b.array;
    if (a.is_container() && b.is_container()) return a.object == b.object;
    return false;
  }
  switch (a.type) {
    case VType::kUndefined:
    case VType::kNull:
      return true;
    case VType::kBool:
      return a.boolean == b.boolean;
    case VType::kString:
      return a.s() == b.s();
    default:
      return same_container(a, b);
  }
}

size_t js_length(std::string_view text) {
  size_t n = 0;
  for (size_t i = 0; i < text.size();) n += tok::next_code_point(text, i) >= 0x10000 ? 2 : 1;
  return n;
}

CodePoints code_points(std::string_view text) {
  CodePoints out{text, {}};
  out.offsets.push_back(0);
  for (size_t i = 0; i < text.size();) {
    tok::next_code_point(text, i);
    out.offsets.push_back(static_cast<uint32_t>(std::min(i, text.size())));
  }
  return out;
}

bool is_js_space(char32_t c) {
  return c == 32 || (c >= 9 && c <= 13) || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
         c == 0x3000 || c == 0xfeff;
}

std::string_view js_trim(std::string_view text, bool start, bool end) {
  if (start) {
    size_t i = 0;
    while (i < text.size()) {
      size_t next = i;
      if (!is_js_space(tok::next_code_point(text, next))) break;
      i = next;
    }
    text.remove_prefix(std::min(i, text.size()));
  }
  if (end) {
    while (!text.empty()) {
      size_t begin = text.size() - 1;
      while (begin > 0 && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
      size_t i = begin;
      if (!is_js_space(tok::next_code_point(text, i))) break;
      text.remove_suffix(text.size() - begin);
    }
  }
  return text;
}

std::string js_upper(std::string_view text) {
  std::string out;
  icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())))
      .toUpper(icu::Locale::getRoot())
      .toUTF8String(out);
  return out;
}

std::string js_lower(std::string_view text) {
  std::string out;
  icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())))
      .toLower(icu::Locale::getRoot())
      .toUTF8String(out);
  return out;
}

}  // namespace reft::chat
