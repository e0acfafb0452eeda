// Reading torch.save files: the zip format (torch ≥ 1.6) and the legacy format, both turned into
// a PickleValue tree whose tensors alias the file's bytes.
//
// Legacy layout (torch/serialization.py `_legacy_save`): five consecutive pickles — the magic
// number 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys_info dict, the object (storage
// ids carry a sixth item, the view), the list of storage keys — then, for each key in that list,
// an int64 element count and the raw little-endian elements.

#include <algorithm>
#include <fstream>
#include <unordered_map>

#include "pickle/unpickler.h"
#include "pickle/zip_reader.h"
#include "reft/torch_archive.h"
#include "util/files.h"

namespace reft {
namespace {

using pickle::ByteReader;
using pickle::Node;
using pickle::NodeKind;
using pickle::SharedBytes;
using pickle::Unpickler;

constexpr int kMaxDepth = 200;
constexpr int64_t kLegacyProtocolVersion = 1001;
// 0x1950a86a20f9469cfc6c, little-endian, as LONG1 stores it.
constexpr uint8_t kLegacyMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

// An unpickled object with the bytes of every storage view it names.
struct Loaded {
  std::unique_ptr<Unpickler> vm;
  Node* root = nullptr;
  std::vector<SharedBytes> views;  // per vm->storages() entry
};

SharedBytes read_archive_file(const std::filesystem::path& file) {
  const std::string text = reft::read_file(file);
  return SharedBytes::own(std::vector<uint8_t>(text.begin(), text.end()));
}

SharedBytes byteswapped(std::span<const uint8_t> in, int64_t item) {
  std::vector<uint8_t> out(in.begin(), in.end());
  for (size_t i = 0; i + static_cast<size_t>(item) <= out.size(); i += static_cast<size_t>(item))
    std::reverse(out.begin() + static_cast<std::ptrdiff_t>(i),
                 out.begin() + static_cast<std::ptrdiff_t>(i) + item);
  return SharedBytes::own(std::move(out));
}

// The slice of a root storage's bytes that a (possibly legacy view) StorageRef addresses.
SharedBytes view_of(const SharedBytes& root, const pickle::StorageRef& s) {
  const int64_t item = element_size(s.dtype);
  return root.slice(static_cast<size_t>(s.view_offset * item),
                    static_cast<size_t>(s.view_numel * item));
}

Loaded load_zip(const SharedBytes& file, const std::string& where) {
  pickle::ZipReader zip(file, where);
  if (zip.entries().empty()) fail("[", where, "] expected torch.save records, found an empty zip");
  // torch takes the folder of the first entry as the archive name.
  const std::string& first = zip.entries().front().name;
  const size_t slash = first.find('/');
  if (slash == std::string::npos)
    fail("[", where, "] expected zip entries inside one folder (<archive>/data.pkl), found '",
         pickle::printable(first), "'; not a torch.save file");
  const std::string prefix = first.substr(0, slash + 1);
  auto record = [&](const std::string& name) { return zip.find(prefix + name); };

  const pickle::ZipEntry* pkl = record("data.pkl");
  if (!pkl)
    fail("[", where, "] expected a record ", pickle::printable(prefix),
         "data.pkl, found none; not a torch.save file "
         "(a TorchScript archive, for instance, is not supported)");
  const pickle::ZipEntry* version = record(".data/version");
  if (!version) version = record("version");
  if (!version)
    fail("[", where, "] expected a record ", pickle::printable(prefix), "version, found none");
  const SharedBytes version_bytes = zip.read(*version);
  std::string v(reinterpret_cast<const char*>(version_bytes.data.get()), version_bytes.size);
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r' || v.back() == ' ')) v.pop_back();
  if (v.empty() || v.size() > 3 || v.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(v) < 1 || std::stoi(v) > 20)
    fail("[", where, "] expected a format version from 1 to 20 in ",
         pickle::printable(version->name), ", found '", pickle::printable(v, 32), "'");

  bool big_endian = false;
  if (const pickle::ZipEntry* order = record("byteorder")) {
    const SharedBytes b = zip.read(*order);
    const std::string text(reinterpret_cast<const char*>(b.data.get()), b.size);
    if (text != "little" && text != "big")
      fail("[", where, "] expected 'little' or 'big' in ", pickle::printable(order->name),
           ", found '", pickle::printable(text, 32), "'");
    big_endian = text == "big";
  }

  Loaded out;
  const SharedBytes data = zip.read(*pkl);
  out.vm = std::make_unique<Unpickler>(where + ": data.pkl", data.size);
  ByteReader in(data.span(), where + ": data.pkl");
  out.root = out.vm->load(in);
  if (!in.at_end())
    fail("[", where, ": data.pkl] expected the pickle to end at STOP (byte ", in.position() - 1,
         "), found ", in.remaining(), " more bytes");

  std::unordered_map<std::string, SharedBytes> roots;
  for (const pickle::StorageRef& s : out.vm->storages()) {
    auto it = roots.find(s.key);
    if (it == roots.end()) {
      const pickle::ZipEntry* e = record("data/" + s.key);
      if (!e)
        fail("[", where, "] expected a record ", pickle::printable(prefix + "data/" + s.key),
             ", found none");
      const int64_t item = element_size(s.dtype);
      if (e->size != static_cast<uint64_t>(s.numel) * static_cast<uint64_t>(item))
        fail("[", where, ": ", pickle::printable(e->name), "] expected ", s.numel, " ",
             scalar_type_name(s.dtype), " elements (", s.numel * item, " bytes), found ", e->size,
             " bytes");
      SharedBytes bytes = zip.read(*e);
      if (big_endian && item > 1) bytes = byteswapped(bytes.span(), item);
      it = roots.emplace(s.key, std::move(bytes)).first;
    }
    out.views.push_back(view_of(it->second, s));
  }
  return out;
}

Loaded load_legacy(const SharedBytes& file, const std::string& where) {
  Loaded out;
  out.vm = std::make_unique<Unpickler>(where, file.size);
  ByteReader in(file.span(), where);
  const Node* magic = out.vm->load(in);
  if (magic->kind != NodeKind::kBigInt ||
      magic->s != std::string(reinterpret_cast<const char*>(kLegacyMagic), sizeof kLegacyMagic))
    fail("[", where,
         "] expected torch's magic number 0x1950a86a20f9469cfc6c in the first pickle, "
         "found a ",
         pickle::node_kind_name(magic->kind), "; not a torch.save file");
  const Node* protocol = out.vm->load(in);
  if (protocol->kind != NodeKind::kInt || protocol->i != kLegacyProtocolVersion)
    fail("[", where, "] expected legacy protocol version ", kLegacyProtocolVersion,
         ", found another value");
  // sys_info (endianness, C type sizes): torch ignores it too; storages are always little-endian.
  if (out.vm->load(in)->kind != NodeKind::kDict)
    fail("[", where, "] expected the sys_info dict as third pickle");
  out.root = out.vm->load(in);
  const Node* keys = out.vm->load(in);
  if (keys->kind != NodeKind::kList)
    fail("[", where, "] expected the list of storage keys after the object, found a ",
         pickle::node_kind_name(keys->kind));

  const auto& storages = out.vm->storages();
  std::unordered_map<std::string, const pickle::StorageRef*> by_key;
  for (const auto& s : storages) by_key.emplace(s.key, &s);
  std::unordered_map<std::string, SharedBytes> roots;
  for (const Node* key : keys->items) {
    if (key->kind != NodeKind::kString) fail("[", where, "] expected storage keys as str");
    auto found = by_key.find(key->s);
    if (found == by_key.end())
      fail("[", where, "] storage key '", pickle::printable(key->s), "' is listed but never used");
    const pickle::StorageRef* s = found->second;
    if (roots.count(key->s))
      fail("[", where, "] storage key '", pickle::printable(key->s), "' is listed twice");
    const int64_t numel = in.le<int64_t>("storage header");
    if (numel != s->numel)
      fail("[", where, "] storage '", pickle::printable(key->s), "': expected ", s->numel,
           " elements, found ", numel, " in its header");
    const uint64_t nbytes =
        static_cast<uint64_t>(numel) * static_cast<uint64_t>(element_size(s->dtype));
    const size_t at = in.position();
    in.take(nbytes, "storage data");
    roots.emplace(key->s, file.slice(at, nbytes));
  }
  if (!in.at_end())
    fail("[", where, "] expected the file to end after the storages, found ", in.remaining(),
         " more bytes");
  for (const auto& s : storages) {
    auto it = roots.find(s.key);
    if (it == roots.end())
      fail("[", where, "] storage '", pickle::printable(s.key), "' has no data in the file");
    out.views.push_back(view_of(it->second, s));
  }
  return out;
}

Loaded load_any(const SharedBytes& file, const std::string& where) {
  const auto b = file.span();
  if (b.size() >= 4 && b[0] == 'P' && b[1] == 'K' && (b[2] == 3 || b[2] == 5))
    return load_zip(file, where);
  if (!b.empty() && b[0] == 0x80) return load_legacy(file, where);
  if (b.size() >= 262 &&
      std::string_view(reinterpret_cast<const char*>(b.data()) + 257, 5) == "ustar")
    fail("[", where, "] the tar format of torch < 0.4 is not supported");
  fail("[", where,
       "] expected a torch.save file (a zip archive, or a pickle for the legacy "
       "format), found ",
       b.empty() ? "an empty file" : "other bytes");
}

// Node graph → value tree. Shared nodes are copied, so the copy is budgeted (a small pickle can
// reference one list from itself many times over).
class Converter {
 public:
  Converter(const Loaded& loaded, std::string where, size_t input_size)
      : loaded_(loaded), where_(std::move(where)), budget_(8 * input_size + (1u << 16)) {}

  PickleValue convert(const Node* n, int depth) {
    if (depth > kMaxDepth)
      fail("[", where_, "] object nested deeper than ", kMaxDepth, " levels (or self-referencing)");
    spend(1 + n->s.size() + n->items.size());
    switch (n->kind) {
      case NodeKind::kNone:
        return {};
      case NodeKind::kBool:
        return PickleValue::make_bool(n->i != 0);
      case NodeKind::kInt:
        return PickleValue::make_int(n->i);
      case NodeKind::kFloat:
        return PickleValue::make_float(n->f);
      case NodeKind::kString:
        return PickleValue::make_string(n->s);
      case NodeKind::kBytes:
        return PickleValue::make_bytes(n->s);
      case NodeKind::kTuple:
      case NodeKind::kList: {
        PickleValue::List items;
        items.reserve(n->items.size());
        for (const Node* item : n->items) items.push_back(convert(item, depth + 1));
        return n->kind == NodeKind::kTuple ? PickleValue::make_tuple(std::move(items))
                                           : PickleValue::make_list(std::move(items));
      }
      case NodeKind::kDict: {
        PickleValue::Dict entries;
        entries.reserve(n->items.size() / 2);
        for (size_t k = 0; k + 1 < n->items.size(); k += 2)
          entries.emplace_back(convert(n->items[k], depth + 1),
                               convert(n->items[k + 1], depth + 1));
        return PickleValue::make_dict(std::move(entries));
      }
      case NodeKind::kTensor:
        return PickleValue::make_tensor(tensor(n));
      case NodeKind::kBigInt:
      case NodeKind::kGlobal:
      case NodeKind::kStorage:
        break;
    }
    fail("[", where_, "] the object holds a ", pickle::node_kind_name(n->kind),
         " outside a tensor, which is not supported");
  }

 private:
  void spend(size_t units) {
    if (units > budget_)
      fail("[", where_,
           "] the object expands beyond the budget for its file size (shared "
           "references repeated many times); the file is corrupt or malicious");
    budget_ -= units;
  }
  ArchiveTensor tensor(const Node* n) {
    const pickle::TensorMeta& m = loaded_.vm->tensors()[static_cast<size_t>(n->i)];
    const pickle::StorageRef& s = loaded_.vm->storages()[m.storage];
    spend(m.shape.size() * 2);
    ArchiveTensor t;
    t.dtype = s.dtype;
    t.shape = m.shape;
    t.stride = m.stride;
    t.storage_offset = m.storage_offset;
    t.storage = loaded_.views[m.storage].data;
    t.storage_nbytes = static_cast<int64_t>(loaded_.views[m.storage].size);
    t.requires_grad = m.requires_grad;
    return t;
  }

  const Loaded& loaded_;
  std::string where_;
  size_t budget_;
};

PickleValue parse(const SharedBytes& file, const std::string& where) {
  const Loaded loaded = load_any(file, where);
  return Converter(loaded, where, file.size).convert(loaded.root, 0);
}

TensorDict to_state_dict(PickleValue value, const std::string& where) {
  if (value.kind() != PickleValue::Kind::kDict)
    fail("[", where, "] expected a state dict (a dict of str → tensor), found a ",
         kind_name(value.kind()));
  TensorDict out;
  for (auto& [key, v] : value.as_dict()) {
    if (key.kind() != PickleValue::Kind::kString)
      fail("[", where, "] expected str keys in the state dict, found a ", kind_name(key.kind()));
    if (v.kind() != PickleValue::Kind::kTensor)
      fail("[", where, "] state dict entry '", pickle::printable(key.as_string()),
           "': expected a tensor, found a ", kind_name(v.kind()));
    out.emplace_back(key.as_string(), std::move(v.as_tensor()));
  }
  return out;
}

}  // namespace

PickleValue read_torch_archive(const std::filesystem::path& file) {
  return parse(read_archive_file(file), file.string());
}

PickleValue parse_torch_archive(std::vector<uint8_t> bytes, std::string_view name) {
  return parse(SharedBytes::own(std::move(bytes)), std::string(name));
}

TensorDict read_torch_state_dict(const std::filesystem::path& file) {
  return to_state_dict(read_torch_archive(file), file.string());
}

TensorDict parse_torch_state_dict(std::vector<uint8_t> bytes, std::string_view name) {
  return to_state_dict(parse_torch_archive(std::move(bytes), name), std::string(name));
}

}  // namespace reft
