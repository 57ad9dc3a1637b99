#!/usr/bin/env bash
# The unprivileged system user the erc service and its workers run as when the hub runs as root
# (idempotent). Name: $ERCHUB_SERVICE_USER, default erchub.
# - Creates the system user and its group, home /var/lib/<user>, no login shell.
# - Adds it to the group `docker`: the workers start containers, and access to the Docker socket
#   is root-equivalent (README "Security" says what the worker does to contain it).
# - Lets it reach the Python the hub runs and this checkout: a folder on the way that others
#   cannot enter (/root, say, where pyenv installs) gets an ACL entry that lets this one user
#   pass through (x only: it cannot list the folder).
# Without root, or off Debian: says so and exits 3 (the service then runs as the hub's user).
set -euo pipefail

log() { printf '[erchub provision] %s\n' "$*" >&2; }

USER_NAME=${ERCHUB_SERVICE_USER-erchub}
PYTHON=${1:-python3}
CHECKOUT=$(cd "$(dirname "$0")/../.." && pwd)

if [ -z "$USER_NAME" ]; then
  log "service user: ERCHUB_SERVICE_USER is empty, the erc service runs as the hub's user"
  exit 0
fi
if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  log "service user: not Debian as root; the erc service runs as the hub's user"
  exit 3
fi

if ! id "$USER_NAME" >/dev/null 2>&1; then
  log "service user: creating system user $USER_NAME"
  useradd --system --user-group --home-dir "/var/lib/$USER_NAME" --create-home \
    --shell /usr/sbin/nologin "$USER_NAME"
fi
if getent group docker >/dev/null; then
  usermod -aG docker "$USER_NAME"
fi
if ! command -v setfacl >/dev/null 2>&1; then
  log "service user: installing acl from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq acl >/dev/null
fi

# Every folder from / down to $1 that others may not enter: let $USER_NAME pass through.
grant_passage() {
  local path=$1 current=""
  local IFS=/
  for part in $path; do
    [ -z "$part" ] && continue
    current="$current/$part"
    [ -d "$current" ] || break
    if ! runuser -u "$USER_NAME" -- test -x "$current"; then
      setfacl -m "u:$USER_NAME:x" "$current"
      log "service user: $USER_NAME may pass through $current"
    fi
  done
}

real_python=$(readlink -f "$(command -v "$PYTHON")")
grant_passage "$(dirname "$real_python")"
grant_passage "$CHECKOUT"
if ! runuser -u "$USER_NAME" -- "$real_python" -c 'import sys' 2>/dev/null; then
  log "service user: $USER_NAME cannot run $real_python; make its installation readable"
  exit 1
fi
log "service user: $USER_NAME (groups: $(id -Gn "$USER_NAME"))"
