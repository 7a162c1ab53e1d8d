"""Restore vs full re-pull (issue 24): the API calls a restored box spends to catch up.

A mirror is loaded from the simulator (stable sync, then the backlog's full initial pull: detect +
run on empty marks, the "full re-pull" figure), backed up with `netops db backup`'s code, then for
each N: the simulator goes back to the backup's data, N minutes of churn at --per-minute changes a
minute are applied (inserts, updates, deletes over the backlog resources, the simulator's mix),
the backup is restored over the mirror, and detect + run (the window from the restored marks)
then reconcile (the deletes a window cannot see; it lists every id) run until the backlog tables
equal the simulator's. Calls are the simulator's own count (every /v2 request; token requests
not counted).

    .venv/bin/python -m bench.restore [--scale 0.05] [--per-minute 20] [--minutes 10,60,240]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.env import BenchPostgres, netops_env
from netops.config import load_settings
from netops.db.backup import backup, restore
from netops.pipeline.backlog.detect import detect
from netops.pipeline.backlog.reconcile import reconcile
from netops.pipeline.backlog.worker import run_backlog
from netops.pipeline.stable.sync import run_stable_sync
from netops.sim import SimConfig, SimServer


def _calls(sim: SimServer) -> int:
    stats = sim.stats()["by_endpoint"]
    return sum(n for ep, n in stats.items() if not ep.startswith("/oauth"))


def _rows(dsn: str) -> dict[str, int]:
    import psycopg2

    from netops.pipeline.backlog.resources import RESOURCES

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            out = {}
            for r in RESOURCES:
                cur.execute(f"SELECT count(*) FROM {r.table}")
                out[r.table] = cur.fetchone()[0]
            return out
    finally:
        conn.close()


def _catch_up(settings: Any, dsn: str, sim: SimServer) -> dict[str, Any]:
    sim.reset_stats()
    started = time.monotonic()
    detect(settings, dsn)
    summary = run_backlog(settings, dsn)
    window = _calls(sim)
    results = reconcile(settings, dsn)
    assert all(r.complete for r in results) and summary.failed == 0
    expected = sim.expected()
    rows = _rows(dsn)
    mismatched = {t: (n, expected[t]) for t, n in rows.items() if t in expected and expected[t] != n}
    return {"window_calls": window, "reconcile_calls": _calls(sim) - window,
            "seconds": round(time.monotonic() - started, 1), "rows_mismatched": mismatched}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.05, help="simulator backlog_scale (1.0 = real size)")
    ap.add_argument("--per-minute", type=float, default=20.0, help="simulated API changes per minute")
    ap.add_argument("--minutes", default="10,60,240", help="minutes of churn between backup and restore")
    args = ap.parse_args()
    pg = BenchPostgres().up()
    sim = SimServer(SimConfig(port=0, backlog_scale=args.scale, rate_per_second=100_000, rate_per_hour=10**9,
                              seed=42)).start()
    out: dict[str, Any] = {"scale": args.scale, "per_minute": args.per_minute, "runs": []}
    try:
        dsn = pg.new_database("restore")
        state = Path(tempfile.mkdtemp(prefix="netops-bench-restore-"))
        settings = load_settings(env=netops_env(dsn, sim.url, sim.client_id, sim.client_secret, state, 100_000,
                                                10**9, BACKLOG_DETECT_SETTLE_SECONDS=0), config_path="")
        assert run_stable_sync(settings).ok
        sim.reset_stats()
        detect(settings, dsn)
        run_backlog(settings, dsn)
        out["full_repull_calls"] = _calls(sim)
        out["rows"] = _rows(dsn)
        sim.reset_stats()
        reconcile(settings, dsn)
        out["full_reconcile_calls"] = _calls(sim)
        dump = backup(settings, dsn)
        out["backup_bytes"], out["backup_seconds"] = dump.bytes, dump.seconds
        for minutes in [int(m) for m in args.minutes.split(",")]:
            sim.reset()                                  # the API as it was at the backup
            sim.churn(n=int(minutes * args.per_minute))
            restored = restore(settings, dsn, Path(str(dump.path)), yes=True)
            run = {"minutes": minutes, "changes": int(minutes * args.per_minute),
                   "restore_seconds": restored.seconds, **_catch_up(settings, dsn, sim)}
            out["runs"].append(run)
            print(json.dumps(run), flush=True)
    finally:
        sim.stop()
        pg.down()
    print(json.dumps(out))
    print(f"\nfull re-pull of the backlog tables: {out['full_repull_calls']} calls "
          f"({sum(out['rows'].values())} rows); one full reconcile: {out['full_reconcile_calls']} calls; "
          f"dump {out['backup_bytes']} bytes in {out['backup_seconds']} s")
    print("| churn (min x changes/min = changes) | restore s | detect+run calls | reconcile calls | total | vs re-pull |")
    print("|---|---|---|---|---|---|")
    for r in out["runs"]:
        total = r["window_calls"] + r["reconcile_calls"]
        print(f"| {r['minutes']} x {args.per_minute:g} = {r['changes']} | {r['restore_seconds']} | {r['window_calls']} "
              f"| {r['reconcile_calls']} | {total} | {total / out['full_repull_calls']:.2f}x |")


if __name__ == "__main__":
    main()
