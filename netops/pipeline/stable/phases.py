"""The stable phases, derived from the catalog (netops/catalog.py): one per stable table, in FK order.

A phase says where its rows come from (`source`, a catalog source), how one API object becomes one
row (`columns`, the catalog's mapping), and the loader does the rest. Its identity is its table's
name (`campus_achievements`): history, metric labels and `--phase` use it; `number` is only its
position in this run's order, for the progress display and the log lines.

Link tables and sessions come from lists nested in each project, and campus_achievements from
the campus names nested in each achievement, so none of them costs a call of its own.

Mapping rules (docs/api.md): unknown extra fields are ignored; a missing field is NULL; a value of
the wrong type fails the phase with the endpoint, row id and field named (the mirror keeps its
old state rather than storing garbage).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from netops import catalog
from netops.catalog import DerivedLinks, NestedList, Source, Table, TableSpec
from netops.mapping import CONVERTERS


class MappingError(ValueError):
    """An API value does not fit its column; the message names the field and the value."""


def _fill(source: Source, cursus_id: int) -> Source:
    """The catalog's `{cursus}` placeholders filled in (the API paths of this installation)."""
    path = getattr(source, "path", None)
    if path is None or "{cursus}" not in path:
        return source
    from dataclasses import replace

    return replace(source, path=path.replace("{cursus}", str(cursus_id)))  # type: ignore[type-var]


@dataclass(frozen=True)
class Phase:
    """One stable phase: a catalog table and where this installation reads it."""

    number: int
    spec: TableSpec
    source: Source

    @cached_property
    def table(self) -> Table:
        return self.spec.loader_table(with_parents=True)

    @property
    def name(self) -> str:
        """The phase's identity: its table's name (sync_runs.phase, metric label, `--phase`)."""
        return self.spec.name

    @property
    def label(self) -> str:
        return self.spec.name

    def row(self, obj: dict[str, Any], endpoint: str) -> tuple[Any, ...]:
        out = []
        for column in self.spec.columns:
            raw = column.getter(obj)
            try:
                out.append(CONVERTERS[column.kind](raw))
            except (ValueError, TypeError):
                ident = obj.get("id") if isinstance(obj, dict) else None
                raise MappingError(
                    f"{endpoint}: row id={ident}: field '{column.name}' = {raw!r:.60} is not {column.kind}; the "
                    "API's payload changed — update the table's mapping in netops/catalog.py"
                ) from None
        return tuple(out)


def build_phases(cursus_id: int = 21) -> tuple[Phase, ...]:
    """The stable phases in foreign-key order (the catalog's)."""
    return tuple(Phase(i, spec, _fill(spec.source, cursus_id)) for i, spec in enumerate(catalog.STABLE, start=1))


PHASES: tuple[Phase, ...] = build_phases()
BY_TABLE: dict[str, Phase] = {p.name: p for p in PHASES}
PHASE_NAMES: tuple[str, ...] = tuple(p.name for p in PHASES)
#: sources whose answer other phases read (projects' nested lists, achievements' campus names)
SOURCE_TABLES: tuple[str, ...] = tuple(dict.fromkeys(
    p.source.parent for p in PHASES if isinstance(p.source, (NestedList, DerivedLinks))))


def followers(table: str) -> tuple[Phase, ...]:
    """The phases whose rows come from `table`'s answer (no call of their own)."""
    return tuple(p for p in PHASES if getattr(p.source, "parent", None) == table)


def nested_rows(obj: dict[str, Any], parent: str = "projects") -> dict[str, list[dict[str, Any]]]:
    """The child objects hidden inside one `parent` object, per nested table (its phases' input)."""
    return {p.name: p.source.rows(obj) for p in followers(parent) if isinstance(p.source, NestedList)}
