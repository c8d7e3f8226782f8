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
# A .venv of another Python is remade: the Pulumi language host makes .venv itself, from whatever `python3` is on
# PATH, when `pulumi up` runs before this script (pulumi/pulumi sdk/python/toolchain/pip.go, EnsureVenv).
if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  uv venv --quiet -p 3.11 .venv
fi
# `sync` makes the venv exactly the lock: nothing missing, nothing extra; every file checked against its hash.
# `--compile-bytecode` writes every module's .pyc at install: env.sh sets PYTHONDONTWRITEBYTECODE, so without
# it each run compiles the provider SDKs from source again (pulumi_databricks alone is 22 MB of Python), which
# made importing them several times slower (benchmarks/offline_tools.py).
uv pip sync --quiet --require-hashes --compile-bytecode -p .venv/bin/python requirements-dev.txt
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# The program, the listener and the model server are three separate deployables; in the dev venv all three import,
# the ordinary way (what an editable install writes): the program reads the others' contract modules from here,
# so every venv that runs it (Pulumi.yaml's `virtualenv: .venv`, every workflow, the tools) is made by this script.
printf '%s\n' "$REPO_ROOT" "$REPO_ROOT/listener" "$REPO_ROOT/model_image" > "$site/mlops_serving_dev.pth"

# checkov (manifest scanning) has a dependency tree of its own; it lives in its own venv.
if [ ! -x .tools/checkov/bin/checkov ]; then
  uv venv --quiet -p 3.11 .tools/checkov
fi
uv pip sync --quiet --require-hashes -p .tools/checkov/bin/python tools/checkov.txt

# Debian packages the tests and the demo run, installed only when missing:
# - promtool (`prometheus`) runs the alert rules' tests (tests/components/test_monitoring_rules.py); the demo's
#   monitoring step runs Prometheus and Alertmanager (`prometheus-alertmanager`) with its own config
#   (localrun/monitoring.py);
# - nginx, the local stand-in for the cluster's traffic router: a weighted proxy in front of the stable and canary
#   model servers (localrun/weighted_proxy.py). Debian's `nginx` is the binary with the core http modules only
#   (split_clients, upstream, proxy); `nginx-light` is it plus the echo module;
# - the container tools that build and run the model image locally (podman with runc, buildah, debootstrap for the
#   stand-in base, the CNCF registry `docker-registry`, skopeo). Without them (neither root nor passwordless sudo,
#   or no apt-get) the demo serves from a virtualenv and says so; tests/image fails.
monitoring_packages=(prometheus prometheus-alertmanager)
proxy_packages=(nginx)
image_packages=(podman buildah runc debootstrap docker-registry skopeo)
# podman and runc count as installed when the machine has the commands: GitHub's Ubuntu images ship podman as a
# static bundle and Docker's containerd.io, which "Conflicts: runc" (docker/containerd-packaging#63), so Debian's
# runc must not be asked for there.
missing() {
  for pkg in "$@"; do
    case "$pkg" in podman | runc) command -v "$pkg" >/dev/null 2>&1 && continue ;; esac
    dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || echo "$pkg"
  done
}
mapfile -t missing_servers < <(missing "${monitoring_packages[@]}" "${proxy_packages[@]}")
mapfile -t missing_image < <(missing "${image_packages[@]}")
missing=("${missing_servers[@]}" "${missing_image[@]}")
# Root (CI's Debian image) installs directly; a user with passwordless sudo installs through `sudo -n`, which never
# prompts (GitHub's Ubuntu runners: "The Linux and macOS virtual machines both run using passwordless sudo",
# docs.github.com/en/actions/reference/runners/github-hosted-runners, "Administrative privileges").
# Through sudo only when asked (BOOTSTRAP_OS_PACKAGES=1, the workflows' `checks` job): every other job on a runner
# needs none of these, and a laptop's packages are its owner's to change.
as_root=()
if [ "$(id -u)" != 0 ] && [ "${BOOTSTRAP_OS_PACKAGES:-0}" = 1 ] && command -v sudo >/dev/null 2>&1 \
  && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if { [ "$(id -u)" = 0 ] || [ ${#as_root[@]} -gt 0 ]; } && command -v apt-get >/dev/null 2>&1; then
    # prometheus, alertmanager, nginx (Debian's default site) and docker-registry would start servers on
    # :9090/:9093/:80/:5000 on every interface:
    # policy-rc.d (exit 101) keeps invoke-rc.d and deb-systemd-invoke from starting any service while they install
    # (init-system-helpers README.policy-rc.d). The project starts its own, on 127.0.0.1, when it needs them.
    guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee /usr/sbin/policy-rc.d >/dev/null
      "${as_root[@]}" chmod +x /usr/sbin/policy-rc.d
      guard=/usr/sbin/policy-rc.d
    fi
    "${as_root[@]}" apt-get update -qq
    # The monitoring servers and nginx need nothing they only recommend (node-exporter would be one more server);
    # podman needs its recommended network and runtime helpers, as tested (../shared/reference/local-containers.md).
    # `env` carries DEBIAN_FRONTEND through sudo, which resets the environment.
    if [ ${#missing_servers[@]} -gt 0 ]; then
      "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove --no-install-recommends \
        "${missing_servers[@]}" >/dev/null
      # nginx's package also enables its service at boot (update-rc.d defaults, deb-systemd-helper enable): a reboot
      # would serve Debian's default site on :80 on every interface. `disable` covers sysvinit and systemd
      # (init-system-helpers script/update-rc.d, make_systemd_links).
      if printf '%s\n' "${missing_servers[@]}" | grep -qx nginx; then
        "${as_root[@]}" update-rc.d nginx disable >/dev/null
      fi
    fi
    if [ ${#missing_image[@]} -gt 0 ]; then
      # --no-remove: fail rather than remove what conflicts (a runner's Docker), never take the machine's tools away.
      "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove "${missing_image[@]}" >/dev/null
    fi
    if [ -n "$guard" ]; then "${as_root[@]}" rm -f "$guard"; fi
  else
    echo "bootstrap: ${missing[*]} not installed (root installs them; a user with passwordless sudo sets" \
      "BOOTSTRAP_OS_PACKAGES=1)" >&2
  fi
fi

if [ ! -x node_modules/.bin/azurite-queue ]; then
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
fi
