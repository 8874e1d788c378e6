"""One service as the plan knows it: mtls.nginx.plan lists both tiers of the single-service
inventory, and mtls.nginx.verify tries the proxy tier's edge to the upstream tier, with the proxy's
subject DN at the backend. Neither changes anything."""

import re

from mtls_testing import run_playbook


def test_the_plan_lists_the_upstream_and_the_proxy_tier():
    rc, out, recap = run_playbook("mtls.nginx.plan")
    assert rc == 0, out[-3000:]
    assert "mtls-default-upstream  upstream  mtls-upstream  8443" in out, out[-3000:]
    assert "mtls-default-proxy     proxy     mtls-proxy     127.0.0.1:8080" in out, out[-3000:]
    assert all(counters["changed"] == 0 for counters in recap.values()), recap


def test_verify_tries_the_single_services_edge_and_changes_nothing():
    rc, out, recap = run_playbook("mtls.nginx.verify")
    assert rc == 0, out[-3000:]
    assert "caller \\\\ callee" in out or "caller \\ callee" in out, out[-3000:]
    # The proxy tier's row: its edge to the upstream tier answered 200 with its identity.
    assert re.search(r'"caller \\\\ callee +mtls-default-upstream *"', out), out[-3000:]
    assert re.search(r'"mtls-proxy +200 *"', out), out[-3000:]
    assert all(counters["changed"] == 0 and counters["failed"] == 0 for counters in recap.values()), recap
