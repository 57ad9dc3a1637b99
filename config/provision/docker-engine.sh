#!/usr/bin/env bash
# Make a Docker engine reachable on this machine (idempotent).
# - An engine that already answers is used as it is.
# - On Debian as root: install docker.io from Debian and start dockerd in the background.
# - Anywhere else: say what is missing and exit 3, so callers can skip the docker tier.
set -euo pipefail

log() { printf '[erchub provision] %s\n' "$*" >&2; }

engine_answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_answers; then
  log "docker engine: reachable"
  exit 0
fi

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  log "docker engine: none reachable, and this is not Debian as root; install Docker and start it (docker info must answer)"
  exit 3
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "docker engine: installing docker.io from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi

if ! engine_answers; then
  log "docker engine: starting dockerd (log: /var/log/erchub-dockerd.log)"
  # setsid: dockerd must outlive the make process that started it.
  setsid dockerd --storage-driver=overlay2 >/var/log/erchub-dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    engine_answers && break
    sleep 1
  done
fi

if engine_answers; then
  log "docker engine: reachable ($(docker version --format '{{.Server.Version}}'))"
else
  log "docker engine: dockerd did not answer within 60 s; see /var/log/erchub-dockerd.log"
  exit 1
fi
