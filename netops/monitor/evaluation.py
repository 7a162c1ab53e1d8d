"""The source of every monitor verdict: one typed Evaluation (facts -> rules -> verdicts).

`netops status`, `netops alerts check`, the metrics files, the dashboard, history.json and the
status page (status.json is `netops status --json`) all call `evaluate()` and render its result,
so they cannot disagree and none of them repeats what another stored earlier: status's alerts
line is the rules judged *now*, not the last `alerts check`. How a verdict is reached:

- `gather()` reads every fact (PostgreSQL bookkeeping and catalogs, the token store, the log
  and state dirs, nginx) in one pass on one short connection. A fact that cannot be read — the
  database is down — is None ("unknown"), never 0 or "none".
- `RULES` is the table: one row per check, with its threshold (a Settings field or a fixed
  number), direction, severity and the operator's next step. A rule fires when its value is
  past the threshold; a rule whose value is unknown neither fires nor clears.
- The verdict is the worst severity among firing rules: critical (exit 2), warning (exit 1),
  ok (exit 0). `netops alerts check` adds state, logging and the webhook on top of the same
  verdicts (netops/monitor/alerts.py); metrics export each rule as `netops_alert_firing`.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg2

from netops.api.limiter import BudgetWait
from netops.config import FIELDS, Settings, freshness_target
from netops.credentials import Budget
from netops.db import marks, monitor_facts
from netops.db.backup import BackupFacts, backup_facts
from netops.db.counters import Counters, read_counters
from netops.db.monitor_facts import ApiFacts, BacklogFacts, QualityFacts, TableCount
from netops.db.ratelimit import WaitRow
from netops.monitor import facts
from netops.monitor.facts import DiskFacts, KeyRow, LastRun, PhaseFacts, TokenFacts
from netops.monitor.formatting import fmt

SEVERITY_RANK = {"ok": 0, "warning": 1, "critical": 2}


# --- facts -----------------------------------------------------------------------------------

@dataclass
class Facts:
    """Everything the views show, read once. None means unknown (not read), not zero."""

    now: datetime
    db_up: bool = False
    db_error: str | None = None
    db_version: str | None = None
    schema: bool | None = None            # netops schema present (None: database down)
    lock_held: bool | None = None         # a live sync holds the sync lock
    phases: list[PhaseFacts] | None = None
    run: LastRun | None = None
    api: ApiFacts | None = None
    backlog: BacklogFacts | None = None
    tables: dict[str, TableCount] | None = None
    db_size: int | None = None
    quality: QualityFacts | None = None
    disk: dict[str, DiskFacts] = field(default_factory=dict)  # "log_dir", "state_dir"
    log_bytes: int = 0
    token: TokenFacts = field(default_factory=TokenFacts)
    #: one row per application key (netops.monitor.facts.key_rows); set-aside state unknown (None
    #: values) when the database is down
    keys: list[KeyRow] = field(default_factory=list)
    #: every configured key's budget summed (netops.monitor.facts.configured_keys), from the same read of the
    #: keys as `keys`: what status, the metrics, history.json and the dashboard call "the budget"
    budget: Budget = field(default_factory=lambda: Budget(1, 0.0, 0))
    nginx: NginxFacts = field(default_factory=lambda: NginxFacts())
    #: the all-time counters (netops/db/counters.py), read on the same connection when asked
    #: for (the metrics export); None: not asked, or unknown (database down, not migrated)
    counters: Counters | None = None
    #: the backups (`netops db backup`'s record in the state dir, readable with the database down)
    backup: BackupFacts = field(default_factory=BackupFacts)
    #: backlog resource -> seconds since the end of its last fully applied window (issue 23;
    #: None: never detected); None: unknown (database down, not migrated)
    freshness: dict[str, float | None] | None = None
    #: campus in scope -> (sessions open in the mirror, seconds since the oldest began; None: none
    #: open); None: unknown (database down) or no campus in scope
    open_sessions: dict[int, tuple[int, float | None]] | None = None
    elapsed_ms: float = 0.0

    @property
    def calls_this_hour(self) -> int | None:
        """The hour's API calls against the budget, the one figure every view shows: the slots the
        limiter claimed for the configured keys (what it gates on, what each key line shows),
        summed; with no key configured, the calls recorded in netops.api_calls. None: unknown."""
        known = [k.calls_last_hour for k in self.keys if k.error is None and k.calls_last_hour is not None]
        if known:
            return sum(known)
        return None if self.api is None or any(k.error is None for k in self.keys) else self.api.calls_1h

    @property
    def oldest_stable_success(self) -> datetime | None:
        """The stable tables' oldest last success: how stale the mirror is; None when a stable
        phase never succeeded (or the sync runs are unknown)."""
        successes = [p.last_success_at for p in self.phases or [] if p.phase in dict(facts.STABLE_PHASES)]
        if not successes or any(x is None for x in successes):
            return None
        return min(successes)  # type: ignore[type-var]


@dataclass
class NginxFacts:
    """Whether nginx answers the configured URL; `ok` None: no URL configured (not checked)."""

    ok: bool | None = None
    url: str | None = None
    error: str | None = None
    http_status: int | None = None

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"ok": self.ok, "url": self.url, "error": self.error}
        if self.http_status is not None:
            doc["http_status"] = self.http_status
        return doc


def check_nginx(url: str | None, timeout: float) -> NginxFacts:
    """GET the configured URL; any 2xx/3xx answer means nginx runs and serves netops.

    `timeout` is the nginx_timeout setting (seconds); a timeout says so and names the setting,
    so a slow box is told apart from a stopped nginx and the knob is found."""
    if not url:
        return NginxFacts()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout) as resp:
            code = resp.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        # connect timeouts come wrapped in URLError, read timeouts bare (socket.timeout is TimeoutError)
        if isinstance(reason, TimeoutError):
            return NginxFacts(False, url, f"GET timed out: no answer within {timeout:g} s "
                                          "(nginx_timeout, NETOPS_NGINX_TIMEOUT)")
        return NginxFacts(False, url, f"no answer: {reason}")
    if 200 <= code < 400:
        return NginxFacts(True, url, None, code)
    return NginxFacts(False, url, f"HTTP {code}", code)


Then = Callable[[Any, "Facts"], None]


def gather(settings: Settings, dsn: str | None, check_services: bool = True, counters: bool = False,
           then: Then | None = None) -> Facts:
    """Read every fact once. Never raises for a sick box: what cannot be read stays unknown.

    `counters`: also read the all-time counters, on the same connection (the metrics export).
    `then(cur, facts)`: run on the same connection once the database facts are read (history.json
    is written from them, netops/monitor/history.py); not run when the database or the schema
    cannot be read. It must catch its own errors: one escaping is taken for a database failure."""
    started = time.monotonic()
    f = Facts(now=facts.utcnow())
    if check_services:
        f.nginx = check_nginx(settings.nginx_url, settings.nginx_timeout)
    # the default key's token store, read once: the token facts and the key rows both judge it
    store = facts.read_token_store(settings)
    f.token = facts.token_facts(settings, store=store)
    stores = {settings.token_file: store.data}
    f.budget = settings.budget
    then_s = 0.0  # time spent in `then`: not the evaluation's (elapsed_ms stays what status measures)
    try:
        if dsn is None:
            raise psycopg2.OperationalError("no DSN: NETOPS_DSN is unset and no embedded server")
        with monitor_facts.connect(dsn) as conn, conn.cursor() as cur:
            _read_database(cur, f, counters)
            if f.schema:
                f.freshness = _freshness(cur, f.now, settings)
                f.open_sessions = _open_sessions(cur, f.now, settings)
                f.keys = facts.key_rows(settings, cur, stores=stores)
                if then is not None:
                    t0 = time.monotonic()
                    then(cur, f)
                    then_s = time.monotonic() - t0
    except psycopg2.Error as exc:
        f.db_error = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if f.db_up:  # reachable, but a query failed (e.g. half-migrated): say so, keep what was read
            f.db_error = f"query failed: {f.db_error}"
    f.disk = {"log_dir": facts.disk_facts(settings.log_path), "state_dir": facts.disk_facts(settings.state_path)}
    f.log_bytes = f.disk["log_dir"].used_bytes
    f.backup = backup_facts(settings)
    if not f.keys:  # database down or not migrated: what the key and token files tell
        f.keys = facts.key_rows(settings, None, stores=stores)
    f.elapsed_ms = round((time.monotonic() - started - then_s) * 1000, 1)
    return f


def _read_database(cur: Any, f: Facts, counters: bool) -> None:
    """The database's facts into `f`, on one cursor; the bookkeeping ones only once migrated."""
    f.db_version = monitor_facts.server_version(cur)
    f.db_up = True
    f.db_size = monitor_facts.database_size(cur)
    f.tables = monitor_facts.table_counts(cur)
    f.schema = monitor_facts.relation_exists(cur, "netops.sync_runs")
    if not f.schema:
        return
    f.lock_held = monitor_facts.sync_lock_held(cur)
    f.phases = facts.phase_facts(cur, f.lock_held)
    f.run = facts.last_run(cur, f.lock_held)
    facts.mark_live_run(f.phases, f.run)
    f.api = monitor_facts.api_facts(cur)
    f.backlog = monitor_facts.backlog_facts(cur)
    f.quality = monitor_facts.quality_facts(cur)
    if counters:
        f.counters = read_counters(cur)


# --- the rules -------------------------------------------------------------------------------

Value = Callable[[Facts, Settings], float | None]
Detail = Callable[[Facts, Settings], str | None]


#: every setting's name: what a rule may name as its threshold
SETTING_NAMES = frozenset(f.name for f in FIELDS)


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One check: fires when value > threshold (or < threshold when `below`)."""

    name: str
    summary: str
    value: Value
    unit: str
    action: str
    prom_expr: str  # PromQL; {t} is the threshold (netops_alert_threshold), in the metric's unit
    setting: str | None = None  # Settings field holding the threshold (None: fixed at `fixed`)
    severity: str = "warning"
    fixed: float = 0.0
    below: bool = False
    scale: float = 1.0  # threshold (settings unit) * scale = value's unit
    prom_scale: float = 1.0  # threshold * prom_scale = the Prometheus metric's unit
    detail: Detail | None = None  # the specifics for a firing rule (which phase, which dir)
    #: its value is read from PostgreSQL: its Prometheus rule holds while the database is down
    from_db: bool = True
    #: the Prometheus threshold is threshold * prom_scale + prom_offset (yes/no rules whose
    #: metric is "up"-like: value "down" > 0 becomes metric < 1)
    prom_offset: float = 0.0
    #: the next step when it depends on the box (e.g. its own server vs the embedded one); else `action`
    advice: Callable[[Settings], str] | None = None
    #: the look-back its value is counted over ("15m", "1h"; "" = a reading of now): the exported
    #: series its prom_expr reads covers the same window, so both alert paths judge the same number
    window: str = ""
    #: the next step when it depends on the facts (a known heavy job or a loop); None from it: `action_for`
    advice_of: Callable[[Facts, Settings], str | None] | None = None

    def prom_threshold(self, settings: Settings) -> float:
        """The threshold in the unit of the metric prom_expr compares (netops_alert_threshold)."""
        return self.threshold(settings) * self.prom_scale + self.prom_offset

    def action_for(self, settings: Settings) -> str:
        return self.advice(settings) if self.advice is not None else self.action

    def __post_init__(self) -> None:
        # the threshold's setting is named, not read, here: a misspelt name fails at import
        if self.setting is not None and self.setting not in SETTING_NAMES:
            raise ValueError(f"rule {self.name}: no setting named {self.setting!r}")

    def threshold(self, settings: Settings) -> float:
        return float(getattr(settings, self.setting)) * self.scale if self.setting else self.fixed

    def breached(self, value: float, threshold: float) -> bool:
        return value < threshold if self.below else value > threshold


def _stable(f: Facts) -> list[PhaseFacts]:
    known = dict(facts.STABLE_PHASES)
    return [p for p in (f.phases or []) if p.phase in known]


def _db_down(f: Facts, s: Settings) -> float:
    return 0.0 if f.db_up else 1.0


def _schema_missing(f: Facts, s: Settings) -> float | None:
    return None if f.schema is None else (0.0 if f.schema else 1.0)


def _unauthorized(f: Facts, s: Settings) -> float | None:
    """401s since the credentials last worked: a 2xx answer after them (a call, or the token
    POST of a refresh) clears them, and so does a token stored since the latest 401 (a refresh
    made while the database was down is not in netops.api_calls)."""
    if f.api is None:
        return None
    last, got = f.api.last_unauthorized_at, f.token.obtained_at
    if last is not None and got is not None and got > last and f.token.usable:
        return 0.0
    return float(f.api.unauthorized_since_success)


def _credential_problems(f: Facts, s: Settings) -> float:
    return float(len(s.keys.problems))


def _secret_setting(s: Settings) -> str:
    """The default key's secret setting as the operator gave it (env, file or config key)."""
    key = next((k for k in s.keys.keys if k.label == "default"), None)
    return key.secret_source if key is not None else "NETOPS_CLIENT_SECRET"


def _unauthorized_advice(s: Settings) -> str:
    return ("Run `netops token refresh`; if it fails the application secret was rotated or expired: generate a "
            f"new one on the intra and put it in {_secret_setting(s)}. The alert clears at the first call or "
            "token refresh that works.")


def _rate_limited(f: Facts, s: Settings) -> float | None:
    return None if f.api is None else float(f.api.rate_limited_1h)


def _calls_per_minute(f: Facts, s: Settings) -> float | None:
    return None if f.api is None else f.api.calls_per_minute


# --- the budget rules (issue 22): who spends, whether that is known heavy work, who waits -------

#: Components whose heavy spending is the job itself, not a loop: reconcile (a budget-bounded full
#: pull), verify-links (every campus's listing), the estimate probes before them. `detect` is one
#: only while it fills a resource for the first time (ApiFacts.first_fills).
KNOWN_HEAVY = {"reconcile": "reconcile (a full pull within its budget share)",
               "verify-links": "sync verify-links (one listing per campus)",
               "estimate": "the size probes before a long job"}


def _heavy_kind(f: Facts, component: str) -> str | None:
    """Why `component`'s spending is a known heavy job, or None (unexplained)."""
    if component == "detect" and f.api is not None and f.api.first_fills:
        return f"a first backfill of {', '.join(f.api.first_fills)} (backlog detect with an empty mirror)"
    return KNOWN_HEAVY.get(component)


def _unexplained(f: Facts, s: Settings) -> list[str]:
    """The jobs that are not known heavy work, when they alone spend past the threshold (15 min
    at NETOPS_ALERT_CALLS_PER_MIN): below it, the known heavy jobs are what made the rule fire."""
    others = [(c, n) for c, _, n in (f.api.spenders_15m if f.api is not None else []) if _heavy_kind(f, c) is None]
    if sum(n for _, n in others) <= s.alert_calls_per_min * 15:
        return []
    return sorted({c for c, _ in others})


def _runs_out(f: Facts) -> str:
    """When the hour's budget runs out at the last 15 minutes' pace."""
    assert f.api is not None
    calls = f.calls_this_hour or 0  # the one figure every view shows
    left = f.budget.per_hour - calls
    if left <= 0:
        return f"the hour's budget ({f.budget.per_hour:,}) is spent: jobs wait for it (api_budget_spent)"
    pace = f.api.calls_15m / 15.0
    minutes = left / pace if pace > 0 else float("inf")
    used = f"({calls:,}/{f.budget.per_hour:,} used)"
    if minutes > 60:
        return f"at this pace the hour's budget lasts the hour {used}"
    return f"at this pace the hour's budget runs out in ~{minutes:.0f} min {used}"


def _loop_detail(f: Facts, s: Settings) -> str | None:
    """Which jobs (components, keys) spend, which of them are known heavy work, when the budget ends."""
    if f.api is None:
        return None
    spent = ", ".join(f"{c} {n:,} (key {k})" for c, k, n in f.api.spenders_15m[:6])
    known = sorted({kind for c, _, _ in f.api.spenders_15m if (kind := _heavy_kind(f, c))})
    odd = _unexplained(f, s)
    parts = [f"calls in 15 min by job: {spent or 'none recorded'}"]
    if known:
        parts.append("known heavy job: " + "; ".join(known))
    if odd:
        parts.append("unexplained: " + ", ".join(odd))
    parts.append(_runs_out(f))
    return "; ".join(parts)


def _loop_advice(f: Facts, s: Settings) -> str | None:
    """A known heavy job needs no hunt; only unexplained spending gets the find-and-stop advice."""
    if f.api is None or not f.api.spenders_15m:
        return None
    odd = _unexplained(f, s)
    if odd:
        return (f"Unexplained spending by {', '.join(odd)}: find the job that keeps calling (`netops logs tail backlog`, "
                "`netops logs tail stable`, ps -u netops), stop it by its PID, fix the cause, then rerun it by hand.")
    return ("Known heavy work (the detail names it): let it finish — it ends by itself, and Ctrl-C stops it cleanly "
            "saying what it left; other jobs wait for budget meanwhile. Run such jobs off-peak, or raise "
            "NETOPS_ALERT_CALLS_PER_MIN if they are routine here.")


def _budget_spent(f: Facts, s: Settings) -> float | None:
    if f.api is None:
        return None
    hour_waits = [w for w in f.api.waits if w.reason == "hour"]
    return 1.0 if (f.calls_this_hour or 0) >= f.budget.per_hour or hour_waits else 0.0


def wait_line(w: WaitRow) -> str:
    """One waiting job as its own progress line says it (netops.api.limiter.BudgetWait.line)."""
    return BudgetWait(w.component, w.used, w.budget, w.next_slot_in, w.waited_seconds, w.reason).line()


def _budget_spent_detail(f: Facts, s: Settings) -> str | None:
    """`1,200/1,200 calls this hour; detect (pid 4711 on box1, waiting 14 min): waiting for API budget: ...`."""
    assert f.api is not None
    text = f"{f.calls_this_hour or 0:,}/{f.budget.per_hour:,} calls this hour"
    if not f.api.waits:
        return text + "; no job waits for it now"
    jobs = "; ".join(f"{w.component} (pid {w.pid} on {w.host}, waiting {fmt_wait(w.waited_seconds)}): {wait_line(w)}"
                     for w in f.api.waits)
    return f"{text}; {jobs}"


def fmt_wait(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _db_size(f: Facts, s: Settings) -> float | None:
    return None if f.db_size is None else float(f.db_size)


def _log_bytes(f: Facts, s: Settings) -> float:
    return float(f.log_bytes)


def _sync_duration(f: Facts, s: Settings) -> float | None:
    if f.run is None:
        return None
    if f.run.status in (None, "interrupted"):  # nothing ran, or a dead run: no duration to judge
        return 0.0
    return f.run.duration_seconds


def _sync_age_hours(f: Facts, s: Settings) -> float | None:
    if f.phases is None:
        return None
    oldest = f.oldest_stable_success
    if oldest is None:
        return float("inf")  # never synced (some table never refreshed): infinitely stale
    return (f.now - oldest).total_seconds() / 3600.0


def _sync_age_detail(f: Facts, s: Settings) -> str | None:
    never = [p.phase for p in _stable(f) if p.last_success_at is None]
    if never:
        return f"never synced successfully: {', '.join(never)}"
    return None


def _sync_failed(f: Facts, s: Settings) -> float | None:
    return None if f.phases is None else float(sum(1 for p in f.phases if p.last_status == "failed"))


def _sync_failed_detail(f: Facts, s: Settings) -> str | None:
    return "; ".join(f"{p.phase}: {p.error or 'no error text'}" for p in (f.phases or []) if p.last_status == "failed")


def _sync_interrupted(f: Facts, s: Settings) -> float | None:
    return None if f.phases is None else float(sum(1 for p in f.phases if p.last_status == "interrupted"))


def _sync_interrupted_detail(f: Facts, s: Settings) -> str | None:
    return ", ".join(p.phase for p in (f.phases or []) if p.last_status == "interrupted")


def _backlog_pending(f: Facts, s: Settings) -> float | None:
    return float(f.backlog.pending) if f.backlog is not None and f.backlog.available else None


def _backlog_failed(f: Facts, s: Settings) -> float | None:
    return float(f.backlog.failed) if f.backlog is not None and f.backlog.available else None


def _quality(f: Facts, s: Settings) -> float | None:
    if f.quality is None or f.quality.checked_at is None:
        return None
    return float(f.quality.violations)


def _disk_free(f: Facts, s: Settings) -> float | None:
    pcts = [d.free_percent for d in f.disk.values() if d.free_percent is not None]
    return min(pcts) if pcts else None


def _disk_detail(f: Facts, s: Settings) -> str | None:
    worst = min(f.disk.values(), key=lambda d: d.free_percent or 100.0, default=None)
    return f"{worst.free_percent}% free on the filesystem of {worst.path}" if worst else None


# --- backups (`netops db backup`) ---------------------------------------------------------------
def _backup_age_hours(f: Facts, s: Settings) -> float | None:
    """Hours since the last good backup; unknown until a first attempt is recorded (a new box
    or a dev box without the backup job), infinite when every attempt failed."""
    b = f.backup
    if not b.recorded:
        return None
    return float("inf") if b.good_at is None else round((f.now - b.good_at).total_seconds() / 3600, 2)


def _backup_failed(f: Facts, s: Settings) -> float | None:
    return None if f.backup.last_ok is None else (0.0 if f.backup.last_ok else 1.0)


def _backup_age_detail(f: Facts, s: Settings) -> str | None:
    b = f.backup
    return f"last good backup {facts.iso(b.good_at)} ({b.good_path})" if b.good_at else "no backup ever succeeded"


def _token_unusable(f: Facts, s: Settings) -> float:
    return 0.0 if f.token.usable else 1.0


def _token_detail(f: Facts, s: Settings) -> str | None:
    t = f.token
    if t.error:
        return t.error
    if not t.present:
        return "no API token stored yet"
    if t.refused_at is not None:
        return f"the API refused the stored token (HTTP 401 at {facts.iso(t.refused_at)})"
    return "the stored API token has expired"


def _secret_days(f: Facts, s: Settings) -> float | None:
    svu = f.token.secret_valid_until
    return None if svu is None else round((svu - f.now).total_seconds() / 86400, 2)


def _keys_set_aside(f: Facts, s: Settings) -> float | None:
    if not (f.db_up and f.schema):  # the set-aside state lives in the database
        return None
    return float(sum(1 for k in f.keys if k.set_aside))


def _keys_set_aside_detail(f: Facts, s: Settings) -> str | None:
    aside = [k for k in f.keys if k.set_aside]
    return "; ".join(f"key {k.label} ({k.client_id}): {k.set_aside_reason or 'secret refused'}"
                     for k in aside) or None


def _database_advice(s: Settings) -> str:
    # a configured DSN is a server netops does not run: `netops db up` would start another one
    if s.dsn:
        return ("Start that PostgreSQL server (`systemctl start postgresql` on a deployed box) or fix "
                "NETOPS_DSN; check its log and free disk; every other check is blind until it is back.")
    return ("Start it (`netops db up` for the embedded server) or set NETOPS_DSN; check its log and free "
            "disk; every other check is blind until it is back.")


def _db_size_advice(s: Settings) -> str:
    # netops.api_calls is pruned by every history.json run (netops/monitor/history.py): deleting its
    # rows by hand is not the step; keeping fewer days is, and VACUUM FULL gives the space back
    return ("Look for bloat (`netops db shell`, then VACUUM FULL the largest tables); netops.api_calls is "
            f"already pruned to NETOPS_API_CALLS_KEEP_DAYS={s.api_calls_keep_days} days every minute (the "
            "status-json cron job): lower it to keep fewer, then VACUUM FULL netops.api_calls; or grow the disk "
            "and raise NETOPS_ALERT_DB_SIZE_BYTES.")


def _nginx_down(f: Facts, s: Settings) -> float | None:
    return None if f.nginx.ok is None else (0.0 if f.nginx.ok else 1.0)


def _nginx_detail(f: Facts, s: Settings) -> str | None:
    return f"{f.nginx.url}: {f.nginx.error}"


# --- freshness of the backlog resources (issue 23) --------------------------------------------

def _freshness(cur: Any, now: datetime, settings: Settings) -> dict[str, float | None]:
    """Each resource's age: now minus the end of its last fully applied window (netops/db/marks.py
    `applied_until`): every backlog resource, and the campus-scoped ones when campuses are in
    scope (their oldest campus; unknown until every campus in scope has been read once)."""
    from netops.catalog import BACKLOG_BY_RESOURCE, CAMPUS_BY_RESOURCE

    campuses = list(settings.campus_ids)
    todo = [(r, None) for r in BACKLOG_BY_RESOURCE] + [(r, campuses) for r in CAMPUS_BY_RESOURCE if campuses]
    out: dict[str, float | None] = {}
    for resource, scope in todo:
        end = marks.applied_until(cur, resource, scope)
        out[resource] = None if end is None else max(0.0, (now - end).total_seconds())
    return out


def _open_sessions(cur: Any, now: datetime, settings: Settings) -> dict[int, tuple[int, float | None]] | None:
    if not settings.campus_ids:
        return None
    from netops.db import campus as campus_db

    return {c: (n, None if oldest is None else max(0.0, (now - oldest).total_seconds()))
            for c, (n, oldest) in campus_db.open_sessions(cur, settings.campus_ids).items()}


def open_sessions_doc(f: Facts) -> dict[str, dict[str, float | int | None]] | None:
    """campus id -> {open, oldest_seconds}: the sessions detect keeps re-checking until the API
    closes them, and how long the oldest has been open (status, metrics; None: unknown or no
    campus in scope)."""
    if f.open_sessions is None:
        return None
    return {str(c): {"open": n, "oldest_seconds": None if age is None else round(age, 1)}
            for c, (n, age) in sorted(f.open_sessions.items())}


def freshness_ratios(f: Facts, s: Settings) -> dict[str, float]:
    """resource -> freshness / its target (netops.config.freshness_target); known ages only."""
    return {r: age / freshness_target(s, r) for r, age in (f.freshness or {}).items() if age is not None}


def freshness_doc(f: Facts, s: Settings) -> dict[str, dict[str, float | None]] | None:
    """resource -> {seconds, target_seconds, ratio}: what status, metrics, the dashboard and the
    status page show (None: unknown)."""
    if f.freshness is None:
        return None
    ratios = freshness_ratios(f, s)
    return {r: {"seconds": None if age is None else round(age, 1), "target_seconds": freshness_target(s, r),
                "ratio": None if r not in ratios else round(ratios[r], 3)} for r, age in f.freshness.items()}


def _stalest_ratio(f: Facts, s: Settings) -> float | None:
    if f.freshness is None:
        return None
    return round(max(freshness_ratios(f, s).values(), default=0.0), 3)


def _stale_detail(f: Facts, s: Settings) -> str | None:
    stale = [(r, x) for r, x in sorted(freshness_ratios(f, s).items()) if x > 1.0]
    return "; ".join(f"{r} {fmt((f.freshness or {})[r], 'seconds')} s old (target {freshness_target(s, r):g} s)"
                     for r, _ in stale) or None


#: The thresholds, in one table. Order = the order views list them in.
RULES: tuple[Rule, ...] = (
    Rule(
        name="database_down",
        summary="PostgreSQL is not reachable",
        value=_db_down,
        unit="",
        action="Start PostgreSQL (`netops db up` for the embedded server, else `systemctl start postgresql`), "
               "check its log and free disk, or fix NETOPS_DSN; every other check is blind until it is back.",
        prom_expr="netops_database_up < {t}",
        severity="critical",
        prom_scale=-1.0,
        prom_offset=1.0,
        from_db=False,
        detail=lambda f, s: f.db_error,
        advice=_database_advice,
    ),
    Rule(
        name="schema_missing",
        summary="The database has no netops schema",
        value=_schema_missing,
        unit="",
        action="Run `netops db migrate`.",
        prom_expr="netops_schema_present < {t}",
        severity="critical",
        prom_scale=-1.0,
        prom_offset=1.0,
    ),
    Rule(
        name="api_calls_per_minute",
        summary="API calls per minute above the loop-suspicion threshold",
        setting="alert_calls_per_min",
        value=_calls_per_minute,
        unit="calls/min",
        action="Loop suspicion: find the job that keeps calling (`netops logs tail backlog`, `netops logs tail stable`, "
               "ps -u netops), stop it by its PID, fix the cause, then rerun it by hand.",
        prom_expr="netops_api_calls_last_15m > {t}",
        prom_scale=15.0,  # calls/min * 15 = calls in the window
        window="15m",
        detail=_loop_detail,
        advice_of=_loop_advice,
    ),
    Rule(
        name="api_budget_spent",
        summary="The hourly API budget is spent: jobs wait for it",
        value=_budget_spent,
        unit="",
        action="Nothing breaks: waiting jobs resume by themselves as the oldest calls leave the hour's window (the "
               "detail names them and when the next slot comes). If it recurs, spread the heavy jobs (a first "
               "backlog detect, reconcile, verify-links) over more hours, or add an application key.",
        prom_expr="netops_api_utilisation_ratio >= {t} or netops_api_budget_waiting_jobs > 0",
        prom_scale=0.0,
        prom_offset=1.0,
        detail=_budget_spent_detail,
    ),
    Rule(
        name="api_unauthorized",
        summary="The API refused our credentials or token (HTTP 401)",
        setting="alert_401_count",
        value=_unauthorized,
        unit="401s since a call worked",
        action="Run `netops token refresh`; if it fails the application secret was rotated or expired: "
               "generate a new one on the intra and set NETOPS_CLIENT_SECRET.",
        prom_expr="netops_api_unauthorized_since_success > {t}",
        severity="critical",
        advice=_unauthorized_advice,
    ),
    Rule(
        name="api_rate_limited",
        summary="The API rate-limited us (HTTP 429)",
        setting="alert_429_count",
        value=_rate_limited,
        unit="429s/hour",
        action="Another client shares this application's budget, or the pacing is too fast: stop the other "
               "client or lower NETOPS_RATE_PER_SECOND / NETOPS_RATE_PER_HOUR; calls resume when the window resets.",
        prom_expr='sum without(code) (netops_api_calls_last_hour{{code="429"}}) > {t}',
        window="1h",
    ),
    Rule(
        name="api_key_set_aside",
        summary="An application key's secret was refused: the key is set aside",
        value=_keys_set_aside,
        unit="keys",
        action="`netops status` names the key: generate a new secret for that application on the intra and update it "
               "(NETOPS_CLIENT_SECRET_<N> or NETOPS_CREDENTIALS_FILE); the other keys carry the load meanwhile.",
        prom_expr="netops_api_key_set_aside > {t}",
        severity="critical",
        detail=_keys_set_aside_detail,
    ),
    Rule(
        name="db_size",
        summary="Database larger than its threshold",
        setting="alert_db_size_bytes",
        value=_db_size,
        unit="bytes",
        action="Look for bloat (`netops db shell`, then VACUUM FULL the largest tables), keep fewer days of "
               "netops.api_calls (NETOPS_API_CALLS_KEEP_DAYS; older rows are pruned every minute), or grow the "
               "disk and raise NETOPS_ALERT_DB_SIZE_BYTES.",
        prom_expr="netops_database_size_bytes > {t}",
        advice=_db_size_advice,
    ),
    Rule(
        name="log_size",
        summary="Log directory larger than its threshold",
        setting="alert_log_bytes",
        value=_log_bytes,
        unit="bytes",
        action="Check that logrotate runs (/etc/logrotate.d/netops, `logrotate -d`), delete old rotated logs.",
        prom_expr="netops_log_bytes > {t}",
        from_db=False,
    ),
    Rule(
        name="sync_duration",
        summary="Stable sync slower than its threshold",
        setting="alert_sync_seconds",
        value=_sync_duration,
        unit="seconds",
        action="Look for 429s and slow calls in netops.api_calls and the stable log (`netops logs tail stable`); a sync "
               "still running past this is probably stuck: check its PID and the API's status.",
        prom_expr="netops_sync_last_run_duration_seconds > {t}",
    ),
    Rule(
        name="sync_failed",
        summary="The latest run of a stable phase failed",
        value=_sync_failed,
        unit="phases",
        action="Read the error below and the stable log (`netops logs tail stable`), fix the cause, "
               "then rerun `netops sync stable`; the failed table was left as it was.",
        prom_expr="sum without(phase) (netops_sync_last_run_failed) > {t}",
        detail=_sync_failed_detail,
    ),
    Rule(
        name="sync_interrupted",
        summary="The latest run of a stable phase was interrupted",
        value=_sync_interrupted,
        unit="phases",
        action="The sync was stopped (Ctrl-C, SIGTERM, kill or a crash) before it finished; its tables are as "
               "before. Rerun `netops sync stable`.",
        prom_expr="sum without(phase) (netops_sync_last_run_interrupted) > {t}",
        detail=_sync_interrupted_detail,
    ),
    Rule(
        name="sync_age",
        summary="Stable tables not refreshed recently",
        setting="alert_sync_age_hours",
        value=_sync_age_hours,
        unit="hours",
        action="Check the nightly cron job (`crontab -l -u netops`, `netops logs tail cron`) and the stable log, then "
               "run `netops sync stable` by hand.",
        prom_expr='time() - netops_sync_last_success_timestamp_seconds{{phase=~"{stable}"}} > {t}',
        severity="critical",
        prom_scale=3600.0,
        detail=_sync_age_detail,
    ),
    Rule(
        name="backlog_depth",
        summary="Backlog queue deeper than its threshold",
        setting="alert_backlog_depth",
        value=_backlog_pending,
        unit="items",
        action="Check that the backlog worker runs (`netops logs tail backlog`); if it does, it is starved of "
               "budget: lower reconciliation share or raise the budget.",
        prom_expr='max without(state) (netops_backlog_items{{state="pending"}}) > {t}',
    ),
    Rule(
        name="backlog_failed",
        summary="Backlog items failed permanently",
        setting="alert_backlog_failed",
        value=_backlog_failed,
        unit="items",
        action="Read the failed items' last_error (netops.backlog_items), fix the cause, and requeue them.",
        prom_expr='max without(state) (netops_backlog_items{{state="failed"}}) > {t}',
    ),
    Rule(
        name="data_quality",
        summary="The last `netops check` found violating rows",
        value=_quality,
        unit="rows",
        action="Run `netops check` to see which table and key; rerun `netops sync stable` to reload the "
               "affected tables, and find out what bypassed the constraints.",
        prom_expr="netops_data_quality_violations > {t}",
    ),
    Rule(
        name="disk_low",
        summary="Little free disk under the log or state dir",
        value=_disk_free,
        unit="% free",
        action="Free space on that filesystem (old logs, old dumps) or grow it.",
        prom_expr="min without(dir) (netops_disk_free_ratio) < {t}",
        fixed=10.0,
        below=True,
        prom_scale=0.01,
        from_db=False,
        detail=_disk_detail,
    ),
    Rule(
        name="disk_critical",
        summary="Almost no free disk under the log or state dir",
        value=_disk_free,
        unit="% free",
        action="Free space now: PostgreSQL and the logs stop when the disk is full.",
        prom_expr="min without(dir) (netops_disk_free_ratio) < {t}",
        severity="critical",
        fixed=5.0,
        below=True,
        prom_scale=0.01,
        from_db=False,
        detail=_disk_detail,
    ),
    Rule(
        name="backup_age",
        summary="No good backup recently",
        setting="alert_backup_age_hours",
        value=_backup_age_hours,
        unit="hours",
        action="Check the daily `backup` cron job (`netops logs tail cron`) and run `netops db backup` by hand.",
        prom_expr="time() - netops_backup_last_success_timestamp_seconds > {t}",
        prom_scale=3600.0,
        from_db=False,
        detail=_backup_age_detail,
    ),
    Rule(
        name="backup_failed",
        summary="The last backup failed",
        value=_backup_failed,
        unit="",
        action="Run `netops db backup` by hand: its one-line error names the cause (free disk in backup_dir, "
               "pg_dump's version, the database).",
        prom_expr="netops_backup_last_failed > {t}",
        fixed=0.0,
        from_db=False,
        detail=lambda f, s: f.backup.last_error,
    ),
    Rule(
        name="credentials",
        summary="The application credentials are incomplete or unreadable",
        value=_credential_problems,
        unit="",  # the detail lists the problems, one per bad setting
        action="Fix the setting each problem names (NETOPS_CLIENT_ID with NETOPS_CLIENT_SECRET or "
               "NETOPS_CLIENT_SECRET_FILE, or the [[keys]] entries), then `netops token refresh`; nothing can "
               "call the API until then.",
        # only netops reads its configuration: Prometheus takes netops' verdict of it
        prom_expr='max without(alert, severity) (netops_alert_firing{{alert="credentials"}}) > {t}',
        severity="critical",
        from_db=False,
        detail=lambda f, s: "; ".join(s.keys.problems),
    ),
    Rule(
        name="token",
        summary="No usable API token",
        value=_token_unusable,
        unit="",
        action="Run `netops token refresh` (cron runs it hourly); if it is refused, fix NETOPS_CLIENT_ID / "
               "NETOPS_CLIENT_SECRET.",
        advice=lambda s: ("Run `netops token refresh` (cron runs it hourly); if it is refused, fix NETOPS_CLIENT_ID / "
                          f"{_secret_setting(s)}."),
        prom_expr="netops_token_usable < {t}",
        fixed=0.0,
        prom_scale=-1.0,
        from_db=False,
        prom_offset=1.0,
        detail=_token_detail,
    ),
    Rule(
        name="secret_expiring",
        summary="The 42 application secret expires soon",
        setting="secret_warn_days",
        value=_secret_days,
        unit="days",
        action="Generate a new secret on the intra, set NETOPS_CLIENT_SECRET, then `netops token refresh`.",
        advice=lambda s: f"Generate a new secret on the intra, put it in {_secret_setting(s)}, then `netops token refresh`.",
        prom_expr="netops_secret_expiry_timestamp_seconds - time() < {t}",
        below=True,
        prom_scale=86400.0,
        from_db=False,
    ),
    Rule(
        name="secret_expired",
        summary="The 42 application secret has expired",
        value=_secret_days,
        unit="days",
        action="Generate a new secret on the intra and set NETOPS_CLIENT_SECRET; nothing can sync until then.",
        advice=lambda s: f"Generate a new secret on the intra and put it in {_secret_setting(s)}; nothing can sync until then.",
        prom_expr="netops_secret_expiry_timestamp_seconds - time() < {t}",
        severity="critical",
        below=True,
        prom_scale=86400.0,
        from_db=False,
    ),
    Rule(
        name="nginx_down",
        summary="nginx is configured but not answering",
        value=_nginx_down,
        unit="",
        action="Check `systemctl status nginx` and its error log.",
        prom_expr="netops_nginx_up < {t}",
        fixed=0.0,
        prom_scale=-1.0,
        prom_offset=1.0,
        from_db=False,
        detail=_nginx_detail,
    ),
    Rule(
        name="resource_stale",
        summary="A backlog resource is staler than its freshness target",
        value=_stalest_ratio,
        unit="× target",
        action="Check the backlog cron job runs (`netops logs tail backlog`, `netops backlog status`); if it does, "
               "the schedule does not fit the budget: `netops plan` names the knob (schedule_backlog_minutes, "
               "campus_ids, more keys); targets: NETOPS_FRESHNESS_TARGET_FACTOR / NETOPS_FRESHNESS_TARGETS.",
        prom_expr="max without(resource) (netops_resource_freshness_ratio) > {t}",
        fixed=1.0,
        detail=_stale_detail,
    ),
)


# --- verdicts --------------------------------------------------------------------------------

@dataclass
class Verdict:
    rule: Rule
    value: float | None
    threshold: float
    firing: bool | None  # None: value unknown
    detail: str | None = None
    action: str = ""  # the operator's next step on this box (Rule.action_for)

    @property
    def state(self) -> str:
        return "unknown" if self.firing is None else "firing" if self.firing else "ok"

    @property
    def value_text(self) -> str:
        return fmt(self.value, self.rule.unit)

    @property
    def message(self) -> str:
        u = self.rule.unit
        if u == "":  # a yes/no rule: its summary says it all
            text = self.rule.summary
        else:
            shown = "" if u == "bytes" else f" {u}"
            text = (f"{self.rule.summary}: {fmt(self.value, u)}{shown} "
                    f"({'floor' if self.rule.below else 'threshold'} {fmt(self.threshold, u)}{shown})")
        return f"{text}; {self.detail}" if self.detail else text


def judge(rule: Rule, facts: Facts, settings: Settings) -> Verdict:
    threshold = rule.threshold(settings)
    value = rule.value(facts, settings)
    action = (rule.advice_of(facts, settings) if rule.advice_of else None) or rule.action_for(settings)
    if value is None:
        return Verdict(rule, None, threshold, None, action=action)
    firing = rule.breached(value, threshold)
    detail = rule.detail(facts, settings) if firing and rule.detail else None
    return Verdict(rule, value, threshold, firing, detail, action)


@dataclass
class Evaluation:
    facts: Facts
    verdicts: list[Verdict]
    settings: Settings

    @property
    def firing(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.firing]

    @property
    def state(self) -> str:
        """ok / warning / critical: the worst severity among firing rules."""
        worst = max((SEVERITY_RANK[v.rule.severity] for v in self.firing), default=0)
        return {0: "ok", 1: "warning", 2: "critical"}[worst]


def evaluate(settings: Settings, dsn: str | None, check_services: bool = True,
             facts: Facts | None = None, counters: bool = False, then: Then | None = None) -> Evaluation:
    """Read every fact now and judge every rule against it (`counters`, `then`: see gather)."""
    facts = facts if facts is not None else gather(settings, dsn, check_services, counters=counters, then=then)
    return Evaluation(facts, [judge(r, facts, settings) for r in RULES], settings)
