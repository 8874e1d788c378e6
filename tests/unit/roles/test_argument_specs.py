"""Every role variable is documented: each default has an entry in meta/argument_specs.yml with
a description, and each documented option of an entry point has a default (or is required)."""

import os

import pytest
import yaml

ROLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles")


def _load(role, *parts):
    path = os.path.join(ROLES, role, *parts)
    if parts[0] == "defaults" and not os.path.exists(path):
        return {}  # a role without defaults (roles/tier_checks)
    with open(path, encoding="utf-8") as handle:
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


def test_the_platform_check_falls_back_to_nginx_commons_default():
    """roles/tier_checks runs before nginx_common is loaded, so it repeats nginx_common's default list
    of platforms as its fallback: the two must agree."""
    import os
    import re

    import yaml

    root = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles")
    with open(os.path.join(root, "nginx_common", "defaults", "main.yml")) as handle:
        default = yaml.safe_load(handle)["mtls_nginx_platforms"]
    with open(os.path.join(root, "tier_checks", "tasks", "platform.yml")) as handle:
        fallback = re.search(r"mtls_nginx_platforms \| default\((\[[^\]]*\])\)", handle.read()).group(1)
    assert yaml.safe_load(fallback) == default


def test_the_platform_check_reads_the_packages_and_service_of_nginx_commons_defaults():
    """roles/tier_checks reads, with the distribution, the state of the packages and the service that
    nginx_common's set-up installs and starts, by nginx_common's defaults: the two must agree, or the
    set-up would read them again (never wrongly, only once more)."""
    import os
    import re

    import yaml

    root = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles")
    with open(os.path.join(root, "nginx_common", "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    with open(os.path.join(root, "tier_checks", "tasks", "platform.yml")) as handle:
        text = handle.read()
    for name in ("mtls_nginx_package", "mtls_nginx_python_cryptography_package", "mtls_nginx_service"):
        fallback = re.search(name + r" \| default\('([^']*)'\)", text).group(1)
        assert fallback == defaults[name], name
    manage = re.search(r"mtls_nginx_manage_package \| default\((true|false)\)", text).group(1)
    assert manage == str(defaults["mtls_nginx_manage_package"]).lower()
