"""`netops db shell`: how to start psql on the configured database without leaking its password.

A password on psql's command line is visible to every user on the box (`ps`, /proc/<pid>/cmdline),
so the DSN is split: everything except the password goes on argv as a libpq conninfo string, and
the password goes into the child's environment as PGPASSWORD (/proc/<pid>/environ is readable by
the process owner and root only). Any PG* variables inherited from the operator's shell that would
override the DSN are dropped, so the shell always opens the database netops itself uses.

The CLI command only has to do::

    inv = psql_invocation(resolve_dsn(settings), pg_bin_dir=settings.pg_bin_dir, extra_args=args)
    os.execvpe(inv.argv[0], inv.argv, inv.env)
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from psycopg2.extensions import make_dsn, parse_dsn

from netops.errors import NetopsError

# Variables libpq reads that would silently win over, or add to, what the DSN says.
_LIBPQ_OVERRIDES = (
    "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGPASSFILE",
    "PGSERVICE", "PGSERVICEFILE", "PGOPTIONS", "PGSSLMODE", "PGAPPNAME", "PGTARGETSESSIONATTRS",
)


@dataclass(frozen=True)
class PsqlInvocation:
    """What to exec: argv (never holds a password) and the complete environment for the child."""

    argv: list[str]
    env: dict[str, str]


def _major_version(psql: str) -> float:
    try:
        return float(Path(psql).parent.parent.name)   # /usr/lib/postgresql/<major>/bin/psql
    except ValueError:
        return 0.0


def find_psql(pg_bin_dir: str | None = None) -> str:
    """psql from NETOPS_PG_BIN_DIR when it has one, else from PATH, else beside the server
    binaries (/usr/lib/postgresql/*/bin, newest first: a box with only the server package has
    psql there, off PATH); a clear error when absent."""
    if pg_bin_dir:
        candidate = Path(pg_bin_dir) / "psql"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("psql")
    if found:
        return found
    beside_server = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"), key=_major_version, reverse=True)
    if beside_server:
        return beside_server[0]
    raise NetopsError(
        "psql not found: install the PostgreSQL client (Debian: apt-get install postgresql-client) "
        "or put its directory in NETOPS_PG_BIN_DIR"
    )


def psql_invocation(
    dsn: str,
    *,
    pg_bin_dir: str | None = None,
    extra_args: Sequence[str] = (),
    base_env: Mapping[str, str] | None = None,
    psql: str | None = None,
) -> PsqlInvocation:
    """Build argv and env that open psql on `dsn`; the password (if any) travels as PGPASSWORD.

    `extra_args` are passed through after the conninfo (e.g. `-c 'select 1'`). `base_env`
    defaults to os.environ. `psql` overrides the binary lookup (tests).
    """
    try:
        params = parse_dsn(dsn)
    except Exception as exc:  # psycopg2.ProgrammingError: the message names the bad part
        raise NetopsError(f"NETOPS_DSN cannot be parsed ({str(exc).strip()}); fix its syntax") from None
    password = params.pop("password", None)
    params.setdefault("application_name", "netops-shell")
    env = {k: v for k, v in (os.environ if base_env is None else base_env).items() if k not in _LIBPQ_OVERRIDES}
    if password:
        env["PGPASSWORD"] = password
    binary = psql or find_psql(pg_bin_dir)
    argv = [binary, make_dsn(**params), *extra_args]
    return PsqlInvocation(argv=argv, env=env)


def exec_psql(inv: PsqlInvocation) -> None:  # pragma: no cover - replaces the process
    """Replace the current process with psql, so signals and the terminal belong to it."""
    os.execvpe(inv.argv[0], inv.argv, inv.env)
