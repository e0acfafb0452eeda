// Writing state dicts as torch.save does (torch/serialization.py `_save` with the zip writer):
//   <archive>/data.pkl   pickle protocol 2 of the OrderedDict, each tensor as
//                        _rebuild_tensor_v2(<persistent id ('storage', torch.FloatStorage, '<i>',
//                        'cpu', numel)>, 0, size, stride, requires_grad, OrderedDict())
//   <archive>/byteorder  "little"
//   <archive>/data/<i>   the storage bytes, in the string order of the keys, as torch sorts them
//   <archive>/version    "3\n", written last as PyTorchStreamWriter does on close
// The opcodes are those CPython's pickler emits for these objects, so torch.load's weights_only
// unpickler (which knows only a subset of opcodes) reads them.

#include <algorithm>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include "pickle/pickle_writer.h"
#include "pickle/unpickler.h"
#include "pickle/zip_writer.h"
#include "reft/torch_archive.h"

namespace reft {
namespace {

using pickle::PickleWriter;
namespace op = pickle::op;

constexpr size_t kPicklerBatch = 1000;  // CPython's _BATCHSIZE for SETITEMS

// torch's PyTorchStreamWriter names the archive after the file: the base name up to its last
// '.'; a path with non-ASCII characters goes through a Python stream and gets "archive".
std::string default_archive_name(const std::filesystem::path& file) {
  const std::string path = file.string();
  if (std::any_of(path.begin(), path.end(),
                  [](char c) { return static_cast<unsigned char>(c) >= 0x80; }))
    return "archive";
  std::string base = file.filename().string();
  if (const size_t dot = base.rfind('.'); dot != std::string::npos) base.resize(dot);
  return base.empty() ? "archive" : base;
}

void check_archive_name(const std::string& name) {
  if (name.empty() || name.find_first_of(std::string("/\\\0", 3)) != std::string::npos ||
      !pickle::is_valid_utf8({reinterpret_cast<const uint8_t*>(name.data()), name.size()}))
    fail("[torch.save] archive name '", name, "' must be non-empty UTF-8 without '/' or '\\'");
}

void write_tuple(PickleWriter& w, const std::vector<int64_t>& values) {
  if (values.size() > 3) w.op(op::kMark);
  for (int64_t v : values) w.integer(v);
  w.end_tuple(values.size());
  if (!values.empty()) w.put();  // CPython does not memoize the empty tuple
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> stride(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;)
    stride[d - 1] = stride[d] * std::max<int64_t>(shape[d], 1);
  return stride;
}

// One entry's value: _rebuild_tensor_v2(storage, 0, size, stride, requires_grad, OrderedDict()).
void write_tensor(PickleWriter& w, const ArchiveTensor& t, const std::string& storage_key) {
  w.memo_global("torch._utils", "_rebuild_tensor_v2");
  w.op(op::kMark);
  w.op(op::kMark);
  w.memo_unicode("storage");
  w.memo_global("torch", pickle::storage_class_name(t.dtype));
  w.memo_unicode(storage_key);
  w.memo_unicode("cpu");
  w.integer(t.numel());
  w.op(op::kTuple);
  w.put();
  w.op(op::kBinPersId);
  w.integer(0);
  write_tuple(w, t.shape);
  write_tuple(w, contiguous_strides(t.shape));
  w.boolean(t.requires_grad);
  w.memo_global("collections", "OrderedDict");
  w.op(op::kEmptyTuple);
  w.op(op::kReduce);
  w.put();
  w.op(op::kTuple);
  w.put();
  w.op(op::kReduce);
  w.put();
}

std::vector<uint8_t> pickle_state_dict(const TensorDict& tensors) {
  PickleWriter w;
  w.proto(2);
  w.memo_global("collections", "OrderedDict");
  w.op(op::kEmptyTuple);
  w.op(op::kReduce);
  w.put();
  for (size_t start = 0; start < tensors.size(); start += kPicklerBatch) {
    const size_t count = std::min(kPicklerBatch, tensors.size() - start);
    if (count > 1) w.op(op::kMark);
    for (size_t i = start; i < start + count; ++i) {
      w.unicode(tensors[i].first);
      w.put();
      write_tensor(w, tensors[i].second, std::to_string(i));
    }
    w.op(count > 1 ? op::kSetItems : op::kSetItem);
  }
  w.op(op::kStop);
  return w.take();
}

// The tensor's elements in row-major order: its storage bytes when it is already contiguous and
// in bounds, a copy otherwise (contiguous_bytes() checks the view).
std::span<const uint8_t> element_bytes(const ArchiveTensor& t, std::vector<uint8_t>& scratch) {
  const int64_t item = element_size(t.dtype);
  const int64_t numel = t.numel();
  if (t.is_contiguous() && t.storage && t.storage_offset >= 0 && numel >= 0 &&
      t.storage_offset <= t.storage_nbytes / item &&
      numel <= t.storage_nbytes / item - t.storage_offset)
    return t.storage_bytes().subspan(static_cast<size_t>(t.storage_offset * item),
                                     static_cast<size_t>(numel * item));
  scratch = t.contiguous_bytes();
  return scratch;
}

void write_archive(std::ostream& out, const std::string& where, const TensorDict& tensors,
                   const std::string& archive_name) {
  check_archive_name(archive_name);
  std::unordered_set<std::string_view> names;
  for (const auto& [name, tensor] : tensors) {
    if (!names.insert(name).second) fail("[", where, "] tensor name '", name, "' appears twice");
    if (!pickle::is_valid_utf8({reinterpret_cast<const uint8_t*>(name.data()), name.size()}))
      fail("[", where, "] tensor name '", name, "' is not valid UTF-8");
    if (tensor.stride.size() != tensor.shape.size())
      fail("[", where, "] tensor '", name, "': expected one stride per dim, found ",
           tensor.stride.size(), " strides for ", tensor.shape.size(), " dims");
    int64_t numel = 1;
    for (int64_t d : tensor.shape)
      if (d < 0 || __builtin_mul_overflow(numel, d, &numel))
        fail("[", where, "] tensor '", name, "' has a negative or overflowing dim ", d);
  }

  pickle::ZipWriter zip(out, where);
  const std::string prefix = archive_name + "/";
  const std::vector<uint8_t> pkl = pickle_state_dict(tensors);
  zip.add(prefix + "data.pkl", pkl);
  static constexpr std::string_view kLittle = "little";
  zip.add(prefix + "byteorder", {reinterpret_cast<const uint8_t*>(kLittle.data()), kLittle.size()});
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [](size_t a, size_t b) { return std::to_string(a) < std::to_string(b); });
  std::vector<uint8_t> scratch;
  for (size_t i : order) {
    const ArchiveTensor& t = tensors[i].second;
    try {
      zip.add(prefix + "data/" + std::to_string(i), element_bytes(t, scratch));
    } catch (const Error& e) {
      fail("[", where, "] tensor '", tensors[i].first, "': ", e.what());
    }
  }
  static constexpr std::string_view kVersion = "3\n";
  zip.add(prefix + "version", {reinterpret_cast<const uint8_t*>(kVersion.data()), kVersion.size()});
  zip.finish();
}

}  // namespace

void write_torch_state_dict(const std::filesystem::path& file, const TensorDict& tensors,
                            const TorchSaveOptions& options) {
  const std::string where = file.string();
  const std::string archive =
      options.archive_name.empty() ? default_archive_name(file) : options.archive_name;
  std::filesystem::path partial = file;
  partial += ".partial";
  try {
    {
      std::ofstream out(partial, std::ios::binary | std::ios::trunc);
      if (!out) fail("[", where, "] cannot create ", partial.string());
      write_archive(out, where, tensors, archive);
      out.close();
      if (!out) fail("[", where, "] writing failed (disk full?)");
    }
    std::error_code ec;
    std::filesystem::rename(partial, file, ec);
    if (ec) fail("[", where, "] cannot rename ", partial.string(), ": ", ec.message());
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(partial, ignored);
    throw;
  }
}

std::vector<uint8_t> serialize_torch_state_dict(const TensorDict& tensors,
                                                const TorchSaveOptions& options) {
  std::ostringstream out(std::ios::binary);
  write_archive(out, "torch.save", tensors,
                options.archive_name.empty() ? "archive" : options.archive_name);
  const std::string bytes = std::move(out).str();
  return {bytes.begin(), bytes.end()};
}

}  // namespace reft
