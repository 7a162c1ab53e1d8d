"""history.json: the last 24 hours the status page draws (calls per hour, sync runs, backlog
depth, rows per table), written next to status.json by the same cron job, in the same process
(`netops status --json --output ... --history ...`: evaluate_with_history, one evaluation, so the
backlog depth and table counts both files show are read once, on one connection).

Why a file and not a query from the page: nginx serves static files only (no code runs on a
request), and a page that needs the database to draw would go blank exactly when an operator
looks at it because something is wrong. So the page draws the last history.json written and
says how old it is; when the database is down, the previous file is left as it was (`netops
metrics history`: exit 2, one line; the cron job's `status --history`: one line per outage) and
the page shows both the outage (from status.json) and the age of the graphs.

Where the series come from:
- calls per hour: `netops.api_calls` (a row per attempt), 24 clock hours;
- sync duration per run: `netops.sync_runs` grouped by run_id, the last RUNS_SHOWN runs;
- backlog depth and rows per table: no bookkeeping table remembers them, so each run of this
  command stores one row of `netops.monitor_samples` (migration 011) and reads them back.

It is also where the monitor's tables are kept bounded: samples older than SAMPLES_KEEP_HOURS
and `netops.api_calls` rows older than NETOPS_API_CALLS_KEEP_DAYS are deleted here, at most
PRUNE_BATCH rows per table per run (a first prune of a long-lived box catches up over a few
minutes instead of holding one long delete). The API-call counters are running totals
(netops/db/counters.py), so pruning does not make them go down.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg2

from netops.config import Settings
from netops.db import api_calls, history, monitor_facts
from netops.db.monitor_facts import BacklogFacts, TableCount
from netops.monitor.facts import iso, utcnow

if TYPE_CHECKING:
    from netops.monitor.evaluation import Evaluation, Facts

SCHEMA_VERSION = 1
HISTORY_NAME = "history.json"
HOURS = 24
RUNS_SHOWN = 30
SAMPLES_KEEP_HOURS = 48
#: backlog samples are drawn per bucket (the max within it): 144 points for 24 h, whatever the rate
SAMPLE_BUCKET_SECONDS = 600
PRUNE_BATCH = 50_000


def history_text(doc: dict[str, Any]) -> str:
    """The bytes of history.json, whichever command writes it (compact: the page fetches it)."""
    return json.dumps(doc, separators=(",", ":")) + "\n"


class HistoryUnavailable(Exception):
    """The database (or its netops schema) cannot be read: nothing is written."""


def _sample(cur: Any, backlog: BacklogFacts, tables: dict[str, TableCount]) -> None:
    """Store this minute's backlog depth and rows per table (the facts already read)."""
    depth = (backlog.pending, backlog.processing, backlog.failed) if backlog.available else (None, None, None)
    history.store_sample(cur, depth, {n: t.rows for n, t in tables.items()})


def _prune(cur: Any, settings: Settings) -> dict[str, int]:
    return {"monitor_samples": history.prune_samples(cur, SAMPLES_KEEP_HOURS, PRUNE_BATCH),
            "api_calls": api_calls.prune_api_calls(cur, settings.api_calls_keep_days, PRUNE_BATCH)}


def _calls_by_hour(cur: Any) -> list[dict[str, Any]]:
    """24 clock hours, oldest first, the current (partial) hour last; every hour present."""
    return [{"hour_unix": h, "ok": ok, "rate_limited": r429, "unauthorized": r401, "errors": err, "calls": n}
            for h, ok, r429, r401, err, n in history.calls_by_hour(cur, HOURS)]


def _runs(cur: Any, lock_held: bool | None = None) -> list[dict[str, Any]]:
    """The last RUNS_SHOWN `netops sync` runs, oldest first, each with its phases' durations.
    Phase names are whatever the pipeline wrote (opaque here). `lock_held`: as already read."""
    lock_held = monitor_facts.sync_lock_held(cur) if lock_held is None else lock_held
    runs: dict[str, dict[str, Any]] = {}
    for run_id, phase, status, started, seconds, rows in history.recent_run_phases(cur, RUNS_SHOWN):
        if status == "running" and not lock_held:  # its process is gone (netops/monitor/facts.py, DEAD_RUN_NOTE)
            status = "interrupted"
        r = runs.setdefault(run_id, {"run_id": run_id, "started_unix": started, "phases": []})
        r["phases"].append({"phase": phase, "status": status, "started_unix": started,
                            "seconds": round(seconds, 3), "rows": rows})
    out = []
    for r in runs.values():
        statuses = {p["status"] for p in r["phases"]}
        r["status"] = next((s for s in ("running", "interrupted", "failed") if s in statuses),
                           "unchanged" if statuses == {"unchanged"} else "success")
        end = max(p["started_unix"] + p["seconds"] for p in r["phases"])
        r["duration_seconds"] = round(end - r["started_unix"], 3)
        r["rows_written"] = sum(p["rows"] for p in r["phases"])
        out.append(r)
    return out  # oldest first: the query orders by start


def _backlog_series(cur: Any) -> list[dict[str, Any]]:
    return [{"at_unix": b, "pending": p, "processing": pr, "failed": fl}
            for b, p, pr, fl in history.backlog_series(cur, HOURS, SAMPLE_BUCKET_SECONDS)]


def history_document(cur: Any, settings: Settings, facts: Facts) -> dict[str, Any]:
    """Take this minute's sample, prune, and read the 24 h series, on `cur`, from `facts` (an
    evaluation's Facts, netops/monitor/evaluation.py) read on the same connection just before:
    the backlog, the table counts, the sync lock and the budget are not read a second time.
    Raises HistoryUnavailable when the schema has no monitor_samples table."""
    if not monitor_facts.relation_exists(cur, "netops.monitor_samples"):
        raise HistoryUnavailable("the netops schema has no monitor_samples table; run `netops db migrate`")
    backlog = facts.backlog if facts.backlog is not None else monitor_facts.backlog_facts(cur)
    tables = facts.tables if facts.tables is not None else monitor_facts.table_counts(cur)
    _sample(cur, backlog, tables)
    pruned = _prune(cur, settings)
    now = facts.now
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso(now),
        "generated_at_unix": round(now.timestamp(), 3),
        "api": {"budget_per_hour": facts.budget.per_hour, "hours": _calls_by_hour(cur)},
        "sync_runs": _runs(cur, facts.lock_held),
        "backlog": {"available": backlog.available,
                    "samples": _backlog_series(cur) if backlog.available else []},
    }
    before = history.table_rows_since(cur, HOURS)
    doc["tables"] = {n: {"rows": t.rows, "exact": t.exact, "rows_24h_ago": before.get(n)}
                     for n, t in tables.items()}
    doc["retention"] = {"api_calls_days": settings.api_calls_keep_days,
                        "samples_hours": SAMPLES_KEEP_HOURS, "pruned": pruned}
    return doc


def collect_history(settings: Settings, dsn: str | None) -> dict[str, Any]:
    """history.json on its own (`netops metrics history`): read the few facts it needs, then
    history_document(). Raises HistoryUnavailable when the database or the schema cannot be
    read (the caller keeps the last file)."""
    from netops.monitor.evaluation import Facts

    if dsn is None:
        raise HistoryUnavailable("no DSN: NETOPS_DSN is unset and no embedded server")
    known = Facts(now=utcnow(), budget=settings.budget)
    try:
        with monitor_facts.connect(dsn) as conn, conn.cursor() as cur:
            if monitor_facts.relation_exists(cur, "netops.monitor_samples"):
                known.backlog, known.tables = monitor_facts.backlog_facts(cur), monitor_facts.table_counts(cur)
            return history_document(cur, settings, known)
    except psycopg2.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HistoryUnavailable(first) from None


@dataclass
class StatusAndHistory:
    """One evaluation and the history.json written from it (the status-json cron job)."""

    evaluation: Evaluation | None
    history: dict[str, Any] | None = None  # None: not written (see `unavailable`)
    unavailable: str | None = None         # why history.json could not be made


def evaluate_with_history(settings: Settings, dsn: str | None, check_services: bool = True) -> StatusAndHistory:
    """The status evaluation and history.json in one pass on one connection: the facts both
    show (backlog depth, table counts, the sync lock, the budget) are read once, by the
    evaluation, and history_document() runs on its connection right after. Never raises for a
    sick box: the status document says what is wrong, `unavailable` why there is no history."""
    from netops.monitor.evaluation import evaluate

    out = StatusAndHistory(evaluation=None)

    def then(cur: Any, facts: Facts) -> None:
        try:
            out.history = history_document(cur, settings, facts)
        except HistoryUnavailable as exc:
            out.unavailable = str(exc)
        except psycopg2.Error as exc:  # autocommit: the facts already read stay good
            out.unavailable = (str(exc).strip().splitlines() or [type(exc).__name__])[0]

    out.evaluation = evaluate(settings, dsn, check_services=check_services, then=then)
    if out.history is None and out.unavailable is None:  # the evaluation never reached `then`
        f = out.evaluation.facts
        out.unavailable = f.db_error or ("the database has no netops schema; run `netops db migrate`"
                                         if f.db_up else "database unreachable")
    return out


#: Marks an outage of history.json in the state dir: its first failure is said once (one line in
#: cron_output.log per outage, not one a minute); status.json shows the outage meanwhile.
OUTAGE_MARK = "history_unavailable"


def first_failure(settings: Settings, reason: str) -> bool:
    """Record that history.json could not be written; True only for the first failure since it
    was last written (the caller prints one line then). An unwritable state dir: True always
    (better a line a minute than silence)."""
    mark = settings.state_path / OUTAGE_MARK
    if mark.exists():
        return False
    try:
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.write_text(reason + "\n")
    except OSError:
        return True
    return True


def written_again(settings: Settings) -> None:
    """history.json was written: the outage, if any, is over (the next failure is said again)."""
    with contextlib.suppress(OSError):
        (settings.state_path / OUTAGE_MARK).unlink(missing_ok=True)
