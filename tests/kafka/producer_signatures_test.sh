#!/usr/bin/env bash
# Goal: no one moves money by writing to ledger.commands except a producer the ledger registered. `ledger
# serve` (no --allow-unsigned-commands) applies what `ledger submit --producer-key` signs with a registered
# operator key; records that Debian's kcat writes unsigned, with forged headers, signed by an unregistered key,
# or signed by a gateway key for an operator's command are answered UNAUTHENTICATED_COMMAND and move nothing; a
# command an outside producer signs by the documented format with the openssl CLI is applied; a revoked key's
# commands are refused after the revocation.
#
# Usage: producer_signatures_test.sh LEDGER_BINARY. Exit 0 pass, 1 fail (one line saying why), 77 skipped.
set -u

ledger=${1:?usage: producer_signatures_test.sh LEDGER_BINARY}
for tool in kcat openssl python3 timeout; do
  command -v "$tool" >/dev/null 2>&1 || { echo "producer_signatures: skipped: $tool is not installed"; exit 77; }
done

test_name=producer_signatures
# shellcheck source=../support/harness.sh
source "$(dirname "$0")/../support/harness.sh"

at="2026-11-25T10:00:00+08:00"
# A command line (compact JSON) from key=value pairs; integers stay integers.
command_line() {
  python3 - "$at" "$@" <<'EOF'
import json, sys
command = {"occurred_at": sys.argv[1]}
for pair in sys.argv[2:]:
    key, value = pair.split("=", 1)
    command[key] = int(value) if value.lstrip("-").isdigit() else value
print(json.dumps(command, separators=(",", ":")))
EOF
}

# The number of results on ledger.results (kcat reads the partition to its end).
results_count() {
  timeout 30 kcat -C -b "$brokers" -t ledger.results -p 0 -o beginning -e -q -f '%k\n' 2>/dev/null | grep -c .
}

# Waits (bounded) until ledger.results holds $1 results.
wait_results() {
  for _ in $(seq 300); do
    [ "$(results_count)" -ge "$1" ] && return 0
    kill -0 "$serve_pid" 2>/dev/null || fail "ledger serve exited"
    sleep 0.2
  done
  fail "ledger.results holds $(results_count) results, expected $1 within 60 s"
}

# 1. Keys: an operator's and a gateway's, registered in the shard's store before serve starts.
"$ledger" producer-key --data "$work/ledger" --producer ops --role operator --out "$work/ops" \
  >"$work/ops.out" 2>"$work/keys.err" || fail "ledger producer-key (operator) failed"
"$ledger" producer-key --data "$work/ledger" --producer gw1 --role gateway --out "$work/gw1" \
  >"$work/gw1.out" 2>>"$work/keys.err" || fail "ledger producer-key (gateway) failed"
ops_id=$(sed -n 's/^key_id=//p' "$work/ops.out")
[ "${#ops_id}" = 64 ] || fail "no key_id printed: $(cat "$work/ops.out")"
[ "$(stat -c %a "$work/ops/producer.key")" = 600 ] || fail "the private key is not 0600"
# The same public key again is refused (exit 2): a key is registered once.
"$ledger" producer-key --data "$work/ledger" --producer ops2 --public-key "$work/ops/producer.pub" \
  >/dev/null 2>"$work/again.err"
[ $? = 2 ] || fail "registering a key twice did not exit 2"
openssl genpkey -algorithm ED25519 -out "$work/stranger.key" 2>/dev/null || fail "openssl genpkey failed"

# 2. The broker and serve.
"$ledger" broker --bootstrap-file "$work/bootstrap" >"$work/broker.out" 2>"$work/broker.err" &
pids+=($!)
for _ in $(seq 300); do
  [ -s "$work/bootstrap" ] && break
  sleep 0.1
done
brokers=$(sed -n 's/^bootstrap=//p' "$work/bootstrap")
[ -n "$brokers" ] || fail "ledger broker wrote no bootstrap file within 30 s"
"$ledger" serve --data "$work/ledger" --brokers "$brokers" --clock occurred >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
pids+=("$serve_pid")

# 3. The operator opens an account and deposits 1,000.00, signed by `ledger submit --producer-key`.
{ command_line type=open_account command_id=a1 customer=C1 account=C1:debit kind=debit_card
  command_line type=deposit command_id=d1 account=C1:debit amount_minor=100000; } >"$work/setup.jsonl"
timeout 120 "$ledger" submit --brokers "$brokers" --producer-key "$work/ops/producer.key" --timeout-ms 60000 \
  "$work/setup.jsonl" >"$work/setup.out" 2>"$work/submit.err" || fail "signed submit failed"
[ "$(grep -c '"status":"accepted"' "$work/setup.out")" = 2 ] || fail "signed setup not accepted: $(cat "$work/setup.out")"

# 4. Attacks through kcat: unsigned; forged headers naming the operator's key; signed by an unregistered key;
#    an operator's command signed by the gateway's key (openssl, by the documented format).
steal=$(command_line type=deposit command_id=steal account=C1:debit amount_minor=99900000)
# Signs $1 (a command line) with the Ed25519 key $2: ledger-command-v1\0 + SHA-256 of its canonical JSON.
sign_hex() {
  python3 - "$1" <<'EOF' >"$work/message.bin"
import hashlib, json, sys
canonical = json.dumps(json.loads(sys.argv[1]), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
sys.stdout.buffer.write(b"ledger-command-v1\0" + hashlib.sha256(canonical.encode()).digest())
EOF
  openssl pkeyutl -sign -inkey "$2" -rawin -in "$work/message.bin" | od -An -v -tx1 | tr -d ' \n'
}
# The key id: SHA-256 of the public key's DER.
key_id_of() { openssl pkey -in "$1" -pubout -outform DER 2>/dev/null | sha256sum | cut -c1-64; }
# Produces $1 (key $2) with the headers ledger.producer-key=$3 and ledger.signature=$4 (both hex text).
produce_signed() {
  printf '%s' "$1" | timeout 30 kcat -P -b "$brokers" -t ledger.commands -p 0 -k "$2" \
    -H "ledger.producer-key=$3" -H "ledger.signature=$4" 2>>"$work/kcat.err" || fail "kcat could not produce"
}

printf '%s' "$steal" | timeout 30 kcat -P -b "$brokers" -t ledger.commands -p 0 -k steal 2>>"$work/kcat.err" \
  || fail "kcat could not produce"
produce_signed "$steal" steal "$ops_id" "$(printf '00%.0s' $(seq 64))"
produce_signed "$steal" steal "$(key_id_of "$work/stranger.key")" "$(sign_hex "$steal" "$work/stranger.key")"
produce_signed "$steal" steal "$(sed -n 's/^key_id=//p' "$work/gw1.out")" "$(sign_hex "$steal" "$work/gw1/producer.key")"
wait_results 9

# 5. The same kind of command signed by the operator's key with openssl and sent by kcat: applied. Then the
#    key is revoked (an operator's command, signed by the key itself) and the next command it signs is refused.
gift=$(command_line type=deposit command_id=gift account=C1:debit amount_minor=500)
produce_signed "$gift" gift "$ops_id" "$(sign_hex "$gift" "$work/ops/producer.key")"
revoke=$(command_line type=revoke_producer_key command_id=revoke-ops producer=ops key_id="$ops_id")
produce_signed "$revoke" revoke-ops "$ops_id" "$(sign_hex "$revoke" "$work/ops/producer.key")"
late=$(command_line type=deposit command_id=late account=C1:debit amount_minor=700)
produce_signed "$late" late "$ops_id" "$(sign_hex "$late" "$work/ops/producer.key")"
wait_results 12

timeout 30 kcat -C -b "$brokers" -t ledger.results -p 0 -o beginning -e -q -f '%s\n' >"$work/results.jsonl" \
  2>>"$work/kcat.err" || fail "kcat could not read ledger.results"
kill -TERM "$serve_pid"
wait_exit "$serve_pid" 60 || fail "ledger serve did not stop within 60 s of SIGTERM"
[ "$exit_code" = 0 ] || fail "ledger serve exited with $exit_code after SIGTERM"
balance=$("$ledger" balance --data "$work/ledger" C1:debit 2>"$work/balance.err") || fail "ledger balance failed"

verdict=$(python3 - "$work/results.jsonl" "$balance" 2>&1 <<'EOF'
import json, sys
results = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by_id = {r["command_id"]: r for r in results}
if len(results) != 12:
    sys.exit(f"{len(results)} results, expected 12: {results}")
registrations = [r for r in results if r["command_id"].startswith("producer-key-added:")]
if [r["status"] for r in registrations] != ["accepted", "accepted", "rejected"] or \
        registrations[2]["reason"] != "ALREADY_EXISTS":
    sys.exit(f"registrations: {registrations}")
for cid in ("a1", "d1", "gift", "revoke-ops"):
    if by_id.get(cid, {}).get("status") != "accepted":
        sys.exit(f"{cid} not accepted: {by_id.get(cid)}")
refused = [r for r in results if r["command_id"].startswith("kafka:0:")]
whys = ["not signed by a producer", "the signature does not verify", "which the ledger does not know",
        "(gateway) may not send deposit", "of ops, revoked"]
if len(refused) != 5:
    sys.exit(f"{len(refused)} records refused, expected 5: {refused}")
for result, why in zip(refused, whys):
    if result["reason"] != "UNAUTHENTICATED_COMMAND" or why not in result.get("detail", ""):
        sys.exit(f"expected UNAUTHENTICATED_COMMAND ({why}), got {result}")
if "steal" in by_id or "late" in by_id:
    sys.exit("a refused record claimed its command id")
if "1005.00" not in sys.argv[2]:
    sys.exit(f"balance {sys.argv[2]!r}, expected 1005.00 (1,000.00 + 5.00: nothing stolen, nothing late)")
print("5 forged records refused, 4 signed commands applied, balance exact")
EOF
) || fail "$verdict"
echo "producer_signatures: ok: $verdict"
exit 0
