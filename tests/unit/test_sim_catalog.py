"""The simulator derives a backlog resource's routes, names and cascades from the catalog."""

from __future__ import annotations

from netops import catalog
from netops.sim import data, server


def test_every_backlog_resource_has_its_routes_generator_and_ts_fields() -> None:
    templates = {t for t, _i, _s in server.ROUTE_SPECS}
    for spec in catalog.BACKLOG:
        res = spec.source.resource  # type: ignore[union-attr]
        assert {f"/v2/{res}", f"/v2/{res}/:id"} <= templates
        assert spec.source.path.replace(catalog.CURSUS, ":id") in templates  # type: ignore[union-attr]
        if any(fk.column == "user_id" and fk.parent == "users" for fk in spec.fks):
            assert f"/v2/users/:id/{res}" in templates
        assert res in data.GENERATORS
        assert set(data.TS_FIELDS[res]) == {c.name for c in spec.columns if c.kind == "ts"}
    assert len(templates) == len(server.ROUTE_SPECS)  # disjoint


def test_singular_rule_and_its_exceptions() -> None:
    assert server.singular("titles_users") == "TitlesUser"
    assert server.SINGULAR.items() >= {
        "cursus": "Cursus", "campuses": "Campus", "projects": "Project", "project_sessions": "ProjectSession",
        "coalitions": "Coalition", "achievements": "Achievement", "users": "User",
        "projects_users": "ProjectsUser", "achievements_users": "AchievementsUser",
        "coalitions_users": "CoalitionsUser", "cursus_users": "CursusUser"}.items()


def test_delete_cascade_follows_the_catalog_fks() -> None:
    assert set(data.cascade_children("users")) >= {
        ("achievements_users", "user_id"), ("coalitions_users", "user_id"), ("cursus_users", "_user_id"),
        ("projects_users", "_user_id")}
    assert data.cascade_children("projects") == [("projects_users", "_project_id")]
    assert data.cascade_children("cursus") == []
    assert data.canonical("project_users") == data.canonical("projects_user") == "projects_users"
