// The tokenizer.json components one by one, on the examples of the HF `tokenizers` docs.

#include "tokenizer/components.h"

#include "reft/error.h"
#include "test_util.h"
#include "tokenizer/unicode.h"

namespace {

using nlohmann::json;
using reft::tok::Piece;
using Strings = std::vector<std::string>;

Strings pre_tokenize(const json& spec, const std::string& text, bool at_start = true) {
  const auto pre = reft::tok::make_pre_tokenizer(spec, "test");
  std::vector<Piece> pieces = {{text, at_start}};
  pre->pre_tokenize(pieces);
  Strings out;
  for (const auto& p : pieces) out.push_back(p.text);
  return out;
}

std::string normalize(const json& spec, std::string text) {
  reft::tok::make_normalizer(spec, "test")->normalize(text);
  return text;
}

std::string decode(const json& spec, Strings tokens) {
  reft::tok::make_decoder(spec, "test")->decode_chain(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

json split(const char* behavior, bool invert = false) {
  return {{"type", "Split"},
          {"pattern", {{"String", "-"}}},
          {"behavior", behavior},
          {"invert", invert}};
}

TEST(TokenizerComponents, SplitBehaviors) {
  const std::string text = "the-final--countdown";
  EXPECT_EQ(pre_tokenize(split("Removed"), text), (Strings{"the", "final", "countdown"}));
  EXPECT_EQ(pre_tokenize(split("Isolated"), text),
            (Strings{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(pre_tokenize(split("MergedWithPrevious"), text),
            (Strings{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(pre_tokenize(split("MergedWithNext"), text),
            (Strings{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(pre_tokenize(split("Contiguous"), text),
            (Strings{"the", "-", "final", "--", "countdown"}));
  const json words = {{"type", "Split"},
                      {"pattern", {{"Regex", "\\w+"}}},
                      {"behavior", "Removed"},
                      {"invert", true}};
  EXPECT_EQ(pre_tokenize(words, "Hello, world!"), (Strings{"Hello", "world"}));
}

TEST(TokenizerComponents, PreTokenizers) {
  EXPECT_EQ(pre_tokenize({{"type", "Whitespace"}}, "Hey friend!  how"),
            (Strings{"Hey", "friend", "!", "how"}));
  EXPECT_EQ(pre_tokenize({{"type", "WhitespaceSplit"}}, "Hey friend!\t how"),
            (Strings{"Hey", "friend!", "how"}));
  EXPECT_EQ(pre_tokenize({{"type", "BertPreTokenizer"}}, "Hey, friend!"),
            (Strings{"Hey", ",", "friend", "!"}));
  EXPECT_EQ(pre_tokenize({{"type", "Punctuation"}}, "Hey friend!"), (Strings{"Hey friend", "!"}));
  EXPECT_EQ(pre_tokenize({{"type", "Digits"}, {"individual_digits", true}}, "Call 123"),
            (Strings{"Call ", "1", "2", "3"}));
  EXPECT_EQ(pre_tokenize({{"type", "Digits"}, {"individual_digits", false}}, "Call 123 4"),
            (Strings{"Call ", "123", " ", "4"}));
  EXPECT_EQ(pre_tokenize({{"type", "CharDelimiterSplit"}, {"delimiter", "x"}}, "axbxxc"),
            (Strings{"a", "b", "c"}));
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  EXPECT_EQ(pre_tokenize(byte_level, "Hello world's  2024!"),
            (Strings{"\u0120Hello", "\u0120world", "'s", "\u0120", "\u01202024", "!"}));
  const json metaspace = {
      {"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}};
  EXPECT_EQ(pre_tokenize(metaspace, "Hey   friend!"),
            (Strings{"\u2581Hey", "\u2581", "\u2581", "\u2581friend!"}));
  const json first = {{"type", "Metaspace"}, {"prepend_scheme", "first"}, {"split", false}};
  EXPECT_EQ(pre_tokenize(first, "Hey you"), (Strings{"\u2581Hey\u2581you"}));
  EXPECT_EQ(pre_tokenize(first, "Hey you", false), (Strings{"Hey\u2581you"}))
      << "'first' only prepends at the start of the input";
  const json sequence = {{"type", "Sequence"},
                         {"pretokenizers", {{{"type", "WhitespaceSplit"}}, {{"type", "Digits"}}}}};
  EXPECT_EQ(pre_tokenize(sequence, "ab12 c3"), (Strings{"ab", "12", "c", "3"}));
}

TEST(TokenizerComponents, Normalizers) {
  EXPECT_EQ(normalize({{"type", "NFKC"}}, "\uFB01ne \u2460"), "fine 1");
  EXPECT_EQ(normalize({{"type", "NFD"}}, "\u00E9"), "e\u0301");
  EXPECT_EQ(normalize({{"type", "NFC"}}, "e\u0301"), "\u00E9");
  EXPECT_EQ(normalize({{"type", "NFKD"}}, "\u00BD"), "1\u20442");
  EXPECT_EQ(normalize({{"type", "Lowercase"}}, "\u00C0B \u0130 \u03A3"), "\u00E0b i\u0307 \u03C3");
  const json strip_accents = {{"type", "Sequence"},
                              {"normalizers", {{{"type", "NFD"}}, {{"type", "StripAccents"}}}}};
  EXPECT_EQ(normalize(strip_accents, "Caf\u00E9 na\u00EFve"), "Cafe naive");
  EXPECT_EQ(normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}}, " \t x "),
            "x ");
  EXPECT_EQ(normalize({{"type", "Strip"}}, "\u3000 x \n"), "x");
  EXPECT_EQ(normalize({{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", " "}},
                      "a    b  c"),
            "a b c");
  EXPECT_EQ(normalize({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}},
                      "a b"),
            "a\u2581b");
  EXPECT_EQ(normalize({{"type", "Prepend"}, {"prepend", "\u2581"}}, "x"), "\u2581x");
  const json bert = {{"type", "BertNormalizer"}, {"lowercase", true}};
  EXPECT_EQ(normalize(bert, "H\u00E9llo\t\u4E2D\u6587\x01!"), "hello  \u4E2D  \u6587 !");
  const json bert_cased = {{"type", "BertNormalizer"}, {"lowercase", false}};
  EXPECT_EQ(normalize(bert_cased, "H\u00E9llo"), "H\u00E9llo");
}

TEST(TokenizerComponents, Decoders) {
  EXPECT_EQ(decode({{"type", "ByteFallback"}}, {"<0xE2>", "<0x82>", "<0xAC>", "x"}), "\u20ACx");
  EXPECT_EQ(decode({{"type", "ByteFallback"}}, {"<0xE2>", "<0x82>", "a"}), "\uFFFD\uFFFDa")
      << "an invalid byte run becomes one U+FFFD per byte, as HF";
  EXPECT_EQ(decode({{"type", "ByteLevel"}}, {"\u0120Hello", "\u0120w\u00C3\u00B6rld"}),
            " Hello w\u00F6rld");
  EXPECT_EQ(decode({{"type", "ByteLevel"}}, {"\u00E2\u0124"}), "\uFFFD") << "partial sequence";
  const std::unordered_set<std::string> added = {"<|\u00FC|>"};
  auto byte_level = reft::tok::make_decoder({{"type", "ByteLevel"}}, "test");
  byte_level->bind_added_tokens(&added);
  Strings tokens = {"\u0120a", "<|\u00FC|>", "\u00C3\u00BC", "  raw"};
  byte_level->decode_chain(tokens);
  EXPECT_EQ(tokens, (Strings{" a<|\u00FC|>\u00FC  raw"}))
      << "added tokens and tokens outside the byte alphabet stay verbatim";
  EXPECT_EQ(decode({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 1}}, {"  a  "}),
            " a ");
  EXPECT_EQ(
      decode({{"type", "Metaspace"}, {"prepend_scheme", "always"}}, {"\u2581Hey", "\u2581friend"}),
      "Hey friend");
  EXPECT_EQ(decode({{"type", "Metaspace"}, {"prepend_scheme", "never"}}, {"\u2581Hey"}), " Hey");
  EXPECT_EQ(decode({{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}},
                   {"un", "##aff", "##able", "do", "not", ",", "ok", "."}),
            "unaffable do not, ok.")
      << "HF cleans each token on its own, so \" do not\" across two tokens stays";
  EXPECT_EQ(decode({{"type", "BPEDecoder"}, {"suffix", "</w>"}}, {"hel", "lo</w>", "you</w>"}),
            "hello you");
  EXPECT_EQ(decode({{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                   {"\u2581a\u2581b"}),
            " a b");
  const json llama = {
      {"type", "Sequence"},
      {"decoders",
       {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
        {{"type", "ByteFallback"}},
        {{"type", "Fuse"}},
        {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  EXPECT_EQ(decode(llama, {"\u2581Hello", "\u2581", "<0xF0>", "<0x9F>", "<0x99>", "<0x82>"}),
            "Hello \U0001F642");
}

TEST(TokenizerComponents, PostProcessors) {
  using reft::tok::Segment;
  const json roberta = {{"type", "RobertaProcessing"}, {"sep", {"</s>", 2}}, {"cls", {"<s>", 0}}};
  std::vector<Segment> segments = {{{10, 11}, {0, 0}}, {{12}, {1}}};
  reft::tok::make_post_processor(roberta, "test")->process(segments, true);
  std::vector<int64_t> ids, types;
  for (const auto& s : segments) {
    ids.insert(ids.end(), s.ids.begin(), s.ids.end());
    types.insert(types.end(), s.type_ids.begin(), s.type_ids.end());
  }
  EXPECT_EQ(ids, (std::vector<int64_t>{0, 10, 11, 2, 2, 12, 2}));
  EXPECT_EQ(types, std::vector<int64_t>(7, 0));

  const json sequence = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"}, {"trim_offsets", false}},
        {{"type", "TemplateProcessing"},
         {"single",
          {{{"SpecialToken", {{"id", "[C]"}, {"type_id", 0}}}},
           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
         {"pair",
          {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
           {{"SpecialToken", {{"id", "[C]"}, {"type_id", 1}}}},
           {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
         {"special_tokens",
          {{"[C]", {{"id", "[C]"}, {"ids", {7, 8}}, {"tokens", {"[", "C]"}}}}}}}}}};
  std::vector<Segment> single = {{{10}, {0}}};
  reft::tok::make_post_processor(sequence, "test")->process(single, true);
  ASSERT_EQ(single.size(), 1u);
  EXPECT_EQ(single[0].ids, (std::vector<int64_t>{7, 8, 10}));
  std::vector<Segment> pair = {{{10}, {0}}, {{11}, {1}}};
  reft::tok::make_post_processor(sequence, "test")->process(pair, true);
  EXPECT_EQ(pair[0].ids, (std::vector<int64_t>{10, 7, 8, 11}));
  EXPECT_EQ(pair[0].type_ids, (std::vector<int64_t>{0, 1, 1, 1}));
}

TEST(TokenizerComponents, Utf8Helpers) {
  using reft::tok::utf8_lossy;
  EXPECT_EQ(utf8_lossy("ok\xF0\x9F\x99"), "ok\uFFFD") << "one U+FFFD for a truncated sequence";
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), "\uFFFD\uFFFD") << "overlong forms byte by byte";
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD") << "surrogates are invalid";
  EXPECT_EQ(reft::tok::find_invalid_utf8("a\xF4\x90\x80\x80"), 1u) << "above U+10FFFF";
  EXPECT_EQ(reft::tok::find_invalid_utf8("\u00E9\U0001F642"), std::string::npos);
}

}  // namespace
