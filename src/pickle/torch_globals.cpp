// The globals the unpickler may construct, and torch's persistent storage ids: the only places
// where pickled data turns into torch objects (here: tensor descriptions checked against their
// storages).

#include <algorithm>
#include <array>

#include "pickle/unpickler.h"

namespace reft::pickle {
namespace {

constexpr size_t kMaxRank = 64;  // torch's limit on tensor dims

struct StorageClass {
  const char* name;
  ScalarType type;
};
constexpr std::array<StorageClass, 10> kStorageClasses = {{
    {"FloatStorage", ScalarType::kFloat32},
    {"HalfStorage", ScalarType::kFloat16},
    {"BFloat16Storage", ScalarType::kBFloat16},
    {"DoubleStorage", ScalarType::kFloat64},
    {"LongStorage", ScalarType::kInt64},
    {"IntStorage", ScalarType::kInt32},
    {"ShortStorage", ScalarType::kInt16},
    {"CharStorage", ScalarType::kInt8},
    {"ByteStorage", ScalarType::kUInt8},
    {"BoolStorage", ScalarType::kBool},
}};

bool is_int(const Node* n) { return n->kind == NodeKind::kInt || n->kind == NodeKind::kBool; }

// "(2, 3)", as Python prints a size or stride tuple.
std::string shape_string(const std::vector<int64_t>& dims) {
  std::string out = "(";
  for (size_t d = 0; d < dims.size(); ++d) out += (d ? ", " : "") + std::to_string(dims[d]);
  return out + (dims.size() == 1 ? ",)" : ")");
}

}  // namespace

// What REDUCE may call, besides nothing else. Protocol 2 pickles `bytes` as
// _codecs.encode(latin-1 text, 'latin1') (and b'' as bytes()), so those are here too.
constexpr std::array<std::string_view, 10> kCallableGlobals = {
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch.device",
    "torch.Size",
    "_codecs.encode",
    "builtins.bytes",
    "__builtin__.bytes",
};

bool is_callable_global(std::string_view name) {
  return std::find(kCallableGlobals.begin(), kCallableGlobals.end(), name) !=
         kCallableGlobals.end();
}

std::string allowed_globals() {
  std::string out;
  for (std::string_view name : kCallableGlobals) out.append(name).append(", ");
  return out + "torch.<Type>Storage";
}

std::string_view storage_class_name(ScalarType type) {
  for (const auto& c : kStorageClasses)
    if (c.type == type) return c.name;
  fail("[torch.save] no storage class for scalar type ", static_cast<int>(type));
}

std::optional<ScalarType> storage_class_type(std::string_view qualified_name) {
  for (std::string_view prefix : {"torch.", "torch.cuda."}) {
    if (qualified_name.substr(0, prefix.size()) != prefix) continue;
    const auto rest = qualified_name.substr(prefix.size());
    for (const auto& c : kStorageClasses)
      if (rest == c.name) return c.type;
  }
  return std::nullopt;
}

Node* Unpickler::persistent_load(const Node* pid, size_t pos) {
  auto bad = [&](const auto&... why) {
    fail("[", where_, "] persistent id at pickle byte ", pos, ": ", why...,
         "; expected ('storage', torch.<Type>Storage, key, location, numel)");
  };
  if (pid->kind != NodeKind::kTuple) bad("found a ", node_kind_name(pid->kind));
  const auto& a = pid->items;
  if (a.size() != 5 && a.size() != 6) bad("found a tuple of ", a.size(), " items");
  if ((a[0]->kind != NodeKind::kString && a[0]->kind != NodeKind::kBytes) || a[0]->s != "storage")
    bad("the first item is not 'storage'");
  std::optional<ScalarType> dtype;
  if (a[1]->kind == NodeKind::kGlobal) dtype = storage_class_type(a[1]->s);
  if (!dtype) bad("the second item is not a typed storage class");
  if (a[2]->kind != NodeKind::kString || a[2]->s.empty()) bad("the key is not a non-empty str");
  if (a[3]->kind != NodeKind::kString) bad("the location is not a str");
  if (a[4]->kind != NodeKind::kInt || a[4]->i < 0) bad("numel is not an int ≥ 0");
  const int64_t numel = a[4]->i;
  if (numel > INT64_MAX / element_size(*dtype))
    bad("numel ", numel, " of ", scalar_type_name(*dtype), " overflows a 64-bit byte count");

  // Legacy files add (view_key, offset, view_numel) for storages that are slices of another.
  std::string view_key = a[2]->s;
  int64_t view_offset = 0, view_numel = numel;
  if (a.size() == 6 && a[5]->kind != NodeKind::kNone) {
    const Node* v = a[5];
    if (v->kind != NodeKind::kTuple || v->items.size() != 3 ||
        v->items[0]->kind != NodeKind::kString || v->items[1]->kind != NodeKind::kInt ||
        v->items[2]->kind != NodeKind::kInt)
      bad("the view is not (str, int, int)");
    view_key = "view:" + v->items[0]->s;
    view_offset = v->items[1]->i;
    view_numel = v->items[2]->i;
    if (view_offset < 0 || view_numel < 0 || view_offset > numel ||
        view_numel > numel - view_offset)
      bad("the view [", view_offset, ", +", view_numel, ") lies outside the storage of ", numel,
          " elements");
  }
  if (auto root = root_by_key_.find(a[2]->s); root != root_by_key_.end()) {
    const StorageRef& s = storages_[root->second];
    if (s.dtype != *dtype || s.numel != numel)
      bad("storage '", printable(s.key), "' was first named as ", s.numel, " elements of ",
          scalar_type_name(s.dtype), ", now as ", numel, " elements of ", scalar_type_name(*dtype));
  }
  auto [it, inserted] = storage_by_key_.emplace(view_key, storages_.size());
  if (inserted) {
    storages_.push_back({a[2]->s, *dtype, numel, a[3]->s, view_offset, view_numel});
    root_by_key_.emplace(a[2]->s, storages_.size() - 1);
  } else {
    const StorageRef& s = storages_[it->second];
    if (s.key != a[2]->s || s.view_offset != view_offset || s.view_numel != view_numel)
      bad("storage view '", printable(view_key), "' was named twice with different ranges");
  }
  Node* n = make(NodeKind::kStorage);
  n->i = static_cast<int64_t>(it->second);
  return n;
}

Node* Unpickler::rebuild_tensor(const std::vector<Node*>& a, bool v2, size_t pos) {
  const char* fn = v2 ? "_rebuild_tensor_v2" : "_rebuild_tensor";
  auto bad = [&](const auto&... why) {
    fail("[", where_, "] ", fn, " at pickle byte ", pos, ": ", why...);
  };
  if (v2 ? (a.size() != 6 && a.size() != 7) : a.size() != 4)
    bad("expected ", v2 ? "6 or 7" : "4", " arguments, found ", a.size());
  if (a[0]->kind != NodeKind::kStorage)
    bad("expected a storage, found ", node_kind_name(a[0]->kind));
  if (a[1]->kind != NodeKind::kInt || a[1]->i < 0)
    bad("expected a storage offset int ≥ 0, found ", node_kind_name(a[1]->kind));
  auto ints = [&](const Node* n, const char* what) {
    if (n->kind != NodeKind::kTuple && n->kind != NodeKind::kList)
      bad("expected the ", what, " as a tuple, found ", node_kind_name(n->kind));
    if (n->items.size() > kMaxRank)
      bad("expected at most ", kMaxRank, " dims, found ", n->items.size());
    std::vector<int64_t> out;
    for (const Node* item : n->items) {
      if (item->kind != NodeKind::kInt || item->i < 0)
        bad("expected the ", what, " to hold ints ≥ 0, found ",
            item->kind == NodeKind::kInt ? "a negative int" : node_kind_name(item->kind));
      out.push_back(item->i);
    }
    return out;
  };
  TensorMeta t;
  t.storage = static_cast<size_t>(a[0]->i);
  t.storage_offset = a[1]->i;
  t.shape = ints(a[2], "size");
  t.stride = ints(a[3], "stride");
  if (t.shape.size() != t.stride.size())
    bad("expected as many strides as dims, found size of ", t.shape.size(), " dims and stride of ",
        t.stride.size());
  if (v2) {
    if (a[4]->kind != NodeKind::kBool)
      bad("expected requires_grad as a bool, found ", node_kind_name(a[4]->kind));
    t.requires_grad = a[4]->i != 0;
    if (a[5]->kind != NodeKind::kDict || !a[5]->items.empty())
      bad("expected an empty backward_hooks dict");
    if (a.size() == 7 &&
        !(a[6]->kind == NodeKind::kNone || (a[6]->kind == NodeKind::kDict && a[6]->items.empty())))
      bad("tensor metadata is not supported");
  }

  // The view must lie inside the storage: offset + Σ (size_i − 1)·stride_i < numel.
  const StorageRef& s = storages_[t.storage];
  int64_t numel = 1, last = t.storage_offset;
  for (size_t d = 0; d < t.shape.size(); ++d) {
    int64_t reach = 0;
    if (__builtin_mul_overflow(numel, t.shape[d], &numel))
      bad("the size ", shape_string(t.shape), " overflows a 64-bit element count");
    if (t.shape[d] > 0 && (__builtin_mul_overflow(t.shape[d] - 1, t.stride[d], &reach) ||
                           __builtin_add_overflow(last, reach, &last)))
      bad("the view (offset ", t.storage_offset, ", size ", shape_string(t.shape), ", stride ",
          shape_string(t.stride), ") overflows a 64-bit element index");
  }
  if (numel == 0 ? t.storage_offset > s.view_numel : last >= s.view_numel)
    bad("the view (offset ", t.storage_offset, ", last element ", last,
        ") reaches beyond storage '", printable(s.key), "' of ", s.view_numel, " elements");
  tensors_.push_back(std::move(t));
  Node* n = make(NodeKind::kTensor);
  n->i = static_cast<int64_t>(tensors_.size() - 1);
  return n;
}

Node* Unpickler::call(const Node* callable, const Node* args, size_t pos) {
  if (callable->kind != NodeKind::kGlobal)
    fail("[", where_, "] pickle byte ", pos, ": expected a callable global, found ",
         node_kind_name(callable->kind));
  const std::string& name = callable->s;
  if (args->kind != NodeKind::kTuple)
    fail("[", where_, "] pickle byte ", pos, ": expected the arguments of ", name,
         " as a tuple, found ", node_kind_name(args->kind));
  const auto& a = args->items;
  auto bad = [&](const auto&... why) {
    fail("[", where_, "] calling ", name, " at pickle byte ", pos, ": ", why...);
  };
  if (name == "collections.OrderedDict") {
    if (!a.empty()) bad("expected no arguments, found ", a.size());
    return make(NodeKind::kDict);
  }
  if (name == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(a, true, pos);
  if (name == "torch._utils._rebuild_tensor") return rebuild_tensor(a, false, pos);
  if (name == "torch._utils._rebuild_parameter" ||
      name == "torch._utils._rebuild_parameter_with_state") {
    // (data, requires_grad, backward_hooks[, state]): a Parameter is its tensor for us.
    const size_t want = name.ends_with("with_state") ? 4 : 3;
    if (a.size() != want) bad("expected ", want, " arguments, found ", a.size());
    if (a[0]->kind != NodeKind::kTensor)
      bad("expected a tensor, found ", node_kind_name(a[0]->kind));
    if (a[1]->kind != NodeKind::kBool) bad("expected requires_grad as a bool");
    if (a[2]->kind != NodeKind::kDict || !a[2]->items.empty()) bad("expected empty backward_hooks");
    if (want == 4 && a[3]->kind != NodeKind::kNone &&
        !(a[3]->kind == NodeKind::kDict && a[3]->items.empty()))
      bad("Parameter state (attributes) is not supported");
    TensorMeta t = tensors_[static_cast<size_t>(a[0]->i)];
    t.requires_grad = a[1]->i != 0;
    tensors_.push_back(std::move(t));
    Node* n = make(NodeKind::kTensor);
    n->i = static_cast<int64_t>(tensors_.size() - 1);
    return n;
  }
  if (name == "torch.device") {
    if (a.empty() || a.size() > 2 || a[0]->kind != NodeKind::kString ||
        (a.size() == 2 && a[1]->kind != NodeKind::kInt && a[1]->kind != NodeKind::kNone))
      bad("expected (type) or (type, index)");
    Node* n = make(NodeKind::kString);
    n->s = a[0]->s;
    if (a.size() == 2 && a[1]->kind == NodeKind::kInt) n->s += str(':', a[1]->i);
    return n;
  }
  if (name == "torch.Size") {
    if (a.size() != 1 || (a[0]->kind != NodeKind::kTuple && a[0]->kind != NodeKind::kList))
      bad("expected one tuple of ints");
    Node* n = make(NodeKind::kTuple);
    for (Node* item : a[0]->items) {
      if (!is_int(item)) bad("expected ints, found ", node_kind_name(item->kind));
      n->items.push_back(item);
    }
    charge(n->items.size());
    return n;
  }
  if (name == "_codecs.encode") {
    // Latin-1 text back to the bytes it stands for: every code point must be below 256.
    if (a.size() != 2 || a[0]->kind != NodeKind::kString || a[1]->kind != NodeKind::kString ||
        (a[1]->s != "latin1" && a[1]->s != "latin-1"))
      bad("expected (str, 'latin1')");
    Node* n = make(NodeKind::kBytes);
    const std::string& text = a[0]->s;  // valid UTF-8, checked when it was read
    for (size_t k = 0; k < text.size(); ++k) {
      const auto c = static_cast<uint8_t>(text[k]);
      if (c < 0x80) {
        n->s += static_cast<char>(c);
      } else if ((c == 0xc2 || c == 0xc3) && k + 1 < text.size()) {
        n->s += static_cast<char>(((c & 0x03) << 6) | (static_cast<uint8_t>(text[++k]) & 0x3f));
      } else {
        bad("expected latin-1 text, found a code point above 255");
      }
    }
    charge(n->s.size());
    return n;
  }
  if (name == "builtins.bytes" || name == "__builtin__.bytes") {
    if (!a.empty()) bad("expected no arguments (b'')");
    return make(NodeKind::kBytes);
  }
  fail("[", where_, "] pickle byte ", pos, ": calling ", name, " is not supported");
}

}  // namespace reft::pickle
