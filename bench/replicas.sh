#!/usr/bin/env bash
# Several brokers on one PostgreSQL store vs one on SQLite: grant round trip, tunnel open time,
# revocation fan-out latency (revoke on one broker, FATAL on another) and tunnels per second
# with one broker and with three. See docs/benchmarks.md.
#
#   bench/replicas.sh                               # 40 rounds, 10 s pgbench runs
#   BENCH_ROUNDS=20 BENCH_SECONDS=5 bench/replicas.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo build --release --quiet -p sluiced -p sluice-cli -p sluice-tests --bin sluiced --bin sluice --bin sluice-bench-replicas
exec target/release/sluice-bench-replicas "$@"
