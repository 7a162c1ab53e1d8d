"""The simulator's campus-scoped resources (issue 23): locations, evaluations (scale_teams and the
teams they are of), events, exams, and the logtime the API derives from locations.

Why a random stream of their own (`random.Random(f"{seed}-campus")`): the existing data, tests and
benchmark figures must not change; this module only reads the generated users, campuses and
projects, never draws from their streams and never writes their rows.

Why a clock: these resources change as time passes. A session's `end_at` appears when it closes
(a few never do), an evaluation's `filled_at`, `final_mark`, `flag` and comment appear when it is
filled and its `feedbacks` later. Each stored row holds its whole life (epoch ms, `_`-keys for the
future parts), and every answer is the view at the data set's clock (`CampusData.now()`: frozen
with the control API's `/_sim/clock`, else the wall clock). The data is anchored at `anchor` (the
server's start hour unless configured), so a client's windows relative to its own now find it.

Shapes are docs/api.md's "Locations, evaluations, events, exams" field by field, including the real
variants: ~1 evaluation in 200 in the JSON:API serialisation, ~2 % in the team-embedded variant
(`corrector`/`correcteds` = "invisible", `begin_at` null), ~18 % pool evaluations naming people
outside cursus 21 (`outsiders`: pool candidates and staff netops does not mirror).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from netops import catalog
from netops.mapping import CONVERTERS, parse_ts
from netops.sim import names
from netops.sim.data import API, CURSUS_21, DAY, Dataset, _ri, make_user
from netops.sim.timeutil import fmt, now_ms

HOUR = 3_600_000
#: netops' default backfill horizon (days): the expected mirror keeps what a 90-day backfill sees
HORIZON_DAYS = 90
#: generated rows begin in the last SPAN_DAYS before the anchor, none in the band GAP_DAYS (so a
#: client whose now differs from the simulator's by less than 5 days cuts the horizon alike)
SPAN_DAYS = 100
GAP_DAYS = (95, 85)
#: shares of the real data (docs/api.md)
POOL_SHARE = 0.18
JSONAPI_EVERY = 200           # one evaluation in 200: id % 200 == JSONAPI_AT
JSONAPI_AT = 17
INVISIBLE_EVERY = 50          # one in 50: the team-embedded variant ("invisible" people)
SESSION_SHARE = 0.08          # users with sessions in the span (each logs in every ~2 days)
STUCK_SHARE = 0.004           # sessions the API never closes
RESOURCES = ("locations", "scale_teams", "events", "exams")
SINGULAR = {"locations": "Location", "scale_teams": "ScaleTeam", "events": "Event", "exams": "Exam"}

FLAGS = ((1, "Ok", True, "check-4"), (9, "Outstanding project", True, "star-1"),
         (2, "Empty work", False, "iconf-folder-1"), (3, "Incomplete work", False, "file-1"),
         (5, "Invalid compilation", False, "skull-2"), (6, "Norme", False, "receipt-1"),
         (7, "Cheat", False, "layers"), (8, "Crash", False, "bomb"), (12, "Leaks", False, "blood"),
         (13, "Forbidden function", False, "delete-2"))
EVENT_KINDS = ("event", "conference", "association", "hackathon", "workshop", "exam", "meet_up", "extern")


@dataclass
class CampusData:
    """The campus-scoped rows (id -> stored row, id order) and the clock they are seen at."""

    anchor: int
    locations: dict[int, dict[str, Any]] = field(default_factory=dict)
    teams: dict[int, dict[str, Any]] = field(default_factory=dict)
    scale_teams: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    exams: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: people netops does not mirror (pool candidates, staff), shaped like users
    outsiders: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: frozen instant answers show (None: the wall clock)
    clock: int | None = None
    #: the expected mirror's campuses: none by default, like NETOPS_CAMPUS_IDS's default (a box
    #: spends no call on them until an operator names campuses); None: every mirrored campus
    scope: tuple[int, ...] | None = ()
    horizon_days: int = HORIZON_DAYS

    def clone(self) -> CampusData:
        return CampusData(self.anchor, dict(self.locations), dict(self.teams), dict(self.scale_teams),
                          dict(self.events), dict(self.exams), dict(self.outsiders), self.clock,
                          self.scope, self.horizon_days)

    # Dataset calls these (it cannot import this module: this module imports it)
    def expected_keys(self, ds: Dataset) -> dict[str, list[tuple[Any, ...]]]:
        return expected_keys(ds)

    def now(self) -> int:
        """The instant answers show: the frozen clock, else the wall clock."""
        return self.clock if self.clock is not None else now_ms()

    def table(self, resource: str) -> dict[int, dict[str, Any]]:
        return getattr(self, resource)  # type: ignore[no-any-return]


def campus(ds: Dataset) -> CampusData:
    """The data set's campus data (added by `add_campus_data`)."""
    if ds.campus is None:
        raise LookupError("this data set has no campus-scoped data (netops.sim.campus.add_campus_data)")
    return ds.campus  # type: ignore[no-any-return]


def person(ds: Dataset, uid: int | None) -> dict[str, Any] | None:
    """A stored user or outsider row."""
    if uid is None:
        return None
    return ds.tables["users"].get(uid) or campus(ds).outsiders.get(uid)


def erased(ds: Dataset, uid: int | None, at: int) -> bool:
    """True for a mirrored user past their data_erasure_date: netops deletes the user, their
    sessions, the evaluations naming them and their team memberships (docs/api.md)."""
    u = ds.tables["users"].get(uid) if uid is not None else None
    date = u.get("data_erasure_date") if u is not None else None
    return isinstance(date, int) and date <= at


# ====================================================================== generation
def add_campus_data(ds: Dataset, seed: int, backlog_scale: float, anchor: int) -> None:
    """Generate the campus-scoped data from its own random stream, anchored at `anchor`."""
    rng = random.Random(f"{seed}-campus")
    cd = CampusData(anchor)
    ds.campus = cd
    by_campus = _people_by_campus(ds, rng, cd, backlog_scale)
    _gen_locations(rng, cd, by_campus)
    _gen_evaluations(ds, rng, cd, by_campus)
    _gen_events(ds, rng, cd)
    _gen_exams(ds, rng, cd)


def _in_span(rng: random.Random, anchor: int) -> int:
    """An instant in the span before the anchor, outside the gap band."""
    while True:
        t = anchor - _ri(rng, 0, SPAN_DAYS * DAY)
        if not anchor - GAP_DAYS[0] * DAY <= t <= anchor - GAP_DAYS[1] * DAY:
            return t


def _people_by_campus(ds: Dataset, rng: random.Random, cd: CampusData,
                      scale: float) -> dict[int, tuple[list[int], list[int]]]:
    """Per campus: (mirrored user ids, outsider ids). Outsiders are made here (~15 % of users)."""
    out: dict[int, tuple[list[int], list[int]]] = {c: ([], []) for c in ds.tables["campuses"]}
    for uid, u in ds.tables["users"].items():
        out.setdefault(u["_campus_id"], ([], []))[0].append(uid)
    campus_ids = sorted(out)
    taken: set[str] = set()
    oid = 800_000
    for _ in range(max(len(campus_ids), round(len(ds.tables["users"]) * 0.15))):
        oid += _ri(rng, 1, 3)
        cid = rng.choice(campus_ids)
        row = make_user(rng, oid, cid, taken, now=cd.anchor)
        login = f"{row['login']}{oid % 1000}"
        row.update({"login": login, "email": f"{login}@student.42.fr", "url": f"{API}/v2/users/{login}"})
        if rng.random() < 0.05:   # staff
            row.update({"kind": "admin", "staff?": True})
        cd.outsiders[oid] = row
        out[cid][1].append(oid)
    return out


def _gen_locations(rng: random.Random, cd: CampusData, by_campus: dict[int, tuple[list[int], list[int]]]) -> None:
    """Each person's sessions one after the other (ids ascending: the dict stays in id order)."""
    lid = 20_000_000
    for cid, (users, outsiders) in by_campus.items():
        people = [u for u in users if rng.random() < SESSION_SHARE] + [o for o in outsiders if rng.random() < 0.25]
        for uid in people:
            t = cd.anchor - SPAN_DAYS * DAY + _ri(rng, 0, 3 * DAY)
            while t < cd.anchor:
                length = _ri(rng, 20 * 60_000, 11 * HOUR)
                if not cd.anchor - GAP_DAYS[0] * DAY <= t <= cd.anchor - GAP_DAYS[1] * DAY:
                    lid += _ri(rng, 1, 40)
                    cd.locations[lid] = {
                        "id": lid, "begin_at": t, "_end": None if rng.random() < STUCK_SHARE else t + length,
                        "primary": rng.random() < 0.93, "campus_id": cid, "_user_id": uid,
                        "host": f"c{_ri(rng, 1, 4)}r{_ri(rng, 1, 13)}s{_ri(rng, 1, 8)}"}
                t += length + _ri(rng, 2 * HOUR, 4 * DAY)


def _gen_evaluations(ds: Dataset, rng: random.Random, cd: CampusData,
                     by_campus: dict[int, tuple[list[int], list[int]]]) -> None:
    """Teams (their members from one campus) and 1-3 evaluations of each; ~18 % pool ones."""
    p21 = sorted(p["id"] for p in ds.cursus_projects(CURSUS_21))
    pool = sorted(p["id"] for p in ds.tables["projects"].values() if CURSUS_21 not in p["_cursus_ids"]) or p21
    tid, sid = 4_000_000, 5_000_000
    for cid, (users, outsiders) in by_campus.items():
        for _ in range(round(len(users) * 0.35)):
            is_pool = rng.random() < POOL_SHARE and len(outsiders) >= 2
            people = outsiders if is_pool else users
            if len(people) < 2:
                continue
            tid += _ri(rng, 1, 3)
            members = rng.sample(people, min(len(people) - 1, rng.choice((1, 1, 1, 2, 3, 4))))
            cd.teams[tid] = _make_team(rng, tid, rng.choice(pool if is_pool else p21), members, cd.anchor)
            for _ in range(rng.choice((1, 2, 2, 3))):
                sid += _ri(rng, 1, 4)
                corrector = rng.choice(people)
                while corrector in members:   # members take at most len(people) - 1 of them
                    corrector = rng.choice(people)
                cd.scale_teams[sid] = _make_scale_team(rng, sid, cd.teams[tid], corrector, cid)


def _make_team(rng: random.Random, tid: int, project_id: int, members: list[int], anchor: int) -> dict[str, Any]:
    created = _in_span(rng, anchor)
    return {"id": tid, "name": f"team-{tid}", "_project_id": project_id,
            "project_session_id": _ri(rng, 1000, 9000), "created_at": created,
            "_members": [(uid, k == 0, rng.choice((0, 0, 0, 1, 2)), _ri(rng, 2_000_000, 3_000_000))
                         for k, uid in enumerate(members)],
            "repo_uuid": f"intra-uuid-{rng.getrandbits(64):016x}", "_evaluations": []}


def _make_scale_team(rng: random.Random, sid: int, team: dict[str, Any], corrector: int, cid: int) -> dict[str, Any]:
    created = team["created_at"] + _ri(rng, 10 * 60_000, 2 * DAY)
    begin = created + _ri(rng, HOUR, 2 * DAY)
    filled = None if rng.random() < 0.03 else begin + _ri(rng, 15 * 60_000, 2 * HOUR)
    mark = rng.choice((0, 0, 50, 80, 100, 100, 100, 115, 125))
    flag = FLAGS[0][0] if mark >= 80 else rng.choice(FLAGS[2:])[0]
    if mark == 125:
        flag = FLAGS[1][0]
    team["_evaluations"].append(sid)
    return {"id": sid, "_campus_id": cid, "_team_id": team["id"], "scale_id": 1000 + team["_project_id"] % 4000,
            "_corrector": corrector, "created_at": created, "begin_at": begin, "_filled": filled,
            "_mark": mark, "_flag": flag, "_truant": rng.random() < 0.02,
            "_comment": _text(rng, "The code works; we went through every part of the subject."),
            "_feedback": _text(rng, "Clear explanations,\nthanks for the time."),
            "_feedback_at": None if filled is None or rng.random() < 0.2 else filled + _ri(rng, HOUR, 3 * DAY),
            "_rating": _ri(rng, 1, 5)}


def _text(rng: random.Random, text: str) -> str:
    return text if rng.random() < 0.9 else f"{text} {rng.choice(names.ODD_TEXT)}"


def _gen_events(ds: Dataset, rng: random.Random, cd: CampusData) -> None:
    eid = 30_000
    campus_ids = sorted(ds.tables["campuses"])
    for cid in campus_ids:
        for _ in range(_ri(rng, 6, 16)):
            eid += _ri(rng, 1, 9)
            created = _in_span(rng, cd.anchor)
            begin = created + _ri(rng, DAY, 30 * DAY)
            more = rng.sample(campus_ids, rng.choice((0, 0, 0, 0, 1, 2)))
            cd.events[eid] = {
                "id": eid, "name": _text(rng, f"{rng.choice(names.PROJECT_WORDS_A)} {rng.choice(EVENT_KINDS)}"),
                "description": _text(rng, "Come and meet us.\nBring your laptop."),
                "location": rng.choice(("Cluster 1", "Auditorium", "Online", "Kitchen", "")),
                "kind": rng.choice(EVENT_KINDS), "max_people": None if rng.random() < 0.3 else _ri(rng, 10, 200),
                "nbr_subscribers": _ri(rng, 0, 120), "begin_at": begin, "end_at": begin + _ri(rng, HOUR, 8 * HOUR),
                "campus_ids": sorted({cid, *more}), "cursus_ids": [CURSUS_21] if rng.random() < 0.8 else [CURSUS_21, 9],
                "created_at": created, "updated_at": min(cd.anchor, created + _ri(rng, 0, 10 * DAY)),
                "prohibition_of_cancellation": None if rng.random() < 0.6 else rng.choice((0, 24, 48)),
                "waitlist": None, "themes": []}


def _gen_exams(ds: Dataset, rng: random.Random, cd: CampusData) -> None:
    xid = 15_000
    exam_projects = sorted(p["id"] for p in ds.tables["projects"].values() if p.get("exam")) or \
        sorted(ds.tables["projects"])[:5]
    for cid in sorted(ds.tables["campuses"]):
        for _ in range(_ri(rng, 2, 6)):
            xid += _ri(rng, 1, 5)
            created = _in_span(rng, cd.anchor)
            begin = created + _ri(rng, DAY, 20 * DAY)
            nets = [f"10.{_ri(rng, 11, 19)}.0.0/16" for _ in range(rng.choice((1, 2, 3)))]
            cd.exams[xid] = {
                "id": xid, "name": rng.choice(("Exam Rank 02", "Exam Rank 03", "Exam Rank 04", "Exam Rank 05",
                                               "Exam Rank 06", "Final Exam")),
                "ip_range": ",".join(nets), "begin_at": begin, "end_at": begin + 3 * HOUR,
                "location": rng.choice(("Cluster 1", "Cluster 3", "Exam room")),
                "max_people": None if rng.random() < 0.2 else _ri(rng, 20, 120), "nbr_subscribers": _ri(rng, 0, 80),
                "created_at": created, "updated_at": min(cd.anchor, created + _ri(rng, 0, 5 * DAY)),
                "_campus_id": cid, "_project_ids": rng.sample(exam_projects, min(len(exam_projects), 2))}


# ====================================================================== views at the clock
#: stored fields rendered as ISO text, per resource (the query's timestamp fields too)
TS_FIELDS: dict[str, tuple[str, ...]] = {
    "locations": ("begin_at", "end_at"), "scale_teams": ("created_at", "updated_at", "begin_at", "filled_at"),
    "events": ("begin_at", "end_at", "created_at", "updated_at"),
    "exams": ("begin_at", "end_at", "created_at", "updated_at"),
}


def _location_view(cd: CampusData, row: dict[str, Any], t: int) -> dict[str, Any] | None:
    if row["begin_at"] > t:
        return None
    end = row["_end"]
    return {**row, "end_at": end if end is not None and end <= t else None}


def _scale_team_view(cd: CampusData, row: dict[str, Any], t: int) -> dict[str, Any] | None:
    if row["created_at"] > t:
        return None
    filled = row["_filled"] is not None and row["_filled"] <= t
    fb = filled and row["_feedback_at"] is not None and row["_feedback_at"] <= t
    stamps = [row["created_at"]] + ([row["_filled"]] if filled else []) + ([row["_feedback_at"]] if fb else [])
    return {**row, "filled_at": row["_filled"] if filled else None, "final_mark": row["_mark"] if filled else None,
            "comment": row["_comment"] if filled else None, "feedback": row["_feedback"] if fb else None,
            "updated_at": max(stamps), "_is_filled": filled, "_has_feedback": fb}


def _created_view(cd: CampusData, row: dict[str, Any], t: int) -> dict[str, Any] | None:
    return row if row["created_at"] <= t else None


VIEWS: dict[str, Callable[[CampusData, dict[str, Any], int], dict[str, Any] | None]] = {
    "locations": _location_view, "scale_teams": _scale_team_view, "events": _created_view, "exams": _created_view}


def view(ds: Dataset, resource: str, rows: Iterable[dict[str, Any]], at: int | None = None) -> list[dict[str, Any]]:
    """The stored rows as they stand at `at` (default: the clock); rows not yet created drop out."""
    cd = campus(ds)
    t = cd.now() if at is None else at
    make = VIEWS[resource]
    return [v for v in (make(cd, r, t) for r in rows) if v is not None]


def rows_of(ds: Dataset, resource: str, campus_id: int | None = None, user_id: int | None = None,
            at: int | None = None, role: str | None = None) -> list[dict[str, Any]]:
    """A listing's rows at the clock: every row, one campus's, or one user's (a user's sessions;
    the evaluations a user gave, `role="as_corrector"`, or received, `role="as_corrected"`)."""
    cd = campus(ds)
    stored: Iterable[dict[str, Any]] = cd.table(resource).values()
    if campus_id is not None:
        key = {"locations": "campus_id", "scale_teams": "_campus_id", "exams": "_campus_id"}.get(resource)
        stored = [r for r in stored if (campus_id in r["campus_ids"] if key is None else r[key] == campus_id)]
    if user_id is not None and role == "as_corrector":
        stored = [r for r in stored if r["_corrector"] == user_id]
    elif user_id is not None and role == "as_corrected":
        stored = [r for r in stored if any(m[0] == user_id for m in cd.teams[r["_team_id"]]["_members"])]
    elif user_id is not None:
        stored = [r for r in stored if r["_user_id"] == user_id]
    return view(ds, resource, stored, at)


def getter(resource: str) -> tuple[Callable[[dict[str, Any], str], Any], set[str]]:
    """The query's field reader for a view row (virtual fields included) and the known names."""
    virtual: dict[str, Callable[[dict[str, Any]], Any]] = {
        "locations": {"user_id": lambda r: r["_user_id"], "active": lambda r: r["end_at"] is None},
        "scale_teams": {"campus_id": lambda r: r["_campus_id"], "team_id": lambda r: r["_team_id"],
                        "corrector_id": lambda r: r["_corrector"]},
        "events": {"campus_id": lambda r: r["campus_ids"], "cursus_id": lambda r: r["cursus_ids"]},
        "exams": {"campus_id": lambda r: r["_campus_id"]},
    }[resource]

    def get(row: dict[str, Any], name: str) -> Any:
        fn = virtual.get(name)
        return fn(row) if fn is not None else row.get(name)

    plain = {"locations": {"id", "begin_at", "end_at", "primary", "host", "campus_id"},
             "scale_teams": {"id", "scale_id", "created_at", "updated_at", "begin_at", "filled_at", "final_mark"},
             "events": {"id", "name", "kind", "location", "begin_at", "end_at", "created_at", "updated_at",
                        "max_people", "nbr_subscribers"},
             "exams": {"id", "name", "location", "begin_at", "end_at", "created_at", "updated_at"}}[resource]
    return get, plain | set(virtual)


# ====================================================================== rendering
def _who(ds: Dataset, uid: int) -> dict[str, Any]:
    u = person(ds, uid) or {}
    login = u.get("login")
    return {"id": uid, "login": login, "url": f"{API}/v2/users/{login or uid}"}


def _ts(row: dict[str, Any], resource: str) -> dict[str, Any]:
    """The public fields of a view row, timestamps as the API writes them (`...Z`)."""
    ts = TS_FIELDS[resource]
    return {k: (fmt(v) if k in ts and isinstance(v, int) else v) for k, v in row.items() if k[0] != "_"}


def render(ds: Dataset, resource: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """View rows -> API payloads (fresh dicts)."""
    if resource == "locations":
        users: dict[int, dict[str, Any]] = {}
        out = []
        for r in rows:
            uid = r["_user_id"]
            if uid not in users:
                u = person(ds, uid)
                users[uid] = ds.render("users", [u])[0] if u is not None else {"id": uid}
            d = _ts(r, resource)
            out.append({"end_at": d["end_at"], "id": d["id"], "begin_at": d["begin_at"], "primary": d["primary"],
                        "host": d["host"], "campus_id": d["campus_id"], "user": dict(users[uid])})
        return out
    if resource == "scale_teams":
        return [_render_scale_team(ds, r) for r in rows]
    if resource == "exams":
        return [_render_exam(ds, r) for r in rows]
    return [_ts(r, resource) for r in rows]


def _flag(flag_id: int) -> dict[str, Any]:
    fid, name, positive, icon = next(f for f in FLAGS if f[0] == flag_id)
    return {"id": fid, "name": name, "positive": positive, "icon": icon,
            "created_at": "2015-09-14T23:06:52.000Z", "updated_at": "2015-09-14T23:06:52.000Z"}


def _scale(scale_id: int) -> dict[str, Any]:
    """The scale object, derived from its id (no random draw: the same everywhere)."""
    return {"id": scale_id, "evaluation_id": scale_id // 3 + 1, "name": "scale 1.0", "is_primary": True,
            "comment": "", "introduction_md": "Please be polite and respectful.",
            "disclaimer_md": "", "guidelines_md": "Only grade the work in the git repository.",
            "created_at": "2019-06-13T14:35:49.000Z", "correction_number": 1 + scale_id % 3,
            "duration": 900 * (1 + scale_id % 4), "manual_subscription": True,
            "languages": [{"id": 2, "name": "English", "identifier": "en", "created_at": "2015-04-14T16:07:38.122Z",
                           "updated_at": "2025-11-18T12:31:06.418Z"}],
            "flags": [_flag(f[0]) for f in FLAGS], "free": False}


def render_team(ds: Dataset, team: dict[str, Any], t: int) -> dict[str, Any]:
    """A team at `t`: finished and marked once every evaluation of it is filled."""
    evals = [campus(ds).scale_teams[s] for s in team["_evaluations"]]
    fills = [e["_filled"] for e in evals if e["_filled"] is not None and e["_filled"] <= t]
    done = len(fills) == len(evals)
    mark = round(sum(e["_mark"] for e in evals) / len(evals)) if done else None
    validated = None if mark is None else mark >= 80
    project = ds.tables["projects"].get(team["_project_id"]) or {}
    slug = project.get("slug") or str(team["_project_id"])
    closed = team["created_at"] + HOUR
    return {"id": team["id"], "name": team["name"], "url": f"{API}/v2/teams/{team['id']}", "final_mark": mark,
            "project_id": team["_project_id"], "created_at": fmt(team["created_at"]),
            "updated_at": fmt(max([closed] + fills)), "status": "finished" if done else "waiting_for_correction",
            "terminating_at": None,
            "users": [{**_who(ds, uid), "leader": leader, "occurrence": occ, "validated": validated,
                       "projects_user_id": pu} for uid, leader, occ, pu in team["_members"]],
            "locked?": True, "validated?": validated, "closed?": True, "repo_url":
            f"git@vogsphere.42.fr:vogsphere/intra-uuid-{team['id']}", "repo_uuid": team["repo_uuid"],
            "locked_at": fmt(closed), "closed_at": fmt(closed), "project_session_id": team["project_session_id"],
            "project_gitlab_path": f"pedago_world/42-cursus/{slug}"}


def _render_scale_team(ds: Dataset, r: dict[str, Any]) -> dict[str, Any]:
    cd = campus(ds)
    team = cd.teams[r["_team_id"]]
    t = cd.now()
    leader = team["_members"][0][0]
    d = _ts(r, "scale_teams")
    out: dict[str, Any] = {
        "id": r["id"], "scale_id": r["scale_id"], "comment": d["comment"], "created_at": d["created_at"],
        "updated_at": d["updated_at"], "feedback": d["feedback"], "final_mark": d["final_mark"],
        "flag": _flag(r["_flag"]) if r["_is_filled"] else None, "begin_at": d["begin_at"],
        "correcteds": [_who(ds, uid) for uid, *_ in team["_members"]], "corrector": _who(ds, r["_corrector"]),
        "truant": _who(ds, leader) if r["_truant"] and r["_is_filled"] else {}, "filled_at": d["filled_at"],
        "questions_with_answers": [], "scale": _scale(r["scale_id"]), "team": render_team(ds, team, t),
        "feedbacks": [] if not r["_has_feedback"] else [{
            "id": r["id"] * 2 + 1, "user": {"login": _who(ds, leader)["login"], "id": leader,
                                            "url": _who(ds, leader)["url"]},
            "feedbackable_type": "ScaleTeam", "feedbackable_id": r["id"], "comment": r["_feedback"],
            "rating": r["_rating"], "created_at": fmt(r["_feedback_at"])}]}
    if r["id"] % JSONAPI_EVERY == JSONAPI_AT:
        attributes = {k: v for k, v in out.items() if k not in ("id", "scale", "team", "feedbacks")}
        return {"id": str(r["id"]), "type": "scale-teams", "attributes": attributes,
                "scale": out["scale"], "team": out["team"], "feedbacks": out["feedbacks"]}
    if r["id"] % INVISIBLE_EVERY == 3:
        out.update({"corrector": "invisible", "correcteds": "invisible", "begin_at": None})
    return out


def _render_exam(ds: Dataset, r: dict[str, Any]) -> dict[str, Any]:
    c = ds.tables["campuses"].get(r["_campus_id"])
    cursus = ds.tables["cursus"].get(CURSUS_21)
    projects = [ds.tables["projects"][p] for p in r["_project_ids"] if p in ds.tables["projects"]]
    d = _ts(r, "exams")
    d["campus"] = ds.render("campuses", [c])[0] if c is not None else None
    d["cursus"] = [] if cursus is None else [{k: v for k, v in ds.render("cursus", [cursus])[0].items()
                                              if k in ("id", "created_at", "name", "slug")}]
    d["projects"] = [{k: v for k, v in p.items() if k in ("id", "name", "slug", "difficulty", "exam", "git_id",
                                                           "repository", "recommendation")} for p in projects]
    return d


# ====================================================================== logtime
def _campus_zone(ds: Dataset, campus_id: int | None) -> ZoneInfo:
    c = ds.tables["campuses"].get(campus_id) if campus_id is not None else None
    return ZoneInfo((c or {}).get("time_zone") or "UTC")


def _split_days(begin: int, end: int, tz: ZoneInfo) -> Iterable[tuple[str, int]]:
    """(local day, ms) pieces of [begin, end): a session across local midnight is split."""
    t = begin
    while t < end:
        local = datetime.fromtimestamp(t / 1000, tz)
        # the next local midnight as a wall time (a day with a DST change is 23 or 25 hours long)
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=tz)
        stop = min(end, int(midnight.timestamp() * 1000))
        if stop <= t:   # never loop in place
            stop = end
        yield local.date().isoformat(), stop - t
        t = stop


def logtime_by_day(ds: Dataset, user_id: int, at: int | None = None) -> dict[str, int]:
    """Milliseconds logged per day by `user_id`, at `at` (default: the clock): every session of
    the user (primary or not) cut at its campus's local midnights (the campus object's
    `time_zone`), an open session counted up to `at`, days without time absent. What
    `/v2/users/:id/locations_stats` shows, and what netops' logtime_daily must hold for the
    sessions it mirrors (tests: `logtime_by_day(server.data, uid, at=ms)`)."""
    t = campus(ds).now() if at is None else at
    out: dict[str, int] = {}
    for r in rows_of(ds, "locations", user_id=user_id, at=t):
        end = r["end_at"] if r["end_at"] is not None else t
        for day, ms in _split_days(r["begin_at"], min(end, t), _campus_zone(ds, r["campus_id"])):
            out[day] = out.get(day, 0) + ms
    return {d: ms for d, ms in out.items() if ms > 0}


def duration_text(ms: int, user_id: int, day: str) -> str:
    """`HH:MM:SS.ffffff` as locations_stats writes it; the sub-millisecond digits (which the
    simulator's ms clock lacks) are derived, and trailing zeros are dropped, so the fraction has
    fewer than 6 digits on some days (docs/api.md)."""
    jitter = (user_id * 31 + sum(map(ord, day))) % 1000
    micro = ms * 1000 + (jitter if jitter % 4 else 0)
    secs, frac = divmod(micro, 1_000_000)
    hh, rest = divmod(secs, 3600)
    text = f"{frac:06d}".rstrip("0") or "0"
    return f"{hh:02d}:{rest // 60:02d}:{rest % 60:02d}.{text}"


def locations_stats(ds: Dataset, user_id: int, begin: str | None = None, end: str | None = None) -> dict[str, str]:
    """The `/v2/users/:id/locations_stats` object, newest day first; `begin`/`end` (YYYY-MM-DD,
    inclusive) narrow the days."""
    days = logtime_by_day(ds, user_id)
    keep = [d for d in sorted(days, reverse=True) if (begin is None or d >= begin[:10]) and (end is None or d <= end[:10])]
    return {d: duration_text(days[d], user_id, d) for d in keep}


# ====================================================================== the expected mirror
def _value(column: catalog.Column, raw: Any) -> Any:
    """A mapped value as a correct mirror reads it back: timestamps in UTC `...Z`, json as given."""
    if raw is None:
        return None
    if column.kind == "json":
        return raw
    value = CONVERTERS[column.kind](raw)
    if column.kind == "ts" and not (isinstance(value, str) and len(value) == 24 and value.endswith("Z")):
        return fmt(int(parse_ts(value).astimezone(timezone.utc).timestamp() * 1000))
    return value


def _mapped(table: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {c.name: _value(c, c.getter(obj)) for c in catalog.BY_NAME[table].columns}


def _scope(ds: Dataset, cd: CampusData) -> set[int]:
    return set(cd.scope) if cd.scope is not None else ds.mirrored_campus_ids()


def expected_all(ds: Dataset) -> dict[str, list[dict[str, Any]]]:
    """Every campus-scoped table as a correct mirror holds it at the clock, for the campuses in
    scope (`CampusData.scope`: none by default, None for every mirrored campus) over the backfill horizon
    (`horizon_days`: sessions by begin_at, the others by updated_at): the rows as served (hidden
    people NULL), minus what the user rule erases — a mirrored user past data_erasure_date takes
    their sessions, the evaluations naming them (visibly) and their team memberships along."""
    cd = campus(ds)
    t, scope = cd.now(), _scope(ds, cd)
    since = t - cd.horizon_days * DAY
    locs = view(ds, "locations", (r for r in cd.locations.values() if r["campus_id"] in scope), t)
    out: dict[str, list[dict[str, Any]]] = {"locations": [
        row for row in (_mapped("locations", o) for o in render(ds, "locations", [r for r in locs if r["begin_at"] >= since]))
        if not erased(ds, row["user_id"], t)]}
    evals = [r for r in view(ds, "scale_teams", (r for r in cd.scale_teams.values() if r["_campus_id"] in scope), t)
             if r["updated_at"] >= since]
    out.update(_expected_evaluations(ds, evals, t))
    events = view(ds, "events", (r for r in cd.events.values() if scope & set(r["campus_ids"])), t)
    out["events"] = [_mapped("events", o) for o in render(ds, "events", [r for r in events if r["updated_at"] >= since])]
    exams = view(ds, "exams", (r for r in cd.exams.values() if r["_campus_id"] in scope), t)
    out["exams"] = [_mapped("exams", o) for o in render(ds, "exams", [r for r in exams if r["updated_at"] >= since])]
    return {name: sorted(rows, key=lambda r, n=name: tuple(r[k] for k in catalog.BY_NAME[n].pk))
            for name, rows in out.items()}


def _expected_evaluations(ds: Dataset, evals: list[dict[str, Any]], t: int) -> dict[str, list[dict[str, Any]]]:
    teams: dict[int, dict[str, Any]] = {}
    members: dict[tuple[int, int], dict[str, Any]] = {}
    scale_teams = []
    for r, obj in zip(evals, render(ds, "scale_teams", evals), strict=True):
        row = _mapped("scale_teams", {**obj, "campus_id": r["_campus_id"]})
        team_rows = [_mapped("teams_users", m) for m in catalog.BY_NAME["teams_users"].source.rows(obj)]  # type: ignore[union-attr]
        for team in catalog.BY_NAME["teams"].source.rows(obj):  # type: ignore[union-attr]
            teams[team["id"]] = _mapped("teams", team)
        members.update({(m["team_id"], m["position"]): m for m in team_rows if not erased(ds, m["user_id"], t)})
        named = [row["corrector_id"]] + [m["user_id"] for m in team_rows]
        if not any(erased(ds, uid, t) for uid in named):
            scale_teams.append(row)
    return {"teams": list(teams.values()), "teams_users": list(members.values()), "scale_teams": scale_teams}


def _hidden_corrector(scale_team_id: int) -> bool:
    """The team-embedded variant hides the corrector (the JSON:API one does not)."""
    return scale_team_id % JSONAPI_EVERY != JSONAPI_AT and scale_team_id % INVISIBLE_EVERY == 3


def expected_keys(ds: Dataset) -> dict[str, list[tuple[Any, ...]]]:
    """The primary keys of `expected_all`, without rendering (the control API's reset and
    counts ask for them often; tests/unit/test_sim_campus.py holds the two equal)."""
    cd = campus(ds)
    t, scope = cd.now(), _scope(ds, cd)
    since = t - cd.horizon_days * DAY
    evals = [v for v in view(ds, "scale_teams", (r for r in cd.scale_teams.values() if r["_campus_id"] in scope), t)
             if v["updated_at"] >= since]
    members = {(e["_team_id"], i): uid for e in evals for i, (uid, *_r) in enumerate(cd.teams[e["_team_id"]]["_members"])}

    def kept(e: dict[str, Any]) -> bool:
        named = [uid for uid, *_r in cd.teams[e["_team_id"]]["_members"]]
        return not any(erased(ds, uid, t) for uid in named + ([] if _hidden_corrector(e["id"]) else [e["_corrector"]]))

    return {
        "locations": [(r["id"],) for r in cd.locations.values() if r["campus_id"] in scope
                      and since <= r["begin_at"] <= t and not erased(ds, r["_user_id"], t)],
        "teams": sorted({(e["_team_id"],) for e in evals}),
        "teams_users": sorted(k for k, uid in members.items() if not erased(ds, uid, t)),
        "scale_teams": [(e["id"],) for e in evals if kept(e)],
        "events": [(r["id"],) for r in cd.events.values() if scope & set(r["campus_ids"])
                   and since <= r["updated_at"] and r["created_at"] <= t],
        "exams": [(r["id"],) for r in cd.exams.values() if r["_campus_id"] in scope
                  and since <= r["updated_at"] and r["created_at"] <= t],
    }
