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

from netops.config import FIELDS, Settings
from netops.credentials import Budget
from netops.db import monitor_facts
from netops.db.backup import BackupFacts, backup_facts
from netops.db.counters import Counters, read_counters
from netops.db.monitor_facts import ApiFacts, BacklogFacts, QualityFacts, TableCount
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
    elapsed_ms: float = 0.0

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
    return None if f.api is None else float(f.api.unauthorized_1h)


def _rate_limited(f: Facts, s: Settings) -> float | None:
    return None if f.api is None else float(f.api.rate_limited_1h)


def _calls_per_minute(f: Facts, s: Settings) -> float | None:
    return None if f.api is None else f.api.calls_per_minute


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
        prom_expr="sum without(endpoint, code) (rate(netops_api_calls_total[15m])) > {t}",
        prom_scale=1 / 60,
    ),
    Rule(
        name="api_unauthorized",
        summary="The API refused our credentials or token (HTTP 401)",
        setting="alert_401_count",
        value=_unauthorized,
        unit="401s/hour",
        action="Run `netops token refresh`; if it fails the application secret was rotated or expired: "
               "generate a new one on the intra and set NETOPS_CLIENT_SECRET.",
        prom_expr='sum without(code) (netops_api_calls_last_hour{{code="401"}}) > {t}',
        severity="critical",
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
        name="token",
        summary="No usable API token",
        value=_token_unusable,
        unit="",
        action="Run `netops token refresh` (cron runs it hourly); if it is refused, fix NETOPS_CLIENT_ID / "
               "NETOPS_CLIENT_SECRET.",
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
    action = rule.action_for(settings)
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
