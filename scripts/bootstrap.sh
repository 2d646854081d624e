#!/usr/bin/env bash
# Install what linkcall needs, then return. Safe to run again: it only adds what is missing.
#  - system packages (Debian/Ubuntu, with apt-get as root or through sudo)
#  - the Python environment in .venv (Python >= 3.11) with the project and its dev tools
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(kamailio baresip-core sip-tester sox espeak-ng tshark chromium fonts-wqy-microhei postgresql-client)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" = "none" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "linkcall needs these system packages: ${missing[*]}" >&2
    echo "install them (Debian 12): apt-get install -y ${APT_PACKAGES[*]}" >&2
    exit 3
  fi
  echo "== installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stamp=.venv/.linkcall-installed
if [ ! -x .venv/bin/python ]; then
  PY=${PYTHON:-}
  if [ -z "$PY" ]; then
    for cand in python3 python3.13 python3.12 python3.11; do
      if "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
        PY=$cand; break
      fi
    done
  fi
  if [ -z "$PY" ]; then echo "linkcall needs Python >= 3.11 (set PYTHON=/path/to/python3)" >&2; exit 3; fi
  echo "== creating .venv with $PY"
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "== installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
