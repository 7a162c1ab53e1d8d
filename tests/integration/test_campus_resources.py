"""Campus-scoped resources (issue 23): locations, scale_teams + teams + teams_users, events, exams,
and logtime_daily. Real PostgreSQL; the simulator over real HTTP; the CLI as a subprocess where the
command is the point.

Two parts: logtime_daily's day arithmetic on sessions written by hand (the cases a person in Seoul
or Sao Paulo checks by the clock on the wall), then `netops backlog detect` + `run` against the
simulator, compared with its expected mirror.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from tests.fixtures.pg import query

q = query


def _campus(dsn: str, cid: int, tz: str | None) -> None:
    q(dsn, "INSERT INTO campuses (id, name, time_zone) VALUES (%s, %s, %s)", (cid, f"campus {cid}", tz))


def _session(dsn: str, sid: int, uid: int, cid: int, begin: str, end: str | None) -> None:
    q(dsn, "INSERT INTO locations (id, user_id, campus_id, host, begin_at, end_at) VALUES (%s, %s, %s, 'c1r1s1', %s, %s)",
      (sid, uid, cid, begin, end))


def _days(dsn: str, uid: int) -> dict[str, float]:
    return {d.isoformat(): s for d, s in q(dsn, "SELECT day, seconds FROM logtime_daily WHERE user_id = %s", (uid,))}


def test_a_session_across_local_midnight_is_split_in_seoul_and_sao_paulo(pg_dsn: str) -> None:
    _campus(pg_dsn, 29, "Asia/Seoul")          # UTC+9, no DST
    _campus(pg_dsn, 20, "America/Sao_Paulo")   # UTC-3 (no DST since 2019)
    # Seoul: 23:30 -> 01:30 local (14:30Z -> 16:30Z): half an hour on the 10th, 1.5 h on the 11th
    _session(pg_dsn, 1, 100, 29, "2026-03-10T14:30:00Z", "2026-03-10T16:30:00Z")
    # Sao Paulo: 22:00 -> 01:00 local (01:00Z -> 04:00Z on the 11th): 2 h on the 10th, 1 h on the 11th
    _session(pg_dsn, 2, 200, 20, "2026-03-11T01:00:00Z", "2026-03-11T04:00:00Z")
    # the same UTC instants at a campus in UTC: one day only
    _campus(pg_dsn, 1, "UTC")
    _session(pg_dsn, 3, 300, 1, "2026-03-10T14:30:00Z", "2026-03-10T16:30:00Z")
    assert _days(pg_dsn, 100) == {"2026-03-10": 1800.0, "2026-03-11": 5400.0}
    assert _days(pg_dsn, 200) == {"2026-03-10": 7200.0, "2026-03-11": 3600.0}
    assert _days(pg_dsn, 300) == {"2026-03-10": 7200.0}


def test_multi_day_sessions_dst_days_and_unknown_zones(pg_dsn: str) -> None:
    _campus(pg_dsn, 1, "Europe/Paris")
    _campus(pg_dsn, 2, "Not/AZone")   # a time_zone PostgreSQL does not know: UTC, not a broken view
    # Paris, the night DST starts (2026-03-29 02:00 -> 03:00): 22:00 on the 28th to 10:00 on the
    # 30th local = 2 h + 23 h (a 23-hour day) + 10 h
    _session(pg_dsn, 10, 1, 1, "2026-03-28T21:00:00Z", "2026-03-30T08:00:00Z")
    _session(pg_dsn, 11, 2, 2, "2026-03-28T23:00:00Z", "2026-03-29T01:00:00Z")
    # a person at two campuses: each campus's row, the sum is theirs
    _session(pg_dsn, 12, 2, 1, "2026-03-29T10:00:00Z", "2026-03-29T10:30:00Z")
    assert _days(pg_dsn, 1) == {"2026-03-28": 2 * 3600.0, "2026-03-29": 23 * 3600.0, "2026-03-30": 10 * 3600.0}
    rows = q(pg_dsn, "SELECT campus_id, day::text, seconds FROM logtime_daily WHERE user_id = 2 ORDER BY 1, 2")
    assert rows == [(1, "2026-03-29", 1800.0), (2, "2026-03-28", 3600.0), (2, "2026-03-29", 3600.0)]


def test_an_open_session_counts_up_to_now(pg_dsn: str) -> None:
    _campus(pg_dsn, 1, "UTC")
    now = datetime.now(timezone.utc)
    begin = max(now - timedelta(minutes=30), now.replace(hour=0, minute=0, second=0, microsecond=0))
    _session(pg_dsn, 1, 7, 1, begin.isoformat(), None)
    ((day, seconds),) = q(pg_dsn, "SELECT day, seconds FROM logtime_daily WHERE user_id = 7")
    assert day == now.date()
    assert abs(seconds - (now - begin).total_seconds()) < 60
    # a session without its person (a hidden user) is no one's logtime
    q(pg_dsn, "INSERT INTO locations (id, user_id, campus_id, begin_at, end_at) VALUES (2, NULL, 1, now() - "
              "interval '1 hour', now())")
    assert q(pg_dsn, "SELECT count(*) FROM logtime_daily WHERE user_id IS NULL") == [(0,)]


def test_stats_durations_parse_and_days_compare() -> None:
    from netops.pipeline.backlog.logtime import compare, parse_duration, parse_stats

    assert parse_duration("01:02:03.5") == 3723.5
    assert parse_duration("00:00:07.123456") == pytest.approx(7.123456)
    assert parse_duration("25:00:00") == 90000
    with pytest.raises(ValueError):
        parse_duration("1h")
    stats = parse_stats({"2026-03-10": "00:30:00.000001", "2026-03-11": "01:30:00"})
    mine = {date(2026, 3, 10): 1800.0, date(2026, 3, 12): 100.0}
    diff = compare(mine, stats, date(2026, 3, 10), date(2026, 3, 12), 60.0)
    assert diff == [(date(2026, 3, 11), None, 5400.0), (date(2026, 3, 12), 100.0, None)]


def test_campus_ids_setting() -> None:
    from netops.config import ConfigError, load_settings

    assert load_settings(env={}, config_path="").campus_ids == ()
    assert load_settings(env={"NETOPS_CAMPUS_IDS": "29, 20,29"}, config_path="").campus_ids == (29, 20)
    with pytest.raises(ConfigError, match="NETOPS_CAMPUS_IDS"):
        load_settings(env={"NETOPS_CAMPUS_IDS": "paris"}, config_path="")


def test_resource_names_split_between_the_queue_and_the_campus_pass() -> None:
    from netops.pipeline.backlog.campus import split_names

    assert split_names(None) == (None, ["locations", "scale_teams", "events", "exams"])
    assert split_names(["users", "teams_users", "scale_teams"]) == (["users"], ["scale_teams"])
    assert split_names(["locations"]) == ([], ["locations"])


def test_jsonapi_and_invisible_evaluations_map_like_the_rest() -> None:
    from netops import catalog
    from netops.pipeline.backlog.campus import to_row

    spec, teams_users = catalog.BY_NAME["scale_teams"], catalog.BY_NAME["teams_users"]
    team = {"id": 7, "users": [{"id": 3, "login": "a", "leader": True}, "invisible"]}
    plain = {"id": 11, "scale_id": 2, "final_mark": 100, "corrector": {"id": 5, "login": "c"},
             "updated_at": "2026-01-01T00:00:00.000Z", "team": team}
    jsonapi = {"id": "11", "type": "scale-teams", "team": team,
               "attributes": {"scale_id": 2, "final_mark": 100, "corrector": {"id": 5, "login": "c"},
                              "updated_at": "2026-01-01T00:00:00.000Z"}}
    assert to_row(spec, plain) == to_row(spec, jsonapi)
    hidden = to_row(spec, {**plain, "corrector": "invisible"})
    assert hidden[spec.column_names.index("corrector_id")] is None
    members = [to_row(teams_users, r) for r in teams_users.source.rows(plain)]
    assert [m[teams_users.column_names.index("user_id")] for m in members] == [3, None]
