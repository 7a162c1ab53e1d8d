"""`netops db`: the database netops writes to.

With NETOPS_DSN unset, netops owns a local PostgreSQL server under the state dir
(`up`/`down`/`status`/`dsn`). `migrate` applies the versioned schema to whichever database is
configured; `shell` opens psql on it without putting any password on the command line.
"""

from __future__ import annotations

import click

from netops.cli.common import echo_json, pass_settings
from netops.config import Settings


@click.group(name="db")
def group() -> None:
    """Manage the database: local server, schema migrations, psql shell."""


@group.command("up")
@pass_settings
def up(settings: Settings) -> None:
    """Start the embedded local PostgreSQL (initdb on first use). Idempotent."""
    from netops.db.server import LocalPostgres

    dsn = LocalPostgres(settings).up()
    click.echo(dsn)


@group.command("down")
@pass_settings
def down(settings: Settings) -> None:
    """Stop the embedded local PostgreSQL (data is kept)."""
    from netops.db.server import LocalPostgres

    stopped = LocalPostgres(settings).down()
    click.echo("stopped" if stopped else "not running")


@group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
def status(settings: Settings, as_json: bool) -> None:
    """Say whether the embedded server is initialised and running, and where."""
    from netops.db.server import LocalPostgres

    info = LocalPostgres(settings).status()
    if as_json:
        echo_json(info)
    else:
        for key, value in info.items():
            click.echo(f"{key:<12} {value}")
    if settings.dsn is None and not info.get("running"):
        raise SystemExit(1)


@group.command("dsn")
@pass_settings
def dsn(settings: Settings) -> None:
    """Print the connection string netops uses. Never starts the embedded server (it only looks):
    a stopped one is an error that says `netops db up`."""
    from netops.db.server import looking_dsn

    click.echo(looking_dsn(settings))


@group.command("migrate")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
def migrate(settings: Settings, as_json: bool) -> None:
    """Apply pending schema migrations (idempotent; each recorded in netops.schema_migrations)."""
    from netops.db.migrate import migrate as run_migrations
    from netops.db.server import resolve_dsn

    applied = run_migrations(resolve_dsn(settings), settings.log_path)
    if as_json:
        echo_json({"applied": applied})
    elif applied:
        click.echo("applied: " + ", ".join(applied))
    else:
        click.echo("schema is up to date")


@group.command("shell", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
@pass_settings
def shell(settings: Settings, psql_args: tuple[str, ...]) -> None:
    """Open psql on the configured database (extra arguments go to psql, e.g. -c 'select 1').

    The password, if the DSN has one, is handed to psql in its environment, never on its
    command line (where `ps` would show it to every user). `make db-shell` does the same.
    """

    from netops.db.server import looking_dsn
    from netops.db.shell import exec_psql, psql_invocation

    exec_psql(psql_invocation(looking_dsn(settings), pg_bin_dir=settings.pg_bin_dir, extra_args=psql_args))
