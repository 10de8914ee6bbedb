#!/usr/bin/env bash
# Install the Debian packages pcflow needs beyond Python/npm packages (`make dag` needs no
# graphviz: it renders with Graphviz compiled to WebAssembly from package.json):
#   postgresql   + PostGIS for the faithful STAC API stand-in (stac-fastapi-pgstac)
#   nodejs/npm   Azurite (only when absent: many machines bring their own Node.js)
# Idempotent and quiet: installs only what is missing, runs `apt-get update` at most once.
# Must run as root (or via sudo). Usage: bash scripts/install-system-deps.sh
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

updated=0
# Quiet apt: keep its chatter in a log and show it only when a step fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
quiet() {
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-system-deps: failed: $*" >&2
    exit 1
  fi
}
apt_update_once() {
  if [ "$updated" -eq 0 ]; then
    quiet $SUDO apt-get update
    updated=1
  fi
}

missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

have_pkg postgresql || missing+=(postgresql)
have_pkg postgresql-contrib || missing+=(postgresql-contrib)
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

if [ "${#missing[@]}" -gt 0 ]; then
  apt_update_once
  echo "install-system-deps: installing ${missing[*]}"
  quiet $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# PostGIS must match the server's major version (Debian names it postgresql-<major>-postgis-3).
pg_major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
if [ -z "$pg_major" ]; then
  echo "install-system-deps: no PostgreSQL server found under /usr/lib/postgresql" >&2
  exit 1
fi
postgis_pkg="postgresql-${pg_major}-postgis-3"
if ! have_pkg "$postgis_pkg"; then
  apt_update_once
  echo "install-system-deps: installing $postgis_pkg"
  quiet $SUDO apt-get install -y -q --no-install-recommends "$postgis_pkg"
fi

# pcflow never uses Debian's system cluster (port 5432): pcflow.sandbox.pgstac makes
# throwaway clusters in temporary directories owned by the `postgres` user.
echo "install-system-deps: ok (PostgreSQL $pg_major + PostGIS, node $(node --version 2>/dev/null || echo '?'))"
