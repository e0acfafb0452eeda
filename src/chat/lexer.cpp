// Chat-template lexer. Byte for byte it follows the reference (@huggingface/jinja's lexer.ts):
// its preprocessing (trailing newline, lstrip_blocks, trim_blocks, {% generation %}) and its token
// rules, including the quirks real templates depend on (a "-" after an operator is part of a
// number, "}}" inside an object literal closes the object).

#include "chat/lexer.h"

#include <cstdio>

#include "chat/value.h"
#include "reft/error.h"
#include "tokenizer/unicode.h"

namespace reft::chat {

std::string source_location(std::string_view source, uint32_t offset) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset && i < source.size(); ++i) {
    if (source[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return str("line ", line, ", column ", column);
}

namespace {

// Template text after preprocessing, each byte with the offset it came from.
struct Mapped {
  std::string text;
  std::vector<uint32_t> origin;
  void push(char c, uint32_t at) {
    text.push_back(c);
    origin.push_back(at);
  }
};

bool is_space_at(std::string_view s, size_t i, size_t* width = nullptr) {
  if (i >= s.size()) return false;
  size_t next = i;
  const bool space = is_js_space(tok::next_code_point(s, next));
  if (width) *width = next - i;
  return space;
}

bool is_line_start(const Mapped& m, size_t i) {
  if (i == 0) return true;
  const char c = m.text[i - 1];
  if (c == '\n' || c == '\r') return true;
  // U+2028 / U+2029 (E2 80 A8/A9) also start lines for JavaScript's multiline ^.
  return i >= 3 && static_cast<unsigned char>(m.text[i - 3]) == 0xE2 &&
         static_cast<unsigned char>(m.text[i - 2]) == 0x80 &&
         (static_cast<unsigned char>(c) == 0xA8 || static_cast<unsigned char>(c) == 0xA9);
}

Mapped preprocess(std::string_view source) {
  Mapped m;
  size_t n = source.size();
  if (n > 0 && source[n - 1] == '\n') --n;  // one trailing newline is dropped
  for (size_t i = 0; i < n; ++i) m.push(source[i], static_cast<uint32_t>(i));

  // lstrip_blocks: /^[ \t]*({[#%-])/gm → "$1".
  Mapped a;
  for (size_t i = 0; i < m.text.size();) {
    if (is_line_start(m, i)) {
      size_t j = i;
      while (j < m.text.size() && (m.text[j] == ' ' || m.text[j] == '\t')) ++j;
      if (j + 1 < m.text.size() && m.text[j] == '{' &&
          (m.text[j + 1] == '#' || m.text[j + 1] == '%' || m.text[j + 1] == '-')) {
        i = j;
      }
    }
    // Copy up to the next line start.
    do {
      a.push(m.text[i], m.origin[i]);
      ++i;
    } while (i < m.text.size() && !is_line_start(m, i));
  }

  // trim_blocks: /([#%-]})\n/g → "$1".
  Mapped b;
  for (size_t i = 0; i < a.text.size(); ++i) {
    b.push(a.text[i], a.origin[i]);
    if (i + 2 < a.text.size() && (a.text[i] == '#' || a.text[i] == '%' || a.text[i] == '-') &&
        a.text[i + 1] == '}' && a.text[i + 2] == '\n') {
      b.push(a.text[i + 1], a.origin[i + 1]);
      i += 2;
    }
  }

  // transformers' {% generation %} / {% endgeneration %} markers are removed, honoring -.
  Mapped c;
  const std::string& t = b.text;
  size_t last = 0;
  for (size_t at = t.find("{%"); at != std::string::npos; at = t.find("{%", at + 1)) {
    if (at < last) continue;
    size_t p = at + 2;
    const bool lstrip = p < t.size() && t[p] == '-';
    auto try_match = [&](size_t q, size_t* end, size_t* after_start, bool* rstrip) {
      size_t w;
      while (is_space_at(t, q, &w)) q += w;
      if (t.compare(q, 3, "end") == 0 && t.compare(q + 3, 10, "generation") == 0) q += 3;
      if (t.compare(q, 10, "generation") != 0) return false;
      q += 10;
      while (is_space_at(t, q, &w)) q += w;
      *rstrip = q < t.size() && t[q] == '-';
      if (*rstrip) ++q;
      if (t.compare(q, 2, "%}") != 0) return false;
      q += 2;
      *after_start = q;
      while (is_space_at(t, q, &w)) q += w;
      *end = q;
      return true;
    };
    size_t end = 0, after = 0;
    bool rstrip = false;
    bool matched = false, used_lstrip = false;
    if (lstrip && try_match(p + 1, &end, &after, &rstrip)) {
      matched = used_lstrip = true;
    } else if (try_match(p, &end, &after, &rstrip)) {
      matched = true;
    }
    if (!matched) continue;
    size_t keep_end = at;
    while (used_lstrip && keep_end > last) {
      size_t begin = keep_end - 1;
      while (begin > last && (static_cast<unsigned char>(t[begin]) & 0xC0) == 0x80) --begin;
      if (!is_space_at(t, begin)) break;
      keep_end = begin;
    }
    for (size_t i = last; i < keep_end; ++i) c.push(t[i], b.origin[i]);
    if (!rstrip)
      for (size_t i = after; i < end; ++i) c.push(t[i], b.origin[i]);
    last = end;
    at = end - 1;
  }
  for (size_t i = last; i < t.size(); ++i) c.push(t[i], b.origin[i]);
  return c;
}

bool is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }

struct Rule {
  const char* seq;
  Tok type;
};
// The reference's ordered mapping table.
constexpr Rule kRules[] = {
    {"{%", Tok::kOpenStatement},  {"%}", Tok::kCloseStatement},
    {"{{", Tok::kOpenExpression}, {"}}", Tok::kCloseExpression},
    {"(", Tok::kOpenParen},       {")", Tok::kCloseParen},
    {"{", Tok::kOpenCurly},       {"}", Tok::kCloseCurly},
    {"[", Tok::kOpenSquare},      {"]", Tok::kCloseSquare},
    {",", Tok::kComma},           {".", Tok::kDot},
    {":", Tok::kColon},           {"|", Tok::kPipe},
    {"<=", Tok::kComparison},     {">=", Tok::kComparison},
    {"==", Tok::kComparison},     {"!=", Tok::kComparison},
    {"<", Tok::kComparison},      {">", Tok::kComparison},
    {"+", Tok::kAdditive},        {"-", Tok::kAdditive},
    {"~", Tok::kAdditive},        {"**", Tok::kPower},
    {"*", Tok::kMultiplicative},  {"//", Tok::kMultiplicative},
    {"/", Tok::kMultiplicative},  {"%", Tok::kMultiplicative},
    {"=", Tok::kEquals},
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
  const Mapped m = preprocess(source);
  const std::string& src = m.text;
  const size_t length = src.size();
  std::vector<Token> tokens;
  size_t pos = 0;
  int curly_depth = 0;

  auto origin = [&](size_t at) -> uint32_t {
    if (at < m.origin.size()) return m.origin[at];
    return static_cast<uint32_t>(source.size());
  };
  auto error = [&](size_t at, const std::string& message) -> Error {
    return Error(str("[chat_template ", source_location(source, origin(at)), "] ", message));
  };
  auto push = [&](Tok type, std::string value, size_t at) {
    tokens.push_back(Token{type, std::move(value), origin(at)});
  };
  auto consume_while = [&](auto predicate) {
    const size_t start = pos;
    while (pos < length && predicate(pos)) {
      if (++pos >= length) throw error(start, "Unexpected end of input");
    }
    return src.substr(start, pos - start);
  };
  auto strip_trailing = [&] {
    if (!tokens.empty() && tokens.back().type == Tok::kText) {
      tokens.back().value = std::string(js_trim(tokens.back().value, false, true));
      if (tokens.back().value.empty()) tokens.pop_back();
    }
  };
  auto skip_leading = [&] {
    size_t w;
    while (pos < length && is_space_at(src, pos, &w)) pos += w;
  };

  while (pos < length) {
    const bool have_last = !tokens.empty();
    const Tok last = have_last ? tokens.back().type : Tok::kText;
    if (!have_last || last == Tok::kCloseStatement || last == Tok::kCloseExpression ||
        last == Tok::kComment) {
      size_t end = pos;
      while (true) {
        end = src.find('{', end);
        if (end == std::string::npos) {
          end = length;
          break;
        }
        const char next = end + 1 < length ? src[end + 1] : '\0';
        if (next == '%' || next == '{' || next == '#') break;
        ++end;
      }
      if (end > pos) {
        push(Tok::kText, src.substr(pos, end - pos), pos);
        pos = end;
        continue;
      }
    }

    if (src[pos] == '{') {
      const char next = pos + 1 < length ? src[pos + 1] : '\0';
      if (next == '#') {
        const size_t start = pos;
        pos += 2;
        const bool strip_before = pos < length && src[pos] == '-';
        if (strip_before) ++pos;
        const size_t end = src.find("#}", pos);
        if (end == std::string::npos) throw error(start, "Missing end of comment tag");
        std::string comment = src.substr(pos, end - pos);
        const bool strip_after = !comment.empty() && comment.back() == '-';
        if (strip_after) comment.pop_back();
        if (strip_before) strip_trailing();
        push(Tok::kComment, comment, start);
        pos = end + 2;
        if (strip_after) skip_leading();
        continue;
      }
      if (pos + 2 < length && src[pos + 2] == '-') {
        if (next == '%') {
          strip_trailing();
          push(Tok::kOpenStatement, "{%", pos);
          pos += 3;
          continue;
        }
        if (next == '{') {
          strip_trailing();
          push(Tok::kOpenExpression, "{{", pos);
          curly_depth = 0;
          pos += 3;
          continue;
        }
      }
    }

    {
      const size_t start = pos;
      size_t w;
      while (is_space_at(src, pos, &w)) {
        pos += w;
        if (pos >= length) throw error(start, "Unexpected end of input");
      }
    }
    const char ch = src[pos];

    if (ch == '-' && pos + 2 < length && src[pos + 2] == '}') {
      const char next = src[pos + 1];
      if (next == '%') {
        push(Tok::kCloseStatement, "%}", pos);
        pos += 3;
        skip_leading();
        continue;
      }
      if (next == '}') {
        push(Tok::kCloseExpression, "}}", pos);
        pos += 3;
        skip_leading();
        continue;
      }
    }

    if (ch == '-' || ch == '+') {
      const Tok lt = tokens.empty() ? Tok::kText : tokens.back().type;
      if (tokens.empty() || lt == Tok::kText) throw error(pos, str("Unexpected character: ", ch));
      if (!(lt == Tok::kIdentifier || lt == Tok::kNumber || lt == Tok::kString ||
            lt == Tok::kCloseParen || lt == Tok::kCloseSquare)) {
        const size_t start = pos;
        ++pos;
        std::string num = consume_while([&](size_t at) { return is_digit(src[at]); });
        if (!num.empty() && pos + 1 < length && src[pos] == '.' && is_digit(src[pos + 1])) {
          ++pos;
          num += "." + consume_while([&](size_t at) { return is_digit(src[at]); });
        }
        push(num.empty() ? Tok::kUnary : Tok::kNumber, std::string(1, ch) + num, start);
        continue;
      }
    }

    bool matched = false;
    for (const Rule& rule : kRules) {
      const std::string_view seq = rule.seq;
      if (seq == "}}" && curly_depth > 0) continue;
      if (src.compare(pos, seq.size(), seq) == 0) {
        push(rule.type, std::string(seq), pos);
        if (rule.type == Tok::kOpenExpression) curly_depth = 0;
        if (rule.type == Tok::kOpenCurly) ++curly_depth;
        if (rule.type == Tok::kCloseCurly) --curly_depth;
        pos += seq.size();
        matched = true;
        break;
      }
    }
    if (matched) continue;

    if (ch == '\'' || ch == '"') {
      const size_t start = pos;
      ++pos;
      std::string value;
      while (true) {
        if (pos >= length) throw error(start, "Unexpected end of input");
        const char c = src[pos];
        if (c == ch) break;
        ++pos;
        if (c != '\\') {
          value += c;
          continue;
        }
        if (pos >= length) throw error(start, "Unexpected end of input");
        const char esc = src[pos++];
        if (esc == 'x' || esc == 'u') {
          const size_t n = esc == 'x' ? 2 : 4;
          const std::string hex = src.substr(pos, n);
          bool ok = hex.size() == n;
          for (char h : hex) ok = ok && std::isxdigit(static_cast<unsigned char>(h));
          if (!ok) throw error(pos, str("Invalid hexadecimal escape sequence: \\", esc, hex));
          char32_t cp = static_cast<char32_t>(std::stoul(hex, nullptr, 16));
          if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // a lone UTF-16 surrogate
          tok::append_utf8(value, cp);
          pos += n;
          continue;
        }
        switch (esc) {
          case 'n':
            value += '\n';
            break;
          case 't':
            value += '\t';
            break;
          case 'r':
            value += '\r';
            break;
          case 'b':
            value += '\b';
            break;
          case 'f':
            value += '\f';
            break;
          case 'v':
            value += '\v';
            break;
          case '\'':
            value += '\'';
            break;
          case '"':
            value += '"';
            break;
          case '\\':
            value += '\\';
            break;
          default:
            throw error(pos - 1, str("Unexpected escaped character: ", esc));
        }
      }
      push(Tok::kString, value, start);
      ++pos;
      continue;
    }

    if (is_digit(ch)) {
      const size_t start = pos;
      std::string num = consume_while([&](size_t at) { return is_digit(src[at]); });
      const bool after_dot = !tokens.empty() && tokens.back().type == Tok::kDot;
      if (!after_dot && pos + 1 < length && src[pos] == '.' && is_digit(src[pos + 1])) {
        ++pos;
        num += "." + consume_while([&](size_t at) { return is_digit(src[at]); });
      }
      push(Tok::kNumber, num, start);
      continue;
    }
    if (is_word(ch)) {
      const size_t start = pos;
      push(Tok::kIdentifier, consume_while([&](size_t at) { return is_word(src[at]); }), start);
      continue;
    }
    size_t next = pos;
    const char32_t cp = tok::next_code_point(src, next);
    std::string shown;
    if (cp < 0x20 || cp == 0x7f)
      shown = str("\\x", "0123456789abcdef"[cp >> 4], "0123456789abcdef"[cp & 15]);
    else
      tok::append_utf8(shown, cp);
    throw error(pos, str("Unexpected character: ", shown));
  }
  return tokens;
}

}  // namespace reft::chat
