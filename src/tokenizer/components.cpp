#include "tokenizer/components.h"

#include "reft/error.h"

namespace reft::tok {

std::string json_type(const nlohmann::json& spec, std::string_view where, std::string_view kind) {
  if (!spec.is_object())
    fail("[", where, "] expected ", kind, " to be an object, found ", spec.dump());
  const auto it = spec.find("type");
  if (it == spec.end() || !it->is_string())
    fail("[", where, "] expected ", kind, " to have a string \"type\", found ",
         spec.dump().substr(0, 120));
  return it->get<std::string>();
}

std::string json_string(const nlohmann::json& spec, const char* key, std::string_view where,
                        std::string_view context, std::optional<std::string> fallback) {
  const auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) {
    if (fallback) return *fallback;
    fail("[", where, "] expected ", context, " to have a string \"", key, "\", found none");
  }
  if (!it->is_string())
    fail("[", where, "] expected ", context, " field \"", key, "\" to be a string, found ",
         it->dump());
  return it->get<std::string>();
}

bool json_bool(const nlohmann::json& spec, const char* key, std::string_view where,
               std::string_view context, bool fallback) {
  const auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return fallback;
  if (!it->is_boolean())
    fail("[", where, "] expected ", context, " field \"", key, "\" to be true/false, found ",
         it->dump());
  return it->get<bool>();
}

Pattern::Pattern(const nlohmann::json& spec, std::string_view where, std::string_view context) {
  if (spec.is_object() && spec.size() == 1 && spec.begin().value().is_string()) {
    const std::string kind = spec.begin().key();
    const std::string value = spec.begin().value().get<std::string>();
    if (kind == "String") {
      literal_ = value;
      return;
    }
    if (kind == "Regex") {
      regex_.emplace(value, std::string(where) + " " + std::string(context));
      return;
    }
  }
  fail("[", where, "] expected ", context, " pattern {\"String\": …} or {\"Regex\": …}, found ",
       spec.dump());
}

MatchRanges Pattern::find_all(std::string_view text) const {
  return regex_ ? regex_->find_all(text) : find_literal(text, literal_);
}

std::string Pattern::replace_all(std::string_view text, std::string_view replacement) const {
  return replace_ranges(text, find_all(text), replacement);
}

namespace {

void replace_every(std::string& text, std::string_view from, std::string_view to) {
  if (text.find(from) == std::string::npos) return;
  std::string out;
  size_t prev = 0;
  for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, prev)) {
    out.append(text, prev, pos - prev);
    out.append(to);
    prev = pos + from.size();
  }
  out.append(text, prev);
  text = std::move(out);
}

}  // namespace

std::string clean_up_tokenization(std::string text) {
  // The order matters and follows transformers' `clean_up_tokenization`.
  static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) replace_every(text, from, to);
  return text;
}

}  // namespace reft::tok
