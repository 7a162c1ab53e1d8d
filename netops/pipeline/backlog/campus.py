"""Campus-scoped resources (issue 23): locations, scale_teams (with their teams and team members),
events and exams, kept for the campuses in scope (`NETOPS_CAMPUS_IDS`), by `netops backlog detect`.

Why detect applies them itself instead of queueing them for the worker (docs/backlog.md, "Campus
resources"):
- Nothing to wait for: every reference to a person is soft (no FK), and the only FK (a
  scale_team's team) is loaded from the same answer just before. The worker's parent holds and
  fetch-by-id have no work here.
- A window is *fully applied* the moment its last page commits, in the transaction that moves its
  mark: the mark is then exactly "every change before this is in the mirror" (`marks.applied_until`,
  the freshness `netops plan` and the monitor read), with no queue between reading and applying.
- Locations have no `updated_at` and no id route of their own under a campus: they are windowed
  over `begin_at` and their open sessions re-checked (netops/pipeline/backlog/locations.py).

Each (resource, campus) pair has its own mark (`marks.scoped`: `scale_teams@1`), walked on its own
connection and client fork, at once with the others within the shared budget. A failure leaves
that pair's mark where it was; the others still run, and detect exits 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from netops import catalog
from netops.api.paging import KeysetPager, Page
from netops.catalog import TableSpec
from netops.config import Settings
from netops.db import campus as campus_db
from netops.db import marks
from netops.db.loader import Policy, load
from netops.mapping import CONVERTERS
from netops.pipeline.backlog.resources import PayloadError, entity_id


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class CampusResource:
    """One campus-scoped resource with a call of its own, and the tables its answers carry."""

    name: str
    spec: TableSpec
    embedded: tuple[TableSpec, ...] = ()

    @property
    def windowed(self) -> bool:
        """Locations: windowed over begin_at, open rows re-checked (no updated_at)."""
        return self.spec.source.kind == "campus_window"

    def path(self, campus_id: int) -> str:
        return self.spec.source.path.format(campus=campus_id)  # type: ignore[union-attr]

    def params(self, campus_id: int) -> dict[str, Any]:
        return {k: v.format(campus=campus_id) for k, v in getattr(self.spec.source, "filters", ())}


RESOURCES: tuple[CampusResource, ...] = tuple(
    CampusResource(name, spec, catalog.embedded_in(spec.name)) for name, spec in catalog.CAMPUS_BY_RESOURCE.items())
BY_NAME: dict[str, CampusResource] = {r.name: r for r in RESOURCES}
#: every campus-scoped table, for `--resource` (a table name selects the resource it comes with)
TABLE_TO_RESOURCE: dict[str, str] = {s.name: r.name for r in RESOURCES for s in (r.spec, *r.embedded)}


@dataclass
class CampusResult:
    """One (resource, campus) pass; shaped like detect's results (`enqueued` = rows applied)."""

    resource: str
    since: str | None
    calls: int = 0
    seen: int = 0
    applied: int = 0
    deleted: int = 0   # sessions gone from the API, and rows of erased people
    reopened: int = 0  # locations: open sessions re-checked by id
    mark: str | None = None
    seconds: float = 0.0
    error: str | None = None
    erased: int = 0
    invalid: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def enqueued(self) -> int:
        return self.applied

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "notes"}
        out["enqueued"] = self.applied
        return out


def split_names(names: Sequence[str] | None) -> tuple[list[str] | None, list[str]]:
    """(backlog names or None for all, campus resource names) from `--resource` values."""
    if not names:
        return None, [r.name for r in RESOURCES]
    mine = [TABLE_TO_RESOURCE[n] for n in names if n in TABLE_TO_RESOURCE]
    return [n for n in names if n not in TABLE_TO_RESOURCE], list(dict.fromkeys(mine))


def to_row(spec: TableSpec, obj: Any) -> tuple[Any, ...]:
    """One API object as a row of `spec` (columns order); PayloadError when it cannot be keyed or
    a value has the wrong type. Missing fields and hidden people are NULL."""
    if not isinstance(obj, Mapping):
        raise PayloadError(f"{spec.name}: expected a JSON object, got {type(obj).__name__}")
    row = []
    for c in spec.columns:
        raw = c.getter(obj)
        try:
            row.append(CONVERTERS[c.kind](raw))
        except (ValueError, TypeError):
            raise PayloadError(f"{spec.name}: field {c.name} = {raw!r:.60} is not a valid {c.kind}") from None
    for i, c in enumerate(spec.columns):
        if c.name in spec.pk and row[i] is None:
            raise PayloadError(f"{spec.name}: a row without its key {c.name}")
    return tuple(row)


def load_rows(cur: Any, spec: TableSpec, rows: list[tuple[Any, ...]]) -> int:
    """Upsert rows in the caller's transaction (no prune: a window is a part of the table; an
    older payload never moves a row with a newer updated_at backwards). Returns rows written."""
    if not rows:
        return 0
    stale = "updated_at" if "updated_at" in spec.column_names else None
    out = load(cur, spec.loader_table(False), rows, Policy(prune=False, stale_column=stale))
    return out.result.inserted + out.result.updated


def window_end(until: datetime, page: Page | None, settle: timedelta) -> datetime:
    """Where a window's mark may move: its end, never past the API's clock (Date) minus settle."""
    if page is None or page.server_time is None:
        return until
    return min(until, page.server_time - settle)


def pages(client: Any, settings: Settings, res: CampusResource, campus_id: int,
          params: Mapping[str, Any]) -> Any:
    """Keyset pages (id order) of one campus's listing with `params`."""
    return KeysetPager(res.path(campus_id), {**res.params(campus_id), **params}, settings.page_size,
                       label=res.spec.source.path, resource=res.name).pages(client)  # type: ignore[union-attr]


# ------------------------------------------------------------------ scale_teams, events, exams
def changes_pass(conn: Any, client: Any, settings: Settings, res: CampusResource, campus_id: int,
                  settle: timedelta, result: CampusResult) -> None:
    """scale_teams, events, exams: the rows updated since the mark (`range[updated_at]`; first run:
    the backfill horizon), each page applied in its own transaction, the mark moved with the last."""
    key = marks.scoped(res.name, campus_id)
    with conn, conn.cursor() as cur:
        mark = marks.high_water(cur, key)
    now = datetime.now(timezone.utc)
    until = now - settle
    since = mark or now - timedelta(days=settings.campus_backfill_days)
    result.since = iso(since)
    if until <= since:
        result.mark = iso(since)
        return
    cursor = getattr(res.spec.source, "cursor", "updated_at")
    first: Page | None = None
    for page in pages(client, settings, res, campus_id, {f"range[{cursor}]": f"{iso(since)},{iso(until)}"}):
        first = first or page
        with conn, conn.cursor() as cur:
            apply_page(cur, res, campus_id, page.rows, result)
            if page.last:
                end = window_end(until, first, settle)
                marks.advance(cur, key, end, client.calls, result.applied)
                result.mark = iso(max(end, mark) if mark else end)


def apply_page(cur: Any, res: CampusResource, campus_id: int, objs: list[Any], result: CampusResult) -> None:
    """Map and load one page: the embedded tables first (teams, then their members: a team's
    member list replaces the one mirrored), then the resource's own rows. Rows naming a mirrored
    user past data_erasure_date are not loaded (the user's rows are erased instead)."""
    result.seen += len(objs)
    own: list[tuple[Any, ...]] = []
    for obj in objs:
        try:
            entity_id(obj, res.name)
            own.append(to_row(res.spec, obj))
        except PayloadError:
            result.invalid += 1
    cols = res.spec.column_names
    if "campus_id" in cols:   # scale_teams do not say their campus: it is the one asked for
        i = cols.index("campus_id")
        own = [r if r[i] is not None else (*r[:i], campus_id, *r[i + 1:]) for r in own]
    embedded = {s.name: _embedded_rows(s, objs, result) for s in res.embedded}
    erased = _erased_people(cur, res, own, embedded)
    if erased:
        result.deleted += sum(campus_db.erase_people(cur, sorted(erased)).values())
        result.erased += len(erased)
        own = [r for r in own if not _names_any(res.spec, r, erased, embedded)]
    for spec in res.embedded:
        rows = embedded[spec.name]
        if "team_id" in spec.pk:
            campus_db.replace_team_members(cur, sorted({r[spec.column_names.index("team_id")] for r in rows}))
            rows = [r for r in rows if r[spec.column_names.index("user_id")] not in erased]
        result.applied += load_rows(cur, spec, rows)
    result.applied += load_rows(cur, res.spec, _with_parents(cur, res.spec, own, result))


def _with_parents(cur: Any, spec: TableSpec, rows: list[tuple[Any, ...]],
                  result: CampusResult) -> list[tuple[Any, ...]]:
    """`rows` whose FK parents (an evaluation's team, loaded from the same answer just before) are
    present; one whose parent could not be mapped is counted invalid and skipped, not failing the
    page on the FK."""
    for fk in spec.fks:
        i = spec.column_names.index(fk.column)
        present = campus_db.present_ids(cur, fk.parent, sorted({r[i] for r in rows} - {None}))
        kept = [r for r in rows if r[i] is None or r[i] in present]
        result.invalid += len(rows) - len(kept)
        rows = kept
    return rows


def _embedded_rows(spec: TableSpec, objs: list[Any], result: CampusResult) -> list[tuple[Any, ...]]:
    """The rows of `spec` carried in the page's objects (teams, their members); one that cannot be
    mapped is counted invalid and skipped, never failing the window (it would fail every run)."""
    rows = []
    for obj in objs:
        if not isinstance(obj, Mapping):
            continue
        for child in spec.source.rows(obj):  # type: ignore[union-attr]
            try:
                rows.append(to_row(spec, child))
            except PayloadError:
                result.invalid += 1
    return rows


def _people(spec: TableSpec, row: tuple[Any, ...]) -> set[int]:
    """The person ids a row names (its soft references to users)."""
    cols = spec.column_names
    return {row[cols.index(r.column)] for r in spec.soft_refs if r.parent == "users"} - {None}


def _erased_people(cur: Any, res: CampusResource, own: list[tuple[Any, ...]],
                   embedded: dict[str, list[tuple[Any, ...]]]) -> set[int]:
    ids: set[int] = set()
    for r in own:
        ids |= _people(res.spec, r)
    for s in res.embedded:
        for r in embedded[s.name]:
            ids |= _people(s, r)
    return campus_db.erased_among(cur, sorted(ids))


def _names_any(spec: TableSpec, row: tuple[Any, ...], erased: set[int],
               embedded: dict[str, list[tuple[Any, ...]]]) -> bool:
    """True when `row` names an erased person, itself or through its team's members."""
    if _people(spec, row) & erased:
        return True
    cols = spec.column_names
    if "team_id" not in cols:
        return False
    team = row[cols.index("team_id")]
    for name, rows in embedded.items():
        child = catalog.BY_NAME[name]
        if "user_id" in child.column_names and "team_id" in child.column_names:
            ti, ui = child.column_names.index("team_id"), child.column_names.index("user_id")
            if any(r[ti] == team and r[ui] in erased for r in rows):
                return True
    return False
