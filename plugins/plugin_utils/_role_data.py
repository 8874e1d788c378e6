# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the plan needs from the collection's roles and from the inventory, read on the controller.

The roles' ``defaults/main.yml`` are the one definition of every default: the roles apply them
to their variables, and the plan (``mtls.nginx.plan``) reads the same files for the tiers it
makes, so a default is never written twice. ``meta/argument_specs.yml`` names every variable a
role has, so that a misspelt one is reported with the closest known name.
"""

from __future__ import annotations

import difflib
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
    "nginx": ("plan", "deployed", "tier", "identity", "issue_pkcs11", "stage_pkcs11", "rotate_step", "check_kind"),
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


@functools.lru_cache(maxsize=None)
def _specs():
    """Every variable's option spec from the roles' ``meta/argument_specs.yml``, by full name (the
    first entry point that documents it)."""
    found = {}
    for role in ROLES:
        for entry in (_load(role, "meta", "argument_specs.yml").get("argument_specs") or {}).values():
            for name, spec in ((entry or {}).get("options") or {}).items():
                found.setdefault(name, spec or {})
    return found


_BOOLEANS = {"yes", "no", "true", "false", "on", "off", "y", "n", "1", "0"}
_NAMES = {"str": "a string", "path": "a path (a string)", "int": "a whole number", "float": "a number",
          "bool": "true or false", "list": "a list", "dict": "a dict (a mapping)", "raw": "anything"}


def _described(spec):
    kind = spec.get("type", "str")
    if kind == "list" and spec.get("elements"):
        return "a list of %s" % ("dicts" if spec["elements"] == "dict" else spec["elements"])
    return _NAMES.get(kind, kind)


def _got(value):
    kind = ("a dict" if isinstance(value, Mapping) else "a list" if isinstance(value, list)
            else "true/false" if isinstance(value, bool) else "a number" if isinstance(value, (int, float))
            else "nothing (null)" if value is None else "a string")
    return "%s, %s" % (kind, _show(value))


def _show(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _scalar_problem(kind, value):
    """Why ``value`` is not of the option type ``kind``, or None."""
    if kind == "raw":
        return None
    if kind in ("str", "path"):
        return None if isinstance(value, (str, int, float)) and not isinstance(value, bool) else "not"
    if kind == "int":
        if isinstance(value, bool):
            return "not"
        if isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
            return None
        return "not"
    if kind == "float":
        try:
            float(value)
            return None if not isinstance(value, bool) else "not"
        except (TypeError, ValueError):
            return "not"
    if kind == "bool":
        if isinstance(value, bool) or (isinstance(value, (str, int)) and str(value).strip().lower() in _BOOLEANS):
            return None
        return "not"
    return None


def _check(name, spec, value, problems):
    """The problems of ``value`` against the option ``spec``, each naming ``name`` and what was expected."""
    kind = spec.get("type", "str")
    if value is None:
        return
    if kind == "list":
        if isinstance(value, str):
            # A string given for a list (as -e name=value gives one) is a one-element list.
            value = [value]
        if not isinstance(value, list):
            problems.append("%s: expected %s, got %s" % (name, _described(spec), _got(value)))
            return
        elements = spec.get("elements")
        if elements:
            for index, item in enumerate(value):
                _check("%s[%d]" % (name, index), dict(spec, type=elements, elements=None), item, problems)
        return
    if kind == "dict":
        if not isinstance(value, Mapping):
            problems.append("%s: expected %s, got %s" % (name, _described(spec), _got(value)))
            return
        options = spec.get("options")
        if options:
            for key in sorted(value):
                if key not in options:
                    problems.append("%s: %r is not a key it takes (it takes %s)" % (name, key, ", ".join(sorted(options))))
                else:
                    _check("%s.%s" % (name, key), options[key], value[key], problems)
        return
    if _scalar_problem(kind, value):
        problems.append("%s: expected %s, got %s" % (name, _described(spec), _got(value)))
        return
    choices = spec.get("choices")
    if choices and str(value) not in [str(choice) for choice in choices]:
        problems.append("%s: %s is not one of %s" % (name, _show(value), ", ".join(str(choice) for choice in choices)))


def type_problems(variables):
    """One message per ``mtls_*`` variable of ``variables`` (full names) whose value is not of the
    type its role documents: the variable, what it expects and what it got, readable in one line.
    A string given for a list is taken as a one-element list, never split."""
    specs = _specs()
    problems = []
    for name in sorted(variables):
        if name in specs:
            _check(name, specs[name], plain(variables[name]), problems)
    return problems


@functools.lru_cache(maxsize=None)
def _playbook_specs():
    with open(os.path.join(_ROOT, "playbooks", "vars", "argument_specs.yml"), encoding="utf-8") as handle:
        return {name: (entry or {}).get("options") or {}
                for name, entry in ((yaml.safe_load(handle) or {}).get("argument_specs") or {}).items()}


def playbook_options(playbook):
    """The documented variables of the playbook ``playbook`` (``playbooks/vars/argument_specs.yml``)."""
    return dict(_playbook_specs().get(playbook) or {})


def playbook_problems(playbook, variables):
    """``(problems, unknown)`` for the variables of ``playbook`` among ``variables`` (full names):
    a value of the wrong type, a required one missing is not checked here (the playbook says so
    itself); ``unknown`` the variables with one of its prefixes that it does not have, each with
    the closest name it has."""
    options = playbook_options(playbook)
    if not options:
        return [], []
    prefixes = ["mtls_%s_" % playbook]
    problems = []
    for name in sorted(variables):
        if name in options:
            _check(name, options[name], plain(variables[name]), problems)
    unknown = []
    for name in sorted(variables):
        if name.startswith(tuple(prefixes)) and name not in options:
            close = difflib.get_close_matches(name, sorted(options), n=1, cutoff=0.6)
            unknown.append("%s: not a variable of mtls.nginx.%s%s" % (
                name, playbook, " (did you mean %s?)" % close[0] if close else
                " (it has %s)" % ", ".join(sorted(options))))
    return problems, unknown
