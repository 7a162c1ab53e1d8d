"""The server side of the control API (`/_sim/...`): one small handler per route.

The routes and their bodies are listed in netops/sim/control.py, whose `SimControl` calls them
from another process. This module knows a simulator only through `Controllable`, so the server
imports it and nothing here imports the server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from werkzeug.wrappers import Request

from netops.sim.faults import FaultSet, FaultSpecError

Answer = tuple[int, Any]
CONFIG_KEYS = frozenset({"rate_per_second", "rate_per_hour", "latency", "token_ttl", "page_caps",
                         "churn_per_minute"})


class Controllable(Protocol):
    """What the control API drives: the in-process controls of `SimServer`."""

    faults: FaultSet
    churn_log: Any

    def settings(self) -> dict[str, Any]: ...
    configure: Callable[..., dict[str, Any]]  # keyword knobs, the CONFIG_KEYS
    def reset(self) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def reset_stats(self) -> None: ...
    def expire_tokens(self) -> int: ...
    def revoke_tokens(self) -> int: ...
    def delete(self, resource: str, row_id: Any) -> dict[str, int]: ...
    def modify(self, resource: str, row_id: Any, fields: dict[str, Any], touch: bool = True) -> dict[str, Any]: ...
    def add_fault(self, spec: str | dict[str, Any]) -> dict[str, Any]: ...
    def clear_faults(self) -> None: ...
    def list_faults(self) -> list[dict[str, Any]]: ...
    def churn(self, n: int = 0, changes: list[dict[str, Any]] | None = None,
              silent_share: float = 0.0) -> list[dict[str, Any]]: ...
    def expected(self) -> dict[str, int]: ...
    def expected_table(self, table: str, values: bool = True) -> dict[str, Any]: ...
    campus_clock: Callable[..., dict[str, Any]]  # clock, advance_seconds, scope, horizon_days


def handle(sim: Controllable, request: Request) -> Answer:
    """Dispatch one control request; errors become 400/404 JSON, never a traceback."""
    try:
        return _dispatch(sim, request)
    except KeyError as exc:
        return 400, {"error": "Bad Request", "message": f"missing or unknown: {str(exc).strip(chr(34) + chr(39))}"}
    except LookupError as exc:
        return 404, {"error": "Not Found", "message": str(exc).strip("'\"")}
    except (ValueError, TypeError, FaultSpecError) as exc:
        return 400, {"error": "Bad Request", "message": str(exc)}


def _body(request: Request) -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the request body must be a JSON object")
    return data


def _dispatch(sim: Controllable, request: Request) -> Answer:
    path = request.path.rstrip("/")
    method = request.method
    body = _body(request) if method in ("POST", "PUT", "DELETE") else {}
    handler = _ROUTES.get(path)
    if handler is None and path.startswith("/_sim/faults/") and method == "DELETE":
        handler = _delete_fault
    elif handler is None and path.startswith("/_sim/expected/"):
        handler = _expected_table
    answer = handler(sim, method, body, request) if handler is not None else None
    return answer or (404, {"error": "Not Found", "message": f"no control route {method} {path}"})


# Each handler answers, or returns None when the route takes no such method (then 404).
def _health(sim: Controllable, method: str, body: dict[str, Any], request: Request) -> Answer:
    return 200, {"ok": True, "settings": sim.settings()}


def _config(sim: Controllable, method: str, body: dict[str, Any], request: Request) -> Answer:
    if method != "POST":
        return 200, sim.settings()
    unknown = set(body) - CONFIG_KEYS
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
    return 200, sim.configure(**body)


def _reset(sim: Controllable, method: str, body: dict[str, Any], request: Request) -> Answer | None:
    if method != "POST":
        return None
    sim.reset()
    return 200, {"ok": True, "expected": sim.expected()}


def _stats(sim: Controllable, method: str, body: dict[str, Any], request: Request) -> Answer:
    return 200, sim.stats()


def _stats_reset(sim: Controllable, method: str, body: dict[str, Any], request: Request) -> Answer | None:
    if method != "POST":
        return None
    sim.reset_stats()
    return 200, {"ok": True}


def _expire(sim: Controllable, method: str, body: dict[str, Any], request: Request) -> Answer | None:
    return (200, {"affected": sim.expire_tokens()}) if method == "POST" else None


def _revoke(sim: Controllable, method: str, body: dict[str, Any], request: Request) -> Answer | None:
    return (200, {"affected": sim.revoke_tokens()}) if method == "POST" else None


def _delete(sim: Controllable, method: str, body: dict[str, Any], request: Request) -> Answer | None:
    if method != "POST":
        return None
    return 200, {"removed": sim.delete(str(body["resource"]), body["id"])}


def _modify(sim: Controllable, method: str, body: dict[str, Any], request: Request) -> Answer | None:
    if method != "POST":
        return None
    row = sim.modify(str(body["resource"]), body["id"], dict(body.get("fields") or {}),
                     touch=bool(body.get("touch", True)))
    return 200, {"row": row}


def _faults(sim: Controllable, method: str, body: dict[str, Any], request: Request) -> Answer:
    if method == "POST":
        return 201, sim.add_fault(body)
    if method == "DELETE":
        sim.clear_faults()
        return 200, {"ok": True}
    return 200, {"faults": sim.list_faults()}


def _delete_fault(sim: Controllable, method: str, body: dict[str, Any], request: Request) -> Answer:
    fault_id = int(request.path.rstrip("/").rsplit("/", 1)[1])
    return (200, {"ok": True}) if sim.faults.remove(fault_id) else (404, {"error": "Not Found"})


def _churn(sim: Controllable, method: str, body: dict[str, Any], request: Request) -> Answer:
    if method != "POST":
        return 200, {"recent": list(sim.churn_log)}
    applied = sim.churn(int(body.get("n", 0)), body.get("changes"), float(body.get("silent_share", 0.0)))
    return 200, {"applied": applied}


def _expected(sim: Controllable, method: str, body: dict[str, Any], request: Request) -> Answer:
    return 200, sim.expected()


def _expected_table(sim: Controllable, method: str, body: dict[str, Any], request: Request) -> Answer:
    table = request.path.rstrip("/").rsplit("/", 1)[1]
    return 200, sim.expected_table(table, values=request.args.get("values", "1") not in ("0", "false"))


def _campus(sim: Controllable, method: str, body: dict[str, Any], request: Request) -> Answer:
    """The campus data's clock and the expected mirror's scope (netops/sim/campus.py)."""
    if method != "POST":
        return 200, sim.campus_clock()
    unknown = set(body) - {"clock", "advance_seconds", "scope", "horizon_days"}
    if unknown:
        raise ValueError(f"unknown campus keys: {', '.join(sorted(unknown))}")
    return 200, sim.campus_clock(clock=body.get("clock", "keep"), advance_seconds=float(body.get("advance_seconds") or 0),
                                 scope=body.get("scope", "keep"), horizon_days=body.get("horizon_days"))


_ROUTES: dict[str, Callable[..., Answer | None]] = {
    "/_sim/health": _health, "/_sim/config": _config, "/_sim/reset": _reset, "/_sim/stats": _stats,
    "/_sim/stats/reset": _stats_reset, "/_sim/tokens/expire": _expire, "/_sim/tokens/revoke": _revoke,
    "/_sim/delete": _delete, "/_sim/modify": _modify, "/_sim/faults": _faults, "/_sim/churn": _churn,
    "/_sim/expected": _expected, "/_sim/campus": _campus,
}
