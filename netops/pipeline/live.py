"""The four live resources of phase 09, as data: endpoint, table, columns, primary key, parents,
and the JSON -> row mapping.

Why data and not code per resource: the detector, the worker and the reconciler all walk the same
four resources in the same way (window query, fetch by ids, stage + upsert, FK checks), so each of
them reads these specs instead of knowing about users or coalitions. Adding a live table is adding
one `LiveResource` here and its table in a migration.

Parents: a live row may reference a *stable* parent (projects, achievements, coalitions — mirrored
daily by `netops sync stable`) or a *live* one (users). The worker checks every parent before
loading; a row whose live parent is missing enqueues the parent's fetch and is held, a row whose
stable parent is missing is held with backoff until the stable sync brings it (see docs/backlog.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from netops.config import Settings
from netops.db.loader import Table
from netops.pipeline.mapping import CONVERTERS, Getter, key, parse_ts

__all__ = ["BY_NAME", "ERASURE_COLUMN", "LiveResource", "Parent", "PayloadError", "entity_id", "erasure_due",
           "parse_ts", "purge_erased", "resolve"]


class PayloadError(ValueError):
    """An object from the API does not have the shape a row needs (not an object, no usable id)."""


@dataclass(frozen=True)
class Parent:
    """A foreign key of a live table: `column` references `table.id`.

    `resource` names the live resource to enqueue when the parent is missing, or None when the
    parent is a stable table the backlog cannot fetch (the stable sync owns it).
    """

    column: str
    table: str
    resource: str | None = None


@dataclass(frozen=True)
class LiveResource:
    """One live resource: where it comes from in the API and where it lands in PostgreSQL."""

    name: str                      # queue/marks name, e.g. "projects_users" (the API's word)
    table: str                     # mirror table, e.g. "project_users"
    path: str                      # collection endpoint; `{cursus}` is filled from settings
    spec: tuple[tuple[str, Getter, str], ...]   # (column, getter, type) in table order
    parents: tuple[Parent, ...]
    pk: tuple[str, ...] = ("id",)
    filters: tuple[tuple[str, str], ...] = ()   # fixed query filters (`{cursus}` filled in)
    priority: int = 1              # claim order: parents (users) first, so children find them

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


def _nested_id(key: str, flat: str) -> Getter:
    """`project.id` from a nested object, falling back to a flat `project_id` field."""

    def get(o: Mapping[str, Any]) -> Any:
        nested = o.get(key)
        if isinstance(nested, Mapping) and nested.get("id") is not None:
            return nested.get("id")
        return o.get(flat)

    return get


def _image_url(o: Mapping[str, Any]) -> Any:
    image = o.get("image")
    if isinstance(image, Mapping):
        return image.get("link")
    if isinstance(image, str):
        return image
    return o.get("image_url")


def _spec(*cols: tuple[str, Getter | str, str]) -> tuple[tuple[str, Getter, str], ...]:
    return tuple((name, key(src) if isinstance(src, str) else src, kind) for name, src, kind in cols)


USERS = LiveResource(
    name="users", table="users", path="/v2/cursus/{cursus}/users",
    spec=_spec(
        ("id", "id", "int"), ("login", "login", "text"), ("email", "email", "text"),
        ("first_name", "first_name", "text"), ("last_name", "last_name", "text"),
        ("usual_full_name", "usual_full_name", "text"), ("displayname", "displayname", "text"),
        ("kind", "kind", "text"), ("phone", "phone", "text"), ("url", "url", "text"),
        ("image_url", _image_url, "text"), ("active", key("active?", "active"), "bool"),
        ("alumni", key("alumni?", "alumni"), "bool"), ("staff", key("staff?", "staff"), "bool"),
        ("pool_month", "pool_month", "text"), ("pool_year", "pool_year", "text"),
        ("location", "location", "text"), ("wallet", "wallet", "int"),
        ("correction_point", "correction_point", "int"), ("alumnized_at", "alumnized_at", "ts"),
        ("created_at", "created_at", "ts"), ("updated_at", "updated_at", "ts"),
        # migration 005: every field the API gives
        ("usual_first_name", "usual_first_name", "text"), ("image", "image", "json"),
        ("anonymize_date", "anonymize_date", "ts"), ("data_erasure_date", "data_erasure_date", "ts"),
    ),
    parents=(), priority=0,
)
PROJECTS_USERS = LiveResource(
    name="projects_users", table="project_users", path="/v2/projects_users",
    spec=_spec(
        ("id", "id", "int"), ("project_id", _nested_id("project", "project_id"), "int"),
        ("user_id", _nested_id("user", "user_id"), "int"), ("cursus_ids", "cursus_ids", "json"),
        ("status", "status", "text"), ("final_mark", "final_mark", "int"),
        ("validated", key("validated?", "validated"), "bool"), ("occurrence", "occurrence", "int"),
        ("marked", "marked", "bool"), ("marked_at", "marked_at", "ts"),
        ("retriable_at", "retriable_at", "ts"), ("created_at", "created_at", "ts"),
        ("updated_at", "updated_at", "ts"),
    ),
    parents=(Parent("project_id", "projects"), Parent("user_id", "users", "users")),
    filters=(("filter[cursus]", "{cursus}"),),
)
ACHIEVEMENTS_USERS = LiveResource(
    name="achievements_users", table="achievements_users", path="/v2/achievements_users",
    spec=_spec(
        ("id", "id", "int"), ("achievement_id", _nested_id("achievement", "achievement_id"), "int"),
        ("user_id", _nested_id("user", "user_id"), "int"),
        ("created_at", "created_at", "ts"), ("updated_at", "updated_at", "ts"),
    ),
    parents=(Parent("achievement_id", "achievements"), Parent("user_id", "users", "users")),
)
COALITIONS_USERS = LiveResource(
    name="coalitions_users", table="coalitions_users", path="/v2/coalitions_users",
    spec=_spec(
        ("id", "id", "int"), ("coalition_id", _nested_id("coalition", "coalition_id"), "int"),
        ("user_id", _nested_id("user", "user_id"), "int"), ("score", "score", "int"),
        ("rank", "rank", "int"), ("created_at", "created_at", "ts"), ("updated_at", "updated_at", "ts"),
    ),
    parents=(Parent("coalition_id", "coalitions"), Parent("user_id", "users", "users")),
)

RESOURCES: tuple[LiveResource, ...] = (USERS, PROJECTS_USERS, ACHIEVEMENTS_USERS, COALITIONS_USERS)

# ------------------------------------------------------------------ erasure (docs/backlog.md)
#: The users column after which a row is personal data the school has promised to erase.
ERASURE_COLUMN = "data_erasure_date"


def erasure_due(res: LiveResource, row: Sequence[Any], now: datetime | None = None) -> bool:
    """True when `row` (a mapped users row) is past its data_erasure_date: it must not be kept.

    Only users carry the date; a NULL date never expires.
    """
    if res.name != "users":
        return False
    value = row[res.columns.index(ERASURE_COLUMN)]
    if value is None:
        return False
    return parse_ts(value) <= (now or datetime.now(timezone.utc))


def purge_erased(cur: Any) -> list[int]:
    """Delete every mirrored user past its data_erasure_date (their link rows cascade); returns
    their ids. Deleted, not anonymized: see docs/backlog.md, "Erasure"."""
    cur.execute(f"DELETE FROM users WHERE {ERASURE_COLUMN} <= now() RETURNING id")
    return sorted(int(r[0]) for r in cur.fetchall())
BY_NAME: dict[str, LiveResource] = {r.name: r for r in RESOURCES}
BY_TABLE: dict[str, LiveResource] = {r.table: r for r in RESOURCES}


def resolve(names: Sequence[str] | None) -> list[LiveResource]:
    """Resources named by queue name or table name (None/empty = all four, parents first)."""
    if not names:
        return list(RESOURCES)
    out = []
    for n in names:
        res = BY_NAME.get(n) or BY_TABLE.get(n)
        if res is None:
            known = ", ".join(r.name for r in RESOURCES)
            raise ValueError(f"unknown live resource {n!r}; expected one of: {known}")
        if res not in out:
            out.append(res)
    return sorted(out, key=lambda r: r.priority)
