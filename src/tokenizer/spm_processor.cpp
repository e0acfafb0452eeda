#include "tokenizer/spm_processor.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "reft/error.h"

namespace reft::tok {
namespace {

struct ShimApi {
  void* (*load)(const char*, size_t, char*, size_t) = nullptr;
  void (*free)(void*) = nullptr;
  int (*piece_size)(void*) = nullptr;
  long (*id_to_piece)(void*, int, char*, size_t) = nullptr;
  long (*encode)(void*, const char*, size_t, int*, size_t, char*, size_t) = nullptr;
  int (*special_id)(void*, int) = nullptr;
  std::string error;  // why loading failed
};

std::vector<std::filesystem::path> candidate_paths() {
  std::vector<std::filesystem::path> out;
  if (const char* env = std::getenv("REFT_SPM_SHIM"); env && *env) out.emplace_back(env);
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back(exe.parent_path() / "libreft_spm.so");
    out.push_back(exe.parent_path() / ".." / "lib" / "libreft_spm.so");
    out.push_back(exe.parent_path() / ".." / "bin" / "libreft_spm.so");
  }
#ifdef REFT_SPM_SHIM_PATH
  out.emplace_back(REFT_SPM_SHIM_PATH);
#endif
  return out;
}

const ShimApi& shim() {
  static ShimApi api;
  static std::once_flag once;
  std::call_once(once, [] {
  // RTLD_DEEPBIND keeps sentencepiece on its own protobuf; AddressSanitizer refuses DEEPBIND,
  // and sanitizer builds only use the shim in processes without libtorch, so plain LOCAL is safe.
#if defined(__SANITIZE_ADDRESS__)
    const int flags = RTLD_NOW | RTLD_LOCAL;
    // Without DEEPBIND the shim would bind to a protobuf already in the process (libtorch's),
    // whose version check aborts or whose arena crashes: say so instead.
    if (dlsym(RTLD_DEFAULT, "_ZN6google8protobuf8internal13VerifyVersionEiiPKc")) {
      api.error =
          "this is a sanitizer build and libprotobuf is already loaded (by libtorch); "
          "sanitizer builds can use SentencePiece only in processes without libtorch";
      return;
    }
#else
    const int flags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif
    void* lib = nullptr;
    std::string tried;
    for (const auto& p : candidate_paths()) {
      if (!std::filesystem::exists(p)) {
        tried += (tried.empty() ? "" : ", ") + p.string();
        continue;
      }
      lib = dlopen(p.c_str(), flags);
      if (lib) break;
      tried += (tried.empty() ? "" : ", ") + p.string() + " (" + dlerror() + ")";
    }
    if (!lib) {
      api.error =
          "libreft_spm.so not found or not loadable (tried " + tried + "); set REFT_SPM_SHIM";
      return;
    }
    const auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      if (!fn) api.error = std::string("libreft_spm.so lacks ") + name;
    };
    sym(api.load, "reft_spm_load");
    sym(api.free, "reft_spm_free");
    sym(api.piece_size, "reft_spm_piece_size");
    sym(api.id_to_piece, "reft_spm_id_to_piece");
    sym(api.encode, "reft_spm_encode");
    sym(api.special_id, "reft_spm_special_id");
  });
  return api;
}

}  // namespace

SpmProcessor::~SpmProcessor() {
  if (handle_) shim().free(handle_);
}

void SpmProcessor::load(std::string_view proto, std::string_view where) {
  const auto& api = shim();
  if (!api.error.empty()) fail("[", where, "] cannot use libsentencepiece: ", api.error);
  char error[512] = {0};
  handle_ = api.load(proto.data(), proto.size(), error, sizeof error);
  if (!handle_) fail("[", where, "] expected a SentencePiece model, found: ", error);
}

int SpmProcessor::GetPieceSize() const { return shim().piece_size(handle_); }

std::string SpmProcessor::IdToPiece(int id) const {
  std::string piece(64, '\0');
  long n = shim().id_to_piece(handle_, id, piece.data(), piece.size());
  if (n < 0) return {};
  if (static_cast<size_t>(n) > piece.size()) {
    piece.resize(n);
    n = shim().id_to_piece(handle_, id, piece.data(), piece.size());
  }
  piece.resize(n);
  return piece;
}

std::vector<int> SpmProcessor::Encode(std::string_view text) const {
  std::vector<int> ids(text.size() + 16);
  char error[512] = {0};
  long n =
      shim().encode(handle_, text.data(), text.size(), ids.data(), ids.size(), error, sizeof error);
  if (n >= 0 && static_cast<size_t>(n) > ids.size()) {
    ids.resize(n);
    n = shim().encode(handle_, text.data(), text.size(), ids.data(), ids.size(), error,
                      sizeof error);
  }
  if (n < 0) fail("[SentencePiece] expected to encode text, found: ", error);
  ids.resize(n);
  return ids;
}

int SpmProcessor::special(int which) const { return shim().special_id(handle_, which); }

}  // namespace reft::tok
