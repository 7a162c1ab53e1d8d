"""Deterministic synthetic 42 data, the mutations the control API applies, and the expected mirror.

Why it is shaped this way:
- Everything derives from `random.Random(seed)` (stable data) and a second RNG (backlog data), so
  the stable set does not change when only `backlog_scale` does, and two servers with one seed
  serve byte-identical answers.
- Rows are stored close to the API's shape (field names with `?`, nulls) as docs/api.md's "Real
  payloads" describes it, field for field (quirks the real API never shows exist only as named
  faults, netops/sim/faults.py), but
  timestamps are kept as epoch milliseconds and references (a project's campuses, a
  projects_user's user) as ids in `_`-prefixed keys. Nested objects are built at render time
  from the current tables, so a deleted campus vanishes from every project's nested list and a
  renamed user shows up in every nested `user` - the cascades the real API has, for free.
- The exact sizes in docs/api.md are hit by drawing uneven counts and then nudging them to the
  required sum, so the totals are exact while the distribution stays lumpy like real data.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from netops import catalog
from netops.sim import names
from netops.sim.timeutil import BASE_MS, fmt, now_ms, parse

API = "https://api.intra.42.fr"
DAY = 86_400_000
YEAR = 365 * DAY

STABLE_RESOURCES = ("cursus", "campuses", "projects", "project_sessions", "coalitions", "achievements")
#: the backlog resources, by the API's names (the catalog's queue names), parents first
BACKLOG_RESOURCES = catalog.backlog_resource_names()
#: the resources `random_change` churns, with their weights (cursus_users' changes are the silent
#: `level` moves a test makes with modify(touch=False), so random churn leaves them alone)
CHURN = (("users", 40), ("projects_users", 30), ("achievements_users", 15), ("coalitions_users", 15))
RESOURCES = STABLE_RESOURCES + BACKLOG_RESOURCES
LINK_RESOURCES = ("campus_projects", "campus_achievements")

#: spellings people use; every backlog resource also answers to its mirror table's name and its
#: singular (`project_users`, `titles_user`), derived from the catalog below
ALIASES = {
    "campus": "campuses", "project": "projects", "sessions": "project_sessions",
    "project_session": "project_sessions", "coalition": "coalitions", "achievement": "achievements",
    "user": "users", "achievement_users": "achievements_users", "coalition_users": "coalitions_users",
}


def _backlog_aliases() -> dict[str, str]:
    out: dict[str, str] = {}
    for spec in catalog.BACKLOG:
        res = spec.source.resource  # type: ignore[union-attr]
        out.update({alias: res for alias in (spec.name, res[:-1]) if alias != res})
    return out


ALIASES.update({k: v for k, v in _backlog_aliases().items() if k not in ALIASES})

#: Mirror tables (names as in the netops schema) -> their primary key columns: the catalog's.
STABLE_TABLES = {s.name: list(s.pk) for s in catalog.STABLE}
BACKLOG_TABLES = {s.name: list(s.pk) for s in catalog.BACKLOG}
#: the campus-scoped tables (locations, evaluations, events, exams): netops/sim/campus.py
CAMPUS_TABLES = {s.name: list(s.pk) for s in catalog.CAMPUS_SCOPED}
TABLES = {**STABLE_TABLES, **BACKLOG_TABLES, **CAMPUS_TABLES}

#: fields stored as epoch ms and rendered as ISO text; the backlog resources' are added from
#: their generators (`Generator.ts`, by default the catalog's `ts` columns) at the end of the module
TS_FIELDS: dict[str, tuple[str, ...]] = {
    "cursus": ("created_at",),
    "campuses": (),
    "projects": ("created_at", "updated_at"),
    "project_sessions": ("begin_at", "end_at", "created_at", "updated_at"),
    "coalitions": (),
    "achievements": (),
}

# Exact sizes of the default data set (docs/api.md, December 2025).
N_CAMPUSES = 60
N_MIRRORED_CAMPUSES = 54
N_PROJECTS_21 = 519
N_PROJECTS_OTHER = 25
N_CAMPUS_PROJECTS = 20_937
N_SESSIONS = 7_256
N_COALITIONS = 350
N_ACHIEVEMENTS = 1_042
N_CAMPUS_ACHIEVEMENTS = 5_495
N_USERS = 40_300
CURSUS_21 = 21


def canonical(resource: str) -> str:
    """Map the many spellings people use (`campus`, `project_users`) to one resource name."""
    name = ALIASES.get(resource, resource)
    if name not in RESOURCES and name not in LINK_RESOURCES:
        raise KeyError(f"unknown resource {resource!r}; known: {', '.join(RESOURCES + LINK_RESOURCES)}")
    return name


#: Offsets (minutes) users' `anonymize_date` / `data_erasure_date` are written with: many,
#: negative ones common (docs/api.md "Real payloads").
USER_DATE_OFFSETS = (60, 120, 540, 0, -180, -300, -240, 330, 180, -360, 600, -420, 480, 60, -180)


def ts_offset(resource: str, row_id: Any, field: str) -> int:
    """Offset (minutes) a timestamp is written with, deterministic per (row, field).

    Real answers: every stable timestamp and users' created_at/updated_at end in `Z`; users'
    anonymize_date/data_erasure_date carry many offsets; the other backlog resources mostly `Z`,
    sometimes `+01:00`.
    """
    try:
        key = int(row_id)
    except (TypeError, ValueError):
        key = 0
    if field == "anonymize_date" or field == "data_erasure_date":
        return USER_DATE_OFFSETS[(key * 7 + len(field)) % len(USER_DATE_OFFSETS)]
    if resource in STABLE_RESOURCES or resource == "users":
        return 0
    try:
        key = int(row_id)
    except (TypeError, ValueError):
        return 0
    return 60 if (key * 7 + len(field)) % 6 == 0 else 0


def _ri(rng: random.Random, a: int, b: int) -> int:
    """randint(a, b) at a fraction of the cost (one C call): generation makes millions of these."""
    return a + int(rng.random() * (b - a + 1))


def _counts(rng: random.Random, n: int, total: int, lo: int, hi: int) -> list[int]:
    """n uneven integers in [lo, hi] summing exactly to total."""
    if not lo * n <= total <= hi * n:
        raise ValueError("impossible count distribution")
    counts = [rng.randint(lo, hi) for _ in range(n)]
    diff = total - sum(counts)
    while diff:
        i = rng.randrange(n)
        if diff > 0 and counts[i] < hi:
            counts[i] += 1
            diff -= 1
        elif diff < 0 and counts[i] > lo:
            counts[i] -= 1
            diff += 1
    return counts


def _ascending_ids(rng: random.Random, n: int, start: int, max_step: int) -> list[int]:
    ids, cur = [], start
    for _ in range(n):
        ids.append(cur)
        cur += rng.randint(1, max_step)
    return ids


def _slugify(text: str) -> str:
    out = "".join(ch.lower() if ch.isalnum() else "-" for ch in text)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")


def _ts(rng: random.Random, years_back: float = 6.0, until: int = BASE_MS) -> int:
    return until - rng.randint(0, int(years_back * YEAR))


def _image(rng: random.Random, kind: str, key: str) -> dict[str, Any]:
    h = f"{rng.getrandbits(64):016x}"
    base = f"https://cdn.intra.42.fr/{kind}/image/{h}"
    return {"link": f"{base}/{key}.jpg", "versions": {
        "large": f"{base}/large_{key}.jpg", "medium": f"{base}/medium_{key}.jpg",
        "small": f"{base}/small_{key}.jpg", "micro": f"{base}/micro_{key}.jpg"}}


def _odd(rng: random.Random, text: str, share: float) -> str:
    """Now and then, text as the real API carries it: emoji, embedded newline/tab/CR."""
    return f"{text} {rng.choice(names.ODD_TEXT)}" if rng.random() < share else text


#: The language timestamps the campus objects nested in projects carry (and the listing's lack).
LANGUAGE_STAMPS = {"created_at": "2014-11-02T16:43:38.480Z", "updated_at": "2025-11-18T12:31:06.418Z"}


def _nested_campus(campus: dict[str, Any]) -> dict[str, Any]:
    """A campus as nested in a project: no `endpoint` key, its language with timestamps."""
    out = {k: v for k, v in campus.items() if k != "endpoint"}
    if isinstance(out.get("language"), dict):
        out["language"] = {**out["language"], **LANGUAGE_STAMPS}
    return out


class Dataset:
    """All simulated rows: `tables[resource][id] -> stored row`, plus the campus->achievements lists.

    Rows are dicts in id order (inserts take ids above the max), so the default `sort=id`
    needs no sorting. Rows are copy-on-write: a mutation replaces the row dict (and any list in
    it) instead of changing it in place, so `clone()` only copies the id->row maps and clones
    share untouched rows (that is how reset to the pristine state stays fast at full scale).
    """

    def __init__(self, tables: dict[str, dict[int, dict[str, Any]]],
                 campus_achievements: dict[int, list[int]]) -> None:
        self.tables = tables
        self.campus_achievements = campus_achievements
        #: the campus-scoped data (netops.sim.campus.CampusData), added by the server
        self.campus: Any = None

    # ---------------------------------------------------------------- copies and lookups
    def clone(self) -> Dataset:
        out = Dataset({name: dict(rows) for name, rows in self.tables.items()}, dict(self.campus_achievements))
        out.campus = self.campus.clone() if self.campus is not None else None
        return out

    def _writable(self, resource: str, row_id: int) -> dict[str, Any]:
        """A private copy of a row, stored back in place of the (possibly shared) original."""
        row = dict(self.tables[resource][row_id])
        self.tables[resource][row_id] = row
        return row

    @staticmethod
    def random_key(rng: random.Random, table: dict[int, Any]) -> int:
        """A random existing id without listing 200k keys: ids are dense, so probing hits fast."""
        lo, hi = next(iter(table)), next(reversed(table))
        for _ in range(64):
            k = rng.randint(lo, hi)
            if k in table:
                return k
        return rng.choice(list(table))

    def next_id(self, resource: str) -> int:
        rows = self.tables[resource]
        return (next(reversed(rows)) if rows else 0) + 1  # rows are kept in id order

    def mirrored_campus_ids(self) -> set[int]:
        return {cid for cid, c in self.tables["campuses"].items() if c.get("active") is True and c.get("public") is True}

    def achievement_campus_names(self) -> dict[int, list[str]]:
        """Each achievement's `campus` list as the API renders it: the names of the campuses
        whose per-campus listing holds it (campus id order), then the names of campuses the
        simulator does not serve; or the list set explicitly with `modify(..., {"campus": [...]})`
        (the two sources can disagree in the real API too - that is what verify-links finds)."""
        campuses = self.tables["campuses"]
        by_ach: dict[int, list[str]] = {}
        for cid, lst in self.campus_achievements.items():
            c = campuses.get(cid)
            if c is None:
                continue
            for aid in lst:
                by_ach.setdefault(aid, []).append(c["name"])
        out = {}
        for aid, a in self.tables["achievements"].items():
            explicit = a.get("_campus_names")
            out[aid] = list(explicit) if explicit is not None else by_ach.get(aid, []) + list(a.get("_foreign_campus") or [])
        return out

    def cursus_projects(self, cursus_id: int) -> list[dict[str, Any]]:
        return [p for p in self.tables["projects"].values() if cursus_id in p["_cursus_ids"]]

    # ---------------------------------------------------------------- rendering
    def render(self, resource: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Turn stored rows into API payloads (fresh dicts: callers may mutate them)."""
        rows = list(rows)
        ts = TS_FIELDS[resource]
        if resource == "projects":
            return self._render_projects(rows)
        out = []
        nested = GENERATORS[resource].nested if resource in GENERATORS else None
        achievements = self.tables["achievements"]
        if resource == "achievements":
            campus_names = self.achievement_campus_names()
            children: dict[int, list[str]] = {}
            for a in achievements.values():
                if a["_parent_id"] is not None:
                    children.setdefault(a["_parent_id"], []).append(a["name"])
        for row in rows:
            rid = row.get("id")
            d: dict[str, Any] = {}
            for key, value in row.items():
                if key[0] == "_":
                    continue
                d[key] = fmt(value, ts_offset(resource, rid, key)) if key in ts and isinstance(value, int) else value
            if nested is not None:
                d.update(nested(self, row))
            elif resource == "achievements":
                parent = achievements.get(row["_parent_id"]) if row["_parent_id"] else None
                # the real parent is a full achievement object without `slug`
                d["parent"] = None if parent is None else {
                    k: parent[k] for k in ("id", "name", "description", "tier", "kind", "visible", "image",
                                           "nbr_of_success", "users_url")}
                d["achievements"] = list(children.get(rid, []))
                d["campus"] = campus_names.get(rid, [])
            out.append(d)
        return out

    def _render_projects(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        campus_cache = {c["id"]: _nested_campus(c) for c in self.render("campuses", self.tables["campuses"].values())}
        cursus_cache = {c["id"]: c for c in self.render("cursus", self.tables["cursus"].values())}
        wanted = {r["id"] for r in rows}
        sessions: dict[int, list[dict[str, Any]]] = {}
        for s in self.tables["project_sessions"].values():
            if s["project_id"] in wanted:
                sessions.setdefault(s["project_id"], []).append(s)
        projects = self.tables["projects"]
        children: dict[int, list[dict[str, Any]]] = {}
        for p in projects.values():
            if p["_parent_id"] is not None:
                children.setdefault(p["_parent_id"], []).append(
                    {"id": p["id"], "name": p["name"], "slug": p["slug"], "url": f"{API}/v2/projects/{p['slug']}"})
        out = []
        for row in rows:
            rid = row["id"]
            parent = projects.get(row["_parent_id"]) if row["_parent_id"] else None
            d: dict[str, Any] = {}
            for key, value in row.items():
                if key[0] == "_":
                    continue
                d[key] = fmt(value, ts_offset("projects", rid, key)) if key in ("created_at", "updated_at") and isinstance(value, int) else value
            d["parent"] = None if parent is None else {
                "id": parent["id"], "name": parent["name"], "slug": parent["slug"],
                "url": f"{API}/v2/projects/{parent['slug'] or parent['id']}"}
            d["children"] = list(children.get(rid, []))
            d["cursus"] = [cursus_cache[c] for c in row["_cursus_ids"] if c in cursus_cache]
            d["campus"] = [campus_cache[c] for c in row["_campus_ids"] if c in campus_cache]
            d["project_sessions"] = self.render("project_sessions", sessions.get(rid, []))
            out.append(d)
        return out

    # ---------------------------------------------------------------- expected mirror
    def expected_keys(self) -> dict[str, list[tuple[int, ...]]]:
        """Primary keys per mirror table, sorted: what a correct sync leaves in PostgreSQL."""
        t = self.tables
        mirrored = self.mirrored_campus_ids()
        p21 = [p for p in t["projects"].values() if CURSUS_21 in p["_cursus_ids"]]
        p21_ids = {p["id"] for p in p21}
        ach = t["achievements"]
        keys: dict[str, list[tuple[int, ...]]] = {
            "cursus": [(CURSUS_21,)] if CURSUS_21 in t["cursus"] else [],
            "campuses": sorted((c,) for c in mirrored),
            "projects": sorted((p,) for p in p21_ids),
            "coalitions": sorted((c,) for c in t["coalitions"]),
            "achievements": sorted((a,) for a in ach),
            "campus_projects": sorted({(c, p["id"]) for p in p21 for c in p["_campus_ids"] if c in mirrored}),
            "campus_achievements": self._derived_links(mirrored),
            "project_sessions": sorted((s["id"],) for s in t["project_sessions"].values() if s["project_id"] in p21_ids),
        }
        for spec in catalog.BACKLOG:
            gen = GENERATORS[spec.source.resource]  # type: ignore[union-attr]
            keys[spec.name] = sorted((k,) for k, r in t[gen.resource].items() if gen.mirrored(r))
        if self.campus is not None:
            keys.update(self.campus.expected_keys(self))
        return keys

    def _derived_links(self, mirrored: set[int]) -> list[tuple[int, ...]]:
        """campus_achievements as a correct mirror derives them: each achievement's `campus`
        names matched to the mirrored campuses by exact name."""
        by_name: dict[str, list[int]] = {}
        for cid in mirrored:
            by_name.setdefault(self.tables["campuses"][cid]["name"], []).append(cid)
        return sorted({(cid, aid) for aid, names_ in self.achievement_campus_names().items()
                       for n in names_ for cid in by_name.get(n, [])})

    def expected_counts(self) -> dict[str, int]:
        return {name: len(v) for name, v in self.expected_keys().items()}

    def expected_rows(self, table: str) -> list[dict[str, Any]]:
        """Mirrored column values of a stable table, keyed like the netops schema (001 migration).

        Timestamps are normalised to UTC `...Z` strings so a caller can compare them with
        whatever PostgreSQL returns after converting to UTC.
        """
        keys = self.expected_keys()[table]
        t = self.tables

        def z(ms: int | None) -> str | None:
            return fmt(ms, 0)

        if table == "cursus":
            return [{"id": c["id"], "name": c["name"], "slug": c["slug"], "kind": c["kind"],
                     "created_at": z(c["created_at"])} for (cid,) in keys for c in [t["cursus"][cid]]]
        if table == "campuses":
            cols = ["id", "name", "time_zone", "users_count", "vogsphere_id", "country", "address", "zip",
                    "city", "website", "facebook", "twitter", "active", "public", "email_extension"]
            out = []
            for (cid,) in keys:
                c = t["campuses"][cid]
                row = {k: c.get(k) for k in cols}
                lang = c.get("language") or {}
                row["language_id"], row["language_name"] = lang.get("id"), lang.get("name")
                out.append(row)
            return out
        if table == "projects":
            out = []
            for (pid,) in keys:
                p = t["projects"][pid]
                out.append({"id": pid, "name": p["name"], "slug": p["slug"],
                            "parent_id": p["_parent_id"] if p["_parent_id"] in t["projects"] else None,
                            "exam": p["exam"], "git_id": p["git_id"], "repository": p["repository"],
                            "difficulty": p["difficulty"], "created_at": z(p["created_at"]),
                            "updated_at": z(p["updated_at"])})
            return out
        if table == "coalitions":
            cols = ["id", "name", "slug", "image_url", "cover_url", "color", "score", "user_id"]
            return [{k: t["coalitions"][cid].get(k) for k in cols} for (cid,) in keys]
        if table == "achievements":
            out = []
            for (aid,) in keys:
                a = t["achievements"][aid]
                out.append({"id": aid, "name": a["name"], "description": a["description"], "tier": a["tier"],
                            "kind": a["kind"], "visible": a["visible"], "image": a["image"],
                            "nbr_of_success": a["nbr_of_success"], "users_url": a["users_url"],
                            "parent_id": a["_parent_id"] if a["_parent_id"] in t["achievements"] else None,
                            "title": (a["title"] or {}).get("name")})
            return out
        if table == "project_sessions":
            cols = ["id", "project_id", "campus_id", "cursus_id", "begin_at", "end_at", "solo", "estimate_time",
                    "difficulty", "duration_days", "max_people", "is_subscriptable", "created_at", "updated_at"]
            ts = TS_FIELDS["project_sessions"]
            return [{k: (z(s.get(k)) if k in ts else s.get(k)) for k in cols}
                    for (sid,) in keys for s in [t["project_sessions"][sid]]]
        if table in ("campus_projects", "campus_achievements"):
            second = STABLE_TABLES[table][1]
            return [{"campus_id": c, second: x} for c, x in keys]
        raise KeyError(f"no value listing for table {table!r}")

    # ---------------------------------------------------------------- mutations
    def delete(self, resource: str, row_id: Any) -> dict[str, int]:
        """Delete one row and cascade the way the real API would. Returns rows removed per resource."""
        resource = canonical(resource)
        if resource in LINK_RESOURCES:
            campus_id, other = (int(x) for x in row_id)
            self._delete_link(resource, campus_id, other)
            return {resource: 1}
        row_id = int(row_id)
        t = self.tables
        if row_id not in t[resource]:
            raise LookupError(f"no {resource} row with id {row_id}")
        del t[resource][row_id]
        removed: dict[str, int] = {resource: 1}

        def drop(res: str, pred: Any) -> None:
            gone = [k for k, r in t[res].items() if pred(r)]
            for k in gone:
                del t[res][k]
            if gone:
                removed[res] = removed.get(res, 0) + len(gone)

        if resource == "campuses":
            self._unlink_campus(row_id, removed)
        if resource == "projects":
            drop("project_sessions", lambda s: s["project_id"] == row_id)
        if resource == "achievements":
            links = 0
            for cid, lst in list(self.campus_achievements.items()):
                if row_id in lst:
                    self.campus_achievements[cid] = [a for a in lst if a != row_id]
                    links += 1
            if links:
                removed["campus_achievements"] = links
        for child, stored in cascade_children(resource):
            drop(child, lambda r, k=stored: r.get(k) == row_id)
        return removed

    def _delete_link(self, resource: str, campus_id: int, other: int) -> None:
        """Remove one campus_projects / campus_achievements link (a link has no row of its own)."""
        if resource == "campus_projects":
            p = self.tables["projects"].get(other)
            if p is None or campus_id not in p["_campus_ids"]:
                raise LookupError(f"no campus_projects link {campus_id},{other}")
            self._writable("projects", other)["_campus_ids"] = [c for c in p["_campus_ids"] if c != campus_id]
            return
        lst = self.campus_achievements.get(campus_id, [])
        if other not in lst:
            raise LookupError(f"no campus_achievements link {campus_id},{other}")
        self.campus_achievements[campus_id] = [a for a in lst if a != other]

    def _unlink_campus(self, campus_id: int, removed: dict[str, int]) -> None:
        """A deleted campus leaves every project's campus list and takes its achievement links."""
        links = 0
        for pid, p in list(self.tables["projects"].items()):
            if campus_id in p["_campus_ids"]:
                self._writable("projects", pid)["_campus_ids"] = [c for c in p["_campus_ids"] if c != campus_id]
                links += 1
        if links:
            removed["campus_projects"] = links
        lst = self.campus_achievements.pop(campus_id, [])
        if lst:
            removed["campus_achievements"] = len(lst)

    def modify(self, resource: str, row_id: Any, fields: dict[str, Any], touch: bool = True) -> dict[str, Any]:
        """Set fields on a stored row (API names; timestamps as ISO strings). Returns the new payload.

        `touch=True` moves `updated_at` to now, like an ordinary edit; `touch=False` changes
        values silently, like the server-computed fields that never move `updated_at`.
        Virtual fields: `campus` (list of campus ids) on projects, `campus_id` on users,
        `user_id`/`project_id` on projects_users, `parent_id` on projects/achievements, `campus`
        (the list of campus NAMES its `campus` field shows, or None for the one its per-campus
        listings imply) on achievements.
        """
        resource = canonical(resource)
        if int(row_id) not in self.tables[resource]:
            raise LookupError(f"no {resource} row with id {row_id}")
        row = self._writable(resource, int(row_id))
        ts = TS_FIELDS[resource]
        virtual = {("projects", "campus"): "_campus_ids", ("projects", "cursus"): "_cursus_ids",
                   ("projects", "parent_id"): "_parent_id", ("achievements", "parent_id"): "_parent_id",
                   ("achievements", "campus"): "_campus_names", ("users", "campus_id"): "_campus_id"}
        if resource in GENERATORS:
            virtual.update({(resource, k): v for k, v in GENERATORS[resource].stored.items()})
        for key, value in fields.items():
            if key == "id":
                raise ValueError("the primary key cannot be modified; delete and insert instead")
            if key in ts and isinstance(value, str):
                value = parse(value)
            row[virtual.get((resource, key), key)] = value
        if touch and "updated_at" in ts:
            row["updated_at"] = now_ms()
        return self.render(resource, [row])[0]

    def insert(self, resource: str, rng: random.Random, fields: dict[str, Any] | None = None,
               row_id: int | None = None) -> dict[str, Any]:
        """Add a generated row (then `fields` applied). created_at/updated_at are now."""
        resource = canonical(resource)
        table = self.tables[resource]
        rid = int(row_id) if row_id is not None else self.next_id(resource)
        if rid in table:
            raise ValueError(f"{resource} id {rid} already exists")
        now = now_ms()
        if resource not in GENERATORS:
            raise ValueError(f"insert is supported for backlog resources only, not {resource}")
        row = GENERATORS[resource].insert(self, rng, rid, now)
        row["created_at"] = row["updated_at"] = now
        out_of_order = bool(table) and rid < next(reversed(table))
        table[rid] = row
        if fields:
            self.modify(resource, rid, fields, touch=False)
        if out_of_order:
            # keep id order so the default sort stays a no-op
            self.tables[resource] = dict(sorted(table.items()))
        return self.render(resource, [self.tables[resource][rid]])[0]

    def _campus_choice(self, rng: random.Random) -> int:
        return rng.choice(sorted(self.mirrored_campus_ids()) or list(self.tables["campuses"]) or [1])

    def random_change(self, rng: random.Random, silent_share: float = 0.0) -> dict[str, Any]:
        """One churn step on a backlog resource: update (70%), insert (20%) or delete (10%)."""
        resource = rng.choices([r for r, _ in CHURN], weights=[w for _, w in CHURN])[0]
        table = self.tables[resource]
        roll = rng.random()
        if not table or (0.7 <= roll < 0.9):
            row = self.insert(resource, rng)
            return {"op": "insert", "resource": resource, "id": row["id"]}
        rid = self.random_key(rng, table)
        if roll >= 0.9 and len(table) > 1:
            cascade = self.delete(resource, rid)
            return {"op": "delete", "resource": resource, "id": rid, "cascade": cascade}
        fields = _random_update(rng, resource, table[rid])
        silent = rng.random() < silent_share
        self.modify(resource, rid, fields, touch=not silent)
        return {"op": "silent_update" if silent else "update", "resource": resource, "id": rid,
                "fields": sorted(fields)}


def _random_update(rng: random.Random, resource: str, row: dict[str, Any]) -> dict[str, Any]:
    if resource == "users":
        return {"location": rng.choice([None, f"e{rng.randint(1, 3)}r{rng.randint(1, 13)}p{rng.randint(1, 20)}"]),
                "wallet": row["wallet"] + rng.randint(1, 20), "correction_point": rng.randint(0, 20)}
    if resource == "projects_users":
        mark = rng.randint(0, 125)
        return {"status": "finished", "final_mark": mark, "validated?": mark >= 80, "marked": True,
                "marked_at": fmt(now_ms())}
    if resource == "coalitions_users":
        return {"score": row["score"] + rng.randint(1, 500), "rank": rng.randint(1, 500)}
    return {}


# ====================================================================== generation
NICKNAMES = {"Valentina": "Vale", "Mateo": "Teo", "Quentin": "Q", "Giulia": "Giuli", "Dmitri": "Dima",
             "Yasmine": "Yas", "Gustavo": "Guga", "Xavier": "Xav", "Alice": "Ali", "Jonas": "Jo"}


def make_user(rng: random.Random, uid: int, campus_id: int, taken: set[str], now: int = BASE_MS) -> dict[str, Any]:
    first, last = rng.choice(names.FIRST_NAMES), rng.choice(names.LAST_NAMES)
    base = (first[0] + last[:7]).lower().encode("ascii", "ignore").decode() or "user"
    login = base
    while login in taken:
        login = f"{base}{_ri(rng, 2, 999)}"
    taken.add(login)
    created = now - _ri(rng, 0, 6 * YEAR)
    updated = min(now, created + _ri(rng, 0, 3 * YEAR))
    # the real cursus-21 listing: every user a student, not staff, not alumni, phone "hidden";
    # the variations it does show (nicknames, missing pictures) derive from the id
    pool_year = (created // YEAR) + 1970
    anonymize = (now + _ri(rng, 1, 4) * YEAR) // DAY * DAY - 3_600_000
    erasure = anonymize + 30 * DAY * (1 + uid % 12)
    image = _image(rng, "users", login)
    if uid % 33 == 0:  # ~3 %: no picture, every link null
        image = {"link": None, "versions": {k: None for k in ("large", "medium", "small", "micro")}}
    usual_first = NICKNAMES.get(first, first) if uid % 9 == 0 else first
    row: dict[str, Any] = {
        "id": uid, "email": f"{login}@student.42.fr", "login": login, "first_name": first, "last_name": last,
        "usual_full_name": f"{usual_first} {last}", "usual_first_name": usual_first, "url": f"{API}/v2/users/{login}",
        "phone": "hidden",
        "displayname": f"{usual_first} {last}", "kind": "student", "image": image,
        "staff?": False, "correction_point": _ri(rng, 0, 30),
        "pool_month": rng.choice(names.MONTHS), "pool_year": str(pool_year),
        "location": None if rng.random() < 0.7 else f"e{_ri(rng, 1, 3)}r{_ri(rng, 1, 13)}p{_ri(rng, 1, 20)}",
        "wallet": _ri(rng, 0, 2000), "anonymize_date": anonymize, "data_erasure_date": erasure,
        "created_at": created, "updated_at": updated,
        "alumnized_at": None, "alumni?": False, "active?": rng.random() < 0.5,
        "_campus_id": campus_id,
    }
    return row


PU_STATUSES = ["finished", "in_progress", "searching_a_group", "creating_group", "waiting_for_correction", "parent"]
_PU_CUM = list(itertools.accumulate((70, 15, 4, 3, 5, 3)))


def make_projects_user(rng: random.Random, rid: int, user_id: int, project_id: int, now: int = BASE_MS) -> dict[str, Any]:
    status = PU_STATUSES[bisect.bisect(_PU_CUM, rng.random() * _PU_CUM[-1])]
    finished = status == "finished"
    mark = _ri(rng, 0, 125) if finished or rng.random() < 0.1 else None
    validated: bool | None = (mark is not None and mark >= 80) if finished else None
    if status == "in_progress" and rng.random() < 0.05:
        validated = True  # the real API does this: validated while still "in progress"
    created = now - _ri(rng, 0, 5 * YEAR)
    updated = min(now, created + _ri(rng, 0, 200 * DAY))
    marked_at = updated if mark is not None else None
    row: dict[str, Any] = {
        "id": rid, "occurrence": rng.choice([0, 0, 0, 1, 2]), "final_mark": mark, "status": status,
        "validated?": validated, "current_team_id": _ri(rng, 3_000_000, 6_000_000),
        "cursus_ids": [CURSUS_21], "marked_at": marked_at, "marked": mark is not None,
        "retriable_at": (marked_at + _ri(rng, 1, 30) * DAY) if marked_at and rng.random() < 0.5 else None,
        "created_at": created, "updated_at": updated,
        "_user_id": user_id, "_project_id": project_id,
    }
    return row


def make_achievements_user(rng: random.Random, rid: int, user: dict[str, Any], achievement_id: int,
                           now: int = BASE_MS) -> dict[str, Any]:
    created = now - _ri(rng, 0, 5 * YEAR)
    return {"id": rid, "achievement_id": achievement_id, "user_id": user["id"], "login": user["login"],
            "url": f"{API}/v2/users/{user['login']}", "created_at": created,
            "updated_at": min(now, created + _ri(rng, 0, 30 * DAY))}


def make_coalitions_user(rng: random.Random, rid: int, user_id: int, coalition_id: int, now: int = BASE_MS) -> dict[str, Any]:
    created = now - _ri(rng, 0, 5 * YEAR)
    return {"id": rid, "coalition_id": coalition_id, "user_id": user_id, "score": _ri(rng, 0, 40_000),
            "rank": _ri(rng, 1, 400), "created_at": created,
            "updated_at": min(now, created + _ri(rng, 0, 400 * DAY))}


GRADES = ("Learner", "Member", "Transcender", None)


def make_cursus_user(rng: random.Random, rid: int, user_id: int, now: int = BASE_MS,
                     created: int | None = None) -> dict[str, Any]:
    """A user's enrolment in cursus 21 as /v2/cursus/21/cursus_users shows it (docs/api.md): level a
    float with two decimals, skills with their own levels, blackholed_at for the ones at risk."""
    created = created if created is not None else now - _ri(rng, 0, 6 * YEAR)
    level = round(rng.random() * 21, 2)
    begin = created + _ri(rng, 0, 30) * DAY
    ended = rng.random() < 0.1
    return {
        "id": rid, "begin_at": begin, "end_at": min(now, begin + _ri(rng, 30, 4 * 365) * DAY) if ended else None,
        "grade": GRADES[min(3, int(level // 7))] if rng.random() < 0.9 else None, "level": level,
        "skills": [{"id": k, "name": n, "level": round(rng.random() * level, 2)}
                   for k, n in enumerate(names.SKILLS, start=1) if rng.random() < 0.6],
        "cursus_id": CURSUS_21, "has_coalition": rng.random() < 0.92,
        "blackholed_at": None if ended or rng.random() < 0.5 else now + _ri(rng, -200, 300) * DAY,
        "created_at": created, "updated_at": min(now, created + _ri(rng, 0, 2 * YEAR)),
        "_user_id": user_id,
    }


def add_cursus_users(ds: Dataset, seed: int, _scale: float = 1.0) -> None:
    """One cursus-21 enrolment per user, from an RNG of its own, so the other backlog tables do not
    depend on whether (or how) cursus_users are generated."""
    rng = random.Random(f"{seed}-cursus_users")
    out, rid = {}, 150_000
    for uid, user in ds.tables["users"].items():
        rid += _ri(rng, 1, 2)
        out[rid] = make_cursus_user(rng, rid, uid, created=user["created_at"])
    ds.tables["cursus_users"] = out


def _gen_cursus() -> dict[int, dict[str, Any]]:
    spec = [(1, "42", "42", "main"), (3, "Discovery Piscine", "discovery-piscine", "piscine"),
            (4, "Piscine C", "piscine-c", "piscine"), (9, "C Piscine", "c-piscine", "piscine"),
            (21, "42cursus", "42cursus", "main"), (53, "42.zip", "42-zip", "main")]
    created = [1383753600000, 1446112800000, 1448449200000, 1481025600000, 1573118400000, 1657792800000]
    return {cid: {"id": cid, "created_at": ts, "name": name, "slug": slug, "kind": kind}
            for (cid, name, slug, kind), ts in zip(spec, created, strict=True)}


def _gen_campuses(rng: random.Random) -> dict[int, dict[str, Any]]:
    ids = sorted([1] + rng.sample(range(2, 75), N_CAMPUSES - 1))
    odd = rng.sample(range(1, N_CAMPUSES), N_CAMPUSES - N_MIRRORED_CAMPUSES)
    flags = dict(zip(odd, [(False, True)] * 3 + [(True, False)] * 2 + [(False, False)], strict=True))
    out = {}
    no_email = rng.choice([i for i in range(N_CAMPUSES) if i not in odd])
    for i, cid in enumerate(ids):
        name, city, country, tz, lang_id = names.CAMPUSES[i]
        lname, ident = names.LANGUAGES[lang_id]
        active, public = flags.get(i, (True, True))
        slug = _slugify(name)
        # the top-level listing's language is {id, name, identifier}; the campus objects nested
        # in projects add the language's timestamps (and drop `endpoint`): see _nested_campus
        out[cid] = {
            "id": cid, "name": name, "time_zone": tz,
            "language": {"id": lang_id, "name": lname, "identifier": ident},
            "users_count": rng.randint(200, 25_000),
            "vogsphere_id": rng.randint(1, 60) if rng.random() < 0.85 else None,
            "country": country, "address": f"{rng.randint(1, 120)} rue {rng.choice(names.LAST_NAMES)}",
            "zip": f"{rng.randint(1000, 99999)}", "city": city, "website": f"https://42{slug}.com",
            "facebook": f"https://facebook.com/42{slug}" if rng.random() < 0.7 else "",
            "twitter": f"https://twitter.com/42{slug}" if rng.random() < 0.5 else "",
            "active": active, "public": public,
            "email_extension": None if i == no_email else f"42{slug}.com",
            "default_hidden_phone": rng.random() < 0.5,
            "endpoint": None if rng.random() < 0.1 else {
                "id": rng.randint(1, 100), "url": f"https://{slug}.vogsphere.42.fr",
                "description": f"{name} endpoint", "created_at": "2019-03-01T10:00:00.000Z",
                "updated_at": "2024-03-01T09:00:00.000Z"},
        }
    return out


TEAM_BEHAVIOURS = ("user", "user", "by_rule", "none", "upload")


def _gen_projects(rng: random.Random, campuses: dict[int, dict[str, Any]]
                  ) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    n_all = N_PROJECTS_21 + N_PROJECTS_OTHER
    ids = _ascending_ids(rng, n_all, 1, 5)
    other_pos = set(rng.sample(range(n_all), N_PROJECTS_OTHER))
    combos = [(a, b) for a in names.PROJECT_WORDS_A for b in names.PROJECT_WORDS_B]
    chosen = rng.sample(combos, n_all)
    mirrored = sorted(c for c, v in campuses.items() if v["active"] and v["public"])
    others = sorted(set(campuses) - set(mirrored))
    p21_idx = [i for i in range(n_all) if i not in other_pos]
    link_counts = dict(zip(p21_idx, _counts(rng, N_PROJECTS_21, N_CAMPUS_PROJECTS, 20, N_MIRRORED_CAMPUSES), strict=True))
    session_counts = dict(zip(p21_idx, _counts(rng, N_PROJECTS_21, N_SESSIONS, 0, 30), strict=True))
    # ~40 % of the cursus projects have children (docs/api.md); a child is never itself a parent
    parent_pos = rng.sample(p21_idx, round(N_PROJECTS_21 * 0.4))
    child_pos = [i for i in p21_idx if i not in set(parent_pos)]
    rng.shuffle(child_pos)
    parent_of: dict[int, int] = {}
    for k, i in enumerate(child_pos):
        if k < len(parent_pos):
            parent_of[i] = ids[parent_pos[k]]
        elif rng.random() < 0.5:
            parent_of[i] = ids[rng.choice(parent_pos)]
    projects: dict[int, dict[str, Any]] = {}
    sessions: dict[int, dict[str, Any]] = {}
    sid = 1000
    all_campuses = sorted(campuses)
    for i, pid in enumerate(ids):
        is21 = i not in other_pos
        a, b = chosen[i]
        name = f"{a}_{b}" if rng.random() < 0.7 else f"{a.capitalize()} {b}"
        created = _ts(rng, 10)
        updated = min(BASE_MS, created + rng.randint(0, 5 * YEAR))
        parent = parent_of.get(i)
        if is21:
            campus_ids = rng.sample(mirrored, link_counts[i]) + [c for c in others if rng.random() < 0.3]
            cursus_ids = [CURSUS_21] + ([1] if rng.random() < 0.1 else [])
            n_sessions = session_counts[i]
        else:
            campus_ids = rng.sample(all_campuses, rng.randint(3, 30))
            cursus_ids = [9]
            n_sessions = rng.randint(0, 3)
        row: dict[str, Any] = {
            "id": pid, "name": name, "slug": _slugify(name),
            "difficulty": None if rng.random() < 0.2 else rng.choice([0, 10, 42, 420, 1000, 2100, 4200, 9450, 25000]),
            "exam": rng.random() < 0.05, "git_id": None if rng.random() < 0.1 else rng.randint(1000, 90_000),
            "repository": None if rng.random() < 0.3 else f"https://github.com/42school/{_slugify(name)}",
            "recommendation": "forbidden" if rng.random() < 0.8 else "none",
            "created_at": created, "updated_at": updated,
            "attachments": [], "videos": [],
            "_campus_ids": sorted(campus_ids), "_cursus_ids": sorted(cursus_ids), "_parent_id": parent,
        }
        projects[pid] = row
        for _ in range(n_sessions):
            sid += rng.randint(1, 3)
            s_created = _ts(rng, 8)
            begin = None if rng.random() < 0.6 else s_created + rng.randint(0, 100) * DAY
            roll = rng.random()
            description = None if roll < 0.05 else ("" if roll < 0.1 else _odd(rng, f"{name} session", 0.05))
            sessions[sid] = {
                "id": sid, "solo": None if rng.random() < 0.0005 else rng.random() < 0.6,
                "begin_at": begin, "end_at": None if begin is None else begin + rng.randint(1, 60) * DAY,
                "estimate_time": None if rng.random() < 0.3 else f"{rng.choice([7, 35, 70, 140, 210])} hours",
                "difficulty": None if rng.random() < 0.3 else rng.choice([0, 42, 1000, 4200, 9450]),
                "objectives": None if rng.random() < 0.15 else rng.sample(names.OBJECTIVES, rng.randint(1, 4)),
                "description": description, "duration_days": rng.choice([None, 7, 14, 30]),
                "terminating_after": None if rng.random() < 0.6 else rng.choice([1, 3, 5, 10]),
                "project_id": pid,
                "campus_id": None if rng.random() < 0.3 else rng.choice(all_campuses),
                "cursus_id": None if rng.random() < 0.4 else (CURSUS_21 if is21 else 9),
                "created_at": s_created, "updated_at": min(BASE_MS, s_created + rng.randint(0, 3 * YEAR)),
                "max_people": None,
                "is_subscriptable": rng.random() < 0.8,
                "scales": [{"id": rng.randint(1, 40_000), "correction_number": rng.choice([1, 2, 3]),
                            "is_primary": k == 0} for k in range(rng.choice([1, 1, 1, 2]))],
                "uploads": [] if rng.random() < 0.6 else [
                    {"id": rng.randint(1, 9_000), "name": rng.choice(["Moulinette", "Deepthought", "Manual"])}],
                "team_behaviour": rng.choice(TEAM_BEHAVIOURS),
                "commit": None if rng.random() < 0.3 else f"{rng.getrandbits(160):040x}",
            }
    return projects, sessions


def _color(rng: random.Random) -> str:
    """A colour as the real API writes it: `#hhhhhh` mostly, sometimes without `#`, a few with
    a leading space or tab (stored as given: the mirror keeps the API's text)."""
    hexa = f"{rng.getrandbits(24):06x}" if rng.random() < 0.5 else f"{rng.getrandbits(24):06X}"
    roll = rng.random()
    if roll < 0.1:
        return hexa
    if roll < 0.13:
        return rng.choice(["\t#", " #"]) + hexa
    return f"#{hexa}"


def _gen_coalitions(rng: random.Random) -> dict[int, dict[str, Any]]:
    ids = _ascending_ids(rng, N_COALITIONS, 1, 2)
    out = {}
    for i, cid in enumerate(ids):
        name = f"{rng.choice(names.COALITION_WORDS_A)} {rng.choice(names.COALITION_WORDS_B)}"
        slug = f"{_slugify(name)}-{i}"
        out[cid] = {"id": cid, "name": name, "slug": slug,
                    "image_url": f"https://cdn.intra.42.fr/coalition/image/{cid}/{slug}.svg",
                    "cover_url": None if rng.random() < 0.2 else f"https://cdn.intra.42.fr/coalition/cover/{cid}/cover.jpg",
                    "color": _color(rng), "score": rng.randint(0, 300_000),
                    "user_id": rng.randint(1, 150_000)}
    # Real data: two coalitions share one slug - the mirror must not assume slugs are unique.
    out[ids[200]]["slug"] = out[ids[3]]["slug"] = "analysts"
    return out


def _gen_achievements(rng: random.Random) -> dict[int, dict[str, Any]]:
    ids = _ascending_ids(rng, N_ACHIEVEMENTS, 1, 3)
    out: dict[int, dict[str, Any]] = {}
    for aid in ids:
        name = _odd(rng, rng.choice(names.ACHIEVEMENT_WORDS) + rng.choice(["", " I", " II", " III", " IV"]), 0.02)
        parent = rng.choice(list(out)) if out and rng.random() < 0.2 else None
        row: dict[str, Any] = {
            "id": aid, "name": name, "description": _odd(rng, f"Earned by doing {name.lower()} things.", 0.05),
            "tier": rng.choice(["none", "easy", "medium", "hard", "challenge"]),
            "kind": rng.choice(["project", "pedagogy", "scolarity", "social"]),
            "visible": rng.random() < 0.9,
            "image": None if rng.random() < 0.05 else f"/uploads/achievement/image/{aid}/{_slugify(name)}.svg",
            "nbr_of_success": None if rng.random() < 0.6 else rng.choice([1, 5, 10, 21, 42, 100]),
            "users_url": f"{API}/v2/achievements/{aid}/users",
            "title": None if rng.random() < 0.92 else {"id": rng.randint(1, 900), "name": f"{name} %login"},
            "_parent_id": parent, "_campus_names": None,
            # names of campuses outside the simulator's 60 that the real lists also hold
            "_foreign_campus": sorted(rng.sample(names.FOREIGN_CAMPUS_NAMES, rng.choice([0, 0, 0, 1, 2]))),
        }
        out[aid] = row
    return out


def generate_stable(seed: int) -> Dataset:
    """The stable tables at their exact docs/api.md sizes (< 1 s)."""
    rng = random.Random(seed)
    cursus = _gen_cursus()
    campuses = _gen_campuses(rng)
    projects, sessions = _gen_projects(rng, campuses)
    coalitions = _gen_coalitions(rng)
    achievements = _gen_achievements(rng)
    mirrored = sorted(c for c, v in campuses.items() if v["active"] and v["public"])
    counts = _counts(rng, len(mirrored), N_CAMPUS_ACHIEVEMENTS, 30, 180)
    ach_ids = list(achievements)
    campus_ach = {cid: sorted(rng.sample(ach_ids, k)) for cid, k in zip(mirrored, counts, strict=True)}
    for cid in sorted(set(campuses) - set(mirrored)):
        campus_ach[cid] = sorted(rng.sample(ach_ids, rng.randint(20, 60)))
    tables = {"cursus": cursus, "campuses": campuses, "projects": projects, "project_sessions": sessions,
              "coalitions": coalitions, "achievements": achievements}
    for name in BACKLOG_RESOURCES:
        tables[name] = {}
    return Dataset(tables, dict(sorted(campus_ach.items())))


def add_backlog(ds: Dataset, seed: int, backlog_scale: float) -> None:
    """Users and their projects/achievements/coalitions links, ~40,300 users at scale 1.0."""
    rng = random.Random(f"{seed}-live")
    n_users = max(1, round(N_USERS * backlog_scale)) if backlog_scale > 0 else 0
    mirrored = sorted(ds.mirrored_campus_ids())
    campus_pool = mirrored * 30 + sorted(set(ds.tables["campuses"]) - set(mirrored))
    p21 = [p["id"] for p in ds.cursus_projects(CURSUS_21)]
    ach_ids = list(ds.tables["achievements"])
    coal_ids = list(ds.tables["coalitions"])
    users, pus, aus, cus = {}, {}, {}, {}
    taken: set[str] = set()
    uid, pu_id, au_id, cu_id = 60_000, 2_000_000, 9_000_000, 300_000
    for _ in range(n_users):
        uid += _ri(rng, 1, 3)
        user = make_user(rng, uid, rng.choice(campus_pool), taken)
        users[uid] = user
        for pid in rng.sample(p21, _ri(rng, 0, 10)):
            pu_id += _ri(rng, 1, 2)
            pus[pu_id] = make_projects_user(rng, pu_id, uid, pid)
        for aid in rng.sample(ach_ids, _ri(rng, 0, 8)):
            au_id += 1
            aus[au_id] = make_achievements_user(rng, au_id, user, aid)
        roll = rng.random()
        for cid in rng.sample(coal_ids, 0 if roll < 0.08 else (2 if roll > 0.95 else 1)):
            cu_id += 1
            cus[cu_id] = make_coalitions_user(rng, cu_id, uid, cid)
    ds.tables["users"], ds.tables["projects_users"] = users, pus
    ds.tables["achievements_users"], ds.tables["coalitions_users"] = aus, cus
    for gen in GENERATORS.values():
        if gen.populate is not None:
            gen.populate(ds, seed, backlog_scale)


def generate(seed: int = 42, backlog_scale: float = 1.0) -> Dataset:
    """The whole pristine data set for a seed."""
    ds = generate_stable(seed)
    add_backlog(ds, seed, backlog_scale)
    return ds


# ====================================================================== the backlog resources
# Routes, aliases, SINGULAR names, the expected mirror, delete cascades and query fields of a
# backlog resource derive from its catalog entry (netops/catalog.py) and its Generator here; a
# plain one (an id, a user_id FK, timestamps) needs nothing beyond `Generator(insert, populate)`.
@dataclass(frozen=True)
class Generator:
    """How the simulator makes and shows one backlog resource.

    `insert(ds, rng, id, now)` makes one new row (the control API's insert and churn);
    `populate(ds, seed, scale)` fills the pristine table from an RNG of its own, so the other
    tables do not depend on it (None: `add_backlog` fills it). `ts`: fields stored as epoch ms
    (None: the catalog's `ts` columns). `stored`: API field -> the `_`-key a reference is stored
    under when the payload nests the object instead. `nested(ds, row)`: objects the payload adds.
    `mirror(row)`: whether a correct mirror keeps the row (the resource's listing filters).
    """

    resource: str
    insert: Callable[[Dataset, random.Random, int, int], dict[str, Any]]
    populate: Callable[[Dataset, int, float], None] | None = None
    ts: tuple[str, ...] | None = None
    stored: dict[str, str] = field(default_factory=dict)
    nested: Callable[[Dataset, dict[str, Any]], dict[str, Any]] | None = None
    mirror: Callable[[dict[str, Any]], bool] | None = None

    def mirrored(self, row: dict[str, Any]) -> bool:
        return self.mirror is None or self.mirror(row)


def _insert_user(ds: Dataset, rng: random.Random, rid: int, now: int) -> dict[str, Any]:
    row = make_user(rng, rid, ds._campus_choice(rng), set(), now=now)
    # generated logins carry at most 3 digits, so base+id (>= 5 digits) is always unique
    row["login"] = f"{row['login']}{rid}"
    row["email"] = f"{row['login']}@student.42.fr"
    row["url"] = f"{API}/v2/users/{row['login']}"
    return row


def _insert_projects_user(ds: Dataset, rng: random.Random, rid: int, now: int) -> dict[str, Any]:
    uid = ds.random_key(rng, ds.tables["users"])
    pid = rng.choice([p["id"] for p in ds.cursus_projects(CURSUS_21)])
    return make_projects_user(rng, rid, uid, pid, now=now)


def _insert_achievements_user(ds: Dataset, rng: random.Random, rid: int, now: int) -> dict[str, Any]:
    uid = ds.random_key(rng, ds.tables["users"])
    return make_achievements_user(rng, rid, ds.tables["users"][uid],
                                  ds.random_key(rng, ds.tables["achievements"]), now=now)


def _insert_coalitions_user(ds: Dataset, rng: random.Random, rid: int, now: int) -> dict[str, Any]:
    return make_coalitions_user(rng, rid, ds.random_key(rng, ds.tables["users"]),
                                ds.random_key(rng, ds.tables["coalitions"]), now=now)


def _insert_cursus_user(ds: Dataset, rng: random.Random, rid: int, now: int) -> dict[str, Any]:
    return make_cursus_user(rng, rid, ds.random_key(rng, ds.tables["users"]), now=now)


def _nested_projects_user(ds: Dataset, row: dict[str, Any]) -> dict[str, Any]:
    p = ds.tables["projects"].get(row["_project_id"])
    u = ds.tables["users"].get(row["_user_id"])
    return {"project": None if p is None else {"id": p["id"], "name": p["name"], "slug": p["slug"],
                                               "parent_id": p["_parent_id"]},
            "user": {"id": row["_user_id"], "login": u["login"] if u else None,
                     "url": f"{API}/v2/users/{u['login'] if u else row['_user_id']}"}}


def _nested_cursus_user(ds: Dataset, row: dict[str, Any]) -> dict[str, Any]:
    """The user as the users listing shows it, and the cursus (docs/api.md)."""
    u = ds.tables["users"].get(row["_user_id"])
    c = ds.tables["cursus"].get(row["cursus_id"])
    return {"user": ds.render("users", [u])[0] if u is not None else {"id": row["_user_id"]},
            "cursus": None if c is None else ds.render("cursus", [c])[0]}


GENERATORS: dict[str, Generator] = {g.resource: g for g in (
    Generator("users", _insert_user),
    Generator("projects_users", _insert_projects_user, stored={"user_id": "_user_id", "project_id": "_project_id"},
              nested=_nested_projects_user, mirror=lambda r: CURSUS_21 in r["cursus_ids"]),
    Generator("achievements_users", _insert_achievements_user),
    Generator("coalitions_users", _insert_coalitions_user),
    Generator("cursus_users", _insert_cursus_user, add_cursus_users, stored={"user_id": "_user_id"},
              nested=_nested_cursus_user, mirror=lambda r: r["cursus_id"] == CURSUS_21),
)}


def _ts_columns(resource: str) -> tuple[str, ...]:
    return tuple(c.name for c in catalog.BACKLOG_BY_RESOURCE[resource].columns if c.kind == "ts")


def _check_generators() -> None:
    """Every catalog backlog resource has a generator, and no generator lacks a catalog entry."""
    missing = set(BACKLOG_RESOURCES) ^ set(GENERATORS)
    if missing:
        raise RuntimeError(f"netops.sim.data: backlog resources without both a catalog entry and a "
                           f"Generator: {sorted(missing)}")
    for res, gen in GENERATORS.items():
        TS_FIELDS[res] = gen.ts if gen.ts is not None else _ts_columns(res)


_check_generators()


def stored_key(resource: str, column: str) -> str:
    """The key a backlog row stores an API field under (`user_id` or a nested object's `_user_id`)."""
    gen = GENERATORS.get(resource)
    return gen.stored.get(column, column) if gen is not None else column


#: parents whose deletion leaves their backlog children in place: a cursus_user is the user's
#: enrolment, and the simulator deletes a cursus only to take it out of the stable mirror
KEEP_CHILDREN = ("cursus",)


def cascade_children(resource: str) -> list[tuple[str, str]]:
    """(backlog resource, stored key) of the rows that go with a deleted `resource` row: every
    catalog FK pointing at its table (the mirror's ON DELETE CASCADE, as the API drops them)."""
    table = catalog.BACKLOG_BY_RESOURCE[resource].name if resource in catalog.BACKLOG_BY_RESOURCE else resource
    return [(s.source.resource, stored_key(s.source.resource, fk.column))  # type: ignore[union-attr]
            for s in catalog.BACKLOG for fk in s.fks if fk.parent == table and table not in KEEP_CHILDREN]
