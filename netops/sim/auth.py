"""OAuth client-credentials tokens, as the 42 API (Doorkeeper) hands them out.

Tokens live only in memory. `expire_all()` and `revoke_all()` let tests force the two
different 401s the real API gives mid-run ("expired" vs "is invalid").
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass


@dataclass
class Token:
    value: str
    client_id: str
    created_at: float
    expires_at: float
    revoked: bool = False


class TokenStore:
    """Issued tokens; thread-safe."""

    def __init__(self, client_id: str, client_secret: str, ttl: int, secret_valid_days: float,
                 extra_clients: dict[str, str] | None = None) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        # more applications (client_id -> secret): each has its own budget in the rate limiter
        self.extra_clients = dict(extra_clients or {})
        self.ttl = ttl
        self.secret_valid_until = int(time.time() + secret_valid_days * 86400)
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def check_client(self, client_id: str | None, client_secret: str | None) -> bool:
        if client_id is None or client_secret is None:
            return False
        if secrets.compare_digest(client_id, self.client_id):
            return secrets.compare_digest(client_secret, self.client_secret)
        expected = self.extra_clients.get(client_id)
        return expected is not None and secrets.compare_digest(client_secret, expected)

    def issue(self, client_id: str | None = None) -> Token:
        now = time.time()
        tok = Token(secrets.token_hex(32), client_id or self.client_id, now, now + self.ttl)
        with self._lock:
            self._tokens[tok.value] = tok
        return tok

    def validate(self, value: str | None) -> tuple[Token | None, str]:
        """Return (token, "") when usable, else (None, reason) with the real API's wording."""
        if not value:
            return None, "The access token is invalid"
        with self._lock:
            tok = self._tokens.get(value)
        if tok is None or tok.revoked:
            return None, "The access token is invalid"
        if time.time() >= tok.expires_at:
            return None, "The access token expired"
        return tok, ""

    def expire_all(self) -> int:
        """Make every issued token expired now (the client must refresh and retry)."""
        now = time.time()
        with self._lock:
            live = [t for t in self._tokens.values() if not t.revoked and t.expires_at > now]
            for t in live:
                t.expires_at = now - 1
        return len(live)

    def revoke_all(self) -> int:
        with self._lock:
            live = [t for t in self._tokens.values() if not t.revoked]
            for t in live:
                t.revoked = True
        return len(live)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()
