#!/usr/bin/env bash
# Make headless Chromium usable for the browser test tier (idempotent).
# - Debian's `chromium` (and `chromium-driver`) already installed: used as they are.
# - On Debian as root: install them from Debian.
# - Anywhere else: say what is missing and exit 3, so callers can skip the browser tier.
# Playwright drives /usr/bin/chromium (executable_path); its own browser download is never used.
set -euo pipefail

log() { printf '[erchub provision] %s\n' "$*" >&2; }

FLAGS=(--headless --no-sandbox --disable-gpu)

installed() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }

if ! installed; then
  if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
    log "chromium: chromium or chromedriver missing, and this is not Debian as root;" \
      "install Debian's chromium and chromium-driver (or set ERCHUB_TEST_CHROMIUM)"
    exit 3
  fi
  log "chromium: installing chromium and chromium-driver from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if ! version=$(chromium "${FLAGS[@]}" --version 2>/dev/null); then
  log "chromium: \`chromium ${FLAGS[*]} --version\` failed"
  exit 1
fi
# --version does not start the browser: render a page to be sure it runs headless here.
if ! timeout 60 chromium "${FLAGS[@]}" --dump-dom 'data:text/html,<p>erchub</p>' 2>/dev/null |
  grep -q '<p>erchub</p>'; then
  log "chromium: $version is installed but cannot render a page headless"
  exit 1
fi
log "chromium: usable ($version)"
