"""erchub.services: the `erc` hub service, in rooms that import each other downward only.

- ``app`` (the tornado application, its settings and the workers it supervises) imports
  ``handlers``;
- ``handlers/`` (the API and the pages: parse, authorize, call a room, render) import
  ``compendia``, ``jobs``, ``exchange`` and ``store``; nothing but the app imports a handler;
- ``exchange/`` (o2r's loader, shipper and packaging) and ``jobs/`` (worker, runner, runtimes,
  events) import ``compendia`` and ``store``;
- ``compendia/`` (compendia on disk and the operations on them) imports ``store``;
- ``store/`` imports the core only;
- ``cluster/`` (the Docker engines past one machine: the local test Swarm and its registry,
  the Kubernetes manifests on paper) imports the core, the spawner and the names of ``jobs``;
  no other room imports it;
- ``metrics`` (Prometheus's view of the store) imports ``store``; the app serves it.

``tests/unit/test_import_contracts.py`` holds the tree to these rules.
"""
