#!/usr/bin/env bash
# The main job: set up, then train the course's reference two-layer net on CIFAR-10 (downloaded if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${SWEEPER_DATA:-}" ] && [ -f ../shared/data/cifar-10-batches-bin/data_batch_1.bin ]; then
  export SWEEPER_DATA="$(cd ../shared/data/cifar-10-batches-bin && pwd)"
fi
exec src/Sweeper.Cli/bin/Release/net10.0/sweeper train --model two_layer --hidden-size 200 --learning-rate 1e-3 --reg 0.05 \
  --lr-decay 0.95 --batch-size 200 --iterations 2000 --test "$@"
