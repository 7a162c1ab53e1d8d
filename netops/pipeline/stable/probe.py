"""No-change probe for `netops sync stable --if-changed`: one cheap call per resource decides
whether its full pull can be skipped.

Why: a sync when nothing changed re-pulls every page (23 calls on the real data) only for the
upsert to write nothing. One `page[size]=1` call per resource returns `X-Total` (the row count)
and, sorted the right way, the newest row — enough to tell "moved" from "probably not moved":

- resources with `updated_at` (projects): `sort=-updated_at` gives the count and the newest
  `updated_at`; an edit or an insert moves the latter, a delete the former. Projects carry
  campus_projects and project_sessions nested, so those two phases follow the projects verdict.
- resources without it (campuses, coalitions, achievements): `sort=-id` gives the count and the
  highest id, so a delete balanced by an insert still shows when the newcomer got a new id.
- campus_achievements is derived from the achievements' `campus` name lists (netops/pipeline/
  links.py), so it follows the achievements verdict, and is pulled whenever campuses or
  achievements are (a link phase follows a pulled parent, see `select_phases`).
- cursus is a single object: fetching it costs the one call a probe would, so phase 01 always runs.

A probe that fails (after the client's usual retries, or on an unreadable answer) counts as
"changed": the resource falls back to its full pull. A probe never causes a pull to be skipped
on doubt.

What a probe cannot see — why the nightly run must stay a full pull: edits to resources without
`updated_at` (a coalition's score), values the server computes without moving `updated_at`, a
delete balanced by an insert that reuses an older id on a count-only resource, and edits of a
project's nested lists if the API does not move the project's `updated_at` for them, or of an
achievement's `campus` list (achievements have no `updated_at`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from netops.api.client import ApiClient
from netops.api.paging import page_problem
from netops.catalog import DerivedLinks, Listing, NestedList, Single
from netops.config import Settings
from netops.db import mirror, sync_runs
from netops.db.sync_runs import PhaseHistory
from netops.log import get_logger
from netops.pipeline.stable.phases import BY_TABLE, SOURCE_TABLES, Phase

#: `sync_runs.status` of a phase whose probe found it unchanged (migration 004).
UNCHANGED = "unchanged"


@dataclass
class ProbeResult:
    """The verdict on one resource: which phases it governs, what it cost, changed or not, why."""

    resource: str
    phases: list[str]
    calls: int = 0
    changed: bool = True
    reason: str = ""
    error: str | None = None  # the probe failed: `changed` is True (fall back to the pull)

    def as_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "phases": list(self.phases), "calls": self.calls,
                "changed": self.changed, "reason": self.reason, "error": self.error}


@dataclass
class ProbeReport:
    """Every resource's verdict for one `--if-changed` run."""

    results: list[ProbeResult] = field(default_factory=list)
    seconds: float = 0.0
    # phases pulled whatever their probe said, and why (see stale_reason)
    forced: dict[str, str] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.results)

    def of_phase(self, phase_name: str) -> ProbeResult | None:
        """The result governing `phase_name` (None: no probe covered it)."""
        return next((r for r in self.results if phase_name in r.phases), None)

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "seconds": round(self.seconds, 3),
                "results": [r.as_dict() for r in self.results], "forced": dict(self.forced)}


class ProbeFailed(Exception):
    """An answer the probe cannot judge from (no X-Total, an unparsable timestamp)."""


def _utc(value: Any) -> datetime | None:
    """A timestamp from the API (ISO 8601, `Z` or an offset) or the mirror (aware datetime)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ProbeFailed(f"unreadable updated_at {value!r:.40}") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ProbeFailed(f"unreadable updated_at {value!r:.40}")
    return value.astimezone(timezone.utc)


def _iso(ts: datetime | None) -> str:
    return "none" if ts is None else ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cmp(what: str, api: Any, mirror: Any, fmt: Any = str) -> tuple[bool, str]:
    """(differs, "what api = mirror") — the reason fragment names both sides."""
    if api == mirror:
        return False, f"{what} {fmt(api)} = {fmt(mirror)}"
    return True, f"{what} {fmt(api)} ≠ mirror {fmt(mirror)}"


def _first(client: ApiClient, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    """One `page[size]=1` call: (X-Total, the first row or None). Pages are validated like every
    other listing read (`page_problem`): a garbled answer is retried, then raises ApiError."""
    resp = client.request(path, {**params, "page[size]": 1, "page[number]": 1}, page_problem)
    raw = resp.headers.get("X-Total")
    try:
        total = int(raw) if raw is not None else None
    except ValueError:
        total = None
    if total is None:
        raise ProbeFailed(f"GET {path}: no usable X-Total header ({raw!r:.20})")
    rows = resp.json()
    return total, (rows[0] if rows else None)


def _listing_params(phase: Phase, sort: str) -> dict[str, Any]:
    params = {k: v for k, v in getattr(phase.source, "params", {}).items() if k != "sort"}
    params["sort"] = sort
    return params


class _Prober:
    def __init__(self, settings: Settings, conn: Any, client: ApiClient) -> None:
        self.settings = settings
        self.conn = conn
        self.client = client
        self.log = get_logger("stable", settings.log_path)

    def mirror_count_and_max(self, table: str, column: str) -> tuple[int, Any]:
        with self.conn.cursor() as cur:
            return mirror.count_and_max(cur, table, column)

    def guarded(self, result: ProbeResult, fn: Any, *args: Any) -> ProbeResult:
        """Run one probe; any failure means "changed" (fall back to the full pull), logged."""
        try:
            fn(result, *args)
        except Exception as exc:  # noqa: BLE001 - a probe must never make a pull be skipped
            msg = str(getattr(exc, "message", exc)).strip().splitlines()
            result.changed = True
            result.error = msg[0] if msg else type(exc).__name__
            result.reason = f"probe failed, pulling in full: {result.error}"
            self.log.warning(f"Probe of {result.resource} failed ({result.error}); falling back to its full pull")
        return result

    # -- one probe per kind ---------------------------------------------------------------
    def by_updated_at(self, result: ProbeResult, phase: Phase) -> None:
        """Count + newest `updated_at` (an edit, an insert or a delete shows)."""
        self._newest(result, phase, "-updated_at", "updated_at", "newest updated_at",
                     _utc, _iso)

    def by_id(self, result: ProbeResult, phase: Phase) -> None:
        """Count + highest id, for resources without `updated_at` (inserts and deletes show)."""
        self._newest(result, phase, "-id", "id", "max id", lambda v: int(v) if v is not None else None, str)

    def _newest(self, result: ProbeResult, phase: Phase, sort: str, column: str, label: str,
                convert: Any, show: Any) -> None:
        """One `page[size]=1` call sorted by `sort`: X-Total and the first row's `column`,
        compared with the mirror's count and max(column)."""
        fork = self.client.fork()
        try:
            total, row = _first(fork, phase.source.path, _listing_params(phase, sort))
        finally:
            result.calls = fork.calls
        api_value = convert(row.get(column)) if isinstance(row, dict) else None
        have, mine = self.mirror_count_and_max(phase.table.name, column)
        d1, r1 = _cmp("count", total, have)
        d2, r2 = _cmp(label, api_value, convert(mine), show)
        result.changed, result.reason = d1 or d2, f"{r1}, {r2}"


def _followers(phases: Sequence[Phase], source: str) -> list[str]:
    """The phases read from `source`'s listing (projects' nested lists, the achievements' campus
    names). They follow its probe's verdict (no probe of their own)."""
    return [p.name for p in phases if isinstance(p.source, (NestedList, DerivedLinks)) and p.source.parent == source]


def probe_stable(settings: Settings, conn: Any, client: ApiClient, phases: Sequence[Phase]) -> ProbeReport:
    """Probe every resource behind `phases` and compare with the mirror read on `conn`.

    `conn` is the sync's own connection (the one holding the advisory lock), so the mirror read
    is the state the phases will apply to; its transaction is committed before returning.
    `client` is the run's ApiClient: probes share its pacer, token and call accounting, and
    each resource's calls are counted exactly on a `fork()`.
    """
    started = time.monotonic()
    prober = _Prober(settings, conn, client)
    by_table = {p.table.name: p for p in phases}
    report = ProbeReport()
    try:
        # 1. one call each for the index resources, concurrently (their verdicts are independent)
        jobs: list[tuple[ProbeResult, Any, Phase]] = []
        for phase in phases:
            if isinstance(phase.source, Single):
                report.results.append(ProbeResult(
                    phase.table.name, [phase.name], 0, True,
                    "single object: fetching it costs the one call a probe would, so it is always pulled"))
            elif isinstance(phase.source, Listing):
                res = ProbeResult(phase.table.name, [phase.name, *_followers(phases, phase.table.name)])
                fn = prober.by_updated_at if "updated_at" in phase.table.columns else prober.by_id
                jobs.append((res, fn, phase))
                report.results.append(res)
        for source in SOURCE_TABLES:  # --phase campus_projects / ... alone
            followers = _followers(phases, source)
            if source not in by_table and followers:
                src = BY_TABLE[source]
                res = ProbeResult(source, followers)
                fn = prober.by_updated_at if "updated_at" in src.table.columns else prober.by_id
                jobs.append((res, fn, src))
                report.results.append(res)
        # the mirror reads happen on `conn` from the pool threads: psycopg2 serialises a
        # connection's use, and these are single quick SELECTs
        workers = max(1, min(settings.max_concurrency, len(jobs) or 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="netops-probe") as pool:
            list(pool.map(lambda j: prober.guarded(j[0], j[1], j[2]), jobs))
    finally:
        conn.commit()
    report.seconds = time.monotonic() - started
    return report


def phase_history(conn: Any) -> dict[str, PhaseHistory]:
    """Each phase's last pull outcome and last successful pull; read on the sync's connection."""
    with conn.cursor() as cur:
        out = sync_runs.history(cur)
    conn.commit()
    return out


def stale_reason(phase: Phase, history: dict[str, PhaseHistory]) -> str | None:
    """Why `phase` must be pulled whatever its probe says, or None.

    A probe compares the API with the mirror of its *resource*; it cannot tell that the mirror
    of this phase is behind it: the last pull of the phase failed (the next probe would see
    nothing new and hide the failure), or a table it is loaded from or linked to was pulled after
    it (`--phase projects` alone, or a nightly run that stopped after phase 03: campus_projects
    and project_sessions are read from the projects' nested lists, and links skipped for a
    missing parent become loadable once the parent is there).
    """
    mine = history.get(phase.name)
    if mine is None or mine.last_success is None:
        return "never pulled successfully"
    if mine.last_status == "failed":
        return "its last pull failed"
    sources = set(phase.spec.depends_on)
    for table in sorted(sources):
        src = BY_TABLE.get(table)
        other = history.get(src.name) if src is not None else None
        if other is not None and other.last_success is not None and other.last_success > mine.last_success:
            return f"{table} was pulled after it"
    return None


def select_phases(phases: Sequence[Phase], report: ProbeReport,
                  history: dict[str, PhaseHistory] | None = None) -> tuple[list[Phase], list[Phase]]:
    """(to pull, unchanged) in foreign-key order.

    A phase is pulled when its resource's probe says changed (or failed, or did not cover it),
    when its own mirror is behind (`stale_reason`, recorded in `report.forced`), and also when
    one of its parent tables is pulled in this run: a parent row that appears makes link rows
    loadable that were skipped before (a campus turning active and its campus_projects links),
    and those links do not move the children's own probe.
    """
    pull: list[Phase] = []
    unchanged: list[Phase] = []
    pulled_tables: set[str] = set()
    for phase in phases:
        result = report.of_phase(phase.name)
        changed = result is None or result.changed
        if not changed and history is not None:
            reason = stale_reason(phase, history)
            if reason is not None:
                report.forced[phase.name] = reason
                changed = True
        if not changed and any(parent in pulled_tables for _, parent in phase.table.parents):
            changed = True
        if changed:
            pull.append(phase)
            pulled_tables.add(phase.table.name)
        else:
            unchanged.append(phase)
    return pull, unchanged


def record_unchanged(books: sync_runs.Bookkeeping, phase: Phase, calls: int, note: str) -> None:
    """One `netops.sync_runs` row for a phase the probe skipped: status 'unchanged', nothing
    written, `api_calls` = the probe calls attributed to it, `probe` = what the probe saw.

    Not 'success': the monitor's "last refreshed" (and the sync_age alert) must keep meaning
    "last pulled", since a probe is blind to some changes and only the full pull catches them.
    """
    books.record_unchanged(phase.name, UNCHANGED, calls, note)
