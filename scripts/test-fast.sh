#!/usr/bin/env bash
# The edit-test loop: ruff and the tests that start no container, no end-to-end loop and nothing marked slow or
# integration (real servers). CI runs everything (./scripts/test.sh); this is for between edits.
# Usage: ./scripts/test-fast.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
source scripts/env.sh
ruff check .
ruff format --check .
pytest -m "not slow and not integration" --ignore=tests/image --ignore=tests/demo "$@"
