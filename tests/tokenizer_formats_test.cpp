// The tokenizer.json components on small hand-written tokenizers (BERT WordPiece, added tokens),
// the vocab-file folders (vocab.txt, vocab.json + merges.txt) and the text-pair templates.

#include <fstream>

#include "reft/error.h"
#include "reft/tokenizer.h"
#include "reft/tokenizer_builder.h"
#include "test_util.h"

namespace {

using nlohmann::json;
using reft::Tokenizer;
using reft::TokenizerBackend;
using Ids = std::vector<int64_t>;

void write(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

const std::vector<std::string> kBertVocab = {
    "[PAD]",  "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "un",   "##aff",
    "##able", ",",     "!",     "caf",   "##e",    "中",    "文",    "the", "cafe", "."};

json bert_tokenizer_json() {
  json vocab = json::object();
  for (size_t i = 0; i < kBertVocab.size(); ++i) vocab[kBertVocab[i]] = i;
  json added = json::array();
  for (int id = 0; id < 5; ++id)
    added.push_back({{"id", id},
                     {"content", kBertVocab[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer",
           {{"type", "BertNormalizer"},
            {"clean_text", true},
            {"handle_chinese_chars", true},
            {"strip_accents", nullptr},
            {"lowercase", true}}},
          {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
          {"post_processor",
           {{"type", "BertProcessing"}, {"sep", {"[SEP]", 3}}, {"cls", {"[CLS]", 2}}}},
          {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
          {"model",
           {{"type", "WordPiece"},
            {"unk_token", "[UNK]"},
            {"continuing_subword_prefix", "##"},
            {"max_input_chars_per_word", 100},
            {"vocab", vocab}}}};
}

// The same checks hold for tokenizer.json and for vocab.txt with BERT's basic tokenizer.
void check_bert(const Tokenizer& tok) {
  EXPECT_EQ(tok.encode("Hello, World!"), (Ids{2, 5, 11, 6, 12, 3}));
  EXPECT_EQ(tok.encode("unaffable", false), (Ids{8, 9, 10}));
  EXPECT_EQ(tok.encode("Café", false), (Ids{18})) << "lowercase strips accents";
  EXPECT_EQ(tok.encode("中文", false), (Ids{15, 16})) << "CJK characters are single words";
  EXPECT_EQ(tok.encode("xyz helloz", false), (Ids{1, 1})) << "unknown words are [UNK]";
  EXPECT_EQ(tok.encode("hello [MASK] worlds", false), (Ids{5, 4, 6, 7}));
  const auto pair = tok.encode_pair("hello", "world");
  EXPECT_EQ(pair.ids, (Ids{2, 5, 3, 6, 3}));
  EXPECT_EQ(pair.type_ids, (Ids{0, 0, 0, 1, 1}));
  const auto bare = tok.encode_pair("hello", "world", false);
  EXPECT_EQ(bare.ids, (Ids{5, 6}));
  EXPECT_EQ(bare.type_ids, (Ids{0, 1}));
  EXPECT_EQ(tok.decode(Ids{2, 5, 11, 6, 7, 12, 3}), "[CLS] hello, worlds! [SEP]");
  EXPECT_EQ(tok.decode(Ids{2, 5, 11, 6, 7, 12, 3}, true), "hello, worlds!");
  EXPECT_TRUE(tok.is_special(0));
  EXPECT_FALSE(tok.is_special(5));
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.unk_id(), 1);
}

TEST(TokenizerFormats, BertTokenizerJson) {
  reft::test::TempDir dir;
  write(dir / "tokenizer.json", bert_tokenizer_json().dump());
  write(dir / "tokenizer_config.json", R"({"pad_token": "[PAD]", "unk_token": "[UNK]"})");
  check_bert(*Tokenizer::load(dir.path()));
}

TEST(TokenizerFormats, BertVocabTxt) {
  reft::test::TempDir dir;
  std::string lines;
  for (const auto& token : kBertVocab) lines += token + "\n";
  write(dir / "vocab.txt", lines);
  write(dir / "tokenizer_config.json",
        R"({"do_lower_case": true, "tokenizer_class": "BertTokenizer"})");
  const auto tok = Tokenizer::load(dir.path());
  EXPECT_NE(tok->description().find("vocab.txt"), std::string::npos);
  check_bert(*tok);
}

// A RoBERTa folder (vocab.json + merges.txt) made from a built byte-level BPE: it must encode like
// the built tokenizer.json and add RoBERTa's pair template.
TEST(TokenizerFormats, RobertaVocabJsonAndMerges) {
  const std::string corpus =
      "The quick brown fox jumps over the lazy dog. The dog sleeps. The fox runs quickly.";
  const auto built = json::parse(reft::build_byte_level_bpe_json(corpus + corpus + corpus, 300));
  reft::test::TempDir json_dir, files_dir;
  write(json_dir / "tokenizer.json", built.dump());
  json vocab = built["model"]["vocab"];
  for (const auto& added : built["added_tokens"])
    vocab[added["content"].get<std::string>()] = added["id"];
  write(files_dir / "vocab.json", vocab.dump());
  std::string merges = "#version: 0.2\n";
  for (const auto& m : built["model"]["merges"])
    merges += m[0].get<std::string>() + " " + m[1].get<std::string>() + "\n";
  write(files_dir / "merges.txt", merges);
  write(files_dir / "tokenizer_config.json",
        R"({"tokenizer_class": "RobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
            "cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"})");
  const auto reference = Tokenizer::load(json_dir.path());
  const auto roberta = Tokenizer::load(files_dir.path());
  for (const std::string text : {"The lazy fox.", "  odd   spacing\n", "ünïcödé 🙂"}) {
    EXPECT_EQ(roberta->encode(text, false), reference->encode(text, false)) << text;
    EXPECT_EQ(roberta->decode(roberta->encode(text)), "<s>" + text + "</s>");
  }
  const auto a = roberta->encode("The dog", false), b = roberta->encode("runs", false);
  Ids want = {1};
  want.insert(want.end(), a.begin(), a.end());
  want.insert(want.end(), {2, 2});
  want.insert(want.end(), b.begin(), b.end());
  want.push_back(2);
  const auto pair = roberta->encode_pair("The dog", "runs");
  EXPECT_EQ(pair.ids, want);
  EXPECT_EQ(pair.type_ids, Ids(want.size(), 0)) << "RoBERTa uses type id 0 everywhere";
}

// A WordLevel tokenizer without pre-tokenizer shows exactly which text reaches the model.
TEST(TokenizerFormats, AddedTokenFlags) {
  const json doc = {
      {"added_tokens",
       {{{"id", 4}, {"content", "<mask>"}, {"lstrip", true}, {"special", true}},
        {{"id", 5},
         {"content", "[x]"},
         {"rstrip", true},
         {"special", false},
         {"normalized", false}},
        {{"id", 6}, {"content", "sw"}, {"single_word", true}, {"normalized", false}},
        {{"id", 7}, {"content", "NORM"}, {"normalized", true}}}},
      {"normalizer", {{"type", "Lowercase"}}},
      {"model",
       {{"type", "WordLevel"},
        {"unk_token", "<unk>"},
        {"vocab", {{"<unk>", 0}, {"a", 1}, {"b", 2}, {" ", 3}, {"asw", 8}, {"a ", 9}}}}}};
  reft::test::TempDir dir;
  write(dir / "tokenizer.json", doc.dump());
  const auto tok = Tokenizer::load(dir.path());
  EXPECT_EQ(tok->encode("a <mask>"), (Ids{1, 4})) << "lstrip swallows the space";
  EXPECT_EQ(tok->encode("a [x] b"), (Ids{9, 5, 2})) << "rstrip swallows the space after";
  EXPECT_EQ(tok->encode("asw"), (Ids{8})) << "single_word: no match inside a word";
  EXPECT_EQ(tok->encode(" sw "), (Ids{3, 6, 3}));
  EXPECT_EQ(tok->encode("aNORMb"), (Ids{1, 7, 2})) << "normalized tokens match after Lowercase";
  EXPECT_EQ(tok->encode("anormb"), (Ids{1, 7, 2}));
  EXPECT_TRUE(tok->is_special(4));
  EXPECT_FALSE(tok->is_special(5));
  EXPECT_EQ(tok->decode(Ids{1, 4, 2}, true), "a b") << "no decoder: tokens joined by spaces";
}

// Pairs through Llama's template (`<s> A <s> B`, type ids 0 / 1), for both backends.
TEST(TokenizerFormats, LlamaPairTemplate) {
  REFT_REQUIRE_SHARED("tokenizers/stories260K");
  for (const auto backend : {TokenizerBackend::kJson, TokenizerBackend::kSentencePiece}) {
    const auto tok = Tokenizer::load(shared_path, {.backend = backend});
    const auto a = tok->encode("Hello", false), b = tok->encode("world", false);
    const auto pair = tok->encode_pair("Hello", "world");
    Ids want = {1};
    want.insert(want.end(), a.begin(), a.end());
    want.push_back(1);
    want.insert(want.end(), b.begin(), b.end());
    EXPECT_EQ(pair.ids, want);
    Ids types(a.size() + 1, 0);
    types.insert(types.end(), b.size() + 1, 1);
    EXPECT_EQ(pair.type_ids, types);
    EXPECT_EQ(tok->bos_id(), 1);
    EXPECT_EQ(tok->eos_id(), 2);
    EXPECT_EQ(tok->unk_id(), 0);
    EXPECT_EQ(tok->vocab_size(), 512);
    // pyreft's training text: prompt + response + "</s>"; the EOS is recognised in the text.
    const auto ids = tok->encode("Once upon a time</s>");
    EXPECT_EQ(ids.front(), 1);
    EXPECT_EQ(ids.back(), 2);
  }
}

// The pyreft training examples of the golden train run, token for token (slow tokenizer).
TEST(TokenizerFormats, PyreftTrainRunExamples) {
  REFT_REQUIRE_SHARED("golden/reft/train-run-stories260K.json");
  std::ifstream in(shared_path);
  const json run = json::parse(in);
  const auto tok = Tokenizer::load(reft::test::shared_dir() / "models/stories260K");
  const auto& pairs = run["config"]["pairs"];
  ASSERT_EQ(pairs.size(), run["example_ids"].size());
  for (size_t k = 0; k < pairs.size(); ++k) {
    const std::string prompt = pairs[k][0], completion = pairs[k][1];
    const auto ids = tok->encode(prompt + completion + "</s>");
    EXPECT_EQ(ids, run["example_ids"][k]["input_ids"].get<Ids>()) << prompt;
    // The prompt length (with BOS) decides where the labels start.
    const auto labels = run["example_ids"][k]["labels"].get<Ids>();
    const size_t prompt_len = tok->encode(prompt).size();
    for (size_t t = 0; t < labels.size(); ++t) EXPECT_EQ(labels[t] == -100, t < prompt_len) << t;
  }
}

// transformers' non-legacy LlamaTokenizer: one "▁" for the whole text, none after special tokens.
TEST(TokenizerFormats, SentencePieceLegacyFalse) {
  REFT_REQUIRE_SHARED("tokenizers/stories260K");
  reft::test::TempDir dir;
  std::filesystem::copy_file(shared_path / "tokenizer.model", dir / "tokenizer.model");
  write(dir / "tokenizer_config.json",
        R"({"legacy": false, "add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>",
            "unk_token": "<unk>"})");
  const auto modern = Tokenizer::load(dir.path());
  const auto legacy = Tokenizer::load(shared_path);
  EXPECT_EQ(modern->encode("Hello world"), legacy->encode("Hello world"));
  // Legacy gives the text after a special token its own dummy prefix; legacy=false does not.
  const auto modern_tokens = modern->tokens(modern->encode("a</s>world", false));
  const auto legacy_tokens = legacy->tokens(legacy->encode("a</s>world", false));
  ASSERT_GE(modern_tokens.size(), 3u);
  ASSERT_GE(legacy_tokens.size(), 3u);
  EXPECT_EQ(modern_tokens[1], "</s>");
  EXPECT_EQ(legacy_tokens[1], "</s>");
  EXPECT_EQ(legacy_tokens[2].rfind("\u2581", 0), 0u) << legacy_tokens[2];
  EXPECT_NE(modern_tokens[2].rfind("\u2581", 0), 0u) << modern_tokens[2];
  EXPECT_EQ(modern->decode(modern->encode("Hello world"), true), "Hello world");
  EXPECT_EQ(modern->encode("<s>Hi").front(), 1);
}

}  // namespace
