"""JSON -> row mapping: the getters the catalog declares columns with and the converters that
turn a JSON value into a COPY value. Pure functions on the catalog's floor (nothing from netops).

The API's payload quirks (docs/api.md) are handled once, here: booleans spelled with or without a
trailing `?`, ids nested in objects, timestamps with `Z` or an offset. Converters return the
value for COPY or raise ValueError; the caller names the resource, row and field in its error.
Unknown extra fields are simply never read; a missing field is None (NULL).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

Getter = Callable[[Mapping[str, Any]], Any]


def key(*names: str) -> Getter:
    """First present key among `names` (the API spells some booleans with and without `?`)."""

    def get(obj: Mapping[str, Any]) -> Any:
        for n in names:
            if n in obj:
                return obj[n]
        return None

    return get


def nested(outer: str, inner: str) -> Getter:
    """`obj[outer][inner]` when obj[outer] is an object, else None (e.g. parent.id)."""

    def get(obj: Mapping[str, Any]) -> Any:
        value = obj.get(outer)
        return value.get(inner) if isinstance(value, Mapping) else None

    return get


def nested_id(outer: str, flat: str) -> Getter:
    """`obj[outer].id` from a nested object, falling back to a flat `flat` field (backlog rows
    carry `user: {id, login, url}` or `user_id`, depending on the endpoint)."""

    def get(obj: Mapping[str, Any]) -> Any:
        value = obj.get(outer)
        if isinstance(value, Mapping) and value.get("id") is not None:
            return value.get("id")
        return obj.get(flat)

    return get


def name_of(field: str) -> Getter:
    """An object's `name` or the value itself (achievements' `title` is an object or null)."""

    def get(obj: Mapping[str, Any]) -> Any:
        value = obj.get(field)
        return value.get("name") if isinstance(value, Mapping) else value

    return get


def ids_of(field: str) -> Getter:
    """The ids of a list of objects (`[{id, ...}, ...]` -> `[id, ...]`; exams' `cursus`, `projects`);
    None when the field is not a list."""

    def get(obj: Mapping[str, Any]) -> Any:
        value = obj.get(field)
        if not isinstance(value, list):
            return None
        return [v.get("id") for v in value if isinstance(v, Mapping)]

    return get


def jsonapi_flat(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """An object as the plain serialisation has it. A few scale_teams come in a JSON:API one
    (docs/api.md): `{"id": "123", "type": "scale-teams", "attributes": {...}, "team": {...}}`; its
    attributes are lifted to the top level (the string id stays: the converters read digits)."""
    attributes = obj.get("attributes")
    if not isinstance(attributes, Mapping) or "type" not in obj:
        return obj
    return {**attributes, **{k: v for k, v in obj.items() if k not in ("attributes", "type")}}


def jsonapi(getter: Getter) -> Getter:
    """`getter` applied to the plain view of an object that may come as JSON:API (jsonapi_flat)."""

    def get(obj: Mapping[str, Any]) -> Any:
        return getter(jsonapi_flat(obj))

    return get


def person(field: str, inner: str = "id") -> Getter:
    """A person's `id` (or `login`) from `{id, login, url}`; None when the API hides the person
    (the string `"invisible"`, docs/api.md) or gives `{}` (a truant-less evaluation): hidden people
    are NULL, never a fake id."""
    return nested(field, inner)


def parse_ts(value: str) -> datetime:
    """ISO 8601 as the API sends it (`...597Z` or `...+01:00`) -> aware datetime."""
    dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def to_int(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    raise ValueError


def to_float(v: Any) -> float | None:
    """A number (cursus_users' `level`: 21.42); booleans and non-numeric strings are refused."""
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError
    out = float(v.strip()) if isinstance(v, str) else float(v) if isinstance(v, (int, float)) else None
    if out is None or not math.isfinite(out):   # NaN/inf are not levels; a float column would take them
        raise ValueError
    return out


def to_bool(v: Any) -> bool | None:
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise ValueError


def to_ts(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise ValueError
    parse_ts(v)  # validates; PostgreSQL parses the original text (offsets kept)
    return v


def to_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def to_json(v: Any) -> str | None:
    return None if v is None else json.dumps(v, separators=(",", ":"))


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "int": to_int, "float": to_float, "bool": to_bool, "ts": to_ts, "text": to_text, "json": to_json,
}
