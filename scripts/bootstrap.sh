#!/usr/bin/env bash
# Install what linkcall needs, then return. Safe to run again: it only adds what is missing.
#  - system packages (Debian/Ubuntu, with apt-get as root or through sudo)
#  - the Python environment in .venv (Python >= 3.11) with the project and its dev tools
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(kamailio baresip-core sip-tester sox espeak-ng tshark chromium fonts-wqy-microhei)
need_cmds=(kamailio baresip sipp sox espeak-ng chromium)

missing=()
for c in "${need_cmds[@]}"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" = "none" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "linkcall needs these system programs: ${missing[*]}" >&2
    echo "install them (Debian 12): apt-get install -y ${APT_PACKAGES[*]}" >&2
    exit 3
  fi
  echo "== installing system packages: ${APT_PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.13 python3.12 python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PY=$cand; break
    fi
  done
fi
if [ -z "$PY" ]; then echo "linkcall needs Python >= 3.11 (set PYTHON=/path/to/python3)" >&2; exit 3; fi

stamp=.venv/.linkcall-installed
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $PY"
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "== installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
