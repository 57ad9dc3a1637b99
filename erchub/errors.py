"""Errors a user sees: each carries a one-line message that names the problem."""

import errno


class ErchubError(Exception):
    """Base class for errors shown to users as one line (CLI) or a JSON message (API)."""

    #: exit code of the CLI for this kind of error
    exit_code = 1


class InvalidERC(ErchubError):
    """The workspace, erc.yml or a notebook is not a valid ERC input."""

    exit_code = 2


class UnsafeArchive(ErchubError):
    """An archive would write outside its target, or expands past the limits."""

    exit_code = 2


class InvalidParameter(ErchubError):
    """A parameter value names no parameter, or does not fit the parameter's type."""

    exit_code = 2


class BuildError(ErchubError):
    """The runtime image could not be built."""


class ExecutionError(ErchubError):
    """The notebook could not be executed."""


class EngineUnavailable(ExecutionError):
    """The Docker engine did not answer: it is down, or it went away (a restart, a crash)
    during the execution."""


# -- what an operation on compendia, jobs and shipments says to its caller ------------------
# Domain code raises these; the erc service's BaseHandler alone turns them into HTTP answers.


class Invalid(ErchubError):
    """A request's content is wrong (a field, a value, a file it names)."""

    exit_code = 2


class NotFound(ErchubError):
    """What was asked for does not exist, or the caller may not see it."""


class Forbidden(ErchubError):
    """The caller sees it but may not do this to it."""


class Conflict(ErchubError):
    """It cannot be done in the state the thing is in (a running job, an ended one)."""


class Unavailable(ErchubError):
    """It cannot be done now; the same request may succeed later."""


class StorageFull(ErchubError):
    """The disk where erchub keeps its data is full (or its quota used up)."""


#: what a user is told when the disk is full (the file system's own message names paths)
STORAGE_FULL_MESSAGE = (
    "the disk where erchub keeps its data is full: nothing was stored; try again later, or "
    "ask the hub's operator to make room"
)


def is_storage_full(error: BaseException) -> bool:
    """Whether ``error`` says the disk is full: :class:`StorageFull`, or an OSError of a full
    disk or quota (ENOSPC, EDQUOT), wherever it was raised."""
    if isinstance(error, StorageFull):
        return True
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
