// Malformed and unsupported tokenizer files are reft::Errors that name the file; random input
// never crashes the tokenizers, and byte-level tokenizers round-trip it.

#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <random>

#include "reft/error.h"
#include "reft/tokenizer.h"
#include "test_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace {

using nlohmann::json;
using reft::Tokenizer;
using reft::TokenizerBackend;

void write(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// Runs `load` and checks that it throws reft::Error whose message contains every `needle`.
template <class F>
void expect_error(F&& load, std::initializer_list<std::string> needles) {
  try {
    load();
    ADD_FAILURE() << "expected reft::Error containing '" << *needles.begin() << "'";
  } catch (const reft::Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
    for (const auto& needle : needles)
      EXPECT_NE(message.find(needle), std::string::npos)
          << "'" << needle << "' not in: " << message;
  }
}

json minimal_bpe() {
  return {{"model",
           {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}}};
}

// Writes `doc` as tokenizer.json and expects loading it to fail with `needles`.
void expect_json_error(const std::string& doc, std::initializer_list<std::string> needles) {
  reft::test::TempDir dir;
  write(dir / "tokenizer.json", doc);
  std::vector<std::string> all(needles);
  all.push_back((dir / "tokenizer.json").string());
  try {
    Tokenizer::load(dir.path());
    ADD_FAILURE() << "expected an error for " << doc.substr(0, 80);
  } catch (const reft::Error& e) {
    const std::string message = e.what();
    for (const auto& needle : all)
      EXPECT_NE(message.find(needle), std::string::npos)
          << "'" << needle << "' not in: " << message;
  }
}

TEST(TokenizerErrors, MinimalBpeLoads) {
  reft::test::TempDir dir;
  write(dir / "tokenizer.json", minimal_bpe().dump());
  const auto tok = Tokenizer::load(dir.path());
  EXPECT_EQ(tok->encode("ab"), (std::vector<int64_t>{2}));
  EXPECT_EQ(tok->encode("ba"), (std::vector<int64_t>{1, 0}));
}

TEST(TokenizerErrors, MalformedTokenizerJson) {
  expect_json_error("{\"model\": ", {"expected valid JSON"});
  expect_json_error("[1, 2]", {"expected a JSON object"});
  expect_json_error("{\"normalizer\": null}", {"\"model\""});
  auto with = [](const char* field, json value) {
    json doc = minimal_bpe();
    doc[field] = std::move(value);
    return doc.dump();
  };
  expect_json_error(with("normalizer", {{"type", "Precompiled2"}}), {"normalizer", "Precompiled2"});
  expect_json_error(with("pre_tokenizer", {{"type", "Shuffle"}}), {"pre_tokenizer", "Shuffle"});
  expect_json_error(with("decoder", {{"type", "Rot13"}}), {"decoder", "Rot13"});
  expect_json_error(with("post_processor", {{"type", "Magic"}}), {"post_processor", "Magic"});
  expect_json_error(with("normalizer", {{"prepend", "x"}}), {"normalizer", "\"type\""});
  expect_json_error(
      with("pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}}),
      {"regex", "(unclosed"});
  expect_json_error(
      with("pre_tokenizer",
           {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Sideways"}}),
      {"Sideways"});

  json unknown_model = minimal_bpe();
  unknown_model["model"]["type"] = "Magic";
  expect_json_error(unknown_model.dump(), {"model.type", "Magic"});
  json unigram = minimal_bpe();
  unigram["model"] = {{"type", "Unigram"}, {"vocab", json::array({json::array({"a", -1.0})})}};
  expect_json_error(unigram.dump(), {"Unigram"});
  json bad_merge = minimal_bpe();
  bad_merge["model"]["merges"] = {"a b", "a zz"};
  expect_json_error(bad_merge.dump(), {"merge #1", "'zz'"});
  json bad_result = minimal_bpe();
  bad_result["model"]["merges"] = {"b a"};
  expect_json_error(bad_result.dump(), {"'ba'", "merge #0"});
  json bad_merge_format = minimal_bpe();
  bad_merge_format["model"]["merges"] = {"a b c"};
  expect_json_error(bad_merge_format.dump(), {"merge #0"});
  json bad_vocab = minimal_bpe();
  bad_vocab["model"]["vocab"]["b"] = "one";
  expect_json_error(bad_vocab.dump(), {"model.vocab"});
  json duplicate_id = minimal_bpe();
  duplicate_id["model"]["vocab"]["b"] = 0;
  expect_json_error(duplicate_id.dump(), {"id 0"});
  json dropout = minimal_bpe();
  dropout["model"]["dropout"] = 0.1;
  expect_json_error(dropout.dump(), {"dropout"});
  json wordpiece = {{"model", {{"type", "WordPiece"}, {"vocab", {{"a", 0}}}}}};
  expect_json_error(wordpiece.dump(), {"[UNK]"});
}

TEST(TokenizerErrors, MissingFilesAndFolders) {
  reft::test::TempDir dir;
  expect_error([&] { Tokenizer::load(dir / "nope"); }, {"nope", "no such folder"});
  expect_error([&] { Tokenizer::load(dir.path()); },
               {dir.path().string(), "tokenizer.json", "tokenizer.model", "vocab.txt"});
  expect_error([&] { Tokenizer::load(dir.path(), {.backend = TokenizerBackend::kJson}); },
               {"tokenizer.json", "no such file"});
  expect_error([&] { Tokenizer::load(dir.path(), {.backend = TokenizerBackend::kSentencePiece}); },
               {"tokenizer.model", "no such file"});
  expect_error([&] { Tokenizer::load(dir.path(), {.backend = TokenizerBackend::kVocabFiles}); },
               {"vocab.txt"});
  write(dir / "vocab.json", R"({"a": 0})");
  expect_error([&] { Tokenizer::load(dir.path()); }, {"merges.txt", "no such file"});
}

TEST(TokenizerErrors, MalformedSideFiles) {
  reft::test::TempDir dir;
  write(dir / "tokenizer.json", minimal_bpe().dump());
  write(dir / "tokenizer_config.json", "{\"add_bos_token\": tru");
  expect_error([&] { Tokenizer::load(dir.path()); }, {"tokenizer_config.json", "valid JSON"});
  write(dir / "tokenizer_config.json", R"({"add_bos_token": "yes"})");
  expect_error([&] { Tokenizer::load(dir.path()); }, {"tokenizer_config.json", "add_bos_token"});
  write(dir / "tokenizer_config.json", R"({"bos_token": 7})");
  expect_error([&] { Tokenizer::load(dir.path()); }, {"tokenizer_config.json", "bos_token"});
  write(dir / "tokenizer_config.json", R"({"added_tokens_decoder": {"x": {"content": "a"}}})");
  expect_error([&] { Tokenizer::load(dir.path()); }, {"added_tokens_decoder", "\"x\""});
  write(dir / "tokenizer_config.json", "{}");
  write(dir / "special_tokens_map.json", "[");
  expect_error([&] { Tokenizer::load(dir.path()); }, {"special_tokens_map.json"});
  std::filesystem::remove(dir / "special_tokens_map.json");

  write(dir / "tokenizer.model", "IQ== 0\nIg== 1\n");  // tiktoken text, not SentencePiece
  EXPECT_NE(Tokenizer::load(dir.path())->description().find("tokenizer.json"), std::string::npos)
      << "the auto backend passes over a tokenizer.model that is not a protobuf";
  expect_error([&] { Tokenizer::load(dir.path(), {.backend = TokenizerBackend::kSentencePiece}); },
               {"tokenizer.model"});
  write(dir / "tokenizer.model", "\x0a\x05hello\x12\xff");
  expect_error([&] { Tokenizer::load(dir.path()); }, {"tokenizer.model"});
  write(dir / "tokenizer.model", "");
  expect_error([&] { Tokenizer::load(dir.path()); }, {"tokenizer.model", "empty"});

  reft::test::TempDir bert;
  write(bert / "vocab.txt", "[UNK]\na\n");
  expect_error([&] { Tokenizer::load(bert.path()); }, {"vocab.txt", "[CLS]"});
  reft::test::TempDir gpt2;
  write(gpt2 / "vocab.json", R"({"a": 0, "b": 1})");
  write(gpt2 / "merges.txt", "#version: 0.2\na b\n");
  expect_error([&] { Tokenizer::load(gpt2.path()); }, {"'ab'"});
  write(gpt2 / "merges.txt", "#version: 0.2\na\n");
  expect_error([&] { Tokenizer::load(gpt2.path()); }, {"merges.txt", "line 2"});
}

// Ids, nesting and types that the campaign of issue 10 used to make the loaders allocate without
// bound or recurse: each is one line naming the file.
TEST(TokenizerErrors, IdsFromFilesAreBoundedBeforeAllocating) {
  reft::test::TempDir gpt2;
  write(gpt2 / "vocab.json", R"({"a":0,"b":1099511627776})");
  write(gpt2 / "merges.txt", "#version: 0.2\n");
  expect_error([&] { Tokenizer::load(gpt2.path()); },
               {(gpt2 / "vocab.json").string(), "expected vocabulary ids", "1099511627776"});
  // Below 2^31 but far beyond the entries: the id table would still be gigabytes.
  write(gpt2 / "vocab.json", R"({"a":0,"b":2000000000})");
  expect_error([&] { Tokenizer::load(gpt2.path()); },
               {(gpt2 / "vocab.json").string(), "expected vocabulary ids below", "2000000000"});

  reft::test::TempDir added;
  write(added / "tokenizer.json", minimal_bpe().dump());
  write(added / "added_tokens.json", R"({"x":4294967301})");
  expect_error([&] { Tokenizer::load(added.path()); },
               {(added / "added_tokens.json").string(), "4294967301"});
}

TEST(TokenizerErrors, DeepNestingAndWrongTypesAreOneLine) {
  reft::test::TempDir dir;
  json doc = minimal_bpe();
  doc["normalizer"] = "x";
  write(dir / "tokenizer.json", doc.dump());
  expect_error([&] { Tokenizer::load(dir.path()); },
               {(dir / "tokenizer.json").string(), "normalizer"});
  // 300 levels under a key the loader keeps (and one it passes over): refused while reading,
  // before anything walks the tree recursively.
  for (const char* key : {"normalizer", "unknown"}) {
    const std::string model = R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, )";
    write(dir / "tokenizer.json",
          model + "\"" + key + "\": " + std::string(300, '[') + std::string(300, ']') + "}");
    expect_error([&] { Tokenizer::load(dir.path()); },
                 {(dir / "tokenizer.json").string(), "nested at most 256 levels"});
  }
}

// A pre-tokenizer regex from the file that backtracks catastrophically: an error after PCRE2's
// match limit, not hours of work (the test would time out without the limit).
TEST(TokenizerErrors, CatastrophicRegexStopsAtTheMatchLimit) {
  reft::test::TempDir dir;
  json doc = minimal_bpe();
  doc["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(a+)+$"}}}, {"behavior", "Isolated"}};
  write(dir / "tokenizer.json", doc.dump());
  const auto tok = Tokenizer::load(dir.path());
  EXPECT_EQ(tok->encode("ab"), (std::vector<int64_t>{2}));
  expect_error([&] { tok->encode(std::string(40, 'a') + "b"); },
               {(dir / "tokenizer.json").string(), "regex '(a+)+$' exceeded the match limit"});
  // A group repeated over megabytes needs a backtracking frame per repetition: bounded memory.
  expect_error(
      [] { reft::tok::Regex("(a|b)*[cd]", "test").find_all(std::string(size_t{4} << 20, 'a')); },
      {"[test] regex '(a|b)*[cd]' exceeded the memory limit"});
  // Too long a pattern is refused before compiling.
  doc["pre_tokenizer"]["pattern"]["Regex"] = std::string(100000, 'a');
  write(dir / "tokenizer.json", doc.dump());
  expect_error([&] { Tokenizer::load(dir.path()); },
               {(dir / "tokenizer.json").string(), "at most 65536 bytes"});
}

// Runs `f` in a child process and returns what it wrote, or "(timed out)" when it had not finished
// after `seconds` (the child is then killed): a hang fails the test instead of blocking it.
std::string run_with_deadline(const std::function<std::string()>& f, int seconds) {
  int fds[2];
  if (::pipe(fds) != 0) return "(pipe failed)";
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(fds[0]);
    const std::string out = f();
    [[maybe_unused]] const ssize_t n = ::write(fds[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  pollfd p{fds[0], POLLIN, 0};
  bool timed_out = false;
  for (;;) {
    if (::poll(&p, 1, seconds * 1000) <= 0) {
      timed_out = true;
      break;
    }
    char buffer[4096];
    const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (timed_out) ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  return timed_out ? "(timed out)" : out;
}

TEST(TokenizerErrors, FifoAsTokenizerModelIsRefusedWithoutBlocking) {
  reft::test::TempDir dir;
  const auto fifo = dir / "tokenizer.model";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const auto backend : {TokenizerBackend::kAuto, TokenizerBackend::kSentencePiece}) {
    const std::string message = run_with_deadline(
        [&]() -> std::string {
          try {
            Tokenizer::load(dir.path(), {.backend = backend});
            return "(no error)";
          } catch (const reft::Error& e) {
            return e.what();
          }
        },
        60);
    EXPECT_EQ(message.find(fifo.string()), 1u) << "[file] first: " << message;
    EXPECT_NE(message.find("] expected a regular file, found a FIFO"), std::string::npos)
        << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(TokenizerErrors, BadIdsAndBadText) {
  reft::test::TempDir dir;
  write(dir / "tokenizer.json", minimal_bpe().dump());
  const auto tok = Tokenizer::load(dir.path());
  expect_error([&] { tok->decode(std::vector<int64_t>{0, 3}); }, {"[0, 3)", "3"});
  expect_error([&] { tok->decode(std::vector<int64_t>{-1}); }, {"-1"});
  expect_error([&] { tok->tokens(std::vector<int64_t>{99}); }, {"99"});
  expect_error(
      [&] {
        tok->encode(
            "a\xff"
            "b");
      },
      {"UTF-8", "offset 1"});
  expect_error([&] { tok->encode("\xe2\x82"); }, {"UTF-8"});
  EXPECT_EQ(tok->token_to_id("zz"), std::nullopt);
}

// Random text: valid UTF-8 from many scripts, whitespace runs, specials and controls.
std::string random_text(std::mt19937& rng) {
  static const std::vector<std::pair<char32_t, char32_t>> kRanges = {
      {0x20, 0x7E},     {0x09, 0x0D},     {0xA0, 0x24F},      {0x370, 0x3FF},
      {0x400, 0x4FF},   {0x590, 0x6FF},   {0x900, 0x97F},     {0x3040, 0x30FF},
      {0x4E00, 0x4FFF}, {0xAC00, 0xAD00}, {0x1F300, 0x1F64F}, {0x200B, 0x200D},
      {0xFE00, 0xFE0F}, {0x0, 0x1F},      {0xE000, 0xE010},   {0x10FFF0, 0x10FFFF}};
  std::string out;
  const int length = std::uniform_int_distribution<int>(0, 40)(rng);
  for (int k = 0; k < length; ++k) {
    const auto& [lo, hi] =
        kRanges[std::uniform_int_distribution<size_t>(0, kRanges.size() - 1)(rng)];
    const char32_t cp = std::uniform_int_distribution<uint32_t>(lo, hi)(rng);
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    if (std::uniform_int_distribution<int>(0, 20)(rng) == 0) out += "</s>";
    reft::tok::append_utf8(out, cp);
  }
  return out;
}

TEST(TokenizerErrors, RandomInputNeverBreaksAndByteLevelRoundTrips) {
  REFT_REQUIRE_SHARED("golden/tokenizers");
  std::mt19937 rng(1234);
  for (const auto& file : reft::test::files_with_suffix(shared_path, ".jsonl")) {
    const auto name = file.stem().string();
    const auto rows = reft::test::read_jsonl(file);
    bool all_roundtrip = true;
    for (const auto& row : rows) all_roundtrip &= row["roundtrip_exact"].get<bool>();
    for (const auto backend : {TokenizerBackend::kAuto, TokenizerBackend::kJson}) {
      const auto tok =
          Tokenizer::load(reft::test::shared_dir() / "tokenizers" / name, {.backend = backend});
      const bool byte_level = tok->description().find("decoder ByteLevel") != std::string::npos;
      for (int trial = 0; trial < 300; ++trial) {
        const std::string text = random_text(rng);
        std::vector<int64_t> ids;
        ASSERT_NO_THROW(ids = tok->encode(text)) << name << " " << json(text).dump();
        for (const int64_t id : ids) ASSERT_LT(id, tok->vocab_size());
        std::string back;
        ASSERT_NO_THROW(back = tok->decode(tok->encode(text, false))) << name;
        // Byte-level BPE reproduces any text exactly, up to its normalizer (Qwen: NFC).
        if (byte_level && all_roundtrip) {
          const bool nfc = tok->description().find("normalizer NFC") != std::string::npos;
          EXPECT_EQ(back,
                    nfc ? reft::tok::normalize_unicode(text, reft::tok::NormalForm::kNfc) : text)
              << name << " " << json(text).dump();
        }
      }
      // Random bytes: an error for invalid UTF-8, never a crash.
      for (int trial = 0; trial < 100; ++trial) {
        std::string bytes(std::uniform_int_distribution<int>(1, 16)(rng), '\0');
        for (auto& c : bytes)
          c = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
        try {
          tok->encode(bytes);
        } catch (const reft::Error&) {
        }
        std::vector<int64_t> ids(8);
        for (auto& id : ids)
          id = std::uniform_int_distribution<int64_t>(0, tok->vocab_size() - 1)(rng);
        EXPECT_NO_THROW(tok->decode(ids)) << name;
      }
    }
  }
}

}  // namespace
