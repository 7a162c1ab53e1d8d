"""SQL on the mirrored tables (public) outside a load: what the probe, the derived links, reconcile
and the backlog worker read from the mirror, and the erasure of rows past their date.

Loading itself (COPY, upsert, prune) is netops/db/loader.py. Table and column names come from the
catalog, never from user input; they are still quoted as identifiers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg2 import sql


def count_and_max(cur: Any, table: str, column: str) -> tuple[int, Any]:
    """(row count, max(column)) of a mirrored table: what a no-change probe compares."""
    cur.execute(sql.SQL("SELECT count(*), max({}) FROM {}").format(sql.Identifier(column), sql.Identifier(table)))
    count, newest = cur.fetchone()
    return int(count), newest


def ids_and_names(cur: Any, table: str) -> list[tuple[int, Any]]:
    """Every (id, name) of a mirrored table, by id: what derived links are matched against."""
    cur.execute(sql.SQL("SELECT id, name FROM {} ORDER BY id").format(sql.Identifier(table)))
    return list(cur.fetchall())


def all_empty(cur: Any, tables: Sequence[str]) -> bool:
    """True while every one of `tables` is empty."""
    cur.execute(sql.SQL("SELECT {}").format(sql.SQL(" AND ").join(
        sql.SQL("NOT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(t)) for t in tables)))
    return bool(cur.fetchone()[0])


def count_interval(cur: Any, table: str, lo: int, hi: int | None) -> int:
    """Rows with an id in (lo, hi]; hi None = no upper end."""
    cur.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE id > %s AND (%s::bigint IS NULL OR id <= %s)").format(
            sql.Identifier(table)),
        (lo, hi, hi),
    )
    return int(cur.fetchone()[0])


def absent_ids(cur: Any, table: str, lo: int, hi: int | None, present: list[int]) -> list[int]:
    """Mirrored ids in (lo, hi] (hi None = no upper end) that are not in `present`."""
    cur.execute(
        sql.SQL("SELECT id FROM {} WHERE id > %s AND (%s::bigint IS NULL OR id <= %s) "
                "AND NOT (id = ANY(%s)) ORDER BY id").format(sql.Identifier(table)),
        (lo, hi, hi, present),
    )
    return [int(r[0]) for r in cur.fetchall()]


def delete_due(cur: Any, table: str, column: str) -> list[int]:
    """Delete every row whose `column` (an erasure date) is past; returns their ids, sorted."""
    cur.execute(sql.SQL("DELETE FROM {} WHERE {} <= now() RETURNING id").format(
        sql.Identifier(table), sql.Identifier(column)))
    return sorted(int(r[0]) for r in cur.fetchall())
