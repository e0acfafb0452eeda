#include "tokenizer/pipeline_tokenizer.h"

#include "reft/error.h"
#include "tokenizer/unicode.h"

namespace reft::tok {

PipelineTokenizer::PipelineTokenizer(Parts parts, Roles roles) : parts_(std::move(parts)) {
  if (!parts_.model) fail("[tokenizer] expected a vocabulary model, found none");
  parts_.added.build(parts_.normalizer.get());
  vocab_size_ = parts_.model->size();
  // Added ids come from the files: they extend the vocabulary by a bounded number of rows (an
  // embedding table is sized from vocab_size()), never to an id of 2^31.
  const int64_t max_added = int64_t{parts_.model->size()} + (int64_t{1} << 20);
  for (const auto& token : parts_.added.tokens()) {
    if (token.id < 0 || token.id >= max_added)
      fail("[",
           parts_.description.empty() ? "tokenizer"
                                      : parts_.description.substr(0, parts_.description.find(':')),
           "] expected added token ids in [0, ", max_added,
           ") (the vocabulary size + 2^20), found ", token.id, " for '", token.content, "'");
    vocab_size_ = std::max<int64_t>(vocab_size_, token.id + 1);
    if (token.special) special_.insert(token.id);
  }
  special_.insert(parts_.extra_special.begin(), parts_.extra_special.end());
  for (const auto& token : parts_.added.tokens()) added_contents_.insert(token.content);
  if (parts_.decoder) parts_.decoder->bind_added_tokens(&added_contents_);
  bos_id_ = roles.bos;
  eos_id_ = roles.eos;
  pad_id_ = roles.pad;
  unk_id_ = roles.unk;
}

// HF `encode_single_sequence`: split on raw added tokens, normalize every other section, split on
// normalized added tokens, pre-tokenize, run the model on every pre-token.
std::vector<TokenId> PipelineTokenizer::encode_text(std::string_view text) const {
  if (const size_t bad = find_invalid_utf8(text); bad != std::string_view::npos)
    fail("[tokenizer input] expected valid UTF-8 text, found byte 0x", std::hex,
         static_cast<int>(static_cast<unsigned char>(text[bad])), std::dec, " at offset ", bad);
  std::vector<TokenId> out;
  if (text.empty()) return out;
  std::string prepared;
  if (parts_.prepare) {
    prepared = text;
    parts_.prepare->normalize(prepared);
    text = prepared;
  }
  const auto sections = parts_.added.split(text, false);
  for (size_t si = 0; si < sections.size(); ++si) {
    const Section& section = sections[si];
    if (section.id >= 0) {
      out.push_back(section.id);
      continue;
    }
    std::string normalized(text.substr(section.begin, section.end - section.begin));
    if (normalized.empty()) continue;
    if (parts_.space_section_piece && sections.size() > 1 &&
        normalized.find_first_not_of(' ') == std::string::npos) {
      out.push_back(*parts_.space_section_piece);
      continue;
    }
    if (parts_.normalizer) parts_.normalizer->normalize(normalized);
    if (normalized.empty()) continue;
    const auto subsections = parts_.added.split(normalized, true);
    std::vector<Piece> pieces;
    for (size_t sj = 0; sj < subsections.size(); ++sj) {
      const Section& sub = subsections[sj];
      if (sub.id >= 0) {
        out.push_back(sub.id);
        continue;
      }
      pieces.clear();
      pieces.push_back({normalized.substr(sub.begin, sub.end - sub.begin),
                        section.begin == 0 && sub.begin == 0});
      if (parts_.pre_tokenizer) parts_.pre_tokenizer->pre_tokenize(pieces);
      for (const auto& piece : pieces) parts_.model->tokenize(piece.text, out);
    }
  }
  if (parts_.drop_lead_before_special && out.size() > 1 &&
      out[0] == *parts_.drop_lead_before_special && is_special(out[1]))
    out.erase(out.begin());
  return out;
}

Encoding PipelineTokenizer::finish(std::vector<Segment> segments, bool add_special_tokens) const {
  if (parts_.post_processor) parts_.post_processor->process(segments, add_special_tokens);
  Encoding out;
  for (auto& s : segments) {
    out.ids.insert(out.ids.end(), s.ids.begin(), s.ids.end());
    out.type_ids.insert(out.type_ids.end(), s.type_ids.begin(), s.type_ids.end());
  }
  return out;
}

std::vector<int64_t> PipelineTokenizer::encode(std::string_view text,
                                               bool add_special_tokens) const {
  const auto ids = encode_text(text);
  std::vector<Segment> segments(1);
  segments[0].ids.assign(ids.begin(), ids.end());
  segments[0].type_ids.assign(ids.size(), 0);
  return finish(std::move(segments), add_special_tokens).ids;
}

Encoding PipelineTokenizer::encode_pair(std::string_view first, std::string_view second,
                                        bool add_special_tokens) const {
  std::vector<Segment> segments(2);
  for (int k = 0; k < 2; ++k) {
    const auto ids = encode_text(k == 0 ? first : second);
    segments[k].ids.assign(ids.begin(), ids.end());
    segments[k].type_ids.assign(ids.size(), k);  // HF encodes the pair's second text with type 1
  }
  return finish(std::move(segments), add_special_tokens);
}

const std::string& PipelineTokenizer::token_of(int64_t id) const {
  if (id < 0 || id >= vocab_size_)
    fail("[tokenizer] expected token ids in [0, ", vocab_size_, "), found ", id);
  if (const AddedToken* added = parts_.added.find(static_cast<TokenId>(id))) return added->content;
  if (const std::string* token = parts_.model->id_to_token(static_cast<TokenId>(id))) return *token;
  fail("[tokenizer] expected id ", id, " to have a token, found a hole in the vocabulary");
}

std::vector<std::string> PipelineTokenizer::tokens(std::span<const int64_t> ids) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (const int64_t id : ids) out.push_back(token_of(id));
  return out;
}

std::optional<int64_t> PipelineTokenizer::token_to_id(std::string_view token) const {
  if (const auto id = parts_.added.find(token)) return *id;
  if (const auto id = parts_.model->token_to_id(token)) return *id;
  return std::nullopt;
}

std::string PipelineTokenizer::decode(std::span<const int64_t> ids,
                                      bool skip_special_tokens) const {
  std::vector<std::string> pieces;
  pieces.reserve(ids.size());
  for (const int64_t id : ids) {
    const std::string& token = token_of(id);
    if (skip_special_tokens && is_special(id)) continue;
    pieces.push_back(token);
  }
  std::string text;
  if (parts_.decoder) {
    parts_.decoder->decode_chain(pieces);
    for (const auto& p : pieces) text += p;
  } else {
    for (size_t k = 0; k < pieces.size(); ++k) {
      if (k) text.push_back(' ');
      text += pieces[k];
    }
  }
  if (parts_.clean_up_tokenization_spaces) text = clean_up_tokenization(std::move(text));
  return text;
}

}  // namespace reft::tok
