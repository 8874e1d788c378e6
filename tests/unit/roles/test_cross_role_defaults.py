"""Where a task reads another host's role variable through hostvars, it must fall back to that
role's own default: hostvars hold the inventory's values, never a role's defaults. Every
``hostvars[item].<variable> | default(<fallback>)`` in roles/ and playbooks/ is checked against
the defaults/main.yml that defines the variable, so a changed default cannot leave a stale copy
behind (the proxy's cross-tier checks, the upstream's rotation gate)."""

import ast
import glob
import os
import re

import pytest
import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
READ = re.compile(r"hostvars\[item\]\.(mtls_\w+)\s*\|\s*default\(")


def _defaults():
    defaults = {}
    for path in glob.glob(os.path.join(ROOT, "roles", "*", "defaults", "main.yml")):
        with open(path, encoding="utf-8") as handle:
            defaults.update(yaml.safe_load(handle) or {})
    return defaults


DEFAULTS = _defaults()


def _argument(text, start):
    """The text of the call's argument list that opens just before ``start``, and its end."""
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return text[start:index], index + 1
    raise AssertionError("unbalanced parentheses after %r" % text[start - 40:start])


def _reads(text):
    """(variable, fallback, start, end) for each hostvars read with a fallback, outermost first."""
    for match in READ.finditer(text):
        fallback, end = _argument(text, match.end())
        yield match.group(1), fallback, match.start(), end


def _normalise(expression):
    """The fallback as the role's default would read on that host: ``item`` is its
    inventory_hostname, and an inner ``hostvars[item].X | default(X's default)`` is just X.
    Falling back to X itself (this play's value of X: its role default, or the group value most
    inventories set for every host) also counts as X's default."""
    expression = " ".join(expression.split())
    if expression in DEFAULTS:
        return _expected(expression)
    while True:
        inner = list(_reads(expression))
        if not inner:
            break
        variable, fallback, start, end = inner[-1]
        assert _normalise(fallback) == _expected(variable), "%s falls back to %s" % (variable, fallback)
        expression = expression[:start] + variable + expression[end:]
    assert not re.search(r"\binventory_hostname\b", expression), (
        "%s: inventory_hostname here is the reading host's name, not that of the host read" % expression)
    expression = re.sub(r"\bitem\b", "inventory_hostname", expression)
    if expression in ("omit, true", "''", '""'):
        return ""
    literal = re.fullmatch(r"'([^']*)'", expression)
    if literal:
        return literal.group(1)
    try:
        # A list or number literal reads as the YAML default of the same value.
        value = ast.literal_eval(expression)
    except (ValueError, SyntaxError):
        return "{{ %s }}" % expression
    return " ".join(str(value).split())


def _expected(variable):
    assert variable in DEFAULTS, "%s is read through hostvars but no role defines a default for it" % variable
    value = DEFAULTS[variable]
    return " ".join(str(value).split())


def _files():
    for pattern in ("roles/*/tasks/*.yml", "roles/*/vars/*.yml", "playbooks/*.yml", "playbooks/tasks/*.yml"):
        for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            if READ.search(text):
                yield os.path.relpath(path, ROOT), text


FILES = dict(_files())


def test_some_hostvars_fallbacks_are_checked():
    assert "roles/proxy/tasks/cross_tier.yml" in FILES and "roles/upstream/tasks/rotate.yml" in FILES


@pytest.mark.parametrize("path", sorted(FILES))
def test_hostvars_fallbacks_are_the_roles_defaults(path):
    for variable, fallback, _start, _end in _reads(FILES[path]):
        if any(start < _start < end for _v, _f, start, end in _reads(FILES[path])):
            continue  # checked inside its outer read
        assert _normalise(fallback) == _expected(variable), (
            "%s: hostvars[item].%s falls back to %s, but its role's default is %r"
            % (path, variable, fallback, DEFAULTS[variable]))
