"""`netops sync stable --if-changed` end to end: real PostgreSQL, the simulator over real HTTP.

Every call count here is the simulator's own (its per-endpoint stats), not netops' accounting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timezone
from typing import Any

import psycopg2
import pytest
from rich.console import Console

from netops.config import Settings
from netops.monitor.dashboard import print_once
from netops.monitor.evaluation import evaluate
from netops.monitor.metrics import collect_snapshot, prometheus_text
from netops.monitor.status import collect_status, render_text
from netops.pipeline.stable.phases import PHASES
from netops.pipeline.stable.sync import SyncReport, run_stable_sync

TABLES = [p.table.name for p in PHASES]
ALL_PHASES = [p.name for p in PHASES]


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], sim: Any) -> Settings:
    return settings_factory(NETOPS_API_URL=sim.url, NETOPS_CLIENT_ID=sim.client_id,
                            NETOPS_CLIENT_SECRET=sim.client_secret, NETOPS_RATE_PER_SECOND=500,
                            NETOPS_RATE_PER_HOUR=100000, NETOPS_MAX_ATTEMPTS=2)


def v2_calls(sim: Any) -> dict[str, int]:
    return {ep: n for ep, n in sim.stats()["by_endpoint"].items() if ep.startswith("/v2")}


def fingerprints(dsn: str) -> dict[str, tuple[int, str]]:
    """(rows, md5 of every row's text, in order) per stable table: any change shows."""
    out = {}
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for t in TABLES:
            cur.execute(f'SELECT count(*), md5(coalesce(string_agg(x::text, \'|\' ORDER BY x::text), \'\')) '
                        f'FROM "{t}" x')
            out[t] = cur.fetchone()
    return out


def counts(dsn: str) -> dict[str, int]:
    return {t: fp[0] for t, fp in fingerprints(dsn).items()}


def keys(dsn: str, table: str, pk: list[str]) -> list[list[int]]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT {", ".join(pk)} FROM "{table}" ORDER BY {", ".join(pk)}')
        return [list(r) for r in cur.fetchall()]


def mirrors_sim_exactly(dsn: str, sim: Any) -> None:
    expected = sim.expected()
    assert counts(dsn) == {t: expected[t] for t in TABLES}
    for table in TABLES:
        exp = sim.expected_table(table, values=False)
        assert keys(dsn, table, exp["primary_key"]) == exp["keys"], table


def pulled(report: SyncReport) -> list[str]:
    return [p.phase for p in report.phases]


def skipped(report: SyncReport) -> list[str]:
    return [p.phase for p in report.unchanged]


def full_then_reset(settings: Settings, sim: Any) -> int:
    """A full sync, then clean simulator stats; returns how many campuses are mirrored."""
    run_stable_sync(settings)
    sim.reset_stats()
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM campuses")
        return cur.fetchone()[0]


def test_no_change_costs_only_the_probe_calls_and_changes_nothing(settings: Settings, sim: Any) -> None:
    n_campuses = full_then_reset(settings, sim)
    before = fingerprints(settings.dsn)
    assert n_campuses == 54

    report = run_stable_sync(settings, if_changed=True)

    # cursus (its fetch is its probe) + one call each for campuses, projects, coalitions,
    # achievements; campus_projects and project_sessions follow projects, campus_achievements
    # follows achievements (it is derived from their campus names): 5 calls
    expected_calls = 1 + 4
    calls = v2_calls(sim)
    assert sum(calls.values()) == expected_calls == report.api_calls
    assert calls == {"/v2/cursus/:id": 1, "/v2/campus": 1, "/v2/cursus/:id/projects": 1, "/v2/coalitions": 1,
                     "/v2/achievements": 1}
    assert report.probe_calls == expected_calls - 1
    assert pulled(report) == ["cursus"]
    assert skipped(report) == ALL_PHASES[1:]
    assert fingerprints(settings.dsn) == before
    assert report.total_rows == sum(fp[0] for fp in before.values())
    verdicts = {r.resource: r for r in report.probe.results}  # type: ignore[union-attr]
    assert verdicts["projects"].phases == ["projects", "campus_projects", "project_sessions"]
    assert verdicts["campuses"].reason.startswith("count 54 = 54, max id")
    assert "newest updated_at" in verdicts["projects"].reason and "≠" not in verdicts["projects"].reason
    assert verdicts["achievements"].phases == ["achievements", "campus_achievements"]
    assert verdicts["achievements"].calls == 1 and not verdicts["achievements"].changed

    doc = report.as_dict()
    assert doc["skipped_phases"] == ALL_PHASES[1:] and doc["probe_calls"] == expected_calls - 1
    assert {r["resource"] for r in doc["probe"]["results"]} == {
        "cursus", "campuses", "projects", "coalitions", "achievements"}

    # bookkeeping: the run's rows carry every call; skipped phases are 'unchanged', not 'success'
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT phase, status, api_calls, rows_inserted + rows_updated + rows_deleted, probe "
                    "FROM netops.sync_runs WHERE run_id = %s", (report.run_id,))
        rows = sorted(cur.fetchall(), key=lambda r: ALL_PHASES.index(r[0]))  # FK order
        cur.execute("SELECT count(*) FROM netops.api_calls WHERE status = 200 AND endpoint LIKE '/v2%'")
        recorded = cur.fetchone()[0]
    assert [r[0] for r in rows] == ALL_PHASES
    assert [r[1] for r in rows] == ["success"] + ["unchanged"] * 7
    assert sum(r[2] for r in rows) == expected_calls
    assert all(r[3] == 0 for r in rows)
    assert all(r[4] for r in rows[1:]) and rows[0][4] is None
    floor_full = 23
    assert recorded == floor_full + expected_calls  # both runs' calls, each recorded once

    log = (settings.log_path / "nightly_stable_tables.log").read_text()
    assert "skipping 7 unchanged phase(s): campuses, projects" in log
    assert "Probe coalitions (coalitions): unchanged, skip — count 350 = 350" in log
    assert f"{expected_calls} API calls ({expected_calls - 1} probe + 1 pull" in log

    # the monitor: 'unchanged (probe)', and "last success" still means the last real pull
    status = collect_status(settings, settings.dsn, check_services=False)
    by_phase = {p["phase"]: p for p in status["phases"]}
    assert by_phase["coalitions"]["last_status"] == "unchanged"
    assert by_phase["cursus"]["last_status"] == "success"
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT status, finished_at FROM netops.sync_runs WHERE phase = 'coalitions' ORDER BY id")
        (first_status, pulled_at), (probe_status, probed_at) = cur.fetchall()
    assert (first_status, probe_status) == ("success", "unchanged") and pulled_at < probed_at
    # "last success" is the pull, not the probe: the sync_age alert still tracks real refreshes
    assert by_phase["coalitions"]["last_success_at"] == pulled_at.astimezone(timezone.utc).isoformat(
        timespec="seconds").replace("+00:00", "Z")
    assert status["last_sync"]["status"] == "success"
    text = render_text(evaluate(settings, settings.dsn, check_services=False))
    assert f"{'coalitions':<24}unchanged (probe)" in text
    console = Console(record=True, width=120)
    print_once(settings, settings.dsn, console)
    assert "unchanged (probe)" in console.export_text()
    prom = prometheus_text(collect_snapshot(settings, settings.dsn))
    assert 'netops_sync_last_run_unchanged{phase="coalitions"} 1.0' in prom
    assert 'netops_sync_last_run_unchanged{phase="cursus"} 0.0' in prom


def test_project_edit_pulls_projects_and_its_nested_phases_only(settings: Settings, sim: Any) -> None:
    full_then_reset(settings, sim)
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT project_id, array_agg(campus_id ORDER BY campus_id) FROM campus_projects "
                    "GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1")
        pid, campuses = cur.fetchone()
    before = fingerprints(settings.dsn)
    # an ordinary edit (moves updated_at) that also drops one campus link (nested)
    sim.modify("projects", pid, {"name": "Edited by the API", "campus": campuses[1:]}, touch=True)

    report = run_stable_sync(settings, if_changed=True)

    assert pulled(report) == ["cursus", "projects", "campus_projects", "project_sessions"]
    assert skipped(report) == ["campuses", "coalitions", "achievements", "campus_achievements"]
    by_phase = {p.phase: p for p in report.phases}
    assert by_phase["projects"].updated == 1 and by_phase["campus_projects"].deleted == 1
    assert "newest updated_at" in report.probe.of_phase("projects").reason  # type: ignore[union-attr]
    mirrors_sim_exactly(settings.dsn, sim)
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM projects WHERE id = %s", (pid,))
        assert cur.fetchone()[0] == "Edited by the API"
    after = fingerprints(settings.dsn)
    for t in ("campuses", "coalitions", "achievements", "campus_achievements"):
        assert after[t] == before[t], t


def test_coalition_delete_pulls_coalitions(settings: Settings, sim: Any) -> None:
    full_then_reset(settings, sim)
    gone = keys(settings.dsn, "coalitions", ["id"])[-1][0]
    sim.delete("coalitions", gone)

    report = run_stable_sync(settings, if_changed=True)

    assert pulled(report) == ["cursus", "coalitions"]
    assert {p.phase: p for p in report.phases}["coalitions"].deleted == 1
    assert report.probe.of_phase("coalitions").reason.startswith("count 349 ≠ mirror 350")  # type: ignore[union-attr]
    mirrors_sim_exactly(settings.dsn, sim)


def test_achievement_delete_pulls_phases_05_and_07(settings: Settings, sim: Any) -> None:
    full_then_reset(settings, sim)
    campus_id, achievement_id = keys(settings.dsn, "campus_achievements", ["campus_id", "achievement_id"])[-1]
    sim.delete("achievements", achievement_id)

    report = run_stable_sync(settings, if_changed=True)

    assert pulled(report) == ["cursus", "achievements", "campus_achievements"]
    verdict = report.probe.of_phase("campus_achievements")  # type: ignore[union-attr]
    assert verdict is not None and verdict.resource == "achievements" and verdict.changed
    assert report.api_calls == 5 + 11  # the probes, then the achievements pages: phase 07 reads them
    mirrors_sim_exactly(settings.dsn, sim)


def test_a_campus_list_edit_is_invisible_to_the_probe_and_the_full_pull_brings_it(
        settings: Settings, sim: Any) -> None:
    """Achievements have no updated_at: a link that leaves one achievement's campus list moves
    neither the count nor the highest id. The probe misses it (documented, like a coalition's
    score); the nightly full pull — or `--phase campus_achievements` — brings it."""
    full_then_reset(settings, sim)
    campus_id, achievement_id = keys(settings.dsn, "campus_achievements", ["campus_id", "achievement_id"])[0]
    sim.delete("campus_achievements", (campus_id, achievement_id))

    report = run_stable_sync(settings, if_changed=True)

    assert pulled(report) == ["cursus"]
    assert [campus_id, achievement_id] in keys(settings.dsn, "campus_achievements", ["campus_id", "achievement_id"])
    full = run_stable_sync(settings)
    assert {p.phase: p for p in full.phases}["campus_achievements"].deleted == 1
    mirrors_sim_exactly(settings.dsn, sim)


@pytest.mark.parametrize(("fault", "phase", "table", "pull"), [
    # both attempts (NETOPS_MAX_ATTEMPTS=2) of the probe fail; the pull after it does not
    ("500@/v2/coalitions,count=2", "coalitions", "coalitions", ["coalitions"]),
    # a garbled page (a row without an id), twice; campus_achievements follows its parent
    ("null_id@/v2/achievements,count=2", "achievements", "achievements",
     ["achievements", "campus_achievements"]),
    # campuses' probe fails: campuses pulled, and both link phases follow their pulled parent
    ("503@/v2/campus,count=2", "campuses", "campuses",
     ["campuses", "campus_projects", "campus_achievements"]),
])
def test_failed_probe_falls_back_to_the_full_pull(settings_factory: Callable[..., Settings], sim: Any, fault: str,
                                                  phase: str, table: str, pull: list[str]) -> None:
    settings = settings_factory(NETOPS_API_URL=sim.url, NETOPS_CLIENT_ID=sim.client_id,
                                NETOPS_CLIENT_SECRET=sim.client_secret, NETOPS_RATE_PER_SECOND=500,
                                NETOPS_RATE_PER_HOUR=100000, NETOPS_MAX_ATTEMPTS=2, NETOPS_MAX_CONCURRENCY=1)
    full_then_reset(settings, sim)
    # a change no probe can see (values of a count-only resource, updated_at untouched):
    # only a real pull brings it, so it proves the fallback pulled
    first = keys(settings.dsn, table, ["id"])[0][0]
    sim.modify(table, first, {"name": "only a pull sees this"}, touch=False)
    sim.add_fault(fault)

    report = run_stable_sync(settings, if_changed=True)

    assert report.ok and pulled(report) == ["cursus", *pull]
    verdict = report.probe.of_phase(phase)  # type: ignore[union-attr]
    assert verdict is not None and verdict.changed and verdict.error
    assert verdict.reason.startswith("probe failed, pulling in full")
    assert sim.list_faults()[0]["fired"] == 2  # both probe attempts hit it, the pull did not
    mirrors_sim_exactly(settings.dsn, sim)
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT name FROM {table} WHERE id = %s", (first,))
        assert cur.fetchone()[0] == "only a pull sees this"
    log = (settings.log_path / "nightly_stable_tables.log").read_text()
    assert f"Probe of {table} failed" in log and "falling back to its full pull" in log


def test_first_run_on_an_empty_mirror_pulls_everything(settings: Settings, sim: Any) -> None:
    report = run_stable_sync(settings, if_changed=True)

    assert pulled(report) == ALL_PHASES and skipped(report) == []
    # four index probes; campus_achievements follows the achievements probe
    assert report.probe_calls == 4
    assert report.probe.of_phase("campus_achievements").resource == "achievements"  # type: ignore[union-attr]
    assert sum(v2_calls(sim).values()) == report.api_calls == report.min_calls
    mirrors_sim_exactly(settings.dsn, sim)


def test_a_link_phase_follows_its_pulled_parent(settings: Settings, sim: Any) -> None:
    """A campus that disappears is pulled (count) and so are its link phases 06 and 07,
    although the projects' own probe sees nothing (the API does not touch them)."""
    full_then_reset(settings, sim)
    campus = keys(settings.dsn, "campuses", ["id"])[-1][0]
    sim.delete("campuses", campus)

    report = run_stable_sync(settings, if_changed=True)

    assert pulled(report) == ["cursus", "campuses", "campus_projects", "campus_achievements"]
    assert not report.probe.of_phase("projects").changed  # type: ignore[union-attr]
    mirrors_sim_exactly(settings.dsn, sim)


def test_cli_if_changed_json_and_help(settings: Settings, sim: Any) -> None:
    full_then_reset(settings, sim)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))},
        "NETOPS_CONFIG": "", "NETOPS_DSN": settings.dsn, "NETOPS_LOG_DIR": str(settings.log_path),
        "NETOPS_STATE_DIR": str(settings.state_path), "NETOPS_API_URL": sim.url,
        "NETOPS_CLIENT_ID": sim.client_id, "NETOPS_CLIENT_SECRET": sim.client_secret,
        "NETOPS_RATE_PER_SECOND": "500",
    }
    out = subprocess.run([sys.executable, "-m", "netops", "sync", "stable", "--if-changed", "--json"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] and doc["skipped_phases"] == ALL_PHASES[1:]
    assert [p["phase"] for p in doc["phases"]] == ["cursus"]
    assert doc["api_calls"] == sum(v2_calls(sim).values()) == 5

    out = subprocess.run([sys.executable, "-m", "netops", "sync", "stable", "--if-changed"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "unchanged (probe)" in out.stdout and "probe: 4 calls" in out.stdout

    out = subprocess.run([sys.executable, "-m", "netops", "sync", "stable", "--help"], env=env,
                         capture_output=True, text=True, timeout=60)
    text = " ".join(out.stdout.split())
    assert "--if-changed" in text and "nightly run a full pull" in text and "updated_at" in text


def test_nested_phases_behind_a_newer_projects_pull_are_pulled(settings: Settings, sim: Any) -> None:
    """`--phase projects` alone refreshes projects but not the lists nested in them: the projects
    probe then sees nothing new, yet campus_projects is behind — it must be pulled anyway."""
    full_then_reset(settings, sim)
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT project_id, array_agg(campus_id ORDER BY campus_id) FROM campus_projects "
                    "GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1")
        pid, campuses = cur.fetchone()
    sim.modify("projects", pid, {"campus": campuses[1:]}, touch=True)
    run_stable_sync(settings, ["projects"])

    report = run_stable_sync(settings, if_changed=True)

    assert report.probe is not None and not report.probe.of_phase("projects").changed  # type: ignore[union-attr]
    assert pulled(report) == ["cursus", "campus_projects", "project_sessions"]
    assert report.probe.forced == {"campus_projects": "projects was pulled after it",
                                   "project_sessions": "projects was pulled after it"}
    assert {p.phase: p for p in report.phases}["campus_projects"].deleted == 1
    mirrors_sim_exactly(settings.dsn, sim)
    # caught up: the next probe run skips them again
    assert pulled(run_stable_sync(settings, if_changed=True)) == ["cursus"]


def test_a_failed_phase_is_pulled_by_the_next_probe_run_not_hidden(settings: Settings, sim: Any) -> None:
    from netops.errors import SyncError

    full_then_reset(settings, sim)
    cid = keys(settings.dsn, "coalitions", ["id"])[0][0]
    sim.modify("coalitions", cid, {"score": 4242}, touch=False)   # invisible to the count/max-id probe
    sim.add_fault("500@/v2/coalitions")
    with pytest.raises(SyncError, match="coalitions"):
        run_stable_sync(settings)
    sim.clear_faults()

    report = run_stable_sync(settings, if_changed=True)

    assert report.probe is not None and not report.probe.of_phase("coalitions").changed  # type: ignore[union-attr]
    assert report.probe.forced.get("coalitions") == "its last pull failed"
    # the failed run refreshed campuses and projects but stopped before the link phases: behind too
    assert report.probe.forced.get("campus_projects") == "campuses was pulled after it"
    assert pulled(report) == ["cursus", "coalitions", "campus_projects", "campus_achievements",
                              "project_sessions"]
    mirrors_sim_exactly(settings.dsn, sim)
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT score FROM coalitions WHERE id = %s", (cid,))
        assert cur.fetchone()[0] == 4242
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM netops.sync_runs WHERE phase = 'coalitions' ORDER BY id DESC LIMIT 1")
        assert cur.fetchone()[0] == "success"
