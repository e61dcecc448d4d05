#!/usr/bin/env bash
# make up: install what is missing, start the local stack, full-scan a sample folder, print a summary.
# Knobs (ports, run dir, timeouts): see `python -m devstack --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh up  # python, redis (+ rsyslog with DSX_SYSLOG=1, Azurite for azure_blob_storage)
exec "${VENV:-.venv}/bin/python" -m devstack up
