# The private registry of erchub's cluster: Debian's docker-registry (distribution 2.8) on the
# local base image, with the config file of the project's (registry.yml: the test cluster's, no
# auth; registry-production.yml: htpasswd and TLS, mounted over it in production).
ARG BASE_IMAGE=erchub/base:bookworm
FROM ${BASE_IMAGE}

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-registry \
 && rm -rf /var/lib/apt/lists/*
COPY registry.yml /etc/docker/registry/config.yml

# the package's own system user owns the storage directory
USER docker-registry
VOLUME /var/lib/docker-registry
EXPOSE 5000
CMD ["docker-registry", "serve", "/etc/docker/registry/config.yml"]
