#!/usr/bin/env bash
# Create .venv (if needed) and install rlft with every extra and the dev tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
# The python-grader jail (docs/security.md): bubblewrap, and libseccomp for its seccomp filter.
has_libseccomp() { compgen -G '/usr/lib*/*libseccomp.so.2' >/dev/null || compgen -G '/usr/lib*/*/libseccomp.so.2' >/dev/null || compgen -G '/lib*/*/libseccomp.so.2' >/dev/null; }
if [ "$(uname -s)" = Linux ] && { ! command -v bwrap >/dev/null 2>&1 || ! has_libseccomp; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap libseccomp2
  else
    echo "setup: install bubblewrap and libseccomp2 to jail python graders (docs/security.md)" >&2
  fi
fi
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
