"""The handshake matrix of both tiers, run from inside the containers against real nginx.

Client certificates with a flaw (expired, revoked, without clientAuth, from another CA) are
made here on the controller, signed by the scenario's CAs, and copied to the proxy host,
from where curl presents them straight to an upstream host. The tests run in file order;
the ones that stop a service or change the inventory come last and restore what they change.
"""

import base64
import hashlib
import os
import re
import shlex
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from mtls_testing import EPHEMERAL, PKI, PROXY_PKI, UPSTREAM_PKI, access_log, curl, extra_inventory, run_playbook
from pkifactory import DAY, NOW, Cert, issue, write

REVOKED_SERIAL = 0x7E57ED0001  # listed in mtls_pki_revoked_serials in the inventory


# --- helpers ---------------------------------------------------------------------------------

def _load_ca(directory, name="ca"):
    with open(os.path.join(directory, name + ".pem"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(directory, name + ".key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    return Cert(cert, key)


def make_client(ca_dir, cn, serial=None, not_before=None, not_after=None, eku="client", dns_names=(), issuer="ca"):
    """A client certificate and key (PEM) signed by the CA ``issuer`` (``ca`` or ``intermediate``)
    in ``ca_dir``, with the flaw asked for: valid for 30 days unless told otherwise, the extended
    key usage ``eku`` (pkifactory's names: ``client``, ``server``), DNS names only if given."""
    made = issue(cn, issuer=_load_ca(ca_dir, issuer), eku=(eku,), sans=["DNS:" + n for n in dns_names],
                 not_before=not_before, not_after=not_after or NOW + 30 * DAY, serial=serial)
    return made.pem, made.key_pem()


def put(host, path, data, mode="0600"):
    host.run_expect([0], "install -d -m 0700 %s && echo %s | base64 -d > %s && chmod %s %s" % (
        os.path.dirname(path), base64.b64encode(data).decode(), path, mode, path))


def put_client(host, base, cert_pem, key_pem):
    """Installs a client certificate and its key on ``host`` as ``base``.pem and ``base``.key;
    returns the options that have curl present them."""
    put(host, base + ".pem", cert_pem, "0644")
    put(host, base + ".key", key_pem)
    return ["--cert", base + ".pem", "--key", base + ".key"]


def name_of(host):
    return host.backend.get_hostname()


def straight_to(proxy, upstream, *options, path="/"):
    """A request from the proxy host straight to an upstream host, verifying its certificate."""
    return curl(proxy, "https://%s:8443%s" % (name_of(upstream), path), "--cacert", PROXY_PKI + "/upstream-ca.pem",
                *options)


def as_proxy(proxy, upstream, *options):
    """A request straight to an upstream host, presenting the proxy host's own certificate."""
    return straight_to(proxy, upstream, "--cert", PROXY_PKI + "/client-chain.pem", "--key", PROXY_PKI + "/client.key",
                       *options)


def by_service_name(proxy, upstream):
    """A request from the proxy host to an upstream host under the service name, presenting the
    proxy host's own certificate, as the proxy tier sends it."""
    return curl(proxy, "https://orders.internal:8443/", "--cacert", PROXY_PKI + "/upstream-ca.pem",
                "--resolve", "orders.internal:8443:" + upstream.interface("eth0").addresses[0],
                "--cert", PROXY_PKI + "/client-chain.pem", "--key", PROXY_PKI + "/client.key")


def with_client(proxy, upstream, label, cert_pem, key_pem, path="/"):
    return straight_to(proxy, upstream, *put_client(proxy, "/root/matrix/" + label, cert_pem, key_pem), path=path)


def refused_reason(response):
    assert response.status == 400, response.body
    body = response.json()
    assert body["error"] == "client_certificate_refused"
    return body["reason"]


def fingerprint_of_files(host, top="/etc/nginx"):
    out = host.run("find %s -type f -exec sha256sum {} + | sort" % top)
    assert out.rc == 0, out.stderr
    return out.stdout


def serving_from_files(tmp_path, upstream, **variables):
    """An extra inventory in which ``upstream`` serves a new certificate for the service, read
    with its key from files in ``tmp_path`` (orders.pem, orders.key); ``variables`` are more of
    the upstream's variables."""
    cert, key = make_client(PKI, "orders.internal", eku="server", dns_names=("orders.internal", name_of(upstream)))
    return extra_inventory(tmp_path, hosts={name_of(upstream): dict({
        "mtls_upstream_certificate_source": "files",
        "mtls_upstream_certificate_file": write(tmp_path, "orders.pem", cert),
        "mtls_upstream_private_key_file": write(tmp_path, "orders.key", key),
    }, **variables)})


# --- what must pass ----------------------------------------------------------------------------

IDENTITY_HEADERS = ("X-Client-Cert", "X-Client-Verify", "X-Client-DN", "X-Client-Issuer-DN", "X-Client-Serial",
                    "X-Client-Fingerprint", "X-Client-SPIFFE-ID")
KNOWN_CALLERS = "/etc/nginx/mtls/mtls-upstream/known-callers.conf"


def identity_of(response):
    """The identity headers the echo backend received."""
    assert response.status == 200, response.body
    seen = response.json()["headers"]
    return {name: seen.get(name) for name in IDENTITY_HEADERS}


def known_fingerprints(upstream):
    """The certificates whose identity values the upstream tier looks up (the file its config includes)."""
    assert "include %s;" % KNOWN_CALLERS in upstream.file("/etc/nginx/conf.d/mtls-upstream.conf").content_string
    text = upstream.file(KNOWN_CALLERS).content_string
    block = re.search(r"map \$ssl_client_fingerprint \$__mtls_u_cert_\w+ \{(.*?)\n\}", text, re.S).group(1)
    return set(re.findall(r"^\s*([0-9a-f]{40}) ", block, re.M))


def fingerprint_sha1(host, path):
    out = host.check_output("openssl x509 -in %s -noout -fingerprint -sha1" % path)
    return out.split("=", 1)[1].replace(":", "").lower()


def without_lookup(upstreams, observe):
    """What observe() returns while the upstream tiers (one host or a list) look up no caller: the
    same maps with no entry, so nginx computes every value (as with mtls_upstream_known_callers:
    false); the files are put back and nginx reloaded after."""
    upstreams = upstreams if isinstance(upstreams, (list, tuple)) else [upstreams]
    emptied = []
    try:
        for upstream in upstreams:
            saved = upstream.file(KNOWN_CALLERS).content_string
            without = re.sub(r"(?m)^\s*[0-9a-f]{40} .*\n", "", saved)
            assert without != saved, "no known caller in %s" % KNOWN_CALLERS
            # The tests enter the containers as root.
            upstream.check_output("cp -p %s %s.saved" % (KNOWN_CALLERS, KNOWN_CALLERS))
            emptied.append(upstream)
            upstream.check_output("printf %%s %s > %s && /usr/local/sbin/mtls-nginx-reload nginx"
                                  % (shlex.quote(without), KNOWN_CALLERS))
            assert known_fingerprints(upstream) == set()
        return observe()
    finally:
        for upstream in emptied:
            upstream.check_output("mv %s.saved %s && /usr/local/sbin/mtls-nginx-reload nginx" % (KNOWN_CALLERS, KNOWN_CALLERS))


def test_valid_client_certificate_through_the_proxy_gets_200(proxy):
    response = curl(proxy, "http://127.0.0.1:8080/orders/42")
    assert response.status == 200
    seen = response.json()
    assert seen["path"] == "/orders/42"
    assert seen["headers"]["X-Client-Verify"] == "SUCCESS"
    assert seen["headers"]["X-Client-DN"] == "CN=" + name_of(proxy)
    assert re.fullmatch(r"[0-9a-f]{40}", seen["headers"]["X-Client-Fingerprint"])


def test_nginx_sizes_the_hash_of_every_locations_headers_without_a_warning(proxy, upstreams):
    """Some six hundred header names per location, set or cleared: nginx would warn at every
    config test and reload, into the error log, that it cannot size their hash; on either
    release it does not."""
    for host in [proxy] + upstreams:
        result = host.run("nginx -t")
        assert result.rc == 0, result.stderr
        assert "proxy_headers_hash" not in result.stderr, "%s: %s" % (name_of(host), result.stderr)


def test_every_upstream_host_serves_the_service_name(proxy, upstreams):
    assert len(upstreams) == 2
    for upstream in upstreams:
        response = by_service_name(proxy, upstream)
        assert response.status == 200, response.body


def test_allow_listed_identity_reaches_its_location(proxy):
    response = curl(proxy, "http://127.0.0.1:8080/billing/invoices")
    assert response.status == 200
    assert response.json()["path"] == "/billing/invoices"


def test_encrypted_keys_are_read_through_their_password_files(proxy, upstreams):
    second = upstreams[1]
    pairs = ((second, UPSTREAM_PKI + "/server"), (proxy, "/etc/nginx/mtls/mtls-reporting/client"))
    for host, base in pairs:
        assert host.file(base + ".key").content_string.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        password_file = host.file(base + ".pass")
        assert password_file.mode == 0o600 and password_file.user == "root"
    # The second service presents its own (encrypted) key; the second upstream serves with one.
    response = curl(proxy, "http://127.0.0.1:8083/reports")
    assert response.status == 200
    assert response.json()["headers"]["X-Client-DN"] == "CN=reporting." + name_of(proxy)
    served = by_service_name(proxy, second)
    assert served.status == 200


def test_the_second_upstream_keeps_its_accepted_client_cas_private(proxy, upstreams):
    def told_cas(upstream):
        out = proxy.run("echo | openssl s_client -connect %s:8443 -servername %s -tls1_2 2>&1"
                        % (name_of(upstream), name_of(upstream))).stdout
        names = out.split("Acceptable client certificate CA names", 1)[1].split("---", 1)[0]
        # The DNs, one per line: "CN = x" from OpenSSL 3.0 (Debian 12), "CN=x" from 3.5 (Debian 13).
        return [re.sub(r"\s*=\s*", "=", line.strip()) for line in names.splitlines()
                if re.match(r"^\s*[A-Za-z]+ ?= ?\S", line)]

    first, second = upstreams
    assert told_cas(first) == ["CN=mtls.nginx CA"]
    assert told_cas(second) == ["CN=mtls.nginx client CA list withheld"]
    # The CA bundle is still what verifies clients there.
    assert "ssl_trusted_certificate /etc/nginx/mtls/mtls-upstream/client-ca.pem;" in second.run("nginx -T").stdout


def test_each_client_identity_keeps_its_own_upstream_connections(proxy):
    # Kept-alive upstream connections are tied to the certificate they were opened with; if
    # two services shared a pool, one identity's connection would carry the other's request.
    expected = {8080: "CN=" + name_of(proxy), 8083: "CN=reporting." + name_of(proxy)}
    for i in range(12):
        port = 8080 if i % 2 else 8083
        seen = curl(proxy, "http://127.0.0.1:%d/pool/%d" % (port, i)).json()["headers"]
        assert seen["X-Client-DN"] == expected[port]


# --- what must be refused -----------------------------------------------------------------------

def test_no_client_certificate_straight_to_the_upstream_gets_400(proxy, each_upstream):
    response = straight_to(proxy, each_upstream)
    assert refused_reason(response) == "no client certificate was sent"
    assert response.json() and "backend" not in response.body


def test_client_certificate_from_another_ca_gets_400(proxy, each_upstream):
    cert, key = make_client(os.path.join(EPHEMERAL, "other-ca"), name_of(proxy))
    reason = refused_reason(with_client(proxy, each_upstream, "other-ca", cert, key))
    assert "issuer" in reason or "verify" in reason, reason


def test_expired_client_certificate_gets_400(proxy, each_upstream):
    cert, key = make_client(PKI, name_of(proxy),
                            not_before=NOW - 10 * DAY, not_after=NOW - DAY)
    assert refused_reason(with_client(proxy, each_upstream, "expired", cert, key)) == "certificate has expired"


def test_revoked_client_certificate_gets_400(proxy, each_upstream):
    cert, key = make_client(PKI, name_of(proxy), serial=REVOKED_SERIAL)
    assert refused_reason(with_client(proxy, each_upstream, "revoked", cert, key)) == "certificate revoked"
    # The same CA's certificate with another serial passes: the CRL, not the CA, refused it.
    cert, key = make_client(PKI, name_of(proxy))
    assert with_client(proxy, each_upstream, "not-revoked", cert, key).status == 200


def test_client_certificate_without_client_auth_gets_400(proxy, each_upstream):
    cert, key = make_client(PKI, name_of(proxy), eku="server")
    reason = refused_reason(with_client(proxy, each_upstream, "server-eku", cert, key))
    # OpenSSL 3 says "unsuitable", OpenSSL 1.1 said "unsupported".
    assert reason in ("unsuitable certificate purpose", "unsupported certificate purpose"), reason


def test_identity_not_on_the_allow_list_gets_403(proxy):
    response = curl(proxy, "http://127.0.0.1:8080/admin/users")
    assert response.status == 403
    assert response.json()["error"] == "forbidden"
    assert "backend" not in response.body
    # /billing/ allows the proxy's main identity only, not the second service's.
    assert curl(proxy, "http://127.0.0.1:8083/billing/invoices").status == 403


def test_proxy_trusting_another_ca_gets_502_and_logs_the_verify_error(proxy):
    response = curl(proxy, "http://127.0.0.1:8081/")
    assert response.status == 502
    log = proxy.file("/var/log/nginx/mtls-wrong-ca.error.log").content_string
    assert "upstream SSL certificate verify error" in log


def test_proxy_expecting_another_name_gets_502_and_logs_it(proxy):
    response = curl(proxy, "http://127.0.0.1:8082/")
    assert response.status == 502
    log = proxy.file("/var/log/nginx/mtls-wrong-name.error.log").content_string
    assert 'upstream SSL certificate does not match "wrong.internal"' in log


def test_forged_identity_sent_to_the_proxy_never_reaches_the_backend(proxy):
    response = curl(proxy, "http://127.0.0.1:8080/", "-H", "X-Client-DN: CN=admin", "-H", "X-Client-Cert: forged",
                    "-H", "X-Client-Verify: SUCCESS", "-H", "X-SSL-Client-Cert: forged")
    seen = response.json()["headers"]
    assert seen["X-Client-DN"] == "CN=" + name_of(proxy)
    assert seen["X-Client-Cert"].startswith("-----BEGIN%20CERTIFICATE")
    assert "X-SSL-Client-Cert" not in seen


def test_forged_identity_sent_straight_to_the_upstream_never_reaches_the_backend(proxy, each_upstream):
    response = as_proxy(proxy, each_upstream, "-H", "X-Client-DN: CN=admin", "-H", "X-Client-Cert: forged",
                        "-H", "X-Forwarded-Client-Cert: forged")
    assert response.status == 200
    seen = response.json()["headers"]
    assert seen["X-Client-DN"] == "CN=" + name_of(proxy)
    assert seen["X-Client-Cert"].startswith("-----BEGIN%20CERTIFICATE")
    assert "X-Forwarded-Client-Cert" not in seen


def test_front_end_certificate_header_passes_only_from_trusted_sources(proxy, upstream):
    # The proxy host is in the trusted network: its header is passed on, under its own name.
    trusted = as_proxy(proxy, upstream, "-H", "X-SSL-Client-Cert: cert-of-the-front-ends-client").json()["headers"]
    assert trusted["X-Original-Client-Cert"] == "cert-of-the-front-ends-client"
    assert trusted["X-Client-DN"] == "CN=" + name_of(proxy)  # the verified identity is unaffected
    assert "X-SSL-Client-Cert" not in trusted
    # Through the proxy tier, the proxy strips the header from its own clients first.
    via_proxy = curl(proxy, "http://127.0.0.1:8080/", "-H", "X-SSL-Client-Cert: forged").json()["headers"]
    assert "X-Original-Client-Cert" not in via_proxy
    # From outside the trusted network (here: the upstream host itself, over loopback) it is dropped.
    cert, key = make_client(PKI, "loopback-client")
    presented = put_client(upstream, "/root/matrix/loopback", cert, key)
    name = name_of(upstream)
    untrusted = curl(upstream, "https://%s:8443/" % name, "--resolve", "%s:8443:127.0.0.1" % name,
                     "--cacert", UPSTREAM_PKI + "/client-ca.pem", *presented,
                     "-H", "X-SSL-Client-Cert: forged").json()["headers"]
    assert untrusted["X-Client-DN"] == "CN=loopback-client"
    assert "X-Original-Client-Cert" not in untrusted


@pytest.mark.parametrize("version", ["tls1", "tls1_1"])
def test_tls_before_1_2_is_refused_by_the_upstream(proxy, each_upstream, version):
    # SECLEVEL=0 lets this client offer the old version at all, so only the server refuses.
    cmd = ("echo | openssl s_client -connect %s:8443 -servername %s -%s -cipher DEFAULT@SECLEVEL=0 2>&1"
           % (name_of(each_upstream), name_of(each_upstream), version))
    old = proxy.run(cmd)
    assert old.rc != 0
    assert re.search(r"alert protocol version|unsupported protocol|no protocols available|wrong version", old.stdout), \
        old.stdout
    assert "no protocols available" not in old.stdout, "the client did not offer %s at all" % version
    modern = proxy.run(cmd.replace("-" + version, "-tls1_2"))
    assert "Protocol  : TLSv1.2" in modern.stdout or "Protocol: TLSv1.2" in modern.stdout, modern.stdout


def test_upstream_access_log_records_verify_result_and_client_dn(proxy, upstream):
    straight_to(proxy, upstream)
    log = access_log(upstream)
    assert '"GET / HTTP/1.1" 400 verify=NONE dn="-"' in log
    assert "verify=SUCCESS dn=\"CN=%s\"" % name_of(proxy) in log


# --- changes: they come last and put back what they change ---------------------------------------

def test_with_one_upstream_host_stopped_requests_still_succeed(proxy, upstreams):
    first, second = upstreams
    first.run_expect([0], "systemctl stop nginx")
    try:
        before = access_log(second).count("\n")
        statuses = [curl(proxy, "http://127.0.0.1:8080/failover/%d" % i).status for i in range(6)]
        assert statuses == [200] * 6
        assert access_log(second).count("\n") - before == 6
    finally:
        first.run_expect([0], "systemctl start nginx")
    assert curl(proxy, "http://127.0.0.1:8080/").status == 200


def test_check_mode_reports_no_change():
    rc, out, recap = run_playbook("mtls.nginx.site", "--check", "--diff")
    assert rc == 0, out[-3000:]
    assert recap and all(counts["changed"] == 0 for counts in recap.values()), out[-3000:]


def test_broken_certificate_in_the_inventory_fails_before_any_change(proxy, upstream, tmp_path):
    good_cert, good_key = make_client(PKI, name_of(upstream))
    broken = tmp_path / "orders-broken.pem"
    broken.write_bytes(good_cert[: len(good_cert) // 2])  # truncated: BEGIN without END
    key = write(tmp_path, "orders.key", good_key)
    extra = extra_inventory(tmp_path, hosts={name_of(upstream): {
        "mtls_upstream_certificate_source": "files",
        "mtls_upstream_certificate_file": str(broken),
        "mtls_upstream_private_key_file": key,
        "mtls_upstream_client_ca_file": os.path.join(PKI, "ca.pem"),
    }})
    files_before = fingerprint_of_files(upstream)
    pid_before = upstream.run("cat /run/nginx.pid").stdout

    rc, out, recap = run_playbook("mtls.nginx.site", "-i", extra, "--limit", name_of(upstream))

    assert rc != 0
    assert "%s: the PEM certificate is truncated" % broken in out, out[-3000:]
    assert recap[name_of(upstream)]["failed"] == 1 and recap[name_of(upstream)]["changed"] == 0
    assert fingerprint_of_files(upstream) == files_before
    assert upstream.run("cat /run/nginx.pid").stdout == pid_before
    assert curl(proxy, "http://127.0.0.1:8080/").status == 200
    digest = hashlib.sha256(good_key).hexdigest()
    assert digest not in out


def test_sslyze_finds_the_upstream_compliant_with_mozilla_intermediate(upstream, tmp_path):
    sslyze = os.environ.get("MTLS_SSLYZE", "")
    assert os.access(sslyze, os.X_OK), "sslyze not found at %r; scripts/setup installs it" % sslyze
    # sslyze presents a client certificate so that nginx lets every scan complete quickly.
    cert, key = make_client(PKI, "sslyze")
    (tmp_path / "client.pem").write_bytes(cert)
    (tmp_path / "client.key").write_bytes(key)
    target = "orders.internal:8443{%s}" % upstream.interface("eth0").addresses[0]
    done = subprocess.run(
        [sslyze, "--mozilla_config=intermediate", "--certinfo_ca_file", os.path.join(PKI, "ca.pem"),
         "--cert", str(tmp_path / "client.pem"), "--key", str(tmp_path / "client.key"), target],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, timeout=300)
    # sslyze also exits 0 when it cannot connect, so the verdict line is what counts.
    assert done.returncode == 0, done.stdout
    assert "orders.internal:8443: OK - Compliant." in done.stdout, done.stdout


def test_proxy_expecting_a_name_the_upstreams_lack_fails_before_any_change(proxy, tmp_path):
    extra = extra_inventory(tmp_path, hosts={name_of(proxy): {"mtls_proxy_upstream_name": "nomatch.internal"}})
    files_before = fingerprint_of_files(proxy)

    rc, out, recap = run_playbook("mtls.nginx.site", "-i", extra, "--limit", name_of(proxy))

    assert rc != 0
    assert "the proxy expects the name nomatch.internal" in out, out[-3000:]
    assert recap[name_of(proxy)]["failed"] == 1 and recap[name_of(proxy)]["changed"] == 0
    assert fingerprint_of_files(proxy) == files_before
    assert curl(proxy, "http://127.0.0.1:8080/").status == 200


def test_config_that_fails_nginx_t_never_goes_live(proxy, upstream, tmp_path):
    # Valid for the argument specs, refused by nginx: an unknown key exchange group.
    extra = extra_inventory(tmp_path, hosts={name_of(upstream): {"mtls_upstream_ssl_ecdh_curve": ["no-such-curve"]}})
    dropin = "/etc/nginx/conf.d/mtls-upstream.conf"
    before = upstream.file(dropin).content_string
    pid_before = upstream.run("cat /run/nginx.pid").stdout

    rc, out, recap = run_playbook("mtls.nginx.site", "-i", extra, "--limit", name_of(upstream))

    assert rc != 0
    assert "failed to validate" in out and "no-such-curve" in out, out[-3000:]
    assert recap[name_of(upstream)]["failed"] == 1
    assert upstream.file(dropin).content_string == before
    assert "no-such-curve" not in upstream.run("nginx -T 2>/dev/null").stdout
    assert upstream.run("cat /run/nginx.pid").stdout == pid_before
    assert curl(proxy, "http://127.0.0.1:8080/").status == 200


def test_expired_crl_in_the_inventory_fails_before_any_change(proxy, upstream, tmp_path):
    ca = _load_ca(PKI)
    expired = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
               .last_update(NOW - 10 * DAY).next_update(NOW - DAY).sign(ca.key, hashes.SHA256()))
    extra = serving_from_files(
        tmp_path, upstream, mtls_upstream_client_ca_file=os.path.join(PKI, "ca.pem"),
        mtls_upstream_crl_file=write(tmp_path, "expired.crl", expired.public_bytes(serialization.Encoding.PEM)))
    files_before = fingerprint_of_files(upstream)

    rc, out, recap = run_playbook("mtls.nginx.site", "-i", extra, "--limit", name_of(upstream))

    assert rc != 0
    assert "%s: CRL of CN=mtls.nginx CA expired" % (tmp_path / "expired.crl") in out, out[-3000:]
    # The certificate and key passed their check: the CRL alone stopped the run.
    assert "orders.pem:" not in out and "orders.key:" not in out, out[-3000:]
    assert recap[name_of(upstream)]["failed"] == 1 and recap[name_of(upstream)]["changed"] == 0
    assert fingerprint_of_files(upstream) == files_before
    assert curl(proxy, "http://127.0.0.1:8080/").status == 200
