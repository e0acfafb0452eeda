// A C interface over libsentencepiece, built as its own shared library (libreft_spm.so).
//
// Debian's libsentencepiece carries a private copy of protobuf-lite 3.14 whose symbols are
// exported; libtorch loads the system libprotobuf 3.21. Linked into one process, each library's
// calls bind to the other's protobuf and the process crashes at start-up. reft therefore never
// links libsentencepiece directly: it dlopen()s this shim with RTLD_LOCAL | RTLD_DEEPBIND, so
// sentencepiece binds to its own protobuf and nothing else sees it. Only plain C types cross.

#include <sentencepiece_processor.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

void copy_message(const std::string& message, char* out, size_t capacity) {
  if (!out || capacity == 0) return;
  const size_t n = std::min(capacity - 1, message.size());
  std::memcpy(out, message.data(), n);
  out[n] = '\0';
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* reft_spm_load(const char* proto, size_t size,
                                                           char* error, size_t error_capacity) {
  auto* processor = new (std::nothrow) sentencepiece::SentencePieceProcessor();
  if (!processor) {
    copy_message("out of memory", error, error_capacity);
    return nullptr;
  }
  const auto status = processor->LoadFromSerializedProto(std::string_view(proto, size));
  if (!status.ok()) {
    copy_message(status.ToString(), error, error_capacity);
    delete processor;
    return nullptr;
  }
  return processor;
}

__attribute__((visibility("default"))) void reft_spm_free(void* handle) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

__attribute__((visibility("default"))) int reft_spm_piece_size(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->GetPieceSize();
}

// Writes piece `id` into out (not terminated) and returns its full length; −1 for a bad id.
__attribute__((visibility("default"))) long reft_spm_id_to_piece(void* handle, int id, char* out,
                                                                 size_t capacity) {
  auto* p = static_cast<sentencepiece::SentencePieceProcessor*>(handle);
  if (id < 0 || id >= p->GetPieceSize()) return -1;
  const std::string& piece = p->IdToPiece(id);
  if (const size_t n = std::min(capacity, piece.size()); n > 0) std::memcpy(out, piece.data(), n);
  return static_cast<long>(piece.size());
}

// Encodes text into ids (up to capacity) and returns how many there are; −1 on error.
__attribute__((visibility("default"))) long reft_spm_encode(void* handle, const char* text,
                                                            size_t size, int* ids, size_t capacity,
                                                            char* error, size_t error_capacity) {
  std::vector<int> out;
  const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Encode(
      std::string_view(text, size), &out);
  if (!status.ok()) {
    copy_message(status.ToString(), error, error_capacity);
    return -1;
  }
  if (const size_t n = std::min(capacity, out.size()); n > 0)
    std::memcpy(ids, out.data(), n * sizeof(int));
  return static_cast<long>(out.size());
}

// 0 unk, 1 bos, 2 eos, 3 pad: the id (or −1 when the model has none).
__attribute__((visibility("default"))) int reft_spm_special_id(void* handle, int which) {
  auto* p = static_cast<sentencepiece::SentencePieceProcessor*>(handle);
  switch (which) {
    case 0:
      return p->unk_id();
    case 1:
      return p->bos_id();
    case 2:
      return p->eos_id();
    case 3:
      return p->pad_id();
    default:
      return -1;
  }
}

}  // extern "C"
