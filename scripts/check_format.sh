#!/usr/bin/env bash
# Format check: every C++ source and header in the repository is as clang-format (.clang-format: Google style,
# 110 columns, includes sorted and grouped) would write it. Prints each file that differs and the first lines of
# the difference; exit 1 when any does. Fix with: scripts/check_format.sh --fix
# Usage: scripts/check_format.sh [--fix] [SOURCE_ROOT]
set -euo pipefail
fix=0
if [[ "${1:-}" == "--fix" ]]; then fix=1; shift; fi
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "${root}"
command -v clang-format >/dev/null || { echo "check_format: clang-format is not installed (apt-get install clang-format)" >&2; exit 2; }
mapfile -t files < <(find . \( -path ./build -o -path './build-*' -o -path ./.git \) -prune -o \
  -type f \( -name '*.h' -o -name '*.cc' \) -print | sort)
if ((fix)); then
  clang-format -i "${files[@]}"
  echo "check_format: formatted ${#files[@]} files"
  exit 0
fi
bad=0
for f in "${files[@]}"; do
  if ! diff -q "${f}" <(clang-format "${f}") >/dev/null; then
    echo "${f#./}: not formatted (scripts/check_format.sh --fix)"
    diff -u "${f}" <(clang-format "${f}") | sed -n '3,12p' || true
    bad=$((bad + 1))
  fi
done
if ((bad)); then
  echo "check_format: ${bad} of ${#files[@]} files differ from clang-format $(clang-format --version | sed -n "s/.*version \([0-9.]*\).*/\1/p")"
  exit 1
fi
echo "check_format: ${#files[@]} files formatted"
