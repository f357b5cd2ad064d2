#!/usr/bin/env bash
# The main job: set up, then run the quickstart sweep on the embedded SQLite store: one Orleans silo in the process with one training slot per core.
# Extra arguments go to `sweeper run` (e.g. --slots 4, --json). CIFAR-10 is downloaded if it is not found.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${SWEEPER_DATA:-}" ] && [ -f ../shared/data/cifar-10-batches-bin/data_batch_1.bin ]; then
  export SWEEPER_DATA="$(cd ../shared/data/cifar-10-batches-bin && pwd)"
fi
exec src/Sweeper.Cli/bin/Release/net10.0/sweeper run sweeps/quickstart.yaml "$@"
