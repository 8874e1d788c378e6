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


def _through(host, proxy, *options, user=None):
    """A request through the listener ``proxy`` of the plan on ``host`` (a loopback port, or the
    unix socket of a service with a local_group), as root or as ``user`` (``nobody`` in a group)."""
    if proxy.get("socket"):
        options = ("--unix-socket", proxy["socket"]) + options
        url = "http://localhost/orders/42"
    else:
        url = "http://127.0.0.1:%d/orders/42" % proxy["port"]
    if user is None:
        return curl(host, url, *options)
    command = "setpriv --reuid=nobody --regid=%s --clear-groups -- curl -sS --max-time 10 -o /dev/null -w '%%{http_code}' %s %s" % (
        shlex.quote(user), " ".join(shlex.quote(option) for option in options), shlex.quote(url))
    return host.run(command)


@pytest.mark.parametrize("host,proxy", _declared(), ids=lambda v: v if isinstance(v, str) else "%s-to-%s" % (v["caller"], v["callee"]))
def test_every_declared_edge_answers_with_the_callers_spiffe_id_at_the_callee(hosts, host, proxy):
    answer = _through(hosts[host], proxy)
    assert answer.status == 200, answer.body
    seen = answer.json()
    assert seen["backend"] == "127.0.0.1:%s" % _backend_port(proxy["callee"])
    assert seen["headers"]["X-Client-SPIFFE-ID"] == "spiffe://mesh.internal/%s" % proxy["caller"]
    assert seen["headers"]["X-Client-DN"] == "CN=spiffe://mesh.internal/%s" % proxy["caller"]
    assert seen["headers"]["Host"] == "%s.mesh.internal" % proxy["callee"]


def _listeners_kept_to_a_group():
    return [(host, proxy) for host, proxy in _declared() if proxy.get("local_group")]


def test_on_a_shared_host_each_listener_refuses_the_other_services_local_user(hosts):
    """f-billing1 runs billing and ledger, each with a local group: billing's listener (to ledger)
    is refused to a process in ledger's group and in none, and answers one in billing's, as
    billing; and the other way round for ledger's listener (to audit)."""
    shared = [(host, proxy) for host, proxy in _listeners_kept_to_a_group() if host == "f-billing1"]
    assert sorted(proxy["caller"] for _host, proxy in shared) == ["billing", "ledger"]
    groups = {proxy["caller"]: proxy["local_group"] for _host, proxy in shared}
    host = hosts["f-billing1"]
    for _host, proxy in shared:
        assert host.file(os.path.dirname(proxy["socket"])).mode == 0o750
        for other in [group for service, group in groups.items() if service != proxy["caller"]] + ["nogroup"]:
            refused = _through(host, proxy, user=other)
            assert refused.rc == 7 and refused.stdout == "000", (proxy["config_name"], other, refused.stderr)
            # Refused for its permissions, not for want of a socket.
            connect = host.run("setpriv --reuid=nobody --regid=%s --clear-groups -- python3 -c %s %s" % (
                shlex.quote(other), shlex.quote("import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"),
                shlex.quote(proxy["socket"])))
            assert connect.rc != 0 and "PermissionError" in connect.stderr, (proxy["config_name"], other, connect.stderr)
        own = _through(host, proxy, user=proxy["local_group"])
        assert own.rc == 0 and own.stdout == "200", (proxy["config_name"], own.stderr)


def test_nginx_sizes_the_hash_of_every_tiers_headers_without_a_warning(hosts):
    """Up to four tiers on a host, each location with some six hundred header names set or
    cleared: nginx sizes their hash without the warning it would repeat at every config test and
    reload. (A host with four tiers still gets nginx's http-level variables_hash warning: that
    setting belongs to nginx.conf, not to a tier's drop-in.)"""
    warned = {}
    for name, host in sorted(hosts.items()):
        result = host.run("nginx -t")
        assert result.rc == 0, "%s: %s" % (name, result.stderr)
        if "proxy_headers_hash" in result.stderr:
            warned[name] = result.stderr
    assert warned == {}


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


def test_verify_passes_and_prints_the_matrix(tmp_path):
    rc, output, recap = run_playbook("mtls.nginx.verify", "-e", "mtls_verify_graph=%s" % (tmp_path / "fleet"))
    assert rc == 0, output
    assert "caller \\\\ callee" in output or "caller \\ callee" in output
    # Three listeners kept to a group (billing's on f-billing1, ledger's on f-billing1 and
    # f-ledger1): its own group, nogroup, and on f-billing1 the other service's group.
    assert "Listeners kept to their service's local group: 8 local users tried, 8 as expected" in output
    # The same as a picture: every declared edge green, nothing red.
    dot = (tmp_path / "fleet.dot").read_text()
    for edge in PLAN["edges"]:
        assert '"%s" -> "%s" [color=green4, penwidth=2];' % (edge["caller"], edge["callee"]) in dot
    assert "color=red" not in dot
    svg = (tmp_path / "fleet.svg").read_text()
    assert svg.lstrip().startswith(("<?xml", "<svg")) and "web" in svg
    assert all(counters["changed"] == 0 and counters["failed"] == 0 for counters in recap.values()), recap


def test_verify_fails_naming_the_edge_a_caller_still_uses_after_it_left_the_declaration(tmp_path):
    mesh = json.loads(json.dumps(MESH))
    web = next(service for service in mesh["services"] if service["name"] == "web")
    web["calls"] = [call for call in web["calls"] if call["service"] != "catalog"]
    extra = tmp_path / "mesh.json"
    extra.write_text(json.dumps({"mtls_mesh": mesh}))
    rc, output, _recap = run_playbook("mtls.nginx.verify", "-e", "@%s" % extra, "-e", "mtls_verify_graph=%s" % (tmp_path / "left"))
    assert rc != 0, output
    for host in ("f-web1", "f-web2"):
        assert "web -> catalog from %s: expected 403, observed 200" % host in output, output
    assert "web -> orders from" not in output
    # The graph shows the pair that is no longer declared but still answers, red and dashed.
    dot = (tmp_path / "left.dot").read_text()
    assert '"web" -> "catalog" [color=red, style=dashed, label="not declared: 200 from f-web1; 200 from f-web2"];' in dot


def test_verify_fails_naming_a_listener_that_another_local_user_can_open(hosts):
    """The directory of billing's sockets opened to all by hand: verify names the listener, the
    host and the group that got in."""
    host = hosts["f-billing1"]
    host.run_expect([0], "chmod 0755 /run/mtls-nginx/billing")
    try:
        rc, output, _recap = run_playbook("mtls.nginx.verify")
    finally:
        host.run_expect([0], "chmod 0750 /run/mtls-nginx/billing")
    assert rc != 0, output
    assert ("billing -> ledger on f-billing1: a local user of the group svc-ledger (service ledger) was connected by "
            "/run/mtls-nginx/billing/ledger.sock, expected refused") in output, output
    assert "ledger -> audit on f-billing1" not in output


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


def test_the_plan_refuses_clashes_between_the_models_and_a_workload_identity_outside_the_declaration(tmp_path):
    """The fleet's hosts also in the single-service groups: a call port that is the single proxy's
    8080, a backend_url that is a call port of the same host, and a spiffe:// SAN on the single
    proxy's certificate are each refused, by host and name, and nothing changes."""
    mesh = json.loads(json.dumps(MESH))
    services = {service["name"]: service for service in mesh["services"]}
    services["web"]["calls"][0]["port"] = 8080                       # the single proxy's port on f-web1
    services["orders"]["backend_url"] = "http://127.0.0.1:9201"       # orders' own listener to billing
    extra = tmp_path / "mesh.json"
    extra.write_text(json.dumps({"mtls_mesh": mesh}))
    single = tmp_path / "single"
    single.mkdir()
    (single / "hosts.yml").write_text(json.dumps({"all": {"children": {
        "mtls_upstreams": {"hosts": {"f-catalog1": {"mtls_upstream_listen": [9443]}}},
        "mtls_proxies": {"hosts": {"f-web1": {
            "mtls_proxy_upstream_servers": ["f-catalog1:9443"],
            "mtls_proxy_subject_alt_names": ["DNS:f-web1", "URI:spiffe://mesh.internal/billing"]}}}}}}))
    rc, output, recap = run_playbook("mtls.nginx.site", "-i", str(single), "-e", "@%s" % extra)
    assert rc != 0, output
    for message in ("f-web1: port 8080 is used twice, by the proxy tier mtls-proxy on f-web1 and by the proxy tier "
                    "mtls-mesh-web-to-orders on f-web1",
                    "f-orders1: the backend_url http://127.0.0.1:9201 of the upstream tier mtls-mesh-orders on "
                    "f-orders1 is the listener of the proxy tier mtls-mesh-orders-to-billing on f-orders1",
                    "f-web1: mtls_proxy_subject_alt_names[1]: 'URI:spiffe://mesh.internal/billing' is a workload "
                    "identity"):
        assert message in output, output
    assert all(counters["changed"] == 0 for counters in recap.values()), recap
