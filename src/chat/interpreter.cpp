// Evaluation of chat templates: statements, expressions, scopes, macros. Semantics follow the
// reference (@huggingface/jinja's runtime.ts); where it differs from Python's Jinja (printing
// `true`, JavaScript's `%`, `==` as JavaScript's loose equality) the reference wins, since that is
// what the Hub and transformers.js render.

#include "chat/interpreter.h"

#include <cmath>

#include "chat/errors.h"
#include "chat/lexer.h"

namespace reft::chat {
namespace {

// Expressions nest at most 256 deep (the parser's bound); macro calls add a few levels each.
constexpr int kMaxEvaluationDepth = 1024;

struct BreakSignal {};
struct ContinueSignal {};

bool is_numeric_like(const Value& v) { return v.is_number() || v.is(VType::kBool); }
double numeric(const Value& v) { return v.is(VType::kBool) ? (v.boolean ? 1 : 0) : v.number; }

// Names a macro body reads before declaring them: caller, kwargs, varargs.
void collect_special(const Node* n, bool& caller, bool& kwargs, bool& varargs) {
  if (!n) return;
  if (n->kind == NodeKind::kIdentifier) {
    caller |= n->text == "caller";
    kwargs |= n->text == "kwargs";
    varargs |= n->text == "varargs";
  }
  for (const Node* p : {n->a.get(), n->b.get(), n->c.get()})
    collect_special(p, caller, kwargs, varargs);
  for (const auto* list : {&n->items, &n->body, &n->alternate})
    for (const auto& x : *list) collect_special(x.get(), caller, kwargs, varargs);
  for (const auto& [k, v] : n->pairs) {
    collect_special(k.get(), caller, kwargs, varargs);
    collect_special(v.get(), caller, kwargs, varargs);
  }
}

const std::string& param_name(const Node& p) { return p.text; }

}  // namespace

void Interpreter::fail_at(const Node& node, const std::string& message) const {
  throw Error(str("[chat_template ", source_location(source_, node.offset), "] ", message));
}

void Interpreter::step(size_t n) {
  steps_ += n;
  if (steps_ > limits_.max_steps)
    throw EvalError(str("the template ran more than ", limits_.max_steps,
                        " steps (ChatTemplateLimits.max_steps)"));
}

void Interpreter::check_size(size_t bytes) const {
  if (bytes > limits_.max_output_bytes)
    throw EvalError(str("the template built a string of more than ", limits_.max_output_bytes,
                        " bytes (ChatTemplateLimits.max_output_bytes)"));
}

std::string Interpreter::run(const Node& program, const EnvPtr& globals) {
  try {
    return render_block(program.body, globals);
  } catch (const BreakSignal&) {
    fail("[chat_template] expected {% break %} inside a for loop, found it outside");
  } catch (const ContinueSignal&) {
    fail("[chat_template] expected {% continue %} inside a for loop, found it outside");
  }
}

std::string Interpreter::render_block(const std::vector<NodePtr>& statements, const EnvPtr& env) {
  std::string out;
  for (const auto& s : statements) {
    switch (s->kind) {
      case NodeKind::kText:
        out += s->text;
        break;
      case NodeKind::kComment:
        break;
      case NodeKind::kSet:
        evaluate(s.get(), env);
        break;
      default: {
        const Value v = evaluate(s.get(), env);
        if (!v.is_null() && !v.is_undefined()) out += display(v);
      }
    }
    if (out.size() > limits_.max_output_bytes) {
      fail_at(*s, str("the rendering passed ", limits_.max_output_bytes,
                      " bytes (ChatTemplateLimits.max_output_bytes)"));
    }
  }
  return out;
}

Value Interpreter::evaluate(const Node* node, const EnvPtr& env) {
  if (!node) return Value::undefined();
  struct DepthGuard {
    explicit DepthGuard(int& d) : d(d) { ++d; }
    ~DepthGuard() { --d; }
    int& d;
  } guard(depth_);
  try {
    step();
    if (depth_ > kMaxEvaluationDepth)
      throw EvalError(str("evaluation nested deeper than ", kMaxEvaluationDepth, " levels"));
    const Node& n = *node;
    switch (n.kind) {
      case NodeKind::kIdentifier:
        return env->lookup(n.text);
      case NodeKind::kInteger:
        return Value::of_int(n.number);
      case NodeKind::kFloat:
        return Value::of_float(n.number);
      case NodeKind::kText:
        return Value::of_string(n.text);
      case NodeKind::kBinary:
        return evaluate_binary(n, env);
      case NodeKind::kMember:
        return evaluate_member(n, env);
      case NodeKind::kCall: {
        auto args = evaluate_call_args(n.items, env);
        const Value fn = evaluate(n.a.get(), env);
        if (!fn.is(VType::kFunction))
          throw EvalError(str("Cannot call something that is not a function: got ", type_name(fn)));
        return (*fn.function)(args, env);
      }
      case NodeKind::kFilter: {
        const Value operand = evaluate(n.a.get(), env);
        return apply_filter(operand, *n.b, env);
      }
      case NodeKind::kTest: {
        const Value operand = evaluate(n.a.get(), env);
        if (!has_test(n.text)) throw EvalError("Unknown test: " + n.text);
        const bool r = run_test(n.text, operand, nullptr);
        return Value::of_bool(n.flag ? !r : r);
      }
      case NodeKind::kTernary:
        return truthy(evaluate(n.c.get(), env)) ? evaluate(n.a.get(), env)
                                                : evaluate(n.b.get(), env);
      case NodeKind::kSelect:
        return truthy(evaluate(n.c.get(), env)) ? evaluate(n.a.get(), env) : Value::undefined();
      case NodeKind::kUnary: {
        const Value v = evaluate(n.a.get(), env);
        if (n.text == "not") return Value::of_bool(!truthy(v));
        if (is_numeric_like(v)) {
          const double r = (n.text == "-" ? -1 : 1) * numeric(v);
          return v.is(VType::kFloat) ? Value::of_float(r) : Value::of_int(r);
        }
        throw EvalError(str("Unknown operator \"", n.text, "\" for ", type_name(v)));
      }
      case NodeKind::kArray:
      case NodeKind::kTuple: {
        Array items;
        for (const auto& x : n.items) items.push_back(evaluate(x.get(), env));
        return Value::of_array(std::move(items),
                               n.kind == NodeKind::kTuple ? VType::kTuple : VType::kArray);
      }
      case NodeKind::kObject: {
        auto data = std::make_shared<ObjectData>();
        for (const auto& [k, v] : n.pairs) {
          const Value key = evaluate(k.get(), env);
          if (!key.is_string())
            throw EvalError(str("Object keys must be strings: got ", type_name(key)));
          data->set(key.s(), evaluate(v.get(), env));
        }
        return Value::of_object(std::move(data));
      }
      case NodeKind::kIf: {
        const Value test = evaluate(n.a.get(), env);
        return Value::of_string(render_block(truthy(test) ? n.body : n.alternate, env));
      }
      case NodeKind::kFor:
        return Value::of_string(render_for(n, env));
      case NodeKind::kSet:
        execute_set(n, env);
        return Value::null();
      case NodeKind::kMacro:
        return define_macro(n, env);
      case NodeKind::kCallStatement:
        return call_statement(n, env);
      case NodeKind::kFilterStatement: {
        const Value body = Value::of_string(render_block(n.body, env));
        return apply_filter(body, *n.a, env);
      }
      case NodeKind::kComment:
        return Value::null();
      case NodeKind::kBreak:
        throw BreakSignal{};
      case NodeKind::kContinue:
        throw ContinueSignal{};
      case NodeKind::kProgram:
        return Value::of_string(render_block(n.body, env));
      case NodeKind::kSlice:
      case NodeKind::kKeywordArg:
      case NodeKind::kSpread:
      case NodeKind::kKeywordSpread:
        throw EvalError("this expression is only allowed in a call or subscript");
    }
    throw EvalError("Unknown node type");
  } catch (const EvalError& e) {
    fail_at(*node, e.what());
  }
}

Value Interpreter::evaluate_binary(const Node& n, const EnvPtr& env) {
  const std::string& op = n.text;
  const Value left = evaluate(n.a.get(), env);
  if (op == "and") return truthy(left) ? evaluate(n.b.get(), env) : left;
  if (op == "or") return truthy(left) ? left : evaluate(n.b.get(), env);
  const Value right = evaluate(n.b.get(), env);
  if (op == "==") return Value::of_bool(loose_equals(left, right));
  if (op == "!=") return Value::of_bool(!loose_equals(left, right));

  if (left.is_number() && right.is_number() && op != "~" && op != "**") {
    const double a = left.number, b = right.number;
    const bool is_float = left.is(VType::kFloat) || right.is(VType::kFloat);
    auto number = [&](double r) { return is_float ? Value::of_float(r) : Value::of_int(r); };
    if (op == "+") return number(a + b);
    if (op == "-") return number(a - b);
    if (op == "*") return number(a * b);
    if (op == "/") return Value::of_float(a / b);
    if (op == "//") return number(std::floor(a / b));
    if (op == "%") return number(std::fmod(a, b));
    if (op == "<") return Value::of_bool(a < b);
    if (op == ">") return Value::of_bool(a > b);
    if (op == ">=") return Value::of_bool(a >= b);
    if (op == "<=") return Value::of_bool(a <= b);
  } else if (left.is_undefined() || right.is_undefined()) {
    if (right.is_undefined() && (op == "in" || op == "not in"))
      return Value::of_bool(op == "not in");
    if (op == "~" && !left.is_null() && !right.is_null()) {
      std::string out = (left.is_undefined() ? "" : raw_string(left)) +
                        (right.is_undefined() ? "" : raw_string(right));
      check_size(out.size());
      return Value::of_string(std::move(out));
    }
    throw EvalError("Cannot perform operation " + op + " on undefined values");
  } else if (left.is_null() || right.is_null()) {
    throw EvalError("Cannot perform operation on null values");
  } else if (op == "~") {
    const std::string l = raw_string(left), r = raw_string(right);
    check_size(l.size() + r.size());
    return Value::of_string(l + r);
  } else if (op == "**" && is_numeric_like(left) && is_numeric_like(right)) {
    const double a = numeric(left), b = numeric(right);
    if (a == 0 && b < 0) throw EvalError("0.0 cannot be raised to a negative power");
    const double r = std::pow(a, b);
    if (!std::isfinite(r)) throw EvalError("Exponentiation result is not a finite real number");
    return left.is(VType::kFloat) || right.is(VType::kFloat) || b < 0 ? Value::of_float(r)
                                                                      : Value::of_int(r);
  } else if (left.is_array() && right.is_array()) {
    if (op == "+") {
      check_size((left.array->size() + right.array->size()) * sizeof(Value));
      step(left.array->size() + right.array->size());
      Array items = *left.array;
      items.insert(items.end(), right.array->begin(), right.array->end());
      return Value::of_array(std::move(items));
    }
  } else if (right.is_array()) {
    bool member = false;
    for (const auto& x : *right.array)
      if (strict_equals(x, left)) {
        member = true;
        break;
      }
    if (op == "in") return Value::of_bool(member);
    if (op == "not in") return Value::of_bool(!member);
  }
  if ((left.is_string() || right.is_string()) && op == "+") {
    const std::string l = raw_string(left), r = raw_string(right);
    check_size(l.size() + r.size());
    return Value::of_string(l + r);
  }
  if (left.is_string() && right.is_string()) {
    const bool found = right.s().find(left.s()) != std::string::npos;
    if (op == "in") return Value::of_bool(found);
    if (op == "not in") return Value::of_bool(!found);
  }
  if (left.is_string() && right.is_object()) {
    const bool found = right.object->find(left.s()) != nullptr;
    if (op == "in") return Value::of_bool(found);
    if (op == "not in") return Value::of_bool(!found);
  }
  throw EvalError(
      str("Unknown operator \"", op, "\" between ", type_name(left), " and ", type_name(right)));
}

Interpreter::Args Interpreter::evaluate_args(const std::vector<NodePtr>& args, const EnvPtr& env) {
  Args out;
  for (const auto& a : args) {
    if (a->kind == NodeKind::kSpread) {
      const Value v = evaluate(a->a.get(), env);
      if (!v.is_array()) throw EvalError(str("Cannot unpack non-iterable type: ", type_name(v)));
      for (const auto& x : *v.array) out.positional.push_back(x);
    } else if (a->kind != NodeKind::kKeywordArg && a->kind != NodeKind::kKeywordSpread) {
      out.positional.push_back(evaluate(a.get(), env));
    }
  }
  auto add = [&](const std::string& key, Value v) {
    if (out.keywords->find(key))
      throw EvalError("Got multiple values for keyword argument '" + key + "'");
    out.keywords->set(key, std::move(v));
  };
  for (const auto& a : args) {
    if (a->kind == NodeKind::kKeywordArg) {
      add(a->text, evaluate(a->a.get(), env));
    } else if (a->kind == NodeKind::kKeywordSpread) {
      const Value v = evaluate(a->a.get(), env);
      if (!v.is_object())
        throw EvalError(str("Argument after ** must be a mapping, not ", type_name(v)));
      for (const auto& [k, x] : v.object->entries) add(k, x);
    }
  }
  return out;
}

std::vector<Value> Interpreter::evaluate_call_args(const std::vector<NodePtr>& args,
                                                   const EnvPtr& env) {
  Args a = evaluate_args(args, env);
  if (!a.keywords->entries.empty())
    a.positional.push_back(Value::of_object(a.keywords, VType::kKwargs));
  return std::move(a.positional);
}

std::vector<size_t> slice_indices(size_t n, const Value& start_v, const Value& stop_v,
                                  const Value& step_v) {
  const double len = static_cast<double>(n);
  const double step = step_v.is_undefined() ? 1 : step_v.number;
  if (step == 0 || std::isnan(step)) return {};  // the reference's loop never runs
  double start, stop;
  if (step > 0) {
    start = start_v.is_undefined() ? 0 : start_v.number;
    start = start < 0 ? std::max(len + start, 0.0) : std::min(start, len);
    stop = stop_v.is_undefined() ? len : stop_v.number;
    stop = stop < 0 ? std::max(len + stop, 0.0) : std::min(stop, len);
  } else {
    start = start_v.is_undefined() ? len - 1 : start_v.number;
    start = start < 0 ? std::max(len + start, -1.0) : std::min(start, len - 1);
    stop = stop_v.is_undefined() ? -1 : stop_v.number;
    stop = stop < -1 ? std::max(len + stop, -1.0) : std::min(stop, len - 1);
  }
  std::vector<size_t> out;
  const double dir = step > 0 ? 1 : -1;
  for (double i = start; dir * i < dir * stop; i += step) out.push_back(static_cast<size_t>(i));
  return out;
}

Value Interpreter::evaluate_slice(const Value& object, const Node& s, const EnvPtr& env) {
  if (!object.is_array() && !object.is_string())
    throw EvalError("Slice object must be an array or string");
  const Value start = evaluate(s.a.get(), env), stop = evaluate(s.b.get(), env),
              stepv = evaluate(s.c.get(), env);
  for (const auto* v : {&start, &stop, &stepv})
    if (!v->is(VType::kInt) && !v->is_undefined())
      throw EvalError(v == &start  ? "Slice start must be numeric or undefined"
                      : v == &stop ? "Slice stop must be numeric or undefined"
                                   : "Slice step must be numeric or undefined");
  if (object.is_array()) {
    const auto idx = slice_indices(object.array->size(), start, stop, stepv);
    step(idx.size());
    Array items;
    for (size_t i : idx) items.push_back((*object.array)[i]);
    return Value::of_array(std::move(items));
  }
  const auto chars = code_points(object.s());
  step(chars.size());
  const auto idx = slice_indices(chars.size(), start, stop, stepv);
  step(idx.size());
  std::string out;
  for (size_t i : idx) out += chars[i];
  return Value::of_string(std::move(out));
}

Value Interpreter::evaluate_member(const Node& n, const EnvPtr& env) {
  const Value object = evaluate(n.a.get(), env);
  Value property;
  if (n.flag) {
    if (n.b->kind == NodeKind::kSlice) return evaluate_slice(object, *n.b, env);
    property = evaluate(n.b.get(), env);
  } else if (n.b->kind == NodeKind::kInteger) {
    property = Value::of_int(n.b->number);
  } else {
    property = Value::of_string(n.b->text);
  }
  if (object.is_container()) {
    if (!property.is_string())
      throw EvalError(str("Cannot access property with non-string: got ", type_name(property)));
    if (const Value* v = object.object->find(property.s())) return *v;
    return object.is_object() ? builtin_member(object, property.s()) : Value::undefined();
  }
  if (object.is_array() || object.is_string()) {
    if (property.is(VType::kInt)) {
      // Array.prototype.at: negative indices count from the end.
      const double i = std::trunc(property.number);
      if (object.is_array()) {
        const double len = static_cast<double>(object.array->size());
        const double k = i < 0 ? len + i : i;
        if (k < 0 || k >= len || std::isnan(k)) return Value::undefined();
        return (*object.array)[static_cast<size_t>(k)];
      }
      const auto chars = code_points(object.s());
      step(chars.size());
      const double len = static_cast<double>(chars.size());
      const double k = i < 0 ? len + i : i;
      if (k < 0 || k >= len || std::isnan(k)) return Value::undefined();
      return Value::of_string(std::string(chars[static_cast<size_t>(k)]));
    }
    if (property.is_string()) return builtin_member(object, property.s());
    throw EvalError(
        str("Cannot access property with non-string/non-number: got ", type_name(property)));
  }
  if (!property.is_string())
    throw EvalError(str("Cannot access property with non-string: got ", type_name(property)));
  return builtin_member(object, property.s());
}

void Interpreter::execute_set(const Node& n, const EnvPtr& env) {
  const Value rhs = n.b ? evaluate(n.b.get(), env) : Value::of_string(render_block(n.body, env));
  const Node& target = *n.a;
  if (target.kind == NodeKind::kIdentifier) {
    env->vars[target.text] = rhs;
  } else if (target.kind == NodeKind::kTuple) {
    if (!rhs.is_array())
      throw EvalError(str("Cannot unpack non-iterable type in set: ", type_name(rhs)));
    if (rhs.array->size() != target.items.size())
      throw EvalError(str("Too ", target.items.size() > rhs.array->size() ? "few" : "many",
                          " items to unpack in set"));
    for (size_t i = 0; i < target.items.size(); ++i) {
      if (target.items[i]->kind != NodeKind::kIdentifier)
        throw EvalError("Cannot unpack to non-identifier in set");
      env->vars[target.items[i]->text] = (*rhs.array)[i];
    }
  } else if (target.kind == NodeKind::kMember) {
    const Value object = evaluate(target.a.get(), env);
    if (!object.is(VType::kNamespace))
      throw EvalError("cannot assign attribute on non-namespace object");
    if (target.b->kind != NodeKind::kIdentifier)
      throw EvalError("Cannot assign to member with non-identifier property");
    object.object->set(target.b->text, rhs);
  } else {
    throw EvalError("Invalid LHS inside assignment expression");
  }
}

namespace {
void bind_loop_variable(const Node& target, const Value& item, Env& scope) {
  if (target.kind == NodeKind::kIdentifier) {
    scope.vars[target.text] = item;
    return;
  }
  for (size_t j = 0; j < target.items.size(); ++j) {
    if (target.items[j]->kind != NodeKind::kIdentifier)
      throw EvalError("Cannot unpack non-identifier type");
    scope.vars[target.items[j]->text] =
        j < item.array->size() ? (*item.array)[j] : Value::undefined();
  }
}
}  // namespace

std::string Interpreter::render_for(const Node& n, const EnvPtr& env) {
  auto scope = std::make_shared<Env>(env);
  const Node* test = nullptr;
  Value iterable;
  if (n.b->kind == NodeKind::kSelect) {
    iterable = evaluate(n.b->a.get(), scope);
    test = n.b->c.get();
  } else {
    iterable = evaluate(n.b.get(), scope);
  }
  if (!iterable.is_array() && !iterable.is_object())
    throw EvalError(str("Expected iterable or object type in for loop: got ", type_name(iterable)));
  Array candidates;
  if (iterable.is_object()) {
    for (const auto& [k, v] : iterable.object->entries) candidates.push_back(Value::of_string(k));
  } else {
    candidates = *iterable.array;
  }
  const Node& target = *n.a;
  Array items;
  for (const auto& current : candidates) {
    step();
    if (target.kind == NodeKind::kTuple) {
      if (!current.is(VType::kArray))
        throw EvalError(str("Cannot unpack non-iterable type: ", type_name(current)));
      const size_t expected = target.items.size(), actual = current.array->size();
      if (expected != actual)
        throw EvalError(str("Too ", expected > actual ? "few" : "many", " items to unpack"));
    }
    if (test) {
      auto loop_scope = std::make_shared<Env>(scope);
      bind_loop_variable(target, current, *loop_scope);
      if (!truthy(evaluate(test, loop_scope))) continue;
    }
    items.push_back(current);
  }

  std::string out;
  bool iterated = false;
  const double length = static_cast<double>(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    step();
    auto loop = std::make_shared<ObjectData>();
    const double k = static_cast<double>(i);
    loop->entries = {
        {"index", Value::of_int(k + 1)},
        {"index0", Value::of_int(k)},
        {"revindex", Value::of_int(length - k)},
        {"revindex0", Value::of_int(length - k - 1)},
        {"first", Value::of_bool(i == 0)},
        {"last", Value::of_bool(i + 1 == items.size())},
        {"length", Value::of_int(length)},
        {"previtem", i > 0 ? items[i - 1] : Value::undefined()},
        {"nextitem", i + 1 < items.size() ? items[i + 1] : Value::undefined()},
    };
    scope->vars["loop"] = Value::of_object(std::move(loop));
    bind_loop_variable(target, items[i], *scope);
    try {
      out += render_block(n.body, scope);
      check_size(out.size());
    } catch (const ContinueSignal&) {
      continue;
    } catch (const BreakSignal&) {
      break;
    }
    iterated = true;
  }
  if (!iterated) out += render_block(n.alternate, scope);
  return out;
}

SpecialNames special_names(const Node& owner) {
  SpecialNames s;
  for (const auto& b : owner.body) collect_special(b.get(), s.caller, s.kwargs, s.varargs);
  for (const auto& p : owner.items) {
    s.caller &= param_name(*p) != "caller";
    s.kwargs &= param_name(*p) != "kwargs";
    s.varargs &= param_name(*p) != "varargs";
  }
  return s;
}

void Interpreter::bind_macro_args(const std::string& name, const std::vector<NodePtr>& params,
                                  const SpecialNames& special, std::vector<Value> args,
                                  const EnvPtr& scope) {
  const bool kwargs_used = special.kwargs, varargs_used = special.varargs;
  std::shared_ptr<ObjectData> keywords = std::make_shared<ObjectData>();
  if (!args.empty() && args.back().is(VType::kKwargs)) {
    keywords->entries = args.back().object->entries;
    args.pop_back();
  }
  std::vector<std::pair<std::string, const Node*>> pending;
  for (size_t i = 0; i < params.size(); ++i) {
    const Node& p = *params[i];
    Value v;
    bool given = i < args.size();
    if (given) v = args[i];
    if (!given) {
      if (const Value* kw = keywords->find(p.text)) {
        v = *kw;
        keywords->erase(p.text);
        given = true;
      }
    }
    if (!given && p.kind == NodeKind::kKeywordArg) pending.emplace_back(p.text, p.a.get());
    scope->vars[p.text] = v;
  }
  if (kwargs_used) {
    scope->vars["kwargs"] = Value::of_object(keywords);
  } else if (!keywords->entries.empty()) {
    throw EvalError(
        str("macro ", name, " takes no keyword argument '", keywords->entries.front().first, "'"));
  }
  if (varargs_used) {
    Array rest;
    for (size_t i = params.size(); i < args.size(); ++i) rest.push_back(args[i]);
    scope->vars["varargs"] = Value::of_array(std::move(rest));
  } else if (args.size() > params.size()) {
    throw EvalError(str("macro ", name, " takes not more than ", params.size(), " argument(s)"));
  }
  for (const auto& [pname, def] : pending) scope->vars[pname] = evaluate(def, scope);
}

Value Interpreter::define_macro(const Node& n, const EnvPtr& env) {
  const Node* node = &n;
  const SpecialNames special = special_names(n);
  std::weak_ptr<Env> weak = env;  // the defining scope holds the macro: no cycle
  env->vars[n.a->text] = Value::of_function(
      [this, node, weak, special](std::vector<Value>& args, const EnvPtr& call_site) -> Value {
        EnvPtr defining = weak.lock();
        if (!defining) throw EvalError("macro called after its scope ended");
        if (++macro_depth_ > limits_.max_call_depth) {
          --macro_depth_;
          throw EvalError(str("macro calls nested deeper than ", limits_.max_call_depth,
                              " (ChatTemplateLimits.max_call_depth)"));
        }
        struct Leave {
          int& d;
          ~Leave() { --d; }
        } leave{macro_depth_};
        EnvPtr parent = defining;
        if (special.caller) {
          parent = std::make_shared<Env>(defining);
          const Value* c =
              call_site && call_site->call_block_scope ? call_site->find("caller") : nullptr;
          parent->vars["caller"] = c ? *c : Value::undefined();
        }
        auto scope = std::make_shared<Env>(parent);
        bind_macro_args("'" + node->a->text + "'", node->items, special, args, scope);
        return Value::of_string(render_block(node->body, scope));
      });
  return Value::null();
}

Value Interpreter::call_statement(const Node& n, const EnvPtr& env) {
  const Node* node = &n;
  const SpecialNames special = special_names(n);
  std::weak_ptr<Env> weak = env;
  const Value caller = Value::of_function(
      [this, node, weak, special](std::vector<Value>& args, const EnvPtr&) -> Value {
        EnvPtr defining = weak.lock();
        if (!defining) throw EvalError("caller called after its call block ended");
        auto scope = std::make_shared<Env>(defining);
        bind_macro_args("None", node->items, special, args, scope);
        return Value::of_string(render_block(node->body, scope));
      });
  Args a = evaluate_args(n.a->items, env);
  a.positional.push_back(Value::of_object(a.keywords, VType::kKwargs));
  const Value fn = evaluate(n.a->a.get(), env);
  if (!fn.is(VType::kFunction))
    throw EvalError(str("Cannot call something that is not a function: got ", type_name(fn)));
  auto call_env = std::make_shared<Env>(env);
  call_env->call_block_scope = true;
  call_env->vars["caller"] = caller;
  return (*fn.function)(a.positional, call_env);
}

}  // namespace reft::chat
