#!/usr/bin/env bash
# Aggregate throughput of N shards on this machine, in one run: N = 1, 2, 4 (or --shards LIST).
#
#   bash bench/shards.sh [--payments P] [--customers C] [--shards "1 2 4"] [--ledger BIN]
#
# For each N: one embedded broker (`ledger broker --partitions N`), N `ledger serve` processes (shard K of N,
# each its own store, synced WAL, ack=kafka), the setup (merchants, customers, deposits) sent and answered
# first, then P payments by random customers for random orders sent at once through `ledger submit --brokers
# --shards N` (open loop: submit produces everything, then waits for every result), timed from the first
# record produced to the last result read. Every payment is within its customer's money and limits, so every
# one is accepted whatever the order of decision. Afterwards the stores are read for how many payments
# crossed shards (one OrderForwarded event each) and how many events each shard wrote.
# Prints per N: payments/s, the share that crossed shards, events per payment, and the ratio to N = 1.
# Everything it starts it stops by process id; every step has a time bound.
# Exit codes: 0 ok; 1 a step failed (one line "shards: reason" on stderr); 2 bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

payments=10000   # the embedded broker keeps about 5 MB per partition: far more would be dropped unread
customers=1000
shard_counts="1 2 4"
ledger_bin=build/bin/ledger
while [[ $# -gt 0 ]]; do
  case "$1" in
    --payments) payments="$2"; shift 2 ;;
    --customers) customers="$2"; shift 2 ;;
    --shards) shard_counts="$2"; shift 2 ;;
    --ledger) ledger_bin="$2"; shift 2 ;;
    *) echo "usage: shards.sh [--payments P] [--customers C] [--shards \"1 2 4\"] [--ledger BIN]" >&2; exit 2 ;;
  esac
done
[[ "${payments}" =~ ^[1-9][0-9]*$ && "${customers}" =~ ^[1-9][0-9]*$ ]] || {
  echo "shards: --payments and --customers take positive integers" >&2; exit 2; }
for n in ${shard_counts}; do
  [[ "${n}" =~ ^[1-9][0-9]?$ ]] || { echo "shards: --shards takes shard counts from 1 to 99" >&2; exit 2; }
done

die() { echo "shards: $*" >&2; exit 1; }
[[ -x "${ledger_bin}" ]] || die "${ledger_bin} is not built (bash scripts/setup.sh build)"
command -v python3 >/dev/null || die "python3 is needed to write the command files"

work="$(mktemp -d /tmp/ledger-shards.XXXXXX)"
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 300); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${pid}" 2>/dev/null || true
  done
  pids=()
}
trap 'stop_all; rm -rf "${work}"' EXIT

# The command files: the same for every N.
python3 - "${work}" "${payments}" "${customers}" <<'EOF'
import json, random, sys
work, payments, customers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
at = "2026-11-25T10:00:00+08:00"
with open(f"{work}/setup.jsonl", "w") as out:
    for m in range(20):
        out.write(json.dumps({"type": "open_merchant", "command_id": f"om{m}", "merchant": f"M{m}",
                              "name": f"Merchant {m}", "fee_bps": 60, "occurred_at": at}) + "\n")
    for c in range(customers):
        out.write(json.dumps({"type": "open_account", "command_id": f"oa{c}", "customer": f"C{c}",
                              "account": f"C{c}:debit", "kind": "debit_card", "occurred_at": at}) + "\n")
        out.write(json.dumps({"type": "deposit", "command_id": f"dp{c}", "account": f"C{c}:debit",
                              "amount_minor": 100_000_000, "occurred_at": at}) + "\n")
with open(f"{work}/payments.jsonl", "w") as out:
    for p in range(payments):
        c = rng.randrange(customers)
        out.write(json.dumps({"type": "pay", "command_id": f"p{p}", "merchant": f"M{rng.randrange(20)}",
                              "merchant_order_no": f"O{p}", "customer": f"C{c}", "funding": "own_account",
                              "account": f"C{c}:debit", "channel": "b2c_pc", "medium": "u_shield",
                              "order_amount_minor": 100 + rng.randrange(10_000), "occurred_at": at}) + "\n")
EOF

now_ms() { date +%s%3N; }

# Runs one N; prints "N payments_per_s crossed_share events_per_payment".
run_shards() {
  local n="$1" dir="${work}/n$1"
  mkdir -p "${dir}"
  "${ledger_bin}" broker --partitions "${n}" --bootstrap-file "${dir}/bootstrap" >"${dir}/broker.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do [[ -s "${dir}/bootstrap" ]] && break; sleep 0.1; done
  local brokers
  brokers="$(sed -n 's/^bootstrap=//p' "${dir}/bootstrap")"
  [[ -n "${brokers}" ]] || die "the broker for N=${n} did not start"
  # One key pair for the ledger: every shard signs its legs with it and verifies the legs it applies.
  "${ledger_bin}" keygen --out "${dir}/keys" >/dev/null || die "keygen for N=${n} failed"
  for ((k = 0; k < n; k++)); do
    mkdir -p "${dir}/shard${k}"
    printf '[audit]\nprivate_key = "%s"\npublic_key = "%s"\n' "${dir}/keys/ledger-signing.key" \
      "${dir}/keys/ledger-signing.pub" >"${dir}/shard${k}/ledger.toml"
    "${ledger_bin}" serve --data "${dir}/shard${k}" --brokers "${brokers}" --shard "${k}" --shards "${n}" \
      --clock occurred --allow-unsigned-commands >"${dir}/serve${k}.out" 2>"${dir}/serve${k}.err" &
    pids+=($!)
  done
  for ((k = 0; k < n; k++)); do
    for _ in $(seq 1 600); do grep -q "serve: shard" "${dir}/serve${k}.err" && break; sleep 0.1; done
    grep -q "serve: shard" "${dir}/serve${k}.err" || die "serve ${k} of ${n} did not start: $(tail -1 "${dir}/serve${k}.err")"
  done
  timeout 600 "${ledger_bin}" submit --brokers "${brokers}" --shards "${n}" --timeout-ms 500000 \
    "${work}/setup.jsonl" >"${dir}/setup.out" || die "the setup of N=${n} was not answered"
  local started ended
  started="$(now_ms)"
  timeout 900 "${ledger_bin}" submit --brokers "${brokers}" --shards "${n}" --timeout-ms 800000 \
    "${work}/payments.jsonl" >"${dir}/payments.out" &
  local submit=$!
  # A serve that stops (e.g. its commands dropped by the broker unread) fails the run instead of a long wait.
  while kill -0 "${submit}" 2>/dev/null; do
    for ((k = 0; k < n; k++)); do
      kill -0 "${pids[$((k + 1))]}" 2>/dev/null || { kill "${submit}" 2>/dev/null || true
        die "serve ${k} of ${n} stopped: $(tail -1 "${dir}/serve${k}.err")"; }
    done
    sleep 0.05
  done
  wait "${submit}" || die "the payments of N=${n} were not all answered"
  ended="$(now_ms)"
  local accepted
  accepted="$(grep -c '"status":"accepted"' "${dir}/payments.out" || true)"
  [[ "${accepted}" -eq "${payments}" ]] || die "N=${n}: ${accepted} of ${payments} payments accepted"
  stop_all
  local forwarded=0 events=0 count
  for ((k = 0; k < n; k++)); do
    count="$("${ledger_bin}" events --data "${dir}/shard${k}" | grep -c OrderForwarded || true)"
    forwarded=$((forwarded + count))
    count="$("${ledger_bin}" events --data "${dir}/shard${k}" | wc -l)"
    events=$((events + count))
  done
  local setup_events=$(( (20 * n) + 2 * customers ))
  python3 -c "import sys; n,p,ms,f,e,s=map(int,sys.argv[1:]); print(n, round(p*1000/max(ms,1)), f'{f/p:.3f}', f'{(e-s)/p:.2f}')" \
    "${n}" "${payments}" "$((ended - started))" "${forwarded}" "${events}" "${setup_events}"
}

echo "shards: ${payments} payments by ${customers} customers for 20 merchants, $(nproc) cores" >&2
results=()
for n in ${shard_counts}; do
  echo "shards: N=${n} ..." >&2
  results+=("$(run_shards "${n}")")
done
base=""
printf "%-6s %12s %14s %18s %10s\n" "shards" "payments/s" "crossed share" "events per payment" "vs N=1"
for line in "${results[@]}"; do
  read -r n rate share per_payment <<<"${line}"
  [[ -n "${base}" ]] || base="${rate}"
  printf "%-6s %12s %14s %18s %10s\n" "${n}" "${rate}" "${share}" "${per_payment}" \
    "$(python3 -c "print(f'{${rate}/${base}:.2f}')")"
done
