"""Backup, verify and restore of a whole CA directory (mtls.nginx.ca_archive's logic), on CA
directories made by the collection's own code: a root and an issuing intermediate with their
CRLs, a ledger with valid and revoked certificates, a retired generation under archive/."""

import io
import json
import os
import stat
import tarfile

import pytest

import pkifactory
from fakemodule import FakeModule
from ansible_collections.mtls.nginx.plugins.module_utils import _archive, _crypto
from ansible_collections.mtls.nginx.plugins.module_utils._crypto import PKIError
from ansible_collections.mtls.nginx.plugins.module_utils._files import FileWriter
from ansible_collections.mtls.nginx.plugins.module_utils._ledger import Ledger, locked
from ansible_collections.mtls.nginx.plugins.module_utils._pki import CertificateAuthority

PASSPHRASE = "correct horse battery staple"
# A cheaper scrypt than the module's (2**17): the format and the checks are the same.
FAST = 2 ** 14


def read(path):
    with open(str(path), "rb") as handle:
        return handle.read()


def ensure(directory, name, cn, check_mode=False, **kw):
    writer = FileWriter(FakeModule(check_mode))
    CertificateAuthority(writer, str(directory / (name + ".pem")), str(directory / (name + ".key")), cn,
                         crl_path=str(directory / (name + ".crl")), ledger_path=str(directory / "ledger.json"),
                         **kw).ensure()


def make_ca(directory, cn="Archive CA", retired=True):
    """A CA directory as the pki role keeps it."""
    directory.mkdir(mode=0o700)
    ensure(directory, "ca", cn, path_length=1)
    ensure(directory, "intermediate", cn + " issuing", path_length=0,
           chain_path=str(directory / "intermediate-chain.pem"), parent_path=str(directory / "ca.pem"),
           parent_privatekey_path=str(directory / "ca.key"))
    issuer = pkifactory.Cert(_crypto.load_certificate(read(directory / "intermediate.pem"), "intermediate.pem"),
                             _crypto.load_private_key(read(directory / "intermediate.key"), "intermediate.key"))
    ledger = Ledger(str(directory / "ledger.json"))
    for host in ("web-1", "web-2", "db-1"):
        ledger.record(pkifactory.issue(host, issuer=issuer).cert, host=host, tier="upstream")
    ledger.revoke(ledger.select(hosts=["db-1"]), "keyCompromise", "test")
    ledger.save(FileWriter(FakeModule()))
    # The CRLs list the revocation, as the pki role's next run makes them.
    ensure(directory, "ca", cn, path_length=1)
    ensure(directory, "intermediate", cn + " issuing", path_length=0,
           chain_path=str(directory / "intermediate-chain.pem"), parent_path=str(directory / "ca.pem"),
           parent_privatekey_path=str(directory / "ca.key"))
    (directory / "revoked.txt").write_text("4F2A # by hand\n")
    (directory / "generation").write_text("2\n")
    if retired:
        old = directory / "archive" / "generation-1"
        old.mkdir(mode=0o700, parents=True)
        os.chmod(str(directory / "archive"), 0o700)
        ensure(old, "ca", cn + " old")
    return directory


def snapshot(directory):
    """Every file (bytes, mode) and directory (mode) under ``directory``."""
    out = {}
    for top, dirs, names in os.walk(str(directory)):
        for name in dirs:
            path = os.path.join(top, name)
            out[os.path.relpath(path, str(directory)) + "/"] = stat.S_IMODE(os.lstat(path).st_mode)
        for name in names:
            path = os.path.join(top, name)
            out[os.path.relpath(path, str(directory))] = (read(path), stat.S_IMODE(os.lstat(path).st_mode))
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One CA directory and its archive, for the tests that only read them."""
    top = tmp_path_factory.mktemp("archive")
    pki = make_ca(top / "pki")
    result = _archive.backup(str(pki), str(top / "ca.archive"), PASSPHRASE, scrypt_n=FAST)
    return pki, top / "ca.archive", result


@pytest.fixture
def archive(made, tmp_path):
    """A copy of the archive, free to damage."""
    copy = tmp_path / "ca.archive"
    copy.write_bytes(read(made[1]))
    return copy


def fingerprint(pem_path):
    return _crypto.fingerprint_sha256(_crypto.load_certificate(read(pem_path), str(pem_path)))


# --- backup ---------------------------------------------------------------------------------------

def test_backup_writes_an_encrypted_archive_0600_with_a_clear_header(made):
    pki, archive, result = made
    data = read(archive)
    assert stat.S_IMODE(os.stat(str(archive)).st_mode) == 0o600
    assert result["changed"] and result["size"] == len(data)
    magic, header, ciphertext = data.split(b"\n", 2)
    assert magic == b"MTLS-NGINX-CA-ARCHIVE 1"
    header = json.loads(header)
    assert header["format"] == 1 and header["payload"] == "tar"
    assert header["ca"] == {"subject": "CN=Archive CA", "fingerprint_sha256": fingerprint(pki / "ca.pem")}
    assert {cert["file"] for cert in header["certificates"]} == {
        "ca.pem", "intermediate.pem", "archive/generation-1/ca.pem"}
    assert header["kdf"]["name"] == "scrypt" and header["kdf"]["n"] == FAST and header["kdf"]["r"] == 8
    assert header["cipher"]["name"] == "AES-256-GCM"
    assert header["ciphertext"]["length"] == len(ciphertext)
    # Nothing of a key, of the ledger or of a file name is in clear.
    for secret in (b"PRIVATE KEY", b"ledger", b"web-1", b"revoked.txt", b"4F2A"):
        assert secret not in data


def test_backup_reports_what_it_archived(made):
    pki, _archive_path, result = made
    assert result["ca"]["subject"] == "CN=Archive CA"
    assert result["files"] == sorted([
        "archive/generation-1/ca.crl", "archive/generation-1/ca.key", "archive/generation-1/ca.pem",
        "ca.crl", "ca.key", "ca.pem", "generation", "intermediate-chain.pem", "intermediate.crl",
        "intermediate.key", "intermediate.pem", "ledger.json", "revoked.txt"])
    assert result["ledger"] == {"total": 3, "valid": 2, "superseded": 0, "revoked": 1}
    assert "ca.key: the key of ca.pem" in result["checks"]
    assert "intermediate-chain.pem: verifies to CN=Archive CA" in result["checks"]
    assert "intermediate.crl: signed by CN=Archive CA issuing (intermediate.pem)" in result["checks"]
    assert all(set(cert) == {"file", "subject", "fingerprint_sha256", "not_after"} for cert in result["certificates"])


def test_backup_leaves_the_lock_file_out(tmp_path):
    pki = make_ca(tmp_path / "pki", retired=False)
    (pki / ".lock").write_text("{}")  # left behind by a run that was killed
    result = _archive.backup(str(pki), str(tmp_path / "a"), PASSPHRASE, scrypt_n=FAST)
    assert ".lock" not in result["files"]
    assert ".lock" not in _archive.verify(str(tmp_path / "a"), PASSPHRASE)["files"]


def test_backup_waits_for_the_lock_and_names_its_holder(tmp_path):
    pki = make_ca(tmp_path / "pki", retired=False)
    with locked(str(pki), "a rotation"):
        with pytest.raises(PKIError, match="locked by a rotation on .*nothing was changed"):
            _archive.backup(str(pki), str(tmp_path / "a"), PASSPHRASE, lock_timeout=0.2, scrypt_n=FAST)
    assert not (tmp_path / "a").exists()


def test_backup_in_check_mode_writes_nothing(tmp_path):
    pki = make_ca(tmp_path / "pki", retired=False)
    before = snapshot(tmp_path)
    result = _archive.backup(str(pki), str(tmp_path / "a"), PASSPHRASE, check_mode=True, scrypt_n=FAST)
    assert result["changed"] and snapshot(tmp_path) == before


def test_backup_of_a_directory_without_ca_pem_is_refused(tmp_path):
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ledger.json").write_text("{}")
    with pytest.raises(PKIError, match="pki: no ca.pem there, so not the directory of a CA"):
        _archive.backup(str(tmp_path / "pki"), str(tmp_path / "a"), PASSPHRASE)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("dest, message", [
    ("missing/a", "missing/a: directory .*missing does not exist"),
    ("pki/backup.archive", "inside the CA directory"),
])
def test_backup_refuses_a_dest_it_cannot_or_should_not_write(tmp_path, dest, message):
    pki = make_ca(tmp_path / "pki", retired=False)
    before = snapshot(tmp_path)
    with pytest.raises(PKIError, match=message):
        _archive.backup(str(pki), str(tmp_path / dest), PASSPHRASE, scrypt_n=FAST)
    assert snapshot(tmp_path) == before


def test_backup_wants_a_passphrase_of_12_characters(tmp_path):
    pki = make_ca(tmp_path / "pki", retired=False)
    with pytest.raises(PKIError, match="passphrase: at least 12 characters are needed, this one has 5"):
        _archive.backup(str(pki), str(tmp_path / "a"), "short")


def test_backup_refuses_a_link_in_the_ca_directory(tmp_path):
    pki = make_ca(tmp_path / "pki", retired=False)
    os.symlink("/etc/passwd", str(pki / "passwd"))
    with pytest.raises(PKIError, match="pki/passwd: a symbolic link; a CA directory holds files and directories only"):
        _archive.backup(str(pki), str(tmp_path / "a"), PASSPHRASE, scrypt_n=FAST)
    assert not (tmp_path / "a").exists()


def test_backup_refuses_an_inconsistent_ca(tmp_path):
    pki = make_ca(tmp_path / "pki", retired=False)
    (pki / "intermediate.key").write_bytes(pkifactory.Cert(None, pkifactory.key()).key_pem())
    with pytest.raises(PKIError, match="pki/intermediate.key: does not belong to intermediate.pem"):
        _archive.backup(str(pki), str(tmp_path / "a"), PASSPHRASE, scrypt_n=FAST)
    assert not (tmp_path / "a").exists()


def test_an_encrypted_ca_key_is_archived_and_noted_as_not_compared(tmp_path):
    pki = tmp_path / "pki"
    pki.mkdir()
    ensure(pki, "ca", "Sealed CA", privatekey_passphrase="the key's own passphrase")
    result = _archive.backup(str(pki), str(tmp_path / "a"), PASSPHRASE, scrypt_n=FAST)
    assert "ca.key: encrypted, not compared with ca.pem" in result["checks"]


# --- verify ---------------------------------------------------------------------------------------

def test_verify_returns_what_the_archive_holds_and_writes_nothing(made, tmp_path):
    pki, archive, backed_up = made
    before = snapshot(archive.parent)
    result = _archive.verify(str(archive), PASSPHRASE)
    assert snapshot(archive.parent) == before
    assert result["changed"] is False and result["created"].endswith("Z")
    for key in ("ca", "certificates", "files", "ledger", "checks"):
        assert result[key] == backed_up[key]


def test_verify_accepts_the_expected_fingerprint_with_or_without_colons(made):
    pki, archive, _result = made
    colons = fingerprint(pki / "intermediate.pem")
    assert _archive.verify(str(archive), PASSPHRASE, [colons])["ca"]["subject"] == "CN=Archive CA"
    assert _archive.verify(str(archive), PASSPHRASE, [colons.replace(":", "").lower()])


def test_verify_refuses_a_fingerprint_that_is_not_one(made):
    with pytest.raises(PKIError, match="expect_ca_fingerprint: 'AB:CD' is not a SHA-256 fingerprint"):
        _archive.verify(str(made[1]), PASSPHRASE, ["AB:CD"])


# --- what every read refuses ----------------------------------------------------------------------

def test_a_wrong_passphrase_is_named(archive, tmp_path):
    with pytest.raises(PKIError, match="ca.archive: wrong passphrase: the archive is whole"):
        _archive.restore(str(archive), PASSPHRASE + "!", str(tmp_path / "restored"))
    assert not (tmp_path / "restored").exists()


def test_a_truncated_archive_says_how_much_is_there(archive, tmp_path):
    data = read(archive)
    archive.write_bytes(data[:-100])
    with pytest.raises(PKIError, match="ca.archive: truncated: %d of %d bytes; nothing was changed"
                       % (len(data) - 100, len(data))):
        _archive.restore(str(archive), PASSPHRASE, str(tmp_path / "restored"))
    archive.write_bytes(data[:50])
    with pytest.raises(PKIError, match="truncated: 50 bytes, cut inside its header"):
        _archive.verify(str(archive), PASSPHRASE)
    assert not (tmp_path / "restored").exists()


def test_a_damaged_ciphertext_is_told_from_a_wrong_passphrase(archive, tmp_path):
    data = bytearray(read(archive))
    data[-200] ^= 0x01
    archive.write_bytes(bytes(data))
    with pytest.raises(PKIError, match="ca.archive: damaged: the SHA-256 of its ciphertext is [0-9a-f]{64}, its "
                                       "header says [0-9a-f]{64}"):
        _archive.restore(str(archive), PASSPHRASE, str(tmp_path / "restored"))
    assert not (tmp_path / "restored").exists()


def test_an_altered_header_does_not_decrypt(archive):
    magic, header, ciphertext = read(archive).split(b"\n", 2)
    header = json.loads(header)
    header["ca"]["subject"] = "CN=Someone else"
    archive.write_bytes(magic + b"\n" + json.dumps(header).encode() + b"\n" + ciphertext)
    with pytest.raises(PKIError, match="wrong passphrase.*or its header was altered"):
        _archive.verify(str(archive), PASSPHRASE)


@pytest.mark.parametrize("data", [b"", b"-----BEGIN CERTIFICATE-----\n", b"\x1f\x8b\x08\x00" + b"\0" * 100])
def test_a_file_that_is_not_an_archive_is_named(tmp_path, data):
    (tmp_path / "x").write_bytes(data)
    with pytest.raises(PKIError, match="x: not an archive of mtls.nginx.ca_archive"):
        _archive.verify(str(tmp_path / "x"), PASSPHRASE)


def test_an_archive_of_a_newer_format_is_named(archive):
    archive.write_bytes(b"MTLS-NGINX-CA-ARCHIVE 2\n{}\n")
    with pytest.raises(PKIError, match="archive format 2, which this collection does not read"):
        _archive.verify(str(archive), PASSPHRASE)


def test_a_header_that_asks_scrypt_for_too_much_memory_is_refused(archive):
    magic, header, ciphertext = read(archive).split(b"\n", 2)
    header = json.loads(header)
    header["kdf"]["n"] = 2 ** 24
    archive.write_bytes(magic + b"\n" + json.dumps(header).encode() + b"\n" + ciphertext)
    with pytest.raises(PKIError, match="damaged: its header: scrypt parameters n=16777216"):
        _archive.verify(str(archive), PASSPHRASE)


def test_an_archive_of_another_ca_is_refused_by_fingerprint(made, tmp_path):
    other = make_ca(tmp_path / "other", cn="Other CA", retired=False)
    expected = fingerprint(other / "ca.pem")
    with pytest.raises(PKIError) as refused:
        _archive.restore(str(made[1]), PASSPHRASE, str(tmp_path / "restored"), expect=[expected])
    message = str(refused.value)
    assert "an archive of another CA: it holds CN=Archive CA (%s)" % fingerprint(made[0] / "ca.pem") in message
    assert "expected %s" % expected in message
    assert not (tmp_path / "restored").exists()


# --- restore --------------------------------------------------------------------------------------

def test_restore_into_a_new_directory_gives_the_same_files_and_modes(made, tmp_path):
    pki, archive, backed_up = made
    result = _archive.restore(str(archive), PASSPHRASE, str(tmp_path / "restored"))
    assert result["changed"] and result["path"] == str(tmp_path / "restored")
    assert snapshot(tmp_path / "restored") == snapshot(pki)
    assert stat.S_IMODE(os.stat(str(tmp_path / "restored")).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(str(tmp_path / "restored" / "ca.key")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(tmp_path / "restored" / "archive" / "generation-1")).st_mode) == 0o700
    assert result["ca"] == backed_up["ca"] and result["ledger"] == backed_up["ledger"]
    # No temporary directory is left beside it.
    assert sorted(os.listdir(str(tmp_path))) == ["restored"]
    # The restored CA is whole: the collection's own code signs with it, changing nothing.
    before = snapshot(tmp_path / "restored")
    ensure(tmp_path / "restored", "ca", "Archive CA", path_length=1)
    ensure(tmp_path / "restored", "intermediate", "Archive CA issuing", path_length=0,
           chain_path=str(tmp_path / "restored" / "intermediate-chain.pem"),
           parent_path=str(tmp_path / "restored" / "ca.pem"), parent_privatekey_path=str(tmp_path / "restored" / "ca.key"))
    assert snapshot(tmp_path / "restored") == before


def test_restore_onto_the_same_files_changes_nothing(made, tmp_path):
    pki, archive, _result = made
    _archive.restore(str(archive), PASSPHRASE, str(tmp_path / "restored"))
    before = snapshot(tmp_path / "restored")
    result = _archive.restore(str(archive), PASSPHRASE, str(tmp_path / "restored"))
    assert result["changed"] is False and snapshot(tmp_path / "restored") == before
    # The directory it was made from is the same files too.
    assert _archive.restore(str(archive), PASSPHRASE, str(pki))["changed"] is False


def test_restore_into_an_empty_directory_replaces_it(made, tmp_path):
    (tmp_path / "restored").mkdir(mode=0o755)
    assert _archive.restore(str(made[1]), PASSPHRASE, str(tmp_path / "restored"))["changed"]
    assert snapshot(tmp_path / "restored") == snapshot(made[0])
    assert stat.S_IMODE(os.stat(str(tmp_path / "restored")).st_mode) == 0o700


def test_restore_in_check_mode_checks_everything_and_writes_nothing(made, tmp_path):
    before = snapshot(tmp_path)
    result = _archive.restore(str(made[1]), PASSPHRASE, str(tmp_path / "restored"), check_mode=True)
    assert result["changed"] and snapshot(tmp_path) == before
    with pytest.raises(PKIError, match="wrong passphrase"):
        _archive.restore(str(made[1]), "not the passphrase", str(tmp_path / "restored"), check_mode=True)


def test_restore_onto_another_ca_is_refused(made, tmp_path):
    other = make_ca(tmp_path / "other", cn="Other CA", retired=False)
    before = snapshot(other)
    with pytest.raises(PKIError) as refused:
        _archive.restore(str(made[1]), PASSPHRASE, str(other))
    assert ("other: holds another CA: its ca.pem is CN=Other CA (%s), the archive's is CN=Archive CA (%s)"
            % (fingerprint(other / "ca.pem"), fingerprint(made[0] / "ca.pem"))) in str(refused.value)
    assert snapshot(other) == before


def test_restore_onto_other_files_is_refused_naming_them(made, tmp_path):
    _archive.restore(str(made[1]), PASSPHRASE, str(tmp_path / "restored"))
    (tmp_path / "restored" / "notes.txt").write_text("mine")
    (tmp_path / "restored" / "revoked.txt").write_text("4F2A # by hand\n5B3C\n")
    os.unlink(str(tmp_path / "restored" / "ca.crl"))
    before = snapshot(tmp_path / "restored")
    with pytest.raises(PKIError, match=r"already holds files other than the archive's: notes.txt \(not in the "
                                       r"archive\), revoked.txt \(differs\), ca.crl \(missing\)"):
        _archive.restore(str(made[1]), PASSPHRASE, str(tmp_path / "restored"))
    assert snapshot(tmp_path / "restored") == before


def test_restore_wants_the_parent_of_its_destination_and_a_directory(made, tmp_path):
    with pytest.raises(PKIError, match="restored: directory .*missing does not exist; nothing was changed"):
        _archive.restore(str(made[1]), PASSPHRASE, str(tmp_path / "missing" / "restored"))
    os.symlink(str(made[0]), str(tmp_path / "link"))
    with pytest.raises(PKIError, match="link: exists and is a symbolic link, not a directory"):
        _archive.restore(str(made[1]), PASSPHRASE, str(tmp_path / "link"))


# --- archives crafted with the module's own encryption --------------------------------------------

def tar_of(members):
    """A tar of ``members``: (TarInfo, bytes or None)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def crafted(tmp_path, made, extra=(), replace=None):
    """An archive of the made CA's files (some replaced, some members added), sealed by _archive."""
    content = _archive.read_directory(str(made[0]))
    members = []
    for name in sorted(set(content.files) | set(content.dirs)):
        info = tarfile.TarInfo(name)
        if name in content.dirs:
            info.type, info.mode = tarfile.DIRTYPE, 0o700
            members.append((info, None))
        else:
            info.mode = content.files[name][1]
            members.append((info, (replace or {}).get(name, content.files[name][0])))
    summary = {"ca": made[2]["ca"], "certificates": made[2]["certificates"]}
    path = tmp_path / "crafted.archive"
    path.write_bytes(_archive.seal(tar_of(members + list(extra)), PASSPHRASE, summary, scrypt_n=FAST))
    return path


def member(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    return info


@pytest.mark.parametrize("extra, problem", [
    ((member("../evil"), b"x"), "'../evil' is a path that leads outside the CA directory"),
    ((member("archive/../../evil"), b"x"), "is a path that leads outside the CA directory"),
    ((member("/tmp/evil"), b"x"), "'/tmp/evil' is an absolute path"),
    ((member("passwd", tarfile.SYMTYPE, "/etc/passwd"), None), "'passwd' is a link \\(to /etc/passwd\\)"),
    ((member("hard", tarfile.LNKTYPE, "ca.key"), None), "'hard' is a link \\(to ca.key\\)"),
    ((member("null", tarfile.CHRTYPE), None), "'null' is a device or FIFO"),
    ((member("pipe", tarfile.FIFOTYPE), None), "'pipe' is a device or FIFO"),
    ((member(".lock"), b"{}"), "'.lock' is the lock of a run"),
    ((member("ca.pem"), b"again"), "ca.pem appears twice in the archive"),
])
def test_an_unsafe_tar_member_is_refused(made, tmp_path, extra, problem):
    archive = crafted(tmp_path, made, extra=[extra])
    before = snapshot(tmp_path)
    with pytest.raises(PKIError, match="crafted.archive: .*" + problem):
        _archive.restore(str(archive), PASSPHRASE, str(tmp_path / "restored"))
    assert snapshot(tmp_path) == before and not (tmp_path.parent / "evil").exists()


def test_a_crafted_archive_of_consistent_files_restores(made, tmp_path):
    archive = crafted(tmp_path, made)
    assert _archive.restore(str(archive), PASSPHRASE, str(tmp_path / "restored"))["changed"]
    assert {name: data for name, (data, _mode) in _files_of(tmp_path / "restored").items()} == {
        name: data for name, (data, _mode) in _files_of(made[0]).items()}


def _files_of(directory):
    return {name: value for name, value in snapshot(directory).items() if not name.endswith("/")}


def test_an_archive_whose_files_do_not_hold_together_is_refused(made, tmp_path):
    other = pkifactory.issue("Other CA", ca=True)
    cases = [
        ({"intermediate.key": other.key_pem()}, "intermediate.key in .*: does not belong to intermediate.pem"),
        ({"ca.crl": pkifactory.crl(other)}, "ca.crl in .*: issued by CN=Other CA, which is none of the CA"),
        ({"intermediate-chain.pem": read(made[0] / "intermediate.pem") + other.pem},
         "intermediate-chain.pem in .*: certificate 1 \\(CN=Archive CA issuing\\) is not signed by certificate 2"),
        ({"intermediate-chain.pem": read(made[0] / "intermediate.pem")},
         None),  # a chain without its root still verifies, through ca.pem
        ({"ledger.json": b'{"certificates": "none"}'}, "ledger.json in .*: not a ledger of mtls.nginx"),
        ({"ledger.json": b"{"}, "ledger.json in .*: the ledger cannot be read"),
        ({"ca.pem": read(made[0] / "intermediate.key")}, "ca.pem in .*: not a readable PEM certificate"),
        ({"ca.key": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
         "ca.key in .*: not a readable PEM private key"),
    ]
    for replace, problem in cases:
        archive = crafted(tmp_path, made, replace=replace)
        if problem is None:
            assert _archive.verify(str(archive), PASSPHRASE)
            continue
        with pytest.raises(PKIError, match=problem) as refused:
            _archive.restore(str(archive), PASSPHRASE, str(tmp_path / "restored"))
        assert str(refused.value).endswith("; refusing the archive, nothing was changed")
        assert not (tmp_path / "restored").exists()


def test_a_crl_that_carries_its_cas_name_but_not_its_signature_is_refused(made, tmp_path):
    impostor = pkifactory.issue("Archive CA", ca=True)
    archive = crafted(tmp_path, made, replace={"ca.crl": pkifactory.crl(impostor)})
    with pytest.raises(PKIError, match="ca.crl in .*: carries the name of CN=Archive CA \\(ca.pem\\) but is not signed"):
        _archive.verify(str(archive), PASSPHRASE)


def test_an_archive_without_ca_pem_is_refused(made, tmp_path):
    content = _archive.read_directory(str(made[0]))
    del content.files["ca.pem"]
    summary = {"ca": made[2]["ca"], "certificates": []}
    (tmp_path / "a").write_bytes(_archive.seal(_archive.pack(content), PASSPHRASE, summary, scrypt_n=FAST))
    with pytest.raises(PKIError, match="ca.pem in .*: not there, so this is not the directory of a CA"):
        _archive.verify(str(tmp_path / "a"), PASSPHRASE)


# --- the passphrase stays secret ------------------------------------------------------------------

def test_the_passphrase_is_nowhere_in_the_archive_or_the_results(made, tmp_path):
    pki, archive, backed_up = made
    data = read(archive)
    for form in (PASSPHRASE.encode(), PASSPHRASE.encode("utf-16-le"), PASSPHRASE.encode().hex().encode()):
        assert form not in data
    results = [backed_up, _archive.verify(str(archive), PASSPHRASE),
               _archive.restore(str(archive), PASSPHRASE, str(tmp_path / "restored"))]
    for refused in (lambda: _archive.verify(str(archive), PASSPHRASE[:-1]),
                    lambda: _archive.backup(str(pki), str(tmp_path / "b"), PASSPHRASE[:8])):
        with pytest.raises(PKIError) as error:
            refused()
        results.append(str(error.value))
    text = json.dumps(results)
    assert PASSPHRASE not in text and PASSPHRASE[:8] not in text and PASSPHRASE[:-1] not in text
    assert "PRIVATE KEY" not in text


def test_two_backups_of_the_same_ca_differ_in_salt_and_nonce(made, tmp_path):
    second = tmp_path / "again.archive"
    _archive.backup(str(made[0]), str(second), PASSPHRASE, scrypt_n=FAST)
    first, again = (json.loads(read(path).split(b"\n")[1]) for path in (made[1], second))
    assert first["kdf"]["salt"] != again["kdf"]["salt"] and first["cipher"]["nonce"] != again["cipher"]["nonce"]
    assert first["ca"] == again["ca"]


def test_a_ledger_larger_than_a_pipe_is_read(made, tmp_path):
    entry = dict(Ledger(str(made[0] / "ledger.json")).entries[0])
    entries = [dict(entry, serial="%X" % (1000 + number)) for number in range(1500)]
    big = json.dumps({"version": 1, "certificates": entries}, indent=1).encode()
    assert len(big) > 4 * 65536
    archive = crafted(tmp_path, made, replace={"ledger.json": big})
    assert _archive.verify(str(archive), PASSPHRASE)["ledger"] == {
        "total": 1500, "valid": 1500, "superseded": 0, "revoked": 0}
