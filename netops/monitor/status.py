"""`netops status`: is this box healthy, in one glance (and one exit code for scripts).

The JSON shape is a promise to the Ansible area (docs/CONTRACTS.md): keys may be added, never
renamed or removed. The verdict is not decided here: it is the one evaluation's
(netops/monitor/evaluation.py, the table of every threshold), the same one `netops alerts check`,
the metrics and the dashboard render. Every firing rule is a problem; the state is the worst
severity among them — critical (exit 2), warning (exit 1), ok (exit 0) — so status cannot say OK
while an alert fires. A fact that cannot be read (the database is down) is null, not 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from netops.config import Settings
from netops.db.monitor_facts import BacklogFacts
from netops.monitor.evaluation import (
    Evaluation,
    Facts,
    check_nginx,
    evaluate,
    freshness_doc,
    open_sessions_doc,
    wait_line,
)
from netops.monitor.facts import PhaseFacts, iso
from netops.monitor.formatting import human_age, human_bytes, render_key_line

EXIT_CODES = {"ok": 0, "warning": 1, "critical": 2}
__all__ = ["EXIT_CODES", "carry_last_known", "check_nginx", "collect_status", "render_text", "status_document"]


def _age(now: datetime, ts: datetime | None) -> float | None:
    return round((now - ts).total_seconds(), 1) if ts else None


def collect_status(settings: Settings, dsn: str | None, check_services: bool = True) -> dict[str, Any]:
    """Evaluate now and render the status document. Never raises for a sick box: a failure is a
    problem in the document (that is the point of a status command)."""
    return status_document(evaluate(settings, dsn, check_services=check_services))


def status_document(ev: Evaluation) -> dict[str, Any]:
    """The `netops status --json` document of one evaluation (docs/CONTRACTS.md)."""
    f, settings = ev.facts, ev.settings
    doc: dict[str, Any] = {
        "state": ev.state,
        "checked_at": iso(f.now),
        "problems": _problems(ev),
        "services": {
            "postgresql": {"ok": f.db_up, "version": f.db_version, "error": f.db_error},
            "nginx": f.nginx.as_json(),
        },
        "phases": [_phase_doc(p, f.now) for p in f.phases or []],
        "last_sync": _last_sync_doc(f),
        # unknown (null) until the database answers: absent is a fact, not knowing is another
        "backlog": _backlog_doc(f.backlog),
        # issue 23: resource -> {seconds, target_seconds, ratio}; null while the database is unknown
        "freshness": freshness_doc(f, settings),
        # campus id -> {open, oldest_seconds}; null while unknown or with no campus in scope
        "open_sessions": open_sessions_doc(f),
        "tables": {name: {"rows": t.rows, "exact": t.exact, "bytes": t.bytes} for name, t in (f.tables or {}).items()},
        "database": {"size_bytes": f.db_size, "threshold_bytes": settings.alert_db_size_bytes},
        "disk": {name: d.as_json() for name, d in f.disk.items()},
        "backup": _backup_doc(f),
        "token": {"present": f.token.present, "ttl_seconds": f.token.ttl_seconds,
                  "expires_at": iso(f.token.expires_at), "secret_valid_until": iso(f.token.secret_valid_until),
                  "refused_at": iso(f.token.refused_at)},
        # the rules judged now (the same verdicts as `netops alerts check`), not a stored state
        "alerts": {"firing": [v.rule.name for v in ev.firing]},
        "known": f.db_up and bool(f.schema),
    }
    if f.api is not None:
        doc["api"] = _api_doc(f)
    doc["api_keys"] = [k.as_json() for k in f.keys]  # one row per application key
    if f.quality is not None:
        q = f.quality
        doc["quality"] = {"available": q.available, "checked_at": iso(q.checked_at),
                          "violations": q.violations, "info": q.info}
    doc["elapsed_ms"] = f.elapsed_ms
    return doc


def carry_last_known(doc: dict[str, Any], previous: dict[str, Any] | None, ev: Evaluation) -> None:
    """While the database is down, the alerts it fed are unknown, not resolved: add to `doc`
    (`alerts.last_known`) the ones the previous document had firing — the last one that read the
    database, or the ones it carried itself — each with `known_at`, when it was last judged.
    `previous`: the status.json this one replaces (the status-json cron job's --output file)."""
    if ev.facts.db_up or not isinstance(previous, dict):
        return
    blind = {v.rule.name for v in ev.verdicts if v.firing is None}  # judged now: not carried
    prev_alerts = previous.get("alerts") if isinstance(previous.get("alerts"), dict) else {}
    if ((previous.get("services") or {}).get("postgresql") or {}).get("ok"):
        carried = [{**p, "known_at": previous.get("checked_at")} for p in previous.get("problems") or []
                   if isinstance(p, dict)]
    else:
        carried = list(prev_alerts.get("last_known") or [])
    doc["alerts"]["last_known"] = [p for p in carried if p.get("check") in blind]


def _problems(ev: Evaluation) -> list[dict[str, str]]:
    """Every firing rule, critical first, with its message and the next step."""
    problems = [{"severity": v.rule.severity, "check": v.rule.name,
                 "message": f"{v.message}; {v.action}"} for v in ev.firing]
    problems.sort(key=lambda p: p["severity"] != "critical")
    return problems


def _round3(seconds: float | None) -> float | None:
    return round(seconds, 3) if seconds is not None else None


def _phase_doc(p: PhaseFacts, now: datetime) -> dict[str, Any]:
    return {
        "phase": p.phase,
        "table": p.table,
        "last_status": p.last_status,
        "last_finished_at": iso(p.finished_at),
        "age_seconds": _age(now, p.finished_at),
        "rows_inserted": p.rows_inserted,
        "rows_updated": p.rows_updated,
        "rows_deleted": p.rows_deleted,
        "duration_seconds": _round3(p.duration_seconds),
        "error": p.error,
        "running": p.last_status == "running",
        "pages_done": p.pages_done,
        "pages_total": p.pages_total,
        "rows_fetched": p.rows_fetched,
        "last_success_at": iso(p.last_success_at),
        "last_success_age_seconds": _age(now, p.last_success_at),
        "in_run": p.in_run,  # "fetching"/"queued": a live sync has not reached it (last_status is older)
    }


def _last_sync_doc(f: Facts) -> dict[str, Any]:
    run, now = f.run, f.now
    if run is None:
        return {"finished_at": None, "age_seconds": None, "status": None}
    doc: dict[str, Any] = {
        "finished_at": iso(run.finished_at),
        "age_seconds": _age(now, run.finished_at),
        "status": run.status,
        "run_id": run.run_id,
        "started_at": iso(run.started_at),
        "duration_seconds": _round3(run.duration_seconds),
        "lock_held": f.lock_held,
    }
    if f.oldest_stable_success is not None:
        doc["oldest_success_age_seconds"] = _age(now, f.oldest_stable_success)
    return doc


def _backlog_doc(b: BacklogFacts | None) -> dict[str, Any]:
    if b is None:
        return {"available": None, "pending": None, "processing": None, "failed": None}
    return {"available": b.available, "pending": b.pending, "processing": b.processing,
            "failed": b.failed, "oldest_pending_at": iso(b.oldest_pending_at)}


def _backup_doc(f: Facts) -> dict[str, Any]:
    """The last good backup (age, size, file) and the latest attempt; nulls until one is recorded."""
    b = f.backup
    return {"last_good_at": iso(b.good_at), "last_good_age_seconds": _age(f.now, b.good_at),
            "last_good_bytes": b.good_bytes, "last_good_path": b.good_path,
            "last_at": iso(b.last_at), "last_ok": b.last_ok, "last_error": b.last_error}


def _api_doc(f: Facts) -> dict[str, Any]:
    api, total = f.api, f.budget
    assert api is not None
    calls = f.calls_this_hour or 0  # the one figure of the hour's calls (Facts.calls_this_hour)
    return {
        "calls_last_hour": calls,
        "budget_per_hour": total.per_hour,  # every key's budget: keys × per key
        "keys": total.keys,
        "budget_note": total.note(),
        "utilisation_percent": round(100.0 * calls / total.per_hour, 1),
        "by_status_last_hour": api.by_status_1h,
        "unauthorized_last_hour": api.unauthorized_1h,
        "rate_limited_last_hour": api.rate_limited_1h,
        "hourly_remaining": api.hourly_remaining,
        "last_call_at": iso(api.last_call_at),
        # jobs waiting for budget now (netops.api_waits), each as its own progress line says it
        "waiting_for_budget": [{"component": w.component, "pid": w.pid, "host": w.host,
                                "waited_seconds": round(w.waited_seconds, 1), "line": wait_line(w)}
                               for w in api.waits],
    }


# --- text rendering ------------------------------------------------------------------------

def render_text(ev: Evaluation) -> str:
    """A screenful for a person; scripts use --json. Rendered from the same evaluation as the
    JSON document, field for field, so the text says what status.json says."""
    f = ev.facts
    lines = [f"netops status: {ev.state.upper()}   (checked {iso(f.now)}, {f.elapsed_ms:.0f} ms)"]
    for p in _problems(ev):
        lines.append(f"  {'!!' if p['severity'] == 'critical' else '! '} {p['check']}: {p['message']}")
    lines += _services_lines(f)
    lines += _phase_lines(f.phases or [], f.now)
    lines += _sync_lines(f)
    lines += _freshness_lines(ev)
    lines += _open_sessions_lines(ev)
    lines += _api_lines(f)
    lines += _file_lines(f)
    lines.append("alerts      firing now: " + (", ".join(v.rule.name for v in ev.firing) or "none"))
    return "\n".join(lines)


def _services_lines(f: Facts) -> list[str]:
    ngx = f.nginx
    lines = ["services",
             f"  postgresql  {'ok     ' + (f.db_version or '') if f.db_up else 'DOWN   ' + (f.db_error or '')}"]
    if ngx.ok is None:
        lines.append("  nginx       -      not configured (NETOPS_NGINX_URL)")
    else:
        lines.append(f"  nginx       {'ok    ' if ngx.ok else 'DOWN  '} {ngx.url} {ngx.error or ''}".rstrip())
    return lines


def _phase_status(p: PhaseFacts) -> str:
    if p.in_run:  # a live sync has not reached it: its last_status is the previous run's
        return p.in_run
    if p.last_status == "running" and p.pages_total:
        return f"{p.pages_done}/{p.pages_total}"
    if p.last_status == "unchanged":  # `sync stable --if-changed` skipped it: its probe saw no change
        return "unchanged (probe)"
    return p.last_status or "never"


def _phase_lines(phases: list[PhaseFacts], now: datetime) -> list[str]:
    if not phases:
        return []
    shown = [_phase_status(p) for p in phases]
    width = max([9] + [len(s) + 1 for s in shown])
    lines = [f"{'phases':<26}{'last':<{width}}{'age':>7}{'took':>8}{'+ins':>8}{'~upd':>7}{'-del':>7}"]
    for p, status in zip(phases, shown, strict=True):
        took = f"{_round3(p.duration_seconds):.1f}s" if p.duration_seconds is not None else "-"
        lines.append(f"  {p.phase:<24}{status:<{width}}{human_age(_age(now, p.finished_at)):>7}{took:>8}"
                     f"{p.rows_inserted:>8}{p.rows_updated:>7}{p.rows_deleted:>7}")
    return lines


def _sync_lines(f: Facts) -> list[str]:
    """The last sync, the backlog and the tables."""
    lines = []
    run = f.run
    if not f.db_up:
        lines.append("last sync   unknown (database unreachable)")
    elif run is not None and run.status == "running":
        lines.append(f"last sync   running for {human_age(_round3(run.duration_seconds))} "
                     f"(started {iso(run.started_at)})")
    elif run is not None and run.status:
        lines.append(f"last sync   {run.status}, finished {iso(run.finished_at) or '-'} "
                     f"({human_age(_age(f.now, run.finished_at))} ago)")
    b = f.backlog
    if b is None:
        lines.append("backlog     unknown (database unreachable)")
    else:
        lines.append("backlog     " + (f"pending {b.pending}  processing {b.processing}  failed {b.failed}"
                                       if b.available else "not installed (backlog tables absent)"))
    if f.tables:
        parts = [f"{name} {t.rows}{'' if t.exact else '~'}" for name, t in f.tables.items()]
        lines.append("tables      " + _wrap(parts, 12))
    return lines


def _freshness_lines(ev: Evaluation) -> list[str]:
    """Issue 23: each backlog resource's age against its target, on one line."""
    doc = freshness_doc(ev.facts, ev.settings)
    if doc is None:
        return ["freshness   unknown (database unreachable)"]
    parts = [f"{r} {'never' if d['seconds'] is None else human_age(d['seconds'])}"
             f"/{human_age(d['target_seconds'])}{' STALE' if (d['ratio'] or 0) > 1 else ''}" for r, d in doc.items()]
    return ["freshness   " + _wrap(parts, 12)]


def _open_sessions_lines(ev: Evaluation) -> list[str]:
    """Issue 23: the sessions still open per campus in scope and the oldest one's age (the API
    sometimes never closes one; detect re-checks each until it closes or is gone)."""
    if not ev.settings.campus_ids:
        return []
    doc = open_sessions_doc(ev.facts)
    if doc is None:
        return ["sessions    unknown (database unreachable)"]
    parts = [f"campus {c}: {d['open']} open" + ("" if d["oldest_seconds"] is None
                                                   else f" (oldest {human_age(d['oldest_seconds'])})")
             for c, d in doc.items()]
    return ["sessions    " + _wrap(parts, 12)]


def _api_lines(f: Facts) -> list[str]:
    if f.api is None:
        lines = ["api         unknown (database unreachable)"]
    else:
        a = _api_doc(f)
        lines = [f"api         {a['calls_last_hour']}/{a['budget_per_hour']} calls last hour "
                 f"({a['utilisation_percent']}%{a['budget_note']}), 401: {a['unauthorized_last_hour']}, "
                 f"429: {a['rate_limited_last_hour']}"]
    lines.extend(f"            {render_key_line(k)}" for k in f.keys)
    lines.extend(f"            {w.component} (pid {w.pid}): {wait_line(w)}" for w in (f.api.waits if f.api else []))
    return lines


def _file_lines(f: Facts) -> list[str]:
    """The database size, the disks, the token and the last quality check."""
    lines = [f"database    {human_bytes(f.db_size) if f.db_up else 'unknown'}"]
    for key, d in f.disk.items():
        lines.append(f"{key:<12}{d.path}: {human_bytes(d.used_bytes)} used, "
                     f"{human_bytes(d.free_bytes)} free ({d.free_percent}%)")
    b = f.backup
    if b.good_at is not None:
        lines.append(f"backup      last good {human_age(_age(f.now, b.good_at))} ago, {human_bytes(b.good_bytes)} "
                     f"({b.good_path})" + ("" if b.last_ok else f"; latest FAILED: {b.last_error}"))
    else:
        lines.append("backup      " + (f"none good; latest FAILED: {b.last_error}" if b.recorded else "none recorded"))
    t = f.token
    tok = f"ttl {human_age(t.ttl_seconds)}" if t.present else "none stored"
    if t.refused_at:
        tok += f", REFUSED by the API at {iso(t.refused_at)}"
    if t.secret_valid_until:
        tok += f", secret valid until {iso(t.secret_valid_until)}"
    lines.append(f"token       {tok}")
    q = f.quality
    if q is not None and q.checked_at:
        lines.append(f"quality     {q.violations} violations, {q.info} info (checked {iso(q.checked_at)})")
    return lines


def _wrap(parts: list[str], indent: int, width: int = 100) -> str:
    out, line = [], ""
    for part in parts:
        candidate = f"{line}, {part}" if line else part
        if len(candidate) + indent > width and line:
            out.append(line + ",")
            line = part
        else:
            line = candidate
    out.append(line)
    return ("\n" + " " * indent).join(out)
