#!/usr/bin/env bash
# Installs what is missing, builds reft, and runs the main job on the built-in default: a tiny seeded
# LLaMA (no download), a LoReFT trained on the built-in example pairs, the loss falling, and
# generations before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)" --target reft_cli
./build/bin/reft demo --output build/demo "$@"
