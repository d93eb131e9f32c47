#!/usr/bin/env bash
# The shell steps of docs/writing-a-provider.md, in order. The docs include the sections below,
# and rlft's test suite (tests/plugin_example/) runs this file as written in a throwaway
# environment, so the tutorial's commands cannot drift from what works.
set -euo pipefail
cd "$(dirname "$0")"

# --8<-- [start:install]
python -m pip install -e .      # installs the package and registers its entry point
# --8<-- [end:install]

# --8<-- [start:discover]
rlft providers                  # acme is listed, from rlft-acme 0.1.0
# --8<-- [end:discover]

# --8<-- [start:test]
python -m pytest                # the conformance suite and your own tests
# --8<-- [end:test]

# --8<-- [start:build]
python -m pip wheel --no-deps --wheel-dir dist .    # dist/rlft_acme-0.1.0-py3-none-any.whl
# --8<-- [end:build]
