#!/usr/bin/env bash
# The README's first command: sets everything up, then runs the main job locally.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
source scripts/env.sh
for stack in staging prod; do
  python -m stacks preview "$stack"
  echo
done
python -m stacks diff staging prod
