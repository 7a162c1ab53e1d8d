"""Shared CLI plumbing: settings loading, JSON output, error translation."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from netops.config import ConfigError, Settings, load_settings
from netops.errors import NetopsError

F = TypeVar("F", bound=Callable[..., Any])


def get_settings(ctx: click.Context) -> Settings:
    root = ctx.find_root()
    root.ensure_object(dict)
    if "settings" not in root.obj:
        try:
            root.obj["settings"] = load_settings(config_path=root.obj.get("config_path"))
        except ConfigError as exc:
            raise ConfigUsageError(str(exc)) from None
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

    return wrapper  # type: ignore[return-value]


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
