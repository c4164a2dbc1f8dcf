#!/usr/bin/env bash
# The ledger against a PostgreSQL baseline, in one run, on this machine.
#
#   bash bench/compare_postgres.sh [--commands N] [--customers C] [--clients K] [--ledger BIN] [--json]
#
# PostgreSQL (Debian's, installed when missing) runs a private cluster in a temporary folder on 127.0.0.1 with
# fsync=on and synchronous_commit=on: the way a bank would run it. The same customers are loaded, and the
# payment workload runs as one PL/pgSQL function per payment (idempotency by (merchant, order), balance check,
# per-medium daily limit, double-entry postings, fee, limit usage) through pgbench with K clients. Then
# `ledger bench` runs the same number of commands (embedded Kafka publishing, synced WAL) twice: in-process
# (`--through ledger`) and through ledger.commands, the shard service and ledger.results (`--through serve`).
# The script prints the three throughputs, each ledger figure's ratio to PostgreSQL, and serve's to
# in-process. Everything it starts it stops by process id; every step has a time bound.
# Exit codes: 0 ok; 1 a step failed (one line "compare: reason" on stderr); 2 bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

commands=200000
customers=20000
clients=16
json=0
ledger_bin=build/bin/ledger  # --ledger: another build's program (a path relative to the repository)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --commands) commands="$2"; shift 2 ;;
    --customers) customers="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --ledger) ledger_bin="$2"; shift 2 ;;
    --json) json=1; shift ;;
    *) echo "usage: compare_postgres.sh [--commands N] [--customers C] [--clients K] [--ledger BIN]" \
         "[--json]" >&2
       exit 2 ;;
  esac
done
[[ "${commands}" =~ ^[0-9]+$ && "${customers}" =~ ^[0-9]+$ && "${clients}" =~ ^[0-9]+$ ]] || {
  echo "compare: --commands, --customers and --clients take positive integers" >&2; exit 2; }

die() { echo "compare: $*" >&2; exit 1; }
log() { [[ ${json} -eq 1 ]] || echo "$@"; }

# --- PostgreSQL from Debian, when missing ---------------------------------------------------------------
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [[ -z "${pg_bin}" || ! -x "${pg_bin}/pgbench" ]]; then
  log "installing PostgreSQL from Debian"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q postgresql postgresql-contrib >/dev/null ||
    die "cannot install postgresql with apt-get"
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
fi
run_as=()
if [[ "$(id -u)" -eq 0 ]]; then run_as=(runuser -u postgres --); fi  # the server refuses to run as root

# The ledger binary, built when missing.
if [[ ! -x "${ledger_bin}" ]]; then
  [[ "${ledger_bin}" == build/bin/ledger ]] || die "--ledger ${ledger_bin} is not an executable"
  bash scripts/setup.sh build >/dev/null || die "cannot build the ledger"
fi

work="$(mktemp -d /tmp/ledger-compare.XXXXXX)"
pgdata="${work}/pgdata"
chmod 755 "${work}"
pg_pid=""
cleanup() {
  if [[ -n "${pg_pid}" ]] && kill -0 "${pg_pid}" 2>/dev/null; then
    timeout 60 "${run_as[@]}" "${pg_bin}/pg_ctl" -D "${pgdata}" stop -m fast -t 30 >/dev/null 2>&1 || true
    # Whatever is left (pg_ctl failed): the postmaster by the id in its pid file, then our child.
    local master
    master="$(head -1 "${pgdata}/postmaster.pid" 2>/dev/null || true)"
    [[ -n "${master}" ]] && kill -KILL "${master}" 2>/dev/null || true
    kill -KILL "${pg_pid}" 2>/dev/null || true
    wait "${pg_pid}" 2>/dev/null || true
  fi
  rm -rf "${work}"
}
trap cleanup EXIT

port=$((20000 + RANDOM % 20000))
mkdir -p "${pgdata}" "${work}/socket"
chown -R postgres:postgres "${work}" 2>/dev/null || true
timeout 120 "${run_as[@]}" "${pg_bin}/initdb" -D "${pgdata}" -U bench --auth=trust -E UTF8 >/dev/null ||
  die "initdb failed"
cat >>"${pgdata}/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = ${port}
unix_socket_directories = '${work}/socket'
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 1GB
max_wal_size = 4GB
max_connections = $((clients + 10))
EOF
"${run_as[@]}" "${pg_bin}/postgres" -D "${pgdata}" >"${work}/postgres.log" 2>&1 &
pg_pid=$!
for _ in $(seq 1 300); do
  "${pg_bin}/pg_isready" -h 127.0.0.1 -p "${port}" -q && break
  kill -0 "${pg_pid}" 2>/dev/null || die "postgres did not start: $(tail -1 "${work}/postgres.log")"
  sleep 0.1
done
"${pg_bin}/pg_isready" -h 127.0.0.1 -p "${port}" -q || die "postgres did not answer within 30 s"
psql=("${pg_bin}/psql" -h 127.0.0.1 -p "${port}" -U bench -d postgres -v ON_ERROR_STOP=1 -q)

# --- the schema, the customers, the payment function ------------------------------------------------------
log "loading ${customers} customers into PostgreSQL (port ${port})"
timeout 600 "${psql[@]}" >/dev/null <<SQL || die "loading the PostgreSQL schema failed"
CREATE TABLE accounts (id text PRIMARY KEY, balance_minor bigint NOT NULL);
CREATE TABLE merchants (id text PRIMARY KEY, fee_bps int NOT NULL);
CREATE TABLE payments (merchant text NOT NULL, order_no text NOT NULL, customer text NOT NULL,
  amount_minor bigint NOT NULL, fee_minor bigint NOT NULL, medium text NOT NULL, status text NOT NULL,
  occurred_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (merchant, order_no));
CREATE TABLE postings (id bigserial PRIMARY KEY, merchant text NOT NULL, order_no text NOT NULL,
  account text NOT NULL, amount_minor bigint NOT NULL);
CREATE TABLE limit_usage (customer text NOT NULL, medium text NOT NULL, day date NOT NULL,
  amount_minor bigint NOT NULL, count int NOT NULL, PRIMARY KEY (customer, medium, day));
CREATE TABLE medium_limits (medium text PRIMARY KEY, per_payment_minor bigint NOT NULL, daily_minor bigint NOT NULL);
INSERT INTO medium_limits VALUES ('u_shield', 100000000, 100000000), ('password_device', 50000000, 100000000),
  ('otp_card', 100000, 500000), ('sms', 500000, 500000), ('fingerprint', 500000, 500000), ('password_free', 100000, 100000);
INSERT INTO accounts SELECT 'BC' || g || ':debit', 1000000000 FROM generate_series(0, ${customers} - 1) g;
INSERT INTO accounts SELECT 'BM' || g || ':settlement', 0 FROM generate_series(0, 499) g;
INSERT INTO accounts VALUES ('gl:fee_income', 0);
INSERT INTO merchants SELECT 'BM' || g, 60 FROM generate_series(0, 499) g;
CREATE SEQUENCE order_numbers;

-- One payment, validated and posted double-entry in one transaction. Returns 'accepted', 'duplicate' or a
-- rejection reason, like the ledger's pay command.
CREATE FUNCTION pay(p_customer text, p_merchant text, p_amount bigint, p_medium text) RETURNS text
LANGUAGE plpgsql AS \$\$
DECLARE
  v_order text := 'B' || nextval('order_numbers');
  v_account text := p_customer || ':debit';
  v_fee_bps int;
  v_fee bigint;
  v_balance bigint;
  v_limit medium_limits%ROWTYPE;
  v_used bigint;
BEGIN
  IF p_amount <= 0 THEN RETURN 'INVALID_AMOUNT'; END IF;
  PERFORM 1 FROM payments WHERE merchant = p_merchant AND order_no = v_order;
  IF FOUND THEN RETURN 'duplicate'; END IF;
  SELECT fee_bps INTO v_fee_bps FROM merchants WHERE id = p_merchant;
  IF NOT FOUND THEN RETURN 'UNKNOWN_MERCHANT'; END IF;
  SELECT * INTO v_limit FROM medium_limits WHERE medium = p_medium;
  IF p_amount > v_limit.per_payment_minor THEN RETURN 'LIMIT_EXCEEDED'; END IF;
  SELECT amount_minor INTO v_used FROM limit_usage
    WHERE customer = p_customer AND medium = p_medium AND day = current_date FOR UPDATE;
  IF COALESCE(v_used, 0) + p_amount > v_limit.daily_minor THEN RETURN 'LIMIT_EXCEEDED'; END IF;
  SELECT balance_minor INTO v_balance FROM accounts WHERE id = v_account FOR UPDATE;
  IF v_balance IS NULL THEN RETURN 'UNKNOWN_ACCOUNT'; END IF;
  IF v_balance < p_amount THEN RETURN 'INSUFFICIENT_FUNDS'; END IF;
  v_fee := (p_amount * v_fee_bps + 5000) / 10000;
  UPDATE accounts SET balance_minor = balance_minor - p_amount WHERE id = v_account;
  UPDATE accounts SET balance_minor = balance_minor + p_amount - v_fee WHERE id = p_merchant || ':settlement';
  UPDATE accounts SET balance_minor = balance_minor + v_fee WHERE id = 'gl:fee_income';
  INSERT INTO postings (merchant, order_no, account, amount_minor) VALUES
    (p_merchant, v_order, v_account, -p_amount),
    (p_merchant, v_order, p_merchant || ':settlement', p_amount - v_fee),
    (p_merchant, v_order, 'gl:fee_income', v_fee);
  INSERT INTO payments (merchant, order_no, customer, amount_minor, fee_minor, medium, status)
    VALUES (p_merchant, v_order, p_customer, p_amount, v_fee, p_medium, 'success');
  INSERT INTO limit_usage VALUES (p_customer, p_medium, current_date, p_amount, 1)
    ON CONFLICT (customer, medium, day) DO UPDATE
    SET amount_minor = limit_usage.amount_minor + EXCLUDED.amount_minor, count = limit_usage.count + 1;
  RETURN 'accepted';
END
\$\$;
SQL

cat >"${work}/pay.sql" <<EOF
\\set c random(0, ${customers} - 1)
\\set m random(0, 499)
\\set a random(1000, 20000)
\\set k random(0, 2)
SELECT pay('BC' || :c, 'BM' || :m, :a, (ARRAY['u_shield','password_device','fingerprint'])[:k + 1]);
EOF
per_client=$(( (commands + clients - 1) / clients ))
log "pgbench: ${clients} clients x ${per_client} payments (fsync=on, synchronous_commit=on)"
pg_out="$(timeout 1800 "${pg_bin}/pgbench" -h 127.0.0.1 -p "${port}" -U bench -n -c "${clients}" -j 2 -t "${per_client}" \
  -f "${work}/pay.sql" postgres 2>&1)" || die "pgbench failed: $(echo "${pg_out}" | tail -1)"
pg_tps="$(echo "${pg_out}" | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p')"
[[ -n "${pg_tps}" ]] || die "cannot read pgbench's tps: $(echo "${pg_out}" | tail -1)"
pg_accepted="$(timeout 60 "${psql[@]}" -At -c "SELECT count(*) FROM payments")"
pg_sum="$(timeout 60 "${psql[@]}" -At -c "SELECT sum(balance_minor) - ${customers}::bigint * 1000000000 FROM accounts")"

log "ledger bench: ${commands} commands (embedded Kafka, synced WAL)"
ledger_out="$(timeout 1800 "${ledger_bin}" bench --data "${work}/ledger" --commands "${commands}" \
  --customers "${customers}" --merchants 500 --kafka embedded --sync on --json 2>/dev/null)" || die "ledger bench failed"
ledger_cps="$(echo "${ledger_out}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["commands_per_second"])')"
ratio="$(python3 -c "print(f'{${ledger_cps} / ${pg_tps}:.2f}')")"

log "ledger bench --through serve: ${commands} commands (ledger.commands -> shard service -> ledger.results)"
serve_out="$(timeout 1800 "${ledger_bin}" bench --data "${work}/ledger-serve" --commands "${commands}" \
  --customers "${customers}" --merchants 500 --kafka embedded --sync on --through serve --json 2>/dev/null)" ||
  die "ledger bench --through serve failed"
serve_cps="$(echo "${serve_out}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["commands_per_second"])')"
serve_ratio="$(python3 -c "print(f'{${serve_cps} / ${pg_tps}:.2f}')")"
serve_to_ledger="$(python3 -c "print(f'{${serve_cps} / ${ledger_cps}:.2f}')")"

if [[ ${json} -eq 1 ]]; then
  python3 - "${pg_tps}" "${pg_accepted}" "${pg_sum}" "${ratio}" "${clients}" "${commands}" "${serve_ratio}" \
    "${serve_to_ledger}" <<EOF
import json, sys
ledger = json.loads('''${ledger_out}''')
serve = json.loads('''${serve_out}''')
print(json.dumps({"commands": int(sys.argv[6]), "postgres": {"tps": float(sys.argv[1]), "clients": int(sys.argv[5]),
  "payments_accepted": int(sys.argv[2]), "balance_sum_minor": int(sys.argv[3]), "fsync": True, "synchronous_commit": True},
  "ledger": ledger, "ratio": float(sys.argv[4]), "ledger_through_serve": serve,
  "serve_ratio": float(sys.argv[7]), "serve_to_ledger_ratio": float(sys.argv[8])}))
EOF
else
  echo
  printf '%-34s %14s\n' "system" "commands/s"
  printf '%-34s %14.0f\n' "PostgreSQL 15 (pgbench, ${clients} clients)" "${pg_tps}"
  printf '%-34s %14.0f\n' "ledger (embedded Kafka, sync on)" "${ledger_cps}"
  printf '%-34s %14.0f\n' "ledger --through serve" "${serve_cps}"
  printf '%-34s %14s\n' "ratio ledger / PostgreSQL" "${ratio}"
  printf '%-34s %14s\n' "ratio serve / PostgreSQL" "${serve_ratio}"
  printf '%-34s %14s\n' "ratio serve / ledger" "${serve_to_ledger}"
  echo "PostgreSQL: ${pg_accepted} payments accepted, balances sum to ${pg_sum} (double entry: 0)"
  summary='import json,sys; d=json.load(sys.stdin); print("p99 %.3f ms, peak RSS %.0f MiB, %.0f bytes written per command" % (d["latency_ms"]["p99"], d["peak_rss_mib"], d["bytes_written_per_command"]))'
  echo "ledger: $(echo "${ledger_out}" | python3 -c "${summary}")"
  echo "ledger --through serve: $(echo "${serve_out}" | python3 -c "${summary}")"
fi
