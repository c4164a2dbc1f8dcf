#!/usr/bin/env bash
# The whole test suite: the format, layering and function-length checks, a normal build and its tests, the
# `kafka-real` suite (real Apache Kafka brokers fetched with Maven by scripts/kafka/cluster.sh; one test at a
# time, each starts and stops its own brokers), then the suite again under AddressSanitizer +
# UndefinedBehaviorSanitizer with scaled-down stream sizes (LEDGER_TEST_SCALE). The sanitizer build leaves out
# the real-broker suite: it exercises processes and brokers, and the same publisher code runs under the
# sanitizers through the embedded broker.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

bash scripts/setup.sh build
echo "== format (clang-format), layering (components include only what they depend on), function length"
bash scripts/check_format.sh
python3 scripts/check_layers.py
python3 scripts/check_function_length.py
echo "== tests (RelWithDebInfo)"
ctest --test-dir build --output-on-failure -j "$jobs" --timeout 1200 -LE kafka-real
echo "== tests against real Apache Kafka (kafka-real)"
ctest --test-dir build --output-on-failure -j 1 --timeout 1200 -L kafka-real

bash scripts/setup.sh build-asan -DLEDGER_SANITIZE=ON -DLEDGER_BUILD_BENCH=OFF
echo "== tests (ASan + UBSan)"
LEDGER_TEST_SCALE=0.25 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" --timeout 1200
