#!/usr/bin/env bash
# Signed codepay through `ledger gateway` against the ledger alone and against RSA-2048 signing, in one run.
#
#   bash bench/gateway.sh [--build DIR] [--customers N] [--connections K] [--peak-requests N] [--rate R]
#                         [--paced-requests N]
#
# Steps, each on the same pinned core (the gateway's) so that the figures compare:
#   1. `openssl speed rsa2048` on that core: RSA-2048 signatures and verifications per second, the bound of a
#      gateway that signs every answer with the platform key.
#   2. The ledger alone: `ledger bench --kafka none` (in-process, synced WAL: the ledger the gateway drives),
#      at its peak (closed loop) and at R commands/s offered.
#   3. The gateway: a data folder with merchant M1 (`ledger merchant-keys`) and N customers, each with a
#      fingerprint device (`ledger customer-enroll`); `ledger gateway` on the pinned core; then
#      ledger_gateway_load (bench/src/gateway_load.cc) on the other core: payment codes from the customer API
#      and codepay requests signed in advance (neither measured), then the peak (K connections, closed loop)
#      and R requests/s offered, every answer checked (200, SUCCESS), the gateway's CPU time per request.
# Prints each figure, the peak as a share of the signing bound and the p99 the gateway adds at R requests/s.
# Everything it starts it stops by process id; every step has a time bound.
# Exit codes: 0 ok; 1 a step failed (one line "gateway bench: reason" on stderr); 2 bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
customers=300
connections=16
peak_requests=20000
rate=500
paced_requests=10000
usage() {
  echo "usage: gateway.sh [--build DIR] [--customers N] [--connections K] [--peak-requests N] [--rate R]" \
    "[--paced-requests N]" >&2
  exit 2
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --customers) customers="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --peak-requests) peak_requests="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --paced-requests) paced_requests="$2"; shift 2 ;;
    *) usage ;;
  esac
done
for value in "${customers}" "${connections}" "${peak_requests}" "${rate}" "${paced_requests}"; do
  [[ "${value}" =~ ^[1-9][0-9]*$ ]] || usage
done
die() { echo "gateway bench: $*" >&2; exit 1; }
say() { echo "gateway bench: $*" >&2; }

[[ "$(nproc)" -ge 2 ]] || die "needs two cores: one for the gateway, one for the load"
gateway_core=0
load_core=1
ledger_bin="${build}/bin/ledger"
load_bin="${build}/bin/ledger_gateway_load"
if [[ ! -x "${ledger_bin}" || ! -x "${load_bin}" ]]; then
  say "building ledger and ledger_gateway_load in ${build}"
  timeout 1800 nice ninja -C "${build}" ledger ledger_gateway_load >&2 || die "cannot build them"
fi

work="$(mktemp -d "${build}/gateway-bench.XXXXXX")"
gateway_pid=""
stop_gateway() {
  [[ -n "${gateway_pid}" ]] || return 0
  kill -TERM "${gateway_pid}" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "${gateway_pid}" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "${gateway_pid}" 2>/dev/null || true
  gateway_pid=""
}
trap 'stop_gateway; rm -rf "${work}"' EXIT

say "$(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)); gateway and" \
  "ledger on core ${gateway_core}, load on core ${load_core}; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. The signing bound.
say "openssl speed rsa2048 on core ${gateway_core} (about 20 s)"
read -r rsa_sign rsa_verify < <(timeout 120 taskset -c "${gateway_core}" openssl speed -seconds 3 rsa2048 2>/dev/null |
  awk '/^rsa 2048 bits/ {print $(NF-1), $NF}') || die "openssl speed failed"
[[ -n "${rsa_sign}" ]] || die "openssl speed printed no rsa 2048 line"

# 2. The ledger alone.
say "ledger alone: peak"
timeout 600 taskset -c "${gateway_core}" "${ledger_bin}" bench --data "${work}/alone-peak" --kafka none \
  --commands "${peak_requests}" --json > "${work}/alone-peak.json" || die "ledger bench (peak) failed"
say "ledger alone: ${rate} commands/s offered"
timeout 600 taskset -c "${gateway_core}" "${ledger_bin}" bench --data "${work}/alone-paced" --kafka none \
  --commands "${paced_requests}" --rate "${rate}" --json > "${work}/alone-paced.json" ||
  die "ledger bench (paced) failed"

# 3. The gateway: set-up (merchant, customers with money and a fingerprint device), then the load.
data="${work}/data"
{
  echo '{"type":"open_merchant","command_id":"m1","merchant":"M1","name":"Shop","fee_bps":60}'
  for i in $(seq 1 "${customers}"); do
    echo "{\"type\":\"open_account\",\"command_id\":\"a${i}\",\"customer\":\"C${i}\",\"account\":\"C${i}:debit\",\"kind\":\"debit_card\"}"
    echo "{\"type\":\"deposit\",\"command_id\":\"d${i}\",\"account\":\"C${i}:debit\",\"amount_minor\":100000000}"
  done
} > "${work}/setup.jsonl"
timeout 300 "${ledger_bin}" submit --data "${data}" "${work}/setup.jsonl" > /dev/null || die "the set-up failed"
timeout 120 "${ledger_bin}" merchant-keys --data "${data}" --merchant M1 --out "${work}/kit" > /dev/null ||
  die "merchant-keys failed"
mkdir -p "${work}/customers"
for i in $(seq 1 "${customers}"); do
  timeout 60 "${ledger_bin}" customer-enroll --data "${data}" --customer "C${i}" --medium fingerprint \
    --out "${work}/customers/C${i}" > /dev/null || die "customer-enroll C${i} failed"
  (( i % 50 != 0 && i != customers )) || say "enrolled ${i} of ${customers} customers"
done

taskset -c "${gateway_core}" "${ledger_bin}" gateway --data "${data}" --listen 127.0.0.1:0 \
  > "${work}/gateway.out" 2> "${work}/gateway.log" &
gateway_pid=$!
url=""
for _ in $(seq 1 300); do
  url="$(sed -n 's/^gateway=//p' "${work}/gateway.out" | head -1)"
  [[ -n "${url}" ]] && break
  kill -0 "${gateway_pid}" 2>/dev/null || die "the gateway stopped: $(tail -1 "${work}/gateway.log")"
  sleep 0.1
done
[[ -n "${url}" ]] || die "the gateway printed no address within 30 s"
say "gateway at ${url} (pid ${gateway_pid})"
timeout 900 taskset -c "${load_core}" "${load_bin}" --url "${url}" --tls "${data}/gateway/tls" \
  --kit "${work}/kit" --customers "${work}/customers" --customer-count "${customers}" \
  --connections "${connections}" --peak-requests "${peak_requests}" --rate "${rate}" \
  --paced-requests "${paced_requests}" --gateway-pid "${gateway_pid}" --json > "${work}/gateway.json" ||
  die "ledger_gateway_load failed (gateway log: $(tail -1 "${work}/gateway.log"))"
stop_gateway

python3 - "${work}" "${rsa_sign}" "${rsa_verify}" "${rate}" <<'EOF'
import json, sys
work, sign, verify, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
load = lambda name: json.load(open(f"{work}/{name}.json"))
peak, paced, gw = load("alone-peak"), load("alone-paced"), load("gateway")
g_peak, g_paced = gw["peak"], gw["paced"]
print(f"RSA-2048 on the gateway's core: {sign:,.0f} signatures/s, {verify:,.0f} verifications/s")
print(f"ledger alone, peak:          {peak['commands_per_second']:8,.0f} commands/s   "
      f"p50 {peak['latency_ms']['p50']:7.2f} ms  p99 {peak['latency_ms']['p99']:7.2f} ms")
print(f"ledger alone, {rate}/s offered: {paced['commands_per_second']:8,.0f} commands/s   "
      f"p50 {paced['latency_ms']['p50']:7.2f} ms  p99 {paced['latency_ms']['p99']:7.2f} ms")
print(f"gateway, peak ({gw['connections']} conn.):    {g_peak['requests_per_second']:8,.0f} requests/s   "
      f"p50 {g_peak['latency_ms']['p50']:7.2f} ms  p99 {g_peak['latency_ms']['p99']:7.2f} ms  "
      f"gateway CPU {g_peak['gateway_cpu_ms_per_request']:.3f} ms/request")
print(f"gateway, {rate}/s offered:      {g_paced['requests_per_second']:8,.0f} requests/s   "
      f"p50 {g_paced['latency_ms']['p50']:7.2f} ms  p99 {g_paced['latency_ms']['p99']:7.2f} ms  "
      f"gateway CPU {g_paced['gateway_cpu_ms_per_request']:.3f} ms/request")
print(f"gateway peak / signing bound of its core: {g_peak['requests_per_second'] / sign:.0%} (target >= 80%)")
print(f"one signature: {1e3 / sign:.3f} ms of the gateway's {g_peak['gateway_cpu_ms_per_request']:.3f} ms CPU "
      f"per request ({1e3 / sign / g_peak['gateway_cpu_ms_per_request']:.0%})")
print(f"p99 added over the ledger alone at {rate}/s: "
      f"{g_paced['latency_ms']['p99'] - paced['latency_ms']['p99']:.2f} ms (target <= 3 ms)")
EOF
