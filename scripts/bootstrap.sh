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

# promtool (Debian's `prometheus` package) runs the alert rules' tests (tests/components/test_monitoring_rules.py);
# the demo's monitoring step runs Prometheus and Alertmanager (`prometheus-alertmanager`) on 127.0.0.1 with its own
# config (localrun/monitoring.py).
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  as_root=""; [ "$(id -u)" -eq 0 ] || as_root="sudo"
  # The packages would start servers on :9090/:9093 on every interface: policy-rc.d (exit 101) keeps
  # invoke-rc.d and deb-systemd-invoke from starting any service while it installs (init-system-helpers README.policy-rc.d).
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $as_root tee /usr/sbin/policy-rc.d >/dev/null
    $as_root chmod +x /usr/sbin/policy-rc.d
    guard=/usr/sbin/policy-rc.d
  fi
  $as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends \
    prometheus prometheus-alertmanager >/dev/null
  if [ -n "$guard" ]; then $as_root rm -f "$guard"; fi
fi

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
