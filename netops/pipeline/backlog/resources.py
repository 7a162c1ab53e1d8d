"""The backlog resources, derived from the catalog (netops/catalog.py): endpoint, table,
columns, primary key, parents, and the JSON -> row mapping.

Why data and not code per resource: the detector, the worker and the reconciler all walk the same
resources in the same way (window query, fetch by ids, stage + upsert, FK checks), so each of
them reads these specs instead of knowing about users or coalitions. Adding a backlog table is adding
one `TableSpec` to the catalog and its table in a migration.

Parents: a backlog row may reference a *stable* parent (projects, achievements, coalitions — mirrored
daily by `netops sync stable`) or a *backlog* one (users). The worker checks every parent before
loading; a row whose backlog parent is missing enqueues the parent's fetch and is held, a row whose
stable parent is missing is held with backoff until the stable sync brings it (see docs/backlog.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from netops import catalog
from netops.catalog import BacklogSource, Table, TableSpec
from netops.config import Settings
from netops.db import campus, mirror
from netops.mapping import CONVERTERS, Getter, parse_ts

__all__ = ["BY_NAME", "ERASURE_COLUMN", "BacklogResource", "Parent", "PayloadError", "entity_id", "erasure_due",
           "parse_ts", "purge_erased", "resolve"]


class PayloadError(ValueError):
    """An object from the API does not have the shape a row needs (not an object, no usable id)."""


@dataclass(frozen=True)
class Parent:
    """A foreign key of a backlog table: `column` references `table.id`.

    `resource` names the backlog resource to enqueue when the parent is missing, or None when the
    parent is a stable table the backlog cannot fetch (the stable sync owns it).
    """

    column: str
    table: str
    resource: str | None = None


@dataclass(frozen=True)
class BacklogResource:
    """One backlog resource: where it comes from in the API and where it lands in PostgreSQL."""

    name: str                      # queue/marks name, e.g. "projects_users" (the API's word)
    table: str                     # mirror table, e.g. "project_users"
    path: str                      # collection endpoint; `{cursus}` is filled from settings
    spec: tuple[tuple[str, Getter, str], ...]   # (column, getter, type) in table order
    parents: tuple[Parent, ...]
    pk: tuple[str, ...] = ("id",)
    filters: tuple[tuple[str, str], ...] = ()   # fixed query filters (`{cursus}` filled in)
    priority: int = 1              # claim order: parents (users) first, so children find them
    erasure_column: str | None = None   # users: past this date a row is erased, never loaded

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c, _, _ in self.spec)

    @property
    def loader_table(self) -> Table:
        """The loader's view of the table. Parents are *not* passed: the loader would silently
        skip orphans, while the worker must hold them and fetch their parent instead."""
        return Table(self.table, self.columns, self.pk)

    def endpoint(self, settings: Settings) -> str:
        return self.path.format(cursus=settings.cursus_id)

    def base_params(self, settings: Settings) -> dict[str, Any]:
        return {k: v.format(cursus=settings.cursus_id) for k, v in self.filters}

    def to_row(self, obj: Any) -> tuple[Any, ...]:
        """Validate one API object and map it to a row in `columns` order.

        Unknown extra fields are ignored; a missing field is NULL; a missing or non-integer id is a
        PayloadError (the row cannot be keyed, so it must not be loaded).
        """
        if not isinstance(obj, Mapping):
            raise PayloadError(f"{self.name}: expected a JSON object, got {type(obj).__name__}")
        ident = entity_id(obj, self.name)
        row = []
        for column, get, kind in self.spec:
            raw = get(obj)
            try:
                row.append(CONVERTERS[kind](raw))
            except (ValueError, TypeError):
                raise PayloadError(
                    f"{self.name} {ident}: field {column} = {raw!r} is not a valid {kind}"
                ) from None
        for parent in self.parents:
            if row[self.columns.index(parent.column)] is None:
                raise PayloadError(f"{self.name} {ident}: {parent.column} is missing")
        return tuple(row)


def entity_id(obj: Mapping[str, Any], resource: str) -> int:
    """The integer primary key of an API object, or PayloadError."""
    value = obj.get("id")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PayloadError(f"{resource}: object without a usable id ({value!r})")
    try:
        return int(value)
    except ValueError:
        raise PayloadError(f"{resource}: object with a non-integer id ({value!r})") from None


def _resource(spec: TableSpec) -> BacklogResource:
    """The backlog resource of one catalog table (its source, mapping, keys and parents)."""
    src = spec.source
    assert isinstance(src, BacklogSource)
    backlog_tables = {s.name: s for s in catalog.BACKLOG}
    parents = tuple(
        Parent(fk.column, fk.parent, backlog_tables[fk.parent].source.resource if fk.parent in backlog_tables else None)
        for fk in spec.fks)
    return BacklogResource(
        name=src.resource, table=spec.name, path=src.path,
        spec=tuple((c.name, c.getter, c.kind) for c in spec.columns),
        parents=parents, pk=spec.pk, filters=src.filters,
        # claim order: a resource other backlog rows reference (users) before its children
        priority=0 if not any(fk.parent in backlog_tables for fk in spec.fks) else 1,
        erasure_column=spec.erasure_column,
    )


RESOURCES: tuple[BacklogResource, ...] = tuple(_resource(s) for s in catalog.BACKLOG)
BY_NAME: dict[str, BacklogResource] = {r.name: r for r in RESOURCES}
BY_TABLE: dict[str, BacklogResource] = {r.table: r for r in RESOURCES}
USERS, PROJECTS_USERS, ACHIEVEMENTS_USERS, COALITIONS_USERS, CURSUS_USERS = (
    BY_TABLE["users"], BY_TABLE["project_users"], BY_TABLE["achievements_users"], BY_TABLE["coalitions_users"],
    BY_TABLE["cursus_users"])

# ------------------------------------------------------------------ erasure (docs/backlog.md)
#: The users column after which a row is personal data the school has promised to erase.
ERASURE_COLUMN = next(s.erasure_column for s in catalog.BACKLOG if s.erasure_column)


def erasure_due(res: BacklogResource, row: Sequence[Any], now: datetime | None = None) -> bool:
    """True when `row` (a mapped users row) is past its data_erasure_date: it must not be kept.

    Only users carry the date; a NULL date never expires.
    """
    if res.erasure_column is None:
        return False
    value = row[res.columns.index(res.erasure_column)]
    if value is None:
        return False
    return parse_ts(value) <= (now or datetime.now(timezone.utc))


def purge_erased(cur: Any, res: BacklogResource) -> list[int]:
    """Delete every mirrored row of `res` past its erasure date (their link rows cascade); returns
    their ids (none for a resource without one). Deleted, not anonymized: docs/backlog.md, "Erasure"."""
    if res.erasure_column is None:
        return []
    erased = mirror.delete_due(cur, res.table, res.erasure_column)
    campus.erase_people(cur, erased)   # their sessions and evaluations: soft references, no cascade
    return erased


def resolve(names: Sequence[str] | None) -> list[BacklogResource]:
    """Resources named by queue name or table name (None/empty = all, parents first)."""
    if not names:
        return list(RESOURCES)
    out = []
    for n in names:
        res = BY_NAME.get(n) or BY_TABLE.get(n)
        if res is None:
            known = ", ".join(r.name for r in RESOURCES)
            raise ValueError(f"unknown backlog resource {n!r}; expected one of: {known}")
        if res not in out:
            out.append(res)
    return sorted(out, key=lambda r: r.priority)
