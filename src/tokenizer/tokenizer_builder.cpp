// A byte-level BPE trainer: count the GPT-2 pre-tokens of the corpus, then repeatedly merge the
// most frequent adjacent pair, updating the pair counts of only the words that contain it.

#include "reft/tokenizer_builder.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "reft/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace reft {
namespace {

using nlohmann::json;

constexpr const char* kSpecials[] = {"<unk>", "<s>", "</s>", "<pad>"};
constexpr int kFirstByteId = 4;

// Same pattern as the ByteLevel pre-tokenizer (GPT-2).
constexpr std::string_view kPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Trained {
  std::vector<std::string> tokens;  // byte-level strings, index = id - kFirstByteId
  std::vector<std::pair<int32_t, int32_t>> merges;
};

Trained train(std::string_view corpus, int target_tokens, int min_frequency) {
  Trained out;
  const auto& alphabet = tok::byte_level_alphabet();
  for (int b = 0; b < 256; ++b) out.tokens.push_back(alphabet[b]);

  // Word counts over the pre-tokens (invalid UTF-8 is decoded lossily first).
  std::string text = tok::utf8_lossy(corpus);
  std::unordered_map<std::string, int64_t> counts;
  const tok::Regex regex(kPattern, "byte-level BPE trainer");
  for (const auto& [begin, end] : regex.find_all(text)) ++counts[text.substr(begin, end - begin)];
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> weights;
  std::vector<std::string> keys;
  for (auto& [word, count] : counts) keys.push_back(word);
  std::sort(keys.begin(), keys.end());  // deterministic order
  for (const auto& word : keys) {
    std::vector<int32_t> symbols;
    for (char c : word) symbols.push_back(static_cast<unsigned char>(c));
    words.push_back(std::move(symbols));
    weights.push_back(counts[word]);
  }

  std::unordered_map<uint64_t, int64_t> pair_counts;
  std::unordered_map<uint64_t, std::unordered_set<int32_t>> where;
  for (int32_t w = 0; w < static_cast<int32_t>(words.size()); ++w)
    for (size_t k = 0; k + 1 < words[w].size(); ++k) {
      const uint64_t key = pair_key(words[w][k], words[w][k + 1]);
      pair_counts[key] += weights[w];
      where[key].insert(w);
    }
  // Max-heap on (count, smaller pair first); stale entries are skipped when popped.
  using Entry = std::pair<int64_t, uint64_t>;
  auto worse = [](const Entry& a, const Entry& b) {
    return a.first != b.first ? a.first < b.first : a.second > b.second;
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(worse)> heap(worse);
  for (const auto& [key, count] : pair_counts) heap.push({count, key});

  std::unordered_map<std::string, int32_t> ids;
  for (int32_t i = 0; i < static_cast<int32_t>(out.tokens.size()); ++i) ids[out.tokens[i]] = i;
  while (static_cast<int>(out.tokens.size()) < target_tokens && !heap.empty()) {
    const auto [count, key] = heap.top();
    heap.pop();
    const auto it = pair_counts.find(key);
    if (it == pair_counts.end() || it->second != count) continue;  // stale
    if (count < min_frequency) break;
    const auto a = static_cast<int32_t>(key >> 32), b = static_cast<int32_t>(key & 0xFFFFFFFF);
    const std::string joined = out.tokens[a] + out.tokens[b];
    int32_t merged;
    if (const auto known = ids.find(joined); known != ids.end()) {
      merged = known->second;  // another merge already spelled this token: reuse it, as HF does
    } else {
      merged = static_cast<int32_t>(out.tokens.size());
      out.tokens.push_back(joined);
      ids.emplace(joined, merged);
    }
    out.merges.emplace_back(a, b);

    std::unordered_map<uint64_t, int64_t> delta;
    const auto affected = where[key];
    for (const int32_t w : affected) {
      auto& symbols = words[w];
      const int64_t weight = weights[w];
      for (size_t k = 0; k + 1 < symbols.size(); ++k)
        delta[pair_key(symbols[k], symbols[k + 1])] -= weight;
      std::vector<int32_t> rewritten;
      rewritten.reserve(symbols.size());
      for (size_t k = 0; k < symbols.size(); ++k) {
        if (k + 1 < symbols.size() && symbols[k] == a && symbols[k + 1] == b) {
          rewritten.push_back(merged);
          ++k;
        } else {
          rewritten.push_back(symbols[k]);
        }
      }
      symbols = std::move(rewritten);
      for (size_t k = 0; k + 1 < symbols.size(); ++k) {
        const uint64_t pk = pair_key(symbols[k], symbols[k + 1]);
        delta[pk] += weight;
        where[pk].insert(w);
      }
    }
    for (const auto& [pk, d] : delta) {
      if (d == 0) continue;
      int64_t& c = pair_counts[pk];
      c += d;
      if (c > 0) heap.push({c, pk});
    }
  }
  return out;
}

json added_token(int64_t id, const std::string& content) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

std::string unused_name(int64_t k) { return "<|unused_" + std::to_string(k) + "|>"; }

void check_vocab_size(int vocab_size) {
  if (vocab_size < kBuiltMinVocabSize)
    usage_fail("[tokenizer builder] expected vocab_size >= ", kBuiltMinVocabSize,
               " (4 specials + 256 bytes), found ", vocab_size);
}

}  // namespace

std::string build_byte_level_bpe_json(std::string_view corpus, int vocab_size,
                                      const ByteLevelBpeOptions& options) {
  check_vocab_size(vocab_size);
  const Trained trained = train(corpus, vocab_size - kFirstByteId, options.min_frequency);

  json added = json::array();
  for (int64_t id = 0; id < kFirstByteId; ++id) added.push_back(added_token(id, kSpecials[id]));
  const int64_t first_unused = kFirstByteId + static_cast<int64_t>(trained.tokens.size());
  for (int64_t id = first_unused; id < vocab_size; ++id)
    added.push_back(added_token(id, unused_name(id - first_unused)));

  json vocab = json::object();
  for (size_t i = 0; i < trained.tokens.size(); ++i)
    vocab[trained.tokens[i]] = static_cast<int64_t>(i) + kFirstByteId;
  json merges = json::array();
  for (const auto& [a, b] : trained.merges)
    merges.push_back({trained.tokens[a], trained.tokens[b]});

  const json bos_item = {{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}};
  const json doc = {{"version", "1.0"},
                    {"truncation", nullptr},
                    {"padding", nullptr},
                    {"added_tokens", added},
                    {"normalizer", nullptr},
                    {"pre_tokenizer",
                     {{"type", "ByteLevel"},
                      {"add_prefix_space", false},
                      {"trim_offsets", true},
                      {"use_regex", true}}},
                    {"post_processor",
                     {{"type", "TemplateProcessing"},
                      {"single", {bos_item, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                      {"pair",
                       {bos_item,
                        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                        {{"SpecialToken", {{"id", "<s>"}, {"type_id", 1}}}},
                        {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
                      {"special_tokens",
                       {{"<s>", {{"id", "<s>"}, {"ids", {kBuiltBosId}}, {"tokens", {"<s>"}}}}}}}},
                    {"decoder",
                     {{"type", "ByteLevel"},
                      {"add_prefix_space", false},
                      {"trim_offsets", true},
                      {"use_regex", true}}},
                    {"model",
                     {{"type", "BPE"},
                      {"dropout", nullptr},
                      {"unk_token", nullptr},
                      {"continuing_subword_prefix", nullptr},
                      {"end_of_word_suffix", nullptr},
                      {"fuse_unk", false},
                      {"byte_fallback", false},
                      {"ignore_merges", false},
                      {"vocab", vocab},
                      {"merges", merges}}}};
  return doc.dump(1);
}

std::string build_byte_level_bpe_config_json(int vocab_size) {
  check_vocab_size(vocab_size);
  json decoder = json::object();
  for (int64_t id = 0; id < kFirstByteId; ++id) {
    json entry = added_token(id, kSpecials[id]);
    entry.erase("id");
    decoder[std::to_string(id)] = entry;
  }
  const json doc = {{"add_bos_token", true},
                    {"add_eos_token", false},
                    {"added_tokens_decoder", decoder},
                    {"bos_token", "<s>"},
                    {"eos_token", "</s>"},
                    {"unk_token", "<unk>"},
                    {"pad_token", "<pad>"},
                    {"clean_up_tokenization_spaces", false},
                    {"model_max_length", 1 << 20},
                    {"tokenizer_class", "PreTrainedTokenizerFast"}};
  return doc.dump(2);
}

void write_byte_level_bpe_tokenizer(const std::filesystem::path& dir, std::string_view corpus,
                                    int vocab_size, const ByteLevelBpeOptions& options) {
  const std::string tokenizer = build_byte_level_bpe_json(corpus, vocab_size, options);
  const std::string config = build_byte_level_bpe_config_json(vocab_size);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("[", dir.string(), "] expected a writable folder, found ", ec.message());
  for (const auto& [name, content] :
       {std::pair{"tokenizer.json", &tokenizer}, std::pair{"tokenizer_config.json", &config}}) {
    const auto path = dir / name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << *content << '\n';
    out.close();
    if (!out) fail("[", path.string(), "] expected to write the file, found a write error");
  }
}

}  // namespace reft
