"""Phase 07 derived from the achievements' `campus` name lists (issue 11), on the simulator over
real HTTP and a real PostgreSQL: zero calls of its own, exact-name matching, skipped names
counted, a shared campus name refused, and `netops sync verify-links` against the per-campus
listings."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import psycopg2
import pytest

from netops.config import Settings
from netops.errors import SyncError
from netops.pipeline.stable.links import verify_links
from netops.pipeline.stable.sync import run_stable_sync


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], sim: Any) -> Settings:
    return settings_factory(NETOPS_API_URL=sim.url, NETOPS_CLIENT_ID=sim.client_id,
                            NETOPS_CLIENT_SECRET=sim.client_secret, NETOPS_RATE_PER_SECOND=500,
                            NETOPS_RATE_PER_HOUR=100000)


def links(dsn: str) -> list[tuple[int, int]]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT campus_id, achievement_id FROM campus_achievements ORDER BY 1, 2")
        out = [tuple(r) for r in cur.fetchall()]
    conn.close()
    return out  # type: ignore[return-value]


def unmatched_pairs(sim: Any) -> tuple[int, set[str]]:
    """(achievement, name) pairs naming no mirrored campus, and those names, from the API itself."""
    token = sim.token()
    names: list[list[str]] = []
    page = 1
    while True:
        r = sim.get("/v2/achievements", token=token, **{"page[size]": 100, "page[number]": page})
        names += [a["campus"] for a in r.json()]
        if page * 100 >= int(r.headers["X-Total"]):
            break
        page += 1
    campuses = sim.get("/v2/campus", token=token, **{"filter[active]": "true", "filter[public]": "true",
                                                      "page[size]": 100}).json()
    mirrored = {c["name"] for c in campuses}
    missing = [n for lst in names for n in lst if n not in mirrored]
    return len(missing), set(missing)


def per_campus_links(sim: Any, campus_ids: list[int]) -> list[tuple[int, int]]:
    token = sim.token()
    out = []
    for cid in campus_ids:
        page = 1
        while True:
            r = sim.get(f"/v2/campus/{cid}/achievements", token=token, **{"page[size]": 100, "page[number]": page})
            out += [(cid, a["id"]) for a in r.json()]
            if page * 100 >= int(r.headers["X-Total"]):
                break
            page += 1
    return sorted(out)


def test_derived_links_equal_the_per_campus_listings_at_zero_calls(settings: Settings, sim: Any) -> None:
    report = run_stable_sync(settings)
    p07 = next(p for p in report.phases if p.table == "campus_achievements")
    assert p07.api_calls == 0 and p07.min_calls == 0
    got = links(settings.dsn)
    assert len(got) == sim.expected()["campus_achievements"] == 5495
    campus_ids = sorted({c for c, _ in got} | {k[0] for k in sim.expected_table("campuses", values=False)["keys"]})
    assert got == per_campus_links(sim, campus_ids)


def test_unmatched_names_are_skipped_and_counted(settings: Settings, sim: Any) -> None:
    n_missing, missing = unmatched_pairs(sim)
    # the real payloads' traits: names of inactive/non-public campuses, one with a trailing space
    assert n_missing > 0 and "Hack High School - Fremont " in missing and len(missing) == 20
    report = run_stable_sync(settings)
    p07 = next(p for p in report.phases if p.table == "campus_achievements")
    assert p07.skipped == n_missing
    log = (settings.log_path / "nightly_stable_tables.log").read_text()
    assert f"{n_missing} skipped: {n_missing} naming 20 campus name(s) not mirrored" in log
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT rows_skipped FROM netops.sync_runs WHERE phase = 'campus_achievements'")
        assert cur.fetchone()[0] == n_missing
    conn.close()


def test_a_name_is_matched_exactly(settings: Settings, sim: Any) -> None:
    """'Paris ' (trailing space) or 'paris' is not Paris: exact match, or links land on the wrong campus."""
    run_stable_sync(settings)
    paris = next(c for c in sim.expected_table("campuses")["rows"] if c["name"] == "Paris")["id"]
    ach = [a for c, a in links(settings.dsn) if c == paris][:2]
    for aid, spelling in zip(ach, ("Paris ", "paris"), strict=True):
        names = sim.data.achievement_campus_names()[aid]
        sim.modify("achievements", aid, {"campus": [spelling if n == "Paris" else n for n in names]})
    report = run_stable_sync(settings, ["campus_achievements"])
    got = [a for c, a in links(settings.dsn) if c == paris]
    assert ach[0] not in got and ach[1] not in got
    assert report.phases[-1].deleted == 2


def test_a_shared_campus_name_fails_the_phase_naming_both_and_keeps_the_table(
        settings: Settings, sim: Any) -> None:
    run_stable_sync(settings)
    before = links(settings.dsn)
    rows = sim.expected_table("campuses")["rows"]
    first, second = rows[0], rows[1]
    sim.modify("campuses", second["id"], {"name": first["name"]})
    with pytest.raises(SyncError) as exc:
        run_stable_sync(settings)
    msg = str(exc.value.message)
    assert "campus_achievements" in msg and repr(first["name"]) in msg
    assert f"campuses {first['id']}, {second['id']}" in msg and "\n" not in msg
    assert links(settings.dsn) == before
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM netops.sync_runs WHERE phase = 'campus_achievements' "
                    "ORDER BY started_at DESC LIMIT 1")
        assert cur.fetchone()[0] == "failed"
    conn.close()


def _env(settings: Settings, sim: Any) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))},
            "NETOPS_CONFIG": "", "NETOPS_DSN": settings.dsn, "NETOPS_LOG_DIR": str(settings.log_path),
            "NETOPS_STATE_DIR": str(settings.state_path), "NETOPS_API_URL": sim.url,
            "NETOPS_CLIENT_ID": sim.client_id, "NETOPS_CLIENT_SECRET": sim.client_secret,
            "NETOPS_RATE_PER_SECOND": "500"}


def test_shared_name_via_the_cli_is_one_line(settings: Settings, sim: Any) -> None:
    run_stable_sync(settings)
    rows = sim.expected_table("campuses")["rows"]
    sim.modify("campuses", rows[3]["id"], {"name": rows[2]["name"]})
    out = subprocess.run([sys.executable, "-m", "netops", "sync", "stable"], env=_env(settings, sim),
                         capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert out.returncode == 1
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and repr(rows[2]["name"]) in lines[0] and "campus_achievements" in lines[0]


def test_verify_links_agrees_on_the_default_data(settings: Settings, sim: Any) -> None:
    run_stable_sync(settings)
    sim.reset_stats()
    check = verify_links(settings)
    assert check.agree and check.derived == check.listed == 5495 and check.campuses == 54
    per_campus = {}
    for c, _ in links(settings.dsn):
        per_campus[c] = per_campus.get(c, 0) + 1
    pages = sum(max(1, math.ceil(n / 100)) for n in per_campus.values())
    calls = {ep: n for ep, n in sim.stats()["by_endpoint"].items() if ep.startswith("/v2")}
    assert calls == {"/v2/achievements": 11, "/v2/campus/:id/achievements": pages}
    assert check.calls == 11 + pages


def test_verify_links_reports_a_planted_disagreement(settings: Settings, sim: Any) -> None:
    run_stable_sync(settings)
    by_id = {c["id"]: c["name"] for c in sim.expected_table("campuses")["rows"]}
    linked = links(settings.dsn)
    cid, aid = linked[0]
    # achievement `aid` drops campus `cid` from its campus list, and achievement `other` names a
    # campus whose per-campus listing does not hold it: the two sources now disagree on two links
    names = [n for n in sim.data.achievement_campus_names()[aid] if n != by_id[cid]]
    sim.modify("achievements", aid, {"campus": names})
    other = next(a for c, a in linked if c != cid and (cid, a) not in set(linked))
    sim.modify("achievements", other, {"campus": [*sim.data.achievement_campus_names()[other], by_id[cid]]})
    check = verify_links(settings)
    assert not check.agree
    assert check.only_listed == [(cid, by_id[cid], aid)]
    assert check.only_derived == [(cid, by_id[cid], other)]

    out = subprocess.run([sys.executable, "-m", "netops", "sync", "verify-links", "--json"],
                         env=_env(settings, sim), capture_output=True, text=True, timeout=300,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    assert doc["agree"] is False
    assert doc["only_in_per_campus_listings"] == [{"campus_id": cid, "campus": by_id[cid], "achievement_id": aid}]
    assert doc["only_in_achievements_campus_lists"] == [
        {"campus_id": cid, "campus": by_id[cid], "achievement_id": other}]
    text = subprocess.run([sys.executable, "-m", "netops", "sync", "verify-links"], env=_env(settings, sim),
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert text.returncode == 1 and "DISAGREE" in text.stdout and f"achievement {aid}" in text.stdout
