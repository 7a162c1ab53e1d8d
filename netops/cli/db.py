"""`netops db`: the database netops writes to.

With NETOPS_DSN unset, netops owns a local PostgreSQL server under the state dir
(`up`/`down`/`status`/`dsn`). `migrate` applies the versioned schema to whichever database is
configured (the only command that creates it); `backup`/`restore` dump and reload the whole
netops database (netops/db/backup.py); `shell` opens psql on it without putting any password on
the command line.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from netops.cli.common import echo_json, pass_settings
from netops.config import Settings


@click.group(name="db")
def group() -> None:
    """Manage the database: local server, schema migrations, backup and restore, psql shell."""


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
@click.option("--dry-run", is_flag=True, help="Only list the pending migrations; apply nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
def migrate(settings: Settings, dry_run: bool, as_json: bool) -> None:
    """Apply pending schema migrations (idempotent; each in its own transaction, recorded in
    netops.schema_migrations). The only command that creates the netops schema: writers refuse a
    database without it. Refuses a schema newer than this code (a downgrade)."""
    from netops.db.migrate import applied_versions, code_version, pending, schema_problem
    from netops.db.migrate import migrate as run_migrations
    from netops.db.server import resolve_dsn
    from netops.errors import DatabaseError

    dsn = resolve_dsn(settings)
    current = applied_versions(dsn)
    if current and max(current) > code_version():
        raise DatabaseError(schema_problem(current) or "schema newer than this code")
    if dry_run:
        todo = pending(dsn)
        if as_json:
            echo_json({"current": max(current) if current else None, "code": code_version(), "pending": todo})
        else:
            click.echo("\n".join(f"pending: {m}" for m in todo) or "schema is up to date")
        return
    applied = run_migrations(dsn, settings.log_path)
    if as_json:
        echo_json({"applied": applied})
    elif applied:
        click.echo("applied: " + ", ".join(applied))
    else:
        click.echo("schema is up to date")


@group.command("backup")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the dump here (default: a stamped file in backup_dir, keeping backup_keep).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
def backup(settings: Settings, output: Path | None, as_json: bool) -> None:
    """Dump the whole netops database (mirror + bookkeeping: queue, cursors, sync history, alert
    state) with pg_dump, custom format, written atomically (mode 0600); print the file written.

    The outcome is recorded for `netops status` (last good backup's age and size). The role runs
    it daily (cron job `backup`); NETOPS_BACKUP_DIR / NETOPS_BACKUP_KEEP set where and how many.
    """
    from netops.db.backup import backup as run_backup
    from netops.db.server import resolve_dsn

    outcome = run_backup(settings, resolve_dsn(settings), output)
    if as_json:
        echo_json(asdict(outcome))
    else:
        click.echo(outcome.path)


@group.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Replace a database that already holds netops data.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
def restore(settings: Settings, file: Path, yes: bool, as_json: bool) -> None:
    """Replace the database with a `netops db backup` dump, in one transaction, then apply the
    migrations the dump predates. Refuses a dump made by a newer schema than this code, and a
    database that holds other tables but no netops schema (a wrong NETOPS_DSN). The backlog then
    resumes from the dump's marks: the next `backlog detect` catches up on inserts and updates in a
    few calls; run `netops backlog reconcile` once for the rows deleted since the dump.
    """
    from netops.db.backup import restore as run_restore
    from netops.db.server import resolve_dsn

    outcome = run_restore(settings, resolve_dsn(settings), file, yes=yes)
    if as_json:
        echo_json(asdict(outcome))
    else:
        extra = f"; then applied {', '.join(outcome.migrated)}" if outcome.migrated else ""
        click.echo(f"restored {outcome.path} (schema {outcome.schema_version}) in {outcome.seconds:.1f}s{extra}")


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
