# Sourced by scripts/demo.sh and scripts/test.sh: installs what Sluice's demo and tests need on
# a fresh Debian machine, and nothing when it is already there.
set -euo pipefail

sluice_need_apt=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || sluice_need_apt+=(postgresql)
command -v psql >/dev/null 2>&1 || sluice_need_apt+=(postgresql-client)
command -v pgbench >/dev/null 2>&1 || sluice_need_apt+=(postgresql-contrib)
# The OIDC tests run a real OpenID provider (the npm package oidc-provider) with Node.js >= 20.
command -v node >/dev/null 2>&1 || sluice_need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || sluice_need_apt+=(npm)
# pg_query (PostgreSQL's own parser, used by the SQL guard) runs bindgen at build time.
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so >/dev/null 2>&1 || sluice_need_apt+=(libclang-dev)
# `sluice approvals --watch` is answered through a real terminal in the tests.
command -v tmux >/dev/null 2>&1 || sluice_need_apt+=(tmux)
command -v curl >/dev/null 2>&1 || sluice_need_apt+=(curl)
# The SSH engine's tests run a real OpenSSH server and drive ssh, scp, sftp, rsync and git.
[ -x /usr/sbin/sshd ] || sluice_need_apt+=(openssh-server)
command -v ssh >/dev/null 2>&1 || sluice_need_apt+=(openssh-client)
command -v rsync >/dev/null 2>&1 || sluice_need_apt+=(rsync)
command -v git >/dev/null 2>&1 || sluice_need_apt+=(git)
# The masking tests drive psycopg (text and binary results over the extended protocol).
command -v python3 >/dev/null 2>&1 || sluice_need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || sluice_need_apt+=(python3-pip)

if [ "${#sluice_need_apt[@]}" -gt 0 ]; then
  echo "==> installing ${sluice_need_apt[*]} (apt)" >&2
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install ${sluice_need_apt[*]}" >&2; exit 1; }
    sudo_cmd=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${sluice_need_apt[@]}" >/dev/null
  # The Debian packages start a cluster on 5432 and an sshd on 22; Sluice's tests and demo
  # start their own.
  "${sudo_cmd[@]}" sh -c 'command -v systemctl >/dev/null && systemctl stop ssh 2>/dev/null || true' || true
  "${sudo_cmd[@]}" sh -c 'command -v pg_ctlcluster >/dev/null && for c in /etc/postgresql/*/main; do [ -d "$c" ] && pg_ctlcluster "$(basename "$(dirname "$c")")" main stop || true; done' || true
fi

if ! python3 -c 'import psycopg' >/dev/null 2>&1; then
  echo "==> installing psycopg (pip)" >&2
  python3 -m pip install --quiet --break-system-packages 'psycopg[binary]>=3.2,<4' 2>/dev/null ||
    python3 -m pip install --quiet 'psycopg[binary]>=3.2,<4'
fi

if ! python3 -c 'import kubernetes' >/dev/null 2>&1; then
  echo "==> installing the Kubernetes Python client (pip)" >&2
  python3 -m pip install --quiet --break-system-packages 'kubernetes>=30,<38' 2>/dev/null ||
    python3 -m pip install --quiet 'kubernetes>=30,<38'
fi

if ! python3 -c 'import mcp.client.streamable_http' >/dev/null 2>&1; then
  echo "==> installing the MCP Python SDK (pip), the agent tests' client" >&2
  python3 -m pip install --quiet --break-system-packages 'mcp>=2.3,<3' 2>/dev/null ||
    python3 -m pip install --quiet 'mcp>=2.3,<3'
fi

if ! command -v moto_server >/dev/null 2>&1; then
  echo "==> installing moto (pip), the S3-compatible server the recording tests write to" >&2
  python3 -m pip install --quiet --break-system-packages 'moto[server]>=5,<6' 2>/dev/null ||
    python3 -m pip install --quiet 'moto[server]>=5,<6'
fi

sluice_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -f "$sluice_root/tests/oidc/node_modules/oidc-provider/package.json" ] && command -v node >/dev/null 2>&1; then
  echo "==> installing the OIDC test provider's npm packages (tests/oidc)" >&2
  (cd "$sluice_root/tests/oidc" && npm ci --no-audit --no-fund --silent)
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install Rust with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi
