"""mtls.nginx.ca_archive as Ansible runs it: arguments in, one JSON result out. The logic is
tested in tests/unit/plugins/module_utils/test_archive.py; these tests cover what the thin
module adds: argument rules, the result, check mode, no_log, clean failures."""

import json
import os
import stat

import pytest

from modulerun import run_module as run
from ansible_collections.mtls.nginx.plugins.module_utils import _archive
from ansible_collections.mtls.nginx.plugins.modules import ca, ca_archive

PASSPHRASE = "unit-archive-passphrase"


@pytest.fixture
def pki(tmp_path, capsys):
    """A CA directory made by the ca module as the pki role runs it: a root and an issuing
    intermediate, each with its CRL, under the ledger's lock."""
    directory = tmp_path / "pki"
    directory.mkdir(mode=0o700)
    common = {"ledger_path": str(directory / "ledger.json"), "lock_timeout": 5}
    for args in ({"path": "ca.pem", "privatekey_path": "ca.key", "crl_path": "ca.crl", "common_name": "Unit CA",
                  "path_length": 1},
                 {"path": "intermediate.pem", "privatekey_path": "intermediate.key", "crl_path": "intermediate.crl",
                  "chain_path": "intermediate-chain.pem", "parent_path": "ca.pem", "parent_privatekey_path": "ca.key",
                  "common_name": "Unit issuing CA", "path_length": 0}):
        args = dict((key, str(directory / value) if key.endswith("path") else value) for key, value in args.items())
        result, failed = run(ca, dict(common, **args), capsys)
        assert not failed, result
    return directory


@pytest.fixture
def fast(monkeypatch):
    """A cheaper scrypt for the tests that do not look at it."""
    monkeypatch.setattr(_archive, "SCRYPT_N", 2 ** 14)


def backup(pki, dest, capsys, check_mode=False, **kw):
    args = dict({"state": "backup", "path": str(pki), "dest": str(dest), "passphrase": PASSPHRASE}, **kw)
    return run(ca_archive, args, capsys, check_mode=check_mode)


def test_backup_verify_restore_round_trip(pki, tmp_path, capsys):
    result, failed = backup(pki, tmp_path / "ca.archive", capsys)
    assert not failed and result["changed"], result
    assert stat.S_IMODE(os.stat(str(tmp_path / "ca.archive")).st_mode) == 0o600
    header = json.loads((tmp_path / "ca.archive").read_bytes().split(b"\n")[1])
    assert header["kdf"]["n"] == 2 ** 17  # the module's own cost
    assert result["ca"]["subject"] == "CN=Unit CA"
    assert [cert["file"] for cert in result["certificates"]] == ["ca.pem", "intermediate.pem"]
    assert result["files"] == ["ca.crl", "ca.key", "ca.pem", "intermediate-chain.pem", "intermediate.crl",
                               "intermediate.key", "intermediate.pem"]

    verified, failed = run(ca_archive, {"state": "verify", "src": str(tmp_path / "ca.archive"),
                                        "passphrase": PASSPHRASE,
                                        "expect_ca_fingerprint": [result["ca"]["fingerprint_sha256"]]}, capsys)
    assert not failed and verified["changed"] is False and verified["files"] == result["files"]

    args = {"state": "restore", "src": str(tmp_path / "ca.archive"), "path": str(tmp_path / "restored"),
            "passphrase": PASSPHRASE}
    restored, failed = run(ca_archive, args, capsys)
    assert not failed and restored["changed"] and restored["path"] == str(tmp_path / "restored")
    for name in result["files"]:
        assert (tmp_path / "restored" / name).read_bytes() == (pki / name).read_bytes()
    again, failed = run(ca_archive, args, capsys)
    assert not failed and again["changed"] is False


def test_the_passphrase_is_never_echoed(pki, tmp_path, capsys, fast):
    outputs = [backup(pki, tmp_path / "ca.archive", capsys)[0]]
    outputs.append(run(ca_archive, {"state": "verify", "src": str(tmp_path / "ca.archive"), "passphrase": PASSPHRASE},
                       capsys)[0])
    outputs.append(run(ca_archive, {"state": "restore", "src": str(tmp_path / "ca.archive"),
                                    "path": str(tmp_path / "r"), "passphrase": PASSPHRASE}, capsys)[0])
    text = json.dumps(outputs)
    assert PASSPHRASE not in text and "PRIVATE KEY" not in text
    assert PASSPHRASE.encode() not in (tmp_path / "ca.archive").read_bytes()


def test_backup_in_check_mode_writes_nothing(pki, tmp_path, capsys, fast):
    result, failed = backup(pki, tmp_path / "ca.archive", capsys, check_mode=True)
    assert not failed and result["changed"]
    assert not (tmp_path / "ca.archive").exists()


def test_restore_in_check_mode_writes_nothing(pki, tmp_path, capsys, fast):
    backup(pki, tmp_path / "ca.archive", capsys)
    result, failed = run(ca_archive, {"state": "restore", "src": str(tmp_path / "ca.archive"),
                                      "path": str(tmp_path / "restored"), "passphrase": PASSPHRASE}, capsys,
                         check_mode=True)
    assert not failed and result["changed"]
    assert not (tmp_path / "restored").exists()


@pytest.mark.parametrize("args, message", [
    ({"state": "backup", "path": "/nonexistent"}, "state is backup but all of the following are missing: dest"),
    ({"state": "restore", "src": "/nonexistent"}, "state is restore but all of the following are missing: path"),
    ({"state": "verify"}, "state is verify but all of the following are missing: src"),
])
def test_each_state_needs_its_arguments(capsys, args, message):
    result, failed = run(ca_archive, dict(args, passphrase=PASSPHRASE), capsys)
    assert failed and message in result["msg"]


def test_refusals_are_clean_failures(pki, tmp_path, capsys, fast):
    result, failed = backup(pki, tmp_path / "ca.archive", capsys, passphrase="short")
    assert failed and result["msg"] == "passphrase: at least 12 characters are needed, this one has 5"
    assert not (tmp_path / "ca.archive").exists()

    backup(pki, tmp_path / "ca.archive", capsys)
    result, failed = run(ca_archive, {"state": "restore", "src": str(tmp_path / "ca.archive"),
                                      "path": str(tmp_path / "restored"), "passphrase": "another passphrase"}, capsys)
    assert failed and "wrong passphrase" in result["msg"] and "exception" not in result
    assert not (tmp_path / "restored").exists()

    result, failed = run(ca_archive, {"state": "verify", "src": str(pki / "ca.pem"), "passphrase": PASSPHRASE}, capsys)
    assert failed and result["msg"].startswith(str(pki / "ca.pem") + ": not an archive of mtls.nginx.ca_archive")

    result, failed = run(ca_archive, {"state": "verify", "src": str(tmp_path / "missing"), "passphrase": PASSPHRASE},
                         capsys)
    assert failed and result["msg"].startswith(str(tmp_path / "missing") + ": cannot be read")

    result, failed = run(ca_archive, {"state": "restore", "src": str(tmp_path / "ca.archive"), "path": str(pki),
                                      "passphrase": PASSPHRASE, "expect_ca_fingerprint": ["00" * 32]}, capsys)
    assert failed and "an archive of another CA: it holds CN=Unit CA (" in result["msg"]
