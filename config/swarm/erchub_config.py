"""The erc service's and its workers' settings in the Swarm stack (config/swarm/stack.yml): the
service reads this file as $ERCHUB_CONFIG_FILE, the workers as `erchub worker --config`. The
rest comes from ERCHUB_* variables of the stack file.

Runtime images go through the cluster's registry ($ERCHUB_REGISTRY, host:port): a worker pushes
what it builds or reuses there, and one that lacks an image another builder pushed pulls it by
its tag instead of building it; the job's container runs from the image's repository digest.
"""

import os

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (provided by traitlets)

c.ImageBuilder.registry = os.environ["ERCHUB_REGISTRY"]

# A worker whose node is lost stops heartbeating its job; after this many seconds another
# worker re-queues the job and takes it over (heartbeats every 2 s). 10 s, not the default 30:
# a lost node's job runs again sooner. It must stay well above a restart of PostgreSQL, which
# heartbeats and job ends wait out (about 3 s on the test cluster), or running jobs are run twice.
c.Worker.lost_timeout = 10.0
