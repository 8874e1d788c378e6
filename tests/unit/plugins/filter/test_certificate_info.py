"""The certificate_info filter: one dict per certificate of PEM text, in file order, other blocks
skipped, and a filter error naming the source for anything nginx would refuse."""

import base64
import datetime
import hashlib
import re

import pytest
from ansible.errors import AnsibleFilterError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from ansible_collections.mtls.nginx.plugins.filter import certificate_info

info = certificate_info.FilterModule().filters()["certificate_info"]

START = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
END = datetime.datetime(2035, 6, 7, 8, 9, 10, tzinfo=datetime.timezone.utc)


def name(**attrs):
    oids = {"CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME}
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in attrs.items()])


def build(subject, key, serial, issuer=None, issuer_key=None, ca=False, key_ids=True, extra=()):
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer or subject)
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(START).not_valid_after(END))
    if key_ids:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key((issuer_key or key).public_key()), critical=False)
    for ext in extra:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def pki():
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = build(name(CN="Test Root", O="Example Corp"), root_key, 0x0A1B, ca=True)
    leaf = build(name(CN="orders"), leaf_key, 0x7E57ED0001, issuer=root.subject, issuer_key=root_key)
    # Renewed with the same key pair, as a renewal without key rotation does.
    renewed = build(name(CN="orders"), leaf_key, 0x7E57ED0002, issuer=root.subject, issuer_key=root_key)
    crl = (x509.CertificateRevocationListBuilder().issuer_name(root.subject)
           .last_update(START).next_update(END).sign(root_key, hashes.SHA256()))
    return {"root": root, "root_key": root_key, "leaf": leaf, "leaf_key": leaf_key, "renewed": renewed,
            "crl": crl.public_bytes(serialization.Encoding.PEM).decode("ascii")}


def test_a_bundle_keeps_file_order(pki):
    chain = info(pem(pki["leaf"]) + pem(pki["root"]))
    assert [c["common_name"] for c in chain] == ["orders", "Test Root"]
    bundle = info(pem(pki["root"]) + pem(pki["leaf"]))
    assert [c["common_name"] for c in bundle] == ["Test Root", "orders"]
    assert bundle == chain[::-1]


def test_fields_of_a_leaf_and_its_ca(pki):
    leaf, root = info(pem(pki["leaf"]) + pem(pki["root"]), source="server.pem")
    root_ski = x509.SubjectKeyIdentifier.from_public_key(pki["root_key"].public_key()).digest.hex()
    leaf_ski = x509.SubjectKeyIdentifier.from_public_key(pki["leaf_key"].public_key()).digest.hex()
    assert leaf == {
        "subject": "CN=orders",
        "issuer": "O=Example Corp,CN=Test Root",
        "common_name": "orders",
        "issuer_common_name": "Test Root",
        "serial": "7E57ED0001",
        "sha256": hashlib.sha256(der(pki["leaf"])).hexdigest(),
        "not_before": "2025-01-02T03:04:05+00:00",
        "not_after": "2035-06-07T08:09:10+00:00",
        "is_ca": False,
        "subject_key_id": leaf_ski,
        "authority_key_id": root_ski,
        "public_key_sha256": hashlib.sha256(pki["leaf_key"].public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest(),
    }
    assert root["subject"] == root["issuer"] == "O=Example Corp,CN=Test Root"
    assert root["is_ca"] is True
    assert root["subject_key_id"] == root["authority_key_id"] == root_ski
    assert root["sha256"] == hashlib.sha256(der(pki["root"])).hexdigest()
    for cert in (leaf, root):
        assert len(cert["sha256"]) == len(cert["public_key_sha256"]) == 64
        assert cert["sha256"] == cert["sha256"].lower() and ":" not in cert["sha256"]


def test_serial_is_upper_case_hex_without_colons_or_leading_zeros(pki):
    root = info(pem(pki["root"]))[0]
    assert root["serial"] == "A1B" == format(pki["root"].serial_number, "X")
    key = ec.generate_private_key(ec.SECP256R1())
    serial = 0x00ABCDEF0123456789
    assert info(pem(build(name(CN="s"), key, serial)))[0]["serial"] == "ABCDEF0123456789"


def test_public_key_sha256_tells_whether_the_key_was_replaced(pki):
    leaf, renewed, root = info(pem(pki["leaf"]) + pem(pki["renewed"]) + pem(pki["root"]))
    assert leaf["public_key_sha256"] == renewed["public_key_sha256"]
    assert leaf["sha256"] != renewed["sha256"] and leaf["serial"] != renewed["serial"]
    assert leaf["public_key_sha256"] != root["public_key_sha256"]
    rekeyed = build(name(CN="orders"), ec.generate_private_key(ec.SECP256R1()), 3,
                    issuer=pki["root"].subject, issuer_key=pki["root_key"])
    assert info(pem(rekeyed))[0]["public_key_sha256"] != leaf["public_key_sha256"]


def test_a_certificate_without_extensions_or_common_name():
    key = ec.generate_private_key(ec.SECP256R1())
    cert = info(pem(build(name(O="No CN"), key, 1, key_ids=False)))[0]
    assert cert["common_name"] is None and cert["issuer_common_name"] is None
    assert cert["subject"] == "O=No CN"
    assert cert["is_ca"] is False
    assert cert["subject_key_id"] is None and cert["authority_key_id"] is None


def test_other_blocks_are_skipped(pki):
    text = "Bundle built by hand\n" + pem(pki["leaf"]) + pki["crl"] + "\n" + pem(pki["root"]) + pki["crl"]
    assert [c["common_name"] for c in info(text)] == ["orders", "Test Root"]
    # CRLF line endings and bytes read as is are fine too.
    assert info(text.replace("\n", "\r\n").encode("ascii")) == info(text)


@pytest.mark.parametrize("text,problem", [
    ("", "no -----BEGIN CERTIFICATE----- block"),
    ("garbage\x00 not PEM at all", "no -----BEGIN CERTIFICATE----- block"),
    ("-----BEGIN CERTIFICATE-----\nMIIB\n", "PEM block 1 (CERTIFICATE) is truncated"),
    ("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
     "PEM block 1 (CERTIFICATE) has a corrupt base64 body"),
    ("-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % base64.b64encode(b"not DER").decode(),
     "PEM block 1 (CERTIFICATE) is not a readable certificate"),
])
def test_unreadable_text_is_a_filter_error_naming_the_source(text, problem):
    with pytest.raises(AnsibleFilterError, match=r"^certificate_info: /etc/nginx/x\.pem: .*" + re.escape(problem)):
        info(text, source="/etc/nginx/x.pem")
    with pytest.raises(AnsibleFilterError, match=r"^certificate_info: input: "):
        info(text)


def test_a_crl_alone_has_no_certificate(pki):
    with pytest.raises(AnsibleFilterError, match=r"^certificate_info: ca\.crl: .*no -----BEGIN CERTIFICATE"):
        info(pki["crl"], source="ca.crl")


def test_a_malformed_block_of_another_type_fails_as_nginx_does(pki):
    broken_crl = pki["crl"].replace("-----END X509 CRL-----", "")
    with pytest.raises(AnsibleFilterError, match=r"bundle\.pem: PEM block 2 \(X509 CRL\) is truncated"):
        info(pem(pki["leaf"]) + broken_crl + pem(pki["root"]), source="bundle.pem")


def test_an_undecodable_extension_names_its_block(pki):
    # Two subject key identifiers: the DER reads, its extensions do not.
    placeholder = x509.UnrecognizedExtension(ObjectIdentifier("1.2.3.4"), b"\x04\x02ab")
    cert = build(name(CN="dup"), pki["leaf_key"], 9, extra=[placeholder])
    raw = der(cert)
    assert raw.count(bytes.fromhex("06032a0304")) == 1
    raw = raw.replace(bytes.fromhex("06032a0304"), bytes.fromhex("0603551d0e"))
    broken = "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % base64.encodebytes(raw).decode()
    message = r"^certificate_info: dup\.pem: PEM block 2 \(CERTIFICATE\) is not a readable certificate"
    with pytest.raises(AnsibleFilterError, match=message):
        info(pki["crl"] + broken, source="dup.pem")


@pytest.mark.parametrize("value", [None, 42, ["-----BEGIN CERTIFICATE-----"]])
def test_wants_text(value):
    with pytest.raises(AnsibleFilterError, match=r"^certificate_info: src: expects PEM text"):
        info(value, source="src")
