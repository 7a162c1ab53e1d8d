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

The keys are read once, when the settings are built (netops/config.py): every layer below the
command line uses ``settings.keys`` and ``settings.budget``, so all of them judge the same read.
Reading never raises: each bad key is one line in ``KeySet.problems``, and the commands that call
the API refuse to start while there is any. Secrets are registered with the log redactor the
moment they are read and never printed; only a key's label and client id (public UIDs) appear.

This module sits on the bottom floor with config.py (it imports nothing from netops but the log
redactor), so config.py can derive the keys without an import running upwards.
"""

from __future__ import annotations

import hashlib
import re
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netops.log import add_secret

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

DEFAULT_LABEL = "default"
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")

#: NETOPS_CLIENT_ID_2, NETOPS_CLIENT_SECRET_2, NETOPS_CLIENT_SECRET_FILE_2 (any suffix of letters
#: and digits): one more application key per suffix. NETOPS_CLIENT_SECRET_FILE itself is the
#: default key's secret file, not a key labelled "file".
_KEY_ENV = re.compile(r"^NETOPS_CLIENT_(ID|SECRET_FILE|SECRET)_([A-Za-z0-9]+)$")


class KeyProblem(ValueError):
    """One bad key (or unusable keys file): the message is one actionable line."""


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
    #: where its secret was given, as the operator wrote it (NETOPS_CLIENT_SECRET_FILE=/path, a
    #: config file key, a [[keys]] entry): what a refusal tells them to fix
    secret_source: str = "NETOPS_CLIENT_SECRET"

    @property
    def fingerprint(self) -> str:
        """Names this client id + secret pair without revealing it (sha256 prefix): a key set
        aside for a refused secret is tried again once the secret is changed."""
        return hashlib.sha256(f"{self.client_id}\0{self.secret}".encode()).hexdigest()[:16]


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

    @classmethod
    def of(cls, keys: tuple[ApiKey, ...] | list[ApiKey], per_second: float, per_hour: int) -> Budget:
        """The keys' budgets summed; one key's configured budget (`per_second`, `per_hour`) when
        there is none (a bad key's error is shown on the key lines, not here)."""
        if not keys:
            return cls(1, per_second, per_hour)
        return cls(len(keys), sum(k.per_second for k in keys), sum(k.per_hour for k in keys))


@dataclass(frozen=True)
class KeyInputs:
    """The settings the keys are read from (a slice of netops.config.Settings)."""

    client_id: str | None
    client_secret: str | None
    client_secret_file: str | None
    credentials_file: str | None
    config_path: str | None
    rate_per_second: float
    rate_per_hour: int
    state_dir: Path
    env: Mapping[str, str]
    #: setting name -> where its value came from ("env", "default" or the config file's path)
    sources: Mapping[str, str] = field(default_factory=dict)

    def origin(self, name: str, env_name: str, value: str | None = None) -> str:
        """A setting as the operator gave it: `NETOPS_X[=value]` from the environment, or
        `x[=value] in <config file>`."""
        shown = f"={value}" if value else ""
        where = self.sources.get(name, "env")
        if where not in ("env", "default"):
            return f"{name}{shown} in {where}"
        return f"{env_name}{shown}"

    def default_secret_source(self) -> str:
        """Where the default key's secret comes from (default_secret's order: the value first)."""
        if self.client_secret:
            return self.origin("client_secret", "NETOPS_CLIENT_SECRET")
        if self.client_secret_file:
            return self.origin("client_secret_file", "NETOPS_CLIENT_SECRET_FILE", self.client_secret_file)
        return "NETOPS_CLIENT_SECRET"

    def token_file(self, label: str) -> Path:
        """The default key keeps token.json; every other key its own token-<label>.json."""
        name = "token.json" if label == DEFAULT_LABEL else f"token-{label}.json"
        return self.state_dir / name


@dataclass(frozen=True)
class KeySet:
    """Every configured key (the default one first) and one line per bad one; `budget` is the
    keys' budgets summed, or one key's budget when there is none or any is bad."""

    keys: tuple[ApiKey, ...] = ()
    problems: tuple[str, ...] = ()
    budget: Budget = field(default_factory=lambda: Budget(1, 0.0, 0))


def extra_key_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment variables that give extra application keys."""
    out = {}
    for name, value in env.items():
        m = _KEY_ENV.match(name)
        if m and not (m.group(1) == "SECRET" and m.group(2).upper() == "FILE"):
            out[name] = value
    return out


def default_secret(client_secret: str | None, client_secret_file: str | None) -> str:
    """The default key's secret, from NETOPS_CLIENT_SECRET or the file NETOPS_CLIENT_SECRET_FILE
    names. Raises KeyProblem naming the variable to set."""
    if client_secret:
        return client_secret
    if client_secret_file:
        try:
            text = Path(client_secret_file).read_text().strip()
        except OSError as exc:
            raise KeyProblem(f"NETOPS_CLIENT_SECRET_FILE={client_secret_file}: cannot read it ({exc.strerror}); "
                             "fix the path or its permissions") from None
        if text:
            return text
        raise KeyProblem(f"NETOPS_CLIENT_SECRET_FILE={client_secret_file}: the file is empty; put the "
                         "application's secret in it")
    raise KeyProblem("NETOPS_CLIENT_SECRET is not set: set it (or NETOPS_CLIENT_SECRET_FILE, or client_secret "
                     "in the config file) to your 42 application's secret")


def default_credentials(client_id: str | None, client_secret: str | None,
                        client_secret_file: str | None) -> tuple[str, str]:
    """The default key's (client id, secret). Raises KeyProblem naming the variable to set."""
    if not client_id:
        raise KeyProblem("NETOPS_CLIENT_ID is not set: set it (or client_id in the config file) to your "
                         "42 application's UID")
    return client_id, default_secret(client_secret, client_secret_file)


def _read_secret_file(path: str, env_name: str) -> str:
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise KeyProblem(f"{env_name}={path}: cannot read it ({exc.strerror}); fix the path or its permissions") from None
    if not text:
        raise KeyProblem(f"{env_name}={path}: the file is empty; put the application's secret in it")
    return text


def _env_keys(src: KeyInputs, problems: list[str]) -> list[ApiKey]:
    suffixes = sorted({name.rsplit("_", 1)[1] for name in src.env})
    keys = []
    for sfx in suffixes:
        try:
            keys.append(_env_key(src, sfx))
        except KeyProblem as exc:
            problems.append(str(exc))  # one line per bad key; the others are still checked
    return keys


def _env_key(src: KeyInputs, sfx: str) -> ApiKey:
    cid = (src.env.get(f"NETOPS_CLIENT_ID_{sfx}") or "").strip()
    secret = (src.env.get(f"NETOPS_CLIENT_SECRET_{sfx}") or "").strip()
    secret_file = (src.env.get(f"NETOPS_CLIENT_SECRET_FILE_{sfx}") or "").strip()
    if not cid:
        raise KeyProblem(f"NETOPS_CLIENT_SECRET_{sfx} is set without NETOPS_CLIENT_ID_{sfx}: set the "
                         "application's UID too, or remove the secret")
    if not secret and secret_file:
        secret = _read_secret_file(secret_file, f"NETOPS_CLIENT_SECRET_FILE_{sfx}")
    if not secret:
        raise KeyProblem(f"NETOPS_CLIENT_ID_{sfx} is set without NETOPS_CLIENT_SECRET_{sfx} (or "
                         f"NETOPS_CLIENT_SECRET_FILE_{sfx}): give that application's secret")
    label = sfx.lower()
    given = (f"NETOPS_CLIENT_SECRET_{sfx}" if (src.env.get(f"NETOPS_CLIENT_SECRET_{sfx}") or "").strip()
             else f"NETOPS_CLIENT_SECRET_FILE_{sfx}={secret_file}")
    return ApiKey(label, cid, secret, src.rate_per_second, src.rate_per_hour, src.token_file(label),
                  f"NETOPS_CLIENT_ID_{sfx}", given)


def check_private(path: Path, what: str) -> None:
    """Refuse a secrets file that every user of the box can read (or write)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise KeyProblem(f"{what}={path}: cannot read it ({exc.strerror}); fix the path") from None
    if mode & 0o007:
        raise KeyProblem(f"{what}={path}: readable by every user (mode {mode:04o}); it holds secrets — "
                         f"run `chmod 600 {path}` (or 640 with a group of the netops user)")


def _file_keys(src: KeyInputs, problems: list[str]) -> list[ApiKey]:
    """Keys from NETOPS_CREDENTIALS_FILE, and from [[keys]] in the config file itself (what the
    Ansible role writes from the vault into /etc/netops/netops.toml, mode 0640). A file that
    cannot be used is one problem; in a usable file, each bad entry is one."""
    keys: list[ApiKey] = []
    sources = []
    if src.credentials_file:
        sources.append((Path(src.credentials_file), "NETOPS_CREDENTIALS_FILE", True))
    if src.config_path and src.config_path != src.credentials_file:
        sources.append((Path(src.config_path), "config file", False))
    for path, what, required in sources:
        try:
            keys += _keys_in(src, path, what, required, problems)
        except KeyProblem as exc:
            problems.append(str(exc))
    return keys


def _keys_in(src: KeyInputs, path: Path, what: str, required: bool, problems: list[str]) -> list[ApiKey]:
    if required:
        check_private(path, what)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise KeyProblem(f"{what}={path}: not valid TOML ({exc}); fix the syntax") from None
    except OSError as exc:
        raise KeyProblem(f"{what}={path}: cannot read it ({exc.strerror}); fix its owner or mode") from None
    if not required and "keys" not in data:
        return []
    if not required:
        check_private(path, what)  # a config file that lists secrets must be as private as a credentials file
    entries = data.get("keys")
    if not isinstance(entries, list) or (required and not entries):
        raise KeyProblem(f"{what}={path}: no [[keys]] entries; add one per application "
                         "(label, client_id, client_secret)")
    keys = []
    for n, entry in enumerate(entries, 1):
        try:
            keys.append(_file_key(src, path, f"{what}={path}: key #{n}", entry))
        except KeyProblem as exc:
            problems.append(str(exc))
    return keys


def _file_key(src: KeyInputs, path: Path, where: str, entry: Any) -> ApiKey:
    if not isinstance(entry, dict):
        raise KeyProblem(f"{where} is not a table; write it as [[keys]] with label, client_id, client_secret")
    unknown = set(entry) - {"label", "client_id", "client_secret", "rate_per_second", "rate_per_hour"}
    if unknown:
        raise KeyProblem(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; known: label, client_id, "
                         "client_secret, rate_per_second, rate_per_hour")
    label = str(entry.get("label") or "").strip()
    if not _LABEL.match(label):
        raise KeyProblem(f"{where}: label {label!r} is missing or invalid; use 1-40 letters, digits, - or _")
    cid = str(entry.get("client_id") or "").strip()
    secret = str(entry.get("client_secret") or "").strip()
    if not cid or not secret:
        raise KeyProblem(f"{where} ({label}): client_id and client_secret are both required")
    try:
        per_second = float(entry.get("rate_per_second", src.rate_per_second))
        per_hour = int(entry.get("rate_per_hour", src.rate_per_hour))
    except (TypeError, ValueError):
        raise KeyProblem(f"{where} ({label}): rate_per_second / rate_per_hour must be numbers") from None
    if per_second <= 0 or per_hour < 1:
        raise KeyProblem(f"{where} ({label}): rate_per_second must be > 0 and rate_per_hour >= 1")
    # the configured budgets are a ceiling: a file cannot raise a key above NETOPS_RATE_PER_*
    return ApiKey(label, cid, secret, min(per_second, src.rate_per_second),
                  min(per_hour, src.rate_per_hour), src.token_file(label), str(path),
                  f"client_secret of [[keys]] {label!r} in {path}")


def _unique(keys: list[ApiKey], problems: list[str]) -> list[ApiKey]:
    """The keys minus a repeated label or client id (each repeat is one problem line)."""
    seen_labels: dict[str, ApiKey] = {}
    seen_ids: dict[str, ApiKey] = {}
    for k in keys:
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
    return list(seen_labels.values())


def _named(problem: str, src: KeyInputs) -> str:
    """A default-key problem naming the setting as the operator gave it (a config file key is
    not an environment variable)."""
    if problem.startswith("NETOPS_CLIENT_SECRET_FILE=") and src.sources.get("client_secret_file") not in (
            None, "env", "default"):
        return problem.replace(f"NETOPS_CLIENT_SECRET_FILE={src.client_secret_file}",
                               src.origin("client_secret_file", "NETOPS_CLIENT_SECRET_FILE",
                                          src.client_secret_file), 1)
    return problem


def read_key_set(src: KeyInputs) -> KeySet:
    """Every configured key, the default one first, and every problem (one line each: a
    duplicate label or client id, an unreadable or world-readable file, an id without a
    secret), so one run shows them all. Secrets are registered with the log redactor."""
    keys: list[ApiKey] = []
    problems: list[str] = []
    if src.client_id:
        try:
            cid, secret = default_credentials(src.client_id, src.client_secret, src.client_secret_file)
            keys.append(ApiKey(DEFAULT_LABEL, cid, secret, src.rate_per_second, src.rate_per_hour,
                               src.token_file(DEFAULT_LABEL), src.origin("client_id", "NETOPS_CLIENT_ID"),
                               src.default_secret_source()))
        except KeyProblem as exc:
            problems.append(_named(str(exc), src))
    elif src.client_secret or src.client_secret_file:
        # a secret without its application's UID: every API call would fail, so say it now
        problems.append(f"{src.default_secret_source()} is set but NETOPS_CLIENT_ID is not: set it (or client_id "
                        "in the config file) to the UID of the application that secret belongs to")
    keys += _env_keys(src, problems)
    keys += _file_keys(src, problems)
    for k in keys:
        add_secret(k.secret)
    keys = _unique(keys, problems)
    usable = () if problems else tuple(keys)
    return KeySet(tuple(keys), tuple(problems), Budget.of(usable, src.rate_per_second, src.rate_per_hour))
