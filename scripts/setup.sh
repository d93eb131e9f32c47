#!/usr/bin/env bash
# Create .venv (if needed) and install rlft with every extra and the dev tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip >= 25.1 reads [dependency-groups].
.venv/bin/python -m pip install -q --upgrade 'pip>=25.1'
# torch first, pinned to the CPU build, so nothing below can pull a CUDA build.
.venv/bin/python -m pip install -q -c constraints/ci.txt torch
.venv/bin/python -m pip install -q -c constraints/ci.txt -e '.[all]' --group dev
# rlft serve's dashboard test runs the OS's headless Chromium (Playwright drives it; never
# `playwright install`).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -q chromium >/dev/null || sudo apt-get install -y -q chromium >/dev/null
fi
