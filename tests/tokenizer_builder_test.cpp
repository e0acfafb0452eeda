// The byte-level BPE builder: its tokenizer.json loads, round-trips text and covers every id.

#include "reft/tokenizer_builder.h"

#include <fstream>

#include "reft/error.h"
#include "reft/tokenizer.h"
#include "test_util.h"

namespace {

using reft::Tokenizer;

const char* kCorpus =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
    "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
    "Lily's mom said, \"Be careful!\" Tom had a big red ball. He liked to play with his ball.\n";

std::string corpus(int repeats) {
  std::string out;
  for (int k = 0; k < repeats; ++k) out += kCorpus;
  return out;
}

std::unique_ptr<Tokenizer> build_and_load(const reft::test::TempDir& dir, const std::string& text,
                                          int vocab_size) {
  reft::write_byte_level_bpe_tokenizer(dir.path(), text, vocab_size);
  return Tokenizer::load(dir.path());
}

TEST(TokenizerBuilder, Vocab512LoadsAndRoundTrips) {
  reft::test::TempDir dir;
  const auto tok = build_and_load(dir, corpus(20), 512);
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id(), reft::kBuiltBosId);
  EXPECT_EQ(tok->eos_id(), reft::kBuiltEosId);
  EXPECT_EQ(tok->pad_id(), reft::kBuiltPadId);
  EXPECT_EQ(tok->unk_id(), reft::kBuiltUnkId);
  EXPECT_EQ(tok->token_to_id("<s>"), 1);
  for (const std::string& text :
       {std::string(kCorpus), std::string("Zed owl purple 42 ünïcödé 🙂"), std::string(""),
        std::string("  \n\t ")}) {
    const auto ids = tok->encode(text);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.front(), reft::kBuiltBosId) << "add_bos_token";
    EXPECT_EQ(tok->decode(ids, true), text);
    EXPECT_EQ(tok->encode(text, false).size() + 1, ids.size());
  }
  // Learned merges make the training text much shorter than its bytes.
  EXPECT_LT(tok->encode(kCorpus, false).size(), std::string(kCorpus).size() / 2);
  // "</s>" written in the text is the EOS id, as pyreft's data pipeline expects.
  const auto with_eos = tok->encode("a story.</s>");
  EXPECT_EQ(with_eos.back(), reft::kBuiltEosId);
}

TEST(TokenizerBuilder, EveryIdDecodesAndSmallCorpusIsPaddedWithUnusedTokens) {
  reft::test::TempDir dir;
  const auto tok = build_and_load(dir, "tiny corpus tiny corpus", 32000);
  ASSERT_EQ(tok->vocab_size(), 32000);
  std::vector<int64_t> all(32000);
  for (int64_t id = 0; id < 32000; ++id) all[id] = id;
  EXPECT_EQ(tok->tokens(all).size(), 32000u);
  EXPECT_NO_THROW(tok->decode(all));
  EXPECT_EQ(tok->tokens(std::vector<int64_t>{31999})[0].rfind("<|unused_", 0), 0u);
  EXPECT_TRUE(tok->is_special(31999));
  EXPECT_THROW(tok->decode(std::vector<int64_t>{32000}), reft::Error);
  // Byte tokens follow the specials in byte order.
  EXPECT_EQ(tok->decode(std::vector<int64_t>{4 + 'A', 4 + 'b'}), "Ab");
}

TEST(TokenizerBuilder, DeterministicAndMatchesItsConfig) {
  const std::string text = corpus(5);
  EXPECT_EQ(reft::build_byte_level_bpe_json(text, 400), reft::build_byte_level_bpe_json(text, 400));
  const auto config = nlohmann::json::parse(reft::build_byte_level_bpe_config_json(400));
  EXPECT_TRUE(config["add_bos_token"].get<bool>());
  EXPECT_EQ(config["bos_token"], "<s>");
  EXPECT_EQ(config["added_tokens_decoder"]["2"]["content"], "</s>");
  const auto doc = nlohmann::json::parse(reft::build_byte_level_bpe_json(text, 400));
  EXPECT_EQ(doc["model"]["vocab"].size() + doc["added_tokens"].size(), 400u);
}

TEST(TokenizerBuilder, RejectsTooSmallVocab) {
  EXPECT_THROW(reft::build_byte_level_bpe_json("abc", 259), reft::UsageError);
  EXPECT_NO_THROW(reft::build_byte_level_bpe_json("abc", 260));
}

}  // namespace
