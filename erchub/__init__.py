"""erchub: Executable Research Compendia on JupyterHub.

The shared core: the ERC model, parameters, the output checker and the job step plan.
It imports no component (``erchub.cli`` aside, which composes them).
"""

from erchub._version import __version__

__all__ = ["__version__"]
