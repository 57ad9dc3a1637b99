"""The Docker engines erchub runs on past one machine: a local test cluster of nested engines
joined into one Docker Swarm, its private registry, and its status.

- ``plan``: what the cluster is made of (node names and roles, labels, every container's
  options) and erchub's stack on it (the stack file's variables and secrets, the status of its
  services), pure functions of its settings;
- ``local``: the local test cluster on this machine's Docker engine (:class:`~.local.LocalCluster`:
  ``up``, ``deploy``, ``down``, ``status``, pushes to its registry), the I/O edge of ``plan``;
- ``tunnel``: the API of an engine inside a node container, reached through this machine's
  engine (no node but the manager publishes its engine);
- ``kubernetes``: the same roles on Kubernetes, on paper: the manifests and Zero-to-JupyterHub
  values of ``config/kubernetes/``, pure functions of the site's settings, and their renderer.

Imports the core, the spawner's Docker client factory and its erchub wheel builder (the app
image installs the wheel); ``kubernetes`` also the hub's config
names, the spawner's session limits and the ``jobs`` room (its Job builder, whose labels the
NetworkPolicies select, and the names of a job's files); no other room of ``services``.
"""
