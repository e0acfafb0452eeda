// The command line a newcomer can guess: --version, group help, "did you mean", one name per flag
// (old names still work), --config with a winning flag, errors that say why, progress on a
// terminal, a default checkpoint cadence. Also the frontend's run outputs (run_outputs.h).

#include <fcntl.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.h"
#include "cli_util.h"
#include "reft/data.h"
#include "reft/error.h"
#include "reft/model.h"
#include "reft/reft_model.h"
#include "reft/tokenizer.h"
#include "reft/trainer.h"
#include "run_outputs.h"
#include "torch_test_util.h"
#include "util/files.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
using test::reft;
using test::TempDir;

// `reft train` prints its resolved configuration before it fails: the error is the last line,
// one line, with the exit status.
void expect_final_error(const test::Run& r, int status, const std::string& needle) {
  EXPECT_EQ(r.status, status) << r.err;
  const std::string last = r.err.substr(r.err.rfind('\n', r.err.size() - 2) + 1);
  EXPECT_EQ(last.rfind("reft: error: ", 0), 0u) << r.err;
  EXPECT_NE(last.find(needle), std::string::npos) << r.err;
}

// One tiny model with a tokenizer for the whole file (written by the CLI itself).
class CliUsability : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    const auto r = reft({"init-model", "--preset", "tiny", "--output", model_dir()});
    ASSERT_EQ(r.status, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string model_dir() { return (*dir_ / "model").string(); }
  static fs::path path(const std::string& name) { return *dir_ / name; }
  // `reft train` on the tiny model and the built-in data, one thread, into `out`.
  static test::Run train(const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args = {
        "train", "--model", model_dir(), "--output", path(out).string(), "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return reft(args);
  }
  static TempDir* dir_;
};
TempDir* CliUsability::dir_ = nullptr;

// Runs `reft <args>` with stdin, stdout and stderr on a pseudo-terminal; returns what it showed.
std::string run_on_a_terminal(const std::vector<std::string>& args, int* status) {
  std::vector<std::string> argv_s = {REFT_CLI};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    execv(argv[0], argv.data());
    _exit(127);
  }
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(master, buf, sizeof buf)) > 0;) out.append(buf, n);  // EIO at the end
  close(master);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  *status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
  return out;
}

TEST(CliNames, VersionNamesTheProjectAndLibtorch) {
  const auto r = reft({"--version"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("reft 0.", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("libtorch 1."), std::string::npos) << r.out;
  EXPECT_NE(reft({"--help"}).out.find("'reft --version'"), std::string::npos);
}

TEST(CliNames, BenchListsItsSubcommands) {
  auto r = reft({"bench", "--help"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("bench generate"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bench train"), std::string::npos) << r.out;
  r = reft({"bench"});  // a group without a subcommand: usage on stderr, exit 2
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("bench generate"), std::string::npos) << r.err;
  EXPECT_EQ(reft({"bench", "train", "--help"}).status, 0);
}

TEST(CliNames, UnknownNamesSuggestTheNearestOne) {
  expect_error(reft({"train", "--lrr", "1"}), 2, "unknown flag --lrr; did you mean --lr?");
  expect_error(reft({"train", "--batch_size", "1"}), 2, "did you mean --batch-size?");
  expect_error(reft({"trian"}), 2, "unknown command 'trian'; did you mean 'train'?");
  expect_error(reft({"bench", "genrate"}), 2, "did you mean 'bench generate'?");
  // Nothing close: no guess.
  const auto r = reft({"train", "--zzzzzzzz", "1"});
  EXPECT_EQ(r.err.find("did you mean"), std::string::npos) << r.err;
  EXPECT_EQ(cli::closest_match("xyz", {"lr", "output"}), "");
  EXPECT_EQ(cli::closest_match("ouptut", {"lr", "output"}), "output");
}

TEST_F(CliUsability, OneFlagNamePerMeaningAndOldNamesStillWork) {
  // --output where a path is written, --data where records are read, --layers for layers.
  for (const auto& [command, name] :
       std::vector<std::pair<std::string, std::string>>{{"forward", "output"},
                                                        {"init-model", "output"},
                                                        {"collect", "output"},
                                                        {"convert", "output"},
                                                        {"steer", "output"},
                                                        {"steer", "data"},
                                                        {"steer", "layers"},
                                                        {"interchange", "layers"},
                                                        {"tokenize", "data"},
                                                        {"train", "output"},
                                                        {"train", "data"},
                                                        {"train", "layers"}}) {
    const auto help = reft({command, "--help"});
    EXPECT_NE(help.out.find("  --" + name + " "), std::string::npos) << command << " --" << name;
  }
  EXPECT_NE(reft({"forward", "--help"}).out.find("(old name: --out)"), std::string::npos);

  std::ofstream(path("texts.jsonl")) << "\"hello world\"\n{\"text\": \"once upon\"}\n";
  const auto by_data = reft({"tokenize", "--model", model_dir(), "--data", path("texts.jsonl")});
  const auto by_input = reft({"tokenize", "--model", model_dir(), "--input", path("texts.jsonl")});
  ASSERT_EQ(by_data.status, 0) << by_data.err;
  EXPECT_EQ(by_input.status, 0) << by_input.err;
  EXPECT_EQ(by_input.out, by_data.out);
  EXPECT_EQ(std::count(by_data.out.begin(), by_data.out.end(), '\n'), 2);

  auto r = reft({"forward", "--model", model_dir(), "--ids", "1 2", "--out",
                 path("old.safetensors").string()});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(path("old.safetensors")));
  // The old and the new name are one flag.
  expect_error(
      reft({"forward", "--model", model_dir(), "--ids", "1", "--out", "a", "--output", "b"}), 2,
      "--output given twice");
}

TEST_F(CliUsability, ConfigFileFillsFlagsAndTheCommandLineWins) {
  const fs::path config = path("config.json");
  std::ofstream(config) << R"({"layers": "1", "intervention": "loreft", "low_rank_dimension": 4,
                               "positions": "l1", "lr": 0.004, "max_steps": 3})";
  auto r = train("cfg", {"--config", config.string(), "--lr", "0.01", "--rank", "2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("note: --lr 0.01 overrides 0.004 from " + config.string()),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("note: --rank 2 overrides 4 from " + config.string()), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("AdamW lr 0.01,"), std::string::npos) << r.err;
  // max_steps came from the file (no flag given), layers and rank from file and flag.
  const auto summary = read_json_file(path("cfg") / "summary.json");
  EXPECT_EQ(summary.at("steps").get<int64_t>(), 3);
  const auto adapter = read_json_file(path("cfg") / "reft_config.json").at("reft");
  ASSERT_FALSE(adapter.at("representations").empty()) << adapter.dump();
  for (const auto& rep : adapter.at("representations")) {
    EXPECT_EQ(rep.at("layer").get<int64_t>(), 1) << adapter.dump();
    EXPECT_EQ(rep.at("low_rank_dimension").get<int64_t>(), 2) << adapter.dump();
  }
  // A flag equal to the file's value is no conflict: no note.
  r = train("cfg2", {"--config", config.string(), "--lr", "0.004"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("note: --lr"), std::string::npos) << r.err;
  // The expanded form (an adapter's "reft" section): --rank still wins, with a note.
  std::ofstream(path("expanded.json")) << adapter.dump();
  r = train("cfg3",
            {"--config", path("expanded.json").string(), "--rank", "3", "--max-steps", "1"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("note: --rank 3 overrides 2 in the representations of"), std::string::npos)
      << r.err;
  const auto expanded = read_json_file(path("cfg3") / "reft_config.json").at("reft");
  ASSERT_EQ(expanded.at("representations").size(), adapter.at("representations").size());
  for (const auto& rep : expanded.at("representations"))
    EXPECT_EQ(rep.at("low_rank_dimension").get<int64_t>(), 3);
}

TEST_F(CliUsability, DataWithoutAUsableExampleSaysWhyPerRecord) {
  const fs::path data = path("bad.jsonl");
  std::ofstream(data) << R"({"prompt": "a", "answer": "b"})"
                      << "\n"
                      << R"({"prompt": "c", "answer": "d"})"
                      << "\n"
                      << R"({"question": "e", "completion": "f"})"
                      << "\n";
  expect_error(train("bad", {"--data", data.string(), "--max-steps", "1"}), 1,
               "no usable example: 2 records lack field 'completion' (first: " + data.string() +
                   ":1), 1 record lacks field 'prompt' (first: " + data.string() + ":3)");
  // Among usable records, a record without a field is an error naming its line.
  std::ofstream(data, std::ios::app) << R"({"prompt": "g", "completion": " h"})"
                                     << "\n";
  expect_error(train("some", {"--data", data.string(), "--max-steps", "1"}), 1,
               "[" + data.string() + ":1] field 'completion' is missing");
  // Records too long for any completion token: skipped with one warning, training goes on.
  std::ofstream(data) << R"({"prompt": "once upon a time there was", "completion": " h"})"
                      << "\n"
                      << R"({"prompt": "a", "completion": " b"})"
                      << "\n";
  const auto r = train("long", {"--data", data.string(), "--max-steps", "1", "--max-length", "4"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("skipped 1 of 2 records: 1 record has no completion token left within "
                       "max_length 4 (first: " +
                       data.string() + ":1)"),
            std::string::npos)
      << r.err;
}

TEST_F(CliUsability, FilesystemErrorsAreOneLineNamingThePath) {
  // A file where a folder must be created.
  std::ofstream(path("plain_file")) << "x";
  const std::string inside = (path("plain_file") / "out").string();
  const auto r = reft({"init-model", "--preset", "tiny", "--output", inside});
  expect_error(r, 1, "reft: error: [");
  EXPECT_EQ(r.err.find("filesystem error"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(path("plain_file").string()), std::string::npos) << r.err;
  const auto t = train("plain_file/run", {"--max-steps", "1"});
  expect_final_error(t, 1, "reft: error: [" + path("plain_file").string());
  EXPECT_EQ(t.err.find("filesystem error"), std::string::npos) << t.err;
}

TEST_F(CliUsability, LibraryFieldNamesBecomeFlags) {
  // The library names TrainOptions.lr; the CLI shows the flag.
  expect_final_error(train("neg", {"--lr", "-1", "--max-steps", "1"}), 2,
                     "[--lr] expected > 0, found -1");
  EXPECT_EQ(cli::fields_as_flags("[TrainOptions.batch_size] expected >= 1"),
            "[--batch-size] expected >= 1");
  EXPECT_EQ(cli::fields_as_flags("[InterventionOptions.low_rank_dimension] x [data.jsonl:3] y"),
            "[--rank] x [data.jsonl:3] y");
  EXPECT_EQ(cli::fields_as_flags("[alpha] expected a finite scale"),
            "[--alpha] expected a finite scale");
  EXPECT_EQ(cli::fields_as_flags("[model.safetensors] no [tensor"),
            "[model.safetensors] no [tensor");

  auto model = load_model(model_dir());
  auto tokenizer = Tokenizer::load(model_dir());
  const auto data = make_lm_dataset(builtin_example_records(), *tokenizer, {});
  InterventionOptions o;
  o.low_rank_dimension = 2;
  ReftModel reft_model(*model, ReftConfig::build({1}, Component::kBlockOutput, o, "l1", false), 0);
  TrainOptions t;
  t.lr = -1;
  try {
    train_reft(reft_model, data, nullptr, t);
    ADD_FAILURE() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("[TrainOptions.lr] expected > 0, found -1"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(CliUsability, ProgressRedrawsInPlaceOnlyOnATerminal) {
  int status = 0;
  const std::string shown =
      run_on_a_terminal({"train", "--model", model_dir(), "--output", path("tty").string(),
                         "--threads", "1", "--max-steps", "6"},
                        &status);
  EXPECT_EQ(status, 0) << shown;
  // The terminal turns "\n" into "\r\n"; a redraw is a '\r' not followed by '\n'.
  size_t redraws = 0;
  for (size_t i = 0; i + 1 < shown.size(); ++i)
    if (shown[i] == '\r' && shown[i + 1] != '\n') ++redraws;
  EXPECT_GE(redraws, 5u) << shown;
  EXPECT_NE(shown.find("step 6/6"), std::string::npos) << shown;

  // To a pipe or a file: plain lines, no control characters.
  const auto r = train("pipe", {"--max-steps", "6"});
  ASSERT_EQ(r.status, 0) << r.err;
  for (char c : r.err + r.out)
    EXPECT_TRUE(c == '\n' || static_cast<unsigned char>(c) >= 0x20) << static_cast<int>(c);
  EXPECT_NE(r.err.find("step 1/6"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("step 6/6"), std::string::npos) << r.err;
}

TEST_F(CliUsability, CheckpointsByDefaultSoThatAnInterruptedRunCanResume) {
  EXPECT_NE(reft({"train", "--help"}).out.find("--save-every N"), std::string::npos);
  // 20 steps: auto = every 10% of the run = every 2 steps.
  auto r = train("ckpt", {"--max-steps", "20"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("checkpoint at step 2\n"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("checkpoint at step 18\n"), std::string::npos) << r.err;
  r = train("no_ckpt", {"--max-steps", "20", "--save-every", "0"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("checkpoint at step"), std::string::npos) << r.err;
  expect_error(train("x", {"--save-every", "-3"}), 2, "[--save-every] expected auto or >= 0");
}

TEST_F(CliUsability, PredictNamesIntegerLabelsByTheModelsId2label) {
  const fs::path named = path("named_model");
  fs::copy(model_dir(), named, fs::copy_options::recursive);
  auto config = read_json_file(named / "config.json");
  config["id2label"] = {{"0", "negative"}, {"1", "positive"}};
  std::ofstream(named / "config.json") << config.dump();
  const fs::path data = path("labels.jsonl");
  {
    std::ofstream out(data);
    for (int i = 0; i < 8; ++i)
      out << nlohmann::json{{"text", i % 2 ? "a happy day" : "a sad day"}, {"label", i % 2}}.dump()
          << "\n";
  }
  auto r =
      reft({"train", "--model", named.string(), "--task", "classification", "--data", data.string(),
            "--output", path("cls").string(), "--max-steps", "2", "--threads", "1"});
  ASSERT_EQ(r.status, 0) << r.err;
  r = reft({"predict", "--model", named.string(), "--adapter", path("cls").string(), "--data",
            data.string(), "--threads", "1"});
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream lines(r.out);
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    const auto p = nlohmann::json::parse(line).at("prediction").get<std::string>();
    EXPECT_TRUE(p == "negative" || p == "positive") << line;
  }
  EXPECT_EQ(n, 8);
}

// The library writes the adapter and its checkpoint; the run's logs are the frontend's
// (RunOutputs), and a resumed run's metrics.jsonl holds every step once.
TEST_F(CliUsability, RunOutputsSurviveAResume) {
  auto model = load_model(model_dir());
  auto tokenizer = Tokenizer::load(model_dir());
  const auto data = make_lm_dataset(builtin_example_records(), *tokenizer, {});
  InterventionOptions o;
  o.low_rank_dimension = 2;
  const auto config = ReftConfig::build({1, 2}, Component::kBlockOutput, o, "l1", false);
  TrainOptions t;
  t.max_steps = 8;
  t.batch_size = 2;
  t.save_every = 3;
  t.output_dir = path("outputs");
  const cli::RunOutputs outputs(t.output_dir);

  // The library alone leaves no logs.
  ReftModel plain(*model, config, 1);
  TrainOptions quiet = t;
  quiet.output_dir = path("library_only");
  train_reft(plain, data, nullptr, quiet);
  EXPECT_TRUE(fs::exists(quiet.output_dir / "reft_config.json"));
  EXPECT_FALSE(fs::exists(quiet.output_dir / "metrics.jsonl"));
  EXPECT_FALSE(fs::exists(quiet.output_dir / "summary.json"));

  ReftModel a(*model, config, 1);
  TrainCallbacks kill;
  kill.on_step = [](const TrainEvent& e) {
    if (e.step == 5) throw std::runtime_error("killed");
  };
  EXPECT_THROW(train_reft(a, data, nullptr, t, nullptr, outputs.wrap(kill)), std::runtime_error);
  ReftModel b(*model, config, 2);
  t.resume = true;
  const auto summary = train_reft(b, data, nullptr, t, nullptr, outputs.wrap({}));
  outputs.finish(summary, b.num_trainable_parameters());
  EXPECT_EQ(summary.start_step, 3);
  std::vector<int64_t> steps;
  for (const auto& row : test::read_jsonl(t.output_dir / "metrics.jsonl"))
    steps.push_back(row.at("step").get<int64_t>());
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  const auto s = read_json_file(t.output_dir / "summary.json");
  EXPECT_EQ(s.at("losses").size(), 8u);
  EXPECT_TRUE(fs::exists(t.output_dir / "loss.svg"));
}

// scripts/setup.sh as a user on a machine without sudo (a pristine Debian): one clear message and
// the exact apt-get line, not "sudo: command not found". PATH holds only shims: `id` says a user,
// `dpkg-query` finds nothing installed, and there is no sudo.
TEST(SetupScript, WithoutSudoItSaysToRunAsRoot) {
  const fs::path script = fs::path(__FILE__).parent_path().parent_path() / "scripts" / "setup.sh";
  ASSERT_TRUE(fs::exists(script)) << script;
  TempDir tmp;
  const auto shim = [&](const std::string& name, const std::string& body) {
    std::ofstream(tmp / name) << "#!/bin/sh\n" << body << "\n";
    fs::permissions(tmp / name, fs::perms::owner_all);
  };
  shim("id", "echo 1000");
  shim("dpkg-query", "exit 1");
  shim("grep", "exec /bin/grep \"$@\"");
  const std::string cmd = "PATH=" + test::shell_quote((tmp / "").string()) + " /bin/bash " +
                          test::shell_quote(script.string()) + " 2>" +
                          test::shell_quote((tmp / "err").string());
  const int status = std::system(cmd.c_str());
  std::ifstream in(tmp / "err");
  const std::string err((std::istreambuf_iterator<char>(in)), {});
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << " " << err;
  EXPECT_NE(err.find("run this script as root"), std::string::npos) << err;
  EXPECT_NE(err.find("apt-get install -y --no-install-recommends build-essential"),
            std::string::npos)
      << err;
  EXPECT_EQ(err.find("command not found"), std::string::npos) << err;
}

}  // namespace
}  // namespace reft
