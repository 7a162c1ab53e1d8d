"""What to do with one answer of the API: small pure functions, shared by GETs and the token POST.

`classify` sorts an answer (or the absence of one) into a `Verdict`: done, retry after a backoff,
refresh the token, wait for the key (429), or fail at once. The client (netops/api/client.py)
decides from the verdict and what the call has used up so far; the API's behaviour these rules
follow (status codes, Retry-After, rate-limit headers) is in docs/api.md.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Any

import requests


class Action(enum.Enum):
    DONE = "done"            # a usable answer
    RETRY = "retry"          # 5xx, timeout, reset, garbled body: worth another go after a backoff
    REFRESH = "refresh"      # 401: the token was refused; a new one may do
    WAIT_KEY = "wait_key"    # 429: every process keeps off the key for Retry-After
    FAIL = "fail"            # any other 4xx: the request itself is refused, retrying cannot help


@dataclass(frozen=True)
class Verdict:
    action: Action
    problem: str | None = None        # what went wrong, as logged and recorded (None when DONE)
    pause: float = 0.0                # WAIT_KEY: seconds the key is blocked (Retry-After + jitter)
    retry_after: int | None = None    # WAIT_KEY: Retry-After as the API sent it


def classify(status: int | None, problem: str | None = None, headers: Any = None) -> Verdict:
    """The verdict on one answer: `status` None when none came (`problem` says why); `problem`
    set on a 200 whose body is unusable (not JSON, cut short, failed validation)."""
    if status == 200 and problem is None:
        return Verdict(Action.DONE)
    if status == 401:
        return Verdict(Action.REFRESH, "HTTP 401")
    if status == 429:
        pause, retry_after = retry_after_pause(headers)
        return Verdict(Action.WAIT_KEY, "HTTP 429", pause, retry_after)
    if status is not None and 400 <= status < 500:
        return Verdict(Action.FAIL, f"HTTP {status}")
    return Verdict(Action.RETRY, problem or f"HTTP {status}")


def classify_error(exc: BaseException, http_timeout: float) -> Verdict:
    """The verdict when the request raised instead of answering: always worth a retry."""
    return classify(None, transport_problem(exc, http_timeout))


def transport_problem(exc: BaseException, http_timeout: float) -> str:
    """One short phrase for a request that got no (complete) answer."""
    if isinstance(exc, requests.Timeout):
        return f"timeout after {http_timeout:g}s"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "answer cut short (connection closed mid-body)"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc).lower()
        return "connection reset" if "reset" in text or "aborted" in text else "connection failed"
    return type(exc).__name__


def body_problem(content_type: str | None, exc: BaseException) -> str:
    """Why a 200's body could not be parsed: not JSON, or broken off while being read."""
    if isinstance(exc, ValueError):
        return f"HTTP 200 with a body that is not JSON ({('?' if content_type is None else content_type).split(';')[0]})"
    return "answer cut short (connection closed mid-body)"


def backoff_seconds(attempt: int) -> float:
    """Pause before retry number `attempt` (1-based) after a 5xx, timeout, reset or garbled
    body: 0.5 s doubling, capped at 30 s, ±20 % jitter so workers sharing a key spread out."""
    return min(30.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)


def retry_after_pause(headers: Any) -> tuple[float, int | None]:
    """(pause, Retry-After as sent) after a 429: the header's seconds (1 when absent or
    unreadable) plus a little jitter, so clients sharing a key do not return together."""
    retry_after = int_header(headers, "Retry-After") if headers is not None else None
    return (retry_after if retry_after is not None else 1) + random.uniform(0.05, 0.25), retry_after


def int_header(headers: Any, name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def refusal_reason(resp: requests.Response | None) -> str:
    """The API's own words for a refused request (its JSON error), else the HTTP reason."""
    if resp is None:
        return "no answer"
    try:
        body = resp.json()
        if isinstance(body, dict):
            return str(body.get("error_description") or body.get("error") or body.get("message") or resp.reason)
    except ValueError:
        pass
    return str(resp.reason)
