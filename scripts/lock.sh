#!/usr/bin/env bash
# Re-compiles every lock file from its .in file. The dev lock is solved first; each deployable's lock is
# then solved under it as a constraint, so the versions the tests ran are the versions that ship.
# Every lock carries sha256 hashes (--generate-hashes): bootstrap.sh and CI install with `uv pip sync
# --require-hashes`, the model image with `pip install --require-hashes`, and the listener's remote build (pip)
# switches to hash-checking mode by itself when a requirement has a hash.
set -euo pipefail
cd "$(dirname "$0")/.."
lock() { uv pip compile -q -p 3.11 --universal --generate-hashes "$@"; }
lock requirements-dev.in -o requirements-dev.txt
for f in requirements.in listener/requirements.in model_image/requirements.in model_image/fetch-requirements.in model_image/sbom-requirements.in \
  requirements-comment.in; do
  lock "$f" -c requirements-dev.txt -o "${f%.in}.txt"
done
lock tools/checkov.in -o tools/checkov.txt
