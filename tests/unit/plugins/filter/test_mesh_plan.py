"""mesh_plan: a fleet's service graph, refused as a whole with every problem named, or turned
into what each host runs."""

import copy

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.nginx.plugins.filter import mesh_plan as mesh_plan_module

mesh_plan = mesh_plan_module.FilterModule().filters()["mesh_plan"]

GROUPS = {"all": ["h1", "h2", "h3"], "ungrouped": [], "orders": ["h1", "h2"], "billing": ["h2"],
          "stock": ["h3"], "nobody": []}
MESH = {
    "trust_domain": "mesh.internal",
    "services": [
        {"name": "orders", "group": "orders", "backend_url": "http://127.0.0.1:8000", "port": 8443,
         "calls": [{"service": "billing", "port": 9001}, {"service": "stock", "port": 9002}]},
        {"name": "billing", "group": "billing", "backend_url": "http://127.0.0.1:8001", "port": 8444,
         "calls": [{"service": "stock", "port": 9003}]},
        {"name": "stock", "group": "stock", "backend_url": "http://127.0.0.1:8002", "port": 8443},
    ],
}


def with_change(change):
    mesh = copy.deepcopy(MESH)
    change(mesh)
    return mesh_plan(mesh, GROUPS)


def test_a_good_declaration_has_no_problems_and_lists_its_edges():
    plan = mesh_plan(MESH, GROUPS)
    assert plan["problems"] == []
    assert plan["edges"] == [{"caller": "orders", "callee": "billing", "port": 9001},
                             {"caller": "orders", "callee": "stock", "port": 9002},
                             {"caller": "billing", "callee": "stock", "port": 9003}]


def test_a_host_of_two_services_runs_both_upstream_tiers_and_each_service_calls():
    h2 = mesh_plan(MESH, GROUPS)["hosts"]["h2"]
    assert [u["service"] for u in h2["upstreams"]] == ["orders", "billing"]
    assert [(p["caller"], p["callee"], p["port"]) for p in h2["proxies"]] == [
        ("orders", "billing", 9001), ("orders", "stock", 9002), ("billing", "stock", 9003)]
    billing_to_stock = h2["proxies"][2]
    # The caller service's own identity, not the host's.
    assert billing_to_stock["spiffe_id"] == "spiffe://mesh.internal/billing"
    assert billing_to_stock["upstream_name"] == "stock.mesh.internal"
    assert billing_to_stock["upstream_servers"] == ["h3:8443"]


def test_an_upstream_admits_exactly_its_declared_callers():
    hosts = mesh_plan(MESH, GROUPS)["hosts"]
    stock = hosts["h3"]["upstreams"][0]
    assert stock["allowed_callers"] == ["spiffe://mesh.internal/orders", "spiffe://mesh.internal/billing"]
    assert stock["spiffe_id"] == "spiffe://mesh.internal/stock" and stock["port"] == 8443
    orders = hosts["h1"]["upstreams"][0]
    assert orders["allowed_callers"] == [] and orders["backend_url"] == "http://127.0.0.1:8000"
    assert hosts["h1"]["proxies"][0]["upstream_servers"] == ["h2:8444"]


def test_a_service_with_two_hosts_is_reached_on_both():
    mesh = copy.deepcopy(MESH)
    mesh["services"][2]["port"] = 8445
    plan = mesh_plan(mesh, {**GROUPS, "stock": ["h3", "h1"]})
    assert plan["problems"] == []
    assert plan["hosts"]["h2"]["proxies"][1]["upstream_servers"] == ["h3:8445", "h1:8445"]
    assert [u["service"] for u in plan["hosts"]["h1"]["upstreams"]] == ["orders", "stock"]


def test_two_services_on_one_host_may_not_share_an_upstream_port():
    plan = mesh_plan(MESH, {**GROUPS, "stock": ["h3", "h1"]})
    assert plan["problems"] == [
        "host h1: port 8443 is used twice, by the upstream tier of orders and by the upstream tier of stock"]


@pytest.mark.parametrize("change, message", [
    (lambda m: m["services"][1]["calls"].append({"service": "ledger", "port": 9010}),
     "service billing calls 'ledger', which is not a declared service"),
    (lambda m: m["services"][1]["calls"].append({"service": "stock", "port": 9010}),
     "service billing calls stock twice"),
    (lambda m: m["services"][2].update(group="nobody"),
     "service stock has no hosts: the inventory group 'nobody' is empty"),
    (lambda m: m["services"][2].update(group="stocks"),
     "service stock has no hosts: the inventory group 'stocks' does not exist"),
    (lambda m: m["services"][2].update(name="Stock_1"),
     "service Stock_1: the name 'Stock_1' is not a valid DNS label"),
    (lambda m: m["services"][2].update(name="-stock"), "is not a valid DNS label"),
    (lambda m: m["services"][2].update(name=None), "mtls_mesh.services[2]: the name None is not a valid DNS label"),
    (lambda m: m["services"][2].update(name="x" * 64), "is not a valid DNS label"),
    (lambda m: m["services"].append(dict(m["services"][2])), "service stock: declared twice"),
    # h2 runs billing's upstream on 8444 and orders' listener for billing would take it too.
    (lambda m: m["services"][0]["calls"][0].update(port=8444),
     "host h2: port 8444 is used twice, by orders calling billing and by the upstream tier of billing"),
    (lambda m: m["services"][1]["calls"][0].update(port=9002),
     "host h2: port 9002 is used twice, by orders calling stock and by billing calling stock"),
    (lambda m: m["services"][0].update(backend_url="http://127.0.0.1:8000;server evil:1"),
     "service orders: backend_url 'http://127.0.0.1:8000;server evil:1' is wrong"),
    (lambda m: m["services"][0].update(port=70000), "service orders: port 70000 is wrong: out of range"),
    (lambda m: m["services"][0]["calls"][1].update(port="90x"),
     "service orders: the port '90x' for calling stock is wrong"),
    (lambda m: m["services"][0].update(colour="red"), "service orders: unknown key(s) colour"),
    (lambda m: m.update(trust_domain="Mesh.internal"), "mtls_mesh.trust_domain: 'Mesh.internal' must be"),
    (lambda m: m.update(trust_domain="mesh..internal"), "it has an empty label"),
    (lambda m: m.update(services=[]), "mtls_mesh.services: must be a non-empty list"),
])
def test_a_wrong_declaration_is_refused_naming_the_service_and_the_problem(change, message):
    plan = with_change(change)
    assert any(message in problem for problem in plan["problems"]), plan["problems"]
    # Nothing is planned from a declaration that is wrong anywhere.
    assert plan["edges"] == [] and plan["hosts"] == {}


def test_every_problem_is_reported_at_once():
    def change(mesh):
        mesh["services"][0]["calls"].append({"service": "ledger", "port": 9010})
        mesh["services"][2]["group"] = "nobody"
    assert len(with_change(change)["problems"]) == 2


def test_the_inventory_groups_must_be_given():
    with pytest.raises(AnsibleFilterError, match="inventory's groups"):
        mesh_plan(MESH, ["h1"])


def test_an_identity_longer_than_a_common_name_may_be_is_refused():
    long_name = "a" * 33
    plan = with_change(lambda mesh: mesh.update(trust_domain="%s.example.internal" % long_name))
    assert ("service orders: its identity spiffe://%s.example.internal/orders is 66 characters, and a "
            "certificate's common name holds at most 64; shorten the service name or the trust domain"
            % long_name) in plan["problems"]
    assert plan["hosts"] == {} and plan["slots"] == {"upstreams": 0, "proxies": 0}


def test_each_tier_gets_its_config_name_subject_and_names():
    plan = mesh_plan(MESH, GROUPS)
    h2 = plan["hosts"]["h2"]
    billing = h2["upstreams"][1]
    assert billing["config_name"] == "mtls-mesh-billing"
    assert billing["subject_alt_names"] == ["DNS:billing.mesh.internal", "URI:spiffe://mesh.internal/billing"]
    assert billing["allowed_subjects"] == ["CN=spiffe://mesh.internal/orders"]
    listener = h2["proxies"][2]
    assert listener["config_name"] == "mtls-mesh-billing-to-stock"
    assert listener["common_name"] == "spiffe://mesh.internal/billing"
    assert listener["upstream_group"] == "stock"
    assert plan["slots"] == {"upstreams": 2, "proxies": 3}
    assert plan["services"]["stock"]["callers"] == ["orders", "billing"]
    assert plan["services"]["orders"]["hosts"] == ["h1", "h2"]


def test_the_undeclared_pairs_are_those_a_caller_host_can_try():
    plan = mesh_plan(MESH, GROUPS)
    pairs = [(p["caller"], p["callee"], p["host"], p["port"]) for p in plan["hosts"]["h2"]["undeclared"]]
    # orders calls billing and stock; billing calls stock: the rest, each service itself included.
    assert pairs == [("orders", "orders", "h1", 8443), ("billing", "orders", "h1", 8443),
                     ("billing", "billing", "h2", 8444)]
    assert plan["hosts"]["h2"]["undeclared"][0]["config_name"] == "mtls-mesh-orders-to-billing"
    # stock calls no one: it has no client certificate to try anything with.
    assert plan["hosts"]["h3"]["undeclared"] == []


def test_the_readme_s_worked_example_is_a_good_declaration():
    """The three-service example that the README shows first passes the plan it describes."""
    import os
    import re

    import yaml

    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "README.md")).read()
    blocks = {}
    # The first of each: the README's later single-service example has an inventory.yml too.
    for match in re.finditer(r"^# (inventory\.yml|group_vars/all\.yml)\n.*?(?=^```)", readme, re.M | re.S):
        blocks.setdefault(match.group(1), yaml.safe_load(match.group(0)))
    inventory, group_vars = blocks["inventory.yml"], blocks["group_vars/all.yml"]
    groups = {name: list(group["hosts"]) for name, group in inventory.items()}
    plan = mesh_plan(group_vars["mtls_mesh"], groups)
    assert plan["problems"] == []
    edges = [(e["caller"], e["callee"]) for e in plan["edges"]]
    assert edges == [("web", "orders"), ("web", "billing"), ("orders", "billing")]
    app = plan["hosts"]["app-1.internal"]
    assert [u["service"] for u in app["upstreams"]] == ["orders", "billing"]
    assert app["proxies"][0]["upstream_servers"] == ["app-1.internal:8444", "billing-1.internal:8444"]
