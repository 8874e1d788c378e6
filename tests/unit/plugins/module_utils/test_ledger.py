"""The CA's issuance ledger: what sign records, what it refuses, what revocation reads, and the lock
of the CA directory, with real keys, certificates, CRLs and file locks."""

import json
import os
import threading
import time

import pytest
from cryptography import x509

from fakemodule import FakeModule
from modulerun import run_module
from test_pki_flows import TwoHosts, ensure_ca, read

from ansible_collections.mtls.nginx.plugins.module_utils._crypto import PKIError
from ansible_collections.mtls.nginx.plugins.module_utils._files import FileWriter
from ansible_collections.mtls.nginx.plugins.module_utils._ledger import Ledger, LockTimeout, locked
from ansible_collections.mtls.nginx.plugins.modules import ledger as ledger_module


class LedgerHosts(TwoHosts):
    """A host and the controller's CA, whose signatures are recorded in the controller's ledger."""

    @property
    def ledger_path(self):
        return str(self.controller / "ledger.json")

    def sign(self, csr, **kw):
        args = dict(ledger_path=self.ledger_path, lock_timeout=5,
                    issued_to={"host": "billing-1", "tier": "mtls-proxy", "service": ""})
        args.update(kw)
        return super().sign(csr, **args)

    def entries(self):
        return Ledger(self.ledger_path).entries


@pytest.fixture
def hosts(tmp_path):
    return LedgerHosts(tmp_path)


def serial_of(pem):
    return format(x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem).serial_number, "X")


def revoke(ledger_path, **options):
    writer = FileWriter(FakeModule())
    with locked(os.path.dirname(ledger_path), "test"):
        ledger = Ledger(ledger_path)
        done = ledger.revoke(ledger.select(**options), "keyCompromise", "test")
        ledger.save(writer)
    return done


def test_sign_records_the_certificate_for_its_host_and_tier_in_the_same_step(hosts):
    _requested, (writer, signed), _installed = hosts.round()
    entries = hosts.entries()
    assert len(entries) == 1
    entry = entries[0]
    assert entry["serial"] == serial_of(signed["certificate_pem"])
    assert (entry["host"], entry["tier"], entry["status"]) == ("billing-1", "mtls-proxy", "valid")
    assert entry["subject"] == "CN=svc" and entry["subject_alt_names"] == ["DNS:svc"]
    assert len(entry["public_key_sha256"]) == 64 and entry["not_after"].endswith("Z")
    # The ledger is the CA's: private to it, and never shown in a diff.
    assert oct(os.stat(hosts.ledger_path).st_mode & 0o777) == "0o600"
    assert "serial" not in repr(writer.diff)


def test_a_certificate_kept_because_it_still_fits_is_recorded_once(hosts):
    hosts.round()
    hosts.round()
    assert len(hosts.entries()) == 1


def test_a_certificate_signed_before_the_ledger_is_adopted_when_it_is_kept(hosts, tmp_path):
    requested = hosts.request()[1]
    signed = TwoHosts.sign(hosts, requested["csr"])[1]  # no ledger yet
    hosts.install(signed["chain_pem"])
    assert not os.path.exists(hosts.ledger_path)
    requested = hosts.request()[1]
    writer, kept = hosts.sign(requested["csr"], certificate_content=requested["existing_certificate"])
    assert not kept["signed"]
    assert [e["serial"] for e in hosts.entries()] == [serial_of(signed["certificate_pem"])]


def test_a_renewal_for_the_same_key_supersedes_the_older_certificate(hosts):
    first = hosts.round()[1][1]
    second = hosts.round(sign={"subject_alt_names": ["DNS:svc", "DNS:more"]})[1][1]
    assert second["signed"]
    statuses = {e["serial"]: e["status"] for e in hosts.entries()}
    assert statuses == {serial_of(first["certificate_pem"]): "superseded",
                        serial_of(second["certificate_pem"]): "valid"}


def test_a_revoked_key_is_never_signed_again_and_nothing_changes(hosts):
    _requested, (_w, signed), _installed = hosts.round()
    assert [e["serial"] for e in revoke(hosts.ledger_path, hosts=["billing-1"])] == [
        serial_of(signed["certificate_pem"])]
    before = read(hosts.ledger_path)
    requested = hosts.request()[1]
    # A SAN added in the inventory, or the certificate deleted on the host: a new signature is asked.
    for existing in (requested["existing_certificate"], None):
        with pytest.raises(PKIError) as refused:
            hosts.sign(requested["csr"], certificate_content=existing, subject_alt_names=["DNS:svc", "DNS:new"])
        message = str(refused.value)
        assert "belongs to certificate %s (mtls-proxy on billing-1), revoked" % serial_of(signed["certificate_pem"]) in message
        assert "(keyCompromise) by test" in message and "only a new key" in message
    assert read(hosts.ledger_path) == before


def test_a_new_key_for_a_revoked_host_is_signed(hosts):
    hosts.round()
    revoke(hosts.ledger_path, hosts=["billing-1"])
    os.remove(hosts.key_path)
    _requested, (_w, signed), _installed = hosts.round()
    assert signed["signed"]
    assert [e["status"] for e in hosts.entries()] == ["revoked", "valid"]


def test_the_crl_lists_what_the_ledger_revoked_in_every_generation(hosts, tmp_path):
    signed = hosts.round()[1][1]
    revoke(hosts.ledger_path, serials=[serial_of(signed["certificate_pem"])])
    _writer, result = ensure_ca(hosts.controller, crl_path=str(hosts.controller / "ca.crl"),
                                ledger_path=hosts.ledger_path, revoked_serials=["ABC123"])
    assert set(result["crl"]["revoked_serials"]) == {"ABC123", serial_of(signed["certificate_pem"])}


def test_a_second_writer_waits_for_the_lock_and_is_told_who_holds_it(tmp_path):
    held = threading.Event()
    release = threading.Event()

    def holder():
        with locked(str(tmp_path), "revoke billing-1"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout) as waited:
            with locked(str(tmp_path), "sign", timeout=1):
                pass
        assert time.monotonic() - started >= 1
        assert "is locked by revoke billing-1 on" in str(waited.value) and "nothing was changed" in str(waited.value)
    finally:
        release.set()
        thread.join()
    # Released with its holder: the next writer gets it at once.
    with locked(str(tmp_path), "sign", timeout=1):
        pass


def test_two_writers_at_once_serialize_and_neither_loses_a_revocation(hosts):
    hosts.round()
    path = hosts.ledger_path

    def revoke_serial(serial):
        writer = FileWriter(FakeModule())
        with locked(os.path.dirname(path), "revoke %s" % serial, timeout=20):
            ledger = Ledger(path)
            time.sleep(0.2)  # a read-modify-write that takes its time
            ledger.revoke_serials([serial], "keyCompromise")
            ledger.save(writer)

    threads = [threading.Thread(target=revoke_serial, args=(serial,)) for serial in ("A1", "B2", "C3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {"A1", "B2", "C3"} <= set(Ledger(path).revoked_serials())


def test_a_damaged_ledger_is_refused_by_name(tmp_path):
    path = tmp_path / "ledger.json"
    path.write_text('{"certificates": [')
    with pytest.raises(PKIError, match="ledger.json: the ledger cannot be read"):
        Ledger(str(path))
    path.write_text('{"something": "else"}')
    with pytest.raises(PKIError, match="not a ledger of mtls.nginx"):
        Ledger(str(path))


# --- the module ----------------------------------------------------------------------------------

def test_the_module_revokes_by_host_service_and_serial_and_records_unknown_serials(hosts, capsys):
    signed = hosts.round()[1][1]
    result, failed = run_module(ledger_module, {
        "path": hosts.ledger_path, "state": "revoked", "reason": "keyCompromise", "lock_holder": "revoke run",
        "select": [{"host": "billing-1"}, {"serial": "0F00"}, {"service": "nobody"}]}, capsys)
    assert not failed and result["changed"], result
    assert sorted(e["serial"] for e in result["certificates"]) == sorted([serial_of(signed["certificate_pem"]), "F00"])
    assert result["unmatched"] == [{"service": "nobody"}]
    assert result["revoked_serials"] == sorted([serial_of(signed["certificate_pem"]), "F00"])
    entry = Ledger(hosts.ledger_path).find(serial_of(signed["certificate_pem"]))
    assert (entry["reason"], entry["revoked_by"]) == ("keyCompromise", "revoke run")
    again, _failed = run_module(ledger_module, {"path": hosts.ledger_path, "state": "revoked",
                                                "select": [{"host": "billing-1"}]}, capsys)
    assert not again["changed"]


def test_the_module_in_check_mode_changes_nothing(hosts, capsys):
    hosts.round()
    before = read(hosts.ledger_path)
    result, failed = run_module(ledger_module, {"path": hosts.ledger_path, "state": "revoked",
                                                "select": [{"host": "billing-1"}]}, capsys, check_mode=True)
    assert not failed and result["changed"]
    assert read(hosts.ledger_path) == before


def test_superseded_revokes_every_certificate_of_the_tier_but_the_one_in_service(hosts, capsys):
    old = hosts.round()[1][1]
    os.remove(hosts.key_path)
    new = hosts.round()[1][1]
    result, failed = run_module(ledger_module, {
        "path": hosts.ledger_path, "state": "superseded", "select": [{"host": "billing-1", "tier": "mtls-proxy"}],
        "keep": [serial_of(new["certificate_pem"])]}, capsys)
    assert not failed, result
    assert [e["serial"] for e in result["certificates"]] == [serial_of(old["certificate_pem"])]
    statuses = {e["serial"]: (e["status"], e.get("reason")) for e in Ledger(hosts.ledger_path).entries}
    assert statuses == {serial_of(old["certificate_pem"]): ("revoked", "superseded"),
                        serial_of(new["certificate_pem"]): ("valid", None)}


def test_the_module_queries_by_status(hosts, capsys):
    hosts.round()
    result, failed = run_module(ledger_module, {"path": hosts.ledger_path, "statuses": ["valid"]}, capsys)
    assert not failed and not result["changed"] and len(result["certificates"]) == 1
    assert json.loads(json.dumps(result["certificates"]))[0]["host"] == "billing-1"
