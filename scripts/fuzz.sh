#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (clang, ASan + UBSan) in build-fuzz/, replays the
# regression corpus fuzz/corpus/<target>/ and then fuzzes each target for a bounded time from it.
# Fails when any input crashes, leaks, runs past -timeout or grows past -rss_limit_mb.
#   scripts/fuzz.sh                    every target (fuzz/*_fuzzer.cpp), FUZZ_SECONDS (default 30)
#                                      each, FUZZ_JOBS (default: the cores) at a time: 13 targets
#                                      take about 4 minutes on 2 cores after the build
#   scripts/fuzz.sh data_fuzzer ...    only these targets
#   FUZZ_SECONDS=0 scripts/fuzz.sh     replay the regression corpus only
# New inputs found while fuzzing go to a scratch corpus, not into the repository; failing inputs
# are kept under $FUZZ_ARTIFACTS (default build-fuzz/artifacts/) and printed as hex.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-30}
artifacts=${FUZZ_ARTIFACTS:-build-fuzz/artifacts}
all_targets=()
for f in fuzz/*_fuzzer.cpp; do all_targets+=("$(basename "$f" .cpp)"); done
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

# The largest input worth mutating, per target (the seeds' sizes plus room to grow).
max_len() {
  case "$1" in
    tokenizer_json_fuzzer) echo 20000 ;;
    sentencepiece_fuzzer | tokenizer_config_fuzzer) echo 12000 ;;
    safetensors_fuzzer | chat_template_fuzzer | adapter_fuzzer) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

if ! command -v clang++ >/dev/null 2>&1; then
  echo "fuzz: clang++ not found; run scripts/setup.sh" >&2
  exit 1
fi
cmake -S fuzz -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=None >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]}"

export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1:allocator_may_return_null=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p "$artifacts"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
common=(-rss_limit_mb=2048 -timeout=10 -print_final_stats=1)
# One target: replay, then fuzz; its exit status and seconds go to $scratch/<target>.result.
run_target() {
  local t=$1 bin=build-fuzz/$1 seeds=fuzz/corpus/$1 start=$SECONDS status=0
  mkdir -p "$seeds" "$scratch/$t"
  # Replay: every regression input once, one by one, so a failure names its file.
  if compgen -G "$seeds/*" >/dev/null; then
    "$bin" "${common[@]}" -artifact_prefix="$artifacts/$t-" "$seeds"/* \
      >"$scratch/$t.replay.log" 2>&1 || status=$?
  fi
  if [ $status -eq 0 ] && [ "$seconds" -gt 0 ]; then
    timeout $((seconds + 120)) "$bin" "${common[@]}" -max_total_time="$seconds" \
      -max_len="$(max_len "$t")" -artifact_prefix="$artifacts/$t-" "$scratch/$t" "$seeds" \
      >"$scratch/$t.fuzz.log" 2>&1 || status=$?
  fi
  echo "$status $((SECONDS - start))" >"$scratch/$t.result"
}
# FUZZ_JOBS targets at a time (default: one per core; each is single-threaded).
parallel=${FUZZ_JOBS:-$(nproc)}
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  run_target "$t" &
done
wait
failed=()
for t in "${targets[@]}"; do
  status=1 elapsed=0  # no result: the run itself died
  [ -f "$scratch/$t.result" ] && read -r status elapsed <"$scratch/$t.result"
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $t FAILED (exit $status) after $elapsed s:" >&2
    tail -n 60 "$scratch/$t".*.log >&2 || true
    for f in "$artifacts/$t"-*; do
      [ -f "$f" ] && echo "fuzz: input $f: $(head -c 512 "$f" | od -An -tx1 | tr -d ' \n')" >&2
    done
    failed+=("$t")
  else
    runs=$(grep -ho 'stat::number_of_executed_units: *[0-9]*' "$scratch/$t".fuzz.log 2>/dev/null |
      grep -o '[0-9]*$' || echo 0)
    echo "fuzz: $t ok ($(ls "fuzz/corpus/$t" | wc -l) regression inputs, ${runs:-0} runs," \
      "$elapsed s)"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failing targets: ${failed[*]}" >&2
  exit 1
fi
