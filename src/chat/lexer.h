#pragma once
// Tokenizer of chat templates: HF's whitespace settings (trim_blocks, lstrip_blocks, the
// transformers-only {% generation %} tag removed), then Jinja tokens as @huggingface/jinja forms
// them.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace reft::chat {

enum class Tok {
  kText,
  kNumber,
  kString,
  kIdentifier,
  kEquals,
  kOpenParen,
  kCloseParen,
  kOpenStatement,
  kCloseStatement,
  kOpenExpression,
  kCloseExpression,
  kOpenSquare,
  kCloseSquare,
  kOpenCurly,
  kCloseCurly,
  kComma,
  kDot,
  kColon,
  kPipe,
  kAdditive,        // + - ~
  kMultiplicative,  // * / // %
  kPower,           // **
  kComparison,      // < > <= >= == !=
  kUnary,           // a lone - or + before an operand
  kComment,
};

struct Token {
  Tok type;
  std::string value;
  uint32_t offset;  // byte offset in the original template source
};

/// Where an offset of the source lies, as "line L, column C" (1-based, columns in bytes).
std::string source_location(std::string_view source, uint32_t offset);

/// Splits a template (valid UTF-8) into tokens; reft::Error "[chat_template line L, column C] …".
std::vector<Token> tokenize(std::string_view source);

}  // namespace reft::chat
