"""One figure per fact, and a dashboard that fits and quits (issue 22, item 7): real PostgreSQL,
the real CLI in subprocesses, and `netops dashboard` itself in a pseudo-terminal of 80x24."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from netops.config import Settings
from netops.monitor.dashboard import EMPTY, FULL, gather, render
from netops.pipeline.stable.phases import PHASE_NAMES
from tests.integration.test_monitor_seed import (
    cli_env,
    connect,
    healthy,
    insert_backlog,
    insert_calls,
    insert_run,
    live_sync,
)

CREDS = {"NETOPS_CLIENT_ID": "u-dashboard-test", "NETOPS_CLIENT_SECRET": "s-dashboard-test"}


def busy(dsn: str, settings: Settings) -> None:
    """A sync running at phase 2 (the API phases after it read ahead), an older failed run, four
    alerts' worth of trouble, and 42 slots claimed this hour against 36 calls recorded."""
    healthy(dsn, settings)  # 20 calls recorded 15 min ago, a token, a sync an hour ago
    insert_run(dsn, started_ago=1800, failed="coalitions")
    insert_run(dsn, started_ago=100, running="campuses")
    insert_calls(dsn, {429: 5, 200: 10})
    insert_calls(dsn, {401: 1}, ago=300)  # refused after the last success: 36 recorded in all
    insert_backlog(dsn, {"pending": 3, "failed": 2})
    with connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO netops.api_keys (label, client_id) VALUES ('default', %s)",
                    (CREDS["NETOPS_CLIENT_ID"],))
        cur.execute("INSERT INTO netops.api_slots (key_label, at) "
                    "SELECT 'default', now() - interval '10 minutes' FROM generate_series(1, 42)")


def frame_lines(settings: Settings, dsn: str) -> list[str]:
    buf = io.StringIO()
    Console(file=buf, width=80, height=24, force_terminal=False, color_system=None).print(
        render(gather(settings, dsn), interval=2.0))
    return buf.getvalue().splitlines()


def test_an_80x24_frame_with_four_alerts_fits_and_reads_without_colour(
        pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory(**CREDS)
    busy(pg_dsn, settings)
    with live_sync(pg_dsn):
        lines = frame_lines(settings, pg_dsn)
    text = "\n".join(lines)

    assert max(len(x) for x in lines) <= 80
    assert len(lines) <= 22, text  # fits, with room: not exactly full
    assert lines[0].startswith("netops ") and "CRITICAL" in lines[0] and "last sync running" in lines[0]
    assert lines[1].startswith("alerts (")  # the header did not wrap into the alerts line
    firing = int(re.match(r"alerts \((\d+)\)", lines[1]).group(1))  # type: ignore[union-attr]
    assert firing >= 4
    for name in ("api_unauthorized", "api_rate_limited"):
        assert name in lines[1]

    row = {x.split()[0]: x for x in lines if x.split() and x.split()[0] in PHASE_NAMES}
    assert "ok" in row["cursus"] and FULL * 16 in row["cursus"]  # done in this run: a full bar
    assert "run" in row["campuses"]
    for phase in ("projects", "coalitions", "achievements"):  # fetched ahead: not the last run's ok/FAIL
        assert row[phase].split()[-1] == "fetching", row[phase]
        assert "ok" not in row[phase] and "FAIL" not in row[phase]
    assert row["campus_projects"].split()[-1] == "queued"

    minute = next(x for x in lines if x.startswith("calls/min"))
    assert EMPTY * 30 in minute and FULL not in minute and "(0%)" in minute  # 0 %: all empty cells
    assert FULL * 16 != EMPTY * 16
    assert "API left" not in text  # the API's stale header is not a second figure for the hour
    assert "q or Ctrl-C quits" in lines[-1]


def test_calls_this_hour_is_one_figure_on_every_surface(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory(**CREDS)
    busy(pg_dsn, settings)
    env = {**cli_env(settings), **CREDS}
    run = lambda *a: subprocess.run([sys.executable, "-m", "netops", *a], env=env, text=True,  # noqa: E731
                                    capture_output=True, timeout=120)
    dash = run("dashboard", "--once", "--width", "80").stdout
    hour = next(x for x in dash.splitlines() if x.startswith("calls/hour"))
    key = next(x for x in dash.splitlines() if x.startswith("key default"))
    assert "42/1,200 (4%)" in hour and "42/1,200 this h" in key, dash
    assert "36" not in hour and "left" not in dash

    status = json.loads(run("status", "--json").stdout)
    assert status["api"]["calls_last_hour"] == 42 and status["api"]["utilisation_percent"] == 3.5
    assert status["api_keys"][0]["calls_last_hour"] == 42
    text = run("status").stdout
    assert "42/1200 calls last hour" in text and "42/1,200 this hour" in text
    metrics = json.loads(run("metrics", "export", "--format", "json").stdout)
    assert metrics["api"]["calls_last_hour"] == 42 and metrics["api"]["utilisation_ratio"] == 0.035


def _pty_dashboard(settings: Settings, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**cli_env(settings), "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    proc = subprocess.Popen([sys.executable, "-m", "netops", "dashboard", *args], env=env, stdin=slave,
                            stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    return proc, master


def _read_until(master: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
    return seen


@pytest.mark.parametrize("key", [b"q", b"\x03"], ids=["q", "ctrl-c"])
def test_the_live_dashboard_quits_on_q_and_ctrl_c(pg_dsn: str, settings_factory: Any, key: bytes) -> None:
    settings = settings_factory()
    healthy(pg_dsn, settings)
    proc, master = _pty_dashboard(settings, "--interval", "0.5")
    try:
        shown = _read_until(master, b"quits", 60)
        assert b"quits" in shown, shown[-2000:]
        assert b"\x1b[?1049h" in shown  # the live view, on the alternate screen (not --once)
        time.sleep(0.6)  # at least one redraw
        os.write(master, key)
        started = time.monotonic()
        code = proc.wait(timeout=10)
        assert time.monotonic() - started < 2.0
        assert code == 0
        rest = _read_until(master, b"\x1b[?1049l", 2)
        assert b"\x1b[?1049l" in shown + rest  # the terminal is given back (alternate screen left)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        os.close(master)


def test_status_json_keeps_the_last_known_alerts_through_a_database_outage(
        pg_dsn: str, settings_factory: Any, tmp_path: Path) -> None:
    """What the status page shows during an outage: the status-json job's `--output` document
    carries the alerts the database fed, as last known, from one outage run to the next."""
    from tests.integration.test_operator_scenarios import netops

    settings = settings_factory()
    healthy(pg_dsn, settings)
    insert_run(pg_dsn, started_ago=600, failed="projects")  # sync_failed fires (from the database)
    out = tmp_path / "status.json"
    assert netops(settings, "status", "--json", "--output", str(out)).returncode == 1
    before = json.loads(out.read_text())
    assert before["alerts"] == {"firing": ["sync_failed"]}

    down = settings_factory(NETOPS_DSN="postgresql://nobody@127.0.0.1:1/netops")
    for _ in range(2):  # carried from the last document that read the database, then on
        assert netops(down, "status", "--json", "--output", str(out)).returncode == 2
        doc = json.loads(out.read_text())
        assert doc["alerts"]["firing"] == ["database_down"]
        assert [(p["check"], p["severity"], p["known_at"]) for p in doc["alerts"]["last_known"]] == [
            ("sync_failed", "warning", before["checked_at"])]
    plain = json.loads(netops(down, "status", "--json").stdout)  # to stdout: nothing to carry from
    assert "last_known" not in plain["alerts"]

    assert netops(settings, "status", "--json", "--output", str(out)).returncode == 1  # back: judged again
    assert json.loads(out.read_text())["alerts"] == {"firing": ["sync_failed"]}
