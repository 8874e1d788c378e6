"""Day 2 for the fleet, under live traffic: every day-2 playbook of the collection runs on the
mesh-only inventory while load generators on two caller hosts send GET and POST requests over
declared edges (web -> orders from f-web1, orders -> billing from f-orders1), and no request may
fail. Each test checks the tiers the playbook touched, from the plan's records, not only its exit
status: a rolling rotation of one multi-host service (orders), the revocation of one host of a
multi-host service by name (f-web2) and its return with new keys, a CRL renewal that is due, the
three CA rollover phases, then check_expiry and verify. Last, the account of every phase, and
mtls.nginx.site with nothing left to change.

The tests run in file order (after test_fleet.py) and share the scenario's state."""

import datetime
import json
import os
import re
import time

import pytest
import testinfra
import yaml
from cryptography import x509
from day2_testing import SETTLE, Load, account, age_controller_crl, crl_number
from mtls_testing import PKI, curl, inventory_dir, run_playbook

from ansible_collections.mtls.nginx.plugins.module_utils import _plan
from ansible_collections.mtls.nginx.plugins.plugin_utils import _role_data

CRL_BLOCK = "-----BEGIN X509 CRL-----.*?-----END X509 CRL-----"


def _plan_of_inventory():
    with open(os.path.join(inventory_dir(), "hosts.yml")) as handle:
        inventory = yaml.safe_load(handle)["all"]
    groups = {"all": []}
    for name, group in inventory["children"].items():
        groups[name] = list(group.get("hosts") or {})
        groups["all"] += [host for host in groups[name] if host not in groups["all"]]
    hosts = {host: {key: value for key, value in inventory["vars"].items() if key.startswith("mtls_")}
             for host in groups["all"]}
    return _plan.plan({"groups": groups, "hosts": hosts}, _role_data.defaults())


PLAN = _plan_of_inventory()
RECORDS = [record for entry in PLAN["hosts"].values() for record in entry["upstream"] + entry["proxy"]]


@pytest.fixture(scope="module")
def hosts(request):
    inventory = request.config.option.ansible_inventory
    return {host.backend.get_hostname(): host for host in testinfra.get_hosts(["ansible://all"], ansible_inventory=inventory)}


@pytest.fixture(scope="module")
def load(hosts):
    """30 requests/s from each of two caller hosts, through their listeners, for the whole module."""
    generators = Load([(hosts["f-web1"], "http://127.0.0.1:9101"), (hosts["f-orders1"], "http://127.0.0.1:9201")],
                      rate=30, connections=3)
    yield generators
    generators.stop()


def run(load, phase, playbook, *extra):
    load.phase(phase)
    rc, out, recap = run_playbook(playbook, *extra)
    time.sleep(SETTLE)
    return rc, out, recap


def pubkey(hosts, record):
    out = hosts[record["host"]].run("openssl pkey -in %s -pubout | sha256sum" % record["files"]["key"])
    assert out.rc == 0, out.stderr
    return out.stdout.split()[0]


def certs(hosts, record, what):
    return x509.load_pem_x509_certificates(hosts[record["host"]].file(record["files"][what]).content)


def subject_of(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read()).subject.rfc4514_string()


def crls(hosts, record):
    text = hosts[record["host"]].file(record["files"]["crl"]).content_string
    return [x509.load_pem_x509_crl(block.encode()) for block in re.findall(CRL_BLOCK, text, re.S)]


def test_the_fleet_is_mesh_only_and_its_plan_is_whole():
    assert PLAN["problems"] == []
    assert {record["model"] for record in RECORDS} == {"mesh"} and len(RECORDS) >= 20


def test_rotating_one_service_rekeys_exactly_its_tiers_on_every_host_upstream_tiers_first(load, hosts):
    before = {(r["host"], r["name"]): pubkey(hosts, r) for r in RECORDS}
    rc, out, _recap = run(load, "rotate-orders", "mtls.nginx.rotate", "-e", "mtls_rotate_services=orders")
    assert rc == 0, out[-4000:]
    orders = [r for r in RECORDS if r["service"] == "orders"]
    assert {(r["kind"], r["host"]) for r in orders} == {
        ("upstream", "f-orders1"), ("upstream", "f-orders2"), ("proxy", "f-orders1"), ("proxy", "f-orders2")}
    for record in RECORDS:
        changed = pubkey(hosts, record) != before[(record["host"], record["name"])]
        assert changed == (record["service"] == "orders"), record["label"]
    for record in orders:
        leftovers = hosts[record["host"]].run("ls %s | grep -E '\\.(next|previous)$' || true" % record["dir"]).stdout
        assert leftovers.strip() == "", leftovers
    assert out.index("Rotate each upstream tier of this host") < out.index("Rotate each proxy tier of this host")
    # Each upstream tier's gate was a request from a caller with its client certificate.
    assert out.count("Gate, a request from a proxy host") == 2, out[-4000:]


def test_a_host_revoked_by_name_is_refused_by_its_peers_and_comes_back_with_new_keys(load, hosts):
    cut = [r for r in RECORDS if r["host"] == "f-web2"]
    serials = {"%X" % certs(hosts, r, "certificate")[0].serial_number for r in cut}
    # The usual command-line form: one host, as a string.
    rc, out, _recap = run(load, "revoke-host", "mtls.nginx.revoke", "-e", "mtls_revoke_hosts=f-web2")
    assert rc == 0, out[-4000:]
    # The ledger, not the host, said which certificates f-web2 holds: each of its tiers'.
    with open(os.path.join(PKI, "ledger.json")) as handle:
        recorded = {e["serial"]: e for e in json.load(handle)["certificates"]}
    for serial in serials:
        assert recorded[serial]["status"] == "revoked" and recorded[serial]["host"] == "f-web2", recorded[serial]
    # Every tier that checks the CA's CRL has them, right after the push.
    for record in RECORDS:
        listed = {"%X" % revoked.serial_number for crl in crls(hosts, record) for revoked in crl}
        assert serials <= listed, record["label"]
    refused = curl(hosts["f-web2"], "http://127.0.0.1:9101/after-revocation")
    assert refused.status == 400 and refused.json()["reason"] == "certificate revoked", refused.body
    assert curl(hosts["f-web1"], "http://127.0.0.1:9101/after-revocation").status == 200
    rc, out, _recap = run(load, "rotate-revoked-host", "mtls.nginx.rotate", "--limit", "f-web2")
    assert rc == 0, out[-4000:]
    for record in cut:
        assert "%X" % certs(hosts, record, "certificate")[0].serial_number not in serials, record["label"]
    assert curl(hosts["f-web2"], "http://127.0.0.1:9101/back").status == 200


def test_a_due_crl_renewal_reaches_every_tier(load, hosts):
    age_controller_crl(PKI, "ca.crl")
    before = {(r["host"], r["name"]): max(crl_number(c) for c in crls(hosts, r)) for r in RECORDS}
    rc, out, _recap = run(load, "crl-renewal", "mtls.nginx.renew_crl")
    assert rc == 0, out[-4000:]
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=6)
    for record in RECORDS:
        found = crls(hosts, record)
        assert found and all(c.next_update_utc > soon for c in found), record["label"]
        assert max(crl_number(c) for c in found) > before[(record["host"], record["name"])], record["label"]


def test_phase_1_puts_the_new_ca_beside_the_old_in_every_tiers_bundle(load, hosts):
    rc, out, _recap = run(load, "ca-distribute", "mtls.nginx.ca_distribute")
    assert rc == 0, out[-4000:]
    old, new = subject_of(os.path.join(PKI, "ca.pem")), subject_of(os.path.join(PKI, "ca-next.pem"))
    assert old != new
    for record in RECORDS:
        assert [c.subject.rfc4514_string() for c in certs(hosts, record, "ca")] == [old, new], record["label"]
        assert len(crls(hosts, record)) == 2, record["label"]


def test_phase_2_reissues_every_tiers_certificate_from_the_new_ca(load, hosts):
    coming = subject_of(os.path.join(PKI, "ca-next.pem"))
    keys = {(r["host"], r["name"]): pubkey(hosts, r) for r in RECORDS}
    rc, out, _recap = run(load, "ca-reissue", "mtls.nginx.ca_reissue", "-e", "mtls_rotate_serial=5")
    assert rc == 0, out[-4000:]
    assert subject_of(os.path.join(PKI, "ca.pem")) == coming
    for record in RECORDS:
        assert certs(hosts, record, "certificate")[0].issuer.rfc4514_string() == coming, record["label"]
        assert pubkey(hosts, record) != keys[(record["host"], record["name"])], record["label"]


def test_phase_3_retires_the_old_ca_from_every_tiers_bundle(load, hosts):
    new = subject_of(os.path.join(PKI, "ca.pem"))
    rc, out, _recap = run(load, "ca-retire", "mtls.nginx.ca_retire")
    assert rc == 0, out[-4000:]
    assert not os.path.exists(os.path.join(PKI, "ca-previous.pem"))
    for record in RECORDS:
        assert [c.subject.rfc4514_string() for c in certs(hosts, record, "ca")] == [new], record["label"]
        assert len(crls(hosts, record)) == 1, record["label"]


def test_check_expiry_lists_every_tier_of_every_host(load):
    rc, out, _recap = run(load, "check-expiry", "mtls.nginx.check_expiry")
    assert rc == 0, out[-4000:]
    for record in RECORDS:
        assert re.search(r"%s\s+%s\s" % (re.escape(record["host"]), re.escape(record["files"]["certificate"])), out), \
            record["label"]


def test_verify_passes_after_the_day2_jobs(load):
    rc, out, recap = run(load, "verify", "mtls.nginx.verify")
    assert rc == 0, out[-4000:]
    assert all(counters["changed"] == 0 for counters in recap.values()), recap


def test_no_request_failed_in_any_phase(load, capsys):
    load.phase("final")
    time.sleep(2)
    results = load.stop()
    lines, phases, totals = account(results.values())
    with capsys.disabled():  # shown whether the test passes or fails
        print("\n" + "\n".join(lines))
    for expected in ("rotate-orders", "revoke-host", "rotate-revoked-host", "crl-renewal", "ca-distribute",
                     "ca-reissue", "ca-retire"):
        assert expected in phases
    assert totals["get"] > 0 and totals["post"] > 0
    failures = [failure for result in results.values() for failure in result["failures"]]
    assert totals["failed"] == 0, failures[:10]


def test_site_after_the_day2_jobs_changes_nothing():
    rc, out, recap = run_playbook("mtls.nginx.site")
    assert rc == 0, out[-4000:]
    changed = {host: counters["changed"] for host, counters in recap.items() if counters["changed"]}
    assert changed == {}, out[-6000:]
