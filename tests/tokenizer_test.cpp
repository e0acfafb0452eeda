// Golden tests of the tokenizers: every golden/tokenizers/<name>.jsonl against the folder
// tokenizers/<name>/, through the tokenizer.json backend (transformers.js fields) and the automatic
// backend (SentencePiece fields where the golden has them).

#include "reft/tokenizer.h"

#include <chrono>

#include "reft/error.h"
#include "test_util.h"

namespace {

using nlohmann::json;
using reft::Tokenizer;
using reft::TokenizerBackend;

std::string show(const std::vector<int64_t>& ids) {
  std::string out = "[";
  for (size_t k = 0; k < ids.size(); ++k) {
    if (k) out += ',';
    out += std::to_string(ids[k]);
  }
  return out + "]";
}

// Reports the first differing position, not just "not equal".
void expect_ids(const std::string& what, const std::vector<int64_t>& got,
                const std::vector<int64_t>& want) {
  if (got == want) return;
  size_t k = 0;
  while (k < got.size() && k < want.size() && got[k] == want[k]) ++k;
  ADD_FAILURE() << what << ": " << got.size() << " ids vs " << want.size()
                << " expected, first difference at " << k << "\n  got  " << show(got) << "\n  want "
                << show(want);
}

struct GoldenSet {
  std::string name;
  std::filesystem::path folder;
  std::vector<json> rows;
};

std::vector<GoldenSet> golden_sets() {
  std::vector<GoldenSet> sets;
  const auto shared = reft::test::shared_dir();
  for (const auto& file : reft::test::files_with_suffix(shared / "golden/tokenizers", ".jsonl")) {
    GoldenSet set;
    set.name = file.stem().string();
    set.folder = shared / "tokenizers" / set.name;
    set.rows = reft::test::read_jsonl(file);
    sets.push_back(std::move(set));
  }
  return sets;
}

std::vector<int64_t> ids_of(const json& v) { return v.get<std::vector<int64_t>>(); }

// The decode fields of a golden row, which both backends must reproduce.
void check_decoding(const Tokenizer& tok, const json& row, const std::string& where) {
  const auto ids = ids_of(row["ids"]);
  const auto with_special = ids_of(row["ids_with_special"]);
  EXPECT_EQ(tok.decode(ids), row["decoded"].get<std::string>()) << where << " decoded";
  EXPECT_EQ(tok.decode(with_special), row["decoded_with_special"].get<std::string>())
      << where << " decoded_with_special";
  EXPECT_EQ(tok.decode(with_special, true), row["decoded_skip_special"].get<std::string>())
      << where << " decoded_skip_special";
  EXPECT_EQ(tok.tokens(ids), row["tokens"].get<std::vector<std::string>>()) << where << " tokens";
}

TEST(TokenizerGolden, JsonBackendMatchesTransformersJs) {
  REFT_REQUIRE_SHARED("golden/tokenizers");
  const auto sets = golden_sets();
  ASSERT_FALSE(sets.empty()) << "no golden/tokenizers/*.jsonl found";
  for (const auto& set : sets) {
    SCOPED_TRACE(set.name);
    const auto start = std::chrono::steady_clock::now();
    const auto tok = Tokenizer::load(set.folder, {.backend = TokenizerBackend::kJson});
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("  %-18s loaded in %.3f s: %s\n", set.name.c_str(), seconds,
                tok->description().c_str());
    for (size_t r = 0; r < set.rows.size(); ++r) {
      const auto& row = set.rows[r];
      const std::string where = set.name + " row " + std::to_string(r) + " " + row["text"].dump();
      expect_ids(where + " ids", tok->encode(row["text"].get<std::string>(), false),
                 ids_of(row["ids"]));
      expect_ids(where + " ids_with_special", tok->encode(row["text"].get<std::string>(), true),
                 ids_of(row["ids_with_special"]));
      check_decoding(*tok, row, where);
    }
  }
}

TEST(TokenizerGolden, AutoBackendMatchesSentencePieceWherePresent) {
  REFT_REQUIRE_SHARED("golden/tokenizers");
  for (const auto& set : golden_sets()) {
    SCOPED_TRACE(set.name);
    const auto tok = Tokenizer::load(set.folder);
    for (size_t r = 0; r < set.rows.size(); ++r) {
      const auto& row = set.rows[r];
      const std::string text = row["text"].get<std::string>();
      const std::string where = set.name + " row " + std::to_string(r) + " " + row["text"].dump();
      if (row.contains("sentencepiece_ids")) {
        const auto sp_ids = ids_of(row["sentencepiece_ids"]);
        expect_ids(where + " sentencepiece_ids", tok->encode(text, false), sp_ids);
        EXPECT_EQ(tok->decode(sp_ids), row["sentencepiece_decoded"].get<std::string>())
            << where << " sentencepiece_decoded";
        // With special tokens: what the fast tokenizer adds around the text, around SP's ids.
        const auto json_ids = ids_of(row["ids"]);
        auto want = ids_of(row["ids_with_special"]);
        const size_t prefix = want.size() - json_ids.size();
        want.erase(want.begin() + static_cast<std::ptrdiff_t>(prefix), want.end());
        want.insert(want.end(), sp_ids.begin(), sp_ids.end());
        expect_ids(where + " sentencepiece ids with special", tok->encode(text, true), want);
      } else {
        expect_ids(where + " ids", tok->encode(text, false), ids_of(row["ids"]));
        expect_ids(where + " ids_with_special", tok->encode(text, true),
                   ids_of(row["ids_with_special"]));
      }
      check_decoding(*tok, row, where);
    }
  }
}

// Text with special-token strings between spaces: HF splits the added tokens off first and
// normalizes every other section alone, so the " " between "</s>" and "<s>" is stripped, then
// prepended with "▁": ["▁He", "ll", "o", "</s>", "▁", "<s>", "▁w", "or", "ld"]. Both backends.
TEST(TokenizerGolden, SpacesBetweenSpecialTokensKeepTheirPiece) {
  REFT_REQUIRE_SHARED("tokenizers/stories260K");
  for (const auto backend : {TokenizerBackend::kJson, TokenizerBackend::kAuto}) {
    SCOPED_TRACE(backend == TokenizerBackend::kJson ? "tokenizer.json" : "auto");
    const auto tok = Tokenizer::load(shared_path, {.backend = backend});
    expect_ids("two specials", tok->encode("Hello </s> <s> world", false),
               {346, 306, 414, 2, 410, 1, 263, 304, 341});
    expect_ids("two spaces", tok->encode("Hello </s>  <s> world", true),
               {1, 346, 306, 414, 2, 410, 1, 263, 304, 341});
    expect_ids("leading", tok->encode(" <s> world", false), {410, 1, 263, 304, 341});
    expect_ids("one special", tok->encode("Hello </s> world", false),
               {346, 306, 414, 2, 263, 304, 341});
    // Without an added token the text is one section: SentencePiece drops a lone " ".
    if (backend == TokenizerBackend::kAuto) expect_ids("lone space", tok->encode(" ", false), {});
  }
}

}  // namespace
