"""`netops db backup` / `netops db restore`: the whole netops database in one pg_dump file.

One custom-format dump holds the mirror (public) and its bookkeeping (netops: queue, cursors and
marks, sync history, alert state, API call history), so a restored box resumes where the dump
left it: detect's window from the restored marks catches the inserts and updates made since, and
one reconcile pass the deletes (BENCHMARKS.md "Restore vs full re-pull" measures both).

- A dump is written to a hidden temp file created 0600, fsynced, then renamed: a reader (or the
  retention sweep) never sees half a dump, and a full disk leaves only the temp file, removed.
- The outcome of every backup (time, size, file, error) is kept in `<state_dir>/backup.json`,
  outside the database, so a backup that failed because PostgreSQL was down is recorded too.
- A restore reads the dump's own `netops.schema_migrations` first and refuses a dump newer than
  this code; it replaces the target's netops objects in ONE transaction (psql --single-transaction,
  holding the MIGRATE lock, so writers wait), then applies any migration the dump predates.
- pg_dump/pg_restore/psql: NETOPS_PG_BIN_DIR, else /usr/lib/postgresql/<server's major>/bin, else
  the newest there or on PATH; a tool older than the server is refused (pg_dump cannot dump a
  newer server). The password travels in the child's environment, never on argv.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from netops.config import Settings
from netops.db import connect, locks
from netops.db.migrate import applied_versions, code_version, migrate
from netops.db.shell import psql_invocation
from netops.errors import DatabaseError, NetopsError

RECORD_FILE = "backup.json"
_DUMP_RE = re.compile(r"^netops-\d{8}T\d{6}Z-v\d{3}\.dump$")


@dataclass
class BackupOutcome:
    """One backup attempt, as recorded in backup.json and shown by status."""

    at: str                 # ISO time the attempt ended (UTC)
    ok: bool
    path: str | None = None
    bytes: int | None = None
    seconds: float | None = None
    schema_version: str | None = None
    error: str | None = None


# --- the tools -------------------------------------------------------------------------------

def _major(binary: str) -> int:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(m.group(1)) if m else 0


def find_tool(settings: Settings, name: str, server_major: int | None = None) -> str:
    """`name` (pg_dump, pg_restore, psql) of the server's major version when installed, else the
    newest one not older than the server; a DatabaseError naming the package otherwise."""
    dirs = [settings.pg_bin_dir] if settings.pg_bin_dir else []
    dirs += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: float(Path(p).parent.name)
                   if Path(p).parent.name.replace(".", "").isdigit() else 0.0, reverse=True)
    found = [str(Path(d) / name) for d in dirs if (Path(d) / name).exists()]
    on_path = shutil.which(name)
    if on_path:
        found.append(on_path)
    if not found:
        raise DatabaseError(f"{name} not found: install the PostgreSQL client of the server's version "
                            "(Debian: apt-get install postgresql-client) or set NETOPS_PG_BIN_DIR")
    if server_major is None:
        return found[0]
    majors = {b: _major(b) for b in found}
    exact = [b for b in found if majors[b] == server_major]
    newer = [b for b in found if majors[b] > server_major]
    if exact or newer:
        return (exact or newer)[0]
    raise DatabaseError(f"{name} {max(majors.values())} is older than the PostgreSQL server ({server_major}): "
                        f"install postgresql-client-{server_major} or set NETOPS_PG_BIN_DIR")


def _server_major(dsn: str) -> int:
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version_num")
            return int(cur.fetchone()[0]) // 10000
    finally:
        conn.close()


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


# --- the record ------------------------------------------------------------------------------

def record_path(settings: Settings) -> Path:
    return settings.state_path / RECORD_FILE


def read_record(settings: Settings) -> dict[str, Any]:
    """{"last": outcome, "last_good": outcome} as recorded ({} when no backup was ever tried)."""
    try:
        data = json.loads(record_path(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class BackupFacts:
    """What status, the metrics and the alerts know of the backups (from backup.json)."""

    recorded: bool = False             # any attempt recorded at all
    last_at: datetime | None = None    # the latest attempt
    last_ok: bool | None = None
    last_error: str | None = None
    good_at: datetime | None = None    # the latest good one
    good_bytes: int | None = None
    good_path: str | None = None


def _when(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def backup_facts(settings: Settings) -> BackupFacts:
    data = read_record(settings)
    last, good = data.get("last") or {}, data.get("last_good") or {}
    return BackupFacts(recorded=bool(last), last_at=_when(last.get("at")), last_ok=last.get("ok") if last else None,
                       last_error=last.get("error"), good_at=_when(good.get("at")), good_bytes=good.get("bytes"),
                       good_path=good.get("path"))


def _write_record(settings: Settings, outcome: BackupOutcome) -> None:
    """Atomically replace backup.json; a full state dir leaves the old record, never half a file."""
    data = read_record(settings)
    data["last"] = asdict(outcome)
    if outcome.ok:
        data["last_good"] = asdict(outcome)
    path = record_path(settings)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# --- backup ----------------------------------------------------------------------------------

def backup(settings: Settings, dsn: str, output: Path | None = None) -> BackupOutcome:
    """Dump the database to `output` (default: a stamped file in backup_dir, then the oldest
    beyond backup_keep are removed); record and return the outcome; DatabaseError on failure."""
    started = time.monotonic()
    try:
        outcome = _dump(settings, dsn, output, started)
    except (NetopsError, OSError) as exc:
        message = exc.message if isinstance(exc, NetopsError) else f"{exc.strerror} on {exc.filename}"
        outcome = BackupOutcome(at=_utc_now().isoformat(), ok=False, seconds=round(time.monotonic() - started, 2),
                                error=message)
        with contextlib.suppress(OSError):  # a full state dir: the error below still says what failed
            _write_record(settings, outcome)
        raise DatabaseError(f"backup failed: {message}") from None
    _write_record(settings, outcome)
    if output is None:
        prune(settings.backup_path, settings.backup_keep)
    return outcome


def _dump(settings: Settings, dsn: str, output: Path | None, started: float) -> BackupOutcome:
    versions = applied_versions(dsn)
    if not versions:
        raise DatabaseError("the database has no netops schema: nothing to back up (check NETOPS_DSN)")
    pg_dump = find_tool(settings, "pg_dump", _server_major(dsn))
    stamp = _utc_now().strftime("%Y%m%dT%H%M%SZ")
    if output is None:
        settings.backup_path.mkdir(parents=True, exist_ok=True, mode=0o750)
        output = settings.backup_path / f"netops-{stamp}-v{max(versions)}.dump"
    output = output.absolute()
    tmp = output.with_name(f".{output.name}.partial")
    inv = psql_invocation(dsn, psql=pg_dump, extra_args=["--format=custom", "--no-owner", "--no-privileges"])
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            result = subprocess.run(inv.argv, env=inv.env, stdout=fh, stderr=subprocess.PIPE, text=False)
            if result.returncode != 0:
                lines = result.stderr.decode(errors="replace").strip().splitlines()
                line = (lines[-1] if lines else f"exit {result.returncode}").removeprefix("pg_dump: ")
                if "No space left" in line:
                    line += f" ({output.parent}): check the path and free space"
                raise DatabaseError(f"pg_dump: {line}")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return BackupOutcome(at=_utc_now().isoformat(), ok=True, path=str(output), bytes=output.stat().st_size,
                         seconds=round(time.monotonic() - started, 2), schema_version=max(versions))


def prune(directory: Path, keep: int) -> list[Path]:
    """Remove all but the `keep` newest netops dumps in `directory` (by their stamped names)."""
    dumps = sorted(p for p in directory.iterdir() if _DUMP_RE.match(p.name))
    gone = dumps[:-keep] if keep > 0 else []
    for p in gone:
        p.unlink()
    return gone


# --- restore ---------------------------------------------------------------------------------

#: Runs first in the restore's single transaction: writers wait (MIGRATE), then the target's
#: netops objects go, so the dump's are the only ones left (also tables a newer release added).
_CLEAR = f"""
SELECT pg_advisory_xact_lock({locks.MIGRATE});
DROP SCHEMA IF EXISTS netops CASCADE;
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
        EXECUTE format('DROP TABLE IF EXISTS public.%I CASCADE', r.tablename);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'public' LOOP
        EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', r.f);
    END LOOP;
END $$;
"""


def dump_versions(settings: Settings, path: Path) -> list[str]:
    """The schema versions recorded in the dump's own netops.schema_migrations."""
    pg_restore = find_tool(settings, "pg_restore")
    result = subprocess.run([pg_restore, "--data-only", "--schema=netops", "--table=schema_migrations",
                             "--file=-", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise DatabaseError(f"{path} is not a pg_dump custom-format file ({lines[-1] if lines else 'unreadable'})")
    versions, copying = [], False
    for line in result.stdout.splitlines():
        if line.startswith("COPY netops.schema_migrations"):
            copying = True
        elif copying and line == "\\.":
            break
        elif copying and line:
            versions.append(line.split("\t", 1)[0])
    return sorted(versions)


def _target_state(dsn: str) -> tuple[bool, int]:
    """(has a netops schema, number of non-empty tables in public and netops)."""
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('netops.schema_migrations') IS NOT NULL")
            has_schema = bool(cur.fetchone()[0])
            cur.execute("""SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
                           WHERE schemaname IN ('public', 'netops') AND tablename <> 'schema_migrations'""")
            non_empty = 0
            for (table,) in cur.fetchall():
                cur.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")
                non_empty += bool(cur.fetchone()[0])
            return has_schema, non_empty
    finally:
        conn.close()


@dataclass
class RestoreOutcome:
    path: str
    schema_version: str
    migrated: list[str]
    seconds: float


def restore(settings: Settings, dsn: str, path: Path, yes: bool = False) -> RestoreOutcome:
    """Replace the database's netops objects with the dump's (one transaction); then migrate."""
    started = time.monotonic()
    if not path.is_file():
        raise DatabaseError(f"{path}: no such backup file; `ls {settings.backup_path}` lists the dumps")
    versions = dump_versions(settings, path)
    if not versions:
        raise DatabaseError(f"{path} holds no netops.schema_migrations: not a netops backup")
    known = code_version()
    if max(versions) > known:
        raise DatabaseError(f"{path} was made by schema version {max(versions)}, newer than this code's {known}: "
                            "restore it with that release or a newer one")
    has_schema, non_empty = _target_state(dsn)
    if not has_schema and non_empty:
        raise DatabaseError("the database NETOPS_DSN names holds tables but no netops schema (a wrong database?): "
                            "check NETOPS_DSN, or restore into an empty database")
    if non_empty and not yes:
        raise DatabaseError(f"the database already holds netops data ({non_empty} non-empty tables): "
                            "pass --yes to replace it with the backup")
    major = _server_major(dsn)
    pg_restore = find_tool(settings, "pg_restore", major)
    psql = find_tool(settings, "psql", major)
    inv = psql_invocation(dsn, psql=psql, extra_args=["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                                                      "-c", _CLEAR, "-f", "-"])
    producer = subprocess.Popen([pg_restore, "--no-owner", "--no-privileges", "--file=-", str(path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    result = subprocess.run(inv.argv, env=inv.env, stdin=producer.stdout, capture_output=True, text=True)
    producer.stdout.close()  # type: ignore[union-attr]
    producer_err = producer.stderr.read().decode(errors="replace") if producer.stderr else ""
    producer.wait()
    if producer.returncode != 0 or result.returncode != 0:
        lines = (result.stderr.strip() or producer_err.strip()).splitlines()
        raise DatabaseError(f"restore failed, the database is unchanged: {lines[-1] if lines else 'pg_restore/psql failed'}")
    migrated = migrate(dsn, settings.log_path)
    return RestoreOutcome(str(path), max(versions), migrated, round(time.monotonic() - started, 2))
