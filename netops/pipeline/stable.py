"""The eight stable phases, declared as data (after Meltano SDK streams): table, source, mapping.

A phase says where its rows come from (`source`), how one API object becomes one row
(`columns`: column name, JSON key or getter, type), and the loader does the rest.

Link tables and sessions come from lists nested in each project, and campus_achievements from
the campus names nested in each achievement, so none of them costs a call of its own.

Mapping rules (42-api.md): unknown extra fields are ignored; a missing field is NULL; a value of
the wrong type fails the phase with the endpoint, row id and field named (the mirror keeps its
old state rather than storing garbage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netops.db.loader import Table
from netops.pipeline.mapping import CONVERTERS, Getter, key, name_of, nested


class MappingError(ValueError):
    """An API value does not fit its column; the message names the field and the value."""


Column = tuple[str, Getter, str]


def col(name: str, type_: str, getter: Getter | None = None) -> Column:
    return (name, getter or key(name), type_)


@dataclass(frozen=True)
class Phase:
    """One stable phase. `source` is one of:
    - ("single", path): one object (cursus/21)
    - ("paged", path, params): an index endpoint
    - ("nested", list_key): rows from each project's nested list (fetched by the projects phase)
    - ("derived", "achievements", "campus"): link rows derived from the `campus` name lists of
      the achievements listing (phase 05's answer; netops/pipeline/links.py), matched to the
      mirrored campuses by exact name: no call of its own
    """

    number: int
    table: Table
    source: tuple[Any, ...]
    columns: tuple[Column, ...]

    @property
    def name(self) -> str:
        return f"{self.number:02d}_{self.table.name}"

    @property
    def label(self) -> str:
        return self.table.name

    def row(self, obj: dict[str, Any], endpoint: str) -> tuple[Any, ...]:
        out = []
        for name, getter, type_ in self.columns:
            raw = getter(obj)
            try:
                out.append(CONVERTERS[type_](raw))
            except (ValueError, TypeError):
                ident = obj.get("id") if isinstance(obj, dict) else None
                raise MappingError(
                    f"{endpoint}: row id={ident}: field '{name}' = {raw!r:.60} is not {type_}; the API's "
                    "payload changed — update the phase mapping in netops/pipeline/stable.py"
                ) from None
        return tuple(out)


def _table(name: str, columns: tuple[Column, ...], pk: tuple[str, ...] = ("id",),
           parents: tuple[tuple[str, str], ...] = ()) -> Table:
    return Table(name, tuple(c[0] for c in columns), pk, parents)


def build_phases(cursus_id: int = 21) -> tuple[Phase, ...]:
    """The eight phases in foreign-key order."""
    cursus_cols = (col("id", "int"), col("name", "text"), col("slug", "text"), col("kind", "text"),
                   col("created_at", "ts"))
    campus_cols = (
        col("id", "int"), col("name", "text"), col("time_zone", "text"),
        col("language_id", "int", nested("language", "id")), col("language_name", "text", nested("language", "name")),
        col("users_count", "int"), col("vogsphere_id", "int"), col("country", "text"), col("address", "text"),
        col("zip", "text"), col("city", "text"), col("website", "text"), col("facebook", "text"),
        col("twitter", "text"), col("active", "bool", key("active", "active?")),
        col("public", "bool", key("public", "public?")), col("email_extension", "text"),
    )
    project_cols = (
        col("id", "int"), col("name", "text"), col("slug", "text"), col("parent_id", "int", nested("parent", "id")),
        col("exam", "bool", key("exam", "exam?")), col("git_id", "int"), col("repository", "text"),
        col("difficulty", "int"), col("created_at", "ts"), col("updated_at", "ts"),
    )
    coalition_cols = (
        col("id", "int"), col("name", "text"), col("slug", "text"), col("image_url", "text"),
        col("cover_url", "text"), col("color", "text"), col("score", "int"), col("user_id", "int"),
    )
    achievement_cols = (
        col("id", "int"), col("name", "text"), col("description", "text"), col("tier", "text"),
        col("kind", "text"), col("visible", "bool", key("visible", "visible?")), col("image", "text"),
        col("nbr_of_success", "int"), col("users_url", "text"), col("parent_id", "int", nested("parent", "id")),
        col("title", "text", name_of("title")),
    )
    campus_project_cols = (col("campus_id", "int"), col("project_id", "int"))
    campus_achievement_cols = (col("campus_id", "int"), col("achievement_id", "int"))
    session_cols = (
        col("id", "int"), col("project_id", "int"), col("campus_id", "int"), col("cursus_id", "int"),
        col("begin_at", "ts"), col("end_at", "ts"), col("solo", "bool", key("solo", "solo?")),
        col("estimate_time", "text"), col("difficulty", "int"), col("duration_days", "int"),
        col("max_people", "int"), col("is_subscriptable", "bool", key("is_subscriptable", "is_subscriptable?")),
        col("created_at", "ts"), col("updated_at", "ts"),
    )
    return (
        Phase(1, _table("cursus", cursus_cols), ("single", f"/v2/cursus/{cursus_id}"), cursus_cols),
        Phase(2, _table("campuses", campus_cols),
              ("paged", "/v2/campus", {"filter[active]": "true", "filter[public]": "true", "sort": "id"}),
              campus_cols),
        Phase(3, _table("projects", project_cols),
              ("paged", f"/v2/cursus/{cursus_id}/projects", {"sort": "id"}), project_cols),
        Phase(4, _table("coalitions", coalition_cols), ("paged", "/v2/coalitions", {"sort": "id"}), coalition_cols),
        Phase(5, _table("achievements", achievement_cols), ("paged", "/v2/achievements", {"sort": "id"}),
              achievement_cols),
        Phase(6, _table("campus_projects", campus_project_cols, ("campus_id", "project_id"),
                        (("campus_id", "campuses"), ("project_id", "projects"))),
              ("nested", "campus"), campus_project_cols),
        Phase(7, _table("campus_achievements", campus_achievement_cols, ("campus_id", "achievement_id"),
                        (("campus_id", "campuses"), ("achievement_id", "achievements"))),
              ("derived", "achievements", "campus"), campus_achievement_cols),
        Phase(8, _table("project_sessions", session_cols, ("id",), (("project_id", "projects"),)),
              ("nested", "project_sessions"), session_cols),
    )


PHASES: tuple[Phase, ...] = build_phases()
#: The per-campus listing phase 07 used to page; kept for `netops sync verify-links`.
PER_CAMPUS_ACHIEVEMENTS = "/v2/campus/{id}/achievements"
PHASE_NAMES: tuple[str, ...] = tuple(p.table.name for p in PHASES)


def nested_rows(project: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The link/session objects hidden inside one project, shaped for their phases' mappers."""
    pid = project.get("id")
    campus = [
        {"campus_id": c.get("id"), "project_id": pid}
        for c in (project.get("campus") or []) if isinstance(c, dict)
    ]
    sessions = []
    for s in project.get("project_sessions") or []:
        if isinstance(s, dict):
            s = dict(s)
            s.setdefault("project_id", pid)
            if s.get("project_id") is None:
                s["project_id"] = pid
            sessions.append(s)
    return {"campus": campus, "project_sessions": sessions}
