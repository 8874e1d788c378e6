"""certificate_check logic: what nginx accepts passes, and every broken or hostile input
ends with a message that names the file and the problem, leaving every file as it was."""

import os

import pytest

from pkifactory import DAY, NOW, crl, issue, key, write
from ansible_collections.mtls.nginx.plugins.module_utils._check import check


@pytest.fixture
def pki(tmp_path):
    root = issue("Root CA", ca=True)
    inter = issue("Intermediate CA", issuer=root, ca=True)
    leaf = issue("svc", issuer=root, eku=("server",), sans=("DNS:svc", "DNS:*.svc.internal"))
    return {
        "dir": tmp_path, "root": root, "inter": inter, "leaf": leaf,
        "ca": write(tmp_path, "ca.pem", root.pem, 0o644),
        "cert": write(tmp_path, "cert.pem", leaf.pem, 0o644),
        "key": write(tmp_path, "cert.key", leaf.key_pem()),
    }


def snapshot(directory):
    out = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        out[name] = open(path, "rb").read() if os.path.isfile(path) else "<dir>"
    return out


def run(pki, **kw):
    args = dict(path=pki["cert"], ca_path=pki["ca"], privatekey_path=pki["key"], purpose="server")
    args.update(kw)
    before = snapshot(pki["dir"])
    problems, facts, converted = check(**args)
    assert snapshot(pki["dir"]) == before, "check() changed a file"
    return problems, facts, converted


def run_facts(pki, **kw):
    result = run(pki, **kw)
    assert result[2] is None
    return result[0], result[1]


# --- what nginx accepts --------------------------------------------------------------------

def test_valid_certificate_passes_and_reports_facts(pki):
    problems, facts = run_facts(pki, expected_name="svc", verify_depth=1, min_days_remaining=30)
    assert problems == []
    assert facts["subject"] == "CN=svc"
    assert facts["days_remaining"] >= 88
    assert facts["verified_chain"] == ["CN=svc", "CN=Root CA"]


def test_crlf_and_text_before_the_pem_block_are_accepted(pki):
    write(pki["dir"], "cert.pem", b"Subject: svc\r\nsome notes\r\n" + pki["leaf"].pem.replace(b"\n", b"\r\n"))
    assert run(pki)[0] == []


def test_leaf_followed_by_its_intermediate_is_accepted(pki):
    leaf = issue("svc", issuer=pki["inter"])
    write(pki["dir"], "cert.pem", leaf.pem + pki["inter"].pem)
    write(pki["dir"], "cert.key", leaf.key_pem())
    problems, facts = run_facts(pki, verify_depth=2)
    assert problems == []
    assert facts["verified_chain"] == ["CN=svc", "CN=Intermediate CA", "CN=Root CA"]


def test_wildcard_name_matches_one_label(pki):
    assert run(pki, expected_name="a.svc.internal")[0] == []
    assert run(pki, expected_name="a.b.svc.internal")[0] != []


def test_encrypted_key_with_its_passphrase_is_accepted(pki):
    write(pki["dir"], "cert.key", pki["leaf"].key_pem(b"s3cret"))
    assert run(pki, privatekey_passphrase=b"s3cret")[0] == []


def test_current_crl_that_does_not_revoke_passes(pki):
    crl_path = write(pki["dir"], "ca.crl", crl(pki["root"]), 0o644)
    assert run(pki, crl_path=crl_path)[0] == []


def test_der_file_is_converted_when_asked(pki):
    write(pki["dir"], "cert.pem", pki["leaf"].der)
    result = run(pki, convert_der=True)
    problems, converted = result[0], result[2]
    assert problems == [] and converted == pki["leaf"].pem


# --- broken and hostile inputs ---------------------------------------------------------------

def _other_ca_leaf(p):
    other = issue("Other CA", ca=True)
    leaf = issue("svc", issuer=other)
    write(p["dir"], "cert.pem", leaf.pem)
    write(p["dir"], "cert.key", leaf.key_pem())


def _out_of_order(p):
    leaf = issue("svc", issuer=p["inter"])
    write(p["dir"], "cert.pem", p["inter"].pem + leaf.pem)


def _self_signed(p):
    k = key()
    leaf = issue("svc", key_obj=k)
    write(p["dir"], "cert.pem", leaf.pem)
    write(p["dir"], "cert.key", leaf.key_pem())


def _issuer_not_ca(p):
    fake_ca = issue("Fake CA", issuer=p["root"], ca=False, eku=("server",))
    leaf = issue("svc", issuer=fake_ca)
    write(p["dir"], "cert.pem", leaf.pem + fake_ca.pem)
    write(p["dir"], "cert.key", leaf.key_pem())


def _deep_chain(p):
    inter2 = issue("Intermediate 2", issuer=p["inter"], ca=True)
    leaf = issue("svc", issuer=inter2)
    write(p["dir"], "cert.pem", leaf.pem + inter2.pem + p["inter"].pem)
    write(p["dir"], "cert.key", leaf.key_pem())


def _with_leaf(**kw):
    def make(p):
        leaf = issue("svc", issuer=p["root"], **kw)
        write(p["dir"], "cert.pem", leaf.pem)
        write(p["dir"], "cert.key", leaf.key_pem())
    return make


def _rsa1024(p):
    leaf = issue("svc", issuer=p["root"], key_obj=key("rsa", 1024))
    write(p["dir"], "cert.pem", leaf.pem)
    write(p["dir"], "cert.key", leaf.key_pem())


def _expired_crl(p):
    write(p["dir"], "ca.crl", crl(p["root"], next_update=NOW - DAY), 0o644)


def _revoking_crl(p):
    write(p["dir"], "ca.crl", crl(p["root"], revoked=[p["leaf"]]), 0o644)


def _crl_of_other_ca(p):
    write(p["dir"], "ca.crl", crl(issue("Other CA", ca=True)), 0o644)


BROKEN = [
    # (id, setup, extra args, file the message must name, what it must say)
    ("der-file", lambda p: write(p["dir"], "cert.pem", p["leaf"].der), {}, "cert.pem", "DER certificate"),
    ("truncated-pem", lambda p: write(p["dir"], "cert.pem", p["leaf"].pem[:200]), {}, "cert.pem", "truncated"),
    ("corrupt-base64", lambda p: write(p["dir"], "cert.pem", p["leaf"].pem.replace(b"M", b"!", 3)), {}, "cert.pem", "corrupt"),
    ("key-of-another-certificate", lambda p: write(p["dir"], "cert.key", issue("x").key_pem()), {}, "cert.key", "does not belong"),
    ("expired", _with_leaf(not_before=NOW - 30 * DAY, not_after=NOW - DAY), {}, "cert.pem", "expired"),
    ("not-yet-valid", _with_leaf(not_before=NOW + DAY, not_after=NOW + 9 * DAY), {}, "cert.pem", "not valid yet"),
    ("too-few-days-left", _with_leaf(not_after=NOW + 5 * DAY), {"min_days_remaining": 14}, "cert.pem", "fewer than 14 days"),
    ("wrong-eku", _with_leaf(eku=("server",)), {"purpose": "client"}, "cert.pem", "not clientAuth"),
    ("eku-for-code-signing", _with_leaf(eku=("code",)), {}, "cert.pem", "neither serverAuth nor clientAuth"),
    ("ca-did-not-sign-it", _other_ca_leaf, {}, "cert.pem", "not signed by any CA in"),
    ("chain-out-of-order", _out_of_order, {}, "cert.pem", "out of order"),
    ("self-signed-leaf", _self_signed, {}, "cert.pem", "self-signed"),
    ("encrypted-key-without-passphrase", lambda p: write(p["dir"], "cert.key", p["leaf"].key_pem(b"pw")), {},
     "cert.key", "encrypted"),
    ("empty-file", lambda p: write(p["dir"], "cert.pem", b""), {}, "cert.pem", "is empty"),
    ("directory", lambda p: os.mkdir(os.path.join(str(p["dir"]), "certdir")), {"path": "certdir"}, "certdir", "is a directory"),
    ("missing-file", lambda p: None, {"path": "missing.pem"}, "missing.pem", "no such file"),
    ("san-mismatch", lambda p: None, {"expected_name": "other.internal"}, "cert.pem", "other.internal is not among"),
    ("chain-deeper-than-verify-depth", _deep_chain, {"verify_depth": 2}, "cert.pem", "more than 2"),
    ("expired-crl", _expired_crl, {"crl_path": "ca.crl"}, "ca.crl", "expired"),
    ("revoked", _revoking_crl, {"crl_path": "ca.crl"}, "ca.crl", "revokes CN=svc"),
    ("crl-of-another-ca", _crl_of_other_ca, {"crl_path": "ca.crl"}, "ca.crl", "no CRL signed by CN=Root CA"),
    ("csr-where-certificate-belongs", lambda p: write(p["dir"], "cert.pem",
     b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"), {}, "cert.pem", "signing request"),
    ("key-where-certificate-belongs", lambda p: write(p["dir"], "cert.pem", p["leaf"].key_pem()), {}, "cert.pem", "private key where"),
    ("certificate-where-key-belongs", lambda p: write(p["dir"], "cert.key", p["leaf"].pem), {}, "cert.key", "certificate where a private key"),
    ("issuer-not-a-ca", _issuer_not_ca, {}, "cert.pem", "not a CA"),
    ("ca-certificate-as-leaf", lambda p: write(p["dir"], "cert.pem", p["inter"].pem), {}, "cert.pem", "is a CA certificate"),
    ("rsa-1024-key", _rsa1024, {}, "cert.pem", "1024 bits is too weak"),
    ("key-readable-by-others", lambda p: os.chmod(p["key"], 0o644), {}, "cert.key", "accessible to others"),
    ("ca-bundle-is-a-leaf", lambda p: write(p["dir"], "ca.pem", p["leaf"].pem), {}, "ca.pem", "not a CA certificate"),
    ("binary-garbage", lambda p: write(p["dir"], "cert.pem", b"\x30\x82\x00\x01garbage"), {}, "cert.pem", "not a DER certificate"),
]


@pytest.mark.parametrize("setup,extra,named,says", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_input_is_named_and_nothing_changes(pki, setup, extra, named, says):
    setup(pki)
    extra = {k: (os.path.join(str(pki["dir"]), v) if k in ("path", "crl_path") else v) for k, v in extra.items()}
    result = run(pki, **extra)
    problems, converted = result[0], result[2]
    assert converted is None
    hits = [p for p in problems if p.startswith(os.path.join(str(pki["dir"]), named) + ":") and says in p]
    assert hits, problems


def test_every_problem_is_reported_at_once(pki):
    expired = issue("svc", issuer=issue("Other CA", ca=True), eku=("client",), not_after=NOW - DAY, not_before=NOW - 9 * DAY)
    write(pki["dir"], "cert.pem", expired.pem)
    os.chmod(pki["key"], 0o644)
    problems = run(pki, expected_name="nope")[0]
    text = "\n".join(problems)
    for says in ("expired", "not serverAuth", "nope is not among", "not signed by any CA", "accessible to others",
                 "does not belong"):
        assert says in text, problems


# --- a CA bundle (purpose=ca), as ssl_client_certificate reads it ------------------------------

def test_ca_bundle_of_root_and_intermediate_is_accepted(pki):
    path = write(pki["dir"], "bundle.pem", pki["inter"].pem + pki["root"].pem, 0o644)
    problems, facts = run_facts(pki, path=path, ca_path=None, privatekey_path=None, purpose="ca")
    assert problems == []
    assert facts["bundle"] == ["CN=Intermediate CA", "CN=Root CA"]


def test_ca_bundle_holding_a_leaf_or_an_expired_ca_is_refused(pki):
    old = issue("Old CA", ca=True, not_before=NOW - 30 * DAY, not_after=NOW - DAY)
    path = write(pki["dir"], "bundle.pem", pki["root"].pem + pki["leaf"].pem + old.pem, 0o644)
    problems = run(pki, path=path, ca_path=None, privatekey_path=None, purpose="ca")[0]
    assert any(p.startswith(path) and "CN=svc is not a CA certificate" in p for p in problems)
    assert any(p.startswith(path) and "CA CN=Old CA expired" in p for p in problems)
    assert len(problems) == 2


def test_ca_bundle_with_a_current_crl_for_each_ca_is_accepted(pki):
    path = write(pki["dir"], "bundle.pem", pki["inter"].pem + pki["root"].pem, 0o644)
    crls = write(pki["dir"], "ca.crl", crl(pki["root"]) + crl(pki["inter"]), 0o644)
    assert run(pki, path=path, ca_path=None, privatekey_path=None, purpose="ca", crl_path=crls)[0] == []


def test_ca_bundle_with_an_expired_or_missing_crl_is_refused(pki):
    path = write(pki["dir"], "bundle.pem", pki["inter"].pem + pki["root"].pem, 0o644)
    crls = write(pki["dir"], "ca.crl", crl(pki["root"], next_update=NOW - DAY), 0o644)
    problems = run(pki, path=path, ca_path=None, privatekey_path=None, purpose="ca", crl_path=crls)[0]
    assert any(p.startswith(crls) and "CRL of CN=Root CA expired" in p for p in problems)
    assert any(p.startswith(crls) and "no CRL signed by CN=Intermediate CA" in p for p in problems)
    assert len(problems) == 2


# --- every PEM block must read, as OpenSSL reads them: nginx refuses the whole file otherwise ----

def _cut(pem, keep=200):
    """A PEM block cut off inside its base64 body, as an interrupted copy leaves it."""
    return pem[:keep]


def _spoil_base64(pem):
    head, body = pem.split(b"\n", 1)
    return head + b"\n" + body.replace(b"M", b"!", 1)


PEM_BLOCKS = [
    # (id, file, its content from the pki fixture, check() args, the one problem expected)
    ("ca-bundle-last-block-truncated", "bundle.pem", lambda p: p["inter"].pem + _cut(p["root"].pem),
     {"purpose": "ca"}, "PEM block 2 (CERTIFICATE) is truncated: BEGIN without END"),
    ("ca-path-last-block-truncated", "ca.pem", lambda p: p["root"].pem + _cut(p["inter"].pem),
     {}, "PEM block 2 (CERTIFICATE) is truncated: BEGIN without END"),
    ("chain-middle-block-truncated", "cert.pem", lambda p: p["leaf"].pem + _cut(p["inter"].pem) + p["root"].pem,
     {}, "PEM block 2 (CERTIFICATE) is truncated: BEGIN without END (block 3 begins inside it)"),
    ("end-label-mismatch", "bundle.pem",
     lambda p: p["inter"].pem + p["root"].pem.replace(b"END CERTIFICATE", b"END X509 CRL"),
     {"purpose": "ca"}, "PEM block 2 (CERTIFICATE) ends with END X509 CRL: END does not match BEGIN CERTIFICATE"),
    ("corrupt-base64-in-block-2", "bundle.pem", lambda p: p["inter"].pem + _spoil_base64(p["root"].pem),
     {"purpose": "ca"}, "PEM block 2 (CERTIFICATE) has a corrupt base64 body"),
    ("crl-file-last-crl-truncated", "ca.crl", lambda p: crl(p["inter"]) + _cut(crl(p["root"]), 150),
     {"crl_path": "ca.crl"}, "PEM block 2 (X509 CRL) is truncated: BEGIN without END"),
    ("end-without-begin", "bundle.pem", lambda p: p["inter"].pem + p["root"].pem[40:],
     {"purpose": "ca"}, "PEM block 2 (CERTIFICATE) is missing its BEGIN line: END without BEGIN"),
    ("indented-begin-line", "bundle.pem", lambda p: p["inter"].pem + b"  " + p["root"].pem,
     {"purpose": "ca"}, "PEM block 2 (CERTIFICATE) has text around its BEGIN line, where OpenSSL does not see it"),
    ("empty-block", "bundle.pem",
     lambda p: p["inter"].pem + b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
     {"purpose": "ca"}, "PEM block 2 (CERTIFICATE) has an empty body"),
    ("private-key-in-ca-bundle", "bundle.pem", lambda p: p["root"].pem + p["root"].key_pem(),
     {"purpose": "ca"}, "PEM block 2 (PRIVATE KEY) is a private key; a CA bundle is installed readable by all"),
    ("certificate-in-crl-file", "ca.crl", lambda p: crl(p["root"]) + issue("Rogue CA", ca=True).pem,
     {"crl_path": "ca.crl"}, "PEM block 2 (CERTIFICATE) does not belong in a CRL file: nginx would trust it as a CA"),
]


@pytest.mark.parametrize("name,content,extra,says", [b[1:] for b in PEM_BLOCKS], ids=[b[0] for b in PEM_BLOCKS])
def test_broken_pem_block_is_named_by_file_and_number(pki, name, content, extra, says):
    path = write(pki["dir"], name, content(pki), 0o644)
    extra = {k: (os.path.join(str(pki["dir"]), v) if k == "crl_path" else v) for k, v in extra.items()}
    if extra.get("purpose") == "ca":
        extra.update(path=path, ca_path=None, privatekey_path=None)
    problems = run(pki, **extra)[0]
    assert problems == ["%s: %s" % (path, says)]


def test_one_truncated_certificate_keeps_its_message(pki):
    write(pki["dir"], "cert.pem", _cut(pki["leaf"].pem))
    problems = run(pki)[0]
    assert problems == [pki["cert"] + ": the PEM certificate is truncated (PEM block 1: BEGIN without END)"]


def test_every_broken_block_is_reported_at_once(pki):
    path = write(pki["dir"], "bundle.pem", _spoil_base64(pki["inter"].pem) + b"notes\n"
                 + pki["root"].pem.replace(b"END CERTIFICATE", b"END CRL") + _cut(pki["root"].pem), 0o644)
    problems = run(pki, path=path, ca_path=None, privatekey_path=None, purpose="ca")[0]
    assert [p.split(" (CERTIFICATE) ")[0] for p in problems] == [
        path + ": PEM block 1", path + ": PEM block 2", path + ": PEM block 3"], problems


def test_ca_bundle_and_crl_file_with_crlf_and_notes_between_blocks_are_accepted(pki):
    def crlf(data):
        return data.replace(b"\n", b"\r\n")
    path = write(pki["dir"], "bundle.pem", b"# intermediate\n" + crlf(pki["inter"].pem) + b"\n# root\n"
                 + crlf(pki["root"].pem), 0o644)
    crls = write(pki["dir"], "ca.crl", crlf(crl(pki["root"])) + b"subject=CN=Intermediate CA\n"
                 + crlf(crl(pki["inter"])), 0o644)
    assert run(pki, path=path, ca_path=None, privatekey_path=None, purpose="ca", crl_path=crls)[0] == []
