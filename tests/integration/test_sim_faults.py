"""Each injectable fault, seen by a plain `requests` client over real HTTP."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.fixtures.sim import TestSim


@pytest.fixture
def http(sim: TestSim) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {sim.token()}"
    return s


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_status_faults_with_count_then_recovery(sim: TestSim, http: requests.Session, status: int) -> None:
    sim.add_fault(f"{status}@/v2/coalitions,count=2,seconds=3")
    answers = [http.get(f"{sim.url}/v2/coalitions") for _ in range(3)]
    assert [a.status_code for a in answers] == [status, status, 200]
    assert answers[0].json()["error"] and "X-Total" not in answers[0].headers
    if status == 429:
        assert answers[0].headers["Retry-After"] == "3"
    assert http.get(f"{sim.url}/v2/cursus").status_code == 200  # other endpoints untouched
    assert sim.stats()["by_endpoint_status"]["/v2/coalitions"] == {str(status): 2, "200": 1}


def test_fault_by_template_after_and_rate(sim: TestSim, http: requests.Session) -> None:
    sim.add_fault("503@/v2/campus/:id/achievements,after=2,count=1")
    cid = sim.expected_table("campuses")["keys"][0][0]
    codes = [http.get(f"{sim.url}/v2/campus/{cid}/achievements").status_code for _ in range(4)]
    assert codes == [200, 200, 503, 200]
    assert http.get(f"{sim.url}/v2/campus/{cid}").status_code == 200
    sim.clear_faults()
    sim.add_fault("500@/v2/cursus,rate=0.5")
    codes = [http.get(f"{sim.url}/v2/cursus").status_code for _ in range(40)]
    assert 5 < codes.count(500) < 35 and set(codes) == {200, 500}
    sim.reset()
    sim.add_fault("500@/v2/cursus,rate=0.5")
    http.headers["Authorization"] = f"Bearer {sim.token()}"
    assert [http.get(f"{sim.url}/v2/cursus").status_code for _ in range(40)] == codes  # seeded


def test_slow_exceeds_client_timeout(sim: TestSim, http: requests.Session) -> None:
    sim.add_fault("slow@/v2/cursus,seconds=1.5,count=1")
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        http.get(f"{sim.url}/v2/cursus", timeout=0.4)
    assert time.monotonic() - started < 1.0
    assert http.get(f"{sim.url}/v2/cursus", timeout=2).status_code == 200


def test_reset_closes_without_answer(sim: TestSim, http: requests.Session) -> None:
    assert http.get(f"{sim.url}/v2/cursus", timeout=5).status_code == 200  # a kept-alive connection
    sim.add_fault("reset@/v2/cursus/:id,count=1")
    with pytest.raises(requests.ConnectionError):
        http.get(f"{sim.url}/v2/cursus/21", timeout=5)
    assert http.get(f"{sim.url}/v2/cursus/21", timeout=5).status_code == 200
    assert sim.stats()["by_endpoint_status"]["/v2/cursus/:id"] == {"reset": 1, "200": 1}
    assert sim.list_faults()[0]["fired"] == 1  # not silently retried by the client


def test_token_revoked_mid_run(sim: TestSim, http: requests.Session) -> None:
    sim.add_fault("token_revoked@/v2/coalitions,after=2,count=1")
    codes = [http.get(f"{sim.url}/v2/coalitions", params={"page[number]": n}).status_code for n in (1, 2, 3, 4)]
    assert codes == [200, 200, 401, 401]
    r = http.get(f"{sim.url}/v2/cursus")
    assert r.status_code == 401 and "is invalid" in r.headers["WWW-Authenticate"]
    http.headers["Authorization"] = f"Bearer {sim.token()}"
    assert http.get(f"{sim.url}/v2/coalitions", params={"page[number]": 3}).status_code == 200


def test_malformed_json_and_html_200(sim: TestSim, http: requests.Session) -> None:
    sim.add_fault("malformed_json@/v2/coalitions,count=1")
    r = http.get(f"{sim.url}/v2/coalitions")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.text)
    sim.add_fault("html_200@/v2/coalitions,count=1")
    r = http.get(f"{sim.url}/v2/coalitions")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html") and "<html>" in r.text
    assert isinstance(http.get(f"{sim.url}/v2/coalitions").json(), list)


def test_truncated_body(sim: TestSim, http: requests.Session) -> None:
    sim.add_fault("truncated@/v2/coalitions,count=1")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        http.get(f"{sim.url}/v2/coalitions", timeout=5)
    assert len(http.get(f"{sim.url}/v2/coalitions", timeout=5).json()) == 30


def test_schema_drift(sim: TestSim, http: requests.Session) -> None:
    url = f"{sim.url}/v2/cursus/21/users"
    sim.add_fault("extra_field@/v2/cursus/:id/users,count=1,field=brand_new")
    assert all("brand_new" in u for u in http.get(url).json())
    sim.add_fault("missing_field@/v2/cursus/:id/users,count=1,field=active?")
    assert all("active?" not in u for u in http.get(url).json())
    sim.add_fault("renamed_field@/v2/cursus/:id/users,count=1,field=login,to=login_name")
    rows = http.get(url).json()
    assert all("login" not in u and u["login_name"] for u in rows)
    sim.add_fault("wrong_type@/v2/cursus/:id/users,count=1,field=wallet")
    assert all(isinstance(u["wallet"], str) for u in http.get(url).json())
    clean = http.get(url).json()
    assert all(isinstance(u["wallet"], int) and "login" in u and "active?" in u for u in clean)
    sim.add_fault("wrong_type@/v2/cursus/:id,count=1,field=name")
    assert isinstance(http.get(f"{sim.url}/v2/cursus/21").json()["name"], dict)


def test_null_and_duplicate_ids(sim: TestSim, http: requests.Session) -> None:
    sim.add_fault("null_id@/v2/coalitions,count=1")
    ids = [c["id"] for c in http.get(f"{sim.url}/v2/coalitions").json()]
    assert ids.count(None) == 1
    sim.add_fault("duplicate_id@/v2/coalitions,count=1")
    ids = [c["id"] for c in http.get(f"{sim.url}/v2/coalitions").json()]
    assert len(ids) == 30 and len(set(ids)) == 29


def test_shift_repeats_a_row_across_pages(sim: TestSim, http: requests.Session) -> None:
    sim.add_fault("shift@/v2/coalitions,count=1")
    p1 = http.get(f"{sim.url}/v2/coalitions", params={"page[size]": 100, "page[number]": 1})
    p2 = http.get(f"{sim.url}/v2/coalitions", params={"page[size]": 100, "page[number]": 2})
    assert p1.headers["X-Total"] == "350" and p2.headers["X-Total"] == "351"
    assert p2.json()[0]["id"] == p1.json()[-1]["id"]  # a row pushed forward onto the next page
    p3 = http.get(f"{sim.url}/v2/coalitions", params={"page[size]": 100, "page[number]": 3})
    assert p3.json()[0]["id"] > p2.json()[-1]["id"]


def test_lying_total(sim: TestSim, http: requests.Session) -> None:
    sim.add_fault("lying_total@/v2/coalitions,count=1,delta=-300")
    r = http.get(f"{sim.url}/v2/coalitions", params={"page[size]": 100})
    assert r.headers["X-Total"] == "50" and len(r.json()) == 100
    assert http.get(f"{sim.url}/v2/coalitions").headers["X-Total"] == "350"


def test_oauth_faults_only_when_named(sim: TestSim) -> None:
    sim.add_fault("500")  # all /v2, not /oauth
    form = {"grant_type": "client_credentials", "client_id": sim.client_id, "client_secret": sim.client_secret}
    assert requests.post(f"{sim.url}/oauth/token", data=form).status_code == 200
    sim.add_fault("503@/oauth/token,count=1")
    assert requests.post(f"{sim.url}/oauth/token", data=form).status_code == 503
    assert requests.post(f"{sim.url}/oauth/token", data=form).status_code == 200


def test_faults_via_control_api(sim: TestSim, http: requests.Session) -> None:
    r = requests.post(f"{sim.url}/_sim/faults", json={"kind": "502", "endpoint": "/v2/cursus", "count": 1})
    assert r.status_code == 201 and r.json()["kind"] == "502"
    assert http.get(f"{sim.url}/v2/cursus").status_code == 502
    listed = requests.get(f"{sim.url}/_sim/faults").json()["faults"]
    assert listed[0]["fired"] == 1 and listed[0]["count"] == 1
    bad = requests.post(f"{sim.url}/_sim/faults", json={"spec": "teapot"})
    assert bad.status_code == 400 and "unknown fault kind" in bad.json()["message"]
    assert requests.delete(f"{sim.url}/_sim/faults").status_code == 200
    assert requests.get(f"{sim.url}/_sim/faults").json()["faults"] == []
