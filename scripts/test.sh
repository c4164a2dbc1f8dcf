#!/usr/bin/env bash
# The whole test suite: a normal build (every test, real Apache Kafka included), then the same suite under
# AddressSanitizer + UndefinedBehaviorSanitizer with scaled-down stream sizes (LEDGER_TEST_SCALE) and without
# the real-Kafka label (those exercise the broker, not our memory safety, and are the slowest).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

bash scripts/setup.sh build
echo "== tests (RelWithDebInfo)"
ctest --test-dir build --output-on-failure -j "$jobs" --timeout 1200

bash scripts/setup.sh build-asan -DLEDGER_SANITIZE=ON -DLEDGER_BUILD_BENCH=OFF
echo "== tests (ASan + UBSan)"
LEDGER_TEST_SCALE=0.25 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" --timeout 1200 -LE kafka-real
