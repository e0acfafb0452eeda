// Mutation campaign over every input the CLI reads. Seeded mutants (bit flips, byte replacement,
// truncation, huge and non-finite numbers, JSON type confusion, deep nesting, duplicated keys,
// very long strings) of small self-made inputs, and special files (a FIFO, /dev/zero, a folder) in
// place of each file, are run through the real `reft` under a wall-time and an address-space limit.
// Every run must end by itself, by exit 0 (the mutant happened to be valid), 1 or 2, and a failure
// must be exactly one line "reft: error: …" that is not a raw library message or "out of memory"
// (sizes taken from a file must be checked before allocating).
//
// Every assertion names the kind and the seed: MUTATION_KIND=<kind> MUTATION_SEED=<seed> reruns
// just that mutant; MUTANTS_PER_KIND=<n> runs a larger campaign. The mutations are in mutator.h.

#include <sys/stat.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "cli_util.h"
#include "mutator.h"
#include "test_util.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::Format;
using test::LimitedRun;
using test::Mutator;

std::string read_bytes(const fs::path& p) { return test::read_text(p); }

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

size_t env_or(const char* name, size_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::stoul(v) : fallback;
}

// ---------------------------------------------------------------------------------------------
// The inputs: small valid bases, one kind per file the CLI reads.

struct Kind {
  std::string name;
  std::string base;  // folder under the campaign's root holding the valid input
  std::string file;  // the file mutated, relative to the copied base folder
  Format format;
  std::string command;  // the command line, see MutationTest::args_of
  bool train = false;   // reft train prints its configuration on stderr before an error
};

class MutationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new test::TempDir();
    const fs::path r = root_->path();
    auto ok = [](const std::vector<std::string>& args) {
      const auto run = test::reft_limited(args, {.timeout_s = 120});
      if (run.status != 0) ADD_FAILURE() << "setup failed: " << run.describe();
    };
    ok({"init-model", "--preset", "tiny", "--output", (r / "model").string()});
    ok({"train", "--model", (r / "model").string(), "--output", (r / "trained").string(),
        "--max-steps", "1", "--layers", "1", "--rank", "2", "--threads", "1"});
    fs::create_directories(r / "adapter");
    for (const char* f : {"reft_config.json", "interventions.safetensors"})
      fs::copy_file(r / "trained" / f, r / "adapter" / f);
    ok({"convert", "--to", "pyreft", (r / "adapter").string(), "--output",
        (r / "pyreft").string()});

    // One shard and its index.
    fs::create_directories(r / "sharded");
    for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"})
      fs::copy_file(r / "model" / f, r / "sharded" / f);
    const std::string shard = "model-00001-of-00001.safetensors";
    const std::string st = read_bytes(r / "model" / "model.safetensors");
    write_bytes(r / "sharded" / shard, st);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(st[i]);
    json index = {{"metadata", {{"total_size", st.size() - 8 - n}}},
                  {"weight_map", json::object()}};
    const json header = json::parse(st.substr(8, n));
    for (const auto& [name, entry] : header.items())
      if (name != "__metadata__") index["weight_map"][name] = shard;
    write_bytes(r / "sharded" / "model.safetensors.index.json", index.dump(2));

    // A byte-level BPE (GPT-2's files) and a WordPiece vocabulary (BERT's).
    fs::create_directories(r / "bpe");
    json vocab = {{"<|endoftext|>", 0}};
    for (const char* t : {"H", "e", "l", "o", "\xc4\xa0", "w", "r", "d", "He", "ll", "Hell",
                          "Hello", "\xc4\xa0w", "or", "\xc4\xa0wor", "ld"})
      vocab[t] = vocab.size();
    write_bytes(r / "bpe" / "vocab.json", vocab.dump());
    write_bytes(r / "bpe" / "merges.txt",
                "#version: 0.2\nH e\nl l\nHe ll\nHell o\n\xc4\xa0 w\no r\n\xc4\xa0w or\nl d\n");
    write_bytes(
        r / "bpe" / "tokenizer_config.json",
        json({{"tokenizer_class", "GPT2Tokenizer"},
              {"add_prefix_space", false},
              {"bos_token", "<|endoftext|>"},
              {"eos_token", "<|endoftext|>"},
              {"unk_token", "<|endoftext|>"},
              {"added_tokens_decoder", {{"0", {{"content", "<|endoftext|>"}, {"special", true}}}}}})
            .dump(2));
    write_bytes(r / "bpe" / "special_tokens_map.json",
                json({{"bos_token", "<|endoftext|>"}, {"eos_token", "<|endoftext|>"}}).dump(2));
    write_bytes(r / "bpe" / "added_tokens.json", json({{"<extra>", vocab.size()}}).dump(2));
    fs::create_directories(r / "bert");
    write_bytes(r / "bert" / "vocab.txt",
                "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\nwor\n##ld\nh\n##e\n");

    // Training data in every format, and a --config file.
    fs::create_directories(r / "data");
    json rows = json::array();
    for (const auto& [p, c] :
         {std::pair{"Hello", " world"}, {"One two", " three"}, {"Red", " green"}, {"Up", " down"}})
      rows.push_back({{"prompt", p}, {"completion", c}});
    std::string jsonl, csv = "prompt,completion\n";
    for (const auto& row : rows) {
      jsonl += row.dump() + "\n";
      csv += "\"" + row["prompt"].get<std::string>() + "\",\"" +
             row["completion"].get<std::string>() + "\"\n";
    }
    write_bytes(r / "data" / "data.jsonl", jsonl);
    write_bytes(r / "data" / "classes.jsonl",
                "{\"text\": \"a red hat\", \"label\": 0}\n{\"text\": \"a dog\", \"label\": 1}\n"
                "{\"text\": \"the blue hat\", \"label\": 0}\n{\"text\": \"cats\", \"label\": 1}\n");
    write_bytes(r / "data" / "data.json", rows.dump(1));
    write_bytes(r / "data" / "data.csv", csv);
    json alpaca = json::array();
    for (const auto& row : rows)
      alpaca.push_back(
          {{"instruction", row["prompt"]}, {"input", ""}, {"output", row["completion"]}});
    write_bytes(r / "data" / "alpaca.json", alpaca.dump(1));
    write_bytes(r / "data" / "train.json", json({{"layers", {1}},
                                                 {"low_rank_dimension", 2},
                                                 {"intervention", "loreft"},
                                                 {"positions", "f1+l1"},
                                                 {"component", "block_output"},
                                                 {"learning_rate", 0.01},
                                                 {"batch_size", 2},
                                                 {"max_length", 128},
                                                 {"dropout", 0.0},
                                                 {"max_grad_norm", 1.0}})
                                               .dump(2));

    if (!test::shared_dir().empty() &&
        fs::exists(test::shared_dir() / "tokenizers/stories260K/tokenizer.model")) {
      fs::create_directories(r / "spm");
      fs::copy_file(test::shared_dir() / "tokenizers/stories260K/tokenizer.model",
                    r / "spm" / "tokenizer.model");
    }
  }

  static void TearDownTestSuite() {
    delete root_;
    root_ = nullptr;
  }

  static std::vector<Kind> kinds() {
    const std::string inspect = "inspect --model {dir} --threads 1";
    const std::string generate =
        "generate --model {dir} --prompt-ids 1,4,7 --max-new-tokens 2 --print-ids --threads 1";
    const std::string tokenize = "tokenize --model {dir} --text Hello~world";
    const std::string adapter =
        "generate --model {model} --adapter {dir} --prompt-ids 1,4,7 --max-new-tokens 2 "
        "--print-ids --threads 1";
    const std::string train =
        "train --model {model} --data {file} --output {file}.out --max-steps 1 --layers 1 --rank 2 "
        "--batch-size 2 --max-length 128 --save-every 0 --threads 1";
    const std::string train_config =
        "train --model {model} --config {file} --output {file}.out --max-steps 1 --save-every 0 "
        "--threads 1";
    const std::string bin = "intkey_layer_1_comp_block_output_unit_pos_nunit_1#0.bin";
    std::vector<Kind> k = {
        {"config.json", "model", "config.json", Format::kJson, inspect},
        {"model.safetensors", "model", "model.safetensors", Format::kSafetensors, generate},
        {"index.json", "sharded", "model.safetensors.index.json", Format::kJson, inspect},
        {"tokenizer.json", "model", "tokenizer.json", Format::kJson, tokenize},
        {"tokenizer_config.json", "model", "tokenizer_config.json", Format::kJson, tokenize},
        {"special_tokens_map.json", "bpe", "special_tokens_map.json", Format::kJson, tokenize},
        {"added_tokens.json", "bpe", "added_tokens.json", Format::kJson, tokenize},
        {"vocab.json", "bpe", "vocab.json", Format::kJson, tokenize},
        {"merges.txt", "bpe", "merges.txt", Format::kText, tokenize},
        {"vocab.txt", "bert", "vocab.txt", Format::kText, tokenize},
        {"reft_config.json", "adapter", "reft_config.json", Format::kJson, adapter},
        {"interventions.safetensors", "adapter", "interventions.safetensors", Format::kSafetensors,
         adapter},
        {"pyreft config.json", "pyreft", "config.json", Format::kJson, adapter},
        {"pyreft .bin", "pyreft", bin, Format::kTorchZip, adapter},
        {"data.jsonl", "data", "data.jsonl", Format::kJsonLines, train, true},
        {"data.json", "data", "data.json", Format::kJson, train, true},
        {"data.csv", "data", "data.csv", Format::kText, train, true},
        {"alpaca.json", "data", "alpaca.json", Format::kJson, train, true},
        {"classes.jsonl", "data", "classes.jsonl", Format::kJsonLines,
         train + " --task classification", true},
        {"--config", "data", "train.json", Format::kJson, train_config, true},
    };
    if (fs::exists(root_->path() / "spm"))
      k.push_back({"tokenizer.model", "spm", "tokenizer.model", Format::kBinary, tokenize});
    return k;
  }

  // The command line of `kind` run on `dir` (a copy of its base folder): words split at spaces,
  // "~" a space inside a word, {dir}, {file} (the mutated file) and {model} substituted.
  static std::vector<std::string> args_of(const Kind& kind, const fs::path& dir) {
    std::vector<std::string> out;
    std::istringstream words(kind.command);
    for (std::string w; words >> w;) {
      std::replace(w.begin(), w.end(), '~', ' ');
      for (const auto& [key, value] : {std::pair<std::string, std::string>{"{dir}", dir.string()},
                                       {"{file}", (dir / kind.file).string()},
                                       {"{model}", (root_->path() / "model").string()}})
        if (const size_t at = w.find(key); at != std::string::npos)
          w.replace(at, key.size(), value);
      out.push_back(w);
    }
    return out;
  }

  static test::TempDir* root_;
};

test::TempDir* MutationTest::root_ = nullptr;

// One run of a case: which kind and seed, what was done and how it ended.
struct Outcome {
  std::string label;  // "kind=… seed=… (mutation)"
  bool train;
  LimitedRun run;
};

// The campaign's expectations for one run; returns a failure message or "".
std::string check(const Outcome& o) {
  const LimitedRun& r = o.run;
  if (r.timed_out) return "ran past the time limit";
  if (r.signal) return "died by signal " + std::to_string(r.signal);
  if (r.status == 0) return "";
  if (r.status != 1 && r.status != 2) return "exit status " + std::to_string(r.status);
  const std::string prefix = "reft: error: ";
  size_t errors = 0, lines = 0;
  for (size_t at = 0; at < r.err.size(); ++lines) {
    if (r.err.compare(at, prefix.size(), prefix) == 0) ++errors;
    const size_t end = r.err.find('\n', at);
    at = end == std::string::npos ? r.err.size() : end + 1;
  }
  if (errors != 1) return "expected one line \"reft: error: …\" on stderr";
  if (r.err.back() != '\n') return "the error line does not end stderr";
  const size_t last = r.err.rfind('\n', r.err.size() - 2);
  const std::string line = r.err.substr(last == std::string::npos ? 0 : last + 1);
  if (line.rfind(prefix, 0) != 0) return "the error is not the last line of stderr";
  if (!o.train && lines != 1) return "expected stderr to be exactly one line";
  for (const char* raw : {"[json.exception", "filesystem error", "out of memory", "[torch]",
                          "basic_string", "std::", "bad_alloc", "vector::"})
    if (line.find(raw) != std::string::npos)
      return std::string("a raw or runaway error (\"") + raw + "\")";
  return "";
}

// Runs `cases` (argument lists with their labels) a few at a time under the campaign's limits.
std::vector<Outcome> run_all(
    const std::vector<std::tuple<std::string, bool, std::vector<std::string>>>& cases) {
  const test::Limits limits{.timeout_s = 20, .address_space = uint64_t{4} << 30};
  const size_t parallel = 3;
  std::vector<Outcome> out;
  for (size_t i = 0; i < cases.size(); i += parallel) {
    std::vector<test::Child> children;
    for (size_t j = i; j < std::min(cases.size(), i + parallel); ++j)
      children.push_back(test::spawn_reft(std::get<2>(cases[j]), limits));
    for (size_t j = 0; j < children.size(); ++j)
      out.push_back({std::get<0>(cases[i + j]), std::get<1>(cases[i + j]),
                     test::wait_reft(children[j], limits.timeout_s)});
  }
  return out;
}

TEST_F(MutationTest, EveryMutantEndsCleanlyWithOneErrorLine) {
  const fs::path r = root_->path();
  const size_t per_kind = env_or("MUTANTS_PER_KIND", 4);
  const char* only_kind = std::getenv("MUTATION_KIND");
  const size_t only_seed = env_or("MUTATION_SEED", 0);
  const size_t first = env_or("MUTATION_FIRST", 0);  // the first seed's index within each kind
  const auto all = kinds();
  if (!fs::exists(r / "spm"))
    std::cout << "note: tokenizer.model skipped (no shared stories260K tokenizer)\n";

  // The unmutated inputs must pass, or the mutants would test nothing.
  std::vector<std::tuple<std::string, bool, std::vector<std::string>>> cases;
  std::set<std::string> seen;
  for (const auto& kind : all) {
    auto args = args_of(kind, r / kind.base);
    std::string key;
    for (const auto& a : args) key += a + " ";
    if (seen.insert(key).second) cases.emplace_back("base of " + kind.name, kind.train, args);
  }
  for (const auto& o : run_all(cases))
    ASSERT_EQ(o.run.status, 0) << o.label << ": " << o.run.describe();
  cases.clear();

  // Mutants and special files, each in a fresh copy of its base folder.
  std::map<std::string, size_t> per_kind_count;
  std::vector<fs::path> dirs;
  size_t index = 0;
  for (size_t k = 0; k < all.size(); ++k) {
    const Kind& kind = all[k];
    if (only_kind && kind.name != only_kind) continue;
    const std::string original = read_bytes(r / kind.base / kind.file);
    auto fresh = [&] {
      const fs::path dir = r / ("case" + std::to_string(index++));
      fs::copy(r / kind.base, dir, fs::copy_options::recursive);
      dirs.push_back(dir);
      ++per_kind_count[kind.name];
      return dir;
    };
    for (size_t i = first; i < first + per_kind; ++i) {
      const uint32_t seed = only_kind && only_seed ? only_seed : 1000 * (k + 1) + i;
      if (only_kind && only_seed && i > first) break;
      Mutator m(seed);
      const std::string mutant = m.mutate(original, kind.format, seed % 1000);
      const fs::path dir = fresh();
      write_bytes(dir / kind.file, mutant);
      cases.emplace_back(
          "kind=" + kind.name + " seed=" + std::to_string(seed) + " (" + m.what() + ")", kind.train,
          args_of(kind, dir));
    }
    if (only_kind && only_seed) continue;
    // Special files: a FIFO for every kind (a read would block), and /dev/zero (endless) or a
    // folder in turn.
    for (const std::string special : {"fifo", k % 2 ? "dir" : "/dev/zero"}) {
      const fs::path dir = fresh();
      const fs::path f = dir / kind.file;
      fs::remove(f);
      if (special == "fifo")
        ASSERT_EQ(mkfifo(f.c_str(), 0600), 0) << f;
      else if (special == "dir")
        fs::create_directory(f);
      else
        fs::create_symlink("/dev/zero", f);
      cases.emplace_back("kind=" + kind.name + " special=" + special, kind.train,
                         args_of(kind, dir));
    }
  }

  const auto outcomes = run_all(cases);
  std::map<std::string, size_t> statuses;
  size_t failures = 0;
  for (const auto& o : outcomes) {
    const std::string problem = check(o);
    ++statuses[o.run.timed_out ? "timeout"
               : o.run.signal  ? "signal"
                               : "exit " + std::to_string(o.run.status)];
    if (!problem.empty()) ++failures;
    EXPECT_EQ(problem, "") << o.label << ": " << o.run.describe();
  }
  for (const auto& dir : dirs) fs::remove_all(dir);

  std::cout << "mutation campaign: " << outcomes.size() << " runs, " << failures << " failing\n";
  for (const auto& [kind, n] : per_kind_count) std::cout << "  " << kind << ": " << n << "\n";
  for (const auto& [status, n] : statuses) std::cout << "  " << status << ": " << n << "\n";
}

// Counts taken from a file are checked before anything is built or looped over: an adapter or
// --config listing thousands of interventions (found by this campaign with representations
// repeated 100000 times), and training counts that would run forever or overflow.
TEST_F(MutationTest, HugeCountsFromFilesAreRefusedBeforeUse) {
  const fs::path r = root_->path(), dir = r / "many";
  fs::copy(r / "adapter", dir, fs::copy_options::recursive);
  json config = json::parse(read_bytes(dir / "reft_config.json"));
  json& reps = config["reft"]["representations"];
  const json one = reps[0];
  for (int i = 0; i < 20000; ++i) reps.push_back(one);
  write_bytes(dir / "reft_config.json", config.dump());
  const auto a = test::reft_limited({"generate", "--model", (r / "model").string(), "--adapter",
                                     dir.string(), "--prompt-ids", "1", "--max-new-tokens", "1"});
  EXPECT_EQ(a.status, 2) << a.describe();
  EXPECT_NE(a.err.find("expected at most 4096 interventions, found 20001"), std::string::npos)
      << a.describe();

  // reft convert --to pyreft builds the interventions at the hidden size the file records (no
  // model): 10^12 asked torch for 16 TB, 2^24 (within config.json's bound) for 64 GB per
  // intervention; a string was a raw nlohmann message.
  for (const auto& [value, needle] :
       {std::pair<json, std::string>{int64_t{1000000000000}, "at most 16777216"},
        {int64_t{1} << 24, "expected tensors for hidden size 16777216"},
        {"big", "base_model.hidden_size: expected a positive integer"}}) {
    fs::remove_all(dir);
    fs::copy(r / "adapter", dir, fs::copy_options::recursive);
    json c = json::parse(read_bytes(dir / "reft_config.json"));
    c["base_model"]["hidden_size"] = value;
    write_bytes(dir / "reft_config.json", c.dump());
    const auto v = test::reft_limited(
        {"convert", "--to", "pyreft", dir.string(), "--output", (r / "converted").string()});
    EXPECT_EQ(v.status, 1) << value << ": " << v.describe();
    EXPECT_NE(v.err.find(needle), std::string::npos) << value << ": " << v.describe();
  }

  // Class indices and regression targets from data: label 1000000000 made a billion class names
  // (out of memory); 1e300 reached torch as a raw conversion error.
  for (const auto& [label, needle] :
       {std::pair<std::string, std::string>{"1000000000", "expected class indices below 65536"},
        {"1e300", "expected a finite regression label within float range, found '1e+300'"}}) {
    write_bytes(dir / "classes.jsonl",
                "{\"text\": \"a\", \"label\": 0}\n{\"text\": \"b\", \"label\": " + label + "}\n");
    const auto c = test::reft_limited({"train", "--model", (r / "model").string(), "--data",
                                       (dir / "classes.jsonl").string(), "--task", "classification",
                                       "--output", (dir / "out").string(), "--max-steps", "1"});
    EXPECT_EQ(c.status, 1) << label << ": " << c.describe();
    EXPECT_NE(c.err.find(needle), std::string::npos) << label << ": " << c.describe();
  }

  // The same through a pyreft directory (20000 loaded in 23 s).
  const fs::path py = r / "many-pyreft";
  fs::copy(r / "pyreft", py, fs::copy_options::recursive);
  json pyconfig = json::parse(read_bytes(py / "config.json"));
  pyconfig["representations"] = std::vector<json>(20000, pyconfig["representations"][0]);
  write_bytes(py / "config.json", pyconfig.dump());
  const auto p = test::reft_limited({"generate", "--model", (r / "model").string(), "--adapter",
                                     py.string(), "--prompt-ids", "1", "--max-new-tokens", "1"});
  EXPECT_EQ(p.status, 1) << p.describe();
  EXPECT_NE(p.err.find("expected at most 4096 interventions, found 20000"), std::string::npos)
      << p.describe();
  // A layer range in reft's record, read before the model's layer count is known: "0-2000000000"
  // listed two billion layers (out of memory).
  pyconfig = json::parse(read_bytes(r / "pyreft" / "config.json"));
  pyconfig["reft_config"] = {{"layers", "0-2000000000"}};
  write_bytes(py / "config.json", pyconfig.dump());
  const auto pr = test::reft_limited({"generate", "--model", (r / "model").string(), "--adapter",
                                      py.string(), "--prompt-ids", "1", "--max-new-tokens", "1"});
  EXPECT_EQ(pr.status, 2) << pr.describe();
  EXPECT_NE(pr.err.find("expected at most 4096 layers"), std::string::npos) << pr.describe();
  fs::remove_all(py);

  write_bytes(dir / "train.json", json({{"layers", std::vector<int>(20000, 1)}}).dump());
  const auto t = test::reft_limited({"train", "--model", (r / "model").string(), "--config",
                                     (dir / "train.json").string(), "--output",
                                     (dir / "out").string(), "--max-steps", "1"});
  EXPECT_EQ(t.status, 2) << t.describe();
  EXPECT_NE(t.err.find("expected at most 4096 interventions"), std::string::npos) << t.describe();
  // A layer range from a --config ("0-3000000000" listed three billion layers: out of memory).
  write_bytes(dir / "train.json", json({{"layers", "0-3000000000"}}).dump());
  const auto l = test::reft_limited({"train", "--model", (r / "model").string(), "--config",
                                     (dir / "train.json").string(), "--output",
                                     (dir / "out").string(), "--max-steps", "1"});
  EXPECT_EQ(l.status, 2) << l.describe();
  EXPECT_NE(l.err.find("layer 3000000000 is out of range"), std::string::npos) << l.describe();

  // Training counts: a step accumulating a billion micro-batches ran forever; epochs near 2^63
  // overflowed into a negative step count and "trained" 0 steps.
  for (const auto& [key, value, needle] :
       {std::tuple<std::string, int64_t, std::string>{"gradient_accumulation_steps", 1000000000,
                                                      "[--grad-accum] expected at most the 2 "},
        {"epochs", int64_t{9000000000000000000}, "[--epochs] expected at most "},
        {"max_steps", int64_t{9000000000000000000}, "[--max-steps] expected at most "}}) {
    write_bytes(dir / "train.json", json({{"layers", {1}}, {key, value}}).dump());
    const auto c =
        test::reft_limited({"train", "--model", (r / "model").string(), "--config",
                            (dir / "train.json").string(), "--output", (dir / "out").string()});
    EXPECT_EQ(c.status, 2) << key << ": " << c.describe();
    EXPECT_NE(c.err.find(needle), std::string::npos) << key << ": " << c.describe();
  }
  fs::remove_all(dir);
}

// A file name or key with control characters still gives one error line (escaped).
TEST_F(MutationTest, ControlCharactersInErrorsAreEscaped) {
  const fs::path dir = root_->path() / "no\nsuch\x01model";
  const auto r = test::reft_limited({"inspect", "--model", dir.string()});
  EXPECT_EQ(r.status, 1) << r.describe();
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.describe();
  EXPECT_NE(r.err.find("no\\nsuch\\x01model"), std::string::npos) << r.describe();

  const fs::path tok = root_->path() / "key";
  fs::create_directories(tok);
  fs::copy_file(root_->path() / "bert" / "vocab.txt", tok / "vocab.txt",
                fs::copy_options::overwrite_existing);
  write_bytes(tok / "added_tokens.json", R"({"a\nb\rc\td\u0002": "not an id"})");
  const auto t = test::reft_limited({"tokenize", "--model", tok.string(), "--text", "hello"});
  EXPECT_EQ(t.status, 1) << t.describe();
  EXPECT_EQ(std::count(t.err.begin(), t.err.end(), '\n'), 1) << t.describe();
  EXPECT_NE(t.err.find("a\\nb\\rc\\td\\x02"), std::string::npos) << t.describe();
}

}  // namespace
}  // namespace reft
