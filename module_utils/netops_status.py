# Shared by library/netops_health.py and library/netops_fleet.py: how a `netops status --json`
# document (docs/CONTRACTS.md) is judged and summarised. Pure functions, no Ansible imports, so
# the unit tests can call them directly.

from __future__ import annotations

import json

SEVERITY = {"ok": 0, "warning": 1, "critical": 2}
EXIT_STATE = {0: "ok", 1: "warning", 2: "critical"}


def worst(*states):
    """The most severe of the given states (unknown/None count as critical)."""
    rank = 0
    for state in states:
        rank = max(rank, SEVERITY.get(state, 2))
    return EXIT_STATE[rank]


def parse_status(stdout, rc):
    """Parse `netops status --json` output.

    Returns (document or None, summary_state, error or None). The summary is the worse of the
    document's own state and the exit code's (0 ok, 1 warning, 2 critical); anything unreadable
    is critical, with the reason in error.
    """
    text = (stdout or "").strip()
    if not text:
        return None, "critical", f"netops status printed nothing (exit code {rc})"
    try:
        doc = json.loads(text)
    except ValueError as exc:
        return None, "critical", f"netops status did not print JSON ({exc}): {text[:200]}"
    if not isinstance(doc, dict) or doc.get("state") not in SEVERITY:
        return None, "critical", f"netops status printed JSON without a valid 'state' (exit code {rc})"
    if rc not in EXIT_STATE:
        return doc, "critical", f"netops status exited with {rc} (expected 0, 1 or 2)"
    return doc, worst(doc["state"], EXIT_STATE[rc]), None


def should_fail(summary_state, fail_on):
    """Whether a host in summary_state fails under fail_on (critical|warning|never)."""
    return fail_on != "never" and SEVERITY.get(summary_state, 2) >= SEVERITY[fail_on]


def facts_from_status(doc):
    """The few figures the fleet table and playbooks need, from a status document (or None)."""
    doc = doc or {}
    services = {}
    for name, info in sorted((doc.get("services") or {}).items()):
        ok = (info or {}).get("ok")
        services[name] = "ok" if ok is True else ("down" if ok is False else "n/a")
    last_sync = doc.get("last_sync") or {}
    backlog = doc.get("backlog") or {}
    alerts = doc.get("alerts") or {}
    return {
        "services": services,
        "last_sync_age_seconds": last_sync.get("age_seconds"),
        "last_sync_status": last_sync.get("status"),
        # None: the database did not answer, so whether a backlog exists is unknown (not absent)
        "backlog_available": None if backlog.get("available") is None else bool(backlog.get("available")),
        "backlog_pending": backlog.get("pending", 0) or 0,
        "backlog_failed": backlog.get("failed", 0) or 0,
        "firing_alerts": list(alerts.get("firing") or []),
        "problems": list(doc.get("problems") or []),
    }


def human_age(seconds):
    if seconds is None:
        return "never"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds // 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _short(msg, width=50):
    """The gist of an Ansible failure message, for a table cell."""
    msg = " ".join(str(msg).split())
    for prefix in ("Task failed: ", "Failed to connect to the host via ssh: "):
        msg = msg.replace(prefix, "")
    return msg if len(msg) <= width else msg[: width - 3] + "..."


# "problems" right after the state: the names of the checks behind a warning or critical (the
# messages are in each host's health result), or why a host could not be asked at all.
COLUMNS = ("host", "state", "problems", "services", "last sync", "backlog", "firing alerts")


def problem_names(problems):
    """The distinct check names of a status document's problems, the most severe first."""
    ranked = sorted(problems or [], key=lambda p: -SEVERITY.get((p or {}).get("severity"), 2))
    names = []
    for p in ranked:
        name = (p or {}).get("check") or "?"
        if name not in names:
            names.append(name)
    return ", ".join(names) or "-"


def fleet_rows(results):
    """One row per host, sorted by severity (worst first) then name.

    results maps host -> a netops_health result (or {} / {"failed": True, "msg": ...} for a
    host that could not be asked).
    """
    rows = []
    for host, res in results.items():
        res = res or {}
        state = res.get("summary_state")
        if state not in SEVERITY:
            state = "unreachable"
            row = {
                "host": host,
                "state": state,
                "problems": _short(res.get("msg") or "no answer"),
                "services": "-",
                "last sync": "-",
                "backlog": "-",
                "firing alerts": "-",
            }
        else:
            f = facts_from_status(res.get("status"))
            services = " ".join(f"{k}:{v}" for k, v in f["services"].items()) or "-"
            if res.get("error"):
                services = "netops: {}".format(res["error"][:50])
            backlog = (f"{f['backlog_pending']} pending" if f["backlog_available"]
                       else "unknown" if f["backlog_available"] is None else "n/a")
            if f["backlog_available"] and f["backlog_failed"]:
                backlog += f", {f['backlog_failed']} failed"
            age = human_age(f["last_sync_age_seconds"])
            if f["last_sync_status"] and f["last_sync_status"] != "success":
                age += " ({})".format(f["last_sync_status"])
            problems = problem_names(f["problems"])
            if res.get("error") and problems == "-":
                problems = "netops"
            row = {
                "host": host,
                "state": state,
                "problems": problems,
                "services": services,
                "last sync": age,
                "backlog": backlog,
                "firing alerts": ", ".join(f["firing_alerts"]) or "-",
            }
        rows.append(row)
    rank = {"unreachable": 3, "critical": 2, "warning": 1, "ok": 0}
    rows.sort(key=lambda r: (-rank[r["state"]], r["host"]))
    return rows


def render_table(rows):
    """A plain-text table (header, rule, rows)."""
    widths = [len(c) for c in COLUMNS]
    for row in rows:
        for i, col in enumerate(COLUMNS):
            widths[i] = max(widths[i], len(str(row[col])))

    def line(values):
        return "  ".join(str(v).ljust(widths[i]) for i, v in enumerate(values)).rstrip()

    out = [line(COLUMNS), line("-" * w for w in widths)]
    out.extend(line(row[c] for c in COLUMNS) for row in rows)
    return out


def fleet_summary(results):
    rows = fleet_rows(results)
    by_state = {"ok": [], "warning": [], "critical": [], "unreachable": []}
    for row in rows:
        by_state[row["state"]].append(row["host"])
    counts = dict((k, len(v)) for k, v in by_state.items())
    counts["total"] = len(rows)
    return {
        "rows": rows,
        "table": render_table(rows),
        "counts": counts,
        # rows are sorted by (state, host): each list is in host order already
        "ok_hosts": by_state["ok"],
        "warning_hosts": by_state["warning"],
        "critical_hosts": by_state["critical"],
        "unreachable_hosts": by_state["unreachable"],
        "fleet_state": worst(*(row["state"] for row in rows)),   # unreachable counts as critical
    }
