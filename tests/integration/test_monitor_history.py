"""history.json (`netops metrics history`), the API-call running totals and retention (migration
011), and the one-read-per-evaluation promises of the monitor (issue 14 leftovers)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from netops.config import Settings
from netops.monitor import evaluation
from netops.monitor.facts import STABLE_PHASES
from netops.monitor.metrics import collect_snapshot, metrics_document
from tests.fixtures.pg import query
from tests.integration.test_monitor_seed import healthy, insert_backlog, insert_calls, insert_run
from tests.integration.test_operator_scenarios import netops


def _api_total(snap: dict, code: str) -> int:
    return sum(r["calls"] for r in snap["counters"]["api_calls"] if r["code"] == code)


def test_history_file_has_the_24h_series_and_keeps_the_tables_bounded(
        settings_factory: Callable[..., Settings], tmp_path: Path) -> None:
    settings = settings_factory(NETOPS_API_CALLS_KEEP_DAYS=3)
    healthy(settings.dsn, settings)                      # 20 calls at 200, 15 min ago; one run an hour ago
    insert_calls(settings.dsn, {429: 2, 500: 1}, ago=5 * 3600)
    insert_calls(settings.dsn, {200: 7}, ago=4 * 86400)  # past the 3-day retention
    insert_run(settings.dsn, started_ago=7200, failed=STABLE_PHASES[2][0])  # names are the pipeline's
    insert_backlog(settings.dsn, {"pending": 4, "failed": 1})
    query(settings.dsn, "INSERT INTO netops.monitor_samples (at, backlog_pending, backlog_processing, backlog_failed) "
                        "VALUES (now() - interval '3 days', 1, 0, 0)")  # past the 48 h samples retention
    before = metrics_document(collect_snapshot(settings, settings.dsn))

    out = tmp_path / "web" / "history.json"
    r = netops(settings, "metrics", "history", "--output", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["schema_version"] == 1
    hours = doc["api"]["hours"]
    assert len(hours) == 24 and [h["hour_unix"] for h in hours] == sorted(h["hour_unix"] for h in hours)
    assert sum(h["ok"] for h in hours) == 20 and sum(h["rate_limited"] for h in hours) == 2
    assert sum(h["errors"] for h in hours) == 1 and sum(h["calls"] for h in hours) == 23
    runs = doc["sync_runs"]
    assert [r["status"] for r in runs] == ["failed", "success"]      # oldest first
    assert runs[1]["duration_seconds"] == 10.0 * len(STABLE_PHASES) and len(runs[1]["phases"]) == len(STABLE_PHASES)
    assert doc["backlog"]["available"] is True
    assert doc["backlog"]["samples"][-1]["pending"] == 4 and doc["backlog"]["samples"][-1]["failed"] == 1
    assert doc["tables"]["campuses"]["rows"] == 3
    assert doc["retention"]["pruned"] == {"monitor_samples": 1, "api_calls": 7}

    # pruning deleted 7 old call rows: the counter did not go down
    after = metrics_document(collect_snapshot(settings, settings.dsn))
    assert _api_total(before, "200") == _api_total(after, "200") == 27
    assert query(settings.dsn, "SELECT count(*) FROM netops.api_calls")[0][0] == 23
    insert_calls(settings.dsn, {200: 2})
    assert _api_total(metrics_document(collect_snapshot(settings, settings.dsn)), "200") == 29


def test_history_with_the_database_down_keeps_the_last_file(settings_factory: Callable[..., Settings],
                                                            tmp_path: Path) -> None:
    out = tmp_path / "history.json"
    out.write_text('{"generated_at": "earlier"}\n')
    down = settings_factory(NETOPS_DSN="postgresql://nobody@127.0.0.1:1/x")
    r = netops(down, "metrics", "history", "--output", str(out))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "database unreachable" in r.stderr and "left as it was" in r.stderr
    assert out.read_text() == '{"generated_at": "earlier"}\n'


def test_an_export_opens_one_connection_and_reads_the_token_once(
        settings_factory: Callable[..., Settings], monkeypatch) -> None:
    settings = settings_factory()
    healthy(settings.dsn, settings)
    import psycopg2

    from netops.monitor import facts

    opened, reads = [], []
    real_connect, real_read = psycopg2.connect, Path.read_text
    monkeypatch.setattr(psycopg2, "connect", lambda *a, **k: opened.append(1) or real_connect(*a, **k))
    monkeypatch.setattr(Path, "read_text",
                        lambda self, *a, **k: (reads.append(self) if self == settings.token_file else None)
                        or real_read(self, *a, **k))
    snap = metrics_document(collect_snapshot(settings, settings.dsn))
    assert snap["counters"]["api_calls"] and snap["token"]["present"]
    assert len(opened) == 1, opened
    assert reads == [settings.token_file], reads
    # the same promise with the database down (the key rows come from the files only)
    reads.clear()
    evaluation.gather(settings, None)
    assert reads == [settings.token_file]
    assert facts.token_facts(settings).present  # the standalone reader still works


def test_two_keys_are_two_budgets_in_every_view_and_the_keys_are_read_once(
        settings_factory: Callable[..., Settings], monkeypatch) -> None:
    """N application keys give N budgets: status, the metrics (JSON and Prometheus), history.json
    and the dashboard all say keys × budget, from one read of the keys per evaluation."""
    from netops import config
    from netops.monitor.dashboard import gather as dashboard_gather
    from netops.monitor.history import collect_history
    from netops.monitor.metrics import prometheus_text
    from netops.monitor.status import status_document
    from tests.integration.test_monitor_metrics import one, parse

    reads = []
    real_read = config.read_key_set
    monkeypatch.setattr(config, "read_key_set", lambda *a, **k: reads.append(1) or real_read(*a, **k))
    settings = settings_factory(NETOPS_CLIENT_ID="u-one", NETOPS_CLIENT_SECRET="s-one",
                                NETOPS_CLIENT_ID_2="u-two", NETOPS_CLIENT_SECRET_2="s-two",
                                NETOPS_RATE_PER_HOUR=1000, NETOPS_RATE_PER_SECOND=2)
    healthy(settings.dsn, settings)  # 20 calls in the last hour
    # and their 20 slots, 12 + 8 (the limiter's count: what every view calls this hour's calls)
    query(settings.dsn, "INSERT INTO netops.api_keys (label, client_id) VALUES ('default', 'u-one'), ('2', 'u-two')")
    query(settings.dsn, "INSERT INTO netops.api_slots (key_label, at) SELECT CASE WHEN n <= 12 THEN 'default' "
                        "ELSE '2' END, now() - interval '15 minutes' FROM generate_series(1, 20) n")

    ev = evaluation.evaluate(settings, settings.dsn, check_services=False, counters=True)
    doc = status_document(ev)
    # read once, when the settings were built: the evaluation's budget and key rows use that read
    assert len(reads) == 1, "the keys are read once (budget and key rows alike)"
    assert [k.label for k in ev.facts.keys] == ["default", "2"]
    assert (doc["api"]["budget_per_hour"], doc["api"]["keys"]) == (2000, 2)
    snap = collect_snapshot(settings, settings.dsn, evaluation=ev)
    mdoc = metrics_document(snap)
    assert (mdoc["api"]["budget_per_hour"], mdoc["api"]["budget_per_second"]) == (2000, 4.0)
    assert mdoc["api"]["utilisation_ratio"] == 0.01  # 20 / 2000
    assert mdoc["api"]["calls_last_hour"] == doc["api"]["calls_last_hour"] == 20
    assert [k["calls_last_hour"] for k in doc["api_keys"]] == [12, 8]
    prom = parse(prometheus_text(snap))
    assert one(prom, "netops_api_budget_calls_per_hour") == 2000
    assert one(prom, "netops_api_budget_calls_per_second") == 4
    assert collect_history(settings, settings.dsn)["api"]["budget_per_hour"] == 2000
    assert dashboard_gather(settings, settings.dsn).rate_per_hour == 2000


def _same_content(doc: dict, drop: tuple[str, ...]) -> dict:
    """`doc` without what changes between two runs seconds apart (clocks, ages, sizes)."""
    out = json.loads(json.dumps(doc))
    for path in drop:
        *parents, last = path.split(".")
        at = out
        for p in parents:
            at = at.get(p) or {}
        if isinstance(at, dict):
            at.pop(last, None)
    for k in out.get("api_keys") or []:
        k.pop("token_ttl_seconds", None)
    for p in out.get("phases") or []:
        p.pop("age_seconds", None)
        p.pop("last_success_age_seconds", None)
    return out


STATUS_CLOCKS = ("checked_at", "elapsed_ms", "database.size_bytes", "token.ttl_seconds", "last_sync.age_seconds",
                 "last_sync.oldest_success_age_seconds", "disk.log_dir.free_bytes",
                 "disk.log_dir.free_percent", "disk.state_dir.free_bytes", "disk.state_dir.free_percent")
HISTORY_CLOCKS = ("generated_at", "generated_at_unix", "backlog.samples")


def test_status_with_history_writes_both_files_as_the_two_commands_do(
        settings_factory: Callable[..., Settings], tmp_path: Path) -> None:
    """The status-json cron job's one process (`status --json --output --history`) writes what
    `netops status --json` prints and what `netops metrics history` writes."""
    settings = settings_factory(NETOPS_NGINX_URL="http://127.0.0.1:1/")  # nothing listens: nginx_down
    healthy(settings.dsn, settings)
    insert_backlog(settings.dsn, {"pending": 3})
    alone = netops(settings, "status", "--json")
    assert alone.returncode == 1 and json.loads(alone.stdout)["alerts"]["firing"] == ["nginx_down"], alone.stdout
    r = netops(settings, "metrics", "history", "--output", str(tmp_path / "alone.json"))
    assert r.returncode == 0, r.stderr
    web = tmp_path / "web"
    both = netops(settings, "status", "--json", "--output", str(web / "status.json"),
                  "--history", str(web / "history.json"))
    assert both.returncode == 1 and both.stdout == "" and both.stderr == "", both.stderr
    status = json.loads((web / "status.json").read_text())
    assert _same_content(status, STATUS_CLOCKS) == _same_content(json.loads(alone.stdout), STATUS_CLOCKS)
    assert [p["phase"] for p in status["phases"]] == [p for p, _ in STABLE_PHASES]
    history = json.loads((web / "history.json").read_text())
    assert _same_content(history, HISTORY_CLOCKS) == _same_content(json.loads((tmp_path / "alone.json").read_text()),
                                                                   HISTORY_CLOCKS)
    assert history["backlog"]["samples"][-1]["pending"] == 3 and history["tables"]["campuses"]["rows"] == 3
    assert (web / "status.json").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in web.iterdir()) == ["history.json", "status.json"]  # no temp file left
    bad = netops(settings, "status", "--output", str(web / "x.json"))
    assert bad.returncode == 2 and "give --json too" in bad.stderr


def test_status_with_history_reads_the_shared_facts_once_on_one_connection(
        settings_factory: Callable[..., Settings], monkeypatch) -> None:
    import psycopg2

    from netops.db import monitor_facts
    from netops.monitor.history import evaluate_with_history

    settings = settings_factory()
    healthy(settings.dsn, settings)
    calls: dict[str, int] = {}

    def counted(module: object, name: str) -> None:
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, **k: calls.__setitem__(name, calls.get(name, 0) + 1)
                            or real(*a, **k))

    for name in ("connect",):
        counted(psycopg2, name)
    for name in ("table_counts", "backlog_facts", "sync_lock_held"):
        counted(monitor_facts, name)
    both = evaluate_with_history(settings, settings.dsn, check_services=False)
    assert both.history is not None and both.unavailable is None
    assert both.evaluation.facts.db_error is None
    assert calls == {"connect": 1, "table_counts": 1, "backlog_facts": 1, "sync_lock_held": 1}, calls
    assert both.history["tables"]["campuses"]["rows"] == both.evaluation.facts.tables["campuses"].rows


def test_history_outage_is_said_once_not_every_minute(settings_factory: Callable[..., Settings],
                                                      tmp_path: Path) -> None:
    web = tmp_path / "web"
    args = ("status", "--json", "--output", str(web / "status.json"), "--history", str(web / "history.json"))
    up = settings_factory()
    healthy(up.dsn, up)
    assert netops(up, *args).returncode == 0
    last_good = (web / "history.json").read_text()
    down = settings_factory(NETOPS_DSN="postgresql://nobody@127.0.0.1:1/x")  # same state dir
    first, second = netops(down, *args), netops(down, *args)
    assert first.returncode == second.returncode == 2
    assert first.stderr.count("\n") == 1 and "history.json not written" in first.stderr, first.stderr
    assert second.stderr == "", second.stderr  # the same outage: status.json says it, cron_output.log once
    assert json.loads((web / "status.json").read_text())["alerts"]["firing"] == ["database_down"]
    assert (web / "history.json").read_text() == last_good
    assert netops(up, *args).stderr == "" and (web / "history.json").read_text() != last_good
    again = netops(down, *args)  # a new outage is said again
    assert again.stderr.count("\n") == 1, again.stderr


def test_db_size_advice_says_what_is_true_api_calls_are_pruned_by_the_job(
        settings_factory: Callable[..., Settings], tmp_path: Path) -> None:
    """The db_size advice does not send the operator to delete netops.api_calls rows: the
    status-json job prunes them (to NETOPS_API_CALLS_KEEP_DAYS, which it names); seen here."""
    settings = settings_factory(NETOPS_API_CALLS_KEEP_DAYS=3, NETOPS_ALERT_DB_SIZE_BYTES=1)
    healthy(settings.dsn, settings)
    insert_calls(settings.dsn, {200: 7}, ago=4 * 86400)  # past the 3-day retention
    r = netops(settings, "status", "--json", "--output", str(tmp_path / "status.json"),
               "--history", str(tmp_path / "history.json"))
    assert r.returncode == 1, r.stderr
    [advice] = [p["message"] for p in json.loads((tmp_path / "status.json").read_text())["problems"]
                if p["check"] == "db_size"]
    assert "NETOPS_API_CALLS_KEEP_DAYS=3 days" in advice and "delete old" not in advice, advice
    assert json.loads((tmp_path / "history.json").read_text())["retention"]["pruned"]["api_calls"] == 7
    assert query(settings.dsn, "SELECT count(*) FROM netops.api_calls WHERE at < now() - interval '3 days'")[0][0] == 0
