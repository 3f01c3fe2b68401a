#!/usr/bin/env bash
# Sluice's SSH benchmark: bulk bytes and connection setup, direct to a real sshd vs a plain TCP
# relay (socat) vs `sluice ssh` through the broker, in one run. See docs/benchmarks.md.
#
#   bench/ssh.sh                        # 1 GiB, 3 reps
#   BENCH_SSH_MB=256 BENCH_REPS=1 bench/ssh.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
command -v socat >/dev/null 2>&1 || { echo "==> installing socat (apt)" >&2; apt-get install -y -qq --no-install-recommends socat >/dev/null; }
cargo build --release --quiet -p sluiced -p sluice-cli -p sluice-tests --bin sluiced --bin sluice --bin sluice-bench-ssh
exec target/release/sluice-bench-ssh "$@"
