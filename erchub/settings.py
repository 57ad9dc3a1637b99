"""Settings every component reads the same way: ``ERCHUB_*`` variables and the data directory.

A setting's default may come from the environment: ``$ERCHUB_<NAME>``, the setting's name in
upper case, parsed as the command line parses the setting (a list: comma-separated); an empty
variable counts as unset, and a config file or a command-line option wins over it
(:func:`env_setting`).

The service, its workers and the job runner share one data directory and one definition of
the ``data_dir`` setting (:class:`DataDirMixin`): each of them takes its parent's, else
``$ERCHUB_DATA_DIR``, else ``~/.local/share/erchub``.
"""

from __future__ import annotations

import os
from typing import Any

from traitlets import Container, HasTraits, TraitError, TraitType, Unicode, default

ENV_PREFIX = "ERCHUB_"
#: the data directory when neither a setting nor $ERCHUB_DATA_DIR names one
FALLBACK_DATA_DIR = "~/.local/share/erchub"


def env_setting(name: str, trait: TraitType[Any, Any], fallback: Any) -> Any:
    """``$ERCHUB_<NAME>`` parsed as ``trait`` parses a command-line value, else ``fallback``.

    A list trait takes comma-separated items. A value the trait cannot parse is a TraitError
    naming the variable; the trait validates what it gets as any value (limits, normalising).
    """
    variable = ENV_PREFIX + name.upper()
    raw = os.environ.get(variable)
    if not raw:
        return fallback
    try:
        if isinstance(trait, Container):
            items = [item.strip() for item in raw.split(",")]
            return trait.from_string_list([item for item in items if item])
        return trait.from_string(raw)
    except (TraitError, ValueError) as error:
        raise TraitError(f"{variable}={raw!r} is not a valid {name}: {error}") from None


def default_data_dir() -> str:
    """$ERCHUB_DATA_DIR, else ~/.local/share/erchub: compendia, jobs, caches and stores."""
    return str(env_setting("data_dir", Unicode(), os.path.expanduser(FALLBACK_DATA_DIR)))


def inherited_data_dir(configurable: object) -> str:
    """The ``data_dir`` of the nearest parent (a configurable's ``parent``, its parent, ...)
    that has one, else :func:`default_data_dir`."""
    parent = getattr(configurable, "parent", None)
    while parent is not None:
        value = getattr(parent, "data_dir", None)
        if isinstance(value, str) and value:
            return value
        parent = getattr(parent, "parent", None)
    return default_data_dir()


class DataDirMixin(HasTraits):
    """The ``data_dir`` setting of the erc service, its workers and the job runner, defined
    once: ``c.ERCService.data_dir``, ``c.Worker.data_dir`` and ``c.JobRunner.data_dir`` set it
    for each (the service passes its own to the workers it starts: ``--data-dir``)."""

    data_dir = Unicode(
        help="Directory of compendia, jobs, uploads, caches and the SQLite store, shared by the "
        "erc service, its workers and their job runners (default: the parent's data_dir, else "
        "$ERCHUB_DATA_DIR, else ~/.local/share/erchub)."
    ).tag(config=True)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return inherited_data_dir(self)
