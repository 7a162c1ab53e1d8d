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
from netops.credentials import Budget
from netops.db.monitor_facts import ApiFacts, BacklogFacts
from netops.monitor.evaluation import Evaluation, Facts, check_nginx, evaluate
from netops.monitor.facts import KeyRow, PhaseFacts, iso
from netops.monitor.formatting import human_age, human_bytes, render_key_line

EXIT_CODES = {"ok": 0, "warning": 1, "critical": 2}
__all__ = ["EXIT_CODES", "check_nginx", "collect_status", "render_text", "status_document"]


def _age(now: datetime, ts: datetime | None) -> float | None:
    return round((now - ts).total_seconds(), 1) if ts else None


def collect_status(settings: Settings, dsn: str | None, check_services: bool = True) -> dict[str, Any]:
    """Evaluate now and render the status document. Never raises for a sick box: a failure is a
    problem in the document (that is the point of a status command)."""
    return status_document(evaluate(settings, dsn, check_services=check_services))


def status_document(ev: Evaluation) -> dict[str, Any]:
    """The `netops status --json` document of one evaluation (docs/CONTRACTS.md)."""
    f, settings = ev.facts, ev.settings
    problems = [{"severity": v.rule.severity, "check": v.rule.name,
                 "message": f"{v.message}; {v.action}"} for v in ev.firing]
    problems.sort(key=lambda p: p["severity"] != "critical")
    doc: dict[str, Any] = {
        "state": ev.state,
        "checked_at": iso(f.now),
        "problems": problems,
        "services": {
            "postgresql": {"ok": f.db_up, "version": f.db_version, "error": f.db_error},
            "nginx": f.nginx.as_json(),
        },
        "phases": [_phase_doc(p, f.now) for p in f.phases or []],
        "last_sync": _last_sync_doc(f),
        # unknown (null) until the database answers: absent is a fact, not knowing is another
        "backlog": _backlog_doc(f.backlog),
        "tables": {name: {"rows": t.rows, "exact": t.exact, "bytes": t.bytes} for name, t in (f.tables or {}).items()},
        "database": {"size_bytes": f.db_size, "threshold_bytes": settings.alert_db_size_bytes},
        "disk": {name: d.as_json() for name, d in f.disk.items()},
        "token": {"present": f.token.present, "ttl_seconds": f.token.ttl_seconds,
                  "expires_at": iso(f.token.expires_at), "secret_valid_until": iso(f.token.secret_valid_until),
                  "refused_at": iso(f.token.refused_at)},
        # the rules judged now (the same verdicts as `netops alerts check`), not a stored state
        "alerts": {"firing": [v.rule.name for v in ev.firing]},
        "known": f.db_up and bool(f.schema),
    }
    if f.api is not None:
        doc["api"] = _api_doc(f.api, f.budget)
    doc["api_keys"] = [k.as_json() for k in f.keys]  # one row per application key
    if f.quality is not None:
        q = f.quality
        doc["quality"] = {"available": q.available, "checked_at": iso(q.checked_at),
                          "violations": q.violations, "info": q.info}
    doc["elapsed_ms"] = f.elapsed_ms
    return doc


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


def _api_doc(api: ApiFacts, total: Budget) -> dict[str, Any]:
    return {
        "calls_last_hour": api.calls_1h,
        "budget_per_hour": total.per_hour,  # every key's budget: keys × per key
        "keys": total.keys,
        "budget_note": total.note(),
        "utilisation_percent": round(100.0 * api.calls_1h / total.per_hour, 1),
        "by_status_last_hour": api.by_status_1h,
        "unauthorized_last_hour": api.unauthorized_1h,
        "rate_limited_last_hour": api.rate_limited_1h,
        "hourly_remaining": api.hourly_remaining,
        "last_call_at": iso(api.last_call_at),
    }


# --- text rendering ------------------------------------------------------------------------

def render_text(doc: dict[str, Any]) -> str:
    """A screenful for a person; scripts use --json. Rendered from the JSON document, so the
    text says exactly what status.json says."""
    lines = [f"netops status: {doc['state'].upper()}   (checked {doc['checked_at']}, {doc.get('elapsed_ms', 0):.0f} ms)"]
    for p in doc["problems"]:
        lines.append(f"  {'!!' if p['severity'] == 'critical' else '! '} {p['check']}: {p['message']}")
    lines += _services_lines(doc["services"])
    lines += _phase_lines(doc["phases"])
    lines += _sync_lines(doc)
    lines += _api_lines(doc)
    lines += _file_lines(doc)
    lines.append("alerts      firing now: " + (", ".join(doc["alerts"]["firing"]) or "none"))
    return "\n".join(lines)


def _services_lines(services: dict[str, Any]) -> list[str]:
    pg, ngx = services["postgresql"], services["nginx"]
    lines = ["services",
             f"  postgresql  {'ok     ' + (pg['version'] or '') if pg['ok'] else 'DOWN   ' + (pg['error'] or '')}"]
    if ngx["ok"] is None:
        lines.append("  nginx       -      not configured (NETOPS_NGINX_URL)")
    else:
        lines.append(f"  nginx       {'ok    ' if ngx['ok'] else 'DOWN  '} {ngx['url']} {ngx['error'] or ''}".rstrip())
    return lines


def _phase_lines(phases: list[dict[str, Any]]) -> list[str]:
    if not phases:
        return []
    shown = []
    for p in phases:
        status = p["last_status"] or "never"
        if p["running"] and p["pages_total"]:
            status = f"{p['pages_done']}/{p['pages_total']}"
        elif status == "unchanged":  # `sync stable --if-changed` skipped it: its probe saw no change
            status = "unchanged (probe)"
        shown.append(status)
    width = max([9] + [len(s) + 1 for s in shown])
    lines = [f"{'phases':<26}{'last':<{width}}{'age':>7}{'took':>8}{'+ins':>8}{'~upd':>7}{'-del':>7}"]
    for p, status in zip(phases, shown, strict=True):
        took = f"{p['duration_seconds']:.1f}s" if p["duration_seconds"] is not None else "-"
        lines.append(f"  {p['phase']:<24}{status:<{width}}{human_age(p['age_seconds']):>7}{took:>8}"
                     f"{p['rows_inserted']:>8}{p['rows_updated']:>7}{p['rows_deleted']:>7}")
    return lines


def _sync_lines(doc: dict[str, Any]) -> list[str]:
    """The last sync, the backlog and the tables."""
    lines = []
    ls = doc["last_sync"]
    if not doc["services"]["postgresql"]["ok"]:
        lines.append("last sync   unknown (database unreachable)")
    elif ls["status"] == "running":
        lines.append(f"last sync   running for {human_age(ls['duration_seconds'])} (started {ls['started_at']})")
    elif ls["status"]:
        lines.append(f"last sync   {ls['status']}, finished {ls['finished_at'] or '-'} ({human_age(ls['age_seconds'])} ago)")
    b = doc["backlog"]
    if b["available"] is None:
        lines.append("backlog     unknown (database unreachable)")
    else:
        lines.append("backlog     " + (f"pending {b['pending']}  processing {b['processing']}  failed {b['failed']}"
                                       if b["available"] else "not installed (backlog tables absent)"))
    if doc["tables"]:
        parts = [f"{name} {t['rows']}{'' if t['exact'] else '~'}" for name, t in doc["tables"].items()]
        lines.append("tables      " + _wrap(parts, 12))
    return lines


def _api_lines(doc: dict[str, Any]) -> list[str]:
    if "api" not in doc:
        lines = ["api         unknown (database unreachable)"]
    else:
        a = doc["api"]
        lines = [f"api         {a['calls_last_hour']}/{a['budget_per_hour']} calls last hour "
                 f"({a['utilisation_percent']}%{a.get('budget_note', '')}), 401: {a['unauthorized_last_hour']}, "
                 f"429: {a['rate_limited_last_hour']}"]
    lines.extend(f"            {render_key_line(KeyRow.from_json(k))}" for k in doc.get("api_keys") or [])
    return lines


def _file_lines(doc: dict[str, Any]) -> list[str]:
    """The database size, the disks, the token and the last quality check."""
    ok = doc["services"]["postgresql"]["ok"]
    lines = [f"database    {human_bytes(doc['database']['size_bytes']) if ok else 'unknown'}"]
    for key, d in doc["disk"].items():
        lines.append(f"{key:<12}{d['path']}: {human_bytes(d['used_bytes'])} used, "
                     f"{human_bytes(d['free_bytes'])} free ({d['free_percent']}%)")
    t = doc["token"]
    tok = f"ttl {human_age(t['ttl_seconds'])}" if t["present"] else "none stored"
    if t.get("refused_at"):
        tok += f", REFUSED by the API at {t['refused_at']}"
    if t["secret_valid_until"]:
        tok += f", secret valid until {t['secret_valid_until']}"
    lines.append(f"token       {tok}")
    if "quality" in doc and doc["quality"]["checked_at"]:
        q = doc["quality"]
        lines.append(f"quality     {q['violations']} violations, {q['info']} info (checked {q['checked_at']})")
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
