"""A fleet deployed from one declaration (inventory/hosts.yml, mtls_mesh): every declared edge
crosses both tiers with the caller's workload identity, every other pair is refused, a service
certificate on another host is still only that service, forged identity headers never reach a
backend, and mtls.nginx.verify agrees, and disagrees by name when the declaration changes."""

import json
import os
import shlex
import sys

import pytest
import testinfra
import yaml

from mtls_testing import curl, inventory_dir, run_playbook

_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(_ROOT, ".build", "collections"))
from ansible_collections.mtls.nginx.plugins.module_utils import _mesh  # noqa: E402

PKI_DIR = "/etc/nginx/mtls"


def _inventory():
    with open(os.path.join(inventory_dir(), "hosts.yml")) as handle:
        return yaml.safe_load(handle)["all"]


def _groups(inventory):
    groups = {"all": []}
    for name, group in inventory["children"].items():
        groups[name] = list(group.get("hosts") or {})
        groups["all"] += [host for host in groups[name] if host not in groups["all"]]
    return groups


INVENTORY = _inventory()
MESH = INVENTORY["vars"]["mtls_mesh"]
PLAN = _mesh.plan(MESH, _groups(INVENTORY))


@pytest.fixture(scope="module")
def hosts(request):
    inventory = request.config.option.ansible_inventory
    return {host.backend.get_hostname(): host for host in testinfra.get_hosts(["ansible://all"], ansible_inventory=inventory)}


def _declared():
    return [(host, proxy) for host, entry in sorted(PLAN["hosts"].items()) for proxy in entry["proxies"]]


def _undeclared():
    return [(host, pair) for host, entry in sorted(PLAN["hosts"].items()) for pair in entry["undeclared"]]


def _backend_port(service):
    url = next(s["backend_url"] for s in MESH["services"] if s["name"] == service)
    return url.rsplit(":", 1)[1].strip("/")


def _direct(host, config_name, callee, *options, path="/"):
    """A request from ``host`` straight to the upstream tier of ``callee`` (its first host), with
    the client certificate and key of the listener ``config_name``."""
    service = PLAN["services"][callee]
    target = "%s:%d" % (service["server_name"], service["port"])
    directory = "%s/%s" % (PKI_DIR, config_name)
    return curl(host, "https://%s%s" % (target, path),
                "--connect-to", "%s:%s:%d" % (target, service["hosts"][0], service["port"]),
                "--cacert", directory + "/upstream-ca.pem",
                "--cert", directory + "/client-chain.pem", "--key", directory + "/client.key", *options)


def test_the_fleet_is_as_large_as_the_issue_asks():
    services = PLAN["services"]
    assert len(PLAN["hosts"]) >= 10 and len(services) >= 5 and len(PLAN["edges"]) >= 8
    assert any(len(entry["upstreams"]) >= 2 for entry in PLAN["hosts"].values())
    assert any(len(service["hosts"]) >= 2 for service in services.values())
    assert any(len(service["calls"]) >= 2 for service in services.values())


@pytest.mark.parametrize("host,proxy", _declared(), ids=lambda v: v if isinstance(v, str) else "%s-to-%s" % (v["caller"], v["callee"]))
def test_every_declared_edge_answers_with_the_callers_spiffe_id_at_the_callee(hosts, host, proxy):
    answer = curl(hosts[host], "http://127.0.0.1:%d/orders/42" % proxy["port"])
    assert answer.status == 200, answer.body
    seen = answer.json()
    assert seen["backend"] == "127.0.0.1:%s" % _backend_port(proxy["callee"])
    assert seen["headers"]["X-Client-SPIFFE-ID"] == "spiffe://mesh.internal/%s" % proxy["caller"]
    assert seen["headers"]["X-Client-DN"] == "CN=spiffe://mesh.internal/%s" % proxy["caller"]
    assert seen["headers"]["Host"] == "%s.mesh.internal" % proxy["callee"]


def test_every_undeclared_pair_is_refused_with_403_and_the_json_reason(hosts):
    wrong = []
    for host, pair in _undeclared():
        answer = _direct(hosts[host], pair["config_name"], pair["callee"])
        if answer.status != 403 or json.loads(answer.body).get("error") != "forbidden":
            wrong.append("%s -> %s from %s: %s %s" % (pair["caller"], pair["callee"], host, answer.status, answer.body))
    assert len(_undeclared()) >= 30
    assert not wrong, "\n".join(wrong)


def test_a_service_certificate_copied_to_another_host_is_only_that_service(hosts):
    """reports' key and certificate, copied by hand onto a web host: refused where reports has no
    edge (orders, catalog), admitted as reports (not web) where it has one (billing)."""
    source, thief = hosts["f-reports1"], hosts["f-web1"]
    stolen = "/root/stolen"
    thief.run_expect([0], "mkdir -p %s && chmod 700 %s" % (stolen, stolen))
    try:
        for name in ("client-chain.pem", "client.key", "upstream-ca.pem"):
            content = source.file("%s/mtls-mesh-reports-to-billing/%s" % (PKI_DIR, name)).content_string
            thief.run_expect([0], "umask 077 && printf %%s %s > %s/%s" % (shlex.quote(content), stolen, name))
        for callee, expected in (("orders", 403), ("catalog", 403), ("billing", 200)):
            service = PLAN["services"][callee]
            target = "%s:%d" % (service["server_name"], service["port"])
            answer = curl(thief, "https://%s/" % target,
                          "--connect-to", "%s:%s:%d" % (target, service["hosts"][0], service["port"]),
                          "--cacert", stolen + "/upstream-ca.pem",
                          "--cert", stolen + "/client-chain.pem", "--key", stolen + "/client.key")
            assert answer.status == expected, (callee, answer.body)
            if expected == 200:
                assert answer.json()["headers"]["X-Client-SPIFFE-ID"] == "spiffe://mesh.internal/reports"
    finally:
        thief.run_expect([0], "rm -rf %s" % stolen)


FORGED = {
    "X-Client-SPIFFE-ID": "spiffe://mesh.internal/billing",
    "X-Client-DN": "CN=spiffe://mesh.internal/billing",
    "X-Client-Verify": "SUCCESS-forged",
    "X-Client-Serial": "01",
    "X-Client-Fingerprint": "00" * 20,
    "X-Client-Issuer-DN": "CN=forged",
    "X-Client-Cert": "forged",
}


def _assert_real_identity(seen, caller):
    headers = seen["headers"]
    assert headers["X-Client-SPIFFE-ID"] == "spiffe://mesh.internal/%s" % caller
    assert headers["X-Client-DN"] == "CN=spiffe://mesh.internal/%s" % caller
    assert headers["X-Client-Verify"] == "SUCCESS"
    assert headers["X-Client-Issuer-DN"] != "CN=forged" and headers["X-Client-Cert"] != "forged"
    assert headers["X-Client-Fingerprint"] != "00" * 20 and headers["X-Client-Serial"] != "01"


def test_forged_identity_headers_never_reach_a_backend(hosts):
    options = [option for name, value in FORGED.items() for option in ("-H", "%s: %s" % (name, value))]
    # Through the caller's own listener (web -> orders), and straight to the upstream tier.
    answer = curl(hosts["f-web1"], "http://127.0.0.1:9101/", *options)
    assert answer.status == 200
    _assert_real_identity(answer.json(), "web")
    answer = _direct(hosts["f-catalog1"], "mtls-mesh-catalog-to-inventory", "inventory", *options)
    assert answer.status == 200
    _assert_real_identity(answer.json(), "catalog")


def test_service_certificates_carry_the_workload_identity_and_keys_stay_private(hosts):
    host = hosts["f-billing1"]
    text = host.check_output("openssl x509 -noout -subject -ext subjectAltName -in %s/mtls-mesh-billing-to-ledger/client.pem" % PKI_DIR)
    assert "CN = spiffe://mesh.internal/billing" in text
    assert "URI:spiffe://mesh.internal/billing" in text and "DNS:billing.mesh.internal" in text
    text = host.check_output("openssl x509 -noout -ext subjectAltName -in %s/mtls-mesh-ledger/server.pem" % PKI_DIR)
    assert "URI:spiffe://mesh.internal/ledger" in text and "DNS:ledger.mesh.internal" in text
    for key in host.check_output("find %s -name '*.key'" % PKI_DIR).split():
        assert host.file(key).mode == 0o600, key


def test_verify_passes_and_prints_the_matrix():
    rc, output, recap = run_playbook("mtls.nginx.verify")
    assert rc == 0, output
    assert "caller \\\\ callee" in output or "caller \\ callee" in output
    assert all(counters["changed"] == 0 and counters["failed"] == 0 for counters in recap.values()), recap


def test_verify_fails_naming_the_edge_a_caller_still_uses_after_it_left_the_declaration(tmp_path):
    mesh = json.loads(json.dumps(MESH))
    web = next(service for service in mesh["services"] if service["name"] == "web")
    web["calls"] = [call for call in web["calls"] if call["service"] != "catalog"]
    extra = tmp_path / "mesh.json"
    extra.write_text(json.dumps({"mtls_mesh": mesh}))
    rc, output, _recap = run_playbook("mtls.nginx.verify", "-e", "@%s" % extra)
    assert rc != 0, output
    for host in ("f-web1", "f-web2"):
        assert "web -> catalog from %s: expected 403, observed 200" % host in output, output
    assert "web -> orders from" not in output


def test_a_wrong_declaration_is_refused_before_any_host_changes_naming_every_mistake_in_one_run(tmp_path):
    mesh = json.loads(json.dumps(MESH))
    services = {service["name"]: service for service in mesh["services"]}
    services["web"]["calls"].append({"service": "payments", "port": 9103})        # an undeclared callee
    services["orders"]["calls"][1]["port"] = 8443                                 # a port used twice
    services["audit"]["group"] = "svc_nobody"                                      # a group with no host
    services["reports"]["name"] = "Reports_1"                                      # not a DNS label
    services["catalog"]["colour"] = "blue"                                         # an unknown key
    services["inventory"]["backend_url"] = "http://127.0.0.1:8004/stock"          # a backend URL with a path
    extra = tmp_path / "mesh.json"
    extra.write_text(json.dumps({"mtls_mesh": mesh}))
    rc, output, recap = run_playbook("mtls.nginx.site", "-e", "@%s" % extra)
    assert rc != 0
    for message in ("service web calls 'payments', which is not a declared service",
                    "port 8443 is used twice, by the upstream tier of orders and by orders calling inventory",
                    "service audit has no hosts",
                    "'Reports_1' is not a valid DNS label",
                    "service catalog: unknown key(s) colour",
                    "service inventory: backend_url 'http://127.0.0.1:8004/stock' is wrong"):
        assert message in output, output
    assert "Deploy the upstream tiers of this host" not in output
    assert all(counters["changed"] == 0 for counters in recap.values()), recap
