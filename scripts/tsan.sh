#!/usr/bin/env bash
# ThreadSanitizer run of the threading tests (tsan/CMakeLists.txt): builds build-tsan/ and runs
# tests/threads_test.cpp there. Each test thread runs its kernels on one OpenMP thread
# (OMP_NUM_THREADS=1): libgomp is not instrumented, so TSan cannot see its barriers.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S tsan -B build-tsan -G Ninja
cmake --build build-tsan -j "$(nproc)"
OMP_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
  build-tsan/threads_test --gtest_color=no
