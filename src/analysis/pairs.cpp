// Counterfactual pairs: reading, tokenizing, resolving positions and batching base/source inputs.
//
// Dimension legend: B pairs in a batch, T tokens (longest base or source), n positions per pair.

#include <algorithm>
#include <cctype>
#include <numeric>
#include <random>

#include "reft/error.h"
#include "reft/interchange.h"
#include "reft/positions.h"
#include "reft/tokenizer.h"

namespace reft {
namespace {

// A text field of a record; empty text is an error (it would tokenize to at most a BOS).
std::string text_field(const Record& r, const std::string& key) {
  auto it = r.fields.find(key);
  if (it == r.fields.end() || it->is_null())
    fail("[", r.where, "] expected field '", key, "' (text), found none");
  if (!it->is_string())
    fail("[", r.where, "] field '", key, "': expected a string, found ", it->type_name());
  auto text = it->get<std::string>();
  if (text.empty()) fail("[", r.where, "] field '", key, "': expected text, found an empty string");
  return text;
}

// A position field as spec text: an int, or a string spec (validated by PositionSpec::parse).
std::string position_field(const Record& r, const std::string& key, const std::string& fallback) {
  auto it = r.fields.find(key);
  if (it == r.fields.end() || it->is_null()) return fallback;
  if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
  if (!it->is_string())
    fail("[", r.where, "] field '", key,
         "': expected an integer or a position spec like \"l1\", found ", it->dump());
  return it->get<std::string>();
}

std::vector<int64_t> resolve(const std::string& spec, int64_t n, const std::string& where,
                             const std::string& what) {
  try {
    auto positions = PositionSpec::parse(spec).resolve(n);
    if (positions.empty())
      fail("[", where, "] ", what, " '", spec, "' selects no token of a sequence of ", n,
           " tokens");
    return positions;
  } catch (const UsageError& e) {
    // The spec parser names the flag ("[--position] …"); here the field and file:line say where.
    std::string why = e.what();
    if (why.starts_with("[") && why.find("] ") != std::string::npos)
      why.erase(0, why.find("] ") + 2);
    fail("[", where, "] ", what, ": ", why);
  }
}

}  // namespace

PairDataset make_pair_dataset(const std::vector<Record>& records, const Tokenizer& tokenizer,
                              const PairDataOptions& options) {
  PairDataset out;
  for (const auto& r : records) {
    CounterfactualPair p;
    p.where = r.where;
    const std::string base = text_field(r, options.base_field);
    const std::string source = text_field(r, options.source_field);
    p.base_ids = tokenizer.encode(base, true);
    p.source_ids = tokenizer.encode(source, true);
    const auto n = static_cast<int64_t>(p.base_ids.size()),
               m = static_cast<int64_t>(p.source_ids.size());
    p.base_positions =
        resolve(position_field(r, options.base_position_field, options.default_position), n,
                r.where, options.base_position_field);
    p.source_positions =
        resolve(position_field(r, options.source_position_field, options.default_position), m,
                r.where, options.source_position_field);
    if (p.base_positions.size() != p.source_positions.size())
      fail("[", r.where, "] expected as many source positions as base positions, found ",
           p.source_positions.size(), " and ", p.base_positions.size());

    const nlohmann::json* label = nullptr;
    std::string label_key;
    for (const auto& key : options.label_fields)
      if (auto it = r.fields.find(key); it != r.fields.end() && !it->is_null()) {
        label = &*it;
        label_key = key;
        break;
      }
    if (!label) {
      if (options.require_label)
        fail("[", r.where, "] expected field '", options.label_fields.at(0),
             "' (the expected next token as text or id), found none");
    } else if (label->is_number_integer()) {
      p.label_id = label->get<int64_t>();
      if (p.label_id < 0 || p.label_id >= tokenizer.vocab_size())
        fail("[", r.where, "] field '", label_key, "': token id ", p.label_id,
             " is outside the vocabulary [0, ", tokenizer.vocab_size(), ")");
      p.label = std::to_string(p.label_id);
    } else if (label->is_string() && !label->get<std::string>().empty()) {
      p.label = label->get<std::string>();
      // The label is what follows the base text, so it is tokenized in context: a SentencePiece
      // "▁Ben" or a byte-level "ĠBen" only arises from " Ben" after the base.
      const auto joined = tokenizer.encode(base + p.label, true);
      if (joined.size() <= p.base_ids.size() ||
          !std::equal(p.base_ids.begin(), p.base_ids.end(), joined.begin()))
        fail("[", r.where, "] field '", label_key, "': the label '", p.label,
             "' does not start a new token after the base text (it merges with the base's last "
             "token); start it with a space or give a token id");
      p.label_id = joined[p.base_ids.size()];
      const unsigned char first = p.label[0];
      if (std::isalnum(first) && !base.empty() &&
          !std::isspace(static_cast<unsigned char>(base.back())))
        out.warnings.push_back(
            r.where + ": the label '" + p.label +
            "' has no leading space, so it continues the base's last word; write ' " + p.label +
            "' for a new word");
    } else {
      fail("[", r.where, "] field '", label_key, "': expected label text or a token id, found ",
           label->dump());
    }
    out.pairs.push_back(std::move(p));
  }
  return out;
}

ReftBatch make_pair_batch(const std::vector<CounterfactualPair>& pairs,
                          std::span<const size_t> indices, int64_t pad_id,
                          size_t num_interventions) {
  if (indices.empty()) fail("[pair batch] expected at least one pair, found none");
  const auto B = static_cast<int64_t>(indices.size());
  int64_t T = 0, Ts = 0, n = 0;
  for (size_t i : indices) {
    const auto& p = pairs.at(i);
    if (p.base_ids.empty() || p.source_ids.empty())
      fail("[", p.where, "] expected a non-empty base and source, found ", p.base_ids.size(),
           " and ", p.source_ids.size(), " tokens");
    if (p.base_positions.size() != p.source_positions.size())
      fail("[", p.where, "] expected as many source positions as base positions, found ",
           p.source_positions.size(), " and ", p.base_positions.size());
    const auto check = [&](const std::vector<int64_t>& pos, size_t len, const char* side) {
      for (int64_t q : pos)
        if (q < 0 || q >= static_cast<int64_t>(len))
          fail("[", p.where, "] ", side, " position ", q, " is outside its ", len, " tokens");
    };
    check(p.base_positions, p.base_ids.size(), "base");
    check(p.source_positions, p.source_ids.size(), "source");
    T = std::max<int64_t>(T, p.base_ids.size());
    Ts = std::max<int64_t>(Ts, p.source_ids.size());
    n = std::max<int64_t>(n, p.base_positions.size());
  }
  // Left padding: every base ends at column T − 1, where the next-token logits are read.
  const auto pack = [&](int64_t width, bool source, torch::Tensor& ids, torch::Tensor& mask) {
    ids = torch::full({B, width}, pad_id, torch::kInt64);
    mask = torch::zeros({B, width}, torch::kInt64);
    for (int64_t b = 0; b < B; ++b) {
      const auto& p = pairs[indices[b]];
      const auto& row = source ? p.source_ids : p.base_ids;
      const auto len = static_cast<int64_t>(row.size());
      ids[b].narrow(0, width - len, len).copy_(torch::tensor(row, torch::kInt64));
      mask[b].narrow(0, width - len, len).fill_(1);
    }
  };
  ReftBatch batch;
  pack(T, false, batch.input_ids, batch.attention_mask);
  pack(Ts, true, batch.source_input_ids, batch.source_attention_mask);
  // Locations are relative to each row's first real token (ReftModel adds the padding offset).
  auto base_loc = torch::full({B, n}, -1, torch::kInt64);
  auto source_loc = torch::full({B, n}, -1, torch::kInt64);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = pairs[indices[b]];
    for (size_t j = 0; j < p.base_positions.size(); ++j) {
      base_loc[b][j] = p.base_positions[j];
      source_loc[b][j] = p.source_positions[j];
    }
  }
  for (size_t i = 0; i < num_interventions; ++i) {
    batch.locations.push_back(base_loc);
    batch.source_locations.push_back(source_loc);
  }
  for (int64_t b = 0; b < B; ++b) batch.prompt_lengths.push_back(pairs[indices[b]].base_ids.size());
  return batch;
}

PairSplit split_pairs(size_t n, double eval_fraction, uint64_t seed) {
  if (!(eval_fraction >= 0 && eval_fraction < 1))
    usage_fail("[eval_fraction] expected a value in [0, 1), found ", eval_fraction);
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  auto held = static_cast<size_t>(std::llround(eval_fraction * static_cast<double>(n)));
  if (eval_fraction > 0 && n > 1) held = std::clamp<size_t>(held, 1, n - 1);
  PairSplit split;
  split.eval.assign(order.begin(), order.begin() + held);
  split.train.assign(order.begin() + held, order.end());
  std::sort(split.eval.begin(), split.eval.end());
  std::sort(split.train.begin(), split.train.end());
  return split;
}

}  // namespace reft
