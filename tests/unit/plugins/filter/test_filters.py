"""The filter plugins: config_value_problems as roles call it, and nginx_exact_regex, whose keys
must match exactly their string, case-sensitively, byte by byte as nginx's PCRE does."""

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.nginx.plugins.filter import config_value_problems, nginx_exact_regex

exact = nginx_exact_regex.FilterModule().filters()["nginx_exact_regex"]
value_problems = config_value_problems.FilterModule().filters()["config_value_problems"]


def python_pattern(key):
    """The nginx key as a Python bytes regex: PCRE's \\x{HH} is \\xHH, its \\z is Python's \\Z."""
    assert key.startswith("~^") and key.endswith("\\z")
    body = re.sub(r"\\x\{([0-9A-F]{2})\}", r"\\x\1", key[2:-2])
    return re.compile(("^" + body + "\\Z").encode("ascii"))


SUBJECTS = [
    "CN=ops-console,O=Example Corp",
    "CN=a\\,b+OU=x",
    "CN=\\C3\\A9t\\C3\\A9",
    "CN=Zürich",
    'CN=q"uote;{brace}$var ~tilde\\',
    "emailAddress=ops@example.org,CN=a.b",
]


@pytest.mark.parametrize("subject", SUBJECTS)
def test_exact_regex_matches_the_string_and_nothing_else(subject):
    pattern = python_pattern(exact(subject))
    raw = subject.encode("utf-8")
    assert pattern.match(raw)
    for other in {subject.swapcase(), subject.upper(), subject.lower()} - {subject}:
        assert not pattern.match(other.encode("utf-8")), other
    for other in (raw + b"\n", raw + b"x", b"x" + raw, raw[:-1]):
        assert not pattern.match(other), other


@pytest.mark.parametrize("subject", SUBJECTS)
def test_exact_regex_is_safe_inside_double_quotes(subject):
    key = exact(subject)
    assert re.match(r"^~\^[A-Za-z0-9]*(?:\\x\{[0-9A-F]{2}\}[A-Za-z0-9]*)*\\z$", key), key
    # Nothing nginx's quoted-string parser would end, unescape or expand.
    assert not set(key) & set("\"';$ \t\r\n")
    assert "\\\\" not in key and "\\\"" not in key


def test_exact_regex_of_a_dn():
    assert exact("CN=ops-console,O=Ex") == "~^CN\\x{3D}ops\\x{2D}console\\x{2C}O\\x{3D}Ex\\z"
    assert exact("é") == "~^\\x{C3}\\x{A9}\\z"


def test_exact_regex_wants_a_string():
    with pytest.raises(AnsibleFilterError, match="expects a string"):
        exact(["CN=x"])


def test_config_value_problems_filter():
    assert value_problems([["mtls_upstream_backend_url", "backend_url", "http://127.0.0.1:8000"]]) == []
    assert value_problems([["mtls_upstream_listen", "listen", ["8443", "8443 ssl"]]]) == [
        "mtls_upstream_listen[1]: '8443 ssl' is not an nginx listen address such as 8443, 127.0.0.1:8443, "
        "[::1]:8443, *:8443 or unix:/path (whitespace is not allowed: listen parameters such as ssl are the "
        "role's to add)"]


@pytest.mark.parametrize("checks,message", [
    ("not a list", "expects a list"),
    ([["x", "no_such_kind", "v"]], "unknown kind 'no_such_kind'"),
    ([["x", "hostname"]], "each check is"),
])
def test_config_value_problems_mistakes_in_the_checks_are_filter_errors(checks, message):
    with pytest.raises(AnsibleFilterError, match=message):
        value_problems(checks)


def test_default_subject_alt_names_is_the_upstream_roles_default():
    from ansible_collections.mtls.nginx.plugins.filter import default_subject_alt_names as module

    sans = module.FilterModule().filters()["default_subject_alt_names"]
    assert sans("orders.internal", "orders-1") == ["DNS:orders.internal", "DNS:orders-1"]
    assert sans("orders-1", "orders-1") == ["DNS:orders-1"]
    assert sans("", "h") == ["DNS:", "DNS:h"]  # the preflight refuses it, naming the variable
    for bad in ((None, "h"), ("s", None), (["s"], "h")):
        with pytest.raises(AnsibleFilterError, match="default_subject_alt_names"):
            sans(*bad)


# --- nginx_seconds -------------------------------------------------------------------------------

from ansible_collections.mtls.nginx.plugins.filter import nginx_seconds as nginx_seconds_module  # noqa: E402

seconds = nginx_seconds_module.FilterModule().filters()["nginx_seconds"]


@pytest.mark.parametrize("value, expected", [("75s", 75), ("75", 75), (75, 75), ("500ms", 0.5), ("2m", 120),
                                             ("1h", 3600), ("1d", 86400), ("1w", 604800), ("1M", 2592000),
                                             ("1y", 31536000)])
def test_nginx_seconds_counts_as_nginx_does(value, expected):
    assert seconds(value) == expected


@pytest.mark.parametrize("value", ["", "1m30s", "75 s", "-1s", "1.5s", "10sec", True, None, "s"])
def test_nginx_seconds_refuses_what_is_not_an_nginx_time(value):
    with pytest.raises(AnsibleFilterError, match="is not an nginx time"):
        seconds(value)
