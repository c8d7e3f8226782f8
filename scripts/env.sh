# Sourced by every script the project runs: telemetry off for every tool, everything offline-safe.
export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=true
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export UV_NO_PROGRESS=1
export PYTHONDONTWRITEBYTECODE=1
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT
export PATH="$REPO_ROOT/.venv/bin:$REPO_ROOT/node_modules/.bin:$PATH"
# podman/buildah: the project's runtime settings (runc + cgroupfs, no default ulimits), never the machine's /etc.
export CONTAINERS_CONF="$REPO_ROOT/localrun/containers.conf"
