"""Pure parts of the API client and mappings: pacing arithmetic, endpoint templates, converters."""

from __future__ import annotations

import time

import pytest

from netops.api.limiter import Pacer
from netops.api.paging import endpoint_template
from netops.db.loader import _copy_value
from netops.log import add_secret, redact
from netops.pipeline.stable.phases import PHASES, MappingError, nested_rows


def test_endpoint_template() -> None:
    assert endpoint_template("/v2/campus/12/achievements?page=2") == "/v2/campus/:id/achievements"
    assert endpoint_template("/v2/cursus/21") == "/v2/cursus/:id"


def test_pacer_spaces_starts_under_the_per_second_budget() -> None:
    p = Pacer(per_second=50, per_hour=10_000)
    starts = []
    for _ in range(11):
        p.acquire()
        starts.append(time.time())
    # 10 intervals at >= 1/50 s each (plus margin): never faster than the budget
    assert starts[-1] - starts[0] >= 10 * (1 / 50)


def test_pacer_hour_window_seeded_from_recent_calls_blocks() -> None:
    now = time.time()
    p = Pacer(per_second=1000, per_hour=3, recent=[now - 3599.7, now - 10, now - 5])
    t0 = time.time()
    p.acquire()  # the oldest call leaves the window in ~0.3 s
    assert time.time() - t0 >= 0.2
    assert p.waited_for_hour > 0


def test_pacer_adopts_stricter_header_limits() -> None:
    p = Pacer(per_second=10, per_hour=1000)
    p.adopt_limits(2, 5000)
    assert p.per_second == 2 and p.per_hour == 1000


def test_copy_escaping() -> None:
    assert _copy_value(None) == "\\N"
    assert _copy_value(True) == "t"
    assert _copy_value("a\tb\nc\\d") == "a\\tb\\nc\\\\d"
    assert _copy_value({"k": [1]}) == '{"k":[1]}'


def test_phase_mapping_quirks_and_type_errors() -> None:
    campuses = PHASES[1]
    row = campuses.row({"id": 1, "name": "Paris", "language": {"id": 1, "name": "Français"},
                        "active?": True, "public": True, "unknown_new_field": 42}, "/v2/campus")
    cols = dict(zip(campuses.table.columns, row, strict=True))
    assert cols["active"] is True and cols["language_name"] == "Français" and cols["city"] is None
    with pytest.raises(MappingError, match="field 'users_count' = 'many' is not int"):
        campuses.row({"id": 2, "users_count": "many"}, "/v2/campus")
    projects = PHASES[2]
    with pytest.raises(MappingError, match="created_at"):
        projects.row({"id": 3, "created_at": "yesterday"}, "/v2/cursus/:id/projects")


def test_nested_rows_from_a_project() -> None:
    out = nested_rows({"id": 7, "campus": [{"id": 1}, {"id": 2}],
                       "project_sessions": [{"id": 70, "project_id": None, "campus_id": 1}]})
    assert out["campus_projects"] == [{"campus_id": 1, "project_id": 7}, {"campus_id": 2, "project_id": 7}]
    assert out["project_sessions"][0]["project_id"] == 7


def test_redaction() -> None:
    add_secret("super-secret-token-value")
    assert "super-secret" not in redact("token=super-secret-token-value")
    assert redact("Authorization: Bearer abcdefghijkl") == "Authorization: Bearer ***"
    assert redact("postgresql://u:pw123@h/db") == "postgresql://u:***@h/db"


def test_pacer_never_exceeds_the_per_second_window_across_threads() -> None:
    """Eight threads hammering one pacer at 20/s: no one-second window ever holds more than 20
    starts, even though threads wake late under the GIL (the budget is checked against the
    moments recorded when the calls are let go, not the ones planned)."""
    import threading

    p = Pacer(per_second=20, per_hour=100_000)
    starts: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(8):
            started = p.acquire()
            with lock:
                starts.append(started)
            sum(i * i for i in range(20_000))  # keep the GIL busy between calls

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts.sort()
    assert len(starts) == 64
    worst = max(sum(1 for s in starts if t0 <= s < t0 + 1.0) for t0 in starts)
    assert worst <= 20


# -- the client's policy (netops/api/policy.py): one verdict per kind of answer ----------------
def test_policy_a_good_answer_is_done() -> None:
    from netops.api.policy import Action, classify

    assert classify(200).action is Action.DONE


def test_policy_401_refreshes_the_token() -> None:
    from netops.api.policy import Action, classify

    assert classify(401).action is Action.REFRESH


def test_policy_429_waits_for_the_key_for_retry_after_plus_jitter() -> None:
    from netops.api.policy import Action, classify

    v = classify(429, headers={"Retry-After": "7"})
    assert v.action is Action.WAIT_KEY and v.retry_after == 7 and 7.05 <= v.pause <= 7.25
    v = classify(429, headers={})                       # no Retry-After: one second
    assert v.action is Action.WAIT_KEY and v.retry_after is None and 1.05 <= v.pause <= 1.25
    v = classify(429, headers={"Retry-After": "soon"})  # unreadable: one second too
    assert v.retry_after is None and 1.05 <= v.pause <= 1.25


def test_policy_other_4xx_fail_at_once() -> None:
    from netops.api.policy import Action, classify

    for status in (400, 403, 404, 422):
        assert classify(status).action is Action.FAIL


def test_policy_5xx_are_retried() -> None:
    from netops.api.policy import Action, classify

    for status in (500, 502, 503, 504):
        v = classify(status)
        assert v.action is Action.RETRY and v.problem == f"HTTP {status}"


def test_policy_timeouts_and_resets_are_retried_with_a_phrase_for_the_log() -> None:
    import requests

    from netops.api.policy import Action, classify_error

    cases = {
        requests.ReadTimeout("read timed out"): "timeout after 30s",
        requests.ConnectTimeout("connect timed out"): "timeout after 30s",
        requests.ConnectionError("Connection reset by peer"): "connection reset",
        requests.ConnectionError("Connection aborted."): "connection reset",
        requests.ConnectionError("Name or service not known"): "connection failed",
        requests.exceptions.ChunkedEncodingError("IncompleteRead"): "answer cut short (connection closed mid-body)",
        requests.TooManyRedirects("loop"): "TooManyRedirects",
    }
    for exc, phrase in cases.items():
        v = classify_error(exc, 30.0)
        assert v.action is Action.RETRY and v.problem == phrase, exc


def test_policy_a_garbled_200_is_retried() -> None:
    import requests

    from netops.api import transport
    from netops.api.policy import Action, classify

    resp = requests.Response()
    resp.status_code = 200
    resp._content = b"<html>oops</html>"
    resp.headers["Content-Type"] = "text/html; charset=utf-8"
    problem = transport.read_json(resp, None)
    assert problem == "HTTP 200 with a body that is not JSON (text/html)"
    v = classify(200, problem)
    assert v.action is Action.RETRY and v.problem == problem
    resp._content = b'[{"login": "x"}]'                 # JSON, but a row without an id
    from netops.api.paging import page_problem

    assert transport.read_json(resp, page_problem) == "HTTP 200 with a row without an id"
    resp._content = b'[{"id": 1}]'
    assert transport.read_json(resp, page_problem) is None and resp._netops_json == [{"id": 1}]


def test_policy_backoff_doubles_with_jitter_and_is_capped() -> None:
    from netops.api.policy import backoff_seconds

    for attempt, base in ((1, 0.5), (2, 1.0), (3, 2.0), (10, 30.0)):
        assert base * 0.8 <= backoff_seconds(attempt) <= base * 1.2


def test_policy_refusal_reason_uses_the_apis_words() -> None:
    import requests

    from netops.api.policy import refusal_reason

    resp = requests.Response()
    resp.status_code, resp.reason = 404, "Not Found"
    resp._content = b'{"error": "Not Found", "error_description": "no such campus"}'
    assert refusal_reason(resp) == "no such campus"
    resp._content = b"not json"
    assert refusal_reason(resp) == "Not Found"
    assert refusal_reason(None) == "no answer"


# -- the pagers (netops/api/paging.py), driven by a stand-in for the client --------------------
class _Listing:
    """Serves `n` rows (ids 1..n) by page number or by `range[id]`, with X-Total, and counts calls."""

    def __init__(self, n: int) -> None:
        import logging

        self.rows = [{"id": i} for i in range(1, n + 1)]
        self.calls: list[dict[str, object]] = []
        self.concurrency = 2
        self.log = logging.getLogger("test-paging")

    def request(self, path: str, params: dict | None = None, validate: object = None) -> object:
        import requests

        p = dict(params or {})
        self.calls.append(p)
        size, number = int(p["page[size]"]), int(p["page[number]"])
        rows = self.rows
        if "range[id]" in p:
            lo, hi = (int(x) for x in str(p["range[id]"]).split(","))
            rows = [r for r in rows if lo <= r["id"] <= hi]
            if p.get("sort") == "-id":
                rows = rows[::-1]
        resp = requests.Response()
        resp.status_code = 200
        resp.headers.update({"X-Total": str(len(rows)), "X-Per-Page": str(size)})
        resp._netops_json = rows[(number - 1) * size:number * size]  # type: ignore[attr-defined]
        return resp


def test_xtotal_pager_reads_the_listing_in_exactly_its_pages() -> None:
    from netops.api.paging import PageInfo, XTotalPager

    api, infos = _Listing(250), []
    pages = list(XTotalPager("/v2/things", {"sort": "id"}, 100, infos.append).pages(api))
    assert sorted(r["id"] for p in pages for r in p) == list(range(1, 251))
    assert len(api.calls) == 3 and api.calls[0]["page[number]"] == 1   # page 1 first, no empty page
    assert infos == [PageInfo(250, 100, 3)]


def test_keyset_pager_walks_by_id_and_in_lanes_with_the_same_rows() -> None:
    from netops.api.paging import KeysetPager

    api = _Listing(250)
    pages = list(KeysetPager("/v2/users", {}, 100, label="/v2/users").pages(api))
    assert [len(p.rows) for p in pages] == [100, 100, 50] and [p.last for p in pages] == [False, False, True]
    assert [c["range[id]"] for c in api.calls] == ["1,2147483647", "101,2147483647", "201,2147483647"]
    api = _Listing(5000)
    pages = list(KeysetPager("/v2/users", {}, 100, label="/v2/users", lanes=4).pages(api))
    ids = [r["id"] for p in pages for r in p.rows]
    assert sorted(ids) == list(range(1, 5001)) and len(ids) == 5000        # each row exactly once
    assert [p.last for p in pages].count(True) == 1 and pages[-1].last
