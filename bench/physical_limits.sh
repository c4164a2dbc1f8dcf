#!/usr/bin/env bash
# What this machine allows at most, below any ledger code: the figures to hold the ledger's against.
#
#   bash bench/physical_limits.sh [--build DIR] [--dir DIR] [--seconds S] [--json]
#
# Runs ledger_physical_limits (bench/src/physical_limits.cc, built into DIR/bin, default build/): synced
# sequential appends of 300-byte records and 64 KiB batches (fdatasync after each, into a growing and a
# preallocated file), sequential bandwidth, SHA-256 of a 300-byte event on one core (the ledger's own
# core/sha256.h), and produce round trips on the embedded broker (acks=all: one message, 2,048 messages).
# The disk probes write in --dir (default: a temporary folder in the build folder, on the disk the ledger's
# data would use; /tmp may be another file system). Progress on stderr, one summary table (or one JSON object with
# --json) on stdout. Exit codes: 0 ok; 1 a step failed (one line "physical limits: reason" on stderr);
# 2 bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
dir=""
seconds=3
json=0
usage() { echo "usage: physical_limits.sh [--build DIR] [--dir DIR] [--seconds S] [--json]" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --json) json=1; shift ;;
    *) usage ;;
  esac
done
[[ "${seconds}" =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage
die() { echo "physical limits: $*" >&2; exit 1; }

program="${build}/bin/ledger_physical_limits"
if [[ ! -x "${program}" ]]; then
  echo "physical limits: building ledger_physical_limits in ${build}" >&2
  timeout 1800 nice ninja -C "${build}" ledger_physical_limits >&2 || die "cannot build ${program}"
fi

work=""
if [[ -z "${dir}" ]]; then
  work="$(mktemp -d "${build}/physical-limits.XXXXXX")"
  dir="${work}"
fi
cleanup() { [[ -z "${work}" ]] || rm -rf "${work}"; }
trap cleanup EXIT
[[ -d "${dir}" && -w "${dir}" ]] || die "--dir ${dir} is not a writable folder"

# What the figures are of: the cores, and the file system and device under --dir.
{
  echo "physical limits: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))"
  echo "physical limits: ${dir} on $(df -PT "${dir}" | awk 'NR == 2 {print $2 " " $1 ", " $6 " used"}')"
  echo "physical limits: load average $(cut -d' ' -f1-3 /proc/loadavg)" \
    "(other work on the machine lowers every figure)"
} >&2

args=(--dir "${dir}" --seconds "${seconds}")
[[ ${json} -eq 0 ]] || args+=(--json)
timeout 900 "${program}" "${args[@]}" || die "ledger_physical_limits failed (exit $?)"
