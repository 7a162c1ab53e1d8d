"""The simulator's HTTP server: real sockets, the 42 API's endpoints, auth, limits and faults.

Why werkzeug's threaded dev server: one thread per connection lets latency (slept in the
handler thread) overlap across concurrent requests exactly as on the real API, and it needs no
new dependency. Nagle is disabled on every accepted socket (`_Handler.setup`): without it, the
small header write followed by the body write stalls each answer ~40 ms on delayed ACKs and
every timing measured against the simulator lies.

Order of checks on a `/v2` request (clients depend on it; docs/api.md):
auth (401, costs no budget) -> rate limits (429, not counted) -> faults -> latency -> endpoint.
`/oauth/*` is not rate-limited (the real limits are documented per application for API calls;
token calls are rare and the client needs them to recover from a 401). `/_sim/*` (the control
API) is neither rate-limited, faulted, nor counted in stats.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import re
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request

from netops import catalog
from netops.config import API_RATE_PER_HOUR, API_RATE_PER_SECOND, SIM_HOST
from netops.sim import campus as simcampus
from netops.sim import control_routes
from netops.sim import data as simdata
from netops.sim.auth import TokenStore
from netops.sim.faults import (
    DRIFT_KINDS,
    ERROR_KINDS,
    HTML_ERROR_PAGE,
    MALFORMED_JSON,
    Fault,
    FaultSet,
    drift,
)
from netops.sim.query import Query, QueryError, apply, link_header, page_slice, parse_query
from netops.sim.ratelimit import RateLimiter
from netops.sim.timeutil import fmt, now_ms, parse

JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class SimConfig:
    """Everything `netops sim serve` can set. Defaults match the real API's defaults."""

    host: str = SIM_HOST
    port: int = 0  # a free port, so in-process simulators never collide (`netops sim serve`: SIM_PORT)
    seed: int = 42
    client_id: str = "sim-client"
    client_secret: str = "sim-secret"
    # more applications it accepts (client_id -> secret), each with its own rate budget
    extra_clients: dict[str, str] = field(default_factory=dict)
    token_ttl: int = 7200
    secret_valid_days: float = 30.0
    rate_per_second: int = int(API_RATE_PER_SECOND)  # the limiter and its headers count whole requests
    rate_per_hour: int = API_RATE_PER_HOUR
    latency: float = 0.0
    churn_per_minute: float = 0.0
    backlog_scale: float = 1.0
    faults: list[str] = field(default_factory=list)
    control: bool = True
    page_caps: dict[str, int] = field(default_factory=dict)
    app_id: int = 4242
    app_name: str = "netops-sim"
    app_roles: str = ""
    log_requests: bool = False
    # the campus-scoped data (netops/sim/campus.py): generated back from this instant (epoch ms;
    # None: the start hour, so a client's windows relative to its own now find it) and seen at a
    # frozen clock (None: the wall clock; /_sim/campus sets or advances it)
    campus_anchor_ms: int | None = None
    campus_clock_ms: int | None = None


class HTTPError(Exception):
    """An API error answer (status + JSON body)."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("error") or body.get("message"))
        self.status = status
        self.body = body
        self.headers = headers or {}


#: the API's type name where the rule below does not give it
SINGULAR_EXCEPTIONS = {"cursus": "Cursus", "campuses": "Campus"}


def singular(resource: str) -> str:
    """The API's type name in a 404 message: CamelCase, the last word's plural `s` dropped
    (`projects_users` -> `ProjectsUser`)."""
    if resource in SINGULAR_EXCEPTIONS:
        return SINGULAR_EXCEPTIONS[resource]
    return "".join(w.capitalize() for w in resource.split("_"))[:-1]


SINGULAR = {r: singular(r) for r in simdata.RESOURCES} | simcampus.SINGULAR


def _bearer(request: Request) -> str | None:
    """The token a request carries: `Authorization: Bearer ...`, else `?access_token=`."""
    auth = request.headers.get("Authorization", "")
    value = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    return value or request.args.get("access_token")


def _not_found(what: str = "Record") -> HTTPError:
    return HTTPError(404, {"error": "Not Found", "message": f"{what} not found"})


# ---------------------------------------------------------------------------- routes
Source = Callable[[simdata.Dataset, "str | None"], "tuple[str, list[dict[str, Any]]]"]


def _int_id(raw: str | None) -> int:
    try:
        return int(raw or "")
    except ValueError:
        raise _not_found() from None


def _table(resource: str) -> Source:
    return lambda ds, _id: (resource, list(ds.tables[resource].values()))


def _one(resource: str) -> Source:
    def src(ds: simdata.Dataset, raw: str | None) -> tuple[str, list[dict[str, Any]]]:
        table = ds.tables[resource]
        row = None
        if raw is not None and raw.isdigit():
            row = table.get(int(raw))
        elif resource in ("users", "projects", "cursus", "campuses") and raw:
            key = "login" if resource == "users" else ("slug" if resource != "campuses" else "name")
            row = next((r for r in table.values() if r.get(key) == raw), None)
        if row is None:
            raise _not_found(SINGULAR[resource])
        return resource, [row]
    return src


def _need(ds: simdata.Dataset, resource: str, raw: str | None) -> int:
    rid = _int_id(raw)
    if rid not in ds.tables[resource]:
        raise _not_found(SINGULAR[resource])
    return rid


def _cursus_projects(ds: simdata.Dataset, raw: str | None) -> tuple[str, list[dict[str, Any]]]:
    return "projects", ds.cursus_projects(_need(ds, "cursus", raw))


def _campus_achievements(ds: simdata.Dataset, raw: str | None) -> tuple[str, list[dict[str, Any]]]:
    cid = _need(ds, "campuses", raw)
    ach = ds.tables["achievements"]
    return "achievements", [ach[a] for a in ds.campus_achievements.get(cid, []) if a in ach]


def _cursus_users(ds: simdata.Dataset, raw: str | None) -> tuple[str, list[dict[str, Any]]]:
    cid = _need(ds, "cursus", raw)
    return "users", list(ds.tables["users"].values()) if cid == simdata.CURSUS_21 else []


def _campus_users(ds: simdata.Dataset, raw: str | None) -> tuple[str, list[dict[str, Any]]]:
    cid = _need(ds, "campuses", raw)
    return "users", [u for u in ds.tables["users"].values() if u["_campus_id"] == cid]


def _by(resource: str, parent: str, key: str) -> Source:
    def src(ds: simdata.Dataset, raw: str | None) -> tuple[str, list[dict[str, Any]]]:
        pid = _need(ds, parent, raw)
        return resource, [r for r in ds.tables[resource].values() if r[key] == pid]
    return src


def _campus_rows(resource: str, by: str | None = None, role: str | None = None) -> Source:
    """A campus-scoped listing at the clock: every row, one campus's (`by="campus"`) or one
    user's (`by="user"`, with `role` for evaluations; people netops does not mirror count too)."""
    def src(ds: simdata.Dataset, raw: str | None) -> tuple[str, list[dict[str, Any]]]:
        if by == "campus":
            return resource, simcampus.rows_of(ds, resource, campus_id=_need(ds, "campuses", raw))
        if by == "user":
            uid = _int_id(raw)
            if simcampus.person(ds, uid) is None:
                raise _not_found("User")
            return resource, simcampus.rows_of(ds, resource, user_id=uid, role=role)
        return resource, simcampus.rows_of(ds, resource)
    return src


def _campus_one(resource: str) -> Source:
    def src(ds: simdata.Dataset, raw: str | None) -> tuple[str, list[dict[str, Any]]]:
        row = simcampus.campus(ds).table(resource).get(_int_id(raw))
        rows = simcampus.view(ds, resource, [row]) if row is not None else []
        if not rows:
            raise _not_found(SINGULAR[resource])
        return resource, rows
    return src


def _campus_routes() -> list[tuple[str, bool, Source]]:
    """locations, scale_teams, events, exams (docs/api.md): listings, one row, per campus, per user."""
    out: list[tuple[str, bool, Source]] = []
    for res in simcampus.RESOURCES:
        out += [(f"/v2/{res}", True, _campus_rows(res)), (f"/v2/{res}/:id", False, _campus_one(res))]
        if res != "scale_teams":   # there is no /v2/campus/:id/scale_teams
            out.append((f"/v2/campus/:id/{res}", True, _campus_rows(res, "campus")))
    out.append(("/v2/users/:id/locations", True, _campus_rows("locations", "user")))
    out += [(f"/v2/users/:id/scale_teams/{role}", True, _campus_rows("scale_teams", "user", role))
            for role in ("as_corrector", "as_corrected")]
    return out


# (template, is_index, source). Order matters only for readability: templates are disjoint.
# The backlog resources' routes derive from the catalog (`_backlog_routes`); listed here are the
# stable ones and the exceptions (users by login and per campus, per-parent listings).
DECLARED_ROUTES: list[tuple[str, bool, Source]] = [
    ("/v2/cursus", True, _table("cursus")),
    ("/v2/cursus/:id", False, _one("cursus")),
    ("/v2/cursus/:id/projects", True, _cursus_projects),
    ("/v2/cursus/:id/users", True, _cursus_users),
    ("/v2/campus", True, _table("campuses")),
    ("/v2/campus/:id", False, _one("campuses")),
    ("/v2/campus/:id/achievements", True, _campus_achievements),
    ("/v2/campus/:id/users", True, _campus_users),
    ("/v2/projects", True, _table("projects")),
    ("/v2/projects/:id", False, _one("projects")),
    ("/v2/projects/:id/projects_users", True, _by("projects_users", "projects", "_project_id")),
    ("/v2/project_sessions", True, _table("project_sessions")),
    ("/v2/project_sessions/:id", False, _one("project_sessions")),
    ("/v2/coalitions", True, _table("coalitions")),
    ("/v2/coalitions/:id", False, _one("coalitions")),
    ("/v2/coalitions/:id/coalitions_users", True, _by("coalitions_users", "coalitions", "coalition_id")),
    ("/v2/achievements", True, _table("achievements")),
    ("/v2/achievements/:id", False, _one("achievements")),
]


def _backlog_routes() -> list[tuple[str, bool, Source]]:
    """Per catalog backlog resource: `/v2/<resource>` and `/:id`, its BacklogSource path when that
    is a parent's listing (`/v2/cursus/{cursus}/cursus_users`), and `/v2/users/:id/<resource>`
    when it has a user_id FK."""
    declared = {t for t, _i, _s in DECLARED_ROUTES}
    out: list[tuple[str, bool, Source]] = []
    for spec in catalog.BACKLOG:
        res = spec.source.resource  # type: ignore[union-attr]
        out += [(f"/v2/{res}", True, _table(res)), (f"/v2/{res}/:id", False, _one(res))]
        parents = {fk.parent: simdata.stored_key(res, fk.column) for fk in spec.fks}
        path = spec.source.path.replace(catalog.CURSUS, ":id")  # type: ignore[union-attr]
        m = re.fullmatch(r"/v2/(\w+)/:id/\w+", path)
        if m and path not in declared:
            parent = simdata.canonical(m.group(1))
            out.append((path, True, _by(res, parent, parents[parent])))
        if "users" in parents and res != "users":
            out.append((f"/v2/users/:id/{res}", True, _by(res, "users", parents["users"])))
    return out


#: answered by SimServer._locations_stats (one object, not rows)
LOCATIONS_STATS = "/v2/users/:id/locations_stats"
ROUTE_SPECS: list[tuple[str, bool, Source]] = DECLARED_ROUTES + _backlog_routes() + _campus_routes() + [
    (LOCATIONS_STATS, False, _table("users"))]
ROUTES = [(re.compile("^" + re.escape(t).replace(":id", "([^/]+)") + "/?$"), t, idx, src)
          for t, idx, src in ROUTE_SPECS]


def match_route(path: str) -> tuple[str, bool, Source, str | None] | None:
    for rx, template, is_index, src in ROUTES:
        m = rx.match(path)
        if m:
            return template, is_index, src, (m.group(1) if m.groups() else None)
    return None


def template_for(path: str) -> str:
    """Path template used for stats and fault matching (`/v2/campus/5` -> `/v2/campus/:id`)."""
    if path.startswith("/oauth/"):
        return path.rstrip("/")
    m = match_route(path)
    return m[0] if m else "unmatched"


def _plain_virtual(resource: str, users: dict[int, Any]) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """A backlog resource's references stored under `_` keys, and `campus` (its user's campus)."""
    gen = simdata.GENERATORS[resource]
    virtual: dict[str, Callable[[dict[str, Any]], Any]] = {
        api: (lambda r, k=key: r[k]) for api, key in gen.stored.items()}
    user_key = simdata.stored_key(resource, "user_id")
    virtual["campus"] = lambda r: (users.get(r.get(user_key)) or {}).get("_campus_id")
    return virtual


# Virtual fields a filter/range/sort may name, beyond a row's own keys.
def _getter(ds: simdata.Dataset, resource: str) -> Callable[[dict[str, Any], str], Any]:
    users = ds.tables["users"]
    virtual: dict[str, Callable[[dict[str, Any]], Any]] = {}
    if resource == "projects":
        virtual = {"cursus": lambda r: r["_cursus_ids"], "campus": lambda r: r["_campus_ids"],
                   "parent_id": lambda r: r["_parent_id"]}
    elif resource == "users":
        virtual = {"campus": lambda r: r["_campus_id"], "campus_id": lambda r: r["_campus_id"],
                   "cursus": lambda r: [simdata.CURSUS_21]}
    elif resource == "projects_users":
        virtual = {"user_id": lambda r: r["_user_id"], "project_id": lambda r: r["_project_id"],
                   "campus": lambda r: (users.get(r["_user_id"]) or {}).get("_campus_id"),
                   "cursus": lambda r: r["cursus_ids"]}
    elif resource == "achievements":
        virtual = {"parent_id": lambda r: r["_parent_id"]}
    elif resource in ("achievements_users", "coalitions_users"):
        virtual = {"campus": lambda r: (users.get(r["user_id"]) or {}).get("_campus_id")}
    elif resource == "cursus_users":
        virtual = {"user_id": lambda r: r["_user_id"],
                   "campus_id": lambda r: (users.get(r["_user_id"]) or {}).get("_campus_id")}
    elif resource in simdata.GENERATORS and resource != "users":
        virtual = _plain_virtual(resource, users)

    def get(row: dict[str, Any], name: str) -> Any:
        fn = virtual.get(name)
        return fn(row) if fn is not None else row.get(name)

    get.virtual = set(virtual)  # type: ignore[attr-defined]
    return get


# ---------------------------------------------------------------------------- the handler
class _Handler(WSGIRequestHandler):
    """Request handler with TCP_NODELAY and quiet logs."""

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):  # non-TCP sockets have no Nagle
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # recorded so a test can prove every accepted socket really has Nagle off
            self.server.sim_last_nodelay = self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
        if type == "error" or getattr(self.server, "sim_log_requests", False):
            super().log(type, message, *args)


class _Reset(ConnectionAbortedError):
    """Raised to make werkzeug drop a connection without answering (the `reset` fault)."""


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: list[tuple[str, str]]
    stat_status: str = ""


STATUS_TEXT = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
               403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 422: "Unprocessable Entity",
               429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
               503: "Service Unavailable"}


class SimServer:
    """The simulator: data, tokens, limits, faults, stats and (once started) an HTTP server.

    Use in-process (tests): `srv = SimServer(SimConfig(port=0)).start()`, then `srv.url`, the
    control methods below, `srv.stop()`. Or as a context manager.
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        cfg = self.config
        t0 = time.monotonic()
        self._pristine = simdata.generate(cfg.seed, cfg.backlog_scale)
        anchor = cfg.campus_anchor_ms if cfg.campus_anchor_ms is not None else now_ms() // 3_600_000 * 3_600_000
        simcampus.add_campus_data(self._pristine, cfg.seed, cfg.backlog_scale, anchor)
        self._pristine.campus.clock = cfg.campus_clock_ms
        self.generation_seconds = time.monotonic() - t0
        self.data = self._pristine.clone()
        self.lock = threading.RLock()
        self.tokens = TokenStore(cfg.client_id, cfg.client_secret, cfg.token_ttl, cfg.secret_valid_days,
                                 cfg.extra_clients)
        self.limiter = RateLimiter(cfg.rate_per_second, cfg.rate_per_hour)
        self.faults = FaultSet(cfg.seed)
        for spec in cfg.faults:
            self.faults.add(spec)
        self.latency = cfg.latency
        self.page_caps = dict(cfg.page_caps)
        self._stats: Counter[tuple[str, str]] = Counter()
        self._stats_lock = threading.Lock()
        self._churn_rng = simdata.random.Random(f"{cfg.seed}-churn")
        self.churn_log: deque[dict[str, Any]] = deque(maxlen=1000)
        self._httpd: Any = None
        self._thread: threading.Thread | None = None
        self._churn_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.churn_per_minute = cfg.churn_per_minute

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> SimServer:
        """Bind (port 0 = a free port) and serve in a background thread. Returns self."""
        self._httpd = make_server(self.config.host, self.config.port, self.wsgi, threaded=True,
                                  request_handler=_Handler)
        self._httpd.sim_log_requests = self.config.log_requests
        self._httpd.block_on_close = False
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="netops-sim-http", daemon=True)
        self._thread.start()
        self._stop.clear()
        if self.churn_per_minute > 0:
            self._start_churn()
        return self

    def stop(self) -> None:
        """Stop serving and the churn thread. Idempotent."""
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._churn_thread is not None:
            self._churn_thread.join(timeout=5)
            self._churn_thread = None

    def release(self) -> None:
        """Drop the data set (after stop(), before exit). The server cannot serve again."""
        with self.lock:
            self.data = simdata.Dataset({}, {})
            self._pristine = self.data
        gc.collect()

    def __enter__(self) -> SimServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def last_accepted_nodelay(self) -> bool:
        """Whether the most recently accepted connection had TCP_NODELAY set (for tests)."""
        return bool(getattr(self._httpd, "sim_last_nodelay", 0))

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("simulator not started")
        return int(self._httpd.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def client_id(self) -> str:
        return self.config.client_id

    @property
    def client_secret(self) -> str:
        return self.config.client_secret

    # ------------------------------------------------------------------ controls (in-process)
    def reset(self) -> None:
        """Back to the pristine seeded state: data, tokens, faults, stats, limits, knobs."""
        cfg = self.config
        with self.lock:
            self.data = self._pristine.clone()
            self.tokens.clear()
            self.tokens.ttl = cfg.token_ttl
            self.limiter.configure(cfg.rate_per_second, cfg.rate_per_hour)
            self.limiter.reset()
            self.faults.clear()
            for spec in cfg.faults:
                self.faults.add(spec)
            self.latency = cfg.latency
            self.page_caps = dict(cfg.page_caps)
            self.churn_per_minute = cfg.churn_per_minute
            self._churn_rng = simdata.random.Random(f"{cfg.seed}-churn")
            self.churn_log.clear()
        self.reset_stats()

    def configure(self, *, rate_per_second: int | None = None, rate_per_hour: int | None = None,
                  latency: float | None = None, token_ttl: int | None = None,
                  page_caps: dict[str, int] | None = None, churn_per_minute: float | None = None) -> dict[str, Any]:
        """Change knobs at run time (reset() restores the start values)."""
        self.limiter.configure(rate_per_second, rate_per_hour)
        if latency is not None:
            self.latency = float(latency)
        if token_ttl is not None:
            self.tokens.ttl = int(token_ttl)
        if page_caps is not None:
            self.page_caps = {str(k): int(v) for k, v in page_caps.items()}
        if churn_per_minute is not None:
            self.churn_per_minute = float(churn_per_minute)
            if self.churn_per_minute > 0 and self._httpd is not None:
                self._start_churn()
        return self.settings()

    def settings(self) -> dict[str, Any]:
        return {"seed": self.config.seed, "backlog_scale": self.config.backlog_scale,
                "rate_per_second": self.limiter.per_second, "rate_per_hour": self.limiter.per_hour,
                "latency": self.latency, "token_ttl": self.tokens.ttl, "page_caps": dict(self.page_caps),
                "churn_per_minute": self.churn_per_minute, "client_id": self.config.client_id,
                "secret_valid_until": self.tokens.secret_valid_until,
                "generation_seconds": round(self.generation_seconds, 3)}

    def campus_clock(self, clock: Any = "keep", advance_seconds: float = 0.0, scope: Any = "keep",
                     horizon_days: int | None = None) -> dict[str, Any]:
        """The campus data's clock (frozen at an instant — epoch ms or ISO text —, None: the wall
        clock; `advance_seconds` moves a frozen clock on), and the expected mirror's scope (campus
        ids — none at first, like NETOPS_CAMPUS_IDS —, None: every mirrored campus) and horizon.
        Returns the state."""
        with self.lock:
            cd = simcampus.campus(self.data)
            if clock != "keep":
                cd.clock = None if clock is None else (parse(clock) if isinstance(clock, str) else int(clock))
            if advance_seconds:
                cd.clock = cd.now() + int(float(advance_seconds) * 1000)
            if scope != "keep":
                cd.scope = None if scope is None else tuple(int(c) for c in scope)
            if horizon_days is not None:
                cd.horizon_days = int(horizon_days)
            return {"anchor": fmt(cd.anchor), "clock": fmt(cd.clock), "now": fmt(cd.now()),
                    "scope": None if cd.scope is None else list(cd.scope), "horizon_days": cd.horizon_days}

    def expire_tokens(self) -> int:
        return self.tokens.expire_all()

    def revoke_tokens(self) -> int:
        return self.tokens.revoke_all()

    def add_fault(self, spec: str | dict[str, Any]) -> dict[str, Any]:
        return self.faults.add(spec).to_dict()

    def clear_faults(self) -> None:
        self.faults.clear()

    def list_faults(self) -> list[dict[str, Any]]:
        return self.faults.list()

    def stats(self) -> dict[str, Any]:
        """API calls seen: total, per endpoint template, per status, and per both."""
        with self._stats_lock:
            items = list(self._stats.items())
        by_ep: Counter[str] = Counter()
        by_status: Counter[str] = Counter()
        both: dict[str, dict[str, int]] = {}
        for (ep, st), n in items:
            by_ep[ep] += n
            by_status[st] += n
            both.setdefault(ep, {})[st] = both.get(ep, {}).get(st, 0) + n
        return {"total": sum(by_ep.values()), "by_endpoint": dict(by_ep), "by_status": dict(by_status),
                "by_endpoint_status": both}

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._stats.clear()

    def delete(self, resource: str, row_id: Any) -> dict[str, int]:
        with self.lock:
            return self.data.delete(resource, row_id)

    def modify(self, resource: str, row_id: Any, fields: dict[str, Any], touch: bool = True) -> dict[str, Any]:
        with self.lock:
            return self.data.modify(resource, row_id, fields, touch=touch)

    def churn(self, n: int = 0, changes: list[dict[str, Any]] | None = None,
              silent_share: float = 0.0) -> list[dict[str, Any]]:
        """Apply n random backlog-row changes (seeded), or a precise change set. Returns what changed.

        A change: `{"op": "update"|"insert"|"delete", "resource": ..., "id": ..., "fields": {...},
        "touch": true}`.
        """
        out: list[dict[str, Any]] = []
        with self.lock:
            for change in changes or []:
                op = change.get("op", "update")
                res = simdata.canonical(str(change["resource"]))
                if op == "update":
                    row = self.data.modify(res, change["id"], dict(change.get("fields") or {}),
                                           touch=bool(change.get("touch", True)))
                    out.append({"op": "update", "resource": res, "id": row["id"], "row": row})
                elif op == "insert":
                    row = self.data.insert(res, self._churn_rng, dict(change.get("fields") or {}), change.get("id"))
                    out.append({"op": "insert", "resource": res, "id": row["id"], "row": row})
                elif op == "delete":
                    cascade = self.data.delete(res, change["id"])
                    out.append({"op": "delete", "resource": res, "id": change["id"], "cascade": cascade})
                else:
                    raise ValueError(f"unknown change op {op!r} (update, insert, delete)")
            for _ in range(int(n)):
                out.append(self.data.random_change(self._churn_rng, silent_share))
            self.churn_log.extend(out)
        return out

    def expected(self) -> dict[str, int]:
        with self.lock:
            return self.data.expected_counts()

    def expected_table(self, table: str, values: bool = True) -> dict[str, Any]:
        """Sorted primary keys of one mirror table, plus mirrored values for stable tables."""
        if table not in simdata.TABLES:
            raise LookupError(f"unknown table {table!r}; known: {', '.join(simdata.TABLES)}")
        with self.lock:
            keys = self.data.expected_keys()[table]
            out: dict[str, Any] = {"table": table, "primary_key": simdata.TABLES[table],
                                   "count": len(keys), "keys": [list(k) for k in keys]}
            if values and (table in simdata.STABLE_TABLES or table in simdata.CAMPUS_TABLES):
                rows = (simcampus.expected_all(self.data)[table] if table in simdata.CAMPUS_TABLES
                        else self.data.expected_rows(table))
                out["rows"] = rows
                # one short digest per row (same order as keys): compare a mirror row by row cheaply
                out["fingerprints"] = [hashlib.sha1(json.dumps(r, sort_keys=True, default=str).encode()).hexdigest()[:16]
                                       for r in rows]
        return out

    def _start_churn(self) -> None:
        if self._churn_thread is not None and self._churn_thread.is_alive():
            return

        def loop() -> None:
            while True:
                rate = self.churn_per_minute
                interval = 60.0 / rate if rate > 0 else 1.0
                if self._stop.wait(interval):
                    return
                if self.churn_per_minute > 0:
                    self.churn(1)

        self._churn_thread = threading.Thread(target=loop, name="netops-sim-churn", daemon=True)
        self._churn_thread.start()

    # ------------------------------------------------------------------ WSGI
    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        path = request.path
        if path.startswith("/_sim/") or path == "/_sim":
            if not self.config.control:
                ans = self._json(404, {"error": "Not Found", "message": "control API disabled"})
            else:
                status, obj = control_routes.handle(self, request)
                ans = self._json(status, obj)
            start_response(f"{ans.status} {STATUS_TEXT.get(ans.status, '')}", ans.headers)
            return [ans.body]
        template = template_for(path)
        try:
            ans = self._serve(request, path, template, environ)
        except _Reset:
            self._count(template, "reset")
            raise
        except Exception as exc:  # a bug in the simulator: answer 500 but say so
            ans = self._json(500, {"error": "Internal Server Error", "message": f"simulator bug: {exc!r}"})
        self._count(template, ans.stat_status or str(ans.status))
        start_response(f"{ans.status} {STATUS_TEXT.get(ans.status, '')}", ans.headers)
        return [ans.body]

    def _count(self, template: str, status: str) -> None:
        with self._stats_lock:
            self._stats[(template, status)] += 1

    def _base_headers(self) -> list[tuple[str, str]]:
        cfg = self.config
        return [("X-Application-Id", str(cfg.app_id)), ("X-Application-Name", cfg.app_name),
                ("X-Application-Roles", cfg.app_roles), ("Cache-Control", "no-store"),
                ("X-Request-Id", f"{time.time_ns():x}")]

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> _Answer:
        body = json.dumps(obj, separators=(",", ":")).encode()
        h = [("Content-Type", JSON_TYPE), ("Content-Length", str(len(body)))] + self._base_headers()
        h += list((headers or {}).items())
        return _Answer(status, body, h)

    def _serve(self, request: Request, path: str, template: str, environ: dict[str, Any]) -> _Answer:
        """One API request, checked in the documented order: auth, limits, faults, latency, endpoint."""
        if path.startswith("/oauth/"):
            return self._oauth(request, path, template, environ)
        if not path.startswith("/v2/") and path != "/v2":
            return self._json(404, {"error": "Not Found", "message": f"no route for {path}"})
        started = time.monotonic()
        token, reason = self.tokens.validate(_bearer(request))
        if token is None:  # before the limiter: a refused token costs no budget
            return self._unauthorized(reason)
        decision = self.limiter.hit(token.client_id)
        rl_headers: dict[str, str] = dict(decision.headers)
        if not decision.allowed:
            rl_headers["Retry-After"] = str(decision.retry_after)
            return self._json(429, {"error": "Too Many Requests",
                                    "message": f"rate limit exceeded, retry in {decision.retry_after}s"}, rl_headers)
        page = 1
        with contextlib.suppress(ValueError):
            page = max(1, int(request.args.get("page[number]") or request.args.get("page") or 1))
        kinds = {f.kind: f for f in self.faults.draw(path, template, page)}
        early = self._before_endpoint(kinds, rl_headers, started, environ)
        if early is not None:
            return early
        ans = self._endpoint(request, path, template, rl_headers, kinds)
        if "truncated" in kinds and ans.status == 200:
            ans = self._truncate(ans)
        return ans

    def _before_endpoint(self, kinds: dict[str, Fault], rl_headers: dict[str, str], started: float,
                         environ: dict[str, Any]) -> _Answer | None:
        """Faults that act before the endpoint runs, and the configured latency; an answer ends the request."""
        if "token_revoked" in kinds:
            self.tokens.revoke_all()
            return self._unauthorized("The access token is invalid", rl_headers)
        if "slow" in kinds:
            time.sleep(float(kinds["slow"].param("seconds", "5")))
        if self.latency > 0:
            time.sleep(max(0.0, self.latency - (time.monotonic() - started)))
        if "reset" in kinds:
            self._reset_connection(environ)
        for kind in ERROR_KINDS:
            if kind in kinds:
                status = int(kind)
                headers = dict(rl_headers)
                if status == 429:
                    headers["Retry-After"] = kinds[kind].param("seconds", "1")
                return self._json(status, {"error": STATUS_TEXT[status], "message": f"injected fault {kind}"}, headers)
        if "malformed_json" in kinds:
            return self._raw(200, MALFORMED_JSON, JSON_TYPE, rl_headers)
        if "html_200" in kinds:
            return self._raw(200, HTML_ERROR_PAGE, "text/html; charset=utf-8", rl_headers)
        return None

    def _endpoint(self, request: Request, path: str, template: str, rl_headers: dict[str, str],
                  kinds: dict[str, Fault]) -> _Answer:
        route = match_route(path)
        if route is None:
            return self._json(404, {"error": "Not Found", "message": f"no route for {path}"}, rl_headers)
        if request.method not in ("GET", "HEAD"):
            return self._json(405, {"error": "Method Not Allowed"}, rl_headers)
        _template, is_index, source, raw_id = route
        try:
            if is_index:
                return self._index(request, template, source, raw_id, rl_headers, kinds)
            if template == LOCATIONS_STATS:
                return self._locations_stats(request, raw_id, rl_headers)
            with self.lock:
                resource, rows = source(self.data, raw_id)
                payload = self._render(resource, rows)
            self._drift(payload, kinds)
            return self._json(200, payload[0], rl_headers)
        except HTTPError as exc:
            return self._json(exc.status, exc.body, {**rl_headers, **exc.headers})
        except QueryError as exc:
            return self._json(400, {"error": "Bad Request", "message": str(exc)}, rl_headers)

    def _index(self, request: Request, template: str, source: Source, raw_id: str | None,
               rl_headers: dict[str, str], kinds: dict[str, Fault]) -> _Answer:
        cap = min(self.page_caps.get(template, 100), 100)
        q: Query = parse_query(request.args, max_per_page=cap)
        with self.lock:
            resource, rows = source(self.data, raw_id)
            getter, known, ts = self._query_fields(resource)
            rows = apply(rows, q, getter, ts, known)
            total = len(rows)
            shift = 1 if "shift" in kinds else 0
            start, end = page_slice(total + shift, q.page, q.per_page)
            start, end = max(0, start - shift), max(0, end - shift)
            payload = self._render(resource, rows[start:end])
        total += shift
        self._drift(payload, kinds)
        headers = dict(rl_headers)
        shown_total = total
        if "lying_total" in kinds:
            shown_total = max(0, total + int(kinds["lying_total"].param("delta", "50")))
        headers.update({"X-Page": str(q.page), "X-Per-Page": str(q.per_page), "X-Total": str(shown_total)})
        link = link_header(f"{request.host_url.rstrip('/')}{request.path}", request.args, q, total)
        if link:
            headers["Link"] = link
        return self._json(200, payload, headers)

    def _query_fields(self, resource: str) -> tuple[Callable[[dict[str, Any], str], Any], set[str] | None,
                                                     tuple[str, ...]]:
        """A listing's field reader, the field names a filter may use, and its timestamp fields."""
        if resource in simcampus.RESOURCES:
            get, known = simcampus.getter(resource)
            return get, known, simcampus.TS_FIELDS[resource]
        getter = _getter(self.data, resource)
        sample = next(iter(self.data.tables[resource].values()), None)
        names = None if sample is None else ({k for k in sample if not k.startswith("_")}
                                             | getter.virtual | {"id"})  # type: ignore[attr-defined]
        return getter, names, simdata.TS_FIELDS[resource]

    def _render(self, resource: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if resource in simcampus.RESOURCES:
            return simcampus.render(self.data, resource, rows)
        return self.data.render(resource, rows)

    def _locations_stats(self, request: Request, raw_id: str | None, rl_headers: dict[str, str]) -> _Answer:
        """`/v2/users/:id/locations_stats`: one object, day -> `HH:MM:SS.ffffff` (docs/api.md)."""
        uid = _int_id(raw_id)
        with self.lock:
            if simcampus.person(self.data, uid) is None:
                raise _not_found("User")
            stats = simcampus.locations_stats(self.data, uid, request.args.get("begin_at"),
                                              request.args.get("end_at"))
        return self._json(200, stats, rl_headers)

    @staticmethod
    def _drift(payload: list[dict[str, Any]], kinds: dict[str, Fault]) -> None:
        for kind in DRIFT_KINDS:
            if kind in kinds:
                drift(kind, kinds[kind], payload)

    def _raw(self, status: int, body: bytes, ctype: str, headers: dict[str, str]) -> _Answer:
        h = [("Content-Type", ctype), ("Content-Length", str(len(body)))] + self._base_headers()
        return _Answer(status, body, h + list(headers.items()))

    @staticmethod
    def _truncate(ans: _Answer) -> _Answer:
        """Announce the full length, send half, close: the client sees an incomplete read."""
        body = ans.body[: max(1, len(ans.body) // 2)]
        headers = [(k, v) for k, v in ans.headers if k.lower() not in ("content-length", "connection")]
        headers += [("Content-Length", str(len(ans.body))), ("Connection", "close")]
        return _Answer(ans.status, body, headers, stat_status=f"{ans.status}-truncated")

    @staticmethod
    def _reset_connection(environ: dict[str, Any]) -> None:
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                # linger 0: close() sends RST instead of FIN; shutdown stops further reads now
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise _Reset("injected connection reset")

    def _unauthorized(self, reason: str, extra: dict[str, str] | None = None) -> _Answer:
        headers = dict(extra or {})
        headers["WWW-Authenticate"] = (f'Bearer realm="42 API", error="invalid_token", '
                                       f'error_description="{reason}"')
        return self._json(401, {"error": "Not authorized", "message": reason}, headers)

    # ------------------------------------------------------------------ OAuth
    def _oauth(self, request: Request, path: str, template: str, environ: dict[str, Any]) -> _Answer:
        fired = [f for f in self.faults.draw(path, template) if f.endpoint]  # only when named
        kinds = {f.kind: f for f in fired}
        if "reset" in kinds:
            self._reset_connection(environ)
        for kind in ERROR_KINDS:
            if kind in kinds:
                status = int(kind)
                return self._json(status, {"error": STATUS_TEXT[status], "message": f"injected fault {kind}"},
                                  {"Retry-After": kinds[kind].param("seconds", "1")} if status == 429 else None)
        path = path.rstrip("/")
        if path == "/oauth/token" and request.method == "POST":
            form = request.form
            cid, secret = form.get("client_id"), form.get("client_secret")
            if request.authorization and request.authorization.type == "basic":
                cid = cid or request.authorization.username
                secret = secret or request.authorization.password
            if form.get("grant_type") != "client_credentials":
                return self._json(400, {"error": "unsupported_grant_type",
                                        "error_description": "The authorization grant type is not supported by the authorization server."})
            if not self.tokens.check_client(cid, secret):
                return self._json(401, {"error": "invalid_client", "error_description":
                                        "Client authentication failed due to unknown client, no client "
                                        "authentication included, or unsupported authentication method."})
            tok = self.tokens.issue(cid)
            return self._json(200, {"access_token": tok.value, "token_type": "bearer", "expires_in": self.tokens.ttl,
                                    "scope": "public", "created_at": int(tok.created_at),
                                    "secret_valid_until": self.tokens.secret_valid_until})
        if path == "/oauth/token/info" and request.method == "GET":
            tok, reason = self.tokens.validate(_bearer(request))
            if tok is None:
                return self._unauthorized(reason)
            return self._json(200, {"resource_owner_id": None, "scopes": ["public"],
                                    "expires_in_seconds": max(0, int(tok.expires_at - time.time())),
                                    "application": {"uid": tok.client_id}, "created_at": int(tok.created_at)})
        if path in ("/oauth/token", "/oauth/token/info"):
            return self._json(405, {"error": "Method Not Allowed"})
        return self._json(404, {"error": "Not Found", "message": f"no route for {path}"})
