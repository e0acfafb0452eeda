// Chat-template parser: tokens → syntax tree, following @huggingface/jinja's parser.ts (the same
// precedence, including its `not` binding looser than comparisons and tests binding tighter than
// `*`). Nesting is bounded so that a hostile template cannot exhaust the stack.

#include <algorithm>
#include <cstdlib>

#include "chat/ast.h"
#include "chat/lexer.h"
#include "reft/error.h"

namespace reft::chat {
namespace {

constexpr int kMaxDepth = 256;  // nesting of statements and expressions

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const std::string& source)
      : tokens_(tokens), source_(source) {}

  NodePtr program() {
    auto root = std::make_unique<Node>(NodeKind::kProgram, 0);
    while (current_ < tokens_.size()) root->body.push_back(parse_any());
    return root;
  }

 private:
  struct Guard {
    explicit Guard(Parser& p) : p(p) {
      if (++p.nesting_ > kMaxDepth) p.fail_here(str("nested deeper than ", kMaxDepth, " levels"));
    }
    ~Guard() { --p.nesting_; }
    Parser& p;
  };

  [[noreturn]] void fail_here(const std::string& message) const {
    const uint32_t at = current_ < tokens_.size() ? tokens_[current_].offset
                                                  : static_cast<uint32_t>(source_.size());
    fail("[chat_template ", source_location(source_, at), "] ", message);
  }

  const Token& peek() const {
    if (current_ >= tokens_.size()) fail_here("Unexpected end of template");
    return tokens_[current_];
  }
  const Token& next() {
    const Token& t = peek();
    ++current_;
    return t;
  }
  bool is(Tok t, size_t ahead = 0) const {
    return current_ + ahead < tokens_.size() && tokens_[current_ + ahead].type == t;
  }
  bool is_identifier(const char* name, size_t ahead = 0) const {
    return is(Tok::kIdentifier, ahead) && tokens_[current_ + ahead].value == name;
  }
  bool is_statement(std::initializer_list<const char*> names) const {
    if (!is(Tok::kOpenStatement) || !is(Tok::kIdentifier, 1)) return false;
    for (const char* n : names)
      if (tokens_[current_ + 1].value == n) return true;
    return false;
  }
  const Token& expect(Tok type, const char* what) {
    if (!is(type)) fail_here(str("expected ", what, ", found ", describe()));
    return tokens_[current_++];
  }
  void expect_identifier(const char* name) {
    if (!is_identifier(name)) fail_here(str("expected '", name, "', found ", describe()));
    ++current_;
  }
  std::string describe() const {
    if (current_ >= tokens_.size()) return "the end of the template";
    const Token& t = tokens_[current_];
    if (t.type == Tok::kText) return "text";
    std::string shown;  // one line: control characters escaped
    for (char c : t.value.substr(0, 40)) {
      if (c == '\n')
        shown += "\\n";
      else if (static_cast<unsigned char>(c) < 0x20)
        shown += "\\x" + std::string(1, "0123456789abcdef"[c >> 4]) + "0123456789abcdef"[c & 15];
      else
        shown += c;
    }
    return "'" + shown + "'";
  }
  NodePtr node(NodeKind kind, uint32_t at) { return std::make_unique<Node>(kind, at); }
  // Computes the height of a finished node and bounds it (evaluation recurses that deep).
  NodePtr finish(NodePtr n) {
    int d = 0;
    for (const NodePtr* p : {&n->a, &n->b, &n->c})
      if (*p) d = std::max(d, (*p)->depth);
    for (const auto* list : {&n->items, &n->body, &n->alternate})
      for (const auto& x : *list) d = std::max(d, x->depth);
    for (const auto& [k, v] : n->pairs) d = std::max({d, k->depth, v->depth});
    n->depth = d + 1;
    if (n->depth > kMaxDepth) {
      fail("[chat_template ", source_location(source_, n->offset), "] nested deeper than ",
           kMaxDepth, " levels");
    }
    return n;
  }
  void parse_until(std::vector<NodePtr>& into, std::initializer_list<const char*> names) {
    while (!is_statement(names)) {
      if (current_ >= tokens_.size()) {
        std::string list;
        for (const char* n : names)
          list += std::string(list.empty() ? "" : " or ") + "{% " + n + " %}";
        fail_here("expected " + list + ", found the end of the template");
      }
      into.push_back(parse_any());
    }
  }

  NodePtr parse_any() {
    Guard guard(*this);
    const Token& t = peek();
    switch (t.type) {
      case Tok::kComment: {
        auto n = node(NodeKind::kComment, t.offset);
        ++current_;
        return n;
      }
      case Tok::kText: {
        auto n = node(NodeKind::kText, t.offset);
        n->text = t.value;
        ++current_;
        return n;
      }
      case Tok::kOpenStatement:
        return parse_statement();
      case Tok::kOpenExpression: {
        ++current_;
        auto e = parse_expression();
        expect(Tok::kCloseExpression, "'}}'");
        return e;
      }
      default:
        fail_here(str("unexpected ", describe()));
    }
  }

  void expect_end(const char* name) {
    expect(Tok::kOpenStatement, "'{%'");
    expect_identifier(name);
    expect(Tok::kCloseStatement, "'%}'");
  }

  NodePtr parse_statement() {
    const uint32_t at = peek().offset;
    ++current_;  // {%
    if (!is(Tok::kIdentifier)) fail_here(str("expected a statement name, found ", describe()));
    const std::string name = next().value;
    NodePtr result;
    if (name == "set") {
      result = parse_set(at);
    } else if (name == "if") {
      result = parse_if(at);
      expect_end("endif");
    } else if (name == "macro") {
      auto n = node(NodeKind::kMacro, at);
      n->a = parse_primary();
      if (n->a->kind != NodeKind::kIdentifier) fail_here("expected a macro name");
      parse_args(n->items, true);
      expect(Tok::kCloseStatement, "'%}'");
      parse_until(n->body, {"endmacro"});
      expect_end("endmacro");
      result = std::move(n);
    } else if (name == "for") {
      result = parse_for(at);
      expect_end("endfor");
    } else if (name == "call") {
      auto n = node(NodeKind::kCallStatement, at);
      if (is(Tok::kOpenParen)) parse_args(n->items, true);
      auto callee = parse_primary();
      if (callee->kind != NodeKind::kIdentifier) fail_here("expected identifier following call");
      auto call = node(NodeKind::kCall, callee->offset);
      call->a = std::move(callee);
      parse_args(call->items, false);
      n->a = finish(std::move(call));
      expect(Tok::kCloseStatement, "'%}'");
      parse_until(n->body, {"endcall"});
      expect_end("endcall");
      result = std::move(n);
    } else if (name == "break" || name == "continue") {
      expect(Tok::kCloseStatement, "'%}'");
      result = node(name == "break" ? NodeKind::kBreak : NodeKind::kContinue, at);
    } else if (name == "filter") {
      auto n = node(NodeKind::kFilterStatement, at);
      n->a = parse_primary();
      if (n->a->kind == NodeKind::kIdentifier && is(Tok::kOpenParen))
        n->a = parse_call(std::move(n->a));
      expect(Tok::kCloseStatement, "'%}'");
      parse_until(n->body, {"endfilter"});
      expect_end("endfilter");
      result = std::move(n);
    } else {
      --current_;
      fail_here(str("unknown statement '", name, "'"));
    }
    return finish(std::move(result));
  }

  NodePtr parse_set(uint32_t at) {
    auto n = node(NodeKind::kSet, at);
    n->a = parse_sequence(false);
    if (is(Tok::kEquals)) {
      ++current_;
      n->b = parse_sequence(false);
    } else {
      expect(Tok::kCloseStatement, "'%}' or '='");
      parse_until(n->body, {"endset"});
      expect(Tok::kOpenStatement, "'{%'");
      expect_identifier("endset");
    }
    expect(Tok::kCloseStatement, "'%}'");
    return n;
  }

  NodePtr parse_if(uint32_t at) {
    Guard guard(*this);
    auto n = node(NodeKind::kIf, at);
    n->a = parse_expression();
    expect(Tok::kCloseStatement, "'%}'");
    parse_until(n->body, {"elif", "else", "endif"});
    if (is_statement({"elif"})) {
      const uint32_t elif_at = peek().offset;
      current_ += 2;
      n->alternate.push_back(finish(parse_if(elif_at)));
    } else if (is_statement({"else"})) {
      current_ += 2;
      expect(Tok::kCloseStatement, "'%}'");
      parse_until(n->alternate, {"endif"});
    }
    return n;
  }

  NodePtr parse_for(uint32_t at) {
    auto n = node(NodeKind::kFor, at);
    n->a = parse_sequence(true);
    if (n->a->kind != NodeKind::kIdentifier && n->a->kind != NodeKind::kTuple)
      fail_here("expected identifier/tuple for the loop variable");
    if (!is_identifier("in"))
      fail_here(str("expected 'in' after the loop variable, found ", describe()));
    ++current_;
    n->b = parse_expression();
    expect(Tok::kCloseStatement, "'%}'");
    parse_until(n->body, {"endfor", "else"});
    if (is_statement({"else"})) {
      current_ += 2;
      expect(Tok::kCloseStatement, "'%}'");
      parse_until(n->alternate, {"endfor"});
    }
    return n;
  }

  NodePtr parse_sequence(bool primary) {
    const uint32_t at = peek().offset;
    auto first = primary ? parse_primary() : parse_expression();
    if (!is(Tok::kComma)) return first;
    auto tuple = node(NodeKind::kTuple, at);
    tuple->items.push_back(std::move(first));
    while (is(Tok::kComma)) {
      ++current_;
      tuple->items.push_back(primary ? parse_primary() : parse_expression());
    }
    return finish(std::move(tuple));
  }

  NodePtr parse_expression() {
    Guard guard(*this);
    auto a = parse_or();
    if (is_identifier("if")) {
      const uint32_t at = peek().offset;
      ++current_;
      auto test = parse_or();
      if (is_identifier("else")) {
        ++current_;
        auto n = node(NodeKind::kTernary, at);
        n->a = std::move(a);
        n->c = std::move(test);
        n->b = parse_expression();
        return finish(std::move(n));
      }
      auto n = node(NodeKind::kSelect, at);
      n->a = std::move(a);
      n->c = std::move(test);
      return finish(std::move(n));
    }
    return a;
  }

  NodePtr binary(const std::string& op, uint32_t at, NodePtr left, NodePtr right) {
    auto n = node(NodeKind::kBinary, at);
    n->text = op;
    n->a = std::move(left);
    n->b = std::move(right);
    return finish(std::move(n));
  }

  NodePtr parse_or() {
    auto left = parse_and();
    while (is_identifier("or")) {
      const uint32_t at = next().offset;
      left = binary("or", at, std::move(left), parse_and());
    }
    return left;
  }
  NodePtr parse_and() {
    auto left = parse_not();
    while (is_identifier("and")) {
      const uint32_t at = next().offset;
      left = binary("and", at, std::move(left), parse_not());
    }
    return left;
  }
  NodePtr parse_not() {
    if (is_identifier("not")) {
      Guard guard(*this);
      auto n = node(NodeKind::kUnary, next().offset);
      n->text = "not";
      n->a = parse_not();
      return finish(std::move(n));
    }
    return parse_comparison();
  }
  NodePtr parse_comparison() {
    auto left = parse_additive();
    while (true) {
      std::string op;
      uint32_t at = 0;
      if (is_identifier("not") && is_identifier("in", 1)) {
        at = peek().offset;
        op = "not in";
        current_ += 2;
      } else if (is_identifier("in") || is(Tok::kComparison)) {
        at = peek().offset;
        op = next().value;
      } else {
        break;
      }
      left = binary(op, at, std::move(left), parse_additive());
    }
    return left;
  }
  NodePtr parse_additive() {
    auto left = parse_multiplicative();
    while (is(Tok::kAdditive)) {
      const Token& t = next();
      left = binary(t.value, t.offset, std::move(left), parse_multiplicative());
    }
    return left;
  }
  NodePtr parse_multiplicative() {
    auto left = parse_power();
    while (is(Tok::kMultiplicative)) {
      const Token& t = next();
      left = binary(t.value, t.offset, std::move(left), parse_power());
    }
    return left;
  }
  NodePtr parse_power() {
    auto left = parse_test();
    while (is(Tok::kPower)) {
      const Token& t = next();
      left = binary(t.value, t.offset, std::move(left), parse_test());
    }
    return left;
  }
  NodePtr parse_test() {
    auto operand = parse_filter();
    while (is_identifier("is")) {
      auto n = node(NodeKind::kTest, next().offset);
      if (is_identifier("not")) {
        n->flag = true;
        ++current_;
      }
      auto name = parse_primary();
      if (name->kind != NodeKind::kIdentifier) fail_here("expected identifier for the test");
      n->text = name->text;
      n->a = std::move(operand);
      operand = finish(std::move(n));
    }
    return operand;
  }
  NodePtr parse_filter() {
    auto operand = parse_unary_sign();
    while (is(Tok::kPipe)) {
      auto n = node(NodeKind::kFilter, next().offset);
      auto filter = parse_primary();
      if (filter->kind != NodeKind::kIdentifier) fail_here("expected identifier for the filter");
      if (is(Tok::kOpenParen)) filter = parse_call(std::move(filter));
      n->a = std::move(operand);
      n->b = std::move(filter);
      operand = finish(std::move(n));
    }
    return operand;
  }
  NodePtr parse_unary_sign() {
    if (current_ < tokens_.size() && (is(Tok::kUnary) || is(Tok::kAdditive)) &&
        (peek().value == "-" || peek().value == "+")) {
      Guard guard(*this);
      auto n = node(NodeKind::kUnary, peek().offset);
      n->text = next().value;
      n->a = parse_unary_sign();
      return finish(std::move(n));
    }
    auto member = parse_member(parse_primary());
    if (is(Tok::kOpenParen)) return parse_call(std::move(member));
    return member;
  }
  NodePtr parse_call(NodePtr callee) {
    Guard guard(*this);
    auto n = node(NodeKind::kCall, callee->offset);
    n->a = std::move(callee);
    parse_args(n->items, false);
    NodePtr expr = parse_member(finish(std::move(n)));
    if (is(Tok::kOpenParen)) expr = parse_call(std::move(expr));
    return expr;
  }
  void parse_args(std::vector<NodePtr>& args, bool parameters) {
    expect(Tok::kOpenParen, "'('");
    std::vector<std::string> names;
    bool saw_keyword = false, saw_spread = false;
    while (!is(Tok::kCloseParen)) {
      if (current_ >= tokens_.size()) fail_here("expected ')', found the end of the template");
      const bool keyword_spread = is(Tok::kPower);
      const bool spread = is(Tok::kMultiplicative) && peek().value == "*";
      if (parameters && (keyword_spread || spread))
        fail_here("Argument unpacking is not allowed in parameter declarations");
      if (keyword_spread) {
        auto n = node(NodeKind::kKeywordSpread, next().offset);
        n->a = parse_expression();
        args.push_back(finish(std::move(n)));
        if (is(Tok::kComma)) ++current_;
        if (!is(Tok::kCloseParen)) fail_here("`**` must be applied to the final argument");
        break;
      }
      NodePtr argument;
      if (spread) {
        if (saw_spread) fail_here("Only one `*` argument unpacking is allowed");
        saw_spread = true;
        auto n = node(NodeKind::kSpread, next().offset);
        n->a = parse_expression();
        argument = finish(std::move(n));
      } else {
        argument = parse_expression();
        if (is(Tok::kEquals)) {
          ++current_;
          if (argument->kind != NodeKind::kIdentifier)
            fail_here(parameters ? "Expected identifier for parameter declaration"
                                 : "Expected identifier for keyword argument");
          auto n = node(NodeKind::kKeywordArg, argument->offset);
          n->text = argument->text;
          n->a = parse_expression();
          argument = finish(std::move(n));
        }
        if (parameters) {
          if (argument->kind != NodeKind::kIdentifier && argument->kind != NodeKind::kKeywordArg)
            fail_here("Expected identifier for parameter declaration");
          if (std::find(names.begin(), names.end(), argument->text) != names.end())
            fail_here("Duplicate parameter name: " + argument->text);
          names.push_back(argument->text);
        }
        if (argument->kind == NodeKind::kKeywordArg) {
          saw_keyword = true;
        } else if (saw_keyword) {
          fail_here(parameters ? "Non-default argument follows default argument"
                               : "Positional arguments must come before keyword arguments");
        } else if (saw_spread) {
          fail_here("Positional arguments must not follow `*` argument unpacking");
        }
      }
      args.push_back(std::move(argument));
      if (is(Tok::kComma)) ++current_;
    }
    expect(Tok::kCloseParen, "')'");
  }
  NodePtr parse_subscript() {
    const uint32_t at = peek().offset;
    std::vector<NodePtr> slices;
    bool is_slice = false;
    while (!is(Tok::kCloseSquare)) {
      if (current_ >= tokens_.size()) fail_here("expected ']', found the end of the template");
      if (is(Tok::kColon)) {
        slices.push_back(nullptr);
        ++current_;
        is_slice = true;
      } else {
        slices.push_back(parse_expression());
        if (is(Tok::kColon)) {
          ++current_;
          is_slice = true;
        }
      }
    }
    if (slices.empty()) fail_here("Expected at least one argument for member/slice expression");
    if (!is_slice) return std::move(slices[0]);
    if (slices.size() > 3) fail_here("Expected 0-3 arguments for slice expression");
    auto n = node(NodeKind::kSlice, at);
    n->a = std::move(slices[0]);
    if (slices.size() > 1) n->b = std::move(slices[1]);
    if (slices.size() > 2) n->c = std::move(slices[2]);
    return finish(std::move(n));
  }
  NodePtr parse_member(NodePtr object) {
    while (is(Tok::kDot) || is(Tok::kOpenSquare)) {
      const Token& op = next();
      auto n = node(NodeKind::kMember, op.offset);
      n->flag = op.type == Tok::kOpenSquare;
      if (n->flag) {
        n->b = parse_subscript();
        expect(Tok::kCloseSquare, "']'");
      } else {
        n->b = parse_primary();
        if (n->b->kind != NodeKind::kIdentifier && n->b->kind != NodeKind::kInteger)
          fail_here("Expected identifier or integer following dot operator");
      }
      n->a = std::move(object);
      object = finish(std::move(n));
    }
    return object;
  }
  NodePtr parse_primary() {
    Guard guard(*this);
    const Token& t = next();
    switch (t.type) {
      case Tok::kNumber: {
        const bool is_float = t.value.find('.') != std::string::npos;
        auto n = node(is_float ? NodeKind::kFloat : NodeKind::kInteger, t.offset);
        n->number = std::strtod(t.value.c_str(), nullptr);
        return n;
      }
      case Tok::kString: {
        auto n = node(NodeKind::kText, t.offset);
        n->text = t.value;
        while (is(Tok::kString)) n->text += next().value;
        return n;
      }
      case Tok::kIdentifier: {
        auto n = node(NodeKind::kIdentifier, t.offset);
        n->text = t.value;
        return n;
      }
      case Tok::kOpenParen: {
        auto e = parse_sequence(false);
        expect(Tok::kCloseParen, "')'");
        return e;
      }
      case Tok::kOpenSquare: {
        auto n = node(NodeKind::kArray, t.offset);
        while (!is(Tok::kCloseSquare)) {
          if (current_ >= tokens_.size()) fail_here("expected ']', found the end of the template");
          n->items.push_back(parse_expression());
          if (is(Tok::kComma)) ++current_;
        }
        ++current_;
        return finish(std::move(n));
      }
      case Tok::kOpenCurly: {
        auto n = node(NodeKind::kObject, t.offset);
        while (!is(Tok::kCloseCurly)) {
          if (current_ >= tokens_.size()) fail_here("expected '}', found the end of the template");
          auto key = parse_expression();
          expect(Tok::kColon, "':' between key and value in object literal");
          auto value = parse_expression();
          n->pairs.emplace_back(std::move(key), std::move(value));
          if (is(Tok::kComma)) ++current_;
        }
        ++current_;
        return finish(std::move(n));
      }
      default:
        --current_;
        fail_here(str("unexpected ", describe()));
    }
  }

  const std::vector<Token>& tokens_;
  const std::string& source_;
  size_t current_ = 0;
  int nesting_ = 0;
};

}  // namespace

NodePtr parse_tokens(const std::vector<Token>& tokens, const std::string& source) {
  return Parser(tokens, source).program();
}

}  // namespace reft::chat
