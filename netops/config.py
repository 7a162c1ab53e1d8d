"""One validated, typed Settings object for every netops command.

Precedence, lowest first: built-in defaults < the TOML file (``/etc/netops/netops.toml``, or the
path in ``NETOPS_CONFIG``) < environment variables. Every setting is declared once, as a typed
attribute of ``Settings`` with its env name, parser and default, so the error for a bad value can
always name the key the operator actually typed and say what is expected, in one line. The
application keys are derived from the settings once, when they are built (netops/credentials.py).

The old bash pipeline's names (``BACKLOG_*``) are kept so existing cron environments keep working.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netops.credentials import (
    ApiKey,
    Budget,
    KeyInputs,
    KeyProblem,
    KeySet,
    default_credentials,
    default_secret,
    extra_key_env,
    read_key_set,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

DEFAULT_CONFIG_PATH = Path("/etc/netops/netops.toml")
REAL_API_URL = "https://api.intra.42.fr"
#: the real API's documented budget per application key (docs/api.md); the simulator's default too
API_RATE_PER_SECOND = 2.0
API_RATE_PER_HOUR = 1200
#: where `netops sim serve` listens by default (and the roles' netops_sim_port)
SIM_HOST = "127.0.0.1"
SIM_PORT = 8042
SIM_URL = f"http://{SIM_HOST}:{SIM_PORT}"
# A call claimed at t reaches the API later, and not always equally later. Each answered call
# moves its slot to where the API counted it (netops/api/limiter.py); this margin covers what
# that estimate cannot see (the API's own clock and queue). It costs 5 % of the budget.
DEFAULT_RATE_WINDOW_MARGIN = 0.05


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message is one actionable line."""


def default_log_dir(state_dir: str, root: bool | None = None) -> str:
    """Where logs go unless NETOPS_LOG_DIR / log_dir says otherwise: never the current directory
    (every command, from wherever it is run, must read and write the same files). As root it is
    /var/log/netops like any daemon's; otherwise `<state_dir>/logs`."""
    if root is None:
        root = hasattr(os, "geteuid") and os.geteuid() == 0
    return "/var/log/netops" if root else str(Path(state_dir) / "logs")


def default_state_dir(root: bool | None = None) -> str:
    """Where state goes unless NETOPS_STATE_DIR / state_dir says otherwise."""
    # root runs the embedded Postgres as an unprivileged user, which must be able to reach the
    # data dir: /root is private, so root's default lives under /var/lib like any daemon's.
    if root is None:
        root = hasattr(os, "geteuid") and os.geteuid() == 0
    if root:
        return "/var/lib/netops"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "netops")


# --- value parsers: each returns the parsed value or raises ValueError("expected ...") ---------

def _str(v: Any) -> str:
    if not isinstance(v, str):
        v = str(v)
    return v.strip()


def _opt_str(v: Any) -> str | None:
    s = _str(v)
    return s or None


def _url(v: Any) -> str:
    s = _str(v).rstrip("/")
    if not (s.startswith("http://") or s.startswith("https://")):
        raise ValueError("expected an http:// or https:// URL, e.g. https://api.intra.42.fr")
    return s


def _opt_url(v: Any) -> str | None:
    s = _str(v)
    return _url(s) if s else None


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        s = _str(v).lower()
        if s not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return s

    return parse


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = _str(v).lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _num(kind: type, minimum: float | None = None, maximum: float | None = None) -> Callable[[Any], Any]:
    def parse(v: Any) -> Any:
        try:
            n = kind(v) if not isinstance(v, bool) else None
        except (TypeError, ValueError):
            n = None
        if n is None:
            raise ValueError(f"expected {'a whole number' if kind is int else 'a number'}")
        if minimum is not None and n < minimum:
            raise ValueError(f"expected a value >= {minimum}")
        if maximum is not None and n > maximum:
            raise ValueError(f"expected a value <= {maximum}")
        return n

    return parse


def _dsn(v: Any) -> str | None:
    """A libpq connection string or URI, parsed now: a DSN psycopg2 cannot read would otherwise
    fail later, deep inside some command, with an error that does not name the setting."""
    s = _str(v)
    if not s:
        return None
    from psycopg2.extensions import parse_dsn

    try:
        parse_dsn(s)
    except Exception as exc:  # psycopg2.ProgrammingError: libpq's own words follow
        detail = (str(exc).strip().splitlines() or ["unreadable"])[0]
        detail = detail.replace(s, "***")
        raise ValueError(f"cannot be parsed ({detail}); expected a URI like "
                         "postgresql://user:password@host:5432/netops or key=value pairs like "
                         "'host=/run/postgresql dbname=netops'") from None
    return s


def _path(v: Any) -> str:
    s = _str(v)
    if not s:
        raise ValueError("expected a path")
    return str(Path(s).expanduser())


def _opt_path(v: Any) -> str | None:
    s = _str(v)
    return str(Path(s).expanduser()) if s else None


def _int_list(v: Any) -> tuple[int, ...]:
    """Campus ids: a TOML list of ints or a comma-separated string (`1,9,21`); empty = none."""
    items = v if isinstance(v, (list, tuple)) else [x for x in _str(v).split(",") if x.strip()]
    out: list[int] = []
    for item in items:
        try:
            n = int(item) if not isinstance(item, bool) else None
        except (TypeError, ValueError):
            n = None
        if n is None or n < 1:
            raise ValueError(f"expected comma-separated campus ids (whole numbers >= 1), got {item!r}")
        if n not in out:
            out.append(n)
    return tuple(out)


def _targets(v: Any) -> str:
    """`resource=minutes` pairs separated by commas (or a TOML table / list of such strings),
    checked and given back as `a=5,b=15` (read by freshness_target)."""
    if isinstance(v, Mapping):
        items = [f"{k}={val}" for k, val in v.items()]
    elif isinstance(v, (list, tuple)):
        items = [x if isinstance(x, str) else f"{x[0]}={x[1]}" for x in v]
    else:
        items = [x for x in _str(v).split(",") if x.strip()]
    out = []
    for item in items:
        name, sep, minutes = item.partition("=")
        try:
            value = float(minutes) if sep and name.strip() else -1.0
        except ValueError:
            value = -1.0
        if value <= 0:
            raise ValueError(f"expected resource=minutes pairs, e.g. locations=5,scale_teams=15 (got {item.strip()!r})")
        out.append(f"{name.strip()}={value:g}")
    return ",".join(out)


@dataclass(frozen=True)
class Field:
    """One setting as the operator sees it: its attribute name, its environment variable (also
    accepted, lower-cased, as a key of the config file), its parser, default and help text."""

    name: str
    env: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    secret: bool = False


def setting(env: str, parse: Callable[[Any], Any], default: Any, help: str, secret: bool = False) -> Any:
    """Declares one typed attribute of Settings: the attribute's annotation is its type, and
    this is everything else about it (FIELDS is built from these)."""
    return field(default=default, repr=not secret,
                 metadata={"env": env, "parse": parse, "help": help, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Validated configuration, one typed attribute per setting. Build it with
    :func:`load_settings`, never by hand in commands. Each setting is declared here once (its
    type, env name, parser, default and help); FIELDS lists them for the config file, the
    environment and `netops config show`.

    The application keys are derived once, when a Settings is built (`keys`, `budget`): every
    layer uses these, so all of them judge the same read."""

    # --- the API ---------------------------------------------------------------------------
    api_url: str = setting("NETOPS_API_URL", _url, REAL_API_URL, "Base URL of the 42 API (or the simulator).")
    client_id: str | None = setting("NETOPS_CLIENT_ID", _opt_str, None, "OAuth2 application UID.")
    client_secret: str | None = setting("NETOPS_CLIENT_SECRET", _opt_str, None, "OAuth2 application secret.", secret=True)
    client_secret_file: str | None = setting("NETOPS_CLIENT_SECRET_FILE", _opt_path, None,
        "File holding the secret (keeps it out of the environment).")
    credentials_file: str | None = setting("NETOPS_CREDENTIALS_FILE", _opt_path, None,
        "TOML file (mode 0600/0640, never world-readable) listing several application keys "
        "([[keys]] label, client_id, client_secret); see netops/credentials.py.")
    cursus_id: int = setting("NETOPS_CURSUS_ID", _num(int, 1), 21, "Cursus mirrored (42cursus is 21).")
    rate_per_second: float = setting("NETOPS_RATE_PER_SECOND", _num(float, 0.01), API_RATE_PER_SECOND,
        "API calls per second budget of each application key (the API's headers can only lower it).")
    rate_per_hour: int = setting("NETOPS_RATE_PER_HOUR", _num(int, 1), API_RATE_PER_HOUR,
        "API calls per hour budget of each application key (the API's headers can only lower it).")
    rate_window_margin: float = setting("NETOPS_RATE_WINDOW_MARGIN", _num(float, 0.0, 1.0), DEFAULT_RATE_WINDOW_MARGIN,
        "Seconds added to the 1-s window when claiming slots, on top of each call's measured "
        "arrival (costs budget: limit calls per 1 s + margin).")
    page_size: int = setting("NETOPS_PAGE_SIZE", _num(int, 1, 100), 100, "Items per page requested.")
    http_timeout: float = setting("NETOPS_HTTP_TIMEOUT", _num(float, 0.1), 30.0, "Seconds before a call times out.")
    max_attempts: int = setting("NETOPS_MAX_ATTEMPTS", _num(int, 1, 20), 3, "Attempts per call on 5xx/timeouts.")
    max_concurrency: int = setting("NETOPS_MAX_CONCURRENCY", _num(int, 1, 64), 4,
        "Pages fetched in flight at once, per application key (still inside its budget).")
    token_min_ttl: int = setting("NETOPS_TOKEN_MIN_TTL", _num(int, 0), 3600, "Refresh the token below this TTL (s).")
    secret_warn_days: int = setting("NETOPS_SECRET_WARN_DAYS", _num(int, 0), 14,
        "Warn when the application secret expires within this many days.")
    # --- storage ---------------------------------------------------------------------------
    dsn: str | None = setting("NETOPS_DSN", _dsn, None,
        "PostgreSQL DSN; empty = netops starts and owns a local server.", secret=True)
    db_name: str = setting("NETOPS_DB_NAME", _str, "netops", "Database name on the embedded server.")
    pg_bin_dir: str | None = setting("NETOPS_PG_BIN_DIR", _opt_path, None, "Directory holding initdb/pg_ctl/postgres.")
    pg_system_user: str = setting("NETOPS_PG_SYSTEM_USER", _str, "netops-pg",
        "Unprivileged user the embedded server runs as when netops runs as root.")
    log_dir: str = setting("NETOPS_LOG_DIR", _path, None,
        "One log file per component lives here (default: /var/log/netops as root, else <state_dir>/logs).")
    state_dir: str = setting("NETOPS_STATE_DIR", _path, default_state_dir(),
        "Token store, embedded Postgres, metrics files.")
    max_prune_ratio: float = setting("NETOPS_MAX_PRUNE_RATIO", _num(float, 0.0, 1.0), 0.5,
        "Refuse a sync that would delete more than this share of a table.")
    # --- backups (`netops db backup`, the role's daily backup job) ---------------------------
    backup_dir: str | None = setting("NETOPS_BACKUP_DIR", _opt_path, None,
        "Where `netops db backup` writes its dumps (default: <state_dir>/backups).")
    backup_keep: int = setting("NETOPS_BACKUP_KEEP", _num(int, 1), 7,
        "Dumps kept in backup_dir; each backup removes the oldest beyond this count.")
    # --- backlog (names from the old pipeline) -------------------------------------------
    backlog_fetch_batch_size: int = setting("BACKLOG_FETCH_BATCH_SIZE", _num(int, 1, 10000), 100,
        "Backlog items claimed per batch.")
    backlog_fetch_delay_seconds: float = setting("BACKLOG_FETCH_DELAY_SECONDS", _num(float, 0), 0.0,
        "Pause between backlog batches.")
    backlog_max_retries: int = setting("BACKLOG_MAX_RETRIES", _num(int, 0, 100), 3,
        "Attempts before a backlog item is failed.")
    backlog_retry_delay: float = setting("BACKLOG_RETRY_DELAY", _num(float, 0), 60.0,
        "Base backoff (s) before a failed item is retried.")
    backlog_poll_interval: float = setting("BACKLOG_POLL_INTERVAL", _num(float, 0.1), 30.0,
        "Seconds between polls in --loop mode.")
    backlog_visibility_timeout: float = setting("BACKLOG_VISIBILITY_TIMEOUT", _num(float, 1), 600.0,
        "Seconds before a claimed item of a dead worker is reclaimed.")
    backlog_detect_settle_seconds: float = setting("BACKLOG_DETECT_SETTLE_SECONDS", _num(float, 0, 3600), 60.0,
        "How old (by the API's clock) a change must be before detect reads it: covers late commits.")
    backlog_reconcile_budget_share: float = setting("BACKLOG_RECONCILE_BUDGET_SHARE", _num(float, 0.0, 1.0), 0.25,
        "Share of the hourly budget reconciliation may use.")
    backlog_enable_metrics: bool = setting("BACKLOG_ENABLE_METRICS", _bool, True, "Write metrics_latest.json.")
    backlog_metric_interval: int = setting("BACKLOG_METRIC_INTERVAL", _num(int, 1), 60,
        "Seconds between metrics rewrites.")
    # --- campus-scoped resources (issue 23: locations, evaluations, events, exams) ---------
    campus_ids: tuple[int, ...] = setting("NETOPS_CAMPUS_IDS", _int_list, (),
        "Campuses whose locations, evaluations, events and exams the box keeps (comma-separated ids; "
        "empty: none, so no call is spent on them until an operator names the campuses).")
    locations_lookback_hours: float = setting("NETOPS_LOCATIONS_LOOKBACK_HOURS", _num(float, 0, 24 * 90), 72.0,
        "Each locations window re-reads sessions begun this long before the last applied window's end.")
    campus_backfill_days: float = setting("NETOPS_CAMPUS_BACKFILL_DAYS", _num(float, 0.01, 3650), 90.0,
        "How far back the first pull of a campus-scoped resource reaches (begin_at / updated_at).")
    # --- observability -----------------------------------------------------------------
    metrics_dir: str | None = setting("NETOPS_METRICS_DIR", _opt_path, None,
        "Where metrics_latest.json / metrics.prom go (default: <state_dir>/metrics).")
    api_calls_keep_days: int = setting("NETOPS_API_CALLS_KEEP_DAYS", _num(int, 2), 30,
        "Days of netops.api_calls rows kept; history.json's writer prunes older ones (the "
        "counters are running totals, so they do not go down).")
    nginx_url: str | None = setting("NETOPS_NGINX_URL", _opt_url, None,
        "URL nginx serves netops on; checked by `netops status` when set.")
    # the check runs from the status-json cron job every minute on a possibly loaded host: a few
    # seconds' patience costs nothing there and spares false nginx_down alerts
    nginx_timeout: float = setting("NETOPS_NGINX_TIMEOUT", _num(float, 0.1, 60), 5.0,
        "Seconds `netops status` waits for nginx_url to answer before nginx counts as down.")
    alert_webhook_url: str | None = setting("NETOPS_ALERT_WEBHOOK_URL", _opt_url, None, "POST alert state changes here.")
    # the budget's average rate (1,200/h is 20/min): as a 15-minute mean one nightly sync
    # (23 calls) stays well under it, while a job stuck in a loop does not
    alert_calls_per_min: float = setting("NETOPS_ALERT_CALLS_PER_MIN", _num(float, 0), 20.0,
        "Alert above this many API calls/min, 15-minute mean (loop suspicion).")
    alert_401_count: int = setting("NETOPS_ALERT_401_COUNT", _num(int, 0), 0, "Alert above this many 401s in the last hour since a call last worked.")
    alert_429_count: int = setting("NETOPS_ALERT_429_COUNT", _num(int, 0), 0, "Alert above this many 429s/hour.")
    alert_db_size_bytes: int = setting("NETOPS_ALERT_DB_SIZE_BYTES", _num(int, 0), 10 * 1024**3,
        "Alert when the database exceeds this size.")
    alert_log_bytes: int = setting("NETOPS_ALERT_LOG_BYTES", _num(int, 0), 1024**3,
        "Alert when the log dir exceeds this size.")
    alert_sync_seconds: float = setting("NETOPS_ALERT_SYNC_SECONDS", _num(float, 0), 600.0,
        "Alert when a stable sync takes longer.")
    alert_sync_age_hours: float = setting("NETOPS_ALERT_SYNC_AGE_HOURS", _num(float, 0), 26.0,
        "Alert when the last successful stable sync is older.")
    alert_backlog_depth: int = setting("NETOPS_ALERT_BACKLOG_DEPTH", _num(int, 0), 10000,
        "Alert when more backlog items are pending.")
    alert_backlog_failed: int = setting("NETOPS_ALERT_BACKLOG_FAILED", _num(int, 0), 0,
        "Alert when more backlog items have failed.")
    # backups: the daily job runs at a fixed hour, so a day and two hours' slack before it counts as missed
    alert_backup_age_hours: float = setting("NETOPS_ALERT_BACKUP_AGE_HOURS", _num(float, 0), 26.0,
        "Alert when the last good backup is older (or there is none).")
    # alert delivery (issue 22): the webhook's payload shape, and a dead-man's ping for a monitor outside the box
    alert_webhook_format: str = setting("NETOPS_ALERT_WEBHOOK_FORMAT", _choice("json", "discord", "slack"), "json",
        "Payload shape for NETOPS_ALERT_WEBHOOK_URL: json (netops' own document), discord or slack.")
    alert_heartbeat_url: str | None = setting("NETOPS_ALERT_HEARTBEAT_URL", _opt_url, None,
        "Pinged (GET) after every alert check; <url>/fail when a critical alert fires (healthchecks.io style).")
    # --- schedule, budget planner and freshness (issue 23): `netops plan`, the role's cron ------
    # the role's backlog job runs `*/N` minutes from this (netops_schedule_backlog_minutes), and
    # `netops plan --check` (the role's preflight) judges the same N: declared once, here
    schedule_backlog_minutes: int = setting("NETOPS_SCHEDULE_BACKLOG_MINUTES", _num(int, 1, 60), 5,
        "Minutes between the cron job's `backlog detect && backlog run` (the backlog schedule).")
    schedule_reconcile_minutes: int = setting("NETOPS_SCHEDULE_RECONCILE_MINUTES", _num(int, 0), 0,
        "Minutes between `backlog reconcile` runs the box schedules (0: none scheduled; the role "
        "installs none today); `netops plan` counts its calls when set.")
    freshness_target_factor: float = setting("NETOPS_FRESHNESS_TARGET_FACTOR", _num(float, 1.0), 2.0,
        "A backlog resource's freshness target is this many backlog schedule intervals.")
    freshness_targets: str = setting("NETOPS_FRESHNESS_TARGETS", _targets, "",
        "Per-resource freshness targets in minutes, overriding the factor: e.g. locations=5,scale_teams=15.")

    # --- where the values came from, and what is derived from them ----------------------
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    config_path: str | None = None
    #: NETOPS_CLIENT_ID_<N> / NETOPS_CLIENT_SECRET_<N> / NETOPS_CLIENT_SECRET_FILE_<N>: the extra
    #: application keys given by environment (never shown)
    key_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: every configured application key and every problem with them (netops/credentials.py)
    keys: KeySet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        inputs = KeyInputs(self.client_id, self.client_secret, self.client_secret_file, self.credentials_file,
                           self.config_path, self.rate_per_second, self.rate_per_hour, self.state_path,
                           self.key_env, self.sources)
        object.__setattr__(self, "keys", read_key_set(inputs))

    # -- derived values ---------------------------------------------------------------------
    @property
    def budget(self) -> Budget:
        """Every usable key's budget summed: the one figure of the box's API budget."""
        return self.keys.budget

    @property
    def log_path(self) -> Path:
        return Path(self.log_dir)

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def backup_path(self) -> Path:
        return Path(self.backup_dir or self.state_path / "backups")

    @property
    def metrics_path(self) -> Path:
        return Path(self.metrics_dir or self.state_path / "metrics")

    @property
    def token_file(self) -> Path:
        return self.state_path / "token.json"

    def secret(self) -> str:
        """The client secret, from NETOPS_CLIENT_SECRET or NETOPS_CLIENT_SECRET_FILE."""
        try:
            return default_secret(self.client_secret, self.client_secret_file)
        except KeyProblem as exc:
            raise ConfigError(str(exc)) from None

    def require_credentials(self) -> tuple[str, str]:
        """The default key's (client id, secret); ConfigError naming the variable to set."""
        try:
            return default_credentials(self.client_id, self.client_secret, self.client_secret_file)
        except KeyProblem as exc:
            raise ConfigError(str(exc)) from None

    def require_keys(self, required: bool = True) -> list[ApiKey]:
        """The configured keys, for a command that calls the API. ConfigError naming every bad
        key, one line each; with `required` and no key at all, the error says how to give one."""
        if self.keys.problems:
            raise ConfigError("\n".join(self.keys.problems))
        if required and not self.keys.keys:
            self.require_credentials()  # raises the one-key default's own error (names NETOPS_CLIENT_ID)
        return list(self.keys.keys)

    def known_secrets(self) -> list[str]:
        """Values that must never be written anywhere (used by the log redactor)."""
        out = [str(getattr(self, f.name)) for f in FIELDS if f.secret and getattr(self, f.name)]
        out += [v for k, v in self.key_env.items() if v and k.startswith("NETOPS_CLIENT_SECRET_")
                and not k.startswith("NETOPS_CLIENT_SECRET_FILE_")]
        out += [k.secret for k in self.keys.keys if k.secret not in out]
        return out

    def public_dict(self) -> dict[str, Any]:
        """All values with secrets masked, for `netops config show`."""
        return {f.name: ("***" if f.secret and getattr(self, f.name) else getattr(self, f.name)) for f in FIELDS}

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (the keys are derived again from the new values)."""
        for key in changes:
            if key not in _BY_NAME:
                raise KeyError(key)
        return dataclasses.replace(self, **changes)



def freshness_target(settings: Settings, resource: str) -> float:
    """A backlog resource's freshness target, in seconds (issue 23): its `freshness_targets`
    entry, else `freshness_target_factor` × the backlog schedule interval. The planner and the
    monitor's `resource_stale` rule both read it here."""
    for pair in filter(None, settings.freshness_targets.split(",")):
        name, _, minutes = pair.partition("=")
        if name == resource:
            return float(minutes) * 60.0
    return settings.freshness_target_factor * settings.schedule_backlog_minutes * 60.0

#: every setting, in declaration order
FIELDS: tuple[Field, ...] = tuple(
    Field(f.name, f.metadata["env"], f.metadata["parse"], f.default, f.metadata["help"], f.metadata["secret"])
    for f in dataclasses.fields(Settings) if "env" in f.metadata)
_BY_NAME = {f.name: f for f in FIELDS}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc}); fix the syntax") from None
    except PermissionError:
        raise ConfigError(f"config file {path}: permission denied; run as a member of its group") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key == "keys" and isinstance(value, list):
            continue  # [[keys]]: several application keys, read by netops/credentials.py
        if isinstance(value, dict):  # allow [backlog] fetch_batch_size = 100 style sections
            for sub, subval in value.items():
                flat[f"{key}_{sub}"] = subval
        else:
            flat[key] = value
    return flat


def _config_file(env: Mapping[str, str], config_path: str | None, config_origin: str | None) -> Path | None:
    """The config file to read, or None. A missing file is an error only when the operator named
    it, and the error blames what they typed ("--config" or "NETOPS_CONFIG")."""
    # NETOPS_CONFIG="" (empty) means "no config file at all": tests and demos use it so that a
    # box's /etc/netops/netops.toml can never leak into them.
    explicit = config_path if config_path is not None else env.get("NETOPS_CONFIG")
    path = Path(explicit) if explicit else DEFAULT_CONFIG_PATH
    try:
        present = explicit != "" and path.exists()
    except PermissionError:
        raise ConfigError(
            f"config file {path}: permission denied; run as root or a member of its group "
            "(netops), or point NETOPS_CONFIG elsewhere"
        ) from None
    if present:
        return path
    if explicit:
        origin = config_origin or ("--config" if config_path is not None else "NETOPS_CONFIG")
        if origin == "--config":
            raise ConfigError(f"--config {explicit}: no such file; fix the path")
        raise ConfigError(f"NETOPS_CONFIG={explicit}: no such file; fix the path or unset NETOPS_CONFIG")
    return None


def _from_file(path: Path, values: dict[str, Any], sources: dict[str, str]) -> None:
    by_env = {f.env.lower(): f for f in FIELDS}
    for key, raw in _read_toml(path).items():
        f = _BY_NAME.get(key) or by_env.get(key.lower())
        if f is None:
            close = difflib.get_close_matches(key.lower(), list(_BY_NAME), n=1, cutoff=0.6)
            hint = (f"did you mean '{close[0]}'?" if close else
                    "see `netops config show` for every key")
            raise ConfigError(f"config file {path}: unknown key '{key}'; {hint}")
        try:
            values[f.name] = f.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"config file {path}: {key}={raw!r} is invalid: {exc}") from None
        sources[f.name] = str(path)


def _from_env(env: Mapping[str, str], values: dict[str, Any], sources: dict[str, str]) -> None:
    for f in FIELDS:
        if f.env in env:
            raw = env[f.env]
            try:
                values[f.name] = f.parse(raw)
            except ValueError as exc:
                shown = "***" if f.secret else repr(raw)
                raise ConfigError(f"{f.env}={shown} is invalid: {exc}") from None
            sources[f.name] = "env"


def load_settings(env: Mapping[str, str] | None = None, config_path: str | None = None,
                  config_origin: str | None = None) -> Settings:
    """Build Settings from defaults, the config file and the environment, validating every value,
    and derive the application keys from them (Settings.keys). `config_origin` names where
    `config_path` came from ("--config" or "NETOPS_CONFIG"), so a missing file is blamed on what
    the operator actually typed.

    Raises ConfigError naming the first bad key (by the name the operator used) and the fix.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {f.name: f.default for f in FIELDS}
    sources: dict[str, str] = {f.name: "default" for f in FIELDS}
    path = _config_file(env, config_path, config_origin)
    if path is not None:
        _from_file(path, values, sources)
    _from_env(env, values, sources)
    # the directories are made absolute once, so every command reads and writes the same files
    values["state_dir"] = str(Path(values["state_dir"]).expanduser().absolute())
    if not values["log_dir"]:
        values["log_dir"] = default_log_dir(values["state_dir"])
    values["log_dir"] = str(Path(values["log_dir"]).expanduser().absolute())
    return Settings(**values, sources=sources, config_path=str(path) if path is not None else None,
                    key_env=extra_key_env(env))
