"""The simulator's campus-scoped resources (netops/sim/campus.py) against docs/api.md "Locations,
evaluations, events, exams": field sets and types, the real variants (JSON:API, "invisible") at
their frequencies, time passing (sessions close, evaluations fill), logtime in the campus's time
zone, the expected mirror (hidden people NULL, erased users' rows gone), and the existing data
left exactly as v0.1.0 generated it."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest

from netops import catalog
from netops.sim import campus as simcampus
from netops.sim import data as simdata
from netops.sim.campus import add_campus_data, expected_all, expected_keys, logtime_by_day, render, rows_of
from netops.sim.data import DAY, generate
from netops.sim.timeutil import BASE_MS, parse

NoneType = type(None)
HOUR = 3_600_000
ANCHOR = (BASE_MS + 360 * DAY) // HOUR * HOUR
Z_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
#: sha256 of generate(42, 0.02)'s tables, campus achievements and expected keys, computed on
#: v0.1.0 (e3009a3) before the campus-scoped data existed: the existing data must not move
V010_DIGEST = "2e9805d7060a3c9dcb70119d4714135998f5bfd8a95d713ad18c136d9da11470"


def _data(scale: float = 0.05, clock: int = ANCHOR) -> simdata.Dataset:
    ds = generate(42, scale)
    add_campus_data(ds, 42, scale, ANCHOR)
    ds.campus.clock = clock
    ds.campus.scope = None   # every mirrored campus (the default is none, like NETOPS_CAMPUS_IDS)
    return ds


@pytest.fixture(scope="module")
def ds() -> simdata.Dataset:
    return _data()


def _served(ds: simdata.Dataset, resource: str) -> list[dict[str, Any]]:
    return render(ds, resource, rows_of(ds, resource))


def _digest(ds: simdata.Dataset) -> str:
    h = hashlib.sha256()
    for name in sorted(ds.tables):
        h.update(json.dumps([name, list(ds.tables[name].items())], sort_keys=True, default=str).encode())
    h.update(json.dumps(sorted(ds.campus_achievements.items())).encode())
    keys = {k: v for k, v in ds.expected_keys().items() if k not in simdata.CAMPUS_TABLES}
    h.update(json.dumps(keys, sort_keys=True).encode())
    return h.hexdigest()


# ---------------------------------------------------------------- the existing data
def test_existing_data_is_v010s_with_or_without_the_campus_data() -> None:
    plain = generate(42, 0.02)
    assert _digest(plain) == V010_DIGEST
    add_campus_data(plain, 42, 0.02, ANCHOR)
    assert plain.campus is not None and plain.campus.locations
    assert _digest(plain) == V010_DIGEST          # generating it reads the other tables, never writes them
    assert _digest(plain.clone()) == V010_DIGEST


def test_campus_data_is_deterministic_per_seed_and_anchor() -> None:
    a, b = _data(0.02), _data(0.02)
    assert _served(a, "scale_teams") == _served(b, "scale_teams")
    assert _served(a, "locations")[:50] == _served(b, "locations")[:50]


# ---------------------------------------------------------------- shapes
LOCATION = {"end_at": {str, NoneType}, "id": {int}, "begin_at": {str}, "primary": {bool}, "host": {str},
            "campus_id": {int}, "user": {dict}}


def _types(rows: list[dict[str, Any]], field: str) -> set[type]:
    return {type(r[field]) for r in rows}


def test_location_shape(ds: simdata.Dataset) -> None:
    rows = _served(ds, "locations")
    assert all(set(r) == set(LOCATION) for r in rows)   # no updated_at, no floor/row/post
    for name, types in LOCATION.items():
        assert _types(rows, name) <= types, name
    assert {None} < {r["end_at"] for r in rows[:2000]} | {None}
    assert any(r["end_at"] is None for r in rows) and any(r["end_at"] is not None for r in rows)
    assert all(re.fullmatch(r"c\d+r\d+s\d+", r["host"]) for r in rows)
    assert all(Z_STAMP.match(r["begin_at"]) for r in rows)
    users_shape = set(ds.render("users", [next(iter(ds.tables["users"].values()))])[0])
    assert len(users_shape) == 25 and all(set(r["user"]) == users_shape for r in rows)
    # sessions name people netops does not mirror too
    assert any(r["user"]["id"] not in ds.tables["users"] for r in rows)


SCALE_TEAM = {"id", "scale_id", "comment", "created_at", "updated_at", "feedback", "final_mark", "flag", "begin_at",
              "correcteds", "corrector", "truant", "filled_at", "questions_with_answers", "scale", "team", "feedbacks"}
TEAM = {"id", "name", "url", "final_mark", "project_id", "created_at", "updated_at", "status", "terminating_at",
        "users", "locked?", "validated?", "closed?", "repo_url", "repo_uuid", "locked_at", "closed_at",
        "project_session_id", "project_gitlab_path"}
SCALE = {"id", "evaluation_id", "name", "is_primary", "comment", "introduction_md", "disclaimer_md", "guidelines_md",
         "created_at", "correction_number", "duration", "manual_subscription", "languages", "flags", "free"}


def test_scale_team_shape(ds: simdata.Dataset) -> None:
    rows = [r for r in _served(ds, "scale_teams") if "type" not in r]
    assert rows and all(set(r) == SCALE_TEAM for r in rows)
    plain = [r for r in rows if r["corrector"] != "invisible"]
    assert all(set(r["corrector"]) == {"id", "login", "url"} for r in plain)
    assert all(isinstance(r["correcteds"], list) and set(r["correcteds"][0]) == {"id", "login", "url"} for r in plain)
    assert all(set(r["team"]) == TEAM and set(r["scale"]) == SCALE for r in rows)
    assert all(set(u) == {"id", "login", "url", "leader", "occurrence", "validated", "projects_user_id"}
               for r in rows for u in r["team"]["users"])
    filled = [r for r in rows if r["filled_at"] is not None]
    assert filled and all(set(r["flag"]) == {"id", "name", "positive", "icon", "created_at", "updated_at"}
                          and isinstance(r["final_mark"], int) for r in filled)
    assert all(r["truant"] == {} or set(r["truant"]) == {"id", "login", "url"} for r in rows)
    fb = [f for r in rows for f in r["feedbacks"]]
    assert fb and all(set(f) == {"id", "user", "feedbackable_type", "feedbackable_id", "comment", "rating",
                                 "created_at"} and f["feedbackable_type"] == "ScaleTeam" for f in fb)
    assert _types(rows, "final_mark") <= {int, NoneType} and _types(rows, "filled_at") <= {str, NoneType}


def test_jsonapi_variant_one_in_200_mixed_in(ds: simdata.Dataset) -> None:
    rows = _served(ds, "scale_teams")
    odd = [r for r in rows if r.get("type") == "scale-teams"]
    assert odd and all(set(r) == {"id", "type", "attributes", "scale", "team", "feedbacks"} for r in odd)
    assert all(isinstance(r["id"], str) and r["id"].isdigit() for r in odd)
    assert all({"scale_id", "comment", "created_at", "updated_at", "feedback", "final_mark", "flag", "begin_at"}
               <= set(r["attributes"]) for r in odd)
    assert len(odd) == sum(1 for r in rows if int(r["id"]) % 200 == 17)
    assert 1 / 400 < len(odd) / len(rows) < 1 / 100


def test_invisible_variant_hides_corrector_and_correcteds(ds: simdata.Dataset) -> None:
    rows = [r for r in _served(ds, "scale_teams") if "type" not in r]
    hidden = [r for r in rows if r["corrector"] == "invisible"]
    assert hidden and all(r["correcteds"] == "invisible" and r["begin_at"] is None for r in hidden)
    assert 0.01 < len(hidden) / len(rows) < 0.04


def test_pool_evaluations_name_people_outside_the_cursus(ds: simdata.Dataset) -> None:
    evals = rows_of(ds, "scale_teams")
    pool = [e for e in evals if e["_corrector"] not in ds.tables["users"]]
    assert 0.12 < len(pool) / len(evals) < 0.25


def test_event_and_exam_shapes(ds: simdata.Dataset) -> None:
    events = _served(ds, "events")
    assert all(set(e) == {"id", "name", "description", "location", "kind", "max_people", "nbr_subscribers",
                          "begin_at", "end_at", "campus_ids", "cursus_ids", "created_at", "updated_at",
                          "prohibition_of_cancellation", "waitlist", "themes"} for e in events)
    assert _types(events, "max_people") == {int, NoneType} and _types(events, "campus_ids") == {list}
    exams = _served(ds, "exams")
    assert all(set(x) == {"id", "name", "ip_range", "begin_at", "end_at", "location", "max_people",
                          "nbr_subscribers", "created_at", "updated_at", "campus", "cursus", "projects"} for x in exams)
    assert all(re.fullmatch(r"\d+\.\d+\.\d+\.\d+/\d+(,\d+\.\d+\.\d+\.\d+/\d+)*", x["ip_range"]) for x in exams)
    assert any("," in x["ip_range"] for x in exams)
    assert all(set(c) == {"id", "created_at", "name", "slug"} for x in exams for c in x["cursus"])
    assert all(x["campus"]["time_zone"] for x in exams)


# ---------------------------------------------------------------- time passes
def test_sessions_close_and_evaluations_fill_as_the_clock_moves() -> None:
    ds = _data(0.05, clock=ANCHOR)
    open_now = {r["id"] for r in rows_of(ds, "locations") if r["end_at"] is None}
    waiting = {r["id"] for r in rows_of(ds, "scale_teams") if r["filled_at"] is None}
    assert open_now and waiting
    ds.campus.clock = ANCHOR + 3 * DAY
    later = {r["id"]: r for r in rows_of(ds, "locations")}
    closed = {i for i in open_now if later[i]["end_at"] is not None}
    assert closed and open_now - closed   # most close; a few stay open far too long
    assert all(later[i]["end_at"] <= ANCHOR + 3 * DAY for i in closed)
    evals = {r["id"]: r for r in rows_of(ds, "scale_teams")}
    filled = [i for i in waiting if evals[i]["filled_at"] is not None]
    assert filled and all(evals[i]["final_mark"] is not None and evals[i]["updated_at"] > ANCHOR for i in filled)


# ---------------------------------------------------------------- logtime
def _session(ds: simdata.Dataset, campus_name: str, begin: str, end: str | None, uid: int = 999_999) -> int:
    """A session of a person with no other session, at the named campus."""
    cid = next(c for c, v in ds.tables["campuses"].items() if v["name"] == campus_name)
    cd = ds.campus
    cd.outsiders.setdefault(uid, {**next(iter(cd.outsiders.values())), "id": uid})
    lid = 99_000_000 + len(cd.locations)
    cd.locations[lid] = {"id": lid, "begin_at": parse(begin), "_end": None if end is None else parse(end),
                         "primary": True, "campus_id": cid, "_user_id": uid, "host": "c1r1s1"}
    return cid


@pytest.mark.parametrize(("campus_name", "begin", "end", "days"), [
    # 23:00 -> 01:30 in Seoul (UTC+9): split at the campus's midnight
    ("Seoul", "2026-03-10T14:00:00Z", "2026-03-10T16:30:00Z", {"2026-03-10": 1.0, "2026-03-11": 1.5}),
    # 23:00 in São Paulo (UTC-3) is 02:00 UTC the next day: the day is the campus's
    ("São-Paulo", "2026-03-10T02:00:00Z", "2026-03-10T03:00:00Z", {"2026-03-09": 1.0}),
    ("Paris", "2026-03-10T22:30:00Z", "2026-03-11T00:30:00Z", {"2026-03-10": 0.5, "2026-03-11": 1.5}),
    # the night Paris leaves summer time: 25 local hours, the whole of them on 2026-10-25
    ("Paris", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", {"2026-10-25": 25.0}),
])
def test_logtime_days_are_the_campus_local_days(campus_name: str, begin: str, end: str, days: dict[str, float]) -> None:
    ds = _data(0.02, clock=ANCHOR)
    _session(ds, campus_name, begin, end)
    got = logtime_by_day(ds, 999_999)
    assert {d: ms / HOUR for d, ms in got.items()} == days


def test_an_open_session_counts_up_to_the_clock() -> None:
    ds = _data(0.02, clock=parse("2026-03-10T12:00:00Z"))
    _session(ds, "Paris", "2026-03-10T10:00:00Z", None)   # open: 11:00 -> 13:00 Paris time
    assert logtime_by_day(ds, 999_999) == {"2026-03-10": 2 * HOUR}


def test_locations_stats_format(ds: simdata.Dataset) -> None:
    uids = {r["_user_id"] for r in rows_of(ds, "locations")}
    stats = [simcampus.locations_stats(ds, uid) for uid in sorted(uids)[:200]]
    values = [v for s in stats for v in s.values()]
    assert values and all(re.fullmatch(r"\d\d:\d\d:\d\d\.\d{1,6}", v) for v in values)
    assert any(len(v.split(".")[1]) < 6 for v in values) and any(len(v.split(".")[1]) == 6 for v in values)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", d) for s in stats for d in s)
    assert all(v != "00:00:00.0" for v in values)   # days without time are absent


# ---------------------------------------------------------------- the expected mirror
def test_expected_keys_are_the_full_expected_rows_keys(ds: simdata.Dataset) -> None:
    full = expected_all(ds)
    keys = expected_keys(ds)
    for name, rows in full.items():
        pk = catalog.BY_NAME[name].pk
        assert keys[name] == [tuple(r[k] for k in pk) for r in rows], name
        assert [c.name for c in catalog.BY_NAME[name].columns] == list(rows[0]), name
    assert set(full) == set(simdata.CAMPUS_TABLES)


def test_expected_mirror_holds_hidden_people_as_null(ds: simdata.Dataset) -> None:
    rows = {r["id"]: r for r in expected_all(ds)["scale_teams"]}
    hidden = [i for i in rows if i % 50 == 3 and i % 200 != 17]
    assert hidden and all(rows[i]["corrector_id"] is None and rows[i]["corrector_login"] is None for i in hidden)
    assert all(rows[i]["corrector_id"] is not None for i in rows if i % 50 != 3)
    jsonapi = [i for i in rows if i % 200 == 17]
    assert jsonapi and all(isinstance(rows[i]["scale_id"], int) for i in jsonapi)


def test_mapping_reads_the_jsonapi_variant_like_the_plain_one(ds: simdata.Dataset) -> None:
    spec = catalog.BY_NAME["scale_teams"]
    obj = next(o for o in _served(ds, "scale_teams") if o.get("type") == "scale-teams")
    plain = {"id": int(obj["id"]), **obj["attributes"], "scale": obj["scale"], "team": obj["team"],
             "feedbacks": obj["feedbacks"]}
    assert {c.name: c.getter(obj) for c in spec.columns if c.name != "id"} == \
        {c.name: c.getter(plain) for c in spec.columns if c.name != "id"}
    assert catalog.BY_NAME["teams_users"].source.rows(obj)  # type: ignore[union-attr]


def test_an_erased_users_sessions_and_evaluations_leave_the_expected_mirror() -> None:
    ds = _data(0.05, clock=ANCHOR)
    before = expected_all(ds)
    member = next(m for r in before["teams_users"] for m in [r] if m["user_id"] in ds.tables["users"]
                  and any(loc["user_id"] == m["user_id"] for loc in before["locations"]))
    uid = member["user_id"]
    ds.tables["users"][uid] = {**ds.tables["users"][uid], "data_erasure_date": ANCHOR - DAY}
    after = expected_all(ds)
    assert not [r for r in after["locations"] if r["user_id"] == uid]
    assert not [r for r in after["teams_users"] if r["user_id"] == uid]
    gone = {r["id"] for r in before["scale_teams"]} - {r["id"] for r in after["scale_teams"]}
    assert gone and all(r["team_id"] == member["team_id"] or r["corrector_id"] == uid
                        for r in before["scale_teams"] if r["id"] in gone)
    assert {r["id"] for r in after["teams"]} == {r["id"] for r in before["teams"]}   # teams name nobody
    assert len(after["locations"]) < len(before["locations"])


def test_scope_and_horizon_narrow_the_expected_mirror() -> None:
    ds = _data(0.05, clock=ANCHOR)
    every = expected_keys(ds)
    stored = ds.campus.locations.values()
    assert len(every["locations"]) < sum(1 for r in stored if r["campus_id"] in ds.mirrored_campus_ids())
    cid = sorted(ds.mirrored_campus_ids())[0]
    ds.campus.scope = (cid,)
    one = expected_keys(ds)
    ds.campus.scope = ()
    assert all(v == [] for v in expected_keys(ds).values())   # the default: no campus, no row
    assert set(one["locations"]) == {(r["id"],) for r in stored if r["campus_id"] == cid
                                     and r["begin_at"] >= ANCHOR - 90 * DAY}
    assert 0 < len(one["scale_teams"]) < len(every["scale_teams"])


def test_mapping_getters_for_the_new_shapes() -> None:
    from netops.mapping import ids_of, jsonapi, jsonapi_flat, key, person
    assert person("corrector")({"corrector": "invisible"}) is None
    assert person("truant")({"truant": {}}) is None
    assert person("corrector", "login")({"corrector": {"id": 3, "login": "abc", "url": "u"}}) == "abc"
    assert ids_of("cursus")({"cursus": [{"id": 21, "name": "42cursus"}, {"id": 9}]}) == [21, 9]
    assert ids_of("cursus")({"cursus": None}) is None
    odd = {"id": "42", "type": "scale-teams", "attributes": {"final_mark": 100}, "team": {"id": 7}}
    assert jsonapi_flat(odd) == {"final_mark": 100, "id": "42", "team": {"id": 7}}
    assert jsonapi(key("final_mark"))(odd) == 100
    plain = {"id": 1, "attributes": "not json:api"}   # no `type`: left alone
    assert jsonapi_flat(plain) is plain


def test_campus_rows_are_kept_in_id_order(ds: simdata.Dataset) -> None:
    """range[id] is answered by bisection over the rows (netops/sim/query.py)."""
    cd = ds.campus
    for name in ("locations", "scale_teams", "events", "exams", "teams"):
        ids = list(cd.table(name))
        assert ids == sorted(ids), name
