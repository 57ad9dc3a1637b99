"""Defaults every component reads the same way: the data directory, ``ERCHUB_*`` variables."""

from __future__ import annotations

import os


def default_data_dir() -> str:
    """$ERCHUB_DATA_DIR, else ~/.local/share/erchub: compendia, jobs, caches and stores."""
    return os.environ.get("ERCHUB_DATA_DIR") or os.path.expanduser("~/.local/share/erchub")
