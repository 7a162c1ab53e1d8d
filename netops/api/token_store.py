"""The token store: one 0600 JSON file per application key, read and written here.

Apart from auth.py (which obtains tokens) so that keys.py can show each key's token TTL without
importing the token manager: both import this module, which imports neither.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any

from netops.log import add_secret


def write_private(path: Path, data: dict[str, Any]) -> None:
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


def credential_fingerprint(api_url: str, client_id: str, secret: str) -> str:
    """Identifies the credentials that obtained a token without revealing the secret: an HMAC
    keyed by the secret cannot be reversed, nor checked against guesses without the secret."""
    msg = f"{api_url}\n{client_id}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def read_store_file(path: Path) -> dict[str, Any] | None:
    """A token store (any key's file) as written, whatever credentials it belongs to (None:
    absent/unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


_UNREAD: Any = object()


def load_token_file(path: Path, api_url: str, client_id: str | None,
                    fingerprint: str | None, stored: Any = _UNREAD) -> dict[str, Any] | None:
    """A stored token (any key's file) if it was obtained for this API URL with these credentials,
    else None. With the secret known (`fingerprint`), a token obtained with another secret is not
    ours; a store without a fingerprint predates them and is not trusted either. `stored`: the
    file's content (read_store_file) when the caller has read it already (one read per evaluation)."""
    data = read_store_file(path) if stored is _UNREAD else stored
    if data is None:
        return None
    if data.get("api_url") != api_url or (client_id and data.get("client_id") != client_id):
        return None
    if fingerprint is not None and not hmac.compare_digest(str(data.get("credential_fp", "")), fingerprint):
        return None
    if data.get("access_token"):
        add_secret(data["access_token"])
    return data


def mark_refused(path: Path, token: str, at: float | None = None) -> bool:
    """Record in the store at `path` that the API answered 401 to `token` (if it is still the
    stored one)."""
    data = read_store_file(path)
    if not data or data.get("access_token") != token:
        return False
    data["refused_at"] = time.time() if at is None else at
    write_private(path, data)
    return True


def token_ttl(data: dict[str, Any] | None, now: float | None = None) -> int | None:
    """Seconds left on a stored token (negative when expired), None when there is none."""
    if not data:
        return None
    return int(float(data.get("expires_at", 0)) - (now or time.time()))


def token_refused(data: dict[str, Any] | None) -> bool:
    return bool(data and data.get("refused_at"))
