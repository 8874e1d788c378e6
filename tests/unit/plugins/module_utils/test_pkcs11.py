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


def _object_files(token_dir):
    """Each key object file of the SoftHSM2 token directory and its content: SoftHSM2 keeps one
    file per object (<uuid>.object), beside the token's own (token.object)."""
    found = {}
    for path in sorted(token_dir.rglob("*.object")):
        if path.name != "token.object":
            found[path.name] = path.read_bytes()
    return found


def _installed(hosts, made):
    """Sign the CSR of a key ``made`` and install its certificate at hosts.cert_path."""
    _writer, signed = hosts.sign(made["csr"])
    run_leaf("install", certificate_content=signed["chain_pem"], path=hosts.cert_path,
             public_key_content=made["public_key_pem"])
    return signed


def test_a_rotation_never_writes_to_a_key_nginx_uses(token, tmp_path):
    # SoftHSM2 rewrites a key's object file to relabel it, and an nginx worker that reads it
    # meanwhile finds its key's handle invalid (500s and 502s under load). The new key is made
    # under its final label beside the live one, and the old one removed: object files are only
    # made and removed, never rewritten.
    hosts = TwoHosts(tmp_path)
    tokens = tmp_path / "tokens"
    live = key(token, common_name="svc", certificate_path=hosts.cert_path)
    _installed(hosts, live)
    before = _object_files(tokens)
    staged = key(token, state="staged", common_name="svc", certificate_path=hosts.cert_path)
    after_stage = _object_files(tokens)
    assert set(before) < set(after_stage) and len(after_stage) == len(before) + 2
    assert all(after_stage[name] == content for name, content in before.items())
    # The live key's CSR and the staged key's are signed by the two different keys.
    assert staged["key_id"] != live["key_id"] and staged["public_key_pem"] != live["public_key_pem"]
    csr = x509.load_pem_x509_csr(staged["csr"].encode())
    assert csr.is_signature_valid
    assert csr.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo) \
        == staged["public_key_pem"].encode()
    pruned = key(token, state="pruned", key_id=staged["key_id"])
    assert (pruned["changed"], pruned["removed"]) == (True, [live["key_id"]])
    after_prune = _object_files(tokens)
    assert set(after_prune) == set(after_stage) - set(before)
    assert all(after_prune[name] == after_stage[name] for name in after_prune)


def test_while_both_keys_stand_the_live_one_is_the_key_the_certificate_belongs_to(token, tmp_path):
    hosts = TwoHosts(tmp_path)
    live = key(token, common_name="svc", certificate_path=hosts.cert_path)
    _installed(hosts, live)
    staged = key(token, state="staged", common_name="svc", certificate_path=hosts.cert_path)
    # A deploy in between (or after a run that stopped) keeps the live key and its certificate.
    again = key(token, common_name="svc", certificate_path=hosts.cert_path)
    assert (again["changed"], again["key_id"]) == (False, live["key_id"])
    assert key(token, state="check", certificate_path=hosts.cert_path)["key_id"] == live["key_id"]
    # Once the new certificate is installed, the new key is the live one.
    _installed(hosts, staged)
    assert key(token, common_name="svc", certificate_path=hosts.cert_path)["key_id"] == staged["key_id"]
    # Without a certificate either key could be live: a deploy refuses, naming both, and makes nothing.
    os.remove(hosts.cert_path)
    with pytest.raises(TokenError, match="label 'tier' names 2 key pairs .*%s.*belongs to none" % min(live["key_id"], staged["key_id"])):
        key(token, common_name="svc", certificate_path=hosts.cert_path)


def test_a_second_stage_replaces_a_new_key_left_by_a_rotation_that_stopped(token, tmp_path):
    hosts = TwoHosts(tmp_path)
    live = key(token, common_name="svc", certificate_path=hosts.cert_path)
    _installed(hosts, live)
    left = key(token, state="staged", common_name="svc", certificate_path=hosts.cert_path)
    # And a key an earlier version staged under <label>.next.
    legacy = key(token, label="tier.next")
    staged = key(token, state="staged", common_name="svc", certificate_path=hosts.cert_path)
    assert staged["removed"] == [left["key_id"], legacy["key_id"]]
    assert key(token, label="tier.next", state="check")["exists"] is False
    session = _pkcs11.Token(SOFTHSM, token, PIN)
    try:
        assert session.key_ids("tier") == sorted([live["key_id"], staged["key_id"]])
    finally:
        session.close()


def test_pruned_keeps_the_named_key_and_a_second_time_changes_nothing(token, tmp_path):
    hosts = TwoHosts(tmp_path)
    live = key(token, common_name="svc", certificate_path=hosts.cert_path)
    _installed(hosts, live)
    staged = key(token, state="staged", common_name="svc", certificate_path=hosts.cert_path)
    # Check mode names what it would remove and removes nothing.
    would = key(token, state="pruned", key_id=staged["key_id"], check_mode=True)
    assert (would["changed"], would["removed"]) == (True, [live["key_id"]])
    # Undoing a rotation keeps the live key.
    undone = key(token, state="pruned", key_id=live["key_id"])
    assert (undone["changed"], undone["removed"]) == (True, [staged["key_id"]])
    again = key(token, state="pruned", key_id=live["key_id"])
    assert (again["changed"], again["removed"]) == (False, [])
    assert again["uri"] == live["uri"]
    # A key that is not there is refused, and nothing is removed.
    with pytest.raises(TokenError, match="no key pair under the label 'tier' has the CKA_ID %s .*nothing was removed"
                       % staged["key_id"]):
        key(token, state="pruned", key_id=staged["key_id"])
    assert key(token, state="check")["key_id"] == live["key_id"]
    with pytest.raises(TokenError, match="key_id 'xyz': give the key's CKA_ID in hex"):
        key(token, state="pruned", key_id="xyz")


def test_staged_in_check_mode_makes_no_key(token, tmp_path):
    hosts = TwoHosts(tmp_path)
    live = key(token, common_name="svc", certificate_path=hosts.cert_path)
    _installed(hosts, live)
    checked = key(token, state="staged", common_name="svc", certificate_path=hosts.cert_path, check_mode=True)
    assert (checked["changed"], checked["csr"]) == (True, "")
    session = _pkcs11.Token(SOFTHSM, token, PIN)
    try:
        assert session.key_ids("tier") == [live["key_id"]]
    finally:
        session.close()


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
