// Crash safety of reft train's outputs: a lock against two trainings into one folder, a full disk
// that fails cleanly and keeps the previous adapter, kill -9 at seeded moments followed by --resume
// giving the same adapter as an uninterrupted run, and checkpoints never left half-written.

#include <sys/mount.h>

#include <torch/torch.h>

#include <fstream>
#include <random>

#include "cli_util.h"
#include "reft/safetensors.h"
#include "torch_test_util.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using test::Child;
using test::LimitedRun;
using test::Limits;
using test::TempDir;

// Exit 1 with exactly one line "reft: error: …" containing `needle`.
void expect_one_line_error(const LimitedRun& r, const std::string& needle) {
  EXPECT_EQ(r.status, 1) << r.describe();
  EXPECT_EQ(r.signal, 0) << r.describe();
  EXPECT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.err.rfind("reft: error: ", 0), 0u) << r.describe();
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.describe();
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.describe();
}

size_t lines_in(const fs::path& file) {
  const std::string text = test::read_text(file);
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

// Waits (bounded) until `file` has at least `n` lines or the child is gone; true when reached.
bool wait_for_lines(const Child& c, const fs::path& file, size_t n, double limit_s = 120) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (lines_in(file) >= n) return true;
    if (waitpid(c.pid, nullptr, WNOHANG) == c.pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

std::vector<std::string> train_args(const fs::path& model, const fs::path& out, int steps) {
  return {"train",
          "--model",
          model.string(),
          "--output",
          out.string(),
          "--layers",
          "1",
          "--rank",
          "2",
          "--max-steps",
          std::to_string(steps),
          "--save-every",
          "1",
          "--seed",
          "7",
          "--lr",
          "0.01"};
}

std::map<std::string, torch::Tensor> adapter_tensors(const fs::path& dir) {
  auto file = SafetensorsFile::open(dir / "interventions.safetensors");
  std::map<std::string, torch::Tensor> out;
  for (const auto& e : file->entries()) out[e.name] = file->tensor(e.name).clone();
  return out;
}

void expect_same_adapter(const fs::path& a, const fs::path& b) {
  const auto ta = adapter_tensors(a), tb = adapter_tensors(b);
  ASSERT_EQ(ta.size(), tb.size());
  for (const auto& [name, t] : ta) {
    ASSERT_TRUE(tb.count(name)) << name;
    EXPECT_TRUE(torch::allclose(t, tb.at(name), /*rtol=*/0, /*atol=*/1e-6))
        << name << " differs by " << (t - tb.at(name)).abs().max().item<double>();
  }
}

// The adapter in `dir` loads and runs.
void expect_adapter_loads(const fs::path& model, const fs::path& dir) {
  auto r = test::reft_limited({"generate", "--model", model.string(), "--adapter", dir.string(),
                               "--prompt-ids", "1 4 7", "--max-new-tokens", "2", "--print-ids"},
                              {.timeout_s = 120});
  EXPECT_EQ(r.status, 0) << r.describe();
}

// A checkpoint folder, when present, is complete: never a half-written one in its place.
void expect_checkpoint_complete(const fs::path& out) {
  const fs::path ckpt = out / "checkpoint";
  if (!fs::exists(ckpt)) return;
  EXPECT_TRUE(fs::exists(ckpt / "trainer_state.json")) << ckpt;
  EXPECT_TRUE(fs::exists(ckpt / "optimizer.safetensors")) << ckpt;
  EXPECT_TRUE(fs::exists(ckpt / "adapter" / "reft_config.json")) << ckpt;
  EXPECT_TRUE(fs::exists(ckpt / "adapter" / "interventions.safetensors")) << ckpt;
}

// A seeded tiny LLaMA with its tokenizer (reft init-model), as a training needs both.
void make_model(const fs::path& dir) {
  auto r = test::reft_limited({"init-model", "--preset", "tiny", "--out", dir.string()},
                              {.timeout_s = 120});
  ASSERT_EQ(r.status, 0) << r.describe();
}

TEST(CrashSafety, SecondTrainingIntoTheSameFolderIsRefusedAndTheLockDiesWithItsProcess) {
  TempDir tmp;
  make_model(tmp / "m");
  const fs::path out = tmp / "o";
  // A long first run, holding the folder.
  Child first = test::spawn_reft(train_args(tmp / "m", out, 100000), {.address_space = 0});
  ASSERT_TRUE(wait_for_lines(first, out / "metrics.jsonl", 1)) << test::read_text(first.err_file);
  auto second = test::reft_limited(train_args(tmp / "m", out, 2), {.timeout_s = 120});
  expect_one_line_error(second, "no other training writing this folder");
  // The first is still training, undisturbed.
  EXPECT_EQ(waitpid(first.pid, nullptr, WNOHANG), 0);
  // kill -9: the kernel releases the lock; the next run proceeds.
  kill(first.pid, SIGKILL);
  const auto killed = test::wait_reft(first, 60);
  EXPECT_EQ(killed.signal, SIGKILL);
  auto third = test::reft_limited(train_args(tmp / "m", out, 2), {.timeout_s = 120});
  EXPECT_EQ(third.status, 0) << third.describe();
  expect_adapter_loads(tmp / "m", out);
}

// Trains into `out` (holding a good adapter) with file writes limited; expects a clean failure
// and the previous adapter intact.
void expect_full_disk_keeps_previous(const fs::path& model, const fs::path& out,
                                     const Limits& limits) {
  const std::string config = test::read_text(out / "reft_config.json");
  const std::string tensors = test::read_text(out / "interventions.safetensors");
  auto args = train_args(model, out, 3);
  const auto seed = std::find(args.begin(), args.end(), "--seed");
  ASSERT_NE(seed, args.end());
  seed[1] = "8";  // a different adapter than the one there
  auto r = test::reft_limited(args, limits);
  EXPECT_EQ(r.status, 1) << r.describe();
  EXPECT_EQ(r.signal, 0) << r.describe();
  // reft train reports its configuration on stderr first; the error is its one last line.
  const size_t at = r.err.find("reft: error: ");
  ASSERT_NE(at, std::string::npos) << r.describe();
  EXPECT_EQ(r.err.find('\n', at), r.err.size() - 1) << r.describe();
  EXPECT_EQ(r.err.find("reft: error: ", at + 1), std::string::npos) << r.describe();
  EXPECT_EQ(test::read_text(out / "reft_config.json"), config);
  EXPECT_EQ(test::read_text(out / "interventions.safetensors"), tensors);
  expect_adapter_loads(model, out);
  expect_checkpoint_complete(out);
  for (const auto& e : fs::directory_iterator(out))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos)
        << "temporary left behind: " << e.path();
}

TEST(CrashSafety, FullDiskByFileSizeLimitFailsCleanlyAndKeepsThePreviousAdapter) {
  TempDir tmp;
  make_model(tmp / "m");
  const fs::path out = tmp / "o";
  auto r = test::reft_limited(train_args(tmp / "m", out, 2), {.timeout_s = 120});
  ASSERT_EQ(r.status, 0) << r.describe();
  // Files may grow to 1 KiB: metrics lines fit, a tensor file does not.
  expect_full_disk_keeps_previous(tmp / "m", out,
                                  {.timeout_s = 120, .address_space = 0, .file_size = 1024});
}

TEST(CrashSafety, FullDiskOnASmallTmpfsFailsCleanlyAndKeepsThePreviousAdapter) {
  TempDir tmp;
  make_model(tmp / "m");
  const fs::path mnt = tmp / "tmpfs";
  fs::create_directories(mnt);
  if (mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=96k") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno)
                 << "); the RLIMIT_FSIZE variant covers a full disk";
  struct Unmount {
    fs::path p;
    ~Unmount() { umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  const fs::path out = mnt / "o";
  auto r = test::reft_limited(train_args(tmp / "m", out, 2), {.timeout_s = 120});
  ASSERT_EQ(r.status, 0) << r.describe();
  // Fill the rest of the tmpfs, leaving a few KiB: too little for a checkpoint.
  {
    std::ofstream fill(mnt / "fill", std::ios::binary);
    const std::string block(1024, 'x');
    while (fill.write(block.data(), block.size()) && fill.flush()) {
    }
  }
  fs::resize_file(mnt / "fill", fs::file_size(mnt / "fill") - 4096);
  expect_full_disk_keeps_previous(tmp / "m", out, {.timeout_s = 120, .address_space = 0});
}

TEST(CrashSafety, KillDashNineThenResumeGivesTheUninterruptedAdapter) {
  TempDir tmp;
  make_model(tmp / "m");
  constexpr int kSteps = 24;
  auto ref = test::reft_limited(train_args(tmp / "m", tmp / "ref", kSteps), {.timeout_s = 300});
  ASSERT_EQ(ref.status, 0) << ref.describe();
  std::mt19937 rng(20261205);
  for (int k = 0; k < 4; ++k) {
    SCOPED_TRACE("kill " + std::to_string(k));
    const fs::path out = tmp / ("o" + std::to_string(k));
    // Seeded moments: after step s is logged, plus a seeded delay of up to 30 ms.
    const size_t s = 1 + rng() % (kSteps - 2);
    const int delay_us = static_cast<int>(rng() % 30000);
    Child c = test::spawn_reft(train_args(tmp / "m", out, kSteps), {.address_space = 0});
    const bool reached = wait_for_lines(c, out / "metrics.jsonl", s);
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
    kill(c.pid, SIGKILL);
    const auto killed = test::wait_reft(c, 60);
    if (reached) {
      EXPECT_TRUE(killed.signal == SIGKILL || killed.status == 0) << killed.describe();
    }
    expect_checkpoint_complete(out);
    auto args = train_args(tmp / "m", out, kSteps);
    args.push_back("--resume");
    auto r = test::reft_limited(args, {.timeout_s = 300});
    ASSERT_EQ(r.status, 0) << r.describe();
    expect_same_adapter(tmp / "ref", out);
    EXPECT_EQ(lines_in(out / "metrics.jsonl"), static_cast<size_t>(kSteps));
  }
}

TEST(CrashSafety, KillDuringRetrainingNeverLeavesAnUnloadableAdapterAfterResume) {
  // An adapter already there; a new training into the same folder is killed at seeded moments
  // (also during its final save). The checkpoint is always complete, and --resume always ends
  // with a loadable adapter equal to the uninterrupted one.
  TempDir tmp;
  make_model(tmp / "m");
  constexpr int kSteps = 6;
  auto ref = test::reft_limited(train_args(tmp / "m", tmp / "ref", kSteps), {.timeout_s = 300});
  ASSERT_EQ(ref.status, 0) << ref.describe();
  std::mt19937 rng(77);
  for (int k = 0; k < 3; ++k) {
    SCOPED_TRACE("kill " + std::to_string(k));
    const fs::path out = tmp / ("o" + std::to_string(k));
    auto first = test::reft_limited(train_args(tmp / "m", out, kSteps), {.timeout_s = 120});
    ASSERT_EQ(first.status, 0) << first.describe();
    fs::remove(out / "metrics.jsonl");  // so that the new run's progress can be followed
    Child c = test::spawn_reft(train_args(tmp / "m", out, kSteps), {.address_space = 0});
    wait_for_lines(c, out / "metrics.jsonl", kSteps - 1 + k % 2);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 20000));
    kill(c.pid, SIGKILL);
    test::wait_reft(c, 60);
    expect_checkpoint_complete(out);
    auto args = train_args(tmp / "m", out, kSteps);
    args.push_back("--resume");
    auto r = test::reft_limited(args, {.timeout_s = 300});
    ASSERT_EQ(r.status, 0) << r.describe();
    expect_adapter_loads(tmp / "m", out);
    expect_same_adapter(tmp / "ref", out);
  }
}

}  // namespace
}  // namespace reft
