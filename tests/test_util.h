#pragma once
// Helpers shared by the tests: where the reference data lives, temporary folders, JSONL reading.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "reft/error.h"

namespace reft::test {

/// The message of the reft::Error that `f` throws; "(no error)" when it returns. Other exceptions
/// pass through (a test then fails with them).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

/// ../shared beside the checkout, or $REFT_SHARED; empty when neither exists.
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("REFT_SHARED"); env && *env) return env;
  std::filesystem::path dir = REFT_SHARED_DIR;
  return std::filesystem::is_directory(dir) ? dir : std::filesystem::path{};
}

/// Skips the current test when the shared reference data (or a subfolder of it) is absent.
#define REFT_REQUIRE_SHARED(sub)                                                          \
  const std::filesystem::path shared_path = ::reft::test::shared_dir() / (sub);           \
  if (::reft::test::shared_dir().empty() || !std::filesystem::exists(shared_path))        \
  GTEST_SKIP() << "reference data " << (sub)                                              \
               << " not found: put the shared folder beside the checkout (../shared) or " \
                  "set REFT_SHARED"

/// A fresh empty directory under the build tree, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::path(REFT_BINARY_DIR) / "tmp" /
            ("t" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

/// Every line of a JSONL file, parsed.
inline std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::vector<nlohmann::json> rows;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

/// Sorted list of files in `dir` whose name ends with `suffix`.
inline std::vector<std::filesystem::path> files_with_suffix(const std::filesystem::path& dir,
                                                            const std::string& suffix) {
  std::vector<std::filesystem::path> out;
  if (!std::filesystem::is_directory(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// The 3-class classification task of the tests: which animal (cat, dog, bird) a short templated
/// sentence mentions, with names and places varied; 960 {"text", "label"} objects, shuffled by
/// seed.
inline std::vector<nlohmann::json> animal_sentences(uint64_t seed) {
  const std::vector<std::string> animals = {"cat", "dog", "bird"};
  const std::vector<std::string> names = {"Lily", "Ben", "Tom",  "Sue", "Max",
                                          "Mia",  "Sam", "Anna", "Tim", "Lucy"};
  const std::vector<std::string> places = {"park",   "garden", "house", "school",
                                           "forest", "beach",  "farm",  "river"};
  const std::vector<std::string> templates = {
      "{n} saw a {a} in the {p}.", "In the {p}, {n} played with a {a}.",
      "The {a} followed {n} to the {p}.", "{n} gave the {a} some food at the {p}."};
  std::vector<nlohmann::json> out;
  for (const auto& a : animals)
    for (const auto& n : names)
      for (const auto& p : places)
        for (const auto& tmpl : templates) {
          std::string s = tmpl;
          for (auto [key, value] :
               {std::pair<std::string, std::string>{"{n}", n}, {"{a}", a}, {"{p}", p}})
            s.replace(s.find(key), key.size(), value);
          out.push_back({{"text", s}, {"label", a}});
        }
  std::mt19937_64 rng(seed);
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

}  // namespace reft::test
