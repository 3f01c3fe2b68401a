#!/usr/bin/env bash
# Sluice's throughput benchmark: direct vs socat vs PgBouncer (session mode) vs `sluice connect`
# (plain tunnel) vs `sluice connect` under a role with guardrails and masking (sluice-guarded),
# with pgbench -S (-c 1, -c 8, -M extended -c 8) and a \copy of pgbench_accounts, on this machine.
# See bench/README.md and docs/benchmarks.md.
#
#   bench/run.sh                       # 20 s runs, 3 reps, scale 20 (about 25 minutes)
#   BENCH_SECONDS=5 BENCH_REPS=1 bench/run.sh --workloads c8
#   bench/run.sh --paths direct,sluice,sluice-guarded --workloads c8,copy
#   BENCH_PROFILE=1 bench/run.sh       # also perf-record sluiced + sluice during one extra run
#
# Arguments are passed to sluice-bench (`bench/run.sh --help`). Environment: BENCH_SECONDS (20),
# BENCH_REPS (3), BENCH_SCALE (20), BENCH_PATHS, BENCH_WORKLOADS, BENCH_OUT
# (bench/results-latest.md), BENCH_PROFILE (1: profile with perf into target/bench/).
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL server, psql, pgbench (postgresql-contrib) and cargo, as for the tests and the demo.
source scripts/deps.sh

bench_need_apt=()
command -v socat >/dev/null 2>&1 || bench_need_apt+=(socat)
[ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null 2>&1 || bench_need_apt+=(pgbouncer)
if [ "${BENCH_PROFILE:-0}" = 1 ] && ! command -v perf >/dev/null 2>&1; then
  bench_need_apt+=(linux-perf)
fi
if [ "${#bench_need_apt[@]}" -gt 0 ]; then
  echo "==> installing ${bench_need_apt[*]} (apt)" >&2
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install ${bench_need_apt[*]}" >&2; exit 1; }
    sudo_cmd=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  # linux-perf is optional: without it the benchmark runs and only the profile is skipped.
  for pkg in "${bench_need_apt[@]}"; do
    if ! "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null; then
      [ "$pkg" = linux-perf ] && { echo "warning: could not install linux-perf; no profile" >&2; continue; }
      echo "could not install $pkg" >&2
      exit 1
    fi
  done
  # The Debian package may start a system-wide PgBouncer on 6432; the benchmark runs its own.
  if printf '%s\n' "${bench_need_apt[@]}" | grep -qx pgbouncer; then
    "${sudo_cmd[@]}" sh -c 'systemctl stop pgbouncer 2>/dev/null || service pgbouncer stop 2>/dev/null || true' >/dev/null 2>&1 || true
  fi
fi

# Release builds: the bench and, through the harness, the sluice and sluiced it drives (the
# harness builds them with the profile of the running binary).
echo "==> cargo build --release" >&2
cargo build --release --quiet -p sluiced -p sluice-cli -p sluice-tests --bin sluiced --bin sluice --bin sluice-bench

export BENCH_SECONDS="${BENCH_SECONDS:-20}"
export BENCH_REPS="${BENCH_REPS:-3}"
export BENCH_SCALE="${BENCH_SCALE:-20}"
export BENCH_OUT="${BENCH_OUT:-bench/results-latest.md}"

if [ "${BENCH_PROFILE:-0}" = 1 ] && command -v perf >/dev/null 2>&1; then
  mkdir -p target/bench
  export BENCH_PERF="${BENCH_PERF:-target/bench/perf.data}"
fi

target/release/sluice-bench "$@"

# `head` closes pipes early; that is not a failure of the report.
set +o pipefail
if [ -n "${BENCH_PERF:-}" ] && [ -s "$BENCH_PERF" ]; then
  report="${BENCH_PERF%.data}-report.txt"
  {
    echo "# perf report --no-children --sort dso -g none (sluiced + sluice, one extra pgbench -S -c 8 run)"
    perf report -i "$BENCH_PERF" --stdio --no-children --sort dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -20
    echo
    echo "# perf report --no-children --sort dso,sym -g none --percent-limit 0.5"
    perf report -i "$BENCH_PERF" --stdio --no-children --sort dso,sym -g none --percent-limit 0.5 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
    echo
    echo "# perf report --children --sort sym -g none (inclusive: which syscalls the time is under)"
    perf report -i "$BENCH_PERF" --stdio --children --sort sym -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
  } >"$report"
  echo "==> profile: $BENCH_PERF, summary in $report" >&2
  head -40 "$report"
fi
