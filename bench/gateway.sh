#!/usr/bin/env bash
# Signed codepay through `ledger gateway` against the ledger alone and against RSA-2048 signing, in one run.
#
#   bash bench/gateway.sh [--kafka] [--gateway-cores LIST] [--answer-threads N] [--build DIR] [--customers N]
#                         [--connections K] [--peak-requests N] [--rate R] [--paced-requests N]
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
# With --kafka the gateway drives a shard behind Kafka instead (the deployment where gateways scale out): an
# embedded broker (librdkafka's mock cluster) and one `ledger serve` (sealed, signed commands) on the load's
# core, the gateway alone on its core with its replica; the ledger alone is then `ledger bench --through serve
# --signed` on the shard's core. The load shares that core with the broker and the shard, so the peak may be
# bounded by that core rather than by the gateway's: the gateway's CPU time per request is the figure that
# says what its core can serve, and the script prints both.
# --gateway-cores LIST (default 0): the cores the gateway is pinned to (its answers are signed on one thread
# per core); the bound is then `openssl speed -multi K` on those K cores. The load stays on core 1, so a list
# holding core 1 shares it with the load (on a two-core machine there is no other way; say so when quoting).
# --answer-threads N is passed to the gateway (default: one per core it is pinned to, none on one core).
# Prints each figure, the peak as a share of the signing bound and the p99 the gateway adds at R requests/s.
# Everything it starts it stops by process id; every step has a time bound.
# Exit codes: 0 ok; 1 a step failed (one line "gateway bench: reason" on stderr); 2 bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
kafka=0
gateway_cores=0
answer_threads=()
gateway_kafka=()   # with --kafka: the brokers and the gateway's producer key
customers=300
connections=16
peak_requests=20000
rate=500
paced_requests=10000
usage() {
  echo "usage: gateway.sh [--kafka] [--gateway-cores LIST] [--answer-threads N] [--build DIR] [--customers N]" \
    "[--connections K] [--peak-requests N] [--rate R] [--paced-requests N]" >&2
  exit 2
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --kafka) kafka=1; shift ;;
    --gateway-cores) gateway_cores="$2"; shift 2 ;;
    --answer-threads) [[ "$2" =~ ^[0-9]+$ ]] || usage; answer_threads=(--answer-threads "$2"); shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --customers) customers="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --peak-requests) peak_requests="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --paced-requests) paced_requests="$2"; shift 2 ;;
    *) usage ;;
  esac
done
[[ "${gateway_cores}" =~ ^[0-9]+(,[0-9]+)*$ ]] || usage
for value in "${customers}" "${connections}" "${peak_requests}" "${rate}" "${paced_requests}"; do
  [[ "${value}" =~ ^[1-9][0-9]*$ ]] || usage
done
die() { echo "gateway bench: $*" >&2; exit 1; }
say() { echo "gateway bench: $*" >&2; }

[[ "$(nproc)" -ge 2 ]] || die "needs two cores: one for the gateway, one for the load"
gateway_core_count="$(tr ',' '\n' <<< "${gateway_cores}" | sort -u | wc -l)"
load_core=1
ledger_bin="${build}/bin/ledger"
load_bin="${build}/bin/ledger_gateway_load"
if [[ ! -x "${ledger_bin}" || ! -x "${load_bin}" ]]; then
  say "building ledger and ledger_gateway_load in ${build}"
  timeout 1800 nice ninja -C "${build}" ledger ledger_gateway_load >&2 || die "cannot build them"
fi

work="$(realpath "$(mktemp -d "${build}/gateway-bench.XXXXXX")")"
pids=()   # what this script started, stopped in reverse order
stop_all() {
  local i pid
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid="${pids[i]}"
    kill -TERM "${pid}" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${pid}" 2>/dev/null || true
  done
  pids=()
}
trap 'stop_all; rm -rf "${work}"' EXIT

# The ledger runs on the gateway's cores in-process, on the load's core behind Kafka.
ledger_core="${gateway_cores}"
(( kafka == 0 )) || ledger_core="${load_core}"
say "$(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)); gateway on core" \
  "${gateway_cores}, ledger on core ${ledger_core}, load on core ${load_core}$( ((kafka)) && echo ", Kafka on core ${load_core}");" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. The signing bound.
say "openssl speed rsa2048 on core ${gateway_cores}, ${gateway_core_count} process(es) (about 20 s)"
read -r rsa_sign rsa_verify < <(timeout 120 taskset -c "${gateway_cores}" \
  openssl speed -multi "${gateway_core_count}" -seconds 3 rsa2048 2>/dev/null |
  awk '/^rsa 2048 bits/ {print $(NF-1), $NF}') || die "openssl speed failed"
[[ -n "${rsa_sign}" ]] || die "openssl speed printed no rsa 2048 line"

# 2. The ledger alone: the one the gateway drives (in-process, or a shard behind Kafka with signed commands).
alone_mode=(--kafka none)
(( kafka == 0 )) || alone_mode=(--kafka embedded --through serve --signed)
say "ledger alone (${alone_mode[*]}): peak"
timeout 600 taskset -c "${ledger_core}" "${ledger_bin}" bench --data "${work}/alone-peak" "${alone_mode[@]}" \
  --commands "${peak_requests}" --json > "${work}/alone-peak.json" || die "ledger bench (peak) failed"
say "ledger alone (${alone_mode[*]}): ${rate} commands/s offered"
timeout 600 taskset -c "${ledger_core}" "${ledger_bin}" bench --data "${work}/alone-paced" "${alone_mode[@]}" \
  --commands "${paced_requests}" --rate "${rate}" --json > "${work}/alone-paced.json" ||
  die "ledger bench (paced) failed"

# 3. The gateway: set-up (merchant, customers with money and a fingerprint device) in a stopped shard's
# folder, then the load.
shard="${work}/shard"
{
  echo '{"type":"open_merchant","command_id":"m1","merchant":"M1","name":"Shop","fee_bps":60}'
  for i in $(seq 1 "${customers}"); do
    echo "{\"type\":\"open_account\",\"command_id\":\"a${i}\",\"customer\":\"C${i}\",\"account\":\"C${i}:debit\",\"kind\":\"debit_card\"}"
    echo "{\"type\":\"deposit\",\"command_id\":\"d${i}\",\"account\":\"C${i}:debit\",\"amount_minor\":100000000}"
  done
} > "${work}/setup.jsonl"
if (( kafka )); then
  # The ledger's key (serve seals, the gateway's replica checks) and the gateway's producer key.
  timeout 60 "${ledger_bin}" keygen --out "${work}/keys" > /dev/null || die "keygen failed"
  mkdir -p "${shard}" "${work}/gateway-data"
  printf '[audit]\nprivate_key = "%s"\npublic_key = "%s"\n' "${work}/keys/ledger-signing.key" \
    "${work}/keys/ledger-signing.pub" > "${shard}/ledger.toml"
  printf '[audit]\npublic_key = "%s"\n' "${work}/keys/ledger-signing.pub" > "${work}/gateway-data/ledger.toml"
  timeout 60 "${ledger_bin}" producer-key --data "${shard}" --producer gw1 --role gateway \
    --out "${work}/gateway-key" > /dev/null || die "producer-key failed"
fi
timeout 300 "${ledger_bin}" submit --data "${shard}" "${work}/setup.jsonl" > /dev/null || die "the set-up failed"
timeout 120 "${ledger_bin}" merchant-keys --data "${shard}" --merchant M1 --out "${work}/kit" > /dev/null ||
  die "merchant-keys failed"
mkdir -p "${work}/customers"
for i in $(seq 1 "${customers}"); do
  timeout 60 "${ledger_bin}" customer-enroll --data "${shard}" --customer "C${i}" --medium fingerprint \
    --out "${work}/customers/C${i}" > /dev/null || die "customer-enroll C${i} failed"
  (( i % 50 != 0 && i != customers )) || say "enrolled ${i} of ${customers} customers"
done

# Starts "$@" in the background, pinned to core $1, logging to $2.out and $2.err; the pid goes into pids.
last_log=""
start_pinned() {
  local core="$1"
  last_log="$2"
  shift 2
  taskset -c "${core}" "$@" > "${last_log}.out" 2> "${last_log}.err" &
  pids+=($!)
}
# Waits up to $3 tenths of a second for pattern $2 in file $1, while the process started last runs.
await_line() {
  for _ in $(seq 1 "$3"); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || die "${last_log##*/} stopped: $(tail -n 1 "${last_log}.err")"
    sleep 0.1
  done
  die "no '$2' in $1 in time (${last_log##*/}: $(tail -n 1 "${last_log}.err"))"
}

gateway_data="${shard}"   # in-process, the gateway drives the set-up's folder itself
if (( kafka )); then
  start_pinned "${load_core}" "${work}/broker" "${ledger_bin}" broker --bootstrap-file "${work}/bootstrap"
  await_line "${work}/bootstrap" '^bootstrap=' 300
  brokers="$(sed -n 's/^bootstrap=//p' "${work}/bootstrap")"
  start_pinned "${load_core}" "${work}/serve" "${ledger_bin}" serve --data "${shard}" --brokers "${brokers}"
  await_line "${work}/serve.err" 'serve: shard' 600
  # The gateway's folder holds what the shard's set-up made for gateways (TLS, platform key, API v3 keys).
  gateway_data="${work}/gateway-data"
  cp -a "${shard}/gateway" "${gateway_data}/gateway"
  gateway_kafka=(--brokers "${brokers}" --producer-key "${work}/gateway-key/producer.key")
fi
start_pinned "${gateway_cores}" "${work}/gateway" "${ledger_bin}" gateway --data "${gateway_data}" \
  "${gateway_kafka[@]}" "${answer_threads[@]}" --listen 127.0.0.1:0
gateway_pid="${pids[-1]}"
await_line "${work}/gateway.out" '^gateway=' 1800
url="$(sed -n 's/^gateway=//p' "${work}/gateway.out" | head -1)"
say "gateway at ${url} (pid ${gateway_pid})"
timeout 900 taskset -c "${load_core}" "${load_bin}" --url "${url}" --tls "${gateway_data}/gateway/tls" \
  --kit "${work}/kit" --customers "${work}/customers" --customer-count "${customers}" \
  --connections "${connections}" --peak-requests "${peak_requests}" --rate "${rate}" \
  --paced-requests "${paced_requests}" --gateway-pid "${gateway_pid}" --json > "${work}/gateway.json" ||
  die "ledger_gateway_load failed (gateway log: $(tail -n 1 "${work}/gateway.err"))"
stop_all

python3 - "${work}" "${rsa_sign}" "${rsa_verify}" "${rate}" "${kafka}" "${gateway_cores}" "${gateway_core_count}" \
  <<'PYTHON'
import json, sys
work, sign, verify, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
kafka, cores, count = sys.argv[5] == "1", sys.argv[6], int(sys.argv[7])
load = lambda name: json.load(open(f"{work}/{name}.json"))
peak, paced, gw = load("alone-peak"), load("alone-paced"), load("gateway")
g_peak, g_paced = gw["peak"], gw["paced"]
alone = "ledger alone (serve, Kafka)" if kafka else "ledger alone"
print(f"gateway drives: {'one shard behind Kafka (embedded broker)' if kafka else 'the ledger in-process'}")
print(f"RSA-2048 on the gateway's cores ({cores}): {sign:,.0f} signatures/s, {verify:,.0f} verifications/s")
print(f"{alone}, peak:          {peak['commands_per_second']:8,.0f} commands/s   "
      f"p50 {peak['latency_ms']['p50']:7.2f} ms  p99 {peak['latency_ms']['p99']:7.2f} ms")
print(f"{alone}, {rate}/s offered: {paced['commands_per_second']:8,.0f} commands/s   "
      f"p50 {paced['latency_ms']['p50']:7.2f} ms  p99 {paced['latency_ms']['p99']:7.2f} ms")
print(f"gateway, peak ({gw['connections']} conn.):    {g_peak['requests_per_second']:8,.0f} requests/s   "
      f"p50 {g_peak['latency_ms']['p50']:7.2f} ms  p99 {g_peak['latency_ms']['p99']:7.2f} ms  "
      f"gateway CPU {g_peak['gateway_cpu_ms_per_request']:.3f} ms/request")
print(f"gateway, {rate}/s offered:      {g_paced['requests_per_second']:8,.0f} requests/s   "
      f"p50 {g_paced['latency_ms']['p50']:7.2f} ms  p99 {g_paced['latency_ms']['p99']:7.2f} ms  "
      f"gateway CPU {g_paced['gateway_cpu_ms_per_request']:.3f} ms/request")
print(f"gateway peak / signing bound of its cores: {g_peak['requests_per_second'] / sign:.0%} (target >= 80%)")
capacity = count * 1e3 / g_peak['gateway_cpu_ms_per_request']
print(f"its cores' capacity at that CPU per request: {capacity:,.0f} requests/s = {capacity / sign:.0%} of the "
      f"signing bound")
print(f"one signature: {count * 1e3 / sign:.3f} ms of the gateway's {g_peak['gateway_cpu_ms_per_request']:.3f} ms "
      f"CPU per request ({count * 1e3 / sign / g_peak['gateway_cpu_ms_per_request']:.0%})")
print(f"p99 added over the {alone} at {rate}/s: "
      f"{g_paced['latency_ms']['p99'] - paced['latency_ms']['p99']:.2f} ms (target <= 3 ms)")
PYTHON
