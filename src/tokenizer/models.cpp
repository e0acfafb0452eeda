// The vocabulary table and the BPE, WordPiece and WordLevel models.

#include "tokenizer/models.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "reft/error.h"
#include "tokenizer/unicode.h"

namespace reft::tok {
namespace {

size_t hash_token(std::string_view token) { return std::hash<std::string_view>{}(token); }

uint64_t mix(uint64_t x) {  // splitmix64 finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

size_t table_capacity(size_t n) {
  size_t capacity = 16;
  while (capacity < 2 * n) capacity <<= 1;
  return capacity;
}

}  // namespace

// ---- Vocab ----

Vocab::Vocab(std::vector<std::pair<std::string, int64_t>> entries, std::string_view where) {
  int64_t max_id = -1;
  for (const auto& [token, id] : entries) {
    if (id < 0 || id > INT32_MAX)
      fail("[", where, "] expected vocabulary ids in [0, 2^31), found ", id, " for token '", token,
           "'");
    max_id = std::max(max_id, id);
  }
  // Ids come from the file: a table as long as the largest id must stay near the entry count (a
  // few holes are normal, an id of 2^30 for a 50k vocabulary is a malformed file).
  const int64_t max_table = static_cast<int64_t>(entries.size()) + (int64_t{1} << 20);
  if (max_id >= max_table) {
    const auto far = std::find_if(entries.begin(), entries.end(),
                                  [&](const auto& e) { return e.second == max_id; });
    fail("[", where, "] expected vocabulary ids below ", max_table, " (", entries.size(),
         " entries + 2^20), found ", max_id, " for token '", far->first, "'");
  }
  tokens_.resize(static_cast<size_t>(max_id + 1));
  present_.assign(tokens_.size(), 0);
  for (auto& [token, id] : entries) {
    if (present_[id])
      fail("[", where, "] expected one token per vocabulary id, found id ", id, " for both '",
           tokens_[id], "' and '", token, "'");
    tokens_[id] = std::move(token);
    present_[id] = 1;
  }
  count_ = entries.size();
  build_index(where);
}

Vocab::Vocab(std::vector<std::string> tokens, std::string_view where) : tokens_(std::move(tokens)) {
  present_.assign(tokens_.size(), 1);
  count_ = tokens_.size();
  build_index(where);
}

void Vocab::build_index(std::string_view where) {
  slots_.assign(table_capacity(count_), -1);
  const size_t mask = slots_.size() - 1;
  for (TokenId id = 0; id < static_cast<TokenId>(tokens_.size()); ++id) {
    if (!present_[id]) continue;
    for (size_t slot = hash_token(tokens_[id]) & mask;; slot = (slot + 1) & mask) {
      if (slots_[slot] < 0) {
        slots_[slot] = id;
        break;
      }
      if (tokens_[slots_[slot]] == tokens_[id])
        fail("[", where, "] expected each vocabulary token once, found '", tokens_[id],
             "' with ids ", slots_[slot], " and ", id);
    }
  }
}

std::optional<TokenId> Vocab::find(std::string_view token) const {
  if (slots_.empty()) return std::nullopt;
  const size_t mask = slots_.size() - 1;
  for (size_t slot = hash_token(token) & mask;; slot = (slot + 1) & mask) {
    const TokenId id = slots_[slot];
    if (id < 0) return std::nullopt;
    if (tokens_[id] == token) return id;
  }
}

// ---- BPE ----

std::string resolve_merge(const Vocab& vocab, std::string_view left, std::string_view right,
                          size_t rank, MergePair& out) {
  const auto left_id = vocab.find(left);
  const auto right_id = vocab.find(right);
  if (left_id && right_id) {
    out = {*left_id, *right_id};
    return {};
  }
  return str("merge #", rank, " '", left, " ", right, "' to join vocabulary tokens, found '",
             !left_id ? left : right, "' missing from the vocabulary");
}

std::vector<MergePair> resolve_merges(const Vocab& vocab, const std::vector<MergeRule>& rules,
                                      std::string_view where) {
  std::vector<MergePair> out(rules.size());
  for (size_t rank = 0; rank < rules.size(); ++rank) {
    const std::string error =
        resolve_merge(vocab, rules[rank].left, rules[rank].right, rank, out[rank]);
    if (!error.empty()) fail("[", where, "] expected ", error);
  }
  return out;
}

BpeModel::BpeModel(Vocab vocab, const std::vector<MergePair>& merges, BpeOptions options,
                   std::string_view where)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  // HF only complains about a missing unknown token when it is needed; we then skip the character.
  if (options_.unk_token) unk_id_ = vocab_.find(*options_.unk_token);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    byte_ids_[b] = vocab_.find(name).value_or(-1);
  }
  size_t capacity = 16;
  while (capacity * 7 < merges.size() * 10) capacity <<= 1;  // load factor <= 0.7
  merge_slots_.assign(capacity, MergeSlot{kEmptySlot, {0, 0}});
  const size_t mask = capacity - 1;
  const std::string& prefix = options_.continuing_subword_prefix;
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto [left_id, right_id] = merges[rank];
    const std::string* left = vocab_.token(left_id);
    const std::string* right = vocab_.token(right_id);
    if (!left || !right)
      fail("[", where, "] expected merge #", rank, " to join vocabulary ids, found ",
           !left ? left_id : right_id);
    // With a continuing-subword prefix ("##"), the right part loses it when joined.
    joined = *left;
    if (!prefix.empty() && right->compare(0, prefix.size(), prefix) == 0)
      joined.append(*right, prefix.size());
    else
      joined += *right;
    const auto new_id = vocab_.find(joined);
    if (!new_id)
      fail("[", where, "] expected the result '", joined, "' of merge #", rank, " '", *left, " ",
           *right, "' in the vocabulary, found it missing");
    const uint64_t key = (static_cast<uint64_t>(left_id) << 32) | static_cast<uint32_t>(right_id);
    size_t slot = mix(key) & mask;
    while (merge_slots_[slot].key != kEmptySlot && merge_slots_[slot].key != key)
      slot = (slot + 1) & mask;
    if (merge_slots_[slot].key == kEmptySlot) ++merge_count_;
    // A repeated merge keeps its last rank, as HF's HashMap collection does.
    merge_slots_[slot] = {key, {static_cast<int32_t>(rank), *new_id}};
  }
}

const BpeModel::MergeValue* BpeModel::find_merge(TokenId left, TokenId right) const {
  const uint64_t key = (static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right);
  const size_t mask = merge_slots_.size() - 1;
  for (size_t slot = mix(key) & mask;; slot = (slot + 1) & mask) {
    if (merge_slots_[slot].key == key) return &merge_slots_[slot].value;
    if (merge_slots_[slot].key == kEmptySlot) return nullptr;
  }
}

std::string BpeModel::describe() const {
  return str("BPE (", vocab_.count(), " tokens, ", merge_count_, " merges",
             options_.byte_fallback ? ", byte fallback" : "", ")");
}

void BpeModel::tokenize(std::string_view word, std::vector<TokenId>& out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (const auto id = vocab_.find(word)) {
      out.push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (const auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t before = out.size();
  merge_word(word, out);
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity)
      cache_.emplace(std::string(word), std::vector<TokenId>(out.begin() + before, out.end()));
  }
}

// HF `BPE::merge_word`: one symbol per character (prefix/suffix attached, byte fallback or unk
// for characters outside the vocabulary), then merges applied lowest rank first, leftmost first
// among equal ranks, with a heap over a linked list of symbols.
void BpeModel::merge_word(std::string_view word, std::vector<TokenId>& out) const {
  std::vector<TokenId> symbols;
  symbols.reserve(word.size());
  bool pending_unk = false;
  std::string scratch;
  size_t i = 0;
  while (i < word.size()) {
    const size_t start = i;
    i += utf8_sequence_length(static_cast<unsigned char>(word[i]));
    i = std::min(i, word.size());
    std::string_view piece = word.substr(start, i - start);
    const bool add_prefix = start > 0 && !options_.continuing_subword_prefix.empty();
    const bool add_suffix = i == word.size() && !options_.end_of_word_suffix.empty();
    if (add_prefix || add_suffix) {
      scratch.clear();
      if (add_prefix) scratch += options_.continuing_subword_prefix;
      scratch += piece;
      if (add_suffix) scratch += options_.end_of_word_suffix;
      piece = scratch;
    }
    if (const auto id = vocab_.find(piece)) {
      if (pending_unk) symbols.push_back(*unk_id_);
      pending_unk = false;
      symbols.push_back(*id);
      continue;
    }
    if (options_.byte_fallback && std::all_of(piece.begin(), piece.end(), [&](char c) {
          return byte_ids_[static_cast<unsigned char>(c)] >= 0;
        })) {
      if (pending_unk) symbols.push_back(*unk_id_);
      pending_unk = false;
      for (char c : piece) symbols.push_back(byte_ids_[static_cast<unsigned char>(c)]);
      continue;
    }
    if (!unk_id_) continue;  // no unknown token: HF drops the character
    if (pending_unk && !options_.fuse_unk) symbols.push_back(*unk_id_);
    pending_unk = true;
  }
  if (pending_unk) symbols.push_back(*unk_id_);

  const int n = static_cast<int>(symbols.size());
  if (n > 1) {
    struct Candidate {
      int32_t rank;
      int32_t pos;
      TokenId new_id;
      bool operator>(const Candidate& o) const {
        return rank != o.rank ? rank > o.rank : pos > o.pos;
      }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
    std::vector<int32_t> next(n), prev(n);
    std::vector<uint8_t> alive(n, 1);
    for (int k = 0; k < n; ++k) {
      next[k] = k + 1 < n ? k + 1 : -1;
      prev[k] = k - 1;
    }
    auto push = [&](int pos) {
      if (pos < 0 || next[pos] < 0) return;
      if (const MergeValue* m = find_merge(symbols[pos], symbols[next[pos]]))
        heap.push({m->rank, pos, m->new_id});
    };
    for (int k = 0; k + 1 < n; ++k) push(k);
    while (!heap.empty()) {
      const Candidate top = heap.top();
      heap.pop();
      if (!alive[top.pos] || next[top.pos] < 0) continue;
      const int right = next[top.pos];
      const MergeValue* m = find_merge(symbols[top.pos], symbols[right]);
      if (!m || m->new_id != top.new_id || m->rank != top.rank) continue;  // stale entry
      symbols[top.pos] = top.new_id;
      alive[right] = 0;
      next[top.pos] = next[right];
      if (next[right] >= 0) prev[next[right]] = top.pos;
      push(prev[top.pos]);
      push(top.pos);
    }
    for (int k = 0; k >= 0; k = next[k]) out.push_back(symbols[k]);
  } else {
    out.insert(out.end(), symbols.begin(), symbols.end());
  }
}

// ---- WordPiece ----

WordPieceModel::WordPieceModel(Vocab vocab, WordPieceOptions options, std::string_view where)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  const auto unk = vocab_.find(options_.unk_token);
  if (!unk)
    fail("[", where, "] expected the WordPiece unk_token '", options_.unk_token,
         "' in the vocabulary, found it missing");
  unk_id_ = *unk;
}

std::string WordPieceModel::describe() const {
  return str("WordPiece (", vocab_.count(), " tokens)");
}

// HF `WordPiece::tokenize`: greedy longest-match-first; one unknown piece makes the whole word
// the unknown token.
void WordPieceModel::tokenize(std::string_view word, std::vector<TokenId>& out) const {
  if (word.empty()) return;
  if (count_code_points(word) > options_.max_input_chars_per_word) {
    out.push_back(unk_id_);
    return;
  }
  const size_t before = out.size();
  std::string candidate;
  size_t start = 0;
  while (start < word.size()) {
    size_t end = word.size();
    std::optional<TokenId> found;
    while (start < end) {
      candidate.clear();
      if (start > 0) candidate += options_.continuing_subword_prefix;
      candidate += word.substr(start, end - start);
      if ((found = vocab_.find(candidate))) break;
      do --end;  // back to the previous character boundary
      while (end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80);
    }
    if (!found) {
      out.resize(before);
      out.push_back(unk_id_);
      return;
    }
    out.push_back(*found);
    start = end;
  }
}

// ---- WordLevel ----

namespace {

class WordLevelModel : public Model {
 public:
  WordLevelModel(Vocab vocab, std::string unk_token)
      : vocab_(std::move(vocab)), unk_token_(std::move(unk_token)) {
    unk_id_ = vocab_.find(unk_token_);
  }
  void tokenize(std::string_view word, std::vector<TokenId>& out) const override {
    if (const auto id = vocab_.find(word)) {
      out.push_back(*id);
    } else {
      if (!unk_id_)
        fail("[WordLevel] expected '", word, "' or the unk_token '", unk_token_,
             "' in the vocabulary, found neither");
      out.push_back(*unk_id_);
    }
  }
  std::optional<TokenId> token_to_id(std::string_view token) const override {
    return vocab_.find(token);
  }
  const std::string* id_to_token(TokenId id) const override { return vocab_.token(id); }
  TokenId size() const override { return vocab_.size(); }
  std::optional<TokenId> unk_id() const override { return unk_id_; }
  std::string describe() const override { return str("WordLevel (", vocab_.count(), " tokens)"); }

 private:
  Vocab vocab_;
  std::string unk_token_;
  std::optional<TokenId> unk_id_;
};

std::optional<std::string> optional_string(const nlohmann::json& spec, const char* key,
                                           std::string_view where, std::string_view context) {
  if (!spec.contains(key) || spec[key].is_null()) return std::nullopt;
  return json_string(spec, key, where, context);
}

}  // namespace

std::unique_ptr<Model> make_model(const nlohmann::json& spec, Vocab vocab,
                                  const std::vector<MergePair>& merges, std::string_view where) {
  if (!spec.is_object())
    fail("[", where, "] expected \"model\" to be an object, found ", spec.dump().substr(0, 120));
  std::string type;
  if (spec.contains("type")) {
    type = json_type(spec, where, "model");
  } else if (spec.contains("merges")) {  // files from before the "type" tag
    type = "BPE";
  } else if (spec.contains("max_input_chars_per_word")) {
    type = "WordPiece";
  } else {
    fail("[", where, "] expected model.type, found a model without \"type\"");
  }
  const std::string context = "model " + type;
  if (type == "Unigram")
    fail("[", where, "] expected a BPE, WordPiece or WordLevel model, found Unigram (unsupported; ",
         "a folder with tokenizer.model can use the SentencePiece backend)");
  if (!spec.contains("vocab"))
    fail("[", where, "] expected ", context, " to have a \"vocab\" object, found none");
  if (type == "BPE") {
    BpeOptions options;
    if (spec.contains("dropout") && !spec["dropout"].is_null() &&
        !(spec["dropout"].is_number() && spec["dropout"].get<double>() == 0.0))
      fail("[", where, "] expected model.dropout null (deterministic BPE), found ",
           spec["dropout"].dump());
    options.unk_token = optional_string(spec, "unk_token", where, context);
    options.continuing_subword_prefix =
        optional_string(spec, "continuing_subword_prefix", where, context).value_or("");
    options.end_of_word_suffix =
        optional_string(spec, "end_of_word_suffix", where, context).value_or("");
    options.fuse_unk = json_bool(spec, "fuse_unk", where, context, false);
    options.byte_fallback = json_bool(spec, "byte_fallback", where, context, false);
    options.ignore_merges = json_bool(spec, "ignore_merges", where, context, false);
    return std::make_unique<BpeModel>(std::move(vocab), merges, std::move(options), where);
  }
  if (type == "WordPiece") {
    WordPieceOptions options;
    options.unk_token = json_string(spec, "unk_token", where, context, std::string("[UNK]"));
    options.continuing_subword_prefix =
        json_string(spec, "continuing_subword_prefix", where, context, std::string("##"));
    if (spec.contains("max_input_chars_per_word") && spec["max_input_chars_per_word"].is_number())
      options.max_input_chars_per_word = spec["max_input_chars_per_word"].get<size_t>();
    return std::make_unique<WordPieceModel>(std::move(vocab), std::move(options), where);
  }
  if (type == "WordLevel")
    return std::make_unique<WordLevelModel>(
        std::move(vocab), json_string(spec, "unk_token", where, context, std::string("<unk>")));
  fail("[", where, "] expected model.type BPE, WordPiece or WordLevel, found \"", type, "\"");
}

}  // namespace reft::tok
