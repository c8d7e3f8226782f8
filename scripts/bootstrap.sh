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
# `sync` makes the venv exactly the lock: nothing missing, nothing extra.
uv pip sync --quiet -p .venv/bin/python requirements-dev.txt
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# The program, the listener and the model server are three separate deployables; in the dev venv all three import.
printf '%s\n' "$REPO_ROOT" "$REPO_ROOT/listener" "$REPO_ROOT/model_image" > "$site/mlops_serving_dev.pth"

# checkov (manifest scanning) has a dependency tree of its own; it lives in its own venv.
if [ ! -x .tools/checkov/bin/checkov ]; then
  uv venv --quiet -p 3.11 .tools/checkov
fi
uv pip sync --quiet -p .tools/checkov/bin/python tools/checkov.txt

# The container tools that build and run the model image locally, from Debian's registry (only those missing).
# Without them (not root, not Debian) the demo serves from a virtualenv and says so; tests/image fails.
image_tools=(podman buildah runc debootstrap docker-registry skopeo)
missing_tools=()
for pkg in "${image_tools[@]}"; do
  dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing_tools+=("$pkg")
done
if [ ${#missing_tools[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_tools[@]}" >/dev/null
  else
    echo "bootstrap: ${missing_tools[*]} not installed and apt-get needs root here: images will not be built" >&2
  fi
fi

if [ ! -x node_modules/.bin/azurite-queue ]; then
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
fi
