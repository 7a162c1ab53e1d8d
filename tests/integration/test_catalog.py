"""The catalog (netops/catalog.py) against the migrated schema: the hand-written migrations and the
one declaration must describe the same tables, column by column.

A scratch database is migrated from nothing, then information_schema is read back: every catalog
table exists with exactly its columns (order, type, nullability), its primary key, its foreign keys
with their ON DELETE rule, no FK on its soft references, and a staging twin with the same columns
all nullable (the loader counts and drops NULL keys there). A public table the catalog does not
declare fails the test too: the catalog is the whole mirror.
"""

from __future__ import annotations

import psycopg2
import pytest

from netops import catalog
from netops.db.migrate import available
from tests.fixtures.pg import query


def _columns(dsn: str, table: str) -> list[tuple[str, str, bool]]:
    return [(r[0], r[1], r[2] == "YES") for r in query(
        dsn, "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
             "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position", (table,))]


def _pk(dsn: str, table: str) -> tuple[str, ...]:
    return tuple(r[0] for r in query(
        dsn, "SELECT k.column_name FROM information_schema.table_constraints c "
             "JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name) "
             "WHERE c.table_schema = 'public' AND c.table_name = %s AND c.constraint_type = 'PRIMARY KEY' "
             "ORDER BY k.ordinal_position", (table,)))


def _fks(dsn: str, table: str) -> set[tuple[str, str, str, str]]:
    """(column, parent table, parent column, ON DELETE rule) of every FK of `table`."""
    return set(query(
        dsn, "SELECT k.column_name, u.table_name, u.column_name, r.delete_rule "
             "FROM information_schema.referential_constraints r "
             "JOIN information_schema.key_column_usage k "
             "  ON k.constraint_schema = r.constraint_schema AND k.constraint_name = r.constraint_name "
             "JOIN information_schema.constraint_column_usage u "
             "  ON u.constraint_schema = r.unique_constraint_schema AND u.constraint_name = r.unique_constraint_name "
             "WHERE k.table_schema = 'public' AND k.table_name = %s", (table,)))


@pytest.mark.parametrize("spec", catalog.TABLES, ids=lambda s: s.name)
def test_migrated_table_matches_the_catalog(pg_dsn: str, spec: catalog.TableSpec) -> None:
    declared = [(c.name, c.sql_type, not c.not_null) for c in spec.columns]
    assert _columns(pg_dsn, spec.name) == declared, f"{spec.name}: migrations and netops/catalog.py disagree"
    assert _pk(pg_dsn, spec.name) == spec.pk
    assert _fks(pg_dsn, spec.name) == {(fk.column, fk.parent, "id", fk.on_delete) for fk in spec.fks}
    soft = {r.column for r in spec.soft_refs}
    assert not soft & {fk[0] for fk in _fks(pg_dsn, spec.name)}, "a soft reference must not carry a FK"
    # the staging twin: same columns, every one nullable, no key of its own
    assert _columns(pg_dsn, spec.delta) == [(n, t, True) for n, t, _ in declared]
    assert _pk(pg_dsn, spec.delta) == ()


def test_the_catalog_is_the_whole_mirror(pg_dsn: str) -> None:
    public = {r[0] for r in query(pg_dsn, "SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")}
    names = {s.name for s in catalog.TABLES}
    assert public == names | {f"delta_{n}" for n in names}
    # derived, not mirrored: views over the mirrored tables (017: logtime_daily from locations)
    views = {r[0] for r in query(pg_dsn, "SELECT table_name FROM information_schema.views WHERE table_schema = 'public'")}
    assert views == {"logtime_daily"}


def test_order_is_parents_first_and_identity_is_the_table_name() -> None:
    seen: set[str] = set()
    for spec in catalog.TABLES:
        assert set(spec.depends_on) <= seen, f"{spec.name} comes before {set(spec.depends_on) - seen}"
        seen.add(spec.name)
    with pytest.raises(ValueError, match="cycle"):
        a = catalog.TableSpec("a", (), catalog.Single("/a"), fks=(catalog.ForeignKey("b_id", "b"),))
        b = catalog.TableSpec("b", (), catalog.Single("/b"), fks=(catalog.ForeignKey("a_id", "a"),))
        catalog.topological([a, b])


def test_live_resources_are_accepted_by_the_queue(pg_dsn: str) -> None:
    """Every backlog resource of the catalog passes the queue's CHECK (migration 010 added cursus_users)."""
    conn = psycopg2.connect(pg_dsn)
    try:
        with conn, conn.cursor() as cur:
            for name in catalog.backlog_resource_names():
                cur.execute("INSERT INTO netops.backlog_items (resource, entity_id) VALUES (%s, 1)", (name,))
        with pytest.raises(psycopg2.errors.CheckViolation), conn, conn.cursor() as cur:
            cur.execute("INSERT INTO netops.backlog_items (resource, entity_id) VALUES ('students', 1)")
    finally:
        conn.close()


def test_009_renames_numbered_phase_history(pg_dsn: str) -> None:
    """History written before 009 ('07_campus_achievements') reads under the table's name."""
    query(pg_dsn, "INSERT INTO netops.sync_runs (run_id, phase, table_name, status) VALUES "
                  "(gen_random_uuid(), '07_campus_achievements', 'campus_achievements', 'success'), "
                  "(gen_random_uuid(), 'projects', 'projects', 'success')")
    sql = next(text for version, _, text in available() if version == "009")
    query(pg_dsn, sql)
    assert sorted(r[0] for r in query(pg_dsn, "SELECT phase FROM netops.sync_runs")) == \
        ["campus_achievements", "projects"]
