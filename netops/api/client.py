"""The 42 API client: paced under both budgets, retried, paged, and every call counted.

The parts, each in its own module: transport.py sends one request; policy.py classifies its
answer (retry, refresh the token, wait for the key, fail); paging.py walks listings (numbered
pages by X-Total, keyset walks by id); limiter.py claims each call's slot in the key's shared
budget; auth.py keeps each key's token. This module strings them together for one command run.

- Many netops processes share a key's budget (docs/api.md has the limits): every call first
  claims its slot in the key's windows in PostgreSQL, so all processes on all boxes of one
  database share one budget per key. With several keys (keys.py) each call goes out on a key
  with budget left, with that key's own token; a key whose secret is refused is set aside.
- Every request is reported as a CallRecord to the recorder the client is given (the commands give
  netops/db/api_calls.py's, which writes netops.api_calls); the client writes no SQL itself.
- One retry engine for the whole package (tenacity, here and for the token POST in auth.py): each
  attempt says whether it is final or worth another go, and after which pause.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests
from tenacity import Retrying, retry_if_exception_type, stop_never

from netops import stop
from netops.api import transport
from netops.api.auth import TokenManager
from netops.api.limiter import BudgetWait, KeysExhausted, Limiter, LocalLimiter, PgLimiter
from netops.api.paging import KeysetPager, XTotalPager, endpoint_template
from netops.api.policy import Action, Verdict, backoff_seconds, classify, int_header, refusal_reason
from netops.api.transport import Validator
from netops.config import Settings
from netops.credentials import ApiKey
from netops.db.api_calls import CallRecord, Recorder
from netops.errors import ApiError, AuthError
from netops.log import get_logger

# Which component log a client's warnings (retries, 429 waits) go to, by its accounting name.
_LOG_OF_COMPONENT = {"stable": "stable", "backlog": "backlog", "detect": "backlog", "reconcile": "backlog",
                     "verify-links": "stable"}
_MAX_429_WAITS = 10
#: Times one call gives back a slot it would have used too late (limiter.overdue) before it goes
#: out on the last one anyway: each new claim is as likely to be late as the first.
_MAX_RECLAIMS = 2


class ApiClient:
    """Talks to the 42 API (or the simulator) for one command run."""

    def __init__(self, settings: Settings, dsn: str | None = None, component: str = "sync",
                 recorder: Recorder | None = None) -> None:
        """`recorder` gets one CallRecord per request (netops/db/api_calls.py); by default the
        commands' one, which writes `netops.api_calls` of `dsn` (netops/db/api_calls.py)."""
        self.settings = settings
        self.component = component
        if recorder is None:
            from netops.db.api_calls import CallRecorder

            recorder = CallRecorder(dsn)
        self.recorder: Recorder = recorder
        self.keys: list[ApiKey] = settings.require_keys()
        margin = settings.rate_window_margin
        self.limiter: Limiter = PgLimiter(dsn, margin, component) if dsn else LocalLimiter(margin, component)
        self.limiter.add_wait_hook(self._log_budget_wait)
        self._wait_logged = 0.0  # when the last "waiting for API budget" line was logged (monotonic)
        self._local = threading.local()
        self.tokens_by_key: dict[str, TokenManager] = {
            k.label: TokenManager(settings, self._session(), recorder=self.recorder, component=component,
                                  key=k, before_post=lambda k=k: self._token_slot(k))
            for k in self.keys}
        self.calls = 0
        self._calls_lock = threading.Lock()
        self.log = get_logger(_LOG_OF_COMPONENT.get(component, "stable"), settings.log_path)

    # -- plumbing ---------------------------------------------------------------------------
    def _log_budget_wait(self, wait: BudgetWait | None) -> None:
        """The job's log says it waits for budget (once a minute while it does) and when it ends."""
        if wait is None:
            if self._wait_logged:
                self.log.info(f"{self.component}: API budget available again, calls resume")
            self._wait_logged = 0.0
        elif time.monotonic() - self._wait_logged >= 60.0:
            self._wait_logged = time.monotonic()
            self.log.warning(f"{self.component}: {wait.line()} (waited {wait.waited:.0f} s so far; "
                             "Ctrl-C stops the job cleanly)")

    def _session(self) -> requests.Session:
        """This thread's HTTP session (requests' sessions are not shared between threads)."""
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = transport.new_session(self.concurrency + 2)
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
        # (_Again, carrying the pause before it)
        retrying = Retrying(retry=retry_if_exception_type(_Again), stop=stop_never, reraise=True,
                            wait=lambda rs: rs.outcome.exception().pause,  # type: ignore[union-attr]
                            sleep=stop.sleep)  # a backoff ends at once on SIGINT/SIGTERM (netops/stop.py)
        return retrying(self._attempt, url, endpoint, params, validate, state)

    def _attempt(self, url: str, endpoint: str, params: dict[str, Any] | None,
                 validate: Validator | None, state: _CallState) -> requests.Response:
        """One claim, one GET (netops/api/transport.py), one verdict (netops/api/policy.py):
        returns the good answer, raises the final error, or raises _Again with the pause."""
        attempt = state.failures + 1
        stop.check()  # SIGINT/SIGTERM: no new call goes out (netops/stop.py)
        key, token = self._claim_in_time()
        # the round trip is measured from the slot's claim, not from before the wait for one
        claimed_at = self.limiter.claimed_at() or time.monotonic()
        started = time.time()
        sent_at = time.monotonic()
        answer = transport.get(self._session(), url, params, token, self.settings.http_timeout)
        self._close_slot(key, claimed_at, sent_at, answer.resp)
        duration = int((time.time() - started) * 1000)
        error = self._read_answer(key, answer, validate)
        headers = answer.resp.headers if answer.resp is not None else None
        verdict = classify(answer.status, error, headers)
        self._count()
        self.recorder.add(CallRecord(
            started, self.component, "GET", endpoint, answer.status, duration, attempt,
            int_header(headers, "X-Secondly-RateLimit-Remaining") if headers is not None else None,
            int_header(headers, "X-Hourly-RateLimit-Remaining") if headers is not None else None,
            error, key.label))
        if verdict.action is Action.DONE:
            return answer.resp  # type: ignore[return-value]
        if verdict.action is Action.REFRESH:
            self._refresh_after_401(key, token, endpoint, state)
        if verdict.action is Action.WAIT_KEY:
            self._wait_for_key(key, endpoint, verdict, state)
        if verdict.action is Action.FAIL:
            raise ApiError(
                f"GET {endpoint}: HTTP {answer.status} ({refusal_reason(answer.resp)}); the request itself "
                "is refused — check the endpoint, filters and the application's scopes",
                endpoint=endpoint, status=answer.status,
            )
        self._retry_later(endpoint, verdict, answer.status, state)
        raise AssertionError("unreachable: every verdict returns or raises")  # pragma: no cover

    def _claim_in_time(self) -> tuple[ApiKey, str]:
        """A slot, and its key's token, that this call can still use: a slot counted at its claim
        plus the key's spread, by a call that would go out later still, is given back and claimed
        again rather than land among later calls (at most _MAX_RECLAIMS times)."""
        key, token = self._claim()
        for _ in range(_MAX_RECLAIMS):
            if not self.limiter.overdue(key):
                break
            self.limiter.release(key)
            key, token = self._claim()
        return key, token

    def _read_answer(self, key: ApiKey, answer: transport.Answer, validate: Validator | None) -> str | None:
        """Adopt the key's limits from the answer's headers and parse a 200's body; returns what
        went wrong (no answer, or an unusable body), as recorded."""
        resp = answer.resp
        if resp is None:
            return answer.error
        self.limiter.adopt_limits(key, int_header(resp.headers, "X-Secondly-RateLimit-Limit"),
                                  int_header(resp.headers, "X-Hourly-RateLimit-Limit"))
        return transport.read_json(resp, validate) if resp.status_code == 200 else None

    def _refresh_after_401(self, key: ApiKey, token: str, endpoint: str, state: _CallState) -> None:
        """A 401 refreshes the token once and tries again at once; a second 401 is final."""
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

    def _wait_for_key(self, key: ApiKey, endpoint: str, verdict: Verdict, state: _CallState) -> None:
        """A 429 blocks the key for every process for Retry-After; the next claim waits it out,
        and honoured waits use up no attempt (up to _MAX_429_WAITS)."""
        state.waits_429 += 1
        if state.waits_429 > _MAX_429_WAITS:
            raise ApiError(
                f"GET {endpoint}: still rate limited (429) after {_MAX_429_WAITS} waits; another "
                "client may share this key — lower NETOPS_RATE_PER_SECOND or retry later",
                endpoint=endpoint, status=429,
            )
        self.log.warning(f"429 on {endpoint} (key {key.label}): every process keeps off the key "
                         f"for {verdict.pause:.1f}s (Retry-After {verdict.retry_after})")
        self.limiter.settle_429(key, verdict.pause, f"429 on {endpoint}, Retry-After {verdict.retry_after}")
        raise _Again(0.0)

    def _retry_later(self, endpoint: str, verdict: Verdict, status: int | None, state: _CallState) -> None:
        """5xx, timeouts, resets and garbled bodies: another go after a backoff, up to max_attempts."""
        state.failures += 1
        if state.failures >= self.settings.max_attempts:
            raise ApiError(
                f"GET {endpoint}: {verdict.problem} after {state.failures} attempts; the API is failing — "
                "retry later (or raise NETOPS_MAX_ATTEMPTS / NETOPS_HTTP_TIMEOUT)",
                endpoint=endpoint, status=status,
            )
        backoff = backoff_seconds(state.failures)
        self.log.warning(f"{endpoint}: {verdict.problem}, retry {state.failures}/{self.settings.max_attempts - 1} "
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
        tokens): one POST after another would put N token round trips before the first call. Returns each key's AuthError (None when it got its token); one key
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
        moves the slot to where the API counted the call. No answer (timeout,
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
        default then fails with one line naming the credentials)."""
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

    # -- paging ---------------------------------------------------------------------------
    def paginate(self, pager: XTotalPager | KeysetPager) -> Iterator[Any]:
        """The pages `pager` walks, each fetched through this client (paced, retried, counted)."""
        return pager.pages(self)

    def iter_pages(self, path: str, params: dict[str, Any] | None = None,
                   on_info: Any = None) -> Iterator[list[dict[str, Any]]]:
        """Yield each page's list of objects (netops/api/paging.py XTotalPager); pages after the
        first come in any order. `on_info(PageInfo)` is called after the first page."""
        return self.paginate(XTotalPager(path, params, self.settings.page_size, on_info))


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
