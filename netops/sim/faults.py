"""Injected faults: what the real API (or the network in front of it) does on a bad day.

Spec syntax (CLI `--fault`, control API `{"spec": ...}`)::

    KIND[@ENDPOINT][,key=value]...

- ENDPOINT: a path template containing `:` (`/v2/campus/:id/achievements`, matches that template
  and templates under it) or a plain path prefix (`/v2/campus`, matches `/v2/campus` and
  `/v2/campus/...`). Omitted: every `/v2` endpoint. `/oauth/...` is hit only when named.
- `rate=R` (0..1): fire on that share of matching requests, from a seeded RNG.
- `count=N`: fire on the next N matching requests only. With neither: every matching request.
- `after=K`: let the first K matching requests through first (fail mid-run, not at once).
- kind-specific: `seconds=` (slow: sleep; 429: Retry-After), `field=` (missing/renamed/wrong_type/
  extra field name), `to=` (renamed_field's new name), `delta=` (lying_total; default +50).

Kinds: 429 500 502 503 slow reset token_revoked malformed_json truncated html_200
extra_field missing_field renamed_field wrong_type null_id duplicate_id shift lying_total
legacy_fields null_field offset_ts.

The last three are quirks the real API never shows (docs/api.md "Real payloads"), there for
tests of a client's tolerance: `legacy_fields` adds `internal_note`, `legacy_ref` and
`sim_beta_flag` to every row; `null_field,field=F` nulls F on every row (a null project `slug`,
a null coalition `user_id`); `offset_ts` writes every top-level `...Z` timestamp with a
`+01:00` offset instead (the same instant).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

ERROR_KINDS = ("429", "500", "502", "503")
#: Kinds that replace the answer before the endpoint runs.
PRE_KINDS = ERROR_KINDS + ("reset", "token_revoked", "malformed_json", "html_200", "slow")
#: Kinds that alter a real answer (body, headers, paging).
POST_KINDS = ("truncated", "extra_field", "missing_field", "renamed_field", "wrong_type", "null_id",
              "duplicate_id", "shift", "lying_total", "legacy_fields", "null_field", "offset_ts")
#: Kinds that rewrite the rows of a real answer (`drift`).
DRIFT_KINDS = ("extra_field", "missing_field", "renamed_field", "wrong_type", "null_id", "duplicate_id",
               "legacy_fields", "null_field", "offset_ts")
KINDS = PRE_KINDS + POST_KINDS

DEFAULT_FIELD = {"extra_field": "sim_drift_field", "missing_field": "name", "renamed_field": "name",
                 "wrong_type": "id", "null_field": "slug"}


class FaultSpecError(ValueError):
    """A fault spec that cannot be parsed (the CLI shows it as a usage error)."""


@dataclass
class Fault:
    """One armed fault and its counters (`seen` matching requests, `fired` times it acted)."""

    kind: str
    endpoint: str | None = None
    rate: float | None = None
    count: int | None = None
    after: int = 0
    params: dict[str, str] = field(default_factory=dict)
    id: int = 0
    seen: int = 0
    fired: int = 0

    def matches(self, path: str, template: str) -> bool:
        ep = self.endpoint
        if ep is None:
            return path.startswith("/v2/") or path == "/v2"
        ep = ep.rstrip("/") or "/"
        if ":" in ep:
            return template == ep or template.startswith(ep + "/")
        return path == ep or path.startswith(ep + "/")

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def param(self, name: str, default: str) -> str:
        return self.params.get(name, default)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "endpoint": self.endpoint, "rate": self.rate,
                "count": self.count, "after": self.after, "params": dict(self.params),
                "seen": self.seen, "fired": self.fired, "spec": self.spec()}

    def spec(self) -> str:
        parts = [self.kind + (f"@{self.endpoint}" if self.endpoint else "")]
        for k, v in (("rate", self.rate), ("count", self.count), ("after", self.after or None)):
            if v is not None:
                parts.append(f"{k}={v}")
        parts += [f"{k}={v}" for k, v in self.params.items()]
        return ",".join(parts)


def parse_spec(spec: str) -> Fault:
    """Parse `KIND[@ENDPOINT][,key=value]...` (see the module docstring)."""
    head, *opts = [p.strip() for p in spec.strip().split(",")]
    kind, _, endpoint = head.partition("@")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise FaultSpecError(f"unknown fault kind {kind!r} in {spec!r}; known: {' '.join(KINDS)}")
    f = Fault(kind=kind, endpoint=endpoint.strip() or None)
    if f.endpoint is not None and not f.endpoint.startswith("/"):
        raise FaultSpecError(f"fault endpoint must start with '/': {spec!r}")
    for opt in opts:
        if not opt:
            continue
        key, sep, value = opt.partition("=")
        if not sep:
            raise FaultSpecError(f"expected key=value, got {opt!r} in {spec!r}")
        key = key.strip()
        value = value.strip()
        try:
            if key == "rate":
                f.rate = float(value)
                if not 0.0 <= f.rate <= 1.0:
                    raise FaultSpecError(f"rate must be within 0..1 in {spec!r}")
            elif key == "count":
                f.count = int(value)
            elif key == "after":
                f.after = int(value)
            elif key in ("seconds", "field", "to", "delta", "endpoint"):
                if key == "endpoint":
                    f.endpoint = value
                else:
                    f.params[key] = value
            else:
                raise FaultSpecError(f"unknown fault option {key!r} in {spec!r}")
        except ValueError as exc:
            if isinstance(exc, FaultSpecError):
                raise
            raise FaultSpecError(f"bad value for {key} in {spec!r}") from None
    return f


def fault_from_dict(data: dict[str, Any]) -> Fault:
    """Accept `{"spec": "..."}` or `{"kind", "endpoint", "rate", "count", "after", ...params}`."""
    if "spec" in data:
        return parse_spec(str(data["spec"]))
    parts = [str(data["kind"]) + (f"@{data['endpoint']}" if data.get("endpoint") else "")]
    parts += [f"{k}={v}" for k, v in data.items() if k not in ("kind", "endpoint") and v is not None]
    return parse_spec(",".join(parts))


class FaultSet:
    """The armed faults; decides, per request, which of them fire (thread-safe, seeded)."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._rng = random.Random(f"{seed}-faults")
        self._faults: list[Fault] = []
        self._next_id = 1
        self._lock = threading.Lock()

    def add(self, fault: Fault | str | dict[str, Any]) -> Fault:
        if isinstance(fault, str):
            fault = parse_spec(fault)
        elif isinstance(fault, dict):
            fault = fault_from_dict(fault)
        with self._lock:
            fault.id = self._next_id
            self._next_id += 1
            self._faults.append(fault)
        return fault

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._rng = random.Random(f"{self._seed}-faults")

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def draw(self, path: str, template: str, page: int = 1) -> list[Fault]:
        """The faults that act on this request (counters move as a side effect).

        `shift` only makes sense on page 2 and later, so earlier pages do not consume it.
        """
        fired: list[Fault] = []
        with self._lock:
            for f in self._faults:
                if not f.matches(path, template) or f.exhausted:
                    continue
                if f.kind == "shift" and page < 2:
                    continue
                f.seen += 1
                if f.seen <= f.after:
                    continue
                if f.rate is not None and self._rng.random() >= f.rate:
                    continue
                f.fired += 1
                fired.append(f)
        return fired


# ------------------------------------------------------------------ body mutations (drift)
def drift(kind: str, fault: Fault, rows: list[dict[str, Any]]) -> None:
    """Apply a schema-drift or id fault to rendered rows, in place."""
    if not rows:
        return
    name = fault.param("field", DEFAULT_FIELD.get(kind, "name"))
    if kind == "extra_field":
        for r in rows:
            r[name] = {"drift": True, "added_by": "netops-sim"}
    elif kind == "missing_field":
        for r in rows:
            r.pop(name, None)
    elif kind == "renamed_field":
        to = fault.param("to", f"{name}_v2")
        for r in rows:
            if name in r:
                r[to] = r.pop(name)
    elif kind == "wrong_type":
        for r in rows:
            v = r.get(name)
            if isinstance(v, bool) or v is None:
                r[name] = "yes" if v else 0
            elif isinstance(v, (int, float)):
                r[name] = f"#{v}"
            elif isinstance(v, str):
                r[name] = {"value": v}
            else:
                r[name] = str(v)
    elif kind == "null_id":
        rows[len(rows) // 2]["id"] = None
    elif kind == "duplicate_id" and len(rows) >= 2:
        # the second row becomes a copy of the first: one id twice, one row missing
        rows[1] = dict(rows[0])
    elif kind == "duplicate_id":
        rows.append(dict(rows[0]))
    elif kind == "legacy_fields":
        for i, r in enumerate(rows):
            r["internal_note"] = None if i % 2 else "v2-migrated"
            r["legacy_ref"] = {"source": "sim", "rev": i % 9 + 1}
            r["sim_beta_flag"] = bool(i % 3)
    elif kind == "null_field":
        for r in rows:
            if name in r:
                r[name] = None
    elif kind == "offset_ts":
        for r in rows:
            for k, v in r.items():
                if isinstance(v, str) and len(v) == 24 and v.endswith("Z") and v[10] == "T":
                    r[k] = _plus_one_hour(v)


def _plus_one_hour(z: str) -> str:
    """`2025-12-11T11:57:56.597Z` -> `2025-12-11T12:57:56.597+01:00` (the same instant)."""
    from netops.sim.timeutil import fmt, parse

    return str(fmt(parse(z), 60))


MALFORMED_JSON = b'[{"id": 1, "name": "truncated-by-sim", "active?": tru'
HTML_ERROR_PAGE = (b"<!DOCTYPE html>\n<html><head><title>We're sorry, but something went wrong (500)</title>"
                   b"</head><body><div class=\"dialog\"><h1>We're sorry, but something went wrong.</h1>"
                   b"<p>If you are the application owner check the logs for more information.</p>"
                   b"</div></body></html>\n")
