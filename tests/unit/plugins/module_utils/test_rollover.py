"""The controller's file steps of a CA rollover: promote (phase 2) and retire (phase 3)."""

import os

import pytest

from ansible_collections.mtls.nginx.plugins.module_utils._crypto import PKIError
from ansible_collections.mtls.nginx.plugins.module_utils import _rollover
from ansible_collections.mtls.nginx.plugins.module_utils._rollover import Rollover, read_generation


def _make(directory, stem, suffix, content):
    for extension in (".pem", ".key", ".crl", "-chain.pem"):
        (directory / (stem + suffix + extension)).write_text(content + extension)


def _state(directory):
    return sorted((os.path.relpath(os.path.join(top, name), directory), open(os.path.join(top, name)).read())
                  for top, _dirs, names in os.walk(directory) for name in names)


@pytest.fixture
def pki(tmp_path):
    _make(tmp_path, "ca", "", "old root")
    _make(tmp_path, "intermediate", "", "old issuer")
    return tmp_path


def test_promote_without_a_coming_ca_is_refused_with_nothing_changed(pki):
    before = _state(pki)
    with pytest.raises(PKIError, match="ca-next.pem: no coming CA; run phase 1"):
        Rollover(str(pki), ["ca", "intermediate"]).promote()
    assert _state(pki) == before


def test_promote_moves_the_signing_ca_aside_and_the_coming_one_in(pki):
    _make(pki, "ca", "-next", "new root")
    _make(pki, "intermediate", "-next", "new issuer")
    result = Rollover(str(pki), ["ca", "intermediate"]).promote()
    assert result["changed"] and result["generation"] == 2
    assert (pki / "ca.pem").read_text() == "new root.pem"
    assert (pki / "intermediate-chain.pem").read_text() == "new issuer-chain.pem"
    assert (pki / "ca-previous.key").read_text() == "old root.key"
    assert (pki / "intermediate-previous.crl").read_text() == "old issuer.crl"
    assert not (pki / "ca-next.pem").exists()
    assert read_generation(str(pki)) == 2
    # A rerun finds the work done.
    again = Rollover(str(pki), ["ca", "intermediate"]).promote()
    assert not again["changed"] and "already promoted" in again["state"]


def test_promote_with_an_unretired_ca_is_refused(pki):
    _make(pki, "ca", "-next", "new root")
    _make(pki, "ca", "-previous", "older root")
    before = _state(pki)
    with pytest.raises(PKIError, match="has not been retired; run phase 3"):
        Rollover(str(pki), ["ca"]).promote()
    assert _state(pki) == before


def test_promote_of_an_incomplete_coming_ca_is_refused(pki):
    _make(pki, "ca", "-next", "new root")
    before = _state(pki)
    with pytest.raises(PKIError, match="intermediate-next.pem: missing, phase 1"):
        Rollover(str(pki), ["ca", "intermediate"]).promote()
    assert _state(pki) == before


def test_retire_before_promote_is_refused_with_nothing_changed(pki):
    _make(pki, "ca", "-next", "new root")
    before = _state(pki)
    with pytest.raises(PKIError, match="phase 2 \\(reissue\\) has not run yet"):
        Rollover(str(pki), ["ca"]).retire()
    assert _state(pki) == before


def test_retire_archives_the_previous_ca_and_never_deletes_it(pki):
    _make(pki, "ca", "-next", "new root")
    _make(pki, "intermediate", "-next", "new issuer")
    Rollover(str(pki), ["ca", "intermediate"]).promote()
    result = Rollover(str(pki), ["ca", "intermediate"]).retire()
    assert result["changed"] and result["generation"] == 2
    archive = pki / "archive" / "generation-1"
    assert (archive / "ca.key").read_text() == "old root.key"
    assert (archive / "intermediate-chain.pem").read_text() == "old issuer-chain.pem"
    assert not list(pki.glob("*-previous*"))
    assert not Rollover(str(pki), ["ca", "intermediate"]).retire()["changed"]


def test_check_mode_moves_nothing(pki):
    _make(pki, "ca", "-next", "new root")
    before = _state(pki)
    result = Rollover(str(pki), ["ca"], check_mode=True).promote()
    assert result["changed"] and result["moves"]
    assert _state(pki) == before


def test_a_damaged_generation_file_is_named(pki):
    (pki / "generation").write_text("two\n")
    with pytest.raises(PKIError, match="generation: holds 'two'"):
        read_generation(str(pki))


def test_read_state_gives_what_hosts_need_and_never_a_key(pki):
    from ansible_collections.mtls.nginx.plugins.module_utils._rollover import read_state

    (pki / "revoked.txt").write_text("# by hand\n7e57ed0001  # lost laptop\n\n")
    state = read_state(str(pki), intermediate=True)
    assert state["exists"] and state["generation"] == 1 and not state["has_next"] and not state["has_previous"]
    assert state["generations"] == [{"suffix": "", "generation": 1}]
    assert state["revoked_file_serials"] == ["7E57ED0001"]
    assert state["anchor_bundle"] == "old root.pem\n"
    assert state["crl_bundle"] == "old root.crl\nold issuer.crl\n"
    assert state["issuer_chain"] == "old issuer-chain.pem"
    assert state["ledger_serials"] == []
    assert ".key" not in repr(state)
    # During a rollover: the coming CA joins the bundles, oldest first; phase 1 counts it before it exists.
    assert [g["suffix"] for g in read_state(str(pki), make_next=True)["generations"]] == ["", "-next"]
    _make(pki, "ca", "-next", "new root")
    _make(pki, "intermediate", "-next", "new issuer")
    state = read_state(str(pki), intermediate=True)
    assert state["has_next"] and state["anchor_bundle"] == "old root.pem\nnew root.pem\n"
    assert state["crl_bundle"] == "old root.crl\nnew root.crl\nold issuer.crl\nnew issuer.crl\n"
    assert state["certificates"]["ca-next.pem"] == "new root.pem"


def test_read_state_of_a_directory_not_made_yet_is_empty(tmp_path):
    from ansible_collections.mtls.nginx.plugins.module_utils._rollover import read_state

    state = read_state(str(tmp_path / "nothing"))
    assert not state["exists"] and state["anchor_bundle"] == "" and state["crl_bundle"] == ""


def test_revoked_tiers_are_those_with_a_revoked_certificate_and_none_valid():
    entries = [
        # Revoked by host, not rotated since.
        {"host": "web-2", "tier": "mtls-proxy", "status": "revoked", "reason": "keyCompromise"},
        # Rotated: the replaced certificate revoked (superseded), the new one valid.
        {"host": "web-1", "tier": "mtls-proxy", "status": "revoked", "reason": "superseded"},
        {"host": "web-1", "tier": "mtls-proxy", "status": "valid"},
        # A failed gate's staged certificate revoked, the live one still valid.
        {"host": "orders-1", "tier": "mtls-upstream", "status": "revoked", "reason": "cessationOfOperation"},
        {"host": "orders-1", "tier": "mtls-upstream", "status": "valid"},
        # Recorded by serial only, outside the ledger: no tier to name.
        {"host": "", "tier": "", "status": "revoked"},
        {"host": "web-3", "tier": "mtls-proxy", "status": "superseded"},
    ]
    assert _rollover.revoked_tiers(entries) == [{"host": "web-2", "tier": "mtls-proxy"}]
