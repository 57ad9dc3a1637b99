# The hub image of erchub on Zero-to-JupyterHub (z2jh-values.yaml: hub.image): the chart's own
# hub image (JupyterHub, KubeSpawner, the chart's config loader) with erchub's hub extra on top.
# ON PAPER: never built by erchub's tests. erchub needs JupyterHub 6: pip upgrades the image's
# JupyterHub when the chart's is older, so check that the chart's KubeSpawner works with it.
ARG Z2JH_HUB_IMAGE=quay.io/jupyterhub/k8s-hub:4.2.0
FROM ${Z2JH_HUB_IMAGE}

# what pip installs: the published package, or a pinned version or URL of it
ARG ERCHUB_REQUIREMENT="erchub[hub]"
USER root
RUN pip install --no-cache-dir "${ERCHUB_REQUIREMENT}"
# the chart's hub user (jovyan)
USER 1000
