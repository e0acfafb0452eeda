#!/usr/bin/env bash
# Installs every Debian 12 package reft needs to build, test and run fast.
# A no-op (no root, no network) when everything is already present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev          # tensors, autograd, kernels (CPU build of libtorch 1.13)
  libopenblas0-pthread  # without it libtorch's matmuls run on reference BLAS (~30x slower)
  nlohmann-json3-dev    # config.json, tokenizer.json, safetensors headers
  libpcre2-dev          # Unicode regexes of byte-level BPE pre-tokenizers
  libicu-dev            # Unicode normalization (NFC/NFKC) and case mapping in tokenizers
  libsentencepiece-dev  # tokenizer.model when a model has no tokenizer.json
  libgtest-dev libgmock-dev
  zlib1g-dev            # deflate entries in torch.save zip archives (pyreft .bin)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
