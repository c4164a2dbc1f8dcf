#!/usr/bin/env bash
# Installs what the build needs on Debian 12 (as root, only what is missing), then configures and builds.
# Usage: scripts/setup.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build pkg-config librdkafka-dev librocksdb-dev libflatbuffers-dev
  flatbuffers-compiler libssl-dev libspdlog-dev libgtest-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev
  libsimdjson-dev libtomlplusplus-dev libjemalloc-dev libboost1.81-dev zlib1g-dev kcat clang-format python3 python3-venv curl
  libp11-kit-dev softhsm2 opensc)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The kafka-real tests fetch Apache Kafka with Maven and run it on Java 17 (any install on PATH will do).
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi

build_dir=${1:-build}
shift || true
# The Python test clients (the real WeChat Pay v3 SDK) in a venv inside the build folder, pinned. When PyPI
# cannot be reached the tests that need them are reported as skipped with the reason, never passed.
venv="$build_dir/venv"
if ! "$venv/bin/python" -c 'import wechatpayv3, pyotp, oath' >/dev/null 2>&1; then
  mkdir -p "$build_dir"
  if ! { python3 -m venv "$venv" >&2 &&
         "$venv/bin/pip" install -q --disable-pip-version-check -r scripts/python/requirements.txt >&2; }; then
    echo "setup: the Python test clients could not be installed into $venv (their tests will be skipped)" >&2
  fi
fi
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >&2
cmake --build "$build_dir" -j "$(nproc)" >&2
