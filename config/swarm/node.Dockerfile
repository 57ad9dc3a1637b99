# A node of erchub's local test cluster: one Docker engine per container, on the local base image.
# erchub.services.cluster starts it as `dockerd --storage-driver=overlay2 ...` with the flags that
# nested engines need on this machine kind (README, "Past one machine").
ARG BASE_IMAGE=erchub/base:bookworm
FROM ${BASE_IMAGE}

# Debian's engine (docker.io: dockerd, containerd, runc and the CLI, whose `system dial-stdio`
# carries the host's API calls to the engine), iptables for the engine's networks, procps (ps).
# apt reaches Debian's mirror with the base image's sources and CA bundle.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      docker.io iptables procps \
 && rm -rf /var/lib/apt/lists/*

# images and containers of the nested engine: a volume, since overlay2 cannot stack on overlay2
VOLUME /var/lib/docker
CMD ["dockerd", "--storage-driver=overlay2"]
