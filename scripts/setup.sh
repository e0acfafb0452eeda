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
  libcpp-httplib-dev    # reft serve: packaged, maintained HTTP server (thread pool, chunked SSE, body limits)
  clang libclang-rt-dev # libFuzzer targets of fuzz/ (scripts/fuzz.sh)
  nodejs                # reft serve's client tests (openai npm client, load script), chat-template reference
  chromium              # reft serve's web page tested in a real headless browser (serve_web_test)
)

script_dir="${BASH_SOURCE[0]%/*}"  # no dirname: PATH may be minimal (see cli_usability_test)
[ "$script_dir" = "${BASH_SOURCE[0]}" ] && script_dir=.

# npm packages, each folder pinned by its package-lock.json, installed once npm is there (so after
# the Debian packages): optional, without npm or network the tests that use them skip or fall back.
#   tools/jinja-ref: the reference renderer of chat templates (@huggingface/jinja); with it
#     chat_template_test also re-checks reft live, without it the recorded results are used.
#   tests/serve: the official OpenAI client (openai) that serve_client_test drives reft serve with.
npm_ci() {  # FOLDER PACKAGE WHAT-IS-SKIPPED-WITHOUT-IT
  command -v npm >/dev/null 2>&1 || return 0
  [ -d "$script_dir/../$1/node_modules/$2" ] && return 0
  (cd "$script_dir/../$1" && npm ci --no-audit --no-fund --silent >/dev/null 2>&1) ||
    echo "setup: note: npm ci in $1 failed; $3 is skipped" >&2
}
install_npm_packages() {
  npm_ci tools/jinja-ref @huggingface/jinja "the live chat-template check"
  npm_ci tests/serve openai "the openai-client test of reft serve"
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian's nodejs comes without npm (package npm); NodeSource's nodejs includes it and conflicts
# with Debian's npm, so npm is asked for only when the command is missing.
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  install_npm_packages
  exit 0
fi

install_line="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  # A pristine Debian has no sudo: say what to run as root instead of "sudo: command not found".
  if ! command -v sudo >/dev/null 2>&1; then
    echo "setup: missing packages: ${missing[*]}" >&2
    echo "setup: not root and sudo is not installed; run this script as root (su -c $0)," \
      "or run as root:" >&2
    echo "  $install_line" >&2
    exit 1
  fi
  sudo_cmd=(sudo)
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_npm_packages
