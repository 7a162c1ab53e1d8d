"""How a listing is walked, as strategy objects the client is given (`ApiClient.paginate`).

- `XTotalPager`: numbered pages; page 1 first, then `X-Total` says how many remain and they are
  fetched a few at a time. Used by the stable sync (`ApiClient.iter_pages`).
- `KeysetPager`: always page 1 of "ids above the last one seen" (`sort=id`, `range[id]`), so rows
  moving while we walk cannot shift later rows past us; resumable from any id, and splittable
  into lanes walked at once. Used by detect and reconcile (netops/pipeline/backlog/detect.py).

Neither makes an extra call to learn that a listing ended: `X-Total` (or `Link rel=next`) tells.
How the API pages, and why rows can shift between numbered pages, is in docs/api.md.
"""

from __future__ import annotations

import contextlib
import math
import queue
import re
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import requests

from netops.api.policy import int_header
from netops.errors import ApiError

MAX_ID = 2**31 - 1
#: Reads of one numbered listing before rows that keep shifting are a failure.
MAX_LISTING_PASSES = 3


class PageSource(Protocol):
    """What a pager needs of the client: one validated, retried GET and how many may be in flight."""

    log: Any

    @property
    def concurrency(self) -> int: ...

    def request(self, path: str, params: dict[str, Any] | None = None,
                validate: Any = None) -> requests.Response: ...


_ID_SEGMENT = re.compile(r"/\d+(?=/|$)")


def endpoint_template(path: str) -> str:
    """`/v2/campus/12/achievements` -> `/v2/campus/:id/achievements` (for accounting)."""
    return _ID_SEGMENT.sub("/:id", path.split("?", 1)[0])


# -- validation of pages (a page the walk cannot trust is retried like a garbled answer) ------
def _id_problem(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return f"a row that is a JSON {type(obj).__name__}, not an object"
    rid = obj.get("id")
    if rid is None:
        return "a row without an id"
    if isinstance(rid, bool) or not (isinstance(rid, int) or (isinstance(rid, str) and rid.isdigit())):
        return f"a row whose id {rid!r:.30} is not an integer"
    return None


def page_problem(data: Any) -> str | None:
    """Why a page of an index cannot be used as it is, or None (see ApiClient.request)."""
    if not isinstance(data, list):
        return f"a JSON {type(data).__name__} where a list of rows was expected"
    ids: set[int] = set()
    for obj in data:
        problem = _id_problem(obj)
        if problem:
            return problem
        rid = int(obj["id"])
        if rid in ids:
            return f"id {rid} twice in one page"
        ids.add(rid)
    return None


def object_problem(data: Any) -> str | None:
    """Validator for a single-object endpoint (`/v2/cursus/21`): an object with an integer id."""
    return _id_problem(data)


def _row_id(obj: dict[str, Any]) -> int:
    return int(obj["id"])  # page_problem guarantees an integer-like id


# -- numbered pages ---------------------------------------------------------------------------
@dataclass
class PageInfo:
    """What the first page of an index told us."""

    total: int | None
    per_page: int
    pages: int | None


@dataclass
class _PassResult:
    """What one pass over a listing saw: its X-Total, distinct ids, ids served twice."""

    total: int | None = None
    ids: set[Any] = field(default_factory=set)
    dupes: int = 0

    @property
    def distinct(self) -> int:
        return len(self.ids)

    def add(self, page: list[dict[str, Any]]) -> int:
        """Record a page; returns how many of its ids were new in this pass."""
        new = 0
        for obj in page:
            rid = _row_id(obj)
            if rid in self.ids:
                self.dupes += 1
            else:
                self.ids.add(rid)
                new += 1
        return new


@dataclass
class XTotalPager:
    """Numbered pages of `page_size`; `on_info(PageInfo)` is called after the first page.

    Rows can shift between numbered pages while we page (a delete before our cursor hides the row
    at the next boundary; an insert serves one twice), so each pass is checked against its own
    first page's `X-Total`: fewer distinct ids than announced and the listing is read again (up
    to MAX_LISTING_PASSES). Rows already yielded stay yielded — the loader upserts on the primary
    key, so the union of the passes is the full set. A listing that stays short with duplicates
    is a failure (ApiError); one that stays short without any, on the same ids each pass, means
    `X-Total` is off and is accepted with a warning. A last page that still advertises
    `rel="next"` is followed, so an `X-Total` that says too little cannot cut the listing short.
    Pages after the first come in any order.
    """

    path: str
    params: dict[str, Any] | None
    page_size: int
    on_info: Any = None

    def pages(self, client: PageSource) -> Iterator[list[dict[str, Any]]]:
        base = dict(self.params or {})
        endpoint = endpoint_template(self.path)
        seen: set[Any] = set()
        last: _PassResult | None = None
        for pass_no in range(1, MAX_LISTING_PASSES + 1):
            result = _PassResult()
            for page in self._one_pass(client, base, self.on_info if pass_no == 1 else None, result):
                fresh = [o for o in page if _row_id(o) not in seen] if pass_no > 1 else page
                seen.update(_row_id(o) for o in page)
                if fresh:
                    yield fresh
            last = result
            # every row X-Total announced has been served (an id served twice only means a row
            # was inserted before the cursor: the newcomer is caught by the next sync)
            if result.total is None or len(seen) >= result.total:
                return
            client.log.warning(
                f"{endpoint}: listing pass {pass_no} inconsistent (X-Total {result.total}, "
                f"{result.distinct} distinct ids, {result.dupes} served twice; {len(seen)} ids so far): "
                "rows shifted while paging or X-Total is off — reading the listing again"
            )
        assert last is not None and last.total is not None
        if last.dupes == 0 and last.distinct == len(seen):
            client.log.warning(
                f"{endpoint}: X-Total says {last.total} but {MAX_LISTING_PASSES} full passes each "
                f"ended after the same {len(seen)} rows; keeping them (the API's X-Total is off)"
            )
            return
        raise ApiError(
            f"GET {endpoint}: rows kept shifting while paging ({len(seen)} distinct rows of "
            f"X-Total {last.total} after {MAX_LISTING_PASSES} passes); retry later",
            endpoint=endpoint,
        )

    def _get(self, client: PageSource, base: dict[str, Any], size: int, number: int) -> requests.Response:
        return client.request(self.path, {**base, "page[size]": size, "page[number]": number}, page_problem)

    def _one_pass(self, client: PageSource, base: dict[str, Any], on_info: Any,
                  result: _PassResult) -> Iterator[list[dict[str, Any]]]:
        """One read of a listing, page 1 first, then the rest concurrently; fills `result`."""
        first = self._get(client, base, self.page_size, 1)
        items = first._netops_json  # type: ignore[attr-defined]
        per_page = int_header(first.headers, "X-Per-Page") or self.page_size
        total = int_header(first.headers, "X-Total")
        pages = math.ceil(total / per_page) if total is not None and per_page > 0 else None
        result.total = total
        if on_info:
            on_info(PageInfo(total, per_page, pages))
        result.add(items)
        yield items
        number, resp = 1, first
        if pages is not None:
            for n, page_resp in self._fetch_pages(client, base, per_page, range(2, pages + 1)):
                page = page_resp._netops_json  # type: ignore[attr-defined]
                if n == pages:
                    number, resp, items = n, page_resp, page
                result.add(page)
                yield page
            if number != max(pages, 1) or not items or "next" not in resp.links:
                return  # the normal case: the page X-Total called last says it is the last
        yield from self._follow_links(client, base, per_page, number, resp, items, result)

    def _follow_links(self, client: PageSource, base: dict[str, Any], per_page: int, number: int,
                      resp: requests.Response, items: list[dict[str, Any]],
                      result: _PassResult) -> Iterator[list[dict[str, Any]]]:
        """No X-Total (or a last page that still links on): follow Link rel=next; with no Link
        header either, stop on a short page. A page that brings no new id ends it too, so a
        server that serves the same page forever cannot keep us here."""
        while items:
            more = ("next" in resp.links) if resp.headers.get("Link") else len(items) >= per_page
            if not more:
                break
            number += 1
            resp = self._get(client, base, per_page, number)
            items = resp._netops_json  # type: ignore[attr-defined]
            if not result.add(items):
                break
            yield items

    def _fetch_pages(self, client: PageSource, base: dict[str, Any], per_page: int,
                     numbers: range) -> Iterator[tuple[int, requests.Response]]:
        """Pages `numbers`, up to the client's concurrency in flight, as each one arrives."""
        if len(numbers) == 0:
            return
        workers = max(1, min(client.concurrency, len(numbers)))
        todo = iter(numbers)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="netops-page") as pool:
            running: dict[Future[Any], int] = {}

            def submit_next() -> bool:
                n = next(todo, None)
                if n is None:
                    return False
                running[pool.submit(self._get, client, base, per_page, n)] = n
                return True

            for _ in range(workers):
                submit_next()
            try:
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        n = running.pop(fut)
                        resp = fut.result()
                        submit_next()
                        yield n, resp
            finally:
                for fut in running:
                    fut.cancel()


# -- keyset walks -----------------------------------------------------------------------------
@dataclass
class Page:
    rows: list[dict[str, Any]]
    remaining: int | None     # X-Total of this answer: rows from this page's first id on
    last: bool
    server_time: datetime | None = None   # the answer's Date header: the API's clock


def http_date(value: Any) -> datetime | None:
    try:
        dt = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None
    return dt.astimezone(timezone.utc) if dt is not None and dt.tzinfo else None


@dataclass
class KeysetPager:
    """Pages in id order, walking `range[id]` from `after_id` (exclusive) to `upto`; with
    `lanes` > 1 the id range is split into that many walks fetched at once (several keys).

    `params` carry the resource's filters and, for detect, its `range[updated_at]` window;
    `label` names the listing in errors, `resource` its walking threads. Only the last page
    yielded has `last` set.
    """

    path: str
    params: dict[str, Any]
    page_size: int
    label: str
    resource: str = ""
    after_id: int = 0
    upto: int = MAX_ID
    lanes: int = 1

    @property
    def size(self) -> int:
        return max(1, min(100, self.page_size))

    def pages(self, client: PageSource) -> Iterator[Page]:
        if self.lanes < 2:
            yield from self._walk(client)
        else:
            yield from self._in_lanes(client)

    def _query(self, sort: str, lo: int, hi: int) -> dict[str, Any]:
        return {**self.params, "sort": sort, "range[id]": f"{lo},{hi}", "page[size]": self.size,
                "page[number]": 1}

    def _walk(self, client: PageSource) -> Iterator[Page]:
        """One walk: each answer is page 1 of the ids above the last one seen."""
        cursor = int(self.after_id)
        while True:
            # page_problem: a page with a row without a usable id, or an id twice, is retried like
            # a garbled answer and fails the walk if it stays so — never silently skipped while
            # the caller's mark moves past it
            resp = client.request(self.path, self._query("id", cursor + 1, self.upto), validate=page_problem)
            rows = resp._netops_json  # type: ignore[attr-defined]
            if not isinstance(rows, list):
                raise ApiError(f"GET {self.label}: expected a JSON list, got {type(rows).__name__}",
                               endpoint=self.label)
            per_page = int_header(resp.headers, "X-Per-Page") or self.size
            total = int_header(resp.headers, "X-Total")
            ids = [_row_id(obj) for obj in rows]
            if ids and min(ids) <= cursor:
                raise ApiError(
                    f"GET {self.label}: range[id] was ignored (got id {min(ids)} <= {cursor}); this endpoint "
                    "cannot be walked by id", endpoint=self.label,
                )
            last = (total <= len(rows)) if total is not None else (len(rows) < per_page)
            if not ids:
                last = True
            yield Page(rows, total, last, http_date(resp.headers.get("Date")))
            if last:
                return
            cursor = max(ids)

    def _in_lanes(self, client: PageSource) -> Iterator[Page]:
        """The first page comes first, as from one walk (its X-Total says how many rows lie above
        it); one descending page then gives the highest ids, and the ids between are split into
        equal ranges, each walked on its own thread — still immune to rows shifting, each walk
        costing at most one short page more than one walk would. Too little left: one walk."""
        walk = replace(self, lanes=1)._walk(client)
        first = next(walk)
        ids = [_row_id(o) for o in first.rows]
        above = (first.remaining or 0) - len(first.rows)
        if first.last or not ids or above < 4 * self.size * self.lanes:
            yield first
            yield from walk
            return
        walk.close()
        cursor = max(ids)
        top_resp = client.request(self.path, self._query("-id", cursor + 1, MAX_ID), validate=page_problem)
        top_rows = top_resp._netops_json  # type: ignore[attr-defined]
        top = Page(top_rows, int_header(top_resp.headers, "X-Total"), False, first.server_time)
        if not top_rows or (top.remaining is not None and top.remaining <= len(top_rows)):
            yield first
            yield Page(top_rows, top.remaining, True, first.server_time)
            return
        hi = min(_row_id(o) for o in top_rows)  # the middle: ids in (cursor, hi)
        bounds = [cursor + (hi - 1 - cursor) * i // self.lanes for i in range(self.lanes + 1)]
        yield from self._run_lanes(client, list(zip(bounds, bounds[1:], strict=False)), first, top)

    def _run_lanes(self, client: PageSource, ranges: list[tuple[int, int]], first: Page,
                   top: Page) -> Iterator[Page]:
        """Walk each (after, upto) range on its own thread (started before `first` is handed
        over, so they fetch while it is processed); pages in any order, the one held back until
        the walks end is yielded last with `last` set (the caller moves its mark on it)."""
        pages: queue.Queue[Any] = queue.Queue(maxsize=4 * self.lanes)
        stop = threading.Event()

        def lane(a: int, b: int) -> None:
            try:
                for page in replace(self, after_id=a, upto=b, lanes=1)._walk(client):
                    if stop.is_set():
                        return
                    pages.put(page)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
                pages.put(exc)
            finally:
                pages.put(None)

        threads = [threading.Thread(target=lane, args=(a, b), name=f"netops-lane-{self.resource}", daemon=True)
                   for a, b in ranges if b > a]
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
                with contextlib.suppress(queue.Empty):
                    pages.get(timeout=0.05)
            for t in threads:
                t.join()
