#!/usr/bin/env bash
# Set up, then run a real RFT job on the local runner (offline, a few minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec .venv/bin/python examples/quickstart/quickstart.py "$@"
