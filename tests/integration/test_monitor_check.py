"""`netops check` finds violations planted in a real database.

How each is planted (PostgreSQL would refuse them otherwise, which is the point of the check):
* FK violation: `ALTER TABLE ... DISABLE TRIGGER ALL` (superuser), which is what a bulk load with
  triggers disabled, or `session_replication_role = replica`, does; then a link row to nothing.
* NULL PK and duplicates: the table's PRIMARY KEY is dropped first (a restore without its
  post-data section, a hand-made table) and its implied NOT NULL with it, then rows with a NULL
  and a repeated id go in.
* Orphan: a soft reference (projects.parent_id) to a project that is not mirrored; no constraint
  is bypassed, the schema allows it by design.
"""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from netops.cli import cli
from netops.db.quality import run_checks
from tests.integration.test_monitor_seed import STABLE_ROWS, cli_env, connect, seed_stable


def check(settings: Any, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["check", "--json", *args], env=cli_env(settings), catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


def findings(doc: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(f["kind"], f["table"], ",".join(f["columns"])): f for f in doc["findings"]}


def test_clean_mirror_passes_with_exact_counts(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory()
    seed_stable(pg_dsn)
    code, doc = check(settings)
    assert code == 0 and doc["ok"] is True
    assert doc["violations"] == 0 and doc["info"] == 0 and doc["findings"] == []
    for table, n in STABLE_ROWS.items():
        assert doc["tables"][table] == {"rows": n}
    kinds = {(c["kind"], c["table"]) for c in doc["checks"]}
    assert ("fk", "campus_projects") in kinds and ("fk", "project_users") in kinds  # 002's FKs found in the catalog
    assert ("orphan", "projects") in kinds
    keyed = [c for c in doc["checks"] if c["kind"] == "duplicate"]
    assert keyed and all(c["method"] == "catalog" for c in keyed)  # enforced PKs are not rescanned


def test_planted_fk_violation_is_found(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory()
    seed_stable(pg_dsn)
    with connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE campus_projects DISABLE TRIGGER ALL")
        cur.execute("INSERT INTO campus_projects VALUES (999, 1), (998, 2), (1, 4242)")
        cur.execute("ALTER TABLE campus_projects ENABLE TRIGGER ALL")
    code, doc = check(settings)
    assert code == 1 and doc["ok"] is False
    f = findings(doc)
    assert f[("fk", "campus_projects", "campus_id")]["count"] == 2
    assert f[("fk", "campus_projects", "campus_id")]["sample"] == [998, 999]
    assert f[("fk", "campus_projects", "campus_id")]["references"] == "campuses(id)"
    assert f[("fk", "campus_projects", "project_id")]["count"] == 1
    assert doc["violations"] == 3


def test_planted_null_pk_and_duplicates_are_found(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory()
    seed_stable(pg_dsn)
    with connect(pg_dsn) as conn, conn.cursor() as cur:
        # CASCADE also drops coalitions_users' FK; the check still knows that relation (by design)
        cur.execute("ALTER TABLE coalitions DROP CONSTRAINT coalitions_pkey CASCADE")
        cur.execute("ALTER TABLE coalitions ALTER COLUMN id DROP NOT NULL")  # the PK's implied NOT NULL
        cur.execute("INSERT INTO coalitions (id, name) VALUES (NULL, 'ghost'), (1, 'The Order again'), "
                    "(1, 'and again'), (2, 'The Alliance again')")
    code, doc = check(settings)
    assert code == 1
    f = findings(doc)
    assert f[("null_pk", "coalitions", "id")]["count"] == 1
    dup = f[("duplicate", "coalitions", "id")]
    assert dup["count"] == 3 and dup["method"] == "scan"  # 1 twice extra, 2 once extra
    assert dup["sample"] == ["1", "2"]
    assert doc["violations"] == 4
    assert any(c["kind"] == "fk" and c["table"] == "coalitions_users" for c in doc["checks"])


def test_orphans_are_info_unless_strict(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory()
    seed_stable(pg_dsn)
    with connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO projects (id, name, parent_id) VALUES (50, 'child of nothing', 424242)")
        cur.execute("INSERT INTO project_sessions (id, project_id, campus_id, cursus_id) VALUES (60, 1, 77, 9)")
    code, doc = check(settings)
    assert code == 0 and doc["violations"] == 0 and doc["info"] == 3
    f = findings(doc)
    assert f[("orphan", "projects", "parent_id")]["sample"] == [424242]
    assert f[("orphan", "project_sessions", "campus_id")]["severity"] == "info"
    code, doc = check(settings, "--strict")
    assert code == 1 and doc["violations"] == 3


def test_result_is_stored_and_feeds_status(pg_dsn: str, settings_factory: Any) -> None:
    from netops.monitor.status import collect_status

    settings = settings_factory()
    seed_stable(pg_dsn)
    with connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE project_sessions DISABLE TRIGGER ALL")
        cur.execute("INSERT INTO project_sessions (id, project_id) VALUES (70, 9999)")
        doc = run_checks(conn)
        cur.execute("SELECT violations, result->'findings'->0->>'table' FROM netops.quality_runs")
        assert cur.fetchall() == [(1, "project_sessions")]
    assert doc["violations"] == 1
    status = collect_status(settings, pg_dsn)
    assert status["quality"]["violations"] == 1
    assert "data_quality" in {p["check"] for p in status["problems"]}


def test_text_output_and_unreachable_db(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory()
    seed_stable(pg_dsn)
    result = CliRunner().invoke(cli, ["check"], env=cli_env(settings))
    assert result.exit_code == 0
    assert result.output.startswith("data quality: OK")
    bad = settings_factory(NETOPS_DSN="postgresql://x@127.0.0.1:1/x")
    result = CliRunner().invoke(cli, ["check"], env=cli_env(bad))
    assert result.exit_code == 2
    assert "cannot connect to PostgreSQL" in result.output
