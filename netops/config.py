"""One validated Settings object for every netops command.

Precedence, lowest first: built-in defaults < the TOML file (``/etc/netops/netops.toml``, or the
path in ``NETOPS_CONFIG``) < environment variables. Every field is declared once in ``FIELDS``
with its env name, type and check, so the error for a bad value can always name the key the
operator actually typed and say what is expected, in one line.

The old bash pipeline's names (``BACKLOG_*``) are kept as they were so existing cron
environments keep working.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
# A call claimed at t reaches the API later, and not always equally later (0.13 s at load 4, 0.45 s
# at load 12 on a 2-core box running five netops jobs). Since migration 012 each answered call
# moves its slot to where the API counted it (netops/api/limiter.py), so this margin only covers
# what that estimate cannot see (the API's own clock and queue, and a busy API shortening what it
# spends after counting a call): 20 ms still drew one 429 in a full test-suite run (five jobs on one
# key, load ~8); 50 ms, 5 % of the budget.
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


def _default_state_dir() -> str:
    # root runs the embedded Postgres as an unprivileged user, which must be able to reach the
    # data dir: /root is private, so root's default lives under /var/lib like any daemon's.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
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


@dataclass(frozen=True)
class Field:
    name: str
    env: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    secret: bool = False


FIELDS: tuple[Field, ...] = (
    # --- the API ---------------------------------------------------------------------------
    Field("api_url", "NETOPS_API_URL", _url, REAL_API_URL, "Base URL of the 42 API (or the simulator)."),
    Field("client_id", "NETOPS_CLIENT_ID", _opt_str, None, "OAuth2 application UID."),
    Field("client_secret", "NETOPS_CLIENT_SECRET", _opt_str, None, "OAuth2 application secret.", secret=True),
    Field("client_secret_file", "NETOPS_CLIENT_SECRET_FILE", _opt_path, None,
          "File holding the secret (keeps it out of the environment)."),
    Field("credentials_file", "NETOPS_CREDENTIALS_FILE", _opt_path, None,
          "TOML file (mode 0600/0640, never world-readable) listing several application keys "
          "([[keys]] label, client_id, client_secret); see netops/api/keys.py."),
    Field("cursus_id", "NETOPS_CURSUS_ID", _num(int, 1), 21, "Cursus mirrored (42cursus is 21)."),
    Field("rate_per_second", "NETOPS_RATE_PER_SECOND", _num(float, 0.01), API_RATE_PER_SECOND,
          "API calls per second budget of each application key (the API's headers can only lower it)."),
    Field("rate_per_hour", "NETOPS_RATE_PER_HOUR", _num(int, 1), API_RATE_PER_HOUR,
          "API calls per hour budget of each application key (the API's headers can only lower it)."),
    Field("rate_window_margin", "NETOPS_RATE_WINDOW_MARGIN", _num(float, 0.0, 1.0), DEFAULT_RATE_WINDOW_MARGIN,
          "Seconds added to the 1-s window when claiming slots, on top of each call's measured "
          "arrival (costs budget: limit calls per 1 s + margin)."),
    Field("page_size", "NETOPS_PAGE_SIZE", _num(int, 1, 100), 100, "Items per page requested."),
    Field("http_timeout", "NETOPS_HTTP_TIMEOUT", _num(float, 0.1), 30.0, "Seconds before a call times out."),
    Field("max_attempts", "NETOPS_MAX_ATTEMPTS", _num(int, 1, 20), 3, "Attempts per call on 5xx/timeouts."),
    Field("max_concurrency", "NETOPS_MAX_CONCURRENCY", _num(int, 1, 64), 4,
          "Pages fetched in flight at once, per application key (still inside its budget)."),
    Field("token_min_ttl", "NETOPS_TOKEN_MIN_TTL", _num(int, 0), 3600, "Refresh the token below this TTL (s)."),
    Field("secret_warn_days", "NETOPS_SECRET_WARN_DAYS", _num(int, 0), 14,
          "Warn when the application secret expires within this many days."),
    # --- storage ---------------------------------------------------------------------------
    Field("dsn", "NETOPS_DSN", _dsn, None,
          "PostgreSQL DSN; empty = netops starts and owns a local server.", secret=True),
    Field("db_name", "NETOPS_DB_NAME", _str, "netops", "Database name on the embedded server."),
    Field("pg_bin_dir", "NETOPS_PG_BIN_DIR", _opt_path, None, "Directory holding initdb/pg_ctl/postgres."),
    Field("pg_system_user", "NETOPS_PG_SYSTEM_USER", _str, "netops-pg",
          "Unprivileged user the embedded server runs as when netops runs as root."),
    Field("log_dir", "NETOPS_LOG_DIR", _path, None,
          "One log file per component lives here (default: /var/log/netops as root, else <state_dir>/logs)."),
    Field("state_dir", "NETOPS_STATE_DIR", _path, _default_state_dir(),
          "Token store, embedded Postgres, metrics files."),
    Field("max_prune_ratio", "NETOPS_MAX_PRUNE_RATIO", _num(float, 0.0, 1.0), 0.5,
          "Refuse a sync that would delete more than this share of a table."),
    # --- backlog (names from the old pipeline) -------------------------------------------
    Field("backlog_fetch_batch_size", "BACKLOG_FETCH_BATCH_SIZE", _num(int, 1, 10000), 100,
          "Backlog items claimed per batch."),
    Field("backlog_fetch_delay_seconds", "BACKLOG_FETCH_DELAY_SECONDS", _num(float, 0), 0.0,
          "Pause between backlog batches."),
    Field("backlog_max_retries", "BACKLOG_MAX_RETRIES", _num(int, 0, 100), 3,
          "Attempts before a backlog item is failed."),
    Field("backlog_retry_delay", "BACKLOG_RETRY_DELAY", _num(float, 0), 60.0,
          "Base backoff (s) before a failed item is retried."),
    Field("backlog_poll_interval", "BACKLOG_POLL_INTERVAL", _num(float, 0.1), 30.0,
          "Seconds between polls in --loop mode."),
    Field("backlog_visibility_timeout", "BACKLOG_VISIBILITY_TIMEOUT", _num(float, 1), 600.0,
          "Seconds before a claimed item of a dead worker is reclaimed."),
    Field("backlog_detect_settle_seconds", "BACKLOG_DETECT_SETTLE_SECONDS", _num(float, 0, 3600), 60.0,
          "How old (by the API's clock) a change must be before detect reads it: covers late commits."),
    Field("backlog_reconcile_budget_share", "BACKLOG_RECONCILE_BUDGET_SHARE", _num(float, 0.0, 1.0), 0.25,
          "Share of the hourly budget reconciliation may use."),
    Field("backlog_enable_metrics", "BACKLOG_ENABLE_METRICS", _bool, True, "Write metrics_latest.json."),
    Field("backlog_metric_interval", "BACKLOG_METRIC_INTERVAL", _num(int, 1), 60,
          "Seconds between metrics rewrites."),
    # --- observability -----------------------------------------------------------------
    Field("metrics_dir", "NETOPS_METRICS_DIR", _opt_path, None,
          "Where metrics_latest.json / metrics.prom go (default: <state_dir>/metrics)."),
    Field("api_calls_keep_days", "NETOPS_API_CALLS_KEEP_DAYS", _num(int, 2), 30,
          "Days of netops.api_calls rows kept; history.json's writer prunes older ones (the "
          "counters are running totals, so they do not go down)."),
    Field("nginx_url", "NETOPS_NGINX_URL", _opt_url, None,
          "URL nginx serves netops on; checked by `netops status` when set."),
    # 1 s (the old fixed value) drew false nginx_down alerts from a loaded real host: the check
    # runs from the status-json cron job every minute, so a few seconds' patience costs nothing.
    Field("nginx_timeout", "NETOPS_NGINX_TIMEOUT", _num(float, 0.1, 60), 5.0,
          "Seconds `netops status` waits for nginx_url to answer before nginx counts as down."),
    Field("alert_webhook_url", "NETOPS_ALERT_WEBHOOK_URL", _opt_url, None, "POST alert state changes here."),
    # The seed alerted above 2 calls/min with a 120/h budget, i.e. above the budget's average
    # rate. At the default 1,200/h that rate is 20/min; measured as a 15-minute mean, one nightly
    # sync (23 calls; 105 before phase 07 was derived) stays well under it, while a job stuck in a loop does not.
    Field("alert_calls_per_min", "NETOPS_ALERT_CALLS_PER_MIN", _num(float, 0), 20.0,
          "Alert above this many API calls/min, 15-minute mean (loop suspicion)."),
    Field("alert_401_count", "NETOPS_ALERT_401_COUNT", _num(int, 0), 0, "Alert above this many 401s/hour."),
    Field("alert_429_count", "NETOPS_ALERT_429_COUNT", _num(int, 0), 0, "Alert above this many 429s/hour."),
    Field("alert_db_size_bytes", "NETOPS_ALERT_DB_SIZE_BYTES", _num(int, 0), 10 * 1024**3,
          "Alert when the database exceeds this size."),
    Field("alert_log_bytes", "NETOPS_ALERT_LOG_BYTES", _num(int, 0), 1024**3,
          "Alert when the log dir exceeds this size."),
    Field("alert_sync_seconds", "NETOPS_ALERT_SYNC_SECONDS", _num(float, 0), 600.0,
          "Alert when a stable sync takes longer."),
    Field("alert_sync_age_hours", "NETOPS_ALERT_SYNC_AGE_HOURS", _num(float, 0), 26.0,
          "Alert when the last successful stable sync is older."),
    Field("alert_backlog_depth", "NETOPS_ALERT_BACKLOG_DEPTH", _num(int, 0), 10000,
          "Alert when more backlog items are pending."),
    Field("alert_backlog_failed", "NETOPS_ALERT_BACKLOG_FAILED", _num(int, 0), 0,
          "Alert when more backlog items have failed."),
)

_BY_NAME = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Build it with :func:`load_settings`, never by hand in commands."""

    values: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)
    config_path: str | None = None
    #: NETOPS_CLIENT_ID_<N> / NETOPS_CLIENT_SECRET_<N> / NETOPS_CLIENT_SECRET_FILE_<N>: the extra
    #: application keys given by environment (read by netops/api/keys.py; never shown)
    key_env: Mapping[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    # -- derived values ---------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return Path(self.values["log_dir"])

    @property
    def state_path(self) -> Path:
        return Path(self.values["state_dir"])

    @property
    def metrics_path(self) -> Path:
        return Path(self.values["metrics_dir"] or self.state_path / "metrics")

    @property
    def token_file(self) -> Path:
        return self.state_path / "token.json"

    def secret(self) -> str:
        """The client secret, from NETOPS_CLIENT_SECRET or NETOPS_CLIENT_SECRET_FILE."""
        if self.values["client_secret"]:
            return self.values["client_secret"]
        path = self.values["client_secret_file"]
        if path:
            try:
                text = Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"NETOPS_CLIENT_SECRET_FILE={path}: cannot read it ({exc.strerror}); "
                    "fix the path or its permissions"
                ) from None
            if text:
                return text
        raise ConfigError(
            "NETOPS_CLIENT_SECRET is not set: set it (or NETOPS_CLIENT_SECRET_FILE, or client_secret "
            "in the config file) to your 42 application's secret"
        )

    def require_credentials(self) -> tuple[str, str]:
        if not self.values["client_id"]:
            raise ConfigError(
                "NETOPS_CLIENT_ID is not set: set it (or client_id in the config file) to your "
                "42 application's UID"
            )
        return self.values["client_id"], self.secret()

    def known_secrets(self) -> list[str]:
        """Values that must never be written anywhere (used by the log redactor)."""
        out = []
        for f in FIELDS:
            if f.secret and self.values.get(f.name):
                out.append(str(self.values[f.name]))
        out += [v for k, v in self.key_env.items() if v and k.startswith("NETOPS_CLIENT_SECRET_")
                and not k.startswith("NETOPS_CLIENT_SECRET_FILE_")]
        return out

    def public_dict(self) -> dict[str, Any]:
        """All values with secrets masked, for `netops config show`."""
        return {
            f.name: ("***" if f.secret and self.values.get(f.name) else self.values.get(f.name))
            for f in FIELDS
        }

    def replace(self, **changes: Any) -> Settings:
        for key in changes:
            if key not in _BY_NAME:
                raise KeyError(key)
        return Settings({**self.values, **changes}, self.sources, self.config_path, self.key_env)


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
            continue  # [[keys]]: several application keys, read by netops/api/keys.py
        if isinstance(value, dict):  # allow [backlog] fetch_batch_size = 100 style sections
            for sub, subval in value.items():
                flat[f"{key}_{sub}"] = subval
        else:
            flat[key] = value
    return flat


def load_settings(env: Mapping[str, str] | None = None, config_path: str | None = None,
                  config_origin: str | None = None) -> Settings:
    """Build Settings from defaults, the config file and the environment, validating every value.
    `config_origin` names where `config_path` came from ("--config" or "NETOPS_CONFIG"), so a
    missing file is blamed on what the operator actually typed.

    Raises ConfigError naming the first bad key (by the name the operator used) and the fix.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {f.name: f.default for f in FIELDS}
    sources: dict[str, str] = {f.name: "default" for f in FIELDS}

    # NETOPS_CONFIG="" (empty) means "no config file at all": tests and demos use it so that a
    # box's /etc/netops/netops.toml can never leak into them.
    explicit = config_path if config_path is not None else env.get("NETOPS_CONFIG")
    path = Path(explicit) if explicit else DEFAULT_CONFIG_PATH
    used_path: str | None = None
    try:
        present = explicit != "" and path.exists()
    except PermissionError:
        raise ConfigError(
            f"config file {path}: permission denied; run as root or a member of its group "
            "(netops), or point NETOPS_CONFIG elsewhere"
        ) from None
    if present:
        file_values = _read_toml(path)
        by_env = {f.env.lower(): f for f in FIELDS}
        for key, raw in file_values.items():
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
        used_path = str(path)
    elif explicit:
        origin = config_origin or ("--config" if config_path is not None else "NETOPS_CONFIG")
        if origin == "--config":
            raise ConfigError(f"--config {explicit}: no such file; fix the path")
        raise ConfigError(f"NETOPS_CONFIG={explicit}: no such file; fix the path or unset NETOPS_CONFIG")

    for f in FIELDS:
        if f.env in env:
            raw = env[f.env]
            try:
                values[f.name] = f.parse(raw)
            except ValueError as exc:
                shown = "***" if f.secret else repr(raw)
                raise ConfigError(f"{f.env}={shown} is invalid: {exc}") from None
            sources[f.name] = "env"
    # defaults pass through the parser too, so relative paths are expanded consistently
    values["state_dir"] = str(Path(values["state_dir"]).expanduser().absolute())
    if not values["log_dir"]:
        values["log_dir"] = default_log_dir(values["state_dir"])
    values["log_dir"] = str(Path(values["log_dir"]).expanduser().absolute())
    return Settings(values, sources, used_path, extra_key_env(env))


#: NETOPS_CLIENT_ID_2, NETOPS_CLIENT_SECRET_2, NETOPS_CLIENT_SECRET_FILE_2 (any suffix of letters
#: and digits): one more application key per suffix. NETOPS_CLIENT_SECRET_FILE itself is the
#: default key's secret file, not a key labelled "file".
_KEY_ENV = re.compile(r"^NETOPS_CLIENT_(ID|SECRET_FILE|SECRET)_([A-Za-z0-9]+)$")


def extra_key_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment variables that give extra application keys (see netops/api/keys.py)."""
    out = {}
    for name, value in env.items():
        m = _KEY_ENV.match(name)
        if m and not (m.group(1) == "SECRET" and m.group(2).upper() == "FILE"):
            out[name] = value
    return out

