"""What a command loads is what it costs at every cron tick: `netops status --json` (the status
page's writer, every minute) reads PostgreSQL and files, so the HTTP stack must stay unloaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def loaded_modules(args: list[str], env: dict[str, str]) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "netops", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1, 2), proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert "netops.cli" in names, "importtime printed nothing: the check would pass vacuously"
    return names


def test_status_json_loads_neither_requests_nor_tenacity(pg_dsn: str, tmp_path: Path) -> None:
    env = {**os.environ, "NETOPS_CONFIG": "", "NETOPS_DSN": pg_dsn,
           "NETOPS_STATE_DIR": str(tmp_path / "state"), "NETOPS_LOG_DIR": str(tmp_path / "logs")}
    names = loaded_modules(["status", "--json"], env)
    assert {"netops.monitor.evaluation"} <= names   # it did evaluate
    assert not {"requests", "tenacity", "urllib3"} & names
