"""Day 2 under live traffic: every day-2 command of the collection runs while a load
generator on the proxy host sends GET and POST requests through the proxy tier over kept-alive
connections, and no request may fail.

The tests run in file order and share the scenario's state: rotation of every host, the three
CA rollover phases (with the refusals that guard them), a revocation push by serial and by
host, a CRL renewal and a restart of nginx on one upstream host. The last tests read the load
generator's account of every phase and check that mtls.nginx.site has nothing left to change.
"""

import datetime
import json
import os
import re
import time

import pytest
from cryptography import x509
from day2_testing import SETTLE, Load, account, age_controller_crl, crl_number
from matrix_tests import (IDENTITY_HEADERS, fingerprint_sha1, identity_of, known_fingerprints, make_client, name_of, put,
                          without_lookup)
from mtls_testing import PKI, PROXY_PKI, UPSTREAM_PKI, curl, run_playbook

SERVICE = "orders.internal"  # mtls_upstream_server_name in the inventory
RATE = 60  # requests per second, over 4 kept-alive connections
CRL_BLOCK = "-----BEGIN X509 CRL-----.*?-----END X509 CRL-----"


def pubkey(host, path):
    out = host.run("openssl pkey -in %s -pubout | sha256sum" % path)
    assert out.rc == 0, out.stderr
    return out.stdout.split()[0]


def certs_in(host, path):
    return x509.load_pem_x509_certificates(host.file(path).content)


def leaf_issuer(host, path):
    return certs_in(host, path)[0].issuer.rfc4514_string()


def controller_state():
    """Every file of the controller's PKI directory and its content."""
    state = {}
    for top, _dirs, files in os.walk(PKI):
        for name in files:
            with open(os.path.join(top, name), "rb") as handle:
                state[os.path.relpath(os.path.join(top, name), PKI)] = handle.read()
    return state


def hosts_state(hosts):
    return {name_of(h): h.run("find /etc/nginx -type f -exec sha256sum {} + | sort").stdout for h in hosts}


def subject_of(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read()).subject.rfc4514_string()


@pytest.fixture(scope="module")
def load(proxy):
    """The load generator, running on the proxy host for the whole module."""
    generator = Load([(proxy, "http://127.0.0.1:8080")], rate=RATE, connections=4)
    yield generator
    generator.stop()


def run(load, phase, playbook, *extra):
    load.phase(phase)
    rc, out, recap = run_playbook(playbook, *extra)
    time.sleep(SETTLE)
    return rc, out, recap


# --- rotation ----------------------------------------------------------------------------------

def test_rotation_gives_every_host_a_new_key_made_on_it(load, upstreams, proxy):
    keys = [(h, UPSTREAM_PKI + "/server.key") for h in upstreams] + [(proxy, PROXY_PKI + "/client.key")]
    before = {name_of(h): pubkey(h, path) for h, path in keys}
    serials = {name_of(h): certs_in(h, path.replace(".key", ".pem"))[0].serial_number for h, path in keys}
    rc, out = run(load, "rotate", "mtls.nginx.rotate")[:2]
    assert rc == 0, out[-4000:]
    for host, path in keys:
        assert pubkey(host, path) != before[name_of(host)], name_of(host)
        assert certs_in(host, path.replace(".key", ".pem"))[0].serial_number != serials[name_of(host)]
        # Old key removed once the new certificate served; nothing staged is left behind.
        leftovers = host.run("ls %s | grep -E '\\.(next|previous)$' || true" % os.path.dirname(path)).stdout
        assert leftovers.strip() == "", leftovers
    # Upstream hosts first, one batch at a time, each gated before the next.
    assert out.index("mtls-rotation-upstream-1") < out.index("mtls-rotation-proxy")
    assert out.count("Gate, a request from a proxy host") == 2, out[-4000:]


def test_after_the_rotation_the_callers_new_certificate_is_looked_up_with_the_same_headers(upstreams, proxy):
    """The rotation pushed the proxy's new certificate into every upstream tier's known callers:
    its identity headers are looked up, and are byte for byte those nginx computes for it."""
    fingerprint = fingerprint_sha1(proxy, PROXY_PKI + "/client.pem")
    for upstream in upstreams:
        assert fingerprint in known_fingerprints(upstream), name_of(upstream)

    def observed():
        return identity_of(curl(proxy, "http://127.0.0.1:8080/identity"))

    looked_up = observed()
    assert looked_up["X-Client-Fingerprint"] == fingerprint
    computed = without_lookup(upstreams, observed)
    for name in IDENTITY_HEADERS:
        assert looked_up[name] == computed[name], (name, looked_up[name], computed[name])


def test_rotation_in_check_mode_changes_nothing(load, upstreams, proxies):
    before = (controller_state(), hosts_state(upstreams + proxies))
    rc, out = run(load, "rotate-check", "mtls.nginx.rotate", "--check")[:2]
    assert rc == 0, out[-4000:]
    assert (controller_state(), hosts_state(upstreams + proxies)) == before


def test_a_failed_gate_puts_the_old_key_back_and_stops_the_run(load, upstreams, proxy):
    keys = {name_of(h): pubkey(h, UPSTREAM_PKI + "/server.key") for h in upstreams}
    proxy_key = pubkey(proxy, PROXY_PKI + "/client.key")
    # The gate's request comes from the proxy host, with the client certificate the proxy role
    # keeps under its config name; under a name that has none, no gate can pass.
    rc, out = run(load, "failed-gate", "mtls.nginx.rotate", "-e", "mtls_proxy_config_name=mtls-nowhere")[:2]
    assert rc != 0
    assert ('rotation of the upstream tier mtls-upstream on mtls-rotation-upstream-1 failed at "Gate, a request from a proxy host'
            in out), out[-4000:]
    assert "The old key and certificate serve again" in out
    # The failed host is back on its old key, nothing staged is left, the later hosts were not touched.
    for host in upstreams:
        assert pubkey(host, UPSTREAM_PKI + "/server.key") == keys[name_of(host)], name_of(host)
        leftovers = host.run("ls %s | grep -E '\\.(next|previous)$' || true" % UPSTREAM_PKI).stdout
        assert leftovers.strip() == "", leftovers
    assert pubkey(proxy, PROXY_PKI + "/client.key") == proxy_key
    rotations = out.split("PLAY [Rotate the upstream tiers")[1].split("PLAY RECAP")[0]
    assert "mtls-rotation-upstream-1" in rotations and "mtls-rotation-upstream-2" not in rotations
    assert curl(proxy, "http://127.0.0.1:8080/after-failed-gate").status == 200


# --- CA rollover -------------------------------------------------------------------------------

def test_phase_1_puts_the_new_ca_beside_the_old_in_every_bundle(load, upstreams, proxy):
    rc, out = run(load, "ca-distribute", "mtls.nginx.ca_distribute")[:2]
    assert rc == 0, out[-4000:]
    new = subject_of(os.path.join(PKI, "ca-next.pem"))
    old = subject_of(os.path.join(PKI, "ca.pem"))
    assert new != old
    for host, bundle in [(h, UPSTREAM_PKI + "/client-ca.pem") for h in upstreams] + [(proxy, PROXY_PKI + "/upstream-ca.pem")]:
        subjects = [c.subject.rfc4514_string() for c in certs_in(host, bundle)]
        assert subjects == [old, new], (name_of(host), subjects)
        # A CRL for every CA of both generations: two roots, two intermediates.
        crl = host.file(bundle.replace(".pem", ".crl")).content_string
        assert crl.count("BEGIN X509 CRL") == 4, name_of(host)


def test_phase_3_before_phase_2_is_refused_with_nothing_changed(load, upstreams, proxies):
    before = (controller_state(), hosts_state(upstreams + proxies))
    rc, out = run(load, "refused-retire", "mtls.nginx.ca_retire")[:2]
    assert rc != 0
    assert "phase 2 (mtls.nginx.ca_reissue) has not run" in out, out[-3000:]
    assert (controller_state(), hosts_state(upstreams + proxies)) == before


def test_phase_2_is_refused_while_a_bundle_lacks_the_new_ca(load, upstreams, proxies):
    victim = upstreams[-1]
    bundle = UPSTREAM_PKI + "/client-ca.pem"
    victim.run_expect([0], "cp -p %s /root/bundle.saved && openssl x509 -in /root/bundle.saved > %s" % (bundle, bundle))
    try:
        before = (controller_state(), hosts_state(upstreams + proxies))
        rc, out = run(load, "refused-reissue", "mtls.nginx.ca_reissue")[:2]
        assert rc != 0
        assert "%s:%s does not hold the new CA" % (name_of(victim), bundle) in out, out[-3000:]
        assert (controller_state(), hosts_state(upstreams + proxies)) == before
    finally:
        victim.run_expect([0], "mv /root/bundle.saved %s" % bundle)


def test_phase_2_reissues_every_certificate_from_the_new_ca(load, upstreams, proxy):
    coming = subject_of(os.path.join(PKI, "intermediate-next.pem"))
    keys = {name_of(h): pubkey(h, UPSTREAM_PKI + "/server.key") for h in upstreams}
    rc, out = run(load, "ca-reissue", "mtls.nginx.ca_reissue")[:2]
    assert rc == 0, out[-4000:]
    assert subject_of(os.path.join(PKI, "intermediate.pem")) == coming
    assert os.path.exists(os.path.join(PKI, "ca-previous.pem"))
    for host in upstreams:
        assert leaf_issuer(host, UPSTREAM_PKI + "/server.pem") == coming
        assert pubkey(host, UPSTREAM_PKI + "/server.key") != keys[name_of(host)]
    assert leaf_issuer(proxy, PROXY_PKI + "/client.pem") == coming


def test_phase_3_retires_the_old_ca_into_the_archive(load, upstreams, proxy):
    old = subject_of(os.path.join(PKI, "ca-previous.pem"))
    new = subject_of(os.path.join(PKI, "ca.pem"))
    with open(os.path.join(PKI, "generation")) as handle:
        archive = os.path.join(PKI, "archive", "generation-%d" % (int(handle.read()) - 1))
    rc, out = run(load, "ca-retire", "mtls.nginx.ca_retire")[:2]
    assert rc == 0, out[-4000:]
    assert subject_of(os.path.join(archive, "ca.pem")) == old
    assert os.path.exists(os.path.join(archive, "ca.key"))
    assert not os.path.exists(os.path.join(PKI, "ca-previous.pem"))
    for host, bundle in [(h, UPSTREAM_PKI + "/client-ca.pem") for h in upstreams] + [(proxy, PROXY_PKI + "/upstream-ca.pem")]:
        assert [c.subject.rfc4514_string() for c in certs_in(host, bundle)] == [new], name_of(host)


# --- revocation push ---------------------------------------------------------------------------

def _as_client(proxy, upstream, pki):
    return curl(proxy, "https://%s:8443/revocation" % SERVICE, "--connect-to", "%s:8443:%s:8443" % (SERVICE, name_of(upstream)),
                "--cacert", PROXY_PKI + "/upstream-ca.pem", "--cert", pki + "/client-chain.pem", "--key", pki + "/client.key")


def test_a_revoked_client_gets_400_right_after_the_push(load, proxy, upstreams):
    cert, key = make_client(PKI, "billing-batch", issuer="intermediate")
    with open(os.path.join(PKI, "intermediate.pem"), "rb") as handle:
        chain = cert + handle.read()
    put(proxy, "/root/billing/client-chain.pem", chain, "0644")
    put(proxy, "/root/billing/client.key", key)
    for upstream in upstreams:
        assert _as_client(proxy, upstream, "/root/billing").status == 200
    serial = "%X" % x509.load_pem_x509_certificate(cert).serial_number
    rc, out = run(load, "revoke-serial", "mtls.nginx.revoke", "-e", json.dumps({"mtls_revoke_serials": [serial]}))[:2]
    assert rc == 0, out[-4000:]
    for upstream in upstreams:
        answer = _as_client(proxy, upstream, "/root/billing")
        assert answer.status == 400, answer.body
        assert answer.json()["reason"] == "certificate revoked", answer.body
    # Signed by hand with the CA's key, outside the ledger: recorded there as revoked, by serial only.
    with open(os.path.join(PKI, "ledger.json")) as handle:
        entry = next(e for e in json.load(handle)["certificates"] if e["serial"] == serial.lstrip("0"))
    assert entry["status"] == "revoked" and entry["note"] == "not signed through the ledger", entry


def test_a_host_revoked_by_name_is_cut_off_and_comes_back_with_a_new_key(load, proxy, upstreams):
    cut = upstreams[-1]
    log = "/var/log/nginx/mtls-proxy.error.log"
    refusals = proxy.file(log).content_string.count("certificate revoked")
    rc, out = run(load, "revoke-host", "mtls.nginx.revoke",
                  "-e", json.dumps({"mtls_revoke_hosts": [name_of(cut)], "mtls_revoke_tier": "upstream"}))[:2]
    assert rc == 0, out[-4000:]
    # The proxy tier refuses the revoked upstream (proxy_ssl_crl) and sends everything to the other.
    answers = [curl(proxy, "http://127.0.0.1:8080/after-revocation/%d" % i) for i in range(10)]
    assert [a.status for a in answers] == [200] * 10
    assert {a.json()["headers"]["Host"] for a in answers} == {SERVICE}
    assert proxy.file(log).content_string.count("certificate revoked") > refusals
    rc, out = run(load, "rotate-revoked-host", "mtls.nginx.rotate", "--limit", name_of(cut))[:2]
    assert rc == 0, out[-4000:]
    assert "mtls-rotation-upstream-1" not in out.split("PLAY RECAP")[-1]


# --- CRL renewal, restart ----------------------------------------------------------------------

def _crls(text):
    return [x509.load_pem_x509_crl(block.encode()) for block in re.findall(CRL_BLOCK, text, re.S)]


def test_a_crl_renewal_reaches_every_host(load, upstreams, proxy):
    for name in ("ca.crl", "intermediate.crl"):
        age_controller_crl(PKI, name)
    before = {name_of(h): sorted(crl_number(c) for c in _crls(h.file(UPSTREAM_PKI + "/client-ca.crl").content_string))
              for h in upstreams}
    rc, out = run(load, "crl-renewal", "mtls.nginx.renew_crl")[:2]
    assert rc == 0, out[-4000:]
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=6)
    for host, path in [(h, UPSTREAM_PKI + "/client-ca.crl") for h in upstreams] + [(proxy, PROXY_PKI + "/upstream-ca.crl")]:
        crls = _crls(host.file(path).content_string)
        assert len(crls) == 2, name_of(host)
        assert all(c.next_update_utc > soon for c in crls), name_of(host)
    for host in upstreams:
        after = sorted(crl_number(c) for c in _crls(host.file(UPSTREAM_PKI + "/client-ca.crl").content_string))
        assert all(a > b for a, b in zip(after, before[name_of(host)])), (name_of(host), before, after)


def test_restarting_nginx_on_one_upstream_fails_no_request(load, upstreams):
    load.phase("restart-upstream")
    upstreams[0].run_expect([0], "systemctl restart nginx")
    time.sleep(SETTLE)


def test_a_storm_of_reloads_on_both_tiers_fails_no_request(load, upstreams, proxy):
    # Back to back, as a fleet-wide push does: every closed kept-alive connection that meets a
    # request, and every server the proxy sets aside for it (max_fails), is there to be hit.
    load.phase("reload-storm")
    for round_ in range(15):
        for host in upstreams + ([proxy] if round_ % 3 == 0 else []):
            host.run_expect([0], "/usr/local/sbin/mtls-nginx-reload nginx")
    time.sleep(SETTLE)


# --- the account -------------------------------------------------------------------------------

def test_no_request_failed_in_any_phase(load, capsys):
    load.phase("final")
    time.sleep(2)
    result = load.stop()[load.hosts[0].backend.get_hostname()]
    lines, names, totals = account([result])
    with capsys.disabled():  # shown whether the test passes or fails
        print("\n" + "\n".join(lines))
    for expected in ("rotate", "ca-distribute", "ca-reissue", "ca-retire", "revoke-serial", "revoke-host",
                     "crl-renewal", "restart-upstream", "reload-storm"):
        assert expected in names
    assert totals["get"] > 0 and totals["post"] > 0
    assert totals["failed"] == 0, json.dumps(result["failures"][:10], indent=1)
    # At least 50 requests/s over the whole run (the generator is asked for 60).
    elapsed = result["updated"] - result["started"]
    assert totals["sent"] / elapsed >= 50, (totals["sent"], elapsed)


def test_site_after_the_day2_jobs_changes_nothing():
    rc, out, recap = run_playbook("mtls.nginx.site")
    assert rc == 0, out[-4000:]
    changed = {host: counters["changed"] for host, counters in recap.items() if counters["changed"]}
    assert changed == {}, out[-6000:]
