"""Reconciliation (`netops backlog reconcile`): a full, budgeted, resumable pull of each backlog table
that fixes drift and prunes what the API no longer returns.

Why it exists: a change window only sees rows whose `updated_at` moved. Values computed by the
server change without moving it, and a deleted row simply stops appearing — neither is ever
detected. So each backlog table is periodically read whole and compared.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from netops import stop
from netops.api.limiter import estimate_line
from netops.config import Settings
from netops.db import api_calls, connect, marks, mirror, queue
from netops.db.loader import PRUNE_GUARD_MIN_ROWS
from netops.errors import ApiError, AuthError, SyncError
from netops.log import get_logger
from netops.pipeline.backlog.detect import keyset_pages
from netops.pipeline.backlog.resources import BacklogResource, PayloadError, entity_id, purge_erased, resolve
from netops.pipeline.backlog.worker import delete_ids, load_rows


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
              max_calls: int | None = None, restart: bool = False, client: Any = None,
              say: Callable[[str], None] | None = None) -> list[ReconcileResult]:
    """Walk the backlog tables (parents first) until done or out of budget; returns one result each.
    `say(line)`: where the operator looks (the estimate before a long pass starts). A stop
    (SIGINT/SIGTERM) raises stop.Stopped naming where the pass paused."""
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
    todo = resolve(resources)
    _announce(conn, settings, todo, left, restart, log, say)
    try:
        for res in todo:
            calls_at_start = client.calls
            if left <= 0:
                log.info(f"Reconcile {res.name}: no budget left this hour; resumes next run")
                results.append(ReconcileResult(res.name, budget_left=0))
                continue
            try:
                r = _reconcile_one(conn, client, settings, res, left, restart, log, say)
            except stop.Stopped:
                conn.rollback()
                with conn, conn.cursor() as cur:
                    cursor = marks.reconcile_cursor(cur, res.name)
                done = ", ".join(f"{d.resource} {'complete' if d.complete else 'paused'}" for d in results)
                line = (f"stopped by {stop.signal_name()}: reconcile of {res.name} paused at id {cursor or 0:,} "
                        f"(every page before it applied; the next run resumes there)"
                        + (f"; before it: {done}" if done else "") + "; left: nothing half-written")
                log.warning(line)
                raise stop.Stopped(line) from None
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


#: Seconds between two progress lines of a long reconcile pass (stderr and backlog_worker.log).
PROGRESS_EVERY = 10.0


def _reconcile_one(conn: Any, client: Any, settings: Settings, res: BacklogResource, budget: int,
                   restart: bool, log: Any, say: Callable[[str], None] | None = None) -> ReconcileResult:
    started = time.monotonic()
    with conn, conn.cursor() as cur:
        # docs/backlog.md "Erasure": gone before the walk, never reloaded
        erased = len(purge_erased(cur, res))
        cursor = marks.reconcile_begin(cur, res.name, restart)
    after = int(cursor or 0)
    result = ReconcileResult(res.name, started_after_id=after, cursor=after, deleted=erased)
    calls_before = client.calls
    pages = keyset_pages(client, settings, res, after_id=after)
    shown = time.monotonic()
    while client.calls - calls_before < budget:
        page = next(pages, None)
        if page is None:
            break
        result.calls = client.calls - calls_before
        result.rows_seen += len(page.rows)
        mapped = _map_page(res, page.rows, result, log)
        with conn, conn.cursor() as cur:
            after = _apply_page(cur, settings, res, mapped, page.last, after, result)
        if page.last:
            break
        if time.monotonic() - shown >= PROGRESS_EVERY:
            shown = time.monotonic()
            line = (f"reconcile progress: {res.name} {result.rows_seen:,} rows checked, {result.calls} calls "
                    f"(of {budget}), at id {after:,}")
            log.info(line)
            if say is not None:
                say(line)
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


def _announce(conn: Any, settings: Settings, todo: list[BacklogResource], left: int, restart: bool, log: Any,
              say: Callable[[str], None] | None) -> None:
    """Before the pass: its calls (the mirrored rows still ahead of each cursor, a page per
    BACKLOG page size, at most the budget left), said when over a tenth of the hour's budget."""
    size = max(1, min(100, settings.page_size))
    calls = 0
    with conn, conn.cursor() as cur:
        for res in todo:
            after = 0 if restart else int(marks.reconcile_cursor(cur, res.name) or 0)
            calls += -(-mirror.count_interval(cur, res.table, after, None) // size) + 1
    line = estimate_line("reconcile", min(calls, max(0, left)), settings.budget)
    if line:
        log.info(line)
        if say is not None:
            say(line)


@dataclass
class _Mapped:
    """One page as rows to load, their payloads by id (to queue), and every id the page holds."""

    rows: list[tuple[Any, ...]]
    payloads: dict[int, Any]
    ids: list[int]


def _map_page(res: BacklogResource, objs: Sequence[Any], result: ReconcileResult, log: Any) -> _Mapped:
    rows, payloads, present = [], {}, set()
    for obj in objs:
        try:
            present.add(entity_id(obj, res.name))  # even a row we cannot load still exists
            row = res.to_row(obj)
        except PayloadError as exc:
            result.invalid += 1
            log.warning(f"Reconcile {res.name}: skipped a row: {exc}")
            continue
        rows.append(row)
        payloads[int(row[0])] = obj
    return _Mapped(rows, payloads, sorted(present))


def _apply_page(cur: Any, settings: Settings, res: BacklogResource, mapped: _Mapped, last: bool, after: int,
                result: ReconcileResult) -> int:
    """Load one page, queue its rows whose parent is missing, prune the mirrored ids of its id range
    it lacks and move the cursor past it; returns the new cursor."""
    hi = None if last else (mapped.ids[-1] if mapped.ids else None)
    out = load_rows(cur, res, mapped.rows)
    result.inserted += out.result.inserted
    result.updated += out.result.updated
    if out.missing:
        result.queued += queue.enqueue(cur, [
            queue.NewItem(res.name, rid, payload=mapped.payloads[rid],
                          source_updated_at=mapped.payloads[rid].get("updated_at"), reason="reconcile")
            for rid in out.missing
        ])
    _prune_absent(cur, settings, res, after, hi, mapped.ids, result)
    if last:
        marks.reconcile_step(cur, res.name, None)
        result.complete = True
        result.cursor = None
        return after
    after = int(hi if hi is not None else after)
    marks.reconcile_step(cur, res.name, after)
    result.cursor = after
    return after


def _prune_absent(cur: Any, settings: Settings, res: BacklogResource, after: int, hi: int | None,
                  ids: list[int], result: ReconcileResult) -> None:
    """Delete the mirrored rows with an id in (after, hi] the API no longer returns."""
    gone = mirror.absent_ids(cur, res.table, after, hi, ids)
    if len(gone) >= PRUNE_GUARD_MIN_ROWS:
        mirrored = mirror.count_interval(cur, res.table, after, hi)
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
