#!/usr/bin/env bash
# The main job: build, then `ledger demo` on the embedded default in a fresh ./ledger-data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build
exec build/bin/ledger demo --data ./ledger-data --fresh "$@"
