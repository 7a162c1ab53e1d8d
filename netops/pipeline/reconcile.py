"""Reconciliation (`netops backlog reconcile`): a full, budgeted, resumable pull of each live table
that fixes drift and prunes what the API no longer returns.

Why it exists: a change window only sees rows whose `updated_at` moved. Values computed by the
server change without moving it, and a deleted row simply stops appearing — neither is ever
detected. So each live table is periodically read whole and compared.

How it stays within budget and resumable:
- The table is walked by id keyset (`sort=id`, `range[id]=<cursor + 1>,...`), 100 rows a call.
  Each answer covers a closed id interval (cursor, last id of the page]: every mirrored row in that
  interval that the answer lacks is gone from the API and is deleted (FKs cascade); every row in
  it is upserted through the same stage/apply path as the worker (only differing rows written).
- Each interval commits on its own together with the cursor in `netops.backlog_marks`, so a run
  that hits its budget (a share of the hourly call budget, BACKLOG_RECONCILE_BUDGET_SHARE, minus
  what reconciliation already used in the last hour per `netops.api_calls`) or dies simply stops;
  the next run resumes at the cursor. When a walk reaches the end, the cursor resets and the
  pass is recorded as finished.
- Rows whose parent is missing (a child of a user created after the users walk passed) are not
  forced in: they are queued, with their payload, for the worker, which fetches the parent first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg2 import sql

from netops.config import Settings
from netops.db import api_calls, connect, marks, queue
from netops.db.loader import PRUNE_GUARD_MIN_ROWS
from netops.errors import ApiError, AuthError, SyncError
from netops.log import get_logger
from netops.pipeline.backlog import delete_ids, load_rows
from netops.pipeline.detect import keyset_pages
from netops.pipeline.live import LiveResource, PayloadError, entity_id, purge_erased, resolve


@dataclass
class ReconcileResult:
    resource: str
    calls: int = 0
    rows_seen: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    queued: int = 0
    invalid: int = 0
    started_after_id: int = 0
    cursor: int | None = None
    complete: bool = False
    budget_left: int = 0
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def budget_for(settings: Settings, dsn: str, per_hour: int | None = None) -> tuple[int, int]:
    """(calls reconciliation may still make this hour, its hourly allowance): its share of every
    key's budget summed (settings.budget; `per_hour` when the caller has it), since its
    client spreads its calls over every key."""
    per_hour = settings.budget.per_hour if per_hour is None else per_hour
    allowance = int(math.floor(per_hour * settings.backlog_reconcile_budget_share))
    conn = connect(dsn, autocommit=True, application_name="netops-reconcile")
    try:
        with conn.cursor() as cur:
            used = api_calls.calls_last_hour(cur, "reconcile")
    finally:
        conn.close()
    return max(0, allowance - used), allowance


def reconcile(settings: Settings, dsn: str, resources: Sequence[str] | None = None,
              max_calls: int | None = None, restart: bool = False, client: Any = None) -> list[ReconcileResult]:
    """Walk the live tables (parents first) until done or out of budget; returns one result each."""
    from netops.api.client import ApiClient

    log = get_logger("backlog", settings.log_path)
    per_hour = settings.budget.per_hour
    left, allowance = budget_for(settings, dsn, per_hour)
    if max_calls is not None:
        left = min(left, max_calls)
    own = client is None
    client = client or ApiClient(settings, dsn=dsn, component="reconcile")
    conn = connect(dsn, application_name="netops-reconcile")
    results = []
    log.info(f"Reconcile: budget {left} call(s) of {allowance}/h "
             f"({settings.backlog_reconcile_budget_share:.0%} of {per_hour}/h)")
    try:
        for res in resolve(resources):
            calls_at_start = client.calls
            if left <= 0:
                log.info(f"Reconcile {res.name}: no budget left this hour; resumes next run")
                results.append(ReconcileResult(res.name, budget_left=0))
                continue
            try:
                r = _reconcile_one(conn, client, settings, res, left, restart, log)
            except AuthError:
                raise
            except (ApiError, SyncError) as exc:
                # this resource stops where it was (cursor kept: the next run resumes there)
                log.error(f"Reconcile {res.name} stopped: {exc}")
                r = ReconcileResult(res.name, error=str(exc))
                with conn, conn.cursor() as cur:
                    r.cursor = marks.reconcile_cursor(cur, res.name)
                r.calls = client.calls - calls_at_start
                client.recorder.flush()
            left -= r.calls
            r.budget_left = left
            results.append(r)
    finally:
        conn.close()
        if own:
            client.close()
    return results


def _reconcile_one(conn: Any, client: Any, settings: Settings, res: LiveResource, budget: int,
                   restart: bool, log: Any) -> ReconcileResult:
    started = time.monotonic()
    erased = 0
    with conn, conn.cursor() as cur:
        # docs/backlog.md "Erasure": gone before the walk, never reloaded
        erased = len(purge_erased(cur, res))
        cursor = marks.reconcile_begin(cur, res.name, restart)
    after = int(cursor or 0)
    result = ReconcileResult(res.name, started_after_id=after, cursor=after, deleted=erased)
    calls_before = client.calls
    pages = keyset_pages(client, settings, res, after_id=after)
    while client.calls - calls_before < budget:
        page = next(pages, None)
        if page is None:
            break
        result.calls = client.calls - calls_before
        result.rows_seen += len(page.rows)
        rows, payloads, present = [], {}, set()
        for obj in page.rows:
            try:
                present.add(entity_id(obj, res.name))  # even a row we cannot load still exists
                row = res.to_row(obj)
            except PayloadError as exc:
                result.invalid += 1
                log.warning(f"Reconcile {res.name}: skipped a row: {exc}")
                continue
            rows.append(row)
            payloads[int(row[0])] = obj
        ids = sorted(present)
        hi = None if page.last else (ids[-1] if ids else None)
        with conn, conn.cursor() as cur:
            out = load_rows(cur, res, rows)
            result.inserted += out.result.inserted
            result.updated += out.result.updated
            if out.missing:
                result.queued += queue.enqueue(cur, [
                    queue.NewItem(res.name, rid, payload=payloads[rid],
                                  source_updated_at=payloads[rid].get("updated_at"), reason="reconcile")
                    for rid in out.missing
                ])
            gone = _absent_ids(cur, res, after, hi, ids)
            if len(gone) >= PRUNE_GUARD_MIN_ROWS:
                mirrored = _count_interval(cur, res, after, hi)
                if len(gone) > settings.max_prune_ratio * mirrored:
                    # an API answering with (nearly) nothing must not empty the mirror
                    raise SyncError(
                        f"reconcile {res.name}: the API no longer returns {len(gone)} of {mirrored} mirrored rows "
                        f"with ids in ({after}, {hi if hi is not None else 'end'}] (> {settings.max_prune_ratio:.0%}); "
                        "refusing to prune that much — check the API, or rerun with NETOPS_MAX_PRUNE_RATIO=1 "
                        "if the deletions are real"
                    )
            if gone:
                result.deleted += delete_ids(cur, res, gone)
                # queued upserts for rows the API no longer has would bring them back: retired, and
                # one a worker holds right now turns into a delete (netops/db/queue.py)
                queue.retire_gone(cur, res.name, gone)
            if page.last:
                marks.reconcile_step(cur, res.name, None)
                result.complete = True
                result.cursor = None
            else:
                after = int(hi if hi is not None else after)
                marks.reconcile_step(cur, res.name, after)
                result.cursor = after
        if page.last:
            break
    pages.close()
    client.recorder.flush()
    result.calls = client.calls - calls_before
    result.seconds = time.monotonic() - started
    where = "pass complete" if result.complete else f"paused at id {result.cursor:,} (resumes next run)"
    log.info(
        f"Reconcile {res.name}: {result.calls} API call(s), {result.rows_seen:,} rows checked "
        f"from id {result.started_after_id:,}, {result.inserted} inserted, {result.updated} updated, "
        f"{result.deleted} deleted, {result.queued} queued for a missing parent; {where}"
    )
    return result


def _count_interval(cur: Any, res: LiveResource, lo: int, hi: int | None) -> int:
    cur.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE id > %s AND (%s::bigint IS NULL OR id <= %s)").format(
            sql.Identifier(res.table)),
        (lo, hi, hi),
    )
    return int(cur.fetchone()[0])


def _absent_ids(cur: Any, res: LiveResource, lo: int, hi: int | None, present: list[int]) -> list[int]:
    """Mirrored ids in (lo, hi] (hi None = no upper end) that the API answer did not contain."""
    cur.execute(
        sql.SQL("SELECT id FROM {} WHERE id > %s AND (%s::bigint IS NULL OR id <= %s) "
                "AND NOT (id = ANY(%s)) ORDER BY id").format(sql.Identifier(res.table)),
        (lo, hi, hi, present),
    )
    return [int(r[0]) for r in cur.fetchall()]
