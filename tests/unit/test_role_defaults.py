"""Each fact once, across Python and the Ansible roles (which cannot import Python): a role's
defaults agree with its argument_specs, the netops role's settings with netops/config.py's
defaults, and the facts both sides use (simulator address, .prom names, web root, the netops
binary) with each other."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

from netops import config
from netops.config import FIELDS
from netops.monitor import metrics

yaml = pytest.importorskip("yaml")
jinja2 = pytest.importorskip("jinja2")

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "defaults" / "main.yml").exists())


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _defaults(role: str) -> dict[str, Any]:
    return _yaml(REPO / "roles" / role / "defaults" / "main.yml")


def _specs(role: str) -> dict[str, Any]:
    return _yaml(REPO / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]


def _templated(value: Any) -> bool:
    return "{{" in repr(value)


def _rendered(role: str, name: str) -> Any:
    """A default as Ansible would see it with every other default of the role (no inventory)."""
    defaults = _defaults(role)
    value = defaults[name]
    for _ in range(5):   # defaults built from defaults built from defaults
        if not isinstance(value, str) or "{{" not in value:
            break
        value = jinja2.Template(value).render(**defaults)
    return value


# --- (a) defaults/main.yml and meta/argument_specs.yml say the same -------------------------------

def spec_disagreements(defaults: dict[str, Any], specs: dict[str, Any]) -> list[str]:
    out = [f"{name}: in defaults/main.yml, not documented in argument_specs.yml"
           for name in defaults if name not in specs]
    out += [f"{name}: documented in argument_specs.yml, missing from defaults/main.yml"
            for name in specs if name not in defaults]
    for name in set(defaults) & set(specs):
        value, spec = defaults[name], specs[name]
        if "default" in spec:
            if _templated(value):
                out.append(f"{name}: argument_specs.yml gives default {spec['default']!r}, defaults/main.yml "
                           f"computes it ({value!r}): drop the spec's default")
            elif spec["default"] != value:
                out.append(f"{name}: defaults/main.yml {value!r} != argument_specs.yml {spec['default']!r}")
        elif value is not None and not _templated(value) and not spec.get("required"):
            # (a required variable's placeholder in defaults is not a default: the spec cannot have both)
            out.append(f"{name}: defaults/main.yml {value!r} is not stated in argument_specs.yml (add default:)")
    return sorted(out)


@pytest.mark.parametrize("role", ROLES)
def test_role_defaults_match_argument_specs(role: str) -> None:
    assert spec_disagreements(_defaults(role), _specs(role)) == []


def test_spec_check_catches_each_kind_of_disagreement() -> None:
    specs = {"a": {"default": 1}, "b": {"type": "str"}, "c": {"default": "x"}, "d": {"type": "int"},
             "f": {"type": "str", "required": True}}
    defaults = {"a": 2, "b": "set", "c": "{{ a }}", "e": 1, "f": ""}
    assert [line.split(":")[0] for line in spec_disagreements(defaults, specs)] == ["a", "b", "c", "d", "e"]


# --- (b) the netops role's settings default to what netops/config.py defaults to ----------------

#: netops.toml keys the role writes that have no default of their own to compare: secrets (empty
#: means unset), a DSN composed of the db_* variables, null meaning "netops' own default", and the
#: keys list (empty in both).
NOT_COMPARED = {"client_id", "client_secret", "dsn", "nginx_timeout", "keys"}


def _role_toml_keys() -> dict[str, str]:
    """netops.toml key -> the netops role variable that writes it (roles/netops/vars/main.yml)."""
    return _yaml(REPO / "roles" / "netops" / "vars" / "main.yml")["__netops_toml_role_keys"]


def _config_default(name: str) -> Any:
    """config.py's default of a field on a host, where netops runs as root (the role's case)."""
    if name == "state_dir":
        return config.default_state_dir(root=True)
    if name == "log_dir":
        return config.default_log_dir(config.default_state_dir(root=True), root=True)
    return next(f.default for f in FIELDS if f.name == name)


def test_every_role_written_key_is_a_setting() -> None:
    names = {f.name for f in FIELDS}
    assert set(_role_toml_keys()) - NOT_COMPARED <= names


@pytest.mark.parametrize("key", sorted(set(_role_toml_keys()) - NOT_COMPARED))
def test_netops_role_defaults_equal_config_defaults(key: str) -> None:
    variable = _role_toml_keys()[key]
    role_value = _rendered("netops", variable)
    if isinstance(role_value, list):   # a YAML list; config.py holds list settings as tuples
        role_value = tuple(role_value)
    assert (role_value if role_value != "" else None) == _config_default(key), (variable, key)


# --- (c) facts shared by Python and the roles ------------------------------------------------

def test_simulator_address_is_config_s() -> None:
    assert _defaults("netops")["netops_sim_port"] == config.SIM_PORT
    api_url = _yaml(REPO / "roles" / "netops" / "vars" / "main.yml")["__netops_api_url"]
    assert f"'http://{config.SIM_HOST}:' ~ netops_sim_port" in api_url
    start = (REPO / "roles" / "netops" / "templates" / "netops-sim.sh.j2").read_text()
    assert f"sim serve --host {config.SIM_HOST} " in start
    assert f"http://{config.SIM_HOST}:{config.SIM_PORT}" == config.SIM_URL


def test_prometheus_file_names_are_the_metrics_module_s() -> None:
    """nginx serves at /metrics the first of these files that exists: what `metrics export
    --textfile-dir` writes, then what `metrics write` writes."""
    assert _defaults("nginx")["nginx_netops_metrics_files"] == [metrics.TEXTFILE_NAME, metrics.PROM_NAME]


def _deploy_play() -> dict[str, Any]:
    return _yaml(REPO / "playbooks" / "deploy.yml")[0]


def test_web_root_is_one_value_given_to_both_roles() -> None:
    play = _deploy_play()["vars"]
    # the inventory's netops_web_root (or the netops role's default) is what nginx serves
    assert play["nginx_netops_root"] == "{{ netops_web_root }}"
    assert "netops_web_root" not in play   # a play var would silently beat the inventory's
    # the nginx role alone (without deploy.yml) defaults to the same directory
    assert _defaults("netops")["netops_web_root"] == _defaults("nginx")["nginx_netops_root"]


def test_nginx_url_comes_from_the_play_and_the_inventory_still_wins() -> None:
    play = _deploy_play()["vars"]
    assert "nginx_netops_listen[0]" in play["netops_deploy_nginx_url"]
    assert "netops_nginx_url" not in play
    assert "netops_deploy_nginx_url" in _defaults("netops")["netops_nginx_url"]


def _foreign_variables(role: str) -> set[str]:
    """Variables of the other roles (by their prefix) named in this role's Jinja expressions."""
    files = [*(REPO / "roles" / role).rglob("*.yml"), *(REPO / "roles" / role).rglob("*.j2")]
    text = "\n".join(p.read_text() for p in files)
    expressions = " ".join(a + b for a, b in re.findall(r"\{\{(.*?)\}\}|\{%(.*?)%\}", text, flags=re.S))
    names = set(re.findall(r"(?<![\w.])([a-z]+_\w+)", expressions))
    return {n for n in names if any(n.startswith(f"{other}_") for other in ROLES if other != role)}


@pytest.mark.parametrize("role", ROLES)
def test_no_role_reads_another_role_s_variables(role: str) -> None:
    assert _foreign_variables(role) == set()


def _module_documented_default(path: Path, option: str) -> Any:
    tree = ast.parse(path.read_text())
    doc = next(n.value.value for n in tree.body if isinstance(n, ast.Assign)
               and getattr(n.targets[0], "id", None) == "DOCUMENTATION")
    return yaml.safe_load(doc)["options"][option]["default"]


def test_netops_binary_path_is_the_role_s() -> None:
    path = REPO / "library" / "netops_health.py"
    spec = importlib.util.spec_from_file_location("netops_health_module", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    in_code = module.argument_spec()["netops_bin"]["default"]
    role_vars = _yaml(REPO / "roles" / "netops" / "vars" / "main.yml")
    role_bin = jinja2.Template(role_vars["__netops_bin"]).render(netops_venv=_rendered("netops", "netops_venv"))
    assert in_code == _module_documented_default(path, "netops_bin") == role_bin
