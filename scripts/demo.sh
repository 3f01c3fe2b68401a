#!/usr/bin/env bash
# The Sluice demo: a throwaway PostgreSQL with sample data, the broker, a login, a tunnel and a
# query through it, all on 127.0.0.1, all torn down at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo build --quiet --workspace --bins
exec cargo run --quiet -p sluice-tests --bin sluice-demo
