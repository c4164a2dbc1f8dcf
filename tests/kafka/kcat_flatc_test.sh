#!/usr/bin/env bash
# Goal: an outside Kafka client reads ledger.events as documented. `ledger broker` runs the embedded broker,
# `ledger serve` takes commands from ledger.commands (sent by `ledger submit --brokers`); Debian's kcat consumes
# ledger.events and flatc turns each record into JSON with schemas/events.fbs. Every stored event must appear
# exactly once, sequences 1..N in order, with the stored hash, the customer key and the three headers.
#
# Usage: kcat_flatc_test.sh LEDGER_BINARY SCHEMAS_DIR. Exit 0 pass, 1 fail (one line saying why), 77 skipped.
set -u

ledger=${1:?usage: kcat_flatc_test.sh LEDGER_BINARY SCHEMAS_DIR}
schemas=${2:?usage: kcat_flatc_test.sh LEDGER_BINARY SCHEMAS_DIR}
for tool in kcat flatc python3 timeout; do
  command -v "$tool" >/dev/null 2>&1 || { echo "kcat_flatc: skipped: $tool is not installed"; exit 77; }
done

test_name=kcat_flatc
# shellcheck source=../support/harness.sh
source "$(dirname "$0")/../support/harness.sh"

# 1. The broker, in its own process.
"$ledger" broker --bootstrap-file "$work/bootstrap" >"$work/broker.out" 2>"$work/broker.err" &
pids+=($!)
for _ in $(seq 300); do
  [ -s "$work/bootstrap" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || fail "ledger broker exited"
  sleep 0.1
done
[ -s "$work/bootstrap" ] || fail "ledger broker wrote no bootstrap file within 30 s"
brokers=$(sed -n 's/^bootstrap=//p' "$work/bootstrap")
[ -n "$brokers" ] || fail "bad bootstrap file: $(cat "$work/bootstrap")"

# 2. Commands: merchants, customers, payments (some with points: two events in one transaction), rule
#    breakers, a reversal, and one line sent twice (a redelivery: answered `duplicate`, no second event).
python3 - "$work/commands.jsonl" <<'EOF' || fail "cannot write commands"
import json, sys
at = "2026-11-25T10:00:00+08:00"
lines = []
def add(command):
    command["occurred_at"] = at
    lines.append(json.dumps(command, separators=(",", ":")))
for m in range(3):
    add({"type": "open_merchant", "command_id": f"m{m}", "merchant": f"M{m}", "name": f"Shop {m}", "fee_bps": 60})
for c in range(10):
    add({"type": "open_account", "command_id": f"a{c}", "customer": f"C{c}", "account": f"C{c}:debit", "kind": "debit_card"})
    add({"type": "deposit", "command_id": f"d{c}", "account": f"C{c}:debit", "amount_minor": 10_000_000})
    add({"type": "award_points", "command_id": f"p{c}", "customer": f"C{c}", "points": 100_000})
for i in range(160):
    merchant = "MX" if i % 13 == 5 else f"M{i % 3}"  # MX: unknown merchant, rejected
    pay = {"type": "pay", "command_id": f"{merchant}:O{i}", "merchant": merchant, "merchant_order_no": f"O{i}",
           "customer": f"C{i % 10}", "funding": "own_account", "account": f"C{i % 10}:debit", "channel": "b2c_pc",
           "medium": "u_shield", "order_amount_minor": 1000 + i}
    if i % 5 == 0:
        pay["points"] = 200
    add(pay)
add({"type": "reverse", "command_id": "M1:O1:rev", "merchant": "M1", "merchant_order_no": "O1", "reason": "timeout"})
lines.append(lines[-2])  # the last payment again
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
EOF
commands=$(wc -l <"$work/commands.jsonl")

# 3. serve consumes them; submit prints one result per line sent.
"$ledger" serve --data "$work/ledger" --brokers "$brokers" --clock occurred --allow-unsigned-commands >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
pids+=("$serve_pid")
timeout 180 "$ledger" submit --brokers "$brokers" --timeout-ms 120000 "$work/commands.jsonl" \
  >"$work/results.jsonl" 2>"$work/submit.err" || fail "ledger submit --brokers failed"
results=$(wc -l <"$work/results.jsonl")
[ "$results" = "$commands" ] || fail "$commands commands sent, $results results printed"
duplicates=$(grep -c '"status":"duplicate"' "$work/results.jsonl")
[ "$duplicates" = 1 ] || fail "expected 1 duplicate result for the redelivered line, got $duplicates"
kill -TERM "$serve_pid"
wait_exit "$serve_pid" 60 || fail "ledger serve did not stop within 60 s of SIGTERM"
[ "$exit_code" = 0 ] || fail "ledger serve exited with $exit_code after SIGTERM"
"$ledger" events --data "$work/ledger" --json >"$work/stored.jsonl" 2>"$work/events.err" || fail "ledger events failed"

# 4. kcat: values (each prefixed by its 4-byte big-endian length), then keys and headers.
timeout 60 kcat -C -b "$brokers" -t ledger.events -p 0 -o beginning -e -q -f '%R%s' >"$work/values.bin" 2>"$work/kcat.err" \
  || fail "kcat could not read ledger.events"
timeout 60 kcat -C -b "$brokers" -t ledger.events -p 0 -o beginning -e -q -f '%o\t%k\t%h\n' >"$work/meta.tsv" 2>>"$work/kcat.err" \
  || fail "kcat could not read ledger.events keys and headers"

# 5. Split, convert with flatc, compare with the store.
mkdir -p "$work/records" "$work/json"
count=$(python3 - "$work/values.bin" "$work/records" 2>&1 <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
at, n = 0, 0
while at < len(data):
    if at + 4 > len(data):
        sys.exit("truncated length prefix")
    (size,) = struct.unpack(">I", data[at:at + 4])
    at += 4
    if at + size > len(data):
        sys.exit("truncated record")
    n += 1
    open(f"{sys.argv[2]}/rec-{n:06d}.bin", "wb").write(data[at:at + size])
    at += size
print(n)
EOF
) || fail "cannot split kcat output: $count"
[ "$count" -gt 0 ] || fail "kcat read no records from ledger.events"
timeout 120 flatc --json --strict-json --raw-binary -o "$work/json" "$schemas/events.fbs" -- "$work"/records/rec-*.bin \
  2>"$work/flatc.err" || fail "flatc could not decode the records: $(head -c 300 "$work/flatc.err")"

verdict=$(python3 - "$work/json" "$work/stored.jsonl" "$work/meta.tsv" "$work/commands.jsonl" "$serve_pid" 2>&1 <<'EOF'
import glob, json, os, sys
json_dir, stored_path, meta_path, commands_path, serve_pid = sys.argv[1:6]
stored = [json.loads(line) for line in open(stored_path) if line.strip()]
if not stored:
    sys.exit("ledger events printed nothing")
files = sorted(glob.glob(os.path.join(json_dir, "rec-*.json")))
records = [json.load(open(path)) for path in files]
if len(records) != len(stored):
    sys.exit(f"ledger.events holds {len(records)} records, the store {len(stored)} events")
customer_of = {}  # command id -> expected key
for line in open(commands_path):
    command = json.loads(line)
    key = command.get("customer") or command.get("merchant")
    if command["type"] == "deposit":
        key = command["account"].split(":")[0]
    if command["type"] == "reverse":
        key = "C1"  # the customer of order O1
    customer_of[command["command_id"]] = key
meta = [line.rstrip("\n").split("\t") for line in open(meta_path) if line.strip()]
if len(meta) != len(records):
    sys.exit(f"kcat printed {len(meta)} key/header lines for {len(records)} records")
seen = set()
for index, (record, event, (offset, key, headers)) in enumerate(zip(records, stored, meta)):
    body = record.get("body")
    if not isinstance(body, dict):
        sys.exit(f"offset {offset}: flatc did not decode the nested EventBody: {str(record)[:200]}")
    sequence = int(body.get("sequence", 0))
    if sequence in seen:
        sys.exit(f"sequence {sequence} appears twice")
    seen.add(sequence)
    if sequence != index + 1:
        sys.exit(f"offset {offset}: sequence {sequence}, expected {index + 1} (1..N in order)")
    if int(event["sequence"]) != sequence:
        sys.exit(f"store event {index + 1} has sequence {event['sequence']}")
    if bytes(record.get("hash", [])).hex() != event["hash"] or bytes(record.get("prev_hash", [])).hex() != event["prev_hash"]:
        sys.exit(f"sequence {sequence}: hashes differ from the store's")
    if body.get("transaction_id") != event["transaction_id"] or body.get("command_id") != event["command_id"]:
        sys.exit(f"sequence {sequence}: transaction or command differs from the store's")
    pairs = dict(item.split("=", 1) for item in headers.split(",")) if headers else {}
    expected = {"ledger.sequence": str(sequence), "ledger.type": event["type"], "ledger.transaction": event["transaction_id"]}
    # The process that produced it: "<host>:<pid>" of the serve this script started.
    owner = pairs.pop("ledger.owner", "")
    if not owner.endswith(":" + serve_pid) or len(owner) <= len(serve_pid) + 1:
        sys.exit(f"sequence {sequence}: ledger.owner '{owner}', expected '<host>:{serve_pid}'")
    if pairs != expected:
        sys.exit(f"sequence {sequence}: headers {pairs}, expected {expected}")
    want = customer_of.get(body["command_id"])
    if key != want:
        sys.exit(f"sequence {sequence} ({event['type']} of {body['command_id']}): key '{key}', expected '{want}'")
print(f"{len(records)} events, sequences 1..{len(records)} once each, in order")
EOF
) || fail "$verdict"
echo "kcat_flatc: ok: $commands commands, $verdict, $duplicates duplicate answer"
exit 0
