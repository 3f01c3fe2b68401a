#!/usr/bin/env bash
# Sluice's Kubernetes benchmark: small GETs (req/s, p50/p99) and a large list (MB/s), direct to
# the test API server vs through the broker, plain and with a masking role, in one run. See
# docs/benchmarks.md.
#
#   bench/kube.sh                                   # 20000 GETs, 20000 configmaps, 3 reps
#   BENCH_KUBE_REQUESTS=1000 BENCH_REPS=1 bench/kube.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo build --release --quiet -p sluiced -p sluice-cli -p sluice-tests --bin sluiced --bin sluice --bin sluice-bench-kube
exec target/release/sluice-bench-kube "$@"
