#!/usr/bin/env bash
# The broker's memory with PostgreSQL sessions: idle sessions through a plain and a guarded
# tunnel (resident memory per session, and what 10,000 would take at that rate), and one long
# masked SELECT (peak resident memory at a tenth of the rows and at all of them: flat means
# nothing is buffered). See docs/benchmarks.md.
#
#   bench/memory.sh                                      # 90 + 90 idle sessions, 10,000,000 rows
#   BENCH_IDLE_SESSIONS=20 BENCH_ROWS=1000000 bench/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo build --release --quiet -p sluiced -p sluice-cli -p sluice-tests --bin sluiced --bin sluice --bin sluice-bench-memory
exec target/release/sluice-bench-memory "$@"
