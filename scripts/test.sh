#!/usr/bin/env bash
# Installs what is missing, builds reft and runs its test suite (CPU, offline, a few minutes).
#   scripts/test.sh              Release build in build/, every test
#   scripts/test.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/,
#                                the unit-labelled tests
# Tests that need the reference data skip with a message when ../shared is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

jobs=$(nproc)
if [ "${1:-}" = "--sanitize" ]; then
  # -O1 with line tables only: ASan's recommended setting, and far quicker to build than -O2 -g.
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -g1" \
    -DREFT_SANITIZE=ON -DREFT_PCH=ON
  cmake --build build-asan -j "$jobs" --target unit_tests
  # libtorch and OpenMP allocate at exit in ways ASan's leak checker reports as leaks; memory errors
  # and undefined behaviour still abort.
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan -L unit -j "$jobs" --output-on-failure
else
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j "$jobs"
  ctest --test-dir build -j "$jobs" --output-on-failure
fi
