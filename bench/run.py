"""`make bench` / `python -m bench.run [--only NAME[,NAME]] [--runs N] [--quick]`.

Starts its own PostgreSQL (netops' LocalPostgres in a temp state dir) and simulators, runs every
benchmark (or only the named ones), merges the figures into bench/results.json and rewrites
BENCHMARKS.md from it. Every figure is measured beside its floor or peer in the same run.

Benchmarks: sync (full + no-change + `--if-changed`), loader, backlog, dlt, status, real; and the
shared API budget's budget (every job at once), keys (1, 2, 4 keys), claim (bench/budget.py); and
monitor, the monitor's bookkeeping (bench/monitor_cost.py); restore, the calls a restored box
spends to catch up against a full re-pull (bench/restore.py); alerts, event to notification on both
alert paths (bench/alert_latency.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2
import requests

from bench import alert_latency, budget, campus, monitor_cost, restore
from bench.env import (
    BACKLOG_SETTLE,
    QUICK,
    REAL,
    ROOT,
    SCALED,
    BenchPostgres,
    machine,
    netops_env,
    run_worker,
    traversable_tmpdir,
    versions,
)
from netops.sim import SimConfig, SimServer

ALL = ("sync", "loader", "backlog", "dlt", "status", "real", "budget", "keys", "claim", "monitor", "restore",
       "alerts", "campus")

def med(values: list[float]) -> float:
    from bench.report import med as median  # one definition (skips missing values)

    return median(values)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def token(sim: SimServer) -> str:
    r = requests.post(f"{sim.url}/oauth/token", data={"grant_type": "client_credentials",
                                                      "client_id": sim.client_id,
                                                      "client_secret": sim.client_secret}, timeout=10)
    r.raise_for_status()
    return str(r.json()["access_token"])


def api_calls(sim: SimServer) -> int:
    """Requests the simulator answered on /v2 (429s included; the OAuth token call excluded)."""
    return sum(n for ep, n in sim.stats()["by_endpoint"].items() if ep.startswith("/v2"))


def rate_limited(sim: SimServer) -> int:
    """How many of those were refused with 429."""
    return int(sim.stats()["by_status"].get("429", 0))


def floor_calls(sim: SimServer) -> dict[str, int]:
    """Σ ceil(rows/100) per paged listing (+ 1 for the cursus object), from X-Total, asked of the
    simulator itself (then its stats and limiter are reset): independent of netops' own
    min_calls accounting."""
    tok = token(sim)
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {tok}"

    def total(path: str, **params: Any) -> int:
        for _ in range(50):
            r = s.get(f"{sim.url}{path}", params={**params, "page[size]": 1}, timeout=30)
            if r.status_code == 429:
                time.sleep(1.0)
                continue
            r.raise_for_status()
            return int(r.headers["X-Total"])
        raise RuntimeError("simulator kept answering 429")

    out = {"/v2/cursus/21": 1}
    campuses = total("/v2/campus", **{"filter[active]": "true", "filter[public]": "true"})
    out["/v2/campus"] = math.ceil(campuses / 100)
    for path in ("/v2/cursus/21/projects", "/v2/coalitions", "/v2/achievements"):
        out[path] = math.ceil(total(path) / 100)
    # campus_achievements come with /v2/achievements (each achievement's `campus` names): the
    # per-campus listings are not part of a sync, so not of its floor
    sim.limiter.reset()
    sim.reset_stats()
    return out


class Bench:
    def __init__(self, runs: int, quick: bool) -> None:
        self.runs = runs
        self.quick = quick
        self.pg = BenchPostgres().up()
        self.tmp = traversable_tmpdir("netops-bench-")
        self.sims: dict[str, SimServer] = {}
        self.setting = QUICK if quick else SCALED

    def close(self) -> None:
        for sim in self.sims.values():
            sim.stop()
        self.pg.down()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def sim(self, name: str, latency: float, rate: int, backlog_scale: float = 0.02) -> SimServer:
        if name not in self.sims:
            self.sims[name] = SimServer(SimConfig(port=0, seed=42, rate_per_second=rate, rate_per_hour=10_000_000,
                                                  latency=latency, backlog_scale=backlog_scale)).start()
        sim = self.sims[name]
        sim.reset()
        return sim

    def env(self, dsn: str, sim: SimServer, rate: float, **extra: Any) -> dict[str, str]:
        state = Path(tempfile.mkdtemp(prefix="state-", dir=self.tmp))  # removed with self.tmp at close()
        return netops_env(dsn, sim.url, sim.client_id, sim.client_secret, state, rate, **extra)

    # -------------------------------------------------------------- 1 + 2: stable sync
    def bench_sync(self) -> dict[str, Any]:
        sc = self.setting
        sim = self.sim("scaled", sc["latency"], sc["rate"])
        floor = floor_calls(sim)
        floor_total = sum(floor.values())
        runs: list[dict[str, Any]] = []
        for i in range(self.runs):
            dsn = self.pg.new_database("sync")
            sim.reset()
            env = self.env(dsn, sim, sc["rate"])
            full = run_worker("sync", env)
            full["server_calls"], full["server_429"] = api_calls(sim), rate_limited(sim)
            sim.reset_stats()
            nochange = run_worker("sync", env)
            nochange["server_calls"], nochange["server_429"] = api_calls(sim), rate_limited(sim)
            sim.reset_stats()
            # the shipped no-change probe: `netops sync stable --if-changed` with nothing changed
            ifchanged = run_worker("sync", env, {"if_changed": True})
            ifchanged["server_calls"], ifchanged["server_429"] = api_calls(sim), rate_limited(sim)
            # what it sees: each change on top of the last (the mirror has caught up in between,
            # so each run sees only its own change): an edited project, a deleted coalition, and
            # a coalition score edit (a resource without updated_at: count-only, blind to edits)
            sees: dict[str, dict[str, Any]] = {}
            changes: list[tuple[str, Callable[[], Any]]] = [
                ("project edit", lambda: sim.modify("projects", sorted(sim.data.tables["projects"])[0],
                                                    {"name": "renamed by bench"}, touch=True)),
                ("coalition delete", lambda: sim.delete("coalitions", sorted(sim.data.tables["coalitions"])[-1])),
                ("coalition score edit", lambda: sim.modify("coalitions", sorted(sim.data.tables["coalitions"])[0],
                                                            {"score": 1}, touch=True)),
            ]
            for label, change in changes:
                change()
                sim.reset_stats()
                seen = run_worker("sync", env, {"if_changed": True})
                sees[label] = {"pulled": seen["pulled"], "skipped": seen["skipped"], "calls": api_calls(sim),
                               "wall": seen["wall"], "rows_changed": sum(
                                   p["inserted"] + p["updated"] + p["deleted"] for p in seen["phases"])}
            runs.append({"full": full, "nochange": nochange, "ifchanged": ifchanged, "ifchanged_sees": sees})
            log(f"sync run {i + 1}: full {full['wall']:.2f}s {full['api_calls']} calls ({full['server_429']} x 429); no-change "
                f"{nochange['wall']:.2f}s {nochange['api_calls']} calls; --if-changed {ifchanged['wall']:.2f}s "
                f"{ifchanged['server_calls']} calls ({ifchanged['probe_calls']} probe)")
            self.pg.drop_database(dsn)
        from netops.config import DEFAULT_RATE_WINDOW_MARGIN

        return {"setting": {**sc, "window_margin": DEFAULT_RATE_WINDOW_MARGIN}, "floor_calls": floor,
                "floor_total": floor_total, "runs": runs}

    # -------------------------------------------------------------- 3: loader
    def bench_loader(self) -> dict[str, Any]:
        sizes = [2_000, 10_000] if self.quick else [100_000, 1_000_000]
        out: dict[str, Any] = {"sizes": {}}
        for n in sizes:
            users, projects = max(1_000, n // 5), 519
            dsn = self.pg.new_database("loader")
            conn = psycopg2.connect(dsn)
            with conn, conn.cursor() as cur:
                cur.execute("INSERT INTO projects (id, name) SELECT g, 'p' || g FROM generate_series(1, %s) g",
                            (projects,))
                cur.execute("INSERT INTO users (id, login) SELECT g, 'u' || g FROM generate_series(1, %s) g",
                            (users,))
            conn.close()
            env = {"NETOPS_DSN": dsn, "NETOPS_CONFIG": ""}
            args = {"rows": n, "users": users, "projects": projects}
            rec: dict[str, list[dict[str, Any]]] = {"initial": [], "reapply": [], "nochange": [], "raw": [],
                                                    "no_fk": []}
            for i in range(self.runs):
                conn = psycopg2.connect(dsn)
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("TRUNCATE project_users")
                    cur.execute("CHECKPOINT")
                conn.close()
                rec["raw"].append(run_worker("rawcopy", env, args))
                rec["initial"].append(run_worker("loader", env, args))
                rec["reapply"].append(run_worker("loader", env, {**args, "variant": 1}))
                rec["nochange"].append(run_worker("loader", env, {**args, "variant": 1}))
                rec["no_fk"].append(run_worker("loader", env, {**args, "no_fk": True}))
                log(f"loader {n:,} run {i + 1}: raw {rec['raw'][-1]['rows_per_s']:,.0f}/s, apply "
                    f"{rec['initial'][-1]['rows_per_s']:,.0f}/s (RSS {rec['initial'][-1]['peak_rss_mb']} MB), "
                    f"10%-changed {rec['reapply'][-1]['rows_per_s']:,.0f}/s, unchanged "
                    f"{rec['nochange'][-1]['rows_per_s']:,.0f}/s, without FKs {rec['no_fk'][-1]['rows_per_s']:,.0f}/s")
            out["sizes"][str(n)] = rec
            self.pg.drop_database(dsn)
        return out

    # -------------------------------------------------------------- 4: backlog
    def bench_backlog(self) -> dict[str, Any]:
        sc = self.setting
        changes_n = 500 if self.quick else 5_000
        scale = 0.02 if self.quick else 0.25
        sim = self.sim("backlog", 0.0, 0, backlog_scale=scale)  # setup at full speed, measured at the scaled setting
        dsn = self.pg.new_database("backlog")
        fast = self.env(dsn, sim, 100_000, BACKLOG_VISIBILITY_TIMEOUT="30", BACKLOG_RETRY_DELAY="0.05")
        t0 = time.monotonic()
        run_worker("sync", fast)
        run_worker("detect", fast)
        initial = run_worker("backlog", fast)
        log(f"backlog setup: backlog_scale {scale}, {initial['items']:,} backlog rows loaded in "
            f"{time.monotonic() - t0:.0f}s (not measured)")
        measured = self.env(dsn, sim, sc["rate"], BACKLOG_VISIBILITY_TIMEOUT="30", BACKLOG_RETRY_DELAY="0.05")
        sim.configure(latency=sc["latency"], rate_per_second=sc["rate"])
        import random

        rng = random.Random(6)
        share = {"users": 0.4, "projects_users": 0.3, "achievements_users": 0.15, "coalitions_users": 0.15}

        def burst(n: int, tag: int) -> int:
            changes = []
            for res, frac in share.items():
                for rid in rng.sample(sorted(sim.data.tables[res]), int(n * frac)):
                    fields: dict[str, Any] = {}
                    if res == "users":
                        fields = {"location": f"e{rng.randint(1, 3)}r{rng.randint(1, 13)}p{tag}",
                                  "wallet": rng.randint(0, 999)}
                    elif res == "projects_users":
                        fields = {"final_mark": rng.randint(0, 125), "status": "finished"}
                    elif res == "coalitions_users":
                        fields = {"score": rng.randint(0, 99_999)}
                    changes.append({"op": "update", "resource": res, "id": rid, "fields": fields, "touch": True})
            sim.churn(changes=changes)
            return len(changes)

        def measure(n: int, tag: int) -> dict[str, Any]:
            changed = burst(n, tag)
            # the detector reads changes at least `settle` old by the API's whole-second Date
            # clock: wait that long (not measured) so the burst is due in this window
            time.sleep(BACKLOG_SETTLE + 1.1)
            sim.reset_stats()
            det = run_worker("detect", measured, {"settle": BACKLOG_SETTLE})
            work = run_worker("backlog", measured)
            calls = det["calls"] + work["worker_api_calls"]
            return {"changes": changed, "settle": BACKLOG_SETTLE, "detect": det, "worker": work, "calls": calls,
                    "server_calls": api_calls(sim), "wall": det["wall"] + work["wall"],
                    "rows_per_call": work["items"] / calls if calls else None}

        # warm-up (not measured): moves every mark from the initial load to now
        measure(100, 0)
        runs = []
        for i in range(self.runs):   # bursts back to back: each window must read only its own burst
            runs.append(x := measure(changes_n, i + 1))
            log(f"backlog run {i + 1}: {x['changes']:,} changes, detect {x['detect']['calls']} calls "
                f"{x['detect']['wall']:.2f}s, worker {x['worker']['worker_api_calls']} calls "
                f"{x['worker']['wall']:.2f}s, {x['worker']['items']:,} items, {x['rows_per_call']:.1f} rows/call")
        self.pg.drop_database(dsn)
        sim.stop()
        sim.release()
        del self.sims["backlog"]
        return {"setting": sc, "backlog_scale": scale, "initial_rows": initial["items"], "runs": runs}

    # -------------------------------------------------------------- 5: dlt
    def _pair(self, sim: SimServer, rate: float, tag: str) -> dict[str, Any]:
        dsn = self.pg.new_database(tag)
        sim.reset()
        net = run_worker("sync", self.env(dsn, sim, rate))
        net["server_calls"], net["server_429"] = api_calls(sim), rate_limited(sim)
        sim.reset()
        data_dir = traversable_tmpdir("netops-bench-dlt-")
        d = run_worker("dlt", {"BENCH_DLT_TOKEN": token(sim)}, {"api_url": sim.url, "dsn": dsn, "dataset": "dlt_stable",
                                   "name": f"bench_{tag}", "data_dir": str(data_dir)})
        d["server_calls"], d["server_429"] = api_calls(sim), rate_limited(sim)
        shutil.rmtree(data_dir, ignore_errors=True)
        self.pg.drop_database(dsn)
        return {"netops": net, "dlt": d}

    def bench_dlt(self) -> dict[str, Any]:
        try:
            import dlt  # noqa: F401
        except ImportError:
            return {"skipped": "dlt is not installed: pip install -e '.[bench]'"}
        sim = self.sim("scaled", self.setting["latency"], self.setting["rate"])
        runs = []
        for i in range(self.runs):
            pair = self._pair(sim, self.setting["rate"], "dlt")
            runs.append(pair)
            log(f"dlt run {i + 1}: netops {pair['netops']['wall']:.2f}s {pair['netops']['server_calls']} calls "
                f"{pair['netops']['peak_rss_mb']} MB; dlt {pair['dlt']['wall']:.2f}s {pair['dlt']['server_calls']} "
                f"calls {pair['dlt']['peak_rss_mb']} MB")
        return {"setting": self.setting, "runs": runs}

    # -------------------------------------------------------------- real setting (1 run)
    def bench_real(self) -> dict[str, Any]:
        if self.quick:
            return {"skipped": "--quick"}
        sim = self.sim("real", REAL["latency"], REAL["rate"])
        floor = floor_calls(sim)
        out: dict[str, Any] = {"setting": REAL, "floor_total": sum(floor.values())}
        try:
            import dlt  # noqa: F401

            pair = self._pair(sim, REAL["rate"], "real")
        except ImportError:
            dsn = self.pg.new_database("real")
            sim.reset()
            net = run_worker("sync", self.env(dsn, sim, REAL["rate"]))
            net["server_calls"], net["server_429"] = api_calls(sim), rate_limited(sim)
            pair = {"netops": net}
            self.pg.drop_database(dsn)
        out.update(pair)
        log(f"real setting: netops {pair['netops']['wall']:.1f}s" +
            (f", dlt {pair['dlt']['wall']:.1f}s" if "dlt" in pair else ""))
        return out

    # -------------------------------------------------------------- 6: status
    def bench_status(self) -> dict[str, Any]:
        n = 20_000 if self.quick else 1_000_000
        dsn = self.pg.new_database("status")
        env = self.env(dsn, self.sim("scaled", self.setting["latency"], self.setting["rate"]), self.setting["rate"])
        run_worker("sync", env)  # real stable tables and sync_runs rows for the phases section
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        t0 = time.monotonic()
        with conn.cursor() as cur:
            cur.execute("INSERT INTO users (id, login, updated_at) SELECT g, 'u' || g, now() - g * interval '1 s' "
                        "FROM generate_series(1, %s) g", (n // 5,))
            cur.execute("INSERT INTO project_users (id, project_id, user_id, status, updated_at) "
                        "SELECT g, p.a[1 + g %% cardinality(p.a)], 1 + g %% %s, 'finished', now() - g * interval '1 s' "
                        "FROM generate_series(1, %s) g, (SELECT array_agg(id ORDER BY id) a FROM projects) p",
                        (n // 5, n))
            cur.execute("INSERT INTO achievements_users (id, achievement_id, user_id, updated_at) "
                        "SELECT g, p.a[1 + g %% cardinality(p.a)], 1 + g %% %s, now() "
                        "FROM generate_series(1, %s) g, (SELECT array_agg(id ORDER BY id) a FROM achievements) p",
                        (n // 5, n))
            cur.execute("INSERT INTO netops.api_calls (at, component, method, endpoint, status, duration_ms, attempt) "
                        "SELECT now() - g * interval '2 s', 'backlog', 'GET', '/v2/projects_users', "
                        "CASE WHEN g %% 500 = 0 THEN 429 ELSE 200 END, 300, 1 FROM generate_series(1, %s) g", (n,))
            cur.execute("INSERT INTO netops.backlog_items (resource, entity_id, state, enqueued_at, finished_at) "
                        "SELECT 'projects_users', g, CASE WHEN g <= 5000 THEN 'pending' ELSE 'done' END, "
                        "now() - g * interval '1 s', CASE WHEN g <= 5000 THEN NULL ELSE now() END "
                        "FROM generate_series(1, %s) g", (n,))
            cur.execute("VACUUM ANALYZE")
        conn.close()
        fill = time.monotonic() - t0
        inproc = run_worker("status", env, {"repeat": 7})
        cli = []
        child = {**{k: v for k, v in os.environ.items() if not k.startswith("NETOPS_")}, **env}
        netops_bin = str(Path(sys.executable).with_name("netops"))
        for _ in range(5):
            t = time.monotonic()
            p = subprocess.run([netops_bin, "status", "--json"], capture_output=True, text=True, env=child)
            cli.append((time.monotonic() - t) * 1000)
            if p.returncode not in (0, 1, 2):
                raise RuntimeError(f"netops status failed: {p.stderr.strip()[-500:]}")
        t = time.monotonic()
        subprocess.run([sys.executable, "-c", "import netops.cli"], capture_output=True, env=child)
        import_ms = (time.monotonic() - t) * 1000
        log(f"status: {n:,}-row tables (filled in {fill:.0f}s): collect {med(inproc['collect_ms']):.0f} ms, "
            f"CLI {med(cli):.0f} ms")
        self.pg.drop_database(dsn)
        return {"rows": n, "collect_ms": inproc["collect_ms"], "cli_ms": cli, "import_ms": import_ms,
                "tables": inproc["tables"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=os.environ.get("ONLY", ""), help=f"comma list of: {', '.join(ALL)}")
    ap.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "3")), help="runs per benchmark (median)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 1 run: checks the bench code, not the box")
    ap.add_argument("--candidate", default="", metavar="DIR",
                    help="also measure a candidate change: DIR holds a modified netops/ package; sync, loader, "
                         "backlog and real (of those selected) run again against it, in the same run")
    ap.add_argument("--baseline", default="", metavar="RESULTS_JSON",
                    help="the results.json of the same benchmarks run by an earlier checkout just before "
                         "this run (`make bench-compare`); BENCHMARKS.md then shows its headline beside this one")
    ap.add_argument("--baseline-label", default="before", help="what the baseline is, e.g. a commit")
    ap.add_argument("--results", default=str(ROOT / "bench" / "results.json"))
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--record-fleet", default="", metavar="FILE",
                    help="measure nothing: put the JSON line fleet step 14 prints (event to notification on a "
                         "deployed host, saved as FILE) into --results as alerts_fleet and rewrite --out")
    a = ap.parse_args(argv)
    if a.record_fleet:
        return record_fleet(Path(a.record_fleet), Path(a.results), Path(a.out))
    only = [x.strip() for x in a.only.split(",") if x.strip()] or list(ALL)
    unknown = [x for x in only if x not in ALL]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(ALL)}")
    runs = 1 if a.quick else max(1, a.runs)
    results_path = Path(a.results)
    results: dict[str, Any] = {}
    if results_path.exists() and not a.quick:
        results = json.loads(results_path.read_text())
    bench = Bench(runs, a.quick)
    started = time.monotonic()
    try:
        results["machine"] = machine()
        results["versions"] = versions(bench.pg)
        fns: dict[str, Callable[[], dict[str, Any]]] = {
            "sync": bench.bench_sync, "loader": bench.bench_loader, "backlog": bench.bench_backlog,
            "dlt": bench.bench_dlt, "status": bench.bench_status, "real": bench.bench_real,
            "budget": lambda: budget.bench_budget(bench), "keys": lambda: budget.bench_keys(bench),
            "claim": lambda: budget.bench_claim(bench), "monitor": lambda: monitor_cost.bench_monitor(bench),
            "restore": lambda: restore.bench_restore(bench),
            "alerts": lambda: alert_latency.bench_alerts(bench),
            "campus": lambda: campus.bench_campus(bench)}
        for name in only:
            log(f"--- {name}")
            t0 = time.monotonic()
            res = fns[name]()
            res["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            res["seconds"] = round(time.monotonic() - t0, 1)
            res["runs_requested"] = runs
            res["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]   # shared box: how busy it was
            res["versions"] = results["versions"]
            results[name] = res
        cand: dict[str, Any] = results.get("candidate") or {}
        rerun = [n for n in only if n in ("sync", "loader", "backlog", "real")]
        for name in rerun:
            cand.pop(name, None)  # measured against an older "current": stale either way
        if a.candidate:
            path = str(Path(a.candidate).resolve())
            os.environ["BENCH_NETOPS_PATH"] = path
            try:
                for name in rerun:
                    log(f"--- {name} (candidate {path})")
                    cand[name] = {**fns[name](), "path": path}
            finally:
                del os.environ["BENCH_NETOPS_PATH"]
        if any(k in cand for k in ("sync", "loader", "backlog", "real")):
            results["candidate"] = cand
        else:
            results.pop("candidate", None)
    finally:
        bench.close()
    results["last_run_seconds"] = round(time.monotonic() - started, 1)
    if a.baseline:
        base = json.loads(Path(a.baseline).read_text())
        # a later comparison with the same baseline adds to it (more runs of some sections)
        prev = results.get("baseline") or {}
        prev = prev if prev.get("label") == a.baseline_label else {}
        sections = [*[s for s in prev.get("sections", []) if s not in only], *only]
        results["baseline"] = {**prev, "label": a.baseline_label, "sections": sections,
                               **{k: base[k] for k in (*only, "machine", "versions") if k in base}}
    results_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    from bench.report import render

    Path(a.out).write_text(render(results))
    log(f"done in {time.monotonic() - started:.0f}s: {a.out} and {results_path}")
    return 0


def record_fleet(path: Path, results_path: Path, out: Path) -> int:
    """Fleet step 14's figures (tests/ansible/fleet/run.sh) beside the benchmarks: measured on the
    fleet's hosts, so recorded here rather than run by this module."""
    from bench.report import render

    doc = json.loads(path.read_text())
    doc["measured_at"] = time.strftime("%Y-%m-%d", time.gmtime(path.stat().st_mtime))
    results = json.loads(results_path.read_text())
    results["alerts_fleet"] = doc
    results_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    out.write_text(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
