"""Fault matrix: every simulator fault × the stable sync and the backlog run (issue 7, item 2).

Each stable case starts from a mirror that holds the pristine simulator (old state), changes
the simulator (one coalition and one achievement renamed, one achievement deleted: the new
state), arms one fault on `/v2/achievements` and runs `netops sync stable --phase coalitions
--phase achievements` as a real subprocess. Then, whatever the fault:

- every mirrored table equals either its old or its new state (digest of all rows), never a mix;
- `netops check`'s invariants are clean and no delta table holds rows;
- a recoverable fault: exit 0 and both tables are new (so equal to the simulator);
- a fault that cannot be recovered: exit 1, stderr is ONE line naming `/v2/achievements` and the
  cause, coalitions (which ran first) is new and achievements is old.

The backlog cases arm faults on `/v2/users` (detection pages users by id keyset there, and the
worker fetches payload-less items with `filter[id]`) and check the same promises for the backlog
tables, plus: a failed detection keeps its high-water mark, and a failed fetch keeps the item with
its error.
"""

from __future__ import annotations

from typing import Any

import psycopg2
import pytest

from tests.reliability.conftest import (
    BACKLOG,
    Mirror,
    base_env,
    digest,
    each_table_old_or_new,
    invariants,
    netops_cli,
    one_line_error,
    settings_from,
)

EP = "/v2/achievements"
PHASE_ARGS = ("sync", "stable", "--phase", "coalitions", "--phase", "achievements")


def mutate_stable(sim: Any) -> dict[str, int]:
    """The 'new state': deterministic changes the faulted run should (or should not) pick up."""
    coalition = sim.expected_table("coalitions", values=False)["keys"][0][0]
    ach = [k[0] for k in sim.expected_table("achievements", values=False)["keys"][:2]]
    sim.modify("coalitions", coalition, {"name": "Coalition renamed by the API"})
    sim.modify("achievements", ach[0], {"name": "Achievement renamed by the API"})
    sim.delete("achievements", ach[1])
    return {"coalition": coalition, "renamed": ach[0], "deleted": ach[1]}


@pytest.fixture(scope="module")
def new_state(pg_server: Any, mirror_template: str, sim_server: Any,
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    """Digests of every table after a clean run of the two phases on the changed simulator."""
    from netops.pipeline.stable.sync import run_stable_sync
    from tests.fixtures.pg import scratch_database

    with scratch_database(pg_server, "rel_new", template_dsn=mirror_template) as dsn:
        try:
            sim_server.reset()
            mutate_stable(sim_server)
            settings = settings_from(base_env(sim_server, dsn, tmp_path_factory.mktemp("new-state")))
            assert run_stable_sync(settings, ["coalitions", "achievements"]).ok
            state = digest(dsn)
            exp = sim_server.expected()
            assert state["achievements"][0] == exp["achievements"]
        finally:
            sim_server.reset()
    return state


# (case id, fault spec, extra env, expected outcome, words the one-line error must hold)
# outcome: "new" = completes with the simulator's data; "fail" = exit 1, table kept;
# "drift" = completes, and the rows of the drifted page hold NULL for the lost field.
RECOVERABLE: list[tuple[str, Any, dict[str, str], str, tuple[str, ...]]] = [
    ("429-storm", "429@{ep},count=3,seconds=1", {}, "new", ()),
    ("500-twice", "500@{ep},count=2", {}, "new", ()),
    ("502-twice", "502@{ep},count=2", {}, "new", ()),
    ("503-twice", "503@{ep},count=2", {}, "new", ()),
    ("slow-once", "slow@{ep},count=1,seconds=3", {"NETOPS_HTTP_TIMEOUT": "1"}, "new", ()),
    ("reset-twice", "reset@{ep},count=2", {}, "new", ()),
    ("token-revoked-mid-run", "token_revoked@{ep},count=1,after=3", {}, "new", ()),
    ("malformed-json-twice", "malformed_json@{ep},count=2", {}, "new", ()),
    ("truncated-twice", "truncated@{ep},count=2", {}, "new", ()),
    ("html-200-twice", "html_200@{ep},count=2", {}, "new", ()),
    ("extra-field-every-page", "extra_field@{ep}", {}, "new", ()),
    ("null-id-once", "null_id@{ep},count=1", {}, "new", ()),
    ("duplicate-id-once", "duplicate_id@{ep},count=1", {}, "new", ()),
    ("shift-once", "shift@{ep},count=1", {}, "new", ()),
    ("shift-30pct", "shift@{ep},rate=0.3", {}, "new", ()),
    ("shift-every-page", "shift@{ep}", {}, "new", ()),
    ("lying-total-high-once", "lying_total@{ep},count=1,delta=50", {}, "new", ()),
    ("lying-total-high-always", "lying_total@{ep},delta=150", {}, "new", ()),
    ("lying-total-low-once", "lying_total@{ep},count=1,delta=-700", {}, "new", ()),
    ("missing-field-once", "missing_field@{ep},count=1,field=name", {}, "drift", ()),
    ("renamed-field-once", "renamed_field@{ep},count=1,field=name,to=title_text", {}, "drift", ()),
]
FATAL: list[tuple[str, Any, dict[str, str], str, tuple[str, ...]]] = [
    ("429-forever", "429@{ep},seconds=0", {}, "fail", ("429",)),
    ("500-forever", "500@{ep},after=4", {}, "fail", ("HTTP 500", "3 attempts")),
    ("503-forever", "503@{ep}", {}, "fail", ("HTTP 503",)),
    ("slow-forever", "slow@{ep},seconds=2", {"NETOPS_HTTP_TIMEOUT": "0.5"}, "fail", ("timeout",)),
    ("reset-forever", "reset@{ep}", {}, "fail", ("connection",)),
    ("token-revoked-forever", "token_revoked@{ep}", {}, "fail", ("401",)),
    ("malformed-json-forever", "malformed_json@{ep},after=2", {}, "fail", ("not JSON",)),
    ("truncated-forever", "truncated@{ep}", {}, "fail", ("cut short",)),
    ("html-200-forever", "html_200@{ep}", {}, "fail", ("not JSON", "text/html")),
    ("wrong-type-id", "wrong_type@{ep},field=id", {}, "fail", ("not an integer",)),
    ("wrong-type-field", "wrong_type@{ep},field=nbr_of_success", {}, "fail", ("nbr_of_success",)),
    ("missing-id", "missing_field@{ep},field=id", {}, "fail", ("without an id",)),
    ("null-id-forever", "null_id@{ep}", {}, "fail", ("without an id",)),
    ("duplicate-id-forever", "duplicate_id@{ep}", {}, "fail", ("twice in one page",)),
    ("shift-and-lying-total-forever", ["shift@{ep}", "lying_total@{ep},delta=50"], {}, "fail", ("shifting",)),
]
CASES = RECOVERABLE + FATAL


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_stable_sync_under_fault(case: tuple[str, Any, dict[str, str], str, tuple[str, ...]], sim: Any,
                                 mirror: Mirror, new_state: dict[str, tuple[int, str]], tmp_path: Any) -> None:
    name, spec, extra, outcome, words = case
    old = digest(mirror.dsn)
    changed = mutate_stable(sim)
    for one in [spec] if isinstance(spec, str) else spec:
        sim.add_fault(one.format(ep=EP))
    env = base_env(sim, mirror.dsn, tmp_path, **extra)

    proc = netops_cli(env, *PHASE_ARGS)

    got = digest(mirror.dsn)
    drifted = {"achievements"} if outcome == "drift" else set()
    verdict = each_table_old_or_new({t: v for t, v in got.items() if t not in drifted}, old, new_state)
    assert invariants(mirror.dsn) == []
    for f in sim.list_faults():
        assert f["fired"] > 0, f"fault {f['spec']} never fired: the case proves nothing"
    with psycopg2.connect(mirror.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT phase, status, error FROM netops.sync_runs ORDER BY id")
        runs = cur.fetchall()
        cur.execute("SELECT name FROM achievements WHERE id = %s", (changed["renamed"],))
        renamed = cur.fetchone()
    conn.close()
    assert [r[1] for r in runs if r[1] == "running"] == [], "no phase may be left 'running'"

    if outcome == "new":
        assert proc.returncode == 0, proc.stderr
        assert verdict["coalitions"] == "new" and verdict["achievements"] == "new"
        assert renamed == ("Achievement renamed by the API",)
    elif outcome == "drift":
        assert proc.returncode == 0, proc.stderr
        # keys are the new ones; the page that lost the field stored NULL there (docs/api.md: a
        # missing field is NULL unless it is the primary key); every other row is exact
        assert got["achievements"][0] == new_state["achievements"][0]
        with psycopg2.connect(mirror.dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM achievements WHERE name IS NULL")
            nulls = cur.fetchone()[0]
        conn.close()
        assert nulls == 100  # exactly page 1 (count=1 fires on the first request)
        assert verdict["coalitions"] == "new"
    else:
        assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
        line = one_line_error(proc)
        for w in words:
            assert w in line, (w, line)
        if name == "token-revoked-forever":
            # the fault revokes the one token every call shares: with all phases fetched at once,
            # the first phase whose call meets it fails (coalitions or achievements), the run
            # stops there, and every table is old or new
            assert runs[-1][0] in ("coalitions", "achievements") and runs[-1][1] == "failed", runs
            assert runs[-1][0] in line, line
            assert verdict["achievements"] == "old" and verdict["coalitions"] in ("old", "new")
        else:
            assert EP in line and "achievements" in line, line
            assert verdict["coalitions"] == "new" and verdict["achievements"] == "old"
            assert runs[-1][0] == "achievements" and runs[-1][1] == "failed" and EP in runs[-1][2]
    # the tables outside the two phases were not touched, whatever happened
    for t in verdict:
        if t not in ("coalitions", "achievements", "campus_achievements", "achievements_users"):  # + cascades
            assert verdict[t] in ("old", "old=new"), t


TOKEN_CASES = [
    # (id, fault on POST /oauth/token, recovers?, words of the error line)
    ("token-503-twice", "503@/oauth/token,count=2", True, ()),
    ("token-429-once", "429@/oauth/token,count=1,seconds=1", True, ()),
    ("token-reset-once", "reset@/oauth/token,count=1", True, ()),
    ("token-500-forever", "500@/oauth/token", False, ("/oauth/token", "HTTP 500", "after 3 attempt")),
]


@pytest.mark.parametrize("case", TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
def test_stable_sync_when_the_token_endpoint_fails(case: tuple[str, str, bool, tuple[str, ...]], sim: Any,
                                                   mirror: Mirror, new_state: dict[str, tuple[int, str]],
                                                   tmp_path: Any) -> None:
    """The first call of a run with no stored token must fetch one: a failing token endpoint is
    retried like any call (a nightly run must not die of one 503), and named when it stays down."""
    name, spec, recovers, words = case
    old = digest(mirror.dsn)
    mutate_stable(sim)
    sim.add_fault(spec)
    env = base_env(sim, mirror.dsn, tmp_path)     # a fresh state dir: no token yet

    proc = netops_cli(env, *PHASE_ARGS)

    assert all(f["fired"] > 0 for f in sim.list_faults()), sim.list_faults()
    verdict = each_table_old_or_new(digest(mirror.dsn), old, new_state)
    assert invariants(mirror.dsn) == []
    if recovers:
        assert proc.returncode == 0, proc.stderr
        assert verdict["coalitions"] == "new" and verdict["achievements"] == "new"
    else:
        assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
        line = one_line_error(proc)
        for w in words:
            assert w in line, (w, line)
        assert all(v in ("old", "old=new") for v in verdict.values()), verdict


def test_phase_07_source_fault_keeps_table_and_names_endpoint(sim: Any, mirror: Mirror, tmp_path: Any) -> None:
    """Phase 07 is derived from the achievements listing; run alone (`--phase
    campus_achievements`) it pages that listing itself: a failure on page 5 must fail the phase
    as a whole (table kept), not load the links of the pages read before it."""
    old = digest(mirror.dsn)
    ach = sim.expected_table("achievements", values=False)["keys"][5][0]
    sim.delete("achievements", ach)      # a change the phase would bring if it completed
    sim.add_fault("500@/v2/achievements,after=4")
    env = base_env(sim, mirror.dsn, tmp_path)
    proc = netops_cli(env, "sync", "stable", "--phase", "campus_achievements")
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert "/v2/achievements" in line and "HTTP 500" in line and "campus_achievements" in line
    assert digest(mirror.dsn) == old     # nothing committed: not achievements, not the links
    assert invariants(mirror.dsn) == []


def test_phase_07_with_a_shared_campus_name_fails_and_keeps_table(sim: Any, mirror: Mirror, tmp_path: Any) -> None:
    """Two mirrored campuses sharing a name make the derivation ambiguous: one line naming
    them, phase 07's table as it was (phase 02 committed the renamed campus before it)."""
    old = digest(mirror.dsn)
    rows = sim.expected_table("campuses")["rows"]
    sim.modify("campuses", rows[1]["id"], {"name": rows[0]["name"]})
    env = base_env(sim, mirror.dsn, tmp_path)
    proc = netops_cli(env, "sync", "stable")
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert "campus_achievements" in line and repr(rows[0]["name"]) in line
    got = digest(mirror.dsn)
    assert got["campus_achievements"] == old["campus_achievements"]
    assert got["campuses"] != old["campuses"]   # phase 02 ran and committed the rename
    assert invariants(mirror.dsn) == []


def test_nested_phases_survive_shift_on_projects(sim: Any, mirror: Mirror, tmp_path: Any) -> None:
    """Projects feed three tables (03, 06, 08 from nested lists): a shifted page must not lose a
    project, or its links and sessions would be pruned with it."""
    sim.add_fault("shift@/v2/cursus/:id/projects,count=2")
    env = base_env(sim, mirror.dsn, tmp_path)
    proc = netops_cli(env, "sync", "stable")
    assert proc.returncode == 0, proc.stderr
    assert [f["fired"] for f in sim.list_faults()] == [2], "the shift never fired: the case proves nothing"
    exp = sim.expected()
    got = digest(mirror.dsn)
    for t in ("projects", "campus_projects", "project_sessions"):
        assert got[t][0] == exp[t], t
        assert [list(k) for k in sim.expected_table(t, values=False)["keys"]] == \
            __import__("tests.reliability.conftest", fromlist=["keys"]).keys(mirror.dsn, t)
    assert invariants(mirror.dsn) == []


# ------------------------------------------------------------------------------------ backlog
def mutate_live(sim: Any) -> list[int]:
    """Touch three users (moves updated_at: detection must see them)."""
    ids = [k[0] for k in sim.expected_table("users", values=False)["keys"][10:13]]
    for i, uid in enumerate(ids):
        sim.modify("users", uid, {"location": f"rel-{i}"}, touch=True)
    return ids


def user_locations(dsn: str, ids: list[int]) -> dict[int, Any]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, location FROM users WHERE id = ANY(%s)", (ids,))
        out = dict(cur.fetchall())
    conn.close()
    return out


def marks(dsn: str) -> dict[str, Any]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT resource, high_water FROM netops.backlog_marks")
        out = dict(cur.fetchall())
    conn.close()
    return out


BACKLOG_RECOVERABLE = [
    ("429", "429@/v2/cursus/:id/users,count=2,seconds=1", {}),
    ("500", "500@/v2/cursus/:id/users,count=2", {}),
    ("503", "503@/v2/cursus/:id/users,count=2", {}),
    ("slow", "slow@/v2/cursus/:id/users,count=1,seconds=2", {"NETOPS_HTTP_TIMEOUT": "0.5"}),
    ("reset", "reset@/v2/cursus/:id/users,count=2", {}),
    ("token-revoked", "token_revoked@/v2/cursus/:id/users,count=1", {}),
    ("malformed-json", "malformed_json@/v2/cursus/:id/users,count=2", {}),
    ("truncated", "truncated@/v2/cursus/:id/users,count=2", {}),
    ("html-200", "html_200@/v2/cursus/:id/users,count=2", {}),
    ("extra-field", "extra_field@/v2/cursus/:id/users", {}),
    ("null-id-once", "null_id@/v2/cursus/:id/users,count=1", {}),
    ("duplicate-id-once", "duplicate_id@/v2/cursus/:id/users,count=1", {}),
    ("lying-total", "lying_total@/v2/cursus/:id/users,delta=50", {}),
]
BACKLOG_FATAL = [
    ("500-forever", "500@/v2/cursus/:id/users", {}, ("HTTP 500",)),
    ("reset-forever", "reset@/v2/cursus/:id/users", {}, ("connection",)),
    ("html-200-forever", "html_200@/v2/cursus/:id/users", {}, ("not JSON",)),
    ("truncated-forever", "truncated@/v2/cursus/:id/users", {}, ("cut short",)),
    ("token-revoked-forever", "token_revoked@/v2/cursus/:id/users", {}, ("401",)),
]


@pytest.mark.parametrize("case", BACKLOG_RECOVERABLE, ids=[c[0] for c in BACKLOG_RECOVERABLE])
def test_backlog_detect_and_run_recover(case: tuple[str, str, dict[str, str]], sim: Any, mirror: Mirror,
                                        tmp_path: Any) -> None:
    name, spec, extra = case
    old = digest(mirror.dsn, BACKLOG)
    ids = mutate_live(sim)
    sim.add_fault(spec)
    env = base_env(sim, mirror.dsn, tmp_path, **extra)
    det = netops_cli(env, "backlog", "detect")
    assert det.returncode == 0, det.stdout + det.stderr
    run = netops_cli(env, "backlog", "run", "--once")
    assert run.returncode == 0, run.stdout + run.stderr
    assert sim.list_faults()[0]["fired"] > 0
    assert user_locations(mirror.dsn, ids) == {uid: f"rel-{i}" for i, uid in enumerate(ids)}
    got = digest(mirror.dsn, BACKLOG)
    assert got["users"] != old["users"]
    for t in BACKLOG:
        assert got[t][0] == sim.expected()[t], t
    assert invariants(mirror.dsn) == []


@pytest.mark.parametrize("case", BACKLOG_FATAL, ids=[c[0] for c in BACKLOG_FATAL])
def test_backlog_detect_failure_keeps_mark_and_tables(case: tuple[str, str, dict[str, str], tuple[str, ...]],
                                                      sim: Any, mirror: Mirror, tmp_path: Any) -> None:
    name, spec, extra, words = case
    old = digest(mirror.dsn, BACKLOG)
    marks_before = marks(mirror.dsn)
    ids = mutate_live(sim)
    sim.add_fault(spec)
    env = base_env(sim, mirror.dsn, tmp_path, **extra)
    det = netops_cli(env, "backlog", "detect")
    assert det.returncode == 1, det.stdout + det.stderr
    failed = [ln for ln in det.stdout.splitlines() if "FAILED" in ln]
    if name == "token-revoked-forever":
        # refused credentials stop the whole command (retrying other resources cannot help):
        # one line on stderr, not a per-resource FAILED line
        failed = [one_line_error(det)]
    assert len(failed) == 1 and "/users" in failed[0], det.stdout + det.stderr
    for w in words:
        assert w in failed[0], (w, failed[0])
    assert marks(mirror.dsn)["users"] == marks_before["users"]  # the window will be read again
    run = netops_cli(env, "backlog", "run", "--once")
    assert run.returncode == 0, run.stdout + run.stderr
    assert digest(mirror.dsn, ["users"]) == {"users": old["users"]}
    assert invariants(mirror.dsn) == []
    # the API heals: the next detect + run catches up completely
    sim.clear_faults()
    assert netops_cli(env, "backlog", "detect").returncode == 0
    assert netops_cli(env, "backlog", "run", "--once").returncode == 0
    assert user_locations(mirror.dsn, ids) == {uid: f"rel-{i}" for i, uid in enumerate(ids)}
    for t in BACKLOG:
        assert digest(mirror.dsn, [t])[t][0] == sim.expected()[t], t


@pytest.mark.parametrize("spec,words", [("500@/v2/cursus/:id/users", ("HTTP 500",)),
                                        ("html_200@/v2/cursus/:id/users", ("not JSON",))],
                         ids=["500", "html-200"])
def test_backlog_fetch_failure_keeps_item_with_its_error(spec: str, words: tuple[str, ...], sim: Any,
                                                         mirror: Mirror, tmp_path: Any) -> None:
    """An item without a payload is fetched by the worker (`filter[id]`); when that keeps failing
    the item ends `failed` with the endpoint and cause in `last_error` — kept, not dropped."""
    uid = sim.expected_table("users", values=False)["keys"][20][0]
    sim.modify("users", uid, {"location": "fetched-later"}, touch=True)
    env = base_env(sim, mirror.dsn, tmp_path, BACKLOG_MAX_RETRIES="2")
    with psycopg2.connect(mirror.dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO netops.backlog_items (resource, entity_id, action, state, reason) "
                    "VALUES ('users', %s, 'upsert', 'pending', 'manual') RETURNING id", (uid,))
        item_id = cur.fetchone()[0]
    conn.close()
    before = digest(mirror.dsn, BACKLOG)
    sim.add_fault(spec)
    run = netops_cli(env, "backlog", "run", "--once")
    assert run.returncode == 1, run.stdout + run.stderr
    with psycopg2.connect(mirror.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT state, attempts, last_error FROM netops.backlog_items WHERE id = %s", (item_id,))
        state, attempts, error = cur.fetchone()
    conn.close()
    assert state == "failed" and attempts == 2, (state, attempts, error)
    assert "/users" in error and all(w in error for w in words), error
    assert digest(mirror.dsn, BACKLOG) == before
    assert invariants(mirror.dsn) == []
    # retry --failed after the API heals: the item is loaded
    sim.clear_faults()
    assert netops_cli(env, "backlog", "retry", "--failed").returncode == 0
    assert netops_cli(env, "backlog", "run", "--once").returncode == 0
    assert user_locations(mirror.dsn, [uid]) == {uid: "fetched-later"}
