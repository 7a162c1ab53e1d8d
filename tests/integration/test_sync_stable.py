"""The stable sync end to end: real PostgreSQL, the simulator over real HTTP (issue 2's done-when)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from netops.config import Settings
from netops.db import locks
from netops.errors import SyncError
from netops.pipeline.stable.phases import PHASES
from netops.pipeline.stable.sync import SyncBusy, run_stable_sync

TABLES = [p.table.name for p in PHASES]


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], sim: Any) -> Settings:
    return settings_factory(NETOPS_API_URL=sim.url, NETOPS_CLIENT_ID=sim.client_id,
                            NETOPS_CLIENT_SECRET=sim.client_secret, NETOPS_RATE_PER_SECOND=500,
                            NETOPS_RATE_PER_HOUR=100000)


def counts(dsn: str) -> dict[str, int]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        out = {}
        for t in TABLES:
            cur.execute(f'SELECT count(*) FROM "{t}"')
            out[t] = cur.fetchone()[0]
        return out


def keys(dsn: str, table: str, pk: list[str]) -> list[list[int]]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT {", ".join(pk)} FROM "{table}" ORDER BY {", ".join(pk)}')
        return [list(r) for r in cur.fetchall()]


def test_full_sync_mirrors_the_simulator_exactly_with_minimum_calls(settings: Settings, sim: Any) -> None:
    report = run_stable_sync(settings)
    expected = sim.expected()
    assert counts(settings.dsn) == {t: expected[t] for t in TABLES}
    for table in TABLES:
        exp = sim.expected_table(table, values=False)
        assert keys(settings.dsn, table, exp["primary_key"]) == exp["keys"], table

    # calls: exactly sum(ceil(rows/100)) over the five listings, + 1 for the single cursus object;
    # campus_projects, project_sessions (nested in projects) and campus_achievements (the
    # achievements' campus names) cost nothing: 1 + 1 + 6 + 4 + 11 = 23
    floor = 1 + sum(math.ceil(expected[t] / 100) for t in ("campuses", "projects", "coalitions", "achievements"))
    assert floor == 23
    assert report.api_calls == floor == report.min_calls
    by_endpoint = {ep: n for ep, n in sim.stats()["by_endpoint"].items() if ep.startswith("/v2")}
    assert sum(by_endpoint.values()) == floor
    assert "/v2/campus/:id/achievements" not in by_endpoint
    p07 = next(p for p in report.phases if p.table == "campus_achievements")
    assert p07.api_calls == 0 and p07.rows == expected["campus_achievements"]
    log = (settings.log_path / "nightly_stable_tables.log").read_text()
    assert f"✅ All 8 phases complete, {sum(expected[t] for t in TABLES):,} total rows" in log
    assert "Phase 2: Fetching campuses... 54 rows" in log
    assert f"{floor} API calls (minimum for this data: {floor})" in log

    # bookkeeping: one success row per phase, api_calls recorded per attempt
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT phase, status, rows_inserted FROM netops.sync_runs ORDER BY id")
        runs = cur.fetchall()
        cur.execute("SELECT count(*), count(*) FILTER (WHERE status = 200) FROM netops.api_calls "
                    "WHERE endpoint LIKE '/v2%'")
        assert cur.fetchone() == (floor, floor)
        # the one token request is counted too (a refused one must reach the 401 alert)
        cur.execute("SELECT method, status FROM netops.api_calls WHERE endpoint = '/oauth/token'")
        assert cur.fetchall() == [("POST", 200)]
    assert [r[0] for r in runs] == [p.name for p in PHASES]
    assert all(r[1] == "success" for r in runs)


def _plain(value: Any) -> Any:
    """A PostgreSQL value as the simulator's expected rows write it (timestamps as UTC ...Z)."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value


def test_every_stable_table_holds_the_simulators_values(settings: Settings, sim: Any) -> None:
    """All eight tables, every mirrored column of every row, against the simulator's own list."""
    run_stable_sync(settings)
    for table in TABLES:
        exp = sim.expected_table(table)
        cols = list(exp["rows"][0])
        pk = exp["primary_key"]
        with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
            cur.execute(f'SELECT {", ".join(cols)} FROM "{table}" ORDER BY {", ".join(pk)}')
            got = [dict(zip(cols, map(_plain, r), strict=True)) for r in cur.fetchall()]
        exp_rows = sorted(exp["rows"], key=lambda r: tuple(r[k] for k in pk))
        assert got == exp_rows, table


def test_values_match_the_simulator(settings: Settings, sim: Any) -> None:
    run_stable_sync(settings, ["cursus", "campuses"])
    exp = sim.expected_table("campuses")
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name, active, public, language_id, city FROM campuses ORDER BY id")
        got = {r[0]: r[1:] for r in cur.fetchall()}
    for row in exp["rows"]:
        assert got[row["id"]] == (row["name"], row["active"], row["public"], row["language_id"], row["city"])


def test_second_sync_changes_nothing_then_picks_up_changes_and_prunes_with_cascade(
        settings: Settings, sim: Any) -> None:
    run_stable_sync(settings)
    again = run_stable_sync(settings)
    assert all((p.inserted, p.updated, p.deleted) == (0, 0, 0) for p in again.phases)

    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT project_id, count(*) FROM project_sessions GROUP BY 1 ORDER BY 2 DESC LIMIT 1")
        project_id, sessions = cur.fetchone()
        cur.execute("SELECT count(*) FROM campus_projects WHERE project_id = %s", (project_id,))
        links = cur.fetchone()[0]
        cur.execute("SELECT id FROM coalitions ORDER BY id LIMIT 1")
        coalition_id = cur.fetchone()[0]
    assert sessions > 0 and links > 0
    sim.delete("projects", project_id)
    sim.modify("coalitions", coalition_id, {"name": "Renamed by the API"})
    report = run_stable_sync(settings)
    by_table = {p.table: p for p in report.phases}
    assert by_table["projects"].deleted == 1
    assert by_table["coalitions"].updated == 1
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM project_sessions WHERE project_id = %s", (project_id,))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM campus_projects WHERE project_id = %s", (project_id,))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT name FROM coalitions WHERE id = %s", (coalition_id,))
        assert cur.fetchone()[0] == "Renamed by the API"
    assert counts(settings.dsn) == {t: sim.expected()[t] for t in TABLES}


def test_token_revoked_mid_run_is_refreshed_and_run_completes(settings: Settings, sim: Any) -> None:
    sim.add_fault("token_revoked@/v2/achievements,count=1,after=3")
    report = run_stable_sync(settings)
    assert report.ok
    assert counts(settings.dsn)["achievements"] == sim.expected()["achievements"]
    assert sim.stats()["by_endpoint"]["/oauth/token"] == 2
    token_log = (settings.log_path / "42_token_refresh.log").read_text()
    assert "401" in token_log and token_log.count("Token refreshed, new TTL") == 2


def test_token_below_min_ttl_is_refreshed_before_use(settings_factory: Callable[..., Settings], sim: Any) -> None:
    sim.configure(token_ttl=1800)  # every new token is already under the 1 h minimum
    s = settings_factory(NETOPS_API_URL=sim.url, NETOPS_CLIENT_ID=sim.client_id,
                         NETOPS_CLIENT_SECRET=sim.client_secret, NETOPS_TOKEN_MIN_TTL=0)
    run_stable_sync(s, ["cursus"])
    s2 = s.replace(token_min_ttl=3600)
    run_stable_sync(s2, ["cursus"])
    assert sim.stats()["by_endpoint"]["/oauth/token"] == 2


def test_429s_are_honoured_and_the_run_completes(settings: Settings, sim: Any) -> None:
    sim.add_fault("429@/v2/coalitions,count=2,seconds=1")
    report = run_stable_sync(settings, ["coalitions"])
    assert report.ok and counts(settings.dsn)["coalitions"] == sim.expected()["coalitions"]
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM netops.api_calls WHERE status = 429")
        assert cur.fetchone()[0] == 2
    # the waits honoured Retry-After: the second try came >= 1 s after the 429
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT at, status FROM netops.api_calls ORDER BY at")
        rows = cur.fetchall()
    first_429 = next(at for at, st in rows if st == 429)
    after = [at for at, st in rows if st == 200 and at > first_429]
    assert after and (after[0] - first_429).total_seconds() >= 1.0


def test_server_errors_are_retried(settings: Settings, sim: Any) -> None:
    sim.add_fault("503@/v2/achievements,count=2")
    report = run_stable_sync(settings, ["achievements"])
    assert report.ok and report.api_calls == report.min_calls + 2


def test_failing_phase_leaves_its_table_unchanged(settings: Settings, sim: Any) -> None:
    run_stable_sync(settings)
    before = keys(settings.dsn, "achievements", ["id", "name"])
    some_id = before[0][0]
    sim.modify("achievements", some_id, {"name": "should not land"})
    sim.delete("achievements", before[1][0])
    sim.add_fault("500@/v2/achievements,after=4")  # page 5 onwards always fails
    with pytest.raises(SyncError) as exc:
        run_stable_sync(settings)
    msg = str(exc.value.message)
    assert "achievements" in msg and "/v2/achievements" in msg and "HTTP 500" in msg and "\n" not in msg
    assert keys(settings.dsn, "achievements", ["id", "name"]) == before
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT status, error FROM netops.sync_runs WHERE phase = 'achievements' "
                    "ORDER BY started_at DESC LIMIT 1")
        status, error = cur.fetchone()
        cur.execute("SELECT count(*) FROM netops.sync_runs WHERE phase = 'campus_projects'")
        later_runs = cur.fetchone()[0]
    assert status == "failed" and "HTTP 500" in error
    assert later_runs == 1  # only the first, successful run: later phases did not run after the failure


def test_schema_drift_wrong_type_fails_clearly_and_keeps_table(settings: Settings, sim: Any) -> None:
    run_stable_sync(settings, ["cursus", "campuses"])
    sim.add_fault("wrong_type@/v2/campus,field=users_count")
    with pytest.raises(SyncError, match="users_count"):
        run_stable_sync(settings, ["campuses"])
    assert counts(settings.dsn)["campuses"] == 54


def test_concurrent_sync_exits_at_once(settings: Settings) -> None:
    holder = psycopg2.connect(settings.dsn)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (locks.SYNC,))
        with pytest.raises(SyncBusy, match="another `netops sync` is running"):
            run_stable_sync(settings)
    finally:
        holder.close()


def test_cli_sync_json_and_secret_never_logged(settings: Settings, sim: Any, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))},
        "NETOPS_CONFIG": "", "NETOPS_DSN": settings.dsn, "NETOPS_LOG_DIR": str(settings.log_path),
        "NETOPS_STATE_DIR": str(settings.state_path), "NETOPS_API_URL": sim.url,
        "NETOPS_CLIENT_ID": sim.client_id, "NETOPS_CLIENT_SECRET": sim.client_secret,
        "NETOPS_RATE_PER_SECOND": "500",
    }
    out = subprocess.run([sys.executable, "-m", "netops", "sync", "stable", "--json"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert '"ok": true' in out.stdout
    token = __import__("json").loads(settings.token_file.read_text())["access_token"]
    assert oct(settings.token_file.stat().st_mode & 0o777) == "0o600"
    for path in settings.log_path.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert sim.client_secret not in text, path
            assert token not in text, path
    assert sim.client_secret not in out.stdout + out.stderr and token not in out.stdout + out.stderr
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM netops.api_calls WHERE error LIKE %s OR endpoint LIKE %s",
                    (f"%{token}%", f"%{token}%"))
        assert cur.fetchone()[0] == 0

    # a bad credential: one line naming the cause, non-zero exit, nothing written to the tables
    bad = {**env, "NETOPS_CLIENT_SECRET": "wrong", "NETOPS_STATE_DIR": str(tmp_path / "other-state")}
    out = subprocess.run([sys.executable, "-m", "netops", "sync", "stable"], env=bad,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "credentials refused" in out.stderr and "NETOPS_CLIENT_SECRET" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
