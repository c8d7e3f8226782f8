#!/usr/bin/env bash
# Re-compiles every lock file from its .in file. The dev lock is solved first; each deployable's lock is
# then solved under it as a constraint, so the versions the tests ran are the versions that ship.
set -euo pipefail
cd "$(dirname "$0")/.."
uv pip compile -q -p 3.11 --universal requirements-dev.in -o requirements-dev.txt
for f in requirements.in listener/requirements.in model_image/requirements.in; do
  uv pip compile -q -p 3.11 --universal "$f" -c requirements-dev.txt -o "${f%.in}.txt"
done
uv pip compile -q -p 3.11 --universal tools/checkov.in -o tools/checkov.txt
