#pragma once
// Runtime values of the chat-template interpreter. They follow @huggingface/jinja, the reference
// renderer of HF chat templates (transformers.js, the Hub): integers and floats are JavaScript
// numbers (doubles) of two kinds, strings are shared and immutable, arrays/objects/namespaces are
// shared by reference (a namespace assigned through `ns.x = …` is seen by every holder).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace reft::chat {

struct Value;
struct ObjectData;
struct Env;
using Array = std::vector<Value>;

enum class VType {
  kUndefined,
  kNull,
  kBool,
  kInt,
  kFloat,
  kString,
  kArray,
  kTuple,
  kObject,
  kKwargs,  // the keyword arguments of a call, passed as the last positional argument
  kNamespace,
  kFunction,
};

/// A callable: macros, builtins and bound methods. `args` ends with a kKwargs value when the call
/// had keyword arguments; `call_site` is the scope of the caller (for `caller()` in macros).
using Function =
    std::function<Value(std::vector<Value>& args, const std::shared_ptr<Env>& call_site)>;

struct Value {
  VType type = VType::kUndefined;
  bool boolean = false;
  double number = 0;  // kInt and kFloat
  std::shared_ptr<const std::string> str;
  std::shared_ptr<Array> array;        // kArray, kTuple
  std::shared_ptr<ObjectData> object;  // kObject, kKwargs, kNamespace
  std::shared_ptr<const Function> function;

  Value() = default;
  Value(const Value&) = default;
  Value(Value&&) noexcept = default;
  Value& operator=(const Value&) = default;
  Value& operator=(Value&&) noexcept = default;
  // A template can nest values a million deep ({% set ns.x = [ns.x] %} in a loop): containers are
  // released from a work list, not by recursive destructors that would overflow the stack.
  ~Value() {
    if (array || object || function) release_containers();
  }

  static Value undefined() { return {}; }
  static Value null() { return make(VType::kNull); }
  static Value of_bool(bool b) {
    Value v = make(VType::kBool);
    v.boolean = b;
    return v;
  }
  static Value of_int(double n) {
    Value v = make(VType::kInt);
    v.number = n;
    return v;
  }
  static Value of_float(double n) {
    Value v = make(VType::kFloat);
    v.number = n;
    return v;
  }
  static Value of_string(std::string s) {
    Value v = make(VType::kString);
    v.str = std::make_shared<const std::string>(std::move(s));
    return v;
  }
  static Value of_array(Array items, VType type = VType::kArray) {
    Value v = make(type);
    v.array = std::make_shared<Array>(std::move(items));
    return v;
  }
  static Value of_object(std::shared_ptr<ObjectData> data, VType type = VType::kObject) {
    Value v = make(type);
    v.object = std::move(data);
    return v;
  }
  static Value of_function(Function f) {
    Value v = make(VType::kFunction);
    v.function = std::make_shared<const Function>(std::move(f));
    return v;
  }

  bool is(VType t) const { return type == t; }
  bool is_undefined() const { return type == VType::kUndefined; }
  bool is_null() const { return type == VType::kNull; }
  bool is_string() const { return type == VType::kString; }
  bool is_number() const { return type == VType::kInt || type == VType::kFloat; }
  /// ArrayValue in the reference (tuples included).
  bool is_array() const { return type == VType::kArray || type == VType::kTuple; }
  /// ObjectValue in the reference (keyword arguments included).
  bool is_object() const { return type == VType::kObject || type == VType::kKwargs; }
  /// Objects and namespaces: what `.attr` and `x[key]` look up.
  bool is_container() const { return is_object() || type == VType::kNamespace; }
  const std::string& s() const { return *str; }

 private:
  void release_containers() noexcept;
  static Value make(VType t) {
    Value v;
    v.type = t;
    return v;
  }
};

/// An insertion-ordered map (JavaScript's Map, which the reference uses for objects).
struct ObjectData {
  std::vector<std::pair<std::string, Value>> entries;

  const Value* find(std::string_view key) const {
    for (const auto& [k, v] : entries)
      if (k == key) return &v;
    return nullptr;
  }
  void set(const std::string& key, Value value) {
    for (auto& [k, v] : entries)
      if (k == key) {
        v = std::move(value);
        return;
      }
    entries.emplace_back(key, std::move(value));
  }
  bool erase(std::string_view key) {
    for (auto it = entries.begin(); it != entries.end(); ++it)
      if (it->first == key) {
        entries.erase(it);
        return true;
      }
    return false;
  }
};

/// The reference's type names, used in its error messages ("StringValue", "ArrayValue", …).
const char* type_name(const Value& v);

/// Python-style truthiness as the reference defines it (empty arrays/objects are false).
bool truthy(const Value& v);

/// JavaScript's Number.prototype.toString (shortest round trip, "1e+21", "NaN", "Infinity").
std::string js_number(double n);

/// What `{{ v }}` prints: RuntimeValue.toString() (floats with ".0", arrays/objects as JSON).
std::string display(const Value& v);

/// JavaScript's `v.value.toString()`, which `~` and `+` use (floats print without ".0").
std::string raw_string(const Value& v);

/// JavaScript's `Array.prototype.join` of raw values (null/undefined join as "").
std::string raw_join_item(const Value& v);

struct JsonOptions {
  int indent = 0;  // 0: one line
  bool ensure_ascii = false;
  bool sort_keys = false;
  bool custom_separators = false;
  std::string item_separator, key_separator;
};

/// The `tojson` filter: JSON.stringify-compatible output with Python json.dumps separators.
/// `undefined_as_null` false prints undefined as `undefined` (display of arrays/objects).
std::string to_json(const Value& v, const JsonOptions& options, bool undefined_as_null = true);

/// JavaScript's `a == b` on the values' raw contents (loose equality).
bool loose_equals(const Value& a, const Value& b);
/// JavaScript's `a === b` on raw contents (containers by identity).
bool strict_equals(const Value& a, const Value& b);

/// UTF-16 length of UTF-8 text (JavaScript's String.length).
size_t js_length(std::string_view text);
/// The code points of UTF-8 text (JavaScript's Array.from(string)), as byte offsets into it: four
/// bytes a code point, where a string each would take forty.
struct CodePoints {
  std::string_view text;
  std::vector<uint32_t> offsets;  // size() + 1 entries

  size_t size() const { return offsets.size() - 1; }
  std::string_view operator[](size_t i) const {
    return text.substr(offsets[i], offsets[i + 1] - offsets[i]);
  }
};
CodePoints code_points(std::string_view text);

/// JavaScript's /\s/ (String.prototype.trim's set).
bool is_js_space(char32_t cp);
/// String.prototype.trim / trimStart / trimEnd.
std::string_view js_trim(std::string_view text, bool start, bool end);

/// Unicode full case mapping (String.prototype.toUpperCase / toLowerCase).
std::string js_upper(std::string_view text);
std::string js_lower(std::string_view text);

}  // namespace reft::chat
