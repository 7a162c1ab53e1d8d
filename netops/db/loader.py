"""Delta loader: COPY rows into `delta_<table>`, then upsert and prune in the caller's transaction.

Why this shape:
- COPY is the fastest way in; the delta table is UNLOGGED (refetchable, so no WAL to write).
- The upsert touches only rows whose values differ (`IS DISTINCT FROM`), so a sync with no
  change writes nothing and does not bloat the table.
- Rows are de-duplicated on the primary key (`DISTINCT ON`) and rows with a NULL key are
  dropped and counted: the API occasionally repeats a row across pages while data shifts.
- Link rows whose parent is not mirrored (a project listed at an inactive campus) are skipped
  and counted instead of breaking a foreign key.
- Pruning deletes what the API no longer returns (FKs cascade) but refuses to delete more than
  `max_prune_ratio` of a table: an API that suddenly returns nothing must not empty the mirror.
Everything runs inside the caller's transaction: the caller commits, or nothing happened.

There is one loader, with explicit policies (`Policy`, `load`): the stable sync prunes and skips
link rows whose parent is not mirrored (`STABLE`); the backlog worker and reconcile never prune,
hold rows whose parent is missing for the caller to fetch it, drop stale payloads, and delete
rows past their erasure date instead of loading them (`backlog_policy`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from psycopg2 import sql

from netops.catalog import Table
from netops.errors import SyncError

PRUNE_GUARD_MIN_ROWS = 10
# An empty table receiving at least this many rows is filled by the bulk path (see apply()).
BULK_MIN_ROWS = 50_000


@dataclass
class ApplyResult:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0  # NULL keys and link rows whose parent is not mirrored
    staged: int = 0


def _copy_value(v: Any) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        s = "t" if v else "f"
    elif isinstance(v, (dict, list)):
        s = json.dumps(v, separators=(",", ":"))
    elif isinstance(v, (datetime, date)):
        s = v.isoformat()
    else:
        s = str(v)
    return (
        s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


class _RowStream(io.RawIOBase):
    """A file-like view of an iterator of rows in COPY text format, so COPY streams without
    building the whole payload in memory."""

    def __init__(self, rows: Iterable[Sequence[Any]]) -> None:
        self._rows: Iterator[Sequence[Any]] = iter(rows)
        self._buf = b""
        self.count = 0
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while len(self._buf) < len(b):
            chunk = []
            try:
                for row in self._rows:
                    chunk.append("\t".join(_copy_value(v) for v in row) + "\n")
                    self.count += 1
                    if len(chunk) >= 500:
                        break
            except BaseException as exc:  # kept so stage() re-raises the real cause, not QueryCanceled
                self.error = exc
                raise
            if not chunk:
                break
            self._buf += "".join(chunk).encode("utf-8")
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def stage(cur: Any, table: Table, rows: Iterable[Sequence[Any]], truncate: bool = True) -> int:
    """TRUNCATE the delta table (unless told not to) and COPY `rows` into it; returns the count."""
    if truncate:
        cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table.delta)))
    stream = _RowStream(rows)
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.delta), sql.SQL(", ").join(map(sql.Identifier, table.columns))
    )
    try:
        cur.copy_expert(copy.as_string(cur), io.BufferedReader(stream, buffer_size=1 << 16))
    except Exception:
        if stream.error is not None:
            raise stream.error from None
        raise
    return stream.count


def _eligible_sql(table: Table) -> sql.Composed:
    """SELECT DISTINCT ON (pk) ... FROM delta WHERE pk not null AND parents exist."""
    conds = [sql.SQL("d.{} IS NOT NULL").format(sql.Identifier(c)) for c in table.pk]
    for col, parent in table.parents:
        conds.append(
            sql.SQL("EXISTS (SELECT 1 FROM {} p WHERE p.id = d.{})").format(
                sql.Identifier(parent), sql.Identifier(col)
            )
        )
    pk = sql.SQL(", ").join(sql.SQL("d.{}").format(sql.Identifier(c)) for c in table.pk)
    cols = sql.SQL(", ").join(sql.SQL("d.{}").format(sql.Identifier(c)) for c in table.columns)
    return sql.SQL("SELECT DISTINCT ON ({pk}) {cols} FROM {delta} d WHERE {conds} ORDER BY {pk}").format(
        pk=pk, cols=cols, delta=sql.Identifier(table.delta), conds=sql.SQL(" AND ").join(conds)
    )


def apply(cur: Any, table: Table, prune: bool = True, max_prune_ratio: float | None = None) -> ApplyResult:
    """Upsert the delta into the table, prune rows absent from it (if `prune`), empty the delta."""
    res = ApplyResult()
    ident = sql.Identifier(table.name)
    cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table.delta)))
    res.staged = cur.fetchone()[0]
    if prune:
        res.deleted = _prune(cur, table, max_prune_ratio)
    cols = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    eligible = _eligible_sql(table)
    if res.staged >= BULK_MIN_ROWS and _is_empty(cur, table):
        # an empty table: every eligible row is inserted, so the insert's count is theirs
        res.inserted = _bulk_fill(cur, table, sql.SQL("INSERT INTO {t} ({cols}) {eligible}").format(
            t=ident, cols=cols, eligible=eligible))
        eligible_rows = res.inserted
    else:
        cur.execute(_upsert_sql(table, eligible))
        res.inserted, res.updated, eligible_rows = cur.fetchone()
    res.skipped = res.staged - eligible_rows
    cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table.delta)))
    return res


def _prune(cur: Any, table: Table, max_prune_ratio: float | None) -> int:
    """Delete the table's rows absent from the delta; returns how many. More than
    `max_prune_ratio` of a table of PRUNE_GUARD_MIN_ROWS rows or more raises SyncError."""
    ident = sql.Identifier(table.name)
    cur.execute(sql.SQL("SELECT count(*) FROM {}").format(ident))
    current = cur.fetchone()[0]
    match = sql.SQL(" AND ").join(
        sql.SQL("d.{c} = t.{c}").format(c=sql.Identifier(c)) for c in table.pk
    )
    # delete first, then judge: one anti-join instead of a count and a delete; a refused
    # prune raises, and the caller's transaction (one per phase) rolls the delete back
    cur.execute(
        sql.SQL("DELETE FROM {t} t WHERE NOT EXISTS (SELECT 1 FROM {d} d WHERE {m})").format(
            t=ident, d=sql.Identifier(table.delta), m=match
        )
    )
    doomed = cur.rowcount
    if max_prune_ratio is not None and current >= PRUNE_GUARD_MIN_ROWS and doomed > max_prune_ratio * current:
        raise SyncError(
            f"{table.name}: the API no longer returns {doomed} of {current} rows "
            f"(> {max_prune_ratio:.0%}); refusing to prune that much — check the API, or rerun with "
            "NETOPS_MAX_PRUNE_RATIO=1 if the deletions are real"
        )
    return int(doomed)


def _upsert_sql(table: Table, eligible: sql.Composable) -> sql.Composed:
    """Insert the eligible rows, update only those whose values differ; returns (inserted,
    updated, eligible). The eligible rows are computed once: the upsert reads them and counts
    them (skipped = staged - eligible), instead of a second DISTINCT ON + parent-check scan."""
    if table.non_key:
        sets = sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in table.non_key
        )
        old = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in table.non_key)
        new = sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in table.non_key)
        conflict = sql.SQL("DO UPDATE SET {sets} WHERE ROW({old}) IS DISTINCT FROM ROW({new})").format(
            sets=sets, old=old, new=new
        )
    else:
        conflict = sql.SQL("DO NOTHING")
    return sql.SQL(
        "WITH e AS MATERIALIZED ({eligible}), "
        "up AS (INSERT INTO {t} AS t ({cols}) SELECT {cols} FROM e ON CONFLICT ({pk}) {conflict} "
        "RETURNING (xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted), "
        "(SELECT count(*) FROM e) FROM up"
    ).format(t=sql.Identifier(table.name), cols=sql.SQL(", ").join(map(sql.Identifier, table.columns)),
             eligible=eligible, pk=sql.SQL(", ").join(map(sql.Identifier, table.pk)), conflict=conflict)


def count_rows(cur: Any, table: Table) -> int:
    """Exact row count of a mirror table (after a phase's load, for its report)."""
    cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table.name)))
    return int(cur.fetchone()[0])


def _is_empty(cur: Any, table: Table) -> bool:
    cur.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table.name)))
    return bool(cur.fetchone()[0])


def _bulk_fill(cur: Any, table: Table, insert: sql.Composed) -> int:
    """Fill an empty table: plain INSERT (no ON CONFLICT: nothing to conflict with) with the
    table's own foreign keys dropped and re-added (same names and definitions) in the caller's
    transaction.

    Why: a foreign key is checked row by row (an index probe per key per row); re-adding it
    validates all rows in one set-based join. Measured on 1M project_users rows (2 FKs): the
    upsert took 11.6 s, the bulk path 5.5 s + 0.35 s for the re-add. The integrity is the same
    (a row without its parent makes ADD CONSTRAINT fail and the transaction roll back, as the
    row-by-row check would), but ALTER TABLE locks the table and its parents' writers until
    commit, which is why only an empty table (a first load, nothing reads it yet) takes this path.
    """
    cur.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
                (sql.Identifier(table.name).as_string(cur),))
    fks = cur.fetchall()
    ident = sql.Identifier(table.name)
    for name, _ in fks:
        cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(ident, sql.Identifier(name)))
    cur.execute(insert)
    inserted = int(cur.rowcount)
    for name, definition in fks:
        cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(ident, sql.Identifier(name))
                    + sql.SQL(definition))
    return inserted


def delete_keys(cur: Any, table: Table, keys: Iterable[Sequence[Any]]) -> int:
    """Delete rows by primary key (FKs cascade); returns how many went."""
    keys = [tuple(k) for k in keys]
    if not keys:
        return 0
    from psycopg2.extras import execute_values

    match = sql.SQL(" AND ").join(sql.SQL("t.{c} = k.{c}").format(c=sql.Identifier(c)) for c in table.pk)
    stmt = sql.SQL("DELETE FROM {t} t USING (VALUES %s) AS k ({pk}) WHERE {m}").format(
        t=sql.Identifier(table.name), pk=sql.SQL(", ").join(map(sql.Identifier, table.pk)), m=match
    )
    # one statement for all keys: rowcount of a paged execute_values would only count the last page
    execute_values(cur, stmt.as_string(cur), keys, page_size=len(keys))
    return cur.rowcount


# --------------------------------------------------------------------------- policies
@dataclass(frozen=True)
class Policy:
    """How one load treats what it stages.

    - `prune`: delete mirrored rows absent from the load (a full pull of the table), within
      `max_prune_ratio`.
    - `orphans`: "skip" drops and counts rows whose FK parent is not mirrored (stable links to an
      inactive campus); "hold" returns them to the caller unloaded (`LoadOutcome.missing`): the
      worker fetches a backlog parent first, or waits for the stable sync.
    - `stale_column`: a staged row whose value here is older than the mirrored row's is dropped (an
      older payload queued before a newer one was loaded must not move a row backwards); equal
      values still load (values can change without it, e.g. cursus_users' level).
    - `erasure_column`: rows past this date are deleted, never loaded (users' data_erasure_date).
    """

    prune: bool = False
    max_prune_ratio: float | None = None
    orphans: str = "skip"
    stale_column: str | None = None
    erasure_column: str | None = None


def backlog_policy(erasure_column: str | None) -> Policy:
    """The worker's and reconcile's policy: no prune, hold orphans, stale guard on updated_at."""
    return Policy(prune=False, orphans="hold", stale_column="updated_at", erasure_column=erasure_column)


@dataclass
class LoadOutcome:
    """What one load did: the apply counts, and per row id what was not loaded and why."""

    result: ApplyResult = field(default_factory=ApplyResult)
    missing: dict[Any, tuple[str, str, Any]] = field(default_factory=dict)  # id -> (column, parent, value)
    existing: set[Any] = field(default_factory=set)
    stale: set[Any] = field(default_factory=set)
    erased: set[Any] = field(default_factory=set)


def _past(value: Any, now: datetime) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
    return bool(value <= now)


def load(cur: Any, table: Table, rows: Iterable[Sequence[Any]], policy: Policy) -> LoadOutcome:
    """Load `rows` (in `table.columns` order) into `table` under `policy`, in the caller's
    transaction: erase -> hold orphans -> stage -> stale guard -> apply."""
    out = LoadOutcome()
    if policy.orphans == "skip" and policy.erasure_column is None and policy.stale_column is None:
        # the stable path: rows stream into COPY, never held in memory
        stage(cur, table, rows)
        out.result = apply(cur, table, prune=policy.prune, max_prune_ratio=policy.max_prune_ratio)
        return out
    rows = list(rows)
    key = table.columns.index(table.pk[0])
    if policy.erasure_column is not None:
        idx = table.columns.index(policy.erasure_column)
        now = datetime.now(timezone.utc)
        out.erased = {r[key] for r in rows if _past(r[idx], now)}
        if out.erased:
            delete_keys(cur, table, [(k,) for k in sorted(out.erased)])
            rows = [r for r in rows if r[key] not in out.erased]
    if policy.orphans == "hold":
        for column, parent in table.parents:
            idx = table.columns.index(column)
            values = sorted({r[idx] for r in rows if r[idx] is not None})
            cur.execute(sql.SQL("SELECT x FROM unnest(%s::bigint[]) x WHERE NOT EXISTS "
                                "(SELECT 1 FROM {} p WHERE p.id = x)").format(sql.Identifier(parent)), (values,))
            absent = {int(r[0]) for r in cur.fetchall()}
            for r in rows:
                if r[idx] in absent and r[key] not in out.missing:
                    out.missing[r[key]] = (column, parent, r[idx])
        rows = [r for r in rows if r[key] not in out.missing]
    if not rows:
        return out
    ident = sql.Identifier(table.name)
    pk = sql.Identifier(table.pk[0])
    cur.execute(sql.SQL("SELECT {pk} FROM {t} WHERE {pk} = ANY(%s)").format(pk=pk, t=ident), ([r[key] for r in rows],))
    out.existing = {r[0] for r in cur.fetchall()}
    stage(cur, table, rows)
    if policy.stale_column is not None:
        stamp = sql.Identifier(policy.stale_column)
        cur.execute(sql.SQL("DELETE FROM {d} d USING {t} t WHERE t.{pk} = d.{pk} AND t.{c} > d.{c} "
                            "RETURNING d.{pk}").format(d=sql.Identifier(table.delta), t=ident, pk=pk, c=stamp))
        out.stale = {r[0] for r in cur.fetchall()}
    unchecked = Table(table.name, table.columns, table.pk) if policy.orphans == "hold" else table
    out.result = apply(cur, unchecked, prune=policy.prune, max_prune_ratio=policy.max_prune_ratio)
    return out
