"""The PKCS#11 key source (_pkcs11, behind mtls.nginx.pkcs11_key) against a real SoftHSM2 token.

Each test gets a token of its own, in a SoftHSM2 token directory under tmp_path: the problems
an operator meets (no library, a library that is not PKCS#11, no such token, a wrong PIN) are
named; a key is made inside the token once, sensitive and never extractable, and only its
public half comes out; the CSR is signed by the token through OpenSSL's pkcs11 engine; the
certificate the CA signs for that CSR installs against the token's public key, and not against
another one. scripts/setup installs SoftHSM2 and the engine (MTLS_TEST_TOOLS=1)."""

import os
import re
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ansible_collections.mtls.nginx.plugins.module_utils import _pkcs11
from ansible_collections.mtls.nginx.plugins.module_utils._crypto import PKIError
from ansible_collections.mtls.nginx.plugins.module_utils._pkcs11 import TokenError, ensure_key

from test_pki_flows import TwoHosts, run_leaf

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "1234-unit"


def _engine():
    try:
        return _pkcs11.engine_location()
    except TokenError:
        return ""


pytestmark = pytest.mark.skipif(
    not (os.path.exists(SOFTHSM) and os.path.exists(_engine())),
    reason="SoftHSM2 and libengine-pkcs11-openssl are needed (scripts/setup with MTLS_TEST_TOOLS=1)")


@pytest.fixture
def token(tmp_path, monkeypatch):
    """A token labelled 'unit' with user PIN PIN, in a token directory of this test alone."""
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n" % tokens)
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "unit", "--pin", PIN,
                    "--so-pin", "5678-unit"], check=True, capture_output=True)
    return "unit"


def key(token, label="tier", **kw):
    return ensure_key(SOFTHSM, token, kw.pop("pin", PIN), label, **kw)


def test_a_missing_library_is_named(token):
    with pytest.raises(TokenError, match=r"PKCS#11 module /usr/lib/nope\.so: no such file"):
        ensure_key("/usr/lib/nope.so", token, PIN, "tier", state="check")


def test_a_library_that_is_not_pkcs11_is_named(token, tmp_path):
    libz = next(p for p in ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1") if os.path.exists(p))
    with pytest.raises(TokenError, match=r"not a PKCS#11 library \(no C_Initialize\)"):
        ensure_key(libz, token, PIN, "tier", state="check")


def test_a_missing_token_is_named_with_the_tokens_present(token):
    with pytest.raises(TokenError, match=r"no token labelled 'other'; tokens present: 'unit'"):
        key("other", state="check")


def test_a_wrong_pin_is_named_and_nothing_is_made(token):
    with pytest.raises(TokenError, match=r"token 'unit' .*: wrong PIN \(CKR_PIN_INCORRECT\)"):
        key(token, pin="0000", common_name="svc")
    assert key(token, state="check")["exists"] is False


def test_a_pin_an_openssl_config_cannot_hold_is_refused_before_the_token_is_touched(token):
    with pytest.raises(TokenError, match="pin contains a character"):
        key(token, pin="12\n[evil]", state="check")


def test_check_mode_reports_the_key_it_would_make_and_makes_none(token):
    result = key(token, common_name="svc", check_mode=True)
    assert (result["changed"], result["exists"], result["csr"]) == (True, False, "")
    assert key(token, state="check")["exists"] is False


def test_check_mode_before_the_engine_is_installed_makes_no_csr(token, tmp_path):
    key(token)
    result = key(token, common_name="svc", engine_path=str(tmp_path / "no-engine.so"), check_mode=True)
    assert (result["changed"], result["exists"], result["csr"]) == (False, True, "")
    with pytest.raises(TokenError, match="pkcs11 engine .*no-engine.so is missing"):
        key(token, common_name="svc", engine_path=str(tmp_path / "no-engine.so"))


def test_the_key_is_made_once_inside_the_token_and_never_leaves_it(token):
    first = key(token)
    assert (first["changed"], first["exists"]) == (True, True)
    # nginx names the key by its CKA_ID, which a rotation's relabelling keeps.
    assert re.fullmatch(r"[0-9a-f]{16}", first["key_id"])
    assert first["uri"] == "pkcs11:token=unit;id=%s;type=private" % "".join(
        "%" + first["key_id"][i:i + 2] for i in range(0, 16, 2))
    again = key(token)
    assert again["changed"] is False
    assert again["public_key_pem"] == first["public_key_pem"]
    session = _pkcs11.Token(SOFTHSM, token, PIN)
    try:
        found = session.key("tier")
        assert (found["sensitive"], found["extractable"]) == (True, False)
        assert session.flag(found["handles"][0], _pkcs11.CKA_NEVER_EXTRACTABLE)
    finally:
        session.close()


def test_the_csr_is_signed_by_the_token_key(token):
    result = key(token, common_name="spiffe://mesh.internal/web $x")
    csr = x509.load_pem_x509_csr(result["csr"].encode())
    assert csr.is_signature_valid
    public = serialization.load_pem_public_key(result["public_key_pem"].encode())
    assert csr.public_key().public_numbers() == public.public_numbers()
    assert csr.subject.rfc4514_string() == "CN=spiffe://mesh.internal/web $x"


def test_promoted_gives_the_staged_key_the_live_label_and_removes_the_old_key(token):
    live = key(token)
    staged = key(token, label="tier.next")
    assert staged["key_id"] != live["key_id"]
    promoted = key(token, label="tier.next", state="promoted", promote_to="tier")
    assert (promoted["changed"], promoted["key_id"]) == (True, staged["key_id"])
    assert promoted["uri"] == staged["uri"]
    now = key(token, state="check")
    assert (now["exists"], now["key_id"]) == (True, staged["key_id"])
    assert key(token, label="tier.next", state="check")["exists"] is False
    # Done already: nothing changes.
    again = key(token, label="tier.next", state="promoted", promote_to="tier")
    assert (again["changed"], again["key_id"]) == (False, staged["key_id"])


def test_promoted_in_check_mode_changes_nothing(token):
    live = key(token)
    key(token, label="tier.next")
    assert key(token, label="tier.next", state="promoted", promote_to="tier", check_mode=True)["changed"] is True
    assert key(token, state="check")["key_id"] == live["key_id"]


def test_absent_removes_both_halves_and_a_second_time_changes_nothing(token):
    key(token)
    assert key(token, state="absent")["changed"] is True
    assert key(token, state="absent")["changed"] is False
    assert key(token, state="check")["exists"] is False


def test_the_ca_signs_the_token_csr_and_install_checks_the_certificate_against_the_token_key(token, tmp_path):
    hosts = TwoHosts(tmp_path)
    made = key(token, common_name="svc", certificate_path=hosts.cert_path)
    assert made["existing_certificate"] == ""
    _writer, signed = hosts.sign(made["csr"])
    _writer, installed = run_leaf("install", certificate_content=signed["chain_pem"], path=hosts.cert_path,
                                  public_key_content=made["public_key_pem"])
    assert installed["reasons"] == ["certificate at %s differs" % hosts.cert_path]
    # The next run finds the certificate, and the CA keeps it.
    again = key(token, common_name="svc", certificate_path=hosts.cert_path)
    assert again["existing_certificate"] == signed["certificate_pem"]
    _writer, kept = hosts.sign(again["csr"], certificate_content=again["existing_certificate"])
    assert kept["signed"] is False
    # A certificate for another key is refused.
    other = key(token, label="other")
    with pytest.raises(PKIError, match="does not belong to the private key in the token's key"):
        run_leaf("install", certificate_content=signed["chain_pem"], path=hosts.cert_path,
                 public_key_content=other["public_key_pem"])


def test_the_check_loads_the_engine_with_the_library_and_pin(token, tmp_path):
    assert key(token, state="check", engine_required=True)["exists"] is False
    with pytest.raises(TokenError, match="pkcs11 engine .*no-engine.so is missing"):
        key(token, state="check", engine_path=str(tmp_path / "no-engine.so"), engine_required=True)
    # Not installed yet, and not required: the play checks again once it is.
    assert key(token, state="check", engine_path=str(tmp_path / "no-engine.so"))["exists"] is False


def test_the_check_refuses_an_nginx_without_openssl(token, tmp_path):
    fake = tmp_path / "nginx"
    fake.write_text("#!/bin/sh\necho 'nginx version: nginx/1.25.0' >&2\necho 'built with BoringSSL' >&2\n")
    fake.chmod(0o755)
    with pytest.raises(TokenError, match="nginx is built with BoringSSL, not with OpenSSL"):
        key(token, state="check", nginx_path=str(fake))
    fake.write_text("#!/bin/sh\necho 'built with OpenSSL 3.0.15 3 Sep 2024' >&2\n")
    assert key(token, state="check", nginx_path=str(fake))["exists"] is False


def test_the_engine_is_found_in_the_engines_directory_of_the_hosts_openssl(token):
    out = subprocess.run(["openssl", "version", "-e"], capture_output=True, text=True, check=True).stdout
    engines = re.search(r'ENGINESDIR: "([^"]+)"', out).group(1)
    assert _pkcs11.engine_location() == os.path.join(engines, "pkcs11.so")
    assert _pkcs11.engine_location("/opt/engines/pkcs11.so") == "/opt/engines/pkcs11.so"
    assert key(token, state="check", engine_required=True)["engine_path"] == os.path.join(engines, "pkcs11.so")


def test_without_openssl_a_check_goes_on_and_a_required_engine_is_named(token, tmp_path, monkeypatch):
    # Before the run installs openssl: nothing to ask where the engines are.
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = key(token, state="check")
    assert result["engine_path"] == "" and result["exists"] is False
    with pytest.raises(TokenError, match=r"cannot ask openssl where its engines are .*give engine_path"):
        key(token, state="check", engine_required=True)
    # A key is made inside the token without OpenSSL; its CSR is signed through the engine.
    made = key(token)
    assert made["changed"] is True and made["exists"] is True and made["engine_path"] == ""
    with pytest.raises(TokenError, match=r"cannot ask openssl where its engines are .*give engine_path"):
        key(token, common_name="tier.internal")
