"""A second `netops sync` while one runs exits at once with a clear message (issue 7, item 4),
proven with two real subprocesses against one database."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import psycopg2

from tests.reliability.conftest import STABLE, Mirror, base_env, invariants, keys, netops_cli, one_line_error


def _running_phase(dsn: str) -> str | None:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT phase FROM netops.sync_runs WHERE status = 'running' LIMIT 1")
        row = cur.fetchone()
    conn.close()
    return row[0] if row else None


def test_second_sync_exits_at_once_while_first_completes(sim: Any, mirror: Mirror, tmp_path: Any) -> None:
    sim.configure(latency=0.05)
    sim.delete("coalitions", sim.expected_table("coalitions", values=False)["keys"][0][0])
    env = base_env(sim, mirror.dsn, tmp_path, NETOPS_MAX_CONCURRENCY=2)
    before = _run_counts(mirror.dsn)
    first = subprocess.Popen([sys.executable, "-m", "netops", "sync", "stable"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while _running_phase(mirror.dsn) is None:
            assert first.poll() is None and time.monotonic() < deadline, "first sync never started a phase"
            time.sleep(0.05)
        t0 = time.monotonic()
        second = netops_cli(env, "sync", "stable", timeout=30)
        took = time.monotonic() - t0
        still_running = first.poll() is None
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert still_running, "the first sync ended before the second started: the race proved nothing"
    assert second.returncode == 75, (second.returncode, second.stderr)
    line = one_line_error(second)
    assert "another `netops sync` is running" in line and "did nothing" in line, line
    assert took < 5, f"the second sync waited {took:.1f}s instead of exiting at once"
    assert first.returncode == 0, err
    assert {t: keys(mirror.dsn, t) for t in STABLE} == {
        t: [list(k) for k in sim.expected_table(t, values=False)["keys"]] for t in STABLE}
    assert invariants(mirror.dsn) == []
    # the refused run wrote no bookkeeping of its own: one new run of eight phases, not two
    runs, rows = _run_counts(mirror.dsn)
    assert (runs - before[0], rows - before[1]) == (1, 8)


def _run_counts(dsn: str) -> tuple[int, int]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(DISTINCT run_id), count(*) FROM netops.sync_runs")
        runs, rows = cur.fetchone()
    conn.close()
    return int(runs), int(rows)
