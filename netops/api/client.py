"""The 42 API client: paced under both budgets, retried, paged, and every call counted.

Why it looks like this:
- The API allows few calls per application key (2/s, 1,200/h by default), and many netops
  processes share a key: every call first claims its slot in the key's windows in PostgreSQL
  (netops/api/limiter.py), so all processes on all boxes of one database share one budget per
  key. With several keys (netops/api/keys.py) each call goes out on a key with budget left, with
  that key's own token; a key whose secret is refused is set aside and the others carry on.
- With latency above 1/budget, staying at the budget needs calls in flight concurrently: after the
  first page, `X-Total` tells how many pages remain and they are fetched by a small thread pool,
  each call still waiting for its slot from the limiter.
- No wasted calls: paging stops on `X-Total` (or the absence of `Link rel=next`), never on an
  extra empty page.
- Every request is reported as a CallRecord to the recorder the client is given (the commands give
  netops/db/api_calls.py's, which writes netops.api_calls); the client writes no SQL itself.
- Failures: 5xx, timeouts, resets and garbled bodies are retried with exponential backoff up to
  `max_attempts`; 429 blocks the key for every process for `Retry-After` (plus jitter); 401
  refreshes the token once.
  Anything else fails at once with one line naming the endpoint and the cause. One retry engine
  for the whole package (tenacity, here and for the token POST in auth.py): each attempt says
  whether it is final or worth another go, and after which pause.
"""

from __future__ import annotations

import copy
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from tenacity import Retrying, retry_if_exception_type, stop_never

from netops.api.auth import TokenManager
from netops.api.keys import ApiKey, load_keys
from netops.api.limiter import KeysExhausted, Limiter, LocalLimiter, PgLimiter
from netops.api.limiter import Pacer as Pacer  # re-exported: bench/report.py and tests name it here
from netops.api.record import CallRecord, Recorder
from netops.api.retry import backoff_seconds, int_header, retry_after_pause
from netops.config import Settings
from netops.errors import ApiError, AuthError
from netops.log import get_logger

_ID_SEGMENT = re.compile(r"/\d+(?=/|$)")
# Which component log a client's warnings (retries, 429 waits) go to, by its accounting name.
_LOG_OF_COMPONENT = {"stable": "stable", "backlog": "backlog", "detect": "backlog", "reconcile": "backlog"}
_MAX_429_WAITS = 10
#: Times one call gives back a slot it would have used too late (limiter.overdue) before it goes
#: out on the last one anyway: each new claim is as likely to be late as the first.
_MAX_RECLAIMS = 2


def endpoint_template(path: str) -> str:
    """`/v2/campus/12/achievements` -> `/v2/campus/:id/achievements` (for accounting)."""
    return _ID_SEGMENT.sub("/:id", path.split("?", 1)[0])


@dataclass
class PageInfo:
    """What the first page of an index told us."""

    total: int | None
    per_page: int
    pages: int | None


class ApiClient:
    """Talks to the 42 API (or the simulator) for one command run."""

    def __init__(self, settings: Settings, dsn: str | None = None, component: str = "sync",
                 recorder: Recorder | None = None) -> None:
        """`recorder` gets one CallRecord per request (netops/api/record.py); by default the
        commands' one, which writes `netops.api_calls` of `dsn` (netops/db/api_calls.py)."""
        self.settings = settings
        self.component = component
        if recorder is None:
            from netops.db.api_calls import CallRecorder

            recorder = CallRecorder(dsn)
        self.recorder: Recorder = recorder
        self.keys: list[ApiKey] = load_keys(settings)
        margin = settings.rate_window_margin
        self.limiter: Limiter = PgLimiter(dsn, margin) if dsn else LocalLimiter(margin)
        self._local = threading.local()
        self.tokens_by_key: dict[str, TokenManager] = {
            k.label: TokenManager(settings, self._session(), recorder=self.recorder, component=component,
                                  key=k, before_post=lambda k=k: self._token_slot(k))
            for k in self.keys}
        self.calls = 0
        self._calls_lock = threading.Lock()
        self.log = get_logger(_LOG_OF_COMPONENT.get(component, "stable"), settings.log_path)

    # -- plumbing ---------------------------------------------------------------------------
    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.concurrency + 2)
            s.mount("http://", adapter)
            s.mount("https://", adapter)
            s.headers["User-Agent"] = "netops (+https://github.com/netops)"
            self._local.session = s
        return s

    @property
    def concurrency(self) -> int:
        """Calls this client keeps in flight at most: NETOPS_MAX_CONCURRENCY per key — each key
        is a budget of its own, and N budgets need N times the calls in flight to be used."""
        return max(1, int(self.settings.max_concurrency)) * max(1, len(self.keys))

    def fork(self) -> ApiClient:
        """A view of this client with its own call counter (per-phase accounting when phases
        fetch at once), sharing what must be shared: the limiter (one budget per key), the
        tokens, the call recorder and the per-thread HTTP sessions."""
        twin = copy.copy(self)
        twin.calls = 0
        twin._calls_lock = threading.Lock()
        return twin

    @property
    def tokens(self) -> TokenManager:
        """The first key's token manager (the only one in the one-key default)."""
        return self.tokens_by_key[self.keys[0].label]

    def close(self) -> None:
        try:
            self.recorder.close()
        finally:
            self.limiter.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self) -> int:
        with self._calls_lock:
            self.calls += 1
            return self.calls

    # -- one logical call -------------------------------------------------------------------
    def request(self, path: str, params: dict[str, Any] | None = None,
                validate: Validator | None = None) -> requests.Response:
        """GET `path` with retries; returns the successful response (JSON already validated).

        `validate(data)` may return a problem string for a 200 whose JSON is unusable (a page
        with a row without an id, say): that answer is treated like a garbled body — recorded
        with the problem, retried with backoff, and named in the error if it never comes right.
        A real API glitches like that transiently; storing such a page would make the prune
        step delete the row whose id was lost.
        """
        url = f"{self.settings.api_url}{path}"
        endpoint = endpoint_template(path)
        state = _CallState()
        # the one retry engine (tenacity, as auth.py's token POST): each attempt decides itself
        # whether its outcome is final (returned, or a NetopsError raised) or worth another go
        # (_Again, carrying the pause before it), so the four policies read in one place below
        retrying = Retrying(retry=retry_if_exception_type(_Again), stop=stop_never, reraise=True,
                            wait=lambda rs: rs.outcome.exception().pause)  # type: ignore[union-attr]
        return retrying(self._attempt, url, endpoint, params, validate, state)

    def _attempt(self, url: str, endpoint: str, params: dict[str, Any] | None,
                 validate: Validator | None, state: _CallState) -> requests.Response:
        """One claim and one GET. Returns the good answer, raises the final error, or raises
        _Again: 5xx, timeouts, resets and garbled bodies after a backoff (up to max_attempts);
        429 at once, the limiter having blocked the key for every process for Retry-After (up
        to _MAX_429_WAITS); 401 at once after one token refresh (a second 401 is final)."""
        attempt = state.failures + 1
        key, token = self._claim()
        for _ in range(_MAX_RECLAIMS):
            if not self.limiter.overdue(key):
                break
            # the slot is counted at its claim plus the key's spread, and this call would go out
            # later still: give it back and claim again rather than land among later calls
            self.limiter.release(key)
            key, token = self._claim()
        # the round trip is measured from the slot's claim, not from before the wait for one
        claimed_at = self.limiter.claimed_at() or time.monotonic()
        started = time.time()
        sent_at = time.monotonic()
        status: int | None = None
        error: str | None = None
        resp: requests.Response | None = None
        try:
            resp = self._session().get(
                url, params=params, headers={"Authorization": f"Bearer {token}"},
                timeout=(5, self.settings.http_timeout),
            )
            status = resp.status_code
        except requests.Timeout:
            error = f"timeout after {self.settings.http_timeout:g}s"
        except requests.exceptions.ChunkedEncodingError:
            error = "answer cut short (connection closed mid-body)"
        except requests.ConnectionError as exc:
            error = "connection reset" if "reset" in str(exc).lower() or "aborted" in str(exc).lower() \
                else "connection failed"
        except requests.RequestException as exc:
            error = type(exc).__name__
        self._close_slot(key, claimed_at, sent_at, resp)
        duration = int((time.time() - started) * 1000)
        sec_rem = int_header(resp.headers, "X-Secondly-RateLimit-Remaining") if resp is not None else None
        hour_rem = int_header(resp.headers, "X-Hourly-RateLimit-Remaining") if resp is not None else None
        if resp is not None:
            self.limiter.adopt_limits(key, int_header(resp.headers, "X-Secondly-RateLimit-Limit"),
                                      int_header(resp.headers, "X-Hourly-RateLimit-Limit"))
        body_ok = True
        if status == 200 and resp is not None:
            try:
                resp._netops_json = resp.json()  # type: ignore[attr-defined]
            except ValueError:
                body_ok = False
                ctype = resp.headers.get("Content-Type", "?").split(";")[0]
                error = f"HTTP 200 with a body that is not JSON ({ctype})"
            except requests.RequestException:  # the body broke off while being read
                body_ok = False
                error = "answer cut short (connection closed mid-body)"
            if body_ok and validate is not None:
                problem = validate(resp._netops_json)  # type: ignore[attr-defined]
                if problem:
                    body_ok = False
                    error = f"HTTP 200 with {problem}"
        self._count()
        self.recorder.add(CallRecord(started, self.component, "GET", endpoint, status, duration, attempt,
                                     sec_rem, hour_rem, error, key.label))

        if status == 200 and body_ok:
            return resp  # type: ignore[return-value]
        if status == 401:
            if state.refreshed_on_401:
                raise AuthError(
                    f"GET {endpoint}: HTTP 401 again after a token refresh; check the application's "
                    "rights and NETOPS_CLIENT_ID/NETOPS_CLIENT_SECRET",
                    endpoint=endpoint, status=401,
                )
            state.refreshed_on_401 = True  # a refresh is not a failed attempt
            try:
                self.tokens_by_key[key.label].invalidate(token)
            except AuthError as exc:
                self._set_aside(key, exc)  # raises when it was the last key
            raise _Again(0.0)
        if status == 429:
            state.waits_429 += 1
            pause, retry_after = retry_after_pause(resp.headers if resp is not None else None)
            if state.waits_429 > _MAX_429_WAITS:
                raise ApiError(
                    f"GET {endpoint}: still rate limited (429) after {_MAX_429_WAITS} waits; another "
                    "client may share this key — lower NETOPS_RATE_PER_SECOND or retry later",
                    endpoint=endpoint, status=429,
                )
            self.log.warning(f"429 on {endpoint} (key {key.label}): every process keeps off the key "
                             f"for {pause:.1f}s (Retry-After {retry_after})")
            self.limiter.settle_429(key, pause, f"429 on {endpoint}, Retry-After {retry_after}")
            raise _Again(0.0)  # honoured waits do not use up attempts; the claim waits out the block
        if status is not None and 400 <= status < 500:
            raise ApiError(
                f"GET {endpoint}: HTTP {status} ({_reason(resp)}); the request itself is refused — "
                "check the endpoint, filters and the application's scopes",
                endpoint=endpoint, status=status,
            )
        last_problem = error or f"HTTP {status}"
        state.failures += 1
        if state.failures >= self.settings.max_attempts:
            raise ApiError(
                f"GET {endpoint}: {last_problem} after {state.failures} attempts; the API is failing — "
                "retry later (or raise NETOPS_MAX_ATTEMPTS / NETOPS_HTTP_TIMEOUT)",
                endpoint=endpoint, status=status,
            )
        backoff = backoff_seconds(state.failures)
        self.log.warning(f"{endpoint}: {last_problem}, retry {state.failures}/{self.settings.max_attempts - 1} "
                         f"in {backoff:.1f}s")
        raise _Again(backoff)

    def _claim(self) -> tuple[ApiKey, str]:
        """A slot on a key with budget left, and that key's bearer token.

        Tokens are made valid BEFORE the slot is claimed: a refresh (a POST that takes its own
        slot) between the claim and the call would send the call late, and a late call can land
        in the API's window together with the calls claimed after it. A key whose secret is
        refused here is set aside for every process (`netops status` shows it, an alert fires)
        and the call goes out on another key; with none left the error names them all.
        """
        while True:
            usable = [k for k in self.keys if not self.limiter.is_set_aside(k)]
            if not usable:
                raise KeysExhausted(f"every application key is set aside (its secret refused): "
                                    f"{', '.join(k.label for k in self.keys)}; fix the secrets — "
                                    "`netops status` lists the keys", endpoint="/oauth/token", status=401)
            tokens: dict[str, str] = {}
            got = self._tokens_at_once([k for k in usable if self.tokens_by_key[k.label].needs_refresh()])
            for k in usable:
                try:
                    if isinstance(got.get(k.label), AuthError):
                        raise got[k.label]
                    tokens[k.label] = self.tokens_by_key[k.label].get()
                except AuthError as exc:
                    self._set_aside(k, exc)
            if not tokens:
                continue
            key = self.limiter.acquire([k for k in usable if k.label in tokens])
            return key, tokens[key.label]

    def _tokens_at_once(self, due: list[ApiKey]) -> dict[str, AuthError | None]:
        """Refresh the tokens of several keys together (a first run with N keys and no stored
        tokens): one POST after another would put N round trips (1.1 s each on the real API)
        before the first call. Returns each key's AuthError (None when it got its token); one key
        needs no thread."""
        if len(due) < 2:
            return {}

        def one(k: ApiKey) -> AuthError | None:
            try:
                self.tokens_by_key[k.label].get()
            except AuthError as exc:
                return exc
            return None

        with ThreadPoolExecutor(max_workers=len(due), thread_name_prefix="netops-token") as pool:
            return dict(zip([k.label for k in due], pool.map(one, due), strict=True))

    def _token_slot(self, key: ApiKey) -> Callable[[requests.Response | None], None]:
        """A token POST takes a slot in its own key's budget like any call (TokenManager calls
        this just before it posts) and closes it when answered (the function returned): at the
        moment the answer's headers came back, the latest the API can have counted it — a POST's
        round trip says nothing of a GET's, so it feeds neither the key's floor nor its spread."""
        self.limiter.acquire_key(key)
        sent_at = time.monotonic()

        def done(resp: requests.Response | None) -> None:
            now = time.monotonic()
            since = 0.0 if resp is None else now - min(now, sent_at + resp.elapsed.total_seconds())
            self.limiter.complete(key, since, None)

        return done

    def _close_slot(self, key: ApiKey, claimed_at: float, sent_at: float,
                    resp: requests.Response | None) -> None:
        """Tell the limiter when this call's answer headers came back (`resp.elapsed` ends there,
        before the body is read) and how many calls the API had in its window: the limiter
        moves the slot to where the API counted the call (migration 012). No answer (timeout,
        reset): rtt None — the slot counts at the latest possible moment, now."""
        now = time.monotonic()
        if resp is None:
            self.limiter.complete(key, 0.0, None)
            return
        headers_at = min(now, sent_at + resp.elapsed.total_seconds())
        limit = int_header(resp.headers, "X-Secondly-RateLimit-Limit")
        left = int_header(resp.headers, "X-Secondly-RateLimit-Remaining")
        in_window = limit - left if limit is not None and left is not None and resp.status_code != 429 else None
        self.limiter.complete(key, now - headers_at, headers_at - claimed_at, in_window)

    def _set_aside(self, key: ApiKey, exc: AuthError) -> None:
        """Record a refused key for every process; re-raise when no other key is left (the one-key
        default then fails exactly as before: one line naming the credentials)."""
        self.limiter.set_aside(key, str(exc))
        others = [k for k in self.keys if k.label != key.label and not self.limiter.is_set_aside(k)]
        if not others:
            raise exc
        self.log.error(f"application key {key.label!r} ({key.client_id}) set aside: {exc}; carrying on with "
                       f"{', '.join(k.label for k in others)}")

    def get_json(self, path: str, params: dict[str, Any] | None = None,
                 validate: Validator | None = None) -> Any:
        resp = self.request(path, params, validate)
        return resp._netops_json  # type: ignore[attr-defined]

    # -- paging -----------------------------------------------------------------------------
    def iter_pages(self, path: str, params: dict[str, Any] | None = None,
                   on_info: Any = None) -> Iterator[list[dict[str, Any]]]:
        """Yield each page's list of objects. Order of pages after the first is not guaranteed.

        `on_info(PageInfo)` is called after the first page (progress bars, bookkeeping).

        Rows can shift between pages while we page (docs/api.md): a row deleted before our
        cursor moves every later row one place up, and the row at the next page boundary is
        never served; an insert serves one row twice. Page numbers cannot see that, so each
        pass over the listing is checked against its own first page's `X-Total`: fewer distinct
        ids than announced and the listing is read again (up to
        `_MAX_LISTING_PASSES` passes). Rows already yielded stay yielded — the loader upserts on
        the primary key, so the union of the passes is the full set (a row deleted meanwhile
        survives until the next sync, which is better than losing a live one). A listing that
        stays short with duplicates is a failure (`ApiError`); one that stays short without
        any, ending on a short last page each time with the same ids, means `X-Total` lies and
        is accepted with a warning. A final page that still advertises `rel="next"` is
        followed, so an `X-Total` that says too little cannot cut the listing short either.
        """
        base = dict(params or {})
        endpoint = endpoint_template(path)
        seen: set[Any] = set()
        last: _PassResult | None = None
        for pass_no in range(1, _MAX_LISTING_PASSES + 1):
            result = _PassResult()
            for page in self._one_pass(path, base, on_info if pass_no == 1 else None, result):
                fresh = [o for o in page if _row_id(o) not in seen] if pass_no > 1 else page
                seen.update(_row_id(o) for o in page)
                if fresh:
                    yield fresh
            last = result
            # every row X-Total announced has been served (an id served twice only means a row
            # was inserted before the cursor: the newcomer is caught by the next sync)
            if result.total is None or len(seen) >= result.total:
                return
            self.log.warning(
                f"{endpoint}: listing pass {pass_no} inconsistent (X-Total {result.total}, "
                f"{result.distinct} distinct ids, {result.dupes} served twice; {len(seen)} ids so far): "
                "rows shifted while paging or X-Total is off — reading the listing again"
            )
        assert last is not None and last.total is not None
        if last.dupes == 0 and last.distinct == len(seen):
            self.log.warning(
                f"{endpoint}: X-Total says {last.total} but {_MAX_LISTING_PASSES} full passes each "
                f"ended after the same {len(seen)} rows; keeping them (the API's X-Total is off)"
            )
            return
        raise ApiError(
            f"GET {endpoint}: rows kept shifting while paging ({len(seen)} distinct rows of "
            f"X-Total {last.total} after {_MAX_LISTING_PASSES} passes); retry later",
            endpoint=endpoint,
        )

    def _one_pass(self, path: str, base: dict[str, Any], on_info: Any,
                  result: _PassResult) -> Iterator[list[dict[str, Any]]]:
        """One read of a listing, page 1 first, then the rest concurrently; fills `result`."""
        size = self.settings.page_size
        first = self.request(path, {**base, "page[size]": size, "page[number]": 1}, page_problem)
        items = first._netops_json  # type: ignore[attr-defined]
        per_page = int_header(first.headers, "X-Per-Page") or size
        total = int_header(first.headers, "X-Total")
        pages = math.ceil(total / per_page) if total is not None and per_page > 0 else None
        result.total = total
        if on_info:
            on_info(PageInfo(total, per_page, pages))
        result.add(items)
        yield items
        number, resp = 1, first
        if pages is not None:
            for n, page_resp in self._fetch_pages(path, base, per_page, range(2, pages + 1)):
                page = page_resp._netops_json  # type: ignore[attr-defined]
                if n == pages:
                    number, resp, items = n, page_resp, page
                result.add(page)
                yield page
            if number != max(pages, 1) or not items or "next" not in resp.links:
                return  # the normal case: the page X-Total called last says it is the last
        # No X-Total (or a last page that still links on): follow Link rel=next; with no Link
        # header either, stop on a short page. A page that brings no new id ends it too, so a
        # server that serves the same page forever cannot keep us here.
        while items:
            more = ("next" in resp.links) if resp.headers.get("Link") else len(items) >= per_page
            if not more:
                break
            number += 1
            resp = self.request(path, {**base, "page[size]": per_page, "page[number]": number}, page_problem)
            items = resp._netops_json  # type: ignore[attr-defined]
            if not result.add(items):
                break
            yield items

    def _fetch_pages(self, path: str, base: dict[str, Any], per_page: int,
                     numbers: range) -> Iterator[tuple[int, requests.Response]]:
        if len(numbers) == 0:
            return
        workers = max(1, min(self.concurrency, len(numbers)))
        todo = iter(numbers)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="netops-page") as pool:
            running: dict[Future[Any], int] = {}

            def submit_next() -> bool:
                n = next(todo, None)
                if n is None:
                    return False
                fut = pool.submit(self.request, path, {**base, "page[size]": per_page, "page[number]": n},
                                  page_problem)
                running[fut] = n
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


class _Again(Exception):
    """One attempt's outcome is worth another go, after `pause` seconds (tenacity's wait)."""

    def __init__(self, pause: float) -> None:
        super().__init__(pause)
        self.pause = pause


@dataclass
class _CallState:
    """What the attempts of one logical call have used up so far."""

    failures: int = 0  # 5xx, timeouts, resets, garbled bodies (each counts against max_attempts)
    waits_429: int = 0
    refreshed_on_401: bool = False


Validator = Callable[[Any], "str | None"]
_MAX_LISTING_PASSES = 3


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


def _row_id(obj: dict[str, Any]) -> Any:
    return int(obj["id"])  # page_problem guarantees an integer-like id


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


def _reason(resp: requests.Response | None) -> str:
    if resp is None:
        return "no answer"
    try:
        body = resp.json()
        if isinstance(body, dict):
            return str(body.get("error_description") or body.get("error") or body.get("message") or resp.reason)
    except ValueError:
        pass
    return str(resp.reason)


def __getattr__(name: str) -> Any:
    """`CallRecorder` moved to netops/db/api_calls.py (the SQL belongs to db/); this keeps
    `from netops.api.client import CallRecorder` (and CallRecord) working for older callers."""
    if name == "CallRecorder":
        from netops.db.api_calls import CallRecorder

        return CallRecorder
    raise AttributeError(name)
