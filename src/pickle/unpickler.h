#pragma once
// A safe pickle virtual machine for the subset torch.save files use. It executes no code: GLOBAL
// resolves only names on an allow-list (OrderedDict, torch's tensor rebuild functions, the typed
// storage classes, torch.device, torch.Size, _codecs.encode for bytes), REDUCE/NEWOBJ/BUILD only
// act on those, and persistent ids must be torch's ('storage', StorageType, key, location,
// numel[, view]) tuples.
// Every node lives in an arena owned by the Unpickler, so shared and even cyclic references
// (which pickles can express through the memo) need no reference counting. Work is bounded by a
// budget proportional to the input size and key nesting by a depth limit.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "pickle/byte_io.h"
#include "reft/torch_archive.h"

namespace reft::pickle {

enum class NodeKind {
  kNone,
  kBool,
  kInt,
  kBigInt,  // an int beyond 64 bits: `s` holds its little-endian two's complement bytes
  kFloat,
  kString,
  kBytes,
  kTuple,
  kList,
  kDict,
  kGlobal,   // an allow-listed global: `s` = "module.name"
  kStorage,  // `i` = index into Unpickler::storages()
  kTensor,   // `i` = index into Unpickler::tensors()
};

std::string_view node_kind_name(NodeKind kind);

/// The torch storage class of `type` without "torch.": "FloatStorage", "BFloat16Storage", ….
std::string_view storage_class_name(ScalarType type);

/// The element type of a storage class given as "torch.FloatStorage" (or the legacy
/// "torch.cuda.FloatStorage"); nullopt for other names.
std::optional<ScalarType> storage_class_type(std::string_view qualified_name);

/// UTF-8 as Python's "surrogatepass" decoder accepts it (encoded surrogates allowed).
bool is_valid_utf8(std::span<const uint8_t> text);

/// Whether REDUCE may call the global "module.name" (OrderedDict, the tensor rebuild functions,
/// torch.device, torch.Size).
bool is_callable_global(std::string_view qualified_name);

/// The allowed globals, comma-separated, for error messages.
std::string allowed_globals();

struct Node {
  NodeKind kind = NodeKind::kNone;
  int64_t i = 0;  // bool, int, storage or tensor index
  double f = 0;
  std::string s;
  std::vector<Node*> items;  // tuple/list items; dict: key0, value0, key1, value1, …
  std::unique_ptr<std::unordered_map<std::string, size_t>> dict_index;  // key → entry number
};

/// A storage named by a persistent id. Zip archives hold its bytes in `data/<key>`; legacy files
/// after the pickles. Legacy views address `view_numel` elements from `view_offset` of the root.
struct StorageRef {
  std::string key;  // root key
  ScalarType dtype = ScalarType::kFloat32;
  int64_t numel = 0;  // elements of the root storage
  std::string location;
  int64_t view_offset = 0;
  int64_t view_numel = 0;
};

/// What `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)` describes;
/// already checked to lie inside its storage view.
struct TensorMeta {
  size_t storage = 0;
  std::vector<int64_t> shape, stride;
  int64_t storage_offset = 0;
  bool requires_grad = false;
};

class Unpickler {
 public:
  /// `where` names the file in errors; `input_size` (bytes) sets the work budget.
  Unpickler(std::string where, size_t input_size);

  /// Runs one pickle from the reader's position through STOP and returns the result. The memo is
  /// per pickle; nodes, storages and tensors accumulate across calls (legacy files hold several).
  Node* load(ByteReader& in);

  const std::vector<StorageRef>& storages() const { return storages_; }
  const std::vector<TensorMeta>& tensors() const { return tensors_; }

  /// Charges `units` of work; throws when the budget proportional to the input is spent.
  void charge(size_t units);

 private:
  Node* make(NodeKind kind);
  Node* call(const Node* callable, const Node* args, size_t op_pos);
  Node* persistent_load(const Node* pid, size_t op_pos);
  Node* rebuild_tensor(const std::vector<Node*>& args, bool v2, size_t op_pos);
  void encode_key(const Node* key, std::string& out, int depth);
  void set_item(Node* dict, Node* key, Node* value);

  std::string where_;
  size_t budget_;
  std::vector<std::unique_ptr<Node>> arena_;
  std::vector<StorageRef> storages_;
  std::unordered_map<std::string, size_t> storage_by_key_;  // view key (or root key) → index
  std::unordered_map<std::string, size_t> root_by_key_;     // root key → first index naming it
  std::vector<TensorMeta> tensors_;
};

}  // namespace reft::pickle
