# erchub's app image: the hub (JupyterHub with configurable-http-proxy), the erc service and its
# workers, erchub[hub] from a wheel of the checkout, on the local base image. `erchub cluster
# deploy` builds it (erchub.services.cluster.local) with this build context:
#   requirements.txt              erchub[hub]'s requirements, from the checkout's pyproject.toml
#   wheel/erchub-*.whl            erchub's wheel, built from the checkout
#   package.json, package-lock.json   the checkout's: configurable-http-proxy, pinned
#   chp.mjs                       config/proxy/chp.mjs, the proxy's guard (JupyterHub runs CHP through it)
#   app-entrypoint.sh, jupyterhub_config.py, erchub_config.py   from config/swarm/
# and pushes it to the cluster's registry; the stack runs it by digest. Only PyPI, Debian's
# mirror and npm's registry are reached; pip and npm trust the base image's CA bundle (the
# host's, see config/provision/base-image.sh), and take their index settings as build arguments.
ARG BASE_IMAGE=erchub/base:bookworm

# configurable-http-proxy from npm with the checkout's lock, in a stage of its own: Debian's npm
# brings some 300 packages that the app image does not need
FROM ${BASE_IMAGE} AS proxy
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
ARG NPM_CONFIG_REGISTRY
# Node trusts its built-in CA list only; the base image's bundle (a TLS-intercepting proxy's CA
# among them) too with this
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
WORKDIR /srv/erchub
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && rm -rf /root/.npm

FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/*
# one virtual environment: Debian's Python is externally managed (PEP 668); first on PATH, so
# that `python3` is the one with erchub (job containers of runtimes built on this image too)
ENV VIRTUAL_ENV=/srv/erchub/venv \
    PATH=/srv/erchub/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_DEFAULT_TIMEOUT
# the requirements first, in a layer of their own: a change of erchub's code reinstalls erchub
# alone; pip check says when the wheel needs what the requirements lack
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv "${VIRTUAL_ENV}" \
 && pip install --no-cache-dir --disable-pip-version-check --requirement /tmp/requirements.txt \
 && rm /tmp/requirements.txt
COPY wheel/ /tmp/wheel/
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps /tmp/wheel/erchub-*.whl \
 && pip check \
 && rm -rf /tmp/wheel
COPY --from=proxy /srv/erchub/node_modules /srv/erchub/node_modules
# the proxy must start on this node: CHP 5's package.json asks for node >= 20, Debian 12 has 18
RUN node /srv/erchub/node_modules/.bin/configurable-http-proxy --version
COPY chp.mjs /srv/erchub/config/proxy/chp.mjs
COPY jupyterhub_config.py erchub_config.py /srv/erchub/config/swarm/
COPY app-entrypoint.sh /usr/local/bin/erchub-entrypoint
RUN chmod 0755 /usr/local/bin/erchub-entrypoint

WORKDIR /srv/erchub
ENTRYPOINT ["erchub-entrypoint"]
CMD ["jupyterhub", "-f", "/srv/erchub/config/swarm/jupyterhub_config.py"]
