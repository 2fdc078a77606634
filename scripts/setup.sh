#!/usr/bin/env bash
# Installs every Debian package kumo's build, tests and benchmarks need (idempotent), then builds.
# Usage: scripts/setup.sh            (as root on Debian 12)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libexpected-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  liburing-dev libseccomp-dev zlib1g-dev libzstd-dev libsqlite3-dev
  qemu-system-x86 qemu-utils fio linux-perf
  busybox-static cpio lz4 iproute2 util-linux python3 bc
  linux-image-cloud-amd64 linux-image-amd64 e2fsprogs kmod
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
