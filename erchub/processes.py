"""Processes that end with the one that started them: Linux's parent-death signal."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

#: Linux's prctl option that signals a process when the thread that started it ends
PR_SET_PDEATHSIG = 1
#: the C library, loaded at import: a call between fork and exec then takes no lock
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def end_with_parent(signum: signal.Signals, parent_pid: int | None = None) -> bool:
    """Have the kernel send ``signum`` to this process when the thread that started it ends,
    however it ends (killed too); elsewhere than on Linux, nothing. False when the parent has
    ended already, before the call: this process is no longer ``parent_pid``'s child or,
    without it, was handed to init."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signum)
    parent = os.getppid()
    return parent == parent_pid if parent_pid is not None else parent != 1
