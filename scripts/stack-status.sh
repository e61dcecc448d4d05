#!/usr/bin/env bash
# make status: each component's health (HTTP /healthz, redis PING, workers alive by pid); non-zero if any is down.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${VENV:-.venv}/bin/python"
[ -x "$python" ] || python=python3 # without the venv: a python3 that has pydantic-settings
exec "$python" -m devstack status
