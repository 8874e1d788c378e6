"""certificate_expiry as Ansible runs it: bad options fail, findings never do, check mode
writes nothing, and a second run reports no change."""

import os

import pytest

from modulerun import run_module
from pkifactory import DAY, NOW, crl, issue, write
from ansible_collections.mtls.nginx.plugins.modules import certificate_expiry


def run(args, capsys, check_mode=False):
    return run_module(certificate_expiry, args, capsys, check_mode)


@pytest.fixture
def host(tmp_path):
    root = issue("Root CA", ca=True, not_after=NOW + 3650 * DAY)
    tier = tmp_path / "mtls" / "mtls-upstream"
    os.makedirs(str(tier))
    write(tier, "server.pem", issue("svc", issuer=root, not_after=NOW + 3 * DAY).pem, 0o644)
    write(tier, "client-ca.pem", root.pem, 0o644)
    write(tier, "client-ca.crl", crl(root, next_update=NOW + 6 * DAY), 0o644)
    return tmp_path


@pytest.mark.parametrize("args, says", [
    ({"warning_days": 3, "critical_days": 7}, "warning_days (3) must not be smaller than critical_days (7)"),
    ({"crl_critical_days": -1}, "crl_critical_days must be 0 or more"),
    ({"paths": []}, "paths must name at least one"),
])
def test_bad_options_fail(host, capsys, args, says):
    result, failed = run(dict({"paths": [str(host / "mtls")]}, **args), capsys)
    assert failed and says in result["msg"]


def test_critical_items_are_reported_not_failed_and_check_mode_writes_nothing(host, capsys):
    prom = host / "textfile" / "mtls_nginx.prom"
    args = {"paths": [str(host / "mtls")], "metrics_path": str(prom)}
    result, failed = run(args, capsys, check_mode=True)
    assert not failed and result["changed"] is True and result["worst"] == "critical"
    assert not prom.parent.exists()
    assert [(i["tier"], i["kind"], i["status"]) for i in result["items"]] == [
        ("mtls-upstream", "certificate", "critical"), ("mtls-upstream", "crl", "ok"), ("mtls-upstream", "ca", "ok")]
    assert result["critical"] == ["%s/mtls/mtls-upstream/server.pem: CN=svc (3.0 days left)" % host]

    result, failed = run(args, capsys)
    assert not failed and result["changed"] is True and prom.exists()
    assert result["metrics_path"] == str(prom) and result["diff"]["after"] == prom.read_text()
    result, failed = run(args, capsys)
    assert not failed and result["changed"] is False and "diff" not in result
    result, failed = run(args, capsys, check_mode=True)
    assert result["changed"] is False


def test_metrics_path_not_ending_in_prom_is_a_warning(host, capsys, monkeypatch):
    # Recorded at the source: where a module warning ends up depends on what the test run imported.
    warned = []
    monkeypatch.setattr(certificate_expiry.AnsibleModule, "warn", lambda self, msg: warned.append(msg))
    result, failed = run({"paths": [str(host / "mtls")], "metrics_path": str(host / "m.txt")}, capsys)
    assert not failed and len(warned) == 1 and "will not read it" in warned[0]


def test_unwritable_metrics_path_fails_naming_it(host, capsys):
    result, failed = run({"paths": [str(host / "mtls")], "metrics_path": str(host / "mtls")}, capsys)
    assert failed and result["msg"] == "%s: is a directory, not a file" % (host / "mtls")
