#pragma once
// File helpers: whole-file reads, JSON files with errors that name the file, atomic writes.

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

namespace reft {

/// The whole content of `path`; throws reft::Error "[path] cannot read: <reason>".
std::string read_file(const std::filesystem::path& path);

/// Parses `path` as JSON; throws reft::Error naming the file and the parse position.
nlohmann::json read_json_file(const std::filesystem::path& path);

/// Writes a file through a temporary sibling and rename(2), so a reader (or a crash) never sees a
/// partial file. `write` fills the stream; a failed stream is an error naming `path`.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::ostream&)>& write);

/// Replaces directory `dir` with the content `fill` writes into a fresh temporary sibling
/// directory: the old directory (if any) is swapped out with renames and removed afterwards.
void write_directory_atomically(const std::filesystem::path& dir,
                                const std::function<void(const std::filesystem::path&)>& fill);

}  // namespace reft
