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
