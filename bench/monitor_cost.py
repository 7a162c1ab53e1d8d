"""What the monitor's bookkeeping costs on a big box (issue 14): `make bench ONLY=monitor`
(`python -m bench.run --only monitor`; `--quick` for tiny sizes), on the bench's PostgreSQL.

1. An export's API-call counters: the count(*) ... GROUP BY over all of netops.api_calls that
   exports used to run, against the running totals (netops.api_call_totals, migration 011), at
   100 k, 1 M and 3 M call rows; and what the totals' trigger adds to a 50-row recorder flush.
2. history.json (`netops metrics history`, collect_history) on 1 M call rows spread over 40 days,
   60 runs of 12 phases and 48 h of samples: the runs that prune 50,000 rows past the 30-day
   retention, the steady run after, and the size of history.json.
3. The status-json cron job's one process (`netops status --json --output --history`:
   evaluate_with_history, one evaluation on one connection) against what it replaced, the status
   evaluation then collect_history (two passes, the shared facts read twice), in process, on
   that same database once the prune has caught up.

Registered in bench/run.py as `monitor`; its section of BENCHMARKS.md is render() below.
"""

from __future__ import annotations

import shutil
import statistics
import time
from typing import Any

import psycopg2
from psycopg2.extras import execute_values

from netops.config import load_settings
from netops.monitor.evaluation import evaluate
from netops.monitor.history import collect_history, evaluate_with_history, history_text

FILL = ("INSERT INTO netops.api_calls (at, component, method, endpoint, status, duration_ms, attempt) "
        "SELECT now() - g * make_interval(secs => %s), 'backlog', 'GET', '/v2/ep' || (g %% 12), "
        "CASE WHEN g %% 500 = 0 THEN 429 ELSE 200 END, 300, 1 FROM generate_series(1, %s) g")
SIZES = {"counters": (100_000, 1_000_000, 3_000_000), "history": 1_000_000, "runs": 7, "flushes": 200,
         "history_runs": 6}
QUICK_SIZES = {"counters": (10_000,), "history": 20_000, "runs": 2, "flushes": 10, "history_runs": 2}


def _ms(fn: Any, runs: int) -> float:
    out = []
    for _ in range(runs):
        t = time.monotonic()
        fn()
        out.append((time.monotonic() - t) * 1000)
    return round(statistics.median(out), 3)


def counters(cur: psycopg2.extensions.cursor, sizes: dict[str, Any]) -> dict[str, Any]:
    rows_out = []
    for n in sizes["counters"]:
        cur.execute("TRUNCATE netops.api_calls; TRUNCATE netops.api_call_totals")
        t = time.monotonic()
        cur.execute(FILL, (1.0, n))
        fill = time.monotonic() - t
        cur.execute("VACUUM ANALYZE netops.api_calls")

        def old() -> None:
            cur.execute("SELECT endpoint, coalesce(status::text, 'none'), count(*) FROM netops.api_calls GROUP BY 1, 2")
            cur.fetchall()

        def new() -> None:
            cur.execute("SELECT endpoint, code, calls FROM netops.api_call_totals")
            cur.fetchall()

        rows_out.append({"rows": n, "fill_seconds": round(fill, 2), "count_ms": _ms(old, sizes["runs"]),
                         "totals_ms": _ms(new, sizes["runs"])})
    flush_rows = [("sync", "GET", "/v2/campus", 200, 120, 1)] * 50

    def flush() -> None:
        execute_values(cur, "INSERT INTO netops.api_calls (component, method, endpoint, status, duration_ms, attempt) "
                            "VALUES %s", flush_rows)

    on = _ms(flush, sizes["flushes"])
    cur.execute("ALTER TABLE netops.api_calls DISABLE TRIGGER api_calls_totals")
    try:
        off = _ms(flush, sizes["flushes"])
    finally:
        cur.execute("ALTER TABLE netops.api_calls ENABLE TRIGGER api_calls_totals")
    return {"by_size": rows_out, "flush_ms": {"with_trigger": on, "without_trigger": off},
            "runs": sizes["runs"], "flushes": sizes["flushes"]}


def history(cur: psycopg2.extensions.cursor, env: dict[str, str], sizes: dict[str, Any]) -> dict[str, Any]:
    n = sizes["history"]
    cur.execute("TRUNCATE netops.api_calls; TRUNCATE netops.api_call_totals")
    cur.execute(FILL, (3_456_000 / n, n))  # 40 days: a quarter of the rows past the 30-day retention
    cur.execute("INSERT INTO netops.sync_runs (run_id, phase, table_name, started_at, finished_at, status) "
                "SELECT md5(r::text)::uuid, 'p' || p, 't' || p, now() - r * interval '1 day' + p * interval '10 s', "
                "now() - r * interval '1 day' + p * interval '10 s' + interval '9 s', 'success' "
                "FROM generate_series(1, 60) r, generate_series(1, 12) p")
    cur.execute("INSERT INTO netops.monitor_samples (at, backlog_pending, backlog_processing, backlog_failed) "
                "SELECT now() - g * interval '1 minute', g % 50, 0, 0 FROM generate_series(1, 2880) g")
    cur.execute("VACUUM ANALYZE")
    settings = load_settings(env=env, config_path="")
    runs = []
    doc: dict[str, Any] = {}
    for _ in range(sizes["history_runs"]):
        t = time.monotonic()
        doc = collect_history(settings, env["NETOPS_DSN"])
        runs.append({"ms": round((time.monotonic() - t) * 1000, 1), "pruned": doc["retention"]["pruned"]})
    while doc["retention"]["pruned"]["api_calls"]:  # catch up, so the job's figures are steady ones
        doc = collect_history(settings, env["NETOPS_DSN"])
    # the status-json job: one pass (status + history) against the two it replaced
    one = _ms(lambda: evaluate_with_history(settings, env["NETOPS_DSN"], check_services=False), sizes["runs"])
    two = _ms(lambda: (evaluate(settings, env["NETOPS_DSN"], check_services=False),
                       collect_history(settings, env["NETOPS_DSN"])), sizes["runs"])
    return {"call_rows": n, "runs": runs, "bytes": len(history_text(doc)),
            "job": {"one_pass_ms": one, "two_passes_ms": two, "runs": sizes["runs"]}}


def bench_monitor(bench: Any) -> dict[str, Any]:
    """The `monitor` benchmark of bench/run.py: a fresh migrated database of the bench's server."""
    sizes = QUICK_SIZES if bench.quick else SIZES
    dsn = bench.pg.new_database("monitor")
    state = bench.tmp / "monitor-state"
    env = {"NETOPS_STATE_DIR": str(state), "NETOPS_LOG_DIR": str(state / "logs"), "NETOPS_DSN": dsn}
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            out = {"counters": counters(cur, sizes), "history": history(cur, env, sizes)}
    finally:
        conn.close()
        bench.pg.drop_database(dsn)
        shutil.rmtree(state, ignore_errors=True)
    return out


def render(r: dict[str, Any], w: Any) -> None:
    """The "Monitor bookkeeping" section of BENCHMARKS.md (measured figures only)."""
    m = r.get("monitor")
    if not m:
        return
    c, h = m["counters"], m["history"]
    w("## Monitor bookkeeping (issue 14): counters, history.json, the status-json job\n")
    w(f"Medians of {c['runs']} runs, on the bench's PostgreSQL (`bench/monitor_cost.py`).\n")
    w("| netops.api_calls rows | fill (trigger included) | count(*) GROUP BY (old export) | running totals |")
    w("|---|---|---|---|")
    for s in c["by_size"]:
        w(f"| {s['rows']:,} | {s['fill_seconds']:.1f} s | {s['count_ms']:.1f} ms | {s['totals_ms']:.2f} ms |")
    f = c["flush_ms"]
    w(f"\n50-row recorder flush: {f['with_trigger']:.2f} ms with the totals trigger, {f['without_trigger']:.2f} ms "
      f"without (medians of {c['flushes']}).\n")
    w(f"history.json on {h['call_rows']:,} call rows over 40 days: "
      + ", ".join(f"run {i + 1} {x['ms']:.0f} ms (pruned {x['pruned']['api_calls']:,} calls)"
                  for i, x in enumerate(h["runs"]))
      + f"; the file is {h['bytes']:,} bytes.\n")
    j = h["job"]
    w(f"The status-json job, once pruned: one pass (`status --history`) {j['one_pass_ms']:.0f} ms against "
      f"{j['two_passes_ms']:.0f} ms for the status evaluation then `metrics history` (medians of {j['runs']}, "
      "in process; the job used to be two processes, each also paying Python's start-up).\n")
