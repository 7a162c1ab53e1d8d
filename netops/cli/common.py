"""Shared CLI plumbing: settings loading, JSON output, error translation."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from netops.config import ConfigError, Settings, load_settings
from netops.errors import DatabaseError, NetopsError
from netops.log import add_secret

F = TypeVar("F", bound=Callable[..., Any])


def get_settings(ctx: click.Context) -> Settings:
    root = ctx.find_root()
    root.ensure_object(dict)
    if "settings" not in root.obj:
        try:
            root.obj["settings"] = load_settings(config_path=root.obj.get("config_path"),
                                                 config_origin=root.obj.get("config_origin"))
        except ConfigError as exc:
            raise ConfigUsageError(str(exc)) from None
        for secret in root.obj["settings"].known_secrets():
            add_secret(secret)   # redacted from every log line, whichever code path logs it
    return root.obj["settings"]


class ConfigUsageError(NetopsError):
    exit_code = 2


def pass_settings(fn: F) -> F:
    """Decorator: inject validated Settings as the first argument, and turn known failures
    (bad config, OS errors on our dirs, DB connection errors) into one-line errors."""

    @functools.wraps(fn)
    @click.pass_context
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        settings = get_settings(ctx)
        try:
            return ctx.invoke(fn, settings, *args, **kwargs)
        except ConfigError as exc:
            raise ConfigUsageError(str(exc)) from None
        except PermissionError as exc:
            raise NetopsError(f"permission denied on {exc.filename}: fix its owner/mode or run as its owner") from None
        except OSError as exc:
            if exc.filename and exc.errno is not None:
                raise NetopsError(f"{exc.strerror} on {exc.filename}: check the path and free space") from None
            raise
        except Exception as exc:
            message = _database_error(exc)
            if message is None:
                raise
            raise DatabaseError(message) from None

    return wrapper  # type: ignore[return-value]


def needs_api_keys(fn: F) -> F:
    """Decorator (under @pass_settings) for commands that call the API: every configured key is
    checked before anything else runs — one line per bad key, exit 2 — not only when the API
    client is built, after the database connect and maybe a migration."""

    @functools.wraps(fn)
    def inner(settings: Settings, *args: Any, **kwargs: Any) -> Any:
        settings.require_keys()  # ConfigError: pass_settings makes it the exit-2 one-line-per-problem error
        return fn(settings, *args, **kwargs)

    return inner  # type: ignore[return-value]


def stoppable(fn: F) -> F:
    """Decorator (under @pass_settings) for long-running commands: SIGINT and SIGTERM stop the
    work within netops.stop.STOP_GRACE seconds (netops/stop.py), and the command ends with its
    one "stopped by SIGINT: ... left ..." line on stderr — exit 128 + the signal when the work
    was cut short, 0 when a loop (`--loop`, the dashboard) ended on it, its normal end."""

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        from netops import stop

        with stop.guard():
            try:
                out = fn(*args, **kwargs)
            except stop.Stopped as exc:
                line = exc.message if " left" in exc.message else f"{exc.message}: {stop.left()}"
                stop.exit_now(line)
            if stop.requested():
                stop.exit_now(stop.stopped_line(), code=0)
            return out

    return inner  # type: ignore[return-value]


def _database_error(exc: BaseException) -> str | None:
    """One line for a PostgreSQL error that reached the command (a missing schema, a server that
    went away mid-run), or None when `exc` is not one. psycopg2 is looked up, not imported: a
    command that never touched the database does not pay for the import."""
    psycopg2 = sys.modules.get("psycopg2")
    if psycopg2 is None or not isinstance(exc, psycopg2.Error):
        return None
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    code = getattr(exc, "pgcode", None) or ""
    if code in ("42P01", "42703", "3F000"):   # undefined table / column / schema
        hint = "the schema is not migrated: run `netops db migrate`"
    elif isinstance(exc, psycopg2.OperationalError):
        hint = "is PostgreSQL up? check `netops status` / `netops db status`, then rerun"
    else:
        hint = "nothing was committed by the failed statement; rerun, and check `netops status`"
    return f"PostgreSQL: {first} — {hint}"


def json_text(data: Any) -> str:
    """The JSON every `--json` prints (and `status --output` writes: the same bytes as stdout)."""
    return json.dumps(data, indent=2, sort_keys=False, default=str)


def echo_json(data: Any) -> None:
    click.echo(json_text(data))
