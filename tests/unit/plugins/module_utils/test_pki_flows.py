"""Flows of the PKI logic behind mtls.nginx.ca / .certificate, with real keys and certificates:

* intermediate CAs signed by a parent, and root CAs that must stay self-signed;
* encrypted CA keys;
* the CA's CRL: what it lists, when it is regenerated, what it refuses;
* the key-stays-home leaf flow: ``request`` on the host, ``sign`` on the controller,
  ``install`` back on the host, with only the CSR and the certificate travelling;
* signing under an intermediate CA given as a bundle.

Only cryptography APIs that Debian 12's cryptography 38 has are used here.
"""

import base64
import datetime
import os
import re
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import pkifactory
from fakemodule import FakeModule
from ansible_collections.mtls.nginx.plugins.module_utils import _crypto
from ansible_collections.mtls.nginx.plugins.module_utils._crypto import PKIError
from ansible_collections.mtls.nginx.plugins.module_utils._files import FileWriter
from ansible_collections.mtls.nginx.plugins.module_utils._pki import CertificateAuthority, ensure_leaf

PASSPHRASE = "correct horse battery staple"


# --- helpers ------------------------------------------------------------------------------------


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def read(path):
    with open(str(path), "rb") as handle:
        return handle.read()


def cert_at(path):
    return _crypto.load_certificates(read(path), str(path))[0]


def certs_in(data, name="test data"):
    return _crypto.load_certificates(data if isinstance(data, bytes) else data.encode("ascii"), name)


def pems(certs):
    return [_crypto.certificate_pem(c) for c in certs]


def crl_at(path):
    return _crypto.load_crl(read(path), str(path))


def path_length_of(cert):
    return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length


def snapshot(*directories):
    """Every file under ``directories``: its bytes, mode and modification time."""
    out = {}
    for directory in directories:
        for root, _dirs, names in os.walk(str(directory)):
            for name in names:
                path = os.path.join(root, name)
                info = os.stat(path)
                out[path] = (read(path), stat.S_IMODE(info.st_mode), info.st_mtime_ns)
    return out


def ensure_ca(directory, name="ca", check_mode=False, **kw):
    """Run a CertificateAuthority whose files are ``directory/name.pem`` and ``name.key``."""
    directory.mkdir(parents=True, exist_ok=True)
    writer = FileWriter(FakeModule(check_mode))
    ca = CertificateAuthority(writer, str(directory / (name + ".pem")), str(directory / (name + ".key")),
                              kw.pop("cn", "Test CA"), **kw)
    return writer, ca.ensure()


def signer_of(directory, name="ca", passphrase=None):
    """A CA made by ensure_ca, as a pkifactory.Cert (certificate and key objects)."""
    key = _crypto.load_private_key(read(directory / (name + ".key")), name + ".key", passphrase)
    return pkifactory.Cert(cert_at(directory / (name + ".pem")), key)


def run_leaf(operation, check_mode=False, **kw):
    args = dict(purpose="server", common_name="svc", subject_alt_names=["DNS:svc"])
    args.update(kw)
    writer = FileWriter(FakeModule(check_mode))
    result = ensure_leaf(writer, operation=operation, **args)
    assert isinstance(result, dict)
    return writer, result


# --- 1. intermediate CAs ------------------------------------------------------------------------

@pytest.fixture
def root(tmp_path):
    """A root CA that may sign one level of intermediate CAs, in ``root/``."""
    ensure_ca(tmp_path / "root", cn="Root CA", path_length=1)
    return tmp_path / "root"


def ensure_intermediate(tmp_path, parent, check_mode=False, **kw):
    args = dict(cn="Intermediate CA", path_length=0, chain_path=str(tmp_path / "inter" / "chain.pem"),
                parent_path=str(parent / "ca.pem"), parent_privatekey_path=str(parent / "ca.key"))
    args.update(kw)
    return ensure_ca(tmp_path / "inter", check_mode=check_mode, **args)


def test_intermediate_is_signed_by_its_parent(tmp_path, root):
    writer, result = ensure_intermediate(tmp_path, root)
    inter, root_cert = cert_at(tmp_path / "inter" / "ca.pem"), cert_at(root / "ca.pem")
    assert writer.changed
    assert _crypto.issued_by(inter, root_cert)
    assert not _crypto.is_self_signed(inter)
    assert inter.issuer == root_cert.subject
    assert result["certificate"]["issuer"] == "CN=Root CA"
    assert _crypto.is_ca(inter)
    assert path_length_of(inter) == 0
    assert _crypto.same_public_key(inter.public_key(), signer_of(tmp_path / "inter").key.public_key())


def test_intermediate_second_run_changes_nothing(tmp_path, root):
    ensure_intermediate(tmp_path, root)
    before = snapshot(tmp_path)
    writer, result = ensure_intermediate(tmp_path, root)
    assert not writer.changed
    assert result["reasons"] == []
    assert snapshot(tmp_path) == before


def test_intermediate_chain_file_is_the_intermediate_then_the_root(tmp_path, root):
    ensure_intermediate(tmp_path, root)
    chain = certs_in(read(tmp_path / "inter" / "chain.pem"))
    assert pems(chain) == pems([cert_at(tmp_path / "inter" / "ca.pem"), cert_at(root / "ca.pem")])


def test_intermediate_is_re_signed_with_the_same_key_under_a_new_parent(tmp_path, root):
    ensure_intermediate(tmp_path, root)
    old = cert_at(tmp_path / "inter" / "ca.pem")
    key_before = read(tmp_path / "inter" / "ca.key")
    other = tmp_path / "other-root"
    ensure_ca(other, cn="Other root CA", path_length=1)

    writer, result = ensure_intermediate(tmp_path, other)

    new = cert_at(tmp_path / "inter" / "ca.pem")
    assert writer.changed
    assert any("parent" in r and str(other / "ca.pem") in r for r in result["reasons"]), result["reasons"]
    assert read(tmp_path / "inter" / "ca.key") == key_before
    assert _crypto.same_public_key(new.public_key(), old.public_key())
    assert _crypto.issued_by(new, cert_at(other / "ca.pem"))
    assert not _crypto.issued_by(new, cert_at(root / "ca.pem"))
    assert pems(certs_in(read(tmp_path / "inter" / "chain.pem"))) == pems([new, cert_at(other / "ca.pem")])


def test_parent_with_path_length_zero_refuses_to_sign_a_ca(tmp_path):
    parent = tmp_path / "root0"
    ensure_ca(parent, cn="Root CA", path_length=0)
    with pytest.raises(PKIError, match=re.escape(str(parent / "ca.pem")) + ".*path length 0"):
        ensure_intermediate(tmp_path, parent)
    assert os.listdir(tmp_path / "inter") == []


@pytest.mark.parametrize("given", ["parent_path", "parent_privatekey_path"])
def test_parent_needs_both_its_certificate_and_its_key(tmp_path, root, given):
    options = {"parent_path": str(root / "ca.pem"), "parent_privatekey_path": str(root / "ca.key")}
    with pytest.raises(PKIError, match="parent_path and parent_privatekey_path go together"):
        ensure_ca(tmp_path / "inter", cn="Intermediate CA", **{given: options[given]})
    assert os.listdir(tmp_path / "inter") == []


# --- 2, 3. a root CA stays self-signed, with the path length asked ---------------------------------

def test_root_whose_certificate_is_not_self_signed_is_re_signed(tmp_path):
    ensure_ca(tmp_path)
    mine = signer_of(tmp_path)
    # Same name, same key, but signed by someone else.
    foreign = pkifactory.issue("Test CA", issuer=pkifactory.issue("Other CA", ca=True), ca=True,
                               key_obj=mine.key, not_after=pkifactory.NOW + 1000 * pkifactory.DAY)
    pkifactory.write(tmp_path, "ca.pem", foreign.pem, 0o644)

    writer, result = ensure_ca(tmp_path)

    cert = cert_at(tmp_path / "ca.pem")
    assert writer.changed
    assert result["reasons"] == ["CA certificate is not self-signed, a root CA was asked"]
    assert _crypto.is_self_signed(cert)
    assert _crypto.same_public_key(cert.public_key(), mine.key.public_key())


def test_path_length_change_re_signs_with_the_same_key(tmp_path):
    ensure_ca(tmp_path)
    key_before = read(tmp_path / "ca.key")

    writer, result = ensure_ca(tmp_path, path_length=2)

    assert writer.changed
    assert result["reasons"] == ["path length is None, 2 was asked"]
    assert path_length_of(cert_at(tmp_path / "ca.pem")) == 2
    assert read(tmp_path / "ca.key") == key_before
    writer, result = ensure_ca(tmp_path, path_length=2)
    assert not writer.changed and result["reasons"] == []


# --- 4. encrypted CA keys -------------------------------------------------------------------------

def test_ca_key_is_encrypted_with_the_passphrase(tmp_path):
    ensure_ca(tmp_path, privatekey_passphrase=PASSPHRASE)
    data = read(tmp_path / "ca.key")
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    key = _crypto.load_private_key(data, "ca.key", PASSPHRASE)
    assert _crypto.same_public_key(key.public_key(), cert_at(tmp_path / "ca.pem").public_key())
    with pytest.raises(PKIError):
        _crypto.load_private_key(data, "ca.key", "wrong passphrase")


def test_encrypted_ca_key_second_run_changes_nothing(tmp_path):
    ensure_ca(tmp_path, privatekey_passphrase=PASSPHRASE)
    before = snapshot(tmp_path)
    writer, result = ensure_ca(tmp_path, privatekey_passphrase=PASSPHRASE)
    assert not writer.changed and result["reasons"] == []
    assert snapshot(tmp_path) == before


def test_encrypted_ca_key_without_the_passphrase_is_an_error_that_changes_nothing(tmp_path):
    ensure_ca(tmp_path, privatekey_passphrase=PASSPHRASE)
    before = snapshot(tmp_path)
    with pytest.raises(PKIError, match=re.escape(str(tmp_path / "ca.key")) + ".*encrypted"):
        ensure_ca(tmp_path)
    assert snapshot(tmp_path) == before


def test_passphrase_for_a_plain_key_is_reported_truthfully(tmp_path):
    ensure_ca(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(PKIError, match=re.escape(str(tmp_path / "ca.key"))) as error:
        ensure_ca(tmp_path, privatekey_passphrase=PASSPHRASE)
    assert snapshot(tmp_path) == before
    assert "no passphrase was given" not in str(error.value)
    assert "not encrypted" in str(error.value)


# --- 5. the CA's CRL --------------------------------------------------------------------------------

def ensure_crl(tmp_path, check_mode=False, **kw):
    kw.setdefault("crl_valid_days", 7)
    kw.setdefault("crl_renew_before_days", 2)
    return ensure_ca(tmp_path, check_mode=check_mode, crl_path=str(tmp_path / "ca.crl"), **kw)


def test_crl_first_run(tmp_path):
    writer, result = ensure_crl(tmp_path)
    crl, ca = crl_at(tmp_path / "ca.crl"), cert_at(tmp_path / "ca.pem")
    assert writer.changed
    assert any("no CRL at" in r for r in result["reasons"]), result["reasons"]
    assert _crypto.crl_signed_by(crl, ca)
    assert _crypto.crl_number_of(crl) == 1
    assert list(crl) == []
    assert abs(_crypto.crl_next_update(crl) - (now() + datetime.timedelta(days=7))) < datetime.timedelta(minutes=1)
    assert _crypto.crl_last_update(crl) <= now()
    info = result["crl"]
    assert set(info) == {"path", "last_update", "next_update", "days_remaining", "crl_number", "revoked_serials"}
    assert info["path"] == str(tmp_path / "ca.crl")
    assert info["crl_number"] == 1
    assert info["revoked_serials"] == []
    assert info["days_remaining"] in (6, 7)
    assert info["next_update"] == _crypto.crl_next_update(crl).isoformat()
    assert info["last_update"] == _crypto.crl_last_update(crl).isoformat()


def test_crl_second_run_changes_nothing(tmp_path):
    ensure_crl(tmp_path, revoked_serials=["0A:1B"])
    before = snapshot(tmp_path)
    writer, result = ensure_crl(tmp_path, revoked_serials=["0A:1B"])
    assert not writer.changed
    assert result["reasons"] == []
    assert result["crl"]["crl_number"] == 1
    assert snapshot(tmp_path) == before


def test_crl_adding_a_serial_regenerates_it_and_keeps_earlier_revocation_dates(tmp_path):
    ensure_crl(tmp_path, revoked_serials=["0A:1B"])
    # Pretend 0A:1B was revoked three days ago, in CRL number 4.
    ca = signer_of(tmp_path)
    revoked_at = (now() - datetime.timedelta(days=3)).replace(microsecond=0)
    old = _crypto.build_crl(ca.cert, ca.key, {0x0A1B: revoked_at}, 4, 7)
    pkifactory.write(tmp_path, "ca.crl", _crypto.crl_pem(old), 0o644)

    writer, result = ensure_crl(tmp_path, revoked_serials=["0A:1B", "0x1f"])

    crl = crl_at(tmp_path / "ca.crl")
    dates = _crypto.revoked_of(crl)
    assert writer.changed
    assert any("CRL revokes" in r for r in result["reasons"]), result["reasons"]
    assert set(dates) == {0x0A1B, 0x1F}
    assert dates[0x0A1B] == revoked_at
    assert now() - dates[0x1F] < datetime.timedelta(minutes=1)
    assert _crypto.crl_number_of(crl) == 5 == result["crl"]["crl_number"]
    assert result["crl"]["revoked_serials"] == ["1F", "A1B"]
    assert _crypto.crl_signed_by(crl, ca.cert)


def test_crl_lists_a_revoked_certificate_file(tmp_path):
    ensure_crl(tmp_path)
    run_leaf("issue", path=str(tmp_path / "leaf.pem"), privatekey_path=str(tmp_path / "leaf.key"),
             ca_path=str(tmp_path / "ca.pem"), ca_privatekey_path=str(tmp_path / "ca.key"))
    serial = cert_at(tmp_path / "leaf.pem").serial_number

    writer, result = ensure_crl(tmp_path, revoked_certificates=[str(tmp_path / "leaf.pem")])

    assert writer.changed
    assert set(_crypto.revoked_of(crl_at(tmp_path / "ca.crl"))) == {serial}
    assert result["crl"]["revoked_serials"] == [format(serial, "X")]
    assert result["crl"]["crl_number"] == 2


@pytest.mark.parametrize("issuer_name", ["Test CA", "Other CA"], ids=["same-name", "other-name"])
def test_crl_refuses_to_revoke_a_certificate_of_another_ca(tmp_path, issuer_name):
    ensure_crl(tmp_path)
    foreign = pkifactory.issue("svc", issuer=pkifactory.issue(issuer_name, ca=True))
    path = pkifactory.write(tmp_path, "foreign.pem", foreign.pem, 0o644)
    before = snapshot(tmp_path)
    with pytest.raises(PKIError, match=re.escape(path) + ": not issued by this CA"):
        ensure_crl(tmp_path, revoked_certificates=[path])
    assert snapshot(tmp_path) == before


def test_crl_refuses_a_serial_that_is_not_hexadecimal(tmp_path):
    ensure_crl(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(PKIError, match="revoked_serials: 'zz'"):
        ensure_crl(tmp_path, revoked_serials=["0A", "zz"])
    assert snapshot(tmp_path) == before


def test_crl_due_for_its_next_update_is_regenerated(tmp_path):
    ensure_crl(tmp_path)
    ca = signer_of(tmp_path)
    short = _crypto.build_crl(ca.cert, ca.key, {}, 5, 1)
    pkifactory.write(tmp_path, "ca.crl", _crypto.crl_pem(short), 0o644)

    writer, result = ensure_crl(tmp_path)

    crl = crl_at(tmp_path / "ca.crl")
    assert writer.changed
    assert any("within crl_renew_before_days=2" in r for r in result["reasons"]), result["reasons"]
    assert _crypto.crl_number_of(crl) == 6
    assert _crypto.crl_next_update(crl) - now() > datetime.timedelta(days=6)


def test_crl_signed_by_another_ca_is_regenerated(tmp_path):
    ensure_crl(tmp_path)
    impostor = pkifactory.issue("Test CA", ca=True)  # same name, other key
    pkifactory.write(tmp_path, "ca.crl", pkifactory.crl(impostor), 0o644)

    writer, result = ensure_crl(tmp_path)

    assert writer.changed
    assert "CRL was not signed by this CA" in result["reasons"]
    assert _crypto.crl_signed_by(crl_at(tmp_path / "ca.crl"), cert_at(tmp_path / "ca.pem"))


@pytest.mark.parametrize("valid,renew", [(7, 7), (7, 9), (0, 0)])
def test_crl_renewal_window_that_would_regenerate_forever_is_refused(tmp_path, valid, renew):
    with pytest.raises(PKIError, match="crl_"):
        ensure_crl(tmp_path, crl_valid_days=valid, crl_renew_before_days=renew)
    assert os.listdir(tmp_path) == []


def test_crl_check_mode_reports_a_change_but_writes_no_crl(tmp_path):
    ensure_ca(tmp_path)
    before = snapshot(tmp_path)
    writer, result = ensure_crl(tmp_path, check_mode=True, revoked_serials=["1F"])
    assert writer.changed
    assert result["crl"]["crl_number"] == 1 and result["crl"]["revoked_serials"] == ["1F"]
    assert not (tmp_path / "ca.crl").exists()
    assert snapshot(tmp_path) == before


def test_crl_without_next_update_is_regenerated(tmp_path):
    ensure_crl(tmp_path)
    pkifactory.write(tmp_path, "ca.crl", pkifactory.crl_without_next_update(signer_of(tmp_path), number=3), 0o644)
    assert _crypto.crl_next_update(crl_at(tmp_path / "ca.crl")) is None

    writer, result = ensure_crl(tmp_path)

    crl = crl_at(tmp_path / "ca.crl")
    assert writer.changed
    assert _crypto.crl_next_update(crl) is not None
    assert _crypto.crl_number_of(crl) == 4


# --- 6. the key stays home: request, sign, install --------------------------------------------------

class TwoHosts:
    """A host (its key, CSR and certificate) and a controller (the CA), in separate directories.

    Only what the operations return travels between them, as it would between two machines."""

    def __init__(self, tmp_path):
        self.host = tmp_path / "host"
        self.controller = tmp_path / "controller"
        self.host.mkdir()
        ensure_ca(self.controller)

    @property
    def key_path(self):
        return str(self.host / "svc.key")

    @property
    def cert_path(self):
        return str(self.host / "svc.pem")

    def request(self, **kw):
        args = dict(privatekey_path=self.key_path, path=self.cert_path)
        args.update(kw)
        return run_leaf("request", **args)

    def sign(self, csr, **kw):
        args = dict(csr_content=csr, ca_path=str(self.controller / "ca.pem"),
                    ca_privatekey_path=str(self.controller / "ca.key"))
        args.update(kw)
        return run_leaf("sign", **args)

    def install(self, certificate, **kw):
        args = dict(certificate_content=certificate, privatekey_path=self.key_path, path=self.cert_path)
        args.update(kw)
        return run_leaf("install", **args)

    def round(self, request=None, sign=None, install=None):
        """request, sign (the CSR and the host's current certificate), install: three (writer, result)."""
        requested = self.request(**(request or {}))
        signed = self.sign(requested[1]["csr"], certificate_content=requested[1]["existing_certificate"],
                           **(sign or {}))
        installed = self.install(signed[1]["chain_pem"], **(install or {}))
        return requested, signed, installed

    def host_key(self, passphrase=None):
        return _crypto.load_private_key(read(self.key_path), self.key_path, passphrase)


@pytest.fixture
def hosts(tmp_path):
    return TwoHosts(tmp_path)


def test_request_creates_the_key_and_returns_a_csr(hosts):
    writer, result = hosts.request()
    assert writer.changed
    assert stat.S_IMODE(os.stat(hosts.key_path).st_mode) == 0o600
    assert result["csr"].startswith("-----BEGIN CERTIFICATE REQUEST-----")
    csr = _crypto.load_csr(result["csr"].encode("ascii"), "csr")
    assert _crypto.same_public_key(csr.public_key(), hosts.host_key().public_key())
    assert csr.subject == _crypto.name_from_cn("svc")
    assert _crypto.sans_of_csr(csr) == ["DNS:svc"]
    assert result["existing_certificate"] is None
    assert sorted(os.listdir(hosts.host)) == ["svc.key"]


def test_the_host_key_never_reaches_the_controller(hosts):
    hosts.round(install={"chain_path": str(hosts.host / "chain.pem")})
    key = hosts.host_key()
    secrets = [read(hosts.key_path),
               key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()),
               key.private_numbers().private_value.to_bytes(32, "big")]
    files = snapshot(hosts.controller)
    assert sorted(os.path.basename(p) for p in files) == ["ca.key", "ca.pem"]
    for path, (data, _mode, _mtime) in files.items():
        for secret in secrets:
            assert secret not in data, path


def test_sign_without_a_current_certificate_signs_the_csrs_key(hosts):
    csr = hosts.request()[1]["csr"]
    before = snapshot(hosts.controller)

    writer, result = hosts.sign(csr)

    cert = certs_in(result["certificate_pem"])[0]
    assert result["signed"] is True
    assert result["reasons"] == ["no current certificate given"]
    assert _crypto.same_public_key(cert.public_key(), hosts.host_key().public_key())
    assert _crypto.issued_by(cert, cert_at(hosts.controller / "ca.pem"))
    assert _crypto.purposes_of(cert) == ["server"]
    # The root is self-signed, so it stays out of the chain.
    assert pems(certs_in(result["chain_pem"])) == [result["certificate_pem"].encode("ascii")]
    assert not writer.changed and snapshot(hosts.controller) == before


def test_install_writes_the_certificate_and_its_chain(hosts):
    chain_path = str(hosts.host / "chain.pem")
    (_w1, requested), (_w2, signed), (writer, result) = hosts.round(install={"chain_path": chain_path})
    assert requested["existing_certificate"] is None
    assert writer.changed
    assert read(hosts.cert_path).decode("ascii") == signed["certificate_pem"]
    assert read(chain_path).decode("ascii") == signed["chain_pem"]
    assert result["certificate"]["serial"] == signed["certificate"]["serial"]


def test_second_round_changes_nothing(hosts):
    options = dict(request={"csr_path": str(hosts.host / "svc.csr")},
                   install={"chain_path": str(hosts.host / "chain.pem")})
    first = hosts.round(**options)
    before = snapshot(hosts.host, hosts.controller)

    (req_writer, requested), (sign_writer, signed), (inst_writer, installed) = hosts.round(**options)

    assert not req_writer.changed and not sign_writer.changed and not inst_writer.changed
    assert requested["reasons"] == [] and requested["certificate_reasons"] == []
    assert requested["existing_certificate"] == first[1][1]["certificate_pem"]
    assert signed["signed"] is False and signed["reasons"] == []
    assert signed["certificate_pem"] == first[1][1]["certificate_pem"]
    assert installed["reasons"] == []
    assert snapshot(hosts.host, hosts.controller) == before


def test_changing_the_names_flows_from_request_to_install(hosts):
    csr_path = str(hosts.host / "svc.csr")
    hosts.round(request={"csr_path": csr_path})
    old_csr = read(csr_path)
    new_names = {"subject_alt_names": ["DNS:svc", "DNS:svc.example.org"]}

    req_writer, requested = hosts.request(csr_path=csr_path, **new_names)
    assert req_writer.changed and read(csr_path) != old_csr
    assert any(r.startswith("CSR subject alt names") for r in requested["reasons"]), requested["reasons"]
    assert any(r.startswith("subject alt names") for r in requested["certificate_reasons"])
    assert _crypto.sans_of_csr(_crypto.load_csr(read(csr_path), csr_path)) == ["DNS:svc", "DNS:svc.example.org"]

    signed = hosts.sign(requested["csr"], certificate_content=requested["existing_certificate"], **new_names)[1]
    assert signed["signed"] is True
    assert any(r.startswith("subject alt names") for r in signed["reasons"]), signed["reasons"]
    assert _crypto.sans_of(certs_in(signed["certificate_pem"])[0]) == ["DNS:svc", "DNS:svc.example.org"]

    inst_writer = hosts.install(signed["chain_pem"])[0]
    assert inst_writer.changed
    assert _crypto.sans_of(cert_at(hosts.cert_path)) == ["DNS:svc", "DNS:svc.example.org"]


def test_sign_uses_its_own_names_not_those_the_csr_asks_for(hosts):
    csr = hosts.request(common_name="admin", purpose="client",
                        subject_alt_names=["DNS:evil.example", "IP:10.9.9.9"])[1]["csr"]
    signed = hosts.sign(csr)[1]
    cert = certs_in(signed["certificate_pem"])[0]
    assert _crypto.common_name_of(cert) == "svc"
    assert _crypto.sans_of(cert) == ["DNS:svc"]
    assert _crypto.purposes_of(cert) == ["server"]


def tampered_csr(pem):
    """The CSR with one byte of its subject changed, so it parses but its signature no longer fits."""
    der = x509.load_pem_x509_csr(pem.encode("ascii")).public_bytes(serialization.Encoding.DER)
    assert der.count(b"svc") >= 1
    der = der.replace(b"svc", b"svd", 1)
    assert x509.load_der_x509_csr(der).subject == _crypto.name_from_cn("svd")
    body = base64.encodebytes(der).decode("ascii")
    return "-----BEGIN CERTIFICATE REQUEST-----\n%s-----END CERTIFICATE REQUEST-----\n" % body


@pytest.mark.parametrize("spoil,message", [
    (tampered_csr, "csr_content: the request's signature does not match its public key"),
    (lambda pem: "-----BEGIN CERTIFICATE REQUEST-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE REQUEST-----\n",
     "csr_content: not a readable PEM certificate signing request"),
], ids=["bad-signature", "garbage"])
def test_sign_refuses_a_csr_that_does_not_prove_its_key(hosts, spoil, message):
    csr = hosts.request()[1]["csr"]
    with pytest.raises(PKIError, match=re.escape(message)):
        hosts.sign(spoil(csr))


def test_install_refuses_a_certificate_for_another_key(hosts):
    hosts.round()
    before = snapshot(hosts.host)
    stranger = _crypto.csr_pem(_crypto.build_csr(_crypto.generate_private_key("ecdsa-p256"),
                                                 _crypto.name_from_cn("svc"), "server", [])).decode("ascii")
    other = hosts.sign(stranger)[1]["chain_pem"]
    with pytest.raises(PKIError, match="does not belong to the private key in " + re.escape(hosts.key_path)):
        hosts.install(other)
    assert snapshot(hosts.host) == before


def test_install_refuses_a_certificate_with_the_wrong_purpose(hosts):
    csr = hosts.request()[1]["csr"]
    client = hosts.sign(csr, purpose="client")[1]["chain_pem"]
    before = snapshot(hosts.host)
    with pytest.raises(PKIError, match=re.escape("extended key usage allows ['client'], not server")):
        hosts.install(client, purpose="server")
    assert snapshot(hosts.host) == before


@pytest.fixture
def intermediate(tmp_path, root):
    """An intermediate CA under ``root``; ``inter/chain.pem`` is the bundle: intermediate, then root."""
    ensure_intermediate(tmp_path, root)
    return tmp_path / "inter"


def test_install_refuses_a_chain_in_the_wrong_order(hosts, root, intermediate):
    csr = hosts.request()[1]["csr"]
    signed = hosts.sign(csr, ca_path=str(intermediate / "chain.pem"),
                        ca_privatekey_path=str(intermediate / "ca.key"))[1]
    leaf = signed["certificate_pem"].encode("ascii")
    shuffled = leaf + read(root / "ca.pem") + read(intermediate / "ca.pem")
    before = snapshot(hosts.host)
    with pytest.raises(PKIError, match="the chain is out of order: CN=svc was not issued by the next certificate"):
        hosts.install(shuffled)
    assert snapshot(hosts.host) == before
    # In order, the same certificates install.
    assert hosts.install(leaf + read(intermediate / "ca.pem") + read(root / "ca.pem"))[0].changed


def test_install_with_ca_path_refuses_a_certificate_from_another_ca(hosts, tmp_path):
    csr = hosts.request()[1]["csr"]
    chain = hosts.sign(csr)[1]["chain_pem"]
    ensure_ca(tmp_path / "other", cn="Other CA")
    before = snapshot(hosts.host)
    with pytest.raises(PKIError, match="does not chain to a CA in " + re.escape(str(tmp_path / "other" / "ca.pem"))):
        hosts.install(chain, ca_path=str(tmp_path / "other" / "ca.pem"))
    assert snapshot(hosts.host) == before
    assert hosts.install(chain, ca_path=str(hosts.controller / "ca.pem"))[0].changed


def test_install_in_check_mode_writes_nothing(hosts):
    chain = hosts.sign(hosts.request()[1]["csr"])[1]["chain_pem"]
    before = snapshot(hosts.host)
    writer, result = hosts.install(chain, check_mode=True, chain_path=str(hosts.host / "chain.pem"))
    assert writer.changed
    assert result["reasons"] == ["certificate at %s differs" % hosts.cert_path]
    assert snapshot(hosts.host) == before


def test_request_with_an_encrypted_key(hosts):
    csr_path = str(hosts.host / "svc.csr")
    first = hosts.request(privatekey_passphrase=PASSPHRASE, csr_path=csr_path)[1]
    assert read(hosts.key_path).startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    key = hosts.host_key(PASSPHRASE)
    assert _crypto.same_public_key(_crypto.load_csr(first["csr"].encode("ascii"), "csr").public_key(),
                                   key.public_key())
    before = snapshot(hosts.host)

    writer, again = hosts.request(privatekey_passphrase=PASSPHRASE, csr_path=csr_path)
    assert not writer.changed and again["reasons"] == [] and again["csr"] == first["csr"]

    with pytest.raises(PKIError, match=re.escape(hosts.key_path) + ".*encrypted"):
        hosts.request(csr_path=csr_path)
    assert snapshot(hosts.host) == before


# --- 7. an intermediate CA given as a bundle --------------------------------------------------------

def test_sign_under_an_intermediate_bundle_chains_leaf_then_intermediate(hosts, intermediate):
    csr = hosts.request()[1]["csr"]
    signed = hosts.sign(csr, ca_path=str(intermediate / "chain.pem"),
                        ca_privatekey_path=str(intermediate / "ca.key"))[1]
    chain = certs_in(signed["chain_pem"])
    inter = cert_at(intermediate / "ca.pem")
    assert pems(chain) == [signed["certificate_pem"].encode("ascii"), _crypto.certificate_pem(inter)]
    assert _crypto.issued_by(chain[0], inter)


def test_issue_under_an_intermediate_bundle_chains_leaf_then_intermediate(tmp_path, root, intermediate):
    leaf_dir = tmp_path / "leaf"
    leaf_dir.mkdir()
    run_leaf("issue", path=str(leaf_dir / "svc.pem"), privatekey_path=str(leaf_dir / "svc.key"),
             chain_path=str(leaf_dir / "chain.pem"), ca_path=str(intermediate / "chain.pem"),
             ca_privatekey_path=str(intermediate / "ca.key"))
    leaf, inter = cert_at(leaf_dir / "svc.pem"), cert_at(intermediate / "ca.pem")
    assert pems(certs_in(read(leaf_dir / "chain.pem"))) == pems([leaf, inter])
    assert _crypto.issued_by(leaf, inter)
    assert not _crypto.issued_by(leaf, cert_at(root / "ca.pem"))


def test_intermediate_may_not_claim_a_longer_path_than_its_parent_allows(tmp_path):
    ensure_ca(tmp_path, path_length=1)
    before = snapshot(tmp_path)
    for asked in (None, 1, 2):
        with pytest.raises(PKIError, match="path_length: the parent CA in .* allows 1 CA"):
            CertificateAuthority(FileWriter(FakeModule()), str(tmp_path / "int.pem"), str(tmp_path / "int.key"),
                                 "Int", path_length=asked, parent_path=str(tmp_path / "ca.pem"),
                                 parent_privatekey_path=str(tmp_path / "ca.key")).ensure()
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("serial", ["1_f", "", ":", "-5", "0"])
def test_malformed_revoked_serials_are_refused(tmp_path, serial):
    with pytest.raises(PKIError, match="revoked_serials"):
        ensure_crl(tmp_path, revoked_serials=[serial])


def test_request_writes_a_missing_csr_file_for_an_existing_key(tmp_path):
    def request():
        writer = FileWriter(FakeModule())
        result = ensure_leaf(writer, "client", common_name="svc", operation="request",
                             privatekey_path=str(tmp_path / "svc.key"), csr_path=str(tmp_path / "svc.csr"))
        return writer, result

    request()
    key_before = (tmp_path / "svc.key").read_bytes()
    os.remove(tmp_path / "svc.csr")
    writer, result = request()
    assert writer.changed and any("no CSR at" in r for r in result["reasons"])
    assert (tmp_path / "svc.csr").read_bytes().decode() == result["csr"]
    assert (tmp_path / "svc.key").read_bytes() == key_before


# --- 8. a new passphrase for a host key, and nginx's password file --------------------------------

OLD, NEW, STRANGER = "old-pass-4711", "new-pass-0815", "stranger-pass-2323"


class PassphraseHost(TwoHosts):
    """A host whose key nginx opens with the passphrase in ``svc.pass`` (ssl_password_file)."""

    @property
    def pass_path(self):
        return str(self.host / "svc.pass")

    def request(self, **kw):
        return super().request(**dict({"privatekey_passphrase_file": self.pass_path}, **kw))

    def decrypts_with(self, passphrase):
        try:
            self.host_key(passphrase)
        except PKIError:
            return False
        return True


@pytest.fixture
def keyed(tmp_path):
    """A host key encrypted with OLD, its certificate installed, and svc.pass holding OLD."""
    host = PassphraseHost(tmp_path)
    host.round(request={"privatekey_passphrase": OLD}, install={"privatekey_passphrase": OLD})
    assert read(host.pass_path) == (OLD + "\n").encode()
    return host


def _shows_no_secret(writer, *passphrases):
    text = repr(writer.diff)
    assert "PRIVATE" not in text
    for passphrase in passphrases:
        assert passphrase not in text


def test_new_passphrase_re_encrypts_the_key_opened_with_the_old_one(keyed):
    public_key = _crypto.public_key_bytes(keyed.host_key(OLD).public_key())
    cert_before = read(keyed.cert_path)

    writer, result = keyed.request(privatekey_passphrase=NEW)

    assert writer.changed
    assert result["reasons"] == ["private key re-encrypted with the new passphrase"]
    assert keyed.decrypts_with(NEW) and not keyed.decrypts_with(OLD)
    assert _crypto.public_key_bytes(keyed.host_key(NEW).public_key()) == public_key
    assert read(keyed.pass_path) == (NEW + "\n").encode()
    for path in (keyed.key_path, keyed.pass_path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # The certificate still belongs to the key: no new one is asked for.
    assert result["certificate_reasons"] == [] and read(keyed.cert_path) == cert_before
    _shows_no_secret(writer, OLD, NEW)
    assert set(writer.diff["after"]) == {keyed.key_path, keyed.pass_path}


def test_second_run_with_the_new_passphrase_changes_nothing(keyed):
    keyed.request(privatekey_passphrase=NEW)
    before = snapshot(keyed.host)
    writer, result = keyed.request(privatekey_passphrase=NEW)
    assert not writer.changed and result["reasons"] == []
    assert snapshot(keyed.host) == before


@pytest.mark.parametrize("password_file,message", [
    (STRANGER + "\n", "the passphrase (privatekey_passphrase) does not decrypt the private key, nor does the "
                      "passphrase in {pass_path}"),
    (None, "the passphrase (privatekey_passphrase) does not decrypt the private key"),
], ids=["wrong-password-file", "no-password-file"])
def test_passphrase_that_opens_nothing_fails_and_writes_nothing(keyed, password_file, message):
    if password_file is None:
        os.remove(keyed.pass_path)
    else:
        (keyed.host / "svc.pass").write_text(password_file)
    before = snapshot(keyed.host)

    with pytest.raises(PKIError) as error:
        keyed.request(privatekey_passphrase=NEW)

    assert str(error.value) == keyed.key_path + ": " + message.format(pass_path=keyed.pass_path)
    for secret in (OLD, NEW, STRANGER):
        assert secret not in str(error.value)
    assert snapshot(keyed.host) == before


def test_plain_key_is_encrypted_when_a_passphrase_is_given(tmp_path):
    host = PassphraseHost(tmp_path)
    host.request()
    assert host.decrypts_with(None) and not os.path.exists(host.pass_path)

    writer, result = host.request(privatekey_passphrase=NEW)

    assert writer.changed and result["reasons"] == ["private key encrypted with the new passphrase"]
    assert read(host.key_path).startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert host.decrypts_with(NEW)
    assert read(host.pass_path) == (NEW + "\n").encode()
    _shows_no_secret(writer, NEW)


def test_empty_passphrase_writes_the_key_unencrypted_and_removes_the_password_file(keyed):
    writer, result = keyed.request()
    assert writer.changed
    assert result["reasons"] == ["private key written unencrypted, as no passphrase is asked any more"]
    assert read(keyed.key_path).startswith(b"-----BEGIN PRIVATE KEY-----")
    assert not os.path.exists(keyed.pass_path)
    assert writer.diff["after"][keyed.pass_path] is None
    _shows_no_secret(writer, OLD)
    before = snapshot(keyed.host)
    assert not keyed.request()[0].changed and snapshot(keyed.host) == before


def test_passphrase_change_in_check_mode_writes_nothing_and_install_still_reads_the_key(keyed):
    before = snapshot(keyed.host)
    (req_writer, requested), (_w, signed), (inst_writer, installed) = keyed.round(
        request={"privatekey_passphrase": NEW, "check_mode": True},
        install={"privatekey_passphrase": NEW, "privatekey_passphrase_file": keyed.pass_path, "check_mode": True})
    assert req_writer.changed and requested["reasons"] == ["private key re-encrypted with the new passphrase"]
    assert signed["signed"] is False and not inst_writer.changed
    assert snapshot(keyed.host) == before


def test_install_refuses_a_key_the_request_task_has_not_re_encrypted_yet(keyed):
    before = snapshot(keyed.host)
    chain = read(keyed.cert_path).decode("ascii")
    message = re.escape(keyed.key_path) + ": the private key is not encrypted with privatekey_passphrase yet"
    with pytest.raises(PKIError, match=message):
        keyed.install(chain, privatekey_passphrase=NEW, privatekey_passphrase_file=keyed.pass_path)
    assert snapshot(keyed.host) == before


def test_issue_re_encrypts_with_the_new_passphrase_too(tmp_path):
    ensure_ca(tmp_path / "ca")
    args = dict(path=str(tmp_path / "svc.pem"), privatekey_path=str(tmp_path / "svc.key"),
                privatekey_passphrase_file=str(tmp_path / "svc.pass"),
                ca_path=str(tmp_path / "ca" / "ca.pem"), ca_privatekey_path=str(tmp_path / "ca" / "ca.key"))
    run_leaf("issue", privatekey_passphrase=OLD, **args)
    cert_before = read(tmp_path / "svc.pem")

    writer, result = run_leaf("issue", privatekey_passphrase=NEW, **args)

    assert writer.changed and result["reasons"] == ["private key re-encrypted with the new passphrase"]
    _crypto.load_private_key(read(tmp_path / "svc.key"), "svc.key", NEW)
    assert read(tmp_path / "svc.pass") == (NEW + "\n").encode()
    assert read(tmp_path / "svc.pem") == cert_before


def test_ca_key_is_never_re_encrypted(tmp_path):
    ensure_ca(tmp_path, privatekey_passphrase=OLD)
    before = snapshot(tmp_path)
    with pytest.raises(PKIError, match=re.escape(str(tmp_path / "ca.key"))):
        ensure_ca(tmp_path, privatekey_passphrase=NEW)
    assert snapshot(tmp_path) == before


# --- 9. PEM bundles the operations read: one broken block refuses the whole file ------------------

def _cut(pem, keep=200):
    return pem[:keep]


def test_install_refuses_a_chain_whose_last_block_is_truncated(hosts, intermediate):
    csr = hosts.request()[1]["csr"]
    signed = hosts.sign(csr, ca_path=str(intermediate / "chain.pem"),
                        ca_privatekey_path=str(intermediate / "ca.key"))[1]
    chain = signed["certificate_pem"].encode("ascii") + _cut(read(intermediate / "ca.pem"))
    before = snapshot(hosts.host)
    with pytest.raises(PKIError, match=re.escape("certificate_content: PEM block 2 (CERTIFICATE) is truncated: "
                                                 "BEGIN without END")):
        hosts.install(chain.decode("ascii"))
    assert snapshot(hosts.host) == before


def test_sign_refuses_a_ca_bundle_with_a_corrupt_block(hosts, intermediate):
    bundle = read(intermediate / "chain.pem")
    spoiled = bundle.replace(b"-----END CERTIFICATE-----", b"-----END X509 CRL-----", 2)
    spoiled = spoiled.replace(b"-----END X509 CRL-----", b"-----END CERTIFICATE-----", 1)
    (intermediate / "chain.pem").write_bytes(spoiled)
    csr = hosts.request()[1]["csr"]
    before = snapshot(hosts.host, intermediate)
    with pytest.raises(PKIError, match=re.escape(str(intermediate / "chain.pem") + ": PEM block 2 (CERTIFICATE) "
                                                 "ends with END X509 CRL")):
        hosts.sign(csr, ca_path=str(intermediate / "chain.pem"), ca_privatekey_path=str(intermediate / "ca.key"),
                   path=str(hosts.host / "signed.pem"))
    assert snapshot(hosts.host, intermediate) == before


def test_own_certificate_with_a_truncated_trailing_block_is_written_again(tmp_path):
    ensure_ca(tmp_path / "ca")
    args = dict(path=str(tmp_path / "svc.pem"), privatekey_path=str(tmp_path / "svc.key"),
                ca_path=str(tmp_path / "ca" / "ca.pem"), ca_privatekey_path=str(tmp_path / "ca" / "ca.key"))
    run_leaf("issue", **args)
    good = read(tmp_path / "svc.pem")
    (tmp_path / "svc.pem").write_bytes(good + _cut(good))
    writer, result = run_leaf("issue", **args)
    assert writer.changed and result["reasons"] == ["no readable certificate at %s" % args["path"]]
    assert _crypto.pem_blocks(read(tmp_path / "svc.pem"))[-1].problem is None
