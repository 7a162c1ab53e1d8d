"""The simulator's payloads, resource by resource, against docs/api.md "Real payloads" (captured
answers of December 2025): each resource's field set and types are pinned here, so a shape the
real API does not have (or a real one the simulator lacks) fails a test."""

from __future__ import annotations

import re
from typing import Any

import pytest

from netops.sim import data as simdata
from netops.sim.data import generate
from netops.sim.faults import drift, parse_spec

NoneType = type(None)
Z_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
INVENTED = {"internal_note", "legacy_ref", "sim_beta_flag", "intermediate_evaluation"}


@pytest.fixture(scope="module")
def ds() -> simdata.Dataset:
    return generate(42, 0.02)


def rendered(ds: simdata.Dataset, resource: str) -> list[dict[str, Any]]:
    if resource == "projects":
        return ds.render("projects", ds.cursus_projects(21))
    return ds.render(resource, ds.tables[resource].values())


def types_of(rows: list[dict[str, Any]], field: str) -> set[type]:
    return {type(r[field]) for r in rows}


SHAPES: dict[str, dict[str, set[type]]] = {
    "achievements": {
        "id": {int}, "name": {str}, "description": {str}, "tier": {str}, "kind": {str}, "visible": {bool},
        "image": {str, NoneType}, "nbr_of_success": {int, NoneType}, "users_url": {str},
        "achievements": {list}, "parent": {dict, NoneType}, "title": {dict, NoneType}, "campus": {list},
    },
    "projects": {
        "id": {int}, "name": {str}, "slug": {str}, "difficulty": {int, NoneType}, "exam": {bool},
        "git_id": {int, NoneType}, "repository": {str, NoneType}, "recommendation": {str},
        "created_at": {str}, "updated_at": {str}, "attachments": {list}, "videos": {list},
        "parent": {dict, NoneType}, "children": {list}, "cursus": {list}, "campus": {list},
        "project_sessions": {list},
    },
    "campuses": {
        "id": {int}, "name": {str}, "time_zone": {str}, "language": {dict}, "users_count": {int},
        "vogsphere_id": {int, NoneType}, "country": {str}, "address": {str}, "zip": {str}, "city": {str},
        "website": {str}, "facebook": {str}, "twitter": {str}, "active": {bool}, "public": {bool},
        "email_extension": {str, NoneType}, "default_hidden_phone": {bool}, "endpoint": {dict, NoneType},
    },
    "coalitions": {
        "id": {int}, "name": {str}, "slug": {str}, "image_url": {str}, "cover_url": {str, NoneType},
        "color": {str}, "score": {int}, "user_id": {int},
    },
    "users": {
        "id": {int}, "email": {str}, "login": {str}, "first_name": {str}, "last_name": {str},
        "usual_full_name": {str}, "usual_first_name": {str}, "url": {str}, "phone": {str},
        "displayname": {str}, "kind": {str}, "image": {dict}, "staff?": {bool}, "correction_point": {int},
        "pool_month": {str}, "pool_year": {str}, "location": {str, NoneType}, "wallet": {int},
        "anonymize_date": {str}, "data_erasure_date": {str}, "created_at": {str}, "updated_at": {str},
        "alumnized_at": {NoneType}, "alumni?": {bool}, "active?": {bool},
    },
}
SESSION_SHAPE: dict[str, set[type]] = {
    "id": {int}, "solo": {bool, NoneType}, "begin_at": {str, NoneType}, "end_at": {str, NoneType},
    "estimate_time": {str, NoneType}, "difficulty": {int, NoneType}, "objectives": {list, NoneType},
    "description": {str, NoneType}, "duration_days": {int, NoneType}, "terminating_after": {int, NoneType},
    "project_id": {int}, "campus_id": {int, NoneType}, "cursus_id": {int, NoneType}, "created_at": {str},
    "updated_at": {str}, "max_people": {NoneType}, "is_subscriptable": {bool}, "scales": {list},
    "uploads": {list}, "team_behaviour": {str}, "commit": {str, NoneType},
}


@pytest.mark.parametrize("resource", list(SHAPES))
def test_field_set_and_types(ds: simdata.Dataset, resource: str) -> None:
    rows = rendered(ds, resource)
    shape = SHAPES[resource]
    assert all(set(r) == set(shape) for r in rows), {frozenset(set(r) ^ set(shape)) for r in rows}
    for field, allowed in shape.items():
        assert types_of(rows, field) <= allowed, (resource, field, types_of(rows, field))


def test_sessions_shape(ds: simdata.Dataset) -> None:
    sessions = [s for p in rendered(ds, "projects") for s in p["project_sessions"]]
    assert len(sessions) == 7256
    assert all(set(s) == set(SESSION_SHAPE) for s in sessions)
    for field, allowed in SESSION_SHAPE.items():
        assert types_of(sessions, field) <= allowed, field
    assert {s["team_behaviour"] for s in sessions} == {"user", "by_rule", "none", "upload"}
    assert all(isinstance(o, str) for s in sessions for o in s["objectives"] or [])
    assert any(s["objectives"] is None for s in sessions) and any(s["objectives"] for s in sessions)
    assert all(set(sc) == {"id", "correction_number", "is_primary"} for s in sessions for sc in s["scales"])
    assert all(set(u) == {"id", "name"} for s in sessions for u in s["uploads"])
    assert any(s["uploads"] for s in sessions) and any(s["terminating_after"] is not None for s in sessions)
    assert any(s["commit"] is None for s in sessions) and any(s["commit"] for s in sessions)
    solo_null = sum(1 for s in sessions if s["solo"] is None)
    assert 1 <= solo_null <= 10                      # "null once in ~1,900"
    assert None in {s["description"] for s in sessions} and "" in {s["description"] for s in sessions}


def test_achievement_campus_names_children_parent_image(ds: simdata.Dataset) -> None:
    rows = rendered(ds, "achievements")
    names = [n for r in rows for n in r["campus"]]
    assert all(isinstance(n, str) for n in names)
    mirrored = {ds.tables["campuses"][c]["name"] for c in ds.mirrored_campus_ids()}
    distinct = set(names)
    assert len(distinct) == 74 and len(distinct - mirrored) == 20          # as in the capture
    assert "Hack High School - Fremont " in distinct                       # trailing space kept
    assert all(isinstance(c, str) for r in rows for c in r["achievements"])
    assert any(r["achievements"] for r in rows)
    parents = [r["parent"] for r in rows if r["parent"] is not None]
    assert parents and all(set(p) == {"id", "name", "description", "tier", "kind", "visible", "image",
                                      "nbr_of_success", "users_url"} for p in parents)   # no slug
    assert any(r["image"] is None for r in rows) and any(r["image"] for r in rows)
    # a campus's achievements are the ones whose campus list holds its name exactly
    by_name = {ds.tables["campuses"][c]["name"]: c for c in ds.mirrored_campus_ids()}
    derived = sorted({(by_name[n], r["id"]) for r in rows for n in r["campus"] if n in by_name})
    assert len(derived) == 5495
    assert derived == sorted((c, a) for c in ds.mirrored_campus_ids() for a in ds.campus_achievements[c])


def test_project_shapes(ds: simdata.Dataset) -> None:
    rows = rendered(ds, "projects")
    assert all(r["slug"] for r in rows)                                    # never null
    assert 0.35 <= sum(1 for r in rows if r["children"]) / len(rows) <= 0.45
    assert all(set(c) == {"id", "name", "slug", "url"} for r in rows for c in r["children"])
    assert all(r["parent"] is None or set(r["parent"]) == {"id", "name", "slug", "url"} for r in rows)
    assert any(r["git_id"] is None for r in rows) and any(r["repository"] is None for r in rows)
    nested = [c for r in rows for c in r["campus"]]
    assert nested and all("endpoint" not in c for c in nested)
    assert all(set(c["language"]) == {"id", "name", "identifier", "created_at", "updated_at"} for c in nested)


def test_campus_listing_shapes(ds: simdata.Dataset) -> None:
    rows = rendered(ds, "campuses")
    assert all(set(r["language"]) == {"id", "name", "identifier"} for r in rows)
    assert "" in {r["twitter"] for r in rows} and "" in {r["facebook"] for r in rows}
    assert sum(1 for r in rows if r["email_extension"] is None) == 1
    assert any(r["endpoint"] is None for r in rows) and sum(1 for r in rows if r["endpoint"]) > len(rows) // 2


def test_coalition_colours_and_shared_slug(ds: simdata.Dataset) -> None:
    rows = rendered(ds, "coalitions")
    colours = [r["color"] for r in rows]
    assert any(c.startswith("#") for c in colours)
    assert any(re.fullmatch(r"[0-9a-fA-F]{6}", c) for c in colours)      # without '#'
    assert any(c.startswith("\t") for c in colours) and any(c.startswith(" ") for c in colours)
    assert sum(1 for r in rows if r["slug"] == "analysts") == 2


def test_users_dates_images_and_uniform_listing(ds: simdata.Dataset) -> None:
    rows = rendered(ds, "users")
    no_picture = [u for u in rows if u["image"]["link"] is None]
    assert 0.015 <= len(no_picture) / len(rows) <= 0.05
    assert all(all(v is None for v in u["image"]["versions"].values()) for u in no_picture)
    offsets = {u[f][-6:] for u in rows for f in ("anonymize_date", "data_erasure_date")}
    assert len(offsets) >= 8 and sum(1 for o in offsets if o.startswith("-")) >= 3
    assert all(Z_STAMP.match(u["created_at"]) and Z_STAMP.match(u["updated_at"]) for u in rows)
    assert {(u["kind"], u["staff?"], u["alumni?"], u["phone"]) for u in rows} == {("student", False, False, "hidden")}


def test_every_stable_timestamp_is_z_and_text_carries_emoji_and_controls(ds: simdata.Dataset) -> None:
    stamps: list[str] = []
    texts: list[str] = []
    for resource in ("cursus", "campuses", "projects", "coalitions", "achievements"):
        for r in rendered(ds, resource):
            rows = [r, *r.get("project_sessions", [])]
            for row in rows:
                stamps += [v for k, v in row.items() if k.endswith("_at") and isinstance(v, str)]
                texts += [v for k, v in row.items() if k in ("name", "description") and isinstance(v, str)]
    assert stamps and all(Z_STAMP.match(s) for s in stamps)
    assert any(any(ord(ch) > 0xFFFF for ch in t) for t in texts)           # emoji outside the BMP
    for ch in ("\n", "\t", "\r"):
        assert any(ch in t for t in texts), repr(ch)


def test_no_invented_quirk_in_the_default_data(ds: simdata.Dataset) -> None:
    for resource in ("campuses", "projects", "coalitions", "achievements", "users", "projects_users"):
        rows = rendered(ds, resource)
        assert not any(INVENTED & set(r) for r in rows), resource
        nested = [s for r in rows for s in r.get("project_sessions", [])]
        assert not any(INVENTED & set(s) for s in nested)
    assert not any("objectives" in r for r in rendered(ds, "projects"))


def test_invented_quirks_exist_as_named_faults(ds: simdata.Dataset) -> None:
    rows = rendered(ds, "projects")[:3]
    drift("legacy_fields", parse_spec("legacy_fields"), rows)
    assert all({"internal_note", "legacy_ref", "sim_beta_flag"} <= set(r) for r in rows)
    drift("null_field", parse_spec("null_field,field=slug"), rows)
    assert all(r["slug"] is None for r in rows)
    coal = rendered(ds, "coalitions")[:2]
    drift("null_field", parse_spec("null_field@/v2/coalitions,field=user_id"), coal)
    assert all(r["user_id"] is None for r in coal)
    stamped = rendered(ds, "projects")[:2]
    before = [r["created_at"] for r in stamped]
    drift("offset_ts", parse_spec("offset_ts"), stamped)
    assert all(r["created_at"].endswith("+01:00") for r in stamped)
    from netops.sim.timeutil import parse
    assert [parse(r["created_at"]) for r in stamped] == [parse(b) for b in before]   # same instant
