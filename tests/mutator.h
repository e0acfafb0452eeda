#pragma once
// The mutations of tests/mutation_test.cpp: seeded, format-aware changes to a valid input (bit
// flips, byte replacement, truncation, huge and non-finite numbers, JSON type confusion, deep
// nesting, duplicated keys, very long strings; inside safetensors headers and torch.save pickles).
// Each Mutator is deterministic in its seed, so a failing mutant is rerun from its seed alone.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace reft::test {

enum class Format { kJson, kJsonLines, kText, kBinary, kSafetensors, kTorchZip };

class Mutator {
 public:
  using json = nlohmann::json;

  explicit Mutator(uint32_t seed) : rng_(seed) {}

  size_t pick(size_t n) { return n ? std::uniform_int_distribution<size_t>(0, n - 1)(rng_) : 0; }
  template <class T>
  const T& one_of(const std::vector<T>& v) {
    return v[pick(v.size())];
  }
  const std::string& what() const { return what_; }

  // Mutates `bytes` (a file of `format`) with the mutation numbered `op` (cycled per seed).
  std::string mutate(const std::string& bytes, Format format, size_t op) {
    switch (format) {
      case Format::kJson:
        return op % 8 < 6 ? mutate_json_text(bytes, op) : mutate_raw(bytes, pick(5));
      case Format::kJsonLines:
        return mutate_json_line(bytes, op);
      case Format::kText:
        return mutate_raw(bytes, op % 5);
      case Format::kBinary:
        return mutate_raw(bytes, op % 5);
      case Format::kSafetensors:
        return mutate_safetensors(bytes, op);
      case Format::kTorchZip:
        return mutate_torch_zip(bytes, op);
    }
    return bytes;
  }

 private:
  // Byte-level: 0 bit flips, 1 special bytes, 2 truncation, 3 a huge number, 4 a very long line.
  std::string mutate_raw(std::string b, size_t op) {
    if (b.empty()) b = " ";
    switch (op % 5) {
      case 0: {
        const size_t n = 1 + pick(8);
        for (size_t i = 0; i < n; ++i) b[pick(b.size())] ^= static_cast<char>(1 << pick(8));
        what_ = std::to_string(n) + " bit flips";
        break;
      }
      case 1: {
        const size_t n = 1 + pick(4);
        for (size_t i = 0; i < n; ++i) b[pick(b.size())] = one_of<char>({'\0', '\xff', '\n', '"'});
        what_ = std::to_string(n) + " bytes replaced by 0x00/0xff/newline/quote";
        break;
      }
      case 2: {
        const size_t at = pick(b.size());
        b.resize(at);
        what_ = "truncated at " + std::to_string(at);
        break;
      }
      case 3: {
        const std::string n = one_of<std::string>({"4294967301", "18446744073709551616", "-1",
                                                   "1e18", std::string(8, '\xff') + "\x7f",
                                                   std::string(10, '\xff') + "\x01"});
        b.insert(pick(b.size()), n);
        what_ = "huge number inserted";
        break;
      }
      default: {
        b.insert(pick(b.size()), std::string(size_t{1} << (20 + pick(3)), 'a'));
        what_ = "very long line inserted";
      }
    }
    return b;
  }

  // Every node's JSON pointer (at most a few thousand; the inputs are small).
  static void collect(const json& j, const json::json_pointer& at,
                      std::vector<json::json_pointer>& out) {
    out.push_back(at);
    if (j.is_object())
      for (const auto& [k, v] : j.items()) collect(v, at / k, out);
    else if (j.is_array())
      for (size_t i = 0; i < j.size(); ++i) collect(j[i], at / i, out);
  }

  json::json_pointer pick_node(const json& doc, const std::function<bool(const json&)>& prefer) {
    std::vector<json::json_pointer> all, preferred;
    collect(doc, json::json_pointer(), all);
    for (const auto& p : all)
      if (prefer(doc.at(p))) preferred.push_back(p);
    return preferred.empty() ? all[pick(all.size())] : preferred[pick(preferred.size())];
  }

  // `doc` with the node at `at` replaced by raw (possibly invalid) JSON text.
  static std::string splice(json doc, const json::json_pointer& at, const std::string& raw) {
    const std::string marker = "\x01mutation\x01";
    doc[at] = marker;
    std::string text = doc.dump(1);
    const std::string quoted = json(marker).dump();
    text.replace(text.find(quoted), quoted.size(), raw);
    return text;
  }

  // JSON-level: 0 huge or non-finite number, 1 type confusion, 2 deep nesting, 3 duplicated key,
  // 4 very long string, 5 an array or object repeated to thousands of entries; text that does not
  // parse goes to mutate_raw.
  std::string mutate_json_text(const std::string& text, size_t op) {
    json doc;
    try {
      doc = json::parse(text);
    } catch (const json::exception&) {
      return mutate_raw(text, op);
    }
    switch (op % 6) {
      case 0: {
        const auto at = pick_node(doc, [](const json& j) { return j.is_number(); });
        const std::string raw = one_of<std::string>(
            {"1e18", "4294967301", "-1", "0", "NaN", "Infinity", "-Infinity", "1e999",
             "18446744073709551616", "-9223372036854775809", "2147483648", "0.5", "-0", "1e-999"});
        what_ = "number " + at.to_string() + " = " + raw;
        return splice(doc, at, raw);
      }
      case 1: {
        const bool leaf = pick(2);
        const auto at = pick_node(doc, [&](const json& j) { return j.is_structured() != leaf; });
        const std::string raw = one_of<std::string>({"\"x\"", "7", "0", "[]", "{}", "null", "true",
                                                     "[[1,2]]", "-2.5", "{\"a\":1}", "\"\""});
        what_ = "type confusion " + at.to_string() + " = " + raw;
        return splice(doc, at, raw);
      }
      case 2: {
        const auto at = pick_node(doc, [](const json&) { return true; });
        const size_t depth = size_t{1000} << pick(8);
        std::string raw;
        if (pick(2)) {
          raw = std::string(depth, '[') + "1" + std::string(depth, ']');
        } else {
          for (size_t i = 0; i < depth; ++i) raw += "{\"a\":";
          raw += "1" + std::string(depth, '}');
        }
        what_ = "nesting " + std::to_string(depth) + " deep at " + at.to_string();
        return splice(doc, at, raw);
      }
      case 3: {
        const auto at = pick_node(doc, [](const json& j) { return j.is_object() && !j.empty(); });
        const json& obj = doc[at];
        if (!obj.is_object() || obj.empty()) return mutate_raw(text, 1);
        auto it = obj.begin();
        std::advance(it, pick(obj.size()));
        const std::string value =
            one_of<std::string>({"null", "[]", "\"dup\"", "-1", "4294967301", "{}"});
        std::string raw = obj.dump();
        raw.pop_back();
        raw += "," + json(it.key()).dump() + ":" + value + "}";
        what_ = "duplicated key " + (at / it.key()).to_string() + " = " + value;
        return splice(doc, at, raw);
      }
      case 4: {
        const auto at = pick_node(doc, [](const json& j) { return j.is_string(); });
        const size_t n = size_t{1} << (16 + pick(7));
        what_ = "string of " + std::to_string(n) + " bytes at " + at.to_string();
        return splice(doc, at, json(std::string(n, pick(2) ? 'x' : ' ')).dump());
      }
      default: {
        const auto at =
            pick_node(doc, [](const json& j) { return j.is_structured() && !j.empty(); });
        const json& node = doc[at];
        if (!node.is_structured() || node.empty()) return mutate_raw(text, 3);
        // Every entry repeated (object keys made distinct) up to ~1000-64000 entries, 16 MiB.
        const size_t want = size_t{1000} << pick(7);
        std::string raw(1, node.is_array() ? '[' : '{');
        size_t n = 0;
        for (; n < want && raw.size() < (size_t{16} << 20); ++n) {
          auto it = node.begin();
          std::advance(it, n % node.size());
          if (n) raw += ',';
          if (node.is_object())
            raw += json(it.key() + (n < node.size() ? "" : std::to_string(n))).dump() + ":";
          raw += it->dump();
        }
        raw += node.is_array() ? ']' : '}';
        what_ = at.to_string() + " repeated to " + std::to_string(n) + " entries";
        return splice(doc, at, raw);
      }
    }
  }

  // One line of a JSON Lines file mutated as JSON (or as bytes).
  std::string mutate_json_line(const std::string& text, size_t op) {
    std::vector<std::string> lines;
    for (size_t pos = 0; pos < text.size();) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      lines.push_back(text.substr(pos, end - pos));
      pos = end + 1;
    }
    if (op % 8 >= 6 || lines.empty()) return mutate_raw(text, pick(5));
    const size_t i = pick(lines.size());
    std::string line = mutate_json_text(lines[i], op);
    std::replace(line.begin(), line.end(), '\n', ' ');  // dump(1) is multi-line
    lines[i] = line;
    what_ = "line " + std::to_string(i + 1) + ": " + what_;
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
  }

  // The header as JSON (its length prefix rewritten), the length prefix itself, or raw bytes.
  std::string mutate_safetensors(const std::string& b, size_t op) {
    uint64_t n = 0;
    for (int i = 7; i >= 0 && b.size() >= 8; --i) n = (n << 8) | static_cast<unsigned char>(b[i]);
    if (b.size() < 8 || n > b.size() - 8) return mutate_raw(b, op);
    const std::string header = b.substr(8, n), data = b.substr(8 + n);
    auto with_header = [&](uint64_t len, const std::string& h) {
      std::string out(8, '\0');
      for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
      return out + h + data;
    };
    switch (op % 9) {
      case 6: {
        const uint64_t len = one_of<uint64_t>(
            {0, n + 1, b.size(), uint64_t{1} << 63, ~uint64_t{0}, uint64_t{1} << 32, n - 1});
        what_ = "header length " + std::to_string(len);
        return with_header(len, header);
      }
      case 7:
        return mutate_raw(b, pick(3));
      case 8:
        return mutate_raw(b, 2);
      default: {
        const std::string h = mutate_json_text(header, op % 6);
        what_ = "header: " + what_;
        return with_header(h.size(), h);
      }
    }
  }

  // A torch.save zip: raw bytes of the archive, or bytes of its pickle with the entry's CRC-32
  // cleared (the reader checks a non-zero one), so that the unpickler sees the mutation.
  std::string mutate_torch_zip(std::string b, size_t op) {
    if (op % 3 == 2) return mutate_raw(b, op);
    auto u16 = [&](size_t at) {
      return static_cast<size_t>(static_cast<unsigned char>(b[at]) |
                                 static_cast<unsigned char>(b[at + 1]) << 8);
    };
    auto u32 = [&](size_t at) { return u16(at) | u16(at + 2) << 16; };
    for (size_t cd = b.find("PK\x01\x02"); cd != std::string::npos && cd + 46 <= b.size();
         cd = b.find("PK\x01\x02", cd + 4)) {
      const size_t name_len = u16(cd + 28);
      const std::string name = b.substr(cd + 46, name_len);
      if (name.size() < 8 || name.compare(name.size() - 8, 8, "data.pkl") != 0) continue;
      const size_t size = u32(cd + 20), local = u32(cd + 42);
      if (local + 30 > b.size() || u16(cd + 10) != 0) break;  // stored entries only
      const size_t begin = local + 30 + u16(local + 26) + u16(local + 28);
      if (begin + size > b.size() || size == 0) break;
      for (size_t i = 0; i < 4; ++i) b[cd + 16 + i] = b[local + 14 + i] = 0;
      std::string pkl = b.substr(begin, size);
      pkl = mutate_raw(pkl, op % 3 == 0 ? pick(2) : 3);
      pkl.resize(size, '.');  // the same length keeps the archive's offsets valid
      b.replace(begin, size, pkl);
      what_ = "data.pkl: " + what_;
      return b;
    }
    return mutate_raw(b, op);
  }

  std::mt19937 rng_;
  std::string what_;
};

}  // namespace reft::test
