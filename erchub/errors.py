"""Errors a user sees: each carries a one-line message that names the problem."""


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
