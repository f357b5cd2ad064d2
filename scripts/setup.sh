#!/usr/bin/env bash
# Installs what Sweeper needs on a fresh Debian/Ubuntu machine with the .NET SDK, then restores and builds.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Debian packages: OpenBLAS for the training engine; PostgreSQL for the cluster store's tests (the tests start
# their own server in a temporary folder; nothing is configured system-wide); Chromium for the dashboard's browser
# tests (driven headless by Playwright; no browser is downloaded).
packages=(libopenblas0-pthread postgresql chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# python3 runs the example training program (examples/fashion-hyperband) and the program-trial tests' scripts.
if ! command -v python3 >/dev/null 2>&1; then
  echo "setup: installing python3" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 >/dev/null
fi

if ! command -v dotnet >/dev/null 2>&1; then
  echo "setup: the .NET SDK (10.0) is required: https://learn.microsoft.com/dotnet/core/install/linux-debian" >&2
  exit 1
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet restore Sweeper.sln --verbosity quiet
dotnet build Sweeper.sln -c Release --no-restore --verbosity quiet -nologo -clp:ErrorsOnly
