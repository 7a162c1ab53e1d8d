"""`netops backlog ...` end to end through the CLI (click's runner in-process, and a real
subprocess for `run --loop` and its SIGTERM), against real PostgreSQL and the simulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from netops.cli import cli
from netops.sim.server import SimServer
from tests.integration.test_backlog_sim import env, live_sim, mirrored, q, settings, sim  # noqa: F401


def _invoke(environ: dict[str, str], *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, list(args), env=environ, catch_exceptions=False)
    return res.exit_code, res.output


def test_detect_run_status_retry_purge_reconcile(sim: SimServer, mirrored: object, pg_dsn: str,  # noqa: F811
                                                 env: dict[str, str]) -> None:  # noqa: F811
    code, out = _invoke(env, "backlog", "detect", "--resource", "users", "--json")
    assert code == 0, out
    det = json.loads(out)
    assert [d["resource"] for d in det] == ["users"] and det[0]["enqueued"] == len(sim.data.tables["users"])

    code, out = _invoke(env, "backlog", "status")
    assert code == 0 and f"pending:      {len(sim.data.tables['users']):,}" in out
    assert "API calls this hour:" in out

    code, out = _invoke(env, "backlog", "run", "--once", "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["items_done"] == len(sim.data.tables["users"]) and summary["failed"] == 0
    assert summary["rows_per_api_call"] > 90

    code, out = _invoke(env, "backlog", "status", "--json")
    st = json.loads(out)
    assert st["pending"] == 0 and st["done_today"] == len(sim.data.tables["users"])
    assert st["success_rate_pct"] == 100.0 and st["marks"]["users"]["high_water"]

    # a failure shows up in status with its error, and `run` exits non-zero
    q(pg_dsn, "INSERT INTO netops.backlog_items (resource, entity_id, payload) "
              "VALUES ('coalitions_users', 1, '{\"id\": 1, \"coalition_id\": 424242, \"user_id\": 1}')")
    code, out = _invoke({**env, "BACKLOG_MAX_RETRIES": "1"}, "backlog", "run")
    assert code == 1
    code, out = _invoke(env, "backlog", "status")
    assert "failures (newest first):" in out and "coalitions_users 1 attempts=1" in out

    code, out = _invoke(env, "backlog", "retry", "--failed")
    assert code == 0 and "1 failed item(s) queued again" in out

    code, out = _invoke(env, "backlog", "purge", "--older-than", "7d")
    assert code == 2 and "--done" in out
    code, out = _invoke(env, "backlog", "purge", "--done", "--older-than", "soon")
    assert code == 2
    q(pg_dsn, "UPDATE netops.backlog_items SET finished_at = now() - interval '8 days' WHERE state = 'done'")
    code, out = _invoke(env, "backlog", "purge", "--done", "--older-than", "7d")
    assert code == 0 and f"{len(sim.data.tables['users']):,} item(s) purged" in out

    code, out = _invoke(env, "backlog", "reconcile", "--resource", "users", "--max-calls", "3", "--json")
    assert code == 0, out
    rec = json.loads(out)[0]
    assert rec["calls"] == 3 and rec["complete"] is False and rec["cursor"] > 0


@pytest.mark.timeout(180)
def test_run_loop_keeps_polling_and_stops_cleanly_on_sigterm(sim: SimServer, mirrored: object,  # noqa: F811
                                                             pg_dsn: str, env: dict[str, str]) -> None:  # noqa: F811
    proc = subprocess.Popen(
        [sys.executable, "-c", "from netops.cli import main; main()", "backlog", "run", "--loop"],
        env={**os.environ, **env, "BACKLOG_POLL_INTERVAL": "0.2"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _invoke(env, "backlog", "detect", "--resource", "users")   # work arrives while it polls
        n = len(sim.data.tables["users"])
        end = time.monotonic() + 120
        while time.monotonic() < end:
            if q(pg_dsn, "SELECT count(*) FROM netops.backlog_items WHERE state = 'done'")[0][0] == n:
                break
            time.sleep(0.1)
        assert q(pg_dsn, "SELECT count(*) FROM users")[0][0] == n
        assert proc.poll() is None                     # still looping
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"{n:,} items done" in out
