"""Shared machinery for the reliability tests (issue 7): a pre-synced mirror per test, real CLI
subprocesses, and the two questions every case asks — is each table its old or its new state,
and are the invariants clean?

Why a template database: every case needs a mirror that already holds the simulator's pristine
state (stable tables and the backlog tables), so that a fault can be shown to leave a table *old*
rather than empty. Syncing it once per session and cloning it with `CREATE DATABASE ... TEMPLATE`
costs ~50 ms per test instead of a full sync.

The crash loop's size: `NETOPS_CRASH_RUNS=30` (env, works from any pytest invocation) or
`--crash-runs 30` (works when pytest is pointed at this directory, where this conftest is an
initial conftest). Default: a small count, so the normal suite stays fast.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from netops import catalog
from netops.config import Settings, load_settings
from netops.db.migrate import migrate
from netops.db.server import LocalPostgres
from tests.fixtures.pg import query, scratch_database

DEFAULT_CRASH_RUNS = 5

#: every mirrored table and its primary key (stable first, FK order; then backlog): the catalog's
MIRROR_TABLES: dict[str, tuple[str, ...]] = {s.name: s.pk for s in catalog.TABLES}
STABLE = [s.name for s in catalog.STABLE]
BACKLOG = [s.name for s in catalog.BACKLOG]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--crash-runs", type=int, default=None,
                     help="SIGKILL/rerun iterations of the crash test (default 5; env NETOPS_CRASH_RUNS)")


@pytest.fixture(scope="session")
def crash_runs(request: pytest.FixtureRequest) -> int:
    opt = None
    try:
        opt = request.config.getoption("--crash-runs")
    except ValueError:  # option not registered: this conftest was not an initial one
        opt = None
    if opt:
        return int(opt)
    return int(os.environ.get("NETOPS_CRASH_RUNS") or DEFAULT_CRASH_RUNS)


def base_env(sim: Any, dsn: str, tmp: Path, **extra: Any) -> dict[str, str]:
    """The environment of a `netops` child process: no config file, everything explicit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))}
    env.update({
        "NETOPS_CONFIG": "", "NETOPS_DSN": dsn, "NETOPS_LOG_DIR": str(tmp / "logs"),
        "NETOPS_STATE_DIR": str(tmp / "state"), "NETOPS_API_URL": sim.url,
        "NETOPS_CLIENT_ID": sim.client_id, "NETOPS_CLIENT_SECRET": sim.client_secret,
        "NETOPS_RATE_PER_SECOND": "100000", "NETOPS_RATE_PER_HOUR": "10000000",
        "NETOPS_HTTP_TIMEOUT": "5", "BACKLOG_RETRY_DELAY": "0.05", "BACKLOG_VISIBILITY_TIMEOUT": "1",
        "BACKLOG_DETECT_SETTLE_SECONDS": "0",   # the simulator commits every change at once
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


def settings_from(env: dict[str, str]) -> Settings:
    return load_settings(env={k: v for k, v in env.items() if k != "NETOPS_CONFIG"}, config_path="")


def netops_cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run `netops ARGS` as a real child process."""
    return subprocess.run([sys.executable, "-m", "netops", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The child's stderr, asserted to be exactly one non-empty line."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected a one-line error, got:\n{proc.stderr}"
    return lines[0]


def digest(dsn: str, tables: list[str] | None = None) -> dict[str, tuple[int, str]]:
    """(row count, md5 of every row in key order) per mirrored table: equal digests, equal tables."""
    out: dict[str, tuple[int, str]] = {}
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        for t in tables or list(MIRROR_TABLES):
            order = ", ".join(MIRROR_TABLES[t])
            cur.execute(f'SELECT count(*), md5(coalesce(string_agg(x::text, E\'\\n\' ORDER BY {order}), \'\')) '
                        f'FROM "{t}" x')
            n, h = cur.fetchone()
            out[t] = (int(n), str(h))
    conn.close()
    return out


def keys(dsn: str, table: str) -> list[list[Any]]:
    pk = ", ".join(MIRROR_TABLES[table])
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT {pk} FROM "{table}" ORDER BY {pk}')
        rows = [list(r) for r in cur.fetchall()]
    conn.close()
    return rows


def invariants(dsn: str) -> list[str]:
    """What `netops check` would flag (FK, NULL keys, duplicates), plus leftovers of a dead run:
    rows in any delta_* table. Empty list = clean."""
    from netops.db.quality import run_checks

    problems: list[str] = []
    conn = psycopg2.connect(dsn)
    try:
        doc = run_checks(conn, store=False)
        conn.commit()
        problems += [f"{f['check']} {f['table']}: {f['count']}" for f in doc["findings"]
                     if f["severity"] == "violation"]
        with conn.cursor() as cur:
            for t in MIRROR_TABLES:
                cur.execute(f'SELECT count(*) FROM "delta_{t}"')
                n = cur.fetchone()[0]
                if n:
                    problems.append(f"delta_{t} holds {n} rows after the run")
    finally:
        conn.close()
    return problems


def each_table_old_or_new(got: dict[str, tuple[int, str]], old: dict[str, tuple[int, str]],
                          new: dict[str, tuple[int, str]]) -> dict[str, str]:
    """Per table: 'old', 'new' (or 'old=new'); raises AssertionError for a table that is neither."""
    verdict: dict[str, str] = {}
    for t, state in got.items():
        if state == old[t] and state == new[t]:
            verdict[t] = "old=new"
        elif state == old[t]:
            verdict[t] = "old"
        elif state == new[t]:
            verdict[t] = "new"
        else:
            raise AssertionError(f"table {t} is neither its old {old[t]} nor its new {new[t]} state: {state}")
    return verdict


@dataclass
class Mirror:
    """A cloned, fully synced mirror database for one test."""

    dsn: str
    name: str


@pytest.fixture(scope="session")
def mirror_template(pg_server: LocalPostgres, sim_server: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database holding the pristine simulator fully mirrored (stable + backlog), built once."""
    from netops.pipeline.backlog.detect import detect
    from netops.pipeline.backlog.worker import run_backlog
    from netops.pipeline.stable.sync import run_stable_sync

    with scratch_database(pg_server, "rel_tmpl") as dsn:
        tmp = tmp_path_factory.mktemp("rel-template")
        migrate(dsn, tmp / "logs")
        sim_server.reset()
        settings = settings_from(base_env(sim_server, dsn, tmp))
        report = run_stable_sync(settings)
        assert report.ok
        for r in detect(settings, dsn):
            assert r.error is None, r.error
        summary = run_backlog(settings, dsn)
        assert summary.failed == 0
        # the template must equal the simulator, or nothing below proves anything
        expected = sim_server.expected()
        got = digest(dsn)
        assert {t: got[t][0] for t in MIRROR_TABLES} == {t: expected[t] for t in MIRROR_TABLES}
        query(dsn, "DELETE FROM netops.api_calls")  # a clean slate of bookkeeping
        yield dsn  # type: ignore[misc]


@pytest.fixture
def mirror(pg_server: LocalPostgres, mirror_template: str) -> Iterator[Mirror]:
    """A private copy of the synced mirror (CREATE DATABASE ... TEMPLATE: a file copy)."""
    with scratch_database(pg_server, "rel", template_dsn=mirror_template) as dsn:
        yield Mirror(dsn, dsn.split("?")[0].rsplit("/", 1)[-1])


def short_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


MirrorFactory = Callable[[], Mirror]
