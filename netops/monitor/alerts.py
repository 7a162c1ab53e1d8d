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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg2

from netops.config import Settings
from netops.db import alert_state, api_calls, monitor_facts
from netops.db.alert_state import DbStore, Stored
from netops.monitor.evaluation import RULES, Evaluation, Rule, Verdict, evaluate
from netops.monitor.facts import STABLE_PHASES, iso, utcnow
from netops.monitor.formatting import fmt

__all__ = ["RULES", "DbStore", "FileStore", "Stored", "alert_loop", "check_alerts", "format_payload",
           "next_state", "ping_heartbeat", "post_webhook", "prometheus_rules", "render_changes", "render_text",
           "rule_expr"]


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
        from netops.monitor.files import atomic_write

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


def ping_heartbeat(url: str, fail: bool, timeout: float = 5.0) -> str | None:
    """healthchecks.io style: GET `url` after a healthy check, `url/fail` when a critical alert
    fires; a monitor outside the box that stops hearing it knows the box, cron or loop is dead.
    None on a 2xx, else the reason."""
    req = urllib.request.Request(url.rstrip("/") + ("/fail" if fail else ""), method="GET",
                                 headers={"User-Agent": "netops-alerts"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"no answer: {getattr(exc, 'reason', exc)}"


def chat_text(doc: dict[str, Any]) -> str:
    """One notification as a chat line (Discord, Slack): state, rule, host, message, who drew it
    and since when, and the next step."""
    head = "RESOLVED" if doc["state"] == "resolved" else f"FIRING ({doc['severity']})"
    lines = [f"**{head}** netops `{doc['alert']}` on {doc['host']}: {doc['message']}",
             f"first event: {doc['since']}"]
    for src in doc.get("sources") or []:
        lines.append(f"- {src['calls']} x HTTP {src['code']} from {src['endpoint']} (key {src['key'] or '-'}, "
                     f"{src['component']}), first at {src['first_at']}")
    if doc["state"] == "firing":
        lines.append(f"action: {doc['action']}")
    return "\n".join(lines)


def format_payload(fmt_name: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The webhook body in NETOPS_ALERT_WEBHOOK_FORMAT's shape: netops' own JSON document, or a
    Discord / Slack incoming-webhook message carrying the same facts as text."""
    if fmt_name == "discord":
        return {"username": "netops", "content": chat_text(doc)[:2000]}  # Discord refuses > 2,000 chars
    if fmt_name == "slack":
        return {"text": chat_text(doc).replace("**", "*")}  # Slack's mrkdwn bold is one star
    return doc


#: rules about one HTTP code: their notification names the endpoints and keys that drew it
CODE_RULES = {"api_rate_limited": 429, "api_unauthorized": 401}


# --- the check -------------------------------------------------------------------------------

Post = Callable[[str, dict[str, Any]], str | None]

#: the rule whose state cannot live in the database it is about: kept in the state dir's file
FILE_RULE = "database_down"


def check_alerts(settings: Settings, dsn: str | None, evaluation: Evaluation | None = None,
                 post: Post = post_webhook) -> dict[str, Any]:
    """Judge every rule now (the one evaluation), persist state, log firing alerts, POST each state
    change once. Returns the `netops alerts check --json` document.
    """
    ev = evaluation if evaluation is not None else evaluate(settings, dsn)
    check = _Check(settings, post)
    file_verdicts = [v for v in ev.verdicts if v.rule.name == FILE_RULE]
    db_verdicts = [v for v in ev.verdicts if v.rule.name != FILE_RULE]
    fstore = FileStore(settings.state_path / "alert_state.json")
    try:
        check.run(file_verdicts, fstore)
    finally:
        fstore.close()
    persisted = ev.facts.db_up and bool(dsn) and _run_in_database(check, db_verdicts, dsn)
    if not persisted:
        # Database down or 003 not applied: report, but do not notify (no place to remember it).
        del check.results[len(file_verdicts):]
        check.results += [_result(v, v.state, None, None, False, None) for v in db_verdicts]
    firing = [r["name"] for r in check.results if r["state"] == "firing"]
    critical = [r["name"] for r in check.results if r["state"] == "firing" and r["severity"] == "critical"]
    return {
        "checked_at": iso(check.now),
        "state": "firing" if firing else "ok",
        "verdict": ev.state,
        "firing": firing,
        "persisted": persisted,
        "webhook": {"configured": bool(check.webhook), "format": check.format, "sent": check.sent,
                    "errors": check.errors},
        "heartbeat": _heartbeat(settings, bool(critical), check.log),
        "alerts": check.results,
    }


def _heartbeat(settings: Settings, fail: bool, log: Any) -> dict[str, Any]:
    url = settings.alert_heartbeat_url
    if not url:
        return {"configured": False, "sent": None, "error": None}
    err = ping_heartbeat(url, fail)
    if err is not None:
        log.error(f"heartbeat ping ({'fail' if fail else 'ok'}) failed: {err}")
    return {"configured": True, "sent": "fail" if fail else "ok", "error": err}


def _run_in_database(check: _Check, verdicts: list[Verdict], dsn: str | None) -> bool:
    """The verdicts' state in netops.alert_state, in one transaction under the ALERTS lock;
    False when it could not be kept there (table absent, database error)."""
    try:
        with monitor_facts.connect(dsn or "") as conn:
            conn.autocommit = False
            with conn, conn.cursor() as cur:
                if alert_state.lock_if_present(cur):
                    check.cur = cur
                    check.run(verdicts, DbStore(cur))
                    return True
    except psycopg2.Error as exc:
        check.errors.append(f"state not persisted: {str(exc).strip().splitlines()[0]}")
    return False


class _Check:
    """One `alerts check` run: each verdict's state moved on, logged, and POSTed once per change."""

    def __init__(self, settings: Settings, post: Post) -> None:
        from netops.log import get_logger

        # The command prints every alert itself; mirroring the log lines to stderr would say it twice.
        self.log = get_logger("alerts", settings.log_path).bind(quiet_stderr=True)
        self.webhook = settings.alert_webhook_url
        self.format = settings.alert_webhook_format
        self.post = post
        self.cur: Any = None  # the state transaction's cursor, for what a notification names
        self.now = utcnow()
        self.results: list[dict[str, Any]] = []
        self.sent = 0
        self.errors: list[str] = []

    def run(self, verdicts: list[Verdict], store: Any) -> None:
        for v in verdicts:
            prev = store.load(v.rule.name)
            state = next_state(prev, v.firing, bool(self.webhook))
            cur = Stored(v.rule.name, state, prev.since if state == prev.state else self.now,
                         prev.notified_state, prev.notify_error)
            if not self.webhook and state != prev.state:
                cur.notified_state = None
            notified = False
            if self.webhook and state in ("firing", "resolved") and cur.notified_state != state:
                notified = self._notify(v, cur, prev)
            if state == "firing":
                verb = "FIRING" if prev.state != "firing" else "still firing"
                self.log.warning(f"{verb} {v.rule.name}: {v.message}; action: {v.action}")
            elif state == "resolved" and prev.state == "firing":
                self.log.info(f"RESOLVED {v.rule.name}: {v.message}")
            store.save(cur, v.value, v.threshold, v.message)
            self.results.append(_result(v, state, prev.state, iso(cur.since), notified, cur.notify_error))

    def _notify(self, v: Verdict, cur: Stored, prev: Stored) -> bool:
        """POST the change; a failure stays pending in `cur` and is retried next run."""
        rule, state = v.rule, cur.state
        sources = self._sources(rule) if state == "firing" else []
        first = min((src["first_at"] for src in sources), default=None)
        payload = {
            "alert": rule.name, "state": state, "previous_state": prev.state,
            "severity": rule.severity, "summary": rule.summary, "message": v.message,
            "value": None if v.value in (None, float("inf")) else v.value, "threshold": v.threshold,
            "unit": rule.unit, "action": v.action,
            # the first event's time where the bookkeeping has it (a 429's own row), else when a check first saw it
            "since": first or iso(cur.since), "sources": sources,
            "host": socket.gethostname(), "sent_at": iso(utcnow()),
        }
        err = self.post(self.webhook, format_payload(self.format, payload))
        if err is None:
            cur.notified_state, cur.notify_error = state, None
            self.sent += 1
            return True
        cur.notify_error = err
        self.errors.append(f"{rule.name}: {err}")
        self.log.error(f"webhook POST for {rule.name} ({state}) failed: {err}; will retry next run")
        return False


    def _sources(self, rule: Rule) -> list[dict[str, Any]]:
        """The endpoints, keys and jobs that drew a code rule's HTTP code in its window."""
        code = CODE_RULES.get(rule.name)
        if code is None or self.cur is None:
            return []
        rows = api_calls.code_sources(self.cur, code)
        return [{"endpoint": e, "key": k, "component": c, "code": code, "calls": n,
                 "first_at": iso(datetime.fromtimestamp(t, timezone.utc))} for e, k, c, n, t in rows]


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


# --- the loop --------------------------------------------------------------------------------

class StopLoop(Exception):
    """A check still running 1 s after SIGINT/SIGTERM is cut short (its transaction rolls back:
    nothing half-recorded; the next run judges again)."""


#: how long a check in progress may finish after a stop signal before it is cut short
STOP_GRACE_SECONDS = 1.0


def alert_loop(settings: Settings, dsn_fn: Callable[[], str | None], interval: float,
               emit: Callable[[dict[str, Any]], None], iterations: int | None = None) -> str:
    """`netops alerts check --loop`: one check every `interval` seconds (start to start), until
    SIGINT/SIGTERM; returns why it stopped. A signal during the sleep stops at once; during a
    check it lets the check finish for STOP_GRACE_SECONDS, then cuts it short. A failing check is
    logged and the loop goes on (cron restarts a dead loop within a minute; see the role)."""
    import signal
    import threading
    import time

    from netops.log import get_logger

    log = get_logger("alerts", settings.log_path)
    stop = threading.Event()
    busy = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()
        if busy.is_set():
            signal.setitimer(signal.ITIMER_REAL, STOP_GRACE_SECONDS)

    def on_alarm(_signum: int, _frame: Any) -> None:
        raise StopLoop

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    old[signal.SIGALRM] = signal.signal(signal.SIGALRM, on_alarm)
    done, why = 0, "iterations done"
    try:
        installed, configured = installed_stamp(), config_stamp(settings.config_path)
        while not stop.is_set() and (iterations is None or done < iterations):
            if installed_stamp() != installed:
                why = "netops was reinstalled: exiting so cron starts the loop again with the new code"
                break
            if config_stamp(settings.config_path) != configured:
                why = f"{settings.config_path} changed: exiting so cron starts the loop again with it"
                break
            started = time.monotonic()
            busy.set()
            try:
                emit(check_alerts(settings, dsn_fn()))
            except StopLoop:
                why = "stopped by signal; the check in progress was cut short (nothing of it recorded)"
                break
            except Exception as exc:  # keep the loop alive: the next check may succeed
                log.error(f"alert check failed: {exc}; retrying in {interval:g}s")
            finally:
                busy.clear()
                signal.setitimer(signal.ITIMER_REAL, 0)
            done += 1
            if iterations is None or done < iterations:
                stop.wait(max(0.0, interval - (time.monotonic() - started)))
        if stop.is_set() and why == "iterations done":
            why = "stopped by signal"
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    log.info(f"alert loop ended after {done} checks: {why}")
    return why


def installed_stamp() -> tuple[str, float]:
    """The installed package's version and its __init__'s mtime: a deploy that reinstalls netops
    changes it, and a loop still running the old code (which would import new modules lazily
    into old ones) exits; cron starts the new one within a minute."""
    from importlib import metadata

    import netops

    try:
        version = metadata.version("netops")
    except metadata.PackageNotFoundError:
        version = "unknown"
    try:
        mtime = Path(netops.__file__ or "").stat().st_mtime
    except OSError:
        mtime = 0.0
    return version, mtime


def config_stamp(path: str | None) -> float | None:
    """The config file's mtime: a deploy that changes a threshold or the webhook URL rewrites
    it, and a loop that read the old one at start would keep judging and POSTing by it forever."""
    if path is None:
        return None
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return None


def render_changes(doc: dict[str, Any]) -> str | None:
    """The loop's output for one check: only state changes and errors (a line a minute per alert
    would fill cron_output.log); None when there is nothing new."""
    lines = [f"{doc['checked_at']} {a['name']}: {a['previous_state']} -> {a['state']}"
             + (f" ({a['message']})" if a["state"] == "firing" else "")
             for a in doc["alerts"] if a["changed"]]
    lines += [f"{doc['checked_at']} webhook error: {e}" for e in doc["webhook"]["errors"]]
    hb = doc.get("heartbeat") or {}
    if hb.get("error"):
        lines.append(f"{doc['checked_at']} heartbeat error: {hb['error']}")
    return "\n".join(lines) or None


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
    hb = doc.get("heartbeat") or {}
    if hb.get("configured"):
        lines.append(f"  heartbeat: {hb['sent']} ping " + (f"failed: {hb['error']}" if hb["error"] else "sent"))
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
#: How long a netops alert keeps firing after its condition stops being seen (Prometheus >= 2.42):
#: a scrape gap makes every netops series stale at once, and without this each firing alert would
#: page "resolved" and then page again on the next good scrape though nothing was fixed. Covers a
#: gap of about 2.5 minutes at a 15-30 s scrape interval; the price is that a real fix is
#: announced up to this much later. NetopsTargetDown has none: it says the gap itself.
KEEP_FIRING_FOR = "3m"


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


def prometheus_rules(settings: Settings, job: str = DEFAULT_JOB, for_: str = FOR,
                     keep_firing_for: str = KEEP_FIRING_FOR) -> str:
    """Alerting rules equivalent to RULES, plus dead-target, absent and stale-metrics rules, and
    the recording rules the dashboard graphs. Thresholds are not baked in: every rule compares
    against `netops_alert_threshold{alert=...}`, which the export carries from the netops config,
    so changing a NETOPS_ALERT_* setting needs no new rules (`settings` is kept for the
    stale-metrics age, which depends on the write interval). `for_` and `keep_firing_for` are the
    deployed defaults; a test with a 1 s scrape scales them down."""
    lines = ["# Prometheus rules generated by `netops alerts rules`; thresholds come from the export",
             "# (netops_alert_threshold{alert=...}), so a config change needs no regeneration.",
             "groups:", "  - name: netops", "    rules:"]
    stale_after = max(180, 3 * settings.backlog_metric_interval)
    entries = [(_camel(r.name), rule_expr(r), r.severity, r.summary, r.action, keep_firing_for) for r in RULES]
    entries += [(*e, "") for e in _target_rules(job, stale_after)]
    for alert, expr, severity, summary, action, keep in entries:
        lines += [f"      - alert: {alert}", f"        expr: {_q(expr)}", f"        for: {for_}"]
        if keep and keep != "0s":
            lines.append(f"        keep_firing_for: {keep}")
        lines += [
            "        labels:",
            f"          severity: {severity}",
            "        annotations:",
            f"          summary: {_q(summary)}",
            f"          description: {_q(action)}",
        ]
        code = CODE_RULES.get(_uncamel.get(alert, ""))
        if code is not None:
            lines.append(f"          sources: {_q(sources_template(code))}")
    lines += ["  - name: netops_recording", "    rules:"]
    for record, expr in RECORDING_RULES:
        lines += [f"      - record: {record}", f"        expr: {_q(expr)}"]
    return "\n".join(lines) + "\n"


_uncamel = {_camel(r.name): r.name for r in RULES}


def sources_template(code: int) -> str:
    """The `sources` annotation of a 401/429 alert: which endpoints drew that code in the last hour
    (the zero-initialised counters), and for 429 which keys (the per-key gauge); a Prometheus
    template, rendered when the alert fires, so Alertmanager's receivers name them too."""
    instance = '$labels.instance'
    # max - min over the hour, not increase(): the series start at 0 (zero-initialised), so the
    # difference is the exact count, where increase() extrapolates 3 calls to 3.5 and rounds to 4
    series = f'netops_api_calls_total{{code=\\"{code}\\",instance=%q}}'
    by_endpoint = (f'{{{{ with query (printf "sort_desc(sum by (endpoint) (max_over_time({series}[1h]) - '
                   f'min_over_time({series}[1h])) > 0)" {instance} {instance}) }}}}{{{{ range . }}}}'
                   '{{ .Labels.endpoint }} x{{ .Value }} {{ end }}{{ else }}no endpoint recorded {{ end }}')
    if code != 429:
        return f"HTTP {code} in the last hour by endpoint: {by_endpoint}"
    by_key = (f'{{{{ with query (printf "sum by (key) (netops_api_key_rate_limited_last_hour{{instance=%q}}) > 0" '
              f'{instance}) }}}}{{{{ range . }}}}{{{{ .Labels.key }}}} x{{{{ .Value }}}} {{{{ end }}}}'
              '{{ else }}none recorded{{ end }}')
    return f"HTTP {code} in the last hour by endpoint: {by_endpoint}| by key: {by_key}"


def _target_rules(job: str, stale_after: int) -> list[tuple[str, str, str, str, str]]:
    """The rules about the scrape itself: the target down, no netops metrics where a target
    answers (or no target at all: not while it is merely down, which NetopsTargetDown says: one
    page per cause), and metrics that stopped being rewritten."""
    return [
        ("NetopsTargetDown", f'up{{job="{job}"}} == 0', "critical", "Prometheus cannot scrape netops",
         "The nginx /metrics endpoint (or node_exporter) of this instance does not answer: check "
         "`systemctl status nginx` and that metrics.prom is being written; every other netops alert is blind."),
        ("NetopsMetricsAbsent",
         f'(up{{job="{job}"}} == 1 unless on(instance, job) netops_database_up) or absent(up{{job="{job}"}})',
         "critical", "No netops metrics at all",
         f"A target of job {job} answers without netops_database_up, or the job has no target: the file "
         "served is not netops' or is empty, or the scrape job is missing or renamed; check the Prometheus "
         "scrape config and `netops metrics write`."),
        ("NetopsMetricsStale", f"time() - netops_metrics_generated_timestamp_seconds > {stale_after}", "warning",
         "netops metrics are stale",
         "Check that `netops metrics write --loop` runs (systemd/cron) and can write the metrics dir."),
    ]


#: What the dashboards graph, precomputed (naming: level:metric:operations).
RECORDING_RULES: tuple[tuple[str, str], ...] = (
    ("code:netops_api_calls:rate5m", "sum without(endpoint) (rate(netops_api_calls_total[5m]))"),
    ("instance:netops_api_calls:increase1h", "sum without(endpoint, code) (increase(netops_api_calls_total[1h]))"),
    ("table:netops_sync_rows_written:increase1d", "sum without(kind) (increase(netops_sync_rows_written_total[1d]))"),
    ("outcome:netops_sync_runs:increase1d", "sum without(phase) (increase(netops_sync_runs_total[1d]))"),
    ("instance:netops_backlog_items_processed:rate5m",
     "sum without(outcome) (rate(netops_backlog_items_processed_total[5m]))"),
)
