"""One HTTP request to the API, nothing more: no retries, no pacing, no accounting.

`get` sends one GET with the bearer token and both timeouts, and returns an `Answer`: the
response, or why there is none. `read_json` parses (and validates) a 200's body. What to do
with either is netops/api/policy.py's business; when to send is the limiter's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from netops.api.policy import body_problem, transport_problem

#: Seconds to wait for the TCP connection; the read timeout is NETOPS_HTTP_TIMEOUT.
CONNECT_TIMEOUT = 5
USER_AGENT = "netops (+https://github.com/netops)"

Validator = Callable[[Any], "str | None"]


@dataclass
class Answer:
    """What one request got: the response, or `error` saying why there is none."""

    resp: requests.Response | None
    error: str | None = None

    @property
    def status(self) -> int | None:
        return self.resp.status_code if self.resp is not None else None


def new_session(pool_size: int) -> requests.Session:
    """A session keeping up to `pool_size` connections to the API open (one per call in flight)."""
    s = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = USER_AGENT
    return s


def get(session: requests.Session, url: str, params: dict[str, Any] | None, token: str,
        http_timeout: float) -> Answer:
    """Send one GET; a transport failure (timeout, reset, refused connection) is an Answer too."""
    try:
        resp = session.get(url, params=params, headers={"Authorization": f"Bearer {token}"},
                           timeout=(CONNECT_TIMEOUT, http_timeout))
    except requests.RequestException as exc:
        return Answer(None, transport_problem(exc, http_timeout))
    return Answer(resp)


def read_json(resp: requests.Response, validate: Validator | None) -> str | None:
    """Parse a 200's body into `resp._netops_json`; returns why it is unusable, or None.
    `validate(data)` may name a problem with JSON that parsed (a row without an id, say)."""
    try:
        resp._netops_json = resp.json()  # type: ignore[attr-defined]
    except (ValueError, requests.RequestException) as exc:  # not JSON / broke off while read
        return body_problem(resp.headers.get("Content-Type", "?"), exc)
    if validate is not None:
        problem = validate(resp._netops_json)  # type: ignore[attr-defined]
        if problem:
            return f"HTTP 200 with {problem}"
    return None
