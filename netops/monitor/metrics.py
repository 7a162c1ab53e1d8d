"""Metrics: one snapshot of the box, written as `metrics_latest.json` and as Prometheus text.

The snapshot is the single source for metrics, alerts and their Prometheus rules, so a number in
`metrics_latest.json`, on /metrics and in an alert's value is always the same number. Values are
gauges over windows read from bookkeeping (calls in the last hour, the last run of each phase),
not process-lifetime counters: netops commands are short-lived cron jobs, so there is no process
that could keep a counter alive; the database is the memory.

Prometheus output goes through prometheus_client with a CollectorRegistry passed in (no global
registry), so tests and the CLI can build as many independent registries as they like.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, write_to_textfile
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from netops.config import Settings
from netops.log import COMPONENT_FILES
from netops.monitor import facts as F

JSON_NAME = "metrics_latest.json"
PROM_NAME = "metrics.prom"
TEXTFILE_NAME = "netops.prom"


def _ts(dt: Any) -> float | None:
    return dt.timestamp() if dt is not None else None


def log_files(log_dir: Path) -> dict[str, Path]:
    """component -> its current file (init_db: the newest init_db_*.log), existing files only."""
    out: dict[str, Path] = {}
    for component, name in COMPONENT_FILES.items():
        if "{stamp}" in name:
            pattern = name.replace("{stamp}", "*")
            matches = sorted(Path(log_dir).glob(pattern))
            if matches:
                out[component] = matches[-1]
        elif (Path(log_dir) / name).exists():
            out[component] = Path(log_dir) / name
    return out


def collect_snapshot(settings: Settings, dsn: str | None, evaluation: Any = None) -> dict[str, Any]:
    """Everything metrics and alerts need, as plain JSON-able data, from one evaluation made now
    (netops/monitor/evaluation.py). A database that cannot be reached gives `database.up = 0`
    and no database sections, never an exception: an exporter that dies when the thing it
    watches dies tells you nothing."""
    from netops.monitor.evaluation import evaluate

    ev = evaluation if evaluation is not None else evaluate(settings, dsn)
    return snapshot_of(ev)


def snapshot_of(ev: Any) -> dict[str, Any]:
    """The metrics document of an Evaluation: its facts, and every rule's verdict."""
    f, settings = ev.facts, ev.settings
    now = f.now
    snap: dict[str, Any] = {
        "generated_at": F.iso(now),
        "generated_at_unix": round(now.timestamp(), 3),
        "state": ev.state,
        "database": {"up": 1 if f.db_up else 0, "size_bytes": f.db_size, "error": f.db_error},
    }
    if f.db_up:
        snap["database"]["version"] = f.db_version
        snap["database"]["schema"] = 1 if f.schema else 0
    if f.phases is not None:
        _db_snapshot(settings, f, snap)
    if f.tables is not None:
        snap["tables"] = {n: {"rows": t.rows, "exact": t.exact} for n, t in f.tables.items()}
    files = log_files(settings.log_path)
    snap["logs"] = {
        "dir": str(settings.log_path),
        "bytes": f.log_bytes,
        "files": {c: p.stat().st_size for c, p in files.items()},
    }
    if f.db_up and f.schema:  # the keys' windows and set-aside state live in the database
        snap["api_keys"] = [k for k in f.keys if "error" not in k]
    snap["disk"] = {k: {"path": d["path"], "free_percent": d["free_percent"]} for k, d in f.disk.items()}
    if f.nginx.get("ok") is not None:
        snap["nginx"] = {"up": 1 if f.nginx["ok"] else 0, "url": f.nginx["url"]}
    t = f.token
    snap["token"] = {"present": t.present, "ttl_seconds": t.ttl_seconds,
                     "usable": 0 if ev.by_name()["token"].firing else 1,
                     "refused_at_unix": _ts(t.refused_at),
                     "secret_valid_until_unix": _ts(t.secret_valid_until)}
    snap["kpi"] = {
        "api_utilisation_percent": snap.get("api", {}).get("utilisation_percent"),
        "data_quality_violations": snap.get("quality", {}).get("violations"),
    }
    snap["alerts"] = {v.rule.name: {"state": v.state, "severity": v.rule.severity, "value": _num(v.value),
                                    "threshold": v.threshold} for v in ev.verdicts}
    return snap


def _num(v: float | None) -> float | None:
    return None if v is None or v == float("inf") else v


def _db_snapshot(settings: Settings, f: Any, snap: dict[str, Any]) -> None:
    now = f.now
    phases = {}
    for p in f.phases:
        phases[p.phase] = {
            "table": p.table,
            "last_status": p.last_status,
            "running": p.last_status == "running",
            "duration_seconds": p.duration_seconds,
            "rows_fetched": p.rows_fetched,
            "rows_inserted": p.rows_inserted,
            "rows_updated": p.rows_updated,
            "rows_deleted": p.rows_deleted,
            "rows_skipped": p.rows_skipped,
            "pages_done": p.pages_done,
            "pages_total": p.pages_total,
            "last_success_unix": _ts(p.last_success_at),
        }
    run = f.run
    stable_success = [phases[p]["last_success_unix"] for p, _ in F.STABLE_PHASES if p in phases]
    oldest = None if not stable_success or any(s is None for s in stable_success) else min(stable_success)
    snap["sync"] = {
        "phases": phases,
        "lock_held": f.lock_held,
        "last_run": {"run_id": run.run_id, "status": run.status, "duration_seconds": run.duration_seconds,
                     "finished_unix": _ts(run.finished_at)},
        "oldest_success_unix": oldest,
        "oldest_success_age_seconds": round(now.timestamp() - oldest, 1) if oldest else None,
    }
    api = f.api
    snap["api"] = {
        "calls_last_hour": api.calls_1h,
        "calls_last_15m": api.calls_15m,
        "calls_last_minute": api.calls_1m,
        "calls_per_minute": round(api.calls_15m / 15.0, 2),
        "budget_per_hour": settings.rate_per_hour,
        "budget_per_second": settings.rate_per_second,
        "utilisation_percent": round(100.0 * api.calls_1h / settings.rate_per_hour, 2),
        "by_status_last_hour": api.by_status_1h,
        "unauthorized_last_hour": api.unauthorized_1h,
        "rate_limited_last_hour": api.rate_limited_1h,
        "rate_limit_remaining": {"secondly": api.secondly_remaining, "hourly": api.hourly_remaining},
        "errors_by_hour": api.errors_by_hour,
    }
    b = f.backlog
    snap["backlog"] = {"available": b.available, "pending": b.pending, "processing": b.processing,
                       "failed": b.failed}
    q = f.quality
    snap["quality"] = {"available": q.available, "checked_at_unix": _ts(q.checked_at),
                       "violations": q.violations if q.checked_at else None, "info": q.info,
                       "by_kind": q.by_check}


# --- Prometheus ------------------------------------------------------------------------------

class SnapshotCollector(Collector):
    """Exposes one snapshot as `netops_*` gauges (HELP and TYPE come from prometheus_client)."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.snap = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self.snap

        def gauge(name: str, doc: str, value: float | None = None, labels: list[str] | None = None,
                  samples: list[tuple[list[str], float | None]] | None = None) -> GaugeMetricFamily | None:
            g = GaugeMetricFamily(name, doc, labels=labels)
            if labels is None:
                if value is None:
                    return None
                g.add_metric([], float(value))
            else:
                for lv, v in samples or []:
                    if v is not None:
                        g.add_metric(lv, float(v))
            return g

        out: list[GaugeMetricFamily | None] = []
        out.append(gauge("netops_metrics_generated_timestamp_seconds",
                         "Unix time this snapshot was taken.", s["generated_at_unix"]))
        db = s["database"]
        out.append(gauge("netops_database_up", "1 when PostgreSQL answered the snapshot's queries.", db["up"]))
        out.append(gauge("netops_database_size_bytes", "pg_database_size of the netops database.",
                         db.get("size_bytes")))
        out.append(gauge("netops_schema_present", "1 when the netops schema is migrated (absent: database down).",
                         db.get("schema")))
        sync = s.get("sync")
        if sync:
            ph = sync["phases"]
            out.append(gauge("netops_sync_duration_seconds",
                             "Duration of the latest run of each phase (elapsed so far while running).",
                             labels=["phase"], samples=[([p], v["duration_seconds"]) for p, v in ph.items()]))
            out.append(gauge("netops_sync_rows", "Rows handled by the latest run of each phase, by kind.",
                             labels=["phase", "kind"],
                             samples=[([p, k], v[f"rows_{k}"]) for p, v in ph.items() if v["last_status"]
                                      for k in ("fetched", "inserted", "updated", "deleted", "skipped")]))
            out.append(gauge("netops_sync_last_success_timestamp_seconds",
                             "Unix time the phase last finished successfully.",
                             labels=["phase"], samples=[([p], v["last_success_unix"]) for p, v in ph.items()]))
            out.append(gauge("netops_sync_running", "1 while the phase is running.", labels=["phase"],
                             samples=[([p], 1 if v["running"] else 0) for p, v in ph.items()]))
            out.append(gauge("netops_sync_last_run_failed", "1 when the latest run of the phase failed.",
                             labels=["phase"], samples=[([p], 1 if v["last_status"] == "failed" else 0)
                                                        for p, v in ph.items() if v["last_status"]]))
            out.append(gauge("netops_sync_last_run_interrupted",
                             "1 when the latest run of the phase was interrupted (SIGINT/SIGTERM, or its "
                             "process died: the sync lock is not held).",
                             labels=["phase"], samples=[([p], 1 if v["last_status"] == "interrupted" else 0)
                                                        for p, v in ph.items() if v["last_status"]]))
            out.append(gauge("netops_sync_last_run_unchanged",
                             "1 when the latest run of the phase was skipped by `sync stable --if-changed` "
                             "(its probe saw no change; last_success keeps the last real pull).",
                             labels=["phase"], samples=[([p], 1 if v["last_status"] == "unchanged" else 0)
                                                        for p, v in ph.items() if v["last_status"]]))
            out.append(gauge("netops_sync_oldest_success_age_seconds",
                             "Age of the least recently refreshed stable table's last successful sync.",
                             sync["oldest_success_age_seconds"]))
            out.append(gauge("netops_sync_last_run_duration_seconds",
                             "Duration of the latest `netops sync` (all its phases).",
                             sync["last_run"]["duration_seconds"]))
        api = s.get("api")
        if api:
            out.append(gauge("netops_api_calls_last_hour", "API calls (attempts) in the last hour by HTTP status "
                             "(none = no answer).", labels=["status"],
                             samples=[([k], v) for k, v in sorted(api["by_status_last_hour"].items())]))
            out.append(gauge("netops_api_calls_per_minute", "API calls per minute, averaged over the last 15 minutes.",
                             api["calls_per_minute"]))
            out.append(gauge("netops_api_budget_calls_per_hour", "Configured API budget per hour.",
                             api["budget_per_hour"]))
            out.append(gauge("netops_api_budget_calls_per_second", "Configured API budget per second.",
                             api["budget_per_second"]))
            out.append(gauge("netops_api_utilisation_percent", "KPI: calls in the last hour as % of the hourly budget.",
                             api["utilisation_percent"]))
            out.append(gauge("netops_api_unauthorized_last_hour", "HTTP 401 answers in the last hour.",
                             api["unauthorized_last_hour"]))
            out.append(gauge("netops_api_rate_limited_last_hour", "HTTP 429 answers in the last hour.",
                             api["rate_limited_last_hour"]))
            rem = api["rate_limit_remaining"]
            out.append(gauge("netops_api_rate_limit_remaining", "Rate-limit budget the API last reported as remaining.",
                             labels=["window"], samples=[(["secondly"], rem["secondly"]), (["hourly"], rem["hourly"])]))
        keys = s.get("api_keys")
        if keys is not None:  # families even with no key row: the alert rules reference them
            for name, field_, doc in (
                    ("netops_api_key_calls_last_hour", "calls_last_hour", "Slots claimed in the last hour, per application key."),
                    ("netops_api_key_budget_per_hour", "per_hour", "Hourly limit of each key (configured, or the API's if lower)."),
                    ("netops_api_key_budget_per_second", "per_second", "Per-second limit of each key."),
                    ("netops_api_key_rate_limited_last_hour", "rate_limited_last_hour", "HTTP 429s per key, last hour."),
                    ("netops_api_key_token_ttl_seconds", "token_ttl_seconds", "Seconds left on each key's token."),
                    ("netops_api_key_set_aside", "set_aside", "1 when the key's secret was refused and it is set aside.")):
                out.append(gauge(name, doc, labels=["key"],
                                 samples=[([k["label"]], None if k[field_] is None else float(k[field_])) for k in keys]))
        tok = s["token"]
        out.append(gauge("netops_token_present", "1 when an API token is stored.", 1 if tok["present"] else 0))
        out.append(gauge("netops_token_usable", "1 when the stored token is present, unexpired and not refused "
                         "by the API.", tok.get("usable")))
        out.append(gauge("netops_secret_valid_until_timestamp_seconds",
                         "Unix time the 42 application secret expires (as the token endpoint said).",
                         tok.get("secret_valid_until_unix")))
        out.append(gauge("netops_token_ttl_seconds", "Seconds until the stored API token expires.",
                         tok["ttl_seconds"]))
        bl = s.get("backlog")
        if bl:
            out.append(gauge("netops_backlog_available", "1 when the phase-09 backlog tables exist.",
                             1 if bl["available"] else 0))
            if bl["available"]:
                out.append(gauge("netops_backlog_items", "Backlog items by state (done items not counted).",
                                 labels=["state"], samples=[([k], bl[k]) for k in ("pending", "processing", "failed")]))
        if s.get("tables"):
            out.append(gauge("netops_table_rows", "Rows per mirrored table (exact when small, else the catalog estimate).",
                             labels=["table"], samples=[([t], v["rows"]) for t, v in s["tables"].items()]))
        lg = s["logs"]
        out.append(gauge("netops_log_bytes", "Bytes used by all files in the log dir.", lg["bytes"]))
        out.append(gauge("netops_log_file_bytes", "Size of each component's current log file.", labels=["component"],
                         samples=[([c], b) for c, b in lg["files"].items()]))
        disk = s.get("disk") or {}
        out.append(gauge("netops_disk_free_percent", "Free space on the filesystem of the log and state dirs.",
                         labels=["dir"], samples=[([k], d["free_percent"]) for k, d in disk.items()]))
        if s.get("nginx"):
            out.append(gauge("netops_nginx_up", "1 when nginx answered NETOPS_NGINX_URL.", s["nginx"]["up"]))
        if s.get("alerts"):
            out.append(gauge("netops_alert_firing",
                             "1 while the rule fires, 0 when clear; absent when its value is unknown. The same "
                             "verdicts as `netops status` and `netops alerts check`.", labels=["alert", "severity"],
                             samples=[([n, a["severity"]], None if a["state"] == "unknown" else
                                       (1 if a["state"] == "firing" else 0)) for n, a in s["alerts"].items()]))
        q = s.get("quality")
        if q and q.get("checked_at_unix"):
            out.append(gauge("netops_data_quality_violations", "KPI: violating rows found by the last `netops check`.",
                             q["violations"]))
            out.append(gauge("netops_data_quality_info_rows", "Informational dangling references (by design).",
                             q["info"]))
            out.append(gauge("netops_data_quality_checked_timestamp_seconds", "Unix time of the last `netops check`.",
                             q["checked_at_unix"]))
        yield from (g for g in out if g is not None)


def build_registry(snapshot: dict[str, Any], registry: CollectorRegistry | None = None) -> CollectorRegistry:
    registry = registry if registry is not None else CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return registry


def prometheus_text(snapshot: dict[str, Any], registry: CollectorRegistry | None = None) -> str:
    return generate_latest(build_registry(snapshot, registry)).decode("utf-8")


# --- files -----------------------------------------------------------------------------------

def atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    """Temp file in the same directory, fsync, then os.replace: a reader (nginx, a scraper, a
    cron job) sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_metrics(settings: Settings, snapshot: dict[str, Any]) -> list[Path]:
    """Write metrics_latest.json and metrics.prom into the metrics dir; return the paths."""
    out_dir = settings.metrics_path
    json_path = out_dir / JSON_NAME
    prom_path = out_dir / PROM_NAME
    atomic_write(json_path, json.dumps(snapshot, indent=2, default=str) + "\n")
    atomic_write(prom_path, prometheus_text(snapshot))
    return [json_path, prom_path]


def write_textfile(directory: Path, snapshot: dict[str, Any]) -> Path:
    """node_exporter textfile-collector file (prometheus_client writes it temp + rename)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / TEXTFILE_NAME
    write_to_textfile(str(path), build_registry(snapshot))
    return path


def metrics_loop(settings: Settings, dsn_fn: Any, iterations: int | None = None,
                 sleep: Any = time.sleep) -> int:
    """Rewrite the metrics files every BACKLOG_METRIC_INTERVAL seconds; return writes done.

    The interval is measured start to start, so a slow snapshot does not make the files drift
    later and later. Failures are logged and the loop goes on: the next write may succeed.
    """
    from netops.log import get_logger

    log = get_logger("metrics", settings.log_path)
    done = 0
    while iterations is None or done < iterations:
        started = time.monotonic()
        try:
            snap = collect_snapshot(settings, dsn_fn())
            write_metrics(settings, snap)
            log.info(f"wrote metrics (database up={snap['database']['up']}) to {settings.metrics_path}")
        except Exception as exc:  # keep the loop alive: cron would not restart it for an hour
            log.error(f"metrics write failed: {exc}; retrying in {settings.backlog_metric_interval}s")
        done += 1
        if iterations is not None and done >= iterations:
            break
        sleep(max(0.0, settings.backlog_metric_interval - (time.monotonic() - started)))
    return done
