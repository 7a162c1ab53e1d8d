"""Smoke of the benchmark code, not a benchmark: `python -m bench.run --quick` at tiny sizes
(2,000-10,000 loader rows, 500 backlog changes, 20,000-row status tables, 5 ms / 440 calls/s),
into a temp dir — BENCHMARKS.md and bench/results.json are left alone. The real benchmarks
(`make bench`) are not part of the test run.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.dltsource import stable_config
from bench.run import main


def test_bench_quick_run_measures_and_renders(tmp_path: Path) -> None:
    out, results = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"
    assert main(["--quick", "--only", "sync,loader,backlog,status",
                 "--out", str(out), "--results", str(results)]) == 0
    r = json.loads(results.read_text())

    sync = r["sync"]["runs"][0]
    # the floor is asked of the simulator itself; a full sync makes exactly that many calls
    assert sync["full"]["server_calls"] == r["sync"]["floor_total"] == sync["full"]["min_calls"] == 23
    assert sync["full"]["rows"] > 35_000 and sync["full"]["wall"] > 0
    assert sum(p["inserted"] + p["updated"] + p["deleted"] for p in sync["nochange"]["phases"]) == 0
    # `--if-changed` on no change: only the probes (+ cursus' one-call fetch), counted by the simulator
    ic = sync["ifchanged"]
    assert ic["server_calls"] == ic["api_calls"] == ic["probe_calls"] + 1 == 5 < sync["nochange"]["server_calls"]
    assert ic["pulled"] == ["cursus"] and len(ic["skipped"]) == 7
    # it pulls an edit and a delete, and (by design) not a silent score edit on a count-only resource
    sees = sync["ifchanged_sees"]
    assert sees["project edit"]["pulled"] == ["cursus", "projects", "campus_projects",
                                              "project_sessions"]
    assert sees["project edit"]["rows_changed"] >= 1
    assert sees["coalition delete"]["pulled"] == ["cursus", "coalitions"]
    assert sees["coalition score edit"]["pulled"] == ["cursus"]

    for rec in r["loader"]["sizes"].values():
        assert rec["initial"][0]["inserted"] == rec["initial"][0]["staged"] > 0
        assert rec["reapply"][0]["updated"] > 0 and rec["nochange"][0]["updated"] == 0
        assert rec["raw"][0]["rows_per_s"] > 0 and rec["initial"][0]["peak_rss_mb"] > 0

    backlog = r["backlog"]["runs"][0]
    assert backlog["worker"]["items"] >= backlog["changes"] and backlog["rows_per_call"] > 0

    assert r["status"]["collect_ms"] and r["status"]["cli_ms"]

    text = out.read_text()
    for heading in ("## Headline", "## 1. Full stable sync", "## 2. No-change sync", "## 3. Loader",
                    "## 4. Backlog", "## 6. `netops status`", "make bench ONLY="):
        assert heading in text


def test_bench_monitor_is_registered_and_renders(tmp_path: Path) -> None:
    """`make bench ONLY=monitor` reaches bench/monitor_cost.py; its section is rendered."""
    out, results = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"
    assert main(["--quick", "--only", "monitor", "--out", str(out), "--results", str(results)]) == 0
    m = json.loads(results.read_text())["monitor"]
    assert [s["rows"] for s in m["counters"]["by_size"]] == [10_000]
    assert m["history"]["runs"][0]["pruned"]["api_calls"] > 0 and m["history"]["bytes"] > 0
    assert m["history"]["job"]["one_pass_ms"] > 0 and m["history"]["job"]["two_passes_ms"] > 0
    assert "## Monitor bookkeeping" in out.read_text()


def test_dlt_config_is_the_same_endpoints() -> None:
    cfg = stable_config("http://127.0.0.1:1", "tok")
    assert cfg["client"]["paginator"] == {"type": "header_link"}
    paths = {r["endpoint"]["path"] for r in cfg["resources"]}
    # the endpoints of netops' full sync: campus_achievements come nested in the achievements
    assert paths == {"cursus/21", "campus", "cursus/21/projects", "coalitions", "achievements"}


def test_bench_shared_budget_runs_and_renders(tmp_path: Path) -> None:
    """`make bench ONLY=budget,keys,claim` (issue 12's figures): real subprocesses against the
    simulator's limits at tiny sizes; every job exits 0, the windows hold (no 429), the wall is
    split into start-up / middle / tail, and the section renders with its targets."""
    out, results = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"
    assert main(["--quick", "--only", "budget,keys,claim", "--out", str(out), "--results", str(results)]) == 0
    r = json.loads(results.read_text())
    [run] = r["budget"]["runs"]
    assert set(run["exit_codes"].values()) == {0} and run["server_429"] == 0
    assert 0 < run["first_call_at"] < run["last_call_at"] <= run["wall"] and run["middle_calls_per_s"] > 0
    assert run["calls_per_s"] <= r["budget"]["setting"]["rate"]
    two = r["keys"]["by_keys"]["2"][0]
    assert len(two["per_key_calls"]) == 2 and min(two["per_key_calls"].values()) > 0 and two["server_429"] == 0
    assert r["claim"]["alone_ms"]["median"] < r["claim"]["call_ms"]["real"]
    text = out.read_text()
    for heading in ("### (a) Every job at once", "### (b) Initial load of the backlog tables", "### (c) The cost of one claim",
                    "Where the wall goes (medians)"):
        assert heading in text
