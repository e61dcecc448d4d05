#!/usr/bin/env bash
# make up: install what is missing, start the local stack, full-scan a sample folder, print a summary.
# Knobs (ports, run dir, timeouts): see `scripts/stack.py --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
exec "${VENV:-.venv}/bin/python" scripts/stack.py up
