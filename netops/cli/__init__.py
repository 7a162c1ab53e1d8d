"""The `netops` command line: thin click groups that parse, call one function, and render.

Each group lives in its own module named after it (sync.py, db.py, sim.py, ...); this module only
wires them together and turns expected failures into one-line errors with a non-zero exit.
"""

from __future__ import annotations

import sys

import click

from netops import __version__
from netops.cli import backlog, config_cmd, db, monitor, sim, sync, token
from netops.cli.common import pass_settings  # noqa: F401  (re-exported for group modules)
from netops.errors import NetopsError


def as_click_error(exc: NetopsError) -> click.ClickException:
    """A domain error as click shows it: one line `Error: <message>`, exit status `exit_code`."""
    out = click.ClickException(exc.message)
    out.exit_code = exc.exit_code
    return out


class NetopsGroup(click.Group):
    """The root group: the one place where domain errors (netops/errors.py, raised by every layer
    and independent of click) become one-line CLI errors with their exit codes."""

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


for module in (sync, db, sim, token, backlog, config_cmd):
    cli.add_command(module.group)
for command in monitor.commands:
    cli.add_command(command)


def main() -> None:
    """Console entry point."""
    try:
        cli.main(prog_name="netops", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        click.echo("interrupted", err=True)
        sys.exit(130)
