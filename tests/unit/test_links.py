"""The phase-07 derivation rule (netops/pipeline/stable/links.py), pure: exact names, skipped names
counted, a shared name refused naming every campus that shares it."""

from __future__ import annotations

import pytest

from netops.pipeline.stable.links import (
    CampusListError,
    DuplicateCampusName,
    campus_names,
    compare,
    derive,
    name_index,
    unmatched_summary,
)


def test_exact_names_only_and_unmatched_counted() -> None:
    index = name_index([(1, "Paris"), (5, "Hack High School - Fremont"), (7, None)])
    d = derive([(10, ("Paris", "paris", "Paris ")), (11, ("Hack High School - Fremont ", "Fremont")),
                (12, ("Paris", "Paris"))], index)
    assert d.links == [(1, 10), (1, 12)]          # a name listed twice is one link
    assert d.skipped == 4 and d.unmatched["Paris "] == 1 and d.unmatched["Hack High School - Fremont "] == 1
    assert unmatched_summary(d, limit=2).startswith("4 campus name(s) not mirrored (")


def test_a_shared_name_names_every_campus() -> None:
    with pytest.raises(DuplicateCampusName) as exc:
        name_index([(3, "Paris"), (9, "Lyon"), (1, "Paris"), (4, "Lyon")])
    msg = str(exc.value.message)
    assert "'Lyon' is the name of campuses 4, 9" in msg and "'Paris' is the name of campuses 1, 3" in msg
    assert "\n" not in msg


def test_campus_names_shape() -> None:
    assert campus_names({"campus": ["a", "b"]}) == ("a", "b")
    assert campus_names({}) == () and campus_names({"campus": None}) == ()
    for bad in ("Paris", [1, 2], [{"name": "Paris"}]):
        with pytest.raises(CampusListError):
            campus_names({"campus": bad})


def test_compare_names_both_directions() -> None:
    only_d, only_l = compare({1: "Paris", 2: "Lyon"}, [(1, 10), (2, 11)], [(1, 10), (2, 12)])
    assert only_d == [(2, "Lyon", 11)] and only_l == [(2, "Lyon", 12)]
