"""Application keys: which 42 applications (client id + secret) netops may call the API with.

Why several: the API's budget is per application (2/s and 1,200/h by default), so N keys give N
budgets. Each key has its own token (its own 0600 token file), its own budget (claimed in
PostgreSQL, netops/api/limiter.py) and its own line in `netops status`, the metrics and the
dashboard. A key whose secret the API refuses is set aside (for every process, until its secret
changes) and the others carry on.

Three ways to give them, all merged (a client id may appear only once):

1. The simple default, one key labelled ``default``: ``NETOPS_CLIENT_ID`` and
   ``NETOPS_CLIENT_SECRET`` (or ``NETOPS_CLIENT_SECRET_FILE``), or ``client_id`` /
   ``client_secret`` in netops.toml. Its token stays in ``<state_dir>/token.json``.
2. Environment, one more key per suffix: ``NETOPS_CLIENT_ID_2`` with ``NETOPS_CLIENT_SECRET_2``
   or ``NETOPS_CLIENT_SECRET_FILE_2`` (suffix: letters and digits; the label is the suffix in
   lower case).
3. A credentials file, ``NETOPS_CREDENTIALS_FILE`` (the Ansible role writes one from the vault),
   TOML, mode 0600 or 0640 — a file any user can read is refused::

       [[keys]]
       label = "b"                 # letters, digits, - and _
       client_id = "u-s4t2ud-..."
       client_secret = "s-s4t2ud-..."
       # rate_per_second = 2       # optional: this application's own quota (default: the
       # rate_per_hour = 1200      #   NETOPS_RATE_PER_* budgets)

   The same ``[[keys]]`` tables may sit at the end of netops.toml itself (the Ansible role writes
   them there from the vault, ``netops_api_keys``); a config file that lists keys must not be
   world-readable either.

Secrets are registered with the log redactor the moment they are read and never printed; only
a key's label and client id (public UIDs) appear in output.
"""

from __future__ import annotations

import hashlib
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netops.config import ConfigError, Settings
from netops.log import add_secret

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

DEFAULT_LABEL = "default"
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class ApiKey:
    """One application key. `secret` is kept out of repr() so a logged key shows no secret."""

    label: str
    client_id: str
    secret: str = field(repr=False)
    per_second: float
    per_hour: int
    token_file: Path
    source: str  # where it was given (an env name or the credentials file): named in errors

    @property
    def fingerprint(self) -> str:
        """Names this client id + secret pair without revealing it (sha256 prefix): a key set
        aside for a refused secret is tried again once the secret is changed."""
        return hashlib.sha256(f"{self.client_id}\0{self.secret}".encode()).hexdigest()[:16]


def token_file_for(settings: Settings, label: str) -> Path:
    """The default key keeps the historic token.json; every other key its own token-<label>.json."""
    return settings.token_file if label == DEFAULT_LABEL else settings.state_path / f"token-{label}.json"


def _read_secret_file(path: str, env_name: str) -> str:
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{env_name}={path}: cannot read it ({exc.strerror}); fix the path or its permissions") from None
    if not text:
        raise ConfigError(f"{env_name}={path}: the file is empty; put the application's secret in it")
    return text


def _env_keys(settings: Settings, problems: list[str]) -> list[ApiKey]:
    env = settings.key_env
    suffixes = sorted({name.rsplit("_", 1)[1] for name in env})
    keys = []
    for sfx in suffixes:
        try:
            keys.append(_env_key(settings, env, sfx))
        except ConfigError as exc:
            problems.append(str(exc))  # one line per bad key; the others are still checked
    return keys


def _env_key(settings: Settings, env: dict[str, str], sfx: str) -> ApiKey:
    cid = (env.get(f"NETOPS_CLIENT_ID_{sfx}") or "").strip()
    secret = (env.get(f"NETOPS_CLIENT_SECRET_{sfx}") or "").strip()
    secret_file = (env.get(f"NETOPS_CLIENT_SECRET_FILE_{sfx}") or "").strip()
    if not cid:
        raise ConfigError(f"NETOPS_CLIENT_SECRET_{sfx} is set without NETOPS_CLIENT_ID_{sfx}: set the "
                          "application's UID too, or remove the secret")
    if not secret and secret_file:
        secret = _read_secret_file(secret_file, f"NETOPS_CLIENT_SECRET_FILE_{sfx}")
    if not secret:
        raise ConfigError(f"NETOPS_CLIENT_ID_{sfx} is set without NETOPS_CLIENT_SECRET_{sfx} (or "
                          f"NETOPS_CLIENT_SECRET_FILE_{sfx}): give that application's secret")
    label = sfx.lower()
    return ApiKey(label, cid, secret, settings.rate_per_second, settings.rate_per_hour,
                  token_file_for(settings, label), f"NETOPS_CLIENT_ID_{sfx}")


def check_private(path: Path, what: str) -> None:
    """Refuse a secrets file that every user of the box can read (or write)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"{what}={path}: cannot read it ({exc.strerror}); fix the path") from None
    if mode & 0o007:
        raise ConfigError(f"{what}={path}: readable by every user (mode {mode:04o}); it holds secrets — "
                          f"run `chmod 600 {path}` (or 640 with a group of the netops user)")


def _file_keys(settings: Settings, problems: list[str]) -> list[ApiKey]:
    """Keys from NETOPS_CREDENTIALS_FILE, and from [[keys]] in the config file itself (what the
    Ansible role writes from the vault into /etc/netops/netops.toml, mode 0640). A file that
    cannot be used is one problem; in a usable file, each bad entry is one."""
    keys: list[ApiKey] = []
    sources = []
    if settings.credentials_file:
        sources.append((Path(settings.credentials_file), "NETOPS_CREDENTIALS_FILE", True))
    if settings.config_path and settings.config_path != settings.credentials_file:
        sources.append((Path(settings.config_path), "config file", False))
    for path, what, required in sources:
        try:
            keys += _keys_in(settings, path, what, required, problems)
        except ConfigError as exc:
            problems.append(str(exc))
    return keys


def _keys_in(settings: Settings, path: Path, what: str, required: bool, problems: list[str]) -> list[ApiKey]:
    if required:
        check_private(path, what)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what}={path}: not valid TOML ({exc}); fix the syntax") from None
    except OSError as exc:
        raise ConfigError(f"{what}={path}: cannot read it ({exc.strerror}); fix its owner or mode") from None
    if not required and "keys" not in data:
        return []
    if not required:
        check_private(path, what)  # a config file that lists secrets must be as private as a credentials file
    entries = data.get("keys")
    if not isinstance(entries, list) or (required and not entries):
        raise ConfigError(f"{what}={path}: no [[keys]] entries; add one per application "
                          "(label, client_id, client_secret)")
    keys = []
    for n, entry in enumerate(entries, 1):
        try:
            keys.append(_file_key(settings, path, f"{what}={path}: key #{n}", entry))
        except ConfigError as exc:
            problems.append(str(exc))
    return keys


def _file_key(settings: Settings, path: Path, where: str, entry: Any) -> ApiKey:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} is not a table; write it as [[keys]] with label, client_id, client_secret")
    unknown = set(entry) - {"label", "client_id", "client_secret", "rate_per_second", "rate_per_hour"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; known: label, client_id, "
                          "client_secret, rate_per_second, rate_per_hour")
    label = str(entry.get("label") or "").strip()
    if not _LABEL.match(label):
        raise ConfigError(f"{where}: label {label!r} is missing or invalid; use 1-40 letters, digits, - or _")
    cid = str(entry.get("client_id") or "").strip()
    secret = str(entry.get("client_secret") or "").strip()
    if not cid or not secret:
        raise ConfigError(f"{where} ({label}): client_id and client_secret are both required")
    try:
        per_second = float(entry.get("rate_per_second", settings.rate_per_second))
        per_hour = int(entry.get("rate_per_hour", settings.rate_per_hour))
    except (TypeError, ValueError):
        raise ConfigError(f"{where} ({label}): rate_per_second / rate_per_hour must be numbers") from None
    if per_second <= 0 or per_hour < 1:
        raise ConfigError(f"{where} ({label}): rate_per_second must be > 0 and rate_per_hour >= 1")
    # the configured budgets are a ceiling: a file cannot raise a key above NETOPS_RATE_PER_*
    return ApiKey(label, cid, secret, min(per_second, settings.rate_per_second),
                  min(per_hour, settings.rate_per_hour), token_file_for(settings, label), str(path))


def load_keys(settings: Settings, required: bool = True) -> list[ApiKey]:
    """Every configured key, the default one first; secrets registered with the log redactor.

    Raises ConfigError naming every problem, one line each (a duplicate label or client id, an
    unreadable or world-readable file, an id without a secret): every key is checked, so one run
    shows them all. With `required` and no key at all, the error says how to give one.
    """
    keys: list[ApiKey] = []
    problems: list[str] = []
    if settings.client_id:
        try:
            cid, secret = settings.require_credentials()
            keys.append(ApiKey(DEFAULT_LABEL, cid, secret, settings.rate_per_second, settings.rate_per_hour,
                               settings.token_file, "NETOPS_CLIENT_ID"))
        except ConfigError as exc:
            problems.append(str(exc))
    keys += _env_keys(settings, problems)
    keys += _file_keys(settings, problems)
    seen_labels: dict[str, ApiKey] = {}
    seen_ids: dict[str, ApiKey] = {}
    for k in keys:
        add_secret(k.secret)
        if k.label in seen_labels:
            problems.append(f"application key label {k.label!r} is given twice ({seen_labels[k.label].source} "
                            f"and {k.source}); give each key its own label")
            continue
        if k.client_id in seen_ids:
            problems.append(f"client id {k.client_id} is given twice ({seen_ids[k.client_id].source} and "
                            f"{k.source}): one application has one budget — list it once")
            continue
        seen_labels[k.label] = k
        seen_ids[k.client_id] = k
    if problems:
        raise ConfigError("\n".join(problems))
    if required and not keys:
        settings.require_credentials()  # raises the one-key default's own error (names NETOPS_CLIENT_ID)
    return keys


@dataclass(frozen=True)
class Budget:
    """What all configured keys allow together: each key has its own budget, so the box's is
    the sum (the configured ceilings; the API's headers may lower a key's, see key_rows)."""

    keys: int
    per_second: float
    per_hour: int

    def note(self) -> str:
        """`, 2 keys × 1,200/h` for the api lines of `status` and `backlog status`; empty with
        one key (the simple default reads as it always has)."""
        if self.keys <= 1:
            return ""
        return f", {self.keys} keys × {self.per_hour // self.keys:,}/h"


#: What one evaluation read of the configured keys: the keys, or the error naming every bad one.
#: Read once (read_keys) and handed to budget() and key_rows(), so they judge the same read.
Configured = list[ApiKey] | ConfigError


def read_keys(settings: Settings) -> Configured:
    """load_keys() for the views (none required), its error returned instead of raised: a view
    shows a bad key on its key lines, it does not stop."""
    try:
        return load_keys(settings, required=False)
    except ConfigError as exc:
        return exc


def budget(settings: Settings, keys: Configured | None = None) -> Budget:
    """The summed budget of every configured key: the one place the box's API budget is derived
    (status, backlog status, metrics, history.json and the dashboard all show this one).

    One key's configured budget when there is none or they cannot be read (the error itself is
    shown on the key lines). `keys`: what read_keys() returned already (read now when None)."""
    keys = read_keys(settings) if keys is None else keys
    if isinstance(keys, ConfigError) or not keys:
        return Budget(1, settings.rate_per_second, settings.rate_per_hour)
    return Budget(len(keys), sum(k.per_second for k in keys), sum(k.per_hour for k in keys))
