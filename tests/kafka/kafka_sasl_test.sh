#!/usr/bin/env bash
# Goal: every Kafka client of `ledger serve` (the topic check, the commands reader, the publisher) connects with
# the TLS/SASL settings of [kafka] in ledger.toml. A real Apache Kafka broker (scripts/kafka/cluster.sh) listens
# with SASL_PLAINTEXT (mechanism PLAIN) besides plaintext; serve is given only the SASL listener and the
# password in a file of its own: a command that Debian's kcat produces through SASL is applied and its result
# read back through SASL. A wrong password is refused by the broker (logged) and serve never serves; a password
# file others may read is refused before any connection (exit 2); the password is in no
# log.
#
# Usage: kafka_sasl_test.sh LEDGER_BINARY SOURCE_DIR. Exit 0 pass, 1 fail (one line saying why), 77 skipped.
set -u

ledger=${1:?usage: kafka_sasl_test.sh LEDGER_BINARY SOURCE_DIR}
source_dir=${2:?usage: kafka_sasl_test.sh LEDGER_BINARY SOURCE_DIR}
for tool in kcat timeout; do
  command -v "$tool" >/dev/null 2>&1 || { echo "kafka_sasl: skipped: $tool is not installed"; exit 77; }
done

test_name=kafka_sasl
# shellcheck source=../support/harness.sh
source "$(dirname "$0")/../support/harness.sh"
cluster="$work/cluster"
stop_cluster() { bash "$source_dir/scripts/kafka/cluster.sh" stop "$cluster" >/dev/null 2>&1; cleanup; }
trap stop_cluster EXIT

password=Sasl_Pw_7f3a91
bash "$source_dir/scripts/kafka/cluster.sh" fetch >"$work/fetch.out" 2>"$work/fetch.err"
case $? in
  0) ;;
  77) echo "kafka_sasl: skipped: Apache Kafka cannot be had here ($(head -c 200 "$work/fetch.err"))"; exit 77 ;;
  *) fail "cluster.sh fetch failed" ;;
esac
LEDGER_KAFKA_SASL_PLAIN="ledger:$password" bash "$source_dir/scripts/kafka/cluster.sh" start 1 "$cluster" \
  >"$work/cluster.out" 2>"$work/cluster.err" || fail "cluster.sh start failed"
sasl=$(sed -n 's/^sasl_bootstrap=//p' "$work/cluster.out")
[ -n "$sasl" ] || fail "cluster.sh printed no sasl_bootstrap: $(cat "$work/cluster.out")"
kcat_sasl=(kcat -b "$sasl" -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=PLAIN
  -X sasl.username=ledger -X "sasl.password=$password")

# A shard whose ledger.toml names the SASL listener only, the password in a file of its own.
make_shard() {  # $1 = folder, $2 = the password its file holds, $3 = the file's mode
  mkdir -p "$1"
  printf '%s\n' "$2" >"$1/kafka.password"
  chmod "$3" "$1/kafka.password"
  cat >"$1/ledger.toml" <<EOF
[kafka]
brokers = "$sasl"
security_protocol = "SASL_PLAINTEXT"
sasl_mechanism = "PLAIN"
sasl_username = "ledger"
sasl_password_file = "kafka.password"
EOF
}

# 1. A password file others may read: refused before anything connects.
make_shard "$work/open" "$password" 644
timeout 60 "$ledger" serve --data "$work/open" --allow-unsigned-commands >"$work/open.out" 2>"$work/open.err"
[ $? = 2 ] || fail "serve with a password file open to others did not exit 2"
grep -q "open to no one else" "$work/open.err" || fail "no line naming the open password file: $(cat "$work/open.err")"

# 2. The right password: serve creates the topics, applies a command kcat sent through SASL, answers through it.
make_shard "$work/shard" "$password" 600
"$ledger" serve --data "$work/shard" --allow-unsigned-commands >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
pids+=("$serve_pid")
for _ in $(seq 600); do
  grep -q "shard 0 at sequence" "$work/serve.err" 2>/dev/null && break
  kill -0 "$serve_pid" 2>/dev/null || fail "serve exited at start (exit $(wait "$serve_pid"; echo $?))"
  sleep 0.1
done
grep -q "shard 0 at sequence" "$work/serve.err" || fail "serve did not start within 60 s through SASL"
echo '{"type":"open_account","command_id":"sasl-a1","customer":"C1","account":"C1:debit","kind":"debit_card"}' |
  timeout 60 "${kcat_sasl[@]}" -P -t ledger.commands -p 0 -k sasl-a1 2>"$work/kcat.err" ||
  fail "kcat could not produce through SASL"
result=""
for _ in $(seq 150); do
  result=$(timeout 30 "${kcat_sasl[@]}" -C -t ledger.results -p 0 -o beginning -e -q 2>/dev/null | grep sasl-a1)
  [ -n "$result" ] && break
  sleep 0.2
done
case "$result" in
  *'"status":"accepted"'*) ;;
  *) fail "no accepted result for sasl-a1 on ledger.results within 30 s: '$result'" ;;
esac
events=$(timeout 30 "${kcat_sasl[@]}" -C -t ledger.events -p 0 -o beginning -e -q -f '%h\n' 2>/dev/null |
  grep -c 'ledger.type=AccountOpened')
[ "$events" = 1 ] || fail "ledger.events holds $events AccountOpened events, expected 1"
# The programs that read no data folder take the same settings from --kafka-config; without them they read
# nothing through the SASL listener.
tailed=$(timeout 60 "$ledger" tail --brokers "$sasl" --kafka-config "$work/shard/ledger.toml" --from-beginning \
  --max 1 --idle-exit-ms 20000 2>"$work/tail.err")
case "$tailed" in
  *'"AccountOpened"'*) ;;
  *) fail "tail --kafka-config did not read the AccountOpened event through SASL: '$tailed' $(cat "$work/tail.err")" ;;
esac
unauthenticated=$(timeout 60 "$ledger" tail --brokers "$sasl" --from-beginning --max 1 --idle-exit-ms 3000 \
  2>"$work/tail-plain.err")
[ -z "$unauthenticated" ] || fail "tail without the SASL settings read through the SASL listener: $unauthenticated"
# The credentials go only to the brokers their file names.
timeout 60 "$ledger" tail --brokers "127.0.0.1:1" --kafka-config "$work/shard/ledger.toml" --max 1 \
  >"$work/elsewhere.out" 2>"$work/elsewhere.err"
[ $? = 2 ] || fail "tail --kafka-config with other --brokers did not exit 2"
grep -q "is for brokers" "$work/elsewhere.err" || fail "no line naming the brokers: $(cat "$work/elsewhere.err")"
timeout 60 "$ledger" cluster-status --brokers "$sasl" --kafka-config "$work/shard/ledger.toml" --json \
  >"$work/status.out" 2>"$work/status.err" || fail "cluster-status --kafka-config failed: $(cat "$work/status.err")"
grep -q '"shard":0' "$work/status.out" || fail "cluster-status --kafka-config printed no shard: $(cat "$work/status.out")"
kill -TERM "$serve_pid"
wait_exit "$serve_pid" 60 || fail "serve did not stop within 60 s of SIGTERM"
[ "$exit_code" = 0 ] || fail "serve exited $exit_code after SIGTERM"

# 3. A wrong password: the broker refuses it (the error is logged) and serve never starts serving; it waits for
# Kafka as it does through an outage, and stops on SIGTERM.
make_shard "$work/wrong" "not_$password" 600
"$ledger" serve --data "$work/wrong" --allow-unsigned-commands >"$work/wrong.out" 2>"$work/wrong.err" &
wrong_pid=$!
pids+=("$wrong_pid")
for _ in $(seq 600); do
  grep -q "Authentication failed" "$work/wrong.err" 2>/dev/null && break
  kill -0 "$wrong_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q "Authentication failed" "$work/wrong.err" || fail "no authentication failure logged within 60 s"
! grep -q "shard 0 at sequence" "$work/wrong.err" || fail "serve served with a wrong SASL password"
kill -TERM "$wrong_pid" 2>/dev/null
wait_exit "$wrong_pid" 60 || fail "serve with a wrong password did not stop within 60 s of SIGTERM"

# 4. The password is in no output or log.
if grep -rqs "$password" "$work"/*.out "$work"/*.err "$work"/shard/*.log 2>/dev/null; then
  fail "the SASL password appears in an output or a log"
fi
echo "kafka_sasl: PASS"
