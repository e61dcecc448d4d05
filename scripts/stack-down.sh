#!/usr/bin/env bash
# make down: stop what `make up` started from the run directory (DSX_RUN_DIR, default .run), nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${VENV:-.venv}/bin/python"
[ -x "$python" ] || python=python3 # without the venv: a python3 that has pydantic-settings
exec "$python" -m devstack down
