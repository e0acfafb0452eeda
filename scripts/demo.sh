#!/usr/bin/env bash
# Installs what is missing, builds reft, and runs `reft demo`: on the pretrained stories260K shipped
# in models/ (a 260K-parameter TinyStories LLaMA, MIT; no download), a LoReFT learns five made-up
# answers in a few seconds. It prints the model's own stories before, every taught answer
# reproduced exactly by greedy generation after, and a story for an untaught prompt; it exits 1 if
# an answer is not reproduced. Extra arguments go to `reft demo` (e.g. --steps, --rank, --model).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)" --target reft_cli
./build/bin/reft demo --output build/demo "$@"
