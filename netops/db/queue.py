"""The durable backlog queue in PostgreSQL (`netops.backlog_items`): enqueue, claim, finish.

Why a table and not a broker: the mirror already lives in PostgreSQL, so an item can be marked done
in the *same transaction* that loads its row — a crash can then never leave a row loaded but its
item pending (or the reverse). Claims use `FOR UPDATE SKIP LOCKED`, so any number of workers on any
number of hosts take disjoint items without coordinating.

Life of an item::

    pending --claim--> processing --load+commit--> done
       ^                   |  \\--error, attempts < max--> pending (available_at = now + backoff)
       |                   |   \\-error, attempts = max--> failed (last_error kept)
       |                   \\--worker died: started_at older than the visibility timeout--> reclaimed
       \\--new work for the same entity while processing: version bumps, the worker re-queues it

Invariant (partial unique index): at most one pending/processing item per (resource, entity_id);
new work for an entity already queued merges into its item instead of duplicating it.
"""

from __future__ import annotations

import json
import os
import select
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from psycopg2.extras import execute_values

from netops.catalog import BACKLOG_BY_RESOURCE, claim_priority
from netops.db import marks
from netops.mapping import parse_ts

MAX_DEFERRALS = 10
#: How long a parent fetch requested by a worker (a row's user is not mirrored yet) waits, while a
#: detect pass is walking the parent's listing (marks.detecting), before it may be fetched by id:
#: the pass (the initial load, or detect and `run --loop` workers started together) usually
#: queues the parent with its payload within that time, merging into the request and making it
#: due at once — at no call. When the pass ends, what is still waiting is made due
#: (`release_parent_requests`); with no pass running, the fetch is due at once.
PARENT_FETCH_DELAY = 10.0
#: The channel migration 013's trigger notifies when a statement leaves items pending and due.
WAKE_CHANNEL = "netops_backlog"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class NewItem:
    """Work to enqueue. `payload` None means "fetch this entity by id"."""

    resource: str
    entity_id: int
    action: str = "upsert"
    payload: dict[str, Any] | None = None
    source_updated_at: str | None = None
    fetch_cost: float = 0.0
    reason: str = "detect"
    delay: float = 0.0       # seconds before it may be claimed (PARENT_FETCH_DELAY for parent requests)


@dataclass
class Item:
    """A claimed item, as the worker sees it."""

    id: int
    resource: str
    entity_id: int
    action: str
    payload: dict[str, Any] | None
    version: int
    attempts: int
    fetch_cost: float
    deferrals: int
    reason: str
    enqueued_at: datetime
    # filled by the worker
    fetched: dict[str, Any] | None = None
    error: str | None = None
    outcome: str | None = None
    hold: str | None = None          # why the item was held back (missing backlog parent)
    extra: dict[str, Any] = field(default_factory=dict)


def listen(conn: Any) -> None:
    """Subscribe an autocommit connection to the queue's wake channel (migration 013)."""
    with conn.cursor() as cur:
        cur.execute(f"LISTEN {WAKE_CHANNEL}")


def wait_for_wake(conn: Any, seconds: float) -> bool:
    """Block up to `seconds` for a wake notification on a `listen()`ed connection; True when one
    came (all pending ones are consumed: one wake is enough for any number of enqueues)."""
    deadline = time.monotonic() + seconds
    while True:
        conn.poll()
        if conn.notifies:
            conn.notifies.clear()
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        select.select([conn], [], [], left)


def worker_name() -> str:
    """host:pid — enough to tell which worker holds an item when several share the queue."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _stamp(it: NewItem) -> datetime:
    """An item's payload time for ordering (offsets differ between rows; unknown sorts first)."""
    try:
        return parse_ts(it.source_updated_at) if it.source_updated_at else _EPOCH
    except ValueError:
        return _EPOCH


def _ts(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_ENQUEUE = (
    "INSERT INTO netops.backlog_items AS b (resource, entity_id, action, payload, source_updated_at,"
    " fetch_cost, reason, available_at)"
    " SELECT v.resource, v.entity_id, v.action, v.payload::jsonb, v.sua::timestamptz, v.cost, v.reason,"
    "        now() + make_interval(secs => v.delay)"
    " FROM (VALUES %s) AS v (resource, entity_id, action, payload, sua, cost, reason, delay)"
    " ON CONFLICT (resource, entity_id) WHERE state IN ('pending', 'processing') DO UPDATE SET"
    "   action = EXCLUDED.action,"
    # work that needs no fetch (a payload, a delete) is due at once, even if it merges into
    # a delayed parent request; a payload-less request never delays what is queued
    "   available_at = CASE WHEN EXCLUDED.payload IS NOT NULL OR EXCLUDED.action = 'delete'"
    "     THEN least(b.available_at, EXCLUDED.available_at) ELSE b.available_at END,"
    "   payload = CASE"
    "     WHEN EXCLUDED.action = 'delete' THEN NULL"
    "     WHEN EXCLUDED.payload IS NULL THEN b.payload"
    "     WHEN b.payload IS NULL OR b.source_updated_at IS NULL"
    "          OR EXCLUDED.source_updated_at >= b.source_updated_at THEN EXCLUDED.payload"
    "     ELSE b.payload END,"
    "   source_updated_at = CASE"
    "     WHEN EXCLUDED.payload IS NULL THEN b.source_updated_at"
    "     ELSE GREATEST(b.source_updated_at, EXCLUDED.source_updated_at) END,"
    "   fetch_cost = b.fetch_cost + EXCLUDED.fetch_cost,"
    "   version = b.version + 1"
)


def _newest(items: Iterable[NewItem]) -> dict[tuple[str, int], NewItem]:
    """One item per (resource, entity), the newest payload winning; their detector costs summed."""
    latest: dict[tuple[str, int], NewItem] = {}
    for it in items:
        key = (it.resource, int(it.entity_id))
        prev = latest.get(key)
        if prev is None or _stamp(it) >= _stamp(prev):
            if prev is not None:
                it.fetch_cost += prev.fetch_cost
            latest[key] = it
        else:
            prev.fetch_cost += it.fetch_cost
    return latest


def enqueue(cur: Any, items: Iterable[NewItem]) -> int:
    """Insert or merge work items; returns how many rows were inserted or merged.

    Duplicates (same resource and entity) collapse: the newest payload wins (by `updated_at`), a
    delete wins over an older upsert, and `version` bumps so a worker holding the item re-queues
    it. (The detector filters rows the mirror already has first: see `not_current`.)
    """
    latest = _newest(items)
    total = 0
    by_resource: dict[str, list[NewItem]] = {}
    for it in latest.values():
        by_resource.setdefault(it.resource, []).append(it)
    for group in by_resource.values():
        rows = [
            (it.resource, int(it.entity_id), it.action,
             json.dumps(it.payload) if it.payload is not None else None,
             _ts(it.source_updated_at), float(it.fetch_cost), it.reason, float(it.delay))
            for it in group
        ]
        execute_values(
            cur, _ENQUEUE, rows,
            template="(%s, %s::bigint, %s, %s, %s, %s::float8, %s, %s::float8)", page_size=max(1, len(rows)),
        )
        total += cur.rowcount
    return total


def wake_children(cur: Any, resource: str, ids: Sequence[int]) -> int:
    """Rows of `resource` with these ids were just loaded (in the caller's transaction): the items
    held waiting for one of them are due now (migration 013), not at the end of their backoff."""
    if not ids:
        return 0
    cur.execute("UPDATE netops.backlog_items SET available_at = now() WHERE parent_resource = %s "
                "AND parent_id = ANY(%s) AND state = 'pending' AND available_at > now()",
                (resource, [int(i) for i in ids]))
    return int(cur.rowcount)


def release_parent_requests(cur: Any, resource: str) -> int:
    """A detect pass over `resource` has ended: the parent requests still waiting for it
    (PARENT_FETCH_DELAY) are due now — what the pass did not deliver has to be fetched by id."""
    cur.execute("UPDATE netops.backlog_items SET available_at = now() WHERE resource = %s AND state = 'pending' "
                "AND reason = 'parent' AND payload IS NULL AND available_at > now()", (resource,))
    return int(cur.rowcount)


def not_current(cur: Any, resource: str, items: list[NewItem]) -> list[NewItem]:
    """The items whose payload is newer than the mirrored row (or whose row is not mirrored).

    The detector's window overlap re-reads rows already loaded; filtering them here (rather than
    inside the INSERT) lets the detector charge its calls only to work that is really queued.
    """
    stamped = [it for it in items if it.action == "upsert" and it.source_updated_at]
    if not stamped:
        return list(items)
    table = BACKLOG_BY_RESOURCE[resource].name
    cur.execute(
        f"SELECT v.id FROM unnest(%s::bigint[], %s::timestamptz[]) AS v (id, sua) "
        f"JOIN public.{table} t ON t.id = v.id AND t.updated_at >= v.sua",
        ([int(it.entity_id) for it in stamped], [it.source_updated_at for it in stamped]),
    )
    current = {int(r[0]) for r in cur.fetchall()}
    stamped_refs = {id(it) for it in stamped}
    return [it for it in items if not (id(it) in stamped_refs and int(it.entity_id) in current)]


def claim(cur: Any, worker: str, limit: int, visibility_timeout: float) -> list[Item]:
    """Claim up to `limit` items (pending and due, or processing past the visibility timeout).

    The caller commits right after: a claim is durable, so a worker that dies leaves its items in
    `processing` until the timeout hands them to another worker. `attempts` counts claims, so an
    item that kills every worker that touches it still ends up failed.
    """
    returning = """
        RETURNING b.id, b.resource, b.entity_id, b.action, b.payload, b.version, b.attempts,
                  b.fetch_cost, b.deferrals, b.reason, b.enqueued_at"""
    # items of dead workers first (rare; own index), then due pending items in priority order
    # (index on priority, available_at, id): two statements keep each one an index scan.
    cur.execute(
        """
        WITH c AS (
            SELECT id FROM netops.backlog_items
             WHERE state = 'processing' AND started_at < now() - make_interval(secs => %s)
             ORDER BY started_at LIMIT %s FOR UPDATE SKIP LOCKED)
        UPDATE netops.backlog_items b
           SET attempts = b.attempts + 1, started_at = now(), finished_at = NULL, worker = %s
          FROM c WHERE b.id = c.id""" + returning,
        (float(visibility_timeout), int(limit), worker),
    )
    rows = cur.fetchall()
    if len(rows) < limit:
        cur.execute(
            """
            WITH c AS (
                SELECT id FROM netops.backlog_items
                 WHERE state = 'pending' AND available_at <= now()
                 ORDER BY priority, available_at, id LIMIT %s FOR UPDATE SKIP LOCKED)
            UPDATE netops.backlog_items b
               SET state = 'processing', attempts = b.attempts + 1, started_at = now(),
                   finished_at = NULL, worker = %s
              FROM c WHERE b.id = c.id""" + returning,
            (int(limit) - len(rows), worker),
        )
        rows += cur.fetchall()
    items = [Item(*row) for row in rows]
    items.sort(key=lambda i: (claim_priority(BACKLOG_BY_RESOURCE[i.resource]) if i.resource in BACKLOG_BY_RESOURCE else 1,
                              i.id))
    return items


#: one row per item: (id, version, fate, error, delay, outcome, parent_resource, parent_id)
_FINISH = """
    UPDATE netops.backlog_items b SET
        state = CASE
            WHEN v.fate = 'done' AND b.version <> v.version THEN 'pending'
            WHEN v.fate = 'done' THEN 'done'
            WHEN v.fate = 'failed' THEN 'failed'
            ELSE 'pending' END,
        finished_at = CASE WHEN v.fate = 'failed' OR (v.fate = 'done' AND b.version = v.version)
                           THEN now() END,
        available_at = CASE WHEN v.fate IN ('retry', 'held') THEN now() + make_interval(secs => v.delay)
                            ELSE now() END,
        -- a hold or a requeue for newer work is not a failed attempt
        attempts = CASE WHEN v.fate = 'held' OR (v.fate = 'done' AND b.version <> v.version)
                        THEN greatest(b.attempts - 1, 0) ELSE b.attempts END,
        deferrals = CASE WHEN v.fate = 'held' THEN b.deferrals + 1 ELSE b.deferrals END,
        last_error = CASE WHEN v.fate = 'done' THEN b.last_error ELSE v.error END,
        outcome = CASE WHEN v.fate = 'done' THEN v.outcome WHEN v.fate = 'held' THEN 'held'
                       ELSE b.outcome END,
        payload = CASE WHEN v.fate = 'done' AND b.version = v.version THEN NULL ELSE b.payload END,
        parent_resource = v.parent_resource,
        parent_id = v.parent_id
    FROM (VALUES {values}) AS v (id, version, fate, error, delay, outcome, parent_resource, parent_id)
    WHERE b.id = v.id AND b.state = 'processing' AND b.worker = %s
    RETURNING v.fate, b.state, b.fetch_cost
"""


def _fates(items: Sequence[Item], max_retries: int, retry_delay: float) -> list[tuple[Any, ...]]:
    """Each item's row for _FINISH: done, held (a backlog parent missing), retry or failed."""
    rows = []
    limit = max(1, int(max_retries))
    for it in items:
        if it.error is not None:
            fate = "failed" if it.attempts >= limit else "retry"
            delay = float(retry_delay) * (2 ** max(0, it.attempts - 1))
            rows.append((it.id, it.version, fate, it.error, delay, None, None, None))
        elif it.hold is not None:
            if it.deferrals + 1 >= MAX_DEFERRALS:
                rows.append((it.id, it.version, "failed",
                             f"{it.hold}; gave up after {MAX_DEFERRALS} waits", 0.0, None, None, None))
            else:
                # retried when its parent lands (wake_children), or on this timer if it never does
                parent = it.extra.get("parent") or (None, None)
                rows.append((it.id, it.version, "held", it.hold, 1.0 + it.deferrals, None, parent[0], parent[1]))
        else:
            rows.append((it.id, it.version, "done", None, 0.0, it.outcome, None, None))
    return rows


def finish(cur: Any, worker: str, items: Sequence[Item], max_retries: int, retry_delay: float) -> dict[str, float]:
    """Record each item's fate in the caller's transaction (the one that loaded its rows).

    - loaded/deleted/absent -> done (or back to pending when newer work merged in meanwhile)
    - held (backlog parent missing) -> pending again shortly, the attempt not counted
    - error -> pending with exponential backoff, or failed once attempts reach max_retries
    Only items this worker still holds are touched: one reclaimed by another worker after a
    visibility timeout belongs to that worker now. `done_cost` sums the detector calls
    (`fetch_cost`) of the items that ended done here: a requeued item's cost is counted once,
    when it is finally done, so rows per call are not understated.
    """
    counts: dict[str, float] = {"done": 0, "requeued": 0, "held": 0, "retry": 0, "failed": 0, "done_cost": 0.0}
    rows = _fates(items, max_retries, retry_delay)
    if not rows:
        return counts
    # execute_values cannot mix its %s with other parameters, so bind the worker name first.
    stmt = cur.mogrify(_FINISH, (worker,)).decode()
    execute_values(cur, stmt.replace("{values}", "%s"), rows,
                   template="(%s::bigint, %s::int, %s, %s, %s::float8, %s, %s, %s::bigint)", page_size=len(rows))
    for fate, state, cost in cur.fetchall():
        if fate == "done" and state == "pending":
            counts["requeued"] += 1
        elif fate in counts:
            counts[fate] += 1
            if fate == "done":
                counts["done_cost"] += float(cost or 0.0)
    return counts


def release(cur: Any, worker: str, ids: Sequence[int]) -> int:
    """Hand claimed items back untouched (the attempt not counted): for failures that are not the
    items' fault, such as refused credentials."""
    cur.execute(
        "UPDATE netops.backlog_items SET state = 'pending', attempts = greatest(attempts - 1, 0), "
        "started_at = NULL, available_at = now() WHERE id = ANY(%s) AND state = 'processing' AND worker = %s",
        (list(ids), worker),
    )
    return cur.rowcount


def depth(cur: Any) -> int:
    """Items waiting or in flight (pending + processing)."""
    cur.execute("SELECT count(*) FROM netops.backlog_items WHERE state IN ('pending', 'processing')")
    return int(cur.fetchone()[0])


def next_due_in(cur: Any, visibility_timeout: float) -> float | None:
    """Seconds until the next item becomes claimable (0 = now), None when nothing is queued."""
    cur.execute(
        """
        SELECT extract(epoch FROM min(due) - now()) FROM (
            SELECT min(available_at) AS due FROM netops.backlog_items WHERE state = 'pending'
            UNION ALL
            SELECT min(started_at) + make_interval(secs => %s) FROM netops.backlog_items
             WHERE state = 'processing') d
        """,
        (float(visibility_timeout),),
    )
    value = cur.fetchone()[0]
    return None if value is None else max(0.0, float(value))


# ---------------------------------------------------------------------------------- operator view
def status(cur: Any, rate_per_hour: int, failures: int = 50) -> dict[str, Any]:
    """Everything `netops backlog status` shows, from the queue and `netops.api_calls` only."""
    pending, processing, failed, done_today, failed_today, oldest = _state_counts(cur)
    mean, p50, p95 = _processing_seconds(cur)
    cur.execute("SELECT count(*) FROM netops.api_calls WHERE at > now() - interval '1 hour'")
    calls_hour = int(cur.fetchone()[0])
    finished = done_today + failed_today
    return {
        "pending": pending, "processing": processing, "failed": failed,
        "done_today": done_today, "failed_today": failed_today,
        "success_rate_pct": None if finished == 0 else round(100.0 * done_today / finished, 1),
        "processing_seconds": {"mean": _round(mean), "p50": _round(p50), "p95": _round(p95)},
        "oldest_pending_age_seconds": _round(oldest),
        "api_calls_this_hour": calls_hour, "api_budget_per_hour": rate_per_hour,
        "by_resource": _per_resource(cur), "marks": marks.overview(cur), "failures": _failures(cur, failures),
    }


def _state_counts(cur: Any) -> tuple[Any, ...]:
    """(pending, processing, failed, done today, failed today, age of the oldest pending item)."""
    cur.execute(
        """
        SELECT count(*) FILTER (WHERE state = 'pending'),
               count(*) FILTER (WHERE state = 'processing'),
               count(*) FILTER (WHERE state = 'failed'),
               count(*) FILTER (WHERE state = 'done' AND finished_at >= date_trunc('day', now())),
               count(*) FILTER (WHERE state = 'failed' AND finished_at >= date_trunc('day', now())),
               extract(epoch FROM now() - min(enqueued_at) FILTER (WHERE state = 'pending'))
          FROM netops.backlog_items
        """
    )
    return tuple(cur.fetchone())


def _processing_seconds(cur: Any) -> tuple[Any, Any, Any]:
    """(mean, median, p95) seconds from claim to done of today's done items."""
    cur.execute(
        """
        SELECT avg(s), percentile_cont(0.5) WITHIN GROUP (ORDER BY s),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY s)
          FROM (SELECT extract(epoch FROM finished_at - started_at) AS s FROM netops.backlog_items
                 WHERE state = 'done' AND finished_at >= date_trunc('day', now())
                   AND started_at IS NOT NULL) t
        """
    )
    mean, p50, p95 = cur.fetchone()
    return mean, p50, p95


def _failures(cur: Any, limit: int) -> list[dict[str, Any]]:
    """The `limit` most recently failed items."""
    cur.execute(
        """
        SELECT id, resource, entity_id, action, attempts, last_error, enqueued_at, finished_at, worker
          FROM netops.backlog_items WHERE state = 'failed'
         ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT %s
        """,
        (limit,),
    )
    return [
        {"id": r[0], "resource": r[1], "entity_id": r[2], "action": r[3], "attempts": r[4], "error": r[5],
         "enqueued_at": _iso(r[6]), "failed_at": _iso(r[7]), "worker": r[8]}
        for r in cur.fetchall()
    ]


def _per_resource(cur: Any) -> dict[str, dict[str, int]]:
    cur.execute(
        """
        SELECT resource, count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'processing'),
               count(*) FILTER (WHERE state = 'failed')
          FROM netops.backlog_items GROUP BY resource ORDER BY resource
        """
    )
    return {r[0]: {"pending": r[1], "processing": r[2], "failed": r[3]} for r in cur.fetchall()}


def retry(cur: Any, failed: bool) -> dict[str, int]:
    """Make waiting items due now; with `failed`, also give failed items a fresh set of attempts.

    A failed item whose entity already has newer work queued is left failed (that newer item
    supersedes it); its payload is dropped so the retry fetches the row fresh.
    """
    cur.execute(
        "UPDATE netops.backlog_items SET available_at = now() "
        "WHERE state = 'pending' AND available_at > now()"
    )
    out = {"made_due": cur.rowcount, "failed_requeued": 0}
    if failed:
        cur.execute(
            """
            UPDATE netops.backlog_items b
               SET state = 'pending', attempts = 0, deferrals = 0, available_at = now(),
                   started_at = NULL, finished_at = NULL, payload = NULL, reason = 'manual',
                   version = b.version + 1
             WHERE b.state = 'failed'
               AND b.id = (SELECT max(f.id) FROM netops.backlog_items f
                            WHERE f.resource = b.resource AND f.entity_id = b.entity_id AND f.state = 'failed')
               AND NOT EXISTS (SELECT 1 FROM netops.backlog_items o
                                WHERE o.resource = b.resource AND o.entity_id = b.entity_id
                                  AND o.state IN ('pending', 'processing'))
            """
        )
        out["failed_requeued"] = cur.rowcount
    return out


def purge(cur: Any, older_than_seconds: float, done: bool = True, failed: bool = False) -> int:
    """Delete finished items older than the given age (history only; nothing pending is touched)."""
    states = [s for s, on in (("done", done), ("failed", failed)) if on]
    if not states:
        return 0
    cur.execute(
        "DELETE FROM netops.backlog_items WHERE state = ANY(%s) "
        "AND finished_at < now() - make_interval(secs => %s)",
        (states, float(older_than_seconds)),
    )
    return cur.rowcount


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


# --------------------------------------------------------------------------- reconcile and detect
def retire_gone(cur: Any, resource: str, ids: Sequence[int]) -> None:
    """Reconcile found `ids` gone from the API: queued upserts for them would bring them back, so
    pending ones are retired (done, outcome 'absent'), and one a worker holds right now turns into a
    delete — the version bump makes that worker's finish hand it back as pending (its upsert, if it
    lands after this commit, is undone by the next batch)."""
    cur.execute(
        "UPDATE netops.backlog_items SET state = 'done', outcome = 'absent', finished_at = now(), "
        "last_error = NULL WHERE resource = %s AND entity_id = ANY(%s) AND state = 'pending'",
        (resource, list(ids)),
    )
    cur.execute(
        "UPDATE netops.backlog_items SET action = 'delete', payload = NULL, version = version + 1 "
        "WHERE resource = %s AND entity_id = ANY(%s) AND state = 'processing'",
        (resource, list(ids)),
    )


def charge(cur: Any, resource: str, ids: Sequence[int], cost_each: float) -> None:
    """Add `cost_each` API calls to the live items of `ids` (detect's trailing pages that found
    nothing new are charged to the last rows queued)."""
    cur.execute(
        "UPDATE netops.backlog_items SET fetch_cost = fetch_cost + %s WHERE resource = %s "
        "AND entity_id = ANY(%s) AND state IN ('pending', 'processing')",
        (cost_each, resource, list(ids)),
    )


def gone_since(cur: Any, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], datetime]:
    """(resource, id) -> when an item last found it absent or erased in the API (done)."""
    cur.execute(
        "SELECT resource, entity_id, max(finished_at) FROM netops.backlog_items "
        "WHERE state = 'done' AND outcome IN ('absent', 'erased') AND (resource, entity_id) IN "
        "(SELECT * FROM unnest(%s::text[], %s::bigint[])) GROUP BY 1, 2",
        ([k[0] for k in keys], [k[1] for k in keys]),
    )
    return {(r[0], int(r[1])): r[2] for r in cur.fetchall()}
