// tokenizer.json (HF `tokenizers` format). The memory-mapped file is read with a SAX handler that
// builds a JSON tree for everything except model.vocab and model.merges: those two (up to ~150k
// entries and ~300k merges for Llama-3 / Qwen) go straight into the vocabulary table and a vector
// of id pairs, which keeps loading fast and avoids building and freeing a large tree.

#include "reft/error.h"
#include "tokenizer/loading.h"
#include "tokenizer/models.h"
#include "util/files.h"

namespace reft::tok {
namespace {

using json = nlohmann::json;

class TokenizerJsonReader : public json::json_sax_t {
 public:
  TokenizerJsonReader(std::string where, size_t file_size) : where_(std::move(where)) {
    // Reserving is cheap (untouched pages cost nothing) and avoids copying ~10 MB on growth.
    entries_.reserve(file_size / 24 + 16);
    merge_ids.reserve(file_size / 24 + 16);
  }

  json root;
  std::optional<Vocab> vocab;
  std::vector<MergePair> merge_ids;

  /// Resolves merges that came before the vocabulary (not HF's order, but valid JSON).
  void finish() {
    if (pending_merges_.empty()) return;
    if (!vocab) fail("[", where_, "] expected model.vocab next to model.merges, found none");
    auto resolved = resolve_merges(*vocab, pending_merges_, where_);
    merge_ids.insert(merge_ids.end(), resolved.begin(), resolved.end());
  }

  bool null() override { return value(json(nullptr)); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override {
    if (mode_ == Mode::kVocab) {
      entries_.emplace_back(std::move(key_), v);
      return true;
    }
    return value(json(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (mode_ == Mode::kVocab) {
      entries_.emplace_back(std::move(key_),
                            static_cast<int64_t>(std::min<uint64_t>(v, INT64_MAX)));
      return true;
    }
    return value(json(v));
  }
  bool number_float(number_float_t v, const string_t&) override { return value(json(v)); }
  bool string(string_t& v) override {
    if (mode_ == Mode::kMerges) {
      if (pair_) {
        pair_->push_back(std::move(v));
        return true;
      }
      // "left right": exactly one space, as HF requires of this older format.
      const size_t space = v.find(' ');
      if (space == std::string::npos || v.find(' ', space + 1) != std::string::npos)
        fail("[", where_, "] expected merge #", merge_count(), " as \"left right\", found \"", v,
             "\"");
      add_merge(std::string_view(v).substr(0, space), std::string_view(v).substr(space + 1));
      return true;
    }
    return value(json(std::move(v)));
  }
  bool binary(binary_t&) override { fail("[", where_, "] expected JSON text, found binary data"); }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool start_object(std::size_t) override {
    if (mode_ != Mode::kDom)
      fail("[", where_, "] expected ",
           mode_ == Mode::kVocab ? "integer ids in model.vocab" : "strings in model.merges",
           ", found an object");
    if (in_model() && key_ == "vocab") {
      mode_ = Mode::kVocab;
      return true;
    }
    return open(json::object());
  }
  bool end_object() override {
    if (mode_ == Mode::kVocab) {
      mode_ = Mode::kDom;
      vocab.emplace(std::move(entries_), where_);
      entries_ = {};
      (*stack_.back())["vocab"] = json::object();  // placeholder: the entries are in `vocab`
      return true;
    }
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (mode_ == Mode::kVocab)
      fail("[", where_, "] expected integer ids in model.vocab, found an array");
    if (mode_ == Mode::kMerges) {
      if (pair_) fail("[", where_, "] expected merges as \"a b\" or [a, b], found nested arrays");
      pair_.emplace();
      return true;
    }
    if (in_model() && key_ == "merges") {
      mode_ = Mode::kMerges;
      return true;
    }
    return open(json::array());
  }
  bool end_array() override {
    if (mode_ == Mode::kMerges) {
      if (pair_) {
        if (pair_->size() != 2)
          fail("[", where_, "] expected merge #", merge_count(), " as [left, right], found ",
               pair_->size(), " strings");
        add_merge((*pair_)[0], (*pair_)[1]);
        pair_.reset();
        return true;
      }
      mode_ = Mode::kDom;
      (*stack_.back())["merges"] = json::array();
      return true;
    }
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    fail("[", where_, "] expected valid JSON, found ", json_error_summary(e));
  }

 private:
  enum class Mode { kDom, kVocab, kMerges };
  static constexpr size_t kMaxDepth = 256;  // as parse_json_bounded

  // Directly inside the top-level "model" object.
  bool in_model() const { return stack_.size() == 2 && keys_[1] == "model"; }
  size_t merge_count() const { return merge_ids.size() + pending_merges_.size(); }

  void add_merge(std::string_view left, std::string_view right) {
    if (!vocab) {
      pending_merges_.push_back({std::string(left), std::string(right)});
      return;
    }
    MergePair pair;
    const std::string error = resolve_merge(*vocab, left, right, merge_count(), pair);
    if (!error.empty()) fail("[", where_, "] expected ", error);
    merge_ids.push_back(pair);
  }

  json* insert(json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    json& parent = *stack_.back();
    if (parent.is_object()) {
      json& slot = parent[key_];
      slot = std::move(v);
      return &slot;
    }
    parent.push_back(std::move(v));
    return &parent.back();
  }
  bool value(json v) {
    if (mode_ != Mode::kDom)
      fail("[", where_, "] expected ",
           mode_ == Mode::kVocab ? "integer ids in model.vocab" : "strings in model.merges",
           ", found ", v.dump());
    insert(std::move(v));
    return true;
  }
  bool open(json container) {
    if (stack_.size() >= kMaxDepth)
      fail("[", where_, "] expected JSON nested at most ", kMaxDepth,
           " levels deep, found deeper nesting");
    const std::string key = !stack_.empty() && stack_.back()->is_object() ? key_ : std::string();
    stack_.push_back(insert(std::move(container)));
    keys_.push_back(key);
    return true;
  }

  std::string where_;
  Mode mode_ = Mode::kDom;
  std::vector<json*> stack_;
  std::vector<std::string> keys_;  // the key each open container was stored under
  std::string key_;
  std::vector<std::pair<std::string, int64_t>> entries_;
  std::vector<MergeRule> pending_merges_;
  std::optional<std::vector<std::string>> pair_;
};

std::string describe_pipeline(const json& doc) {
  std::string out;
  auto type_of = [&](const char* field) -> std::string {
    const auto it = doc.find(field);
    if (it == doc.end() || !it->is_object() || !it->contains("type")) return "none";
    return (*it)["type"].is_string() ? (*it)["type"].get<std::string>() : "?";
  };
  return "normalizer " + type_of("normalizer") + ", pre_tokenizer " + type_of("pre_tokenizer") +
         ", post_processor " + type_of("post_processor") + ", decoder " + type_of("decoder");
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::filesystem::path& dir,
                                               const TokenizerConfig& config) {
  const auto path = dir / "tokenizer.json";
  const std::string where = path.string();
  const MappedFile file(path);
  TokenizerJsonReader reader(where, file.data().size());
  json::sax_parse(file.data().begin(), file.data().end(), &reader, json::input_format_t::json,
                  true);
  reader.finish();
  const json& doc = reader.root;
  if (!doc.is_object()) fail("[", where, "] expected a JSON object, found ", doc.type_name());
  if (!doc.contains("model") || !doc["model"].is_object())
    fail("[", where, "] expected a \"model\" object, found ",
         doc.contains("model") ? doc["model"].type_name() : "none");

  PipelineTokenizer::Parts parts;
  auto get = [&](const char* key) -> const json& {
    static const json kNull;
    const auto it = doc.find(key);
    return it == doc.end() ? kNull : *it;
  };
  parts.normalizer = make_normalizer(get("normalizer"), where);
  parts.pre_tokenizer = make_pre_tokenizer(get("pre_tokenizer"), where);
  if (!reader.vocab && doc["model"].contains("vocab") && !doc["model"]["vocab"].is_object() &&
      doc["model"].value("type", "") != "Unigram")
    fail("[", where, "] expected model.vocab to be an object {token: id}, found ",
         doc["model"]["vocab"].type_name());
  parts.model = make_model(doc["model"], reader.vocab ? std::move(*reader.vocab) : Vocab(),
                           reader.merge_ids, where);
  reader.merge_ids = {};
  parts.post_processor = make_post_processor(get("post_processor"), where);
  parts.decoder = make_decoder(get("decoder"), where);

  if (const json& added = get("added_tokens"); !added.is_null()) {
    if (!added.is_array())
      fail("[", where, "] expected \"added_tokens\" to be an array, found ", added.type_name());
    for (const auto& entry : added) {
      if (!entry.is_object() || !entry.contains("id") || !entry["id"].is_number_integer() ||
          entry["id"].get<int64_t>() < 0 || entry["id"].get<int64_t>() > INT32_MAX ||
          !entry.contains("content") || !entry["content"].is_string())
        fail("[", where, "] expected added_tokens entries {\"id\": …, \"content\": …}, found ",
             entry.dump().substr(0, 120));
      AddedToken token;
      token.id = entry["id"].get<TokenId>();
      token.content = entry["content"].get<std::string>();
      token.special = json_bool(entry, "special", where, "added token", false);
      token.lstrip = json_bool(entry, "lstrip", where, "added token", false);
      token.rstrip = json_bool(entry, "rstrip", where, "added token", false);
      token.single_word = json_bool(entry, "single_word", where, "added token", false);
      token.normalized = json_bool(entry, "normalized", where, "added token", !token.special);
      if (token.id < 0) fail("[", where, "] expected added token ids >= 0, found ", token.id);
      parts.added.add(std::move(token));
    }
  }

  const Model* model = parts.model.get();
  const AddedVocabulary* added = &parts.added;
  const auto roles = apply_config(config, parts, [&](const std::string& content) {
    if (const auto id = added->find(content)) return std::optional<TokenId>(*id);
    return model->token_to_id(content);
  });
  if (uses_bos_eos_flags(config.tokenizer_class) &&
      (config.add_bos_token.has_value() || config.add_eos_token.has_value())) {
    // LlamaTokenizerFast.update_post_processor: the flags decide, not tokenizer.json's template.
    const bool add_bos = config.add_bos_token.value_or(true);
    const bool add_eos = config.add_eos_token.value_or(false);
    if ((add_bos && !roles.bos) || (add_eos && !roles.eos))
      fail("[", (dir / "tokenizer_config.json").string(), "] expected the ",
           add_bos && !roles.bos ? "bos_token" : "eos_token",
           " that add_bos_token/add_eos_token ask for, found none in the vocabulary");
    parts.post_processor = make_bos_eos_processor(
        add_bos ? std::optional<TokenId>(static_cast<TokenId>(*roles.bos)) : std::nullopt,
        add_eos ? std::optional<TokenId>(static_cast<TokenId>(*roles.eos)) : std::nullopt);
  }
  parts.description = "tokenizer.json: " + parts.model->describe() + ", " + describe_pipeline(doc);
  return std::make_unique<PipelineTokenizer>(std::move(parts), roles);
}

}  // namespace reft::tok
