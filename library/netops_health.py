#!/usr/bin/python
# netops: Ansible module reporting the health `netops status --json` knows on a host.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: netops_health
short_description: Report the health of a netops host (C(netops status --json))
description:
  - Runs C(netops status --json) on the host and returns its document, plus a one-word
    I(summary_state) (C(ok), C(warning) or C(critical)).
  - The summary is the worse of the document's C(state) and the command's exit code
    (0 ok, 1 warning, 2 critical). A missing command, a crash or output that is not the
    documented JSON counts as C(critical), with the reason in I(error).
  - Read-only; never reports a change. Fails the task according to I(fail_on).
version_added: "0.1.0"
author:
  - netops
options:
  netops_bin:
    description: Path of the C(netops) executable (the one in the application virtualenv).
    type: path
    default: /opt/netops/venv/bin/netops
  config:
    description:
      - Config file passed as C(--config).
      - When omitted, the host's default C(/etc/netops/netops.toml) is read; a C(NETOPS_CONFIG)
        the module process inherited (e.g. from the controller's shell with a local connection) is
        ignored, so the report is about the host's configuration. Set C(NETOPS_CONFIG) in
        I(environment) to choose otherwise.
    type: path
  environment:
    description: Extra environment variables for the command (e.g. C(NETOPS_DSN)); values are not logged.
    type: dict
    default: {}
  run_as:
    description:
      - Run the command as this user (via C(runuser)) when the module runs as root, so files
        netops may write stay owned by the service user. Ignored when already that user.
    type: str
  fail_on:
    description:
      - C(critical) fails the task when the host is critical; C(warning) also when it is in
        warning; C(never) only reports.
    type: str
    choices: [critical, warning, never]
    default: critical
  timeout:
    description: Seconds before the command is killed (then the host counts as critical).
    type: int
    default: 120
attributes:
  check_mode:
    support: full
    description: The command only reads, so it runs in check mode too.
  diff_mode:
    support: none
notes:
  - The JSON shape is the C(netops status --json) contract in docs/CONTRACTS.md.
requirements:
  - the netops package installed on the host (role C(netops))
"""

EXAMPLES = r"""
- name: Fail the play when the box is critical
  netops_health:

- name: Only report, from another virtualenv and config
  netops_health:
    netops_bin: /srv/netops/venv/bin/netops
    config: /srv/netops/netops.toml
    run_as: netops
    fail_on: never
  register: health

- name: Show what is wrong
  ansible.builtin.debug:
    var: health.problems
  when: health.summary_state != 'ok'
"""

RETURN = r"""
summary_state:
  description: ok, warning or critical (the worse of the document's state and the exit code).
  returned: always
  type: str
  sample: warning
exit_code:
  description:
    - Exit code of C(netops status --json) (null when it could not run). Not called C(rc) on
      purpose, since Ansible marks any result with a non-zero C(rc) as failed.
  returned: always
  type: int
  sample: 1
status:
  description: The parsed C(netops status --json) document (empty when unreadable).
  returned: always
  type: dict
  sample: {"state": "warning", "problems": [], "services": {}, "last_sync": {}, "backlog": {}}
problems:
  description: The document's problems (severity, check, message).
  returned: always
  type: list
  elements: dict
  sample: [{"severity": "warning", "check": "token", "message": "no API token stored yet"}]
services:
  description: Each service's state (ok, down or n/a).
  returned: always
  type: dict
  sample: {"nginx": "ok", "postgresql": "ok"}
last_sync_age_seconds:
  description: Seconds since the last sync finished (null when never).
  returned: always
  type: float
  sample: 5400.2
backlog_pending:
  description: Backlog items pending.
  returned: always
  type: int
  sample: 12
firing_alerts:
  description: Names of the alerts firing.
  returned: always
  type: list
  elements: str
  sample: ["api_429"]
error:
  description: Why the status could not be read (then summary_state is critical); null otherwise.
  returned: always
  type: str
  sample: null
"""

import os  # noqa: E402
import traceback  # noqa: E402  (Ansible modules import after DOCUMENTATION)

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

try:
    from ansible.module_utils.netops_status import facts_from_status, parse_status, should_fail
except ImportError:  # pragma: no cover - module_utils path not configured
    HAS_NETOPS_UTILS = False
    NETOPS_UTILS_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_NETOPS_UTILS = True
    NETOPS_UTILS_IMPORT_ERROR = None


def argument_spec():
    return dict(
        netops_bin=dict(type="path", default="/opt/netops/venv/bin/netops"),
        config=dict(type="path"),
        environment=dict(type="dict", default={}, no_log=True),
        run_as=dict(type="str"),
        fail_on=dict(type="str", choices=["critical", "warning", "never"], default="critical"),
        timeout=dict(type="int", default=120),
    )


def build_command(params, euid=None, current_user=None):
    """The argv that asks netops for its status (through runuser when needed)."""
    argv = [params["netops_bin"]]
    if params.get("config"):
        argv += ["--config", params["config"]]
    argv += ["status", "--json"]
    run_as = params.get("run_as")
    euid = os.geteuid() if euid is None else euid
    if run_as and run_as != current_user:
        if euid != 0:
            raise ValueError(f"run_as={run_as} needs root (become: true) to switch user")
        argv = ["runuser", "-u", run_as, "--"] + argv
    if params.get("timeout"):
        argv = ["timeout", str(params["timeout"])] + argv
    return argv


def missing_executable_msg(path):
    # Same shape as missing_required_lib(): what is missing, where, and how to get it.
    return (
        f"Failed to find the required executable netops at {path} on {os.uname()[1]}. Install it with the netops "
        "role (ansible-playbook deploy.yml) or set netops_bin."
    )


def gather(module, params):
    """Run the command and build the module result (without changed/failed)."""
    result = dict(
        summary_state="critical",
        exit_code=None,
        status={},
        problems=[],
        services={},
        last_sync_age_seconds=None,
        backlog_pending=0,
        firing_alerts=[],
        error=None,
    )
    exe = params["netops_bin"]
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        result["error"] = missing_executable_msg(exe)
        return result
    try:
        argv = build_command(params, current_user=_current_user())
    except ValueError as exc:
        result["error"] = str(exc)
        return result
    env = dict((str(k), str(v)) for k, v in (params.get("environment") or {}).items())
    # A local connection hands the controller's environment to the module; a NETOPS_CONFIG from
    # there (CI sets NETOPS_CONFIG="" for its tests) would make netops ignore the host's config.
    if "NETOPS_CONFIG" not in env:
        os.environ.pop("NETOPS_CONFIG", None)
    rc, stdout, stderr = module.run_command(argv, environ_update=env, check_rc=False)
    result["exit_code"] = rc
    if rc == 124 and params.get("timeout"):
        result["error"] = "netops status timed out after {}s".format(params["timeout"])
        return result
    doc, summary, error = parse_status(stdout, rc)
    if error and stderr:
        error = f"{error}; stderr: {stderr.strip()[-300:]}"
    facts = facts_from_status(doc)
    result.update(
        summary_state=summary,
        status=doc or {},
        problems=facts["problems"],
        services=facts["services"],
        last_sync_age_seconds=facts["last_sync_age_seconds"],
        backlog_pending=facts["backlog_pending"],
        firing_alerts=facts["firing_alerts"],
        error=error,
    )
    return result


def _current_user():
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return None


def failure_message(result):
    if result.get("error"):
        return "netops health is {}: {}".format(result["summary_state"], result["error"])
    worst = [p for p in result["problems"] if p.get("severity") == result["summary_state"]]
    shown = "; ".join(
        "{}: {}".format(p.get("check"), p.get("message")) for p in (worst or result["problems"])[:5]
    )
    return "netops health is {}: {}".format(result["summary_state"], shown or "no problem listed")


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_NETOPS_UTILS:
        module.fail_json(
            msg="Failed to import module_utils netops_status: set module_utils in ansible.cfg "
            "to the bundle's module_utils/ directory",
            exception=NETOPS_UTILS_IMPORT_ERROR,
        )
    if module.params["timeout"] is not None and module.params["timeout"] < 1:
        module.fail_json(msg="timeout must be >= 1 (seconds), got {}".format(module.params["timeout"]))

    result = gather(module, module.params)
    result["changed"] = False
    if should_fail(result["summary_state"], module.params["fail_on"]):
        module.fail_json(msg=failure_message(result), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
