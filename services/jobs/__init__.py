"""Jobs: o2r's steps carried out for one compendium, in worker processes, never in the API.

- ``worker``: claims queued jobs from the store, heartbeats, snapshots the compendium, runs the
  job, re-queues or ends the jobs of a lost worker (:class:`~.worker.Worker`);
- ``runner``: one job's steps, validate_compendium to cleanup (:class:`~.runner.JobRunner`);
- ``runtime``: where the notebook runs: a container of the runtime image, or (not isolated) a
  virtualenv; what the notebook wrote is contained before anything reads it;
- ``events``: the job's event log (``events.jsonl``) that the API streams as SSE;
- ``kubernetes``: an execution as a Kubernetes Job with the Docker runtime's limits, and the
  NetworkPolicies of job pods: pure manifest builders, on paper (nothing submits them yet).

Imports the core, ``compendia`` and ``store``; never a handler.
"""
