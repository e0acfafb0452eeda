#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (clang, ASan + UBSan) in build-fuzz/, replays the
# regression corpus fuzz/corpus/<target>/ and then fuzzs each target for a bounded time from it.
# Fails when any input crashes, leaks, runs past -timeout or grows past -rss_limit_mb.
#   scripts/fuzz.sh                    every target, FUZZ_SECONDS (default 30) each
#   scripts/fuzz.sh data_fuzzer ...    only these targets
#   FUZZ_SECONDS=0 scripts/fuzz.sh     replay the regression corpus only
# New inputs found while fuzzing go to a scratch corpus, not into the repository; failing inputs
# are kept under $FUZZ_ARTIFACTS (default build-fuzz/artifacts/) and printed as hex.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-30}
artifacts=${FUZZ_ARTIFACTS:-build-fuzz/artifacts}
all_targets=(torch_archive_fuzzer tokenizer_json_fuzzer sentencepiece_fuzzer vocab_files_fuzzer
             tokenizer_config_fuzzer data_fuzzer safetensors_fuzzer chat_template_fuzzer)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

# The largest input worth mutating, per target (the seeds' sizes plus room to grow).
max_len() {
  case "$1" in
    tokenizer_json_fuzzer) echo 20000 ;;
    sentencepiece_fuzzer | tokenizer_config_fuzzer) echo 12000 ;;
    safetensors_fuzzer | chat_template_fuzzer) echo 8192 ;;
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
failed=()
for t in "${targets[@]}"; do
  bin=build-fuzz/$t
  seeds=fuzz/corpus/$t
  mkdir -p "$seeds" "$scratch/$t"
  start=$SECONDS
  status=0
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
  if [ $status -ne 0 ]; then
    echo "fuzz: $t FAILED (exit $status) after $((SECONDS - start)) s:" >&2
    tail -n 60 "$scratch/$t".*.log >&2 || true
    for f in "$artifacts/$t"-*; do
      [ -f "$f" ] && echo "fuzz: input $f: $(head -c 512 "$f" | od -An -tx1 | tr -d ' \n')" >&2
    done
    failed+=("$t")
  else
    runs=$(grep -ho 'stat::number_of_executed_units: *[0-9]*' "$scratch/$t".fuzz.log 2>/dev/null |
      grep -o '[0-9]*$' || echo 0)
    echo "fuzz: $t ok ($(ls "$seeds" | wc -l) regression inputs, ${runs:-0} runs," \
      "$((SECONDS - start)) s)"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failing targets: ${failed[*]}" >&2
  exit 1
fi
