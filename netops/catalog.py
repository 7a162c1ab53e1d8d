"""The schema catalog: every mirrored table declared once — columns, keys, references, source, mapping.

Why one declaration: the migrations, the stable phases, the backlog resources, the quality checks,
the simulator's expected mirror, the monitor's table list and the reliability tests' digests all
derive from the data below (netops/pipeline/stable/phases.py, netops/pipeline/backlog/resources.py,
netops/db/quality.py, netops/sim/data.py, netops/monitor/facts.py, tests/reliability/conftest.py),
so they cannot disagree.

Why here, on the lowest floor: db/, sim/ and pipeline/ all read it, so it imports nothing from
netops but the pure JSON -> value helpers of netops/mapping.py. The loader's view of a table
(`Table`) is declared here too, and netops/db/loader.py reads it.

Migrations stay hand-written SQL (they are the history); tests/integration/test_catalog.py
migrates a scratch database and compares information_schema with this file, table by table and
column by column (types, nullability, primary key, foreign keys with their ON DELETE rule, and
the delta_* staging twin of every table).

Order: tables are loaded parents first. The order is *derived* (a topological sort of the
foreign keys and of the "rows come from that table's answer" dependencies), declaration order
breaking ties, so inserting a table never renames anything: history, metric labels and
`--phase` use the table name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from netops.mapping import Getter, ids_of, jsonapi, jsonapi_flat, key, name_of, nested, nested_id, person

# --------------------------------------------------------------------------- column types
#: mapping kind -> the PostgreSQL type information_schema reports for it
SQL_TYPES: dict[str, str] = {
    "int": "integer", "float": "double precision", "bool": "boolean",
    "ts": "timestamp with time zone", "text": "text", "json": "jsonb",
}


@dataclass(frozen=True)
class Column:
    """One column: its name, mapping kind (a key of SQL_TYPES), where its value is in the API
    object, and whether the mirror table declares it NOT NULL (staging twins never do)."""

    name: str
    kind: str
    getter: Getter
    not_null: bool = False

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.kind]


def col(name: str, kind: str, getter: Getter | str | None = None, not_null: bool = False) -> Column:
    """A column read from `getter` (a JSON key, a getter, or by default the key `name`)."""
    get = key(getter) if isinstance(getter, str) else (getter or key(name))
    return Column(name, kind, get, not_null)


@dataclass(frozen=True)
class ForeignKey:
    """`column` references `parent(id)`; `on_delete` as information_schema spells it."""

    column: str
    parent: str
    on_delete: str = "CASCADE"


@dataclass(frozen=True)
class SoftRef:
    """A reference deliberately left without a FK: the API points it outside the mirrored set
    (inactive campuses, other cursus). `netops check` counts its orphans as info."""

    column: str
    parent: str
    note: str


# --------------------------------------------------------------------------- the loader's view
@dataclass(frozen=True)
class Table:
    """What netops/db/loader.py loads: a table's columns in COPY order, its primary key, and its
    parents. Declared here so the loader reads the catalog's shape without the catalog importing db.

    `parents` maps a column to the table its value must exist in (`id` column); rows whose
    parent is missing are skipped at apply time and counted.
    """

    name: str
    columns: tuple[str, ...]
    pk: tuple[str, ...] = ("id",)
    parents: tuple[tuple[str, str], ...] = field(default=())

    @property
    def delta(self) -> str:
        return f"delta_{self.name}"

    @property
    def non_key(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.pk)


# --------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class Single:
    """One object (`/v2/cursus/21`): fetching it costs the one call a probe would."""

    path: str
    kind: str = "single"


@dataclass(frozen=True)
class Listing:
    """An index endpoint paged in full; `change_column` is what its no-change probe sorts by
    (`updated_at` when the resource has it, else `id`)."""

    path: str
    params: Mapping[str, str]
    kind: str = "paged"


@dataclass(frozen=True)
class NestedList:
    """Rows from a list nested in each object of `parent`'s listing (no call of their own).
    `rows(obj)` returns the child objects of one parent object, shaped for `columns`."""

    parent: str
    list_key: str
    rows: Callable[[Mapping[str, Any]], list[dict[str, Any]]]
    kind: str = "nested"


@dataclass(frozen=True)
class DerivedLinks:
    """Link rows derived from a field of `parent`'s listing (achievements' `campus` names,
    matched to the mirrored campuses by exact name: netops/pipeline/stable/links.py). `per_parent` is the
    per-parent listing the links can be verified against (`netops sync verify-links`)."""

    parent: str
    field: str
    per_parent: str
    kind: str = "derived"


@dataclass(frozen=True)
class BacklogSource:
    """A backlog resource: walked by id keyset, changes found by `cursor`
    (`range[updated_at]`); `resource` is the queue/marks name (the API's word)."""

    resource: str
    path: str
    filters: tuple[tuple[str, str], ...] = ()
    cursor: str = "updated_at"
    kind: str = "backlog"


@dataclass(frozen=True)
class CampusWindow:
    """A campus-scoped resource without `updated_at` (locations): per campus in scope, `path`
    (`{campus}` filled in) windowed over `window` (`range[begin_at]`) with a lookback, and the open
    rows (`open_filter`: `filter[active]=true`) re-checked until they close or are gone.
    `resource` is the queue/marks name."""

    resource: str
    path: str
    window: str = "begin_at"
    open_filter: tuple[tuple[str, str], ...] = (("filter[active]", "true"),)
    kind: str = "campus_window"


@dataclass(frozen=True)
class CampusChanges:
    """A campus-scoped resource found by `cursor` (`range[updated_at]`) for each campus in scope:
    a per-campus route (`/v2/campus/{campus}/events`) or a global one narrowed by `filters`
    (`/v2/scale_teams` with `filter[campus_id]={campus}`: there is no per-campus scale_teams route).
    `resource` is the queue/marks name."""

    resource: str
    path: str
    filters: tuple[tuple[str, str], ...] = ()
    cursor: str = "updated_at"
    kind: str = "campus_changes"


@dataclass(frozen=True)
class Embedded:
    """Rows carried inside each object of another campus resource's answer (teams and their users,
    in every scale_team's `team`): no call of their own. `within` names that table (not a load
    dependency: scale_teams reference teams, so teams load first from the same answer);
    `rows(obj)` returns the child rows of one object, shaped for `columns`."""

    within: str
    rows: Callable[[Mapping[str, Any]], list[dict[str, Any]]]
    kind: str = "embedded"


Source = Single | Listing | NestedList | DerivedLinks | BacklogSource | CampusWindow | CampusChanges | Embedded
#: source kinds of the campus-scoped live tables (kept for the campuses in scope, `campus_ids`)
CAMPUS_KINDS = ("campus_window", "campus_changes", "embedded")


@dataclass(frozen=True)
class TableSpec:
    """One mirrored table."""

    name: str
    columns: tuple[Column, ...]
    source: Source
    pk: tuple[str, ...] = ("id",)
    fks: tuple[ForeignKey, ...] = ()
    soft_refs: tuple[SoftRef, ...] = ()
    #: users only: the column after which a row is personal data to erase (migration 005)
    erasure_column: str | None = None

    @property
    def backlog(self) -> bool:
        return self.source.kind == "backlog"

    @property
    def campus_scoped(self) -> bool:
        """A live table kept per campus in scope (locations, evaluations, events, exams)."""
        return self.source.kind in CAMPUS_KINDS

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def delta(self) -> str:
        return f"delta_{self.name}"

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Tables that must be loaded before this one: FK parents and the table whose answer
        this one's rows come from."""
        deps = [fk.parent for fk in self.fks if fk.parent != self.name]
        parent = getattr(self.source, "parent", None)
        if parent is not None and parent not in deps:
            deps.append(parent)
        return tuple(deps)

    def loader_table(self, with_parents: bool) -> Table:
        """The loader's view. `with_parents`: the loader skips rows whose FK parent is missing
        and counts them (stable links); the backlog worker instead holds them and fetches their
        parent, so it loads without."""
        parents = tuple((fk.column, fk.parent) for fk in self.fks) if with_parents else ()
        return Table(self.name, self.column_names, self.pk, parents)


# --------------------------------------------------------------------------- API quirks
def _campus_links(project: Mapping[str, Any]) -> list[dict[str, Any]]:
    pid = project.get("id")
    return [{"campus_id": c.get("id"), "project_id": pid}
            for c in (project.get("campus") or []) if isinstance(c, dict)]


def _sessions(project: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A project's sessions, each with the project's id when it does not carry its own."""
    pid = project.get("id")
    out = []
    for s in project.get("project_sessions") or []:
        if isinstance(s, dict):
            s = dict(s)
            if s.get("project_id") is None:
                s["project_id"] = pid
            out.append(s)
    return out


def _image_url(o: Mapping[str, Any]) -> Any:
    image = o.get("image")
    if isinstance(image, Mapping):
        return image.get("link")
    if isinstance(image, str):
        return image
    return o.get("image_url")


def _team(scale_team: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The team an evaluation is of (plain or JSON:API serialisation alike)."""
    team = jsonapi_flat(scale_team).get("team")
    return [dict(team)] if isinstance(team, Mapping) and team.get("id") is not None else []


def _team_users(scale_team: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The members of an evaluation's team, one row per entry of `team.users` at its `position`
    (the key: a hidden member, `"invisible"`, is a row with NULL user_id, never a fake id)."""
    out = []
    for team in _team(scale_team):
        users = team.get("users")
        for i, u in enumerate(users if isinstance(users, list) else []):
            u = u if isinstance(u, Mapping) else {}
            out.append({"team_id": team["id"], "position": i, "user_id": u.get("id"), "login": u.get("login"),
                        "leader": u.get("leader"), "validated": u.get("validated"),
                        "occurrence": u.get("occurrence"), "projects_user_id": u.get("projects_user_id")})
    return out


def _st(name: str, kind: str, getter: Getter | str | None = None, not_null: bool = False) -> Column:
    """A scale_teams column, read the same from the plain and the JSON:API serialisation."""
    get = key(getter) if isinstance(getter, str) else (getter or key(name))
    return Column(name, kind, jsonapi(get), not_null)


CURSUS = "{cursus}"   # filled from settings.cursus_id (42cursus is 21)
CAMPUS = "{campus}"   # filled with each campus id in scope (settings.campus_ids)
_USER_SOFT = "a person netops does not mirror (pool candidate, staff, other cursus)"

# --------------------------------------------------------------------------- the tables
_DECLARED: tuple[TableSpec, ...] = (
    # ---- stable (netops sync stable)
    TableSpec("cursus", (
        col("id", "int", not_null=True), col("name", "text"), col("slug", "text"), col("kind", "text"),
        col("created_at", "ts"),
    ), Single(f"/v2/cursus/{CURSUS}")),
    TableSpec("campuses", (
        col("id", "int", not_null=True), col("name", "text"), col("time_zone", "text"),
        col("language_id", "int", nested("language", "id")), col("language_name", "text", nested("language", "name")),
        col("users_count", "int"), col("vogsphere_id", "int"), col("country", "text"), col("address", "text"),
        col("zip", "text"), col("city", "text"), col("website", "text"), col("facebook", "text"),
        col("twitter", "text"), col("active", "bool", key("active", "active?")),
        col("public", "bool", key("public", "public?")), col("email_extension", "text"),
    ), Listing("/v2/campus", {"filter[active]": "true", "filter[public]": "true", "sort": "id"})),
    TableSpec("projects", (
        col("id", "int", not_null=True), col("name", "text"), col("slug", "text"),
        col("parent_id", "int", nested("parent", "id")), col("exam", "bool", key("exam", "exam?")),
        col("git_id", "int"), col("repository", "text"), col("difficulty", "int"), col("created_at", "ts"),
        col("updated_at", "ts"),
    ), Listing(f"/v2/cursus/{CURSUS}/projects", {"sort": "id"}),
        soft_refs=(SoftRef("parent_id", "projects", "parent project not mirrored (may be outside the cursus)"),)),
    TableSpec("coalitions", (
        col("id", "int", not_null=True), col("name", "text"), col("slug", "text"), col("image_url", "text"),
        col("cover_url", "text"), col("color", "text"), col("score", "int"), col("user_id", "int"),
    ), Listing("/v2/coalitions", {"sort": "id"})),
    TableSpec("achievements", (
        col("id", "int", not_null=True), col("name", "text"), col("description", "text"), col("tier", "text"),
        col("kind", "text"), col("visible", "bool", key("visible", "visible?")), col("image", "text"),
        col("nbr_of_success", "int"), col("users_url", "text"), col("parent_id", "int", nested("parent", "id")),
        col("title", "text", name_of("title")),
    ), Listing("/v2/achievements", {"sort": "id"}),
        soft_refs=(SoftRef("parent_id", "achievements", "parent achievement not mirrored"),)),
    TableSpec("campus_projects", (
        col("campus_id", "int", not_null=True), col("project_id", "int", not_null=True),
    ), NestedList("projects", "campus", _campus_links), pk=("campus_id", "project_id"),
        fks=(ForeignKey("campus_id", "campuses"), ForeignKey("project_id", "projects"))),
    TableSpec("campus_achievements", (
        col("campus_id", "int", not_null=True), col("achievement_id", "int", not_null=True),
    ), DerivedLinks("achievements", "campus", "/v2/campus/{id}/achievements"), pk=("campus_id", "achievement_id"),
        fks=(ForeignKey("campus_id", "campuses"), ForeignKey("achievement_id", "achievements"))),
    TableSpec("project_sessions", (
        col("id", "int", not_null=True), col("project_id", "int", not_null=True), col("campus_id", "int"),
        col("cursus_id", "int"), col("begin_at", "ts"), col("end_at", "ts"), col("solo", "bool", key("solo", "solo?")),
        col("estimate_time", "text"), col("difficulty", "int"), col("duration_days", "int"),
        col("max_people", "int"), col("is_subscriptable", "bool", key("is_subscriptable", "is_subscriptable?")),
        col("created_at", "ts"), col("updated_at", "ts"),
    ), NestedList("projects", "project_sessions", _sessions), fks=(ForeignKey("project_id", "projects"),),
        soft_refs=(SoftRef("campus_id", "campuses", "session of a campus not mirrored (inactive or not public)"),
                   SoftRef("cursus_id", "cursus", "session of another cursus"))),
    # ---- backlog (netops backlog detect / run / reconcile)
    TableSpec("users", (
        col("id", "int", not_null=True), col("login", "text"), col("email", "text"),
        col("first_name", "text"), col("last_name", "text"), col("usual_full_name", "text"),
        col("displayname", "text"), col("kind", "text"), col("phone", "text"), col("url", "text"),
        col("image_url", "text", _image_url), col("active", "bool", key("active?", "active")),
        col("alumni", "bool", key("alumni?", "alumni")), col("staff", "bool", key("staff?", "staff")),
        col("pool_month", "text"), col("pool_year", "text"), col("location", "text"), col("wallet", "int"),
        col("correction_point", "int"), col("alumnized_at", "ts"), col("created_at", "ts"), col("updated_at", "ts"),
        # every field the API gives
        col("usual_first_name", "text"), col("image", "json"), col("anonymize_date", "ts"),
        col("data_erasure_date", "ts"),
    ), BacklogSource("users", f"/v2/cursus/{CURSUS}/users"), erasure_column="data_erasure_date"),
    TableSpec("project_users", (
        col("id", "int", not_null=True), col("project_id", "int", nested_id("project", "project_id"), not_null=True),
        col("user_id", "int", nested_id("user", "user_id"), not_null=True), col("cursus_ids", "json"),
        col("status", "text"), col("final_mark", "int"), col("validated", "bool", key("validated?", "validated")),
        col("occurrence", "int"), col("marked", "bool"), col("marked_at", "ts"), col("retriable_at", "ts"),
        col("created_at", "ts"), col("updated_at", "ts"),
    ), BacklogSource("projects_users", "/v2/projects_users", (("filter[cursus]", CURSUS),)),
        fks=(ForeignKey("project_id", "projects"), ForeignKey("user_id", "users"))),
    TableSpec("achievements_users", (
        col("id", "int", not_null=True),
        col("achievement_id", "int", nested_id("achievement", "achievement_id"), not_null=True),
        col("user_id", "int", nested_id("user", "user_id"), not_null=True),
        col("created_at", "ts"), col("updated_at", "ts"),
    ), BacklogSource("achievements_users", "/v2/achievements_users"),
        fks=(ForeignKey("achievement_id", "achievements"), ForeignKey("user_id", "users"))),
    TableSpec("coalitions_users", (
        col("id", "int", not_null=True),
        col("coalition_id", "int", nested_id("coalition", "coalition_id"), not_null=True),
        col("user_id", "int", nested_id("user", "user_id"), not_null=True), col("score", "int"),
        col("rank", "int"), col("created_at", "ts"), col("updated_at", "ts"),
    ), BacklogSource("coalitions_users", "/v2/coalitions_users"),
        fks=(ForeignKey("coalition_id", "coalitions"), ForeignKey("user_id", "users"))),
    # the table 42 dashboards ask for first. `level` is computed by
    # the server and changes without moving updated_at (docs/api.md): reconcile catches it.
    TableSpec("cursus_users", (
        col("id", "int", not_null=True), col("user_id", "int", nested_id("user", "user_id"), not_null=True),
        col("cursus_id", "int", nested_id("cursus", "cursus_id"), not_null=True), col("level", "float"),
        col("grade", "text"), col("begin_at", "ts"), col("end_at", "ts"), col("blackholed_at", "ts"),
        col("created_at", "ts"), col("updated_at", "ts"),
    ), BacklogSource("cursus_users", f"/v2/cursus/{CURSUS}/cursus_users"),
        fks=(ForeignKey("user_id", "users"), ForeignKey("cursus_id", "cursus"))),
    # ---- campus-scoped live tables (issue 23): the campuses in scope only. Every reference to a
    # person is soft: sessions and evaluations name pool candidates, staff and other cursus' users.
    TableSpec("locations", (
        col("id", "int", not_null=True), col("user_id", "int", nested_id("user", "user_id")),
        col("login", "text", nested("user", "login")), col("campus_id", "int"), col("host", "text"),
        col("begin_at", "ts"), col("end_at", "ts"), col("primary", "bool", key("primary", "primary?")),
    ), CampusWindow("locations", f"/v2/campus/{CAMPUS}/locations"),
        soft_refs=(SoftRef("user_id", "users", _USER_SOFT),
                   SoftRef("campus_id", "campuses", "campus not mirrored (inactive or not public)"))),
    TableSpec("teams", (
        col("id", "int", not_null=True), col("name", "text"), col("project_id", "int"),
        col("project_session_id", "int"), col("final_mark", "int"), col("status", "text"),
        col("validated", "bool", key("validated?", "validated")), col("closed", "bool", key("closed?", "closed")),
        col("locked", "bool", key("locked?", "locked")), col("repo_url", "text"), col("repo_uuid", "text"),
        col("terminating_at", "ts"), col("locked_at", "ts"), col("closed_at", "ts"),
        col("created_at", "ts"), col("updated_at", "ts"),
    ), Embedded("scale_teams", _team),
        soft_refs=(SoftRef("project_id", "projects", "project of another cursus (a piscine's)"),
                   SoftRef("project_session_id", "project_sessions", "session of a project not mirrored"))),
    TableSpec("teams_users", (
        col("team_id", "int", not_null=True), col("position", "int", not_null=True), col("user_id", "int"),
        col("login", "text"), col("leader", "bool"), col("validated", "bool"), col("occurrence", "int"),
        col("projects_user_id", "int"),
    ), Embedded("scale_teams", _team_users), pk=("team_id", "position"),
        fks=(ForeignKey("team_id", "teams"),), soft_refs=(SoftRef("user_id", "users", _USER_SOFT),)),
    TableSpec("scale_teams", (
        _st("id", "int", not_null=True), _st("team_id", "int", nested("team", "id")), _st("scale_id", "int"),
        _st("corrector_id", "int", person("corrector")), _st("corrector_login", "text", person("corrector", "login")),
        _st("final_mark", "int"), _st("begin_at", "ts"), _st("filled_at", "ts"), _st("flag", "json"),
        _st("comment", "text"), _st("feedback", "text"), _st("truant_id", "int", person("truant")),
        _st("feedbacks", "json"), _st("campus_id", "int"), _st("created_at", "ts"), _st("updated_at", "ts"),
    ), CampusChanges("scale_teams", "/v2/scale_teams", (("filter[campus_id]", CAMPUS),)),
        fks=(ForeignKey("team_id", "teams"),),
        soft_refs=(SoftRef("corrector_id", "users", _USER_SOFT),
                   SoftRef("campus_id", "campuses", "campus not mirrored (inactive or not public)"))),
    TableSpec("events", (
        col("id", "int", not_null=True), col("name", "text"), col("description", "text"), col("location", "text"),
        col("kind", "text"), col("max_people", "int"), col("nbr_subscribers", "int"), col("begin_at", "ts"),
        col("end_at", "ts"), col("campus_ids", "json"), col("cursus_ids", "json"),
        col("prohibition_of_cancellation", "int"), col("created_at", "ts"), col("updated_at", "ts"),
    ), CampusChanges("events", f"/v2/campus/{CAMPUS}/events")),
    TableSpec("exams", (
        col("id", "int", not_null=True), col("name", "text"), col("ip_range", "text"), col("location", "text"),
        col("max_people", "int"), col("nbr_subscribers", "int"), col("begin_at", "ts"), col("end_at", "ts"),
        col("campus_id", "int", nested_id("campus", "campus_id")), col("cursus_ids", "json", ids_of("cursus")),
        col("project_ids", "json", ids_of("projects")), col("created_at", "ts"), col("updated_at", "ts"),
    ), CampusChanges("exams", f"/v2/campus/{CAMPUS}/exams"),
        soft_refs=(SoftRef("campus_id", "campuses", "campus not mirrored (inactive or not public)"),)),
)


def topological(specs: Sequence[TableSpec]) -> tuple[TableSpec, ...]:
    """Parents before children (`depends_on`), declaration order breaking ties; a cycle or a
    reference to an undeclared table is a programming error named here."""
    names = {s.name for s in specs}
    for s in specs:
        unknown = [d for d in s.depends_on if d not in names]
        if unknown:
            raise ValueError(f"catalog: {s.name} depends on undeclared table(s) {unknown}")
    done: list[TableSpec] = []
    placed: set[str] = set()
    todo = list(specs)
    while todo:
        ready = next((s for s in todo if all(d in placed for d in s.depends_on)), None)
        if ready is None:
            raise ValueError(f"catalog: dependency cycle among {[s.name for s in todo]}")
        done.append(ready)
        placed.add(ready.name)
        todo.remove(ready)
    return tuple(done)


#: every mirrored table, parents first: the stable ones, then the backlog ones, then the
#: campus-scoped ones
_ORDER = topological(_DECLARED)
TABLES: tuple[TableSpec, ...] = (tuple(s for s in _ORDER if not s.backlog and not s.campus_scoped)
                                 + tuple(s for s in _ORDER if s.backlog) + tuple(s for s in _ORDER if s.campus_scoped))
BY_NAME: dict[str, TableSpec] = {s.name: s for s in TABLES}
STABLE: tuple[TableSpec, ...] = tuple(s for s in TABLES if not s.backlog and not s.campus_scoped)
BACKLOG: tuple[TableSpec, ...] = tuple(s for s in TABLES if s.backlog)
CAMPUS_SCOPED: tuple[TableSpec, ...] = tuple(s for s in TABLES if s.campus_scoped)


#: backlog tables by their queue/marks name (the API's word, e.g. "projects_users")
BACKLOG_BY_RESOURCE: dict[str, TableSpec] = {s.source.resource: s for s in BACKLOG}  # type: ignore[union-attr]


#: campus-scoped tables with a call of their own, by their queue/marks name (locations, scale_teams,
#: events, exams); teams and teams_users come inside scale_teams' answers
CAMPUS_BY_RESOURCE: dict[str, TableSpec] = {
    s.source.resource: s for s in CAMPUS_SCOPED if hasattr(s.source, "resource")}  # type: ignore[union-attr]


def embedded_in(table: str) -> tuple[TableSpec, ...]:
    """Tables whose rows come inside `table`'s objects (scale_teams -> teams, teams_users)."""
    return tuple(s for s in CAMPUS_SCOPED if getattr(s.source, "within", None) == table)


def claim_priority(spec: TableSpec) -> int:
    """Claim order in the queue: a backlog table no other backlog row's parent is missing from (users) is
    0, its children 1, so a batch loads parents before the rows that reference them."""
    return 1 if any(BY_NAME[fk.parent].backlog for fk in spec.fks) else 0


def backlog_resource_names() -> tuple[str, ...]:
    """Queue/marks names of the backlog tables, parents first."""
    return tuple(s.source.resource for s in BACKLOG)  # type: ignore[union-attr]


def stable_parents_of_backlog() -> tuple[str, ...]:
    """The stable tables backlog rows reference: empty before the first stable sync."""
    out: list[str] = []
    for s in BACKLOG:
        for fk in s.fks:
            if not BY_NAME[fk.parent].backlog and fk.parent not in out:
                out.append(fk.parent)
    return tuple(out)


def followers(table: str) -> tuple[TableSpec, ...]:
    """Stable tables whose rows come from `table`'s answer (nested lists, derived links)."""
    return tuple(s for s in STABLE if getattr(s.source, "parent", None) == table)


__all__ = ["BY_NAME", "BACKLOG", "CAMPUS_BY_RESOURCE", "CAMPUS_KINDS", "CAMPUS_SCOPED", "SQL_TYPES", "STABLE",
           "TABLES", "CampusChanges", "CampusWindow", "Column", "Embedded", "Table", "DerivedLinks", "ForeignKey",
           "Listing", "BacklogSource", "NestedList", "Single", "SoftRef", "TableSpec", "col", "embedded_in",
           "followers", "backlog_resource_names", "stable_parents_of_backlog", "topological"]
