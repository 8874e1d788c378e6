"""The expiry_table filter: one table across hosts, soonest expiry first, no host left out."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.nginx.plugins.filter import expiry_table

table = expiry_table.FilterModule().filters()["expiry_table"]


def item(path, days, status="ok", kind="certificate", subject="CN=svc", error=None):
    out = {"path": path, "tier": "mtls-upstream", "kind": kind, "subject": subject, "serial": "1A",
           "not_after": None if days is None else "2030-01-01T12:30:00+00:00",
           "seconds_left": None if days is None else int(days * 86400),
           "days_left": days, "status": status}
    if error:
        out.update(subject="", serial=None, not_after=None, seconds_left=None, days_left=None, status="critical",
                   error="%s: %s" % (path, error))
    return out


RESULTS = {
    "orders-1": {"changed": False, "worst": "warning", "items": [
        item("/etc/nginx/mtls/mtls-upstream/server.pem", 20.0, "warning", subject="CN=orders"),
        item("/etc/nginx/mtls/mtls-upstream/client-ca.crl", 5.0, kind="crl", subject="CN=CA"),
    ]},
    "billing-1": {"items": [
        item("/etc/nginx/mtls/mtls-proxy/client.pem", -2.5, "critical", subject="CN=billing"),
        item("/etc/nginx/mtls/mtls-proxy/upstream-ca.crl", None, kind="crl", subject="CN=CA"),
        item("/etc/nginx/mtls/mtls-proxy/broken.pem", None, error="PEM block 1 (CERTIFICATE) is truncated"),
    ]},
    "localhost (controller)": [item("/home/ops/.mtls-nginx/pki/ca.pem", 3000.0, kind="ca", subject="CN=CA")],
    "gone-1": None,
    "dead-1": {"unreachable": True, "changed": False, "msg": "Failed to connect to the host via ssh:\n refused"},
}


def test_one_table_across_hosts_sorted_by_days_left():
    lines = table(RESULTS)
    assert lines[0].split() == ["HOST", "FILE", "SUBJECT", "EXPIRY", "(UTC)", "DAYS", "LEFT", "STATUS"]
    assert set(lines[1]) == {"-", " "}
    rows = [line.split("  ")[0].strip() for line in lines[2:]]
    assert rows == ["dead-1", "gone-1", "billing-1", "billing-1", "orders-1", "orders-1", "localhost (controller)", "billing-1"]
    assert "(no result: unreachable)" in lines[2]
    assert "(no result: the host failed or was unreachable)" in lines[3]
    assert "broken.pem" in lines[4] and "error: PEM block 1 (CERTIFICATE) is truncated" in lines[4]
    assert lines[5].split()[-3:] == ["-2.5", "critical,", "expired"]
    assert "CRL of CN=CA" in lines[6] and "2030-01-01 12:30" in lines[6] and lines[6].endswith("ok")
    assert lines[-1].endswith("-  ok") and "upstream-ca.crl" in lines[-1]


def test_columns_line_up():
    lines = table(RESULTS)
    starts = [lines[0].index(name) for name in ("FILE", "SUBJECT", "EXPIRY")]
    for line in lines[2:]:
        assert all(line[start - 2:start] == "  " for start in starts), line
    # Days left are right-aligned under their header.
    end = lines[0].index("DAYS LEFT") + len("DAYS LEFT")
    assert all(line[end - 1] in "0123456789-" for line in lines[2:])


def test_only_some_statuses_and_no_header():
    critical = table(RESULTS, statuses=["critical"], header=False)
    assert [line.split()[0] for line in critical] == ["dead-1", "gone-1", "billing-1", "billing-1"]
    assert table({"a": RESULTS["orders-1"]}, statuses="critical", header=False) == []
    assert len(table({"a": []})) == 2


@pytest.mark.parametrize("results, says", [
    ([], "expects a dict"),
    ({"a": {"changed": False}}, "has no items"),
    ({"a": {"changed": False, "failed": False}}, "has no items"),
    ({"a": "text"}, "not a certificate_expiry result"),
])
def test_wrong_input_is_named(results, says):
    with pytest.raises(AnsibleFilterError, match=says):
        table(results)


def test_unknown_status_is_refused():
    with pytest.raises(AnsibleFilterError, match="unknown statuses"):
        table(RESULTS, statuses=["expired"])
