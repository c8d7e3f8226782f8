#!/usr/bin/env bash
# The README's first command: sets everything up, then runs the whole release loop on this machine
# (mlflow server → verified webhook → listener → queue → dispatch → pin bump + offline diff → model server).
# Usage: ./scripts/demo.sh [--headless] [--timeout SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
source scripts/env.sh
exec python -m demo "$@"
