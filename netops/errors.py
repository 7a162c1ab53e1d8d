"""Errors a person can act on. Each carries one line: what failed and what to do.

They are domain errors, independent of the command line: the API client, the pipeline and the
database layer raise them whether a CLI, a test or another program called them. Only the CLI
edge (netops/cli/__init__.py) turns them into click's one-line `Error: <message>` and exits
with `exit_code` (1 unless a class says otherwise: 2 for configuration, 75 for a busy sync...).
"""

from __future__ import annotations


class NetopsError(Exception):
    """Base for expected failures: `message` is the one line shown; `exit_code` the exit status
    the CLI ends with."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ApiError(NetopsError):
    """The API answered badly (or not at all) after every allowed retry."""

    def __init__(self, message: str, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status


class AuthError(ApiError):
    """Credentials were refused: retrying cannot help, the operator must fix them."""


class DatabaseError(NetopsError):
    """PostgreSQL is unreachable or refused an operation."""


class SyncError(NetopsError):
    """A sync phase failed; its table was left exactly as before."""
