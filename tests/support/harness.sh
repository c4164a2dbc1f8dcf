# Shared by the shell tests: temporary folder, process clean-up, one-line failures, bounded waits.
# Source it after setting `test_name`; it sets `work` (a new temporary folder) and `pids` (processes to stop).
work=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Prints one line saying why, then the last lines of every *.err in $work, and exits 1.
fail() {
  echo "$test_name: FAIL: $*"
  for log in "$work"/*.err; do
    [ -s "$log" ] && { echo "--- $(basename "$log") (last lines)"; tail -n 5 "$log"; }
  done
  exit 1
}

# Waits (bounded) for process $1 to exit within $2 seconds; sets $exit_code.
wait_exit() {
  local pid=$1 seconds=$2
  for _ in $(seq $((seconds * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && return 1
  wait "$pid"
  exit_code=$?
  return 0
}
