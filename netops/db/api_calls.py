"""Reads of `netops.api_calls` the pipeline needs (the recorder that writes it is the API layer's).

Kept here so no pipeline module holds SQL on the bookkeeping tables (one module per concept).
"""

from __future__ import annotations

from typing import Any


def calls_last_hour(cur: Any, component: str | None = None) -> int:
    """Calls recorded in the last hour, by every netops process or by one component's."""
    if component is None:
        cur.execute("SELECT count(*) FROM netops.api_calls WHERE at > now() - interval '1 hour'")
    else:
        cur.execute("SELECT count(*) FROM netops.api_calls WHERE component = %s "
                    "AND at > now() - interval '1 hour'", (component,))
    return int(cur.fetchone()[0])
