"""A full disk under the state and log dirs, for real: a 6 MiB tmpfs mounted for the test (the
suite runs as root), filled with a file until ENOSPC.

Before it is full the disk alerts fire (disk_low under 10 % free, disk_critical under 5 %); once
full, every job fails with one line naming the path and the fix, no traceback, nothing
half-written (status.json, the metrics file, backup.json and the dumps are replaced atomically or
not at all; no temp file is left); once the filler is removed, the same jobs succeed again with
nothing done by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.pg import query
from tests.fixtures.sim import TestSim

SIZE = 6 * 1024 * 1024


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0755", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    assert res.returncode == 0, f"this test mounts a tmpfs and needs root: {res.stderr.strip()}"
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave_bytes: int) -> Path:
    """Write a filler file until only `leave_bytes` are free on the filesystem (0: until ENOSPC)."""
    filler = mnt / f"filler-{len(list(mnt.glob('filler-*')))}"
    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
    want = max(0, free - leave_bytes)
    with filler.open("wb") as fh:
        try:
            while want > 0 or leave_bytes == 0:
                chunk = 65536 if leave_bytes == 0 else min(65536, want)
                fh.write(b"\0" * chunk)
                fh.flush()
                want -= chunk
        except OSError:
            pass
    return filler


def _netops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netops", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


def _temp_files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.name.startswith(".") or p.name.endswith((".tmp", ".partial")))


def _assert_works(name: str, res: subprocess.CompletedProcess[str]) -> None:
    """Worked: exit 0, or for status/alerts their verdict (1 warning, 2 critical: only the
    cursus phase is synced here), with nothing on stderr."""
    assert res.returncode == 0 or (name in ("status", "alerts") and res.returncode in (1, 2)), (name, res.stderr)
    assert "Error" not in res.stderr and "Traceback" not in res.stderr, (name, res.stderr)


#: the jobs cron runs, as they write into the state and log dirs
def _jobs(state: Path) -> dict[str, tuple[str, ...]]:
    return {
        "sync": ("sync", "stable", "--phase", "cursus", "--no-progress"),
        "detect": ("backlog", "detect", "--resource", "users"),
        "status": ("status", "--json", "--output", str(state / "web" / "status.json")),
        "metrics": ("metrics", "write"),
        "backup": ("db", "backup"),
        "alerts": ("alerts", "check"),
    }


@pytest.mark.timeout(600)
def test_a_full_state_and_log_disk_fails_each_job_in_one_line_and_recovers(small_fs: Path, sim: TestSim,
                                                                          pg_dsn: str) -> None:
    state, logs = small_fs / "state", small_fs / "logs"
    (state / "web").mkdir(parents=True)
    env = {"NETOPS_CONFIG": "", "NETOPS_DSN": pg_dsn, "NETOPS_STATE_DIR": str(state), "NETOPS_LOG_DIR": str(logs),
           "NETOPS_API_URL": sim.url, "NETOPS_CLIENT_ID": sim.client_id, "NETOPS_CLIENT_SECRET": sim.client_secret,
           "NETOPS_RATE_PER_SECOND": "1000", "NETOPS_RATE_PER_HOUR": "1000000", "BACKLOG_DETECT_SETTLE_SECONDS": "0"}
    jobs = _jobs(state)

    # a healthy start: every job works and leaves its files
    for name, args in jobs.items():
        _assert_works(name, _netops(env, *args))
    status_before = (state / "web" / "status.json").read_bytes()
    metrics_file = state / "metrics" / "metrics_latest.json"
    metrics_before = metrics_file.read_bytes()
    record_before = (state / "backup.json").read_bytes()
    dumps_before = sorted((state / "backups").iterdir())
    cursus_before = query(pg_dsn, "SELECT count(*), max(id) FROM cursus")
    runs_before = query(pg_dsn, "SELECT count(*) FROM netops.sync_runs")[0][0]

    # the alert fires before the disk is full: under 10 % free, then under 5 %
    fillers = [_fill(small_fs, int(SIZE * 0.07))]
    firing = json.loads(_netops(env, "status", "--json").stdout)["alerts"]["firing"]
    assert "disk_low" in firing and "disk_critical" not in firing
    fillers.append(_fill(small_fs, int(SIZE * 0.02)))
    firing = json.loads(_netops(env, "status", "--json").stdout)["alerts"]["firing"]
    assert {"disk_low", "disk_critical"} <= set(firing)

    # full: each job fails in one clear line, no traceback. The logs are rotated first (as logrotate
    # does): an append that fits in the slack of a file's last page would still succeed on tmpfs
    for f in logs.iterdir():
        f.unlink()
    fillers.append(_fill(small_fs, 0))
    for name, args in jobs.items():
        res = _netops(env, *args)
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0, (name, res.stdout[-300:], res.stderr)
        assert "Traceback" not in res.stderr and len(lines) == 1, (name, res.stderr)
        assert "No space left on device" in lines[0] and "free space" in lines[0], (name, lines[0])

    # nothing half-written: the files are the ones before, no temp file is left, no new dump
    assert (state / "web" / "status.json").read_bytes() == status_before
    assert metrics_file.read_bytes() == metrics_before
    assert (state / "backup.json").read_bytes() == record_before
    assert sorted((state / "backups").iterdir()) == dumps_before
    assert _temp_files(small_fs) == []
    assert query(pg_dsn, "SELECT count(*), max(id) FROM cursus") == cursus_before
    assert query(pg_dsn, "SELECT count(*) FROM netops.sync_runs WHERE status = 'success'")[0][0] <= runs_before

    # space freed: everything works again by itself
    for f in fillers:
        f.unlink()
    for name, args in jobs.items():
        _assert_works(name, _netops(env, *args))
    assert (state / "web" / "status.json").read_bytes() != status_before
    doc = json.loads((state / "web" / "status.json").read_text())
    assert not {"disk_low", "disk_critical", "backup_failed"} & set(doc["alerts"]["firing"])
    assert len(list((state / "backups").iterdir())) == len(dumps_before) + 1
    last = query(pg_dsn, "SELECT status FROM netops.sync_runs ORDER BY started_at DESC LIMIT 1")
    assert last == [("success",)]


@pytest.mark.timeout(600)
def test_a_full_database_disk_fails_the_sync_in_one_line_and_the_server_comes_back(sim: TestSim) -> None:
    """The embedded default's data dir (under the state dir) on a 100 MiB tmpfs, logs elsewhere:
    PostgreSQL refuses to extend a table (or stops when it cannot write WAL); the sync fails in one
    line with its table unchanged; once space is freed the next writer (re)starts the server and
    the sync succeeds."""
    from tests.fixtures.pg import _world_traversable_tmpdir

    root = _world_traversable_tmpdir("netops-dbfull-")
    mnt = root / "mnt"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m,mode=0755", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    assert res.returncode == 0, f"this test mounts a tmpfs and needs root: {res.stderr.strip()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))}
    env.update({"NETOPS_CONFIG": "", "NETOPS_STATE_DIR": str(mnt / "state"), "NETOPS_LOG_DIR": str(root / "logs"),
                "NETOPS_API_URL": sim.url, "NETOPS_CLIENT_ID": sim.client_id,
                "NETOPS_CLIENT_SECRET": sim.client_secret, "NETOPS_RATE_PER_SECOND": "1000",
                "NETOPS_RATE_PER_HOUR": "1000000"})
    try:
        res = _netops(env, "sync", "stable", "--no-progress")    # first start: initdb + migrate + a full sync
        assert res.returncode == 0, res.stderr
        dsn = _netops(env, "db", "dsn").stdout.strip()
        before = query(dsn, "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM projects t")
        sim.churn(n=50)
        fillers = [_fill(mnt, 0)]
        res = _netops(env, "sync", "stable", "--no-progress")
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
        assert len(lines) == 1 and "No space left on device" in lines[0] and "unchanged" in lines[0], res.stderr
        for f in fillers:
            f.unlink()
        res = _netops(env, "sync", "stable", "--no-progress")   # starts the server again if it stopped
        assert res.returncode == 0, res.stderr
        assert query(dsn, "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM projects t") == before
        assert query(dsn, "SELECT status FROM netops.sync_runs ORDER BY started_at DESC LIMIT 1") == [("success",)]
    finally:
        _netops(env, "db", "down")
        subprocess.run(["umount", "-l", str(mnt)], check=False)
