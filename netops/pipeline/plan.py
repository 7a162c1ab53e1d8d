"""The budget planner (`netops plan`, issue 23): what the configured schedule and scope cost in API
calls per hour, against the keys' summed budget, and the freshness each resource gets.

Generic over the catalog: every backlog resource (netops/pipeline/backlog/resources.py), every
campus-scoped one (netops/pipeline/backlog/campus.py, per campus of `campus_ids`) and every stable
listing is planned the same way, so a resource added to the catalog is planned with it.

Per backlog resource, from one `page[size]=1` call each (its `X-Total`):
- the listing's rows (the whole listing), and the rows whose cursor (`updated_at`) moved in the last
  `CHANGE_PROBE_HOURS` — the API's change rate; the database's own (rows its detect windows queued
  per hour, netops/db/change_rates.py) is taken instead when it is higher.
- Campus-scoped resources: per campus, the rows whose cursor moved in the last CHANGE_PROBE_HOURS;
  locations (no `updated_at`) re-read their lookback and the open sessions every pass, so their
  probes are those two counts (`_observe_campus`).
- A detect pass reads each scope's window (one scope, or one per campus of `campus_ids` for a
  campus-scoped listing) 100 rows a call and spends one call on an empty window, so a pass costs
  `scopes × max(1, ceil(changes per pass per scope / page size))` calls; passes per hour = 60 /
  `schedule_backlog_minutes`. The worker spends nothing on rows that came with their payload.
- Reconcile (when scheduled) reads every table whole, capped by its budget share; the nightly stable
  sync costs its listings' pages once a day.

Freshness a resource will have, at worst: the schedule interval (a change just after a window's
end waits for the next pass) + `settle` (BACKLOG_DETECT_SETTLE_SECONDS) + the time the pass takes
to drain every resource's calls at the pace left (the keys' per-second budget less the window
margin and reconcile's mean pace), or, when longer, its longest listing's pages one after the other
at the detect calls' mean round trip (netops.api_calls).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from netops.api.client import ApiClient
from netops.api.policy import int_header
from netops.catalog import STABLE, Listing, Single
from netops.config import Settings, freshness_target
from netops.pipeline.backlog.campus import RESOURCES as CAMPUS_RESOURCES
from netops.pipeline.backlog.campus import CampusResource
from netops.pipeline.backlog.resources import RESOURCES, BacklogResource

#: how far back the API is asked how many rows changed (the change-rate probe's window)
CHANGE_PROBE_HOURS = 24.0
#: the role's stable sync runs once a day (roles/netops/defaults/main.yml, stable-sync job)
STABLE_INTERVAL_HOURS = 24.0
#: schedules `--check` may propose, in minutes (a cron `*/N` minute field)
SCHEDULE_CHOICES = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)

Probe = Callable[[str, dict[str, Any]], int | None]


@dataclass(frozen=True)
class Stream:
    """One listing a detect pass reads: `fixed` rows every pass (a lookback, the open sessions)
    plus `per_hour` rows for every hour between passes; a pass spends at least one call on it."""

    fixed: float = 0.0
    per_hour: float = 0.0

    def calls(self, minutes: int, page_size: int) -> int:
        return max(1, math.ceil((self.fixed + self.per_hour * minutes / 60.0) / page_size))


@dataclass
class Observed:
    """One resource as probed: its rows, change rates (None: unknown) and the listings a detect
    pass reads for it (one per campus in scope for a campus-scoped resource)."""

    resource: str
    table: str
    scopes: int = 1
    rows: int | None = None
    changed_per_hour_api: float | None = None
    changed_per_hour_db: float | None = None
    streams: list[Stream] = field(default_factory=list)

    @property
    def changed_per_hour(self) -> float:
        return max(self.changed_per_hour_api or 0.0, self.changed_per_hour_db or 0.0)

    def pass_calls(self, minutes: int, page_size: int) -> int:
        """Calls of one detect pass at a schedule of `minutes`."""
        return sum(st.calls(minutes, page_size) for st in self._streams())

    def longest_walk(self, minutes: int, page_size: int) -> int:
        """Pages of its longest listing: walked one page after the other (keyset)."""
        return max(st.calls(minutes, page_size) for st in self._streams())

    def _streams(self) -> list[Stream]:
        return self.streams or [Stream(0.0, self.changed_per_hour)]


@dataclass
class ResourcePlan:
    resource: str
    table: str
    scopes: int
    rows: int | None
    changed_per_hour: float
    changed_per_hour_api: float | None
    changed_per_hour_db: float | None
    calls_per_pass: int
    calls_per_hour: float
    freshness_seconds: float
    target_seconds: float

    @property
    def meets_target(self) -> bool:
        return self.freshness_seconds <= self.target_seconds


@dataclass
class Plan:
    """The schedule's cost and what it buys; `problems` is empty when it fits."""

    schedule_backlog_minutes: int
    schedule_reconcile_minutes: int
    keys: int
    budget_per_hour: int
    budget_per_second: float
    resources: list[ResourcePlan]
    stable_calls_per_day: int
    stable_calls_per_hour: float
    reconcile_calls_per_hour: float
    pass_calls: int
    pass_seconds: float
    probe_calls: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def calls_per_hour(self) -> float:
        backlog = sum(r.calls_per_hour for r in self.resources)
        return backlog + self.stable_calls_per_hour + self.reconcile_calls_per_hour

    @property
    def budget_share(self) -> float:
        return self.calls_per_hour / self.budget_per_hour if self.budget_per_hour else math.inf

    @property
    def fits(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        doc = {k: v for k, v in asdict(self).items() if k != "resources"}
        doc["resources"] = [{**asdict(r), "meets_target": r.meets_target} for r in self.resources]
        doc.update(calls_per_hour=round(self.calls_per_hour, 1), budget_share=round(self.budget_share, 4),
                   fits=self.fits)
        return doc


# --- probes ----------------------------------------------------------------------------------

def api_probe(client: ApiClient) -> Probe:
    """X-Total of one `page[size]=1` call (None when the answer has none)."""
    def probe(path: str, params: dict[str, Any]) -> int | None:
        resp = client.request(path, {**params, "page[size]": 1, "page[number]": 1})
        return int_header(resp.headers, "X-Total")
    return probe


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def observe(settings: Settings, probe: Probe, db_rates: dict[str, float], now: datetime | None = None,
            sample: int | None = None) -> list[Observed]:
    """Every resource the box keeps: the backlog ones (two X-Total probes each), then the
    campus-scoped ones for the campuses in scope (netops/pipeline/backlog/campus.py)."""
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(hours=CHANGE_PROBE_HOURS)
    out = []
    for res in RESOURCES:
        path, params = res.endpoint(settings), res.base_params(settings)
        obs = Observed(res.name, res.table, changed_per_hour_db=db_rates.get(res.name))
        obs.rows = probe(path, params)
        changed = probe(path, {**params, f"range[{_cursor(res)}]": f"{_iso(since)},{_iso(now)}"})
        obs.changed_per_hour_api = None if changed is None else changed / CHANGE_PROBE_HOURS
        out.append(obs)
    campuses = list(settings.campus_ids)
    for cres in CAMPUS_RESOURCES if campuses else ():
        out.append(_observe_campus(settings, probe, cres, campuses, now, sample))
    return out


def _sampled(campuses: list[int], sample: int | None) -> list[int]:
    """The campuses probed: all, or `sample` of them spread over the list (the others are
    planned at the sampled ones' mean)."""
    if not sample or sample >= len(campuses):
        return campuses
    step = len(campuses) / sample
    return [campuses[int(i * step)] for i in range(sample)]


def _observe_campus(settings: Settings, probe: Probe, res: CampusResource, campuses: list[int],
                    now: datetime, sample: int | None) -> Observed:
    """One campus-scoped resource over the campuses in scope. Locations (windowed over begin_at):
    a pass re-reads the lookback (`locations_lookback_hours`) and every open session, so per
    campus two streams from two probes — sessions begun within the lookback (its rate: that
    count / the lookback) and `filter[active]=true`. The others: the rows whose cursor moved in
    the last CHANGE_PROBE_HOURS, one probe per campus."""
    streams: list[Stream] = []
    rows = changed = 0.0
    for cid in _sampled(campuses, sample):
        path, params = res.path(cid), res.params(cid)
        if res.windowed:
            hours = max(settings.locations_lookback_hours, 1e-9)
            lookback = probe(path, {**params, "range[begin_at]": f"{_iso(now - timedelta(hours=hours))},{_iso(now)}"}) or 0
            open_now = probe(path, {**params, **dict(res.spec.source.open_filter)}) or 0  # type: ignore[union-attr]
            streams += [Stream(lookback, lookback / hours), Stream(open_now, 0.0)]
            rows, changed = rows + lookback + open_now, changed + lookback / hours
        else:
            cursor = getattr(res.spec.source, "cursor", "updated_at")
            since = now - timedelta(hours=CHANGE_PROBE_HOURS)
            n = probe(path, {**params, f"range[{cursor}]": f"{_iso(since)},{_iso(now)}"}) or 0
            streams.append(Stream(0.0, n / CHANGE_PROBE_HOURS))
            changed += n / CHANGE_PROBE_HOURS
    probed = len(_sampled(campuses, sample))
    scale = len(campuses) / probed
    streams = streams * (len(campuses) // probed) + streams[:(len(campuses) % probed) * (2 if res.windowed else 1)]
    return Observed(res.name, res.spec.name, len(campuses), round(rows * scale) if res.windowed else None,
                    changed * scale, None, streams)


def _cursor(res: BacklogResource) -> str:
    from netops.catalog import BACKLOG_BY_RESOURCE

    return BACKLOG_BY_RESOURCE[res.name].source.cursor  # type: ignore[union-attr]


def stable_calls(settings: Settings, probe: Probe) -> int:
    """Calls of one full stable sync: a single object is one call, a listing its pages."""
    calls = 0
    for spec in STABLE:
        src = spec.source
        if isinstance(src, Single):
            calls += 1
        elif isinstance(src, Listing):
            params = {k: str(v).format(cursus=settings.cursus_id) for k, v in src.params.items()}
            total = probe(src.path.format(cursus=settings.cursus_id), params)
            calls += max(1, math.ceil((total or 0) / settings.page_size))
    return calls


# --- the plan --------------------------------------------------------------------------------

def reconcile_per_hour(settings: Settings, observed: list[Observed]) -> float:
    """Reconcile's mean calls per hour when scheduled: a full pass per run, within its share."""
    minutes = settings.schedule_reconcile_minutes
    if minutes <= 0:
        return 0.0
    full = sum(max(1, math.ceil((o.rows or 0) / settings.page_size)) for o in observed)
    share = settings.backlog_reconcile_budget_share * settings.budget.per_hour
    return min(full * 60.0 / minutes, share)


def build(settings: Settings, observed: list[Observed], stable_per_day: int, probe_calls: int = 0,
          round_trip: float | None = None) -> Plan:
    """The plan of the configured schedule for what was observed (no I/O: a pure function).
    `round_trip`: the mean seconds a detect call takes to answer (None: not known)."""
    plan = _figures(settings, observed, stable_per_day, probe_calls, round_trip)
    plan.problems = _problems(settings, observed, stable_per_day, plan, round_trip)
    return plan


def _figures(settings: Settings, observed: list[Observed], stable_per_day: int, probe_calls: int = 0,
             round_trip: float | None = None) -> Plan:
    minutes = settings.schedule_backlog_minutes
    budget = settings.budget
    reconcile = reconcile_per_hour(settings, observed)
    per_pass = {o.resource: o.pass_calls(minutes, settings.page_size) for o in observed}
    total_pass = sum(per_pass.values())
    pace = budget.per_second / (1.0 + settings.rate_window_margin) - reconcile / 3600.0
    drain = total_pass / pace if pace > 0 else math.inf
    # a listing's pages come one after the other: its walk lasts at least its pages × round trip
    walk = max((o.longest_walk(minutes, settings.page_size) for o in observed), default=0)
    drain = max(drain, walk * (round_trip or 0.0))
    worst = minutes * 60.0 + settings.backlog_detect_settle_seconds + drain
    resources = [ResourcePlan(
        o.resource, o.table, o.scopes, o.rows, round(o.changed_per_hour, 2),
        None if o.changed_per_hour_api is None else round(o.changed_per_hour_api, 2),
        None if o.changed_per_hour_db is None else round(o.changed_per_hour_db, 2),
        per_pass[o.resource], per_pass[o.resource] * 60.0 / minutes, round(worst, 1),
        freshness_target(settings, o.resource)) for o in observed]
    return Plan(minutes, settings.schedule_reconcile_minutes, budget.keys, budget.per_hour,
                budget.per_second, resources, stable_per_day, round(stable_per_day / STABLE_INTERVAL_HOURS, 2),
                round(reconcile, 1), total_pass, round(drain, 1), probe_calls)


def _fits(plan: Plan) -> bool:
    return plan.calls_per_hour <= plan.budget_per_hour and plan.pass_seconds <= plan.schedule_backlog_minutes * 60


def _problems(settings: Settings, observed: list[Observed], stable_per_day: int, plan: Plan,
              round_trip: float | None) -> list[str]:
    """One line when the schedule cannot fit, naming the knob and the value that would fit."""
    if _fits(plan):
        return []
    need = next((m for m in SCHEDULE_CHOICES if m > plan.schedule_backlog_minutes and _fits(
        _figures(settings.replace(schedule_backlog_minutes=m), observed, stable_per_day, 0, round_trip))), None)
    what = (f"the schedule needs {plan.calls_per_hour:,.0f} API calls/hour against a budget of "
            f"{plan.budget_per_hour:,}/hour ({plan.keys} key{'s' if plan.keys != 1 else ''})")
    if plan.calls_per_hour <= plan.budget_per_hour:
        what = (f"one backlog pass takes {plan.pass_seconds:,.0f} s, longer than its "
                f"{plan.schedule_backlog_minutes}-minute interval")
    knob = (f"raise schedule_backlog_minutes (NETOPS_SCHEDULE_BACKLOG_MINUTES, role: "
            f"netops_schedule_backlog_minutes) to {need}" if need else
            "no backlog schedule up to 60 minutes fits")
    if settings.schedule_reconcile_minutes > 0:
        knob += ", lower backlog_reconcile_budget_share"
    return [f"{what}: {knob}, narrow campus_ids, or add application keys"]


def make_plan(settings: Settings, dsn: str | None, sample: int | None = None) -> Plan:
    """Probe the API (X-Total) and read the database's change rates, then plan. `sample`: probe
    that many of the campuses in scope (the rest are planned at their mean)."""
    db_rates: dict[str, float] = {}
    round_trip = None
    if dsn:
        from netops.db import connect
        from netops.db.change_rates import changed_per_hour, detect_round_trip

        with connect(dsn) as conn, conn.cursor() as cur:
            db_rates = changed_per_hour(cur, CHANGE_PROBE_HOURS)
            round_trip = detect_round_trip(cur, CHANGE_PROBE_HOURS)
        conn.close()
    with ApiClient(settings, dsn, component="plan") as client:
        probe = api_probe(client)
        observed = observe(settings, probe, db_rates, sample=sample)
        stable = stable_calls(settings, probe)
        calls = client.calls
    return build(settings, observed, stable, calls, round_trip)
