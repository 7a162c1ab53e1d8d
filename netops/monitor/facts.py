"""Facts every view shares: the database's (read by netops/db/monitor_facts.py) judged for dead
runs, and the local files (disk, token stores, application keys).

Views never refresh a token or call the API: what a file or the database does not say is unknown.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from netops import catalog
from netops.config import ConfigError, Settings
from netops.db import monitor_facts, ratelimit

# The stable phases in FK order, (phase, table): both the table's name, derived from the catalog
# (netops/catalog.py). Phases seen in sync_runs but not listed here (a removed phase) are still
# reported, after these.
STABLE_PHASES: tuple[tuple[str, str], ...] = tuple((s.name, s.name) for s in catalog.STABLE)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(ts: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, the form every netops log line and JSON document uses."""
    if ts is None:
        return None
    return ts.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def monitor_dsn(settings: Settings) -> str:
    """The DSN to read from, without starting the embedded server: a stopped database must show
    up as a failed check in `netops status`, not be silently started by it."""
    from netops.db.server import resolve_dsn

    return resolve_dsn(settings, start=False)


# --- sync runs -----------------------------------------------------------------------------

@dataclass
class PhaseFacts:
    phase: str
    table: str
    last_status: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    pages_done: int = 0
    pages_total: int | None = None
    rows_fetched: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    rows_skipped: int = 0
    api_calls: int = 0
    error: str | None = None
    run_id: str | None = None
    last_success_at: datetime | None = None
    last_success_duration: float | None = None
    #: a live sync has not reached this phase yet: "fetching" (an API phase, read ahead while
    #: earlier phases load) or "queued" (its rows come from another phase's answer); None otherwise.
    #: Its last_status is then the previous run's, not this one's.
    in_run: str | None = None


# A sync holds the SYNC lock (netops/db/locks.py) for its whole run, on its own session: when the
# process dies (kill -9, OOM, power loss) PostgreSQL drops the session and the lock with it. So a
# `running` row while nobody holds the lock belongs to a dead run: it is shown as interrupted at
# once, without waiting for the next sync to tidy it up, and its "elapsed" time is no duration.
DEAD_RUN_NOTE = ("interrupted: the sync process is gone (its lock is not held) — killed or crashed "
                 "before this phase finished; its table was left unchanged")


def phase_facts(cur: Any, lock_held: bool | None = None) -> list[PhaseFacts]:
    """Latest run of every phase and its latest success. A `running` row of a sync that no longer
    holds the lock is reported `interrupted`, with no duration (see DEAD_RUN_NOTE)."""
    if lock_held is None:
        lock_held = monitor_facts.sync_lock_held(cur)
    latest = monitor_facts.latest_phase_runs(cur)
    success = monitor_facts.latest_phase_successes(cur)
    known = dict(STABLE_PHASES)
    order = [p for p, _ in STABLE_PHASES] + sorted(p for p in latest if p not in known)
    out = []
    for phase in order:
        r = latest.get(phase)
        f = PhaseFacts(phase=phase, table=known.get(phase) or (r.table if r else phase))
        if r:
            f.table, f.last_status, f.started_at, f.finished_at = r.table, r.status, r.started_at, r.finished_at
            f.duration_seconds, f.pages_done, f.pages_total = r.duration_seconds, r.pages_done, r.pages_total
            f.rows_fetched, f.rows_inserted, f.rows_updated = r.rows_fetched, r.rows_inserted, r.rows_updated
            f.rows_deleted, f.rows_skipped, f.api_calls = r.rows_deleted, r.rows_skipped, r.api_calls
            f.error, f.run_id = r.error, r.run_id
        if phase in success:
            f.last_success_at, f.last_success_duration = success[phase]
        if f.last_status == "running" and not lock_held:
            f.last_status, f.duration_seconds, f.error = "interrupted", None, DEAD_RUN_NOTE
        out.append(f)
    return out


def mark_live_run(phases: list[PhaseFacts], run: LastRun | None) -> None:
    """Set `in_run` on the phases a live sync (`run` running) has no row for yet: the sync fetches
    every API phase at once and loads them in order (netops/pipeline/stable/sync.py, _Prefetch),
    so such a phase is being fetched, not done. A `--phase` run that skips a phase marks it too:
    bookkeeping does not say which phases a run selected."""
    if run is None or run.status != "running" or not run.run_id:
        return
    sources = {s.name: s.source for s in catalog.STABLE}
    for p in phases:
        if p.run_id != run.run_id and p.phase in sources:
            fetched = isinstance(sources[p.phase], (catalog.Single, catalog.Listing))
            p.in_run = "fetching" if fetched else "queued"


@dataclass
class LastRun:
    run_id: str | None = None
    status: str | None = None  # running | success | failed | interrupted
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    phases: int = 0


def last_run(cur: Any, lock_held: bool | None = None) -> LastRun:
    """The most recent `netops sync` (all its phases, grouped by run_id). A run whose process is
    gone (see DEAD_RUN_NOTE) is `interrupted`, with no duration: it never fires sync_duration."""
    r = monitor_facts.last_run_row(cur)
    if not r:
        return LastRun()
    run = LastRun(*r)
    if run.status == "running" and not (monitor_facts.sync_lock_held(cur) if lock_held is None else lock_held):
        run.status, run.duration_seconds = "interrupted", None
    return run


# --- files -----------------------------------------------------------------------------------

def dir_bytes(path: Path, max_entries: int = 200_000) -> int:
    """Bytes used by regular files under `path` (not following symlinks); 0 when absent.

    Bounded so a pathological tree cannot make `status` slow; a PostgreSQL data dir with
    millions of rows is a few thousand files.
    """
    total = 0
    seen = 0
    stack = [str(path)]
    while stack and seen < max_entries:
        top = stack.pop()
        try:
            with os.scandir(top) as it:
                for entry in it:
                    seen += 1
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


@dataclass
class DiskFacts:
    """Space used under a directory and free on its filesystem."""

    path: str
    exists: bool
    used_bytes: int
    free_bytes: int
    total_bytes: int
    free_percent: float | None

    @property
    def free_ratio(self) -> float | None:
        return round(self.free_bytes / self.total_bytes, 4) if self.total_bytes else None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def disk_facts(path: Path) -> DiskFacts:
    """Space used under `path` and free on its filesystem (nearest existing parent if absent)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return DiskFacts(
        path=str(path),
        exists=Path(path).exists(),
        used_bytes=dir_bytes(Path(path)),
        free_bytes=usage.free,
        total_bytes=usage.total,
        free_percent=round(100.0 * usage.free / usage.total, 1) if usage.total else None,
    )


@dataclass
class TokenFacts:
    present: bool = False
    ttl_seconds: int | None = None
    expires_at: datetime | None = None
    secret_valid_until: datetime | None = None
    error: str | None = None
    refused_at: datetime | None = None  # the API answered 401 to it (netops/api/auth.py marks it)
    obtained_at: datetime | None = None  # when this box stored it (a refresh that worked)

    @property
    def usable(self) -> bool:
        """Present, ours, unexpired and not refused by the API."""
        return not (self.error or not self.present or self.refused_at is not None
                    or (self.ttl_seconds is not None and self.ttl_seconds <= 0))


@dataclass
class TokenStore:
    """The default key's token file as read once per evaluation (token facts and key rows)."""

    path: Path
    exists: bool = False
    data: dict[str, Any] | None = None  # the parsed store (None: absent or unreadable)
    error: str | None = None            # why it could not be parsed


def read_token_store(settings: Settings) -> TokenStore:
    path = settings.token_file
    if not path.exists():
        return TokenStore(path)
    try:
        data = json.loads(path.read_text())
        float(data["expires_at"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return TokenStore(path, True, None, f"{path}: unreadable token store ({type(exc).__name__})")
    return TokenStore(path, True, data)


def token_facts(settings: Settings, now: float | None = None, store: TokenStore | None = None) -> TokenFacts:
    """Read the token store directly (docs/CONTRACTS.md shape); a view must not refresh it.
    `store`: the file as already read (read_token_store), so an evaluation reads it once."""
    now = time.time() if now is None else now
    store = store if store is not None else read_token_store(settings)
    if not store.exists:
        return TokenFacts()
    if store.data is None:
        return TokenFacts(present=False, error=store.error)
    data = store.data
    expires = float(data["expires_at"])
    foreign = None
    if data.get("api_url") and data.get("api_url") != settings.api_url:
        foreign = (f"the stored token is for {data.get('api_url')}, not NETOPS_API_URL={settings.api_url} "
                   "(this configuration has no token; `netops token status` says none)")
    else:
        fp = _configured_fingerprint(settings)
        if fp is not None and data.get("credential_fp") != fp:
            foreign = ("the stored token was obtained with other credentials than the configured "
                       "NETOPS_CLIENT_ID/NETOPS_CLIENT_SECRET")
    svu = data.get("secret_valid_until")
    refused = data.get("refused_at")
    obtained = data.get("obtained_at")
    return TokenFacts(
        present=True,
        ttl_seconds=int(expires - now),
        expires_at=datetime.fromtimestamp(expires, timezone.utc),
        secret_valid_until=datetime.fromtimestamp(float(svu), timezone.utc) if svu else None,
        refused_at=datetime.fromtimestamp(float(refused), timezone.utc) if refused else None,
        obtained_at=datetime.fromtimestamp(float(obtained), timezone.utc) if obtained else None,
        error=foreign,
    )


def _configured_fingerprint(settings: Settings) -> str | None:
    """The configured credentials' fingerprint; None when they are not (all) configured: a
    monitoring command may run without them, and then cannot compare."""
    from netops.api.token_store import credential_fingerprint

    try:
        client_id, secret = settings.require_credentials()
    except ConfigError:
        return None
    return credential_fingerprint(settings.api_url, client_id, secret)


# --- application keys ------------------------------------------------------------------------

@dataclass
class KeyRow:
    """One configured application key as the views show it, or (`error`) why the keys could not
    be read. Counts are None when the database is down: unknown, never a reassuring 0."""

    label: str
    client_id: str = ""
    token_ttl_seconds: int | None = None
    calls_last_second: int | None = None
    per_second: float = 0.0
    calls_last_hour: int | None = None
    per_hour: int = 0
    rate_limited_last_hour: int | None = None
    blocked_until: str | None = None
    set_aside: bool = False
    set_aside_reason: str | None = None
    set_aside_at: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"label": self.label, "error": self.error}
        doc = asdict(self)
        del doc["error"]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> KeyRow:
        return cls(**doc)


def key_rows(settings: Settings, cur: Any | None, now: float | None = None,
             stores: dict[Path, Any] | None = None) -> list[KeyRow]:
    """One row per configured key for `netops status`, the metrics and the dashboard.

    label, client id, token TTL (its own token file; None when none stored), calls in the last
    second and hour against the key's limits (the stricter of the configured budget and the
    API's headers), 429s this hour, a 429 block in force, and whether it is set aside (its
    secret refused). `cur` None (database down): only what the files tell. Never calls the API.
    `stores`: token files the caller has read already (path -> parsed store), not read again.
    The keys are the ones read when the settings were built (settings.keys), like every view's.
    """
    if settings.keys.problems:
        return [KeyRow("?", error=line) for line in settings.keys.problems]
    keys = settings.keys.keys
    windows = _key_windows(cur)
    now = time.time() if now is None else now
    return [_key_row(settings, k, windows.get(k.label, {}), cur is not None, now, stores) for k in keys]


def _key_windows(cur: Any | None) -> dict[str, dict[str, Any]]:
    if cur is None:
        return {}
    try:
        return ratelimit.key_windows(cur)
    except Exception:  # noqa: BLE001 - a database not migrated yet has no key windows to show
        cur.connection.rollback()
        return {}


def _key_row(settings: Settings, k: Any, w: dict[str, Any], db_known: bool, now: float,
             stores: dict[Path, Any] | None) -> KeyRow:
    from netops.api.token_store import credential_fingerprint, load_token_file, token_ttl

    pre = {"stored": stores[k.token_file]} if stores and k.token_file in stores else {}
    tok = load_token_file(k.token_file, settings.api_url, k.client_id,
                          credential_fingerprint(settings.api_url, k.client_id, k.secret), **pre)
    per_s = min(k.per_second, w.get("header_per_second") or k.per_second)
    per_h = min(k.per_hour, w.get("header_per_hour") or k.per_hour)
    aside = bool(w.get("set_aside_fingerprint")) and w.get("set_aside_fingerprint") == k.fingerprint
    return KeyRow(
        label=k.label, client_id=k.client_id, token_ttl_seconds=token_ttl(tok, now),
        calls_last_second=w.get("calls_last_second", 0) if db_known else None, per_second=per_s,
        calls_last_hour=w.get("calls_last_hour", 0) if db_known else None, per_hour=per_h,
        rate_limited_last_hour=w.get("rate_limited_last_hour", 0) if db_known else None,
        blocked_until=w["blocked_until"].isoformat() if w.get("blocked_until") else None,
        set_aside=aside, set_aside_reason=w.get("set_aside_reason") if aside else None,
        set_aside_at=w["set_aside_at"].isoformat() if aside and w.get("set_aside_at") else None,
    )
