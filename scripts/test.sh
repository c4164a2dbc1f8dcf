#!/usr/bin/env bash
# The whole test suite: a normal build, then the same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

bash scripts/setup.sh build
echo "== tests (RelWithDebInfo)"
ctest --test-dir build --output-on-failure -j "$jobs" --timeout 600

bash scripts/setup.sh build-asan -DLEDGER_SANITIZE=ON -DLEDGER_BUILD_BENCH=OFF
echo "== tests (ASan + UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" --timeout 900
