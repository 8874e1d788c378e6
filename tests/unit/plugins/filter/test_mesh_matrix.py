"""mesh_matrix: what mtls.nginx.verify tried, as the caller x callee matrix, every difference
named by edge and host."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.nginx.plugins.filter import mesh_matrix as mesh_matrix_module
from ansible_collections.mtls.nginx.plugins.filter import mesh_plan as mesh_plan_module

mesh_matrix = mesh_matrix_module.FilterModule().filters()["mesh_matrix"]
mesh_plan = mesh_plan_module.FilterModule().filters()["mesh_plan"]

PLAN = mesh_plan({
    "trust_domain": "mesh.internal",
    "services": [
        {"name": "web", "group": "web", "backend_url": "http://127.0.0.1:8000", "port": 8443,
         "calls": [{"service": "orders", "port": 9001}]},
        {"name": "orders", "group": "orders", "backend_url": "http://127.0.0.1:8001", "port": 8443},
    ],
}, {"web": ["w1"], "orders": ["o1"]})


def declared(status, content='{"X-Client-SPIFFE-ID": "spiffe://mesh.internal/web"}', **more):
    item = PLAN["hosts"]["w1"]["proxies"][0]
    return dict({"item": item, "status": status, "content": content}, **more)


def undeclared(status, error=None):
    return {"item": PLAN["hosts"]["w1"]["undeclared"][0], "http_status": status, "error": error}


def test_what_the_declaration_expects_passes_and_is_shown():
    result = mesh_matrix(PLAN, [{"host": "w1", "declared": [declared(200)], "undeclared": [undeclared(403)]}])
    assert result["differences"] == []
    assert result["lines"][0].split() == ["caller", "\\", "callee", "web", "orders"]
    assert result["lines"][1].split() == ["web", "403", "200"]


def test_an_undeclared_pair_that_answers_is_named_with_the_host():
    result = mesh_matrix(PLAN, [{"host": "w1", "declared": [declared(200)], "undeclared": [undeclared(200)]}])
    assert result["differences"] == ["web -> web from w1: expected 403, observed 200"]
    assert result["lines"][1].split() == ["web", "403!200", "200"]


def test_a_declared_edge_without_the_callers_identity_or_answer_differs():
    missing = mesh_matrix(PLAN, [{"host": "w1", "declared": [declared(200, content="{}")], "undeclared": []}])
    assert missing["differences"] == [
        "web -> orders from w1: expected 200, observed id (the answer does not carry spiffe://mesh.internal/web)"]
    # The identity is not required where the backend does not echo it.
    assert mesh_matrix(PLAN, [{"host": "w1", "declared": [declared(200, content="{}")]}], False)["differences"] == []
    # As -e gives it: the string "false" is false, never a non-empty string that is true.
    assert mesh_matrix(PLAN, [{"host": "w1", "declared": [declared(200, content="{}")]}], "false")["differences"] == []
    assert mesh_matrix(PLAN, [{"host": "w1", "declared": [declared(200, content="{}")]}], "true")["differences"] != []
    down = mesh_matrix(PLAN, [{"host": "w1", "declared": [declared(-1, msg="Connection refused")],
                               "undeclared": [undeclared(None, "handshake failed")]}])
    assert down["differences"] == [
        "web -> orders from w1: expected 200, observed none (Connection refused)",
        "web -> web from w1: expected 403, observed tls (handshake failed)"]


def test_a_prefix_of_the_callers_identity_is_not_its_identity():
    other = declared(200, content='{"X-Client-SPIFFE-ID": "spiffe://mesh.internal/web2"}')
    assert mesh_matrix(PLAN, [{"host": "w1", "declared": [other]}])["differences"] != []


def test_wrong_arguments_are_an_error():
    with pytest.raises(AnsibleFilterError, match="expects the plan"):
        mesh_matrix([], [])


def test_the_graph_shows_declared_edges_by_outcome_and_reachable_undeclared_pairs():
    good = mesh_matrix(PLAN, [{"host": "w1", "declared": [declared(200)], "undeclared": [undeclared(403)]}])["dot"]
    assert good.startswith("digraph mtls_nginx_verify {") and good.rstrip().endswith("}")
    assert '"web";' in good and '"orders";' in good
    assert '"web" -> "orders" [color=green4, penwidth=2];' in good
    # A pair refused as declared is not drawn.
    assert '"web" -> "web"' not in good
    bad = mesh_matrix(PLAN, [{"host": "w1", "declared": [declared(502)], "undeclared": [undeclared(200)]}])["dot"]
    assert '"web" -> "orders" [color=red, penwidth=2, label="502 from w1"];' in bad
    assert '"web" -> "web" [color=red, style=dashed, label="not declared: 200 from w1"];' in bad


def test_the_graph_quotes_names_dot_would_read_otherwise():
    from ansible_collections.mtls.nginx.plugins.module_utils import _mesh

    dot = _mesh.graph(['a"b'], [{"caller": 'a"b', "callee": "c\\d", "host": "h", "expected": 200, "observed": 200}])
    assert '"a\\"b" -> "c\\\\d" [color=green4, penwidth=2];' in dot


def test_the_graph_names_the_hosts_in_order_whatever_order_their_results_came_in():
    """verify's play runs on the plan's group, whose hosts are in the order their tasks ended: the
    graph is the same for any order."""
    from ansible_collections.mtls.nginx.plugins.module_utils import _mesh

    seen = [{"caller": "web", "callee": "catalog", "host": host, "expected": 403, "observed": 200} for host in ("w2", "w1", "w3")]
    for order in (seen, list(reversed(seen))):
        assert '"web" -> "catalog" [color=red, style=dashed, label="not declared: 200 from w1; 200 from w2; 200 from w3"];' \
            in _mesh.graph(["web", "catalog"], order)
