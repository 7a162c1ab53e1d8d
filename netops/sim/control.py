"""A client for the simulator's control API under `/_sim/`, and the routes it calls.

The server binds to loopback, so the control API is on by default (`--no-control` removes it).
Every route answers JSON. Routes (all bodies JSON):

    GET    /_sim/health                      {"ok": true, "settings": {...}}
    GET    /_sim/config                      current knobs
    POST   /_sim/config                      {"rate_per_second", "rate_per_hour", "latency",
                                              "token_ttl", "page_caps": {template: n}, "churn_per_minute"}
    POST   /_sim/reset                       pristine data, tokens, faults, stats, limits, knobs
    GET    /_sim/stats                       {"total", "by_endpoint", "by_status", "by_endpoint_status"}
    POST   /_sim/stats/reset
    POST   /_sim/tokens/expire               {"affected": n}
    POST   /_sim/tokens/revoke               {"affected": n}
    POST   /_sim/delete                      {"resource": "campuses", "id": 5} -> {"removed": {res: n}}
    POST   /_sim/modify                      {"resource", "id", "fields": {...}, "touch": true} -> {"row": {...}}
    GET    /_sim/faults                      {"faults": [...]}
    POST   /_sim/faults                      {"spec": "500@/v2/campus,count=2"} or {"kind", "endpoint", ...}
    DELETE /_sim/faults[/<id>]
    POST   /_sim/churn                       {"n": 10, "silent_share": 0} or {"changes": [...]}
                                              -> {"applied": [{"op", "resource", "id", ...}]}
    GET    /_sim/churn                       {"recent": [...]} (last 1000 changes)
    GET    /_sim/expected                    {table: row_count} for the 12 mirror tables
    GET    /_sim/expected/<table>[?values=0] {"table", "primary_key", "count", "keys", "rows"?}

The server side is netops/sim/control_routes.py; this client imports nothing of the server, so
tests and benchmarks can drive a simulator in another process.
"""

from __future__ import annotations

from typing import Any

import requests


class SimControl:
    """The control API over HTTP, for a simulator in another process (`netops sim serve`).

    Same method names as `SimServer`'s in-process controls.
    """

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()

    def _call(self, method: str, route: str, body: dict[str, Any] | None = None,
              params: dict[str, str] | None = None) -> Any:
        r = self.http.request(method, f"{self.url}/_sim/{route}", json=body, params=params, timeout=self.timeout)
        if r.status_code >= 400:
            raise RuntimeError(f"simulator control {method} /_sim/{route} -> {r.status_code}: {r.text[:300]}")
        return r.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "health")

    def reset(self) -> None:
        self._call("POST", "reset")

    def configure(self, **knobs: Any) -> dict[str, Any]:
        return self._call("POST", "config", knobs)

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def reset_stats(self) -> None:
        self._call("POST", "stats/reset")

    def expire_tokens(self) -> int:
        return int(self._call("POST", "tokens/expire")["affected"])

    def revoke_tokens(self) -> int:
        return int(self._call("POST", "tokens/revoke")["affected"])

    def delete(self, resource: str, row_id: Any) -> dict[str, int]:
        return self._call("POST", "delete", {"resource": resource, "id": row_id})["removed"]

    def modify(self, resource: str, row_id: Any, fields: dict[str, Any], touch: bool = True) -> dict[str, Any]:
        return self._call("POST", "modify", {"resource": resource, "id": row_id, "fields": fields,
                                             "touch": touch})["row"]

    def add_fault(self, spec: str | dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "faults", {"spec": spec} if isinstance(spec, str) else spec)

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def list_faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "faults")["faults"]

    def churn(self, n: int = 0, changes: list[dict[str, Any]] | None = None,
              silent_share: float = 0.0) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"n": n, "silent_share": silent_share}
        if changes is not None:
            body["changes"] = changes
        return self._call("POST", "churn", body)["applied"]

    def expected(self) -> dict[str, int]:
        return self._call("GET", "expected")

    def expected_table(self, table: str, values: bool = True) -> dict[str, Any]:
        return self._call("GET", f"expected/{table}", params={"values": "1" if values else "0"})

    def campus_clock(self, clock: Any = "keep", advance_seconds: float = 0.0, scope: Any = "keep",
                     horizon_days: int | None = None) -> dict[str, Any]:
        """The campus data's clock and expected-mirror scope (see SimServer.campus_clock)."""
        body: dict[str, Any] = {"advance_seconds": advance_seconds}
        if clock != "keep":
            body["clock"] = clock
        if scope != "keep":
            body["scope"] = scope
        if horizon_days is not None:
            body["horizon_days"] = horizon_days
        return self._call("POST", "campus", body)
