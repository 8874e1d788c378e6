"""The tiers' nginx templates, rendered from plan records: every nginx variable they define has a
name that nginx's default variables_hash_bucket_size (64) holds, whatever the config name (up to
the 64 characters the plan allows), so no tier's config fails `nginx -t` for its name's length."""

import os
import re

import jinja2
import pytest
from ansible.plugins.filter import core, urlsplit

from ansible_collections.mtls.nginx.plugins.filter import nginx_exact_regex
from ansible_collections.mtls.nginx.plugins.module_utils import _plan, _tier
from ansible_collections.mtls.nginx.plugins.plugin_utils import _role_data

ROLES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles"))
LONG = "orders-" + "x" * 50 + "-mtls"  # 62 characters
DEFINED = re.compile(r"^\s*(?:map\s+(?:\"[^\"]*\"|\S+)|geo\s+(?:\S+\s+)?|set)\s*\$(\w+)", re.M)


def _environment(kind):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROLES, kind, "templates")),
                             extensions=["jinja2.ext.do"], trim_blocks=True)  # as Ansible's template module
    env.filters.update(core.FilterModule().filters())
    env.filters.update(urlsplit.FilterModule().filters())
    env.filters["mtls.nginx.nginx_exact_regex"] = nginx_exact_regex.FilterModule().filters()["nginx_exact_regex"]
    return env


def _records(config_name):
    hosts = {
        "orders-1": {
            "mtls_upstream_config_name": config_name,
            "mtls_upstream_server_name": "orders.internal",
            "mtls_upstream_locations": [
                {"path": "/", "allowed_subjects": []},
                {"path": "/admin/", "allowed_subjects": ["CN=billing-1"], "allowed_fingerprints": ["ab" * 20]},
                {"path": "/billing/", "allowed_subjects": ["CN=billing-1"]}],
            "mtls_upstream_forwarded_cert": {"request_header": "X-SSL-Client-Cert", "trusted_sources": ["10.0.0.0/8"],
                                             "trusted_subjects": ["CN=billing-1"]},
        },
        "billing-1": {"mtls_proxy_config_name": config_name, "mtls_proxy_upstream_name": "orders.internal"},
    }
    groups = {"mtls_upstreams": ["orders-1"], "mtls_proxies": ["billing-1"], "all": list(hosts)}
    planned = _plan.plan({"groups": groups, "hosts": hosts}, _role_data.defaults(), known=_role_data.known())
    assert planned["problems"] == []
    return planned["hosts"]["orders-1"]["upstream"][0], planned["hosts"]["billing-1"]["proxy"][0]


def _render(record):
    identity = {"certificate": record["files"]["chain"], "key": record["files"]["key"], "password_file": "",
                "preamble": ""}
    template = _environment(record["kind"]).get_template("mtls-%s.conf.j2" % record["kind"])
    return template.render(mtls_nginx_tier=record, mtls_nginx_identity=identity, ansible_managed="managed")


@pytest.mark.parametrize("config_name", ["mtls-upstream", "a", LONG, LONG.replace("x", "y")])
def test_every_variable_a_tier_defines_fits_nginxs_variables_hash(config_name):
    for record in _records(config_name):
        defined = DEFINED.findall(_render(record))
        assert len(defined) >= (8 if record["kind"] == "upstream" else 2), (record["kind"], defined)
        too_long = [name for name in defined if len(name) > _tier.VARIABLE_NAME_MAX]
        assert too_long == [], (record["kind"], config_name, too_long)


def test_two_long_config_names_get_different_variables():
    first = {name for record in _records(LONG) for name in DEFINED.findall(_render(record))}
    second = {name for record in _records(LONG.replace("x", "y")) for name in DEFINED.findall(_render(record))}
    assert first and not first & second


def test_an_upstream_tier_looks_its_known_callers_up_and_falls_back_to_nginxs_own_values():
    from ansible_collections.mtls.nginx.plugins.module_utils import _identity

    upstream, _proxy = _records("mtls-upstream")
    text = _render(upstream)
    vid = upstream["vid"]
    assert "include %s;" % upstream["files"]["known_callers"] in text
    # Every identity header and every allow-list reads the looked-up values.
    assert "proxy_set_header X-Client-Cert $__mtls_u_cert_%s;" % vid in text
    assert "proxy_set_header X-Client-DN $__mtls_u_s_dn_%s;" % vid in text
    assert 'map "$__mtls_u_s_dn_%s" $__mtls_u_dn_ok_%s_2' % (vid, vid) in text
    # The access log shows "-" without a client certificate, as nginx logs its own variables.
    assert 'dn="$__mtls_u_log_dn_%s"' % vid in text and "serial=$__mtls_u_log_sn_%s " % vid in text
    assert 'map $__mtls_u_s_dn_%s $__mtls_u_log_dn_%s {\n    ""      "-";' % (vid, vid) in text
    config = [line.strip() for line in text.splitlines() if not line.strip().startswith("#")]
    assert not [line for line in config if "$ssl_client_s_dn" in line or "$ssl_client_escaped_cert" in line]
    # The included maps: nginx's own variable is the default of each.
    known = [{"fingerprint": "ab" * 20, "certificate": "-----BEGIN%20CERTIFICATE-----%0AMIIB%0A",
              "subject_dn": "CN=billing-1", "issuer_dn": "CN=mtls.nginx CA", "serial": "0A1B"}]
    maps = _identity.nginx_maps(upstream, known)
    assert ("map $ssl_client_fingerprint $__mtls_u_cert_%s {\n    default $ssl_client_escaped_cert;\n"
            '    %s "%s";\n}' % (vid, "ab" * 20, known[0]["certificate"])) in maps
    assert ('map $ssl_client_fingerprint $__mtls_u_s_dn_%s {\n    default $ssl_client_s_dn;\n    %s "CN=billing-1";\n}'
            % (vid, "ab" * 20)) in maps
    assert all(len(name) <= _tier.VARIABLE_NAME_MAX for name in re.findall(r"\$(__mtls_u_\w+)", maps))
