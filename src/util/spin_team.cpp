#include "util/spin_team.h"

#include <ATen/Parallel.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

namespace reft {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// How long a helper keeps polling after its last job before it blocks. Decode steps issue a
// product every few microseconds and a new step within well under a millisecond.
constexpr auto kPollWindow = std::chrono::microseconds(1500);

class Team {
 public:
  static Team& get() {
    // Never destroyed: helpers may still be polling when static destructors run at exit.
    static Team* team = [] {
      auto* t = new Team;
      pthread_atfork(nullptr, nullptr, [] { get().forget_helpers(); });
      return t;
    }();
    return *team;
  }

  int size() const { return std::max(1, at::get_num_threads()); }

  void run(int parts, void (*job)(void*, int, int), void* context) {
    parts = std::min(parts, size());
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    if (parts <= 1 || !lock.owns_lock() || at::in_parallel_region()) {
      for (int p = 0; p < parts; ++p) job(context, p, parts);
      return;
    }
    while (static_cast<int>(helpers_.size()) < parts - 1) start_helper();
    job_ = job;
    context_ = context;
    parts_ = parts;
    pending_.store(parts - 1, std::memory_order_relaxed);
    for (int h = 0; h < parts - 1; ++h) {
      Helper& helper = *helpers_[h];
      helper.go.fetch_add(1, std::memory_order_seq_cst);
      if (helper.sleeping.load(std::memory_order_seq_cst)) helper.go.notify_one();
    }
    job(context, 0, parts);
    while (pending_.load(std::memory_order_acquire) != 0) cpu_relax();
  }

 private:
  // In a forked child only the forking thread exists: the helpers (and whoever held the lock) are
  // gone, so the child starts a team of its own. Their records are leaked, not destroyed.
  void forget_helpers() {
    for (auto& h : helpers_) (void)h.release();
    helpers_.clear();
    new (&mutex_) std::mutex;
  }

  struct Helper {
    std::atomic<uint32_t> go{0};  // bumped once per job for this helper
    // Set while the helper blocks: libstdc++'s notify makes a futex call even with no waiter.
    std::atomic<bool> sleeping{false};
  };

  void start_helper() {
    const int part = static_cast<int>(helpers_.size()) + 1;
    helpers_.push_back(std::make_unique<Helper>());
    std::thread([this, part, helper = helpers_.back().get()] { loop(part, *helper); }).detach();
  }

  // Only the caller bumps `go`, and it waits for every signalled helper before the next job, so
  // job_, context_ and parts_ (written before the release bump) are stable while a helper runs.
  void loop(int part, Helper& self) {
    uint32_t seen = 0;
    for (;;) {
      auto deadline = std::chrono::steady_clock::now() + kPollWindow;
      for (uint32_t spins = 1; self.go.load(std::memory_order_acquire) == seen; ++spins) {
        cpu_relax();
        if (spins % 256 == 0) {
          // Let another runnable thread (an OpenMP or BLAS worker) have this core meanwhile.
          sched_yield();
          if (std::chrono::steady_clock::now() > deadline) {
            // Either the caller sees `sleeping` and notifies, or this sees the new `go`.
            self.sleeping.store(true, std::memory_order_seq_cst);
            if (self.go.load(std::memory_order_seq_cst) == seen) self.go.wait(seen);
            self.sleeping.store(false, std::memory_order_relaxed);
            deadline = std::chrono::steady_clock::now() + kPollWindow;
          }
        }
      }
      ++seen;
      job_(context_, part, parts_);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  std::mutex mutex_;  // one caller at a time
  std::vector<std::unique_ptr<Helper>> helpers_;
  std::atomic<int> pending_{0};
  void (*job_)(void*, int, int) = nullptr;
  void* context_ = nullptr;
  int parts_ = 0;
};

}  // namespace

void spin_team_run(int parts, void (*job)(void*, int, int), void* context) {
  Team::get().run(parts, job, context);
}

int spin_team_size() { return Team::get().size(); }

}  // namespace reft
