#!/bin/sh
# The app image's entrypoint: Swarm gives secrets as files (/run/secrets/NAME), the programs
# want them in their environment. Every variable NAME_FILE=/run/secrets/... becomes NAME=<the
# file's content> (as the official database images do it; other *_FILE variables, such as
# ERCHUB_CONFIG_FILE, are left alone), then the command runs in this process
# (exec: it gets the signals Swarm sends, and the erc service, as process 1, has no parent to
# end with).
set -eu
for variable in $(env | sed -n 's|^\([A-Za-z_][A-Za-z0-9_]*\)_FILE=/run/secrets/.*|\1|p'); do
  eval "path=\${${variable}_FILE}"
  value=$(cat "$path")
  export "$variable=$value"
  unset "${variable}_FILE"
done
exec "$@"
