"""Facts every view shares, read from PostgreSQL bookkeeping, catalogs and local files only.

status, metrics, alerts and the dashboard are different renderings of the same facts; gathering
them in one place keeps their numbers identical (an alert says what the dashboard shows). Every
query here is bounded by an index or by a small table, so a snapshot stays well under a second on
a database with millions of mirrored rows: big tables are counted from catalog estimates.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions

from netops import catalog
from netops.config import Settings
from netops.db import SEARCH_PATH

# The stable phases in FK order, (phase, table): both the table's name since migration 009, derived
# from the catalog (netops/catalog.py). Phases seen in sync_runs but not listed here (a removed
# phase) are still reported, after these.
STABLE_PHASES: tuple[tuple[str, str], ...] = tuple((s.name, s.name) for s in catalog.STABLE)

# Tables up to this on-disk size are counted exactly (count(*) on 32 MB is a few ms when cached);
# bigger ones use the planner's estimate, scaled to the current size, and say so.
EXACT_COUNT_MAX_BYTES = 32 * 1024 * 1024
STATEMENT_TIMEOUT_MS = 5000


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(ts: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, the form every netops log line and JSON document uses."""
    if ts is None:
        return None
    return ts.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def monitor_dsn(settings: Settings) -> str:
    """The DSN to read from, without starting the embedded server: a stopped database must show
    up as a failed check in `netops status`, not be silently started by it."""
    from netops.db.server import resolve_dsn

    return resolve_dsn(settings, start=False)


@contextmanager
def connect_monitor(dsn: str, timeout_s: int = 3) -> Iterator[psycopg2.extensions.connection]:
    """A short-timeout, autocommit connection: views never hold locks or long transactions."""
    conn = psycopg2.connect(dsn, connect_timeout=timeout_s, application_name="netops-monitor",
                            options=SEARCH_PATH)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        yield conn
    finally:
        conn.close()


def relation_exists(cur: psycopg2.extensions.cursor, name: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    return bool(cur.fetchone()[0])


# --- sync runs -----------------------------------------------------------------------------

@dataclass
class PhaseFacts:
    phase: str
    table: str
    last_status: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    pages_done: int = 0
    pages_total: int | None = None
    rows_fetched: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    rows_skipped: int = 0
    api_calls: int = 0
    error: str | None = None
    run_id: str | None = None
    last_success_at: datetime | None = None
    last_success_duration: float | None = None


def sync_lock_held(cur: psycopg2.extensions.cursor) -> bool:
    """Whether a live `netops sync` holds the sync advisory lock on this database right now.

    A sync holds it for its whole run, on its own session: when the process dies (kill -9, OOM,
    power loss) PostgreSQL drops the session and the lock with it. So a `running` row while
    nobody holds the lock belongs to a dead run — it is shown as interrupted at once, without
    waiting for the next sync to tidy it up, and its "elapsed" time is no duration of anything.
    """
    from netops.db.locks import SYNC as SYNC_LOCK_KEY

    cur.execute(
        """
        SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                        WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()
                          AND ((l.classid::bigint << 32) | l.objid::bigint) = %s AND l.objsubid = 1)
        """,
        (SYNC_LOCK_KEY,),
    )
    return bool(cur.fetchone()[0])


DEAD_RUN_NOTE = ("interrupted: the sync process is gone (its lock is not held) — killed or crashed "
                 "before this phase finished; its table was left unchanged")


def phase_facts(cur: psycopg2.extensions.cursor, lock_held: bool | None = None) -> list[PhaseFacts]:
    """Latest run of every phase and its latest success. A `running` row of a sync that no longer
    holds the lock is reported `interrupted`, with no duration (see sync_lock_held)."""
    if lock_held is None:
        lock_held = sync_lock_held(cur)
    cur.execute(
        """
        SELECT DISTINCT ON (phase) phase, table_name, status, started_at, finished_at,
               extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8,
               pages_done, pages_total, rows_fetched, rows_inserted, rows_updated, rows_deleted,
               rows_skipped, api_calls, error, run_id::text
          FROM netops.sync_runs
         ORDER BY phase, started_at DESC, id DESC
        """
    )
    latest = {r[0]: r for r in cur.fetchall()}
    cur.execute(
        """
        SELECT DISTINCT ON (phase) phase, finished_at,
               extract(epoch FROM finished_at - started_at)::float8
          FROM netops.sync_runs WHERE status = 'success'
         ORDER BY phase, finished_at DESC, id DESC
        """
    )
    success = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
    known = dict(STABLE_PHASES)
    order = [p for p, _ in STABLE_PHASES] + sorted(p for p in latest if p not in known)
    out = []
    for phase in order:
        r = latest.get(phase)
        f = PhaseFacts(phase=phase, table=known.get(phase) or (r[1] if r else phase))
        if r:
            (_, f.table, f.last_status, f.started_at, f.finished_at, f.duration_seconds, f.pages_done,
             f.pages_total, f.rows_fetched, f.rows_inserted, f.rows_updated, f.rows_deleted,
             f.rows_skipped, f.api_calls, f.error, f.run_id) = r
        if phase in success:
            f.last_success_at, f.last_success_duration = success[phase]
        if f.last_status == "running" and not lock_held:
            f.last_status, f.duration_seconds, f.error = "interrupted", None, DEAD_RUN_NOTE
        out.append(f)
    return out


@dataclass
class LastRun:
    run_id: str | None = None
    status: str | None = None  # running | success | failed | interrupted
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    phases: int = 0


def last_run(cur: psycopg2.extensions.cursor, lock_held: bool | None = None) -> LastRun:
    """The most recent `netops sync` (all its phases, grouped by run_id). A run whose process is
    gone (see sync_lock_held) is `interrupted`, with no duration: it never fires sync_duration."""
    cur.execute(
        """
        WITH last AS (SELECT run_id FROM netops.sync_runs ORDER BY started_at DESC, id DESC LIMIT 1)
        SELECT s.run_id::text,
               CASE WHEN bool_or(s.status = 'running') THEN 'running'
                    WHEN bool_or(s.status = 'interrupted') THEN 'interrupted'
                    WHEN bool_or(s.status = 'failed') THEN 'failed' ELSE 'success' END,
               min(s.started_at), max(s.finished_at),
               extract(epoch FROM
                   CASE WHEN bool_or(s.status = 'running') THEN now() ELSE max(s.finished_at) END
                   - min(s.started_at))::float8,
               count(*)
          FROM netops.sync_runs s JOIN last USING (run_id)
         GROUP BY s.run_id
        """
    )
    r = cur.fetchone()
    if not r:
        return LastRun()
    run = LastRun(*r)
    if run.status == "running" and not (sync_lock_held(cur) if lock_held is None else lock_held):
        run.status, run.duration_seconds = "interrupted", None
    return run


# --- API calls -----------------------------------------------------------------------------

@dataclass
class ApiFacts:
    by_status_1h: dict[str, int] = field(default_factory=dict)  # "200", "429", "none" -> count
    calls_1h: int = 0
    calls_15m: int = 0
    calls_1m: int = 0
    unauthorized_1h: int = 0
    rate_limited_1h: int = 0
    secondly_remaining: int | None = None
    hourly_remaining: int | None = None
    remaining_at: datetime | None = None
    errors_by_hour: list[int] = field(default_factory=list)  # 24 buckets, oldest first
    calls_by_hour: list[int] = field(default_factory=list)
    last_call_at: datetime | None = None


def api_facts(cur: psycopg2.extensions.cursor) -> ApiFacts:
    """Call accounting from netops.api_calls; every query is a range scan on the `at` index."""
    f = ApiFacts()
    cur.execute(
        """
        SELECT coalesce(status::text, 'none'), count(*),
               count(*) FILTER (WHERE at > now() - interval '15 minutes'),
               count(*) FILTER (WHERE at > now() - interval '1 minute')
          FROM netops.api_calls WHERE at > now() - interval '1 hour' GROUP BY 1 ORDER BY 1
        """
    )
    for status, n, n15, n1 in cur.fetchall():
        f.by_status_1h[status] = n
        f.calls_1h += n
        f.calls_15m += n15
        f.calls_1m += n1
    f.unauthorized_1h = f.by_status_1h.get("401", 0)
    f.rate_limited_1h = f.by_status_1h.get("429", 0)
    cur.execute(
        """
        SELECT secondly_remaining, hourly_remaining, at FROM netops.api_calls
         WHERE at > now() - interval '1 hour'
           AND (hourly_remaining IS NOT NULL OR secondly_remaining IS NOT NULL)
         ORDER BY at DESC LIMIT 1
        """
    )
    r = cur.fetchone()
    if r:
        f.secondly_remaining, f.hourly_remaining, f.remaining_at = r
    # 24 hourly buckets ending now: bucket 23 is the last hour.
    cur.execute(
        """
        SELECT least(23, floor(extract(epoch FROM now() - at) / 3600))::int AS ago,
               count(*) FILTER (WHERE status IS NULL OR status NOT BETWEEN 200 AND 299),
               count(*)
          FROM netops.api_calls WHERE at > now() - interval '24 hours' GROUP BY 1
        """
    )
    errors = [0] * 24
    calls = [0] * 24
    for ago, n_err, n in cur.fetchall():
        errors[23 - ago] = n_err
        calls[23 - ago] = n
    f.errors_by_hour, f.calls_by_hour = errors, calls
    cur.execute("SELECT max(at) FROM netops.api_calls")
    f.last_call_at = cur.fetchone()[0]
    return f


# --- backlog (phase 09; its tables may not exist yet) --------------------------------------

@dataclass
class BacklogFacts:
    available: bool = False
    pending: int = 0
    processing: int = 0
    failed: int = 0
    oldest_pending_at: datetime | None = None


def backlog_facts(cur: psycopg2.extensions.cursor) -> BacklogFacts:
    if not relation_exists(cur, "netops.backlog_items"):
        return BacklogFacts(available=False)
    cur.execute(
        """
        SELECT count(*) FILTER (WHERE state = 'pending'),
               count(*) FILTER (WHERE state = 'processing'),
               count(*) FILTER (WHERE state = 'failed'),
               min(enqueued_at) FILTER (WHERE state = 'pending')
          FROM netops.backlog_items WHERE state IN ('pending', 'processing', 'failed')
        """
    )
    p, pr, fl, oldest = cur.fetchone()
    return BacklogFacts(True, p, pr, fl, oldest)


# --- tables and database -------------------------------------------------------------------

@dataclass
class TableCount:
    rows: int
    exact: bool
    bytes: int


def table_counts(cur: psycopg2.extensions.cursor) -> dict[str, TableCount]:
    """Rows per mirrored table (schema public, staging delta_* excluded).

    Small tables are counted exactly; big ones use reltuples scaled to the current number of
    pages (what the planner does), or the statistics collector's live-tuple count for a table
    never analysed yet (reltuples = -1 on PostgreSQL 14+).
    """
    cur.execute(
        """
        SELECT c.relname, pg_relation_size(c.oid), c.reltuples::float8, c.relpages,
               coalesce(s.n_live_tup, 0)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE 'delta\\_%'
         ORDER BY c.relname
        """
    )
    rows = cur.fetchall()
    out: dict[str, TableCount] = {}
    for name, size, reltuples, relpages, live in rows:
        if size <= EXACT_COUNT_MAX_BYTES:
            cur.execute(f'SELECT count(*) FROM public."{name}"')
            out[name] = TableCount(cur.fetchone()[0], True, size)
            continue
        estimate = int(reltuples / relpages * (size / 8192)) if reltuples >= 0 and relpages > 0 else int(live)
        out[name] = TableCount(estimate, False, size)
    return out


def database_size(cur: psycopg2.extensions.cursor) -> int:
    cur.execute("SELECT pg_database_size(current_database())")
    return int(cur.fetchone()[0])


def server_version(cur: psycopg2.extensions.cursor) -> str:
    cur.execute("SHOW server_version")
    return str(cur.fetchone()[0])


@dataclass
class QualityFacts:
    available: bool = False
    checked_at: datetime | None = None
    violations: int = 0
    info: int = 0
    by_check: dict[str, int] = field(default_factory=dict)


def quality_facts(cur: psycopg2.extensions.cursor) -> QualityFacts:
    """The last stored `netops check` (running the checks here would be too slow for status)."""
    if not relation_exists(cur, "netops.quality_runs"):
        return QualityFacts()
    cur.execute(
        "SELECT checked_at, violations, info, result FROM netops.quality_runs ORDER BY id DESC LIMIT 1"
    )
    r = cur.fetchone()
    if not r:
        return QualityFacts(available=True)
    checked_at, violations, info, result = r
    by_check: dict[str, int] = {}
    for item in (result or {}).get("findings", []):
        if item.get("severity") == "violation":
            by_check[item["kind"]] = by_check.get(item["kind"], 0) + int(item["count"])
    return QualityFacts(True, checked_at, violations, info, by_check)


def firing_alerts(cur: psycopg2.extensions.cursor) -> list[str]:
    if not relation_exists(cur, "netops.alert_state"):
        return []
    cur.execute("SELECT name FROM netops.alert_state WHERE state = 'firing' ORDER BY name")
    return [r[0] for r in cur.fetchall()]


# --- files -----------------------------------------------------------------------------------

def dir_bytes(path: Path, max_entries: int = 200_000) -> int:
    """Bytes used by regular files under `path` (not following symlinks); 0 when absent.

    Bounded so a pathological tree cannot make `status` slow; a PostgreSQL data dir with
    millions of rows is a few thousand files.
    """
    total = 0
    seen = 0
    stack = [str(path)]
    while stack and seen < max_entries:
        top = stack.pop()
        try:
            with os.scandir(top) as it:
                for entry in it:
                    seen += 1
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def disk_facts(path: Path) -> dict[str, Any]:
    """Space used under `path` and free on its filesystem (nearest existing parent if absent)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return {
        "path": str(path),
        "exists": Path(path).exists(),
        "used_bytes": dir_bytes(Path(path)),
        "free_bytes": usage.free,
        "total_bytes": usage.total,
        "free_percent": round(100.0 * usage.free / usage.total, 1) if usage.total else None,
    }


@dataclass
class TokenFacts:
    present: bool = False
    ttl_seconds: int | None = None
    expires_at: datetime | None = None
    secret_valid_until: datetime | None = None
    error: str | None = None
    refused_at: datetime | None = None  # the API answered 401 to it (netops/api/auth.py marks it)


@dataclass
class TokenStore:
    """The default key's token file as read once per evaluation (token facts and key rows)."""

    path: Path
    exists: bool = False
    data: dict[str, Any] | None = None  # the parsed store (None: absent or unreadable)
    error: str | None = None            # why it could not be parsed


def read_token_store(settings: Settings) -> TokenStore:
    path = settings.token_file
    if not path.exists():
        return TokenStore(path)
    try:
        data = json.loads(path.read_text())
        float(data["expires_at"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return TokenStore(path, True, None, f"{path}: unreadable token store ({type(exc).__name__})")
    return TokenStore(path, True, data)


def token_facts(settings: Settings, now: float | None = None, store: TokenStore | None = None) -> TokenFacts:
    """Read the token store directly (docs/CONTRACTS.md shape); a view must not refresh it.
    `store`: the file as already read (read_token_store), so an evaluation reads it once."""
    now = time.time() if now is None else now
    store = store if store is not None else read_token_store(settings)
    if not store.exists:
        return TokenFacts()
    if store.data is None:
        return TokenFacts(present=False, error=store.error)
    data = store.data
    expires = float(data["expires_at"])
    from netops.api.auth import configured_fingerprint

    foreign = None
    if data.get("api_url") and data.get("api_url") != settings.api_url:
        foreign = (f"the stored token is for {data.get('api_url')}, not NETOPS_API_URL={settings.api_url} "
                   "(this configuration has no token; `netops token status` says none)")
    else:
        fp = configured_fingerprint(settings)
        if fp is not None and data.get("credential_fp") != fp:
            foreign = ("the stored token was obtained with other credentials than the configured "
                       "NETOPS_CLIENT_ID/NETOPS_CLIENT_SECRET")
    svu = data.get("secret_valid_until")
    refused = data.get("refused_at")
    return TokenFacts(
        present=True,
        ttl_seconds=int(expires - now),
        expires_at=datetime.fromtimestamp(expires, timezone.utc),
        secret_valid_until=datetime.fromtimestamp(float(svu), timezone.utc) if svu else None,
        refused_at=datetime.fromtimestamp(float(refused), timezone.utc) if refused else None,
        error=foreign,
    )
