#!/usr/bin/env bash
# The whole test suite: unit tests, and end-to-end tests against real PostgreSQL, the real
# broker and CLI binaries, and real psql.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo build --workspace --bins --tests
cargo test --workspace -- "$@"
