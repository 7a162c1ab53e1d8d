"""Data-quality checks on the mirror: FK violations, NULL primary keys, duplicate rows, orphans.

Why check what constraints already enforce? Because the mirror is loaded in bulk, and bulk loads
are where constraints get bypassed: `session_replication_role = replica` or `DISABLE TRIGGER ALL`
skip FK triggers, a restore with `--disable-triggers` or without its post-data section loses keys,
and a hand-fixed table may have lost its PK. So the checks are driven by what the schema is
*meant* to be (netops/catalog.py, the one declaration of the mirror) merged with what the
database's own catalog currently declares:

* ``fk`` (violation): a child row whose referenced parent row does not exist.
* ``null_pk`` and ``duplicate`` (violation): a table's key has NULLs or repeats. When a valid
  PRIMARY KEY/UNIQUE index enforces the key, PostgreSQL itself guarantees both, so the table is
  not scanned (``method: "catalog"``) unless ``deep=True``.
* ``erasure`` (violation): users past their ``data_erasure_date`` (migration 005) — personal
  data the school has promised to erase. The backlog deletes them (docs/backlog.md,
  "Erasure"); a row found here means it has not run since the date passed, or a load bypassed it.
* ``orphan`` (info): soft references (the catalog's `soft_refs`) deliberately left without a FK because the API
  points them outside the mirrored set (projects.parent_id, achievements.parent_id,
  project_sessions.campus_id / cursus_id: inactive campuses, other cursus). They are counted and
  exported, but only fail the check with ``strict=True``: failing every night on data the API
  legitimately sends would teach operators to ignore the alert.

Results are stored in ``netops.quality_runs`` so status, metrics and alerts can report the last
check without rescanning millions of rows themselves.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from netops import catalog


@dataclass(frozen=True)
class Reference:
    child: str
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]
    kind: str  # "fk" | "orphan"
    note: str = ""


# The mirror's keys and references as designed: the catalog's (netops/catalog.py), which
# tests/integration/test_catalog.py holds equal to what the migrations create.
EXPECTED_KEYS: dict[str, tuple[str, ...]] = {s.name: s.pk for s in catalog.TABLES}
EXPECTED_REFERENCES: tuple[Reference, ...] = (
    *(Reference(s.name, (fk.column,), fk.parent, ("id",), "fk") for s in catalog.TABLES for fk in s.fks),
    *(Reference(s.name, (r.column,), r.parent, ("id",), "orphan", r.note) for s in catalog.TABLES for r in s.soft_refs),
)

SAMPLE_SIZE = 5


@dataclass
class Finding:
    kind: str  # fk | null_pk | duplicate | orphan
    severity: str  # violation | info
    table: str
    columns: list[str]
    count: int
    references: str | None = None
    method: str = "scan"  # scan | catalog (enforced by a valid unique index)
    sample: list[Any] = field(default_factory=list)
    note: str = ""


def _tables(cur: psycopg2.extensions.cursor) -> list[str]:
    cur.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE 'delta\\_%'
            ORDER BY c.relname"""
    )
    return [r[0] for r in cur.fetchall()]


def _catalog_keys(cur: psycopg2.extensions.cursor) -> dict[str, tuple[str, ...]]:
    cur.execute(
        """SELECT c.relname, array_agg(a.attname ORDER BY k.ord)
             FROM pg_index i
             JOIN pg_class c ON c.oid = i.indrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
            WHERE n.nspname = 'public' AND i.indisprimary
            GROUP BY c.relname"""
    )
    return {r[0]: tuple(r[1]) for r in cur.fetchall()}


def _enforced_keys(cur: psycopg2.extensions.cursor) -> set[tuple[str, tuple[str, ...]]]:
    """(table, columns) pairs guaranteed unique and NOT NULL by a valid unique index + NOT NULL."""
    cur.execute(
        """SELECT c.relname, array_agg(a.attname ORDER BY a.attname), bool_and(a.attnotnull)
             FROM pg_index i
             JOIN pg_class c ON c.oid = i.indrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             CROSS JOIN LATERAL unnest(i.indkey) AS k(attnum)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
            WHERE n.nspname = 'public' AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
            GROUP BY c.relname, i.indexrelid"""
    )
    return {(r[0], tuple(r[1])) for r in cur.fetchall() if r[2]}


def _catalog_references(cur: psycopg2.extensions.cursor) -> list[Reference]:
    cur.execute(
        """SELECT ch.relname, pa.relname,
                  array(SELECT attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute ON attrelid = con.conrelid AND attnum = k.n ORDER BY k.o),
                  array(SELECT attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute ON attrelid = con.confrelid AND attnum = k.n ORDER BY k.o)
             FROM pg_constraint con
             JOIN pg_class ch ON ch.oid = con.conrelid
             JOIN pg_class pa ON pa.oid = con.confrelid
             JOIN pg_namespace n ON n.oid = ch.relnamespace
             JOIN pg_namespace pn ON pn.oid = pa.relnamespace
            WHERE con.contype = 'f' AND n.nspname = 'public' AND pn.nspname = 'public'
            ORDER BY ch.relname, con.conname"""
    )
    return [Reference(r[0], tuple(r[2]), r[1], tuple(r[3]), "fk") for r in cur.fetchall()]


def _ident_list(cols: tuple[str, ...], alias: str) -> sql.Composed:
    return sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(c)) for c in cols)


def _check_reference(cur: psycopg2.extensions.cursor, ref: Reference, severity: str) -> Finding:
    not_null = sql.SQL(" AND ").join(
        sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(col)) for col in ref.columns)
    match = sql.SQL(" AND ").join(
        sql.SQL("p.{} = c.{}").format(sql.Identifier(pc), sql.Identifier(cc))
        for pc, cc in zip(ref.parent_columns, ref.columns, strict=True))
    base = sql.SQL("FROM public.{child} c WHERE {nn} AND NOT EXISTS "
                   "(SELECT 1 FROM public.{parent} p WHERE {match})").format(
        child=sql.Identifier(ref.child), parent=sql.Identifier(ref.parent), nn=not_null, match=match)
    cur.execute(sql.SQL("SELECT count(*) ") + base)
    count = int(cur.fetchone()[0])
    sample: list[Any] = []
    if count:
        cur.execute(sql.SQL("SELECT DISTINCT {cols} ").format(cols=_ident_list(ref.columns, "c")) + base
                    + sql.SQL(" ORDER BY 1 LIMIT {}").format(sql.Literal(SAMPLE_SIZE)))
        sample = [r[0] if len(r) == 1 else list(r) for r in cur.fetchall()]
    return Finding(
        kind=ref.kind, severity=severity, table=ref.child, columns=list(ref.columns), count=count,
        references=f"{ref.parent}({', '.join(ref.parent_columns)})", sample=sample, note=ref.note,
    )


def _check_key(cur: psycopg2.extensions.cursor, table: str, cols: tuple[str, ...], enforced: bool,
               deep: bool) -> list[Finding]:
    if enforced and not deep:
        return [Finding("null_pk", "violation", table, list(cols), 0, method="catalog"),
                Finding("duplicate", "violation", table, list(cols), 0, method="catalog")]
    any_null = sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(sql.Identifier(c)) for c in cols)
    cur.execute(sql.SQL("SELECT count(*) FROM public.{} WHERE {}").format(sql.Identifier(table), any_null))
    nulls = int(cur.fetchone()[0])
    col_list = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    cur.execute(
        sql.SQL("SELECT coalesce(sum(n - 1), 0), (array_agg(k ORDER BY k))[1:{lim}] FROM "
                "(SELECT ({cols})::text AS k, count(*) AS n FROM public.{t} WHERE NOT ({nul}) "
                "GROUP BY {cols} HAVING count(*) > 1) d").format(
            cols=col_list, t=sql.Identifier(table), nul=any_null, lim=sql.Literal(SAMPLE_SIZE)))
    dups, dup_sample = cur.fetchone()
    return [Finding("null_pk", "violation", table, list(cols), nulls),
            Finding("duplicate", "violation", table, list(cols), int(dups), sample=list(dup_sample or []),
                    note="extra rows beyond the first per key")]


def _check_erasure(cur: psycopg2.extensions.cursor, present: set[str],
                   spec: catalog.TableSpec) -> Finding | None:
    """Rows of `spec` (users) past their erasure date, or None before migration 005 (no such column)."""
    column = spec.erasure_column
    if column is None or spec.name not in present:
        return None
    cur.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name = %s AND column_name = %s", (spec.name, column))
    if cur.fetchone() is None:
        return None
    where = sql.SQL("FROM {} WHERE {} <= now()").format(sql.Identifier(spec.name), sql.Identifier(column))
    cur.execute(sql.SQL("SELECT count(*) ") + where)
    count = int(cur.fetchone()[0])
    sample: list[Any] = []
    if count:
        cur.execute(sql.SQL("SELECT id ") + where + sql.SQL(" ORDER BY id LIMIT %s"), (SAMPLE_SIZE,))
        sample = [r[0] for r in cur.fetchall()]
    return Finding("erasure", "violation", spec.name, [column], count, sample=sample,
                   note=f"personal data past its {column}: `netops backlog detect` deletes it "
                        "(docs/backlog.md, Erasure)")


def _key_checks(cur: Any, present: set[str], deep: bool) -> list[Finding]:
    """Uniqueness and non-null of every known key; a table without one is noted as info."""
    keys = {**_catalog_keys(cur), **{t: k for t, k in EXPECTED_KEYS.items() if t in present}}
    enforced = _enforced_keys(cur)
    checks: list[Finding] = []
    for table in sorted(keys):
        cols = keys[table]
        checks.extend(_check_key(cur, table, cols, (table, tuple(sorted(cols))) in enforced, deep))
    for t in sorted(present - set(keys)):
        checks.append(Finding("null_pk", "info", t, [], 0, method="none", note="table has no primary key"))
    return checks


def _references(cur: Any, present: set[str]) -> list[Reference]:
    """Every known reference between two present tables, once."""
    refs: list[Reference] = []
    seen: set[tuple[str, tuple[str, ...], str]] = set()
    for ref in (*EXPECTED_REFERENCES, *_catalog_references(cur)):
        ident = (ref.child, ref.columns, ref.parent)
        if ident in seen or ref.child not in present or ref.parent not in present:
            continue
        seen.add(ident)
        refs.append(ref)
    return refs


def run_checks(conn: psycopg2.extensions.connection, *, strict: bool = False, deep: bool = False,
               store: bool = True) -> dict[str, Any]:
    """Run every check and return the `netops check --json` document; store it when asked.

    The document: ok (bool), violations / info (row totals), tables (exact row counts), checks
    (every check with its count) and findings (the checks with a non-zero count).
    """
    started = time.monotonic()
    checked_at = datetime.now(timezone.utc)
    with conn.cursor() as cur:
        tables = _tables(cur)
        present = set(tables)
        counts: dict[str, int] = {}
        for t in tables:
            cur.execute(sql.SQL("SELECT count(*) FROM public.{}").format(sql.Identifier(t)))
            counts[t] = int(cur.fetchone()[0])
        checks = _key_checks(cur, present, deep)
        checks.extend(_check_reference(cur, ref, "violation" if ref.kind == "fk" or strict else "info")
                      for ref in _references(cur, present))
        for spec in catalog.TABLES:
            erasure = _check_erasure(cur, present, spec)
            if erasure is not None:
                checks.append(erasure)

    violations = sum(f.count for f in checks if f.severity == "violation")
    info = sum(f.count for f in checks if f.severity == "info")
    doc: dict[str, Any] = {
        "ok": violations == 0,
        "checked_at": checked_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "duration_ms": round((time.monotonic() - started) * 1000),
        "strict": strict,
        "deep": deep,
        "violations": violations,
        "info": info,
        "tables": {t: {"rows": counts[t]} for t in tables},
        "checks": [asdict(f) for f in checks],
        "findings": [asdict(f) for f in checks if f.count],
    }
    if store:
        store_result(conn, doc)
    return doc


def store_result(conn: psycopg2.extensions.connection, doc: dict[str, Any]) -> bool:
    """Record the result for status/metrics/alerts; False when migration 003 is not applied."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('netops.quality_runs') IS NOT NULL")
        if not cur.fetchone()[0]:
            return False
        cur.execute(
            "INSERT INTO netops.quality_runs (checked_at, duration_ms, violations, info, result) "
            "VALUES (%s, %s, %s, %s, %s::jsonb)",
            (doc["checked_at"], doc["duration_ms"], doc["violations"], doc["info"], json.dumps(doc, default=str)),
        )
    if not conn.autocommit:
        conn.commit()
    return True


def render_text(doc: dict[str, Any]) -> str:
    head = "data quality: OK" if doc["ok"] else f"data quality: {doc['violations']} VIOLATING ROWS"
    lines = [f"{head}   ({doc['info']} info rows; checked {doc['checked_at']} in {doc['duration_ms']} ms)"]
    lines.append("tables: " + ", ".join(f"{t} {v['rows']}" for t, v in doc["tables"].items()))
    if not doc["findings"]:
        lines.append("no findings: every key is unique and non-null, every reference resolves")
    for f in doc["findings"]:
        what = f"{f['table']}({', '.join(f['columns'])})"
        if f["references"]:
            what += f" -> {f['references']}"
        sample = f"  e.g. {', '.join(map(str, f['sample']))}" if f["sample"] else ""
        note = f"  [{f['note']}]" if f["note"] else ""
        lines.append(f"  {f['severity']:<9} {f['kind']:<9} {what}: {f['count']} rows{sample}{note}")
    return "\n".join(lines)
