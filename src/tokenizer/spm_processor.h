#pragma once
// libsentencepiece through the libreft_spm.so shim (see spm_shim/shim.cpp for why it is never
// linked directly). The interface mirrors the parts of sentencepiece::SentencePieceProcessor that
// the tokenizer uses.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace reft::tok {

class SpmProcessor {
 public:
  SpmProcessor() = default;
  ~SpmProcessor();
  SpmProcessor(const SpmProcessor&) = delete;
  SpmProcessor& operator=(const SpmProcessor&) = delete;

  /// Loads a serialized ModelProto; throws reft::Error naming `where` on failure (or when the
  /// shim library cannot be found: set REFT_SPM_SHIM to its path).
  void load(std::string_view proto, std::string_view where);
  int GetPieceSize() const;
  std::string IdToPiece(int id) const;
  /// Throws reft::Error on failure.
  std::vector<int> Encode(std::string_view text) const;
  int unk_id() const { return special(0); }
  int bos_id() const { return special(1); }
  int eos_id() const { return special(2); }
  int pad_id() const { return special(3); }

 private:
  int special(int which) const;
  void* handle_ = nullptr;
};

}  // namespace reft::tok
