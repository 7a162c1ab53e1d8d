"""Secrets never leak, files are private, servers listen on loopback only (issue 7, item 6).

A real `netops sync stable` and `netops backlog detect/run` run with a distinctive client secret;
then every log file, every metrics file, every process's argv (read from /proc while the sync runs), the
CLI's own output and `netops.api_calls` are searched for the secret and for every access token
that was issued during the run.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from netops.sim import SimConfig, SimServer
from tests.reliability.conftest import Mirror, base_env, netops_cli

SECRET = "s3cr3t-NOT-TO-BE-SEEN-7f9c2e"


@pytest.fixture
def secret_sim() -> Any:
    """A private simulator whose client secret is distinctive (greppable without false hits)."""
    srv = SimServer(SimConfig(port=0, client_secret=SECRET, rate_per_second=100_000, rate_per_hour=10_000_000,
                              backlog_scale=0.02, latency=0.01)).start()
    yield srv
    srv.stop()


def _tokens(sim: Any) -> list[str]:
    """Every access token the simulator issued (its store is keyed by token value)."""
    with sim.tokens._lock:
        return list(sim.tokens._tokens)


def _every_argv() -> dict[int, str]:
    """pid -> argv of every process on the box, as `ps` shows it. Not only the sync's own: its
    argv is the command we gave (the secret is in its environment), so only a process it starts
    (psql, pg_ctl, a helper, a child that outlives it) could show the secret to other users."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # gone meanwhile
                continue
    return out


def test_secret_and_tokens_never_written_anywhere(secret_sim: Any, mirror: Mirror, tmp_path: Path) -> None:
    env = base_env(secret_sim, mirror.dsn, tmp_path, NETOPS_MAX_CONCURRENCY=2)
    proc = subprocess.Popen([sys.executable, "-m", "netops", "sync", "stable"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    argv_seen: set[str] = set()
    saw_sync = False
    while proc.poll() is None:  # what `ps` shows: every process's argv while the sync runs
        argv = _every_argv()
        saw_sync = saw_sync or proc.pid in argv
        argv_seen.update(argv.values())
        time.sleep(0.05)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    outputs = [out, err]
    for args in (("backlog", "detect"), ("backlog", "run", "--once"), ("metrics", "write"),
                 ("token", "status"), ("token", "refresh"), ("config", "show")):
        r = netops_cli(env, *args)
        assert r.returncode in (0, 1), (args, r.stderr)
        outputs += [r.stdout, r.stderr]
    # a refused secret: the error must not echo the wrong value either
    bad = netops_cli({**env, "NETOPS_CLIENT_SECRET": "wrong-" + SECRET, "NETOPS_STATE_DIR": str(tmp_path / "s2")},
                     "sync", "stable")
    assert bad.returncode != 0
    outputs += [bad.stdout, bad.stderr]

    token_file = tmp_path / "state" / "token.json"
    token = json.loads(token_file.read_text())["access_token"]
    issued = {token, *_tokens(secret_sim)}
    needles = {SECRET, *issued}
    assert saw_sync, "never saw the sync running"
    files = [p for p in (tmp_path / "logs").rglob("*") if p.is_file()]
    files += [p for p in (tmp_path / "state").rglob("*") if p.is_file() and p.name != "token.json"]
    assert any(p.name == "nightly_stable_tables.log" for p in files)
    assert any("metrics" in str(p) for p in files), [str(p) for p in files]
    for needle in needles:
        for p in files:
            assert needle not in p.read_text(errors="replace"), (p, "leaks a secret")
        for text in outputs + sorted(argv_seen):
            assert needle not in text, text[:200]
    with psycopg2.connect(mirror.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT string_agg(concat_ws(' ', endpoint, error, component), ' ') FROM netops.api_calls")
        calls = cur.fetchone()[0] or ""
        cur.execute("SELECT string_agg(concat_ws(' ', error, phase), ' ') FROM netops.sync_runs")
        runs = cur.fetchone()[0] or ""
        cur.execute("SELECT string_agg(coalesce(last_error, ''), ' ') FROM netops.backlog_items")
        items = cur.fetchone()[0] or ""
    conn.close()
    for needle in needles:
        assert needle not in calls and needle not in runs and needle not in items
    # the token store: 0600, and its dir is not world-writable
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert not stat.S_IMODE(token_file.parent.stat().st_mode) & 0o002


def test_simulator_binds_loopback_by_default_and_postgres_has_no_tcp(pg_server: Any, sim_server: Any) -> None:
    from netops.cli.sim import serve

    # the CLI's default host and SimConfig's default are both loopback
    host_opt = next(p for p in serve.params if p.name == "host")
    assert host_opt.default == "127.0.0.1" and SimConfig().host == "127.0.0.1"
    assert sim_server.url.startswith("http://127.0.0.1:")
    with psycopg2.connect(pg_server.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SHOW listen_addresses")
        assert cur.fetchone()[0] == ""
        cur.execute("SHOW unix_socket_permissions")
        assert cur.fetchone()[0] == "0700"
    conn.close()
    # and nothing of ours listens on a non-loopback TCP address
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            local, st, inode = parts[1], parts[3], parts[9]
            if st == "0A":  # LISTEN
                listening.append((local, inode))
    ours = _inodes_of(os.getpid())
    for local, inode in listening:
        if inode in ours:
            addr = local.split(":")[0]
            assert addr in ("0100007F", "00000000000000000000000001000000"), f"listening on {local}"


def _inodes_of(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out
