"""The simulator's data set: exact sizes, determinism, quirks, references, mutations."""

from __future__ import annotations

import json
import random

import pytest

from netops.sim import data as simdata
from netops.sim.data import generate, generate_stable

EXPECTED_STABLE = {"cursus": 1, "campuses": 54, "projects": 519, "coalitions": 350, "achievements": 1042,
                   "campus_projects": 20937, "campus_achievements": 5495, "project_sessions": 7256}


@pytest.fixture(scope="module")
def ds() -> simdata.Dataset:
    return generate(42, 0.02)


def test_stable_sizes_are_exact_for_default_and_other_seeds() -> None:
    for seed in (42, 1, 2026):
        counts = generate_stable(seed).expected_counts()
        assert {k: counts[k] for k in EXPECTED_STABLE} == EXPECTED_STABLE, seed



def test_same_seed_same_payloads_other_seed_differs(ds: simdata.Dataset) -> None:
    again = generate(42, 0.02)
    for res in simdata.RESOURCES:
        a = json.dumps(ds.render(res, list(ds.tables[res].values())[:50]))
        assert a == json.dumps(again.render(res, list(again.tables[res].values())[:50])), res
    assert ds.expected_keys() == again.expected_keys()
    other = generate(43, 0.02)
    assert other.expected_keys()["campus_projects"] != ds.expected_keys()["campus_projects"]


def test_stable_data_does_not_depend_on_live_scale(ds: simdata.Dataset) -> None:
    bigger = generate(42, 0.05)
    for table in EXPECTED_STABLE:
        assert bigger.expected_keys()[table] == ds.expected_keys()[table]


def test_campus_flags_and_nested_non_mirrored_links(ds: simdata.Dataset) -> None:
    campuses = ds.tables["campuses"]
    assert len(campuses) == 60
    mirrored = ds.mirrored_campus_ids()
    assert len(mirrored) == 54
    others = set(campuses) - mirrored
    assert {(campuses[c]["active"], campuses[c]["public"]) for c in others} >= {(False, True), (True, False)}
    p21 = ds.cursus_projects(21)
    assert len(p21) == 519
    assert sum(1 for p in p21 for c in p["_campus_ids"] if c in others) > 100
    assert 21 in ds.tables["cursus"] and {1, 3, 9, 21} <= set(ds.tables["cursus"])


def test_project_quirks(ds: simdata.Dataset) -> None:
    p21 = ds.cursus_projects(21)
    null_slug = sum(1 for p in p21 if p["slug"] is None)
    with_parent = sum(1 for p in p21 if p["_parent_id"] is not None)
    assert null_slug == 0  # real answers: no project lacks a slug (docs/api.md)
    assert 200 <= with_parent <= 320
    with_children = sum(1 for p in ds.render("projects", p21) if p["children"])
    assert 0.35 <= with_children / len(p21) <= 0.45  # "non-empty on ~40 %"
    payload = ds.render("projects", p21[:40])
    keys = {"id", "name", "slug", "parent", "difficulty", "exam", "git_id", "repository", "created_at",
            "updated_at", "campus", "cursus", "project_sessions"}
    assert all(keys <= set(p) for p in payload)
    parented = [p for p in ds.render("projects", p21) if p["parent"] is not None]
    assert set(parented[0]["parent"]) == {"id", "name", "slug", "url"}
    assert any(p["difficulty"] is None for p in ds.render("projects", p21))
    sess = [s for p in payload for s in p["project_sessions"]]
    assert sess and {"id", "project_id", "campus_id", "cursus_id", "begin_at", "end_at", "solo", "estimate_time",
                     "difficulty", "duration_days", "max_people", "is_subscriptable", "created_at",
                     "updated_at", "team_behaviour"} <= set(sess[0])
    assert {s["cursus_id"] for s in sess} <= {None, 21}
    assert None in {s["campus_id"] for s in sess}


def test_sessions_total_and_campus_achievements_uneven(ds: simdata.Dataset) -> None:
    mirrored = ds.mirrored_campus_ids()
    per_campus = [len(ds.campus_achievements[c]) for c in mirrored]
    assert sum(per_campus) == 5495
    assert max(per_campus) > 100 and min(per_campus) < 100
    ach = set(ds.tables["achievements"])
    assert all(a in ach for lst in ds.campus_achievements.values() for a in lst)


def test_coalitions_have_a_duplicated_slug(ds: simdata.Dataset) -> None:
    slugs = [c["slug"] for c in ds.tables["coalitions"].values()]
    assert len(slugs) == 350 and len(set(slugs)) < len(slugs)


def test_achievement_shape(ds: simdata.Dataset) -> None:
    rows = ds.render("achievements", ds.tables["achievements"].values())
    assert len(rows) == 1042
    assert {"id", "name", "description", "tier", "kind", "visible", "image", "nbr_of_success", "users_url",
            "achievements", "parent", "title"} <= set(rows[0])
    assert any(r["parent"] is None for r in rows) and any(r["parent"] for r in rows)
    assert any(r["title"] for r in rows)


def test_live_payload_quirks_and_references(ds: simdata.Dataset) -> None:
    users = ds.render("users", ds.tables["users"].values())
    assert len(users) == round(40_300 * 0.02)
    assert {"staff?", "alumni?", "active?", "image", "phone", "location", "anonymize_date"} <= set(users[0])
    assert set(users[0]["image"]["versions"]) == {"large", "medium", "small", "micro"}
    active = sum(1 for u in users if u["active?"])
    assert 0.35 < active / len(users) < 0.65
    assert sum(1 for u in users if u["phone"] == "hidden") > len(users) // 2
    assert sum(1 for u in users if u["location"] is None) > len(users) // 2
    stamps = [u["updated_at"] for u in users]
    assert all(s.endswith("Z") and len(s.split(".")[1]) == 4 for s in stamps)  # ".mmmZ", as in real users
    offsets = {u["data_erasure_date"][-6:] for u in users} | {u["anonymize_date"][-6:] for u in users}
    assert len(offsets) >= 8 and any(o.startswith("-") for o in offsets) and "+01:00" in offsets
    known = {"id", "email", "login", "first_name", "last_name", "usual_full_name", "usual_first_name", "url",
             "phone", "displayname", "kind", "image", "staff?", "correction_point", "pool_month", "pool_year",
             "location", "wallet", "anonymize_date", "data_erasure_date", "created_at", "updated_at",
             "alumnized_at", "alumni?", "active?"}
    assert all(set(u) == known for u in users), "the real users listing has exactly these fields"
    pus = ds.render("projects_users", ds.tables["projects_users"].values())
    n = len(users)
    assert 4 * n <= len(pus) <= 6 * n
    assert 3 * n <= len(ds.tables["achievements_users"]) <= 5 * n
    assert 0.8 * n <= len(ds.tables["coalitions_users"]) <= 1.2 * n
    projects = ds.tables["projects"]
    assert all(pu["project"]["id"] in projects and pu["user"]["id"] in ds.tables["users"] for pu in pus)
    assert any(pu["validated?"] is True and pu["status"] == "in_progress" for pu in
               ds.render("projects_users", generate(42, 0.2).tables["projects_users"].values()))
    assert all(a["achievement_id"] in ds.tables["achievements"] for a in ds.tables["achievements_users"].values())
    assert all(c["coalition_id"] in ds.tables["coalitions"] for c in ds.tables["coalitions_users"].values())


def test_delete_campus_cascades_to_links_only(ds: simdata.Dataset) -> None:
    d = ds.clone()
    cid = sorted(d.mirrored_campus_ids())[3]
    before = d.expected_counts()
    links = sum(1 for p in d.cursus_projects(21) if cid in p["_campus_ids"])
    achs = len(d.campus_achievements[cid])
    removed = d.delete("campus", cid)
    after = d.expected_counts()
    # links of every project go (removed counts them all); `links` are those the mirror sees (cursus 21)
    assert removed["campuses"] == 1 and removed["campus_achievements"] == achs
    assert removed["campus_projects"] >= links > 0
    assert after["campuses"] == 53
    assert after["campus_projects"] == before["campus_projects"] - links
    assert after["campus_achievements"] == before["campus_achievements"] - achs
    assert after["projects"] == before["projects"] and after["project_sessions"] == before["project_sessions"]
    assert all(c["id"] != cid for p in d.render("projects", d.cursus_projects(21)[:20]) for c in p["campus"])
    # the original is untouched: clones are independent
    assert ds.expected_counts() == before


def test_delete_project_takes_its_sessions(ds: simdata.Dataset) -> None:
    d = ds.clone()
    p = next(p for p in d.cursus_projects(21) if any(s["project_id"] == p["id"] for s in d.tables["project_sessions"].values()))
    n_sessions = sum(1 for s in d.tables["project_sessions"].values() if s["project_id"] == p["id"])
    removed = d.delete("projects", p["id"])
    assert removed["project_sessions"] == n_sessions
    assert d.expected_counts()["project_sessions"] == 7256 - n_sessions
    with pytest.raises(LookupError):
        d.delete("projects", p["id"])


def test_modify_touch_and_silent(ds: simdata.Dataset) -> None:
    d = ds.clone()
    uid = next(iter(d.tables["users"]))
    old = d.tables["users"][uid]["updated_at"]
    row = d.modify("users", uid, {"location": "e9r9p9"}, touch=False)
    assert row["location"] == "e9r9p9" and d.tables["users"][uid]["updated_at"] == old
    d.modify("users", uid, {"wallet": 1}, touch=True)
    assert d.tables["users"][uid]["updated_at"] > old
    d.modify("users", uid, {"updated_at": "2030-01-01T01:00:00.000+01:00"}, touch=False)
    assert d.tables["users"][uid]["updated_at"] == simdata.parse("2030-01-01T00:00:00Z")


def test_random_churn_is_seeded_and_keeps_references(ds: simdata.Dataset) -> None:
    a, b = ds.clone(), ds.clone()
    rng_a, rng_b = random.Random(9), random.Random(9)
    ops_a = [a.random_change(rng_a) for _ in range(200)]
    ops_b = [b.random_change(rng_b) for _ in range(200)]
    assert ops_a == ops_b
    assert {o["op"] for o in ops_a} == {"update", "insert", "delete"}
    users = a.tables["users"]
    assert all(pu["_user_id"] in users for pu in a.tables["projects_users"].values())
    assert all(x["user_id"] in users for x in a.tables["achievements_users"].values())
    assert list(a.tables["users"]) == sorted(a.tables["users"])


def test_insert_with_explicit_low_id_keeps_id_order(ds: simdata.Dataset) -> None:
    d = ds.clone()
    low = next(iter(d.tables["users"])) - 1
    row = d.insert("users", random.Random(1), {"location": "x"}, row_id=low)
    assert row["id"] == low and list(d.tables["users"]) == sorted(d.tables["users"])
    new = d.insert("users", random.Random(1))
    assert new["id"] == max(d.tables["users"]) and new["login"].endswith(str(new["id"]))
    with pytest.raises(ValueError):
        d.insert("users", random.Random(1), row_id=low)
    assert low not in ds.tables["users"]
