"""Errors a person can act on. Each carries one line: what failed and what to do."""

from __future__ import annotations

import click


class NetopsError(click.ClickException):
    """Base for expected failures; the CLI prints `error: <message>` and exits with exit_code."""

    exit_code = 1


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
