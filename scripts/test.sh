#!/usr/bin/env bash
# Runs the whole test suite: unit, kvm (skip without /dev/kvm) and e2e tests through CTest.
# Usage: scripts/test.sh [ctest args...]     (after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build
ctest --test-dir build --output-on-failure --timeout 600 "$@"
