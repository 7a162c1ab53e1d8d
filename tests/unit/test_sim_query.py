"""Paging, filter, range and sort math, timestamps, fault specs and the rate limiter - no server."""

from __future__ import annotations

import pytest

from netops.sim.faults import FaultSet, FaultSpecError, drift, parse_spec
from netops.sim.query import Query, QueryError, apply, last_page, link_header, page_slice, parse_query
from netops.sim.ratelimit import RateLimiter
from netops.sim.timeutil import fmt, parse

ROWS = [
    {"id": 1, "name": "a", "active?": True, "score": 5, "updated_at": parse("2025-12-11T10:00:00Z"), "tags": [21]},
    {"id": 2, "name": "b", "active?": False, "score": 7, "updated_at": parse("2025-12-11T12:00:00+01:00"), "tags": [9]},
    {"id": 3, "name": "c", "active?": True, "score": 5, "updated_at": parse("2025-12-12T00:00:00Z"), "tags": [9, 21]},
    {"id": 4, "name": "d", "active?": None, "score": None, "updated_at": None, "tags": []},
]


def get(row: dict, name: str) -> object:
    return row.get(name)


def ids(rows: list[dict]) -> list[int]:
    return [r["id"] for r in rows]


def test_timestamps_roundtrip_and_offsets() -> None:
    ms = parse("2025-12-11T11:57:56.597Z")
    assert fmt(ms) == "2025-12-11T11:57:56.597Z"
    assert fmt(ms, 60) == "2025-12-11T12:57:56.597+01:00"
    assert parse(fmt(ms, 60)) == ms
    assert parse("2028-12-11T00:00:00.000+01:00") == parse("2028-12-10T23:00:00Z")
    assert parse("2025-12-11") == parse("2025-12-11T00:00:00Z")
    with pytest.raises(ValueError):
        parse("yesterday")


def test_paging_params_both_styles_and_caps() -> None:
    q = parse_query({})
    assert (q.page, q.per_page, q.legacy_paging) == (1, 30, False)
    q = parse_query({"page[size]": "100", "page[number]": "3"})
    assert (q.page, q.per_page) == (3, 100)
    q = parse_query({"per_page": "50", "page": "2"})
    assert (q.page, q.per_page, q.legacy_paging) == (2, 50, True)
    assert parse_query({"page[size]": "500"}).per_page == 100
    assert parse_query({"page[size]": "100"}, max_per_page=40).per_page == 40
    assert parse_query({"page[number]": "0"}).page == 1
    with pytest.raises(QueryError):
        parse_query({"page[size]": "ten"})
    with pytest.raises(QueryError):
        parse_query({"range[updated_at]": "2025-01-01"})


def test_filters_comma_is_or_and_booleans_by_api_name() -> None:
    assert ids(apply(ROWS, parse_query({"filter[active?]": "true"}), get, ())) == [1, 3]
    assert ids(apply(ROWS, parse_query({"filter[id]": "2,4,99"}), get, ())) == [2, 4]
    assert ids(apply(ROWS, parse_query({"filter[tags]": "21"}), get, ())) == [1, 3]
    assert ids(apply(ROWS, parse_query({"filter[active?]": "true", "filter[score]": "7"}), get, ())) == []
    with pytest.raises(QueryError):
        apply(ROWS, parse_query({"filter[nope]": "1"}), get, (), known={"id", "name"})


def test_range_compares_instants_not_strings() -> None:
    # 12:00+01:00 is 11:00Z: inside [10:30Z, 11:30Z] although its text says 12:00
    q = parse_query({"range[updated_at]": "2025-12-11T10:30:00Z,2025-12-11T11:30:00Z"})
    assert ids(apply(ROWS, q, get, ("updated_at",))) == [2]
    q = parse_query({"range[updated_at]": "2025-12-11T10:00:00Z,2025-12-12T00:00:00Z"})
    assert ids(apply(ROWS, q, get, ("updated_at",))) == [1, 2, 3]  # inclusive both ends, nulls out
    assert ids(apply(ROWS, parse_query({"range[score]": "6,100"}), get, ())) == [2]
    with pytest.raises(QueryError):
        apply(ROWS, parse_query({"range[updated_at]": "x,y"}), get, ("updated_at",))


def test_sort_multi_keys_and_default_order() -> None:
    assert ids(apply(ROWS, Query(), get, ())) == [1, 2, 3, 4]
    # nulls last ascending, first descending (PostgreSQL's defaults behind the real API)
    assert ids(apply(ROWS, parse_query({"sort": "-score,id"}), get, ())) == [4, 2, 1, 3]
    assert ids(apply(ROWS, parse_query({"sort": "score,-id"}), get, ())) == [3, 1, 2, 4]
    assert ids(apply(ROWS, parse_query({"sort": "-updated_at"}), get, ("updated_at",))) == [4, 3, 2, 1]
    assert ids(apply(ROWS, parse_query({"sort": "updated_at"}), get, ("updated_at",))) == [1, 2, 3, 4]


def test_id_range_by_bisection_matches_the_row_by_row_answer() -> None:
    """range[id] is cut by binary search (rows are in id order); every combination with filters,
    other ranges and sorts gives exactly what checking each row gives."""
    import random

    rng = random.Random(7)
    rows = [{"id": i, "score": rng.choice([None, 1, 2, 3]), "tags": rng.sample([9, 21, 42], rng.randint(0, 2))}
            for i in sorted(rng.sample(range(1, 400), 150))]

    def brute(args: dict[str, str]) -> list[int]:
        lo, hi = (args.get("range[id]") or ",").split(",")
        keep = [r for r in rows if (not lo or r["id"] >= int(lo)) and (not hi or r["id"] <= int(hi))]
        rest = {k: v for k, v in args.items() if k != "range[id]"}
        return ids(apply(keep, parse_query(rest), get, ()))

    cases = [{"range[id]": "0,0"}, {"range[id]": "1,399"}, {"range[id]": "200,100"}, {"range[id]": ",150"},
             {"range[id]": "150,"}]
    for _ in range(200):
        lo, hi = sorted(rng.sample(range(-5, 410), 2))
        case = {"range[id]": f"{lo},{hi}"}
        if rng.random() < 0.5:
            case["filter[tags]"] = rng.choice(["9", "21,42"])
        if rng.random() < 0.3:
            case["range[score]"] = "2,3"
        if rng.random() < 0.7:
            case["sort"] = rng.choice(["id", "-id", "-score,id", "score"])
        cases.append(case)
    for case in cases:
        assert ids(apply(rows, parse_query(case), get, ())) == brute(case), case
    # a bound that is not an integer takes the general path: same answer as before
    assert ids(apply(ROWS, parse_query({"range[id]": "1.5,3"}), get, ())) == [2, 3]


def test_page_math() -> None:
    assert last_page(0, 30) == 1 and last_page(519, 100) == 6 and last_page(500, 100) == 5
    assert page_slice(519, 6, 100) == (500, 519)
    assert page_slice(519, 7, 100) == (519, 519)


def test_link_header_rels() -> None:
    base = "http://h/v2/x"
    first = link_header(base, {"filter[a]": "1"}, parse_query({"page[size]": "100"}), 250)
    assert 'rel="next"' in first and 'rel="last"' in first and 'rel="prev"' not in first and 'rel="first"' not in first
    assert "page%5Bnumber%5D=3" in first.split('rel="next"')[1] and "filter%5Ba%5D=1" in first
    mid = link_header(base, {}, parse_query({"page[size]": "100", "page[number]": "2"}), 250)
    assert all(f'rel="{r}"' in mid for r in ("first", "prev", "next", "last"))
    last = link_header(base, {}, parse_query({"per_page": "100", "page": "3"}), 250)
    assert 'rel="next"' not in last and 'rel="last"' not in last and "per_page=100" in last
    assert link_header(base, {}, parse_query({}), 10) == ""


def test_fault_spec_parsing() -> None:
    f = parse_spec("503@/v2/campus/:id/achievements,count=2,after=1")
    assert (f.kind, f.endpoint, f.count, f.after, f.rate) == ("503", "/v2/campus/:id/achievements", 2, 1, None)
    f = parse_spec("missing_field@/v2/users,field=active?,rate=0.5")
    assert f.params == {"field": "active?"} and f.rate == 0.5
    for bad in ("teapot", "500@v2/campus", "500,rate=2", "500,count=x", "500,colour=red", "500,count"):
        with pytest.raises(FaultSpecError):
            parse_spec(bad)
    assert parse_spec("500@/v2/campus").matches("/v2/campus/5/achievements", "/v2/campus/:id/achievements")
    assert not parse_spec("500@/v2/campus").matches("/v2/campus_users", "unmatched")
    assert parse_spec("500@/v2/campus/:id").matches("/v2/campus/5/users", "/v2/campus/:id/users")
    assert not parse_spec("500").matches("/oauth/token", "/oauth/token")


def test_fault_count_after_and_seeded_rate() -> None:
    fs = FaultSet(1)
    fs.add("500,count=2,after=1")
    fired = [bool(fs.draw("/v2/cursus", "/v2/cursus")) for _ in range(5)]
    assert fired == [False, True, True, False, False]

    def pattern(seed: int) -> list[bool]:
        s = FaultSet(seed)
        s.add("502,rate=0.5")
        return [bool(s.draw("/v2/x", "unmatched")) for _ in range(40)]

    assert pattern(3) == pattern(3) and 5 < sum(pattern(3)) < 35
    shift = FaultSet(1)
    shift.add("shift,count=1")
    assert shift.draw("/v2/x", "t", page=1) == [] and len(shift.draw("/v2/x", "t", page=2)) == 1


def test_drift_mutations() -> None:
    rows = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
    drift("duplicate_id", parse_spec("duplicate_id"), rows)
    assert [r["id"] for r in rows] == [1, 1, 3]
    drift("renamed_field", parse_spec("renamed_field,field=name,to=title"), rows)
    assert "title" in rows[0] and "name" not in rows[0]
    drift("wrong_type", parse_spec("wrong_type,field=id"), rows)
    assert rows[0]["id"] == "#1"


def test_rate_limiter_sliding_windows() -> None:
    rl = RateLimiter(per_second=2, per_hour=5)
    assert rl.hit("app", now=100.0).allowed and rl.hit("app", now=100.5).allowed
    d = rl.hit("app", now=100.9)
    assert not d.allowed and d.retry_after == 1 and d.headers["X-Secondly-RateLimit-Remaining"] == "0"
    assert rl.hit("app", now=101.01).allowed  # the 100.0 hit slid out; a fixed window would differ
    assert not rl.hit("app", now=101.2).allowed
    assert rl.hit("app", now=102.0).allowed and rl.hit("app", now=103.0).allowed
    d = rl.hit("app", now=104.0)
    assert not d.allowed and d.retry_after > 3000 and d.headers["X-Hourly-RateLimit-Remaining"] == "0"
    assert rl.hit("other", now=104.0).allowed
    free = RateLimiter(0, 0)
    assert all(free.hit("app", now=1.0).allowed for _ in range(100))
    assert free.hit("app").headers == {}
