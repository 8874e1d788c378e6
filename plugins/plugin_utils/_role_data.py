# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the plan needs from the collection's roles and from the inventory, read on the controller.

The roles' ``defaults/main.yml`` are the one definition of every default: the roles apply them
to their variables, and the plan (``mtls.nginx.plan``) reads the same files for the tiers it
makes, so a default is never written twice. ``meta/argument_specs.yml`` names every variable a
role has, so that a misspelt one is reported with the closest known name.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping

import yaml

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Each role, and the prefix of its variables (mtls_<prefix>_*).
ROLES = {"upstream": "upstream", "proxy": "proxy", "nginx_common": "nginx", "pki": "pki"}
# Names with a role's prefix that are not settings: the results the roles and playbooks publish as
# facts (the plan, the deployed tiers, the pki role's results) and what the roles hand their own
# task files. They are known, so never reported as misspelt.
_RESULTS = {
    "nginx": ("plan", "deployed", "tier", "identity", "issue_pkcs11", "stage_pkcs11", "rotate_step"),
    "pki": ("host_result", "staged"),
}


def _load(role, *parts):
    with open(os.path.join(_ROOT, "roles", role, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def _suffixes(names, prefix):
    start = "mtls_%s_" % prefix
    return {name[len(start):]: value for name, value in names.items() if name.startswith(start)}


@functools.lru_cache(maxsize=None)
def _defaults():
    return {prefix: _suffixes(_load(role, "defaults", "main.yml"), prefix) for role, prefix in ROLES.items()}


def defaults():
    """Every role's defaults, by variable prefix and suffix (``{"upstream": {"listen": ["8443"], ...}}``)."""
    return {prefix: dict(values) for prefix, values in _defaults().items()}


@functools.lru_cache(maxsize=None)
def _known():
    known = {}
    for role, prefix in ROLES.items():
        names = set(_suffixes(_load(role, "defaults", "main.yml"), prefix))
        for entry in (_load(role, "meta", "argument_specs.yml").get("argument_specs") or {}).values():
            names.update(_suffixes(dict.fromkeys((entry or {}).get("options") or {}), prefix))
        known[prefix] = frozenset(names | set(_RESULTS.get(prefix, ())))
    return known


def known():
    """Every variable each role has (defaults and documented options), by prefix, as suffixes."""
    return dict(_known())


def plain(value):
    """``value`` as plain Python data (Ansible's lazy and unsafe containers and strings as dict,
    list and str), so that the plan is ordinary data in facts and tests."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, Mapping):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(item) for item in value]
    return str(value)


def inventory(groups, hostvars, hosts=None):
    """``{"groups", "hosts", "problems"}``: the inventory's groups, and for each host (or each
    of ``hosts``) its ``mtls_*`` variables as templated for that host. A variable that cannot be
    templated is a problem naming the host and the variable."""
    groups = plain(groups)
    problems = []
    found = {}
    for host in (hosts if hosts is not None else groups.get("all") or []):
        try:
            variables = hostvars[host]
        except Exception:  # pylint: disable=broad-except
            continue
        found[host] = {}
        for name in list(variables.keys()):
            name = str(name)
            if not name.startswith("mtls_"):
                continue
            try:
                found[host][name] = plain(variables[name])
            except Exception as exc:  # pylint: disable=broad-except
                problems.append("%s: %s: %s" % (host, name, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
    return {"groups": groups, "hosts": found, "problems": problems}
