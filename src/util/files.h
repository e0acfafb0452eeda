#pragma once
// File helpers: whole-file reads, JSON files with errors that name the file, atomic writes.

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <string_view>

namespace reft {

/// The most bytes `read_file` reads unless told otherwise (1 GiB): every text or JSON input reft
/// reads whole is far smaller; tensors are mapped, not read.
inline constexpr size_t kMaxReadBytes = size_t{1} << 30;

/// Opens `path` read-only and returns the descriptor, refusing anything but a regular file (a
/// FIFO, a device such as /dev/zero, a directory, a socket) with one line "[path] expected a
/// regular file, found a FIFO" before any read can block. The caller closes the descriptor.
int open_regular_file(const std::filesystem::path& path);

/// Size of the regular file behind an open descriptor.
size_t regular_file_size(int fd);

/// The whole content of a regular file of at most `max_bytes` bytes; throws reft::Error
/// "[path] expected …, found …" when it is missing, not a regular file, too large or unreadable.
std::string read_file(const std::filesystem::path& path, size_t max_bytes = kMaxReadBytes);

/// Parses JSON text, nesting at most 256 levels; errors are one line "[where] expected …".
nlohmann::json parse_json_bounded(std::string_view text, const std::string& where);

/// An nlohmann exception's message without its "[json.exception.…]" prefix.
std::string json_error_summary(const nlohmann::json::exception& e);

/// A value taken from a file, for an error message: compact JSON in ASCII (control characters and
/// non-ASCII escaped, so the message stays one line) cut to `max_chars`, then "…".
std::string json_excerpt(const nlohmann::json& value, size_t max_chars = 80);

/// Parses `path` as JSON (at most `max_bytes`, nesting bounded); throws reft::Error naming the
/// file and the parse position.
nlohmann::json read_json_file(const std::filesystem::path& path, size_t max_bytes = kMaxReadBytes);

/// Writes a file through a temporary sibling and rename(2), so a reader (or a crash) never sees a
/// partial file. `write` fills the stream; a failed stream is an error naming `path`.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::ostream&)>& write);

/// Replaces directory `dir` with the content `fill` writes into a fresh temporary sibling
/// directory "<dir>.tmp.<pid>.<n>". Where `dir` exists the two are swapped in one step
/// (renameat2 RENAME_EXCHANGE on Linux), so `dir` is always the old or the new complete
/// directory, even after a kill; where the filesystem cannot, two renames with the old copy kept
/// as "<dir>.old.tmp.<pid>.<n>" in between. A `fill` that throws leaves `dir` untouched. Starts
/// with recover_directory_write(dir).
void write_directory_atomically(const std::filesystem::path& dir,
                                const std::function<void(const std::filesystem::path&)>& fill);

/// Repairs what a killed write_directory_atomically left beside `dir`: when `dir` is missing,
/// its complete old copy (if any) is moved back; temporary siblings of writers that no longer run
/// are removed. Those of live processes (this one included) are left alone.
void recover_directory_write(const std::filesystem::path& dir);

/// Tests only: makes write_directory_atomically take the two-rename path of filesystems without
/// RENAME_EXCHANGE.
void disable_rename_exchange_for_testing(bool disabled);

}  // namespace reft
