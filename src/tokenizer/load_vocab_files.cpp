// Folders without tokenizer.json or tokenizer.model: GPT-2 / RoBERTa `vocab.json` + `merges.txt`
// (byte-level BPE) and BERT `vocab.txt` (WordPiece behind BERT's basic tokenizer), assembled the
// way transformers' converters build the equivalent tokenizer.json.

#include <algorithm>

#include "reft/error.h"
#include "tokenizer/loading.h"
#include "tokenizer/models.h"

namespace reft::tok {
namespace {

std::string role_or(const TokenizerConfig& config, const char* role, const char* fallback) {
  const auto it = config.role_tokens.find(role);
  return it != config.role_tokens.end() ? it->second : fallback;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

std::unique_ptr<Tokenizer> load_byte_level_bpe(const std::filesystem::path& dir,
                                               const TokenizerConfig& config) {
  const auto vocab_path = dir / "vocab.json";
  const auto merges_path = dir / "merges.txt";
  const auto doc = parse_json(read_file_bytes(vocab_path), vocab_path);
  if (!doc.is_object())
    fail("[", vocab_path.string(), "] expected an object {token: id}, found ", doc.type_name());
  std::vector<std::pair<std::string, int64_t>> vocab;
  vocab.reserve(doc.size());
  for (const auto& [token, id] : doc.items()) {
    if (!id.is_number_integer())
      fail("[", vocab_path.string(), "] expected an integer id for \"", token, "\", found ",
           id.dump());
    vocab.emplace_back(token, id.get<int64_t>());
  }

  std::vector<MergeRule> merges;
  const std::string text = read_file_bytes(merges_path);
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    const size_t space = line.find(' ');
    if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos)
      fail("[", merges_path.string(), "] expected line ", line_no,
           " to be \"left right\", found \"", line, "\"");
    merges.push_back({std::string(line.substr(0, space)), std::string(line.substr(space + 1))});
  }

  PipelineTokenizer::Parts parts;
  const std::string where = vocab_path.string() + " + merges.txt";
  Vocab table(std::move(vocab), where);
  const auto merge_ids = resolve_merges(table, merges, merges_path.string());
  parts.model = std::make_unique<BpeModel>(std::move(table), merge_ids, BpeOptions{}, where);
  parts.pre_tokenizer =
      make_byte_level_pre_tokenizer(config.add_prefix_space.value_or(false), true);
  parts.decoder = make_byte_level_decoder();
  const Model* model = parts.model.get();
  const AddedVocabulary* added = &parts.added;
  const auto roles = apply_config(config, parts, [&](const std::string& content) {
    if (const auto id = added->find(content)) return std::optional<TokenId>(*id);
    return model->token_to_id(content);
  });
  const bool roberta_like = contains(config.tokenizer_class, "Roberta") ||
                            contains(config.tokenizer_class, "Bart") ||
                            contains(config.tokenizer_class, "Longformer");
  if (roberta_like) {
    const std::string cls_token = role_or(config, "cls_token", "<s>");
    const std::string sep_token = role_or(config, "sep_token", "</s>");
    const auto cls = parts.model->token_to_id(cls_token);
    const auto sep = parts.model->token_to_id(sep_token);
    if (!cls || !sep)
      fail("[", vocab_path.string(), "] expected RoBERTa's cls_token and sep_token in the ",
           "vocabulary, found no '", !cls ? cls_token : sep_token, "'");
    parts.post_processor = make_roberta_processor(*cls, *sep);
  } else if (config.add_bos_token.value_or(false) || config.add_eos_token.value_or(false)) {
    auto as_id = [](std::optional<int64_t> id) {
      return id ? std::optional<TokenId>(static_cast<TokenId>(*id)) : std::nullopt;
    };
    parts.post_processor = make_bos_eos_processor(
        config.add_bos_token.value_or(false) ? as_id(roles.bos) : std::nullopt,
        config.add_eos_token.value_or(false) ? as_id(roles.eos) : std::nullopt);
  }
  parts.description = "vocab.json + merges.txt: byte-level " + parts.model->describe();
  return std::make_unique<PipelineTokenizer>(std::move(parts), roles);
}

std::unique_ptr<Tokenizer> load_wordpiece(const std::filesystem::path& dir,
                                          const TokenizerConfig& config) {
  const auto vocab_path = dir / "vocab.txt";
  const std::string text = read_file_bytes(vocab_path);
  std::vector<std::string> tokens;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string token = text.substr(pos, end - pos);
    if (!token.empty() && token.back() == '\r') token.pop_back();
    tokens.push_back(std::move(token));
    pos = end + 1;
  }
  PipelineTokenizer::Parts parts;
  WordPieceOptions options;
  options.unk_token = role_or(config, "unk_token", "[UNK]");
  parts.model = std::make_unique<WordPieceModel>(Vocab(std::move(tokens), vocab_path.string()),
                                                 options, vocab_path.string());
  const bool lowercase = config.do_lower_case.value_or(true);
  parts.normalizer = make_bert_normalizer(true, config.tokenize_chinese_chars.value_or(true),
                                          config.strip_accents, lowercase);
  parts.pre_tokenizer = make_bert_pre_tokenizer();
  parts.decoder = make_wordpiece_decoder("##", true);
  const std::string cls_token = role_or(config, "cls_token", "[CLS]");
  const std::string sep_token = role_or(config, "sep_token", "[SEP]");
  const auto cls = parts.model->token_to_id(cls_token);
  const auto sep = parts.model->token_to_id(sep_token);
  if (!cls || !sep)
    fail("[", vocab_path.string(), "] expected BERT's cls_token and sep_token in the vocabulary, ",
         "found no '", !cls ? cls_token : sep_token, "'");
  parts.post_processor = make_bert_processor(*cls, *sep);
  TokenizerConfig with_defaults = config;
  for (const auto& [role, name] : {std::pair{"unk_token", "[UNK]"},
                                   {"sep_token", "[SEP]"},
                                   {"pad_token", "[PAD]"},
                                   {"cls_token", "[CLS]"},
                                   {"mask_token", "[MASK]"}})
    if (!with_defaults.role_tokens.count(role)) with_defaults.role_tokens[role] = name;
  const Model* model = parts.model.get();
  const AddedVocabulary* added = &parts.added;
  const auto roles = apply_config(with_defaults, parts, [&](const std::string& content) {
    if (const auto id = added->find(content)) return std::optional<TokenId>(*id);
    return model->token_to_id(content);
  });
  parts.description = "vocab.txt: " + parts.model->describe() + ", BERT basic tokenizer" +
                      (lowercase ? " (lowercase)" : "");
  return std::make_unique<PipelineTokenizer>(std::move(parts), roles);
}

}  // namespace

std::unique_ptr<Tokenizer> load_vocab_files(const std::filesystem::path& dir,
                                            const TokenizerConfig& config) {
  if (std::filesystem::exists(dir / "vocab.json") || std::filesystem::exists(dir / "merges.txt"))
    return load_byte_level_bpe(dir, config);
  return load_wordpiece(dir, config);
}

}  // namespace reft::tok
