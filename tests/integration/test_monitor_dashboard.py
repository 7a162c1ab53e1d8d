"""`netops dashboard --once`: one frame, at 80 columns, showing what the database holds."""

from __future__ import annotations

import io
from typing import Any

from click.testing import CliRunner
from rich.console import Console

from netops.cli import cli
from netops.monitor.dashboard import gather, render, sparkline
from netops.pipeline.stable.phases import PHASE_NAMES
from tests.integration.test_monitor_seed import (
    cli_env,
    healthy,
    insert_backlog,
    insert_calls,
    insert_run,
    live_sync,
)


def frame(settings: Any, dsn: str, width: int = 80) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=False, color_system=None).print(render(gather(settings, dsn)))
    return buf.getvalue()


def test_frame_shows_phases_rows_call_rate_and_backlog(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory(NETOPS_RATE_PER_HOUR=1000, NETOPS_RATE_PER_SECOND=2)
    healthy(pg_dsn, settings)  # 20 calls, 15 min ago
    insert_run(pg_dsn, started_ago=200, running="campus_projects", pages_total=14,
               rows={"projects": (2, 5, 1)})
    insert_calls(pg_dsn, {200: 30}, ago=20)  # 30 in the last minute
    insert_calls(pg_dsn, {429: 3}, ago=5 * 3600)
    insert_backlog(pg_dsn, {"pending": 4, "processing": 1, "failed": 2})
    with live_sync(pg_dsn):  # the sync of that running row is alive
        text = frame(settings, pg_dsn)
    lines = text.splitlines()

    assert max(len(line) for line in lines) <= 80
    assert len(lines) <= 24
    for phase in ("cursus", "coalitions", "campus_achievements", "project_sessions"):
        assert phase in text
    row = {line.split()[0]: line for line in lines if line.split() and line.split()[0] in PHASE_NAMES}
    assert "7/14" in row["campus_projects"] and "run" in row["campus_projects"]
    assert "700 read" in row["campus_projects"]
    assert "+1 ~5" in row["projects"]  # +2 inserted -1 deleted since the previous sync, 5 updated
    assert row["projects"].split()[3] == "4"  # rows now in the table
    # not reached by the running sync: not its previous run's `ok` (its rows come from projects' answer)
    assert "queued" in row["project_sessions"] and "ok" not in row["project_sessions"]
    assert "30/120 (25%)" in text  # calls in the last minute vs 2/s
    assert "50/1,000 (5%)" in text  # calls in the last hour vs the hourly budget
    assert "errors 24h" in text and " 3  401:0 429:0 (1h)" in text  # the 429s are 5 h old
    assert "pending 4  processing 1  failed 2" in text
    assert "last sync running" in text


def test_once_via_cli_and_database_down(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory()
    healthy(pg_dsn, settings)
    result = CliRunner().invoke(cli, ["dashboard", "--once", "--width", "80"], env=cli_env(settings))
    assert result.exit_code == 0
    assert "cursus" in result.output and "backlog" in result.output

    down = settings_factory(NETOPS_DSN="postgresql://x@127.0.0.1:1/x")
    result = CliRunner().invoke(cli, ["dashboard", "--once"], env=cli_env(down))
    assert result.exit_code == 2
    assert "PostgreSQL unreachable" in result.output


def test_sparkline_scales_to_the_peak() -> None:
    assert sparkline([0, 0, 0]).plain == "▁▁▁"
    s = sparkline([0, 1, 4, 8]).plain
    assert s[0] == "▁" and s[-1] == "█" and s[1] < s[2] < s[3] and s[1] != "▁"
