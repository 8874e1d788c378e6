"""Chains with an intermediate CA and the managed CRL: an issuing intermediate below the root
(mtls_pki_intermediate_common_name) signs every host certificate; both tiers trust the root
only and check a CRL of each CA, which nginx needs for every CA of a chain."""

import os

from cryptography import x509
from matrix_tests import make_client, put_client, straight_to
from mtls_testing import PKI, curl

ISSUER = "CN=mtls.nginx keyhome issuing CA"
ROOT = "CN=mtls.nginx CA"


def _subjects(host, path):
    pem = host.file(path).content
    return [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(pem)]


def _crl_issuers(host, path):
    text = host.file(path).content_string
    blocks = ["-----BEGIN X509 CRL-----" + b for b in text.split("-----BEGIN X509 CRL-----")[1:]]
    return sorted(x509.load_pem_x509_crl(b.encode()).issuer.rfc4514_string() for b in blocks)


def test_each_tier_presents_its_certificate_and_the_intermediate_and_trusts_the_root(proxy, upstream):
    name = upstream.backend.get_hostname()
    assert _subjects(upstream, "/etc/nginx/mtls/mtls-upstream/server-chain.pem") == ["CN=" + name, ISSUER]
    client = "CN=" + proxy.backend.get_hostname()
    assert _subjects(proxy, "/etc/nginx/mtls/mtls-proxy/client-chain.pem") == [client, ISSUER]
    assert _subjects(upstream, "/etc/nginx/mtls/mtls-upstream/client-ca.pem") == [ROOT]
    assert _subjects(proxy, "/etc/nginx/mtls/mtls-proxy/upstream-ca.pem") == [ROOT]


def test_each_tier_checks_a_crl_of_every_ca_of_the_chain(proxy, upstream):
    assert _crl_issuers(upstream, "/etc/nginx/mtls/mtls-upstream/client-ca.crl") == sorted([ROOT, ISSUER])
    assert _crl_issuers(proxy, "/etc/nginx/mtls/mtls-proxy/upstream-ca.crl") == sorted([ROOT, ISSUER])
    assert "proxy_ssl_crl /etc/nginx/mtls/mtls-proxy/upstream-ca.crl;" in proxy.run("nginx -T 2>/dev/null").stdout


def _as_intermediate_client(proxy, upstream, label, **options):
    cert, key = make_client(PKI, label, issuer="intermediate", **options)
    with open(os.path.join(PKI, "intermediate.pem"), "rb") as handle:
        chain = cert + handle.read()
    return straight_to(proxy, upstream, *put_client(proxy, "/root/inter/" + label, chain, key))


def test_a_client_issued_by_the_intermediate_is_accepted(proxy, upstream):
    response = _as_intermediate_client(proxy, upstream, "inter-client")
    assert response.status == 200, response.body
    assert response.json()["headers"]["X-Client-Issuer-DN"] == ISSUER


def test_a_client_revoked_on_the_intermediates_crl_is_refused(proxy, upstream):
    response = _as_intermediate_client(proxy, upstream, "inter-revoked", serial=0x7E57ED0002)
    assert response.status == 400, response.body
    assert response.json()["reason"] == "certificate revoked"


def test_requests_cross_both_tiers_with_intermediate_issued_identities(proxy):
    response = curl(proxy, "http://127.0.0.1:8080/via-intermediate")
    assert response.status == 200
    seen = response.json()["headers"]
    assert seen["X-Client-Verify"] == "SUCCESS" and seen["X-Client-Issuer-DN"] == ISSUER
