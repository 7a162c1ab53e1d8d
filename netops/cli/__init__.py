"""The `netops` command line: thin click groups that parse, call one function, and render.

Each group lives in its own module named after it (sync.py, db.py, sim.py, ...); this module only
wires them together and turns expected failures into one-line errors with a non-zero exit.
"""

from __future__ import annotations

import importlib
import sys

import click

from netops import __version__
from netops.cli.common import pass_settings  # noqa: F401  (re-exported for group modules)
from netops.errors import NetopsError

#: every top-level command: name -> "module:attribute". Loaded only when it is the command run
#: (or by `netops --help`, which lists them all): a `backlog run --loop` worker never imports the
#: API client (requests, tenacity) it does not use, and each of the box's jobs, started by cron in
#: the same minute, spends less of the shared cores before its first call.
COMMANDS = {
    "sync": "netops.cli.sync:group",
    "db": "netops.cli.db:group",
    "sim": "netops.cli.sim:group",
    "token": "netops.cli.token:group",
    "backlog": "netops.cli.backlog:group",
    "config": "netops.cli.config_cmd:group",
    "status": "netops.cli.monitor:status",
    "logs": "netops.cli.monitor:logs",
    "metrics": "netops.cli.monitor:metrics",
    "alerts": "netops.cli.monitor:alerts",
    "check": "netops.cli.monitor:check",
    "dashboard": "netops.cli.monitor:dashboard",
    "plan": "netops.cli.plan:plan",
}


def as_click_error(exc: NetopsError) -> click.ClickException:
    """A domain error as click shows it: one line `Error: <message>`, exit status `exit_code`."""
    out = click.ClickException(exc.message)
    out.exit_code = exc.exit_code
    return out


class NetopsGroup(click.Group):
    """The root group: the one place where domain errors (netops/errors.py, raised by every layer
    and independent of click) become one-line CLI errors with their exit codes. Its commands are
    imported lazily from COMMANDS (click's documented lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        if not isinstance(command, click.Command) or command.name != cmd_name:
            raise RuntimeError(f"netops.cli.COMMANDS[{cmd_name!r}] = {target} is not the {cmd_name!r} command")
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except NetopsError as exc:
            raise as_click_error(exc) from None


@click.group(cls=NetopsGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="netops")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="NETOPS_CONFIG",
              help="Config file (default /etc/netops/netops.toml). Env vars override it.")
@click.option("-v", "--verbose", is_flag=True, help="Also print debug log lines to stderr.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """Keep a PostgreSQL mirror of the 42 intra API in sync, and watch it.

    Configuration: defaults < /etc/netops/netops.toml (or --config) < NETOPS_* environment.
    With no NETOPS_DSN, netops runs its own local PostgreSQL (see `netops db up`).
    """
    from netops.log import setup_stderr

    setup_stderr(verbose)
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    source = ctx.get_parameter_source("config_path")
    ctx.obj["config_origin"] = "NETOPS_CONFIG" if source == click.core.ParameterSource.ENVIRONMENT else "--config"



def main() -> None:
    """Console entry point."""
    try:
        cli.main(prog_name="netops", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        click.echo("interrupted", err=True)
        sys.exit(130)
