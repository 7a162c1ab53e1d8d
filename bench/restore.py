"""Restore vs full re-pull (issue 24): the API calls a restored box spends to catch up.

A mirror is loaded from the simulator (stable sync, then the backlog's full initial pull: detect +
run on empty marks, the "full re-pull" figure), backed up with `netops db backup`'s code, then for
each N: the simulator goes back to the backup's data, N minutes of churn at --per-minute changes a
minute are applied (inserts, updates, deletes over the backlog resources, the simulator's mix),
the backup is restored over the mirror, and detect + run (the window from the restored marks)
then reconcile (the deletes a window cannot see; it lists every id) run until the backlog tables
equal the simulator's. Calls are the simulator's own count (every /v2 request; token requests
not counted).

    .venv/bin/python -m bench.run --only restore      # BENCHMARKS.md "Restore vs full re-pull"
    .venv/bin/python -m bench.restore [--scale 0.05] [--per-minute 20] [--minutes 10,60,240]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.env import netops_env
from netops.config import load_settings
from netops.db.backup import backup, restore
from netops.pipeline.backlog.detect import detect
from netops.pipeline.backlog.reconcile import reconcile
from netops.pipeline.backlog.worker import run_backlog
from netops.pipeline.stable.sync import run_stable_sync
from netops.sim import SimConfig, SimServer

SCALE = 0.05
PER_MINUTE = 20.0
MINUTES = (10, 60, 240)


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


def bench_restore(bench: Any, scale: float | None = None, per_minute: float = PER_MINUTE,
                  minutes: tuple[int, ...] = MINUTES) -> dict[str, Any]:
    """The measurement, on the bench's PostgreSQL (`bench.pg`); `bench.quick`: tiny sizes."""
    scale = scale if scale is not None else (0.01 if getattr(bench, "quick", False) else SCALE)
    minutes = (1, 5) if getattr(bench, "quick", False) else minutes
    sim = SimServer(SimConfig(port=0, backlog_scale=scale, rate_per_second=100_000, rate_per_hour=10**9,
                              seed=42)).start()
    dsn = bench.pg.new_database("restore")
    state = Path(tempfile.mkdtemp(prefix="netops-bench-restore-"))
    out: dict[str, Any] = {"scale": scale, "per_minute": per_minute, "runs": []}
    try:
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
        for n in minutes:
            sim.reset()                                  # the API as it was at the backup
            sim.churn(n=int(n * per_minute))
            restored = restore(settings, dsn, Path(str(dump.path)), yes=True)
            run = {"minutes": n, "changes": int(n * per_minute), "restore_seconds": restored.seconds,
                   **_catch_up(settings, dsn, sim)}
            out["runs"].append(run)
            print(json.dumps(run), flush=True)
    finally:
        sim.stop()
        bench.pg.drop_database(dsn)
        shutil.rmtree(state, ignore_errors=True)
    return out


def render(r: dict[str, Any], w: Any) -> None:
    """The "Restore vs full re-pull" section of BENCHMARKS.md (measured figures only)."""
    m = r.get("restore")
    if not m:
        return
    full = m["full_repull_calls"]
    w("## Restore vs full re-pull (issue 24)\n")
    w(f"`bench/restore.py`, simulator backlog scale {m['scale']} ({sum(m['rows'].values()):,} backlog rows), "
      f"churn at {m['per_minute']:g} changes a minute (the simulator's insert/update/delete mix) between the "
      "backup and the restore. Calls are the simulator's count of /v2 requests (token requests not counted).\n")
    w(f"- Full re-pull of the backlog tables (detect on empty marks + run): **{full} calls**; one full "
      f"reconcile pass: {m['full_reconcile_calls']} calls.")
    w(f"- `netops db backup`: {m['backup_bytes']:,} bytes in {m['backup_seconds']} s.\n")
    w("| churn before restore | restore | detect + run (window) | reconcile (deletes) | total | window vs re-pull | total vs re-pull |")
    w("|---|---|---|---|---|---|---|")
    for x in m["runs"]:
        total = x["window_calls"] + x["reconcile_calls"]
        w(f"| {x['minutes']} min ({x['changes']:,} changes) | {x['restore_seconds']} s | {x['window_calls']} calls "
          f"| {x['reconcile_calls']} calls | {total} calls | {x['window_calls'] / full:.2f}× | {total / full:.2f}× |")
    w("\nEvery run ends with the backlog tables' row counts equal to the simulator's. Inserts and updates made "
      "since the backup are caught by the window from the restored marks for a few per cent of a re-pull; "
      "deletes only by `netops backlog reconcile`, which lists every id and so costs about one re-pull. Rerun: `.venv/bin/python -m bench.run --only restore` (this section), or "
      "`.venv/bin/python -m bench.restore --scale 0.25 --minutes 10,60,240` (stand-alone, prints the JSON).\n")


def main() -> None:
    from bench.env import BenchPostgres

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=SCALE, help="simulator backlog_scale (1.0 = real size)")
    ap.add_argument("--per-minute", type=float, default=PER_MINUTE, help="simulated API changes per minute")
    ap.add_argument("--minutes", default=",".join(map(str, MINUTES)), help="minutes of churn before the restore")
    args = ap.parse_args()

    class _Bench:
        quick = False
        pg = BenchPostgres().up()

    try:
        out = bench_restore(_Bench, args.scale, args.per_minute, tuple(int(m) for m in args.minutes.split(",")))
    finally:
        _Bench.pg.down()
    print(json.dumps(out))
    lines: list[str] = []
    render({"restore": out}, lines.append)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
