"""The application keys as the API layer and its views use them.

The keys are read and checked once, when the settings are built (netops/credentials.py, the
parsing; `settings.keys`, `settings.budget`, `settings.require_keys()`). What is left here are the
per-key rows `netops status`, the metrics and the dashboard show; the other names are kept for
the callers that still import them from here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from netops.config import ConfigError, Settings
from netops.credentials import DEFAULT_LABEL, ApiKey, Budget, check_private

__all__ = ["DEFAULT_LABEL", "ApiKey", "Budget", "Configured", "budget", "check_private", "key_rows",
           "load_keys", "read_keys", "render_key_line"]


def load_keys(settings: Settings, required: bool = True) -> list[ApiKey]:
    """settings.require_keys(): the keys read when the settings were built, or ConfigError
    naming every bad one (one line each)."""
    return settings.require_keys(required)


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
    """settings.budget, or the budget of `keys` (what read_keys() returned): one key's
    configured budget when there is none or they cannot be read."""
    if keys is None:
        return settings.budget
    usable = [] if isinstance(keys, ConfigError) else keys
    return Budget.of(usable, settings.rate_per_second, settings.rate_per_hour)


def key_rows(settings: Settings, cur: Any | None, now: float | None = None,
             stores: dict[Path, Any] | None = None, keys: Configured | None = None) -> list[dict[str, Any]]:
    """One row per configured key for `netops status`, the metrics and the dashboard.

    label, client id, token TTL (its own token file; None when none stored), calls in the last
    second and hour against the key's limits (the stricter of the configured budget and the
    API's headers), 429s this hour, a 429 block in force, and whether it is set aside (its
    secret refused). `cur` None (database down): only what the files tell. Never calls the API.
    `stores`: token files the caller has read already (path -> read_store_file), not read again.
    `keys`: what read_keys() returned already (an evaluation reads the keys once; None: read now).
    """
    from netops.api.token_store import credential_fingerprint, load_token_file, token_ttl

    keys = read_keys(settings) if keys is None else keys
    if isinstance(keys, ConfigError):
        return [{"label": "?", "error": line} for line in str(keys).splitlines()]
    windows: dict[str, dict[str, Any]] = {}
    if cur is not None:
        from netops.db.ratelimit import key_windows

        try:
            windows = key_windows(cur)
        except Exception:  # noqa: BLE001 - before migration 006 there is nothing to show
            cur.connection.rollback()
            windows = {}
    now = time.time() if now is None else now
    rows = []
    for k in keys:
        w = windows.get(k.label, {})
        pre = {"stored": stores[k.token_file]} if stores and k.token_file in stores else {}
        tok = load_token_file(k.token_file, settings.api_url, k.client_id,
                              credential_fingerprint(settings.api_url, k.client_id, k.secret), **pre)
        per_s = min(k.per_second, w.get("header_per_second") or k.per_second)
        per_h = min(k.per_hour, w.get("header_per_hour") or k.per_hour)
        aside = bool(w.get("set_aside_fingerprint")) and w.get("set_aside_fingerprint") == k.fingerprint
        rows.append({
            "label": k.label, "client_id": k.client_id, "token_ttl_seconds": token_ttl(tok, now),
            # database down: the counts are unknown (None), never a reassuring 0
            "calls_last_second": w.get("calls_last_second", 0) if cur is not None else None, "per_second": per_s,
            "calls_last_hour": w.get("calls_last_hour", 0) if cur is not None else None, "per_hour": per_h,
            "rate_limited_last_hour": w.get("rate_limited_last_hour", 0) if cur is not None else None,
            "blocked_until": w["blocked_until"].isoformat() if w.get("blocked_until") else None,
            "set_aside": aside, "set_aside_reason": w.get("set_aside_reason") if aside else None,
            "set_aside_at": w["set_aside_at"].isoformat() if aside and w.get("set_aside_at") else None,
        })
    return rows


def render_key_line(row: dict[str, Any]) -> str:
    """`key default (u-s4t2…): token 6,840s · 1/2 this second · 311/1,200 this hour` (one line)."""
    if "error" in row:
        return f"keys: {row['error']}"
    ttl = row["token_ttl_seconds"]
    state = ""
    if row["set_aside"]:
        state = f" · SET ASIDE ({row['set_aside_reason']})"
    elif row["blocked_until"]:
        state = f" · blocked by a 429 until {row['blocked_until']}"
    head = f"key {row['label']} ({row['client_id'][:12]}): token {'none' if ttl is None else f'{ttl:,}s'}"
    if row["calls_last_hour"] is None:
        return f"{head} · calls unknown (database unreachable){state}"
    return (f"{head} · {row['calls_last_second']}/{row['per_second']:g} this second · "
            f"{row['calls_last_hour']:,}/{row['per_hour']:,} this hour · {row['rate_limited_last_hour']} x 429{state}")
