"""The delta loader against a real PostgreSQL: upsert, no-op on unchanged rows, prune, guards."""

from __future__ import annotations

import psycopg2
import pytest

from netops import catalog
from netops.catalog import Table
from netops.db.loader import apply, delete_keys, stage
from netops.errors import SyncError

CAMPUSES = Table("campuses", ("id", "name", "active"))
LINKS = catalog.BY_NAME["campus_projects"].loader_table(with_parents=True)   # keys and parents: the catalog's


def _load(dsn: str, table: Table, rows: list[tuple], **kw: object):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        stage(cur, table, rows)
        return apply(cur, table, **kw)


def _rows(dsn: str, sql: str) -> list[tuple]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_insert_then_noop_then_update_and_prune(pg_dsn: str) -> None:
    res = _load(pg_dsn, CAMPUSES, [(1, "Paris", True), (2, "Lyon", True), (3, "Tab\there\nnew\\line", None)])
    assert (res.inserted, res.updated, res.deleted) == (3, 0, 0)
    assert _rows(pg_dsn, "SELECT name FROM campuses WHERE id = 3") == [("Tab\there\nnew\\line",)]
    # unchanged rows cost no write: xmin stays the same
    before = _rows(pg_dsn, "SELECT id, xmin::text FROM campuses ORDER BY id")
    res = _load(pg_dsn, CAMPUSES, [(1, "Paris", True), (2, "Lyon", True), (3, "Tab\there\nnew\\line", None)])
    assert (res.inserted, res.updated, res.deleted) == (0, 0, 0)
    assert _rows(pg_dsn, "SELECT id, xmin::text FROM campuses ORDER BY id") == before
    res = _load(pg_dsn, CAMPUSES, [(1, "Paris 2", True), (2, "Lyon", True)])
    assert (res.inserted, res.updated, res.deleted) == (0, 1, 1)
    assert _rows(pg_dsn, "SELECT id, name FROM campuses ORDER BY id") == [(1, "Paris 2"), (2, "Lyon")]
    assert _rows(pg_dsn, "SELECT count(*) FROM delta_campuses") == [(0,)]


def test_duplicates_null_keys_and_orphan_links_are_skipped(pg_dsn: str) -> None:
    _load(pg_dsn, CAMPUSES, [(1, "Paris", True)])
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO projects (id, name) VALUES (10, 'libft')")
    res = _load(pg_dsn, LINKS, [(1, 10), (1, 10), (99, 10), (None, 10)])
    assert res.inserted == 1
    assert res.skipped == 3  # one duplicate, one orphan (campus 99), one NULL key
    assert _rows(pg_dsn, "SELECT * FROM campus_projects") == [(1, 10)]
    # the parent's prune cascades to the link
    _load(pg_dsn, CAMPUSES, [(2, "Lyon", True)], max_prune_ratio=None)
    assert _rows(pg_dsn, "SELECT count(*) FROM campus_projects") == [(0,)]


def test_prune_guard_refuses_mass_delete_and_leaves_table(pg_dsn: str) -> None:
    _load(pg_dsn, CAMPUSES, [(i, f"c{i}", True) for i in range(1, 21)])
    with pytest.raises(SyncError, match="refusing to prune"):
        _load(pg_dsn, CAMPUSES, [(1, "c1", True)], max_prune_ratio=0.5)
    assert _rows(pg_dsn, "SELECT count(*) FROM campuses") == [(20,)]
    res = _load(pg_dsn, CAMPUSES, [(i, f"c{i}", True) for i in range(1, 16)], max_prune_ratio=0.5)
    assert res.deleted == 5


def test_failure_mid_copy_rolls_back_everything(pg_dsn: str) -> None:
    """A failure in the middle of a COPY undoes the whole transaction: what this transaction had
    already applied (an upsert and a prune) and the half-copied page. It used to fail before
    anything was applied, so it passed even with a loader that committed behind the caller."""
    _load(pg_dsn, CAMPUSES, [(1, "Paris", True), (2, "Lyon", True)])

    def rows():
        yield (5, "Nice", True)
        raise RuntimeError("API died mid-page")

    with pytest.raises(RuntimeError, match="API died mid-page"), psycopg2.connect(pg_dsn) as conn, \
            conn.cursor() as cur:
        stage(cur, CAMPUSES, [(1, "Paris 2", True), (3, "Nice", True)])
        res = apply(cur, CAMPUSES)  # applied in this transaction: must not outlive its failure
        assert (res.inserted, res.updated, res.deleted) == (1, 1, 1)
        stage(cur, CAMPUSES, rows())
        apply(cur, CAMPUSES)
    assert _rows(pg_dsn, "SELECT id, name FROM campuses ORDER BY id") == [(1, "Paris"), (2, "Lyon")]
    assert _rows(pg_dsn, "SELECT count(*) FROM delta_campuses") == [(0,)]  # no half page left staged


def test_delete_keys(pg_dsn: str) -> None:
    _load(pg_dsn, CAMPUSES, [(1, "a", True), (2, "b", True), (3, "c", True)])
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        assert delete_keys(cur, CAMPUSES, [(1,), (3,), (7,)]) == 2
    assert _rows(pg_dsn, "SELECT id FROM campuses") == [(2,)]
    _load(pg_dsn, CAMPUSES, [(i, f"c{i}", True) for i in range(1, 251)])
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        assert delete_keys(cur, CAMPUSES, [(i,) for i in range(1, 241)]) == 240  # more than one page
