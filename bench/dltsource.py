"""The peer: dlt's rest_api source configured for the same stable endpoints netops pulls.

Same endpoints as netops' full sync: the cursus object and the five paged listings (23 calls
on the default data). What a user picking dlt would write: the `header_link` paginator (the API's `Link` header), pages
of 100, a bearer token, `write_disposition="replace"` (a full refresh, like netops' full sync
with prune), dlt's default nesting (nested lists become child tables, as netops' link tables
come from nested lists). Only imported by the bench's dlt job: dlt is a bench-only dependency.
"""

from __future__ import annotations

from typing import Any


def stable_config(api_url: str, token: str, cursus_id: int = 21, page_size: int = 100) -> dict[str, Any]:
    paged = {"page[size]": page_size, "sort": "id"}
    return {
        "client": {
            "base_url": f"{api_url.rstrip('/')}/v2/",
            "auth": {"type": "bearer", "token": token},
            "paginator": {"type": "header_link"},
        },
        "resource_defaults": {"write_disposition": "replace", "primary_key": "id"},
        "resources": [
            {"name": "cursus", "endpoint": {"path": f"cursus/{cursus_id}", "paginator": "single_page",
                                            "data_selector": "$"}},
            {"name": "campuses", "endpoint": {"path": "campus", "params": {
                **paged, "filter[active]": "true", "filter[public]": "true"}}},
            {"name": "projects", "endpoint": {"path": f"cursus/{cursus_id}/projects", "params": paged}},
            {"name": "coalitions", "endpoint": {"path": "coalitions", "params": paged}},
            # campus_achievements: the `campus` name list nested in each achievement becomes dlt's
            # child table achievements__campus, as netops derives its links from it
            {"name": "achievements", "endpoint": {"path": "achievements", "params": paged}},
        ],
    }
