"""`netops logs list/tail`: component files, init_db's newest stamp, tail -n, follow across rotation."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from netops.cli import cli
from netops.log import COMPONENT_FILES
from netops.monitor import logs


def env(log_dir: Path, state: Path) -> dict[str, str]:
    return {"NETOPS_CONFIG": "", "NETOPS_LOG_DIR": str(log_dir), "NETOPS_STATE_DIR": str(state)}


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    (d / "nightly_stable_tables.log").write_text(
        "".join(f"2026-11-28T02:00:{i:02d}Z INFO    stable line {i}\n" for i in range(50)))
    (d / "42_token_refresh.log").write_text("2026-11-28T02:00:30Z INFO    token ttl 7000s\n")
    old = d / "init_db_20261101T000000Z.log"
    old.write_text("2026-11-01T00:00:00Z INFO    old migration\n")
    (d / "init_db_20261128T000000Z.log").write_text("2026-11-28T00:00:00Z INFO    Applied migration 003\n")
    return d


def test_list_shows_every_component_and_newest_init_db(log_dir: Path) -> None:
    rows = {r["component"]: r for r in logs.list_logs(log_dir)}
    assert set(rows) == set(COMPONENT_FILES)
    assert rows["init_db"]["file"] == "init_db_20261128T000000Z.log"
    assert rows["stable"]["size_bytes"] == (log_dir / "nightly_stable_tables.log").stat().st_size
    assert rows["backlog"]["exists"] is False and rows["backlog"]["file"] == "backlog_worker.log"
    assert rows["token"]["modified"].endswith("Z")


def test_last_lines_reads_from_the_end(tmp_path: Path) -> None:
    p = tmp_path / "big.log"
    p.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert logs.last_lines(p, 3, block=1000) == ["line 99997", "line 99998", "line 99999"]
    assert logs.last_lines(p, 0) == []
    short = tmp_path / "short.log"
    short.write_text("only\n")
    assert logs.last_lines(short, 10) == ["only"]


def test_tail_cli_one_component_and_all_merged(log_dir: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["logs", "tail", "stable", "-n", "2"], env=env(log_dir, tmp_path))
    assert r.exit_code == 0
    assert r.output.splitlines() == ["2026-11-28T02:00:48Z INFO    stable line 48",
                                     "2026-11-28T02:00:49Z INFO    stable line 49"]
    r = CliRunner().invoke(cli, ["logs", "tail", "init_db", "-n", "5"], env=env(log_dir, tmp_path))
    assert "Applied migration 003" in r.output and "old migration" not in r.output
    r = CliRunner().invoke(cli, ["logs", "tail", "-n", "3"], env=env(log_dir, tmp_path))
    assert r.output.splitlines() == [  # all components, newest 3 by time, component prefixed
        "stable   2026-11-28T02:00:47Z INFO    stable line 47",
        "stable   2026-11-28T02:00:48Z INFO    stable line 48",
        "stable   2026-11-28T02:00:49Z INFO    stable line 49",
    ]


def test_tail_merge_orders_by_time(log_dir: Path) -> None:
    merged = logs.tail(log_dir, ["stable", "token"], 22)
    assert ("token", "2026-11-28T02:00:30Z INFO    token ttl 7000s") in merged
    stamps = [line[:20] for _, line in merged]
    assert stamps == sorted(stamps)


def test_unknown_component_lists_known_ones(log_dir: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["logs", "tail", "nginx"], env=env(log_dir, tmp_path))
    assert r.exit_code == 2
    assert "unknown component 'nginx'; known: token, backlog, stable, init_db, cron" in r.output


def test_list_cli_json(log_dir: Path, tmp_path: Path) -> None:
    import json

    r = CliRunner().invoke(cli, ["logs", "list", "--json"], env=env(log_dir, tmp_path))
    doc = json.loads(r.output)
    assert doc["log_dir"] == str(log_dir)
    assert {f["component"] for f in doc["files"] if f["exists"]} == {"stable", "token", "init_db"}


def test_follow_survives_rotation(log_dir: Path) -> None:
    got: list[str] = []
    stop = threading.Event()
    t = threading.Thread(target=logs.follow, args=(log_dir, ["stable"], lambda c, line: got.append(line)),
                         kwargs={"poll": 0.05, "stop": stop.is_set}, daemon=True)
    t.start()
    path = log_dir / "nightly_stable_tables.log"
    time.sleep(0.2)
    with path.open("a") as fh:
        fh.write("after start 1\nafter ")
        fh.flush()
        time.sleep(0.2)
        fh.write("start 2\n")  # a line written in two pieces comes out whole
    time.sleep(0.3)
    os.rename(path, log_dir / "nightly_stable_tables.log.1")  # logrotate
    path.write_text("rotated 1\n")
    deadline = time.time() + 5
    while "rotated 1" not in got and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    t.join(timeout=5)
    assert got == ["after start 1", "after start 2", "rotated 1"]


def test_a_long_running_writer_follows_logrotate_to_the_new_file(tmp_path: Path) -> None:
    """logrotate renames backlog_worker.log (no copytruncate): the next line of a running
    `backlog run --loop` must land in a fresh backlog_worker.log, not in the rotated file."""
    from netops.log import component_path, get_logger

    log = get_logger("backlog", tmp_path)
    path = component_path(tmp_path, "backlog")
    log.info("before rotation")
    path.rename(path.with_name(path.name + ".1"))
    log.info("after rotation")
    assert "after rotation" in path.read_text()
    rotated = path.with_name(path.name + ".1").read_text()
    assert "before rotation" in rotated and "after rotation" not in rotated


def test_a_component_logging_to_two_dirs_keeps_them_apart(tmp_path: Path) -> None:
    """One process, two log dirs (tests, benchmarks): each line lands only in its own dir, and a
    dir removed later does not break logging to the other."""
    import shutil

    from netops.log import component_path, get_logger

    a, b = tmp_path / "a", tmp_path / "b"
    get_logger("init_db", a).info("line for a")
    get_logger("init_db", b).info("line for b")
    shutil.rmtree(a)
    get_logger("init_db", b).info("b again")
    text = "".join(p.read_text() for p in b.iterdir())
    assert "line for b" in text and "b again" in text and "line for a" not in text
    assert component_path(b, "stable").name == "nightly_stable_tables.log"
