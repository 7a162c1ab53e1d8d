"""API calls the campus-scoped resources cost (issue 23), measured on the simulator: the initial
backfill of one campus (NETOPS_CAMPUS_BACKFILL_DAYS of locations, evaluations, events, exams),
then one detect run after 5 minutes and after 15 minutes of the simulator's clock (steady state).

    .venv/bin/python -m bench.campus_calls [--scale 1.0] [--campus ID] [--lookback-hours 72]

Counts calls, not time (no latency, no budget wait): the figures are what the planner multiplies.
The simulator's campuses are smaller than real ones (docs/backlog.md gives the real-size formula).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from bench.env import BenchPostgres, netops_env, traversable_tmpdir
from netops.sim import campus as simcampus
from netops.sim.control import SimControl
from netops.sim.server import SimConfig, SimServer

RESOURCES = ("locations", "scale_teams", "events", "exams")


def _netops(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-c", "from netops.cli import main; main()", *args],
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"netops {' '.join(args)} failed: {out.stderr.strip()[-400:]}")
    return out.stdout


def _detect(env: dict[str, str]) -> dict[str, Any]:
    args = [a for r in RESOURCES for a in ("--resource", r)]
    rows = json.loads(_netops(env, "backlog", "detect", "--json", *args))
    return {r["resource"]: {"calls": r["calls"], "rows_seen": r["seen"], "written": r["enqueued"]} for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="simulator backlog_scale (1.0: ~40,300 users)")
    ap.add_argument("--campus", type=int, default=None, help="campus id (default: the one with most sessions)")
    ap.add_argument("--lookback-hours", type=float, default=72.0)
    a = ap.parse_args()
    pg = BenchPostgres().up()
    sim = SimServer(SimConfig(port=0, seed=42, backlog_scale=a.scale, rate_per_second=100_000,
                              rate_per_hour=100_000_000)).start()
    state = traversable_tmpdir("netops-bench-campus-")
    try:
        with sim.lock:
            cd = simcampus.campus(sim.data)
            count: dict[int, int] = {}
            for r in cd.locations.values():
                count[r["campus_id"]] = count.get(r["campus_id"], 0) + 1
            mirrored = sim.data.mirrored_campus_ids()
        campus = a.campus or max((c for c in count if c in mirrored), key=lambda c: count[c])
        ctl = SimControl(sim.url)
        ctl.campus_clock(clock=cd.anchor, scope=[campus])
        env = netops_env(pg.new_database(), sim.url, sim.client_id, sim.client_secret, state, 100_000,
                         NETOPS_CAMPUS_IDS=campus, BACKLOG_DETECT_SETTLE_SECONDS=0,
                         NETOPS_LOCATIONS_LOOKBACK_HOURS=a.lookback_hours)
        _netops(env, "sync", "stable")
        report: dict[str, Any] = {"campus": campus, "scale": a.scale, "lookback_hours": a.lookback_hours,
                                  "sessions_generated": count[campus], "initial": _detect(env)}
        for minutes in (5, 15):
            ctl.campus_clock(advance_seconds=minutes * 60)
            report[f"after_{minutes}_min"] = _detect(env)
        print(json.dumps(report, indent=2))
    finally:
        sim.stop()
        pg.down()


if __name__ == "__main__":
    main()
