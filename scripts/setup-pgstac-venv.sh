#!/usr/bin/env bash
# Create .venv-pgstac: a separate venv holding stac-fastapi-pgstac, pypgstac and uvicorn from
# envs/pgstac-requirements.lock (hash-checked). pcflow.sandbox.pgstac runs `pypgstac` and the
# STAC API server from here as subprocesses, so the main venv never imports them.
# Idempotent: re-running syncs the venv to the lock. Override the location with
# PCFLOW_PGSTAC_VENV (default: <repo>/.venv-pgstac).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${PCFLOW_PGSTAC_VENV:-$repo/.venv-pgstac}
lock=$repo/envs/pgstac-requirements.lock

# uv: $UV, else the Makefile's pinned one (.venv-tools), else PATH.
uv=${UV:-}
if [ -z "$uv" ]; then
  if [ -x "$repo/.venv-tools/bin/uv" ]; then uv=$repo/.venv-tools/bin/uv; else uv=$(command -v uv || true); fi
fi
if [ -z "$uv" ]; then
  echo "setup-pgstac-venv: uv not found; run \`make install\` or \`pip install uv\`" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  "$uv" venv --quiet --python 3.11 "$venv"
fi
"$uv" pip sync --quiet --python "$venv/bin/python" --require-hashes --compile-bytecode "$lock"
echo "setup-pgstac-venv: ok ($venv)"
