"""How the monitor's views write numbers for a person: sizes, ages, rule values, key lines."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netops.monitor.facts import KeyRow


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = abs(seconds)
    if s < 90:
        out = f"{s:.0f}s"
    elif s < 90 * 60:
        out = f"{s / 60:.0f}m"
    elif s < 48 * 3600:
        out = f"{s / 3600:.1f}h"
    else:
        out = f"{s / 86400:.1f}d"
    return out if seconds >= 0 else "-" + out


def fmt(value: float | None, unit: str) -> str:
    """A rule's value or threshold in its unit: `unknown`, `never` (infinitely stale), sizes."""
    if value is None:
        return "unknown"
    if value == float("inf"):
        return "never"
    if unit == "bytes":
        return human_bytes(value)
    return f"{value:g}" if value == int(value) else f"{value:.2f}"


def render_key_line(row: KeyRow) -> str:
    """`key default (u-s4t2…): token 6,840s · 1/2 this second · 311/1,200 this hour` (one line)."""
    if row.error is not None:
        return f"keys: {row.error}"
    ttl = row.token_ttl_seconds
    state = ""
    if row.set_aside:
        state = f" · SET ASIDE ({row.set_aside_reason})"
    elif row.blocked_until:
        state = f" · blocked by a 429 until {row.blocked_until}"
    head = f"key {row.label} ({row.client_id[:12]}): token {'none' if ttl is None else f'{ttl:,}s'}"
    if row.calls_last_hour is None:
        return f"{head} · calls unknown (database unreachable){state}"
    return (f"{head} · {row.calls_last_second}/{row.per_second:g} this second · "
            f"{row.calls_last_hour:,}/{row.per_hour:,} this hour · {row.rate_limited_last_hour} x 429{state}")
