#!/usr/bin/env bash
# Builds what benches/gpu_run.sh runs on the GPU machine (which has no Rust toolchain and
# no Vulkan loader) and packs it, with ../shared/gpu/bundle.sh, into .device/:
#   .device/bin/    the GPU bench and the facade's GPU tests (gpu_grad, gpu_activity)
#   .device/tests/  the runtime's GPU tests (its unit tests and tests/gpu)
# and downloads into .gl/ the Vulkan loader and GL dispatch libraries the NVIDIA driver
# needs there (libGLX_nvidia, its Vulkan driver, links against libglvnd).
# Then, from the device tool: run `bash benches/gpu_run.sh` with carry [".device", ".gl"].
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.gl/' "$exclude" 2>/dev/null || echo /.gl/ >>"$exclude"
if ! ls .gl/libglvnd0_*.deb >/dev/null 2>&1; then
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update -qq
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
../shared/gpu/bundle.sh --lib --tests -p ferrax-runtime
tmp=$(mktemp -d)
mkdir -p "$tmp/tests"
cp .device/bin/ferrax_runtime-* .device/bin/gpu-* "$tmp/tests/"
../shared/gpu/bundle.sh --bench gpu --test gpu_grad --test gpu_activity
mv "$tmp/tests" .device/tests
rm -rf "$tmp"
du -sh .device .gl
