#!/usr/bin/env bash
# The README's test command: sets everything up from the lock files, then runs every quality gate and the tests.
# Usage: ./scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
source scripts/env.sh

step() { printf '\n== %s\n' "$*"; }

step "ruff (lint)"
ruff check .
step "ruff (format)"
ruff format --check .
step "mypy --strict"
mypy __main__.py stacks offline components program monitoring localrun listener/webhook_listener listener/function_app.py \
  model_image/model_server release demo policies tests benchmarks
step "actionlint"
actionlint .github/workflows/*.yml
step "hadolint"
hadolint model_image/Dockerfile
step "pytest"
pytest "$@"
