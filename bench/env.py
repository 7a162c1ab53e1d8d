"""The bench's own world: a PostgreSQL server in a temp state dir, simulators, machine facts.

Everything here is started by the bench and stopped by it; nothing touches a box's real state.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg2

from netops.config import load_settings
from netops.db.migrate import migrate
from netops.db.server import LocalPostgres

ROOT = Path(__file__).resolve().parent.parent

# Scaled time: latency x budget (calls that must be in flight to stay at the budget) is kept at
# the real API's 1.1 s x 2/s = 2.2, so every latency-vs-budget effect keeps its proportion.
SCALED = {"latency": 0.055, "rate": 40}
# The detector's settle delay in the backlog benchmark (the shipped default, 60 s, only delays
# when a change is read, not what reading it costs; 1 s keeps the run short)
BACKLOG_SETTLE = 1.0
REAL = {"latency": 1.1, "rate": 2}
QUICK = {"latency": 0.005, "rate": 440}  # --quick (smoke): same 2.2 in flight, seconds not minutes


def traversable_tmpdir(prefix: str) -> Path:
    """mkdtemp makes 0700 dirs; the server user (when run as root) must be able to enter it."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(path, 0o755)
    return path


class BenchPostgres:
    """netops' own embedded server (LocalPostgres) in a temp state dir, one fresh DB per use."""

    def __init__(self) -> None:
        self.state = traversable_tmpdir("netops-bench-pg-")
        self.settings = load_settings(env={"NETOPS_STATE_DIR": str(self.state),
                                           "NETOPS_LOG_DIR": str(self.state / "logs")}, config_path="")
        self.server = LocalPostgres(self.settings)

    def up(self) -> BenchPostgres:
        self.server.up()
        return self

    def down(self) -> None:
        try:
            self.server.down()
        finally:
            shutil.rmtree(self.state, ignore_errors=True)

    def admin_dsn(self, db: str = "postgres") -> str:
        return self.server.dsn().replace(f"/{self.server.db_name}?", f"/{db}?")

    def new_database(self, prefix: str = "b", migrated: bool = True) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        admin = psycopg2.connect(self.admin_dsn())
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        admin.close()
        dsn = self.admin_dsn(name)
        if migrated:
            migrate(dsn, self.state / "logs")
        return dsn

    def drop_database(self, dsn: str) -> None:
        name = dsn.split("/")[-1].split("?")[0]
        conn = psycopg2.connect(self.admin_dsn())
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()

    def version(self) -> str:
        conn = psycopg2.connect(self.admin_dsn())
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            v = cur.fetchone()[0]
        conn.close()
        return str(v)


def netops_env(dsn: str, api_url: str, client_id: str, client_secret: str, state: Path,
               rate_per_second: float, rate_per_hour: int = 1_000_000, **extra: Any) -> dict[str, str]:
    """NETOPS_* settings for a bench run (config file off, own state and log dirs)."""
    env = {
        "NETOPS_CONFIG": "",
        "NETOPS_DSN": dsn,
        "NETOPS_API_URL": api_url,
        "NETOPS_CLIENT_ID": client_id,
        "NETOPS_CLIENT_SECRET": client_secret,
        "NETOPS_STATE_DIR": str(state),
        "NETOPS_LOG_DIR": str(state / "logs"),
        "NETOPS_RATE_PER_SECOND": f"{rate_per_second:g}",
        "NETOPS_RATE_PER_HOUR": str(rate_per_hour),
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_worker(kind: str, env: dict[str, str], args: dict[str, Any] | None = None,
               timeout: float = 1800) -> dict[str, Any]:
    """Run `python -m bench.worker KIND` in a fresh process (so its peak RSS is its own);
    the worker prints one JSON line last."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))}
    child_env.update(env)
    # BENCH_NETOPS_PATH: a scratch copy holding a candidate `netops/` to measure instead of ours
    front = [p for p in (os.environ.get("BENCH_NETOPS_PATH"), str(ROOT)) if p]
    child_env["PYTHONPATH"] = os.pathsep.join(front + [child_env.get("PYTHONPATH", "")])
    child_env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    argv = [sys.executable, "-m", "bench.worker", kind, json.dumps(args or {})]
    if os.environ.get("BENCH_NETOPS_PATH"):
        # the working directory (our checkout) comes first on sys.path: put the candidate before it
        argv[1:3] = ["-c", "import os, sys, runpy; sys.path.insert(0, os.environ['BENCH_NETOPS_PATH']); "
                     "runpy.run_module('bench.worker', run_name='__main__', alter_sys=True)"]
    proc = subprocess.run(
        argv,
        capture_output=True, text=True, env=child_env, cwd=str(ROOT), timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-40:])
        raise RuntimeError(f"bench worker {kind} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1])


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"cores": os.cpu_count(), "ram_gib": round(mem / 2**30, 1), "cpu": cpu,
            "os": f"{platform.system()} {platform.release()}", "arch": platform.machine(),
            # the box may be shared: how busy it was when the run started
            "loadavg_start": [round(x, 2) for x in os.getloadavg()]}


def versions(pg: BenchPostgres | None = None) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("netops", "dlt", "psycopg2-binary", "requests"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    if pg is not None:
        out["postgresql"] = pg.version()
    return out
