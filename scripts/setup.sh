#!/usr/bin/env bash
# Installs what anvil needs from Debian's packages (only what is missing) and
# builds it into build/. Idempotent: a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake ninja-build g++ ccache libyaml-cpp-dev libboost-graph-dev libeigen3-dev catch2
          libcli11-dev nlohmann-json3-dev libfmt-dev python3-numpy python3-yaml
          libboost-context-dev  # the simt backend's fibers
          clang libclang-rt-14-dev  # clang: the libFuzzer target (scripts/fuzz/libfuzzer.sh)
          libonnx-dev libprotobuf-dev  # the ONNX importer (src/onnx_import)
          libonnx-testdata python3-onnx python3-torch python3-torchvision)  # its tests: node tests, exported models
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x /usr/local/cuda/bin/nvcc ] && [ ! -f /usr/local/cuda/include/nvrtc.h ]; then
  echo "setup: the CUDA Toolkit (NVRTC) is expected at /usr/local/cuda" >&2
  exit 1
fi

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
[ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCUDAToolkit_ROOT=/usr/local/cuda "${launcher[@]}" >/dev/null
cmake --build build -j "$(nproc)"
echo "setup: built build/anvil"
