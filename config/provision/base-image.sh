#!/usr/bin/env bash
# Build the local runtime base image erchub/base:bookworm without any registry (idempotent):
# debootstrap a minimal Debian 12, add python3 + venv + pip + ca-certificates, copy the host's
# CA bundle in (PyPI is reached through a TLS-intercepting proxy on some networks), and
# `docker import` the tree. Skipped when the image exists.
#   ERCHUB_BASE_IMAGE   image name (default erchub/base:bookworm)
#   DEBIAN_MIRROR       mirror for debootstrap (default http://deb.debian.org/debian)
#   ERCHUB_CA_BUNDLE    CA bundle copied in (default /etc/ssl/certs/ca-certificates.crt)
set -euo pipefail

image=${ERCHUB_BASE_IMAGE:-erchub/base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ca_bundle=${ERCHUB_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

log() { printf '[erchub provision] %s\n' "$*" >&2; }

if docker image inspect "$image" >/dev/null 2>&1; then
  log "base image $image: present"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
    log "base image: debootstrap is missing and this is not Debian as root; install debootstrap"
    exit 3
  fi
  log "base image: installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq debootstrap >/dev/null
fi

root=$(mktemp -d /var/tmp/erchub-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT

log "base image: debootstrap bookworm from $mirror (about 30 s)"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$root" "$mirror" >/var/log/erchub-debootstrap.log 2>&1 \
  || { log "debootstrap failed; see /var/log/erchub-debootstrap.log"; exit 1; }

if [ -f "$ca_bundle" ]; then
  install -D -m 0644 "$ca_bundle" "$root/usr/local/share/ca-certificates/erchub-host-bundle.crt"
  # The host bundle is a superset of Debian's: use it as the system bundle as well.
  install -m 0644 "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
fi
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

python_version=$(chroot "$root" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
log "base image: importing as $image (python $python_version)"
tar -C "$root" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change "LABEL org.erchub.python.version=$python_version" \
  --change 'CMD ["/bin/bash"]' \
  - "$image" >/dev/null
log "base image $image: built"
