"""Alerts: the seed's thresholds evaluated against one metrics snapshot, with persisted state.

Each rule compares one snapshot value to one configurable threshold (firing when value >
threshold). State per alert lives in `netops.alert_state`, so any number of cron runs, on any
host sharing the database, agree on it, and the webhook gets exactly one POST per state change:

    ok --(breach)--> firing --(clear)--> resolved --(next run, once notified)--> ok
                       ^------------(breach again)----------'

A POST that fails leaves the change "pending" (notified_state != state) and is retried on the next
run, so a webhook outage delays a notification but never drops it. All of it happens in one
transaction under an advisory lock, so two concurrent `alerts check` runs cannot both POST.

The one alert that cannot keep its state in the database is the database being down: that
rule's state lives in `<state_dir>/alert_state.json` instead. A rule whose value is unknown (the
database is down, the backlog is not installed) keeps its previous state rather than flapping.
"""

from __future__ import annotations

import fcntl
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2

from netops.config import Settings
from netops.monitor import facts as F

LOCK_KEY = 4242_0004


@dataclass(frozen=True)
class Rule:
    name: str
    summary: str
    setting: str | None  # Settings field holding the threshold (None: fixed at `fixed`)
    value: Callable[[dict[str, Any]], float | None]
    unit: str
    action: str
    prom_expr: str  # PromQL; {t} is the threshold in the metric's unit
    severity: str = "warning"
    fixed: float = 0.0
    fire_when_unknown: bool = False
    scale: float = 1.0  # threshold (settings unit) * scale = value's unit

    def threshold(self, settings: Settings) -> float:
        return float(getattr(settings, self.setting)) * self.scale if self.setting else self.fixed


def _get(*path: str) -> Callable[[dict[str, Any]], float | None]:
    def read(snap: dict[str, Any]) -> float | None:
        cur: Any = snap
        for key in path:
            if not isinstance(cur, dict) or key not in cur:
                return None
            cur = cur[key]
        return None if cur is None else float(cur)

    return read


def _backlog(key: str) -> Callable[[dict[str, Any]], float | None]:
    def read(snap: dict[str, Any]) -> float | None:
        bl = snap.get("backlog") or {}
        return float(bl[key]) if bl.get("available") else None

    return read


def _sync_age_hours(snap: dict[str, Any]) -> float | None:
    if not snap["database"]["up"]:
        return None
    age = (snap.get("sync") or {}).get("oldest_success_age_seconds")
    return float("inf") if age is None else age / 3600.0  # never synced: infinitely stale


def _db_down(snap: dict[str, Any]) -> float:
    return 0.0 if snap["database"]["up"] else 1.0


RULES: tuple[Rule, ...] = (
    Rule("database_down", "PostgreSQL is not reachable", None, _db_down, "",
         "Start PostgreSQL (`netops db up` for the embedded server, else `systemctl start postgresql`), "
         "check its log and free disk; every other check is blind until it is back.",
         "netops_database_up < 1", severity="critical", fixed=0.0),
    Rule("api_calls_per_minute", "API calls per minute above the loop-suspicion threshold", "alert_calls_per_min",
         _get("api", "calls_per_minute"), "calls/min",
         "Loop suspicion: find the job that keeps calling (`netops logs tail backlog`, `netops logs tail stable`, "
         "ps -u netops), stop it by its PID, fix the cause, then rerun it by hand.",
         "netops_api_calls_per_minute > {t}"),
    Rule("api_unauthorized", "The API refused our credentials (HTTP 401)", "alert_401_count",
         _get("api", "unauthorized_last_hour"), "401s/hour",
         "Run `netops token refresh`; if it fails the application secret was rotated or expired: "
         "generate a new one on the intra and set NETOPS_CLIENT_SECRET.",
         "netops_api_unauthorized_last_hour > {t}", severity="critical"),
    Rule("api_rate_limited", "The API rate-limited us (HTTP 429)", "alert_429_count",
         _get("api", "rate_limited_last_hour"), "429s/hour",
         "Another client shares this application's budget, or the pacing is too fast: stop the other "
         "client or lower NETOPS_RATE_PER_SECOND / NETOPS_RATE_PER_HOUR; calls resume when the window resets.",
         "netops_api_rate_limited_last_hour > {t}"),
    Rule("api_key_set_aside", "An application key's secret was refused: the key is set aside", None,
         lambda snap: (float(sum(1 for k in snap["api_keys"] if k.get("set_aside"))) if "api_keys" in snap else None),
         "keys",
         "`netops status` names the key: generate a new secret for that application on the intra and update it "
         "(NETOPS_CLIENT_SECRET_<N> or NETOPS_CREDENTIALS_FILE); the other keys carry the load meanwhile.",
         "netops_api_key_set_aside > {t}", severity="critical", fixed=0.0),
    Rule("db_size", "Database larger than its threshold", "alert_db_size_bytes",
         _get("database", "size_bytes"), "bytes",
         "Look for bloat (`netops db shell`, then VACUUM FULL the largest tables), delete old "
         "netops.api_calls rows, or grow the disk and raise NETOPS_ALERT_DB_SIZE_BYTES.",
         "netops_database_size_bytes > {t}"),
    Rule("log_size", "Log directory larger than its threshold", "alert_log_bytes",
         _get("logs", "bytes"), "bytes",
         "Check that logrotate runs (/etc/logrotate.d/netops, `logrotate -d`), delete old rotated logs.",
         "netops_log_bytes > {t}"),
    Rule("sync_duration", "Stable sync slower than its threshold", "alert_sync_seconds",
         _get("sync", "last_run", "duration_seconds"), "seconds",
         "Look for 429s and slow calls in netops.api_calls and in nightly_stable_tables.log; a sync "
         "still running past this is probably stuck: check its PID and the API's status.",
         "netops_sync_last_run_duration_seconds > {t}"),
    Rule("sync_age", "Stable tables not refreshed recently", "alert_sync_age_hours", _sync_age_hours, "hours",
         "Check the nightly cron job (`crontab -l -u netops`, cron_output.log) and the stable log, then "
         "run `netops sync stable` by hand.",
         "(time() - min(netops_sync_last_success_timestamp_seconds)) > {t}", severity="critical",
         scale=1.0),
    Rule("backlog_depth", "Backlog queue deeper than its threshold", "alert_backlog_depth",
         _backlog("pending"), "items",
         "Check that the backlog worker runs (`netops logs tail backlog`); if it does, it is starved of "
         "budget: lower reconciliation share or raise the budget.",
         'netops_backlog_items{{state="pending"}} > {t}'),
    Rule("backlog_failed", "Backlog items failed permanently", "alert_backlog_failed",
         _backlog("failed"), "items",
         "Read the failed items' last_error (netops.backlog_items), fix the cause, and requeue them.",
         'netops_backlog_items{{state="failed"}} > {t}'),
    Rule("data_quality", "The last `netops check` found violating rows", None,
         _get("quality", "violations"), "rows",
         "Run `netops check` to see which table and key; rerun `netops sync stable` to reload the "
         "affected tables, and find out what bypassed the constraints.",
         "netops_data_quality_violations > {t}", fixed=0.0),
)
RULES_BY_NAME = {r.name: r for r in RULES}


@dataclass
class Stored:
    name: str
    state: str = "ok"
    since: datetime | None = None
    notified_state: str | None = None
    notify_error: str | None = None


# --- evaluation (pure) -----------------------------------------------------------------------

def next_state(prev: Stored, firing: bool | None, webhook: bool) -> str:
    """The state machine above. `firing` None = value unknown: keep the previous state."""
    if firing is None:
        return prev.state
    if firing:
        return "firing"
    if prev.state == "firing":
        return "resolved"
    if prev.state == "resolved" and webhook and prev.notified_state != "resolved":
        return "resolved"  # the resolved POST has not gone out yet: keep it pending
    return "ok"


def evaluate(rule: Rule, settings: Settings, snap: dict[str, Any]) -> tuple[float | None, bool | None]:
    value = rule.value(snap)
    if value is None:
        return None, (True if rule.fire_when_unknown else None)
    return value, value > rule.threshold(settings)


# --- stores ----------------------------------------------------------------------------------

class DbStore:
    """Alert state rows in netops.alert_state, within the caller's locked transaction."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def load(self, name: str) -> Stored:
        self.cur.execute("SELECT state, since, notified_state, notify_error FROM netops.alert_state "
                         "WHERE name = %s FOR UPDATE", (name,))
        r = self.cur.fetchone()
        return Stored(name, *r) if r else Stored(name)

    def save(self, s: Stored, value: float | None, threshold: float, message: str) -> None:
        self.cur.execute(
            """INSERT INTO netops.alert_state (name, state, value, threshold, message, since, last_checked_at,
                                               notified_state, notified_at, notify_error)
               VALUES (%(name)s, %(state)s, %(value)s, %(threshold)s, %(message)s, coalesce(%(since)s, now()), now(),
                       %(notified_state)s, CASE WHEN %(notified_state)s IS NOT NULL THEN now() END, %(notify_error)s)
               ON CONFLICT (name) DO UPDATE SET
                   state = EXCLUDED.state, value = EXCLUDED.value, threshold = EXCLUDED.threshold,
                   message = EXCLUDED.message, since = EXCLUDED.since, last_checked_at = now(),
                   notified_at = CASE WHEN EXCLUDED.notified_state IS DISTINCT FROM alert_state.notified_state
                                      THEN now() ELSE alert_state.notified_at END,
                   notified_state = EXCLUDED.notified_state, notify_error = EXCLUDED.notify_error""",
            {"name": s.name, "state": s.state, "value": None if value in (None, float("inf")) else value,
             "threshold": threshold, "message": message, "since": s.since,
             "notified_state": s.notified_state, "notify_error": s.notify_error},
        )


class FileStore:
    """State for alerts about the database itself, in a small JSON file under the state dir."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path.with_suffix(".lock"), "a+")  # noqa: SIM115 - held until close()
        fcntl.flock(self._fh, fcntl.LOCK_EX)
        try:
            self.data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def load(self, name: str) -> Stored:
        d = self.data.get(name)
        if not d:
            return Stored(name)
        since = datetime.fromisoformat(d["since"].replace("Z", "+00:00")) if d.get("since") else None
        return Stored(name, d["state"], since, d.get("notified_state"), d.get("notify_error"))

    def save(self, s: Stored, value: float | None, threshold: float, message: str) -> None:
        self.data[s.name] = {"state": s.state, "since": F.iso(s.since), "notified_state": s.notified_state,
                             "notify_error": s.notify_error, "value": value, "threshold": threshold,
                             "message": message}

    def close(self) -> None:
        from netops.monitor.metrics import atomic_write

        atomic_write(self.path, json.dumps(self.data, indent=2) + "\n", mode=0o600)
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()


# --- webhook ---------------------------------------------------------------------------------

def post_webhook(url: str, payload: dict[str, Any], timeout: float = 5.0) -> str | None:
    """POST one JSON document; None on a 2xx, else the reason (kept for the retry)."""
    body = json.dumps(payload).encode("utf-8")
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "netops-alerts"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            if 200 <= resp.status < 300:
                return None
            return f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"no answer: {getattr(exc, 'reason', exc)}"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "unknown"
    if value == float("inf"):
        return "never"
    if unit == "bytes":
        from netops.monitor.status import human_bytes

        return human_bytes(value)
    return f"{value:g}" if value == int(value) else f"{value:.2f}"


# --- the check -------------------------------------------------------------------------------

def check_alerts(settings: Settings, dsn: str | None, snapshot: dict[str, Any] | None = None,
                 post: Callable[[str, dict[str, Any]], str | None] = post_webhook) -> dict[str, Any]:
    """Evaluate every rule, persist state, log firing alerts, POST each state change once.

    Returns the `netops alerts check --json` document.
    """
    from netops.log import get_logger
    from netops.monitor.metrics import collect_snapshot

    # The command prints every alert itself; mirroring the log lines to stderr would say it twice.
    log = get_logger("alerts", settings.log_path).bind(quiet_stderr=True)
    snap = snapshot if snapshot is not None else collect_snapshot(settings, dsn)
    webhook = settings.alert_webhook_url
    now = F.utcnow()
    results: list[dict[str, Any]] = []
    sent = 0
    errors: list[str] = []

    def run_rules(rules: list[Rule], store: Any) -> None:
        nonlocal sent
        for rule in rules:
            threshold = rule.threshold(settings)
            value, firing = evaluate(rule, settings, snap)
            prev = store.load(rule.name)
            state = next_state(prev, firing, bool(webhook))
            cur = Stored(rule.name, state, prev.since if state == prev.state else now,
                         prev.notified_state, prev.notify_error)
            if not webhook and state != prev.state:
                cur.notified_state = None
            message = (f"{rule.summary}: {_fmt(value, rule.unit)} {rule.unit} "
                       f"(threshold {_fmt(threshold, rule.unit)})").replace(" bytes (", " (")
            notified = False
            if webhook and state in ("firing", "resolved") and cur.notified_state != state:
                payload = {
                    "alert": rule.name, "state": state, "previous_state": prev.state,
                    "severity": rule.severity, "summary": rule.summary, "message": message,
                    "value": None if value in (None, float("inf")) else value, "threshold": threshold,
                    "unit": rule.unit, "action": rule.action, "since": F.iso(cur.since),
                    "host": socket.gethostname(), "sent_at": F.iso(F.utcnow()),
                }
                err = post(webhook, payload)
                if err is None:
                    cur.notified_state, cur.notify_error, notified = state, None, True
                    sent += 1
                else:
                    cur.notify_error = err
                    errors.append(f"{rule.name}: {err}")
                    log.error(f"webhook POST for {rule.name} ({state}) failed: {err}; will retry next run")
            if state == "firing":
                verb = "FIRING" if prev.state != "firing" else "still firing"
                log.warning(f"{verb} {rule.name}: {message}; action: {rule.action}")
            elif state == "resolved" and prev.state == "firing":
                log.info(f"RESOLVED {rule.name}: {message}")
            store.save(cur, value, threshold, message)
            results.append({
                "name": rule.name, "state": state, "previous_state": prev.state,
                "changed": state != prev.state, "severity": rule.severity,
                "value": None if value in (None, float("inf")) else value,
                "value_text": _fmt(value, rule.unit), "threshold": threshold, "unit": rule.unit,
                "summary": rule.summary, "message": message, "action": rule.action,
                "since": F.iso(cur.since), "notified": notified, "notify_error": cur.notify_error,
            })

    file_rules = [r for r in RULES if r.name == "database_down"]
    db_rules = [r for r in RULES if r.name != "database_down"]
    fstore = FileStore(settings.state_path / "alert_state.json")
    try:
        run_rules(file_rules, fstore)
    finally:
        fstore.close()

    persisted = False
    if snap["database"]["up"] and dsn:
        try:
            with F.connect_monitor(dsn) as conn:
                conn.autocommit = False
                with conn, conn.cursor() as cur:
                    if F.relation_exists(cur, "netops.alert_state"):
                        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                        run_rules(db_rules, DbStore(cur))
                        persisted = True
        except psycopg2.Error as exc:
            errors.append(f"state not persisted: {str(exc).strip().splitlines()[0]}")
    if not persisted:
        # Database down or 003 not applied: report, but do not notify (no place to remember it).
        for rule in db_rules:
            value, firing = evaluate(rule, settings, snap)
            results.append({"name": rule.name, "state": "firing" if firing else "ok" if firing is False else "unknown",
                            "previous_state": None, "changed": False, "severity": rule.severity,
                            "value": None if value in (None, float("inf")) else value,
                            "value_text": _fmt(value, rule.unit), "threshold": rule.threshold(settings),
                            "unit": rule.unit, "summary": rule.summary, "message": rule.summary,
                            "action": rule.action, "since": None, "notified": False, "notify_error": None})

    firing = [r["name"] for r in results if r["state"] == "firing"]
    return {
        "checked_at": F.iso(now),
        "state": "firing" if firing else "ok",
        "firing": firing,
        "persisted": persisted,
        "webhook": {"configured": bool(webhook), "sent": sent, "errors": errors},
        "alerts": results,
    }


def render_text(doc: dict[str, Any]) -> str:
    lines = [f"alerts: {len(doc['firing'])} firing   (checked {doc['checked_at']}"
             + (f", {doc['webhook']['sent']} webhook POSTs" if doc["webhook"]["configured"] else ", no webhook")
             + ")"]
    for a in doc["alerts"]:
        mark = {"firing": "FIRING", "resolved": "resolved", "ok": "ok", "unknown": "?"}[a["state"]]
        change = f"  (was {a['previous_state']})" if a["changed"] else ""
        unit = "" if a["unit"] == "bytes" else a["unit"]
        lines.append(f"  {mark:<9}{a['name']:<22}{a['value_text']:>10} / {_fmt(a['threshold'], a['unit'])} "
                     f"{unit}{change}".rstrip())
        if a["state"] == "firing":
            lines.append(f"           -> {a['action']}")
    for err in doc["webhook"]["errors"]:
        lines.append(f"  webhook error: {err}")
    if not doc["persisted"]:
        lines.append("  (database unreachable or migration 003 missing: only database_down keeps state and "
                     "notifies; the others are shown, not recorded)")
    return "\n".join(lines)


# --- Prometheus alerting rules ---------------------------------------------------------------

def _camel(name: str) -> str:
    return "Netops" + "".join(part.capitalize() for part in name.split("_"))


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text)


def prometheus_rules(settings: Settings) -> str:
    """Alerting rules equivalent to RULES, with this box's thresholds, plus one for stale metrics."""
    lines = ["# Prometheus alerting rules generated by `netops alerts rules`; thresholds from the netops config.",
             "groups:", "  - name: netops", "    rules:"]
    stale_after = max(180, 3 * settings.backlog_metric_interval)
    extra = [(
        "NetopsMetricsStale", f"time() - netops_metrics_generated_timestamp_seconds > {stale_after}", "warning",
        "netops metrics are stale",
        "Check that `netops metrics write --loop` runs (systemd/cron) and can write the metrics dir.",
    )]
    entries = []
    for r in RULES:
        t = r.threshold(settings)
        if r.name == "sync_age":
            t = t * 3600  # hours -> seconds
        t_text = str(int(t)) if float(t).is_integer() else repr(float(t))
        entries.append((_camel(r.name), r.prom_expr.format(t=t_text), r.severity, r.summary, r.action))
    for alert, expr, severity, summary, action in entries + extra:
        lines += [
            f"      - alert: {alert}",
            f"        expr: {_q(expr)}",
            "        for: 1m",
            "        labels:",
            f"          severity: {severity}",
            "        annotations:",
            f"          summary: {_q(summary)}",
            f"          description: {_q(action)}",
        ]
    return "\n".join(lines) + "\n"
