"""OAuth2 client-credentials token for the 42 API, kept in a 0600 file and refreshed before it runs out.

The token file lets separate cron jobs (sync, backlog, token refresh) share one token instead of
each asking for a new one, which the API counts against the application. A token is refreshed
when its TTL falls under `token_min_ttl` (default 1 h: a nightly sync must never run out mid-way),
and once more whenever the API answers 401 (revoked or expired early).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from netops.api.retry import backoff_seconds, retry_after_pause
from netops.config import Settings
from netops.errors import ApiError, AuthError
from netops.log import add_secret, get_logger

if TYPE_CHECKING:  # pragma: no cover
    from netops.api.keys import ApiKey


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically with mode 0600 from the first byte (no window where it is readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_token(settings: Settings) -> dict[str, Any] | None:
    """The default key's stored token if it belongs to this API URL and client id, else None."""
    return load_token_file(settings.token_file, settings.api_url, settings.client_id)


def load_token_file(path: Path, api_url: str, client_id: str | None) -> dict[str, Any] | None:
    """A stored token (any key's file) if it belongs to this API URL and client id, else None."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("api_url") != api_url or (client_id and data.get("client_id") != client_id):
        return None
    if data.get("access_token"):
        add_secret(data["access_token"])
    return data


def token_ttl(data: dict[str, Any] | None, now: float | None = None) -> int | None:
    """Seconds left on a stored token (negative when expired), None when there is none."""
    if not data:
        return None
    return int(float(data.get("expires_at", 0)) - (now or time.time()))


class _TransientTokenError(Exception):
    """A token request a retry may fix (the API unreachable or failing)."""

    def __init__(self, problem: str, status: int | None = None, retry_after: float | None = None,
                 fix: str = "the API is failing — retry later") -> None:
        super().__init__(problem)
        self.status = status
        self.retry_after = retry_after
        self.fix = fix


def _token_wait(rs: RetryCallState) -> float:
    """Retry-After when a 429 gave one, else the client's backoff (netops/api/retry.py)."""
    exc = rs.outcome.exception() if rs.outcome is not None else None
    if isinstance(exc, _TransientTokenError) and exc.retry_after is not None:
        return exc.retry_after
    return backoff_seconds(rs.attempt_number)


class TokenManager:
    """Hands out a valid bearer token; thread-safe, so concurrent page fetches share one refresh.

    One manager per application key (`key`; None = the default NETOPS_CLIENT_ID key, read when
    first needed). `before_post`, when given, is called before each POST /oauth/token: the
    client passes its limiter's claim for this key, so a token request takes its slot in the
    key's budget like any call.
    """

    def __init__(self, settings: Settings, session: requests.Session | None = None,
                 key: ApiKey | None = None, before_post: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.key = key
        self.before_post = before_post
        self.token_file = key.token_file if key is not None else settings.token_file
        self.session = session or requests.Session()
        self._lock = threading.Lock()
        self._token: dict[str, Any] | None = None
        self.refreshes = 0
        self.log = get_logger("token", settings.log_path)

    def current(self) -> dict[str, Any] | None:
        if self._token is None:
            client_id = self.key.client_id if self.key is not None else self.settings.client_id
            self._token = load_token_file(self.token_file, self.settings.api_url, client_id)
        return self._token

    def ttl(self) -> int | None:
        return token_ttl(self.current())

    def get(self) -> str:
        """A token with at least `token_min_ttl` seconds left, refreshing first if needed."""
        with self._lock:
            ttl = self.ttl()
            if ttl is None or ttl < self.settings.token_min_ttl:
                self._refresh_locked(reason="none stored" if ttl is None else f"TTL {ttl}s")
            assert self._token is not None
            return self._token["access_token"]

    def invalidate(self, token: str) -> None:
        """Called on a 401: drop `token` so the next get() fetches a new one (once, even when
        several threads saw the same 401)."""
        with self._lock:
            if self._token and self._token.get("access_token") == token:
                self.log.warning("API answered 401 → token refused, refreshing")
                self._token = None
                self._refresh_locked(reason="401 from API")

    def check(self, force: bool = False) -> dict[str, Any]:
        """`netops token status|refresh`: log the TTL decision in the seed's words, refresh if due."""
        with self._lock:
            ttl = self.ttl()
            minimum = self.settings.token_min_ttl
            if force or ttl is None or ttl < minimum:
                if ttl is None:
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
        if self.before_post is not None:
            self.before_post()
        try:
            resp = self.session.post(
                url,
                data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
                timeout=(5, self.settings.http_timeout),
            )
        except requests.RequestException as exc:
            raise _TransientTokenError(f"cannot reach {self.settings.api_url} ({type(exc).__name__})",
                                       fix="check NETOPS_API_URL and the network") from None
        if resp.status_code in (400, 401):
            try:
                err = resp.json().get("error", "invalid_client")
            except (ValueError, AttributeError):
                err = "invalid_client"
            self.log.error(f"Token refresh refused: HTTP {resp.status_code} ({err})")
            where = ("NETOPS_CLIENT_ID and NETOPS_CLIENT_SECRET" if self.key is None or self.key.label == "default"
                     else f"the secret of key {self.key.label!r} ({self.key.source})")
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

    def _refresh_locked(self, reason: str) -> None:
        if self.key is not None:
            client_id, secret = self.key.client_id, self.key.secret
        else:
            client_id, secret = self.settings.require_credentials()
        add_secret(secret)
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
            "secret_valid_until": body.get("secret_valid_until"),
            "api_url": self.settings.api_url,
            "client_id": client_id,
        }
        _write_private(self.token_file, token)
        self._token = token
        self.refreshes += 1
        self.log.info(f"Token refreshed, new TTL: {expires_in}s ({reason})")
        svu = token["secret_valid_until"]
        if svu:
            days = (float(svu) - time.time()) / 86400
            if days < self.settings.secret_warn_days:
                self.log.warning(
                    f"Application secret expires in {days:.1f} days: rotate it in the 42 intra "
                    "and update NETOPS_CLIENT_SECRET"
                )
