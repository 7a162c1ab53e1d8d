"""The SQL behind the shared API budget (netops/api/limiter.py explains it): claim a slot, report a 429, adopt the
API's limits, set a refused key aside, and read each key's windows for status and metrics.

Kept here (not in netops/api/limiter.py) so every statement that touches netops.api_keys and
netops.api_slots is in one file; the limiter only decides when to ask and how long to sleep.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Claim:
    """What netops.claim_api_slot() answered: state 'claimed' | 'wait' | 'blocked' | 'set_aside'."""

    state: str
    wait_seconds: float
    slot_id: int | None = None  # set when claimed: close_slot() moves it to where the API counted it


def connect_limiter(dsn: str) -> Any:
    """The limiter's own autocommit connection. Claims are many and tiny, so they skip the wait
    for the WAL flush (synchronous_commit off): a database crash can forget the last few claims
    (well under a second's worth), never corrupt the table."""
    from netops.db import connect

    conn = connect(dsn, autocommit=True, application_name="netops-limiter")
    with conn.cursor() as cur:
        cur.execute("SET synchronous_commit TO off")
    return conn


def claim(cur: Any, label: str, client_id: str, fingerprint: str, per_second: float, per_hour: int,
          margin: float) -> Claim:
    """One round trip: the row lock, both windows and the insert happen inside the function."""
    cur.execute("SELECT state, wait_seconds, slot_id FROM netops.claim_api_slot(%s, %s, %s, %s, %s, %s)",
                (label, client_id, fingerprint, float(per_second), int(per_hour), float(margin)))
    state, wait, slot_id = cur.fetchone()
    return Claim(str(state), float(wait or 0.0), slot_id)


#: How fast a key's learned spread and 429 margin fade, per closed call.
SPREAD_DECAY = 0.9
EXTRA_MARGIN_DECAY = 0.995


#: How many more calls the API may count in its window than the windows here hold before the key's
#: window widens: a slot estimated a little late (the safe side) shifts the count here by one or
#: two without any risk of a 429, and must not cost budget.
WINDOW_TOLERANCE = 2

#: Answers folded into a key's round-trip floor before it is used (until then a slot counts at
#: its answer's headers: the latest moment the API can have counted it).
FLOOR_SAMPLES = 10


def close_slot(cur: Any, label: str, slot_id: int, since_headers: float, rtt: float | None,
               api_in_window: int | None = None) -> float | None:
    """The answer to a claimed slot came back: move the slot to where the API counted the call,
    and learn from it for every process. One round trip.

    - `since_headers`: seconds since the answer's headers arrived; `rtt`: claim to headers (None:
      no answer — the slot then counts at this very moment, the latest the API can have seen it).
    - The slot moves to headers − the key's round-trip floor (the fastest answer any process has
      had: the API's own answering time; subtracted once FLOOR_SAMPLES answers are in), never
      before its claim, and never later than its claim + the key's spread: while in flight every
      process already counted it there. rtt − the fastest answer so far (this one included) is
      how late this call reached the API; it feeds the key's spread, which calls still in flight
      are assumed to take. The whole round trip is never counted as lateness, even before the
      floor is trusted: that would hold every call in flight a round trip late in every window.
    - `api_in_window`: calls the API had in its one-second window when it counted this one
      (X-Secondly-RateLimit-Limit − Remaining). More than the slots here in the second before
      this one (by more than WINDOW_TOLERANCE) means the arrival estimates run early: the key's
      window widens by 10 ms for every process, before that becomes a 429. Otherwise the
      widening fades.

    Returns the key's spread after this answer (None when the slot was already closed or gone):
    the limiter uses it to tell a claim that went out too late (see `release_slot`).
    """
    answered = rtt is not None
    cur.execute(
        "WITH k AS (SELECT CASE WHEN %(answered)s AND rtt_samples >= %(samples)s "
        "  THEN least(rtt_floor, %(rtt)s) ELSE 0 END AS f, "
        "  greatest(CASE WHEN %(answered)s THEN %(rtt)s - least(coalesce(rtt_floor, %(rtt)s), %(rtt)s) "
        "  ELSE 0 END, spread_seconds * %(sdecay)s) AS sp "
        "  FROM netops.api_keys WHERE label = %(label)s), "
        "s AS (UPDATE netops.api_slots SET done = true, at = greatest(at, CASE WHEN %(answered)s "
        "  THEN least(clock_timestamp() - make_interval(secs => %(since)s + coalesce((SELECT f FROM k), 0)), "
        "             at + make_interval(secs => coalesce((SELECT sp FROM k), 0))) "
        "  ELSE clock_timestamp() - make_interval(secs => %(since)s) END) "
        "  WHERE id = %(id)s AND NOT done RETURNING at), "
        "ours AS (SELECT count(*) AS n FROM netops.api_slots o, s WHERE o.key_label = %(label)s "
        "  AND o.at > s.at - interval '1 second' AND o.at <= s.at + interval '20 milliseconds') "
        "UPDATE netops.api_keys SET "
        "spread_seconds = (SELECT sp FROM k), "
        "rtt_floor = CASE WHEN %(answered)s THEN least(coalesce(rtt_floor, %(rtt)s), %(rtt)s) ELSE rtt_floor END, "
        "rtt_samples = rtt_samples + CASE WHEN %(answered)s THEN 1 ELSE 0 END, "
        "extra_margin = CASE WHEN %(in_window)s::integer > (SELECT n FROM ours) + %(tolerance)s "
        "  THEN least(0.5, extra_margin + 0.01) "
        "  WHEN extra_margin < 0.001 THEN 0 ELSE extra_margin * %(mdecay)s END "
        "WHERE label = %(label)s AND EXISTS (SELECT 1 FROM s) RETURNING spread_seconds",
        {"answered": answered, "samples": FLOOR_SAMPLES, "rtt": max(0.0, float(rtt or 0.0)),
         "since": max(0.0, float(since_headers)), "id": int(slot_id), "label": label,
         "sdecay": SPREAD_DECAY, "mdecay": EXTRA_MARGIN_DECAY, "in_window": api_in_window,
         "tolerance": WINDOW_TOLERANCE})
    row = cur.fetchone()
    return None if row is None else float(row[0])


def release_slot(cur: Any, label: str, slot_id: int) -> None:
    """Give back a claimed slot that was never sent (its call would have gone out later than the
    windows assume: the caller claims a new one). Removing a slot can only make room, so it never
    breaks either window. When it was the key's latest slot, the key's pacing moment goes back to
    the one before: no call went out at the released moment, and the reclaim that follows must
    not wait a whole interval after it."""
    cur.execute("WITH d AS (DELETE FROM netops.api_slots WHERE id = %(id)s AND NOT done RETURNING at) "
                "UPDATE netops.api_keys SET slots_kept = greatest(0, slots_kept - (SELECT count(*) FROM d)), "
                "last_slot_at = CASE WHEN last_slot_at = (SELECT at FROM d) THEN (SELECT max(s.at) "
                "  FROM netops.api_slots s WHERE s.key_label = %(label)s AND s.id <> %(id)s) ELSE last_slot_at END "
                "WHERE label = %(label)s AND EXISTS (SELECT 1 FROM d)", {"id": int(slot_id), "label": label})


def block(cur: Any, label: str, client_id: str, seconds: float, reason: str) -> None:
    """After a 429: no process claims a slot of this key for `seconds` (by the DB's clock), and
    every process's window on this key widens by 50 ms (up to 0.5 s; it fades as calls close) —
    the 429 says the arrival estimate fell short, so the whole key backs off, not only this call."""
    cur.execute(
        "INSERT INTO netops.api_keys (label, client_id, blocked_until, blocked_reason, extra_margin) "
        "VALUES (%s, %s, clock_timestamp() + make_interval(secs => %s), %s, 0.05) "
        "ON CONFLICT (label) DO UPDATE SET blocked_until = greatest(netops.api_keys.blocked_until, "
        "EXCLUDED.blocked_until), blocked_reason = EXCLUDED.blocked_reason, "
        "extra_margin = least(0.5, netops.api_keys.extra_margin + 0.05), updated_at = now()",
        (label, client_id, float(seconds), reason))


def adopt_limits(cur: Any, label: str, client_id: str, per_second: int | None, per_hour: int | None) -> None:
    """Store the limits the API's headers announced (the claim takes the stricter of these and
    the configured budget)."""
    cur.execute(
        "INSERT INTO netops.api_keys (label, client_id, header_per_second, header_per_hour) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (label) DO UPDATE SET header_per_second = coalesce(EXCLUDED.header_per_second, "
        "netops.api_keys.header_per_second), header_per_hour = coalesce(EXCLUDED.header_per_hour, "
        "netops.api_keys.header_per_hour), updated_at = now()",
        (label, client_id, per_second, per_hour))


def set_aside(cur: Any, label: str, client_id: str, fingerprint: str, reason: str) -> None:
    """The API refused this key's secret: every process skips the key until its secret changes."""
    cur.execute(
        "INSERT INTO netops.api_keys (label, client_id, set_aside_at, set_aside_reason, set_aside_fingerprint) "
        "VALUES (%s, %s, now(), %s, %s) ON CONFLICT (label) DO UPDATE SET client_id = EXCLUDED.client_id, "
        "set_aside_at = now(), set_aside_reason = EXCLUDED.set_aside_reason, "
        "set_aside_fingerprint = EXCLUDED.set_aside_fingerprint, updated_at = now()",
        (label, client_id, reason, fingerprint))


def is_set_aside(cur: Any, label: str, fingerprint: str) -> str | None:
    """The recorded reason when this very secret of the key was refused, else None."""
    cur.execute("SELECT set_aside_reason FROM netops.api_keys WHERE label = %s AND set_aside_fingerprint = %s",
                (label, fingerprint))
    row = cur.fetchone()
    return str(row[0] or "refused") if row else None


def key_windows(cur: Any) -> dict[str, dict[str, Any]]:
    """Per key label: slots in the last second and hour, limits from headers, block and set-aside
    state, 429s in the last hour (for status, metrics, the dashboard)."""
    cur.execute(
        "SELECT k.label, k.client_id, k.header_per_second, k.header_per_hour, "
        "  (SELECT count(*) FROM netops.api_slots s WHERE s.key_label = k.label "
        "    AND s.at > clock_timestamp() - interval '1 second'), "
        "  (SELECT count(*) FROM netops.api_slots s WHERE s.key_label = k.label "
        "    AND s.at > clock_timestamp() - interval '1 hour'), "
        "  CASE WHEN k.blocked_until > clock_timestamp() THEN k.blocked_until END, k.blocked_reason, "
        "  k.set_aside_at, k.set_aside_reason, k.set_aside_fingerprint, k.last_slot_at, "
        "  (SELECT count(*) FROM netops.api_calls c WHERE c.key_label = k.label AND c.status = 429 "
        "    AND c.at > now() - interval '1 hour') "
        "FROM netops.api_keys k ORDER BY k.label")
    out: dict[str, dict[str, Any]] = {}
    for (label, cid, hps, hph, n_s, n_h, blocked, blocked_reason, aside_at, aside_reason, aside_fp,
         last, n429) in cur.fetchall():
        out[label] = {"client_id": cid, "header_per_second": hps, "header_per_hour": hph,
                      "calls_last_second": int(n_s), "calls_last_hour": int(n_h),
                      "blocked_until": blocked, "blocked_reason": blocked_reason,
                      "set_aside_at": aside_at, "set_aside_reason": aside_reason,
                      "set_aside_fingerprint": aside_fp, "last_call_at": last,
                      "rate_limited_last_hour": int(n429)}
    return out


def record_wait(cur: Any, component: str, labels: list[str], per_hour: int, reason: str,
                next_in: float) -> tuple[int, int]:
    """This limiter connection waits for a slot (migration 019): upsert its row (rows of
    connections gone are removed on the way) and return (slots in the last hour on `labels`,
    their hourly budget: the configured one, or the API's when its headers said less)."""
    cur.execute("DELETE FROM netops.api_waits w WHERE NOT EXISTS "
                "(SELECT 1 FROM pg_stat_activity a WHERE a.pid = w.backend_pid)")
    cur.execute(
        "WITH u AS (SELECT count(*) AS n FROM netops.api_slots WHERE key_label = ANY(%(labels)s) "
        "  AND at > clock_timestamp() - interval '1 hour'), "
        "b AS (SELECT coalesce(sum(least(coalesce(k.header_per_hour, %(per_key)s), %(per_key)s)), 0) AS n "
        "  FROM netops.api_keys k WHERE k.label = ANY(%(labels)s)) "
        "INSERT INTO netops.api_waits (backend_pid, pid, host, component, keys, reason, used, budget, "
        "  next_slot_at) SELECT pg_backend_pid(), %(pid)s, %(host)s, %(component)s, %(labels)s, %(reason)s, "
        "  u.n, CASE WHEN b.n > 0 THEN b.n ELSE %(per_hour)s END, "
        "  clock_timestamp() + make_interval(secs => %(next_in)s) FROM u, b "
        "ON CONFLICT (backend_pid) DO UPDATE SET component = EXCLUDED.component, keys = EXCLUDED.keys, "
        "  reason = EXCLUDED.reason, used = EXCLUDED.used, budget = EXCLUDED.budget, "
        "  next_slot_at = EXCLUDED.next_slot_at, updated_at = now() RETURNING used, budget",
        {"labels": list(labels), "per_key": int(per_hour // max(1, len(labels))), "per_hour": int(per_hour),
         "pid": os.getpid(), "host": socket.gethostname(), "component": component, "reason": reason,
         "next_in": max(0.0, float(next_in))})
    used, budget = cur.fetchone()
    return int(used), int(budget)


def end_wait(cur: Any) -> None:
    """This limiter connection has its slot: its wait row goes."""
    cur.execute("DELETE FROM netops.api_waits WHERE backend_pid = pg_backend_pid()")


@dataclass(frozen=True)
class WaitRow:
    """One process waiting for the API budget now (status, the budget rule)."""

    component: str
    pid: int
    host: str
    reason: str
    used: int | None
    budget: int | None
    waited_seconds: float
    next_slot_in: float


def budget_waits(cur: Any) -> list[WaitRow]:
    """The live waits (their limiter connection still open), longest first."""
    cur.execute(
        "SELECT component, pid, host, reason, used, budget, extract(epoch FROM clock_timestamp() - since), "
        "  greatest(0, extract(epoch FROM next_slot_at - clock_timestamp())) FROM netops.api_waits w "
        "WHERE EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = w.backend_pid) ORDER BY since")
    return [WaitRow(str(c), int(p), str(h), str(r), u, b, float(w), float(n))
            for c, p, h, r, u, b, w, n in cur.fetchall()]
