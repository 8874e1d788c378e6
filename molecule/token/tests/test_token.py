"""Keys that never exist as files: both tiers keep their private key in the host's SoftHSM2
token and nginx uses it through OpenSSL's pkcs11 engine (Debian 12 upstream, Debian 13 proxy).

What crosses both tiers carries the token-held identities; the certificates in service belong
to the keys in the tokens; no private key file exists anywhere on either host and the token's
keys cannot leave it; nginx's workers keep handshaking after a reload; a wrong PIN is refused
before any change, naming the problem, and nginx keeps serving; mtls.nginx.rotate replaces
both token keys and certificates while a load generator sends requests through both tiers, and
none fails; a failed gate puts the old token key back."""

import json
import os
import re
import shlex
import time
import urllib.parse

import pytest

from mtls_testing import PROXY_PKI, UPSTREAM_PKI, curl, run_playbook

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "4711-token"


def spki_of_certificate(host, pem_file):
    out = host.run_expect([0], "openssl x509 -in %s -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum" % pem_file)
    return out.stdout.split()[0]


def token_keys(host):
    """label -> CKA_ID (hex) of every private key in the host's token."""
    out = host.run_expect([0], "pkcs11-tool --module %s --token-label mtls --login --pin %s --list-objects --type privkey"
                          % (MODULE, PIN)).stdout
    return dict(re.findall(r"label:\s+(\S+)\s+ID:\s+([0-9a-f]+)", out))


def serial(host, pem_file):
    return host.run_expect([0], "openssl x509 -in %s -noout -serial" % pem_file).stdout.strip()


def spki_in_token(host, label):
    out = host.run_expect([0], "pkcs11-tool --module %s --token-label mtls --read-object --type pubkey --label %s "
                          "| openssl pkey -pubin -inform DER -outform DER | sha256sum" % (MODULE, label))
    return out.stdout.split()[0]


def test_a_request_crosses_both_tiers_with_the_token_held_identity_verified_at_the_backend(proxy, upstream):
    response = curl(proxy, "http://127.0.0.1:8080/token")
    assert response.status == 200
    seen = response.json()["headers"]
    assert seen["X-Client-Verify"] == "SUCCESS"
    assert seen["X-Client-DN"] == "CN=" + proxy.backend.get_hostname()
    # The client certificate the backend was told about is the one whose key is in the proxy's token.
    sent = urllib.parse.unquote(seen["X-Client-Cert"])
    proxy.run_expect([0], "printf '%%s' %s > /tmp/seen-client.pem" % shlex.quote(sent))
    assert spki_of_certificate(proxy, "/tmp/seen-client.pem") == spki_in_token(proxy, "mtls-proxy")


def test_the_upstream_serves_the_certificate_of_its_token_key(proxy, upstream):
    name = upstream.backend.get_hostname()
    proxy.run_expect([0], "openssl s_client -connect %s:8443 -servername %s -CAfile %s/upstream-ca.pem "
                     "-verify_return_error </dev/null 2>/dev/null | openssl x509 > /tmp/served.pem" % (name, name, PROXY_PKI))
    assert spki_of_certificate(proxy, "/tmp/served.pem") == spki_in_token(upstream, "mtls-upstream")
    assert spki_of_certificate(upstream, UPSTREAM_PKI + "/server.pem") == spki_in_token(upstream, "mtls-upstream")


def test_the_token_keys_are_sensitive_and_never_extractable(proxy, upstream):
    for host, label in ((proxy, "mtls-proxy"), (upstream, "mtls-upstream")):
        out = host.run_expect([0], "pkcs11-tool --module %s --token-label mtls --login --pin %s --list-objects --type privkey"
                              % (MODULE, PIN))
        assert label in out.stdout
        assert re.search(r"Access:\s+sensitive, always sensitive, never extractable, local", out.stdout), out.stdout


@pytest.mark.parametrize("tier", ["proxy", "upstream"])
def test_no_private_key_file_exists_anywhere_on_the_host(request, tier):
    host = request.getfixturevalue(tier)
    # Every file on the host that holds a PEM private key of any kind (the marker as a whole
    # line: a library that names the marker in its code holds no key).
    pem = host.run("grep -rlIsx --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev "
                   "-e '-----BEGIN [A-Z ]*PRIVATE KEY-----\r\\?' / || true")
    assert pem.stdout.split() == []
    # Key-like files by name (a DER key has no marker to grep for).
    named = host.run("find / -xdev \\( -name '*.key' -o -name '*.der' -o -name '*.p12' -o -name '*.pfx' "
                     "-o -name '*.p8' -o -name '*.pass' \\) -type f -print")
    assert named.stdout.split() == []
    # What the tiers keep: certificates, CA bundle, CRL, the engine's configuration, and an
    # upstream tier's lookups of its known callers (public: certificates and their names).
    listing = host.run_expect([0], "find /etc/nginx/mtls -type f -printf '%P %m\\n'").stdout.split("\n")
    files = dict(line.split() for line in listing if line)
    assert files.pop("pkcs11-engine.cnf") == "600"
    assert all(re.search(r"\.(pem|crl)$|/known-callers\.conf$", name) for name in files), files


def test_the_pin_is_only_in_the_engine_configuration(proxy, upstream):
    for host in (proxy, upstream):
        found = host.run("grep -rlsF --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev --exclude-dir=softhsm "
                         "-e %s /etc /var /usr/local /root /tmp || true" % PIN).stdout.split()
        assert found == ["/etc/nginx/mtls/pkcs11-engine.cnf"]
        config = host.file("/etc/nginx/mtls/pkcs11-engine.cnf")
        assert (config.mode, config.user, config.group) == (0o600, "root", "root")


def test_workers_started_by_a_reload_still_load_the_key_from_the_token(proxy, upstream):
    for host in (upstream, proxy):
        host.run_expect([0], "/usr/local/sbin/mtls-nginx-reload nginx /run/nginx.pid")
    # A new connection, so that both tiers' new workers do a full handshake with their token key.
    for _attempt in range(4):
        response = curl(proxy, "http://127.0.0.1:8080/after-reload", "-H", "Connection: close")
        assert response.status == 200
        assert response.json()["headers"]["X-Client-DN"] == "CN=" + proxy.backend.get_hostname()


def failures_report(proxy, result):
    """The load generator's first failures, each with the proxy's access log lines for its path
    (upstream response times, bytes sent and received per attempt): what tells a failed POST's
    cause."""
    report = []
    for failure in result["failures"][:10]:
        logged = proxy.run("grep -h -F -e %s /var/log/nginx/mtls-proxy.access.log | tail -n 3", " %s " % failure["path"]).stdout
        report.append(dict(failure, proxy_log=logged.splitlines()))
    return json.dumps(report, indent=1)


def key_load_failures(host):
    return int(host.run("cat /var/log/nginx/*error.log | grep -c 'cannot load certificate key' || true").stdout.strip() or 0)


def test_reloads_under_load_while_other_processes_log_in_to_the_token_fail_no_request(proxy, upstream):
    # SoftHSM2 rewrites its token's state file at every login (SoftHSM2 issue 757): when each new
    # worker logged in on its own, workers started by a reload failed each other's first key loads,
    # and any process logging in meanwhile (an operator's pkcs11-tool, the collection's own modules)
    # made it worse: 500s from the proxy tier, failed handshakes at the upstream tier. nginx's master
    # now logs in before it forks the workers (templates/token_key.j2).
    failures_before = {host: key_load_failures(host) for host in (proxy, upstream)}
    proxy.run("systemctl stop mtls-loadgen; systemctl reset-failed mtls-loadgen; rm -rf %s" % LOADGEN)
    proxy.run_expect([0], "install -d -m 0755 %s && echo reloads > %s/phase" % (LOADGEN, LOADGEN))
    proxy.run_expect([0], "systemd-run --unit=mtls-loadgen --collect /usr/bin/python3 /usr/local/bin/mtls-loadgen "
                          "--url http://127.0.0.1:8080 --rate 150 --connections 6 --duration-max 300 "
                          "--phase-file {0}/phase --stop-file {0}/stop --out {0}/result.json".format(LOADGEN))
    # Each process logs in and leaves on its own: SoftHSM2 truncates the token's state file before it
    # writes it anew, and a process killed in between would leave the token empty.
    logins = ("rm -f /run/mtls-token-logins.stop && systemd-run --unit=mtls-token-logins --collect "
              "--description='token logins' sh -c 'while [ ! -e /run/mtls-token-logins.stop ]; do pkcs11-tool "
              "--module %s --token-label mtls --login --pin %s --list-objects --type privkey >/dev/null 2>&1; done'"
              % (MODULE, PIN))
    try:
        for host in (proxy, upstream):
            host.run_expect([0], logins)
        time.sleep(1)
        for _round in range(15):
            for host in (upstream, proxy):
                host.run_expect([0], "/usr/local/sbin/mtls-nginx-reload nginx /run/nginx.pid")
            time.sleep(0.5)
    finally:
        for host in (proxy, upstream):
            host.run("touch /run/mtls-token-logins.stop")
        proxy.run("touch %s/stop" % LOADGEN)
        for host in (proxy, upstream):
            host.run("for i in $(seq 100); do systemctl is-active --quiet mtls-token-logins || break; sleep 0.1; done")
    for _waited in range(30):
        result = json.loads(proxy.file(LOADGEN + "/result.json").content_string)
        if not result["running"]:
            break
        time.sleep(1)
    assert result["totals"]["sent"] > 1000 and result["totals"]["connections_opened"] > 30, result["totals"]
    assert result["totals"]["failed"] == 0, failures_report(proxy, result)
    assert {host: key_load_failures(host) for host in (proxy, upstream)} == failures_before
    assert "mtls-proxy" in token_keys(proxy) and "mtls-upstream" in token_keys(upstream)


def test_a_wrong_pin_is_refused_before_any_change_naming_the_problem(proxy, upstream):
    before = {h: h.run_expect([0], "cat /etc/nginx/mtls/pkcs11-engine.cnf /etc/nginx/conf.d/*.conf | sha256sum").stdout
              for h in (proxy, upstream)}
    rc, output, recap = run_playbook("mtls.nginx.site", "-e", "mtls_nginx_pkcs11_pin=0000-wrong")
    assert rc != 0
    assert "mtls-token-upstream" in recap and "mtls-token-proxy" in recap
    assert all(counts["changed"] == 0 for counts in recap.values()), recap
    assert "token 'mtls' (module /usr/lib/softhsm/libsofthsm2.so): wrong PIN (CKR_PIN_INCORRECT)" in output
    assert "0000-wrong" not in output
    for host in (proxy, upstream):
        assert host.run_expect([0], "cat /etc/nginx/mtls/pkcs11-engine.cnf /etc/nginx/conf.d/*.conf | sha256sum").stdout == before[host]
    assert curl(proxy, "http://127.0.0.1:8080/still-serving").status == 200


def test_check_mode_on_the_deployed_hosts_changes_nothing_and_reports_no_change(proxy, upstream):
    rc, output, recap = run_playbook("mtls.nginx.site", "--check")
    assert rc == 0, output[-3000:]
    assert set(recap) == {"mtls-token-upstream", "mtls-token-proxy"}
    assert all(counts["changed"] == 0 for counts in recap.values()), recap


LOADGEN = "/run/mtls-loadgen"


def test_rotation_replaces_both_token_keys_and_certificates_with_no_failed_request(proxy, upstream):
    tiers = ((upstream, "mtls-upstream", UPSTREAM_PKI + "/server.pem"), (proxy, "mtls-proxy", PROXY_PKI + "/client.pem"))
    before = {label: (token_keys(host)[label], serial(host, pem)) for host, label, pem in tiers}
    proxy.run("systemctl stop mtls-loadgen; systemctl reset-failed mtls-loadgen; rm -rf %s" % LOADGEN)
    proxy.run_expect([0], "install -d -m 0755 %s && echo rotate > %s/phase" % (LOADGEN, LOADGEN))
    proxy.run_expect([0], "systemd-run --unit=mtls-loadgen --collect /usr/bin/python3 /usr/local/bin/mtls-loadgen "
                          "--url http://127.0.0.1:8080 --rate 60 --connections 4 --duration-max 600 "
                          "--phase-file {0}/phase --stop-file {0}/stop --out {0}/result.json".format(LOADGEN))
    time.sleep(4)
    rc, out, _recap = run_playbook("mtls.nginx.rotate")
    time.sleep(4)
    proxy.run_expect([0], "touch %s/stop" % LOADGEN)
    for _waited in range(60):
        result = json.loads(proxy.file(LOADGEN + "/result.json").content_string)
        if not result["running"]:
            break
        time.sleep(1)
    assert rc == 0, out[-4000:]
    assert result["totals"]["sent"] > 0 and result["totals"]["post"] > 0
    assert result["totals"]["failed"] == 0, failures_report(proxy, result)
    for host, label, pem in tiers:
        # One key under the tier's label, a new one, and nothing staged left in the token or beside the files.
        keys = token_keys(host)
        assert set(keys) == {label}, keys
        assert keys[label] != before[label][0]
        assert serial(host, pem) != before[label][1]
        assert spki_of_certificate(host, pem) == spki_in_token(host, label)
        leftovers = host.run("ls /etc/nginx/mtls/%s | grep -E '\\.(next|previous)$' || true" % label).stdout
        assert leftovers.strip() == ""
    # What crosses both tiers now carries the proxy's new certificate.
    seen = curl(proxy, "http://127.0.0.1:8080/rotated").json()["headers"]
    assert seen["X-Client-Serial"] == serial(proxy, PROXY_PKI + "/client.pem").split("=")[1]
    # And mtls.nginx.site finds nothing to change.
    rc, out, recap = run_playbook("mtls.nginx.site")
    assert rc == 0 and all(counts["changed"] == 0 for counts in recap.values()), out[-3000:]


def test_a_failed_gate_puts_the_old_token_key_and_certificate_back(proxy):
    keys, before = token_keys(proxy), serial(proxy, PROXY_PKI + "/client.pem")
    rc, out, _recap = run_playbook("mtls.nginx.rotate", "--limit", "mtls-token-proxy",
                                   "-e", '{"mtls_proxy_rotate_probe_status": [599]}')
    assert rc != 0
    assert 'rotation of the proxy tier mtls-proxy on mtls-token-proxy failed at "Gate, a request through this proxy gets its answer"' in out
    assert token_keys(proxy) == keys
    assert serial(proxy, PROXY_PKI + "/client.pem") == before
    assert proxy.run("ls %s | grep -E '\\.(next|previous)$' || true" % PROXY_PKI).stdout.strip() == ""
    seen = curl(proxy, "http://127.0.0.1:8080/restored").json()["headers"]
    assert seen["X-Client-Serial"] == before.split("=")[1]


def test_each_host_runs_the_debian_release_its_inventory_names(proxy, upstream):
    # Debian 12 upstream and Debian 13 proxy, unless MTLS_TOKEN_CODENAME puts both on one release.
    chosen = os.environ.get("MTLS_TOKEN_CODENAME")
    assert upstream.system_info.codename == (chosen or "bookworm")
    assert proxy.system_info.codename == (chosen or "trixie")
