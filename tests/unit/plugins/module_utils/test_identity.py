"""The identity values of a known caller's certificate, as nginx computes them per request."""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.mtls.nginx.plugins.module_utils import _identity


def _certificate(subject="billing-1", serial=0xABC, issuer="mtls.nginx CA"):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert, cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def test_the_pem_is_escaped_as_nginx_escapes_a_uri_component():
    assert _identity.escaped_pem("-----BEGIN CERTIFICATE-----\nMIIB+/x=\n") == \
        "-----BEGIN%20CERTIFICATE-----%0AMIIB%2B%2Fx%3D%0A"


def test_the_serial_is_whole_bytes_of_upper_case_hex():
    assert _identity.serial_hex(0xABC) == "0ABC"
    assert _identity.serial_hex(0x7E57ED0002) == "7E57ED0002"


def test_the_identity_of_a_certificate_is_its_fingerprint_and_nginxs_values():
    cert, pem = _certificate()
    found = _identity.identity(pem)
    assert found["fingerprint"] == cert.fingerprint(hashes.SHA1()).hex()
    assert found["certificate"].startswith("-----BEGIN%20CERTIFICATE-----%0A")
    assert found["certificate"].endswith("%0A-----END%20CERTIFICATE-----%0A")
    assert (found["subject_dn"], found["issuer_dn"], found["serial"]) == ("CN=billing-1", "CN=mtls.nginx CA", "0ABC")


def test_names_this_code_cannot_render_as_openssl_does_are_left_to_nginx():
    assert _identity.identity(_certificate(subject="bïlling")[1]) is None
    assert _identity.identity(_certificate(subject='a"b')[1]) is None


def test_the_map_holds_only_the_callers_certificates():
    _cert, mine = _certificate("billing-1")
    _cert, other = _certificate("reports-1")
    issued = [{"host": "billing-1", "tier": "mtls-proxy", "pem": mine},
              {"host": "reports-1", "tier": "mtls-proxy", "pem": other},
              {"host": "billing-1", "tier": "mtls-reporting", "pem": other}]
    found = _identity.identity_map(issued, [{"host": "billing-1", "name": "mtls-proxy"}])
    assert [entry["subject_dn"] for entry in found] == ["CN=billing-1"]
    assert _identity.identity_map(issued, []) == []


# --- Whom a rotation gate asks ------------------------------------------------------------------

def _caller(host, name="mtls-mesh-web-to-orders"):
    return {"host": host, "name": name, "label": "%s on %s" % (name, host)}


def _gated(callers, probe_from=None, probes=None):
    return {"callers": callers, "rotate": {"probe_from": probe_from, "probes": probes if probes is not None else callers[:1]}}


def _revoked(*callers):
    return [{"host": c["host"], "tier": c["name"]} for c in callers]


def test_the_gate_asks_the_first_caller_the_ledger_does_not_hold_revoked():
    web1, web2 = _caller("f-web1"), _caller("f-web2")
    assert _identity.gate_callers(_gated([web1, web2]), []) == {"probes": [web1], "passed_over": []}
    # web1 revoked by name: web2 is asked.
    assert _identity.gate_callers(_gated([web1, web2]), _revoked(web1)) == {
        "probes": [web2], "passed_over": ["mtls-mesh-web-to-orders on f-web1"]}


def test_with_every_caller_revoked_the_gate_checks_the_served_certificate():
    web1, web2 = _caller("f-web1"), _caller("f-web2")
    assert _identity.gate_callers(_gated([web1, web2]), _revoked(web1, web2)) == {
        "probes": [], "passed_over": ["mtls-mesh-web-to-orders on f-web1", "mtls-mesh-web-to-orders on f-web2"]}


def test_another_revoked_tier_of_the_callers_host_does_not_pass_it_over():
    web1 = _caller("f-web1")
    other = _caller("f-web1", name="mtls-mesh-web-to-catalog")
    assert _identity.gate_callers(_gated([web1]), _revoked(other)) == {"probes": [web1], "passed_over": []}


def test_named_probe_hosts_and_an_unread_ledger_keep_the_plans_choice():
    web1, web2 = _caller("f-web1"), _caller("f-web2")
    named = _gated([web1, web2], probe_from=["f-web1"], probes=[web1])
    assert _identity.gate_callers(named, _revoked(web1)) == {"probes": [web1], "passed_over": []}
    assert _identity.gate_callers(_gated([web1, web2]), None) == {"probes": [web1], "passed_over": []}
