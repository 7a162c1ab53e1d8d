"""Every long-running command stops within 2 s of SIGINT or SIGTERM and says what it left (issue 22,
item 4): the real CLI in a subprocess, the real simulator over HTTP, real PostgreSQL.

The commands are slowed down by a small per-second budget (NETOPS_RATE_PER_SECOND), so the signal
arrives mid-work; the elapsed time is a correctness bound (2 s + slack for a loaded box), not a
benchmark.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from netops.sim.server import SimServer
from tests.integration.test_backlog_sim import env, live_sim, mirrored, q, settings, sim  # noqa: F401

#: 2 s (the promise) + slack for a loaded test box (two cores, several suites at once)
BOUND = 3.0


def _start(environ: dict[str, str], *args: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", "from netops.cli import main; main()", *args],
                            env={**os.environ, **environ}, stdout=kw.pop("stdout", subprocess.PIPE),
                            stderr=subprocess.PIPE, text=True, **kw)


def _wait_for(predicate: Any, timeout: float = 60.0, proc: subprocess.Popen[str] | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the command to be mid-work")


def _calls(dsn: str, component: str) -> int:
    return int(q(dsn, "SELECT count(*) FROM netops.api_calls WHERE component = %s", (component,))[0][0])


def _stop(proc: subprocess.Popen[str], sig: int) -> tuple[float, str, str]:
    """Send `sig`; (seconds until the process ended, stdout, stderr)."""
    sent = time.monotonic()
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    took = time.monotonic() - sent
    command = " ".join(a for a in proc.args[3:] if isinstance(a, str))  # type: ignore[index, union-attr]
    print(f"\n{command}: ended {took:.2f}s after {signal.Signals(sig).name}")  # the figure for the report (-s)
    return took, out or "", err or ""


def _slow(environ: dict[str, str], per_second: str = "3") -> dict[str, str]:
    # calls flushed to netops.api_calls at once, so the test sees the job is mid-work
    return {**environ, "NETOPS_RATE_PER_SECOND": per_second}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_detect_first_fill_stops_and_says_what_it_left(sim: SimServer, pg_dsn: str, env: dict[str, str],  # noqa: F811
                                                       sig: int) -> None:
    proc = _start(_slow(env), "backlog", "detect")
    _wait_for(lambda: q(pg_dsn, "SELECT count(*) FROM netops.backlog_items")[0][0] > 0, proc=proc)
    elapsed, out, err = _stop(proc, sig)
    name = signal.Signals(sig).name
    assert elapsed <= BOUND, f"took {elapsed:.1f}s to stop"
    assert proc.returncode == 128 + sig, err
    assert re.search(rf"stopped by {name}: .*queued of .* read, mark unchanged", err), err
    # nothing half-written: every queued item is whole, no mark moved past unread rows
    assert q(pg_dsn, "SELECT count(*) FROM netops.backlog_marks WHERE high_water IS NOT NULL "
                     "AND resource = 'users'")[0][0] == 0
    assert q(pg_dsn, "SELECT count(*) FROM netops.backlog_marks WHERE detect_started_at IS NOT NULL")[0][0] == 0
    log = (Path(env["NETOPS_LOG_DIR"]) / "backlog_worker.log").read_text()   # where docs/backlog.md says
    assert f"Detect stopped by {name}" in log


@pytest.mark.timeout(180)
def test_reconcile_stops_on_sigint_and_names_where_it_paused(sim: SimServer, mirrored: Any,  # noqa: F811
                                                             pg_dsn: str, env: dict[str, str]) -> None:  # noqa: F811
    proc = _start(_slow(env), "backlog", "reconcile", "--resource", "users", "--restart")
    _wait_for(lambda: _calls(pg_dsn, "reconcile") >= 3, proc=proc)
    elapsed, _, err = _stop(proc, signal.SIGINT)
    assert elapsed <= BOUND, f"took {elapsed:.1f}s to stop"
    assert proc.returncode == 130, err
    m = re.search(r"stopped by SIGINT: reconcile of users paused at id ([\d,]+)", err)
    assert m, err
    cursor = q(pg_dsn, "SELECT reconcile_cursor FROM netops.backlog_marks WHERE resource = 'users'")[0][0]
    assert int(m.group(1).replace(",", "")) == (cursor or 0)   # what it says is what the next run resumes from


@pytest.mark.timeout(180)
def test_verify_links_stops_on_sigterm(sim: SimServer, mirrored: Any, pg_dsn: str,  # noqa: F811
                                       env: dict[str, str]) -> None:  # noqa: F811
    proc = _start(_slow(env), "sync", "verify-links")
    _wait_for(lambda: _calls(pg_dsn, "verify-links") >= 3, proc=proc)
    elapsed, out, err = _stop(proc, signal.SIGTERM)
    assert elapsed <= BOUND, f"took {elapsed:.1f}s to stop"
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM: verify-links writes nothing" in err
    assert "agree" not in out.lower()   # no verdict from half the listings


@pytest.mark.timeout(180)
def test_sync_stable_stops_on_sigint(sim: SimServer, pg_dsn: str, env: dict[str, str]) -> None:  # noqa: F811
    proc = _start(_slow(env, "2"), "sync", "stable")
    _wait_for(lambda: _calls(pg_dsn, "stable") >= 3, proc=proc)
    elapsed, _, err = _stop(proc, signal.SIGINT)
    assert elapsed <= BOUND, f"took {elapsed:.1f}s to stop"
    assert proc.returncode == 130, err
    assert "stopped by SIGINT: sync left its unfinished phase marked interrupted" in err
    assert q(pg_dsn, "SELECT count(*) FROM netops.sync_runs WHERE status = 'interrupted'")[0][0] >= 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_backlog_run_loop_stops_and_says_what_is_left(sim: SimServer, mirrored: Any, pg_dsn: str,  # noqa: F811
                                                      env: dict[str, str], sig: int) -> None:  # noqa: F811
    proc = _start({**env, "BACKLOG_POLL_INTERVAL": "30"}, "backlog", "run", "--loop")
    _wait_for(lambda: (Path(env["NETOPS_LOG_DIR"]) / "backlog_worker.log").exists()
              and "Starting backlog sync" in (Path(env["NETOPS_LOG_DIR"]) / "backlog_worker.log").read_text(),
              proc=proc)
    time.sleep(0.5)   # in its poll wait (30 s): the signal must end it, not the poll
    elapsed, out, err = _stop(proc, sig)
    assert elapsed <= BOUND, f"took {elapsed:.1f}s to stop"
    assert proc.returncode == 0, err   # a loop's normal end
    assert "items done" in out
    assert f"stopped by {signal.Signals(sig).name}: 0 items done in this run; 0 queued items left" in err


@pytest.mark.timeout(120)
def test_metrics_write_loop_stops_on_sigterm(sim: SimServer, pg_dsn: str, env: dict[str, str],  # noqa: F811
                                             tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    proc = _start({**env, "NETOPS_METRICS_DIR": str(metrics_dir), "BACKLOG_METRIC_INTERVAL": "60"},
                  "metrics", "write", "--loop")
    _wait_for(lambda: (metrics_dir / "metrics_latest.json").exists(), proc=proc)
    elapsed, _, err = _stop(proc, signal.SIGTERM)
    assert elapsed <= BOUND, f"took {elapsed:.1f}s to stop"
    assert proc.returncode == 0, err
    assert "stopped by SIGTERM: the metrics files hold the last complete write" in err


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_dashboard_stops_on_a_terminal(sim: SimServer, pg_dsn: str, env: dict[str, str], sig: int) -> None:  # noqa: F811
    leader, follower = pty.openpty()   # a terminal: the live view, not the one-frame print
    try:
        proc = _start({**env, "TERM": "xterm", "COLUMNS": "100", "LINES": "40"}, "dashboard", "--interval", "30",
                      stdout=follower)
        seen = b""
        end = time.monotonic() + 60
        while b"netops" not in seen.lower() and time.monotonic() < end and proc.poll() is None:
            try:
                seen += os.read(leader, 65536)
            except OSError:
                break
        assert b"netops" in seen.lower(), seen[-500:]
        time.sleep(0.3)   # in its 30 s redraw wait
        elapsed, _, err = _stop(proc, sig)
    finally:
        os.close(follower)
        os.close(leader)
    assert elapsed <= BOUND, f"took {elapsed:.1f}s to stop"
    assert proc.returncode == 0, err
    assert f"stopped by {signal.Signals(sig).name}: the dashboard only reads" in err
