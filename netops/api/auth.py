"""OAuth2 client-credentials token for the 42 API, kept in a 0600 file and refreshed before it runs out.

The token file lets separate cron jobs (sync, backlog, token refresh) share one token instead of
each asking for a new one, which the API counts against the application. A token is refreshed
when its TTL falls under `token_min_ttl` (default 1 h: a nightly sync must never run out mid-way),
and once more whenever the API answers 401 (revoked or expired early).

What keeps the token store honest:
- It records *which credentials* obtained the token, as a fingerprint (HMAC-SHA256 keyed by the
  secret over the API URL and client id; the secret itself is never stored): a configured secret
  that differs from the one that obtained the cached token forces a new token, so a wrong secret
  fails the next run instead of going unnoticed while the old token lives.
- A token the API answered 401 to is marked `refused_at` in the store, so `netops token status`
  says so and `netops token refresh` replaces it without --force.
- Every POST /oauth/token is recorded in netops.api_calls like any call (when a recorder is
  given), so refused credentials count as 401s for the alert.
- A run asks at most once with credentials the API refused: every later refresh by the same
  TokenManager (one per command run, shared by its threads) fails at once with the same error,
  so threads fetching in parallel make no burst of refused requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from netops.api.policy import backoff_seconds, retry_after_pause
from netops.api.token_store import (  # noqa: F401 - re-exported: the CLI and tests name them here
    credential_fingerprint,
    load_token_file,
    mark_refused,
    read_store_file,
    token_refused,
    token_ttl,
    write_private,
)
from netops.config import Settings
from netops.errors import ApiError, AuthError
from netops.log import add_secret, get_logger

if TYPE_CHECKING:  # pragma: no cover
    from netops.credentials import ApiKey


def configured_fingerprint(settings: Settings) -> str | None:
    """The fingerprint of the configured credentials; None when they are not (all) configured —
    a monitoring command may run without them, and then cannot compare."""
    from netops.config import ConfigError

    try:
        client_id, secret = settings.require_credentials()
    except ConfigError:
        return None
    return credential_fingerprint(settings.api_url, client_id, secret)


def read_store(settings: Settings) -> dict[str, Any] | None:
    """The default key's token store as written (see read_store_file)."""
    return read_store_file(settings.token_file)


def load_token(settings: Settings) -> dict[str, Any] | None:
    """The default key's stored token if it was obtained for this API URL with the configured
    credentials, else None (see load_token_file)."""
    return load_token_file(settings.token_file, settings.api_url, settings.client_id,
                           configured_fingerprint(settings))


class _TransientTokenError(Exception):
    """A token request a retry may fix (the API unreachable or failing)."""

    def __init__(self, problem: str, status: int | None = None, retry_after: float | None = None,
                 fix: str = "the API is failing — retry later") -> None:
        super().__init__(problem)
        self.status = status
        self.retry_after = retry_after
        self.fix = fix


def _token_wait(rs: RetryCallState) -> float:
    """Retry-After when a 429 gave one, else the client's backoff (netops/api/policy.py)."""
    exc = rs.outcome.exception() if rs.outcome is not None else None
    if isinstance(exc, _TransientTokenError) and exc.retry_after is not None:
        return exc.retry_after
    return backoff_seconds(rs.attempt_number)


class TokenManager:
    """Hands out a valid bearer token; thread-safe, so concurrent page fetches share one refresh.

    One manager per application key (`key`; None = the default NETOPS_CLIENT_ID key, read when
    first needed), each with its own token file. `recorder` (a netops.db.api_calls.Recorder)
    gets one record per POST /oauth/token, under `component`, so token requests are counted with
    every other call. `before_post`, when given, is called before each POST /oauth/token: the
    client passes its limiter's claim for this key, so a token request takes its slot in the
    key's budget like any call; what it returns (if anything) is called with the answer (None:
    no answer), so the slot is closed where the API counted the POST.
    """

    def __init__(self, settings: Settings, session: requests.Session | None = None,
                 recorder: Any = None, component: str = "token", key: ApiKey | None = None,
                 before_post: Callable[[], Callable[[requests.Response | None], None] | None] | None = None
                 ) -> None:
        self.settings = settings
        self.key = key
        self.before_post = before_post
        self.token_file = key.token_file if key is not None else settings.token_file
        self.session = session or requests.Session()
        self.recorder = recorder
        self.component = component
        self._lock = threading.Lock()
        self._token: dict[str, Any] | None = None
        self.refreshes = 0
        self.log = get_logger("token", settings.log_path)
        # credentials the API refused, by fingerprint: asked once per manager (one per command run,
        # shared by all its threads), never again — the answer would not change
        self._refused: dict[str, AuthError] = {}

    def current(self) -> dict[str, Any] | None:
        if self._token is None:
            if self.key is None:
                self._token = load_token(self.settings)
            else:
                fp = credential_fingerprint(self.settings.api_url, self.key.client_id, self.key.secret)
                self._token = load_token_file(self.token_file, self.settings.api_url, self.key.client_id, fp)
        return self._token

    def ttl(self) -> int | None:
        return token_ttl(self.current())

    def needs_refresh(self) -> bool:
        """Whether `get()` would POST first (no token, refused, or below the minimum TTL)."""
        ttl = self.ttl()
        return token_refused(self._token) or ttl is None or ttl < self.settings.token_min_ttl

    def get(self) -> str:
        """A token with at least `token_min_ttl` seconds left, refreshing first if needed."""
        with self._lock:
            ttl = self.ttl()
            if token_refused(self._token):
                self._refresh_locked(reason="stored token refused by the API")
            elif ttl is None or ttl < self.settings.token_min_ttl:
                self._refresh_locked(reason="none stored" if ttl is None else f"TTL {ttl}s")
            assert self._token is not None
            return self._token["access_token"]

    def invalidate(self, token: str) -> None:
        """Called on a 401: mark `token` refused in the store (so `token status` tells the truth
        even if no new token can be had) and fetch a new one — once, even when several threads
        saw the same 401."""
        with self._lock:
            if self._token and self._token.get("access_token") == token:
                self.log.warning("API answered 401 → token refused, refreshing")
                mark_refused(self.token_file, token)
                self._token = None
                self._refresh_locked(reason="401 from API")

    def check(self, force: bool = False) -> dict[str, Any]:
        """`netops token status|refresh`: log the TTL decision in the seed's words, refresh if due
        (none stored, below the minimum TTL, refused by the API, or obtained with other credentials)."""
        with self._lock:
            ttl = self.ttl()
            minimum = self.settings.token_min_ttl
            stored = read_store_file(self.token_file)
            other_creds = ttl is None and stored is not None and stored.get("api_url") == self.settings.api_url
            refused = token_refused(self._token)
            if force or ttl is None or ttl < minimum or refused:
                if refused:
                    self.log.info(f"Token refused by the API (HTTP 401 at "
                                  f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(float(self._token['refused_at'])))})"  # type: ignore[index]
                                  " → Refreshing")
                elif other_creds:
                    self.log.info("Stored token was obtained with other credentials (NETOPS_CLIENT_ID/SECRET "
                                  "changed) → Refreshing")
                elif ttl is None:
                    self.log.info("No token stored → Refreshing")
                elif force:
                    self.log.info(f"Token TTL: {ttl}s → Refresh forced")
                else:
                    self.log.info(f"Token TTL: {ttl}s (<{minimum}s) → Refreshing")
                self._refresh_locked(reason="check")
                refreshed = True
            else:
                self.log.info(f"Token TTL: {ttl}s (>{minimum}s) → No refresh needed")
                refreshed = False
            tok = self._token or {}
            return {
                "refreshed": refreshed,
                "ttl_seconds": self.ttl(),
                "expires_at": tok.get("expires_at"),
                "secret_valid_until": tok.get("secret_valid_until"),
                "api_url": self.settings.api_url,
            }

    def _post_token(self, client_id: str, secret: str) -> dict[str, Any]:
        """One POST /oauth/token. Refused credentials fail at once (AuthError); what a retry can
        fix — unreachable, 5xx, 429, an answer without a token — raises _TransientTokenError."""
        url = f"{self.settings.api_url}/oauth/token"
        answered = self.before_post() if self.before_post is not None else None
        started = time.time()
        try:
            resp = self.session.post(
                url,
                data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
                timeout=(5, self.settings.http_timeout),
            )
        except requests.RequestException as exc:
            if answered is not None:
                answered(None)
            self._record(started, None, type(exc).__name__)
            raise _TransientTokenError(f"cannot reach {self.settings.api_url} ({type(exc).__name__})",
                                       fix="check NETOPS_API_URL and the network") from None
        if answered is not None:
            answered(resp)
        self._record(started, resp.status_code, None if resp.status_code == 200 else f"HTTP {resp.status_code}")
        if resp.status_code in (400, 401):
            try:
                err = resp.json().get("error", "invalid_client")
            except (ValueError, AttributeError):
                err = "invalid_client"
            self.log.error(f"Token refresh refused: HTTP {resp.status_code} ({err})")
            where = self._credential_origin()
            raise AuthError(
                f"POST /oauth/token: credentials refused (HTTP {resp.status_code}, {err}); "
                f"check {where}",
                endpoint="/oauth/token",
                status=resp.status_code,
            )
        if resp.status_code == 429 or resp.status_code >= 500:
            retry_after = retry_after_pause(resp.headers)[0] if resp.status_code == 429 else None
            raise _TransientTokenError(f"HTTP {resp.status_code}", status=resp.status_code, retry_after=retry_after)
        try:
            body = resp.json()
            if not isinstance(body.get("access_token"), str):
                raise ValueError("no access_token")
            int(body.get("expires_in", 7200))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise _TransientTokenError(f"HTTP {resp.status_code} without a usable token",
                                       status=resp.status_code) from None
        return body

    def _credential_origin(self) -> str:
        """The settings the refused credentials came from, as the operator gave them (an env
        variable, a secret file, a config file key, a [[keys]] entry): the ones to fix."""
        from netops.credentials import DEFAULT_LABEL

        key = self.key or next((k for k in self.settings.keys.keys if k.label == DEFAULT_LABEL), None)
        if key is None:
            return "NETOPS_CLIENT_ID and NETOPS_CLIENT_SECRET"
        if key.label == DEFAULT_LABEL:
            return f"{key.source} and {key.secret_source}"
        return f"the secret of key {key.label!r} ({key.secret_source})"

    def _record(self, started: float, status: int | None, error: str | None) -> None:
        """One netops.api_calls row for this token request (a refused one counts as a 401)."""
        if self.recorder is None:
            return
        from netops.db.api_calls import CallRecord  # here: `netops token` needs no psycopg2

        self.recorder.add(CallRecord(started, self.component, "POST", "/oauth/token", status,
                                     int((time.time() - started) * 1000), 1, None, None, error,
                                     self.key.label if self.key is not None else None))

    def _refresh_locked(self, reason: str) -> None:
        if self.key is not None:
            client_id, secret = self.key.client_id, self.key.secret
        else:
            client_id, secret = self.settings.require_credentials()
        add_secret(secret)
        fp = credential_fingerprint(self.settings.api_url, client_id, secret)
        refused = self._refused.get(fp)
        if refused is not None:  # asked once already in this run: the answer will not change
            raise refused
        attempts = max(1, self.settings.max_attempts)
        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=_token_wait,
            retry=retry_if_exception_type(_TransientTokenError),
            before_sleep=lambda rs: self.log.warning(
                f"Token refresh: {rs.outcome.exception()}, retry {rs.attempt_number}/{attempts - 1} "
                f"in {rs.next_action.sleep:.1f}s"),
            reraise=True,
        )
        try:
            body = retrying(self._post_token, client_id, secret)
        except AuthError as exc:
            self._refused[fp] = exc
            if self.recorder is not None:
                try:
                    self.recorder.flush()  # the alert counts it now, not when the run ends
                except Exception as flush_exc:  # noqa: BLE001 - accounting must not hide the real error
                    self.log.warning(f"could not record the refused token request: {flush_exc}")
            raise
        except _TransientTokenError as exc:
            self.log.error(f"Token refresh failed: {exc} after {attempts} attempt(s)")
            raise ApiError(f"POST /oauth/token: {exc} after {attempts} attempt(s); {exc.fix}",
                           endpoint="/oauth/token", status=exc.status) from None
        access = body["access_token"]
        expires_in = int(body.get("expires_in", 7200))
        add_secret(access)
        created = float(body.get("created_at") or time.time())
        token = {
            "access_token": access,
            "token_type": body.get("token_type", "bearer"),
            "created_at": created,
            "expires_at": time.time() + expires_in,
            # when the credentials last worked (the API's created_at is the token's, handed out again
            # while valid): a 401 before it is cleared (netops/monitor/evaluation.py)
            "obtained_at": time.time(),
            "secret_valid_until": body.get("secret_valid_until"),
            "api_url": self.settings.api_url,
            "client_id": client_id,
            "credential_fp": fp,
        }
        write_private(self.token_file, token)
        self._token = token
        self.refreshes += 1
        self.log.info(f"Token refreshed, new TTL: {expires_in}s ({reason})")
        self._warn_secret_expiry(token["secret_valid_until"])

    def _warn_secret_expiry(self, svu: Any) -> None:
        if svu:
            days = (float(svu) - time.time()) / 86400
            if days < self.settings.secret_warn_days:
                self.log.warning(
                    f"Application secret expires in {days:.1f} days: rotate it in the 42 intra "
                    f"and update {self._credential_origin().rsplit(' and ', 1)[-1]}"
                )
