#pragma once
// The syntax tree of a chat template: one node type with a kind, as the reference's AST classes.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace reft::chat {

enum class NodeKind {
  kProgram,
  kText,  // template text and string literals (StringLiteral in the reference)
  kComment,
  kIf,   // test; body; alternate
  kFor,  // target (identifier or tuple); iterable; body; alternate (else block)
  kBreak,
  kContinue,
  kSet,              // target; value (or null and body)
  kMacro,            // name; args (parameters); body
  kCallStatement,    // value (the call); args (caller parameters); body
  kFilterStatement,  // value (filter: identifier or call); body
  kIdentifier,
  kInteger,
  kFloat,
  kArray,          // items
  kTuple,          // items
  kObject,         // pairs
  kMember,         // object; property; computed
  kCall,           // callee; args
  kBinary,         // op; left; right
  kFilter,         // operand; filter (identifier or call)
  kTest,           // operand; name; negate
  kUnary,          // op; operand
  kSlice,          // start; stop; step (each may be null)
  kKeywordArg,     // name; value
  kSpread,         // *value
  kKeywordSpread,  // **value
  kTernary,        // test; a (true); b (false)
  kSelect,         // a if test (no else)
};

struct Node;
using NodePtr = std::unique_ptr<Node>;

struct Node {
  NodeKind kind;
  uint32_t offset = 0;  // in the template source, for error messages
  std::string text;     // identifier name, string value, operator, test name
  double number = 0;
  bool flag = false;           // computed member access, negated test
  NodePtr a, b, c;             // operands (see NodeKind)
  std::vector<NodePtr> items;  // arguments, array/tuple items, parameters
  std::vector<NodePtr> body, alternate;
  std::vector<std::pair<NodePtr, NodePtr>> pairs;
  int depth = 1;  // height of the subtree (bounded when parsing)

  Node(NodeKind k, uint32_t at) : kind(k), offset(at) {}
};

/// Parses tokens into a program; reft::Error "[chat_template line L, column C] …" on bad syntax.
struct Token;
NodePtr parse_tokens(const std::vector<Token>& tokens, const std::string& source);

}  // namespace reft::chat
