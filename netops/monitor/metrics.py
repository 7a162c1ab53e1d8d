"""Metrics: the evaluation (netops/monitor/evaluation.py) rendered as `metrics_latest.json` and
as Prometheus text.

Both views render one typed Snapshot (the evaluation plus the log files' sizes and the tasks'
last successes, read once), never each other's output: a number in `metrics_latest.json` and on
/metrics is the same number, and an alert's value is the same verdict both render. Values are
gauges over windows read from bookkeeping (calls in the last hour, the last run of each phase),
plus the all-time counters the database keeps (netops/db/counters.py): netops commands are short-lived
cron jobs, so no process lives long enough to keep a counter.

Prometheus output goes through prometheus_client with a CollectorRegistry passed in (no global
registry), so tests and the CLI can build as many independent registries as they like.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from netops import stop
from netops.config import Settings
from netops.monitor.facts import STABLE_PHASES, KeyRow, PhaseFacts, iso
from netops.monitor.files import atomic_write, log_files

if TYPE_CHECKING:
    from netops.db.counters import Counters
    from netops.db.monitor_facts import BacklogFacts
    from netops.monitor.evaluation import Evaluation, Facts

JSON_NAME = "metrics_latest.json"
PROM_NAME = "metrics.prom"
TEXTFILE_NAME = "netops.prom"


def _ts(dt: datetime | None) -> float | None:
    return dt.timestamp() if dt is not None else None


#: Version of the metrics_latest.json layout (docs/observability.md documents every field); it
#: changes when a field is renamed or removed, so a reader can refuse a layout it does not know.
SCHEMA_VERSION = 2


def collect_snapshot(settings: Settings, dsn: str | None, evaluation: Evaluation | None = None) -> Snapshot:
    """One evaluation made now (netops/monitor/evaluation.py), with the all-time counters
    (netops/db/counters.py, read on the same connection), as the Snapshot both metrics views
    render. A database that cannot be reached gives `database.up = 0` and its sections with null
    values, never an exception: an exporter that dies when the thing it watches dies tells you
    nothing."""
    from netops.monitor.evaluation import evaluate

    ev = evaluation if evaluation is not None else evaluate(settings, dsn, counters=True)
    return snapshot_of(ev)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("netops")
    except Exception:  # not installed (a bare checkout): say so rather than guess
        return "unknown"


@dataclass(frozen=True)
class Snapshot:
    """One evaluation and what the metrics add to it, read once: metrics_latest.json and the
    Prometheus text both render this, so a number in one is the same number in the other (file
    sizes and timestamps included). The values both show that are derived from the facts
    (ratios, ages, yes/no as 1/0) are computed here, once."""

    ev: Evaluation
    version: str
    log_file_bytes: dict[str, int]  # component -> size of its current log file
    last_success: dict[str, float]  # task -> unix time it last succeeded

    @property
    def facts(self) -> Facts:
        return self.ev.facts

    @property
    def counters(self) -> Counters | None:
        return self.ev.facts.counters

    @property
    def generated_at_unix(self) -> float:
        return round(self.facts.now.timestamp(), 3)

    @property
    def database_up(self) -> int:
        return 1 if self.facts.db_up else 0

    @property
    def schema_present(self) -> int | None:
        return None if self.facts.schema is None else (1 if self.facts.schema else 0)

    @property
    def token_usable(self) -> int:
        return 1 if self.facts.token.usable else 0

    @property
    def nginx_up(self) -> int | None:
        """None: no nginx URL configured (not checked)."""
        ok = self.facts.nginx.ok
        return None if ok is None else (1 if ok else 0)

    @property
    def utilisation_ratio(self) -> float | None:
        """Calls in the last hour / every key's hourly budget summed (N keys, N budgets)."""
        calls = self.facts.calls_this_hour  # the one figure status and the dashboard show
        return None if calls is None else round(calls / self.facts.budget.per_hour, 4)

    @property
    def oldest_success_unix(self) -> float | None:
        return _ts(self.facts.oldest_stable_success)

    @property
    def oldest_success_age_seconds(self) -> float | None:
        oldest = self.oldest_success_unix
        return round(self.facts.now.timestamp() - oldest, 1) if oldest else None

    @property
    def key_rows(self) -> list[KeyRow] | None:
        """The readable key rows; None while the database (their windows, set-aside state) is unknown."""
        f = self.facts
        return [k for k in f.keys if k.error is None] if (f.db_up and f.schema) else None

    @property
    def quality_checked_unix(self) -> float | None:
        q = self.facts.quality
        return _ts(q.checked_at) if q else None

    @property
    def quality_violations(self) -> int | None:
        """Violating rows found by the last `netops check`; None when none ran (or unknown)."""
        q = self.facts.quality
        return q.violations if q and q.checked_at else None


    @property
    def backup_failed(self) -> int | None:
        """1/0 for the latest backup attempt; None when none is recorded."""
        ok = self.facts.backup.last_ok
        return None if ok is None else (0 if ok else 1)


def snapshot_of(ev: Evaluation) -> Snapshot:
    """The Snapshot of an Evaluation: it adds the log files' sizes and the tasks' last successes
    (the counters', and the token store's mtime: it is rewritten only by a successful refresh)."""
    f, settings = ev.facts, ev.settings
    tasks: dict[str, float] = dict(f.counters.last_success) if f.counters is not None else {}
    with contextlib.suppress(OSError):
        if f.token.present and not f.token.error:
            tasks["token_refresh"] = round(settings.token_file.stat().st_mtime, 3)
    files = {c: p.stat().st_size for c, p in log_files(settings.log_path).items()}
    return Snapshot(ev, _version(), files, tasks)


# --- metrics_latest.json ---------------------------------------------------------------------

def metrics_document(s: Snapshot) -> dict[str, Any]:
    """The metrics_latest.json document of a Snapshot (docs/observability.md)."""
    f, settings = s.facts, s.ev.settings
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso(f.now),
        "generated_at_unix": s.generated_at_unix,
        "build": {"version": s.version},
        "state": s.ev.state,
        "database": {"up": s.database_up, "size_bytes": f.db_size, "error": f.db_error,
                     "version": f.db_version, "schema": s.schema_present},
        "sync": _sync_section(s),
        "api": _api_section(s),
        "backlog": _backlog_section(f.backlog),
        "freshness": _freshness_json(s),
        "open_sessions": _open_sessions_json(s),
        "quality": _quality_section(s),
        "counters": _counters_section(s.counters),
        "tasks": {"last_success_unix": s.last_success},
        "tables": None if f.tables is None else {n: {"rows": t.rows, "exact": t.exact} for n, t in f.tables.items()},
        "logs": {"dir": str(settings.log_path), "bytes": f.log_bytes, "files": s.log_file_bytes},
        "api_keys": None if s.key_rows is None else [k.as_json() for k in s.key_rows],
        "disk": {k: {"path": d.path, "free_percent": d.free_percent, "free_ratio": d.free_ratio}
                 for k, d in f.disk.items()},
        "backup": {"last_success_unix": _ts(f.backup.good_at), "last_bytes": f.backup.good_bytes,
                   "last_failed": s.backup_failed},
        "nginx": None if s.nginx_up is None else {"up": s.nginx_up, "url": f.nginx.url},
        "token": _token_section(s),
        "kpi": {"api_utilisation_ratio": s.utilisation_ratio, "data_quality_violations": s.quality_violations},
        "alerts": {v.rule.name: {"state": v.state, "severity": v.rule.severity, "value": _num(v.value),
                                 "threshold": v.threshold, "prom_threshold": v.rule.prom_threshold(settings)}
                   for v in s.ev.verdicts},
    }
    return doc


def _open_sessions_json(s: Snapshot) -> dict[str, Any] | None:
    from netops.monitor.evaluation import open_sessions_doc

    return open_sessions_doc(s.facts)


def _freshness_json(s: Snapshot) -> dict[str, Any] | None:
    from netops.monitor.evaluation import freshness_doc

    return freshness_doc(s.facts, s.ev.settings)


def _num(v: float | None) -> float | None:
    return None if v is None or v == float("inf") else v


def _counters_section(counts: Counters | None) -> dict[str, Any]:
    if counts is None:
        return {"api_calls": None, "sync_runs": None, "rows_written": None, "backlog_processed": None}
    return {
        "api_calls": [{"endpoint": e, "code": c, "calls": n} for (e, c), n in sorted(counts.api_calls.items())],
        "sync_runs": [{"phase": p, "outcome": o, "runs": n} for (p, o), n in sorted(counts.runs.items())],
        "rows_written": [{"table": t, "kind": k, "rows": n} for (t, k), n in sorted(counts.rows_written.items())],
        "backlog_processed": counts.backlog_processed,
    }


def _backlog_section(b: BacklogFacts | None) -> dict[str, Any]:
    if b is None:
        return {"available": None, "pending": None, "processing": None, "failed": None}
    return {"available": b.available, "pending": b.pending, "processing": b.processing, "failed": b.failed}


def _quality_section(s: Snapshot) -> dict[str, Any]:
    q = s.facts.quality
    return {"available": q.available if q else None, "checked_at_unix": s.quality_checked_unix,
            "violations": s.quality_violations, "info": q.info if q else None, "by_kind": q.by_check if q else None}


def _token_section(s: Snapshot) -> dict[str, Any]:
    t = s.facts.token
    return {"present": t.present, "ttl_seconds": t.ttl_seconds, "usable": s.token_usable,
            "expires_unix": _ts(t.expires_at), "refused_at_unix": _ts(t.refused_at),
            "secret_valid_until_unix": _ts(t.secret_valid_until)}


def _phase_section(p: PhaseFacts) -> dict[str, Any]:
    return {
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


def _sync_section(s: Snapshot) -> dict[str, Any]:
    f = s.facts
    run = f.run
    return {
        "phases": None if f.phases is None else {p.phase: _phase_section(p) for p in f.phases},
        "lock_held": f.lock_held,
        "last_run": {"run_id": run.run_id if run else None, "status": run.status if run else None,
                     "duration_seconds": run.duration_seconds if run else None,
                     "finished_unix": _ts(run.finished_at) if run else None},
        "oldest_success_unix": s.oldest_success_unix,
        "oldest_success_age_seconds": s.oldest_success_age_seconds,
    }


def _api_section(s: Snapshot) -> dict[str, Any]:
    api, budget = s.facts.api, s.facts.budget
    known = api is not None
    return {
        "calls_last_hour": s.facts.calls_this_hour,
        "calls_last_15m": api.calls_15m if known else None,
        "calls_last_minute": api.calls_1m if known else None,
        "calls_per_minute": api.calls_per_minute if known else None,
        # every configured key's budget summed: N keys, N budgets
        "budget_per_hour": budget.per_hour,
        "budget_per_second": budget.per_second,
        "utilisation_ratio": s.utilisation_ratio,
        "by_code_last_hour": api.by_status_1h if known else None,
        "unauthorized_last_hour": api.unauthorized_1h if known else None,
        "rate_limited_last_hour": api.rate_limited_1h if known else None,
        "rate_limit_remaining": {"secondly": api.secondly_remaining if known else None,
                                 "hourly": api.hourly_remaining if known else None},
        "errors_by_hour": api.errors_by_hour if known else None,
    }


# --- Prometheus ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """One exported family: the metric table in docs/observability.md is generated from these
    (`netops metrics table`), and a test checks the export against them, so they cannot drift."""

    type: str     # gauge | counter | info
    unit: str     # base unit: seconds, bytes, ratio, timestamp, or a count of things
    labels: tuple[str, ...]
    help: str


#: Every family netops exports, in export order. Counters are named without `_total` here;
#: prometheus_client appends it to the sample name.
SPECS: dict[str, Spec] = {
    "netops_build_info": Spec("gauge", "", ("version",), "Always 1; the netops version that made this export."),
    "netops_metrics_generated_timestamp_seconds": Spec("gauge", "timestamp", (), "Unix time this snapshot was taken."),
    "netops_database_up": Spec("gauge", "bool", (), "1 when PostgreSQL answered the snapshot's queries."),
    "netops_database_size_bytes": Spec("gauge", "bytes", (), "pg_database_size of the netops database."),
    "netops_schema_present": Spec("gauge", "bool", (), "1 when the netops schema is migrated (absent: database down)."),
    "netops_api_calls": Spec("counter", "calls", ("endpoint", "code"),
                             "API attempts ever made, by endpoint and HTTP code (none = no answer); running "
                             "totals kept with netops.api_calls, so pruning those rows does not lower them; codes "
                             "200, 401, 429 and 500 of every known endpoint start at 0, so increase() counts a first burst."),
    "netops_api_calls_last_hour": Spec("gauge", "calls", ("code",),
                                       "API attempts in the last hour by HTTP code (401 and 429 always present); "
                                       "the window `netops alerts check` judges."),
    "netops_api_unauthorized_since_success": Spec("gauge", "calls", (),
                                                  "HTTP 401s in the last hour since the credentials last worked "
                                                  "(0 once a call or token refresh succeeds): api_unauthorized's value."),
    "netops_api_calls_last_15m": Spec("gauge", "calls", (),
                                      "API attempts in the last 15 minutes: the window api_calls_per_minute judges "
                                      "(its 15-minute mean), so both alert paths compare the same number."),
    "netops_api_budget_calls_per_hour": Spec("gauge", "calls", (),
                                             "Configured API budget per hour, every application key's summed."),
    "netops_api_budget_calls_per_second": Spec("gauge", "calls", (),
                                               "Configured API budget per second, every application key's summed."),
    "netops_api_utilisation_ratio": Spec("gauge", "ratio", (), "KPI: calls in the last hour / the hourly budget (0-1)."),
    "netops_api_budget_waiting_jobs": Spec("gauge", "processes", (),
                                           "Jobs waiting now for the hour's API budget (netops.api_waits): with the "
                                           "utilisation ratio, api_budget_spent's two causes."),
    "netops_api_rate_limit_remaining": Spec("gauge", "calls", ("window",),
                                            "Rate-limit budget the API last reported as remaining."),
    "netops_api_key_calls_last_hour": Spec("gauge", "calls", ("key",), "Slots claimed in the last hour, per application key."),
    "netops_api_key_budget_per_hour": Spec("gauge", "calls", ("key",), "Hourly limit of each key (configured, or the API's if lower)."),
    "netops_api_key_budget_per_second": Spec("gauge", "calls", ("key",), "Per-second limit of each key."),
    "netops_api_key_rate_limited_last_hour": Spec("gauge", "calls", ("key",), "HTTP 429s per key, last hour."),
    "netops_api_key_token_ttl_seconds": Spec("gauge", "seconds", ("key",), "Seconds left on each key's token."),
    "netops_api_key_set_aside": Spec("gauge", "bool", ("key",), "1 when the key's secret was refused and it is set aside."),
    "netops_sync_runs": Spec("counter", "runs", ("phase", "outcome"),
                             "Finished phase runs ever recorded in netops.sync_runs, by outcome "
                             "(success, failed, unchanged, interrupted)."),
    "netops_sync_rows_written": Spec("counter", "rows", ("table", "kind"),
                                     "Rows written by successful phase runs, by table and kind "
                                     "(inserted, updated, deleted), summed over netops.sync_runs."),
    "netops_sync_duration_seconds": Spec("gauge", "seconds", ("phase",),
                                         "Duration of the latest run of each phase (elapsed so far while running)."),
    "netops_sync_rows": Spec("gauge", "rows", ("phase", "kind"), "Rows handled by the latest run of each phase, by kind."),
    "netops_sync_last_success_timestamp_seconds": Spec("gauge", "timestamp", ("phase",),
                                                       "Unix time the phase last finished successfully; 0 for a stable "
                                                       "phase that never did (so `time() - x` is huge, not missing)."),
    "netops_sync_running": Spec("gauge", "bool", ("phase",), "1 while the phase is running."),
    "netops_sync_last_run_failed": Spec("gauge", "bool", ("phase",), "1 when the latest run of the phase failed."),
    "netops_sync_last_run_interrupted": Spec("gauge", "bool", ("phase",),
                                             "1 when the latest run of the phase was interrupted (signal, or its "
                                             "process died: the sync lock is not held)."),
    "netops_sync_last_run_unchanged": Spec("gauge", "bool", ("phase",),
                                           "1 when the latest run was skipped by `sync stable --if-changed` (no change)."),
    "netops_sync_last_run_duration_seconds": Spec("gauge", "seconds", (), "Duration of the latest `netops sync` (all its phases)."),
    "netops_task_last_success_timestamp_seconds": Spec("gauge", "timestamp", ("task",),
                                                       "Unix time each scheduled task last succeeded: sync_stable, "
                                                       "backlog_run, check, token_refresh."),
    "netops_backlog_available": Spec("gauge", "bool", (), "1 when the phase-09 backlog tables exist."),
    "netops_backlog_items": Spec("gauge", "items", ("state",), "Backlog items now queued, by state (pending, processing, failed)."),
    "netops_backlog_items_processed": Spec("counter", "items", ("outcome",),
                                           "Backlog items finished, by outcome (inserted, updated, stale, deleted, "
                                           "absent, held, failed); `backlog purge` resets it (rate() copes)."),
    "netops_resource_freshness_seconds": Spec("gauge", "seconds", ("resource",),
        "Now minus the end of the backlog resource's last fully applied window (absent: never detected)."),
    "netops_resource_freshness_target_seconds": Spec("gauge", "seconds", ("resource",),
        "The resource's freshness target (NETOPS_FRESHNESS_TARGETS, else the factor × the backlog schedule)."),
    "netops_resource_freshness_ratio": Spec("gauge", "ratio", ("resource",),
        "Freshness / target per backlog resource; the resource_stale rule fires above 1."),
    "netops_locations_open_sessions": Spec("gauge", "sessions", ("campus",),
        "Sessions still open (end_at null) in the mirror, per campus in scope; detect re-checks each one."),
    "netops_locations_oldest_open_seconds": Spec("gauge", "seconds", ("campus",),
        "Seconds since the oldest still-open session of the campus began (absent: none open)."),
    "netops_table_rows": Spec("gauge", "rows", ("table",), "Rows per mirrored table (exact when small, else the catalog estimate)."),
    "netops_token_present": Spec("gauge", "bool", (), "1 when an API token is stored."),
    "netops_token_usable": Spec("gauge", "bool", (), "1 when the stored token is present, unexpired and not refused by the API."),
    "netops_token_expiry_timestamp_seconds": Spec("gauge", "timestamp", (), "Unix time the stored API token expires."),
    "netops_secret_expiry_timestamp_seconds": Spec("gauge", "timestamp", (),
                                                   "Unix time the 42 application secret expires (as the token endpoint said)."),
    "netops_log_bytes": Spec("gauge", "bytes", (), "Bytes used by all files in the log dir."),
    "netops_log_file_bytes": Spec("gauge", "bytes", ("component",), "Size of each component's current log file."),
    "netops_disk_free_ratio": Spec("gauge", "ratio", ("dir",), "Free space / size of the filesystem of the log and state dirs (0-1)."),
    "netops_backup_last_success_timestamp_seconds": Spec("gauge", "timestamp", (),
                                                          "Unix time the last good `netops db backup` ended."),
    "netops_backup_last_bytes": Spec("gauge", "bytes", (), "Size of the last good backup's dump file."),
    "netops_backup_last_failed": Spec("gauge", "bool", (), "1 when the latest backup attempt failed, 0 when it worked."),
    "netops_nginx_up": Spec("gauge", "bool", (), "1 when nginx answered NETOPS_NGINX_URL (absent: not configured)."),
    "netops_data_quality_violations": Spec("gauge", "rows", (), "KPI: violating rows found by the last `netops check`."),
    "netops_data_quality_info_rows": Spec("gauge", "rows", (), "Informational dangling references (by design)."),
    "netops_data_quality_checked_timestamp_seconds": Spec("gauge", "timestamp", (), "Unix time of the last `netops check`."),
    "netops_alert_firing": Spec("gauge", "bool", ("alert", "severity"),
                                "1 while the rule fires, 0 when clear; absent when its value is unknown. The same "
                                "verdicts as `netops status` and `netops alerts check`."),
    "netops_alert_threshold": Spec("gauge", "metric's unit", ("alert",),
                                   "Each rule's threshold from the netops config, in the unit of the metric its "
                                   "Prometheus rule compares (the rules read it, so a config change needs no new rules)."),
}

Samples = list[tuple[list[str], float | None]]


class Families:
    """The families of one export, in the order they are added; each declared in SPECS."""

    def __init__(self) -> None:
        self.out: list[Any] = []

    def add(self, name: str, value: float | None = None, samples: Samples | None = None) -> None:
        """A family without labels is left out when its value is unknown; a labelled family is
        exported even with no sample (its alert rules reference it), unknown samples skipped."""
        spec = SPECS[name]
        cls = CounterMetricFamily if spec.type == "counter" else GaugeMetricFamily
        if not spec.labels:
            if value is None:
                return
            fam = cls(name, spec.help, labels=[])
            fam.add_metric([], float(value))
        else:
            fam = cls(name, spec.help, labels=list(spec.labels))
            for lv, v in samples or []:
                if v is not None:
                    fam.add_metric(lv, float(v))
        self.out.append(fam)


class SnapshotCollector(Collector):
    """Exposes one Snapshot as the `netops_*` families declared in SPECS, from its typed facts
    (the same Snapshot metrics_latest.json renders)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snap = snapshot

    def collect(self) -> Iterator[Any]:
        fams = Families()
        for section in (_database_families, _api_families, _key_families, _sync_families, _backlog_families,
                        _freshness_families, _file_families, _quality_families, _alert_families):
            section(fams, self.snap)
        yield from fams.out


def _database_families(fams: Families, s: Snapshot) -> None:
    fams.add("netops_build_info", samples=[([s.version], 1)])
    fams.add("netops_metrics_generated_timestamp_seconds", s.generated_at_unix)
    fams.add("netops_database_up", s.database_up)
    fams.add("netops_database_size_bytes", s.facts.db_size)
    fams.add("netops_schema_present", s.schema_present)


def _api_families(fams: Families, s: Snapshot) -> None:
    api, budget, counts = s.facts.api, s.facts.budget, s.counters
    if api is None:
        return
    calls = sorted(zero_initialised(counts.api_calls, s.ev.settings.cursus_id).items()) if counts is not None else []
    fams.add("netops_api_calls", samples=[([e, c], n) for (e, c), n in calls])
    by_code = {"401": 0, "429": 0, **api.by_status_1h}
    fams.add("netops_api_calls_last_hour", samples=[([k], v) for k, v in sorted(by_code.items())])
    # the rule's own value, so Prometheus clears api_unauthorized when netops does
    fams.add("netops_api_unauthorized_since_success",
             next((v.value for v in s.ev.verdicts if v.rule.name == "api_unauthorized"), None))
    fams.add("netops_api_calls_last_15m", api.calls_15m)
    fams.add("netops_api_budget_calls_per_hour", budget.per_hour)
    fams.add("netops_api_budget_calls_per_second", budget.per_second)
    fams.add("netops_api_utilisation_ratio", s.utilisation_ratio)
    fams.add("netops_api_budget_waiting_jobs", sum(1 for w in api.waits if w.reason == "hour"))
    fams.add("netops_api_rate_limit_remaining",
             samples=[(["secondly"], api.secondly_remaining), (["hourly"], api.hourly_remaining)])


#: The codes every endpoint's counter series exists for from the start, at 0: the ones the rules
#: and panels single out (401, 429) and the classes a panel stacks. Prometheus' increase()/rate()
#: only count what happens after a series' first scrape: a (endpoint, "429") series born at 3
#: would count those 3 as nothing (issue 22's lost first burst).
ZERO_CODES: tuple[str, ...] = ("200", "401", "429", "500")


def known_endpoints(cursus_id: int) -> list[str]:
    """The endpoints netops calls that can be named before any call: the token endpoint and every
    catalog source's path (per-id backlog paths cannot be; their endpoint's first call names them)."""
    from netops.catalog import TABLES

    paths = {"/oauth/token"}
    for spec in TABLES:
        path = getattr(spec.source, "path", None)
        if path:
            paths.add(path.replace("{cursus}", str(cursus_id)))
    return sorted(paths)


def zero_initialised(api_calls: dict[tuple[str, str], int], cursus_id: int) -> dict[tuple[str, str], int]:
    """The all-time (endpoint, code) totals with a 0 for each ZERO_CODES code of every endpoint
    known (called before, or in the catalog), so each series a rule reads exists before its first event."""
    endpoints = set(known_endpoints(cursus_id)) | {e for e, _ in api_calls}
    out = {(e, c): 0 for e in endpoints for c in ZERO_CODES}
    out.update(api_calls)
    return out


#: per-key family -> the key row's value it exports
KEY_FAMILIES: tuple[tuple[str, Callable[[KeyRow], float | None]], ...] = (
    ("netops_api_key_calls_last_hour", lambda k: k.calls_last_hour),
    ("netops_api_key_budget_per_hour", lambda k: k.per_hour),
    ("netops_api_key_budget_per_second", lambda k: k.per_second),
    ("netops_api_key_rate_limited_last_hour", lambda k: k.rate_limited_last_hour),
    ("netops_api_key_token_ttl_seconds", lambda k: k.token_ttl_seconds),
    ("netops_api_key_set_aside", lambda k: k.set_aside),
)


def _key_families(fams: Families, s: Snapshot) -> None:
    keys = s.key_rows
    if keys is None:
        return
    for name, value in KEY_FAMILIES:  # families even with no key row: the alert rules reference them
        fams.add(name, samples=[([k.label], value(k)) for k in keys])


def _row_counts(p: PhaseFacts) -> tuple[tuple[str, int], ...]:
    return (("fetched", p.rows_fetched), ("inserted", p.rows_inserted), ("updated", p.rows_updated),
            ("deleted", p.rows_deleted), ("skipped", p.rows_skipped))


def _last_success(p: PhaseFacts, stable: set[str]) -> float | None:
    """0 for a stable phase that never succeeded (so `time() - x` is huge, not missing)."""
    if p.last_success_at is not None:
        return _ts(p.last_success_at)
    return 0.0 if p.phase in stable else None


def _sync_families(fams: Families, s: Snapshot) -> None:
    phases, counts = s.facts.phases, s.counters
    if phases is not None:
        runs = sorted(counts.runs.items()) if counts is not None else []
        written = sorted(counts.rows_written.items()) if counts is not None else []
        fams.add("netops_sync_runs", samples=[([p, o], n) for (p, o), n in runs])
        fams.add("netops_sync_rows_written", samples=[([t, k], n) for (t, k), n in written])
        fams.add("netops_sync_duration_seconds", samples=[([p.phase], p.duration_seconds) for p in phases])
        fams.add("netops_sync_rows", samples=[([p.phase, k], n) for p in phases if p.last_status
                                              for k, n in _row_counts(p)])
        stable = {p for p, _ in STABLE_PHASES}
        seen = {p.phase for p in phases}
        fams.add("netops_sync_last_success_timestamp_seconds",
                 samples=[([p.phase], _last_success(p, stable)) for p in phases]
                 + [([p], 0.0) for p in sorted(stable - seen)])
        fams.add("netops_sync_running", samples=[([p.phase], 1 if p.last_status == "running" else 0) for p in phases])
        for name, status in (("netops_sync_last_run_failed", "failed"),
                             ("netops_sync_last_run_interrupted", "interrupted"),
                             ("netops_sync_last_run_unchanged", "unchanged")):
            fams.add(name, samples=[([p.phase], 1 if p.last_status == status else 0)
                                    for p in phases if p.last_status])
        run = s.facts.run
        fams.add("netops_sync_last_run_duration_seconds", run.duration_seconds if run else None)
    fams.add("netops_task_last_success_timestamp_seconds",
             samples=[([t], v) for t, v in sorted(s.last_success.items())])


def _backlog_families(fams: Families, s: Snapshot) -> None:
    b = s.facts.backlog
    if b is None:
        return
    fams.add("netops_backlog_available", 1 if b.available else 0)
    if b.available:
        fams.add("netops_backlog_items",
                 samples=[(["pending"], b.pending), (["processing"], b.processing), (["failed"], b.failed)])
        processed = (s.counters.backlog_processed if s.counters is not None else None) or {}
        fams.add("netops_backlog_items_processed", samples=[([o], n) for o, n in sorted(processed.items())])


def _freshness_families(fams: Families, s: Snapshot) -> None:
    """Issue 23: each backlog resource's freshness, its target and their ratio (the evaluation's),
    and the open sessions per campus in scope."""
    from netops.monitor.evaluation import freshness_doc, open_sessions_doc

    doc = freshness_doc(s.facts, s.ev.settings)
    if doc is None:
        return
    for name, key in (("netops_resource_freshness_seconds", "seconds"),
                      ("netops_resource_freshness_target_seconds", "target_seconds"),
                      ("netops_resource_freshness_ratio", "ratio")):
        fams.add(name, samples=[([r], d[key]) for r, d in doc.items()])
    sessions = open_sessions_doc(s.facts) or {}   # the families (no sample) with no campus in scope
    fams.add("netops_locations_open_sessions", samples=[([c], d["open"]) for c, d in sessions.items()])
    fams.add("netops_locations_oldest_open_seconds",
             samples=[([c], d["oldest_seconds"]) for c, d in sessions.items() if d["oldest_seconds"] is not None])


def _file_families(fams: Families, s: Snapshot) -> None:
    """Tables, the token, logs, disks and nginx."""
    f = s.facts
    if f.tables:
        fams.add("netops_table_rows", samples=[([t], c.rows) for t, c in f.tables.items()])
    tok = f.token
    fams.add("netops_token_present", 1 if tok.present else 0)
    fams.add("netops_token_usable", s.token_usable)
    fams.add("netops_token_expiry_timestamp_seconds", _ts(tok.expires_at))
    fams.add("netops_secret_expiry_timestamp_seconds", _ts(tok.secret_valid_until))
    fams.add("netops_log_bytes", f.log_bytes)
    fams.add("netops_log_file_bytes", samples=[([c], b) for c, b in s.log_file_bytes.items()])
    fams.add("netops_disk_free_ratio", samples=[([k], d.free_ratio) for k, d in f.disk.items()])
    fams.add("netops_backup_last_success_timestamp_seconds", _ts(f.backup.good_at))
    fams.add("netops_backup_last_bytes", f.backup.good_bytes)
    fams.add("netops_backup_last_failed", s.backup_failed)
    fams.add("netops_nginx_up", s.nginx_up)


def _quality_families(fams: Families, s: Snapshot) -> None:
    q = s.facts.quality
    if q is not None and s.quality_checked_unix:
        fams.add("netops_data_quality_violations", s.quality_violations)
        fams.add("netops_data_quality_info_rows", q.info)
        fams.add("netops_data_quality_checked_timestamp_seconds", s.quality_checked_unix)


def _alert_families(fams: Families, s: Snapshot) -> None:
    verdicts, settings = s.ev.verdicts, s.ev.settings
    fams.add("netops_alert_firing", samples=[([v.rule.name, v.rule.severity], None if v.firing is None else
                                              (1 if v.firing else 0)) for v in verdicts])
    fams.add("netops_alert_threshold", samples=[([v.rule.name], v.rule.prom_threshold(settings)) for v in verdicts])


def metric_table() -> str:
    """The metric table of docs/observability.md, from SPECS (a test keeps the doc equal to it)."""
    rows = ["| name | type | unit | labels | meaning |", "|---|---|---|---|---|"]
    for name, spec in SPECS.items():
        shown = f"{name}_total" if spec.type == "counter" else name
        labels = ", ".join(f"`{x}`" for x in spec.labels) or "-"
        rows.append(f"| `{shown}` | {spec.type} | {spec.unit or '-'} | {labels} | {spec.help.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def build_registry(snapshot: Snapshot, registry: CollectorRegistry | None = None) -> CollectorRegistry:
    registry = registry if registry is not None else CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return registry


def prometheus_text(snapshot: Snapshot, registry: CollectorRegistry | None = None) -> str:
    return generate_latest(build_registry(snapshot, registry)).decode("utf-8")


class TextfileConflict(ValueError):
    """Two netops .prom files in one directory: node_exporter's textfile collector reads every
    *.prom file of its directory, so every series would be exported twice and rejected as a
    duplicate."""


def _other_netops_prom(directory: Path, mine: str) -> Path | None:
    for other in sorted(Path(directory).glob("*.prom")):
        if other.name == mine:
            continue
        with contextlib.suppress(OSError), open(other, encoding="utf-8", errors="replace") as fh:
            if "netops_database_up" in fh.read(1 << 20):
                return other
    return None


def _check_alone(directory: Path, mine: str) -> None:
    other = _other_netops_prom(directory, mine)
    if other is not None:
        raise TextfileConflict(
            f"{other} already holds netops metrics, so writing {Path(directory) / mine} would make node_exporter's "
            "textfile collector see every series twice; keep one netops .prom file per directory: delete "
            f"{other.name}, or give --textfile-dir / NETOPS_METRICS_DIR different directories")


def link_in_log_dir(settings: Settings, json_path: Path) -> Path | None:
    """`<log_dir>/metrics_latest.json` -> the metrics dir's file, so `cat logs/metrics_latest.json
    | jq` works next to the logs. A symlink, replaced atomically (a regular file there is
    replaced too); nothing when both dirs are the same."""
    link = settings.log_path / JSON_NAME
    if link.resolve() == json_path.resolve():
        return None
    settings.log_path.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and os.readlink(link) == str(json_path):
        return link
    tmp = link.with_name(f".{JSON_NAME}.{os.getpid()}.lnk")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(str(json_path), tmp)
    os.replace(tmp, link)
    return link


def write_metrics(settings: Settings, snapshot: Snapshot) -> list[Path]:
    """Write metrics_latest.json and metrics.prom into the metrics dir (and the log dir's link
    to the JSON); return the paths written."""
    out_dir = settings.metrics_path
    json_path = out_dir / JSON_NAME
    prom_path = out_dir / PROM_NAME
    atomic_write(json_path, json.dumps(metrics_document(snapshot), indent=2, default=str) + "\n")
    atomic_write(prom_path, prometheus_text(snapshot))
    link = link_in_log_dir(settings, json_path)
    return [json_path, prom_path] + ([link] if link else [])


def write_textfile(directory: Path, snapshot: Snapshot) -> Path:
    """node_exporter textfile-collector file (prometheus_client writes it temp + rename). Refuses
    a directory that already holds another netops .prom file (TextfileConflict)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _check_alone(directory, TEXTFILE_NAME)
    path = directory / TEXTFILE_NAME
    write_to_textfile(str(path), build_registry(snapshot))
    return path


def metrics_loop(settings: Settings, dsn_fn: Any, iterations: int | None = None,
                 sleep: Any = stop.wait) -> int:
    """Rewrite the metrics files every BACKLOG_METRIC_INTERVAL seconds; return writes done.

    The interval is measured start to start, so a slow snapshot does not make the files drift
    later and later. Failures are logged and the loop goes on: the next write may succeed.
    """
    from netops.log import get_logger

    log = get_logger("metrics", settings.log_path)
    done = 0
    while (iterations is None or done < iterations) and not stop.requested():  # SIGINT/SIGTERM end it
        started = time.monotonic()
        try:
            snap = collect_snapshot(settings, dsn_fn())
            write_metrics(settings, snap)
            log.info(f"wrote metrics (database up={snap.database_up}) to {settings.metrics_path}")
        except Exception as exc:  # keep the loop alive: cron would not restart it for an hour
            log.error(f"metrics write failed: {exc}; retrying in {settings.backlog_metric_interval}s")
        done += 1
        if iterations is not None and done >= iterations:
            break
        sleep(max(0.0, settings.backlog_metric_interval - (time.monotonic() - started)))
    return done
