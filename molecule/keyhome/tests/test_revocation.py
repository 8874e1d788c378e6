"""The CA's word is final: what is revoked is read from the CA's issuance ledger, never from a
file on the host being revoked; a revoked key is never signed again; a rotation revokes the
certificate it replaced. Each test is one step of an operator's year, in file order, with real
handshakes straight at the upstream tier (its CRL decides) and through the proxy tier.

Runs after the key-stays-home tests: it revokes and rotates the proxy host's certificate."""

import json
import os

from cryptography import x509
from matrix_tests import make_client, put, put_client, straight_to
from mtls_testing import PKI, PROXY_PKI, UPSTREAM_PKI, curl, run_playbook

LEDGER = os.path.join(PKI, "ledger.json")
COPIED = "/root/copied-before-rotation"
ROTATE_PROXY = ("-e", json.dumps({"mtls_rotate_kinds": ["proxy"]}))


def _ledger():
    with open(LEDGER) as handle:
        return json.load(handle)["certificates"]


def _serial(host, path):
    pem = host.file(path).content
    return format(x509.load_pem_x509_certificates(pem)[0].serial_number, "X")


def _presented(proxy, upstream, base):
    """A request straight at the upstream tier from the proxy host with ``base``-chain.pem and
    ``base``.key: what nginx's own certificate gets there, whatever the other files say."""
    return straight_to(proxy, upstream, "--cert", base + "-chain.pem", "--key", base + ".key")


def _revoked_400(response):
    assert response.status == 400, response.body
    assert response.json()["reason"] == "certificate revoked", response.body


def _fresh_client(proxy, upstream, label):
    """A certificate of the issuing CA made now, presented from the proxy host: the upstream
    serves whoever the CA still vouches for."""
    cert, key = make_client(PKI, label, issuer="intermediate")
    with open(os.path.join(PKI, "intermediate.pem"), "rb") as handle:
        chain = cert + handle.read()
    return straight_to(proxy, upstream, *put_client(proxy, "/root/revocation/" + label, chain, key))


def test_a_copied_key_and_certificate_get_400_right_after_a_rotation(proxy, upstream):
    proxy.run_expect([0], "install -d -m 0700 %s && cp %s/client.key %s/client-chain.pem %s/"
                     % (COPIED, PROXY_PKI, PROXY_PKI, COPIED))
    assert _presented(proxy, upstream, COPIED + "/client").status == 200
    replaced = _serial(proxy, PROXY_PKI + "/client-chain.pem")
    rc, out, _recap = run_playbook("mtls.nginx.rotate", *ROTATE_PROXY)
    assert rc == 0, out[-4000:]
    _revoked_400(_presented(proxy, upstream, COPIED + "/client"))
    entry = next(e for e in _ledger() if e["serial"] == replaced)
    assert (entry["status"], entry["reason"]) == ("revoked", "superseded"), entry
    # The rotated tier itself keeps working, with its new certificate.
    assert _serial(proxy, PROXY_PKI + "/client-chain.pem") != replaced
    assert curl(proxy, "http://127.0.0.1:8080/after-rotation").status == 200


def test_a_spoofed_self_signed_client_pem_does_not_change_what_revoke_revokes(proxy, upstream):
    """Root on the proxy host puts a self-signed certificate with a chosen serial in client.pem:
    the ledger, not the file, says what the host holds; nginx's certificate gets 400."""
    real = _serial(proxy, PROXY_PKI + "/client-chain.pem")
    proxy.run_expect([0], "cd /root && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                          "-keyout spoof.key -subj /CN=spoof -set_serial 0x5B00F0 -days 2 -out %s/client.pem"
                     % PROXY_PKI)
    rc, out, _recap = run_playbook("mtls.nginx.revoke", "-e", "mtls_revoke_hosts=%s" % proxy.backend.get_hostname())
    assert rc == 0, out[-4000:]
    _revoked_400(_presented(proxy, upstream, PROXY_PKI + "/client"))
    statuses = {e["serial"]: e["status"] for e in _ledger()}
    assert statuses[real] == "revoked"
    assert "5B00F0" not in statuses
    assert _serial(upstream, UPSTREAM_PKI + "/server-chain.pem") in [s for s, v in statuses.items() if v == "valid"]
    assert _fresh_client(proxy, upstream, "after-spoof").status == 200


def test_the_upstream_rotates_while_its_only_caller_is_revoked(proxy, upstream):
    """A host was compromised and revoked, and the operator rotates the upstream before that host
    is back: the gate does not ask the revoked caller, whom the CRL refuses whatever the upstream
    serves, and checks the new certificate from the upstream's own host."""
    replaced = _serial(upstream, UPSTREAM_PKI + "/server-chain.pem")
    rc, out, _recap = run_playbook("mtls.nginx.rotate", "-e", json.dumps({"mtls_rotate_kinds": ["upstream"]}))
    assert rc == 0, out[-4000:]
    assert ("Not asked (revoked in the CA's ledger, and not rotated since): proxy tier mtls-proxy on %s."
            % proxy.backend.get_hostname()) in out, out[-4000:]
    assert "No caller left: the certificate served is checked from this host." in out, out[-4000:]
    assert _serial(upstream, UPSTREAM_PKI + "/server-chain.pem") != replaced
    entry = next(e for e in _ledger() if e["serial"] == replaced)
    assert (entry["status"], entry["reason"]) == ("revoked", "superseded"), entry
    # The revoked caller is still refused; a caller the CA vouches for meets the new certificate.
    _revoked_400(_presented(proxy, upstream, PROXY_PKI + "/client"))
    assert _fresh_client(proxy, upstream, "after-upstream-rotation").status == 200


def test_a_revoked_key_is_not_signed_again_for_a_new_name(proxy, upstream, tmp_path):
    name = proxy.backend.get_hostname()
    extra = tmp_path / "inventory"
    extra.mkdir()
    (extra / "hosts.yml").write_text(json.dumps({"all": {"hosts": {name: {
        "mtls_proxy_subject_alt_names": ["DNS:" + name, "DNS:billing.internal"]}}}}))
    rc, out, recap = run_playbook("mtls.nginx.site", "-i", str(extra), "--limit", name)
    assert rc != 0, out[-4000:]
    assert "its public key belongs to certificate" in out and "revoked" in out, out[-4000:]
    assert "only a new key brings the host back" in out, out[-4000:]
    assert recap[name]["changed"] == 0, out[-4000:]
    _revoked_400(_presented(proxy, upstream, PROXY_PKI + "/client"))


def test_a_revoked_key_is_not_signed_again_after_its_certificate_files_are_deleted(proxy):
    name = proxy.backend.get_hostname()
    proxy.run_expect([0], "rm -f %s/client.pem %s/client-chain.pem" % (PROXY_PKI, PROXY_PKI))
    rc, out, recap = run_playbook("mtls.nginx.site", "--limit", name)
    assert rc != 0, out[-4000:]
    assert "its public key belongs to certificate" in out and "only a new key brings the host back" in out, out[-4000:]
    assert recap[name]["changed"] == 0, out[-4000:]
    assert not proxy.file(PROXY_PKI + "/client-chain.pem").exists


def test_rotation_brings_the_revoked_host_back_with_a_new_key(proxy, upstream):
    rc, out, _recap = run_playbook("mtls.nginx.rotate", *ROTATE_PROXY)
    assert rc == 0, out[-4000:]
    response = curl(proxy, "http://127.0.0.1:8080/back")
    assert response.status == 200, response.body
    assert _presented(proxy, upstream, PROXY_PKI + "/client").status == 200


def test_the_upstreams_certificate_in_client_pem_does_not_get_the_upstream_revoked(proxy, upstream):
    """Root on the proxy host puts the upstream's certificate in client.pem: revoking the proxy
    host revokes the proxy's certificate, and the upstream keeps serving."""
    real = _serial(proxy, PROXY_PKI + "/client-chain.pem")
    upstream_serial = _serial(upstream, UPSTREAM_PKI + "/server-chain.pem")
    put(proxy, PROXY_PKI + "/client.pem", upstream.file(UPSTREAM_PKI + "/server.pem").content, "0644")
    rc, out, _recap = run_playbook("mtls.nginx.revoke", "-e", "mtls_revoke_hosts=%s" % proxy.backend.get_hostname())
    assert rc == 0, out[-4000:]
    _revoked_400(_presented(proxy, upstream, PROXY_PKI + "/client"))
    statuses = {e["serial"]: e["status"] for e in _ledger()}
    assert statuses[real] == "revoked" and statuses[upstream_serial] == "valid"
    # The upstream serves every client the CA still vouches for, with its own certificate.
    assert _fresh_client(proxy, upstream, "after-upstream-spoof").status == 200
    assert _serial(upstream, UPSTREAM_PKI + "/server-chain.pem") == upstream_serial


def test_certificates_lists_the_ledger_with_every_status(proxy):
    rc, out, recap = run_playbook("mtls.nginx.certificates")
    assert rc == 0, out[-4000:]
    assert all(counts["changed"] == 0 for counts in recap.values()), recap
    for word in ("SERIAL", "valid", "revoked (superseded)", "revoked (unspecified)", proxy.backend.get_hostname()):
        assert word in out, (word, out[-4000:])
    assert "5B00F0" not in out
