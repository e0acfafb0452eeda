// tokenizer_config.json, special_tokens_map.json and added_tokens.json.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <functional>

#include "reft/error.h"
#include "tokenizer/loading.h"
#include "util/files.h"

namespace reft::tok {

std::string read_file_bytes(const std::filesystem::path& path) { return read_file(path); }

MappedFile::MappedFile(const std::filesystem::path& path) {
  const int fd = open_regular_file(path);
  size_ = regular_file_size(fd);
  if (size_ > 0) {
    data_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data_ == MAP_FAILED) {
      data_ = nullptr;
      ::close(fd);
      fail("[", path.string(), "] expected a readable file, found mmap failing");
    }
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

nlohmann::json parse_json(const std::string& text, const std::filesystem::path& path) {
  return parse_json_bounded(text, path.string());
}

namespace {

std::optional<bool> optional_bool(const nlohmann::json& doc, const char* key,
                                  const std::filesystem::path& path) {
  const auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean())
    fail("[", path.string(), "] expected \"", key, "\" to be true/false, found ", it->dump());
  return it->get<bool>();
}

// A special-token value: "<s>", {"content": "<s>", …} or null.
std::optional<std::string> token_content(const nlohmann::json& value, std::string_view key,
                                         const std::filesystem::path& path) {
  if (value.is_null()) return std::nullopt;
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  fail("[", path.string(), "] expected \"", key, "\" to be a token string or {\"content\": …}, ",
       "found ", value.dump());
}

constexpr const char* kRoles[] = {"bos_token", "eos_token", "unk_token", "pad_token",
                                  "sep_token", "cls_token", "mask_token"};

void read_special_tokens(const nlohmann::json& doc, const std::filesystem::path& path,
                         TokenizerConfig& config) {
  for (const char* role : kRoles) {
    if (!doc.contains(role)) continue;
    if (auto content = token_content(doc[role], role, path))
      config.role_tokens[role] = *content;
    else
      config.role_tokens.erase(role);
  }
  if (doc.contains("additional_special_tokens") && doc["additional_special_tokens"].is_array()) {
    config.additional_special_tokens.clear();
    for (const auto& v : doc["additional_special_tokens"])
      if (auto content = token_content(v, "additional_special_tokens", path))
        config.additional_special_tokens.push_back(*content);
  }
}

}  // namespace

TokenizerConfig read_tokenizer_config(const std::filesystem::path& dir) {
  TokenizerConfig config;
  const auto config_path = dir / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    const auto doc = parse_json(read_file_bytes(config_path), config_path);
    if (!doc.is_object())
      fail("[", config_path.string(), "] expected a JSON object, found ", doc.type_name());
    config.files_read.push_back("tokenizer_config.json");
    config.add_bos_token = optional_bool(doc, "add_bos_token", config_path);
    config.add_eos_token = optional_bool(doc, "add_eos_token", config_path);
    config.clean_up_tokenization_spaces =
        optional_bool(doc, "clean_up_tokenization_spaces", config_path);
    config.do_lower_case = optional_bool(doc, "do_lower_case", config_path);
    config.strip_accents = optional_bool(doc, "strip_accents", config_path);
    config.tokenize_chinese_chars = optional_bool(doc, "tokenize_chinese_chars", config_path);
    config.add_prefix_space = optional_bool(doc, "add_prefix_space", config_path);
    config.legacy = optional_bool(doc, "legacy", config_path);
    if (doc.contains("tokenizer_class") && doc["tokenizer_class"].is_string())
      config.tokenizer_class = doc["tokenizer_class"].get<std::string>();
    read_special_tokens(doc, config_path, config);
    if (doc.contains("added_tokens_decoder")) {
      const auto& decoder = doc["added_tokens_decoder"];
      if (!decoder.is_object())
        fail("[", config_path.string(),
             "] expected \"added_tokens_decoder\" to be an object, found ", decoder.type_name());
      for (const auto& [key, value] : decoder.items()) {
        AddedToken token;
        try {
          size_t used = 0;
          token.id = std::stoi(key, &used);
          if (used != key.size() || token.id < 0) throw std::invalid_argument(key);
        } catch (const std::exception&) {
          fail("[", config_path.string(),
               "] expected added_tokens_decoder keys to be ids, found \"", key, "\"");
        }
        if (!value.is_object() || !value.contains("content") || !value["content"].is_string())
          fail("[", config_path.string(), "] expected added_tokens_decoder[\"", key,
               "\"] to have a string \"content\", found ", value.dump());
        token.content = value["content"].get<std::string>();
        token.special = optional_bool(value, "special", config_path).value_or(false);
        token.lstrip = optional_bool(value, "lstrip", config_path).value_or(false);
        token.rstrip = optional_bool(value, "rstrip", config_path).value_or(false);
        token.single_word = optional_bool(value, "single_word", config_path).value_or(false);
        token.normalized = optional_bool(value, "normalized", config_path).value_or(!token.special);
        config.added_tokens.push_back(std::move(token));
      }
    }
  }
  const auto map_path = dir / "special_tokens_map.json";
  if (std::filesystem::exists(map_path)) {
    const auto doc = parse_json(read_file_bytes(map_path), map_path);
    if (!doc.is_object())
      fail("[", map_path.string(), "] expected a JSON object, found ", doc.type_name());
    config.files_read.push_back("special_tokens_map.json");
    read_special_tokens(doc, map_path, config);
  }
  const auto added_path = dir / "added_tokens.json";
  if (std::filesystem::exists(added_path)) {
    const auto doc = parse_json(read_file_bytes(added_path), added_path);
    if (!doc.is_object())
      fail("[", added_path.string(), "] expected an object {token: id}, found ", doc.type_name());
    config.files_read.push_back("added_tokens.json");
    for (const auto& [content, id] : doc.items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
        fail("[", added_path.string(), "] expected an id for \"", content, "\", found ", id.dump());
      AddedToken token;
      token.content = content;
      token.id = id.get<TokenId>();
      config.added_tokens.push_back(std::move(token));
    }
  }
  return config;
}

bool uses_bos_eos_flags(const std::string& tokenizer_class) {
  for (const char* name : {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer",
                           "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast"})
    if (tokenizer_class == name) return true;
  return false;
}

PipelineTokenizer::Roles apply_config(
    const TokenizerConfig& config, PipelineTokenizer::Parts& parts,
    const std::function<std::optional<TokenId>(const std::string&)>& resolve) {
  // Tokens of added_tokens_decoder that the tokenizer file does not list yet.
  for (const auto& token : config.added_tokens) {
    if (const AddedToken* known = parts.added.find(token.id)) {
      (void)known;
      continue;
    }
    if (const auto id = resolve(token.content); id && *id != token.id) continue;
    parts.added.add(token);
  }
  // transformers registers every named special token as a special added token (never split).
  auto make_special = [&](const std::string& content) -> std::optional<TokenId> {
    std::optional<TokenId> id = parts.added.find(content);
    if (!id) id = resolve(content);
    if (!id) return std::nullopt;
    if (!parts.added.find(*id)) {
      AddedToken token;
      token.content = content;
      token.id = *id;
      token.special = true;
      parts.added.add(std::move(token));
    } else {
      parts.extra_special.insert(*id);
    }
    return id;
  };
  PipelineTokenizer::Roles roles;
  for (const auto& [role, content] : config.role_tokens) {
    const auto id = make_special(content);
    if (role == "bos_token") roles.bos = id;
    if (role == "eos_token") roles.eos = id;
    if (role == "unk_token") roles.unk = id;
    if (role == "pad_token") roles.pad = id;
  }
  for (const auto& content : config.additional_special_tokens) make_special(content);
  if (!roles.unk) {
    if (const auto unk = parts.model->unk_id()) roles.unk = *unk;
  }
  parts.clean_up_tokenization_spaces =
      config.honor_clean_up && config.clean_up_tokenization_spaces.value_or(true);
  return roles;
}

}  // namespace reft::tok
