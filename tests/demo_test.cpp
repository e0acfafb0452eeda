// `reft demo` and the example data of the README walkthroughs: the demo on the shipped
// stories260K reproduces every taught answer (checked again through `reft generate` with the
// adapter it wrote) and prints no control characters; every file in examples/data parses into the
// records its walkthrough needs; the classification walkthrough reaches the accuracy the README
// states.

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "test_util.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::reft;
using test::TempDir;

const fs::path kSource = REFT_SOURCE_DIR;
const fs::path kModel = kSource / "models/stories260K";
const fs::path kData = kSource / "examples/data";

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The first control character (C0 other than '\n', DEL, or C1 in UTF-8) in `text`, as its offset;
// npos when there is none.
size_t first_control_character(const std::string& text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\n') || c == 0x7f) return i;
    if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(text[i + 1]) <= 0x9f)
      return i;
  }
  return std::string::npos;
}

// The text after `label` on a line "  label  text  [tag]" (tag removed).
std::string field(const std::string& line, const std::string& label) {
  std::string rest = test::trim(line.substr(line.find(label) + label.size()));
  if (const auto tag = rest.rfind("  ["); tag != std::string::npos) rest = rest.substr(0, tag);
  return test::trim(rest);
}

struct DemoBlock {
  std::string prompt, before, after, taught, tag;
};

TEST(Demo, ReproducesEveryTaughtAnswerOnTheShippedModel) {
  ASSERT_TRUE(fs::exists(kModel / "model.safetensors")) << kModel;
  TempDir tmp;
  const auto r = reft({"demo", "--output", (tmp / "demo").string()});
  std::cout << r.out;
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(first_control_character(r.out), std::string::npos) << r.out;
  EXPECT_EQ(first_control_character(r.err), std::string::npos) << r.err;

  std::vector<DemoBlock> taught;
  DemoBlock untaught;
  const auto lines = lines_of(r.out);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind("prompt ", 0) == 0 && i + 3 < lines.size()) {
      taught.push_back({field(lines[i], "prompt"), field(lines[i + 1], "before"),
                        field(lines[i + 2], "after"), field(lines[i + 3], "taught"),
                        lines[i + 3].substr(lines[i + 3].rfind('['))});
    } else if (lines[i].rfind("untaught ", 0) == 0 && i + 2 < lines.size()) {
      untaught = {field(lines[i], "untaught"), field(lines[i + 1], "before"),
                  field(lines[i + 2], "after"), "", ""};
    }
  }
  ASSERT_EQ(taught.size(), 5u) << r.out;
  for (const auto& t : taught) {
    EXPECT_EQ(t.after, t.taught) << t.prompt;
    EXPECT_EQ(t.tag, "[reproduced exactly]") << t.prompt;
    EXPECT_NE(t.before, t.taught) << "the untouched model should not know " << t.prompt;
  }
  EXPECT_NE(r.out.find("5/5 taught answers reproduced exactly"), std::string::npos) << r.out;

  // The untaught prompt still gets a story: many words, none of the taught answers.
  ASSERT_FALSE(untaught.prompt.empty()) << r.out;
  EXPECT_GE(std::count(untaught.after.begin(), untaught.after.end(), ' '), 15) << untaught.after;
  for (const auto& t : taught) EXPECT_EQ(untaught.after.find(t.taught), std::string::npos);

  // The adapter the demo wrote gives the same answers through `reft generate`.
  for (const auto& t : taught) {
    const auto g = reft({"generate", "--model", kModel.string(), "--adapter",
                         (tmp / "demo").string(), "--prompt", t.prompt, "--max-new-tokens", "32"});
    ASSERT_EQ(g.status, 0) << g.err;
    EXPECT_EQ(test::trim(g.out), t.taught) << t.prompt;
  }
}

TEST(Demo, MissingModelIsOneLine) {
  TempDir tmp;
  test::expect_error(
      reft({"demo", "--model", (tmp / "nowhere").string(), "--output", (tmp / "out").string()}), 1,
      "[demo]");
}

std::vector<json> read_jsonl(const fs::path& file) {
  std::vector<json> rows;
  std::ifstream in(file);
  EXPECT_TRUE(in.good()) << file;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

// Every example file has the fields its walkthrough's command reads.
TEST(ExamplesData, FilesParse) {
  const auto train = read_jsonl(kData / "animals-train.jsonl");
  const auto held_out = read_jsonl(kData / "animals-test.jsonl");
  EXPECT_EQ(train.size(), 270u);
  EXPECT_EQ(held_out.size(), 90u);
  for (const auto* rows : {&train, &held_out})
    for (const auto& row : *rows) {
      ASSERT_TRUE(row.at("text").is_string());
      const auto label = row.at("label").get<std::string>();
      EXPECT_TRUE(label == "cat" || label == "dog" || label == "bird") << label;
      EXPECT_NE(row["text"].get<std::string>().find(label), std::string::npos) << row;
    }
  for (const auto& row : read_jsonl(kData / "animals-new.jsonl"))
    EXPECT_TRUE(row.at("text").is_string());

  const auto names = read_jsonl(kData / "names_at_name.jsonl");
  EXPECT_EQ(names.size(), 200u);
  for (const auto& row : names) {
    const auto base = row.at("base").get<std::string>(),
               source = row.at("source").get<std::string>();
    const auto label = row.at("label").get<std::string>();
    EXPECT_EQ(label[0], ' ') << row;
    EXPECT_NE(source.find("named" + label + "."), std::string::npos) << row;
    EXPECT_EQ(base.find("named" + label + "."), std::string::npos) << row;
    EXPECT_GT(row.at("base_position").get<int64_t>(), 0);
    EXPECT_GT(row.at("source_position").get<int64_t>(), 0);
  }

  const auto steer = read_jsonl(kData / "steer_tom.jsonl");
  EXPECT_EQ(steer.size(), 16u);
  for (const auto& row : steer) {
    EXPECT_NE(row.at("positive").get<std::string>().find("Tom"), std::string::npos);
    EXPECT_EQ(row.at("negative").get<std::string>().find("Tom"), std::string::npos);
  }

  const auto stories = read_jsonl(kData / "stories260K-pairs.jsonl");
  ASSERT_EQ(stories.size(), 5u);
  const auto golden = test::shared_dir() / "golden/reft/train-run-stories260K.json";
  if (!test::shared_dir().empty() && fs::exists(golden)) {
    std::ifstream in(golden);
    const auto pairs = json::parse(in)["config"]["pairs"];
    ASSERT_EQ(pairs.size(), stories.size());
    for (size_t i = 0; i < stories.size(); ++i) {
      EXPECT_EQ(stories[i]["prompt"], pairs[i][0]);
      EXPECT_EQ(stories[i]["completion"], pairs[i][1]);
    }
  }
}

// The README's "Classification" commands, as written there, reach the held-out accuracy it states.
TEST(ExamplesData, ClassificationWalkthroughReachesTheReadmeAccuracy) {
  std::ifstream readme_file(kSource / "README.md");
  const std::string readme{std::istreambuf_iterator<char>(readme_file), {}};
  std::smatch stated;
  ASSERT_TRUE(
      std::regex_search(readme, stated, std::regex(R"(reaches (\d+)%\s+held-out accuracy)")))
      << "README.md should state the classification walkthrough's accuracy";
  TempDir tmp;
  const auto model = kModel.string();
  const auto t = reft({"train", "--model", model, "--task", "classification", "--data",
                       (kData / "animals-train.jsonl").string(), "--output",
                       (tmp / "animal-adapter").string(), "--layers", "1;3", "--rank", "4",
                       "--epochs", "6", "--batch-size", "16", "--lr", "1e-2"});
  ASSERT_EQ(t.status, 0) << t.err;
  const auto e = reft({"eval", "--model", model, "--adapter", (tmp / "animal-adapter").string(),
                       "--data", (kData / "animals-test.jsonl").string()});
  ASSERT_EQ(e.status, 0) << e.err;
  const double accuracy = json::parse(e.out).at("accuracy").get<double>();
  EXPECT_EQ(static_cast<int>(accuracy * 100 + 0.5), std::stoi(stated[1].str())) << e.out;
}

}  // namespace
}  // namespace reft
