"""The backlog queue and the worker's load path against a real PostgreSQL (no API needed: every item
here carries its payload, as the detector queues them)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg2
import pytest

from netops.config import Settings
from netops.db import queue
from netops.db.queue import NewItem
from netops.pipeline.backlog.worker import run_backlog
from tests.fixtures.pg import query


def _conn(dsn: str) -> Any:
    c = psycopg2.connect(dsn)
    return c


_exec = query


def _parents(dsn: str) -> None:
    _exec(dsn, "INSERT INTO projects (id, name) VALUES (1, 'libft'), (2, 'push_swap')")
    _exec(dsn, "INSERT INTO achievements (id, name) VALUES (10, 'a'), (11, 'b')")
    _exec(dsn, "INSERT INTO coalitions (id, name) VALUES (20, 'c')")


def _user(uid: int, updated: str = "2026-01-01T00:00:00.000Z", **kw: Any) -> dict[str, Any]:
    return {"id": uid, "login": f"u{uid}", "active?": True, "wallet": 1, "updated_at": updated, **kw}


def _enqueue(dsn: str, items: list[NewItem]) -> int:
    c = _conn(dsn)
    try:
        with c, c.cursor() as cur:
            return queue.enqueue(cur, items)
    finally:
        c.close()


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(BACKLOG_RETRY_DELAY="0", BACKLOG_MAX_RETRIES="3", BACKLOG_VISIBILITY_TIMEOUT="1")


def test_duplicate_work_collapses_and_newest_payload_wins(pg_dsn: str) -> None:
    _enqueue(pg_dsn, [NewItem("users", 1, payload=_user(1, "2026-01-02T00:00:00Z", wallet=2),
                              source_updated_at="2026-01-02T00:00:00Z", fetch_cost=0.01)])
    # an older payload arriving later (overlapping window) must not win
    _enqueue(pg_dsn, [NewItem("users", 1, payload=_user(1, "2026-01-01T00:00:00Z", wallet=1),
                              source_updated_at="2026-01-01T00:00:00Z", fetch_cost=0.01)])
    rows = _exec(pg_dsn, "SELECT payload->>'wallet', version, state, fetch_cost FROM netops.backlog_items")
    assert len(rows) == 1
    assert rows[0][0] == "2" and rows[0][1] == 2 and rows[0][2] == "pending"
    assert rows[0][3] == pytest.approx(0.02)
    # a newer one does
    _enqueue(pg_dsn, [NewItem("users", 1, payload=_user(1, "2026-01-03T00:00:00Z", wallet=3),
                              source_updated_at="2026-01-03T00:00:00Z")])
    assert _exec(pg_dsn, "SELECT payload->>'wallet' FROM netops.backlog_items") == [("3",)]


def test_claims_are_disjoint_across_concurrent_workers(pg_dsn: str) -> None:
    _enqueue(pg_dsn, [NewItem("users", i, payload=_user(i)) for i in range(1, 301)])
    got: dict[str, list[int]] = {}
    barrier = threading.Barrier(3)

    def claimer(name: str) -> None:
        c = _conn(pg_dsn)
        mine: list[int] = []
        barrier.wait()
        while True:
            with c, c.cursor() as cur:
                items = queue.claim(cur, name, 7, 600)
            if not items:
                break
            mine.extend(i.id for i in items)
        got[name] = mine
        c.close()

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for ids in got.values() for i in ids]
    assert len(everything) == 300 and len(set(everything)) == 300
    assert _exec(pg_dsn, "SELECT count(*) FROM netops.backlog_items WHERE state = 'processing' AND attempts = 1") \
        == [(300,)]


def test_visibility_timeout_hands_a_dead_workers_items_to_another(pg_dsn: str) -> None:
    _enqueue(pg_dsn, [NewItem("users", 5, payload=_user(5))])
    c = _conn(pg_dsn)
    with c, c.cursor() as cur:
        assert len(queue.claim(cur, "dead", 10, 600)) == 1
        assert queue.claim(cur, "other", 10, 600) == []       # still within the timeout
        cur.execute("UPDATE netops.backlog_items SET started_at = now() - interval '11 minutes'")
        again = queue.claim(cur, "other", 10, 600)
    c.close()
    assert [(i.entity_id, i.attempts) for i in again] == [(5, 2)]


def test_worker_loads_payloads_parents_first_in_one_batch_and_marks_done(pg_dsn: str, settings: Settings) -> None:
    _parents(pg_dsn)
    # children queued before their user: the batch must still load the user first
    _enqueue(pg_dsn, [
        NewItem("projects_users", 100, payload={"id": 100, "project": {"id": 1}, "user": {"id": 7},
                                                "cursus_ids": [21], "status": "finished", "final_mark": 100,
                                                "validated?": True, "updated_at": "2026-01-01T00:00:00Z"}),
        NewItem("achievements_users", 200, payload={"id": 200, "achievement_id": 10, "user_id": 7}),
        NewItem("coalitions_users", 300, payload={"id": 300, "coalition_id": 20, "user_id": 7, "score": 5}),
        NewItem("users", 7, payload=_user(7)),
    ])
    s = run_backlog(settings, pg_dsn)
    assert s.items == 4 and s.inserted == 4 and s.failed == 0
    assert s.worker_calls == 0  # payloads: no API call at all
    assert _exec(pg_dsn, "SELECT id, project_id, user_id, final_mark, validated FROM project_users") == \
        [(100, 1, 7, 100, True)]
    assert _exec(pg_dsn, "SELECT state, count(*) FROM netops.backlog_items GROUP BY 1") == [("done", 4)]
    log = (settings.log_path / "backlog_worker.log").read_text()
    assert "Starting backlog sync, queue depth: 4" in log
    assert "Fetched batch 1 (4 items), API calls:" in log
    assert "Loaded batch 1 → 4 rows inserted" in log
    assert "Backlog complete, total: 4 items in" in log


def test_stale_payload_never_moves_a_row_backwards(pg_dsn: str, settings: Settings) -> None:
    _exec(pg_dsn, "INSERT INTO users (id, login, wallet, updated_at) VALUES (8, 'new', 50, '2026-02-01Z')")
    _enqueue(pg_dsn, [NewItem("users", 8, payload=_user(8, "2026-01-01T00:00:00Z", wallet=1))])
    s = run_backlog(settings, pg_dsn)
    assert s.items == 1 and s.updated == 0
    assert _exec(pg_dsn, "SELECT login, wallet FROM users") == [("new", 50)]
    assert _exec(pg_dsn, "SELECT outcome FROM netops.backlog_items") == [("stale",)]


def test_missing_stable_parent_is_retried_then_failed_with_the_error_kept(pg_dsn: str, settings: Settings) -> None:
    _exec(pg_dsn, "INSERT INTO users (id, login) VALUES (9, 'x')")
    _enqueue(pg_dsn, [NewItem("coalitions_users", 301, payload={"id": 301, "coalition_id": 999, "user_id": 9})])
    s = run_backlog(settings, pg_dsn)
    assert s.failed == 1 and s.items == 0
    state, attempts, err = _exec(pg_dsn, "SELECT state, attempts, last_error FROM netops.backlog_items")[0]
    assert state == "failed" and attempts == 3
    assert "parent coalitions 999 is not mirrored" in err
    assert _exec(pg_dsn, "SELECT count(*) FROM coalitions_users") == [(0,)]  # FK never broken


def test_invalid_payload_fails_its_item_only(pg_dsn: str, settings: Settings) -> None:
    _enqueue(pg_dsn, [NewItem("users", 11, payload=_user(11)),
                      NewItem("users", 12, payload={"id": 12, "wallet": "a lot"})])
    s = run_backlog(settings, pg_dsn)
    assert s.items == 1 and s.failed == 1
    assert _exec(pg_dsn, "SELECT id FROM users") == [(11,)]
    err = _exec(pg_dsn, "SELECT last_error FROM netops.backlog_items WHERE entity_id = 12")[0][0]
    assert "wallet" in err and "invalid payload" in err


def test_new_work_arriving_while_processing_requeues_instead_of_finishing(pg_dsn: str, settings: Settings) -> None:
    _enqueue(pg_dsn, [NewItem("users", 13, payload=_user(13, "2026-01-01T00:00:00Z", wallet=1),
                              source_updated_at="2026-01-01T00:00:00Z")])
    c = _conn(pg_dsn)
    with c, c.cursor() as cur:
        items = queue.claim(cur, "w1", 10, 600)
    # the detector sees a newer version while w1 holds the item
    _enqueue(pg_dsn, [NewItem("users", 13, payload=_user(13, "2026-01-05T00:00:00Z", wallet=5),
                              source_updated_at="2026-01-05T00:00:00Z")])
    for it in items:
        it.outcome = "inserted"
    with c, c.cursor() as cur:
        counts = queue.finish(cur, "w1", items, 3, 0)
    c.close()
    assert counts["requeued"] == 1
    # back to pending with the newer payload, and the requeue is not counted as an attempt
    assert _exec(pg_dsn, "SELECT state, payload->>'wallet', attempts FROM netops.backlog_items") == \
        [("pending", "5", 0)]
    assert counts["done_cost"] == 0.0     # not done yet: its detector calls are not counted yet


def test_a_requeued_items_detector_calls_count_once_when_it_is_done(pg_dsn: str) -> None:
    _enqueue(pg_dsn, [NewItem("users", 14, payload=_user(14, "2026-01-01T00:00:00Z"),
                              source_updated_at="2026-01-01T00:00:00Z", fetch_cost=0.25)])
    c = _conn(pg_dsn)
    with c, c.cursor() as cur:
        first = queue.claim(cur, "w1", 10, 600)
    _enqueue(pg_dsn, [NewItem("users", 14, payload=_user(14, "2026-01-05T00:00:00Z"),
                              source_updated_at="2026-01-05T00:00:00Z", fetch_cost=0.5)])   # merged: 0.75
    for it in first:
        it.outcome = "inserted"
    with c, c.cursor() as cur:
        requeued = queue.finish(cur, "w1", first, 3, 0)
        second = queue.claim(cur, "w1", 10, 600)
    for it in second:
        it.outcome = "updated"
    with c, c.cursor() as cur:
        done = queue.finish(cur, "w1", second, 3, 0)
    c.close()
    assert (requeued["requeued"], requeued["done_cost"]) == (1, 0.0)
    assert (done["done"], done["done_cost"]) == (1, 0.75)   # 0.25 + 0.5, once — not 0.25 + 0.75


def test_status_retry_and_purge(pg_dsn: str, settings: Settings) -> None:
    _exec(pg_dsn, "INSERT INTO users (id, login) VALUES (9, 'x')")
    _enqueue(pg_dsn, [NewItem("coalitions_users", 302, payload={"id": 302, "coalition_id": 998, "user_id": 9}),
                      NewItem("users", 14, payload=_user(14))])
    run_backlog(settings, pg_dsn)
    c = _conn(pg_dsn)
    with c, c.cursor() as cur:
        st = queue.status(cur, 1200)
    assert st["failed"] == 1 and st["done_today"] == 1 and st["pending"] == 0
    assert st["success_rate_pct"] == 50.0
    assert st["failures"][0]["entity_id"] == 302 and st["failures"][0]["attempts"] == 3
    assert "coalitions 998" in st["failures"][0]["error"]
    assert st["processing_seconds"]["p95"] is not None and st["api_budget_per_hour"] == 1200
    with c, c.cursor() as cur:
        out = queue.retry(cur, failed=True)
        assert out["failed_requeued"] == 1
        cur.execute("SELECT state, attempts, payload FROM netops.backlog_items WHERE entity_id = 302")
        assert cur.fetchone() == ("pending", 0, None)  # payload dropped: the retry fetches it fresh
        assert queue.purge(cur, 7 * 86400, done=True) == 0   # too young
        cur.execute("UPDATE netops.backlog_items SET finished_at = now() - interval '8 days' WHERE state = 'done'")
        assert queue.purge(cur, 7 * 86400, done=True) == 1
        cur.execute("SELECT count(*) FROM netops.backlog_items")
        assert cur.fetchone() == (1,)
    c.close()


def test_at_most_one_live_item_per_entity_is_enforced_by_the_database(pg_dsn: str) -> None:
    _enqueue(pg_dsn, [NewItem("users", 15, payload=_user(15))])
    with pytest.raises(psycopg2.errors.UniqueViolation):
        _exec(pg_dsn, "INSERT INTO netops.backlog_items (resource, entity_id) VALUES ('users', 15)")


def test_a_row_the_database_refuses_fails_alone_and_the_rest_of_its_batch_loads(pg_dsn: str,
                                                                              settings: Settings) -> None:
    _enqueue(pg_dsn, [NewItem("users", i, payload=_user(i)) for i in range(20, 30)]
             + [NewItem("users", 30, payload=_user(30, wallet=99_999_999_999))])   # > integer
    s = run_backlog(settings, pg_dsn)
    assert s.items == 10 and s.failed == 1
    assert _exec(pg_dsn, "SELECT count(*) FROM users") == [(10,)]
    state, err = _exec(pg_dsn, "SELECT state, last_error FROM netops.backlog_items WHERE entity_id = 30")[0]
    assert state == "failed" and "out of range" in err
    log = (settings.log_path / "backlog_worker.log").read_text()
    assert "loading its items one by one" in log


def test_a_poison_item_that_keeps_killing_workers_is_failed_not_retried_forever(pg_dsn: str,
                                                                               settings: Settings) -> None:
    _enqueue(pg_dsn, [NewItem("users", 31, payload=_user(31))])
    # three workers claimed it and died (attempts 3, started long ago)
    _exec(pg_dsn, "UPDATE netops.backlog_items SET state = 'processing', attempts = 3, worker = 'dead:1', "
                  "started_at = now() - interval '1 hour'")
    s = run_backlog(settings, pg_dsn)
    assert s.failed == 1 and s.items == 0
    state, attempts, err = _exec(pg_dsn, "SELECT state, attempts, last_error FROM netops.backlog_items")[0]
    assert state == "failed" and attempts == 4 and "abandoned: 3 worker(s)" in err
    assert _exec(pg_dsn, "SELECT count(*) FROM users") == [(0,)]


def test_the_cron_run_waits_for_the_first_stable_sync_with_one_line(pg_dsn: str, settings: Settings) -> None:
    # an empty mirror: every backlog row would fail its foreign keys, one warning each
    _enqueue(pg_dsn, [NewItem("projects_users", 100 + i, payload={
        "id": 100 + i, "project": {"id": 1}, "user": {"id": 7}, "cursus_ids": [21], "status": "finished",
        "final_mark": 100, "validated?": True, "updated_at": "2026-01-01T00:00:00Z"}) for i in range(5)])
    s = run_backlog(settings, pg_dsn, wait_for_stable=True)
    assert s.items == 0 and s.failed == 0
    lines = (settings.log_path / "backlog_worker.log").read_text().splitlines()
    assert len(lines) == 1 and "Waiting for the first stable sync" in lines[0] and "5 queued items" in lines[0]
    assert _exec(pg_dsn, "SELECT state, count(*) FROM netops.backlog_items GROUP BY 1") == [("pending", 5)]
    # once the stable tables have rows, the same run works the queue
    _parents(pg_dsn)
    _enqueue(pg_dsn, [NewItem("users", 7, payload=_user(7))])
    s = run_backlog(settings, pg_dsn, wait_for_stable=True)
    assert s.items == 6 and s.failed == 0


def _wakes(conn: Any) -> int:
    conn.poll()
    n = len(conn.notifies)
    conn.notifies.clear()
    return n


def test_queueing_due_work_notifies_waiting_workers_and_claiming_does_not(pg_dsn: str) -> None:
    """Migration 013: enqueue and release wake LISTENers; claim and finish (no new due work) do not."""
    listener = psycopg2.connect(pg_dsn)
    listener.autocommit = True
    queue.listen(listener)
    try:
        assert _wakes(listener) == 0
        _enqueue(pg_dsn, [NewItem("users", i, payload=_user(i)) for i in range(1, 4)])
        assert queue.wait_for_wake(listener, 5.0)
        c = _conn(pg_dsn)
        with c, c.cursor() as cur:
            items = queue.claim(cur, "w", 10, 600)
        assert len(items) == 3
        with c, c.cursor() as cur:
            cur.execute("UPDATE netops.backlog_items SET state = 'done' WHERE id = %s", (items[0].id,))
        assert not queue.wait_for_wake(listener, 0.3)      # claiming / finishing queues nothing new
        with c, c.cursor() as cur:
            queue.release(cur, "w", [it.id for it in items[1:]])
        assert queue.wait_for_wake(listener, 5.0)          # released items are due again
        with c, c.cursor() as cur:                          # due later: the poll finds it, no wake now
            cur.execute("UPDATE netops.backlog_items SET available_at = now() + interval '1 hour' "
                        "WHERE state = 'pending'")
        assert not queue.wait_for_wake(listener, 0.3)
        c.close()
    finally:
        listener.close()


@pytest.mark.timeout(60)
def test_a_looping_worker_loads_new_work_at_once_not_at_its_next_poll(
        pg_dsn: str, settings_factory: Callable[..., Settings]) -> None:
    """A `run --loop` worker waiting on an empty queue with a 60 s poll interval loads an item
    queued while it waits within seconds: the wake (migration 013), not the poll, ends its wait."""
    from netops.pipeline.backlog.worker import Worker

    _parents(pg_dsn)
    worker = Worker(settings_factory(BACKLOG_POLL_INTERVAL="60"), pg_dsn)
    t = threading.Thread(target=worker.run, kwargs={"loop": True}, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while worker._wake_conn is None and worker._can_listen and time.monotonic() < deadline:   # it is waiting, LISTENing
            time.sleep(0.05)
        assert worker._wake_conn is not None, "the worker never started waiting on its LISTEN connection"
        queued_at = time.monotonic()
        _enqueue(pg_dsn, [NewItem("users", 42, payload=_user(42))])
        while time.monotonic() - queued_at < 15:
            if _exec(pg_dsn, "SELECT state FROM netops.backlog_items WHERE entity_id = 42") == [("done",)]:
                break
            time.sleep(0.05)
        took = time.monotonic() - queued_at
        assert _exec(pg_dsn, "SELECT login FROM users WHERE id = 42") == [("u42",)], f"not loaded after {took:.1f}s"
        assert took < 15
    finally:
        worker.request_stop()
        t.join(timeout=10)
        worker.close()
    assert not t.is_alive()


def _due(dsn: str, resource: str, entity: int) -> bool:
    return _exec(dsn, "SELECT available_at <= now() FROM netops.backlog_items WHERE resource = %s AND entity_id = %s",
                 (resource, entity))[0][0]


def test_a_held_row_wakes_when_its_parent_lands_and_its_parent_fetch_waits_for_detect(
        pg_dsn: str, settings: Settings) -> None:
    """A child whose user is not mirrored is held; the user's fetch by id waits PARENT_FETCH_DELAY
    (detect usually delivers it with its payload first, at no call); when the user's payload
    arrives the request is due at once, and loading the user makes the held child due — not its
    backoff timer (migration 013)."""
    from netops.db import marks
    from netops.pipeline.backlog.worker import Worker

    _parents(pg_dsn)
    _enqueue(pg_dsn, [NewItem("achievements_users", 202, payload={"id": 202, "achievement_id": 10, "user_id": 8})])
    worker = Worker(settings, pg_dsn)
    try:
        assert worker.process_batch() == 1       # no detect pass running: user 8's fetch is due at once
        assert _exec(pg_dsn, "SELECT payload IS NULL, reason FROM netops.backlog_items WHERE resource = 'users'") \
            == [(True, "parent")]
        assert _due(pg_dsn, "users", 8)
        _exec(pg_dsn, "DELETE FROM netops.backlog_items WHERE entity_id IN (8, 202)")
        c = _conn(pg_dsn)
        with c, c.cursor() as cur:
            marks.detect_begin(cur, "users")      # a pass over users is walking from here on
        c.close()
        _enqueue(pg_dsn, [NewItem("achievements_users", 201, payload={"id": 201, "achievement_id": 10,
                                                                      "user_id": 7})])
        assert worker.process_batch() == 1
        assert _exec(pg_dsn, "SELECT state, outcome, parent_resource, parent_id FROM netops.backlog_items "
                             "WHERE resource = 'achievements_users'") == [("pending", "held", "users", 7)]
        assert _exec(pg_dsn, "SELECT payload IS NULL, reason, available_at > now() + interval '5 seconds' "
                             "FROM netops.backlog_items WHERE resource = 'users'") == [(True, "parent", True)]
        _enqueue(pg_dsn, [NewItem("users", 7, payload=_user(7))])     # detect's page delivers it
        assert _due(pg_dsn, "users", 7)
        _exec(pg_dsn, "UPDATE netops.backlog_items SET available_at = now() + interval '1 hour' "
                      "WHERE resource = 'achievements_users'")         # only a wake can bring it back now
        assert worker.process_batch() == 1                              # the user, no fetch
        assert _due(pg_dsn, "achievements_users", 201)
        assert worker.process_batch() == 1
        assert worker._client is None                                   # not one API call
    finally:
        worker.close()
    assert _exec(pg_dsn, "SELECT id, user_id FROM achievements_users") == [(201, 7)]
    assert _exec(pg_dsn, "SELECT state, count(*), count(parent_id) FROM netops.backlog_items GROUP BY 1") == \
        [("done", 2, 0)]


def test_the_end_of_a_detect_pass_makes_its_waiting_parent_requests_due(pg_dsn: str) -> None:
    _enqueue(pg_dsn, [NewItem("users", 8, reason="parent", delay=queue.PARENT_FETCH_DELAY),
                      NewItem("users", 9, payload=_user(9))])
    assert not _due(pg_dsn, "users", 8) and _due(pg_dsn, "users", 9)
    c = _conn(pg_dsn)
    with c, c.cursor() as cur:
        assert queue.release_parent_requests(cur, "projects_users") == 0   # another resource's pass
        assert queue.release_parent_requests(cur, "users") == 1
    c.close()
    assert _due(pg_dsn, "users", 8)
