"""Every user field the API gives is kept (migration 005), and a user past data_erasure_date
leaves the mirror (issue 11): real PostgreSQL, the simulator over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg2
import pytest

from netops.config import Settings
from netops.db.quality import run_checks
from netops.mapping import parse_ts
from netops.pipeline.backlog.detect import detect
from netops.pipeline.backlog.reconcile import reconcile
from netops.pipeline.backlog.worker import run_backlog
from netops.pipeline.stable.sync import run_stable_sync

FIELDS = ("usual_first_name", "image", "anonymize_date", "data_erasure_date")


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], sim: Any) -> Settings:
    s = settings_factory(NETOPS_API_URL=sim.url, NETOPS_CLIENT_ID=sim.client_id,
                         NETOPS_CLIENT_SECRET=sim.client_secret, NETOPS_RATE_PER_SECOND=500,
                         NETOPS_RATE_PER_HOUR=1000000, BACKLOG_DETECT_SETTLE_SECONDS=0,
                         BACKLOG_RETRY_DELAY=0.05)
    run_stable_sync(s)
    return s


def api_users(sim: Any) -> dict[int, dict[str, Any]]:
    token = sim.token()
    out: dict[int, dict[str, Any]] = {}
    page = 1
    while True:
        r = sim.get("/v2/cursus/21/users", token=token, **{"page[size]": 100, "page[number]": page})
        out.update({u["id"]: u for u in r.json()})
        if page * 100 >= int(r.headers["X-Total"]):
            return out
        page += 1


def mirror_users(dsn: str) -> dict[int, tuple[Any, ...]]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id, {', '.join(FIELDS)} FROM users")
        out = {r[0]: r[1:] for r in cur.fetchall()}
    conn.close()
    return out


def same_instant(db: datetime | None, api: str | None) -> bool:
    return (db is None and api is None) or (db is not None and api is not None and db == parse_ts(api))


def assert_fields_equal(dsn: str, sim: Any) -> None:
    api = api_users(sim)
    got = mirror_users(dsn)
    assert set(got) == set(api)
    for uid, (usual, image, anon, erase) in got.items():
        u = api[uid]
        assert usual == u["usual_first_name"], uid
        assert image == u["image"], uid   # jsonb: link and the four sizes, nulls kept
        assert same_instant(anon, u["anonymize_date"]) and same_instant(erase, u["data_erasure_date"]), uid
    assert any(img["link"] is None for _, img, _, _ in got.values())          # ~3 % without a picture
    assert any(usual != api[uid]["first_name"] for uid, (usual, *_rest) in got.items())


def test_detect_and_worker_keep_every_user_field(settings: Settings, sim: Any) -> None:
    detect(settings, settings.dsn)
    run_backlog(settings, settings.dsn)
    assert_fields_equal(settings.dsn, sim)


def test_reconcile_fills_the_new_fields(settings: Settings, sim: Any) -> None:
    """A mirror loaded before migration 005 has the columns NULL: the reconcile fills them."""
    detect(settings, settings.dsn)
    run_backlog(settings, settings.dsn)
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute(f"UPDATE users SET {', '.join(f'{f} = NULL' for f in FIELDS)}")
    conn.close()
    results = reconcile(settings, settings.dsn, ["users"])
    assert results[0].updated == len(api_users(sim))
    assert_fields_equal(settings.dsn, sim)


def test_a_user_past_data_erasure_date_is_reported_then_deleted_and_never_reloaded(
        settings: Settings, sim: Any) -> None:
    detect(settings, settings.dsn)
    run_backlog(settings, settings.dsn)
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT user_id FROM project_users GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")
        uid = cur.fetchone()[0]
        # time passes: the date the school set for this user is now behind us (API and mirror)
        cur.execute("UPDATE users SET data_erasure_date = now() - interval '1 day' WHERE id = %s", (uid,))
    conn.close()
    sim.modify("users", uid, {"data_erasure_date": "2025-01-01T00:00:00.000-03:00"}, touch=False)

    doc = run_checks(psycopg2.connect(settings.dsn), store=False)
    found = [f for f in doc["findings"] if f["kind"] == "erasure"]
    assert not doc["ok"] and found and found[0]["count"] == 1 and found[0]["sample"] == [uid]

    results = {r.resource: r for r in detect(settings, settings.dsn)}
    assert results["users"].erased == 1
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT (SELECT count(*) FROM users WHERE id = %s), "
                    "(SELECT count(*) FROM project_users WHERE user_id = %s)", (uid, uid))
        assert cur.fetchone() == (0, 0)   # the user and its links (cascade)
    conn.close()
    assert [f for f in run_checks(psycopg2.connect(settings.dsn), store=False)["findings"]
            if f["kind"] == "erasure"] == []

    # the API still serves the user and an edit moves it: detect queues it, the worker erases
    sim.modify("users", uid, {"wallet": 1}, touch=True)
    detect(settings, settings.dsn)
    run_backlog(settings, settings.dsn)
    reconcile(settings, settings.dsn, ["users"])
    assert uid not in mirror_users(settings.dsn)
    with psycopg2.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT outcome FROM netops.backlog_items WHERE resource = 'users' AND entity_id = %s "
                    "ORDER BY id DESC LIMIT 1", (uid,))
        assert cur.fetchone()[0] == "erased"
    conn.close()
