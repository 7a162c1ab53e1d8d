"""Backlog done-when tests: real PostgreSQL, the simulator over real HTTP on 127.0.0.1, workers as
real subprocesses where a crash or a race is the point.

The simulator runs at backlog_scale 0.05 (~2,000 users, ~22,000 backlog rows) so a full initial pull
stays at ~225 calls; the stable tables are the real default sizes (synced by the stable sync).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from netops.api.client import ApiClient
from netops.config import Settings
from netops.db import queue
from netops.pipeline.backlog import resources
from netops.pipeline.backlog.detect import detect
from netops.pipeline.backlog.reconcile import reconcile
from netops.pipeline.backlog.worker import run_backlog
from netops.sim.server import SimConfig, SimServer
from tests.fixtures.pg import query

#: mirror table -> the simulator's resource (the catalog's backlog tables)
BACKLOG = {r.table: r.name for r in resources.RESOURCES}


@pytest.fixture(scope="module")
def live_sim() -> Iterator[SimServer]:
    srv = SimServer(SimConfig(port=0, backlog_scale=0.05, rate_per_second=100_000, rate_per_hour=10_000_000,
                              seed=42)).start()
    yield srv
    srv.stop()


@pytest.fixture
def sim(live_sim: SimServer) -> SimServer:
    live_sim.reset()
    return live_sim


@pytest.fixture
def env(sim: SimServer, pg_dsn: str, tmp_path: Path) -> dict[str, str]:
    return {
        "NETOPS_CONFIG": "",
        "NETOPS_DSN": pg_dsn,
        "NETOPS_LOG_DIR": str(tmp_path / "logs"),
        "NETOPS_STATE_DIR": str(tmp_path / "state"),
        "NETOPS_API_URL": sim.url,
        "NETOPS_CLIENT_ID": sim.client_id,
        "NETOPS_CLIENT_SECRET": sim.client_secret,
        "NETOPS_RATE_PER_SECOND": "100000",
        "NETOPS_RATE_PER_HOUR": "10000000",
        "BACKLOG_RETRY_DELAY": "0.05",
        "BACKLOG_VISIBILITY_TIMEOUT": "1",
        # the simulator commits every change at once: read changes the moment they happen
        "BACKLOG_DETECT_SETTLE_SECONDS": "0",
    }


@pytest.fixture
def settings(env: dict[str, str], settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(**{k: v for k, v in env.items() if k != "NETOPS_CONFIG"})


@pytest.fixture
def mirrored(settings: Settings, pg_dsn: str) -> Settings:
    """Stable tables synced (the backlog rows' parents)."""
    from netops.pipeline.stable.sync import run_stable_sync

    report = run_stable_sync(settings)
    assert all(p.status == "success" for p in report.phases)
    return settings


q = query


def assert_backlog_tables_equal_simulator(sim: SimServer, dsn: str) -> None:
    """Keys exactly as the simulator's /_sim/expected, and each row's updated_at and changing values
    exactly as the simulator holds them."""
    from netops.sim.control import SimControl

    ctl = SimControl(sim.url)
    for table, resource in BACKLOG.items():
        expected = ctl.expected_table(table, values=False)
        keys = [tuple(k) for k in expected["keys"]]
        got = q(dsn, f"SELECT id FROM {table} ORDER BY id")
        assert len(got) == len(keys), f"{table}: {len(got)} rows, simulator has {len(keys)}"
        assert got == keys, f"{table}: keys differ"
        with sim.lock:
            src = {rid: dict(r) for rid, r in sim.data.tables[resource].items()}
        # one value column each that churn moves; a table not named here is checked on updated_at alone
        col = {"users": "wallet", "project_users": "final_mark", "achievements_users": "achievement_id",
               "coalitions_users": "score", "cursus_users": "level"}.get(table)
        rows = q(dsn, f"SELECT id, (extract(epoch FROM updated_at) * 1000)::bigint, {col or 'NULL'} FROM {table}")
        for rid, updated_ms, value in rows:
            want = src[rid]
            assert updated_ms == want["updated_at"], f"{table} {rid}: updated_at differs"
            if col is not None:
                assert value == want[col], f"{table} {rid}: {col} {value!r} != {want[col]!r}"


def detect_and_run(settings: Settings, dsn: str) -> Any:
    detect(settings, dsn)
    return run_backlog(settings, dsn)


def netops_cmd(env: dict[str, str], *args: str, **kw: Any) -> subprocess.Popen:
    full = {**os.environ, **env}
    return subprocess.Popen([sys.executable, "-c", "from netops.cli import main; main()", *args],
                            env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


# ------------------------------------------------------------------------------------------ tests
def test_churn_then_detect_run_reconcile_equals_the_simulator_exactly(sim: SimServer, mirrored: Settings,
                                                                      pg_dsn: str) -> None:
    s = detect_and_run(mirrored, pg_dsn)
    assert s.failed == 0 and s.worker_calls == 0
    assert_backlog_tables_equal_simulator(sim, pg_dsn)

    users = sorted(sim.data.tables["users"])
    victim = users[10]
    child_counts = q(pg_dsn, "SELECT (SELECT count(*) FROM project_users WHERE user_id = %s) + "
                             "(SELECT count(*) FROM coalitions_users WHERE user_id = %s)", (victim, victim))[0][0]
    new_user = max(users) + 1000
    cu_silent = sorted(sim.data.tables["coalitions_users"])[5]
    applied = sim.churn(changes=[
        {"op": "update", "resource": "users", "id": users[3], "fields": {"wallet": 424242}},
        {"op": "insert", "resource": "users", "id": new_user},
        # a child of the brand-new user: loaded after its parent, never breaking the FK
        {"op": "insert", "resource": "coalitions_users", "fields": {"user_id": new_user}},
        {"op": "delete", "resource": "users", "id": victim},           # cascades in the API too
        # a value that changes without moving updated_at: only reconciliation can see it
        {"op": "update", "resource": "coalitions_users", "id": cu_silent, "fields": {"score": 777}, "touch": False},
        {"op": "update", "resource": "cursus_users", "id": sorted(sim.data.tables["cursus_users"])[3],
         "fields": {"level": 9.99}, "touch": False},
    ])
    assert len(applied) == 6 and child_counts > 0
    sim.churn(n=400)  # random inserts, updates and deletes over the four resources

    s = detect_and_run(mirrored, pg_dsn)
    assert s.failed == 0 and s.items > 300
    assert q(pg_dsn, "SELECT wallet FROM users WHERE id = %s", (users[3],)) == [(424242,)]
    assert q(pg_dsn, "SELECT count(*) FROM coalitions_users WHERE user_id = %s", (new_user,)) == [(1,)]
    # deletes are invisible to a change window: the victim is still here until reconcile
    assert q(pg_dsn, "SELECT count(*) FROM users WHERE id = %s", (victim,)) == [(1,)]

    results = reconcile(mirrored, pg_dsn)
    assert all(r.complete for r in results)
    assert sum(r.deleted for r in results) >= 1
    assert q(pg_dsn, "SELECT count(*) FROM users WHERE id = %s", (victim,)) == [(0,)]
    assert q(pg_dsn, "SELECT count(*) FROM project_users WHERE user_id = %s", (victim,)) == [(0,)]
    assert q(pg_dsn, "SELECT score FROM coalitions_users WHERE id = %s", (cu_silent,)) == [(777,)]
    assert_backlog_tables_equal_simulator(sim, pg_dsn)
    assert q(pg_dsn, "SELECT count(*) FROM netops.backlog_items WHERE state <> 'done'") == [(0,)]


def test_cursus_users_filled_by_detect_and_run_and_a_silent_level_change_caught_by_reconcile(
        sim: SimServer, mirrored: Settings, env: dict[str, str], pg_dsn: str) -> None:
    """Issue 15's proof: cursus_users (declared in the catalog, migration 010, the simulator's
    generator) is filled by `netops backlog detect` + `backlog run`; a `level` the API changes without
    moving updated_at (docs/api.md) stays wrong after detect + run, and `backlog reconcile` fixes it."""
    cmd = [sys.executable, "-m", "netops", "backlog"]
    full = {**os.environ, **env}
    for args in (["detect"], ["run", "--once"]):
        done = subprocess.run([*cmd, *args], env=full, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    expected = sim.expected_table("cursus_users", values=False)["keys"]
    assert len(expected) == len(sim.data.tables["users"]) > 0
    assert [list(r) for r in q(pg_dsn, "SELECT id FROM cursus_users ORDER BY id")] == expected
    cu = sorted(sim.data.tables["cursus_users"])[7]
    with sim.lock:
        row = sim.data.tables["cursus_users"][cu]
        user_id, old_level, stamp = row["_user_id"], row["level"], row["updated_at"]
    # nested `user` and `cursus` mapped to their ids
    assert q(pg_dsn, "SELECT user_id, cursus_id, level FROM cursus_users WHERE id = %s", (cu,)) == \
        [(user_id, 21, old_level)]

    sim.churn(changes=[{"op": "update", "resource": "cursus_users", "id": cu, "fields": {"level": 21.42},
                        "touch": False}])
    assert sim.data.tables["cursus_users"][cu]["updated_at"] == stamp   # silent: updated_at kept
    for args in (["detect"], ["run", "--once"]):
        done = subprocess.run([*cmd, *args], env=full, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert q(pg_dsn, "SELECT level FROM cursus_users WHERE id = %s", (cu,)) == [(old_level,)]  # unseen

    done = subprocess.run([*cmd, "reconcile", "--resource", "cursus_users", "--json"], env=full,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert q(pg_dsn, "SELECT level FROM cursus_users WHERE id = %s", (cu,)) == [(21.42,)]
    assert [(r["resource"], r["updated"], r["complete"]) for r in result] == [("cursus_users", 1, True)]
    assert_backlog_tables_equal_simulator(sim, pg_dsn)


def test_a_child_whose_user_is_missing_fetches_the_user_first(sim: SimServer, mirrored: Settings,
                                                              pg_dsn: str) -> None:
    detect_and_run(mirrored, pg_dsn)
    new_user = max(sim.data.tables["users"]) + 77
    sim.churn(changes=[{"op": "insert", "resource": "users", "id": new_user, "fields": {"login": "newbie"}},
                       {"op": "insert", "resource": "projects_users", "fields": {"user_id": new_user}}])
    sim.reset_stats()
    detect(mirrored, pg_dsn, ["projects_users"])           # the user's change is not detected
    s = run_backlog(mirrored, pg_dsn)
    assert s.failed == 0 and s.held >= 1
    assert s.worker_calls == 1                                 # one filter[id] fetch for the user
    assert sim.stats()["by_endpoint"].get("/v2/cursus/:id/users") == 1
    assert q(pg_dsn, "SELECT login FROM users WHERE id = %s", (new_user,)) == [("newbie",)]
    assert q(pg_dsn, "SELECT count(*) FROM project_users WHERE user_id = %s", (new_user,)) == [(1,)]
    assert q(pg_dsn, "SELECT reason, state FROM netops.backlog_items WHERE resource = 'users' AND entity_id = %s",
             (new_user,)) == [("parent", "done")]


def test_injected_errors_are_retried_then_failed_with_the_error_kept(sim: SimServer, mirrored: Settings,
                                                                     pg_dsn: str, settings_factory: Any,
                                                                     env: dict[str, str]) -> None:
    settings = settings_factory(**{**{k: v for k, v in env.items() if k != "NETOPS_CONFIG"},
                                   "NETOPS_MAX_ATTEMPTS": "1", "BACKLOG_MAX_RETRIES": "3"})
    ids = sorted(sim.data.tables["users"])[:5]
    c = psycopg2.connect(pg_dsn)
    with c, c.cursor() as cur:   # items without payload: the worker must fetch them
        queue.enqueue(cur, [queue.NewItem("users", i, payload=None, reason="manual") for i in ids])
    c.close()
    sim.add_fault("503@/v2/cursus/:id/users")
    s = run_backlog(settings, pg_dsn)
    assert s.failed == 5 and s.items == 0
    rows = q(pg_dsn, "SELECT state, attempts, last_error FROM netops.backlog_items")
    assert {(r[0], r[1]) for r in rows} == {("failed", 3)}
    assert all("503" in r[2] and "fetch failed" in r[2] for r in rows)
    assert sim.stats()["by_endpoint_status"]["/v2/cursus/:id/users"]["503"] == 3  # one call per attempt

    # a transient fault: the first attempt fails, the retry succeeds
    sim.clear_faults()
    q(pg_dsn, "DELETE FROM netops.backlog_items")
    c = psycopg2.connect(pg_dsn)
    with c, c.cursor() as cur:
        queue.enqueue(cur, [queue.NewItem("users", i, payload=None, reason="manual") for i in ids])
    c.close()
    sim.add_fault("500@/v2/cursus/:id/users,count=1")
    s = run_backlog(settings, pg_dsn)
    assert s.items == 5 and s.failed == 0 and s.retried == 5
    rows = q(pg_dsn, "SELECT state, attempts, last_error FROM netops.backlog_items")
    assert {(r[0], r[1]) for r in rows} == {("done", 2)} and len(rows) == 5
    assert all("500" in r[2] for r in rows)       # the failed first attempt's error is kept
    assert q(pg_dsn, "SELECT count(*) FROM users WHERE id = ANY(%s)", (ids,)) == [(5,)]
    out = subprocess.run([sys.executable, "-c", "from netops.cli import main; main()", "backlog", "status", "--json"],
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"done_today": 5' in out.stdout


def _wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(sim: SimServer, mirrored: Settings,
                                                                         pg_dsn: str, env: dict[str, str]) -> None:
    detect(mirrored, pg_dsn)
    total = q(pg_dsn, "SELECT count(*) FROM netops.backlog_items")[0][0]
    # Hold the project_users staging table: the worker commits its users batches, then blocks
    # inside the load transaction of its first project_users batch — a claimed, half-done batch.
    blocker = psycopg2.connect(pg_dsn)
    bcur = blocker.cursor()
    bcur.execute("LOCK TABLE delta_project_users IN ACCESS EXCLUSIVE MODE")
    proc = netops_cmd({**env, "BACKLOG_FETCH_BATCH_SIZE": "250"}, "backlog", "run", "--once")
    try:
        _wait_for(lambda: q(pg_dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                    "'netops-backlog' AND wait_event_type = 'Lock'")[0][0] == 1,
                  120, "the worker to block mid-batch")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        blocker.rollback()
        blocker.close()
    assert proc.returncode == -signal.SIGKILL
    processing = q(pg_dsn, "SELECT count(*), min(resource), max(resource) FROM netops.backlog_items "
                           "WHERE state = 'processing'")[0]
    assert processing[0] > 0 and processing[1] != "users"          # killed holding a claimed batch
    done_before = q(pg_dsn, "SELECT count(*) FROM netops.backlog_items WHERE state = 'done'")[0][0]
    assert done_before > 0                                           # earlier batches had committed
    assert q(pg_dsn, "SELECT count(*) FROM project_users")[0][0] == \
        q(pg_dsn, "SELECT count(*) FROM netops.backlog_items WHERE state = 'done' "
                  "AND resource = 'projects_users'")[0][0]          # nothing of the killed batch landed

    time.sleep(1.2)   # the visibility timeout (1 s) hands the dead worker's items over
    rerun = netops_cmd(env, "backlog", "run", "--once")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert q(pg_dsn, "SELECT state, count(*) FROM netops.backlog_items GROUP BY 1") == [("done", total)]
    assert q(pg_dsn, "SELECT count(*) FROM netops.backlog_items WHERE attempts = 2")[0][0] == processing[0]
    assert_backlog_tables_equal_simulator(sim, pg_dsn)


def test_two_workers_started_together_process_every_item_exactly_once(sim: SimServer, mirrored: Settings,
                                                                      pg_dsn: str, env: dict[str, str]) -> None:
    detect(mirrored, pg_dsn)
    total = q(pg_dsn, "SELECT count(*) FROM netops.backlog_items")[0][0]
    assert total > 20_000
    wenv = {**env, "BACKLOG_FETCH_BATCH_SIZE": "100", "BACKLOG_VISIBILITY_TIMEOUT": "600"}
    procs = [netops_cmd(wenv, "backlog", "run", "--once", "--json") for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    per_worker = q(pg_dsn, "SELECT worker, count(*) FROM netops.backlog_items GROUP BY 1")
    assert len(per_worker) == 2 and all(n > 0 for _, n in per_worker)
    assert sum(n for _, n in per_worker) == total
    assert q(pg_dsn, "SELECT state, attempts, count(*) FROM netops.backlog_items GROUP BY 1, 2") == \
        [("done", 1, total)]                                         # each claimed once, done once
    assert_backlog_tables_equal_simulator(sim, pg_dsn)


def test_5000_changed_rows_are_loaded_at_50_or_more_rows_per_api_call(sim: SimServer, mirrored: Settings,
                                                                     pg_dsn: str) -> None:
    detect_and_run(mirrored, pg_dsn)
    # one quiet cycle moves the marks off the seed data's timestamps (steady state)
    sim.churn(changes=[{"op": "update", "resource": r, "id": next(iter(sim.data.tables[r])), "fields": {}}
                       for r in BACKLOG.values()])
    detect_and_run(mirrored, pg_dsn)

    t = sim.data.tables
    changes = (
        [{"op": "update", "resource": "users", "id": i, "fields": {"wallet": 1}} for i in sorted(t["users"])[:1500]]
        + [{"op": "update", "resource": "projects_users", "id": i, "fields": {"final_mark": 100}}
           for i in sorted(t["projects_users"])[:1500]]
        + [{"op": "update", "resource": "coalitions_users", "id": i, "fields": {"score": 1}}
           for i in sorted(t["coalitions_users"])[:500]]
        + [{"op": "update", "resource": "cursus_users", "id": i, "fields": {"grade": "Member"}}
           for i in sorted(t["cursus_users"])[:500]]
        + [{"op": "insert", "resource": "achievements_users"} for _ in range(1000)]
    )
    assert len(sim.churn(changes=changes)) == 5000
    q(pg_dsn, "DELETE FROM netops.backlog_items")
    q(pg_dsn, "DELETE FROM netops.api_calls")
    s = detect_and_run(mirrored, pg_dsn)

    assert s.items == 5000 and s.failed == 0
    log = (mirrored.log_path / "backlog_worker.log").read_text()
    m = re.findall(r"Changed rows per API call: ([\d.]+) \(([\d,]+) rows / ([\d.]+) calls", log)
    logged_ratio, logged_rows, logged_calls = m[-1]
    assert int(logged_rows.replace(",", "")) == 5000
    # from the counts, independently of the log: every call the detector and the worker made
    calls = q(pg_dsn, "SELECT count(*) FROM netops.api_calls WHERE component IN ('detect', 'backlog')")[0][0]
    assert calls == round(float(logged_calls))
    assert 5000 / calls >= 50, f"{5000 / calls:.1f} rows per call ({calls} calls)"
    assert float(logged_ratio) >= 50
    print(f"\nchanged rows per API call: {logged_ratio} (5000 rows / {calls} calls)")
    print("\n".join(log.splitlines()[-6:]))


def test_reconcile_is_budgeted_and_resumes_where_it_stopped(sim: SimServer, mirrored: Settings, pg_dsn: str,
                                                           settings_factory: Any, env: dict[str, str]) -> None:
    detect_and_run(mirrored, pg_dsn)
    users = sorted(sim.data.tables["users"])
    early, late = users[5], users[-5]
    sim.delete("users", early)
    sim.delete("users", late)
    # 40 calls an hour x 25 % = 10 calls per hour for reconciliation (the HTTP client itself keeps
    # the generous test pacing, or it would wait out the hour the initial load already used)
    tight = settings_factory(**{**{k: v for k, v in env.items() if k != "NETOPS_CONFIG"},
                                "NETOPS_RATE_PER_HOUR": "40", "BACKLOG_RECONCILE_BUDGET_SHARE": "0.25"})

    def budgeted() -> list[Any]:
        client = ApiClient(mirrored, dsn=pg_dsn, component="reconcile")
        try:
            return reconcile(tight, pg_dsn, ["users"], client=client)
        finally:
            client.close()

    first = budgeted()[0]
    assert first.calls == 10 and not first.complete and first.cursor is not None
    assert q(pg_dsn, "SELECT count(*) FROM users WHERE id = %s", (early,)) == [(0,)]   # inside the window
    assert q(pg_dsn, "SELECT count(*) FROM users WHERE id = %s", (late,)) == [(1,)]    # not reached yet
    assert q(pg_dsn, "SELECT reconcile_cursor FROM netops.backlog_marks WHERE resource = 'users'") == \
        [(first.cursor,)]
    again = budgeted()[0]
    assert again.calls == 0                           # the hour's share is spent
    rest = reconcile(mirrored, pg_dsn, ["users"])[0]  # a larger budget resumes at the cursor
    assert rest.started_after_id == first.cursor and rest.complete
    assert rest.calls == 21 - 10
    assert q(pg_dsn, "SELECT count(*) FROM users WHERE id = %s", (late,)) == [(0,)]
    fin = q(pg_dsn, "SELECT reconcile_cursor, reconcile_finished_at FROM netops.backlog_marks "
                    "WHERE resource = 'users'")[0]
    assert fin[0] is None and fin[1] <= datetime.now(timezone.utc)


def test_a_detector_failing_mid_window_leaves_the_mark_and_a_rerun_queues_each_row_once(
        sim: SimServer, mirrored: Settings, pg_dsn: str, settings_factory: Any, env: dict[str, str]) -> None:
    flaky = settings_factory(**{**{k: v for k, v in env.items() if k != "NETOPS_CONFIG"},
                                "NETOPS_MAX_ATTEMPTS": "1"})
    # the size probe of a first fill (detect's estimate) and pages 1-2 answer, page 3 fails
    sim.add_fault("500@/v2/cursus/:id/users,after=3")
    results = {r.resource: r for r in detect(flaky, pg_dsn)}
    assert results["users"].error and "500" in results["users"].error
    assert all(results[r].error is None for r in ("projects_users", "achievements_users", "coalitions_users"))
    marks = dict(q(pg_dsn, "SELECT resource, high_water FROM netops.backlog_marks"))
    assert marks.get("users") is None and marks["coalitions_users"] is not None
    assert q(pg_dsn, "SELECT count(*) FROM netops.backlog_items WHERE resource = 'users'") == [(200,)]

    sim.clear_faults()
    detect(flaky, pg_dsn, ["users"])
    n = len(sim.data.tables["users"])
    assert q(pg_dsn, "SELECT count(*), count(DISTINCT entity_id) FROM netops.backlog_items "
                     "WHERE resource = 'users'") == [(n, n)]
    assert q(pg_dsn, "SELECT high_water IS NOT NULL FROM netops.backlog_marks WHERE resource = 'users'") == [(True,)]
    s = run_backlog(flaky, pg_dsn)
    assert s.failed == 0 and s.held == 0
    assert_backlog_tables_equal_simulator(sim, pg_dsn)


def test_refused_credentials_hand_claimed_items_back_untouched(sim: SimServer, pg_dsn: str, settings_factory: Any,
                                                               env: dict[str, str]) -> None:
    from netops.errors import AuthError

    bad = settings_factory(**{**{k: v for k, v in env.items() if k != "NETOPS_CONFIG"},
                              "NETOPS_CLIENT_SECRET": "not-the-secret"})
    c = psycopg2.connect(pg_dsn)
    with c, c.cursor() as cur:
        queue.enqueue(cur, [queue.NewItem("users", i, payload=None, reason="manual") for i in (1, 2, 3)])
    c.close()
    with pytest.raises(AuthError):
        run_backlog(bad, pg_dsn)
    assert q(pg_dsn, "SELECT state, attempts, count(*) FROM netops.backlog_items GROUP BY 1, 2") == [("pending", 0, 3)]


def test_a_row_stamped_in_the_future_cannot_throw_the_mark_past_real_changes(sim: SimServer, mirrored: Settings,
                                                                             pg_dsn: str) -> None:
    uid = sorted(sim.data.tables["users"])[0]
    sim.modify("users", uid, {"updated_at": "2031-01-01T00:00:00.000Z"}, touch=False)
    detect_and_run(mirrored, pg_dsn)
    mark = q(pg_dsn, "SELECT high_water FROM netops.backlog_marks WHERE resource = 'users'")[0][0]
    assert mark <= datetime.now(timezone.utc)
    other = sorted(sim.data.tables["users"])[1]
    sim.modify("users", other, {"wallet": 31337})          # an ordinary change, stamped now
    detect(mirrored, pg_dsn, ["users"])
    run_backlog(mirrored, pg_dsn)
    assert q(pg_dsn, "SELECT wallet FROM users WHERE id = %s", (other,)) == [(31337,)]


def test_reconcile_refuses_to_prune_most_of_an_interval_unless_told(sim: SimServer, mirrored: Settings,
                                                                   pg_dsn: str, settings_factory: Any,
                                                                   env: dict[str, str]) -> None:
    detect_and_run(mirrored, pg_dsn)
    users = sorted(sim.data.tables["users"])
    block = users[100:400]                  # 300 consecutive users vanish (an API having a bad day?)
    for uid in block:
        sim.delete("users", uid)
    before = q(pg_dsn, "SELECT count(*) FROM users")[0][0]
    res = reconcile(mirrored, pg_dsn, ["users"])[0]
    assert res.error and "refusing to prune" in res.error and not res.complete
    assert q(pg_dsn, "SELECT count(*) FROM users")[0][0] == before                  # nothing of it pruned
    assert res.cursor is not None and res.cursor < block[0]                          # resumes before the gap
    sure = settings_factory(**{**{k: v for k, v in env.items() if k != "NETOPS_CONFIG"},
                               "NETOPS_MAX_PRUNE_RATIO": "1"})
    res = reconcile(sure, pg_dsn, ["users"])[0]
    assert res.error is None and res.complete and res.deleted == len(block)
    assert q(pg_dsn, "SELECT count(*) FROM users")[0][0] == before - len(block)


def _settle_past_this_second() -> None:
    """The mark follows the API's Date header, which has whole seconds: step into the next second
    so the window just read ends after every change made so far."""
    time.sleep(1.05 - (time.time() % 1.0))


def test_back_to_back_windows_read_each_change_once(sim: SimServer, mirrored: Settings, pg_dsn: str) -> None:
    detect_and_run(mirrored, pg_dsn)
    users = sorted(sim.data.tables["users"])
    for burst in (users[:300], users[300:600]):
        sim.churn(changes=[{"op": "update", "resource": "users", "id": u, "fields": {"wallet": 5}} for u in burst])
        _settle_past_this_second()
        got = {r.resource: r for r in detect(mirrored, pg_dsn)}
        # the previous burst is not read again: the window starts where the last one ended
        assert got["users"].seen == 300 and got["users"].enqueued == 300, got["users"]
        assert got["users"].calls == 3
        assert all(got[r].seen == 0 and got[r].calls == 1 for r in got if r != "users")
    assert run_backlog(mirrored, pg_dsn).failed == 0
    assert q(pg_dsn, "SELECT count(*) FROM users WHERE id = ANY(%s) AND wallet = 5", (users[:600],)) == [(600,)]


def test_a_change_younger_than_the_settle_delay_waits_for_a_later_window(sim: SimServer, mirrored: Settings,
                                                                         pg_dsn: str) -> None:
    detect_and_run(mirrored, pg_dsn)
    uid = sorted(sim.data.tables["users"])[7]
    sim.modify("users", uid, {"wallet": 4242})
    first = detect(mirrored, pg_dsn, ["users"], settle_seconds=3)[0]
    assert first.enqueued == 0                       # too young: it could still be committing
    mark = q(pg_dsn, "SELECT high_water FROM netops.backlog_marks WHERE resource = 'users'")[0][0]
    assert mark <= datetime.now(timezone.utc) - timedelta(seconds=3)
    time.sleep(3.2)
    later = detect(mirrored, pg_dsn, ["users"], settle_seconds=3)[0]
    assert later.enqueued == 1 and later.calls == 1
    run_backlog(mirrored, pg_dsn)
    assert q(pg_dsn, "SELECT wallet FROM users WHERE id = %s", (uid,)) == [(4242,)]


def test_reconcile_turns_an_upsert_a_worker_holds_into_a_delete(sim: SimServer, mirrored: Settings,
                                                                pg_dsn: str) -> None:
    """A worker holding a (stale) upsert for a row reconcile deletes must not bring the row back."""
    detect_and_run(mirrored, pg_dsn)
    uid = sorted(sim.data.tables["users"])[20]
    payload = {"id": uid, "login": "ghost", "updated_at": "2026-01-01T00:00:00.000Z"}
    c = psycopg2.connect(pg_dsn)
    with c, c.cursor() as cur:
        queue.enqueue(cur, [queue.NewItem("users", uid, payload=payload, source_updated_at=payload["updated_at"])])
        held = queue.claim(cur, "ghost-worker", 10, 600)   # a worker holds it, mid-batch
    c.close()
    assert [it.entity_id for it in held] == [uid]
    sim.delete("users", uid)

    reconcile(mirrored, pg_dsn, ["users"])
    assert q(pg_dsn, "SELECT count(*) FROM users WHERE id = %s", (uid,)) == [(0,)]
    assert q(pg_dsn, "SELECT action, payload IS NULL, state FROM netops.backlog_items WHERE entity_id = %s "
                     "AND resource = 'users' AND id = %s", (uid, held[0].id)) == [("delete", True, "processing")]

    # the worker's batch lands after reconcile committed: its upsert brings the row back...
    c = psycopg2.connect(pg_dsn)
    with c, c.cursor() as cur:
        cur.execute("INSERT INTO users (id, login) VALUES (%s, 'ghost')", (uid,))
        counts = queue.finish(cur, "ghost-worker", held, max_retries=3, retry_delay=0)
    c.close()
    assert counts["requeued"] == 1                           # ...but its item went back to pending
    run_backlog(mirrored, pg_dsn)                            # and the next batch deletes the row
    assert q(pg_dsn, "SELECT count(*) FROM users WHERE id = %s", (uid,)) == [(0,)]
    assert q(pg_dsn, "SELECT state, outcome FROM netops.backlog_items WHERE id = %s", (held[0].id,)) == \
        [("done", "deleted")]


class _OnePageClient:
    """Answers every keyset page with `rows` (then nothing): a stand-in for the API where the
    simulator cannot produce the payload (a string `updated_at` that does not parse)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows, self.calls = rows, 0
        self.recorder = type("R", (), {"flush": lambda self: None})()

    def fork(self) -> _OnePageClient:
        return self

    def request(self, path: str, params: dict[str, Any], validate: Any = None) -> Any:
        self.calls += 1
        lo = int(params["range[id]"].split(",")[0])
        rows = [r for r in self.rows if r["id"] >= lo]
        resp = type("Resp", (), {})()
        resp._netops_json = rows
        resp.headers = {"X-Total": str(len(rows)), "X-Per-Page": "100", "Date": "Sun, 29 Nov 2026 05:00:00 GMT"}
        return resp


def test_a_row_with_an_unreadable_updated_at_is_queued_and_failed_visibly(sim: SimServer, mirrored: Settings,
                                                                          pg_dsn: str) -> None:
    good = {"id": 1, "login": "a", "updated_at": "2026-11-29T04:00:00.000Z"}
    bad = {"id": 2, "login": "b", "updated_at": "yesterday-ish"}
    res = detect(mirrored, pg_dsn, ["users"], client=_OnePageClient([good, bad]))[0]
    assert res.error is None and res.enqueued == 2 and res.invalid == 0
    run_backlog(mirrored, pg_dsn)
    rows = dict((r[0], r[1:]) for r in q(pg_dsn, "SELECT entity_id, state, last_error FROM netops.backlog_items "
                                                 "WHERE resource = 'users'"))
    assert rows[1][0] == "done"
    assert rows[2][0] == "failed" and "updated_at" in rows[2][1], rows[2]


def test_reconcile_share_is_of_every_keys_budget(settings_factory: Any, pg_dsn: str) -> None:
    """Two keys, two budgets: reconciliation's client spreads its calls over both, so its share
    (25 %) is of their sum, 2 × 1,000/h, not of one key's NETOPS_RATE_PER_HOUR."""
    from netops.pipeline.backlog.reconcile import budget_for

    two = settings_factory(NETOPS_CLIENT_ID="u-one", NETOPS_CLIENT_SECRET="s-one", NETOPS_CLIENT_ID_2="u-two",
                           NETOPS_CLIENT_SECRET_2="s-two", NETOPS_RATE_PER_HOUR=1000,
                           BACKLOG_RECONCILE_BUDGET_SHARE=0.25)
    query(pg_dsn, "DELETE FROM netops.api_calls WHERE component = 'reconcile'")
    assert budget_for(two, pg_dsn) == (500, 500)
