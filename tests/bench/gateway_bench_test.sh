#!/usr/bin/env bash
# bench/gateway.sh end to end at a tiny size: it runs, every codepay it sends is paid (ledger_gateway_load
# exits 1 on any other answer, and the script with it), and the summary names each figure. Whether the
# benchmark still runs is checked here; its speed never is.
#
#   gateway_bench_test.sh BUILD_DIR
set -euo pipefail
build="$1"
out="$(mktemp)"
trap 'rm -f "${out}"' EXIT
bash "$(dirname "$0")/../../bench/gateway.sh" --build "${build}" --customers 3 --connections 2 \
  --peak-requests 30 --paced-requests 20 --rate 40 > "${out}"
cat "${out}"
for line in "RSA-2048 on the gateway's core" "ledger alone, peak" "ledger alone, 40/s offered" \
  "gateway, peak (2 conn.)" "gateway, 40/s offered" "gateway peak / signing bound of its core" \
  "p99 added over the ledger alone at 40/s"; do
  grep -qF "${line}" "${out}" || { echo "gateway bench test: no line '${line}'" >&2; exit 1; }
done
