"""`netops status`: is this box healthy, in one glance (and one exit code for scripts).

The JSON shape is a promise to the Ansible area (docs/CONTRACTS.md): keys may be added, never
renamed or removed. Severity rules, in one place so the docs and the code cannot drift:

critical (exit 2): PostgreSQL unreachable; the oldest table's last successful sync is older than
  twice NETOPS_ALERT_SYNC_AGE_HOURS; a filesystem holding the log or state dir is below 5 % free;
  the 42 application secret has expired.
warning (exit 1): never synced; the latest run of a phase failed; last success older than
  NETOPS_ALERT_SYNC_AGE_HOURS; a running sync past NETOPS_ALERT_SYNC_SECONDS; backlog deeper than
  NETOPS_ALERT_BACKLOG_DEPTH or more failed items than NETOPS_ALERT_BACKLOG_FAILED; database or
  logs over their size thresholds; below 10 % free disk; nginx configured but not answering; no
  token stored, or an expired one; the secret expires within NETOPS_SECRET_WARN_DAYS; the last
  `netops check` found violations.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

import psycopg2

from netops.config import Settings
from netops.monitor import facts as F

EXIT_CODES = {"ok": 0, "warning": 1, "critical": 2}


def check_nginx(url: str | None, timeout: float = 1.0) -> dict[str, Any]:
    """GET the configured URL; any 2xx/3xx answer means nginx runs and serves netops."""
    if not url:
        return {"ok": None, "url": None, "error": None}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout) as resp:
            code = resp.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return {"ok": False, "url": url, "error": f"no answer: {reason}"}
    if 200 <= code < 400:
        return {"ok": True, "url": url, "error": None, "http_status": code}
    return {"ok": False, "url": url, "error": f"HTTP {code}", "http_status": code}


def _age(now: datetime, ts: datetime | None) -> float | None:
    return round((now - ts).total_seconds(), 1) if ts else None


def collect_status(settings: Settings, dsn: str | None, check_services: bool = True) -> dict[str, Any]:
    """Gather every fact `netops status` reports, and judge it. Never raises for a sick box:
    a failure is a problem in the document (that is the point of a status command)."""
    started = time.monotonic()
    now = F.utcnow()
    problems: list[dict[str, str]] = []

    def problem(severity: str, check: str, message: str) -> None:
        problems.append({"severity": severity, "check": check, "message": message})

    doc: dict[str, Any] = {
        "state": "ok",
        "checked_at": F.iso(now),
        "problems": problems,
        "services": {
            "postgresql": {"ok": False, "version": None, "error": None},
            "nginx": check_nginx(settings.nginx_url) if check_services else {"ok": None, "url": None,
                                                                              "error": None},
        },
        "phases": [],
        "last_sync": {"finished_at": None, "age_seconds": None, "status": None},
        "backlog": {"available": False, "pending": 0, "processing": 0, "failed": 0},
        "tables": {},
        "database": {"size_bytes": None},
        "disk": {},
        "token": {"present": False, "ttl_seconds": None, "secret_valid_until": None},
        "alerts": {"firing": []},
    }
    nginx = doc["services"]["nginx"]
    if nginx["ok"] is False:
        problem("warning", "nginx", f"nginx at {nginx['url']} is not answering ({nginx['error']}); "
                "check `systemctl status nginx` and its error log")

    pg = doc["services"]["postgresql"]
    try:
        if dsn is None:
            raise psycopg2.OperationalError("no DSN: NETOPS_DSN is unset and no embedded server")
        with F.connect_monitor(dsn) as conn, conn.cursor() as cur:
            pg["version"] = F.server_version(cur)
            pg["ok"] = True
            if F.relation_exists(cur, "netops.sync_runs"):
                _db_sections(settings, cur, now, doc, problem)
            else:
                problem("critical", "schema", "the database has no netops schema yet; run `netops db migrate`")
    except psycopg2.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        pg["ok"] = False
        pg["error"] = first
        # a configured DSN is a server netops does not run: `netops db up` would start another
        hint = ("start that server or fix NETOPS_DSN" if settings.dsn
                else "start it (`netops db up` for the embedded server) or set NETOPS_DSN")
        problem("critical", "postgresql", f"PostgreSQL is not reachable ({first}); {hint}")

    _file_sections(settings, doc, problem)

    if any(p["severity"] == "critical" for p in problems):
        doc["state"] = "critical"
    elif problems:
        doc["state"] = "warning"
    doc["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
    return doc


def _db_sections(settings: Settings, cur: Any, now: datetime, doc: dict[str, Any], problem: Any) -> None:
    phases = F.phase_facts(cur)
    for f in phases:
        doc["phases"].append({
            "phase": f.phase,
            "table": f.table,
            "last_status": f.last_status,
            "last_finished_at": F.iso(f.finished_at),
            "age_seconds": _age(now, f.finished_at),
            "rows_inserted": f.rows_inserted,
            "rows_updated": f.rows_updated,
            "rows_deleted": f.rows_deleted,
            "duration_seconds": round(f.duration_seconds, 3) if f.duration_seconds is not None else None,
            "error": f.error,
            "running": f.last_status == "running",
            "pages_done": f.pages_done,
            "pages_total": f.pages_total,
            "rows_fetched": f.rows_fetched,
            "last_success_at": F.iso(f.last_success_at),
            "last_success_age_seconds": _age(now, f.last_success_at),
        })
        if f.last_status == "failed":
            problem("warning", f"sync:{f.phase}", f"last run of {f.phase} failed: {f.error or 'no error text'}; "
                    f"see nightly_stable_tables.log and rerun `netops sync stable`")
        elif f.last_status == "running" and (f.duration_seconds or 0) > settings.alert_sync_seconds:
            problem("warning", f"sync:{f.phase}", f"{f.phase} has been running {f.duration_seconds:.0f}s "
                    f"(> {settings.alert_sync_seconds:.0f}s); check the stable log for a stuck call")

    run = F.last_run(cur)
    doc["last_sync"] = {
        "finished_at": F.iso(run.finished_at),
        "age_seconds": _age(now, run.finished_at),
        "status": run.status,
        "run_id": run.run_id,
        "started_at": F.iso(run.started_at),
        "duration_seconds": round(run.duration_seconds, 3) if run.duration_seconds is not None else None,
    }
    stable = [f for f in phases if f.phase in dict(F.STABLE_PHASES)]
    successes = [f.last_success_at for f in stable]
    limit_h = settings.alert_sync_age_hours
    if run.status is None:
        problem("warning", "sync", "no sync has ever run; run `netops sync stable`")
    elif any(s is None for s in successes):
        never = [f.phase for f in stable if f.last_success_at is None]
        problem("warning", "sync", f"never synced successfully: {', '.join(never)}; run `netops sync stable`")
    else:
        oldest_h = (now - min(successes)).total_seconds() / 3600  # type: ignore[type-var]
        doc["last_sync"]["oldest_success_age_seconds"] = round(oldest_h * 3600, 1)
        if oldest_h > 2 * limit_h:
            problem("critical", "sync_age", f"oldest table refresh is {oldest_h:.1f} h old (> 2 x {limit_h:g} h); "
                    "check cron and the stable log, then run `netops sync stable`")
        elif oldest_h > limit_h:
            problem("warning", "sync_age", f"oldest table refresh is {oldest_h:.1f} h old (> {limit_h:g} h); "
                    "check the nightly cron job")

    b = F.backlog_facts(cur)
    doc["backlog"] = {"available": b.available, "pending": b.pending, "processing": b.processing,
                      "failed": b.failed, "oldest_pending_at": F.iso(b.oldest_pending_at)}
    if b.available and b.pending > settings.alert_backlog_depth:
        problem("warning", "backlog_depth", f"{b.pending} backlog items pending (> {settings.alert_backlog_depth}); "
                "is `netops backlog run --loop` running?")
    if b.available and b.failed > settings.alert_backlog_failed:
        problem("warning", "backlog_failed", f"{b.failed} backlog items failed; inspect their last_error "
                "and requeue them")

    doc["tables"] = {name: {"rows": t.rows, "exact": t.exact, "bytes": t.bytes}
                     for name, t in F.table_counts(cur).items()}
    size = F.database_size(cur)
    doc["database"] = {"size_bytes": size, "threshold_bytes": settings.alert_db_size_bytes}
    if size > settings.alert_db_size_bytes:
        problem("warning", "db_size", f"database is {size / 1e9:.1f} GB (> {settings.alert_db_size_bytes / 1e9:.1f} GB); "
                "VACUUM FULL bloated tables or add disk")

    api = F.api_facts(cur)
    doc["api"] = {
        "calls_last_hour": api.calls_1h,
        "budget_per_hour": settings.rate_per_hour,
        "utilisation_percent": round(100.0 * api.calls_1h / settings.rate_per_hour, 1),
        "by_status_last_hour": api.by_status_1h,
        "unauthorized_last_hour": api.unauthorized_1h,
        "rate_limited_last_hour": api.rate_limited_1h,
        "hourly_remaining": api.hourly_remaining,
        "last_call_at": F.iso(api.last_call_at),
    }

    q = F.quality_facts(cur)
    doc["quality"] = {"available": q.available, "checked_at": F.iso(q.checked_at),
                      "violations": q.violations, "info": q.info}
    if q.violations:
        problem("warning", "data_quality", f"last `netops check` ({F.iso(q.checked_at)}) found {q.violations} "
                "violating rows; run `netops check` for details")
    doc["alerts"] = {"firing": F.firing_alerts(cur)}


def _file_sections(settings: Settings, doc: dict[str, Any], problem: Any) -> None:
    disks = {"log_dir": F.disk_facts(settings.log_path), "state_dir": F.disk_facts(settings.state_path)}
    doc["disk"] = disks
    for key, d in disks.items():
        pct = d["free_percent"]
        if pct is not None and pct < 5:
            problem("critical", f"disk:{key}", f"only {pct}% free on the filesystem of {d['path']}; free space now")
        elif pct is not None and pct < 10:
            problem("warning", f"disk:{key}", f"only {pct}% free on the filesystem of {d['path']}")
    log_bytes = disks["log_dir"]["used_bytes"]
    if log_bytes > settings.alert_log_bytes:
        problem("warning", "log_size", f"logs use {log_bytes / 1e6:.0f} MB (> {settings.alert_log_bytes / 1e6:.0f} MB); "
                "check logrotate")

    t = F.token_facts(settings)
    doc["token"] = {"present": t.present, "ttl_seconds": t.ttl_seconds, "expires_at": F.iso(t.expires_at),
                    "secret_valid_until": F.iso(t.secret_valid_until)}
    if t.error:
        problem("warning", "token", f"{t.error}; run `netops token refresh`")
    elif not t.present:
        problem("warning", "token", "no API token stored yet; run `netops token refresh`")
    elif t.ttl_seconds is not None and t.ttl_seconds <= 0:
        problem("warning", "token", "the stored API token has expired; run `netops token refresh` (cron should)")
    if t.secret_valid_until is not None:
        left_days = (t.secret_valid_until - F.utcnow()).total_seconds() / 86400
        if left_days <= 0:
            problem("critical", "secret", "the 42 application secret has expired; generate a new one on the "
                    "intra and update NETOPS_CLIENT_SECRET")
        elif left_days <= settings.secret_warn_days:
            problem("warning", "secret", f"the 42 application secret expires in {left_days:.0f} days; rotate it")


# --- text rendering ------------------------------------------------------------------------

def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = abs(seconds)
    if s < 90:
        out = f"{s:.0f}s"
    elif s < 90 * 60:
        out = f"{s / 60:.0f}m"
    elif s < 48 * 3600:
        out = f"{s / 3600:.1f}h"
    else:
        out = f"{s / 86400:.1f}d"
    return out if seconds >= 0 else "-" + out


def render_text(doc: dict[str, Any]) -> str:
    """A screenful for a person; scripts use --json."""
    lines = [f"netops status: {doc['state'].upper()}   (checked {doc['checked_at']}, {doc.get('elapsed_ms', 0):.0f} ms)"]
    for p in doc["problems"]:
        lines.append(f"  {'!!' if p['severity'] == 'critical' else '! '} {p['check']}: {p['message']}")
    pg, ngx = doc["services"]["postgresql"], doc["services"]["nginx"]
    lines.append("services")
    lines.append(f"  postgresql  {'ok     ' + (pg['version'] or '') if pg['ok'] else 'DOWN   ' + (pg['error'] or '')}")
    if ngx["ok"] is None:
        lines.append("  nginx       -      not configured (NETOPS_NGINX_URL)")
    else:
        lines.append(f"  nginx       {'ok    ' if ngx['ok'] else 'DOWN  '} {ngx['url']} {ngx['error'] or ''}".rstrip())
    if doc["phases"]:
        shown = []
        for p in doc["phases"]:
            status = p["last_status"] or "never"
            if p["running"] and p["pages_total"]:
                status = f"{p['pages_done']}/{p['pages_total']}"
            elif status == "unchanged":  # `sync stable --if-changed` skipped it: its probe saw no change
                status = "unchanged (probe)"
            shown.append(status)
        width = max([9] + [len(s) + 1 for s in shown])
        lines.append(f"{'phases':<26}{'last':<{width}}{'age':>7}{'took':>8}{'+ins':>8}{'~upd':>7}{'-del':>7}")
        for p, status in zip(doc["phases"], shown, strict=True):
            took = f"{p['duration_seconds']:.1f}s" if p["duration_seconds"] is not None else "-"
            lines.append(f"  {p['phase']:<24}{status:<{width}}{human_age(p['age_seconds']):>7}{took:>8}"
                         f"{p['rows_inserted']:>8}{p['rows_updated']:>7}{p['rows_deleted']:>7}")
    ls = doc["last_sync"]
    if ls["status"]:
        lines.append(f"last sync   {ls['status']}, finished {ls['finished_at'] or '-'} ({human_age(ls['age_seconds'])} ago)")
    b = doc["backlog"]
    if not pg["ok"]:
        lines.append("backlog     unknown (database unreachable)")
    else:
        lines.append("backlog     " + (f"pending {b['pending']}  processing {b['processing']}  failed {b['failed']}"
                                       if b["available"] else "not installed (phase 09 tables absent)"))
    if doc["tables"]:
        parts = [f"{name} {t['rows']}{'' if t['exact'] else '~'}" for name, t in doc["tables"].items()]
        lines.append("tables      " + _wrap(parts, 12))
    if "api" in doc:
        a = doc["api"]
        lines.append(f"api         {a['calls_last_hour']}/{a['budget_per_hour']} calls last hour "
                     f"({a['utilisation_percent']}%), 401: {a['unauthorized_last_hour']}, "
                     f"429: {a['rate_limited_last_hour']}")
    lines.append(f"database    {human_bytes(doc['database']['size_bytes'])}")
    for key, d in doc["disk"].items():
        lines.append(f"{key:<12}{d['path']}: {human_bytes(d['used_bytes'])} used, "
                     f"{human_bytes(d['free_bytes'])} free ({d['free_percent']}%)")
    t = doc["token"]
    tok = f"ttl {human_age(t['ttl_seconds'])}" if t["present"] else "none stored"
    if t["secret_valid_until"]:
        tok += f", secret valid until {t['secret_valid_until']}"
    lines.append(f"token       {tok}")
    if "quality" in doc and doc["quality"]["checked_at"]:
        q = doc["quality"]
        lines.append(f"quality     {q['violations']} violations, {q['info']} info (checked {q['checked_at']})")
    lines.append("alerts      firing: " + (", ".join(doc["alerts"]["firing"]) or "none"))
    return "\n".join(lines)


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
