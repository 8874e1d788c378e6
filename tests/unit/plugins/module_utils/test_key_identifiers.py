"""Key identifiers without SHA-1: new subject key identifiers are RFC 7093 method 1 (the leftmost
160 bits of the SHA-256 of the subjectPublicKey BIT STRING), and an authority key identifier is
always the subject key identifier its issuer carries, so CAs made before (SHA-1, RFC 5280
method 1) keep their chains: the leaves they issued, what they issue now, and their renewals."""

import datetime
import hashlib
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from fakemodule import FakeModule
from pkifactory import write
from ansible_collections.mtls.nginx.plugins.module_utils import _crypto
from ansible_collections.mtls.nginx.plugins.module_utils._check import check
from ansible_collections.mtls.nginx.plugins.module_utils._files import FileWriter
from ansible_collections.mtls.nginx.plugins.module_utils._pki import CertificateAuthority, ensure_leaf

KEYS = {
    "ecdsa-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ecdsa-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "rsa2048": lambda: rsa.generate_private_key(65537, 2048),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
}


def read_cert(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def ski(cert):
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def aki(cert_or_crl):
    return cert_or_crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier


def spki_bit_string(public_key):
    """The subjectPublicKey BIT STRING's value, read out of the SubjectPublicKeyInfo DER here
    independently of the collection: SEQUENCE { AlgorithmIdentifier, BIT STRING }."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def element(data, i):
        size, start = data[i + 1], i + 2
        if size & 0x80:
            count = size & 0x7F
            size, start = int.from_bytes(data[start:start + count], "big"), start + count
        return start, start + size

    body_start, body_end = element(der, 0)
    algorithm_end = element(der, body_start)[1]
    assert der[algorithm_end] == 0x03
    bits_start, bits_end = element(der, algorithm_end)
    assert der[bits_start] == 0, "a key is whole bytes: no unused bits"
    return der[bits_start + 1:bits_end]


def rfc7093(public_key):
    return hashlib.sha256(spki_bit_string(public_key)).digest()[:20]


def old_style_ca(directory, name="old-ca", cn="Old CA"):
    """A root CA as the collection made them before: SHA-1 key identifiers, from cryptography."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    write(directory, name + ".pem", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    write(directory, name + ".key", _crypto.private_key_pem(key))
    return cert


def ensure_ca(directory, name="ca", **kw):
    result = CertificateAuthority(FileWriter(FakeModule()), str(directory / (name + ".pem")),
                                  str(directory / (name + ".key")), kw.pop("cn", "New CA"), **kw).ensure()
    return read_cert(directory / (name + ".pem")), result


def issue_leaf(directory, ca="ca", name="leaf", **kw):
    args = dict(purpose="server", common_name="svc", subject_alt_names=["DNS:svc"],
                path=str(directory / (name + ".pem")), privatekey_path=str(directory / (name + ".key")),
                ca_path=str(directory / (ca + ".pem")), ca_privatekey_path=str(directory / (ca + ".key")))
    args.update(kw)
    ensure_leaf(FileWriter(FakeModule()), **args)
    return read_cert(directory / (name + ".pem"))


def test_the_bit_string_is_the_one_sha1_identifiers_hash():
    """The value hashed is what RFC 5280 method 1 hashes too: cryptography's SHA-1 identifier
    of the same bytes matches, for every key type."""
    for make in KEYS.values():
        public_key = make().public_key()
        assert _crypto.subject_public_key_bits(public_key) == spki_bit_string(public_key)
        assert hashlib.sha1(spki_bit_string(public_key)).digest() == \
            x509.SubjectKeyIdentifier.from_public_key(public_key).digest


@pytest.mark.parametrize("key_type", sorted(KEYS))
def test_new_key_identifiers_are_rfc7093_method_1(tmp_path, key_type):
    ca, _result = ensure_ca(tmp_path, key_type=key_type)
    leaf = issue_leaf(tmp_path, key_type=key_type)
    for cert in (ca, leaf):
        assert len(ski(cert)) == 20
        assert ski(cert) == rfc7093(cert.public_key()) == _crypto.key_identifier(cert.public_key())
        assert ski(cert) != x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    # A root names itself as its authority; a leaf names its CA's subject key identifier.
    assert aki(ca) == ski(ca)
    assert aki(leaf) == ski(ca)


def test_a_new_ca_chains_through_its_key_identifiers(tmp_path):
    root, _result = ensure_ca(tmp_path, name="root", cn="Root CA", path_length=1)
    inter, _result = ensure_ca(tmp_path, name="int", cn="Int CA", path_length=0,
                               parent_path=str(tmp_path / "root.pem"), parent_privatekey_path=str(tmp_path / "root.key"),
                               crl_path=str(tmp_path / "int.crl"))
    leaf = issue_leaf(tmp_path, ca="int")
    crl = _crypto.load_crl((tmp_path / "int.crl").read_bytes(), "int.crl")
    assert ski(inter) == rfc7093(inter.public_key())
    assert aki(inter) == ski(root)
    assert aki(leaf) == ski(inter)
    assert aki(crl) == ski(inter)


def test_an_old_sha1_ca_keeps_its_chains(tmp_path):
    old = old_style_ca(tmp_path)
    old_ski = ski(old)
    assert old_ski == hashlib.sha1(spki_bit_string(old.public_key())).digest()

    # What the old CA issues now names its SHA-1 identifier, though the leaf's own is SHA-256.
    leaf = issue_leaf(tmp_path, ca="old-ca")
    assert aki(leaf) == old_ski
    assert ski(leaf) == rfc7093(leaf.public_key())

    request = ensure_leaf(FileWriter(FakeModule()), "client", operation="request", common_name="svc",
                          privatekey_path=str(tmp_path / "client.key"))
    signed = ensure_leaf(FileWriter(FakeModule()), "client", operation="sign", common_name="svc",
                         csr_content=request["csr"], ca_path=str(tmp_path / "old-ca.pem"),
                         ca_privatekey_path=str(tmp_path / "old-ca.key"))
    assert aki(x509.load_pem_x509_certificate(signed["certificate_pem"].encode("ascii"))) == old_ski

    inter, _result = ensure_ca(tmp_path, name="int", cn="Int CA", parent_path=str(tmp_path / "old-ca.pem"),
                               parent_privatekey_path=str(tmp_path / "old-ca.key"))
    assert aki(inter) == old_ski

    # The CA module keeps the old certificate as it is, and signs its CRL with the same identifier.
    kept, result = ensure_ca(tmp_path, name="old-ca", cn="Old CA", crl_path=str(tmp_path / "old-ca.crl"))
    assert result["reasons"] == ["no CRL at %s" % (tmp_path / "old-ca.crl")]
    assert kept == old
    assert aki(_crypto.load_crl((tmp_path / "old-ca.crl").read_bytes(), "old-ca.crl")) == old_ski


def test_a_renewed_ca_keeps_the_identifier_its_leaves_name(tmp_path):
    old = old_style_ca(tmp_path)
    leaf_before = issue_leaf(tmp_path, ca="old-ca", name="before")
    renewed, result = ensure_ca(tmp_path, name="old-ca", cn="Old CA", valid_days=4000, renew_before_days=3900)
    assert any("within renew_before_days" in r for r in result["reasons"]), result["reasons"]
    assert renewed.serial_number != old.serial_number
    assert ski(renewed) == aki(renewed) == ski(old) == aki(leaf_before)

    # A new CA key is a new identity: then the identifier is made anew, without SHA-1.
    (tmp_path / "old-ca.key").unlink()
    rekeyed, _result = ensure_ca(tmp_path, name="old-ca", cn="Old CA")
    assert ski(rekeyed) == rfc7093(rekeyed.public_key()) != ski(old)


@pytest.mark.parametrize("old", [True, False])
def test_certificate_check_accepts_chains_of_either_identifier(tmp_path, old):
    if old:
        old_style_ca(tmp_path, name="ca")
    else:
        ensure_ca(tmp_path)
    issue_leaf(tmp_path)
    ensure_ca(tmp_path, cn="Old CA" if old else "New CA", crl_path=str(tmp_path / "ca.crl"))
    problems, facts, _converted = check(str(tmp_path / "leaf.pem"), ca_path=str(tmp_path / "ca.pem"),
                                        privatekey_path=str(tmp_path / "leaf.key"), purpose="server",
                                        crl_path=str(tmp_path / "ca.crl"))
    assert problems == []
    assert facts["verified_chain"] == ["CN=svc", "CN=%s" % ("Old CA" if old else "New CA")]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize("old", [True, False])
def test_openssl_verifies_leaves_issued_before_and_after_a_renewal(tmp_path, old):
    """OpenSSL (nginx's verifier) refuses an issuer whose subject key identifier differs from
    the leaf's authority key identifier; a renewal must not orphan the leaves already out."""
    if old:
        old_style_ca(tmp_path, name="ca", cn="CA")
    else:
        ensure_ca(tmp_path, cn="CA")
    issue_leaf(tmp_path, name="before")
    ensure_ca(tmp_path, cn="CA", valid_days=4000, renew_before_days=3900)
    issue_leaf(tmp_path, name="after")
    for leaf in ("before.pem", "after.pem"):
        done = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(tmp_path / "ca.pem"),
                               str(tmp_path / leaf)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
