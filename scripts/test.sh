#!/usr/bin/env bash
# The whole test suite: unit tests, and end-to-end tests against real PostgreSQL, the real
# broker and CLI binaries, and real psql. Ends with one summary line over every test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo build --workspace --bins --tests
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast -- "$@" 2>&1 | tee "$log" || status=$?
# The end-to-end suite once more, each broker's store on a PostgreSQL cluster of its own
# instead of SQLite (tests/src/broker.rs reads SLUICE_TEST_STORE; the few tests that tamper
# with the SQLite file keep it).
SLUICE_TEST_STORE=postgres cargo test -p sluice-tests --tests --no-fail-fast -- "$@" 2>&1 \
  | tee -a "$log" || status=$?
read -r passed failed < <(awk '/^test result:/ {
  for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i }
} END { print p + 0, f + 0 }' "$log")
echo
echo "summary: $passed passed, $failed failed"
exit "$status"
