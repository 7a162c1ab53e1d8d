"""Benchmarks of the campus-scoped resources and the budget planner (issue 23): `campus`.

- (a) the initial backfill of one campus (90 days of locations, evaluations, events, exams):
  `netops backlog detect` of the four campus resources on an empty mirror, as a real subprocess;
  wall against calls ÷ budget.
- (b) the steady state of that campus: `backlog detect --resource locations` and `--resource
  scale_teams` run again and again (nothing but the simulator's own clock moving between them);
  calls per pass measured, calls per hour = that × the passes an hour that keep locations ≤ 5 min
  and evaluations ≤ 15 min stale, against one key's hourly budget.
- (c) all 54 campuses: after their backfill (not measured), `netops plan --json` (its X-Total
  probes) against the calls a detect pass over the four campus resources then really spends.

Kept out of bench/run.py (which only registers it) so these figures live in one file.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import requests

from bench.env import ROOT
from netops.config import API_RATE_PER_HOUR
from netops.sim import SimConfig, SimServer

#: the setting: the simulator allows RATE calls/s (the real API's 2/s) and answers after LATENCY s
#: (scaled down from the real ~1.1 s: budget-bound, not latency-bound, as at the real 2/s with the
#: client's concurrency); netops is given exactly that budget. backlog_scale 1.0: the real sizes
#: (~185,000 sessions, ~28,000 evaluations over 100 days, 54 campuses), so a campus's pages are as
#: many as on the real API.
CAMPUS = {"rate": 2, "latency": 0.02, "backlog_scale": 1.0, "passes": 5, "schedule_minutes": 5}
QUICK = {"rate": 20, "latency": 0.0, "backlog_scale": 0.05, "passes": 2, "schedule_minutes": 5}
RESOURCES = ("locations", "scale_teams", "events", "exams")
#: the freshness targets of "Done when" (minutes): a pass every so often keeps a resource that fresh
TARGETS = {"locations": 5, "scale_teams": 15}


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _child_env(env: dict[str, str]) -> dict[str, str]:
    child = {k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))}
    child.update(env)
    child["PYTHONPATH"] = os.pathsep.join([str(ROOT), child.get("PYTHONPATH", "")])
    return child


def _netops(env: dict[str, str], *args: str, started: list[float] | None = None
            ) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.monotonic()
    if started is not None:
        started.append(t0)
    p = subprocess.run([sys.executable, "-m", "netops", *args], env=_child_env(env), cwd=str(ROOT), text=True,
                       capture_output=True, timeout=3600)
    return time.monotonic() - t0, p


def _detect_args(resources: tuple[str, ...]) -> list[str]:
    return ["backlog", "detect", *[x for r in resources for x in ("--resource", r)]]


def _served(sim: SimServer) -> tuple[int, int]:
    counts = sim.limiter.counts()
    return (sum(c["allowed"] + c["refused"] for c in counts.values()), sum(c["refused"] for c in counts.values()))


def _x_total(sim: SimServer, token: str, path: str, **params: Any) -> int:
    r = requests.get(f"{sim.url}{path}", params={**params, "page[size]": 1},
                     headers={"Authorization": f"Bearer {token}"}, timeout=30)
    r.raise_for_status()
    return int(r.headers["X-Total"])


def _token(sim: SimServer) -> str:
    r = requests.post(f"{sim.url}/oauth/token", data={"grant_type": "client_credentials", "client_id": sim.client_id,
                                                      "client_secret": sim.client_secret}, timeout=30)
    r.raise_for_status()
    return str(r.json()["access_token"])


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _campuses(sim: SimServer) -> tuple[list[int], int, dict[int, int]]:
    """The campuses the box can keep (active + public, as the stable sync mirrors them), the one with
    the most sessions in the last 90 days, and each one's count."""
    token = _token(sim)
    ids: list[int] = []
    page = 1
    while True:
        r = requests.get(f"{sim.url}/v2/campus", params={"filter[active]": "true", "filter[public]": "true",
                                                         "page[size]": 100, "page[number]": page},
                         headers={"Authorization": f"Bearer {token}"}, timeout=30)
        r.raise_for_status()
        ids += [int(c["id"]) for c in r.json()]
        if len(ids) >= int(r.headers["X-Total"]):
            break
        page += 1
    now = datetime.now(timezone.utc)
    window = f"{_iso(now - timedelta(days=90))},{_iso(now)}"
    sessions = {c: _x_total(sim, token, f"/v2/campus/{c}/locations", **{"range[begin_at]": window}) for c in ids}
    return sorted(ids), max(sessions, key=lambda c: sessions[c]), sessions


#: the budget of the runs whose time is not measured (a backfill before the figures, (c)'s passes)
FAST = 100_000


def _fresh_env(bench: Any, sim: SimServer, rate: float, campuses: list[int], tag: str) -> tuple[str, dict[str, str]]:
    dsn = bench.pg.new_database(tag)
    env = bench.env(dsn, sim, rate, NETOPS_CAMPUS_IDS=",".join(map(str, campuses)),
                    BACKLOG_DETECT_SETTLE_SECONDS="0")
    return dsn, env


def _fast(env: dict[str, str]) -> dict[str, str]:
    return {**env, "NETOPS_RATE_PER_SECOND": str(FAST)}


def _limit(sim: SimServer, rate: int) -> None:
    sim.configure(rate_per_second=rate, rate_per_hour=10_000_000)
    sim.limiter.reset()
    sim.reset_stats()


def _backfill(bench: Any, sim: SimServer, s: dict[str, Any], cid: int) -> dict[str, Any]:
    """(a) one measured backfill of campus `cid` on an empty mirror."""
    dsn, env = _fresh_env(bench, sim, s["rate"], [cid], "campus_a")
    try:
        _limit(sim, s["rate"])
        started: list[float] = []
        wall, p = _netops(env, *_detect_args(RESOURCES), started=started)
        if p.returncode != 0:
            raise RuntimeError(f"bench campus: backfill failed: {p.stderr[-1500:]}")
        calls, n429 = _served(sim)
        first, last = sim.limiter.arrival_span() or (started[0], started[0])
        rows = _rows(dsn)
    finally:
        bench.pg.drop_database(dsn)
    floor = calls / s["rate"]
    # where the wall goes: start-up (process started -> first call), the middle (first -> last
    # call), the tail (last call -> exit)
    return {"wall": wall, "calls": calls, "server_429": n429, "floor_seconds": floor, "wall_over_floor": wall / floor,
            "rows": rows, "load_avg": os.getloadavg()[0], "first_call_at": first - started[0],
            "last_call_at": last - started[0],
            "middle_calls_per_s": (calls - 1) / (last - first) if last > first else None}


def _rows(dsn: str) -> dict[str, int]:
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            out = {}
            for t in ("locations", "scale_teams", "teams", "teams_users", "events", "exams"):
                cur.execute(f"SELECT count(*) FROM {t}")  # noqa: S608 - fixed table names
                out[t] = cur.fetchone()[0]
            return out
    finally:
        conn.close()


def _passes(sim: SimServer, env: dict[str, str], resources: tuple[str, ...], n: int, rate: int) -> list[dict[str, Any]]:
    """n detect passes over `resources`, back to back: each one's calls (the simulator's count) and wall."""
    out = []
    for _ in range(n):
        _limit(sim, rate)
        wall, p = _netops(env, *_detect_args(resources))
        if p.returncode != 0:
            raise RuntimeError(f"bench campus: pass over {resources} failed: {p.stderr[-1500:]}")
        calls, n429 = _served(sim)
        out.append({"calls": calls, "server_429": n429, "wall": wall})
    return out


def _steady(bench: Any, sim: SimServer, s: dict[str, Any], cid: int) -> dict[str, Any]:
    """(b) after a backfill (not measured): passes over locations, then over scale_teams."""
    dsn, env = _fresh_env(bench, sim, s["rate"], [cid], "campus_b")
    try:
        _limit(sim, FAST)
        _netops(_fast(env), *_detect_args(RESOURCES))
        out = {r: _passes(sim, env, (r,), s["passes"], s["rate"]) for r in TARGETS}
    finally:
        bench.pg.drop_database(dsn)
    per_hour = {r: statistics.median([x["calls"] for x in out[r]]) * 60 / TARGETS[r] for r in TARGETS}
    return {"passes": out, "targets_minutes": TARGETS, "calls_per_hour": per_hour,
            "total_per_hour": sum(per_hour.values()), "share_of_one_key": sum(per_hour.values()) / API_RATE_PER_HOUR}


def _all_campuses(bench: Any, sim: SimServer, s: dict[str, Any], campuses: list[int]) -> dict[str, Any]:
    """(c) the planner against the measured pass, all campuses in scope."""
    dsn, env = _fresh_env(bench, sim, FAST, campuses, "campus_c")
    try:
        _limit(sim, FAST)
        wall, p = _netops(env, *_detect_args(RESOURCES))
        if p.returncode != 0:
            raise RuntimeError(f"bench campus: backfill of all campuses failed: {p.stderr[-1500:]}")
        backfill_calls, _ = _served(sim)
        _limit(sim, FAST)
        _w, p = _netops({**env, "NETOPS_SCHEDULE_BACKLOG_MINUTES": str(s["schedule_minutes"])}, "plan", "--json")
        if p.returncode != 0:
            raise RuntimeError(f"bench campus: netops plan failed: {p.stderr[-1500:]}")
        plan = json.loads(p.stdout)
        probe_calls, _ = _served(sim)
        measured = {r: [x["calls"] for x in _passes(sim, env, (r,), s["passes"], FAST)] for r in RESOURCES}
    finally:
        bench.pg.drop_database(dsn)
    planned = {r["resource"]: r["calls_per_pass"] for r in plan["resources"] if r["resource"] in RESOURCES}
    med = {r: statistics.median(v) for r, v in measured.items()}
    return {"campuses": len(campuses), "backfill_calls": backfill_calls, "backfill_wall": wall,
            "plan_probe_calls": probe_calls, "planned_per_pass": planned, "measured_per_pass": measured,
            "measured_median": med, "planned_total": sum(planned.values()), "measured_total": sum(med.values()),
            "ratio": sum(planned.values()) / sum(med.values()), "plan_calls_per_hour": plan["calls_per_hour"],
            "plan_campus_calls_per_hour": sum(r["calls_per_hour"] for r in plan["resources"]
                                              if r["resource"] in RESOURCES)}


def bench_campus(bench: Any) -> dict[str, Any]:
    s = QUICK if bench.quick else CAMPUS
    sim = SimServer(SimConfig(port=0, seed=42, rate_per_second=0, rate_per_hour=0, latency=s["latency"],
                              backlog_scale=s["backlog_scale"])).start()
    try:
        campuses, biggest, sessions = _campuses(sim)
        _log(f"campus: {len(campuses)} campuses; the busiest, {biggest}, has {sessions[biggest]:,} sessions in 90 days")
        runs = []
        for i in range(bench.runs):
            run = _backfill(bench, sim, s, biggest)
            runs.append(run)
            _log(f"campus (a) run {i + 1}: {run['calls']} calls, {run['wall']:.1f} s, "
                 f"{run['wall_over_floor']:.3f}x calls/budget, {run['server_429']} x 429")
        steady = _steady(bench, sim, s, biggest)
        _log(f"campus (b): {steady['calls_per_hour']} calls/h = {steady['share_of_one_key']:.1%} of one key")
        every = _all_campuses(bench, sim, s, campuses)
        _log(f"campus (c): planned {every['planned_total']} vs measured {every['measured_total']} calls a pass "
             f"({every['ratio']:.3f}x)")
    finally:
        sim.stop()
        sim.release()
    return {"setting": s, "campus": biggest, "campus_sessions_90d": sessions[biggest], "backfill": runs,
            "steady": steady, "all": every}


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def render(r: dict[str, Any], w: Any) -> None:
    """The "Campus-scoped resources and the budget planner" section of BENCHMARKS.md."""
    c = r.get("campus")
    if not c or not c.get("backfill"):
        return
    s = c["setting"]
    w("## Campus-scoped resources and the budget planner (issue 23)\n")
    w(f"Simulator at backlog scale {s['backlog_scale']} (the real sizes: ~185,000 sessions and ~28,000 evaluations "
      f"over 100 days, 54 campuses), {s['latency'] * 1000:.0f} ms latency, {s['rate']} calls/s and netops given "
      "exactly that budget; real subprocesses (`python -m netops backlog detect --resource ...`), the bench's "
      f"PostgreSQL. Campus {c['campus']}, the busiest ({c['campus_sessions_90d']:,} sessions begun in 90 days). "
      "Rerun: `make bench ONLY=campus`.\n")
    runs = c["backfill"]
    w("### (a) Initial backfill of one campus (90 days of locations, evaluations, events, exams)\n")
    w("| run | calls | 429s | first call | middle calls/s | last call | wall | calls ÷ budget | "
      "wall ÷ (calls ÷ budget) | rows (locations / scale_teams / teams / events / exams) | load |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for i, x in enumerate(runs, 1):
        rw = x["rows"]
        mid = x.get("middle_calls_per_s")
        w(f"| {i} | {x['calls']} | {x['server_429']} | {x.get('first_call_at', 0):.2f} s | "
          f"{'-' if mid is None else f'{mid:.2f}'} ({s['rate']}) | {x.get('last_call_at', 0):.1f} s | "
          f"{x['wall']:.1f} s | {x['floor_seconds']:.1f} s | "
          f"{x['wall_over_floor']:.3f}× | {rw['locations']:,} / {rw['scale_teams']:,} / {rw['teams']:,} / "
          f"{rw['events']} / {rw['exams']} | {x['load_avg']:.1f} |")
    ratio = _med([x["wall_over_floor"] for x in runs])
    w(f"\nMedian **{ratio:.3f}×** calls ÷ budget (target ≤ 1.15×: {'met' if ratio <= 1.15 else '**missed**'}). "
      "The wall includes the command's start-up (\"first call\": process start to the simulator's first request, "
      "on this shared 2-core box). Between the first and the last call the four resources share the budget, "
      "then the locations listing is walked alone, one keyset page after the other (each page is asked for "
      "once the previous one is back and loaded): its pages come at one per (slot spacing + round trip + "
      "load), under the budget's pace — at the real API's ~1.1 s round trip that walk, not the budget, "
      "would set the backfill's time.\n")
    st = c["steady"]
    w("### (b) Keeping that campus fresh: locations ≤ 5 min, evaluations ≤ 15 min stale\n")
    w("After the backfill (not measured), detect passes over one resource each, back to back "
      f"({s['passes']} each); between passes only the simulator's own clock moves. A pass every 5 min keeps "
      "locations at most 5 min + settle + the pass stale, one every 15 min the evaluations; calls per hour = "
      "the median pass × the passes an hour.\n")
    w("| resource | calls per pass (each pass) | pass wall (median) | passes an hour | calls per hour |")
    w("|---|---|---|---|---|")
    for res, minutes in st["targets_minutes"].items():
        ps = st["passes"][res]
        w(f"| {res} | {', '.join(str(x['calls']) for x in ps)} | {_med([x['wall'] for x in ps]):.2f} s | "
          f"{60 // minutes} | {st['calls_per_hour'][res]:.0f} |")
    share = st["share_of_one_key"]
    w(f"\nTotal **{st['total_per_hour']:.0f} calls/hour = {share:.1%} of one key's {API_RATE_PER_HOUR:,}** "
      f"(target ≤ 10 %: {'met' if share <= 0.10 else '**missed**'}).\n")
    a = c["all"]
    w(f"### (c) All {a['campuses']} campuses: the planner against the measured pass\n")
    w(f"All {a['campuses']} campuses backfilled first ({a['backfill_calls']:,} calls, not measured), then "
      f"`netops plan --json` ({a['plan_probe_calls']} probe calls, schedule every {s['schedule_minutes']} min), "
      f"then {s['passes']} detect passes per resource, back to back.\n")
    w("| resource | planned calls per pass | measured (each pass) | planned ÷ measured (median) |")
    w("|---|---|---|---|")
    for res in RESOURCES:
        m = a["measured_median"][res]
        w(f"| {res} | {a['planned_per_pass'].get(res)} | {', '.join(map(str, a['measured_per_pass'][res]))} | "
          f"{a['planned_per_pass'].get(res, 0) / m:.3f}× |")
    ok = abs(a["ratio"] - 1) <= 0.10
    keys = -(-a["plan_calls_per_hour"] // API_RATE_PER_HOUR)
    w(f"\nAll four: planned **{a['planned_total']}** against measured **{a['measured_total']:g}** calls a pass = "
      f"**{a['ratio']:.3f}×** (target within 10 %: {'met' if ok else '**missed**'}). Every "
      f"{s['schedule_minutes']} min, the {a['campuses']} campuses' four resources cost "
      f"{a['plan_campus_calls_per_hour']:,.0f} calls/hour and the whole schedule (the queued backlog resources and the "
      f"nightly sync included) {a['plan_calls_per_hour']:,.0f}: more than one key's {API_RATE_PER_HOUR:,} "
      f"(`netops plan --check` refuses it with one key, naming `schedule_backlog_minutes`), {keys:.0f} keys' worth.\n"
      if a["plan_calls_per_hour"] > API_RATE_PER_HOUR else
      f"\nAll four: planned **{a['planned_total']}** against measured **{a['measured_total']:g}** calls a pass = "
      f"**{a['ratio']:.3f}×** (target within 10 %: {'met' if ok else '**missed**'}); the whole schedule comes to "
      f"{a['plan_calls_per_hour']:,.0f} calls/hour.\n")
