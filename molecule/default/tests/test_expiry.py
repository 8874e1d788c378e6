"""Expiry monitoring (mtls.nginx.check_expiry) on the deployed tiers: one table across hosts,
a non-zero exit naming what is critical, and metrics node_exporter's textfile collector reads."""

import re
import shutil
import subprocess

from mtls_testing import run_playbook

METRICS = "/var/lib/prometheus/node-exporter/mtls_nginx.prom"
FILES = {"upstream": ["server.pem", "server-chain.pem", "client-ca.pem", "client-ca.crl"],
         "proxy": ["client.pem", "client-chain.pem", "upstream-ca.pem", "upstream-ca.crl"]}


def _rows(out):
    return re.findall(r'"(mtls-default-\S+ +/etc/nginx/mtls/[^"]+)"', out)


def test_the_table_lists_every_certificate_and_crl_of_every_host_soonest_first(proxy, upstream):
    rc, out, recap = run_playbook("mtls.nginx.check_expiry")
    assert rc == 0, out[-3000:]
    rows = _rows(out)
    for host, tier in ((upstream, "upstream"), (proxy, "proxy")):
        for name in FILES[tier]:
            path = "/etc/nginx/mtls/mtls-%s/%s" % (tier, name)
            assert any(r.startswith(host.backend.get_hostname()) and path in r for r in rows), (path, rows)
    days = [float(re.split(r" {2,}", row.strip())[-2]) for row in rows]
    assert days == sorted(days)
    assert all(row.strip().endswith(("ok", "warning")) for row in rows), rows
    assert "localhost (the CA)" in out
    assert all(counts["failed"] == 0 for counts in recap.values())


def test_a_critical_threshold_beyond_the_certificates_lifetime_fails_naming_hosts_and_files(proxy, upstream):
    rc, out = run_playbook("mtls.nginx.check_expiry", "-e", "mtls_check_expiry_critical_days=400")[:2]
    assert rc != 0
    critical = out.split("Critical:", 1)[1]
    for host, path in ((upstream, "/etc/nginx/mtls/mtls-upstream/server.pem"),
                       (proxy, "/etc/nginx/mtls/mtls-proxy/client.pem")):
        assert re.search(re.escape(host.backend.get_hostname()) + r" +" + re.escape(path), critical), critical[:3000]


def test_each_host_gets_metrics_that_promtool_accepts(proxy, upstream, tmp_path):
    run_playbook("mtls.nginx.check_expiry")
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found; scripts/setup installs Debian's prometheus package for the tests"
    for host in (upstream, proxy):
        metrics = host.file(METRICS)
        assert metrics.exists and metrics.mode == 0o644
        text = metrics.content_string
        assert "mtls_nginx_certificate_expiry_timestamp_seconds{" in text
        assert "mtls_nginx_crl_next_update_timestamp_seconds{" in text
        checked = subprocess.run([promtool, "check", "metrics"], input=text, text=True, capture_output=True, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr
