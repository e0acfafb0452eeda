#pragma once
// A small team of helper threads for short, memory-bound parallel jobs issued back to back (the
// matrix–vector products of a decode step). OpenMP's passive threads sleep between parallel
// regions and take tens of microseconds to wake, about as long as one such product takes; these
// helpers keep polling for a short window after each job (yielding the core to other runnable
// threads while they poll) and only then block, so a sequence of jobs pays no wake-up between them.

#include <cstdint>

namespace reft {

/// Runs `job(part, parts)` for part = 0 … parts − 1, part 0 on the calling thread, the others on
/// helpers; returns when all are done. `parts` is capped by the helpers available (at most
/// at::get_num_threads() − 1 of them); when the team is busy with another caller, or the caller
/// is itself inside a parallel region, every part runs on the caller. `job` must not throw.
void spin_team_run(int parts, void (*job)(void* context, int part, int parts), void* context);

/// The most parts spin_team_run runs at once: at::get_num_threads() (the caller and its helpers).
int spin_team_size();

}  // namespace reft
