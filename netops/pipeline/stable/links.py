"""Phase 07's links, derived from the achievements listing, and their verification.

Why derive: every `/v2/achievements` object carries `campus`, the NAMES of the campuses it
belongs to (docs/api.md). The links therefore come with phase 05's listing for free, where
paging `/v2/campus/:id/achievements` once per mirrored campus would cost 82 of a full sync's
105 calls. The derivation is one rule, declared here and used by both the sync and the
verification: an achievement belongs to a mirrored campus when its `campus` list holds that
campus's `name` *exactly* (no trimming, no case folding: `"Hack High School - Fremont "` with
its trailing space is a different name, and a fuzzy match could attach a campus's links to
another one).

- A name that matches no mirrored campus (an inactive or non-public campus, one the API lists
  but does not serve) is skipped and counted, the way phase 06 counts links to campuses it does
  not mirror.
- Two mirrored campuses sharing a name make the match ambiguous: `DuplicateCampusName` (the
  phase fails, its table stays as it was) rather than guessing which campus a link belongs to.

The per-campus listing stays available as an explicit verification (`netops sync verify-links`),
so an operator can confirm on their own API that both sources agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netops import stop
from netops.errors import SyncError

#: (achievement id, the names in its `campus` list)
AchievementCampuses = tuple[Any, tuple[str, ...]]


class DuplicateCampusName(SyncError):
    """Two mirrored campuses share a name: links cannot be matched by name."""


class CampusListError(ValueError):
    """An achievement's `campus` is not a list of names (the payload changed)."""


def campus_names(obj: dict[str, Any]) -> tuple[str, ...]:
    """The `campus` names of one achievement object (missing or null: none).

    A value that is not a list of strings is a changed payload: raise rather than guess.
    """
    value = obj.get("campus")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise CampusListError(f"field 'campus' = {value!r:.60} is not a list of campus names")
    return tuple(value)


def name_index(campuses: Iterable[tuple[int, str | None]]) -> dict[str, int]:
    """Mirrored campus name -> id; raises DuplicateCampusName naming every shared name."""
    by_name: dict[str, list[int]] = {}
    for cid, name in campuses:
        if name is not None:
            by_name.setdefault(name, []).append(cid)
    shared = {n: ids for n, ids in by_name.items() if len(ids) > 1}
    if shared:
        what = "; ".join(f"{n!r} is the name of campuses {', '.join(str(i) for i in sorted(ids))}"
                         for n, ids in sorted(shared.items()))
        raise DuplicateCampusName(
            f"campus_achievements cannot be derived: {what} — the achievements' campus lists name "
            "campuses, so a shared name is ambiguous; fix the campus names in the API (or run "
            "`netops sync verify-links` to compare with the per-campus listings)")
    return {n: ids[0] for n, ids in by_name.items()}


@dataclass
class Derived:
    """The links one derivation produced, and what it had to skip."""

    links: list[tuple[int, Any]] = field(default_factory=list)
    skipped: int = 0                       # (achievement, name) pairs naming no mirrored campus
    unmatched: Counter[str] = field(default_factory=Counter)   # those names, with their counts


def derive(achievements: Iterable[AchievementCampuses], index: dict[str, int]) -> Derived:
    """Links (campus_id, achievement_id) from each achievement's campus names, in listing order."""
    out = Derived()
    seen: set[tuple[int, Any]] = set()
    for aid, names in achievements:
        for name in names:
            cid = index.get(name)
            if cid is None:
                out.skipped += 1
                out.unmatched[name] += 1
                continue
            link = (cid, aid)
            if link not in seen:  # a name listed twice in one achievement is one link
                seen.add(link)
                out.links.append(link)
    return out


def unmatched_summary(d: Derived, limit: int = 5) -> str:
    """`20 names (e.g. 'Fremont', '42Network')` for the log line."""
    names = [n for n, _ in d.unmatched.most_common()]
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f", +{len(names) - limit} more" if len(names) > limit else ""
    return f"{len(names)} campus name(s) not mirrored ({shown}{more})"


@dataclass
class LinkCheck:
    """What `netops sync verify-links` found: the links each source has that the other lacks."""

    campuses: int = 0
    derived: int = 0
    listed: int = 0
    only_derived: list[tuple[int, str, int]] = field(default_factory=list)   # (campus id, name, achievement)
    only_listed: list[tuple[int, str, int]] = field(default_factory=list)
    skipped_names: int = 0
    calls: int = 0
    seconds: float = 0.0

    @property
    def agree(self) -> bool:
        return not self.only_derived and not self.only_listed

    def as_dict(self) -> dict[str, Any]:
        def rows(lst: Sequence[tuple[int, str, int]]) -> list[dict[str, Any]]:
            return [{"campus_id": c, "campus": n, "achievement_id": a} for c, n, a in lst]

        return {"agree": self.agree, "campuses": self.campuses, "derived_links": self.derived,
                "listed_links": self.listed, "only_in_achievements_campus_lists": rows(self.only_derived),
                "only_in_per_campus_listings": rows(self.only_listed),
                "skipped_names": self.skipped_names, "api_calls": self.calls,
                "seconds": round(self.seconds, 3)}


def compare(campuses: dict[int, str], derived: Iterable[tuple[int, Any]],
            listed: Iterable[tuple[int, Any]]) -> tuple[list[tuple[int, str, int]], list[tuple[int, str, int]]]:
    """(only in derived, only in listed), each sorted, rows named with the campus's name."""
    d, ls = set(derived), set(listed)
    only_d = sorted((c, campuses.get(c, ""), a) for c, a in d - ls)
    only_l = sorted((c, campuses.get(c, ""), a) for c, a in ls - d)
    return only_d, only_l


def verify_links(settings: Any, say: Any = None) -> LinkCheck:
    """`netops sync verify-links`: derive the links from `/v2/achievements` now, page
    `/v2/campus/:id/achievements` for every mirrored campus now, and list every link one source
    has and the other lacks. Reads the mirror's campuses (ids and names, as phase 07 matches
    them); writes nothing. Costs the achievements pages plus one listing per campus (96 calls
    on the default data), which is why the sync itself does not do it.
    """
    import time

    from netops.api.client import ApiClient
    from netops.catalog import DerivedLinks
    from netops.db.server import resolve_dsn
    from netops.pipeline.stable.phases import BY_TABLE, PHASES

    started = time.monotonic()
    dsn = resolve_dsn(settings)
    campuses = _mirrored_campuses(dsn)
    index = name_index(campuses)
    names = {cid: name for cid, name in campuses}
    links = next(p for p in PHASES if isinstance(p.source, DerivedLinks))
    ach = BY_TABLE[links.source.parent]
    check = LinkCheck(campuses=len(campuses))
    _announce(settings, dsn, len(campuses), say)
    # its own accounting name: the budget rules tell this known heavy job from a loop
    client = ApiClient(settings, dsn=dsn, component="verify-links")
    stop.set_left(lambda: "verify-links writes nothing: nothing left behind")
    try:
        derived = derive(_api_campus_names(client, ach.source.path, ach.source.params), index)
        per_campus = _listed_links(client, links.source.per_parent, list(names), say)
    finally:
        check.calls = client.calls
        client.close()
    check.derived, check.listed, check.skipped_names = len(derived.links), len(set(per_campus)), derived.skipped
    check.only_derived, check.only_listed = compare(names, derived.links, per_campus)
    check.seconds = time.monotonic() - started
    return check


def _announce(settings: Any, dsn: str, campuses: int, say: Any) -> None:
    """Before it starts: its calls (the mirrored achievements' pages, and at least one listing
    per campus), said when over a tenth of the hour's budget."""
    from netops.api.limiter import estimate_line
    from netops.db import connect, mirror

    conn = connect(dsn, application_name="netops-verify-links")
    try:
        with conn.cursor() as cur:
            achievements, _ = mirror.count_and_max(cur, "achievements", "id")
        conn.commit()
    finally:
        conn.close()
    size = max(1, min(100, settings.page_size))
    line = estimate_line("verify-links", max(1, -(-achievements // size)) + campuses, settings.budget)
    if line and say is not None:
        say(line)


def _mirrored_campuses(dsn: str) -> list[tuple[int, Any]]:
    """(id, name) of every mirrored campus; none is an error (the links are matched to them)."""
    from netops.db import connect, mirror

    conn = connect(dsn, application_name="netops-verify-links")
    try:
        with conn.cursor() as cur:
            campuses = mirror.ids_and_names(cur, "campuses")
        conn.commit()
    finally:
        conn.close()
    if not campuses:
        raise SyncError("verify-links: the mirror holds no campuses — run `netops sync stable` first "
                        "(the links are matched to the mirrored campuses)")
    return campuses


def _api_campus_names(client: Any, path: str, params: Any) -> list[AchievementCampuses]:
    """(id, campus names) of every achievement the API lists now."""
    pairs: list[AchievementCampuses] = []
    for page in client.iter_pages(path, params):
        for obj in page:
            if isinstance(obj, dict):
                try:
                    pairs.append((obj.get("id"), campus_names(obj)))
                except CampusListError as exc:
                    raise SyncError(f"verify-links: {path} row id={obj.get('id')}: {exc}") from None
    return pairs


def _listed_links(client: Any, per_parent: str, campus_ids: list[int], say: Any = None) -> list[tuple[int, Any]]:
    """(campus id, achievement id) from each campus's own listing, concurrently; `say` gets a
    progress line every 10 s."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    lock, seen = threading.Lock(), {"done": 0, "shown": time.monotonic()}

    def listed(cid: int) -> list[tuple[int, Any]]:
        path = per_parent.format(id=cid)
        out = [(cid, o.get("id")) for page in client.iter_pages(path, {"sort": "id"})
               for o in page if isinstance(o, dict)]
        with lock:
            seen["done"] += 1
            if say is not None and time.monotonic() - seen["shown"] >= 10.0:
                seen["shown"] = time.monotonic()
                say(f"verify-links progress: {seen['done']}/{len(campus_ids)} campus listings read, "
                    f"{client.calls} calls")
        return out

    workers = max(1, min(client.concurrency, len(campus_ids)))  # NETOPS_MAX_CONCURRENCY per key
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="netops-verify") as pool:
        return [link for links in pool.map(listed, campus_ids) for link in links]
