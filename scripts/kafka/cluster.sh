#!/usr/bin/env bash
# Real Apache Kafka (4.x, KRaft, combined broker+controller) on 127.0.0.1 for the kafka-real integration tests.
#
#   cluster.sh fetch                    fetch the broker jars from Maven Central into the cache (idempotent)
#   cluster.sh start N DIR [BASE_PORT]  format and start N brokers (1 or 3 typical) with logs under DIR;
#                                       prints bootstrap=127.0.0.1:P1,... once every broker answers
#   cluster.sh stop DIR                 stop every broker of DIR (SIGTERM, then SIGKILL after a bound)
#   cluster.sh kill DIR I               SIGKILL broker I (1-based), keeping its log
#   cluster.sh restart DIR I            start broker I again from its log dir on the same ports
#   cluster.sh status DIR               one line per broker: I PID running|stopped PORT
#
# Environment: LEDGER_KAFKA_VERSION (default 4.4.0), LEDGER_KAFKA_CACHE (default ~/.cache/ledger-kafka; the
# jars go to <cache>/<version>/libs), LEDGER_KAFKA_JAVA (a Java 17+ `java`; default: java on PATH),
# LEDGER_KAFKA_HEAP (default 384m), LEDGER_KAFKA_START_TIMEOUT (seconds, default 90), LEDGER_KAFKA_SASL_PLAIN
# ("USER:PASSWORD": each broker also listens with SASL_PLAINTEXT, mechanism PLAIN, accepting that user, on a
# port of its own; start then prints sasl_bootstrap=… too).
# Exit codes: 0 ok; 1 failure (one line "kafka: reason" on stderr); 2 bad usage; 77 Kafka cannot be had here
# (Maven Central unreachable, no Maven or no Java 17): callers skip.
set -euo pipefail

readonly SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly KAFKA_VERSION="${LEDGER_KAFKA_VERSION:-4.4.0}"
readonly CACHE_ROOT="${LEDGER_KAFKA_CACHE:-${HOME:-/tmp}/.cache/ledger-kafka}"
readonly LIBS_DIR="${CACHE_ROOT}/${KAFKA_VERSION}/libs"
readonly JAVA="${LEDGER_KAFKA_JAVA:-java}"
readonly HEAP="${LEDGER_KAFKA_HEAP:-384m}"
readonly START_TIMEOUT_S="${LEDGER_KAFKA_START_TIMEOUT:-90}"
readonly FETCH_TIMEOUT_S=900
readonly DEPENDENCY_PLUGIN_VERSION=3.6.1
readonly STOP_TIMEOUT_S=20

die() {  # one line, then exit with $1
  local code="$1"
  shift
  echo "kafka: $*" >&2
  exit "${code}"
}

usage() {
  echo "usage: cluster.sh fetch | start N DIR [BASE_PORT] | stop DIR | kill DIR I | restart DIR I | status DIR" >&2
  exit 2
}

# ---------------------------------------------------------------------------------------------------------
# fetch

java_major() {  # prints the major version of $JAVA, or nothing
  "${JAVA}" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -1
}

check_java() {  # exit 77 unless a Java 17+ runtime is there
  command -v "${JAVA}" >/dev/null 2>&1 || die 77 "Java 17+ is needed for Apache Kafka ${KAFKA_VERSION} brokers: ${JAVA} not found"
  local major
  major="$(java_major || true)"
  [[ -n "${major}" && "${major}" -ge 17 ]] ||
    die 77 "Java 17+ is needed for Apache Kafka ${KAFKA_VERSION} brokers: ${JAVA} is version ${major:-unknown}"
}

cmd_fetch() {
  [[ $# -eq 0 ]] || usage
  check_java
  if [[ -f "${LIBS_DIR}/.complete" ]]; then
    echo "kafka ${KAFKA_VERSION}: cached in ${LIBS_DIR}"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die 77 "cannot fetch Apache Kafka from Maven Central: mvn (Maven) is not installed"
  mkdir -p "${CACHE_ROOT}/${KAFKA_VERSION}"
  # One fetch at a time per version (parallel test processes share the cache).
  exec 9>"${CACHE_ROOT}/${KAFKA_VERSION}/.lock"
  flock -w "${FETCH_TIMEOUT_S}" 9 || die 1 "another fetch of ${KAFKA_VERSION} holds ${CACHE_ROOT}/${KAFKA_VERSION}/.lock"
  if [[ -f "${LIBS_DIR}/.complete" ]]; then
    echo "kafka ${KAFKA_VERSION}: cached in ${LIBS_DIR}"
    return 0
  fi
  local staging="${LIBS_DIR}.partial.$$"
  local log="${CACHE_ROOT}/${KAFKA_VERSION}/fetch.log"
  rm -rf "${staging}"
  local started=${SECONDS} status=0
  # Run from the cache folder so that Maven writes nothing into the source tree.
  (cd "${CACHE_ROOT}/${KAFKA_VERSION}" &&
    timeout --kill-after=10 "${FETCH_TIMEOUT_S}" mvn -B -q -Dstyle.color=never -f "${SCRIPT_DIR}/pom.xml" \
      -Dkafka.version="${KAFKA_VERSION}" -Dmaven.wagon.http.retryHandler.count=2 \
      "org.apache.maven.plugins:maven-dependency-plugin:${DEPENDENCY_PLUGIN_VERSION}:copy-dependencies" \
      -DincludeScope=runtime -DoutputDirectory="${staging}") >"${log}" 2>&1 || status=$?
  if [[ ${status} -ne 0 ]]; then
    rm -rf "${staging}"
    local reason
    if [[ ${status} -eq 124 || ${status} -eq 137 ]]; then
      reason="no answer within ${FETCH_TIMEOUT_S} s"
    else
      # Maven's first error line names the cause; keep its innermost part (unknown host, connection refused ...).
      reason="$(grep -m1 -E '\[ERROR\] +[^ ]' "${log}" | sed -E -e 's/^.*\[ERROR\] *//' -e 's/ -> \[Help 1\]$//' \
        -e 's/^.*transfer failed for ([^ ]+): (.*)$/\2 (fetching \1)/' | cut -c1-400 || true)"
      [[ -n "${reason}" ]] || reason="mvn exited with ${status} (see ${log})"
      # Reached, but the artifact is not there: a wrong version, not a network problem.
      if grep -q -E 'Could not find artifact|was not found in' "${log}"; then
        die 1 "Apache Kafka ${KAFKA_VERSION} is not on Maven Central: ${reason}"
      fi
    fi
    die 77 "cannot fetch Apache Kafka from Maven Central: ${reason}"
  fi
  ls "${staging}"/kafka_2.13-"${KAFKA_VERSION}".jar >/dev/null 2>&1 ||
    die 1 "Maven finished but ${staging} holds no kafka_2.13-${KAFKA_VERSION}.jar"
  touch "${staging}/.complete"
  rm -rf "${LIBS_DIR}"
  mv "${staging}" "${LIBS_DIR}"
  echo "kafka ${KAFKA_VERSION}: fetched $(ls "${LIBS_DIR}"/*.jar | wc -l) jars ($(du -sm "${LIBS_DIR}" | cut -f1) MB) in $((SECONDS - started)) s into ${LIBS_DIR}"
}

# ---------------------------------------------------------------------------------------------------------
# cluster state: DIR/cluster.env (N, ports, version), DIR/broker-I/{server.properties,data,broker.log}, DIR/pids

port_free() {  # true when nothing listens on 127.0.0.1:$1 (nor on any address)
  ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

pick_base_port() {  # $1 = how many consecutive free ports; prints the first
  # Below the kernel's ephemeral range (32768-60999 by default), so that no client connection takes a port
  # while its broker is down for a restart.
  local count="$1" attempt base i ok
  for attempt in $(seq 1 200); do
    base=$((20000 + RANDOM % 12000))
    ok=1
    for ((i = 0; i < count; i++)); do
      if ! port_free $((base + i)); then
        ok=0
        break
      fi
    done
    if [[ ${ok} -eq 1 ]]; then
      echo "${base}"
      return 0
    fi
  done
  return 1
}

broker_port() { echo $((BASE_PORT + 2 * ($1 - 1))); }
controller_port() { echo $((BASE_PORT + 2 * ($1 - 1) + 1)); }
sasl_port() { echo $((BASE_PORT + 2 * BROKERS + $1 - 1)); }  # after every broker's two

load_cluster() {  # $1 = DIR
  local dir="$1"
  [[ -f "${dir}/cluster.env" ]] || die 1 "${dir} holds no cluster (no cluster.env)"
  # shellcheck disable=SC1091
  source "${dir}/cluster.env"
}

bootstrap_of() {  # all brokers of the loaded cluster
  local i list=""
  for ((i = 1; i <= BROKERS; i++)); do list+="${list:+,}127.0.0.1:$(broker_port "${i}")"; done
  echo "${list}"
}

sasl_bootstrap_of() {  # the SASL listeners of the loaded cluster
  local i list=""
  for ((i = 1; i <= BROKERS; i++)); do list+="${list:+,}127.0.0.1:$(sasl_port "${i}")"; done
  echo "${list}"
}

pid_of() {  # $1 = DIR, $2 = I; prints the recorded pid or nothing
  [[ -f "$1/pids" ]] || return 0
  awk -v i="$2" '$1 == i { pid = $2 } END { if (pid != "") print pid }' "$1/pids"
}

record_pid() {  # $1 = DIR, $2 = I, $3 = pid
  local tmp="$1/pids.tmp"
  { [[ -f "$1/pids" ]] && awk -v i="$2" '$1 != i' "$1/pids"; echo "$2 $3"; } >"${tmp}"
  mv "${tmp}" "$1/pids"
}

alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

write_properties() {  # $1 = DIR, $2 = I
  local dir="$1" i="$2" voters="" j
  for ((j = 1; j <= BROKERS; j++)); do voters+="${voters:+,}${j}@127.0.0.1:$(controller_port "${j}")"; done
  local rf=$((BROKERS < 3 ? BROKERS : 3))
  local min_isr=$((BROKERS >= 3 ? 2 : 1))
  cat >"${dir}/broker-${i}/server.properties" <<EOF
# Written by scripts/kafka/cluster.sh: broker ${i} of ${BROKERS}, KRaft combined mode, 127.0.0.1 only.
process.roles=broker,controller
node.id=${i}
controller.quorum.voters=${voters}
listeners=PLAINTEXT://127.0.0.1:$(broker_port "${i}"),CONTROLLER://127.0.0.1:$(controller_port "${i}")${SASL_USER:+,SASL_PLAINTEXT://127.0.0.1:$(sasl_port "${i}")}
advertised.listeners=PLAINTEXT://127.0.0.1:$(broker_port "${i}")${SASL_USER:+,SASL_PLAINTEXT://127.0.0.1:$(sasl_port "${i}")}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
log.dirs=${dir}/broker-${i}/data
num.partitions=1
auto.create.topics.enable=false
default.replication.factor=${rf}
min.insync.replicas=${min_isr}
unclean.leader.election.enable=false
offsets.topic.replication.factor=${rf}
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=${rf}
transaction.state.log.min.isr=${min_isr}
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=${rf}
share.coordinator.state.topic.min.isr=${min_isr}
group.initial.rebalance.delay.ms=0
# Fail over within seconds when a broker is killed (tests kill brokers on purpose).
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000
replica.lag.time.max.ms=8000
controller.quorum.election.timeout.ms=1000
controller.quorum.fetch.timeout.ms=2000
num.network.threads=2
num.io.threads=4
num.replica.fetchers=1
background.threads=4
log.retention.hours=24
log.segment.bytes=67108864
# Record timestamps are the broker's append time, so tests can tell in which order records of different
# topics reached Kafka (all brokers run on this machine, on one clock).
log.message.timestamp.type=LogAppendTime
EOF
  if [[ -n "${SASL_USER}" ]]; then
    cat >>"${dir}/broker-${i}/server.properties" <<EOF
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${SASL_USER}="${SASL_PASSWORD}";
EOF
  fi
}

write_log4j() {  # $1 = DIR
  cat >"$1/log4j2.properties" <<'EOF'
# Broker logs go to stdout, which cluster.sh sends to DIR/broker-I/broker.log.
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
EOF
  sed -e 's/^rootLogger.level = info/rootLogger.level = warn/' "$1/log4j2.properties" >"$1/log4j2-tools.properties"
}

launch() {  # $1 = DIR, $2 = I: starts broker I in the background and records its pid
  local dir="$1" i="$2"
  local port
  port="$(broker_port "${i}")"
  port_free "${port}" || die 1 "broker ${i}: port ${port} is in use"
  port_free "$(controller_port "${i}")" || die 1 "broker ${i}: port $(controller_port "${i}") is in use"
  # setsid: the broker gets its own session, so a signal to the caller's process group does not reach it and
  # stop/kill address exactly this pid.
  setsid "${JAVA}" -Xms64m -Xmx"${HEAP}" -XX:+UseG1GC -XX:MaxGCPauseMillis=50 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="${dir}/log4j2.properties" \
    -cp "${LIBS_DIR}/*" kafka.Kafka "${dir}/broker-${i}/server.properties" \
    >>"${dir}/broker-${i}/broker.log" 2>&1 </dev/null &
  record_pid "${dir}" "${i}" "$!"
}

# True when broker I answers a metadata request and the cluster lists `want` brokers.
answers() {  # $1 = port, $2 = want
  local out
  out="$(timeout 8 kcat -L -b "127.0.0.1:$1" -m 3 2>/dev/null)" || return 1
  local count
  count="$(sed -n 's/^ *\([0-9]*\) brokers:.*/\1/p' <<<"${out}" | head -1)"
  [[ -n "${count}" && "${count}" -ge "$2" ]]
}

wait_ready() {  # $1 = DIR, rest = broker numbers to wait for; all brokers of the cluster must be listed
  local dir="$1"
  shift
  local deadline=$((SECONDS + START_TIMEOUT_S)) i pending
  while true; do
    pending=""
    for i in "$@"; do
      alive "$(pid_of "${dir}" "${i}")" ||
        die 1 "broker ${i} exited while starting: $(grep -m1 -E 'ERROR|Exception' "${dir}/broker-${i}/broker.log" | cut -c1-300 || echo "see ${dir}/broker-${i}/broker.log")"
      answers "$(broker_port "${i}")" "${BROKERS}" || pending+=" ${i}"
    done
    [[ -z "${pending}" ]] && return 0
    if ((SECONDS >= deadline)); then
      die 1 "broker(s)${pending} did not answer within ${START_TIMEOUT_S} s (logs: ${dir}/broker-*/broker.log)"
    fi
    sleep 1
  done
}

cmd_start() {
  [[ $# -ge 2 && $# -le 3 ]] || usage
  local n="$1" dir="$2" base="${3:-}"
  [[ "${n}" =~ ^[1-9]$ ]] || die 2 "N must be 1..9, got ${n}"
  [[ -f "${LIBS_DIR}/.complete" ]] || die 1 "Apache Kafka ${KAFKA_VERSION} is not fetched: run cluster.sh fetch first"
  check_java
  command -v kcat >/dev/null 2>&1 || die 1 "kcat is needed to probe the brokers (apt-get install kcat)"
  mkdir -p "${dir}"
  dir="$(cd "${dir}" && pwd)"
  [[ ! -f "${dir}/cluster.env" ]] || die 1 "${dir} already holds a cluster (stop it and use a fresh folder)"
  SASL_USER="" SASL_PASSWORD=""
  if [[ -n "${LEDGER_KAFKA_SASL_PLAIN:-}" ]]; then
    [[ "${LEDGER_KAFKA_SASL_PLAIN}" =~ ^([A-Za-z0-9_]+):([A-Za-z0-9_]+)$ ]] ||
      die 2 "LEDGER_KAFKA_SASL_PLAIN must be USER:PASSWORD (letters, digits, _)"
    SASL_USER="${BASH_REMATCH[1]}" SASL_PASSWORD="${BASH_REMATCH[2]}"
  fi
  local ports=$((2 * n))
  [[ -z "${SASL_USER}" ]] || ports=$((3 * n))
  if [[ -z "${base}" ]]; then
    base="$(pick_base_port "${ports}")" || die 1 "found no ${ports} consecutive free ports"
  fi
  [[ "${base}" =~ ^[0-9]+$ && "${base}" -ge 1024 && $((base + ports)) -le 65535 ]] || die 2 "bad BASE_PORT ${base}"
  BROKERS="${n}"
  BASE_PORT="${base}"
  local cluster_id
  # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding. One that starts with '-' reads as an option
  # to the formatter's argument parser (a 1-in-64 failure), so draw again, as Kafka's own Uuid.randomUuid does.
  cluster_id="-"
  while [[ "${cluster_id}" == -* ]]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  {
    echo "BROKERS=${n}"
    echo "BASE_PORT=${base}"
    echo "CLUSTER_ID=${cluster_id}"
    echo "KAFKA_VERSION_STARTED=${KAFKA_VERSION}"
  } >"${dir}/cluster.env"
  write_log4j "${dir}"
  : >"${dir}/pids"
  local i
  local formats=()
  for ((i = 1; i <= n; i++)); do
    mkdir -p "${dir}/broker-${i}/data"
    write_properties "${dir}" "${i}"
    # Static quorum (controller.quorum.voters): the formatter needs only the cluster id. All in parallel.
    timeout 120 "${JAVA}" -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="${dir}/log4j2-tools.properties" \
      -cp "${LIBS_DIR}/*" kafka.tools.StorageTool format -t "${cluster_id}" -c "${dir}/broker-${i}/server.properties" \
      >"${dir}/broker-${i}/format.log" 2>&1 &
    formats+=("$!")
  done
  for ((i = 1; i <= n; i++)); do
    wait "${formats[$((i - 1))]}" ||
      die 1 "formatting broker ${i} failed: $(grep -v -e '^\[' -e '^\s' "${dir}/broker-${i}/format.log" | head -1 | cut -c1-300)"
  done
  for ((i = 1; i <= n; i++)); do launch "${dir}" "${i}"; done
  local all=()
  for ((i = 1; i <= n; i++)); do all+=("${i}"); done
  if ! (wait_ready "${dir}" "${all[@]}"); then
    cmd_stop "${dir}" >/dev/null 2>&1 || true
    exit 1
  fi
  echo "bootstrap=$(bootstrap_of)"
  [[ -z "${SASL_USER}" ]] || echo "sasl_bootstrap=$(sasl_bootstrap_of)"
}

stop_pids() {  # SIGTERM the given pids, SIGKILL what is left after STOP_TIMEOUT_S
  local pid deadline=$((SECONDS + STOP_TIMEOUT_S)) left
  for pid in "$@"; do kill -TERM "${pid}" 2>/dev/null || true; done
  while true; do
    left=""
    for pid in "$@"; do alive "${pid}" && left+=" ${pid}"; done
    [[ -z "${left}" ]] && return 0
    if ((SECONDS >= deadline)); then
      for pid in ${left}; do kill -KILL "${pid}" 2>/dev/null || true; done
      sleep 0.5
      return 0
    fi
    sleep 0.2
  done
}

cmd_stop() {
  [[ $# -eq 1 ]] || usage
  local dir="$1"
  [[ -f "${dir}/pids" ]] || return 0
  local pids=()
  local i pid
  while read -r i pid; do
    [[ -n "${pid:-}" ]] && alive "${pid}" && pids+=("${pid}")
  done <"${dir}/pids"
  [[ ${#pids[@]} -eq 0 ]] || stop_pids "${pids[@]}"
  echo "stopped ${#pids[@]} broker(s)"
}

check_index() {  # $1 = I
  [[ "$1" =~ ^[0-9]+$ && "$1" -ge 1 && "$1" -le "${BROKERS}" ]] || die 2 "broker index must be 1..${BROKERS}, got $1"
}

cmd_kill() {
  [[ $# -eq 2 ]] || usage
  local dir="$1" i="$2"
  load_cluster "${dir}"
  check_index "${i}"
  local pid
  pid="$(pid_of "${dir}" "${i}")"
  alive "${pid}" || die 1 "broker ${i} is not running"
  kill -KILL "${pid}"
  local deadline=$((SECONDS + 10))
  while alive "${pid}"; do
    ((SECONDS < deadline)) || die 1 "broker ${i} (pid ${pid}) survived SIGKILL for 10 s"
    sleep 0.1
  done
  echo "killed broker ${i} (pid ${pid})"
}

cmd_restart() {
  [[ $# -eq 2 ]] || usage
  local dir="$1" i="$2"
  dir="$(cd "${dir}" && pwd)"
  load_cluster "${dir}"
  check_index "${i}"
  ! alive "$(pid_of "${dir}" "${i}")" || die 1 "broker ${i} is still running"
  # The old process's sockets may linger for a moment.
  local deadline=$((SECONDS + 30))
  while ! port_free "$(broker_port "${i}")" || ! port_free "$(controller_port "${i}")"; do
    ((SECONDS < deadline)) || die 1 "broker ${i}: ports still in use after 30 s"
    sleep 0.5
  done
  echo "--- restart $(date -Is)" >>"${dir}/broker-${i}/broker.log"
  launch "${dir}" "${i}"
  # Wait until this broker answers and lists itself, that is, until it registered with the controller quorum
  # (with too few brokers up to form a quorum this times out).
  wait_ready_one "${dir}" "${i}"
  echo "restarted broker ${i} (pid $(pid_of "${dir}" "${i}")) bootstrap=$(bootstrap_of)"
}

wait_ready_one() {  # $1 = DIR, $2 = I: broker I answers metadata requests and lists itself
  local dir="$1" i="$2" deadline=$((SECONDS + START_TIMEOUT_S)) out
  while true; do
    alive "$(pid_of "${dir}" "${i}")" ||
      die 1 "broker ${i} exited while restarting: $(grep -m1 -E 'ERROR|Exception' "${dir}/broker-${i}/broker.log" | cut -c1-300 || true)"
    out="$(timeout 8 kcat -L -b "127.0.0.1:$(broker_port "${i}")" -m 3 2>/dev/null || true)"
    grep -q "broker ${i} at 127.0.0.1:$(broker_port "${i}")" <<<"${out}" && return 0
    ((SECONDS < deadline)) || die 1 "broker ${i} did not answer within ${START_TIMEOUT_S} s after restart"
    sleep 1
  done
}

cmd_status() {
  [[ $# -eq 1 ]] || usage
  local dir="$1" i pid
  load_cluster "${dir}"
  for ((i = 1; i <= BROKERS; i++)); do
    pid="$(pid_of "${dir}" "${i}")"
    if alive "${pid}"; then echo "${i} ${pid} running $(broker_port "${i}")"; else echo "${i} ${pid:--} stopped $(broker_port "${i}")"; fi
  done
}

[[ $# -ge 1 ]] || usage
command="$1"
shift
case "${command}" in
  fetch) cmd_fetch "$@" ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  kill) cmd_kill "$@" ;;
  restart) cmd_restart "$@" ;;
  status) cmd_status "$@" ;;
  *) usage ;;
esac
