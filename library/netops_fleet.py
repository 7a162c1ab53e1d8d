#!/usr/bin/python
# netops: Ansible module turning every host's netops_health result into one fleet table.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: netops_fleet
short_description: One health table for a fleet of netops hosts
description:
  - Takes the registered M(netops_health) result of every host and returns one plain-text
    table (host, state, services, last sync age, backlog depth, firing alerts), worst host first,
    plus the hosts per state. Meant to run once on the controller (status.yml).
  - A host without a result (unreachable, or its task failed before answering) is listed as
    C(unreachable).
  - Read-only, never reports a change and never fails on a sick host; the playbook decides.
version_added: "0.1.0"
author:
  - netops
options:
  results:
    description: Host name to that host's M(netops_health) result (or an empty dict when none).
    type: dict
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Build the fleet table
  netops_fleet:
    results: "{{ dict(groups['netops'] | zip(groups['netops'] | map('extract', hostvars)
                 | map(attribute='_netops_health', default={}))) }}"
  delegate_to: localhost
  run_once: true
  register: fleet

- name: Print it
  ansible.builtin.debug:
    msg: "{{ fleet.table | join('\n') }}"
"""

RETURN = r"""
table:
  description: The table, one line per item (header, rule, one row per host).
  returned: always
  type: list
  elements: str
rows:
  description: The same rows as dicts (host, state, services, last sync, backlog, firing alerts).
  returned: always
  type: list
  elements: dict
counts:
  description: Hosts per state, and the total.
  returned: always
  type: dict
  sample: {"ok": 3, "warning": 1, "critical": 0, "unreachable": 0, "total": 4}
fleet_state:
  description: critical when any host is critical or unreachable, else warning when any is, else ok.
  returned: always
  type: str
ok_hosts:
  description: Hosts in state ok.
  returned: always
  type: list
  elements: str
warning_hosts:
  description: Hosts in state warning.
  returned: always
  type: list
  elements: str
critical_hosts:
  description: Hosts in state critical.
  returned: always
  type: list
  elements: str
unreachable_hosts:
  description: Hosts without a health result.
  returned: always
  type: list
  elements: str
"""

import traceback  # noqa: E402  (Ansible modules import after DOCUMENTATION)

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

try:
    from ansible.module_utils.netops_status import fleet_summary
except ImportError:  # pragma: no cover - module_utils path not configured
    HAS_NETOPS_UTILS = False
    NETOPS_UTILS_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_NETOPS_UTILS = True
    NETOPS_UTILS_IMPORT_ERROR = None


def argument_spec():
    return dict(results=dict(type="dict", required=True))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_NETOPS_UTILS:
        module.fail_json(
            msg="Failed to import module_utils netops_status: set module_utils in ansible.cfg "
            "to the bundle's module_utils/ directory",
            exception=NETOPS_UTILS_IMPORT_ERROR,
        )
    summary = fleet_summary(module.params["results"])
    module.exit_json(changed=False, **summary)


if __name__ == "__main__":
    main()
