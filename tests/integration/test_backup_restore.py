"""`netops db backup` / `netops db restore` end to end: real pg_dump/psql against the test server,
the simulator over HTTP for the churn between a backup and its restore.

- the round trip: every table of `public` and `netops` (mirror, queue with pending items, marks,
  sync history, alert state...) has the same row count and the same checksum after a restore;
- a restore resumes: changes the API made after the backup are caught by detect + run + reconcile,
  in fewer calls than the full re-pull of the backlog tables;
- refusals: a dump newer than the code, a wrong database, a populated one without --yes.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from netops.db.migrate import code_version
from netops.pipeline.backlog.detect import detect
from netops.pipeline.backlog.reconcile import reconcile
from netops.sim.server import SimServer
from tests.fixtures.pg import query, scratch_database
from tests.integration.test_backlog_sim import (  # noqa: F401
    assert_backlog_tables_equal_simulator,
    detect_and_run,
    env,
    live_sim,
    mirrored,
    settings,
    sim,
)


def digest(dsn: str) -> dict[str, tuple[int, str]]:
    """{schema.table: (rows, md5 of its rows in order)} for every table of public and netops."""
    tables = query(dsn, """SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
                           WHERE schemaname IN ('public', 'netops') ORDER BY 1""")
    out = {}
    for (table,) in tables:
        out[table] = query(dsn, f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
                                f"FROM {table} t")[0]
    return out


def netops(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netops", *args], env={**os.environ, **environ},
                          capture_output=True, text=True, timeout=300)


def _backup(environ: dict[str, str], *extra: str) -> Path:
    res = netops(environ, "db", "backup", *extra)
    assert res.returncode == 0, res.stderr
    path = Path(res.stdout.strip())
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0   # never world-readable
    return path


@pytest.mark.timeout(600)
def test_round_trip_then_a_restore_resumes_from_its_cursors(sim: SimServer, mirrored: object, pg_dsn: str,  # noqa: F811
                                                            env: dict[str, str], pg_server: object,  # noqa: F811
                                                            tmp_path: Path) -> None:
    settings_ = mirrored
    sim.reset_stats()
    assert detect_and_run(settings_, pg_dsn).failed == 0          # the backlog's full initial pull
    full_pull_calls = sim.stats()["total"]
    sim.churn(n=60)
    detect(settings_, pg_dsn)                                      # leaves pending items in the queue
    assert query(pg_dsn, "SELECT count(*) FROM netops.backlog_items WHERE state = 'pending'")[0][0] > 0
    before = digest(pg_dsn)
    assert before["netops.backlog_marks"][0] > 0 and before["netops.sync_runs"][0] > 0

    path = _backup(env)
    assert path.parent == tmp_path / "state" / "backups" and path.name.endswith(f"-v{code_version()}.dump")
    record = json.loads((tmp_path / "state" / "backup.json").read_text())
    assert record["last"]["ok"] and record["last_good"]["path"] == str(path)
    assert record["last_good"]["bytes"] == path.stat().st_size

    # into an empty database (a rebuilt box): identical, table by table
    with scratch_database(pg_server, "restored") as other:  # type: ignore[arg-type]
        res = netops({**env, "NETOPS_DSN": other}, "db", "restore", str(path), "--json")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["migrated"] == []
        assert digest(other) == before

    # the box carries on, then is restored over its own (newer) data: --yes is required
    s = detect_and_run(settings_, pg_dsn)
    assert s.failed == 0
    assert digest(pg_dsn) != before
    res = netops(env, "db", "restore", str(path))
    assert res.returncode != 0 and "--yes" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = netops(env, "db", "restore", str(path), "--yes")
    assert res.returncode == 0, res.stderr
    assert digest(pg_dsn) == before

    # churn between the backup and the restore: caught by the cursors' window and reconcile
    sim.churn(n=120)
    sim.reset_stats()
    assert detect_and_run(settings_, pg_dsn).failed == 0
    window_calls = sim.stats()["total"]
    assert all(r.complete for r in reconcile(settings_, pg_dsn))
    assert_backlog_tables_equal_simulator(sim, pg_dsn)
    # detect's window resumes from the restored marks: a fraction of the full pull (reconcile, which
    # finds the deletes, lists every id and is budgeted apart: BENCHMARKS.md "Restore vs full re-pull")
    assert window_calls < full_pull_calls / 2, (window_calls, full_pull_calls)


def test_a_dump_newer_than_the_code_is_refused(pg_dsn: str, env: dict[str, str], pg_server: object,  # noqa: F811
                                              tmp_path: Path) -> None:
    query(pg_dsn, "INSERT INTO netops.schema_migrations (version, name) VALUES ('999', 'from_the_future')")
    path = _backup(env, "--output", str(tmp_path / "future.dump"))
    assert path == tmp_path / "future.dump"
    with scratch_database(pg_server, "refused") as other:  # type: ignore[arg-type]
        res = netops({**env, "NETOPS_DSN": other}, "db", "restore", str(path))
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0 and len(lines) == 1
        assert "999" in lines[0] and code_version() in lines[0]
        assert query(other, "SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', 'netops')") == [(0,)]


def test_a_wrong_database_is_refused_and_left_as_it_was(pg_dsn: str, env: dict[str, str], pg_server: object,  # noqa: F811
                                                       tmp_path: Path) -> None:
    path = _backup(env)
    with scratch_database(pg_server, "theirs") as other:  # type: ignore[arg-type]
        query(other, "CREATE TABLE invoices (id int PRIMARY KEY); INSERT INTO invoices VALUES (1)")
        res = netops({**env, "NETOPS_DSN": other}, "db", "restore", str(path), "--yes")
        assert res.returncode != 0 and "NETOPS_DSN" in res.stderr and "no netops schema" in res.stderr
        assert query(other, "SELECT tablename FROM pg_tables WHERE schemaname IN ('public', 'netops')") == \
            [("invoices",)]
        # and a backup of it is refused too: nothing to back up, the failure recorded for status
        res = netops({**env, "NETOPS_DSN": other}, "db", "backup")
        assert res.returncode != 0 and "no netops schema" in res.stderr
    record = json.loads((tmp_path / "state" / "backup.json").read_text())
    assert record["last"]["ok"] is False and "no netops schema" in record["last"]["error"]
    assert record["last_good"]["path"] == str(path)


def test_retention_keeps_the_newest_dumps(pg_dsn: str, env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    backups = tmp_path / "dumps"
    old = [backups / f"netops-2026010{i}T000000Z-v001.dump" for i in range(1, 4)]
    backups.mkdir()
    for p in old:
        p.write_bytes(b"old")
    (backups / "keep-me.txt").write_text("not a dump")
    path = _backup({**env, "NETOPS_BACKUP_DIR": str(backups), "NETOPS_BACKUP_KEEP": "2"})
    left = sorted(p.name for p in backups.iterdir())
    assert left == sorted([old[2].name, path.name, "keep-me.txt"])
    assert not list(backups.glob(".*partial"))


def test_status_metrics_and_alerts_show_the_last_good_backup(pg_dsn: str, env: dict[str, str],  # noqa: F811
                                                            tmp_path: Path) -> None:
    def status() -> dict:
        res = netops(env, "status", "--json")
        return json.loads(res.stdout)

    before = status()
    assert before["backup"]["last_good_at"] is None and "backup_age" not in before["alerts"]["firing"]
    path = _backup(env)
    doc = status()
    assert doc["backup"]["last_good_bytes"] == path.stat().st_size and doc["backup"]["last_ok"] is True
    assert doc["backup"]["last_good_age_seconds"] < 120
    assert not {"backup_age", "backup_failed"} & set(doc["alerts"]["firing"])
    text = netops(env, "status").stdout
    assert f"({path})" in text and "backup      last good" in text
    prom = netops(env, "metrics", "export", "--format", "prometheus").stdout
    assert f"netops_backup_last_bytes {float(path.stat().st_size)}" in prom
    assert "netops_backup_last_failed 0.0" in prom
    assert 'netops_alert_firing{alert="backup_age",severity="warning"} 0.0' in prom

    # 27 hours later (the record aged by hand): backup_age fires
    record_file = tmp_path / "state" / "backup.json"
    record = json.loads(record_file.read_text())
    record["last_good"]["at"] = record["last"]["at"] = "2020-01-01T00:00:00+00:00"
    record_file.write_text(json.dumps(record))
    assert "backup_age" in status()["alerts"]["firing"]

    # a failed attempt (the database has no netops schema): backup_failed fires, naming the error
    res = netops({**env, "NETOPS_DSN": pg_dsn.replace("?", "_nope?", 1)}, "db", "backup")
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1
    doc = status()
    assert {"backup_age", "backup_failed"} <= set(doc["alerts"]["firing"])
    failed = next(p for p in doc["problems"] if p["check"] == "backup_failed")
    assert "netops db backup" in failed["message"]
    assert doc["backup"]["last_ok"] is False and doc["backup"]["last_good_path"] == str(path)
    assert "netops_backup_last_failed 1.0" in netops(env, "metrics", "export", "--format", "prometheus").stdout


@pytest.mark.timeout(600)
def test_bench_restore_is_registered_and_renders(tmp_path: Path) -> None:
    """`make bench ONLY=restore` reaches bench/restore.py (at --quick's tiny sizes here); every run
    ends equal to the simulator, the window costs less than the re-pull, and the section renders."""
    from bench.run import main

    out, results = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"
    assert main(["--quick", "--only", "restore", "--out", str(out), "--results", str(results)]) == 0
    r = json.loads(results.read_text())["restore"]
    assert [x["minutes"] for x in r["runs"]] == [1, 5]
    for x in r["runs"]:
        assert x["rows_mismatched"] == {} and x["window_calls"] < r["full_repull_calls"]
    assert "## Restore vs full re-pull" in out.read_text()
