"""Realistic bookkeeping and mirror rows for the observability tests, inserted directly.

The monitor only reads tables, so its tests do not need a sync to have run: these helpers write
what a sync and the API client write (sync_runs per phase, api_calls per attempt, mirror rows),
with times relative to now() so ages and windows are known exactly.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg2

from netops.api.auth import configured_fingerprint
from netops.config import FIELDS, Settings
from netops.monitor.facts import STABLE_PHASES

# What seed_stable inserts, so tests can compare counts with what the monitor reports.
STABLE_ROWS = {
    "cursus": 1, "campuses": 3, "projects": 4, "coalitions": 2, "achievements": 3,
    "campus_projects": 5, "campus_achievements": 4, "project_sessions": 3,
}


def cli_env(settings: Settings) -> dict[str, str]:
    """The environment that makes the CLI load exactly these settings (and no config file)."""
    env = {"NETOPS_CONFIG": ""}
    for f in FIELDS:
        if settings.sources.get(f.name) == "env":
            env[f.env] = str(getattr(settings, f.name))
    return env


def connect(dsn: str) -> Any:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    return conn


def seed_stable(dsn: str) -> None:
    """A small, consistent mirror: every reference resolves."""
    with connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO cursus (id, name, slug) VALUES (21, '42cursus', '42cursus')")
        cur.execute("""INSERT INTO campuses (id, name, active, public) VALUES
                       (1, 'Paris', true, true), (9, 'Lyon', true, true), (12, 'Berlin', true, true)""")
        cur.execute("""INSERT INTO projects (id, name, slug, parent_id) VALUES
                       (1, 'Libft', 'libft', NULL), (2, 'ft_printf', 'ft_printf', NULL),
                       (3, 'Exam Rank 02', 'exam-rank-02', NULL), (4, 'Exam 02 part', 'exam-02-part', 3)""")
        cur.execute("INSERT INTO coalitions (id, name) VALUES (1, 'The Order'), (2, 'The Alliance')")
        cur.execute("""INSERT INTO achievements (id, name, parent_id) VALUES
                       (1, 'Welcome', NULL), (2, 'Bookworm I', NULL), (3, 'Bookworm II', 2)""")
        cur.execute("""INSERT INTO campus_projects VALUES (1, 1), (1, 2), (9, 1), (12, 3), (12, 4)""")
        cur.execute("""INSERT INTO campus_achievements VALUES (1, 1), (1, 2), (9, 3), (12, 1)""")
        cur.execute("""INSERT INTO project_sessions (id, project_id, campus_id, cursus_id) VALUES
                       (10, 1, 1, 21), (11, 2, NULL, 21), (12, 3, 12, 21)""")


@contextlib.contextmanager
def live_sync(dsn: str) -> Iterator[None]:
    """Hold the sync advisory lock as a live `netops sync` does: without it, a `running` row is a
    dead run's and the monitor shows it interrupted (netops/monitor/facts.py, sync_lock_held)."""
    from netops.db.locks import SYNC as SYNC_LOCK_KEY

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (SYNC_LOCK_KEY,))
        conn.commit()
        yield
    finally:
        conn.close()


def insert_run(dsn: str, *, started_ago: float = 3600, duration: float = 10.0, failed: str | None = None,
               running: str | None = None, pages_total: int = 2, phases: Iterable[tuple[str, str]] = STABLE_PHASES,
               rows: dict[str, tuple[int, int, int]] | None = None) -> str:
    """One `netops sync`: a sync_runs row per phase, each `duration` seconds, back to back.

    `failed`/`running` name a phase that failed / is still running (later phases not started,
    as the real sync stops there). `rows` maps phase -> (inserted, updated, deleted).
    """
    run_id = str(uuid.uuid4())
    rows = rows or {}
    with connect(dsn) as conn, conn.cursor() as cur:
        t = started_ago
        for phase, table in phases:
            ins, upd, dele = rows.get(phase, (STABLE_ROWS.get(table, 1), 0, 0))
            if phase == running:
                cur.execute(
                    """INSERT INTO netops.sync_runs (run_id, phase, table_name, started_at, status, pages_done,
                                                     pages_total, rows_fetched, api_calls)
                       VALUES (%s, %s, %s, now() - make_interval(secs => %s), 'running', %s, %s, %s, %s)""",
                    (run_id, phase, table, t, pages_total // 2, pages_total, 100 * (pages_total // 2), pages_total // 2))
                break
            status = "failed" if phase == failed else "success"
            cur.execute(
                """INSERT INTO netops.sync_runs (run_id, phase, table_name, started_at, finished_at, status,
                       pages_done, pages_total, rows_fetched, rows_inserted, rows_updated, rows_deleted, api_calls, error)
                   VALUES (%s, %s, %s, now() - make_interval(secs => %s), now() - make_interval(secs => %s), %s,
                           %s, %s, %s, %s, %s, %s, %s, %s)""",
                (run_id, phase, table, t, max(t - duration, 0), status, pages_total, pages_total, ins + upd,
                 ins, upd, dele, pages_total, "HTTP 500 on page 2 after 3 attempts" if status == "failed" else None))
            t -= duration
            if phase == failed:
                break
    return run_id


def insert_calls(dsn: str, statuses: dict[int | None, int], *, ago: float = 600, component: str = "sync",
                 endpoint: str = "/v2/campus", hourly_remaining: int | None = None,
                 secondly_remaining: int | None = None) -> None:
    """api_calls rows, `ago` seconds old, one per attempt with the given HTTP statuses."""
    with connect(dsn) as conn, conn.cursor() as cur:
        for status, n in statuses.items():
            for _ in range(n):
                cur.execute(
                    """INSERT INTO netops.api_calls (at, component, endpoint, status, duration_ms,
                                                     secondly_remaining, hourly_remaining, error)
                       VALUES (now() - make_interval(secs => %s), %s, %s, %s, 120, %s, %s, %s)""",
                    (ago, component, endpoint, status, secondly_remaining, hourly_remaining,
                     None if status and status < 400 else f"HTTP {status}"))


def age_calls(dsn: str, status: int, seconds: float) -> None:
    """Move calls with `status` back in time (how a burst of 429s leaves the 1 h window)."""
    with connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE netops.api_calls SET at = at - make_interval(secs => %s) WHERE status = %s",
                    (seconds, status))


def insert_backlog(dsn: str, states: dict[str, int]) -> None:
    with connect(dsn) as conn, conn.cursor() as cur:
        n = 0
        for state, count in states.items():
            for _ in range(count):
                n += 1
                cur.execute(
                    """INSERT INTO netops.backlog_items (resource, entity_id, state, attempts, last_error, enqueued_at)
                       VALUES ('users', %s, %s, %s, %s, now() - interval '5 minutes')""",
                    (1000 + n, state, 3 if state == "failed" else 0, "HTTP 404" if state == "failed" else None))


def write_token(settings: Settings, ttl: int = 7000, secret_valid_days: float | None = 120) -> None:
    now = time.time()
    settings.token_file.parent.mkdir(parents=True, exist_ok=True)
    settings.token_file.write_text(json.dumps({
        "access_token": "x" * 64, "token_type": "bearer", "expires_at": int(now + ttl), "created_at": int(now),
        "secret_valid_until": int(now + secret_valid_days * 86400) if secret_valid_days is not None else None,
        # the token of this configuration (its API URL; its credentials' fingerprint when it has some)
        "api_url": settings.api_url, "client_id": settings.client_id or "u-test",
        "credential_fp": configured_fingerprint(settings),
    }))
    settings.token_file.chmod(0o600)


def healthy(dsn: str, settings: Settings) -> str:
    """A box in good shape: mirror loaded, a sync an hour ago, a valid token, calls at 200."""
    seed_stable(dsn)
    run_id = insert_run(dsn, started_ago=3600)
    insert_calls(dsn, {200: 20}, ago=900, hourly_remaining=1180, secondly_remaining=1)
    write_token(settings)
    return run_id


def test_seed_is_consistent(pg_dsn: str, settings_factory: Any) -> None:
    """The helpers themselves: the rows they claim to insert are there, one run of 8 phases."""
    healthy(pg_dsn, settings_factory())
    with connect(pg_dsn) as conn, conn.cursor() as cur:
        for table, n in STABLE_ROWS.items():
            cur.execute(f"SELECT count(*) FROM {table}")
            assert cur.fetchone()[0] == n, table
        cur.execute("SELECT count(DISTINCT run_id), count(*), bool_and(status = 'success') FROM netops.sync_runs")
        assert cur.fetchone() == (1, 8, True)
        cur.execute("SELECT count(*) FROM netops.api_calls WHERE at > now() - interval '1 hour'")
        assert cur.fetchone()[0] == 20
