"""Campus-scoped resources (issue 23): locations, scale_teams + teams + teams_users, events, exams,
and logtime_daily. Real PostgreSQL; the simulator over real HTTP; the CLI as a subprocess where the
command is the point.

Two parts: logtime_daily's day arithmetic on sessions written by hand (the cases a person in Seoul
or Sao Paulo checks by the clock on the wall), then `netops backlog detect` + `run` against the
simulator, compared with its expected mirror.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from netops import catalog
from netops.sim import campus as simcampus
from netops.sim.control import SimControl
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


# ------------------------------------------------------------------ against the simulator


CAMPUS_TABLES = [s.name for s in catalog.CAMPUS_SCOPED]


def _zone_campus(sim: Any, zone: str) -> int:
    """The first mirrored campus of the simulator in `zone` that has sessions."""
    with sim.lock:
        mirrored = sim.data.mirrored_campus_ids()
        busy = {r["campus_id"] for r in simcampus.campus(sim.data).locations.values()}
        return min(c for c, row in sim.data.tables["campuses"].items()
                   if row["time_zone"] == zone and c in mirrored and c in busy)


@pytest.fixture
def scope(sim: Any) -> list[int]:
    """Seoul, Sao Paulo and Paris campuses: the box's NETOPS_CAMPUS_IDS, and the expected mirror's."""
    ids = [_zone_campus(sim, "Asia/Seoul"), _zone_campus(sim, "America/Sao_Paulo"), _zone_campus(sim, "Europe/Paris")]
    with sim.lock:   # and a campus with an evaluation in the JSON:API serialisation (1 in 200)
        cd = simcampus.campus(sim.data)
        recent = cd.anchor - 80 * simcampus.DAY
        ids.append(min(r["_campus_id"] for r in cd.scale_teams.values()
                       if r["id"] % simcampus.JSONAPI_EVERY == simcampus.JSONAPI_AT and r["created_at"] > recent
                       and r["_campus_id"] in sim.data.mirrored_campus_ids()))
    ids = list(dict.fromkeys(ids))
    SimControl(sim.url).campus_clock(scope=ids)
    return ids


@pytest.fixture
def env(sim: Any, pg_dsn: str, tmp_path: Path, scope: list[int]) -> dict[str, str]:
    return {"NETOPS_CONFIG": "", "NETOPS_DSN": pg_dsn, "NETOPS_LOG_DIR": str(tmp_path / "logs"),
            "NETOPS_STATE_DIR": str(tmp_path / "state"), "NETOPS_API_URL": sim.url,
            "NETOPS_CLIENT_ID": sim.client_id, "NETOPS_CLIENT_SECRET": sim.client_secret,
            "NETOPS_RATE_PER_SECOND": "1000", "NETOPS_RATE_PER_HOUR": "1000000",
            "BACKLOG_DETECT_SETTLE_SECONDS": "0", "BACKLOG_RETRY_DELAY": "0.05",
            "NETOPS_CAMPUS_IDS": ",".join(map(str, scope))}


def netops(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-c", "from netops.cli import main; main()", *args],
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    if ok:
        assert out.returncode == 0, f"netops {' '.join(args)}: {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


def _select(spec: catalog.TableSpec) -> str:
    """The table's columns as the expected mirror writes them: timestamps `...Z` in UTC, ms."""
    cols = []
    for c in spec.columns:
        ident = f'"{c.name}"'
        cols.append(f"to_char({ident} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
                    if c.kind == "ts" else ident)
    order = ", ".join(spec.pk)
    return f"SELECT {', '.join(cols)} FROM {spec.name} ORDER BY {order}"


def assert_campus_tables_equal_simulator(sim: Any, dsn: str) -> None:
    ctl = SimControl(sim.url)
    for table in CAMPUS_TABLES:
        spec = catalog.BY_NAME[table]
        want = ctl.expected_table(table)
        got = [dict(zip(spec.column_names, r, strict=True)) for r in q(dsn, _select(spec))]
        assert len(got) == want["count"], f"{table}: {len(got)} rows, the simulator expects {want['count']}"
        for g, w in zip(got, want["rows"], strict=True):
            assert g == {k: w[k] for k in spec.column_names}, f"{table}: row differs"


def test_detect_and_run_fill_every_campus_table_as_the_simulator_expects(sim: Any, env: dict[str, str],
                                                                         pg_dsn: str, scope: list[int]) -> None:
    netops(env, "sync", "stable")
    out = netops(env, "backlog", "detect", "--json")
    results = {r["resource"]: r for r in json.loads(out.stdout)}
    assert {f"{r}@{c}" for r in ("locations", "scale_teams", "events", "exams") for c in scope} <= set(results)
    netops(env, "backlog", "run", "--once")
    assert_campus_tables_equal_simulator(sim, pg_dsn)
    for table in CAMPUS_TABLES:
        assert q(pg_dsn, f"SELECT count(*) FROM {table}")[0][0] > 0, f"{table} is empty"
    # the JSON:API variant and the hidden people load like the rest: NULL, never a fake id
    assert q(pg_dsn, "SELECT count(*) FROM scale_teams WHERE id % 200 = 17")[0][0] > 0
    assert q(pg_dsn, "SELECT count(*) FROM scale_teams WHERE corrector_id IS NULL")[0][0] > 0
    assert q(pg_dsn, "SELECT count(*) FROM scale_teams WHERE corrector_id IS NULL AND corrector_login IS NULL "
                     "AND begin_at IS NULL")[0][0] > 0   # the team-embedded variant ("invisible")
    # people netops does not mirror are kept (soft references)
    assert q(pg_dsn, "SELECT count(*) FROM locations l WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = l.user_id)")[0][0] > 0
    # freshness: every campus's window applied up to (about) now
    from netops.db import connect, marks

    conn = connect(pg_dsn)
    with conn, conn.cursor() as cur:
        for res in ("locations", "scale_teams", "events", "exams"):
            applied = marks.applied_until(cur, res, scope)
            assert applied is not None and (datetime.now(timezone.utc) - applied).total_seconds() < 120
        assert marks.applied_until(cur, "locations", [*scope, 999]) is None
    conn.close()
    # a second run finds nothing new and keeps the tables equal
    netops(env, "backlog", "detect")
    assert_campus_tables_equal_simulator(sim, pg_dsn)


def test_logtime_days_are_the_campus_s_local_days_and_verify_agrees(sim: Any, env: dict[str, str], pg_dsn: str,
                                                                   scope: list[int]) -> None:
    netops(env, "sync", "stable")
    netops(env, "backlog", "detect", "--resource", "locations")
    now = datetime.now(timezone.utc)
    first = (now - timedelta(days=89)).date().isoformat()
    last = (now - timedelta(days=1)).date().isoformat()
    checked = 0
    for cid in scope[:2]:   # Seoul, Sao Paulo
        for (uid,) in q(pg_dsn, "SELECT DISTINCT user_id FROM locations WHERE campus_id = %s", (cid,)):
            with sim.lock:
                want = {d: ms / 1000 for d, ms in simcampus.logtime_by_day(sim.data, uid).items() if first <= d <= last}
            got = {d.isoformat(): s for d, s in q(pg_dsn, "SELECT day, sum(seconds) FROM logtime_daily WHERE "
                                                          "user_id = %s AND day BETWEEN %s AND %s GROUP BY day",
                                                  (uid, first, last))}
            assert got.keys() == want.keys(), f"user {uid} at campus {cid}: days differ"
            assert all(abs(got[d] - want[d]) < 0.01 for d in want), f"user {uid}: seconds differ"
            checked += len(want)
    assert checked > 50
    out = netops(env, "sync", "verify-logtime", "--sample", "5", "--json")
    report = json.loads(out.stdout)
    assert report["agree"] and report["users"] == 5 and report["days_compared"] > 0
    # a day the mirror got wrong is reported, and the command fails
    q(pg_dsn, "UPDATE locations SET end_at = end_at + interval '2 hours' WHERE end_at IS NOT NULL "
              "AND begin_at < now() - interval '10 days'")
    bad = netops(env, "sync", "verify-logtime", "--sample", "5", "--json", ok=False)
    assert bad.returncode == 1 and json.loads(bad.stdout)["mismatches"]


def test_a_session_closed_later_is_caught_and_a_vanished_one_is_gone(sim: Any, env: dict[str, str], pg_dsn: str,
                                                                     scope: list[int]) -> None:
    ctl = SimControl(sim.url)
    netops(env, "sync", "stable")
    # the busiest campuses, seen by the API at the instant of the last 2 days when most of their
    # sessions were open (and later closed): the first read sees them open
    hour = 3_600_000
    with sim.lock:
        cd = simcampus.campus(sim.data)
        anchor, locs = cd.anchor, list(cd.locations.values())
    count: dict[int, int] = {}
    for r in locs:
        count[r["campus_id"]] = count.get(r["campus_id"], 0) + 1
    busy = sorted(count, key=lambda c: -count[c])[:6]
    mine = [r for r in locs if r["campus_id"] in busy]

    def closing_at(t: int) -> int:
        return sum(1 for r in mine if r["begin_at"] <= t and r["_end"] is not None and r["_end"] > t)

    then = max((r["begin_at"] + 60_000 for r in mine if r["begin_at"] > anchor - 48 * hour), key=closing_at)
    env = {**env, "NETOPS_CAMPUS_IDS": ",".join(map(str, busy))}
    ctl.campus_clock(clock=then, scope=busy)
    netops(env, "backlog", "detect", "--resource", "locations")
    open_then = {r[0] for r in q(pg_dsn, "SELECT id FROM locations WHERE end_at IS NULL")}
    with sim.lock:
        rows = simcampus.campus(sim.data).locations
        closing = {i for i in open_then if rows[i]["_end"] is not None}
        stuck = {i for i in open_then if rows[i]["_end"] is None}
        vanish = min(closing)
        del rows[vanish]   # the API drops it before it closes
    assert len(closing) >= 2
    # half a day later (every session but the stuck ones has closed), and no lookback at all:
    # only the open-session re-check can see the closes
    ctl.campus_clock(clock=then + 12 * hour)
    env2 = {**env, "NETOPS_LOCATIONS_LOOKBACK_HOURS": "0"}
    netops(env2, "backlog", "detect", "--resource", "locations")
    still_open = {r[0] for r in q(pg_dsn, "SELECT id FROM locations WHERE end_at IS NULL")}
    assert not (closing - {vanish}) & still_open
    assert stuck <= still_open   # never closed by the API: still watched, still open
    assert q(pg_dsn, "SELECT count(*) FROM locations WHERE id = %s", (vanish,)) == [(0,)]
    assert_open_sessions_watched(env, pg_dsn, busy)
    # the sessions begun since the first read (the simulator's clock was moved back for it, so they
    # are older than the mark by our clock) come with the lookback's window
    netops(env, "backlog", "detect", "--resource", "locations")
    assert_campus_tables_equal_simulator_for(sim, pg_dsn, "locations")


def assert_open_sessions_watched(env: dict[str, str], dsn: str, campuses: list[int]) -> None:
    """What status and metrics say of the open sessions equals the mirror: per campus in scope, the
    count still open and the oldest one's age (a campus with none open: 0, no age)."""
    want = {c: (0, None) for c in campuses}
    for c, n, age in q(dsn, "SELECT campus_id, count(*), extract(epoch FROM now() - min(begin_at)) FROM locations "
                            "WHERE end_at IS NULL GROUP BY campus_id"):
        want[c] = (n, float(age))
    assert any(n for n, _ in want.values()), "the test needs sessions still open"
    doc = json.loads(netops(env, "status", "--json", ok=False).stdout)["open_sessions"]
    assert set(doc) == {str(c) for c in campuses}
    for c, (n, age) in want.items():
        assert doc[str(c)]["open"] == n
        assert (doc[str(c)]["oldest_seconds"] is None) if age is None else doc[str(c)]["oldest_seconds"] == \
            pytest.approx(age, abs=30)
    text = netops(env, "status", ok=False).stdout
    block = text[text.index("\nsessions "):].split("\nalerts ")[0]   # the line and its wrapped continuations
    for c, (n, _) in want.items():
        assert f"campus {c}: {n} open" in " ".join(block.split())
    prom = netops(env, "metrics", "export").stdout
    for c, (n, _) in want.items():
        assert f'netops_locations_open_sessions{{campus="{c}"}} {float(n)}' in prom


def assert_campus_tables_equal_simulator_for(sim: Any, dsn: str, table: str) -> None:
    spec = catalog.BY_NAME[table]
    want = SimControl(sim.url).expected_table(table)
    got = [dict(zip(spec.column_names, r, strict=True)) for r in q(dsn, _select(spec))]
    assert got == [{k: w[k] for k in spec.column_names} for w in want["rows"]]


def test_an_erased_user_s_sessions_and_evaluations_are_gone(sim: Any, env: dict[str, str], pg_dsn: str,
                                                            scope: list[int]) -> None:
    netops(env, "sync", "stable")
    netops(env, "backlog", "detect")
    netops(env, "backlog", "run", "--once")
    # a mirrored person with sessions and an evaluation they were evaluated in, both visible
    (uid,) = q(pg_dsn, "SELECT l.user_id FROM locations l JOIN users u ON u.id = l.user_id JOIN teams_users t "
                       "ON t.user_id = l.user_id JOIN scale_teams s ON s.team_id = t.team_id LIMIT 1")[0]
    past = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    sim.modify("users", uid, {"data_erasure_date": past})
    netops(env, "backlog", "detect")
    netops(env, "backlog", "run", "--once")
    assert q(pg_dsn, "SELECT count(*) FROM users WHERE id = %s", (uid,)) == [(0,)]
    assert q(pg_dsn, "SELECT count(*) FROM locations WHERE user_id = %s", (uid,)) == [(0,)]
    assert q(pg_dsn, "SELECT count(*) FROM teams_users WHERE user_id = %s", (uid,)) == [(0,)]
    assert q(pg_dsn, "SELECT count(*) FROM scale_teams WHERE corrector_id = %s", (uid,)) == [(0,)]
    assert_campus_tables_equal_simulator(sim, pg_dsn)
    # the evaluations read again (marks dropped: the whole horizon again) do not bring them back,
    # though they only name the person by id: netops.erased_people remembers them
    q(pg_dsn, "DELETE FROM netops.backlog_marks WHERE resource LIKE '%@%'")
    netops(env, "backlog", "detect")
    assert q(pg_dsn, "SELECT count(*) FROM locations WHERE user_id = %s", (uid,)) == [(0,)]
    assert q(pg_dsn, "SELECT count(*) FROM teams_users WHERE user_id = %s", (uid,)) == [(0,)]
    assert q(pg_dsn, "SELECT count(*) FROM netops.erased_people WHERE user_id = %s", (uid,)) == [(1,)]
    assert_campus_tables_equal_simulator(sim, pg_dsn)


def test_a_failing_campus_keeps_its_mark_and_the_others_still_run(sim: Any, env: dict[str, str], pg_dsn: str,
                                                                  scope: list[int]) -> None:
    netops(env, "sync", "stable")
    bad = {**env, "NETOPS_CAMPUS_IDS": f"{scope[0]},9999"}   # 9999: no such campus (404)
    out = netops(bad, "backlog", "detect", "--resource", "locations", ok=False)
    assert out.returncode == 1
    assert re.search(r"locations@9999\s+FAILED \(mark unchanged\)", out.stdout), out.stdout
    assert re.search(rf"locations@{scope[0]}\s+\d+ calls .* written", out.stdout), out.stdout
    marks = dict(q(pg_dsn, "SELECT resource, high_water IS NOT NULL FROM netops.backlog_marks"))
    assert marks.get(f"locations@{scope[0]}") is True and "locations@9999" not in marks
    # no campus in scope: nothing read, no call spent on them, and the queued resources still run
    none = {**env, "NETOPS_CAMPUS_IDS": ""}
    out = netops(none, "backlog", "detect", "--json")
    assert not [r for r in json.loads(out.stdout) if "@" in r["resource"]]


def test_a_row_that_cannot_be_mapped_is_skipped_not_fatal(pg_dsn: str) -> None:
    from netops.db import connect
    from netops.pipeline.backlog.campus import BY_NAME, CampusResult, apply_page

    res, result = BY_NAME["scale_teams"], CampusResult("scale_teams@1", None)
    good = {"id": 1, "updated_at": "2026-01-01T00:00:00.000Z", "corrector": "invisible",
            "team": {"id": 7, "users": [{"id": 3, "login": "a"}], "final_mark": 100}}
    bad_team = {"id": 2, "team": {"id": 8, "final_mark": "not a mark"}}
    conn = connect(pg_dsn)
    with conn, conn.cursor() as cur:
        apply_page(cur, res, 1, [good, bad_team, {"id": "x"}], result)
    conn.close()
    assert result.invalid >= 2
    # the evaluation whose team could not be mapped waits (skipped, counted) instead of failing
    # the page on its team's foreign key; the other rows load, the hidden corrector as NULL
    assert q(pg_dsn, "SELECT id, team_id, campus_id, corrector_id FROM scale_teams ORDER BY id") == [(1, 7, 1, None)]
    assert q(pg_dsn, "SELECT team_id, position, user_id FROM teams_users") == [(7, 0, 3)]
