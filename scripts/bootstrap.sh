#!/usr/bin/env bash
# Sets up everything the demo and the tests need on a fresh machine, from the lock files only:
# .venv (Python 3.11, requirements-dev.txt), the three source roots on its path, Azurite from package-lock.json.
# Idempotent: a second run checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet "uv==0.13.8"
fi
if [ ! -x .venv/bin/python ]; then
  uv venv --quiet -p 3.11 .venv
fi
# `sync` makes the venv exactly the lock: nothing missing, nothing extra; every file checked against its hash.
uv pip sync --quiet --require-hashes -p .venv/bin/python requirements-dev.txt
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# The program, the listener and the model server are three separate deployables; in the dev venv all three import.
printf '%s\n' "$REPO_ROOT" "$REPO_ROOT/listener" "$REPO_ROOT/model_image" > "$site/mlops_serving_dev.pth"

# checkov (manifest scanning) has a dependency tree of its own; it lives in its own venv.
if [ ! -x .tools/checkov/bin/checkov ]; then
  uv venv --quiet -p 3.11 .tools/checkov
fi
uv pip sync --quiet --require-hashes -p .tools/checkov/bin/python tools/checkov.txt

if [ ! -x node_modules/.bin/azurite-queue ]; then
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
fi
