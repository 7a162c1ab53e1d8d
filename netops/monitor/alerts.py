"""Alerts: the one evaluation's verdicts (netops/monitor/evaluation.py), with persisted state.

Each rule compares one value read now to one threshold from the rule table, the same table and
the same reading `netops status`, the metrics and the dashboard use. State per alert lives in `netops.alert_state`, so any number of cron runs, on any
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
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2

from netops.config import Settings
from netops.db import alert_state, monitor_facts
from netops.db.alert_state import DbStore, Stored
from netops.monitor.evaluation import RULES, RULES_BY_NAME, Evaluation, Rule, Verdict, evaluate
from netops.monitor.facts import STABLE_PHASES, iso, utcnow
from netops.monitor.formatting import fmt

__all__ = ["RULES", "RULES_BY_NAME", "DbStore", "FileStore", "Stored", "check_alerts", "next_state",
           "post_webhook", "prometheus_rules", "render_text", "rule_expr"]


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


# --- stores ----------------------------------------------------------------------------------

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
        self.data[s.name] = {"state": s.state, "since": iso(s.since), "notified_state": s.notified_state,
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


# --- the check -------------------------------------------------------------------------------

def check_alerts(settings: Settings, dsn: str | None, evaluation: Evaluation | None = None,
                 post: Callable[[str, dict[str, Any]], str | None] = post_webhook) -> dict[str, Any]:
    """Judge every rule now (the one evaluation), persist state, log firing alerts, POST each state
    change once. Returns the `netops alerts check --json` document.
    """
    from netops.log import get_logger

    # The command prints every alert itself; mirroring the log lines to stderr would say it twice.
    log = get_logger("alerts", settings.log_path).bind(quiet_stderr=True)
    ev = evaluation if evaluation is not None else evaluate(settings, dsn)
    verdicts = ev.by_name()
    webhook = settings.alert_webhook_url
    now = utcnow()
    results: list[dict[str, Any]] = []
    sent = 0
    errors: list[str] = []

    def run_rules(rules: list[Rule], store: Any) -> None:
        nonlocal sent
        for rule in rules:
            v = verdicts[rule.name]
            value, threshold, message = v.value, v.threshold, v.message
            prev = store.load(rule.name)
            state = next_state(prev, v.firing, bool(webhook))
            cur = Stored(rule.name, state, prev.since if state == prev.state else now,
                         prev.notified_state, prev.notify_error)
            if not webhook and state != prev.state:
                cur.notified_state = None
            notified = False
            if webhook and state in ("firing", "resolved") and cur.notified_state != state:
                payload = {
                    "alert": rule.name, "state": state, "previous_state": prev.state,
                    "severity": rule.severity, "summary": rule.summary, "message": message,
                    "value": None if value in (None, float("inf")) else value, "threshold": threshold,
                    "unit": rule.unit, "action": v.action, "since": iso(cur.since),
                    "host": socket.gethostname(), "sent_at": iso(utcnow()),
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
                log.warning(f"{verb} {rule.name}: {message}; action: {v.action}")
            elif state == "resolved" and prev.state == "firing":
                log.info(f"RESOLVED {rule.name}: {message}")
            store.save(cur, value, threshold, message)
            results.append(_result(v, state, prev.state, iso(cur.since), notified, cur.notify_error))

    file_rules = [r for r in RULES if r.name == "database_down"]
    db_rules = [r for r in RULES if r.name != "database_down"]
    fstore = FileStore(settings.state_path / "alert_state.json")
    try:
        run_rules(file_rules, fstore)
    finally:
        fstore.close()

    persisted = False
    if ev.facts.db_up and dsn:
        try:
            with monitor_facts.connect(dsn) as conn:
                conn.autocommit = False
                with conn, conn.cursor() as cur:
                    if alert_state.lock_if_present(cur):
                        run_rules(db_rules, DbStore(cur))
                        persisted = True
        except psycopg2.Error as exc:
            errors.append(f"state not persisted: {str(exc).strip().splitlines()[0]}")
    if not persisted:
        # Database down or 003 not applied: report, but do not notify (no place to remember it).
        del results[len(file_rules):]
        for rule in db_rules:
            v = verdicts[rule.name]
            results.append(_result(v, v.state, None, None, False, None))

    firing = [r["name"] for r in results if r["state"] == "firing"]
    return {
        "checked_at": iso(now),
        "state": "firing" if firing else "ok",
        "verdict": ev.state,
        "firing": firing,
        "persisted": persisted,
        "webhook": {"configured": bool(webhook), "sent": sent, "errors": errors},
        "alerts": results,
    }


def _result(v: Verdict, state: str, previous: str | None, since: str | None, notified: bool,
            notify_error: str | None) -> dict[str, Any]:
    rule = v.rule
    return {
        "name": rule.name, "state": state, "previous_state": previous,
        "changed": previous is not None and state != previous, "severity": rule.severity,
        "value": None if v.value in (None, float("inf")) else v.value,
        "value_text": v.value_text, "threshold": v.threshold, "unit": rule.unit,
        "summary": rule.summary, "message": v.message, "action": v.action,
        "since": since, "notified": notified, "notify_error": notify_error,
    }


def render_text(doc: dict[str, Any]) -> str:
    lines = [f"alerts: {len(doc['firing'])} firing   (checked {doc['checked_at']}"
             + (f", {doc['webhook']['sent']} webhook POSTs" if doc["webhook"]["configured"] else ", no webhook")
             + ")"]
    for a in doc["alerts"]:
        mark = {"firing": "FIRING", "resolved": "resolved", "ok": "ok", "unknown": "?"}[a["state"]]
        change = f"  (was {a['previous_state']})" if a["changed"] else ""
        unit = "" if a["unit"] == "bytes" else a["unit"]
        lines.append(f"  {mark:<9}{a['name']:<22}{a['value_text']:>10} / {fmt(a['threshold'], a['unit'])} "
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


#: The Prometheus scrape job netops is expected under (`netops alerts rules --job` changes it);
#: the dead-target rules need it, since `up` and `absent()` have nothing else to match on.
DEFAULT_JOB = "netops"
#: How long the generated rules let a condition hold before firing.
FOR = "1m"


def _threshold(name: str) -> str:
    return f'on(instance, job) group_left netops_alert_threshold{{alert="{name}"}}'


def rule_expr(r: Rule) -> str:
    """A rule's PromQL: its condition against the exported threshold gauge; for a rule read
    from PostgreSQL, plus "keep firing while the database is down".

    Why hold rather than let it resolve: while PostgreSQL is down the database-derived series
    vanish, so a plain rule resolves (and pages "resolved", then "firing" again on recovery)
    though nothing was fixed. `netops alerts check` keeps a rule's state while its value is
    unknown; the same here: an alert that was firing (its own ALERTS series) keeps firing for as
    long as `netops_database_up == 0`, with the same labels, and NetopsDatabaseDown says why
    the value is stale. Once the database answers, the condition alone decides again.
    """
    stable = "|".join(p for p, _ in STABLE_PHASES)
    cond = r.prom_expr.format(t=_threshold(r.name), stable=stable)
    if not r.from_db:
        return cond
    alert = _camel(r.name)
    held = (f'max without(alertstate, alertname, severity) (ALERTS{{alertname="{alert}", alertstate="firing"}}) '
            f'and on(instance, job) (netops_database_up == 0)')
    return f"({cond}) or ({held})"


def prometheus_rules(settings: Settings, job: str = DEFAULT_JOB) -> str:
    """Alerting rules equivalent to RULES, plus dead-target, absent and stale-metrics rules, and
    the recording rules the dashboard graphs. Thresholds are not baked in: every rule compares
    against `netops_alert_threshold{alert=...}`, which the export carries from the netops config,
    so changing a NETOPS_ALERT_* setting needs no new rules (`settings` is kept for the
    stale-metrics age, which depends on the write interval)."""
    lines = ["# Prometheus rules generated by `netops alerts rules`; thresholds come from the export",
             "# (netops_alert_threshold{alert=...}), so a config change needs no regeneration.",
             "groups:", "  - name: netops", "    rules:"]
    stale_after = max(180, 3 * settings.backlog_metric_interval)
    entries = [(_camel(r.name), rule_expr(r), r.severity, r.summary, r.action) for r in RULES]
    entries += [
        ("NetopsTargetDown", f'up{{job="{job}"}} == 0', "critical", "Prometheus cannot scrape netops",
         "The nginx /metrics endpoint (or node_exporter) of this instance does not answer: check "
         "`systemctl status nginx` and that metrics.prom is being written; every other netops alert is blind."),
        ("NetopsMetricsAbsent", f'absent(netops_database_up{{job="{job}"}})', "critical",
         "No netops metrics at all",
         f"No target of job {job} exports netops_database_up: the scrape job is missing or renamed, "
         "or every target is down; check the Prometheus scrape config and `netops metrics write`."),
        ("NetopsMetricsStale", f"time() - netops_metrics_generated_timestamp_seconds > {stale_after}", "warning",
         "netops metrics are stale",
         "Check that `netops metrics write --loop` runs (systemd/cron) and can write the metrics dir."),
    ]
    for alert, expr, severity, summary, action in entries:
        lines += [
            f"      - alert: {alert}",
            f"        expr: {_q(expr)}",
            f"        for: {FOR}",
            "        labels:",
            f"          severity: {severity}",
            "        annotations:",
            f"          summary: {_q(summary)}",
            f"          description: {_q(action)}",
        ]
    lines += ["  - name: netops_recording", "    rules:"]
    for record, expr in RECORDING_RULES:
        lines += [f"      - record: {record}", f"        expr: {_q(expr)}"]
    return "\n".join(lines) + "\n"


#: What the dashboards graph, precomputed (naming: level:metric:operations).
RECORDING_RULES: tuple[tuple[str, str], ...] = (
    ("code:netops_api_calls:rate5m", "sum without(endpoint) (rate(netops_api_calls_total[5m]))"),
    ("instance:netops_api_calls:increase1h", "sum without(endpoint, code) (increase(netops_api_calls_total[1h]))"),
    ("table:netops_sync_rows_written:increase1d", "sum without(kind) (increase(netops_sync_rows_written_total[1d]))"),
    ("outcome:netops_sync_runs:increase1d", "sum without(phase) (increase(netops_sync_runs_total[1d]))"),
    ("instance:netops_backlog_items_processed:rate5m",
     "sum without(outcome) (rate(netops_backlog_items_processed_total[5m]))"),
)
