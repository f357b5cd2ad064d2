#!/usr/bin/env bash
# Sets everything up and runs every test project. Ends with one line: "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

# The real CIFAR-10 copy beside the checkout (development and CI); elsewhere the tests say loudly that it is missing.
if [ -z "${SWEEPER_DATA:-}" ] && [ -f ../shared/data/cifar-10-batches-bin/data_batch_1.bin ]; then
  export SWEEPER_DATA="$(cd ../shared/data/cifar-10-batches-bin && pwd)"
fi

log=$(mktemp)
dotnet test Sweeper.sln -c Release --no-build --nologo 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# Sum the per-project summaries ("Passed!  - Failed: 0, Passed: 67, Skipped: 0, Total: 67, ...").
read -r passed failed skipped < <(grep -E '(Passed|Failed)!  - Failed:' "$log" | sed -E 's/.*Failed: *([0-9]+), Passed: *([0-9]+), Skipped: *([0-9]+).*/\2 \1 \3/' |
  awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}')
rm -f "$log"
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
  echo "no test results were found" >&2
  status=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"
