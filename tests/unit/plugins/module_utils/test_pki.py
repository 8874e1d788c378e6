"""Unit tests for the CA and leaf certificate logic behind mtls.nginx.ca / .certificate."""

import datetime
import os
import stat

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from fakemodule import FakeModule
from ansible_collections.mtls.nginx.plugins.module_utils import _crypto
from ansible_collections.mtls.nginx.plugins.module_utils._crypto import PKIError
from ansible_collections.mtls.nginx.plugins.module_utils._files import FileWriter
from ansible_collections.mtls.nginx.plugins.module_utils._pki import CertificateAuthority, ensure_leaf


def make_ca(tmp_path, check_mode=False, **kw):
    writer = FileWriter(FakeModule(check_mode))
    ca = CertificateAuthority(writer, str(tmp_path / "ca.pem"), str(tmp_path / "ca.key"), kw.pop("cn", "Test CA"), **kw)
    return writer, ca.ensure()


def make_leaf(tmp_path, check_mode=False, **kw):
    args = dict(path=str(tmp_path / "leaf.pem"), privatekey_path=str(tmp_path / "leaf.key"),
                ca_path=str(tmp_path / "ca.pem"), ca_privatekey_path=str(tmp_path / "ca.key"),
                purpose="server", common_name="svc", subject_alt_names=["DNS:svc"])
    args.update(kw)
    writer = FileWriter(FakeModule(check_mode))
    return writer, ensure_leaf(writer, **args)


def load(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def test_ca_is_created_then_left_alone(tmp_path):
    writer, result = make_ca(tmp_path)
    assert writer.changed and result["certificate"]["subject"] == "CN=Test CA"
    assert stat.S_IMODE(os.stat(tmp_path / "ca.key").st_mode) == 0o600
    assert _crypto.is_ca(load(tmp_path / "ca.pem"))
    writer, result = make_ca(tmp_path)
    assert not writer.changed and result["reasons"] == []


def test_ca_renewal_keeps_key_so_leaves_stay_valid(tmp_path):
    make_ca(tmp_path, valid_days=100, renew_before_days=5)
    make_leaf(tmp_path)
    key_before = (tmp_path / "ca.key").read_bytes()
    writer, result = make_ca(tmp_path, valid_days=200, renew_before_days=150)
    assert writer.changed and "within renew_before_days" in result["reasons"][0]
    assert (tmp_path / "ca.key").read_bytes() == key_before
    assert _crypto.issued_by(load(tmp_path / "leaf.pem"), load(tmp_path / "ca.pem"))


def test_check_mode_writes_nothing(tmp_path):
    writer = make_ca(tmp_path, check_mode=True)[0]
    assert writer.changed
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("purpose,oid", [("server", ExtendedKeyUsageOID.SERVER_AUTH),
                                         ("client", ExtendedKeyUsageOID.CLIENT_AUTH)])
def test_leaf_has_the_usage_of_its_purpose(tmp_path, purpose, oid):
    make_ca(tmp_path)
    make_leaf(tmp_path, purpose=purpose, subject_alt_names=["svc", "10.0.0.1", "URI:spiffe://x/y"])
    cert = load(tmp_path / "leaf.pem")
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [oid]
    assert _crypto.sans_of(cert) == ["DNS:svc", "IP:10.0.0.1", "URI:spiffe://x/y"]
    assert _crypto.issued_by(cert, load(tmp_path / "ca.pem"))
    assert not _crypto.is_ca(cert)


def test_leaf_is_idempotent(tmp_path):
    make_ca(tmp_path)
    make_leaf(tmp_path)
    before = (tmp_path / "leaf.pem").read_bytes()
    writer, result = make_leaf(tmp_path)
    assert not writer.changed and result["reasons"] == []
    assert (tmp_path / "leaf.pem").read_bytes() == before


@pytest.mark.parametrize("change,reason", [
    ({"subject_alt_names": ["DNS:svc", "DNS:new"]}, "subject alt names"),
    ({"common_name": "other"}, "common name"),
    ({"purpose": "client"}, "purpose"),
    ({"renew_before_days": 400, "valid_days": 800}, "renew_before_days"),
    ({"key_type": "ecdsa-p384"}, "key type"),
])
def test_leaf_is_reissued_when_what_is_asked_changes(tmp_path, change, reason):
    make_ca(tmp_path)
    make_leaf(tmp_path)
    writer, result = make_leaf(tmp_path, **change)
    assert writer.changed
    assert any(reason in r for r in result["reasons"]), result["reasons"]
    writer = make_leaf(tmp_path, **change)[0]
    assert not writer.changed


def test_leaf_is_reissued_under_a_new_ca(tmp_path):
    make_ca(tmp_path)
    make_leaf(tmp_path)
    os.remove(tmp_path / "ca.key")
    make_ca(tmp_path)
    writer, result = make_leaf(tmp_path)
    assert any("not signed by the CA" in r for r in result["reasons"])
    assert _crypto.issued_by(load(tmp_path / "leaf.pem"), load(tmp_path / "ca.pem"))


def test_key_type_rsa_and_ed25519(tmp_path):
    make_ca(tmp_path, key_type="ed25519")
    make_leaf(tmp_path, key_type="rsa2048")
    cert = load(tmp_path / "leaf.pem")
    assert _crypto.key_type_of(cert.public_key()) == "rsa2048"
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_validity_is_backdated_a_little_and_lasts_valid_days(tmp_path):
    make_ca(tmp_path)
    make_leaf(tmp_path, valid_days=30, renew_before_days=7)
    cert = load(tmp_path / "leaf.pem")
    now = datetime.datetime.now(datetime.timezone.utc)
    assert _crypto.not_before(cert) < now
    assert 29 <= (_crypto.not_after(cert) - now).days <= 30


def test_diff_never_shows_key_material(tmp_path):
    make_ca(tmp_path)
    writer = make_leaf(tmp_path)[0]
    shown = writer.diff["after"][str(tmp_path / "leaf.key")]
    assert "PRIVATE" not in shown and "key material" in shown


@pytest.mark.parametrize("broken,message", [
    (lambda p: os.remove(p / "ca.pem"), "CA certificate not found"),
    (lambda p: (p / "ca.pem").write_text("garbage"), "not a readable PEM certificate"),
    (lambda p: (p / "ca.key").write_bytes(_crypto.private_key_pem(_crypto.generate_private_key("ecdsa-p256"))),
     "does not belong to CA certificate"),
    (lambda p: (p / "ca.pem").write_bytes((p / "leaf.pem").read_bytes()), "not a CA certificate"),
])
def test_broken_signer_fails_before_any_file_changes(tmp_path, broken, message):
    make_ca(tmp_path)
    make_leaf(tmp_path, path=str(tmp_path / "leaf.pem"))
    broken(tmp_path)
    os.remove(tmp_path / "leaf.key")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(PKIError, match=message):
        make_leaf(tmp_path)
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("valid,renew", [(30, 30), (30, 40), (0, 0), (30, -1)])
def test_renewal_window_that_would_reissue_forever_is_refused(tmp_path, valid, renew):
    with pytest.raises(PKIError, match="valid_days"):
        make_ca(tmp_path, valid_days=valid, renew_before_days=renew)
    assert os.listdir(tmp_path) == []


def test_bad_san_is_named(tmp_path):
    with pytest.raises(PKIError, match="subject_alt_names: 'IP:not-an-ip'"):
        _crypto.parse_san("IP:not-an-ip")
