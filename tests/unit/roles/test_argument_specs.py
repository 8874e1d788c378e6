"""Every role variable is documented: each default has an entry in meta/argument_specs.yml with
a description, and each documented option of an entry point has a default (or is required)."""

import os

import pytest
import yaml

ROLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles")


def _load(role, *parts):
    with open(os.path.join(ROLES, role, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def _described(options):
    for name, spec in options.items():
        description = spec.get("description")
        assert description, "%s has no description" % name
        for sub_name, sub_spec in (spec.get("options") or {}).items():
            assert sub_spec.get("description"), "%s.%s has no description" % (name, sub_name)


@pytest.mark.parametrize("role", sorted(os.listdir(ROLES)))
def test_every_default_is_documented(role):
    defaults = _load(role, "defaults", "main.yml")
    specs = _load(role, "meta", "argument_specs.yml")["argument_specs"]
    documented = {}
    for entry in specs.values():
        _described(entry.get("options") or {})
        documented.update(entry.get("options") or {})
    missing = sorted(set(defaults) - set(documented))
    assert not missing, "%s: defaults without an argument_specs entry: %s" % (role, missing)


@pytest.mark.parametrize("role", sorted(os.listdir(ROLES)))
def test_every_documented_option_has_a_default_or_is_required(role):
    defaults = _load(role, "defaults", "main.yml")
    specs = _load(role, "meta", "argument_specs.yml")["argument_specs"]
    for entry_name, entry in specs.items():
        for name, spec in (entry.get("options") or {}).items():
            assert name in defaults or spec.get("required"), "%s %s: %s has no default" % (role, entry_name, name)
