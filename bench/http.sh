#!/usr/bin/env bash
# Sluice's HTTP benchmark: small GETs (req/s, p50/p99) and large responses (MB/s), direct to the
# test service vs socat vs through the broker, plain and with a masking role, in one run. See
# docs/benchmarks.md.
#
#   bench/http.sh                                   # 20000 GETs, 100 MB responses, 3 reps
#   BENCH_HTTP_REQUESTS=1000 BENCH_HTTP_MB=20 BENCH_REPS=1 bench/http.sh
#   BENCH_HTTP_ONLY=sluice-masked bench/http.sh         # one path (e.g. under perf)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
if ! command -v socat >/dev/null 2>&1; then
  echo "==> installing socat (apt)" >&2
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get install -y -q socat >&2
fi
cargo build --release --quiet -p sluiced -p sluice-cli -p sluice-tests --bin sluiced --bin sluice --bin sluice-bench-http
exec target/release/sluice-bench-http "$@"
