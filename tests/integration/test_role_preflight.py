"""The netops role's preflight checks, run by a real `ansible-playbook` on this machine.

Preflight is what stops a deploy before anything is changed on a host; these cases need no host
(the assertions look at variables only), so they run here in seconds instead of in the fleet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ansible", reason="the deploy extra (ansible-core) is not installed")

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = """\
- name: Preflight only
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: The role's preflight checks
      ansible.builtin.import_role:
        name: netops
        tasks_from: preflight.yml
"""


def _preflight(tmp_path: Path, extra_settings: dict[str, object]) -> subprocess.CompletedProcess[str]:
    import yaml

    (tmp_path / "play.yml").write_text(PLAYBOOK)
    # the secrets in a vars file (0600), never on the command line
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump({
        "netops_client_id": "id", "netops_client_secret": "secret", "netops_db_password": "pw",
        "netops_source_dir": str(REPO), "netops_extra_settings": extra_settings,
        "ansible_python_interpreter": sys.executable}))
    vars_file.chmod(0o600)
    bindir = Path(sys.executable).parent
    exe = shutil.which("ansible-playbook", path=str(bindir)) or "ansible-playbook"
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(REPO / "roles"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    return subprocess.run([exe, "-i", "localhost,", "-e", f"@{vars_file}", str(tmp_path / "play.yml")],
                          cwd=tmp_path, env=env, text=True, capture_output=True, timeout=300)


def test_extra_settings_repeating_a_role_key_fails_naming_the_variable(tmp_path: Path) -> None:
    """Both netops_nginx_timeout and netops_extra_settings.nginx_timeout would write the key twice,
    and netops.toml would not load on the host: the deploy stops first, naming the variable."""
    p = _preflight(tmp_path, {"nginx_timeout": 3, "rate_per_hour": 600, "alert_queue_depth": 10})
    assert p.returncode == 2, p.stdout[-2000:]
    assert "netops_extra_settings sets nginx_timeout, rate_per_hour, which the role writes" in p.stdout
    assert "set netops_nginx_timeout; netops_rate_per_hour instead" in p.stdout


def test_extra_settings_of_other_keys_pass(tmp_path: Path) -> None:
    p = _preflight(tmp_path, {"alert_queue_depth": 10})
    assert p.returncode == 0, p.stdout[-2000:]
    assert "failed=0" in p.stdout
