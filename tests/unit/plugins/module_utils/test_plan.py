"""The plan: one model from the whole inventory. Single-service groups and the mesh declaration
become tier records with every default applied (the roles' own defaults files), checked as a
whole with every problem at once; mesh tiers take nothing from the single service's variables."""

import copy

import pytest

from ansible_collections.mtls.nginx.plugins.module_utils import _plan, _tier
from ansible_collections.mtls.nginx.plugins.plugin_utils import _role_data

DEFAULTS = _role_data.defaults()
KNOWN = _role_data.known()

MESH = {
    "trust_domain": "mesh.internal",
    "services": [
        {"name": "orders", "group": "svc_orders", "backend_url": "http://127.0.0.1:8000", "port": 8443,
         "calls": [{"service": "billing", "port": 9001}]},
        {"name": "billing", "group": "svc_billing", "backend_url": "http://127.0.0.1:8001", "port": 8444},
    ],
}


def inventory(hosts, groups, all_vars=None):
    """``hosts``: {host: vars}; ``groups``: {group: [hosts]}; ``all_vars`` given to every host."""
    found = {}
    for host, variables in hosts.items():
        found[host] = dict(all_vars or {})
        found[host].update(variables or {})
    groups = dict(groups, all=list(hosts))
    return {"groups": groups, "hosts": found}


def plan(hosts, groups, all_vars=None, **options):
    return _plan.plan(inventory(hosts, groups, all_vars), DEFAULTS, known=KNOWN, **options)


# Both upstream hosts serve one name, the one the proxy asks for (SNI and Host).
SERVICE = {"mtls_upstream_server_name": "orders.internal", "mtls_proxy_upstream_name": "orders.internal"}
SINGLE = ({"orders-1": dict(SERVICE), "orders-2": dict(SERVICE), "billing-1": dict(SERVICE)},
          {"mtls_upstreams": ["orders-1", "orders-2"], "mtls_proxies": ["billing-1"]})


def test_a_single_service_inventory_is_a_one_service_plan_with_the_roles_defaults():
    result = plan(*SINGLE)
    assert result["problems"] == []
    up = result["hosts"]["orders-1"]["upstream"][0]
    assert (up["kind"], up["name"], up["model"], up["listen"]) == ("upstream", "mtls-upstream", "single", ["8443"])
    assert up["files"]["key"] == "/etc/nginx/mtls/mtls-upstream/server.key"
    assert up["files"]["ca"] == "/etc/nginx/mtls/mtls-upstream/client-ca.pem"
    assert up["identity"]["subject_alt_names"] == ["DNS:orders.internal", "DNS:orders-1"]
    assert up["backend"]["keepalive"] == 128 and up["keepalive"]["timeout"] == "75s"
    assert up["tls"]["protocols"] == ["TLSv1.2", "TLSv1.3"] and up["tls"]["verify_depth"] == 2
    proxy = result["hosts"]["billing-1"]["proxy"][0]
    assert proxy["upstream"] == {"group": "mtls_upstreams", "name": "orders.internal",
                                 "servers": ["orders-1:8443", "orders-2:8443"]}
    assert proxy["files"]["chain"] == "/etc/nginx/mtls/mtls-proxy/client-chain.pem"
    assert [peer["host"] for peer in proxy["peers"]] == ["orders-1", "orders-2"]
    # The upstream tiers know who calls them: the rotation gate probes from there.
    assert up["rotate"]["probes"][0]["host"] == "billing-1"
    assert up["rotate"]["probes"][0]["certificate"] == "/etc/nginx/mtls/mtls-proxy/client-chain.pem"
    assert result["slots"] == {"upstream": 1, "proxy": 1}
    assert result["hosts"]["orders-1"]["tiers"] == ["mtls-upstream"]


def test_inventory_values_override_the_defaults_and_derived_ones_follow():
    hosts, groups = copy.deepcopy(SINGLE)
    hosts["orders-1"].update({"mtls_upstream_expected_concurrency": 64, "mtls_nginx_pki_dir": "/srv/mtls/"})
    result = plan(hosts, groups)
    up = result["hosts"]["orders-1"]["upstream"][0]
    assert up["identity"]["subject_alt_names"] == ["DNS:orders.internal", "DNS:orders-1"]
    assert up["server_names"] == ["orders.internal", "orders-1"]
    assert up["backend"]["keepalive"] == 64
    assert up["dir"] == "/srv/mtls/mtls-upstream"


def test_the_mesh_declaration_becomes_tiers_that_take_nothing_from_single_service_variables():
    hosts = {"app-1": {}, "app-2": {}}
    groups = {"svc_orders": ["app-1"], "svc_billing": ["app-2"]}
    # A client CA of the user's own, and other single-service settings, in group_vars/all.
    single = {"mtls_upstream_client_ca_file": "/secure/clients-ca.pem", "mtls_upstream_keepalive_timeout": "5s",
              "mtls_proxy_common_name": "someone", "mtls_mesh": MESH}
    result = plan(hosts, groups, all_vars=single)
    assert result["problems"] == []
    billing = result["hosts"]["app-2"]["upstream"][0]
    assert billing["name"] == "mtls-mesh-billing" and billing["model"] == "mesh"
    assert billing["trust"]["ca_file"] == "" and billing["trust"]["managed_ca"]
    assert billing["keepalive"]["timeout"] == "75s"
    assert billing["locations"] == [{"path": "/", "allowed_subjects": ["CN=spiffe://mesh.internal/orders"],
                                     "allowed_fingerprints": [], "listed_only": True}]
    listener = result["hosts"]["app-1"]["proxy"][0]
    assert listener["identity"]["common_name"] == "spiffe://mesh.internal/orders"
    assert listener["listen"] == ["127.0.0.1:9001"] and listener["upstream"]["servers"] == ["app-2:8444"]
    assert listener["peers"][0]["name"] == "mtls-mesh-billing"
    assert billing["rotate"]["probes"][0]["name"] == "mtls-mesh-orders-to-billing"


def test_mesh_tiers_are_tuned_by_the_declaration_fleet_wide_and_per_service():
    mesh = copy.deepcopy(MESH)
    mesh["upstream"] = {"keepalive_timeout": "90s"}
    mesh["services"][1]["upstream"] = {"expected_concurrency": 32}
    mesh["services"][0]["proxy"] = {"keepalive_timeout": "30s"}
    result = plan({"app-1": {}, "app-2": {}}, {"svc_orders": ["app-1"], "svc_billing": ["app-2"]},
                  all_vars={"mtls_mesh": mesh})
    assert result["problems"] == []
    billing = result["hosts"]["app-2"]["upstream"][0]
    assert billing["keepalive"]["timeout"] == "90s" and billing["backend"]["keepalive"] == 32
    assert result["hosts"]["app-1"]["upstream"][0]["backend"]["keepalive"] == 128
    assert result["hosts"]["app-1"]["proxy"][0]["keepalive"]["timeout"] == "30s"


def test_mesh_settings_that_the_declaration_owns_or_that_do_not_exist_are_refused():
    mesh = copy.deepcopy(MESH)
    mesh["upstream"] = {"listen": ["9999"], "keepalive_timout": "5s"}
    mesh["services"][0]["proxy"] = {"certificate_source": "files"}
    result = plan({"app-1": {}, "app-2": {}}, {"svc_orders": ["app-1"], "svc_billing": ["app-2"]},
                  all_vars={"mtls_mesh": mesh})
    problems = "\n".join(result["problems"])
    assert "mtls_mesh.upstream.listen: the declaration decides it for every mesh tier" in problems
    assert "mtls_mesh.upstream.keepalive_timout: not a setting of the upstream tier (did you mean keepalive_timeout?)" in problems
    assert "mtls_mesh service orders: proxy.certificate_source: 'files' is not one of managed, pkcs11" in problems


def test_five_mistakes_in_a_declaration_are_refused_in_one_pass():
    mesh = copy.deepcopy(MESH)
    mesh["services"][0]["colour"] = "blue"                                  # unknown key
    mesh["services"].append({"name": "Stock_1", "group": "svc_orders",     # bad DNS label
                             "backend_url": "http://127.0.0.1:8002", "port": 8445})
    mesh["services"][0]["calls"].append({"service": "payments", "port": 9002})  # undeclared callee
    mesh["services"][1]["backend_url"] = "http://127.0.0.1:8001/api"        # bad backend URL
    mesh["services"][1]["port"] = 8443
    mesh["services"][0]["calls"][0]["port"] = 8443                          # port used twice
    result = plan({"app-1": {}, "app-2": {}}, {"svc_orders": ["app-1"], "svc_billing": ["app-1", "app-2"]},
                  all_vars={"mtls_mesh": mesh})
    problems = "\n".join(result["problems"])
    assert "service orders: unknown key(s) colour" in problems
    assert "'Stock_1' is not a valid DNS label" in problems
    assert "service orders calls 'payments', which is not a declared service" in problems
    assert "service billing: backend_url 'http://127.0.0.1:8001/api'" in problems
    assert "port 8443 is used twice" in problems
    assert len(result["problems"]) >= 5


def test_a_port_used_by_both_models_on_one_host_is_refused():
    hosts = {"app-1": {}, "app-2": {}}
    groups = {"svc_orders": ["app-1"], "svc_billing": ["app-2"], "mtls_proxies": ["app-1"],
              "mtls_upstreams": ["app-2"]}
    mesh = copy.deepcopy(MESH)
    mesh["services"][0]["calls"][0]["port"] = 8080
    result = plan(hosts, groups, all_vars={"mtls_mesh": mesh})
    assert ("app-1: port 8080 is used twice, by the proxy tier mtls-proxy on app-1 and by the proxy tier "
            "mtls-mesh-orders-to-billing on app-1") in result["problems"]
    # The mesh upstream of billing (8444) and the single one (8443) share the host, not the port.
    assert not [p for p in result["problems"] if p.startswith("app-2: port")]


def test_a_backend_that_is_another_tiers_listener_is_refused():
    mesh = copy.deepcopy(MESH)
    mesh["services"][0]["backend_url"] = "http://127.0.0.1:9001"
    result = plan({"app-1": {}, "app-2": {}}, {"svc_orders": ["app-1"], "svc_billing": ["app-2"]},
                  all_vars={"mtls_mesh": mesh})
    assert ("app-1: the backend_url http://127.0.0.1:9001 of the upstream tier mtls-mesh-orders on app-1 is the "
            "listener of the proxy tier mtls-mesh-orders-to-billing on app-1 on this host: verified callers would be "
            "forwarded into it") in result["problems"]


def test_a_misspelt_variable_is_named_with_the_closest_known_one():
    hosts, groups = copy.deepcopy(SINGLE)
    hosts["orders-1"] = dict(SERVICE, **{"mtls_upstream_backend": "http://127.0.0.1:9000"})
    result = plan(hosts, groups)
    assert result["problems"] == ["mtls_upstream_backend (set for orders-1): not a variable of mtls.nginx.upstream "
                                  "(did you mean mtls_upstream_backend_url?)"]
    warned = plan(hosts, groups, unknown_as="warning")
    assert warned["problems"] == [] and "did you mean mtls_upstream_backend_url?" in warned["warnings"][0]
    # The inventory may ask for warnings itself.
    hosts["orders-1"]["mtls_nginx_unknown_variables"] = "warning"
    assert plan(hosts, groups)["problems"] == []


def test_a_string_given_for_a_list_is_a_one_element_list():
    hosts, groups = copy.deepcopy(SINGLE)
    hosts["orders-1"] = dict(SERVICE, **{"mtls_upstream_listen": "9443", "mtls_upstream_subject_alt_names": "DNS:orders.internal"})
    hosts["billing-1"] = dict(SERVICE, **{"mtls_proxy_upstream_servers": "orders-1:9443", "mtls_proxy_upstream_name": "orders.internal"})
    result = plan(hosts, groups)
    assert result["problems"] == []
    assert result["hosts"]["orders-1"]["upstream"][0]["listen"] == ["9443"]
    assert result["hosts"]["billing-1"]["proxy"][0]["peers"][0]["host"] == "orders-1"


def test_every_value_problem_of_every_host_is_reported_at_once_naming_host_and_variable():
    hosts, groups = copy.deepcopy(SINGLE)
    hosts["orders-1"] = dict(SERVICE, **{"mtls_upstream_backend_url": "http://127.0.0.1:8000;evil", "mtls_upstream_listen": ["8443 x"]})
    hosts["billing-1"] = dict(SERVICE, **{"mtls_proxy_connect_timeout": "5s;"})
    problems = plan(hosts, groups)["problems"]
    assert any(p.startswith("orders-1: mtls_upstream_backend_url: ") for p in problems)
    assert any(p.startswith("orders-1: mtls_upstream_listen[0]: ") for p in problems)
    assert any(p.startswith("billing-1: mtls_proxy_connect_timeout: ") for p in problems)


def test_a_workload_identity_outside_the_declaration_is_refused():
    hosts, groups = copy.deepcopy(SINGLE)
    hosts["billing-1"] = dict(SERVICE, **{"mtls_proxy_subject_alt_names": ["URI:spiffe://mesh.internal/orders"]})
    hosts["orders-1"] = dict(SERVICE, **{"mtls_upstream_server_name": "orders.internal"})
    problems = plan(hosts, groups)["problems"]
    assert any("mtls_proxy_subject_alt_names[0]: 'URI:spiffe://mesh.internal/orders' is a workload identity" in p
               for p in problems), problems
    hosts["billing-1"] = dict(SERVICE, **{"mtls_proxy_common_name": "spiffe://mesh.internal/orders"})
    assert any("mtls_proxy_common_name: 'spiffe://mesh.internal/orders' is a workload identity" in p
               for p in plan(hosts, groups)["problems"])


def test_a_proxy_that_would_not_meet_its_upstreams_certificate_name_is_refused():
    hosts, groups = copy.deepcopy(SINGLE)
    hosts["billing-1"] = dict(SERVICE, **{"mtls_proxy_upstream_name": "nomatch.internal"})
    problems = plan(hosts, groups)["problems"]
    assert ("billing-1: mtls_proxy_upstream_name: the proxy expects the name nomatch.internal, but the certificate "
            "of the upstream tier mtls-upstream on orders-1 will carry only DNS:orders.internal, DNS:orders-1 (its "
            "subject_alt_names); every handshake would fail with 502") in problems


def test_a_proxy_that_closes_idle_connections_after_its_upstream_does_is_refused():
    hosts, groups = copy.deepcopy(SINGLE)
    hosts["orders-2"] = dict(SERVICE, **{"mtls_upstream_keepalive_timeout": "30s"})
    problems = plan(hosts, groups)["problems"]
    assert problems == ["billing-1: mtls_proxy_keepalive_timeout: 60s is not shorter than the keepalive_timeout "
                        "(30s) of the upstream tier mtls-upstream on orders-2; that host could close an idle "
                        "connection just as this proxy sends a request on it, and a POST would fail with 502. "
                        "Make the proxy's shorter."]
    # A malformed upstream timeout is named by that tier, once.
    hosts["orders-2"] = dict(SERVICE, **{"mtls_upstream_keepalive_timeout": "soon"})
    problems = plan(hosts, groups)["problems"]
    assert len(problems) == 1 and problems[0].startswith("orders-2: mtls_upstream_keepalive_timeout: 'soon'")
    hosts["billing-1"] = dict(SERVICE, **{"mtls_proxy_cross_tier_checks": False})
    hosts["orders-2"] = dict(SERVICE, **{"mtls_upstream_keepalive_timeout": "30s"})
    assert plan(hosts, groups)["problems"] == []


def test_a_problem_of_a_host_outside_the_run_is_a_warning():
    hosts, groups = copy.deepcopy(SINGLE)
    hosts["orders-2"] = dict(SERVICE, **{"mtls_upstream_backend_url": "nowhere"})
    result = plan(hosts, groups, focus=["orders-1", "billing-1"])
    assert result["problems"] == []
    assert result["warnings"][0].startswith("not in this run: orders-2: mtls_upstream_backend_url: ")
    assert plan(hosts, groups, focus=["orders-2"])["problems"]


def test_ca_settings_that_differ_between_hosts_are_refused():
    hosts, groups = copy.deepcopy(SINGLE)
    hosts["orders-1"] = dict(SERVICE, **{"mtls_pki_dir": "/one"})
    hosts["billing-1"] = dict(SERVICE, **{"mtls_pki_dir": "/two"})
    result = plan(hosts, groups)
    assert result["problems"] == ["mtls_pki_dir differs between hosts orders-1 and billing-1: it is one setting "
                                  "for the whole inventory; set it once, in group_vars/all"]
    hosts["billing-1"] = dict(SERVICE, **{"mtls_pki_dir": "/one"})
    assert plan(hosts, groups)["pki"]["dir"] == "/one"


def test_two_tiers_under_one_name_on_a_host_are_refused():
    hosts = {"app-1": {"mtls_upstream_config_name": "mtls-mesh-orders"}, "app-2": {}}
    groups = {"svc_orders": ["app-1"], "svc_billing": ["app-2"], "mtls_upstreams": ["app-1"]}
    hosts["app-1"]["mtls_upstream_listen"] = ["8450"]
    result = plan(hosts, groups, all_vars={"mtls_mesh": MESH})
    assert any("app-1: the config name mtls-mesh-orders is used twice" in p for p in result["problems"]), result["problems"]


def test_rotate_probe_from_names_the_callers_that_send_the_gate():
    hosts = {"orders-1": {"mtls_upstream_rotate_probe_from": ["billing-2"]}, "billing-1": {}, "billing-2": {}}
    groups = {"mtls_upstreams": ["orders-1"], "mtls_proxies": ["billing-1", "billing-2"]}
    result = plan(hosts, groups)
    assert [p["host"] for p in result["hosts"]["orders-1"]["upstream"][0]["rotate"]["probes"]] == ["billing-2"]
    hosts["orders-1"]["mtls_upstream_rotate_probe_from"] = ["nowhere"]
    assert any("mtls_upstream_rotate_probe_from: nowhere has no proxy tier that calls" in p
               for p in plan(hosts, groups)["problems"])
    hosts["orders-1"]["mtls_upstream_rotate_probe_from"] = []
    assert plan(hosts, groups)["hosts"]["orders-1"]["upstream"][0]["rotate"]["probes"] == []


def test_secrets_never_enter_a_record():
    hosts, groups = copy.deepcopy(SINGLE)
    hosts["orders-1"] = dict(SERVICE, **{
        "mtls_upstream_private_key_passphrase": "s3cret-passphrase", "mtls_upstream_certificate_source": "pkcs11",
        "mtls_nginx_pkcs11_pin": "s3cret-pin", "mtls_nginx_pkcs11_module": "/usr/lib/softhsm/libsofthsm2.so",
        "mtls_nginx_pkcs11_token": "t"})
    result = plan(hosts, groups)
    assert "s3cret" not in repr(result)
    # A key in a token takes no passphrase: named, without showing it.
    assert any("takes no mtls_upstream_private_key_passphrase" in p for p in result["problems"])


def test_the_defaults_files_hold_no_template_so_the_plan_reads_them_as_data():
    for role, values in DEFAULTS.items():
        for key, value in values.items():
            assert "{{" not in repr(value), "mtls_%s_%s is a template; the plan reads defaults as data" % (role, key)


@pytest.mark.parametrize("kind", _tier.KINDS)
def test_a_record_made_from_the_role_variables_equals_the_plans(kind):
    """The role used on its own makes the same record as the plan (mtls.nginx.tier_record)."""
    hosts, groups = copy.deepcopy(SINGLE)
    planned = plan(hosts, groups)
    host = "orders-1" if kind == "upstream" else "billing-1"
    values = dict(DEFAULTS[kind])
    values.update({key[len("mtls_%s_" % kind):]: value for key, value in SERVICE.items() if key.startswith("mtls_%s_" % kind)})
    made, problems = _tier.record(kind, host, values, DEFAULTS["nginx"], groups=dict(groups, all=list(hosts)),
                                  options={"upstream_group": "mtls_upstreams"}, known=KNOWN[kind])
    assert problems == []
    expected = planned["hosts"][host][kind][0]
    for key in ("peers", "callers", "rotate", "cleared_headers"):
        made.pop(key, None)
        expected.pop(key, None)
    assert made == expected


def test_identity_lookalikes_are_cleared_on_both_tiers_but_the_tiers_own_headers():
    result = plan(*copy.deepcopy(SINGLE))
    up = result["hosts"]["orders-1"]["upstream"][0]
    proxy = result["hosts"]["billing-1"]["proxy"][0]
    for name in ("X-Client-Cert-Chain", "SSL-Client-Subject-DN", "X-Amzn-Mtls-Clientcert", "X-Client-Subject",
                 "X-SSL-Client-Cert", "X-Forwarded-Tls-Client-Cert"):
        assert name.lower() in {header.lower() for header in up["cleared_headers"]}, name
        assert name.lower() in {header.lower() for header in proxy["cleared_headers"]}, name
    own = {header.lower() for header in up["identity_headers"].values()}
    assert not own & {header.lower() for header in up["cleared_headers"]}
    # The proxy clears the upstream tier's own names too: only the upstream tier may set them.
    assert own <= {header.lower() for header in proxy["cleared_headers"]}


def test_a_forwarded_certificate_header_needs_the_front_ends_verified_identity():
    hosts, groups = copy.deepcopy(SINGLE)
    hosts["orders-1"] = dict(SERVICE, mtls_upstream_forwarded_cert={
        "request_header": "X-SSL-Client-Cert", "trusted_sources": ["10.0.0.0/24"]})
    assert any("trusted_subjects (the verified subject DNs of the front ends" in p for p in plan(hosts, groups)["problems"])
    hosts["orders-1"]["mtls_upstream_forwarded_cert"]["trusted_subjects"] = ["CN=front-1"]
    assert plan(hosts, groups)["problems"] == []


def test_a_proxy_whose_header_buffer_is_not_larger_than_its_upstreams_is_refused():
    hosts, groups = copy.deepcopy(SINGLE)
    hosts["orders-2"]["mtls_upstream_response_header_buffer"] = "16k"
    problems = plan(hosts, groups)["problems"]
    assert problems == ["billing-1: mtls_proxy_response_header_buffer: 16k is not at least 1024 bytes more than the "
                        "response_header_buffer (16k) of the upstream tier mtls-upstream on orders-2, which adds headers "
                        "of its own to what its backend answered; an answer that tier accepts would fail here with 502 "
                        "(upstream sent too big header). Make the proxy's larger."]
    hosts["billing-1"]["mtls_proxy_response_header_buffer"] = "32k"
    assert plan(hosts, groups)["problems"] == []


@pytest.mark.parametrize("window,times,retried", [
    (50, "0.000", True), (50, "0.050", True), (50, "0.051", False), (50, "0.000, 0.012", True),
    (50, "0.000, 1.003", False), (50, "1.000", False), (250, "0.199", True), (250, "0.251", False),
    (5, "0.005", True), (5, "0.006", False)])
def test_the_retry_window_matches_nginx_response_times_within_it(window, times, retried):
    import re

    assert bool(re.fullmatch(_tier.ms_regex(window), times)) == retried


def _shared_host_mesh(local_groups=True):
    """orders and billing on one host, each calling audit on another."""
    mesh = {"trust_domain": "mesh.internal", "services": [
        {"name": "orders", "group": "svc_orders", "backend_url": "http://127.0.0.1:8000", "port": 8443,
         "calls": [{"service": "audit"}] if local_groups else [{"service": "audit", "port": 9001}]},
        {"name": "billing", "group": "svc_billing", "backend_url": "http://127.0.0.1:8001", "port": 8444,
         "calls": [{"service": "audit"}] if local_groups else [{"service": "audit", "port": 9002}]},
        {"name": "audit", "group": "svc_audit", "backend_url": "http://127.0.0.1:8002", "port": 8443},
    ]}
    if local_groups:
        mesh["services"][0]["local_group"] = "svc-orders"
        mesh["services"][1]["local_group"] = "svc-billing"
    return ({"app-1": {}, "app-2": {}}, {"svc_orders": ["app-1"], "svc_billing": ["app-1"], "svc_audit": ["app-2"]},
            {"mtls_mesh": mesh})


def test_a_service_with_a_local_group_listens_on_a_socket_only_its_group_may_open():
    hosts, groups, all_vars = _shared_host_mesh()
    result = plan(hosts, groups, all_vars=all_vars)
    assert result["problems"] == [] and result["warnings"] == []
    proxies = {record["service"]: record for record in result["hosts"]["app-1"]["proxy"]}
    orders = proxies["orders"]
    assert orders["listen"] == ["unix:/run/mtls-nginx/orders/audit.sock"]
    assert orders["probe"] == {"address": "localhost", "socket": "/run/mtls-nginx/orders/audit.sock"}
    assert orders["local_access"]["dir"] == "/run/mtls-nginx/orders"
    assert orders["local_access"]["group"] == "svc-orders"
    # verify opens it as its own group (connects), as no service (refused), and as billing (refused).
    assert orders["local_access"]["trials"] == [
        {"group": "svc-orders", "expect": "connected"},
        {"group": "nogroup", "expect": "refused"},
        {"group": "svc-billing", "expect": "refused", "service": "billing"}]
    assert proxies["billing"]["local_access"]["trials"][2] == {"group": "svc-orders", "expect": "refused",
                                                               "service": "orders"}


def test_callers_sharing_a_host_without_local_groups_are_warned_about():
    hosts, groups, all_vars = _shared_host_mesh(local_groups=False)
    result = plan(hosts, groups, all_vars=all_vars)
    assert result["problems"] == []
    assert result["warnings"] == [
        "app-1: the listeners of billing, orders are open to every local process, so a process of billing or "
        "orders can call as them; give each mesh service on a shared host a local_group in mtls_mesh"]


def test_a_local_group_takes_no_call_port_and_must_be_a_group_name():
    hosts, groups, all_vars = _shared_host_mesh()
    all_vars["mtls_mesh"]["services"][0]["calls"][0]["port"] = 9001
    all_vars["mtls_mesh"]["services"][1]["local_group"] = "Billing Team"
    problems = plan(hosts, groups, all_vars=all_vars)["problems"]
    assert ("service orders: calls[0] takes no port: with local_group, its listeners are unix sockets "
            "(/run/mtls-nginx/orders/audit.sock)") in problems
    assert any(p.startswith("service billing: local_group 'Billing Team' is not a unix group name") for p in problems)


def test_a_ca_host_must_be_in_the_inventory_and_a_token_ca_needs_its_settings_but_the_pin_stays_out():
    hosts, groups = copy.deepcopy(SINGLE)
    result = plan(hosts, groups, all_vars={"mtls_pki_ca_host": "ca-1", "mtls_pki_ca_pkcs11": {"pin": "1234"}})
    assert any(p.startswith("mtls_pki_ca_host: 'ca-1' is not a host of the inventory") for p in result["problems"])
    assert any(p.startswith("mtls_pki_ca_pkcs11: module_path, token_label, key_label missing") for p in result["problems"])
    assert "1234" not in repr(result)
    hosts["ca-1"] = {}
    result = plan(hosts, groups, all_vars={"mtls_pki_ca_host": "ca-1"})
    assert result["problems"] == [] and result["pki"]["ca_host"] == "ca-1"
    # The CA host runs no tier of its own.
    assert "ca-1" not in result["hosts"]


def test_select_narrows_by_host_service_tier_kind_and_names_what_the_plan_lacks():
    result = plan(*SINGLE)
    chosen = _plan.select(result, kinds="upstream", names={"kinds": "mtls_rotate_kinds"})
    assert chosen["problems"] == []
    assert sorted(chosen["hosts"]) == ["orders-1", "orders-2"]
    assert chosen["groups"] == {"upstream": ["orders-1", "orders-2"], "proxy": []}
    # One name from -e is one name, never its characters; a name the plan lacks is named.
    wrong = _plan.select(result, hosts="billing-2", names={"hosts": "mtls_revoke_hosts"})
    assert wrong["problems"] == ["mtls_revoke_hosts: 'billing-2' is not a host with a tier in the plan"
                                 " (did you mean billing-1?)"], wrong["problems"]
    assert _plan.select(result, hosts="billing-1")["groups"] == {"upstream": [], "proxy": ["billing-1"]}


def test_select_groups_follow_the_runs_host_order_so_batches_follow_the_inventory():
    result = plan(*SINGLE)
    within = ["orders-2", "billing-1", "orders-1"]
    chosen = _plan.select(result, within=within)
    assert chosen["groups"] == {"upstream": ["orders-2", "orders-1"], "proxy": ["billing-1"]}
    assert _plan.select(result, within=["orders-2"])["groups"] == {"upstream": ["orders-2"], "proxy": []}
    assert _plan.select(result, within=[])["problems"] == [
        "no tier of the plan is selected on the hosts of this run (--limit)"]
