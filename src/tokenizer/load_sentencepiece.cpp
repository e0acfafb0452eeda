// tokenizer.model through libsentencepiece, with the surroundings of transformers' slow
// LlamaTokenizer / T5Tokenizer: added and special tokens are split off first (SentencePiece does
// not match control symbols in text), BOS/EOS come from add_bos_token / add_eos_token, and
// `legacy: false` gets its own prefix handling.

#include "reft/error.h"
#include "tokenizer/loading.h"
#include "tokenizer/models.h"
#include "tokenizer/spm_processor.h"

namespace reft::tok {
namespace {

// ---- the few ModelProto fields we need, read from the protobuf wire format ----

struct SpModelInfo {
  bool add_dummy_prefix = true;  // NormalizerSpec defaults
  bool remove_extra_whitespaces = true;
  int model_type = 1;  // TrainerSpec: 1 unigram, 2 BPE, 3 word, 4 char
  bool byte_fallback = false;
};

class WireReader {
 public:
  WireReader(std::string_view data, std::string_view where) : data_(data), where_(where) {}
  bool done() const { return pos_ >= data_.size(); }
  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) malformed();
      const auto byte = static_cast<unsigned char>(data_[pos_++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if (!(byte & 0x80)) return value;
    }
    malformed();
  }
  std::string_view bytes() {
    const uint64_t length = varint();
    if (length > data_.size() - pos_) malformed();
    const auto out = data_.substr(pos_, length);
    pos_ += length;
    return out;
  }
  void skip(int wire_type) {
    switch (wire_type) {
      case 0:
        varint();
        break;
      case 1:
        advance(8);
        break;
      case 2:
        bytes();
        break;
      case 5:
        advance(4);
        break;
      default:
        malformed();
    }
  }

 private:
  void advance(size_t n) {
    if (n > data_.size() - pos_) malformed();
    pos_ += n;
  }
  [[noreturn]] void malformed() const {
    fail("[", where_,
         "] expected a SentencePiece ModelProto, found malformed protobuf data at byte ", pos_);
  }
  std::string_view data_;
  std::string_view where_;
  size_t pos_ = 0;
};

SpModelInfo read_model_info(std::string_view proto, std::string_view where) {
  SpModelInfo info;
  WireReader top(proto, where);
  while (!top.done()) {
    const uint64_t key = top.varint();
    const int field = static_cast<int>(key >> 3), wire_type = static_cast<int>(key & 7);
    if ((field == 2 || field == 3) && wire_type == 2) {
      WireReader sub(top.bytes(), where);  // repeated embedded messages merge field by field
      while (!sub.done()) {
        const uint64_t k = sub.varint();
        const int f = static_cast<int>(k >> 3), wt = static_cast<int>(k & 7);
        if (wt != 0) {
          sub.skip(wt);
          continue;
        }
        const uint64_t v = sub.varint();
        if (field == 3 && f == 3) info.add_dummy_prefix = v != 0;
        if (field == 3 && f == 4) info.remove_extra_whitespaces = v != 0;
        if (field == 2 && f == 3) info.model_type = static_cast<int>(v);
        if (field == 2 && f == 35) info.byte_fallback = v != 0;
      }
    } else {
      top.skip(wire_type);
    }
  }
  return info;
}

const char* model_type_name(int type) {
  switch (type) {
    case 1:
      return "Unigram";
    case 2:
      return "BPE";
    case 3:
      return "Word";
    case 4:
      return "Char";
    default:
      return "unknown";
  }
}

class SentencePieceModel : public Model {
 public:
  SentencePieceModel(const std::string& proto, const SpModelInfo& info, std::string_view where)
      : info_(info) {
    processor_.load(proto, where);
    std::vector<std::string> pieces(static_cast<size_t>(processor_.GetPieceSize()));
    for (size_t id = 0; id < pieces.size(); ++id)
      pieces[id] = processor_.IdToPiece(static_cast<int>(id));
    vocab_ = Vocab(std::move(pieces), where);
  }

  /// Non-legacy mode: text that starts with "▁"/" " is encoded behind `unk_text` so that
  /// SentencePiece keeps its leading space, then the unk pieces are dropped (transformers' trick).
  void set_unk_prefix(std::string unk_text) {
    unk_text_ = std::move(unk_text);
    unk_length_ = processor_.Encode(unk_text_).size();
  }

  void tokenize(std::string_view word, std::vector<TokenId>& out) const override {
    const bool prefixed =
        !unk_text_.empty() && (word.starts_with("\u2581") || word.starts_with(" "));
    const auto ids =
        prefixed ? processor_.Encode(unk_text_ + std::string(word)) : processor_.Encode(word);
    const size_t skip = prefixed && ids.size() >= unk_length_ ? unk_length_ : 0;
    out.insert(out.end(), ids.begin() + static_cast<std::ptrdiff_t>(skip), ids.end());
  }
  std::optional<TokenId> token_to_id(std::string_view token) const override {
    return vocab_.find(token);
  }
  const std::string* id_to_token(TokenId id) const override { return vocab_.token(id); }
  TokenId size() const override { return vocab_.size(); }
  std::optional<TokenId> unk_id() const override {
    const int id = processor_.unk_id();
    return id >= 0 ? std::optional<TokenId>(id) : std::nullopt;
  }
  std::string describe() const override {
    return str("SentencePiece ", model_type_name(info_.model_type), " (", vocab_.count(), " pieces",
               info_.add_dummy_prefix ? ", add_dummy_prefix" : "",
               info_.remove_extra_whitespaces ? ", remove_extra_whitespaces" : "",
               info_.byte_fallback ? ", byte_fallback" : "", ")");
  }
  const SpmProcessor& processor() const { return processor_; }

 private:
  SpmProcessor processor_;
  SpModelInfo info_;
  Vocab vocab_;
  std::string unk_text_;
  size_t unk_length_ = 0;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& dir,
                                              TokenizerConfig config) {
  const auto path = dir / "tokenizer.model";
  const std::string where = path.string();
  std::string proto = read_file_bytes(path);
  if (proto.empty()) fail("[", where, "] expected a SentencePiece model, found an empty file");
  const bool legacy = config.legacy.value_or(true);
  const bool add_prefix_space = config.add_prefix_space.value_or(true);
  // LlamaTokenizer's default, unlike transformers' general default of true.
  if (!config.clean_up_tokenization_spaces) config.clean_up_tokenization_spaces = false;
  if (!legacy) {
    // transformers merges `add_dummy_prefix: false` into the NormalizerSpec (field 3, field 3):
    // appending an embedded message to the serialized proto merges the same way.
    proto += std::string("\x1A\x02\x18\x00", 4);
  }
  const SpModelInfo info = read_model_info(proto, where);
  auto model = std::make_unique<SentencePieceModel>(proto, info, where);
  const auto& sp = model->processor();

  // LlamaTokenizer's defaults for the role tokens, from the model's own control pieces.
  auto piece_of = [&](int id) -> std::optional<std::string> {
    if (id < 0 || id >= sp.GetPieceSize()) return std::nullopt;
    return sp.IdToPiece(id);
  };
  if (config.files_read.empty()) {
    if (auto p = piece_of(sp.unk_id())) config.role_tokens["unk_token"] = *p;
    if (auto p = piece_of(sp.bos_id())) config.role_tokens["bos_token"] = *p;
    if (auto p = piece_of(sp.eos_id())) config.role_tokens["eos_token"] = *p;
    if (auto p = piece_of(sp.pad_id())) config.role_tokens["pad_token"] = *p;
  }

  PipelineTokenizer::Parts parts;
  if (!legacy) {
    const auto unk = config.role_tokens.find("unk_token");
    model->set_unk_prefix(
        unk != config.role_tokens.end() ? unk->second : piece_of(sp.unk_id()).value_or("<unk>"));
    nlohmann::json prepare = {
        {"type", "Sequence"},
        {"normalizers",
         {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}}}}};
    if (add_prefix_space)
      prepare["normalizers"].push_back({{"type", "Prepend"}, {"prepend", "\u2581"}});
    parts.prepare = make_normalizer(prepare, "LlamaTokenizer legacy=false");
    parts.drop_lead_before_special = model->token_to_id("\u2581");
  }
  if (legacy && info.add_dummy_prefix && info.remove_extra_whitespaces)
    parts.space_section_piece = model->token_to_id("\u2581");
  const SentencePieceModel* sp_model = model.get();
  parts.model = std::move(model);
  const auto roles = apply_config(config, parts, [&](const std::string& content) {
    if (const auto id = parts.added.find(content)) return std::optional<TokenId>(*id);
    return sp_model->token_to_id(content);
  });

  const bool add_bos = config.add_bos_token.value_or(true);
  const bool add_eos = config.add_eos_token.value_or(false);
  auto as_id = [](std::optional<int64_t> id) {
    return id ? std::optional<TokenId>(static_cast<TokenId>(*id)) : std::nullopt;
  };
  parts.post_processor = make_bos_eos_processor(add_bos ? as_id(roles.bos) : std::nullopt,
                                                add_eos ? as_id(roles.eos) : std::nullopt);
  // The dummy prefix (or the prefix space of legacy=false) is removed from the first piece.
  parts.decoder = make_sentencepiece_decoder(legacy ? info.add_dummy_prefix : add_prefix_space);
  parts.description =
      "tokenizer.model: " + parts.model->describe() + (legacy ? ", legacy" : ", legacy=false");
  return std::make_unique<PipelineTokenizer>(std::move(parts), roles);
}

}  // namespace reft::tok
