"""A CA whose private key lives in a PKCS#11 token (privatekey_pkcs11), against a real SoftHSM2 token.

A root CA and an intermediate are made with their keys inside the token, the intermediate signs
a host's CSR and both sign their CRLs; cryptography and ``openssl verify -crl_check`` accept the
chain and the CRLs, and a revoked leaf is refused. No key file is written anywhere, the root
certificate carries the token key's public half (and identifiers computed from it), and a wrong
PIN, a missing key or a key of another type is named with the token and the label. The modules
take the new options (and keep the PIN out of their answers)."""

import os
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fakemodule import FakeModule
from modulerun import run_module
from ansible_collections.mtls.nginx.plugins.module_utils import _crypto, _pkcs11
from ansible_collections.mtls.nginx.plugins.module_utils._crypto import PKIError
from ansible_collections.mtls.nginx.plugins.module_utils._files import FileWriter
from ansible_collections.mtls.nginx.plugins.module_utils._pki import CertificateAuthority, ensure_leaf
from ansible_collections.mtls.nginx.plugins.modules import ca as ca_module
from ansible_collections.mtls.nginx.plugins.modules import certificate as certificate_module

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "1234-ca-unit"

pytestmark = pytest.mark.skipif(not os.path.exists(SOFTHSM),
                                reason="SoftHSM2 is needed (scripts/setup with MTLS_TEST_TOOLS=1)")


@pytest.fixture
def token(tmp_path, monkeypatch):
    """A token labelled 'ca' with user PIN PIN, in a token directory of this test alone."""
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n" % tokens)
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "ca", "--pin", PIN,
                    "--so-pin", "5678-ca-unit"], check=True, capture_output=True)
    return "ca"


def in_token(label, **kw):
    return dict(dict(module_path=SOFTHSM, token_label="ca", pin=PIN, key_label=label), **kw)


def ensure_ca(directory, name, cn, check_mode=False, **kw):
    directory.mkdir(parents=True, exist_ok=True)
    writer = FileWriter(FakeModule(check_mode))
    result = CertificateAuthority(writer, str(directory / (name + ".pem")), None, cn, **kw).ensure()
    return writer, result


def sign_csr(directory, csr_pem, ca="inter", label="inter", **kw):
    writer = FileWriter(FakeModule())
    kw.setdefault("ca_privatekey_pkcs11", in_token(label))
    result = ensure_leaf(writer, purpose="server", operation="sign", common_name="svc.internal",
                         subject_alt_names=["DNS:svc.internal"], csr_content=csr_pem,
                         ca_path=str(directory / (ca + "-chain.pem")), **kw)
    return result


def host_csr(tmp_path):
    """A CSR made on a 'host' (its key is a file there, as key_source files has it)."""
    writer = FileWriter(FakeModule())
    host = tmp_path / "host"
    host.mkdir(exist_ok=True)
    return ensure_leaf(writer, purpose="server", operation="request", common_name="svc.internal",
                       subject_alt_names=["DNS:svc.internal"], privatekey_path=str(host / "svc.key"))["csr"]


def token_public_key(label):
    token = _pkcs11.Token(SOFTHSM, "ca", PIN)
    try:
        return _pkcs11.public_key_of(token.key(label))
    finally:
        token.close()


def cert_at(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def crl_at(path):
    return x509.load_pem_x509_crl(path.read_bytes())


def issued(cert, issuer):
    """cryptography's own check from 40 on (verify_directly_issued_by); the collection's before."""
    verify = getattr(cert, "verify_directly_issued_by", None)
    if verify is None:
        return _crypto.issued_by(cert, issuer)
    verify(issuer)
    return True


def openssl_verify(*args):
    return subprocess.run(["openssl", "verify"] + list(args), capture_output=True, text=True, check=False)


def no_private_key_anywhere(*directories):
    for directory in directories:
        for root, _dirs, names in os.walk(str(directory)):
            for name in names:
                path = os.path.join(root, name)
                if "tokens" in path.split(os.sep) or name.endswith(".conf"):
                    continue
                with open(path, "rb") as handle:
                    assert b"PRIVATE KEY" not in handle.read(), path


@pytest.fixture
def pki(tmp_path, token):
    """A root CA and an intermediate, both with their keys in the token, and their CRLs."""
    pki = tmp_path / "pki"
    _w, root = ensure_ca(pki, "root", "Token Root CA", path_length=1, privatekey_pkcs11=in_token("root"),
                         crl_path=str(pki / "root.crl"))
    _w, inter = ensure_ca(pki, "inter", "Token Intermediate CA", path_length=0, privatekey_pkcs11=in_token("inter"),
                          parent_path=str(pki / "root.pem"), parent_privatekey_pkcs11=in_token("root"),
                          chain_path=str(pki / "inter-chain.pem"), crl_path=str(pki / "inter.crl"))
    assert "no key labelled 'root' in PKCS#11 token 'ca'" in root["reasons"]
    assert "no key labelled 'inter' in PKCS#11 token 'ca'" in inter["reasons"]
    return pki


def test_the_chain_and_the_crls_signed_in_the_token_verify(tmp_path, pki):
    root, inter = cert_at(pki / "root.pem"), cert_at(pki / "inter.pem")
    assert issued(root, root) and issued(inter, root)
    assert crl_at(pki / "root.crl").is_signature_valid(root.public_key())
    assert crl_at(pki / "inter.crl").is_signature_valid(inter.public_key())
    signed = sign_csr(pki, host_csr(tmp_path))
    assert signed["signed"] is True
    leaf_path = tmp_path / "leaf.pem"
    leaf_path.write_text(signed["certificate_pem"])
    assert issued(cert_at(leaf_path), inter)
    # The chain as nginx gets it: the leaf, then the intermediate; the root is the trust anchor.
    assert signed["chain_pem"] == signed["certificate_pem"] + (pki / "inter.pem").read_text()
    for target, untrusted in ((pki / "inter.pem", None), (leaf_path, pki / "inter.pem")):
        args = ["-CAfile", str(pki / "root.pem"), "-crl_check_all", "-CRLfile", str(pki / "root.crl"),
                "-CRLfile", str(pki / "inter.crl")]
        args += ["-untrusted", str(untrusted)] if untrusted else []
        done = openssl_verify(*(args + [str(target)]))
        assert done.returncode == 0 and done.stdout.strip().endswith(": OK"), done.stdout + done.stderr
    done = openssl_verify("-CAfile", str(pki / "root.pem"), "-crl_check", "-CRLfile", str(pki / "root.crl"),
                          str(pki / "inter.pem"))
    assert done.returncode == 0, done.stdout + done.stderr
    no_private_key_anywhere(pki)


def test_a_leaf_revoked_in_the_token_signed_crl_is_refused_by_openssl(tmp_path, pki):
    signed = sign_csr(pki, host_csr(tmp_path))
    leaf_path = tmp_path / "leaf.pem"
    leaf_path.write_text(signed["certificate_pem"])
    writer, inter = ensure_ca(pki, "inter", "Token Intermediate CA", path_length=0, privatekey_pkcs11=in_token("inter"),
                              parent_path=str(pki / "root.pem"), parent_privatekey_pkcs11=in_token("root"),
                              chain_path=str(pki / "inter-chain.pem"), crl_path=str(pki / "inter.crl"),
                              revoked_serials=[signed["certificate"]["serial"]])
    assert writer.changed and inter["crl"]["crl_number"] == 2
    assert inter["crl"]["revoked_serials"] == [signed["certificate"]["serial"]]
    crl = crl_at(pki / "inter.crl")
    assert crl.is_signature_valid(cert_at(pki / "inter.pem").public_key())
    assert crl.get_revoked_certificate_by_serial_number(cert_at(leaf_path).serial_number) is not None
    done = openssl_verify("-CAfile", str(pki / "root.pem"), "-untrusted", str(pki / "inter.pem"), "-crl_check",
                          "-CRLfile", str(pki / "inter.crl"), str(leaf_path))
    assert done.returncode != 0 and "certificate revoked" in done.stdout + done.stderr


def test_the_root_carries_the_token_keys_public_half_and_its_identifiers(pki):
    root, inter = cert_at(pki / "root.pem"), cert_at(pki / "inter.pem")
    public = token_public_key("root")
    assert _crypto.same_public_key(root.public_key(), public)
    assert _crypto.same_public_key(inter.public_key(), token_public_key("inter"))
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert ski == _crypto.key_identifier(public)
    assert root.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski
    assert inter.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski
    assert root.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256


def test_the_keys_stay_in_the_token_and_a_second_run_changes_nothing(pki):
    token = _pkcs11.Token(SOFTHSM, "ca", PIN)
    try:
        for label in ("root", "inter"):
            found = token.key(label)
            assert (found["key_type"], found["sensitive"], found["extractable"]) == ("ecdsa-p256", True, False)
            assert token.flag(found["handles"][0], _pkcs11.CKA_NEVER_EXTRACTABLE)
    finally:
        token.close()
    before = {p.name: p.read_bytes() for p in pki.iterdir()}
    writer, root = ensure_ca(pki, "root", "Token Root CA", path_length=1, privatekey_pkcs11=in_token("root"),
                             crl_path=str(pki / "root.crl"))
    assert (writer.changed, root["reasons"]) == (False, [])
    writer, inter = ensure_ca(pki, "inter", "Token Intermediate CA", path_length=0, privatekey_pkcs11=in_token("inter"),
                              parent_path=str(pki / "root.pem"), parent_privatekey_pkcs11=in_token("root"),
                              chain_path=str(pki / "inter-chain.pem"), crl_path=str(pki / "inter.crl"))
    assert (writer.changed, inter["reasons"]) == (False, [])
    assert {p.name: p.read_bytes() for p in pki.iterdir()} == before
    assert sorted(before) == ["inter-chain.pem", "inter.crl", "inter.pem", "root.crl", "root.pem"]


def test_check_mode_makes_no_key_in_the_token_and_writes_nothing(tmp_path, token):
    pki = tmp_path / "pki"
    writer, result = ensure_ca(pki, "root", "Token Root CA", check_mode=True, privatekey_pkcs11=in_token("root"),
                               crl_path=str(pki / "root.crl"))
    assert writer.changed and "no key labelled 'root' in PKCS#11 token 'ca'" in result["reasons"]
    assert list(pki.iterdir()) == []
    token_session = _pkcs11.Token(SOFTHSM, "ca", PIN)
    try:
        assert token_session.key("root") is None
    finally:
        token_session.close()


def test_an_rsa_intermediate_in_the_token(tmp_path, pki):
    _w, inter = ensure_ca(pki, "rsa", "Token RSA CA", key_type="rsa2048", path_length=0,
                          privatekey_pkcs11=in_token("rsa"), parent_path=str(pki / "root.pem"),
                          parent_privatekey_pkcs11=in_token("root"), chain_path=str(pki / "rsa-chain.pem"),
                          crl_path=str(pki / "rsa.crl"))
    cert = cert_at(pki / "rsa.pem")
    assert cert.public_key().key_size == 2048 and issued(cert, cert_at(pki / "root.pem"))
    crl = crl_at(pki / "rsa.crl")
    assert crl.is_signature_valid(cert.public_key())
    assert crl.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA256
    signed = sign_csr(pki, host_csr(tmp_path), ca="rsa", label="rsa")
    leaf = x509.load_pem_x509_certificate(signed["certificate_pem"].encode())
    assert issued(leaf, cert)


def test_a_wrong_pin_names_the_token_and_the_label(tmp_path, pki):
    with pytest.raises(PKIError, match=r"privatekey_pkcs11, key 'root': PKCS#11 token 'ca' .*wrong PIN \(CKR_PIN_INCORRECT\)"):
        ensure_ca(pki, "root", "Token Root CA", privatekey_pkcs11=in_token("root", pin="0000"))
    with pytest.raises(PKIError, match=r"ca_privatekey_pkcs11, key 'inter': PKCS#11 token 'ca' .*wrong PIN"):
        sign_csr(pki, host_csr(tmp_path), ca_privatekey_pkcs11=in_token("inter", pin="0000"))


def test_a_missing_key_names_the_token_the_label_and_the_keys_present(tmp_path, pki):
    csr = host_csr(tmp_path)
    with pytest.raises(PKIError, match=r"ca_privatekey_pkcs11: no key labelled 'nope' in PKCS#11 token 'ca' "
                                       r"\(module .*\); private keys present: 'inter', 'root'"):
        ensure_leaf(FileWriter(FakeModule()), purpose="server", operation="sign", common_name="svc.internal",
                    csr_content=csr, ca_path=str(pki / "inter-chain.pem"), ca_privatekey_pkcs11=in_token("nope"))
    # A parent's key is never made: it is the one its certificate holds.
    with pytest.raises(PKIError, match=r"parent_privatekey_pkcs11: no key labelled 'gone' in PKCS#11 token 'ca'"):
        ensure_ca(pki, "other", "Other CA", path_length=0, privatekey_pkcs11=in_token("other"),
                  parent_path=str(pki / "root.pem"), parent_privatekey_pkcs11=in_token("gone"))
    assert not (pki / "other.pem").exists()


def test_another_key_of_the_token_does_not_sign_for_the_ca(tmp_path, pki):
    with pytest.raises(PKIError, match=r"ca_privatekey_pkcs11 \(key 'root' in PKCS#11 token 'ca'\): private key "
                                       r"does not belong to CA certificate .*inter-chain.pem"):
        sign_csr(pki, host_csr(tmp_path), label="root")


def test_a_token_key_of_another_type_is_never_replaced(pki):
    with pytest.raises(PKIError, match=r"the key is ecdsa-p256, key_type asks rsa2048; a key in a token is never replaced"):
        ensure_ca(pki, "root", "Token Root CA", key_type="rsa2048", privatekey_pkcs11=in_token("root"))
    with pytest.raises(PKIError, match=r"key_type ed25519: a PKCS#11 token makes"):
        ensure_ca(pki, "ed", "Ed CA", key_type="ed25519", privatekey_pkcs11=in_token("ed"))


def test_the_key_is_a_file_or_in_a_token(tmp_path, token):
    with pytest.raises(PKIError, match="privatekey_path .* or as privatekey_pkcs11 .*not both"):
        CertificateAuthority(FileWriter(FakeModule()), str(tmp_path / "ca.pem"), str(tmp_path / "ca.key"), "CA",
                             privatekey_pkcs11=in_token("root"))
    with pytest.raises(PKIError, match="one of them"):
        CertificateAuthority(FileWriter(FakeModule()), str(tmp_path / "ca.pem"), None, "CA")


def test_the_modules_take_the_token_and_never_echo_the_pin(tmp_path, token, capsys):
    pki = tmp_path / "pki"
    pki.mkdir()
    args = {"path": str(pki / "ca.pem"), "common_name": "Module Token CA", "privatekey_pkcs11": in_token("mod"),
            "crl_path": str(pki / "ca.crl")}
    result, failed = run_module(ca_module, args, capsys)
    assert not failed and result["changed"], result
    assert PIN not in str(result)
    result, failed = run_module(ca_module, args, capsys)
    assert not failed and result["changed"] is False
    signed, failed = run_module(certificate_module, {
        "operation": "sign", "purpose": "client", "common_name": "billing", "csr_content": host_csr(tmp_path),
        "ca_path": str(pki / "ca.pem"), "ca_privatekey_pkcs11": in_token("mod")}, capsys)
    assert not failed and signed["signed"], signed
    leaf = x509.load_pem_x509_certificate(signed["certificate_pem"].encode())
    assert issued(leaf, cert_at(pki / "ca.pem"))
    result, failed = run_module(ca_module, dict(args, privatekey_path=str(pki / "ca.key")), capsys)
    assert failed and "mutually exclusive: privatekey_path|privatekey_pkcs11" in result["msg"]
    result, failed = run_module(ca_module, {"path": str(pki / "x.pem"), "common_name": "X"}, capsys)
    assert failed and "one of the following is required: privatekey_path, privatekey_pkcs11" in result["msg"]
    result, failed = run_module(certificate_module, {
        "operation": "sign", "purpose": "client", "common_name": "billing", "csr_content": "x",
        "ca_path": str(pki / "ca.pem")}, capsys)
    assert failed and "ca_privatekey_path, ca_privatekey_pkcs11" in result["msg"]
    result, failed = run_module(ca_module, dict(args, privatekey_pkcs11=in_token("mod", pin="0000-wrong")), capsys)
    assert failed and "wrong PIN" in result["msg"] and "0000-wrong" not in str(result)
    no_private_key_anywhere(pki)


def test_the_signed_der_is_what_cryptography_writes(pki):
    """The certificate put together around the token's signature re-encodes to the same bytes."""
    for name in ("root.pem", "inter.pem"):
        cert = cert_at(pki / name)
        der = cert.public_bytes(serialization.Encoding.DER)
        tbs, algorithm, signature = _crypto.der_sequence_items(der)
        assert tbs == cert.tbs_certificate_bytes
        assert _crypto.der_encode(0x30, tbs + algorithm + signature) == der
    crl = crl_at(pki / "inter.crl")
    assert _crypto.der_sequence_items(crl.public_bytes(serialization.Encoding.DER))[0] == crl.tbs_certlist_bytes


def test_der_lengths_in_long_form():
    assert _crypto.der_encode(0x04, b"x" * 0x7F)[:2] == b"\x04\x7f"
    assert _crypto.der_encode(0x04, b"x" * 0x80)[:3] == b"\x04\x81\x80"
    assert _crypto.der_encode(0x04, b"x" * 0x1234)[:4] == b"\x04\x82\x12\x34"
    big = _crypto.der_encode(0x30, _crypto.der_encode(0x04, b"a" * 300) + _crypto.der_encode(0x05, b""))
    assert _crypto.der_sequence_items(big) == [_crypto.der_encode(0x04, b"a" * 300), b"\x05\x00"]
    with pytest.raises(PKIError, match="DER: truncated"):
        _crypto.der_sequence_items(big[:-1])


def test_the_module_utils_import_without_pykcs11_and_name_the_package(tmp_path):
    """What ansible-test's import check does: the module_utils and the modules import without
    PyKCS11; a token then fails naming the package to install."""
    script = """
import sys
sys.modules["PyKCS11"] = None  # import PyKCS11 raises ImportError
from ansible_collections.mtls.nginx.plugins.module_utils import _pkcs11, _pki
from ansible_collections.mtls.nginx.plugins.modules import ca, certificate, pkcs11_key
assert not _pkcs11.binding_installed()
try:
    _pkcs11.Token(%(lib)r, "ca", "1234")
except _pkcs11.TokenError as exc:
    print(exc)
try:
    _pki.token_signing_key(dict(module_path=%(lib)r, token_label="ca", pin="1", key_label="k"), "privatekey_pkcs11").lookup()
except _pki.PKIError as exc:
    print(exc)
""" % {"lib": SOFTHSM}
    here = _pkcs11.__file__
    env = dict(os.environ, PYTHONPATH=here[:here.rindex(os.sep + "ansible_collections" + os.sep)])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert "PyKCS11 is not installed on this host" in lines[0] and "python3-pykcs11 on Debian, PyKCS11 from PyPI" in lines[0]
    assert lines[1].startswith("privatekey_pkcs11, key 'k': ") and "python3-pykcs11" in lines[1]
