"""The campus-scoped resources over real HTTP (netops/sim/campus.py, docs/api.md "Locations,
evaluations, events, exams"): routes, filters and ranges, X-Total paging, the clock that closes
sessions and fills evaluations, locations_stats, and the expected mirror the pipeline is held to."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from netops.sim.timeutil import fmt, parse
from tests.fixtures.sim import TestSim

HOUR = 3_600_000


@pytest.fixture
def frozen(sim: TestSim) -> TestSim:
    """The simulator at a frozen clock (its anchor, the start hour), every mirrored campus in the
    expected mirror's scope."""
    state = sim.campus_clock()
    assert state["scope"] == []   # the default: none, like NETOPS_CAMPUS_IDS
    assert all(sim.expected()[t] == 0 for t in ("locations", "teams", "teams_users", "scale_teams", "events", "exams"))
    sim.campus_clock(clock=state["anchor"], scope=None)
    return sim


def _all(sim: TestSim, path: str, token: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every page of a listing, and the X-Total of the first."""
    out: list[dict[str, Any]] = []
    page, total = 1, None
    while True:
        r = sim.get(path, token=token, **{"page[size]": "100", "page[number]": str(page)}, **params)
        assert r.status_code == 200, r.text
        total = int(r.headers["X-Total"]) if total is None else total
        out += r.json()
        if len(out) >= int(r.headers["X-Total"]) or not r.json():
            return out, total
        page += 1


def _campus_with(sim: TestSim, token: str, resource: str) -> int:
    exp = sim.expected_table("locations")
    ids = sorted({row["campus_id"] for row in exp["rows"]})
    for cid in ids:
        if int(sim.get(f"/v2/campus/{cid}/{resource}", token=token).headers["X-Total"]) > 5:
            return cid
    raise AssertionError(f"no campus with {resource}")


def test_locations_routes_filters_and_ranges(frozen: TestSim) -> None:
    tok = frozen.token()
    cid = _campus_with(frozen, tok, "locations")
    rows, total = _all(frozen, f"/v2/campus/{cid}/locations", tok)
    assert len(rows) == total and len({r["id"] for r in rows}) == total
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert all(r["campus_id"] == cid and "updated_at" not in r for r in rows)
    same, _ = _all(frozen, "/v2/locations", tok, **{"filter[campus_id]": str(cid)})
    assert same == rows
    open_rows, _ = _all(frozen, f"/v2/campus/{cid}/locations", tok, **{"filter[active]": "true"})
    assert {r["id"] for r in open_rows} == {r["id"] for r in rows if r["end_at"] is None}
    begins = sorted(parse(r["begin_at"]) for r in rows)
    lo, hi = begins[len(begins) // 4], begins[len(begins) // 2]
    window, _ = _all(frozen, f"/v2/campus/{cid}/locations", tok, **{"range[begin_at]": f"{fmt(lo)},{fmt(hi)}"})
    assert {r["id"] for r in window} == {r["id"] for r in rows if lo <= parse(r["begin_at"]) <= hi}
    ended, _ = _all(frozen, f"/v2/campus/{cid}/locations", tok, **{"range[end_at]": f"{fmt(lo)},{fmt(hi)}"})
    assert {r["id"] for r in ended} == {r["id"] for r in rows if r["end_at"] and lo <= parse(r["end_at"]) <= hi}
    uid = rows[0]["user"]["id"]
    mine, _ = _all(frozen, f"/v2/users/{uid}/locations", tok)
    assert mine and all(r["user"]["id"] == uid for r in mine)
    assert frozen.get("/v2/campus/999999/locations", token=tok).status_code == 404
    assert frozen.get("/v2/users/1/locations", token=tok).status_code == 404
    assert frozen.get(f"/v2/campus/{cid}/locations", token=tok, **{"filter[updated_at]": "x"}).status_code == 400


def test_scale_teams_filters_variants_and_no_campus_route(frozen: TestSim) -> None:
    tok = frozen.token()
    rows, total = _all(frozen, "/v2/scale_teams", tok)
    assert total == len(rows) > 200
    assert any(r.get("type") == "scale-teams" for r in rows)           # JSON:API, mixed into normal pages
    assert any(r.get("corrector") == "invisible" for r in rows)
    assert sum(1 for r in rows if "type" not in r) > 0.95 * len(rows)
    exp = frozen.expected_table("scale_teams")
    cid = max({r["campus_id"] for r in exp["rows"]}, key=lambda c: sum(1 for r in exp["rows"] if r["campus_id"] == c))
    mine, _ = _all(frozen, "/v2/scale_teams", tok, **{"filter[campus_id]": str(cid)})
    assert {int(r["id"]) for r in mine} >= {r["id"] for r in exp["rows"] if r["campus_id"] == cid}
    stamps = sorted(parse(r.get("updated_at") or r["attributes"]["updated_at"]) for r in rows)
    lo = stamps[len(stamps) // 2]
    recent, _ = _all(frozen, "/v2/scale_teams", tok, **{"range[updated_at]": f"{fmt(lo)},{fmt(lo + 400 * 24 * HOUR)}"})
    assert len(recent) == sum(1 for s in stamps if s >= lo)
    filled, _ = _all(frozen, "/v2/scale_teams", tok, **{"range[filled_at]": f"{fmt(lo)},{fmt(lo + 400 * 24 * HOUR)}"})
    assert filled and all((r.get("filled_at") or r["attributes"]["filled_at"]) for r in filled)
    assert frozen.get(f"/v2/campus/{cid}/scale_teams", token=tok).status_code == 404
    one = frozen.get(f"/v2/scale_teams/{rows[0]['id']}", token=tok)
    assert one.status_code == 200 and str(one.json()["id"]) == str(rows[0]["id"])
    assert frozen.get("/v2/scale_teams/1", token=tok).json()["message"] == "ScaleTeam not found"


def test_events_and_exams_per_campus_with_updated_at_ranges(frozen: TestSim) -> None:
    tok = frozen.token()
    cid = _campus_with(frozen, tok, "events")
    events, _ = _all(frozen, f"/v2/campus/{cid}/events", tok)
    assert events and all(cid in e["campus_ids"] for e in events)
    everywhere, _ = _all(frozen, "/v2/events", tok, **{"filter[campus_id]": str(cid)})
    assert everywhere == events
    exams, _ = _all(frozen, f"/v2/campus/{cid}/exams", tok)
    assert all(x["campus"]["id"] == cid and isinstance(x["ip_range"], str) for x in exams)
    stamps = sorted(parse(e["updated_at"]) for e in events)
    lo = stamps[len(stamps) // 2]
    later, _ = _all(frozen, f"/v2/campus/{cid}/events", tok, **{"range[updated_at]": f"{fmt(lo)},"})
    assert {e["id"] for e in later} == {e["id"] for e in events if parse(e["updated_at"]) >= lo}


def test_locations_stats(frozen: TestSim) -> None:
    tok = frozen.token()
    loc = frozen.expected_table("locations")["rows"][0]
    r = frozen.get(f"/v2/users/{loc['user_id']}/locations_stats", token=tok)
    assert r.status_code == 200 and isinstance(r.json(), dict) and r.json()
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", d) and re.fullmatch(r"\d\d:\d\d:\d\d\.\d{1,6}", v)
               for d, v in r.json().items())
    first = sorted(r.json())[0]
    narrow = frozen.get(f"/v2/users/{loc['user_id']}/locations_stats", token=tok, begin_at=first, end_at=first)
    assert narrow.json() == {first: r.json()[first]}
    assert frozen.get("/v2/users/1/locations_stats", token=tok).status_code == 404


def test_the_clock_closes_sessions_and_fills_evaluations(frozen: TestSim) -> None:
    tok = frozen.token()
    anchor = frozen.campus_clock()["anchor"]
    open_before = int(frozen.get("/v2/locations", token=tok, **{"filter[active]": "true"}).headers["X-Total"])
    since = f"{anchor},"
    changed_before = int(frozen.get("/v2/scale_teams", token=tok, **{"range[updated_at]": since}).headers["X-Total"])
    state = frozen.campus_clock(advance_seconds=2 * 86_400)
    assert parse(state["clock"]) == parse(anchor) + 2 * 86_400_000
    open_after = int(frozen.get("/v2/locations", token=tok, **{"filter[active]": "true"}).headers["X-Total"])
    changed_after = int(frozen.get("/v2/scale_teams", token=tok, **{"range[updated_at]": since}).headers["X-Total"])
    assert 0 < open_after < open_before            # most close; the stuck ones stay open
    assert changed_after > changed_before          # filled (and given feedback) since the anchor
    frozen.reset()
    assert frozen.campus_clock()["clock"] is None  # reset: back to the wall clock


def test_expected_mirror_matches_what_is_served(frozen: TestSim) -> None:
    tok = frozen.token()
    exp = requests.get(f"{frozen.url}/_sim/expected").json()
    assert {"locations", "teams", "teams_users", "scale_teams", "events", "exams"} <= set(exp)
    cid = _campus_with(frozen, tok, "locations")
    served, _ = _all(frozen, f"/v2/campus/{cid}/locations", tok)
    rows = [r for r in frozen.expected_table("locations")["rows"] if r["campus_id"] == cid]
    by_id = {r["id"]: r for r in served}
    assert {r["id"] for r in rows} <= set(by_id)
    assert all(r["end_at"] == (by_id[r["id"]]["end_at"]) and r["user_id"] == by_id[r["id"]]["user"]["id"] for r in rows)
    frozen.campus_clock(scope=[cid])
    narrowed = requests.get(f"{frozen.url}/_sim/expected").json()
    assert narrowed["locations"] == len(rows) and narrowed["scale_teams"] < exp["scale_teams"]
    assert narrowed["users"] == exp["users"]        # the other tables do not depend on the scope
    bad = requests.post(f"{frozen.url}/_sim/campus", json={"clok": 1})
    assert bad.status_code == 400 and "clok" in bad.json()["message"]


def test_a_users_evaluations_as_corrector_and_as_corrected(frozen: TestSim) -> None:
    tok = frozen.token()
    row = next(r for r in frozen.expected_table("scale_teams")["rows"] if r["corrector_id"] is not None)
    gave, _ = _all(frozen, f"/v2/users/{row['corrector_id']}/scale_teams/as_corrector", tok)
    assert row["id"] in {int(r["id"]) for r in gave}
    member = next(m for m in frozen.expected_table("teams_users")["rows"] if m["team_id"] == row["team_id"])
    got, _ = _all(frozen, f"/v2/users/{member['user_id']}/scale_teams/as_corrected", tok)
    assert row["id"] in {int(r["id"]) for r in got}


def test_an_anchor_in_the_past_lets_the_clock_move_up_to_now() -> None:
    """The recipe of netops/sim/README.md: sessions closing 'later' never lie ahead of the wall
    clock netops windows up to."""
    from netops.sim import SimConfig, SimServer
    from netops.sim.timeutil import now_ms
    past = now_ms() - 3 * 86_400_000
    with SimServer(SimConfig(port=0, backlog_scale=0.01, rate_per_second=0, rate_per_hour=0,
                             campus_anchor_ms=past, campus_clock_ms=past)) as srv:
        from netops.sim import campus
        before = [r for r in campus.rows_of(srv.data, "locations") if r["end_at"] is None]
        state = srv.campus_clock(advance_seconds=2 * 86_400)
        after = {r["id"]: r for r in campus.rows_of(srv.data, "locations")}
        closed = [r for r in before if after[r["id"]]["end_at"] is not None]
        assert closed and all(after[r["id"]]["end_at"] <= parse(state["clock"]) <= now_ms() for r in closed)
