"""Change detection (`netops backlog detect`): ask each backlog collection for the rows updated since
its high-water mark, and queue them — with the row itself as payload.

Why this shape (docs/backlog.md has the long form):
- One call returns up to 100 changed rows in full. Keeping them as the items' payloads means the
  worker loads them without calling again.
- The window is `range[updated_at]=<mark>,<now - settle>`: windows tile the timeline, so each
  change is read once. A row can commit a little after the `updated_at` it carries (the API
  stamps it inside a transaction); reading only changes at least `settle` seconds old
  (BACKLOG_DETECT_SETTLE_SECONDS, the "timestamp delay" of Kafka Connect's JDBC source) means a
  row not yet visible when its window was read is still ahead of the mark; no change is read
  twice by overlapping windows.
- Pages are walked by id keyset (netops/api/paging.py KeysetPager): rows that move out of the
  window while we page (updated again, deleted) cannot shift later rows past us, which page
  numbers would. `X-Total` of each answer says how many remain, so the last page is known
  without an extra empty call.
- The mark moves forward (only) in the same transaction that queues the window's last page, to
  the window's end — measured on the API's clock: the first answer's `Date` header minus
  `settle`, never past the end we asked for. A clock of ours running ahead of the API's cannot
  move the mark past changes the API has not committed yet; a crash mid-window leaves the mark
  where it was (the window is read again, merged into the items already queued).
- A resource never detected before (no mark) is pulled whole: the initial load is the same path.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from netops.api.paging import MAX_ID, KeysetPager, Page
from netops.config import Settings
from netops.db import connect, marks, queue
from netops.errors import ApiError, AuthError
from netops.log import get_logger
from netops.pipeline.backlog.campus import split_names
from netops.pipeline.backlog.resources import (
    BacklogResource,
    PayloadError,
    entity_id,
    parse_ts,
    purge_erased,
    resolve,
)
from netops.pipeline.backlog.scope import detect_campuses

CLOCK_WARN_SECONDS = 5.0   # log when our clock and the API's differ by more than this


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _pager(settings: Settings, res: BacklogResource, params: dict[str, Any] | None, after_id: int = 0,
           upto: int = MAX_ID, lanes: int = 1) -> KeysetPager:
    return KeysetPager(res.endpoint(settings), {**res.base_params(settings), **(params or {})},
                       settings.page_size, label=res.path, resource=res.name, after_id=after_id,
                       upto=upto, lanes=lanes)


def keyset_pages(client: Any, settings: Settings, res: BacklogResource, params: dict[str, Any] | None = None,
                 after_id: int = 0, upto: int = MAX_ID) -> Iterator[Page]:
    """Pages of `res` in id order, walking `range[id]` from `after_id` (exclusive) to `upto`
    (netops/api/paging.py KeysetPager): immune to rows shifting under the walk, and resumable
    from any id (the reconciler keeps its cursor in the DB)."""
    return _pager(settings, res, params, after_id, upto).pages(client)


def walk_lanes(client: Any) -> int:
    """How many keyset walks one resource may run at once: one with a single key (the budget, not
    the walk, is then the bound), two per key with several, at most 8: with N keys a single walk
    (one page in flight, then its processing) cannot use N budgets."""
    keys = len(getattr(client, "keys", ()) or ())
    return 1 if keys <= 1 else min(8, 2 * keys)


def keyset_lanes(client: Any, settings: Settings, res: BacklogResource, params: dict[str, Any] | None,
                 lanes: int) -> Iterator[Page]:
    """`keyset_pages` with the id range split into `lanes` walks fetched at once (several keys);
    pages after the first come in any order, only the very last one has `last` set."""
    return _pager(settings, res, params, lanes=lanes).pages(client)


@dataclass
class DetectResult:
    resource: str
    since: str | None
    calls: int = 0
    seen: int = 0
    enqueued: int = 0
    invalid: int = 0
    mark: str | None = None
    seconds: float = 0.0
    error: str | None = None
    erased: int = 0   # users: mirrored rows past data_erasure_date deleted before the walk

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def detect(settings: Settings, dsn: str, resources: Sequence[str] | None = None,
           settle_seconds: float | None = None, client: Any = None) -> list[Any]:
    """Run one detection pass over the backlog resources; returns one result each.

    `settle_seconds` (default BACKLOG_DETECT_SETTLE_SECONDS): how old a change must be to be read.
    """
    from netops.api.client import ApiClient

    log = get_logger("backlog", settings.log_path)
    own = client is None
    client = client or ApiClient(settings, dsn=dsn, component="detect")
    queued, campus_names = split_names(resources)   # campus-scoped ones: netops/pipeline/backlog/scope.py
    todo = resolve(queued) if queued or not resources else []
    settle = settings.backlog_detect_settle_seconds if settle_seconds is None else float(settle_seconds)

    def one(res: BacklogResource) -> DetectResult:
        conn = connect(dsn, application_name="netops-detect")
        try:
            return _detect_one(conn, client.fork(), settings, res, settle, log)
        except AuthError:
            raise
        except ApiError as exc:
            # this resource's mark stays where it was (its window is read again next time);
            # the other resources still get their turn
            conn.rollback()
            log.error(f"Detect {res.name} failed, mark unchanged: {exc}")
            return DetectResult(res.name, None, error=str(exc))
        finally:
            conn.close()

    # The resources are walked at once, each on its own connection and client fork (one shared
    # limiter): a keyset walk has one call in flight (each page starts after the last id of the
    # one before), so walked one after another they are latency-bound — a round trip per page —
    # where the budget allows latency x rate calls in flight.
    # Order does not matter here: the worker claims users before the rows that reference them.
    workers = max(1, min(len(todo), settings.max_concurrency))
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="netops-detect") as pool:
            out: list[Any] = list(pool.map(one, todo))
        out += detect_campuses(settings, dsn, client, campus_names, settle, log)
    finally:
        client.recorder.flush()
        if own:
            client.close()
    return out


def _detect_one(conn: Any, client: Any, settings: Settings, res: BacklogResource, settle_seconds: float,
                log: Any) -> DetectResult:
    started = time.monotonic()
    erased: list[int] = []
    if res.erasure_column is not None:
        # personal data past its data_erasure_date leaves the mirror on every detect run, even
        # when the API has not changed the user (docs/backlog.md, "Erasure"); the worker and
        # reconcile never load such a row again
        with conn, conn.cursor() as cur:
            erased = purge_erased(cur, res)
        if erased:
            log.info(f"Detect {res.name}: erased {len(erased)} user(s) past their data_erasure_date "
                     f"(links cascade), e.g. id {erased[0]}")
    result = _detect_walk(conn, client, settings, res, settle_seconds, log, started)
    result.erased = len(erased)
    return result


def _detect_walk(conn: Any, client: Any, settings: Settings, res: BacklogResource, settle_seconds: float,
                 log: Any, started: float) -> DetectResult:
    with conn, conn.cursor() as cur:
        mark = marks.high_water(cur, res.name)
    settle = timedelta(seconds=settle_seconds)
    until = datetime.now(timezone.utc) - settle   # the window's end, by our clock
    params: dict[str, Any] = {}
    since = None
    if mark is not None:
        since = iso(mark)
        if until <= mark:   # run again within `settle`: nothing settled since the last window
            result = DetectResult(res.name, since, mark=iso(mark), seconds=time.monotonic() - started)
            log.info(f"Detect {res.name}: nothing settled since {since} (settle {settle_seconds:g}s), 0 API calls")
            return result
        params["range[updated_at]"] = f"{since},{iso(until)}"
    with conn, conn.cursor() as cur:
        marks.detect_begin(cur, res.name)
    try:
        return _walk_window(conn, client, settings, res, params, since, until, settle, mark, log, started)
    except BaseException:
        conn.rollback()
        with contextlib.suppress(Exception), conn, conn.cursor() as cur:
            marks.detect_end(cur, res.name)
        raise


def _walk_window(conn: Any, client: Any, settings: Settings, res: BacklogResource, params: dict[str, Any],
                 since: str | None, until: datetime, settle: timedelta, mark: datetime | None, log: Any,
                 started: float) -> DetectResult:
    """Walk the window's pages, queueing each page's new rows and moving the mark on the last."""
    result = DetectResult(res.name, since)
    server_time: datetime | None = None
    end: datetime | None = None
    carried = 0.0   # calls not yet charged to any item (pages with nothing new)
    bad_stamps = 0
    last_ids: list[int] = []
    calls_before = client.calls
    for page in keyset_lanes(client, settings, res, params, walk_lanes(client)):
        if server_time is None:
            server_time = page.server_time
        calls_now = client.calls - calls_before
        carried += calls_now - result.calls
        result.calls = calls_now
        result.seen += len(page.rows)
        items, bad = _page_items(res, page.rows, result)
        bad_stamps += bad
        with conn, conn.cursor() as cur:
            fresh = queue.not_current(cur, res.name, items)
            if fresh:
                share = carried / len(fresh)
                for it in fresh:
                    it.fetch_cost = share
                carried = 0.0
                last_ids = [int(it.entity_id) for it in fresh]
            result.enqueued += queue.enqueue(cur, fresh)
            if page.last:
                if carried > 0 and last_ids:
                    # trailing pages that found nothing new: charge them to the last rows queued
                    queue.charge(cur, res.name, last_ids, carried / len(last_ids))
                end = _window_end(until, server_time, settle, res.name, log)
                _advance_mark(cur, res.name, end, result)
    client.recorder.flush()   # calls visible to status/budget while we run
    best = max((m for m in (end, mark) if m is not None), default=None)
    result.mark = iso(best) if best else None
    result.seconds = time.monotonic() - started
    _log_window(log, res, since, result, bad_stamps)
    return result


def _page_items(res: BacklogResource, rows: list[dict[str, Any]],
                result: DetectResult) -> tuple[list[queue.NewItem], int]:
    """One page's rows as queue items (the row itself the payload), and how many of them carry an
    `updated_at` that does not parse; a row without a usable id is counted invalid and skipped."""
    items = []
    bad_stamps = 0
    for obj in rows:
        try:
            ident = entity_id(obj, res.name)
        except (PayloadError, AttributeError):
            result.invalid += 1   # not keyable: nothing to queue it under (the log counts it)
            continue
        stamp = obj.get("updated_at")
        if isinstance(stamp, str):
            try:
                parse_ts(stamp)
            except ValueError:
                # queued all the same (the mark moves past it): the worker's validation fails
                # the item with the error kept, where `netops backlog status` shows it
                stamp = None
                bad_stamps += 1
        else:
            stamp = None
        items.append(queue.NewItem(res.name, ident, payload=obj, source_updated_at=stamp))
    return items, bad_stamps


def _log_window(log: Any, res: BacklogResource, since: str | None, result: DetectResult, bad_stamps: int) -> None:
    window = f"since {since}" if since else "full pull (no mark yet)"
    log.info(
        f"Detect {res.name}: {window}, {result.calls} API call(s), {result.seen:,} rows seen, "
        f"{result.enqueued:,} queued ({result.seen - result.enqueued - result.invalid:,} already current"
        + (f", {result.invalid:,} invalid" if result.invalid else "")
        + (f", {bad_stamps:,} with an unreadable updated_at queued for the worker to report" if bad_stamps else "")
        + "), "
        f"mark → {result.mark or 'none'}"
    )


def _window_end(until: datetime, server_time: datetime | None, settle: timedelta, resource: str,
                log: Any) -> datetime:
    """Where the mark may move once a window is read: every change stamped before it was visible
    (committed) when the window was read. On the API's clock when it told us (Date, to the second,
    truncated: never later than the real moment), never past the end we asked for."""
    if server_time is None:
        return until
    api_end = server_time - settle
    skew = (until - api_end).total_seconds()   # > 0: our clock ahead of the API's
    if abs(skew) > CLOCK_WARN_SECONDS + 1:     # + 1: Date has whole seconds
        log.warning(f"Detect {resource}: this host's clock is {skew:+.0f}s off the API's (Date header); "
                    "the mark follows the API's clock — fix NTP on this host")
    return min(until, api_end)


def _advance_mark(cur: Any, resource: str, end: datetime, result: DetectResult) -> None:
    """Move the mark (forward only) in the transaction that queued the window's last page; the
    parent requests that waited for this pass are due from then on (queue.PARENT_FETCH_DELAY)."""
    marks.advance(cur, resource, end, result.calls, result.enqueued)
    queue.release_parent_requests(cur, resource)
