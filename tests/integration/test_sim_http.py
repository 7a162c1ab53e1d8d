"""The simulator over real HTTP: tokens, 401s, paging, filters, limits, latency, full pulls."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import requests

from tests.fixtures.sim import TestSim

LINK_RX = re.compile(r'<([^>]+)>; rel="(\w+)"')


def links(resp: requests.Response) -> dict[str, str]:
    return {rel: url for url, rel in LINK_RX.findall(resp.headers.get("Link", ""))}


def pull(sim: TestSim, http: requests.Session, path: str, **params: Any) -> list[dict[str, Any]]:
    """Page like the real client: follow X-Total, never request a page past the end."""
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        r = http.get(f"{sim.url}{path}", params={**params, "page[size]": 100, "page[number]": page}, timeout=30)
        assert r.status_code == 200, r.text
        rows += r.json()
        total, per = int(r.headers["X-Total"]), int(r.headers["X-Per-Page"])
        if page * per >= total:
            assert "next" not in links(r)
            return rows
        assert "next" in links(r)
        page += 1


def session(sim: TestSim) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {sim.token()}"
    return s


def test_token_flow_and_info(sim: TestSim) -> None:
    r = requests.post(f"{sim.url}/oauth/token", data={"grant_type": "client_credentials",
                                                      "client_id": sim.client_id, "client_secret": sim.client_secret})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 7200 and body["scope"] == "public"
    assert abs(body["created_at"] - time.time()) < 5 and body["secret_valid_until"] > time.time() + 29 * 86400
    for h in ("X-Application-Id", "X-Application-Name", "X-Application-Roles"):
        assert h in r.headers
    info = requests.get(f"{sim.url}/oauth/token/info", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.json()["application"]["uid"] == sim.client_id and 7190 < info.json()["expires_in_seconds"] <= 7200
    bad = requests.post(f"{sim.url}/oauth/token", data={"grant_type": "client_credentials",
                                                        "client_id": sim.client_id, "client_secret": "nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    assert "access_token" not in bad.text
    sim.configure(token_ttl=60)
    assert requests.post(f"{sim.url}/oauth/token", data={"grant_type": "client_credentials", "client_id": sim.client_id,
                                                         "client_secret": sim.client_secret}).json()["expires_in"] == 60


def test_401_missing_unknown_expired_revoked(sim: TestSim) -> None:
    r = requests.get(f"{sim.url}/v2/cursus/21")
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    r = sim.get("/v2/cursus/21", token="not-a-token")
    assert r.status_code == 401 and "The access token is invalid" in r.headers["WWW-Authenticate"]
    assert r.headers["WWW-Authenticate"].startswith('Bearer realm="42 API"') and r.json()["message"]
    tok = sim.token()
    assert sim.get("/v2/cursus/21", token=tok).status_code == 200
    assert sim.expire_tokens() >= 1
    r = sim.get("/v2/cursus/21", token=tok)
    assert r.status_code == 401 and 'error_description="The access token expired"' in r.headers["WWW-Authenticate"]
    tok2 = sim.token()  # a fresh token works again
    assert sim.get("/v2/cursus/21", token=tok2).status_code == 200
    sim.revoke_tokens()
    r = sim.get("/v2/cursus/21", token=tok2)
    assert r.status_code == 401 and "is invalid" in r.headers["WWW-Authenticate"]
    assert sim.stats()["by_endpoint_status"]["/v2/cursus/:id"]["401"] == 4


def test_paging_headers_links_and_full_pull(sim: TestSim) -> None:
    http = session(sim)
    r = http.get(f"{sim.url}/v2/coalitions")
    assert r.headers["X-Page"] == "1" and r.headers["X-Per-Page"] == "30" and r.headers["X-Total"] == "350"
    assert len(r.json()) == 30 and set(links(r)) == {"next", "last"}
    last = http.get(links(r)["last"])
    assert last.headers["X-Page"] == "12" and len(last.json()) == 350 - 11 * 30 and set(links(last)) == {"first", "prev"}
    nxt = http.get(links(r)["next"])
    assert [c["id"] for c in nxt.json()] == sorted(c["id"] for c in nxt.json())
    assert nxt.json()[0]["id"] > r.json()[-1]["id"]
    legacy = http.get(f"{sim.url}/v2/coalitions", params={"per_page": 100, "page": 4})
    assert legacy.headers["X-Per-Page"] == "100" and len(legacy.json()) == 50 and "per_page=100" in links(legacy)["prev"]
    past = http.get(f"{sim.url}/v2/coalitions", params={"page[size]": 100, "page[number]": 9})
    assert past.status_code == 200 and past.json() == [] and past.headers["X-Total"] == "350"
    rows = pull(sim, http, "/v2/coalitions")
    assert [c["id"] for c in rows] == [k[0] for k in sim.expected_table("coalitions")["keys"]]


def test_page_size_cap_per_endpoint(sim: TestSim) -> None:
    http = session(sim)
    sim.configure(page_caps={"/v2/campus/:id/achievements": 40})
    cid = max(sim.expected_table("campuses")["keys"], key=lambda k: len(sim.data.campus_achievements[k[0]]))[0]
    r = http.get(f"{sim.url}/v2/campus/{cid}/achievements", params={"page[size]": 100})
    assert r.headers["X-Per-Page"] == "40" and len(r.json()) == 40
    assert "page%5Bsize%5D=40" in links(r)["next"]
    assert http.get(f"{sim.url}/v2/coalitions", params={"page[size]": 100}).headers["X-Per-Page"] == "100"
    assert http.get(f"{sim.url}/v2/coalitions", params={"page[size]": 1000}).headers["X-Per-Page"] == "100"


def test_stable_pull_matches_expected_mirror(sim: TestSim) -> None:
    """Derive every stable table the way the sync does and compare with /_sim/expected."""
    http = session(sim)
    expected = requests.get(f"{sim.url}/_sim/expected").json()
    assert {k: expected[k] for k in ("cursus", "campuses", "projects", "coalitions", "achievements",
                                     "campus_projects", "campus_achievements", "project_sessions")} == {
        "cursus": 1, "campuses": 54, "projects": 519, "coalitions": 350, "achievements": 1042,
        "campus_projects": 20937, "campus_achievements": 5495, "project_sessions": 7256}
    assert http.get(f"{sim.url}/v2/cursus/21").json()["name"] == "42cursus"
    campuses = pull(sim, http, "/v2/campus", **{"filter[active]": "true", "filter[public]": "true"})
    mirrored = {c["id"] for c in campuses}
    assert len(mirrored) == 54 and all(c["active"] is True and c["public"] is True for c in campuses)
    assert len(pull(sim, http, "/v2/campus")) == 60
    projects = pull(sim, http, "/v2/cursus/21/projects")
    assert len(projects) == 519
    links_all = {(c["id"], p["id"]) for p in projects for c in p["campus"]}
    links_mirrored = {(c, p) for c, p in links_all if c in mirrored}
    assert len(links_all) > len(links_mirrored)  # nested lists name non-mirrored campuses too
    assert sorted(links_mirrored) == [tuple(k) for k in sim.expected_table("campus_projects")["keys"]]
    sessions = {s["id"] for p in projects for s in p["project_sessions"]}
    assert len(sessions) == 7256
    ca = set()
    calls_before = sim.stats()["by_endpoint"].get("/v2/campus/:id/achievements", 0)
    for cid in sorted(mirrored):
        ca |= {(cid, a["id"]) for a in pull(sim, http, f"/v2/campus/{cid}/achievements")}
    assert len(ca) == 5495
    calls = sim.stats()["by_endpoint"]["/v2/campus/:id/achievements"] - calls_before
    sizes = [len(sim.data.campus_achievements[c]) for c in mirrored]
    assert calls == sum(-(-n // 100) for n in sizes) > 54  # some campuses need 2 pages
    rows = sim.expected_table("projects")["rows"]
    by_id = {p["id"]: p for p in projects}
    assert all(r["name"] == by_id[r["id"]]["name"] and r["slug"] == by_id[r["id"]]["slug"] for r in rows)


def test_filters_ranges_sort_over_http(sim: TestSim) -> None:
    http = session(sim)
    active = pull(sim, http, "/v2/cursus/21/users", **{"filter[active?]": "true"})
    total = int(http.get(f"{sim.url}/v2/cursus/21/users").headers["X-Total"])
    assert 0 < len(active) < total and all(u["active?"] is True for u in active)
    some = [u["id"] for u in active[:3]]
    r = http.get(f"{sim.url}/v2/users", params={"filter[id]": ",".join(map(str, some))})
    assert sorted(u["id"] for u in r.json()) == sorted(some)
    win = ("2025-06-01T00:00:00Z", "2025-12-11T12:00:00Z")
    changed = pull(sim, http, "/v2/projects_users", **{"range[updated_at]": ",".join(win)})
    assert changed and len(changed) < int(http.get(f"{sim.url}/v2/projects_users").headers["X-Total"])
    from netops.sim.timeutil import parse
    lo, hi = parse(win[0]), parse(win[1])
    assert all(lo <= parse(pu["updated_at"]) <= hi for pu in changed)
    uid = changed[0]["user"]["id"]
    mine = http.get(f"{sim.url}/v2/projects_users", params={"filter[user_id]": uid, "page[size]": 100}).json()
    assert mine and all(pu["user"]["id"] == uid for pu in mine)
    assert sorted(p["id"] for p in mine) == sorted(p["id"] for p in http.get(f"{sim.url}/v2/users/{uid}/projects_users").json())
    campus = sim.data.tables["users"][uid]["_campus_id"]
    by_campus = pull(sim, http, "/v2/projects_users", **{"filter[campus]": campus, "filter[cursus]": 21})
    assert any(pu["user"]["id"] == uid for pu in by_campus)
    sorted_desc = http.get(f"{sim.url}/v2/coalitions", params={"sort": "-score,id"}).json()
    assert [c["score"] for c in sorted_desc] == sorted((c["score"] for c in sorted_desc), reverse=True)
    au = http.get(f"{sim.url}/v2/achievements_users", params={"filter[user_id]": uid, "page[size]": 100}).json()
    assert all(a["user_id"] == uid for a in au)
    bad = http.get(f"{sim.url}/v2/users", params={"filter[no_such_field]": 1})
    assert bad.status_code == 400
    assert http.get(f"{sim.url}/v2/users", params={"range[updated_at]": "x,y"}).status_code == 400
    cu = http.get(f"{sim.url}/v2/users/{uid}/coalitions_users").json()
    assert all(c["user_id"] == uid for c in cu)
    assert http.get(f"{sim.url}/v2/campus/{campus}/users", params={"page[size]": 100}).status_code == 200


def test_404s(sim: TestSim) -> None:
    http = session(sim)
    for path in ("/v2/campus/99999", "/v2/projects/999999", "/v2/users/1", "/v2/no_such_thing",
                 "/v2/campus/99999/achievements", "/v2/cursus/77/projects"):
        r = http.get(f"{sim.url}{path}")
        assert r.status_code == 404, path
        assert r.headers["Content-Type"].startswith("application/json") and r.json()["error"] == "Not Found"


def test_rate_limit_headers_429_and_retry_after(sim: TestSim) -> None:
    sim.configure(rate_per_second=3, rate_per_hour=5)
    http = session(sim)
    answers = [http.get(f"{sim.url}/v2/cursus") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-Secondly-RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["X-Secondly-RateLimit-Limit"] == "3" and answers[0].headers["X-Hourly-RateLimit-Limit"] == "5"
    assert answers[3].headers["Retry-After"] == "1" and "X-Total" not in answers[3].headers
    assert answers[3].json()["error"] == "Too Many Requests"
    time.sleep(1.05)
    ok = [http.get(f"{sim.url}/v2/cursus") for _ in range(3)]
    assert [a.status_code for a in ok] == [200, 200, 429]
    assert ok[1].headers["X-Hourly-RateLimit-Remaining"] == "0"
    assert int(ok[2].headers["Retry-After"]) > 3000  # the hourly budget is spent
    # /oauth is not rate-limited
    assert requests.post(f"{sim.url}/oauth/token", data={"grant_type": "client_credentials", "client_id": sim.client_id,
                                                         "client_secret": sim.client_secret}).status_code == 200


def test_latency_overlaps_across_concurrent_requests(sim: TestSim) -> None:
    sim.configure(latency=0.5)
    tok = sim.token()
    results: list[int] = []

    def one() -> None:
        results.append(sim.get("/v2/cursus/21", token=tok).status_code)

    started = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert results == [200] * 6
    assert 0.5 <= elapsed < 1.2, elapsed  # serial would be >= 3 s


def test_keepalive_pages_do_not_stall(sim: TestSim) -> None:
    """With Nagle on, each small answer on a kept-alive connection can wait ~40 ms for an ACK."""
    http = session(sim)
    http.get(f"{sim.url}/v2/cursus")
    assert sim.last_accepted_nodelay
    for n in range(1, 31):
        assert http.get(f"{sim.url}/v2/coalitions", params={"page[size]": 10, "page[number]": n}).status_code == 200
    assert sim.last_accepted_nodelay   # TCP_NODELAY on the kept-alive connection is the behaviour


def test_every_answer_names_the_application(sim: TestSim) -> None:
    sim.configure(rate_per_second=1)
    tok = sim.token()
    answers = [sim.get("/v2/cursus", token=tok), sim.get("/v2/cursus", token=tok),  # 200, 429
               sim.get("/v2/cursus", token="bad"), requests.get(f"{sim.url}/nothing-here"),
               requests.post(f"{sim.url}/oauth/token", data={"grant_type": "password"})]
    assert [a.status_code for a in answers] == [200, 429, 401, 404, 400]
    for a in answers:
        assert a.headers["X-Application-Id"] and a.headers["X-Application-Name"] == "netops-sim"
        assert "X-Application-Roles" in a.headers
        assert a.headers["Content-Type"].startswith("application/json") and a.json()
    assert answers[1].headers["X-Secondly-RateLimit-Remaining"] == "0"
