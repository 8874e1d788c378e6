"""certificate_expiry logic: every certificate and CRL gets an item with the right status at
the thresholds, a broken file is an item rather than a crash, and the metrics file is valid
Prometheus text, replaced atomically, and reported changed only when more than the check
time differs."""

import datetime
import os
import re
import shutil
import stat
import subprocess

import pytest

from pkifactory import DAY, NOW, crl, crl_without_next_update, issue, write
from ansible_collections.mtls.nginx.plugins.module_utils._expiry import (
    CHECK_METRIC, check_options, describe_item, metrics_text, scan, status_of, summary, tier_of, write_metrics)

# Certificates carry whole seconds: thresholds are tested against a whole-second "now".
T = NOW.replace(microsecond=0)
SECOND = datetime.timedelta(seconds=1)


@pytest.fixture(scope="module")
def root():
    return issue("Root CA", ca=True, not_after=T + 3650 * DAY)


def cert_expiring(root, delta, cn="svc"):
    return issue(cn, issuer=root, not_before=T - 30 * DAY, not_after=T + delta)


def one(path, **kw):
    items = scan([str(path)], now=T, **kw)
    assert len(items) == 1, items
    return items[0]


# --- statuses -------------------------------------------------------------------------------

@pytest.mark.parametrize("delta, status", [
    (30 * DAY + SECOND, "ok"),
    (30 * DAY, "warning"),
    (7 * DAY + SECOND, "warning"),
    (7 * DAY, "critical"),
    (SECOND, "critical"),
])
def test_status_at_the_thresholds(tmp_path, root, delta, status):
    path = write(tmp_path, "svc.pem", cert_expiring(root, delta).pem, 0o644)
    item = one(path)
    assert item["status"] == status
    assert item["seconds_left"] == int(delta.total_seconds())
    assert item["days_left"] == round(delta.total_seconds() / 86400, 1)


def test_item_describes_the_certificate(tmp_path, root):
    leaf = cert_expiring(root, 10 * DAY)
    item = one(write(tmp_path, "svc.pem", leaf.pem, 0o644))
    assert item == {
        "path": str(tmp_path / "svc.pem"), "tier": "", "kind": "certificate", "subject": "CN=svc",
        "serial": format(leaf.cert.serial_number, "X"), "not_after": (T + 10 * DAY).isoformat(),
        "seconds_left": 864000, "days_left": 10.0, "status": "warning",
    }
    assert item["not_after"].endswith("+00:00")


def test_expired_certificate_is_critical_with_negative_days(tmp_path, root):
    leaf = issue("old", issuer=root, not_before=T - 90 * DAY, not_after=T - 3 * DAY)
    item = one(write(tmp_path, "old.pem", leaf.pem, 0o644), critical_days=0, warning_days=0)
    assert item["status"] == "critical" and item["days_left"] == -3.0
    assert describe_item(item) == "%s: CN=old (expired 3.0 days ago)" % item["path"]


def test_thresholds_are_checked():
    assert check_options(30, 7, 2, 1) == []
    assert check_options(5, 7, 2, 1) == ["warning_days (5) must not be smaller than critical_days (7)"]
    assert check_options(30, -1, 1, 2) == ["critical_days must be 0 or more, not -1",
                                           "crl_warning_days (1) must not be smaller than crl_critical_days (2)"]
    assert status_of(None, 30, 7) == "ok"
    assert status_of(0, 0, 0) == "critical"


# --- CRLs -----------------------------------------------------------------------------------

def test_crl_has_its_own_thresholds_and_its_issuer_as_subject(tmp_path, root):
    path = write(tmp_path, "ca.crl", crl(root, next_update=T + 5 * DAY), 0o644)
    item = one(path)
    assert item["kind"] == "crl" and item["subject"] == "CN=Root CA" and item["serial"] is None
    assert item["status"] == "ok" and item["days_left"] == 5.0
    assert one(path, crl_warning_days=5)["status"] == "warning"
    assert one(path, crl_warning_days=6, crl_critical_days=5)["status"] == "critical"


def test_crl_past_its_next_update_is_critical(tmp_path, root):
    # The factory's CRLs start a day ago; whole seconds make the next update T - 1 day.
    item = one(write(tmp_path, "ca.crl", crl(root, next_update=NOW - DAY), 0o644))
    assert item["status"] == "critical"
    assert describe_item(item).endswith("CRL of CN=Root CA (next update passed 1.0 days ago)")


def test_crl_without_next_update_is_ok_and_last(tmp_path, root):
    write(tmp_path, "ca.crl", crl_without_next_update(root), 0o644)
    write(tmp_path, "svc.pem", cert_expiring(root, 400 * DAY).pem, 0o644)
    items = scan([str(tmp_path)], now=T)
    assert [i["kind"] for i in items] == ["certificate", "crl"]
    assert items[1]["status"] == "ok" and items[1]["not_after"] is None
    assert items[1]["seconds_left"] is None and items[1]["days_left"] is None
    assert CHECK_METRIC in metrics_text(items, now=T)
    assert "mtls_nginx_crl_next_update_timestamp_seconds" not in metrics_text(items, now=T)


# --- files ------------------------------------------------------------------------------------

def test_chain_file_gives_one_item_per_certificate(tmp_path, root):
    inter = issue("Intermediate CA", issuer=root, ca=True, not_after=T + 100 * DAY)
    leaf = issue("svc", issuer=inter, not_after=T + 50 * DAY)
    path = write(tmp_path, "server-chain.pem", leaf.pem + inter.pem, 0o644)
    items = scan([path], now=T)
    assert [(i["kind"], i["subject"], i["days_left"]) for i in items] == [
        ("certificate", "CN=svc", 50.0), ("ca", "CN=Intermediate CA", 100.0)]
    assert {i["path"] for i in items} == {path}


def test_same_certificate_twice_in_a_file_is_one_item_in_two_files_two(tmp_path, root):
    leaf = cert_expiring(root, 50 * DAY)
    write(tmp_path, "a.pem", leaf.pem + leaf.pem, 0o644)
    write(tmp_path, "b.pem", leaf.pem, 0o644)
    items = scan([str(tmp_path)], now=T)
    assert [os.path.basename(i["path"]) for i in items] == ["a.pem", "b.pem"]
    assert len(series(metrics_text(items, now=T), "mtls_nginx_certificate_expiry_timestamp_seconds")) == 2


@pytest.mark.parametrize("name, data, says", [
    ("cut.pem", None, "PEM block 1 (CERTIFICATE) is truncated: BEGIN without END"),
    ("cut-chain.pem", "chain", "PEM block 2 (CERTIFICATE) is truncated"),
    ("der.pem", "der", "is DER (binary); nginx reads only PEM"),
    ("empty.pem", b"", "is empty"),
    ("base64.pem", b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "corrupt base64 body"),
    ("garbage.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "is a corrupt certificate"),
    ("csr.pem", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
     "holds no PEM certificate or CRL (found: CERTIFICATE REQUEST)"),
    ("broken.crl", b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", "is a corrupt CRL"),
])
def test_broken_file_is_a_critical_item_naming_file_and_problem(tmp_path, root, name, data, says):
    leaf = cert_expiring(root, 50 * DAY)
    data = {None: leaf.pem[:200], "chain": leaf.pem + root.pem[:-30], "der": leaf.der}.get(data, data)
    path = write(tmp_path, name, data, 0o644)
    item = one(path)
    assert item["status"] == "critical" and item["error"].startswith(path + ": ")
    assert says in item["error"]
    assert item["kind"] == ("crl" if name.endswith(".crl") else "certificate")
    assert summary([item]) == ("critical", [item["error"]], [])


def test_missing_path_fifo_and_dangling_link_are_reported(tmp_path):
    os.mkfifo(str(tmp_path / "fifo.pem"))
    os.symlink(str(tmp_path / "gone"), str(tmp_path / "link.pem"))
    try:
        items = scan([str(tmp_path), str(tmp_path / "nope")], now=T)
    finally:
        # pytest keeps tmp_path; a FIFO left there blocks whatever later reads every file in /tmp.
        os.unlink(str(tmp_path / "fifo.pem"))
    assert sorted(i["error"] for i in items) == sorted([
        "%s/fifo.pem: is not a regular file" % tmp_path,
        "%s/link.pem: no such file (certificate or CRL expected)" % tmp_path,
        "%s/nope: no such file or directory" % tmp_path,
    ])


def test_private_keys_and_password_files_are_skipped(tmp_path, root):
    leaf = cert_expiring(root, 50 * DAY)
    write(tmp_path, "server.key", b"not even a key")
    write(tmp_path, "server.pass", b"secret\n")
    write(tmp_path, "key.pem", leaf.key_pem())
    write(tmp_path, "combined.pem", leaf.pem + leaf.key_pem())
    write(tmp_path, "notes.txt", b"ignored")
    items = scan([str(tmp_path), str(tmp_path / "server.pass")], now=T)
    assert [(os.path.basename(i["path"]), i["subject"]) for i in items] == [("combined.pem", "CN=svc")]


def test_directories_are_walked_and_tiers_named(tmp_path, root):
    for tier, days in (("mtls-upstream", 20), ("mtls-proxy", 10)):
        os.makedirs(str(tmp_path / tier / "deep"))
        write(tmp_path / tier / "deep", "svc.pem", cert_expiring(root, days * DAY).pem, 0o644)
    write(tmp_path, "ca.pem", root.pem, 0o644)
    items = scan([str(tmp_path)], now=T)
    assert [(i["tier"], os.path.relpath(i["path"], str(tmp_path))) for i in items] == [
        ("mtls-proxy", "mtls-proxy/deep/svc.pem"), ("mtls-upstream", "mtls-upstream/deep/svc.pem"), ("", "ca.pem")]
    assert tier_of("/etc/nginx/mtls/mtls-upstream/server.pem") == "mtls-upstream"
    assert tier_of("/etc/nginx/mtls/ca.pem") == ""
    assert tier_of("/srv/pki/ca.pem", ["/srv"]) == "pki"
    assert tier_of("/etc/ssl/x.pem", ["/srv"]) == ""


def test_items_are_sorted_errors_first_then_least_time_left(tmp_path, root):
    write(tmp_path, "a-late.pem", cert_expiring(root, 300 * DAY).pem, 0o644)
    write(tmp_path, "b-soon.pem", cert_expiring(root, 3 * DAY).pem, 0o644)
    write(tmp_path, "c-broken.pem", b"-----BEGIN CERTIFICATE-----\n", 0o644)
    write(tmp_path, "d-middle.crl", crl(root, next_update=T + 6 * DAY), 0o644)
    write(tmp_path, "e-none.crl", crl_without_next_update(root), 0o644)
    write(tmp_path, "f-expired.pem", issue("x", issuer=root, not_before=T - 9 * DAY, not_after=T - DAY).pem, 0o644)
    items = scan([str(tmp_path)], now=T)
    assert [os.path.basename(i["path"]) for i in items] == [
        "c-broken.pem", "f-expired.pem", "b-soon.pem", "d-middle.crl", "a-late.pem", "e-none.crl"]
    worst, critical, warning = summary(items)
    assert worst == "critical" and len(critical) == 3 and warning == []
    assert critical[2] == "%s/b-soon.pem: CN=svc (3.0 days left)" % tmp_path
    assert summary([]) == ("ok", [], [])


# --- metrics ----------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse(text):
    """{metric: [(labels, value)]} of a text exposition, unescaping label values; also checks
    that every family has HELP and TYPE gauge before its samples."""
    out, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind == "gauge"
            typed.add(name)
            continue
        if line.startswith("#"):
            assert line.startswith("# HELP ")
            continue
        name, labels, value = _SAMPLE.match(line).groups()
        assert name in typed, "sample before TYPE: %s" % line
        parsed, rest = {}, labels or ""
        while rest:
            match = _LABEL.match(rest)
            assert match, rest
            parsed[match.group(1)] = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1),
                                            match.group(2))
            rest = rest[match.end():]
        out.setdefault(name, []).append((parsed, float(value)))
    return out


def series(text, name):
    return parse(text).get(name, [])


@pytest.fixture
def tiers(tmp_path, root):
    base = tmp_path / "mtls"
    for tier in ("mtls-upstream", "mtls-proxy"):
        os.makedirs(str(base / tier))
    leaf = cert_expiring(root, 20 * DAY, cn='we"ird\\name')
    write(base / "mtls-upstream", "server.pem", leaf.pem + root.pem, 0o644)
    write(base / "mtls-upstream", "client-ca.crl", crl(root, next_update=T + 5 * DAY), 0o644)
    write(base / "mtls-proxy", "upstream-ca.pem", root.pem, 0o644)
    write(base / "mtls-proxy", "client.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n", 0o644)
    return base


def test_metrics_text_parses_back_to_the_items(tiers, root):
    items = scan([str(tiers)], now=T)
    leaf = next(i for i in items if i["kind"] == "certificate" and not i.get("error"))
    text = metrics_text(items, now=T)
    metrics = parse(text)
    certs = metrics["mtls_nginx_certificate_expiry_timestamp_seconds"]
    expiry = (T + 20 * DAY).timestamp()
    assert ({"tier": "mtls-upstream", "file": str(tiers / "mtls-upstream" / "server.pem"), "kind": "certificate",
             "subject": 'CN=we\\"ird\\\\name', "serial": leaf["serial"]}, expiry) in certs
    assert len(certs) == 3 and sum(1 for labels, value in certs if labels["kind"] == "ca") == 2
    assert metrics["mtls_nginx_crl_next_update_timestamp_seconds"] == [
        ({"tier": "mtls-upstream", "file": str(tiers / "mtls-upstream" / "client-ca.crl"), "issuer": "CN=Root CA"},
         (T + 5 * DAY).timestamp())]
    errors = dict((labels["file"], value) for labels, value in metrics["mtls_nginx_expiry_file_error"])
    assert errors == {str(tiers / "mtls-proxy" / "client.pem"): 1, str(tiers / "mtls-proxy" / "upstream-ca.pem"): 0,
                      str(tiers / "mtls-upstream" / "client-ca.crl"): 0, str(tiers / "mtls-upstream" / "server.pem"): 0}
    assert metrics[CHECK_METRIC] == [({}, T.timestamp())]
    assert text.count("# HELP ") == text.count("# TYPE ") == 4


def test_label_values_are_escaped():
    # The subject as RFC 4514 gives it (its own backslashes), plus a newline nothing else escapes.
    item = {"path": '/x/"q".pem', "tier": "t", "kind": "certificate", "subject": 'CN=a\\"b\\\\c\nd', "serial": "1",
            "not_after": "2030-01-01T00:00:00+00:00", "status": "ok"}
    text = metrics_text([item], now=T)
    assert 'subject="CN=a\\\\\\"b\\\\\\\\c\\nd"' in text
    assert 'file="/x/\\"q\\".pem"' in text
    labels, value = series(text, "mtls_nginx_certificate_expiry_timestamp_seconds")[0]
    assert labels["subject"] == item["subject"] and labels["file"] == item["path"] and value == 1893456000


def test_one_series_per_label_set():
    crls = [{"path": "/a.crl", "tier": "", "kind": "crl", "subject": "CN=CA", "serial": None, "not_after": when,
             "status": "ok"} for when in ("2030-01-02T00:00:00+00:00", "2030-01-01T00:00:00+00:00")]
    assert series(metrics_text(crls, now=T), "mtls_nginx_crl_next_update_timestamp_seconds") == [
        ({"tier": "", "file": "/a.crl", "issuer": "CN=CA"}, 1893456000)]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_metrics(tiers, tmp_path, root):
    write(tiers / "mtls-proxy", "same.pem", root.pem + root.pem, 0o644)
    text = metrics_text(scan([str(tiers)], now=T), now=T)
    done = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, check=False)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), done


# --- writing the metrics file -----------------------------------------------------------------

def test_metrics_file_is_written_atomically_with_its_directory(tiers, tmp_path):
    path = tmp_path / "textfile" / "mtls_nginx.prom"
    text = metrics_text(scan([str(tiers)], now=T), now=T)
    assert write_metrics(str(path), text) == (True, None, text)
    assert path.read_text() == text
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(str(path.parent)).st_mode) == 0o755
    inode = os.stat(str(path)).st_ino
    os.chmod(str(path), 0o600)
    changed, before, after = write_metrics(str(path), text.replace("mtls-proxy", "other"))
    assert changed and before == text
    assert os.listdir(str(path.parent)) == ["mtls_nginx.prom"], "temporary file left behind"
    assert os.stat(str(path)).st_ino != inode, "file rewritten in place, not replaced"
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o644


def test_only_a_new_check_time_is_no_change_but_is_written(tiers, tmp_path, root):
    path = str(tmp_path / "mtls_nginx.prom")
    assert write_metrics(path, metrics_text(scan([str(tiers)], now=T), now=T))[0] is True
    later = T + datetime.timedelta(hours=1)
    text = metrics_text(scan([str(tiers)], now=later), now=later)
    assert write_metrics(path, text)[0] is False
    assert series(open(path).read(), CHECK_METRIC) == [({}, later.timestamp())]
    # A renewed certificate is a change.
    write(tiers / "mtls-proxy", "upstream-ca.pem", issue("Root CA", ca=True).pem, 0o644)
    assert write_metrics(path, metrics_text(scan([str(tiers)], now=later), now=later))[0] is True
    assert os.listdir(str(tmp_path)) == ["mtls", "mtls_nginx.prom"]


def test_check_mode_writes_nothing(tiers, tmp_path):
    path = tmp_path / "textfile" / "mtls_nginx.prom"
    text = metrics_text(scan([str(tiers)], now=T), now=T)
    assert write_metrics(str(path), text, check_mode=True) == (True, None, text)
    assert not path.parent.exists()
    os.makedirs(str(path.parent))
    write_metrics(str(path), "old\n")
    assert write_metrics(str(path), text, check_mode=True)[0] is True
    assert path.read_text() == "old\n"


def test_metrics_path_that_is_a_directory_is_an_error(tmp_path):
    from ansible_collections.mtls.nginx.plugins.module_utils._expiry import MetricsError

    with pytest.raises(MetricsError, match="is a directory"):
        write_metrics(str(tmp_path), "x\n")


def test_scan_never_reads_a_key_it_skips(tmp_path, root, monkeypatch):
    write(tmp_path, "svc.key", cert_expiring(root, DAY).key_pem())
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    assert scan([str(tmp_path)], now=T) == []
    assert opened == []


# --- the example alert rules --------------------------------------------------------------------

RULES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "extras", "prometheus", "mtls_nginx_alerts.yml")


def test_alert_rules_are_yaml_with_the_metrics_the_module_writes():
    import yaml

    with open(RULES) as handle:
        rules = yaml.safe_load(handle)["groups"][0]["rules"]
    assert {r["labels"]["severity"] for r in rules} == {"warning", "critical"}
    used = " ".join(r["expr"] for r in rules)
    for name in ("mtls_nginx_certificate_expiry_timestamp_seconds", "mtls_nginx_crl_next_update_timestamp_seconds",
                 CHECK_METRIC, "mtls_nginx_expiry_file_error"):
        assert name in used


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_alert_rules_fire_at_their_thresholds(tmp_path):
    import yaml

    with open(RULES) as handle:
        rules = yaml.safe_load(handle)
    # Annotations are for people; the test checks which alerts fire when.
    for rule in rules["groups"][0]["rules"]:
        rule.pop("annotations")
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    cert = {"instance": "h", "tier": "t", "file": "/f.pem", "kind": "certificate", "subject": "CN=a", "serial": "1"}
    crl_labels = {"instance": "h", "tier": "t", "file": "/c.crl", "issuer": "CN=CA"}

    def fired(at, name, labels=None, severity=None):
        return {"eval_time": at, "alertname": name,
                "exp_alerts": [{"exp_labels": dict(labels, severity=severity)}] if labels is not None else []}

    def selector(name, labels):
        return "%s{%s}" % (name, ",".join('%s="%s"' % item for item in sorted(labels.items())))

    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1h",
        "input_series": [
            # Expires 10 days, next update 2 days after the start; checked once at the start.
            {"series": selector("mtls_nginx_certificate_expiry_timestamp_seconds", cert), "values": "864000x200"},
            {"series": selector("mtls_nginx_crl_next_update_timestamp_seconds", crl_labels), "values": "172800x200"},
            {"series": selector(CHECK_METRIC, {"instance": "h"}), "values": "0x200"},
            {"series": selector("mtls_nginx_expiry_file_error", {"instance": "h", "file": "/ok.pem"}), "values": "0x200"},
            {"series": selector("mtls_nginx_expiry_file_error", {"instance": "h", "file": "/bad.pem"}), "values": "1x200"},
        ],
        "alert_rule_test": [
            fired("0m", "MtlsNginxCertificateExpiringSoon", cert, "warning"),
            fired("0m", "MtlsNginxCertificateExpiryCritical"),
            fired("168h", "MtlsNginxCertificateExpiringSoon", cert, "warning"),
            fired("168h", "MtlsNginxCertificateExpiryCritical"),
            fired("169h", "MtlsNginxCertificateExpiringSoon"),
            fired("169h", "MtlsNginxCertificateExpiryCritical", cert, "critical"),
            fired("24h", "MtlsNginxCrlNextUpdateCritical"),
            fired("25h", "MtlsNginxCrlNextUpdateCritical", crl_labels, "critical"),
            fired("48h", "MtlsNginxExpiryCheckStale"),
            fired("49h", "MtlsNginxExpiryCheckStale", {"instance": "h"}, "warning"),
            fired("0m", "MtlsNginxFileError", {"instance": "h", "file": "/bad.pem"}, "critical"),
        ],
    }]}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    done = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, check=False)
    assert done.returncode == 0, done
    done = subprocess.run(["promtool", "test", "rules", "tests.yml"], cwd=str(tmp_path), capture_output=True,
                          check=False)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
