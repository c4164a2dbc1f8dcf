#!/usr/bin/env bash
# bench/gateway.sh end to end at a tiny size, in-process and behind Kafka (the embedded broker, one shard, the
# gateway on both cores with two answer threads): it runs, every codepay it sends is paid (ledger_gateway_load
# exits 1 on any other answer, and the script with it), and the summary names each figure. Whether the
# benchmark still runs is checked here; its speed never is.
#
#   gateway_bench_test.sh BUILD_DIR
set -euo pipefail
build="$1"
out="$(mktemp)"
trap 'rm -f "${out}"' EXIT
expect() {
  for line in "$@"; do
    grep -qF "${line}" "${out}" || { echo "gateway bench test: no line '${line}'" >&2; exit 1; }
  done
}
tiny=(--build "${build}" --customers 3 --connections 2 --peak-requests 30 --paced-requests 20 --rate 40)
bash "$(dirname "$0")/../../bench/gateway.sh" "${tiny[@]}" > "${out}"
cat "${out}"
expect "gateway drives: the ledger in-process" "RSA-2048 on the gateway's cores (0)" "ledger alone, peak" \
  "ledger alone, 40/s offered" "gateway, peak (2 conn.)" "gateway, 40/s offered" \
  "gateway peak / signing bound of its cores" "its cores' capacity" "p99 added over the ledger alone at 40/s"
bash "$(dirname "$0")/../../bench/gateway.sh" "${tiny[@]}" --kafka --gateway-cores 0,1 --answer-threads 2 > "${out}"
cat "${out}"
expect "gateway drives: one shard behind Kafka" "RSA-2048 on the gateway's cores (0,1)" \
  "ledger alone (serve, Kafka), peak" "gateway, peak (2 conn.)" "p99 added over the ledger alone (serve, Kafka) at 40/s"
