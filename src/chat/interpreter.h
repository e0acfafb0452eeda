#pragma once
// Evaluation of a chat-template syntax tree, with the reference's semantics (see value.h) and
// bounds: evaluation steps, output bytes and recursion depth are limited so that a template
// cannot hang or exhaust memory.

#include <ctime>
#include <memory>
#include <string>
#include <unordered_map>

#include "chat/ast.h"
#include "chat/value.h"
#include "reft/chat_template.h"

namespace reft::chat {

/// A scope: a for loop, macro call or call block opens one; `set` writes to the innermost.
struct Env {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Env> parent;
  bool call_block_scope = false;

  explicit Env(std::shared_ptr<Env> up = nullptr) : parent(std::move(up)) {}
  const Value* find(const std::string& name) const {
    for (const Env* e = this; e; e = e->parent.get())
      if (auto it = e->vars.find(name); it != e->vars.end()) return &it->second;
    return nullptr;
  }
  Value lookup(const std::string& name) const {
    const Value* v = find(name);
    return v ? *v : Value::undefined();
  }
};

using EnvPtr = std::shared_ptr<Env>;

/// Thrown by raise_exception(): the message alone, as the reference's Error(message).
class RaisedError : public Error {
 public:
  explicit RaisedError(const std::string& message) : Error(message) {}
};

/// Which of caller/kwargs/varargs a macro or call block reads (and does not declare).
struct SpecialNames {
  bool caller = false, kwargs = false, varargs = false;
};
SpecialNames special_names(const Node& owner);

class Interpreter {
 public:
  Interpreter(const std::string& source, const ChatTemplateLimits& limits, std::time_t now)
      : source_(source), limits_(limits), now_(now) {}

  /// Renders the program in `globals`.
  std::string run(const Node& program, const EnvPtr& globals);

  Value evaluate(const Node* node, const EnvPtr& env);
  std::string render_block(const std::vector<NodePtr>& statements, const EnvPtr& env);

  /// Adds `n` evaluation steps; an error once the budget is spent.
  void step(size_t n = 1);
  /// An error when a string being built would pass the output limit.
  void check_size(size_t bytes) const;
  std::time_t now() const { return now_; }

  // filters.cpp
  Value apply_filter(const Value& operand, const Node& filter, const EnvPtr& env);
  bool run_test(const std::string& name, const Value& operand, const Value* argument);
  bool has_test(const std::string& name) const;

  // methods.cpp: `s.upper`, `d.items`, `a.length`, … (Undefined when there is none).
  Value builtin_member(const Value& object, const std::string& name);
  Value call_string_method(const Value& s, const std::string& name, std::vector<Value>& args);

  /// Positional arguments and keyword arguments of a call.
  struct Args {
    std::vector<Value> positional;
    std::shared_ptr<ObjectData> keywords = std::make_shared<ObjectData>();
  };
  Args evaluate_args(const std::vector<NodePtr>& args, const EnvPtr& env);
  /// The calling convention of functions: positional, then one kKwargs value if any.
  std::vector<Value> evaluate_call_args(const std::vector<NodePtr>& args, const EnvPtr& env);

 private:
  Value evaluate_binary(const Node& node, const EnvPtr& env);
  Value evaluate_member(const Node& node, const EnvPtr& env);
  Value evaluate_slice(const Value& object, const Node& slice, const EnvPtr& env);
  std::string render_for(const Node& node, const EnvPtr& env);
  void execute_set(const Node& node, const EnvPtr& env);
  Value define_macro(const Node& node, const EnvPtr& env);
  Value call_statement(const Node& node, const EnvPtr& env);
  void bind_macro_args(const std::string& name, const std::vector<NodePtr>& params,
                       const SpecialNames& special, std::vector<Value> args, const EnvPtr& scope);
  [[noreturn]] void fail_at(const Node& node, const std::string& message) const;

  const std::string& source_;
  ChatTemplateLimits limits_;
  std::time_t now_;
  size_t steps_ = 0;
  int depth_ = 0;
  int macro_depth_ = 0;

 public:
  /// Namespaces made by namespace(): emptied after the rendering, since `ns.self = ns` makes a
  /// cycle that reference counting alone would leak.
  std::vector<std::weak_ptr<ObjectData>> namespaces;
};

/// Python-style slice of n items: the indices selected by [start:stop:step].
std::vector<size_t> slice_indices(size_t n, const Value& start, const Value& stop,
                                  const Value& step);

}  // namespace reft::chat
