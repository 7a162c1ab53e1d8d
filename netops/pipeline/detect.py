"""Change detection (`netops backlog detect`): ask each live collection for the rows updated since
its high-water mark, and queue them — with the row itself as payload.

Why this shape (docs/backlog.md has the long form):
- One call returns up to 100 changed rows in full. Keeping them as the items' payloads means the
  worker loads them without calling again: ~100 changed rows per call instead of the old
  pipeline's one user per call.
- The window is `range[updated_at]=<mark>,<now - settle>`: windows tile the timeline, so each
  change is read once. A row can commit a little after the `updated_at` it carries (the API
  stamps it inside a transaction); reading only changes at least `settle` seconds old
  (BACKLOG_DETECT_SETTLE_SECONDS, the "timestamp delay" of Kafka Connect's JDBC source) means a
  row not yet visible when its window was read is still ahead of the mark. The older design
  (start each window `overlap` before the newest row seen) re-read every recent change once per
  run: at 5,000 changes between back-to-back runs it measured 29.8 rows per call, not ~90.
- Pages are walked by id keyset (`sort=id`, `range[id]=<last id + 1>,...`, always page 1): rows
  that move out of the window while we page (updated again, deleted) cannot shift later rows
  past us, which page numbers would. `X-Total` of each answer says how many remain, so the last
  page is known without an extra empty call.
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
from email.utils import parsedate_to_datetime
from typing import Any

from netops.api.client import page_problem
from netops.config import Settings
from netops.db import connect, marks, queue
from netops.errors import ApiError, AuthError
from netops.log import get_logger
from netops.pipeline.live import LiveResource, PayloadError, entity_id, parse_ts, purge_erased, resolve

CLOCK_WARN_SECONDS = 5.0   # log when our clock and the API's differ by more than this
MAX_ID = 2**31 - 1


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Page:
    rows: list[dict[str, Any]]
    remaining: int | None     # X-Total of this answer: rows from this page's first id on
    last: bool
    server_time: datetime | None = None   # the answer's Date header: the API's clock


def keyset_pages(client: Any, settings: Settings, res: LiveResource, params: dict[str, Any] | None = None,
                 after_id: int = 0, upto: int = MAX_ID) -> Iterator[Page]:
    """Yield pages of `res` in id order, walking `range[id]` from `after_id` (exclusive) to `upto`.

    Each answer is page 1 of "ids above the last one seen", so the walk is immune to rows
    shifting under it, and resumable from any id (the reconciler keeps its cursor in the DB).
    """
    size = max(1, min(100, settings.page_size))
    cursor = int(after_id)
    while True:
        query = {**res.base_params(settings), **(params or {}), "sort": "id",
                 "range[id]": f"{cursor + 1},{upto}", "page[size]": size, "page[number]": 1}
        # page_problem: a page with a row without a usable id, or an id twice, is retried like a
        # garbled answer and fails the resource if it stays so — never silently skipped while
        # the high-water mark moves past it.
        resp = client.request(res.endpoint(settings), query, validate=page_problem)
        rows = resp._netops_json  # the client validated the JSON already
        if not isinstance(rows, list):
            raise ApiError(f"GET {res.path}: expected a JSON list, got {type(rows).__name__}", endpoint=res.path)
        per_page = _int(resp.headers.get("X-Per-Page")) or size
        total = _int(resp.headers.get("X-Total"))
        ids = []
        for obj in rows:
            try:
                ids.append(entity_id(obj, res.name))
            except (PayloadError, AttributeError):
                continue
        if ids and min(ids) <= cursor:
            raise ApiError(
                f"GET {res.path}: range[id] was ignored (got id {min(ids)} <= {cursor}); this endpoint "
                "cannot be walked by id", endpoint=res.path,
            )
        last = (total <= len(rows)) if total is not None else (len(rows) < per_page)
        if not ids:
            last = True
        yield Page(rows, total, last, _http_date(resp.headers.get("Date")))
        if last:
            return
        cursor = max(ids)


def walk_lanes(client: Any) -> int:
    """How many keyset walks one resource may run at once: one with a single key (the budget, not
    the walk, is then the bound — measured 4.4 of 5 calls/s), two per key with several, at most 8:
    with N keys a single walk (one page in flight, then its processing) cannot use N budgets."""
    keys = len(getattr(client, "keys", ()) or ())
    return 1 if keys <= 1 else min(8, 2 * keys)


def keyset_lanes(client: Any, settings: Settings, res: LiveResource, params: dict[str, Any] | None,
                 lanes: int) -> Iterator[Page]:
    """`keyset_pages` with the id range split into `lanes` walks fetched at once (several keys).

    The first page comes first, as from one walk (its X-Total says how many rows lie above it);
    one descending page then gives the highest ids, and the ids between are split into equal
    ranges, each walked by keyset on its own thread — still immune to rows shifting, each walk
    costing at most one short page more than one walk would. Pages after the first come in any
    order; only the very last one yielded has `last` set (the caller moves its mark on it).
    """
    import queue as _q
    import threading

    size = max(1, min(100, settings.page_size))
    walk = keyset_pages(client, settings, res, params)
    first = next(walk)
    ids = [int(o["id"]) for o in first.rows]
    above = (first.remaining or 0) - len(first.rows)
    if first.last or lanes < 2 or not ids or above < 4 * size * lanes:
        yield first
        yield from walk
        return
    walk.close()
    cursor = max(ids)
    query = {**res.base_params(settings), **(params or {}), "sort": "-id",
             "range[id]": f"{cursor + 1},{MAX_ID}", "page[size]": size, "page[number]": 1}
    top_resp = client.request(res.endpoint(settings), query, validate=page_problem)
    top_rows = top_resp._netops_json
    top_ids = [int(o["id"]) for o in top_rows]
    top = Page(top_rows, _int(top_resp.headers.get("X-Total")), False, first.server_time)
    if not top_ids or (top.remaining is not None and top.remaining <= len(top_rows)):
        yield first
        yield Page(top_rows, top.remaining, True, first.server_time)
        return
    hi = min(top_ids)  # the middle: ids in (cursor, hi)
    bounds = [cursor + (hi - 1 - cursor) * i // lanes for i in range(lanes + 1)]
    pages: _q.Queue[Any] = _q.Queue(maxsize=4 * lanes)
    stop = threading.Event()

    def lane(a: int, b: int) -> None:
        try:
            for page in keyset_pages(client, settings, res, params, after_id=a, upto=b):
                if stop.is_set():
                    return
                pages.put(page)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            pages.put(exc)
        finally:
            pages.put(None)

    threads = [threading.Thread(target=lane, args=(a, b), name=f"netops-lane-{res.name}", daemon=True)
               for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    for t in threads:
        t.start()
    running = len(threads)
    try:
        yield first
        held = top
        while running:
            got = pages.get()
            if got is None:
                running -= 1
                continue
            if isinstance(got, BaseException):
                raise got
            yield held
            held = Page(got.rows, got.remaining, False, got.server_time)
        yield Page(held.rows, held.remaining, True, held.server_time)
    finally:
        stop.set()
        while any(t.is_alive() for t in threads):  # let blocked producers finish
            with contextlib.suppress(_q.Empty):
                pages.get(timeout=0.05)
        for t in threads:
            t.join()


def _http_date(value: Any) -> datetime | None:
    try:
        dt = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None
    return dt.astimezone(timezone.utc) if dt is not None and dt.tzinfo else None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


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
           settle_seconds: float | None = None, client: Any = None) -> list[DetectResult]:
    """Run one detection pass over the live resources; returns one result each.

    `settle_seconds` (default BACKLOG_DETECT_SETTLE_SECONDS): how old a change must be to be read.
    """
    from netops.api.client import ApiClient

    log = get_logger("backlog", settings.log_path)
    own = client is None
    client = client or ApiClient(settings, dsn=dsn, component="detect")
    todo = resolve(resources)
    settle = settings.backlog_detect_settle_seconds if settle_seconds is None else float(settle_seconds)

    def one(res: LiveResource) -> DetectResult:
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

    # The four resources are walked at once, each on its own connection and client fork (one
    # shared pacer): a keyset walk has one call in flight (each page starts after the last id
    # of the one before), so walked one after another they are latency-bound — a round trip per
    # page — where the budget allows latency x rate (2.2 at 1.1 s and 2/s) calls in flight.
    # Order does not matter here: the worker claims users before the rows that reference them.
    workers = max(1, min(len(todo), settings.max_concurrency))
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="netops-detect") as pool:
            out = list(pool.map(one, todo))
    finally:
        client.recorder.flush()
        if own:
            client.close()
    return out


def _detect_one(conn: Any, client: Any, settings: Settings, res: LiveResource, settle_seconds: float,
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


def _detect_walk(conn: Any, client: Any, settings: Settings, res: LiveResource, settle_seconds: float,
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


def _walk_window(conn: Any, client: Any, settings: Settings, res: LiveResource, params: dict[str, Any],
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
        items = []
        for obj in page.rows:
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
    window = f"since {since}" if since else "full pull (no mark yet)"
    log.info(
        f"Detect {res.name}: {window}, {result.calls} API call(s), {result.seen:,} rows seen, "
        f"{result.enqueued:,} queued ({result.seen - result.enqueued - result.invalid:,} already current"
        + (f", {result.invalid:,} invalid" if result.invalid else "")
        + (f", {bad_stamps:,} with an unreadable updated_at queued for the worker to report" if bad_stamps else "")
        + "), "
        f"mark → {result.mark or 'none'}"
    )
    return result


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
