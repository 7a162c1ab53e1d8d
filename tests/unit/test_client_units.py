"""Pure parts of the API client and mappings: pacing arithmetic, endpoint templates, converters."""

from __future__ import annotations

import time

import pytest

from netops.api.client import Pacer, endpoint_template
from netops.db.loader import _copy_value
from netops.log import add_secret, redact
from netops.pipeline.stable import PHASES, MappingError, nested_rows


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
