"""One measured job in its own process: `python -m bench.worker KIND '{json args}'`.

Each job runs in a fresh interpreter so the peak RSS it reports (its own `VmHWM`, see
`peak_rss_mb`) is its own, and
prints one JSON line last. Settings come from the NETOPS_* environment the parent passes.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not `ru_maxrss`: on Linux that carries over the
    high-water mark of the forked copy of the parent across exec, so a child of a big parent
    (the bench holds the simulators) would report the parent's size."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _settings() -> Any:
    from netops.config import load_settings

    env = {k: v for k, v in os.environ.items() if k.startswith(("NETOPS_", "BACKLOG_"))}
    return load_settings(env=env, config_path="")


# ------------------------------------------------------------------ 1/2: stable sync
def job_sync(args: dict[str, Any]) -> dict[str, Any]:
    """`netops sync stable`, or with `{"if_changed": true}` `netops sync stable --if-changed`
    (probe first, pull only what moved): then also the probe's calls, verdicts and skipped phases."""
    from netops.pipeline.stable.sync import run_stable_sync

    settings = _settings()
    if_changed = bool(args.get("if_changed"))
    t0 = time.monotonic()
    report = run_stable_sync(settings, if_changed=if_changed)
    wall = time.monotonic() - t0
    out = {"wall": wall, "api_calls": report.api_calls, "min_calls": report.min_calls,
           "rows": report.total_rows, "phases": [
               {"phase": p.phase, "calls": p.api_calls, "min_calls": p.min_calls, "seconds": p.seconds,
                "inserted": p.inserted, "updated": p.updated, "deleted": p.deleted}
               for p in report.phases]}
    if if_changed and report.probe is not None:
        out.update(probe_calls=report.probe_calls, probe_seconds=report.probe.seconds,
                   pulled=[p.phase for p in report.phases], skipped=[p.phase for p in report.unchanged],
                   probe=[r.as_dict() for r in report.probe.results])
    return out


# ------------------------------------------------------------------ 3: loader
PU_COLUMNS = ("id", "project_id", "user_id", "cursus_ids", "status", "final_mark", "validated", "occurrence",
              "marked", "marked_at", "retriable_at", "created_at", "updated_at")
STATUSES = ("finished", "in_progress", "searching_a_group", "creating_group", "waiting_for_correction")


def pu_rows(n: int, users: int, projects: int, variant: int = 0) -> Iterator[tuple[Any, ...]]:
    """n project_users-shaped rows, deterministic (no RNG state: a pure function of the id).

    `variant` shifts final_mark/updated_at on every 10th row, so a second apply has 10 % changes."""
    for i in range(1, n + 1):
        h = (i * 2654435761) & 0xFFFFFFFF
        mark = h % 126
        if variant and i % 10 == 0:
            mark = (mark + variant) % 126
        day = 1 + h % 28
        month = 1 + (h >> 8) % 12
        yield (i, 1 + h % projects, 1 + (h >> 4) % users, "[21]", STATUSES[h % 5], mark if h % 7 else None,
               mark >= 80, h % 3, bool(h % 7), f"2025-{month:02d}-{day:02d}T10:{h % 60:02d}:00.000Z",
               None, f"2024-{month:02d}-{day:02d}T09:00:00.000+01:00",
               f"2025-{month:02d}-{day:02d}T10:{h % 60:02d}:00.{(variant if i % 10 == 0 else 0) % 1000:03d}Z")


def _loader_table() -> Any:
    from netops.pipeline.backlog.resources import BY_NAME

    return BY_NAME["projects_users"].loader_table


def job_loader(args: dict[str, Any]) -> dict[str, Any]:
    """Apply n rows through the netops loader (COPY into delta + upsert + prune), one transaction.

    mode "initial": into an empty project_users; "reapply": the same rows again with 10 % changed."""
    from netops.catalog import Table
    from netops.db import connect
    from netops.db.loader import apply, stage

    dsn = os.environ["NETOPS_DSN"]
    n, users, projects = int(args["rows"]), int(args["users"]), int(args["projects"])
    table = _loader_table()
    conn = connect(dsn)
    if args.get("no_fk"):
        # the same table (key, both indexes) without its two foreign keys: what the FK checks cost
        table = Table("bench_pu_nofk", table.columns, table.pk)
        with conn, conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_pu_nofk; DROP TABLE IF EXISTS delta_bench_pu_nofk; "
                        "CREATE TABLE bench_pu_nofk (LIKE project_users INCLUDING ALL); "
                        "CREATE UNLOGGED TABLE delta_bench_pu_nofk (LIKE delta_project_users)")
    out: dict[str, Any] = {}
    t0 = time.monotonic()
    with conn, conn.cursor() as cur:
        staged = stage(cur, table, pu_rows(n, users, projects, int(args.get("variant", 0))))
        t_copy = time.monotonic()
        res = apply(cur, table, prune=True, max_prune_ratio=None)
    t1 = time.monotonic()
    conn.close()
    if args.get("no_fk"):
        conn = connect(dsn)
        with conn, conn.cursor() as cur:
            cur.execute("DROP TABLE bench_pu_nofk; DROP TABLE delta_bench_pu_nofk")
        conn.close()
    out.update(wall=t1 - t0, copy_seconds=t_copy - t0, apply_seconds=t1 - t_copy, staged=staged,
               inserted=res.inserted, updated=res.updated, deleted=res.deleted, rows_per_s=n / (t1 - t0))
    return out


def job_rawcopy(args: dict[str, Any]) -> dict[str, Any]:
    """The same rows, same generator and same COPY text encoder, into a bare table (no keys,
    no indexes, no FKs): the fastest way the data can enter PostgreSQL from this process."""
    from netops.catalog import Table
    from netops.db import connect
    from netops.db.loader import stage

    dsn = os.environ["NETOPS_DSN"]
    n, users, projects = int(args["rows"]), int(args["users"]), int(args["projects"])
    conn = connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_raw_pu; DROP TABLE IF EXISTS delta_bench_raw_pu")
        # stage() writes into delta_<name>: give it a bare table under that name
        cur.execute("CREATE TABLE delta_bench_raw_pu AS SELECT * FROM project_users WITH NO DATA")
    t0 = time.monotonic()
    with conn, conn.cursor() as cur:
        staged = stage(cur, Table("bench_raw_pu", PU_COLUMNS), pu_rows(n, users, projects), truncate=False)
    wall = time.monotonic() - t0
    with conn, conn.cursor() as cur:
        cur.execute("DROP TABLE delta_bench_raw_pu")
    conn.close()
    return {"wall": wall, "staged": staged, "rows_per_s": n / wall}


# ------------------------------------------------------------------ 4: backlog
def job_detect(args: dict[str, Any]) -> dict[str, Any]:
    from netops.pipeline.backlog.detect import detect

    settings = _settings()
    t0 = time.monotonic()
    results = detect(settings, os.environ["NETOPS_DSN"], settle_seconds=args.get("settle"))
    return {"wall": time.monotonic() - t0, "calls": sum(r.calls for r in results),
            "enqueued": sum(r.enqueued for r in results), "errors": [r.error for r in results if r.error],
            "per_resource": [r.as_dict() for r in results]}


def job_backlog(args: dict[str, Any]) -> dict[str, Any]:
    from netops.pipeline.backlog.worker import run_backlog

    settings = _settings()
    t0 = time.monotonic()
    summary = run_backlog(settings, os.environ["NETOPS_DSN"])
    return {"wall": time.monotonic() - t0, **summary.as_dict(), "changed_rows": summary.changed_rows,
            "items": summary.items}


# ------------------------------------------------------------------ 5: dlt
def job_dlt(args: dict[str, Any]) -> dict[str, Any]:
    """dlt 1.x rest_api source, header_link paginator, the same stable endpoints, same Postgres.
    The bearer token comes in the environment (never argv)."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("DLT_DATA_DIR", args["data_dir"])
    os.environ.setdefault("DLT_PROJECT_DIR", args["data_dir"])
    import dlt
    from dlt.sources.rest_api import rest_api_source

    from bench.dltsource import stable_config

    # dlt insists on a password even for a trust-auth Unix socket; the server ignores it
    dsn = args["dsn"].replace("postgresql://postgres@", "postgresql://postgres:unused@", 1)
    t0 = time.monotonic()
    source = rest_api_source(stable_config(args["api_url"], os.environ["BENCH_DLT_TOKEN"], cursus_id=21))
    pipeline = dlt.pipeline(pipeline_name=args["name"], destination=dlt.destinations.postgres(dsn),
                            dataset_name=args["dataset"], pipelines_dir=args["data_dir"], progress=None)
    info = pipeline.run(source)
    wall = time.monotonic() - t0
    counts = {}
    with pipeline.sql_client() as client:
        for row in client.execute_sql(
                "SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE schemaname = %s", args["dataset"]):
            counts[row[0]] = int(row[1])
    return {"wall": wall, "loads": len(info.loads_ids), "tables": counts, "failed": info.has_failed_jobs}


# ------------------------------------------------------------------ 6: status
def job_status(args: dict[str, Any]) -> dict[str, Any]:
    from netops.monitor.status import collect_status

    settings = _settings()
    dsn = os.environ["NETOPS_DSN"]
    times = []
    doc: dict[str, Any] = {}
    for _ in range(int(args.get("repeat", 5))):
        t0 = time.monotonic()
        doc = collect_status(settings, dsn, check_services=False)
        times.append((time.monotonic() - t0) * 1000)
    return {"collect_ms": times, "state": doc.get("state"),
            "tables": {k: v.get("rows") for k, v in doc.get("tables", {}).items()}}


JOBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "sync": job_sync, "loader": job_loader, "rawcopy": job_rawcopy,
    "detect": job_detect, "backlog": job_backlog, "dlt": job_dlt, "status": job_status,
}


def main() -> None:
    kind = sys.argv[1]
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    out = JOBS[kind](args)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    sys.stdout.flush()
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
