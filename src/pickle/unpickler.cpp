// The opcode semantics follow CPython's Lib/pickle.py (and pickletools' documentation): a value
// stack split by MARKs into frames, and a memo that BINPUT/MEMOIZE fill and BINGET reads.

#include "pickle/unpickler.h"

#include <cstring>

#include "pickle/opcodes.h"

namespace reft::pickle {

std::string opcode_name(uint8_t op) {
  using namespace op;
  switch (op) {
    case kMark:
      return "MARK";
    case kStop:
      return "STOP";
    case kPop:
      return "POP";
    case kPopMark:
      return "POP_MARK";
    case kDup:
      return "DUP";
    case kFloat:
      return "FLOAT";
    case kInt:
      return "INT";
    case kBinInt:
      return "BININT";
    case kBinInt1:
      return "BININT1";
    case kLong:
      return "LONG";
    case kBinInt2:
      return "BININT2";
    case kNone:
      return "NONE";
    case kPersId:
      return "PERSID";
    case kBinPersId:
      return "BINPERSID";
    case kReduce:
      return "REDUCE";
    case kString:
      return "STRING";
    case kBinString:
      return "BINSTRING";
    case kShortBinString:
      return "SHORT_BINSTRING";
    case kUnicode:
      return "UNICODE";
    case kBinUnicode:
      return "BINUNICODE";
    case kAppend:
      return "APPEND";
    case kBuild:
      return "BUILD";
    case kGlobal:
      return "GLOBAL";
    case kDict:
      return "DICT";
    case kEmptyDict:
      return "EMPTY_DICT";
    case kAppends:
      return "APPENDS";
    case kGet:
      return "GET";
    case kBinGet:
      return "BINGET";
    case kInst:
      return "INST";
    case kLongBinGet:
      return "LONG_BINGET";
    case kList:
      return "LIST";
    case kEmptyList:
      return "EMPTY_LIST";
    case kObj:
      return "OBJ";
    case kPut:
      return "PUT";
    case kBinPut:
      return "BINPUT";
    case kLongBinPut:
      return "LONG_BINPUT";
    case kSetItem:
      return "SETITEM";
    case kTuple:
      return "TUPLE";
    case kEmptyTuple:
      return "EMPTY_TUPLE";
    case kSetItems:
      return "SETITEMS";
    case kBinFloat:
      return "BINFLOAT";
    case kProto:
      return "PROTO";
    case kNewObj:
      return "NEWOBJ";
    case kExt1:
      return "EXT1";
    case kExt2:
      return "EXT2";
    case kExt4:
      return "EXT4";
    case kTuple1:
      return "TUPLE1";
    case kTuple2:
      return "TUPLE2";
    case kTuple3:
      return "TUPLE3";
    case kNewTrue:
      return "NEWTRUE";
    case kNewFalse:
      return "NEWFALSE";
    case kLong1:
      return "LONG1";
    case kLong4:
      return "LONG4";
    case kBinBytes:
      return "BINBYTES";
    case kShortBinBytes:
      return "SHORT_BINBYTES";
    case kShortBinUnicode:
      return "SHORT_BINUNICODE";
    case kBinUnicode8:
      return "BINUNICODE8";
    case kBinBytes8:
      return "BINBYTES8";
    case kEmptySet:
      return "EMPTY_SET";
    case kAddItems:
      return "ADDITEMS";
    case kFrozenSet:
      return "FROZENSET";
    case kNewObjEx:
      return "NEWOBJ_EX";
    case kStackGlobal:
      return "STACK_GLOBAL";
    case kMemoize:
      return "MEMOIZE";
    case kFrame:
      return "FRAME";
    case kByteArray8:
      return "BYTEARRAY8";
    case kNextBuffer:
      return "NEXT_BUFFER";
    case kReadonlyBuffer:
      return "READONLY_BUFFER";
  }
  return str("0x", "0123456789abcdef"[op >> 4], "0123456789abcdef"[op & 15]);
}

namespace {
using namespace op;

constexpr int kMaxKeyDepth = 64;
constexpr size_t kMaxGlobalName = 1024;

}  // namespace

bool is_valid_utf8(std::span<const uint8_t> s) {
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t c = s[i];
    size_t n;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c < 0x80)
      n = 0;
    else if (c >= 0xc2 && c <= 0xdf)
      n = 1;
    else if (c >= 0xe0 && c <= 0xef)
      n = 2, lo = c == 0xe0 ? 0xa0 : 0x80;
    else if (c >= 0xf0 && c <= 0xf4)
      n = 3, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
      return false;
    if (n > s.size() - i - 1) return false;
    for (size_t k = 1; k <= n; ++k) {
      const uint8_t b = s[i + k];
      if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf)) return false;
    }
    i += n + 1;
  }
  return true;
}

std::string printable(std::string_view text, size_t max_len) {
  const bool utf8 = is_valid_utf8({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
  std::string out;
  for (size_t i = 0; i < text.size() && i < max_len; ++i) {
    const auto c = static_cast<uint8_t>(text[i]);
    if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
      out += str("\\x", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > max_len) out += "…";
  return out;
}

std::string_view node_kind_name(NodeKind kind) {
  switch (kind) {
    case NodeKind::kNone:
      return "None";
    case NodeKind::kBool:
      return "bool";
    case NodeKind::kInt:
      return "int";
    case NodeKind::kBigInt:
      return "int (beyond 64 bits)";
    case NodeKind::kFloat:
      return "float";
    case NodeKind::kString:
      return "str";
    case NodeKind::kBytes:
      return "bytes";
    case NodeKind::kTuple:
      return "tuple";
    case NodeKind::kList:
      return "list";
    case NodeKind::kDict:
      return "dict";
    case NodeKind::kGlobal:
      return "global";
    case NodeKind::kStorage:
      return "storage";
    case NodeKind::kTensor:
      return "tensor";
  }
  return "?";
}

Unpickler::Unpickler(std::string where, size_t input_size)
    : where_(std::move(where)), budget_(64 * input_size + (1u << 20)) {}

void Unpickler::charge(size_t units) {
  if (units > budget_)
    fail("[", where_,
         "] pickle exceeds the work budget for its size (deeply shared structures "
         "or huge keys); the file is corrupt or malicious");
  budget_ -= units;
}

Node* Unpickler::make(NodeKind kind) {
  arena_.push_back(std::make_unique<Node>());
  arena_.back()->kind = kind;
  if (kind == NodeKind::kDict)
    arena_.back()->dict_index = std::make_unique<std::unordered_map<std::string, size_t>>();
  return arena_.back().get();
}

void Unpickler::encode_key(const Node* key, std::string& out, int depth) {
  if (depth > kMaxKeyDepth)
    fail("[", where_, "] dict key nested deeper than ", kMaxKeyDepth, " levels");
  charge(1 + key->s.size());
  switch (key->kind) {
    case NodeKind::kNone:
      out += 'N';
      return;
    // Python: True == 1 and 1.0 == 1 hash alike, so they are the same key.
    case NodeKind::kBool:
    case NodeKind::kInt:
      out += str('I', key->i, ';');
      return;
    case NodeKind::kFloat:
      if (key->f >= -9.2e18 && key->f <= 9.2e18 &&
          key->f == static_cast<double>(static_cast<int64_t>(key->f))) {
        out += str('I', static_cast<int64_t>(key->f), ';');
      } else {
        uint64_t bits;
        std::memcpy(&bits, &key->f, sizeof bits);
        out += str('F', bits, ';');
      }
      return;
    case NodeKind::kBigInt:
      out += str('L', key->s.size(), ':', key->s);
      return;
    case NodeKind::kString:
      out += str('S', key->s.size(), ':', key->s);
      return;
    case NodeKind::kBytes:
      out += str('B', key->s.size(), ':', key->s);
      return;
    case NodeKind::kTuple:
      out += '(';
      for (const Node* item : key->items) encode_key(item, out, depth + 1);
      out += ')';
      return;
    case NodeKind::kGlobal:
    case NodeKind::kStorage:
    case NodeKind::kTensor:  // hashed by identity in Python
      out += str('P', static_cast<const void*>(key), ';');
      return;
    case NodeKind::kList:
    case NodeKind::kDict:
      break;
  }
  fail("[", where_, "] unhashable dict key of type ", node_kind_name(key->kind));
}

void Unpickler::set_item(Node* dict, Node* key, Node* value) {
  std::string encoded;
  encode_key(key, encoded, 0);
  auto [it, inserted] = dict->dict_index->emplace(std::move(encoded), dict->items.size() / 2);
  if (inserted) {
    dict->items.push_back(key);
    dict->items.push_back(value);
  } else {
    dict->items[2 * it->second + 1] = value;  // Python keeps the first key and its position
  }
}

Node* Unpickler::load(ByteReader& in) {
  std::vector<Node*> stack;
  std::vector<size_t> marks;  // stack sizes at each open MARK
  std::unordered_map<uint32_t, Node*> memo;
  size_t pos = 0;
  uint8_t op = 0;
  auto bad = [&](const auto&... why) {
    fail("[", where_, "] pickle byte ", pos, " (", opcode_name(op), "): ", why...);
  };
  // Items above the innermost MARK are all an opcode may touch, as in CPython.
  auto floor = [&] { return marks.empty() ? size_t{0} : marks.back(); };
  auto top = [&]() -> Node* {
    if (stack.size() <= floor()) bad("stack underflow");
    return stack.back();
  };
  auto pop = [&]() -> Node* {
    Node* n = top();
    stack.pop_back();
    return n;
  };
  auto pop_mark = [&]() -> std::vector<Node*> {
    if (marks.empty()) bad("expected an open MARK, found none");
    std::vector<Node*> items(stack.begin() + static_cast<std::ptrdiff_t>(marks.back()),
                             stack.end());
    stack.resize(marks.back());
    marks.pop_back();
    charge(items.size());
    return items;
  };
  auto push_new = [&](NodeKind kind) {
    stack.push_back(make(kind));
    return stack.back();
  };
  auto push_int = [&](int64_t v) { push_new(NodeKind::kInt)->i = v; };
  auto push_text = [&](NodeKind kind, std::span<const uint8_t> bytes) {
    if (kind == NodeKind::kString && !is_valid_utf8(bytes))
      bad("expected UTF-8 text, found invalid bytes");
    push_new(kind)->s.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  };
  // LONG1/LONG4 payload: little-endian two's complement of any length.
  auto push_long = [&](std::span<const uint8_t> b) {
    const bool negative = !b.empty() && (b.back() & 0x80);
    size_t n = b.size();
    while (n > 8 && b[n - 1] == (negative ? 0xff : 0x00) && ((b[n - 2] & 0x80) != 0) == negative)
      --n;
    if (n > 8) {
      push_new(NodeKind::kBigInt)->s.assign(reinterpret_cast<const char*>(b.data()), n);
      return;
    }
    uint64_t v = negative ? ~uint64_t{0} : 0;
    for (size_t k = 0; k < n; ++k) {
      v &= ~(uint64_t{0xff} << (8 * k));
      v |= uint64_t{b[k]} << (8 * k);
    }
    push_int(static_cast<int64_t>(v));
  };
  auto length = [&](uint64_t n, const char* what) -> uint64_t {
    if (n > in.remaining())
      bad("the ", what, " of ", n, " bytes runs past the end (", in.remaining(), " left)");
    return n;
  };
  auto memo_put = [&](uint64_t index) {
    if (index > 0xffffffffu) bad("memo index too large");
    memo[static_cast<uint32_t>(index)] = top();
  };
  auto memo_get = [&](uint64_t index) {
    auto it = memo.find(static_cast<uint32_t>(index));
    if (index > 0xffffffffu || it == memo.end()) bad("memo has no entry ", index);
    stack.push_back(it->second);
  };
  auto push_global = [&](std::string module, std::string name) {
    const std::string full = module + "." + name;
    if (!is_callable_global(full) && !storage_class_type(full))
      bad("unsupported global '", printable(full), "'; only ", allowed_globals(),
          " are allowed (the file pickles other objects, or is malicious)");
    push_new(NodeKind::kGlobal)->s = full;
  };

  for (;;) {
    pos = in.position();
    op = in.u8("pickle opcode (no STOP)");
    charge(1);
    switch (op) {
      case kProto: {
        const uint8_t version = in.u8("PROTO");
        if (version < 2 || version > 5)
          bad("expected pickle protocol 2 to 5, found ", int{version});
        break;
      }
      case kFrame:
        length(in.le<uint64_t>("FRAME"), "frame");
        break;  // framing is only a hint
      case kStop: {
        Node* result = pop();
        if (!stack.empty() || !marks.empty())
          bad("expected one value and no open MARK at STOP, found ", stack.size() + 1,
              " values and ", marks.size(), " MARKs");
        return result;
      }
      case kMark:
        marks.push_back(stack.size());
        break;
      case kPop:
        pop();
        break;
      case kPopMark:
        pop_mark();
        break;
      case kDup:
        stack.push_back(top());
        break;
      case kNone:
        push_new(NodeKind::kNone);
        break;
      case kNewTrue:
        push_new(NodeKind::kBool)->i = 1;
        break;
      case kNewFalse:
        push_new(NodeKind::kBool)->i = 0;
        break;
      case kBinInt:
        push_int(in.le<int32_t>("BININT"));
        break;
      case kBinInt1:
        push_int(in.u8("BININT1"));
        break;
      case kBinInt2:
        push_int(in.le<uint16_t>("BININT2"));
        break;
      case kLong1:
        push_long(in.take(in.u8("LONG1"), "LONG1"));
        break;
      case kLong4: {
        const int32_t n = in.le<int32_t>("LONG4");
        if (n < 0) bad("negative length");
        push_long(in.take(length(static_cast<uint64_t>(n), "integer"), "LONG4"));
        break;
      }
      case kBinFloat: {
        uint64_t bits = 0;
        for (uint8_t b : in.take(8, "BINFLOAT")) bits = bits << 8 | b;  // big-endian
        double v;
        std::memcpy(&v, &bits, sizeof v);
        push_new(NodeKind::kFloat)->f = v;
        break;
      }
      case kShortBinUnicode:
        push_text(NodeKind::kString, in.take(in.u8("string"), "string"));
        break;
      case kBinUnicode:
        push_text(NodeKind::kString,
                  in.take(length(in.le<uint32_t>("string"), "string"), "string"));
        break;
      case kBinUnicode8:
        push_text(NodeKind::kString,
                  in.take(length(in.le<uint64_t>("string"), "string"), "string"));
        break;
      // Python 2 str: torch.load decodes these with its default encoding, UTF-8.
      case kShortBinString:
        push_text(NodeKind::kString, in.take(in.u8("string"), "string"));
        break;
      case kBinString: {
        const int32_t n = in.le<int32_t>("BINSTRING");
        if (n < 0) bad("negative length");
        push_text(NodeKind::kString, in.take(length(static_cast<uint64_t>(n), "string"), "string"));
        break;
      }
      case kShortBinBytes:
        push_text(NodeKind::kBytes, in.take(in.u8("bytes"), "bytes"));
        break;
      case kBinBytes:
        push_text(NodeKind::kBytes, in.take(length(in.le<uint32_t>("bytes"), "bytes"), "bytes"));
        break;
      case kBinBytes8:
        push_text(NodeKind::kBytes, in.take(length(in.le<uint64_t>("bytes"), "bytes"), "bytes"));
        break;
      case kEmptyTuple:
        push_new(NodeKind::kTuple);
        break;
      case kTuple1:
      case kTuple2:
      case kTuple3: {
        const size_t n = op - kTuple1 + 1;
        Node* t = make(NodeKind::kTuple);
        t->items.resize(n);
        for (size_t k = n; k-- > 0;) t->items[k] = pop();
        stack.push_back(t);
        break;
      }
      case kTuple: {
        auto items = pop_mark();
        push_new(NodeKind::kTuple)->items = std::move(items);
        break;
      }
      case kEmptyList:
        push_new(NodeKind::kList);
        break;
      case kList: {
        auto items = pop_mark();
        push_new(NodeKind::kList)->items = std::move(items);
        break;
      }
      case kAppend: {
        Node* item = pop();
        Node* list = top();
        if (list->kind != NodeKind::kList)
          bad("expected a list, found ", node_kind_name(list->kind));
        list->items.push_back(item);
        break;
      }
      case kAppends: {
        auto items = pop_mark();
        Node* list = top();
        if (list->kind != NodeKind::kList)
          bad("expected a list, found ", node_kind_name(list->kind));
        list->items.insert(list->items.end(), items.begin(), items.end());
        break;
      }
      case kEmptyDict:
        push_new(NodeKind::kDict);
        break;
      case kDict:
      case kSetItems: {
        auto items = pop_mark();
        if (items.size() % 2) bad("expected key/value pairs, found an odd count ", items.size());
        Node* dict = op == kDict ? push_new(NodeKind::kDict) : top();
        if (dict->kind != NodeKind::kDict)
          bad("expected a dict, found ", node_kind_name(dict->kind));
        for (size_t k = 0; k < items.size(); k += 2) set_item(dict, items[k], items[k + 1]);
        break;
      }
      case kSetItem: {
        Node* value = pop();
        Node* key = pop();
        Node* dict = top();
        if (dict->kind != NodeKind::kDict)
          bad("expected a dict, found ", node_kind_name(dict->kind));
        set_item(dict, key, value);
        break;
      }
      case kBinPut:
        memo_put(in.u8("BINPUT"));
        break;
      case kLongBinPut:
        memo_put(in.le<uint32_t>("LONG_BINPUT"));
        break;
      case kMemoize:
        memo_put(memo.size());
        break;
      case kBinGet:
        memo_get(in.u8("BINGET"));
        break;
      case kLongBinGet:
        memo_get(in.le<uint32_t>("LONG_BINGET"));
        break;
      case kGlobal: {
        std::string module = in.line(kMaxGlobalName, "GLOBAL module");
        std::string name = in.line(kMaxGlobalName, "GLOBAL name");
        push_global(std::move(module), std::move(name));
        break;
      }
      case kStackGlobal: {
        Node* name = pop();
        Node* module = pop();
        if (module->kind != NodeKind::kString || name->kind != NodeKind::kString)
          bad("expected module and name strings");
        push_global(module->s, name->s);
        break;
      }
      case kReduce: {
        Node* args = pop();
        Node* callable = pop();
        stack.push_back(call(callable, args, pos));
        break;
      }
      case kNewObj: {  // cls.__new__(cls, *args): only OrderedDict, which takes no arguments
        Node* args = pop();
        Node* cls = pop();
        if (cls->kind != NodeKind::kGlobal || cls->s != "collections.OrderedDict")
          bad("only collections.OrderedDict can be created with NEWOBJ");
        stack.push_back(call(cls, args, pos));
        break;
      }
      case kBuild: {  // obj.__setstate__(state): only an OrderedDict's attributes (e.g. _metadata)
        Node* state = pop();
        Node* obj = top();
        if (obj->kind != NodeKind::kDict)
          bad("only an OrderedDict's state can be set, found a ", node_kind_name(obj->kind));
        if (state->kind != NodeKind::kDict && state->kind != NodeKind::kNone)
          bad("expected the OrderedDict's attributes as a dict, found ",
              node_kind_name(state->kind));
        break;
      }
      case kBinPersId:
        stack.push_back(persistent_load(pop(), pos));
        break;
      case kPersId: {
        const std::string id = in.line(kMaxGlobalName, "PERSID");
        fail("[", where_, "] pickle byte ", pos,
             " (PERSID): expected a ('storage', …) tuple as persistent id, found the text id '",
             printable(id), "'");
      }
      default:
        bad("unsupported pickle opcode; torch.save files do not use it, so the file is corrupt");
    }
  }
}

}  // namespace reft::pickle
