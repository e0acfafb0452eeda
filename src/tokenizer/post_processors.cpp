// Post-processors of tokenizer.json: TemplateProcessing, ByteLevel, RobertaProcessing,
// BertProcessing, Sequence. Offsets are not tracked, so ByteLevel's trim_offsets is a no-op.

#include "reft/error.h"
#include "tokenizer/components.h"

namespace reft::tok {
namespace {

void append(Segment& to, const std::vector<int64_t>& ids, int64_t type_id) {
  to.ids.insert(to.ids.end(), ids.begin(), ids.end());
  to.type_ids.insert(to.type_ids.end(), ids.size(), type_id);
}

class TemplateProcessor : public PostProcessor {
 public:
  struct Item {
    bool is_sequence;
    int sequence;                  // 0 = $A, 1 = $B
    std::vector<int64_t> special;  // ids of a special-token item
    int64_t type_id;
  };
  TemplateProcessor(std::vector<Item> single, std::vector<Item> pair)
      : single_(std::move(single)), pair_(std::move(pair)) {}

  void process(std::vector<Segment>& segments, bool add_special_tokens) const override {
    const auto& items = segments.size() == 1 ? single_ : pair_;
    Segment out;
    for (const auto& item : items) {
      if (item.is_sequence) {
        if (item.sequence < static_cast<int>(segments.size()))
          append(out, segments[item.sequence].ids, item.type_id);
      } else if (add_special_tokens) {
        append(out, item.special, item.type_id);
      }
    }
    segments = {std::move(out)};
  }

 private:
  std::vector<Item> single_, pair_;
};

class NoOpProcessor : public PostProcessor {
 public:
  void process(std::vector<Segment>&, bool) const override {}
};

class RobertaProcessor : public PostProcessor {
 public:
  RobertaProcessor(int64_t cls, int64_t sep) : cls_(cls), sep_(sep) {}
  void process(std::vector<Segment>& segments, bool add_special_tokens) const override {
    // RoBERTa uses type id 0 everywhere, also for the second sequence.
    for (auto& s : segments) s.type_ids.assign(s.ids.size(), 0);
    if (!add_special_tokens) return;
    for (size_t i = 0; i < segments.size(); ++i) {
      auto& ids = segments[i].ids;
      ids.insert(ids.begin(), i == 0 ? cls_ : sep_);
      ids.push_back(sep_);
      segments[i].type_ids.assign(ids.size(), 0);
    }
  }

 private:
  int64_t cls_, sep_;
};

class BertProcessor : public PostProcessor {
 public:
  BertProcessor(int64_t cls, int64_t sep) : cls_(cls), sep_(sep) {}
  void process(std::vector<Segment>& segments, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    auto& first = segments[0];
    first.ids.insert(first.ids.begin(), cls_);
    first.type_ids.insert(first.type_ids.begin(), 0);
    first.ids.push_back(sep_);
    first.type_ids.push_back(0);
    if (segments.size() > 1) {
      segments[1].ids.push_back(sep_);
      segments[1].type_ids.push_back(1);
    }
  }

 private:
  int64_t cls_, sep_;
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> steps)
      : steps_(std::move(steps)) {}
  void process(std::vector<Segment>& segments, bool add_special_tokens) const override {
    for (const auto& step : steps_) step->process(segments, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

// ["</s>", 2] → 2.
int64_t token_pair_id(const nlohmann::json& spec, const char* key, std::string_view where,
                      std::string_view context) {
  const auto it = spec.find(key);
  if (it == spec.end() || !it->is_array() || it->size() != 2 || !(*it)[0].is_string() ||
      !(*it)[1].is_number_integer())
    fail("[", where, "] expected ", context, " \"", key, "\" as [token, id], found ",
         it == spec.end() ? "none" : it->dump());
  return (*it)[1].get<int64_t>();
}

std::vector<TemplateProcessor::Item> parse_template(const nlohmann::json& spec, const char* key,
                                                    const nlohmann::json& special_tokens,
                                                    std::string_view where) {
  const auto it = spec.find(key);
  if (it == spec.end() || !it->is_array())
    fail("[", where, "] expected post_processor TemplateProcessing \"", key,
         "\" as a list of items, found ", it == spec.end() ? "none" : it->dump().substr(0, 120));
  std::vector<TemplateProcessor::Item> items;
  for (const auto& entry : *it) {
    const bool is_sequence = entry.contains("Sequence");
    if (!entry.is_object() || entry.size() != 1 ||
        (!is_sequence && !entry.contains("SpecialToken")))
      fail("[", where, "] expected a TemplateProcessing item {\"Sequence\": …} or ",
           "{\"SpecialToken\": …}, found ", entry.dump());
    const auto& body = entry.begin().value();
    const std::string id = json_string(body, "id", where, "TemplateProcessing item");
    TemplateProcessor::Item item{is_sequence, 0, {}, 0};
    if (body.contains("type_id") && body["type_id"].is_number_integer())
      item.type_id = body["type_id"].get<int64_t>();
    if (is_sequence) {
      if (id != "A" && id != "B")
        fail("[", where, "] expected TemplateProcessing sequence id A or B, found \"", id, "\"");
      item.sequence = id == "A" ? 0 : 1;
    } else {
      const auto token = special_tokens.find(id);
      if (token == special_tokens.end() || !token->contains("ids") || !(*token)["ids"].is_array())
        fail("[", where, "] expected TemplateProcessing special_tokens to define \"", id,
             "\" with its ids, found none");
      for (const auto& v : (*token)["ids"]) {
        if (!v.is_number_integer())
          fail("[", where, "] expected integer ids for special token \"", id, "\", found ",
               v.dump());
        item.special.push_back(v.get<int64_t>());
      }
    }
    items.push_back(std::move(item));
  }
  return items;
}

}  // namespace

std::unique_ptr<PostProcessor> make_bos_eos_processor(std::optional<TokenId> bos,
                                                      std::optional<TokenId> eos) {
  using Item = TemplateProcessor::Item;
  std::vector<Item> single, pair;
  for (int seq = 0; seq < 2; ++seq) {
    std::vector<Item> part;
    if (bos) part.push_back({false, 0, {*bos}, seq});
    part.push_back({true, seq, {}, seq});
    if (eos) part.push_back({false, 0, {*eos}, seq});
    if (seq == 0) single = part;
    pair.insert(pair.end(), part.begin(), part.end());
  }
  return std::make_unique<TemplateProcessor>(std::move(single), std::move(pair));
}

std::unique_ptr<PostProcessor> make_bert_processor(TokenId cls, TokenId sep) {
  return std::make_unique<BertProcessor>(cls, sep);
}

std::unique_ptr<PostProcessor> make_roberta_processor(TokenId cls, TokenId sep) {
  return std::make_unique<RobertaProcessor>(cls, sep);
}

std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& spec,
                                                   std::string_view where) {
  if (spec.is_null()) return nullptr;
  const std::string type = json_type(spec, where, "post_processor");
  const std::string context = "post_processor " + type;
  if (type == "TemplateProcessing") {
    static const nlohmann::json kEmpty = nlohmann::json::object();
    const auto it = spec.find("special_tokens");
    const auto& special = it != spec.end() && it->is_object() ? *it : kEmpty;
    return std::make_unique<TemplateProcessor>(parse_template(spec, "single", special, where),
                                               parse_template(spec, "pair", special, where));
  }
  if (type == "ByteLevel") return std::make_unique<NoOpProcessor>();
  if (type == "RobertaProcessing")
    return std::make_unique<RobertaProcessor>(token_pair_id(spec, "cls", where, context),
                                              token_pair_id(spec, "sep", where, context));
  if (type == "BertProcessing")
    return std::make_unique<BertProcessor>(token_pair_id(spec, "cls", where, context),
                                           token_pair_id(spec, "sep", where, context));
  if (type == "Sequence") {
    const auto it = spec.find("processors");
    if (it == spec.end() || !it->is_array())
      fail("[", where, "] expected post_processor Sequence to have a \"processors\" array, found ",
           spec.dump().substr(0, 120));
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (const auto& step : *it)
      if (auto p = make_post_processor(step, where)) steps.push_back(std::move(p));
    return std::make_unique<SequenceProcessor>(std::move(steps));
  }
  fail("[", where, "] expected a known post_processor type (TemplateProcessing, ByteLevel, ",
       "RobertaProcessing, BertProcessing, Sequence), found \"", type, "\"");
}

}  // namespace reft::tok
