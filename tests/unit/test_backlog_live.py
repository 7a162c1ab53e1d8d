"""Backlog pure logic: API object -> row mapping, validation, durations."""

from __future__ import annotations

import json

import click
import pytest

from netops.cli.backlog import parse_duration
from netops.pipeline.backlog import resources
from netops.pipeline.backlog.detect import iso
from netops.pipeline.backlog.resources import PayloadError


def test_users_row_maps_question_mark_booleans_nested_image_and_ignores_extras() -> None:
    obj = {"id": 61234, "login": "jdoe", "active?": True, "alumni?": False, "staff?": False,
           "image": {"link": "https://cdn/x.jpg", "versions": {"small": "s"}}, "wallet": 12,
           "updated_at": "2025-12-11T11:57:56.597Z", "created_at": "2028-12-11T00:00:00.000+01:00",
           "brand_new_field": {"whatever": 1}}
    row = dict(zip(resources.USERS.columns, resources.USERS.to_row(obj), strict=True))
    assert row["id"] == 61234 and row["login"] == "jdoe"
    assert row["active"] is True and row["alumni"] is False and row["staff"] is False
    assert row["image_url"] == "https://cdn/x.jpg"
    assert row["created_at"] == "2028-12-11T00:00:00.000+01:00"  # offset kept for PostgreSQL
    assert row["location"] is None  # missing field -> NULL
    assert len(row) == len(resources.USERS.columns)


def test_projects_users_take_ids_from_nested_objects_and_keep_cursus_ids_as_json() -> None:
    obj = {"id": "2000001", "project": {"id": 1314, "name": "Libft"}, "user": {"id": 60001, "login": "a"},
           "cursus_ids": [21], "validated?": True, "status": "in_progress", "final_mark": None}
    row = dict(zip(resources.PROJECTS_USERS.columns, resources.PROJECTS_USERS.to_row(obj), strict=True))
    assert row["id"] == 2000001 and row["project_id"] == 1314 and row["user_id"] == 60001
    assert json.loads(row["cursus_ids"]) == [21]
    assert row["validated"] is True and row["status"] == "in_progress"  # both stored as given


def test_flat_parent_ids_work_for_achievements_and_coalitions_users() -> None:
    a = resources.ACHIEVEMENTS_USERS.to_row({"id": 9000001, "achievement_id": 5, "user_id": 60001, "login": "x"})
    c = resources.COALITIONS_USERS.to_row({"id": 300001, "coalition_id": 7, "user_id": 60001, "score": 10, "rank": 3})
    assert a[:3] == (9000001, 5, 60001)
    assert c[:5] == (300001, 7, 60001, 10, 3)


@pytest.mark.parametrize("obj, message", [
    ({"login": "noid"}, "without a usable id"),
    ({"id": "abc"}, "non-integer id"),
    ({"id": True}, "without a usable id"),
    ([1, 2], "expected a JSON object"),
    ({"id": 1, "wallet": "lots"}, "wallet"),
    ({"id": 1, "updated_at": "yesterday"}, "updated_at"),
])
def test_bad_objects_raise_payload_error_naming_the_problem(obj: object, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        resources.USERS.to_row(obj)


def test_child_without_parent_id_is_rejected() -> None:
    with pytest.raises(PayloadError, match="user_id is missing"):
        resources.COALITIONS_USERS.to_row({"id": 1, "coalition_id": 2})


def test_resolve_orders_parents_first_and_rejects_unknown_names() -> None:
    names = [r.name for r in resources.resolve(["coalitions_users", "users"])]
    assert names == ["users", "coalitions_users"]
    assert [r.name for r in resources.resolve(["project_users"])] == ["projects_users"]  # table name works too
    with pytest.raises(ValueError, match="unknown backlog resource"):
        resources.resolve(["students"])


def test_parse_ts_and_iso_round_trip_in_utc() -> None:
    dt = resources.parse_ts("2028-12-11T00:00:00.000+01:00")
    assert iso(dt) == "2028-12-10T23:00:00.000Z"
    assert iso(resources.parse_ts("2025-12-11T11:57:56.597Z")) == "2025-12-11T11:57:56.597Z"


@pytest.mark.parametrize("text, seconds", [("7d", 604800), ("12h", 43200), ("30m", 1800), ("90s", 90),
                                           ("45", 45), ("1w", 604800)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(click.BadParameter):
        parse_duration("a week")


def test_window_end_follows_the_apis_clock_and_never_passes_the_end_asked_for() -> None:
    from datetime import datetime, timedelta, timezone

    from netops.pipeline.backlog.detect import _window_end

    class Log:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def warning(self, msg: str) -> None:
            self.lines.append(msg)

    settle = timedelta(seconds=60)
    api_now = datetime(2026, 11, 29, 12, 0, 0, tzinfo=timezone.utc)
    log = Log()
    # our clock 30 s ahead of the API's: the API's "now - settle" wins, and we say so
    assert _window_end(api_now + timedelta(seconds=30) - settle, api_now, settle, "users", log) == api_now - settle
    assert "+30s off the API's" in log.lines[-1]
    # our clock behind: the end we asked for (rows after it were not read)
    ours = api_now - timedelta(seconds=20) - settle
    assert _window_end(ours, api_now, settle, "users", log) == ours
    assert "-20s" in log.lines[-1]
    # within the Date header's whole-second resolution: no warning
    n = len(log.lines)
    assert _window_end(api_now - settle + timedelta(milliseconds=800), api_now, settle, "users", log) == api_now - settle
    assert len(log.lines) == n
    # no Date header: our clock's end
    assert _window_end(ours, None, settle, "users", log) == ours


def test_cursus_users_mapping_reads_nested_user_and_cursus_and_a_float_level() -> None:
    obj = {"id": 150001, "level": 14.11, "grade": "Member", "cursus_id": 21, "begin_at": "2023-04-20T00:13:11.063Z",
           "end_at": None, "blackholed_at": "2025-12-16T12:00:00.000+01:00", "skills": [{"id": 1, "level": 5.5}],
           "user": {"id": 60001, "login": "odurand"}, "cursus": {"id": 21, "slug": "42cursus"},
           "created_at": "2023-04-04T00:13:11.063Z", "updated_at": "2025-03-21T23:20:05.091Z"}
    row = dict(zip(resources.CURSUS_USERS.columns, resources.CURSUS_USERS.to_row(obj), strict=True))
    assert (row["user_id"], row["cursus_id"], row["level"], row["grade"]) == (60001, 21, 14.11, "Member")
    assert resources.CURSUS_USERS.table == "cursus_users" and resources.CURSUS_USERS.path == "/v2/cursus/{cursus}/cursus_users"
    for bad in (True, "high", "nan"):
        with pytest.raises(PayloadError, match="level"):
            resources.CURSUS_USERS.to_row({**obj, "level": bad})
    with pytest.raises(PayloadError, match="user_id is missing"):
        resources.CURSUS_USERS.to_row({k: v for k, v in obj.items() if k != "user"})
