#!/usr/bin/env bash
# Makes the stand-in base image for local builds of model_image/Dockerfile: Debian bookworm's own Python 3.11 with
# venv, pip and the CA bundle, from Debian's packages (debootstrap), tagged localhost/pybase:3.11-bookworm.
#
# Why a stand-in: the Dockerfile's pinned base (python:3.11.x-slim-bookworm@sha256:...) lives on Docker Hub, which
# this machine cannot reach. The stand-in has what the Dockerfile relies on from the official slim image: `python`
# on PATH, `python -m venv`, pip in /usr/local, groupadd/useradd. How it differs: Debian's Python 3.11.2 in /usr/bin
# (the official image builds 3.11.x from source into /usr/local), the pip version Debian's ensurepip bundles
# (23.0.1; the official image's is newer), and this machine's CA bundle with PIP_CERT set,
# because pip inside a build here needs it. It is only ever used locally (never pushed).
#
# Cached: when the tag exists and was made by this version of the script, it returns at once (--force rebuilds).
# Reproducible: one suite, one package list, file times clamped to SOURCE_DATE_EPOCH, the tar sorted by name; the
# package versions it got are kept in the image (/etc/pybase-packages.txt) and in the build log.
# Usage: sudo-less root shell: ./scripts/make-base-image.sh [--force]   (needs debootstrap, podman; see bootstrap.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

TAG="${PYBASE_IMAGE:-localhost/pybase:3.11-bookworm}"
SUITE=bookworm
PACKAGES=python3.11,python3.11-venv,python3-venv,ca-certificates,passwd
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1700000000}"
# The script's own hash labels the image: changing the recipe rebuilds it, nothing else does.
RECIPE=$(sha256sum "$0" | cut -c1-12)

if [ "${1:-}" != "--force" ] && podman image exists "$TAG"; then
  made_by=$(podman image inspect --format '{{ index .Labels "dev.mlops-serving.base-recipe" }}' "$TAG")
  if [ "$made_by" = "$RECIPE" ]; then
    echo "base image $TAG is present (recipe $RECIPE); nothing to do"
    exit 0
  fi
fi

for tool in debootstrap podman; do
  command -v "$tool" >/dev/null || { echo "make-base-image: $tool is missing (./scripts/bootstrap.sh installs it)" >&2; exit 2; }
done
# The Debian mirror this machine's apt already uses (the only Debian registry reachable), else the default.
MIRROR=$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/*$/\1/p; s/^deb  *\(http[^ ]*debian\)\/* .*/\1/p' \
  /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | grep -v security | head -n1 || true)
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

work=$(mktemp -d /var/tmp/pybase.XXXXXX)
# On failure the install log's tail is what says why.
trap 'status=$?; [ $status -eq 0 ] || tail -n 25 "$work/debootstrap.log" >&2 2>/dev/null; rm -rf "$work"' EXIT
start=$(date +%s)
echo "debootstrap $SUITE from $MIRROR into $work/rootfs ..."
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

root="$work/rootfs"
# What the official image gives and the Dockerfile uses: `python` on PATH (there: /usr/local/bin/python).
ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python"
ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python3"
# Debian marks its Python "externally managed" (PEP 668); the official image does not. The Dockerfile installs only
# into its own venv, but a base that refuses pip outright would not be the same contract.
rm -f "$root/usr/lib/python3.11/EXTERNALLY-MANAGED"
# pip as the official image has it: in /usr/local (there: pip, setuptools and wheel for
# 3.11, docker-library/python 3.11/slim-bookworm/Dockerfile), not Debian's python3-pip, so that a stage built on
# the base has pip and can uninstall it, exactly as on the real base. The wheels come with python3.11-venv.
wheels=/usr/share/python-wheels  # pip runs from its own wheel: Debian disables ensurepip for the system Python
pip_wheel="$wheels/$(basename "$root$wheels"/pip-*.whl)"
setuptools_wheel="$wheels/$(basename "$root$wheels"/setuptools-*.whl)"
chroot "$root" python3.11 "$pip_wheel/pip" install --no-index --no-cache-dir --disable-pip-version-check \
  "$pip_wheel" "$setuptools_wheel" >>"$work/debootstrap.log" 2>&1
# This machine's CA bundle: pip inside a build reaches PyPI through it (pip's own bundle is not enough here).
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
chroot "$root" dpkg-query -W -f '${Package} ${Version}\n' | sort >"$root/etc/pybase-packages.txt"
# Volatile leftovers of the install: logs, apt lists and caches, machine ids; none belongs in an image.
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/var/cache/ldconfig/aux-cache \
  "$root"/debootstrap "$root"/etc/machine-id "$root"/var/lib/dbus/machine-id "$root"/etc/hostname \
  "$root"/etc/resolv.conf "$root"/etc/hosts
find "$root" -name '__pycache__' -prune -exec rm -rf {} +
# What Debian's slim images drop (the official python image is FROM debian:bookworm-slim): docs but their copyright
# files, manuals, info pages, translations (debuerreotype scripts/.slimify-excludes and .slimify-includes).
find "$root/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$root"/usr/share/groff/* "$root"/usr/share/info/* "$root"/usr/share/linda/* \
  "$root"/usr/share/lintian/overrides/* "$root"/usr/share/man/*
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime --numeric-owner --xattrs \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$root" -cf "$work/rootfs.tar" .

podman rmi --force "$TAG" >/dev/null 2>&1 || true
podman import \
  --change "ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" \
  --change "ENV LANG=C.UTF-8" \
  --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt" \
  --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
  --change "LABEL dev.mlops-serving.base-recipe=$RECIPE" \
  --change "LABEL org.opencontainers.image.description=stand-in for python:3.11-slim-bookworm, local builds only" \
  --change 'CMD ["python3"]' \
  --message "debootstrap --variant=minbase $SUITE $PACKAGES" \
  "$work/rootfs.tar" "$TAG" >/dev/null
python_version=$(podman run --rm "$TAG" python --version)
echo "base image $TAG made in $(($(date +%s) - start))s: $python_version," \
  "$(grep -c . "$root/etc/pybase-packages.txt") Debian packages, $(du -sh "$work/rootfs.tar" | cut -f1) uncompressed"
