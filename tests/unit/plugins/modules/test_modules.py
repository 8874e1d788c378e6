"""The four modules as Ansible runs them: arguments in, one JSON result out.

The logic is tested in tests/unit/plugins/module_utils; these tests cover what the thin
modules add: argument rules, the result they report, check mode, no_log, failure messages."""

import json
import os
import stat

import pytest

from modulerun import run_module as run
from ansible_collections.mtls.nginx.plugins.modules import ca, certificate, certificate_check, tls_probe


@pytest.fixture
def pki(tmp_path, capsys):
    result, failed = run(ca, {"path": str(tmp_path / "ca.pem"), "privatekey_path": str(tmp_path / "ca.key"),
                              "common_name": "Unit CA", "crl_path": str(tmp_path / "ca.crl")}, capsys)
    assert not failed, result
    return tmp_path


def test_ca_reports_its_certificate_and_crl_then_no_change(pki, capsys):
    args = {"path": str(pki / "ca.pem"), "privatekey_path": str(pki / "ca.key"), "common_name": "Unit CA",
            "crl_path": str(pki / "ca.crl")}
    result, failed = run(ca, args, capsys)
    assert not failed and result["changed"] is False
    assert result["certificate"]["subject"] == "CN=Unit CA" and result["certificate"]["days_remaining"] >= 3649
    assert result["crl"]["crl_number"] == 1 and result["crl"]["revoked_serials"] == []


def test_ca_wants_both_parent_files(pki, capsys):
    result, failed = run(ca, {"path": str(pki / "int.pem"), "privatekey_path": str(pki / "int.key"),
                              "common_name": "Int", "parent_path": str(pki / "ca.pem")}, capsys)
    assert failed and "parent_privatekey_path" in result["msg"]
    assert not (pki / "int.key").exists()


def test_ca_passphrase_is_never_echoed(pki, capsys):
    result, failed = run(ca, {"path": str(pki / "enc.pem"), "privatekey_path": str(pki / "enc.key"),
                              "common_name": "Enc", "privatekey_passphrase": "s3cret-unit-pass"}, capsys)
    assert not failed
    assert "s3cret-unit-pass" not in json.dumps(result)


def test_certificate_operations_need_their_arguments(pki, capsys):
    result, failed = run(certificate, {"operation": "sign", "purpose": "client", "common_name": "x",
                                       "ca_path": str(pki / "ca.pem"), "ca_privatekey_path": str(pki / "ca.key")},
                         capsys)
    assert failed and "csr_content" in result["msg"] and "csr_path" in result["msg"]
    result, failed = run(certificate, {"operation": "install", "purpose": "client", "path": str(pki / "c.pem")},
                         capsys)
    assert failed and "certificate_content" in result["msg"]
    # The certificate installs next to a key file, or against a token key's public half.
    result, failed = run(certificate, {"operation": "install", "purpose": "client", "path": str(pki / "c.pem"),
                                       "certificate_content": "x"}, capsys)
    assert failed and "any of the following are missing: privatekey_path, public_key_content" in result["msg"]
    result, failed = run(certificate, {"operation": "install", "purpose": "client", "path": str(pki / "c.pem"),
                                       "certificate_content": "x", "privatekey_path": "k", "public_key_content": "p"},
                         capsys)
    assert failed and "mutually exclusive: privatekey_path|public_key_content" in result["msg"]


def test_certificate_request_sign_install_round_trip(pki, capsys, tmp_path_factory):
    host = tmp_path_factory.mktemp("host")
    asked = {"purpose": "client", "common_name": "svc", "subject_alt_names": ["URI:spiffe://unit/svc"]}
    request, failed = run(certificate, dict(asked, operation="request", privatekey_path=str(host / "c.key"),
                                            path=str(host / "c.pem")), capsys)
    assert not failed and request["changed"] and request["existing_certificate"] is None
    assert stat.S_IMODE(os.stat(host / "c.key").st_mode) == 0o600
    assert "PRIVATE" not in json.dumps(request)

    signed, failed = run(certificate, dict(asked, operation="sign", csr_content=request["csr"],
                                           ca_path=str(pki / "ca.pem"), ca_privatekey_path=str(pki / "ca.key")),
                         capsys)
    assert not failed and signed["changed"] and signed["signed"]
    assert signed["certificate"]["subject_alt_names"] == ["URI:spiffe://unit/svc"]

    installed, failed = run(certificate, {"operation": "install", "purpose": "client", "path": str(host / "c.pem"),
                                          "privatekey_path": str(host / "c.key"),
                                          "certificate_content": signed["chain_pem"]}, capsys)
    assert not failed and installed["changed"]

    again, again_failed = run(certificate, dict(asked, operation="request", privatekey_path=str(host / "c.key"),
                                                path=str(host / "c.pem")), capsys)
    kept, kept_failed = run(certificate, dict(asked, operation="sign", csr_content=again["csr"],
                                              certificate_content=again["existing_certificate"],
                                              ca_path=str(pki / "ca.pem"), ca_privatekey_path=str(pki / "ca.key")),
                            capsys)
    assert not again_failed and not kept_failed
    assert again["changed"] is False and kept["changed"] is False and kept["signed"] is False
    assert kept["certificate_pem"] == again["existing_certificate"]


def test_request_with_the_ca_tells_when_sign_and_install_can_be_left_out(pki, capsys, tmp_path_factory):
    """certificate_current is true only when sign would keep the certificate and install would
    write nothing: the same key, names, purpose, expiry margin, issuer, and the same files."""
    host = tmp_path_factory.mktemp("host")
    ca_content = (pki / "ca.pem").read_text()
    asked = {"purpose": "server", "common_name": "svc", "subject_alt_names": ["DNS:svc"]}
    at = {"privatekey_path": str(host / "s.key"), "path": str(host / "s.pem"), "chain_path": str(host / "s-chain.pem")}
    request, failed = run(certificate, dict(asked, operation="request", ca_content=ca_content, **at), capsys)
    assert not failed and request["certificate_current"] is False

    signed, failed = run(certificate, dict(asked, operation="sign", csr_content=request["csr"],
                                           ca_path=str(pki / "ca.pem"), ca_privatekey_path=str(pki / "ca.key")), capsys)
    assert not failed and signed["signed"]
    installed, failed = run(certificate, {"operation": "install", "purpose": "server", "path": at["path"],
                                          "chain_path": at["chain_path"], "privatekey_path": at["privatekey_path"],
                                          "certificate_content": signed["chain_pem"]}, capsys)
    assert not failed and installed["changed"]

    def current(**changes):
        args = dict(asked, operation="request", ca_content=ca_content, **at)
        args.update(changes)
        result, failed = run(certificate, args, capsys)
        assert not failed, result
        return result["certificate_current"]

    assert current() is True
    # A mode that drifted is put back by the request, as install would.
    os.chmod(at["path"], 0o600)
    assert current() is True and stat.S_IMODE(os.stat(at["path"]).st_mode) == 0o644
    # What sign would not keep.
    assert current(subject_alt_names=["DNS:svc", "DNS:other"]) is False
    assert current(purpose="client") is False
    assert current(valid_days=800, renew_before_days=400) is False
    other, failed = run(ca, {"path": str(pki / "other.pem"), "privatekey_path": str(pki / "other.key"),
                             "common_name": "Other CA"}, capsys)
    assert not failed
    assert current(ca_content=(pki / "other.pem").read_text()) is False
    # What install would rewrite.
    (host / "s-chain.pem").write_text((host / "s-chain.pem").read_text() + "\n")
    assert current() is False
    # Without ca_content, nothing is claimed.
    result, failed = run(certificate, dict(asked, operation="request", **at), capsys)
    assert not failed and "certificate_current" not in result
    # A CA bundle must start with a CA.
    result, failed = run(certificate, dict(asked, operation="request", ca_content=signed["certificate_pem"], **at),
                         capsys)
    assert failed and "ca_content: not a CA certificate" in result["msg"]


def test_certificate_check_mode_writes_nothing(pki, capsys):
    result, failed = run(certificate, {"path": str(pki / "leaf.pem"), "privatekey_path": str(pki / "leaf.key"),
                                       "ca_path": str(pki / "ca.pem"), "ca_privatekey_path": str(pki / "ca.key"),
                                       "purpose": "server", "common_name": "svc"}, capsys, check_mode=True)
    assert not failed and result["changed"]
    assert not (pki / "leaf.pem").exists() and not (pki / "leaf.key").exists()


def test_certificate_check_lists_every_problem_in_one_failure(pki, capsys):
    (pki / "empty.pem").write_bytes(b"")
    result, failed = run(certificate_check, {"path": str(pki / "empty.pem"), "privatekey_path": str(pki / "nokey"),
                                             "purpose": "client"}, capsys)
    assert failed
    assert result["problems"] == [str(pki / "empty.pem") + ": is empty (certificate expected)",
                                  str(pki / "nokey") + ": no such file (private key expected)"]
    assert result["msg"].startswith("2 problem(s)")


def test_certificate_check_crl_needs_a_ca(pki, capsys):
    result, failed = run(certificate_check, {"path": str(pki / "ca.pem"), "crl_path": str(pki / "ca.crl")}, capsys)
    assert failed and "crl_path needs ca_path" in result["msg"]
    result, failed = run(certificate_check, {"path": str(pki / "ca.pem"), "crl_path": str(pki / "ca.crl"),
                                             "purpose": "ca"}, capsys)
    assert not failed and result["bundle"] == ["CN=Unit CA"]


def test_tls_probe_reports_a_closed_port_as_failure_when_failure_is_expected(capsys):
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result, failed = run(tls_probe, {"host": "127.0.0.1", "port": port, "expect": "failure"}, capsys)
    assert not failed and result["changed"] is False and result["accepted"] is False
    assert "connection to 127.0.0.1:%d failed" % port in result["error"]
    result, failed = run(tls_probe, {"host": "127.0.0.1", "port": port}, capsys)
    assert failed and result["msg"].startswith("TLS probe of 127.0.0.1:%d" % port)


def _files(directory):
    """Bytes and modification time of every file in ``directory``."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


def test_certificate_new_passphrase_re_encrypts_key_and_password_file(tmp_path, capsys):
    args = {"operation": "request", "purpose": "server", "common_name": "svc",
            "privatekey_path": str(tmp_path / "svc.key"), "privatekey_passphrase_file": str(tmp_path / "svc.pass")}
    first, failed = run(certificate, dict(args, privatekey_passphrase="unit-old-pass"), capsys)
    assert not failed and first["changed"]
    assert (tmp_path / "svc.pass").read_bytes() == b"unit-old-pass\n"

    before = _files(tmp_path)
    checked, failed = run(certificate, dict(args, privatekey_passphrase="unit-new-pass"), capsys, check_mode=True)
    assert not failed and checked["changed"] and _files(tmp_path) == before

    result, failed = run(certificate, dict(args, privatekey_passphrase="unit-new-pass"), capsys)
    assert not failed and result["changed"]
    assert result["reasons"] == ["private key re-encrypted with the new passphrase"]
    assert (tmp_path / "svc.pass").read_bytes() == b"unit-new-pass\n"
    assert stat.S_IMODE(os.stat(tmp_path / "svc.pass").st_mode) == 0o600
    text = json.dumps([first, checked, result])
    assert "unit-old-pass" not in text and "unit-new-pass" not in text and "PRIVATE" not in text

    again, failed = run(certificate, dict(args, privatekey_passphrase="unit-new-pass"), capsys)
    assert not failed and again["changed"] is False


def test_certificate_passphrase_nothing_opens_fails_without_a_change(tmp_path, capsys):
    args = {"operation": "request", "purpose": "server", "common_name": "svc",
            "privatekey_path": str(tmp_path / "svc.key"), "privatekey_passphrase_file": str(tmp_path / "svc.pass")}
    assert not run(certificate, dict(args, privatekey_passphrase="unit-old-pass"), capsys)[1]
    (tmp_path / "svc.pass").write_bytes(b"unit-other-pass\n")
    before = _files(tmp_path)

    result, failed = run(certificate, dict(args, privatekey_passphrase="unit-new-pass"), capsys)

    assert failed and result["msg"].startswith(str(tmp_path / "svc.key") + ": the passphrase")
    assert "does not decrypt" in result["msg"] and str(tmp_path / "svc.pass") in result["msg"]
    assert not any(p in json.dumps(result) for p in ("unit-old-pass", "unit-new-pass", "unit-other-pass"))
    assert _files(tmp_path) == before


def csr_key(pem):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_csr(pem.encode()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def read_csr_of(key_path, item):
    """The public key of the key file, as a CSR of it would carry it (PEM of a one-off CSR)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    passphrase = item.get("privatekey_passphrase")
    with open(key_path, "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), passphrase.encode() if passphrase else None)
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_requests_ensure_several_keys_in_one_run_each_as_a_request_of_its_own(pki, capsys, tmp_path_factory):
    """requests: the keys of a host's tiers in one module run; each item's result is what a request
    of its own returns (the same CSR key, certificate_current), and a refused item is named."""
    host = tmp_path_factory.mktemp("host")
    ca_content = (pki / "ca.pem").read_text()
    items = [
        {"privatekey_path": str(host / "up.key"), "path": str(host / "up.pem"), "chain_path": str(host / "up-chain.pem"),
         "purpose": "server", "common_name": "up", "subject_alt_names": ["DNS:up"]},
        {"privatekey_path": str(host / "px.key"), "path": str(host / "px.pem"), "purpose": "client",
         "common_name": "px", "privatekey_passphrase": "s3cret-passphrase", "privatekey_passphrase_file": str(host / "px.pass"),
         "key_type": "ecdsa-p384"},
    ]
    batch, failed = run(certificate, {"operation": "request", "requests": items, "ca_content": ca_content}, capsys)
    assert not failed, batch
    assert batch["changed"] is True and len(batch["requested"]) == 2
    assert [result["certificate_current"] for result in batch["requested"]] == [False, False]
    assert "s3cret-passphrase" not in json.dumps(batch) and "PRIVATE" not in json.dumps(batch)
    assert stat.S_IMODE(os.stat(host / "up.key").st_mode) == 0o600 and (host / "px.pass").exists()
    assert "ENCRYPTED" in (host / "px.key").read_text()

    # Sign and install the first; the batch then says it is current, and each CSR is the key's own.
    signed, failed = run(certificate, {"operation": "sign", "purpose": "server", "common_name": "up",
                                       "subject_alt_names": ["DNS:up"], "csr_content": batch["requested"][0]["csr"],
                                       "ca_path": str(pki / "ca.pem"), "ca_privatekey_path": str(pki / "ca.key")}, capsys)
    assert not failed and signed["signed"]
    installed, failed = run(certificate, {"operation": "install", "purpose": "server", "path": items[0]["path"],
                                          "chain_path": items[0]["chain_path"], "privatekey_path": items[0]["privatekey_path"],
                                          "certificate_content": signed["chain_pem"]}, capsys)
    assert not failed and installed["changed"]
    again, failed = run(certificate, {"operation": "request", "requests": items, "ca_content": ca_content}, capsys)
    assert not failed and again["changed"] is False
    assert [result["certificate_current"] for result in again["requested"]] == [True, False]
    for item, result in zip(items, again["requested"]):
        single, failed = run(certificate, dict(item, operation="request", ca_content=ca_content), capsys)
        assert not failed and single["changed"] is False
        assert csr_key(single["csr"]) == csr_key(result["csr"]) == csr_key(read_csr_of(item["privatekey_path"], item))
        assert single["certificate_current"] == result["certificate_current"]

    # A refused item names itself; nothing of a later item is made.
    bad = items + [{"privatekey_path": str(host / "bad.key"), "purpose": "client", "common_name": "a;b"},
                   {"privatekey_path": str(host / "late.key"), "purpose": "client", "common_name": "late"}]
    refused, failed = run(certificate, {"operation": "request", "requests": bad}, capsys)
    assert failed and refused["msg"].startswith("requests[2] (%s): " % (host / "bad.key"))
    assert not (host / "bad.key").exists() and not (host / "late.key").exists()


def test_requests_are_for_request_only_and_a_single_request_still_needs_its_key_and_name(pki, capsys):
    result, failed = run(certificate, {"operation": "sign", "purpose": "client", "common_name": "c", "csr_content": "x",
                                       "ca_path": str(pki / "ca.pem"), "ca_privatekey_path": str(pki / "ca.key"),
                                       "requests": [{"privatekey_path": "k", "purpose": "client", "common_name": "c"}]}, capsys)
    assert failed and result["msg"] == "requests: only for operation=request, not sign"
    result, failed = run(certificate, {"operation": "request", "purpose": "client", "common_name": "c"}, capsys)
    assert failed and "missing: privatekey_path" in result["msg"]
    result, failed = run(certificate, {"operation": "issue", "privatekey_path": "k", "common_name": "c", "path": "p",
                                       "ca_path": str(pki / "ca.pem"), "ca_privatekey_path": str(pki / "ca.key")}, capsys)
    assert failed and "missing required arguments: purpose" in result["msg"]
