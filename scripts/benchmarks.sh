#!/usr/bin/env bash
# Run every benchmark in benchmarks/ with its defaults; each prints ratios against the obvious
# alternative, measured on this machine. Pass a name (e.g. `python_grader`) to run only that one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for file in benchmarks/*.py; do names+=("$(basename "$file" .py)"); done
fi
for name in "${names[@]}"; do
  echo "== benchmarks/$name.py"
  .venv/bin/python "benchmarks/$name.py"
done
