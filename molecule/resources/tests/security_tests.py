"""Attacks that a single well-formed request cannot show, replayed against the deployed tiers:
identity over time (session resumption, revocation while connections stay open), identity
beside the operator's own configuration (another TLS site on the mTLS port, hostile http-level
header settings), and role variables that try to inject nginx configuration.

Run by the matrix scenario (see matrix-converge.yml for the operator's configuration the tiers
run beside); tests that depend on the upstream's nginx and OpenSSL run against each upstream
host (Debian 13 and 12). Tests that change the hosts put back what they change.
"""

import json
import os
import re
import shlex
import time

import pytest
from cryptography import x509
from matrix_tests import (IDENTITY_HEADERS, as_proxy, fingerprint_of_files, fingerprint_sha1, identity_of, known_fingerprints,
                          make_client, name_of, put_client, refused_reason, serving_from_files, straight_to, with_client,
                          without_lookup)
from mtls_testing import EPHEMERAL, PKI, PROXY_PKI, UPSTREAM_PKI, access_log, curl, extra_inventory, run_playbook
from pkifactory import write

DOOMED_PKI = "/etc/nginx/mtls/mtls-doomed"
OTHER_CA = os.path.join(EPHEMERAL, "other-ca")
SERVICE = "orders.internal"  # mtls_upstream_server_name in the matrix inventories
REQUEST = "GET /%s HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n"


def s_client(host, upstream, version, pki, path, session_out=None, session_in=None):
    """One request over a fresh TLS connection made by openssl, optionally saving or resuming
    a session; returns openssl's whole output (handshake summary and HTTP answer)."""
    # The service name, as the proxy tier sends it: SNI and Host both name the mTLS site.
    options = ["-connect", "%s:8443" % name_of(upstream), "-servername", SERVICE, "-" + version,
               "-cert", pki + "/client-chain.pem", "-key", pki + "/client.key",
               "-CAfile", pki + "/upstream-ca.pem", "-ign_eof"]
    if session_out:
        options += ["-sess_out", session_out]
    if session_in:
        options += ["-sess_in", session_in]
    return host.run("printf '%s' | timeout 10 openssl s_client %s 2>&1"
                    % (REQUEST % (path, SERVICE), " ".join(shlex.quote(o) for o in options))).stdout


def serial_of(host, path):
    return "%X" % x509.load_pem_x509_certificate(host.file(path).content).serial_number


# --- sessions and revocation ---------------------------------------------------------------------

@pytest.mark.parametrize("version", ["tls1_2", "tls1_3"])
def test_the_upstream_resumes_no_tls_session(proxy, upstream, version):
    # A resumed session carries the verify result of its first handshake: a CRL loaded since
    # would never be consulted for it.
    first = s_client(proxy, upstream, version, PROXY_PKI, "first", session_out="/root/resume-%s" % version)
    assert "HTTP/1.1 200" in first, first
    session = proxy.file("/root/resume-%s" % version)
    second = s_client(proxy, upstream, version, PROXY_PKI, "second",
                      session_in=session.path if session.exists else None)
    assert "HTTP/1.1 200" in second, second
    assert "Reused, " not in second and "New, " in second, second


@pytest.fixture(scope="module")
def revoked(proxy, upstreams, tmp_path_factory):
    """The documented revocation, run while the doomed service keeps upstream connections alive
    and holds saved TLS sessions: its client certificate and the first upstream's server
    certificate are added to mtls_pki_revoked_serials and mtls.nginx.site runs. Afterwards the
    inventory is put back and the site runs again."""
    first = upstreams[0]
    sessions = {}
    for version in ("tls1_2", "tls1_3"):
        sessions[version] = "/root/doomed-%s" % version
        answer = s_client(proxy, first, version, DOOMED_PKI, "before", session_out=sessions[version])
        assert "HTTP/1.1 200" in answer, answer
    # Warm the doomed service's kept-alive pool to both upstreams.
    for i in range(6):
        assert curl(proxy, "http://127.0.0.1:8084/warm/%d" % i).status == 200
    serials = ["7E57ED0001", serial_of(proxy, DOOMED_PKI + "/client.pem"),
               serial_of(first, UPSTREAM_PKI + "/server.pem")]
    main_identity = 'dn="CN=%s"' % name_of(proxy)
    before = access_log(first).count(main_identity)
    inventory = extra_inventory(tmp_path_factory.mktemp("revoke"), all_vars={"mtls_pki_revoked_serials": serials})
    rc, out = run_playbook("mtls.nginx.site", "-i", inventory)[:2]
    assert rc == 0, out[-3000:]
    # Straight after the run, before anything else: nothing may have been given time to expire.
    state = {
        "pool": [curl(proxy, "http://127.0.0.1:8084/after/%d" % i) for i in range(8)],
        "resumed": {v: s_client(proxy, first, v, DOOMED_PKI, "resumed",
                                session_in=path if proxy.file(path).exists else None)
                    for v, path in sessions.items()},
        "main": [curl(proxy, "http://127.0.0.1:8080/main/%d" % i) for i in range(8)],
        "first_log_lines": access_log(first).count(main_identity) - before,
        "proxy_error_log": proxy.file("/var/log/nginx/mtls-proxy.error.log").content_string,
    }
    yield state
    rc, out = run_playbook("mtls.nginx.site")[:2]
    assert rc == 0, out[-3000:]
    assert curl(proxy, "http://127.0.0.1:8084/restored").status == 200


def test_a_revoked_client_is_refused_through_the_kept_alive_proxy_pool(revoked):
    for response in revoked["pool"]:
        assert refused_reason(response) == "certificate revoked"


@pytest.mark.parametrize("version", ["tls1_2", "tls1_3"])
def test_a_revoked_client_cannot_resume_its_session(revoked, version):
    answer = revoked["resumed"][version]
    assert "Reused, " not in answer, answer
    assert "HTTP/1.1 400" in answer and "certificate revoked" in answer, answer


def test_an_upstream_with_a_revoked_certificate_gets_no_request(revoked):
    # proxy_ssl_crl: the proxy refuses the first upstream and fails over to the second.
    assert [r.status for r in revoked["main"]] == [200] * len(revoked["main"])
    assert "certificate revoked" in revoked["proxy_error_log"]
    assert revoked["first_log_lines"] == 0


# --- another TLS site on the mTLS port -------------------------------------------------------------

@pytest.fixture
def partnered(upstreams):
    """The upstream host whose mTLS port the operator's partner API shares (matrix-converge.yml)."""
    return upstreams[-1]


def _partner_client(proxy):
    cert, key = make_client(OTHER_CA, "partner-client")
    return put_client(proxy, "/root/partner", cert, key)


def test_a_partner_client_without_sni_is_verified_by_the_mtls_site(proxy, partnered):
    # No SNI (an address in the URL) and Host naming the mTLS site: the handshake must be this
    # site's, whose CA does not know the partner's client.
    address = partnered.interface("eth0").addresses[0]
    response = curl(proxy, "https://%s:8443/" % address, "-k", "-H", "Host: orders.internal", *_partner_client(proxy))
    assert response.status == 400, response.body
    assert "X-Client-Verify" not in response.body


def test_a_partner_client_naming_the_partner_site_cannot_reach_the_mtls_site(proxy, partnered):
    address = partnered.interface("eth0").addresses[0]
    response = curl(proxy, "https://api.internal:8443/", "-k", "--resolve", "api.internal:8443:" + address,
                    "-H", "Host: orders.internal", *_partner_client(proxy))
    assert response.status == 421, response.body


def test_the_partner_site_keeps_serving_its_own_clients(proxy, partnered):
    address = partnered.interface("eth0").addresses[0]
    response = curl(proxy, "https://api.internal:8443/", "-k", "--resolve", "api.internal:8443:" + address,
                    *_partner_client(proxy))
    assert response.status == 200
    assert response.body == "partner api: SUCCESS CN=partner-client\n"


def test_the_role_refuses_to_share_its_port_with_another_default_server(proxy, partnered, tmp_path):
    api = "/etc/nginx/conf.d/api.conf"
    original = partnered.file(api).content_string
    make_default = "sed -i 's/listen 8443 ssl;/listen 8443 ssl default_server;/' " + api
    partnered.run_expect([0], "cp -p %s /root/api.conf.orig && %s" % (api, make_default))
    try:
        dropin_before = partnered.file("/etc/nginx/conf.d/mtls-upstream.conf").content_string
        # Any change to the rendered config has it tested with the whole configuration.
        inventory = extra_inventory(tmp_path, hosts={name_of(partnered): {"mtls_upstream_backend_keepalive": 17}})
        rc, out = run_playbook("mtls.nginx.site", "-i", inventory, "--limit", name_of(partnered))[:2]
        assert rc != 0
        assert "duplicate default server" in out and "the mTLS upstream must be (mtls_upstream_default_server)" in out, \
            out[-3000:]
        assert partnered.file("/etc/nginx/conf.d/mtls-upstream.conf").content_string == dropin_before
    finally:
        partnered.run_expect([0], "cp -p /root/api.conf.orig " + api)
    assert partnered.file(api).content_string == original
    assert as_proxy(proxy, partnered).status == 200


# --- the proxy tier is no open relay -----------------------------------------------------------------

def test_the_proxy_refuses_neighbours_whatever_it_listens_on(proxy, upstream):
    # mtls_proxy_listen includes "8180" (every address); the neighbour is not a local client.
    response = curl(upstream, "http://%s:8180/relay" % name_of(proxy))
    assert response.status == 403
    assert response.json()["error"] == "forbidden"
    assert "backend" not in response.body
    assert curl(proxy, "http://127.0.0.1:8180/local").status == 200


def test_the_proxy_serves_neighbours_only_from_its_allowed_sources(proxy, upstream):
    # The reporting service lists the scenario's network in mtls_proxy_allowed_sources.
    response = curl(upstream, "http://%s:8183/allowed" % name_of(proxy))
    assert response.status == 200
    assert response.json()["headers"]["X-Client-DN"] == "CN=reporting." + name_of(proxy)


# --- headers a client sends ----------------------------------------------------------------------------

IDENTITY = {"x-client-cert", "x-client-verify", "x-client-dn", "x-client-serial", "x-client-fingerprint",
            "x-client-issuer-dn"}


def _identity_names(seen):
    return sorted(name for name in seen if name.lower().replace("_", "-") in IDENTITY)


@pytest.mark.parametrize("route", ["straight", "through the proxy"])
def test_underscore_spellings_of_identity_headers_never_reach_the_backend(proxy, each_upstream, route):
    # The operator's nginx.conf sets underscores_in_headers on and ignore_invalid_headers off.
    forged = ["-H", "X_Client_DN: CN=forged", "-H", "X_Client_Verify: SUCCESS", "-H", "X-Client_DN: CN=forged",
              "-H", "x_client_fingerprint: 00"]
    if route == "straight":
        seen = as_proxy(proxy, each_upstream, *forged).json()["headers"]
    else:
        seen = curl(proxy, "http://127.0.0.1:8080/", *forged).json()["headers"]
    assert _identity_names(seen) == sorted(["X-Client-Cert", "X-Client-Verify", "X-Client-DN", "X-Client-Serial",
                                            "X-Client-Fingerprint", "X-Client-Issuer-DN"]), seen
    assert seen["X-Client-DN"] == "CN=" + name_of(proxy)
    assert "forged" not in json.dumps(seen)


def test_identity_fields_left_out_are_sent_empty_whatever_the_client_sent(proxy, upstream):
    # mtls-lean on port 8444 of the first upstream host: mtls_upstream_identity_fields [verify, subject_dn].
    forged = {"X-Client-Cert": "forged", "X-Client-Serial": "forged", "X-Client-Fingerprint": "forged",
              "X-Client-Issuer-DN": "CN=forged CA", "X-Client-DN": "CN=forged"}
    options = [o for name, value in forged.items() for o in ("-H", "%s: %s" % (name, value))]
    response = curl(proxy, "https://%s:8444/" % name_of(upstream), "--cacert", PROXY_PKI + "/upstream-ca.pem",
                    "--cert", PROXY_PKI + "/client-chain.pem", "--key", PROXY_PKI + "/client.key", *options)
    assert response.status == 200, response.body
    seen = response.json()["headers"]
    assert _identity_names(seen) == ["X-Client-DN", "X-Client-Verify"], seen
    assert seen["X-Client-DN"] == "CN=" + name_of(proxy) and seen["X-Client-Verify"] == "SUCCESS"
    assert "forged" not in json.dumps(seen)


def test_forwarding_and_foreign_identity_headers_from_clients_never_reach_the_backend(proxy, each_upstream):
    sent = {"X-Real-IP": "203.0.113.7", "Forwarded": "for=203.0.113.7;host=evil.example",
            "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Host": "evil.example", "X-Original-URL": "/admin/",
            "X-Client-Issuer-DN": "CN=forged CA", "SSL-Client-Verify": "SUCCESS", "Client-Cert": ":Zm9yZ2Vk:",
            "X-Forwarded-Tls-Client-Cert": "forged", "X-ARR-ClientCert": "forged"}
    sent.update(FOREIGN_IDENTITY)
    options = [o for name, value in sent.items() for o in ("-H", "%s: %s" % (name, value))]
    seen = as_proxy(proxy, each_upstream, *options).json()["headers"]
    peer = proxy.interface("eth0").addresses[0]
    assert seen["X-Forwarded-For"] == peer and seen["X-Real-IP"] == peer
    assert seen["X-Forwarded-Proto"] == "https"
    assert seen["X-Client-Issuer-DN"] == "CN=mtls.nginx CA"
    for name in ("Forwarded", "X-Forwarded-Host", "X-Original-URL", "SSL-Client-Verify", "Client-Cert",
                 "X-Forwarded-Tls-Client-Cert", "X-ARR-ClientCert") + tuple(FOREIGN_IDENTITY):
        assert name not in seen, (name, seen)
    assert "203.0.113.7" not in json.dumps(seen) and "forged" not in json.dumps(seen)


# Identity headers of other products and conventions, which no list of the collection names one by
# one: the tiers clear them by a rule (a vendor's prefix, "Client-", a certificate field).
FOREIGN_IDENTITY = {"X-Client-Cert-Chain": "forged", "SSL-Client-Subject-DN": "CN=forged",
                    "X-Amzn-Mtls-Clientcert": "forged", "X-Client-Subject": "CN=forged",
                    "X-SSL-Client-S-DN": "CN=forged", "X-MTLS-Client-SAN": "URI:forged"}


def test_foreign_identity_headers_never_reach_the_backend_through_the_proxy(proxy):
    options = [o for name, value in FOREIGN_IDENTITY.items() for o in ("-H", "%s: %s" % (name, value))]
    response = curl(proxy, "http://127.0.0.1:8080/", *options)
    assert response.status == 200, response.body
    seen = response.json()["headers"]
    assert not set(FOREIGN_IDENTITY) & set(seen), seen
    assert "forged" not in json.dumps(seen)


def test_a_forwarded_certificate_needs_the_front_ends_verified_identity_not_only_its_address(proxy, upstream):
    """From the trusted front-end network (the proxy host) but with another certificate of the same
    CA: the front end's certificate header is dropped, the caller's own identity still reaches."""
    cert, key = make_client(PKI, "not-the-front-end")
    response = with_client(proxy, upstream, "not-the-front-end", cert, key)
    assert response.status == 200, response.body
    plain = response.json()["headers"]
    assert plain["X-Client-DN"] == "CN=not-the-front-end"
    response = straight_to(proxy, upstream, *put_client(proxy, "/root/matrix/not-the-front-end", cert, key),
                           "-H", "X-SSL-Client-Cert: cert-of-someone-else")
    seen = response.json()["headers"]
    assert seen["X-Client-DN"] == "CN=not-the-front-end"
    assert "X-Original-Client-Cert" not in seen and "cert-of-someone-else" not in json.dumps(seen)


# --- allow-lists: exact identities, every spelling of a path ---------------------------------------

@pytest.mark.parametrize("path", ["/ADMIN/", "/Admin/x", "/admin;/", "/admin%3B/", "/admin%20/", "//admin/",
                                  "/admin", "/admin./users", "/ADMIN;jsessionid=1/users"])
def test_every_spelling_of_an_allow_listed_path_is_guarded(proxy, path):
    response = curl(proxy, "http://127.0.0.1:8080" + path, "--path-as-is")
    assert response.status == 403, (path, response.body)
    assert "backend" not in response.body


def test_allow_listed_spellings_still_reach_the_allowed_identity_and_others_are_unguarded(proxy):
    assert curl(proxy, "http://127.0.0.1:8080/BILLING;v=2/invoices", "--path-as-is").status == 200
    assert curl(proxy, "http://127.0.0.1:8083/Billing/invoices").status == 403
    for path in ("/administrator/", "/billings/", "/"):
        assert curl(proxy, "http://127.0.0.1:8083" + path).status == 200, path


def test_a_subject_allow_list_compares_exactly(proxy, upstream):
    # allowed_subjects: ["CN=ops-console"]; nginx's map alone would also admit other cases.
    for cn in ("OPS-CONSOLE", "Ops-Console", "ops-console "):
        cert, key = make_client(PKI, cn)
        assert with_client(proxy, upstream, "case", cert, key, path="/admin/").status == 403, cn
    cert, key = make_client(PKI, "ops-console")
    assert with_client(proxy, upstream, "exact", cert, key, path="/admin/").status == 200


# --- role variables that try to inject nginx configuration -----------------------------------------

HOSTILE_UPSTREAM = {
    "mtls_upstream_backend_url": "http://127.0.0.1:8000;server evil.invalid:8000",
    "mtls_upstream_server_name": "orders.internal; location /x { return 200; }",
    "mtls_upstream_subject_alt_names": ["DNS:orders.internal", "DNS:a; {"],
    "mtls_upstream_listen": ["8443 default_server; listen 9999"],
    "mtls_upstream_locations": [{"path": "/x { return 200; } location /y"},
                                {"path": "/admin/", "allowed_subjects": ["~.*"]},
                                {"path": "/ops/", "allowed_subjects": ["CN=a\nCN=b"]}],
    "mtls_upstream_identity_headers": {"certificate": "X-Client-Cert", "verify": "X-Client-Verify",
                                       "subject_dn": "X-Client DN", "serial": "X-Client-Serial",
                                       "fingerprint": "X-Client-Fingerprint"},
    "mtls_upstream_cleared_headers": ["X-SSL-Cert;"],
    "mtls_upstream_ssl_ciphers": ["HIGH; ssl_verify_client off"],
    "mtls_upstream_ssl_ecdh_curve": ["X25519;"],
    "mtls_upstream_config_name": "../../tmp/x",
}
HOSTILE_PROXY = {
    "mtls_proxy_upstream_servers": ["orders.internal:8443; server evil.invalid:8443"],
    "mtls_proxy_upstream_name": "orders.internal; proxy_ssl_verify off",
    "mtls_proxy_listen": ["0.0.0.0:8080; allow all"],
    "mtls_proxy_allowed_sources": ["all"],
    "mtls_proxy_common_name": "x\"; }",
    "mtls_proxy_connect_timeout": "5s; proxy_ssl_verify off",
    "mtls_proxy_subject_alt_names": ["URI:spiffe://x y"],
}
# Each hostile value, by the name the refusal must give it.
REFUSED = ["mtls_upstream_backend_url", "mtls_upstream_server_name", "mtls_upstream_subject_alt_names[1]",
           "mtls_upstream_listen[0]", "mtls_upstream_locations[0].path",
           "mtls_upstream_locations[1].allowed_subjects[0]", "mtls_upstream_locations[2].allowed_subjects[0]",
           "mtls_upstream_identity_headers.subject_dn", "mtls_upstream_cleared_headers[0]",
           "mtls_upstream_ssl_ciphers[0]", "mtls_upstream_ssl_ecdh_curve[0]", "mtls_upstream_config_name",
           "mtls_proxy_upstream_servers[0]", "mtls_proxy_upstream_name", "mtls_proxy_listen[0]",
           "mtls_proxy_allowed_sources[0]", "mtls_proxy_common_name", "mtls_proxy_connect_timeout",
           "mtls_proxy_subject_alt_names[0]"]


@pytest.mark.parametrize("tier", ["upstream", "proxy"])
def test_hostile_role_variables_are_refused_before_any_change(proxy, upstream, tier, tmp_path):
    assert len(REFUSED) >= 15
    host, hostile = {"upstream": (upstream, HOSTILE_UPSTREAM), "proxy": (proxy, HOSTILE_PROXY)}[tier]
    before = fingerprint_of_files(host)

    rc, out, recap = run_playbook("mtls.nginx.site", "-i", extra_inventory(tmp_path, hosts={name_of(host): hostile}),
                                  "--limit", name_of(host))

    assert rc != 0
    missing = [name for name in REFUSED if name.startswith("mtls_%s_" % tier)
               and not re.search(re.escape(name) + r": ", out)]
    assert not missing, "not named in the refusal: %s\n%s" % (missing, out[-6000:])
    assert recap[name_of(host)]["failed"] == 1 and recap[name_of(host)]["changed"] == 0, recap
    assert fingerprint_of_files(host) == before
    assert "evil.invalid" not in host.run("nginx -T 2>/dev/null").stdout
    assert curl(proxy, "http://127.0.0.1:8080/").status == 200


# --- files that would break nginx, and the run that repairs a host ---------------------------------

def test_a_ca_bundle_with_a_truncated_block_is_refused_before_any_change(proxy, upstream, tmp_path):
    with open(os.path.join(PKI, "ca.pem"), "rb") as handle:
        ca = handle.read()
    with open(os.path.join(OTHER_CA, "ca.pem"), "rb") as handle:
        other = handle.read()
    bundle = ca + other[: len(other) * 2 // 3]  # the last block loses its END line
    inventory = serving_from_files(tmp_path, upstream,
                                   mtls_upstream_client_ca_file=write(tmp_path, "clients-ca.pem", bundle))
    before = fingerprint_of_files(upstream)

    rc, out, recap = run_playbook("mtls.nginx.site", "-i", inventory, "--limit", name_of(upstream))

    assert rc != 0
    assert re.search(re.escape(str(tmp_path / "clients-ca.pem")) + r": PEM block 2 .*truncated", out), out[-3000:]
    assert recap[name_of(upstream)]["failed"] == 1 and recap[name_of(upstream)]["changed"] == 0
    assert fingerprint_of_files(upstream) == before


def test_a_run_with_good_inputs_repairs_an_upstream_whose_nginx_stopped_on_a_broken_file(proxy, upstream):
    ca_file = UPSTREAM_PKI + "/client-ca.pem"
    upstream.run_expect([0], "head -n 3 %s > /root/broken-ca.pem && cp /root/broken-ca.pem %s" % (ca_file, ca_file))
    upstream.run("systemctl restart nginx")
    try:
        assert not upstream.service("nginx").is_running, "nginx started on a truncated CA bundle"
    finally:
        rc, out = run_playbook("mtls.nginx.site", "--limit", name_of(upstream))[:2]
    assert rc == 0, out[-3000:]
    assert upstream.service("nginx").is_running
    assert as_proxy(proxy, upstream).status == 200


def test_a_new_key_passphrase_re_encrypts_the_key_and_nginx_restarts_with_it(proxy, upstreams, tmp_path):
    second = upstreams[1]  # its key is encrypted (mtls_upstream_private_key_passphrase)
    key_before = second.file(UPSTREAM_PKI + "/server.key").content_string
    inventory = extra_inventory(tmp_path, hosts={name_of(second): {
        "mtls_upstream_private_key_passphrase": "a2-new-passphrase"}})
    try:
        rc, out = run_playbook("mtls.nginx.site", "-i", inventory, "--limit", name_of(second))[:2]
        assert rc == 0, out[-3000:]
        assert "a2-new-passphrase" not in out
        assert second.file(UPSTREAM_PKI + "/server.pass").content_string == "a2-new-passphrase\n"
        key_after = second.file(UPSTREAM_PKI + "/server.key").content_string
        assert key_after != key_before and key_after.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        # A restart reads key and password file afresh: they must match.
        second.run_expect([0], "systemctl restart nginx")
        assert as_proxy(proxy, second).status == 200
    finally:
        rc, out = run_playbook("mtls.nginx.site", "--limit", name_of(second))[:2]
    assert rc == 0, out[-3000:]
    assert second.file(UPSTREAM_PKI + "/server.pass").content_string == "a2-passphrase-for-tests\n"
    second.run_expect([0], "systemctl restart nginx")
    assert as_proxy(proxy, second).status == 200


# --- retries and restarts: the backend executes each request at most once ---------------------------
# The echo backend writes "executed <method> <path> <X-Request-ID>" to its journal when it has read
# a request; ?sleep=S holds the answer, ?header_bytes=N adds a header of N bytes to it.

def _executions(upstreams, token):
    """Every execution of a request whose path holds ``token``, as (host, method, request ID)."""
    found = []
    for host in upstreams:
        out = host.run("journalctl -u echo-backend --no-pager -o cat | grep -F -- %s || true" % shlex.quote(token))
        for line in out.stdout.splitlines():
            match = re.match(r"^executed (\S+) (\S+) (\S+)$", line.strip())
            if match and token in match.group(2):
                found.append((name_of(host), match.group(1), match.group(3)))
    return found


def _executing(upstreams, token, timeout=15):
    """The upstream host whose backend is executing the request of ``token``, once it started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _executions(upstreams, token)
        if found:
            return next(host for host in upstreams if name_of(host) == found[0][0])
        time.sleep(0.3)
    raise AssertionError("no backend received the request %s" % token)


def _start(proxy, token, url, *options):
    """A request through the proxy tier, sent in the background on the proxy host."""
    base = "/tmp/once-" + token
    command = "curl -sS --max-time 90 -o %s.body -w '%%{http_code}' %s %s > %s.status 2> %s.err; touch %s.done" % (
        base, " ".join(shlex.quote(o) for o in options), shlex.quote(url), base, base, base)
    proxy.run_expect([0], "setsid sh -c %s > /dev/null 2>&1 < /dev/null &" % shlex.quote(command))
    return base


def _finished(proxy, base, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proxy.file(base + ".done").exists:
            status = proxy.file(base + ".status").content_string.strip()
            return int(status or 0), proxy.file(base + ".body").content_string
        time.sleep(0.5)
    raise AssertionError("the request %s did not end" % base)


def _token(label):
    return "%s-%d" % (label, time.time_ns())


def test_an_answer_the_upstream_tier_accepted_passes_the_proxy_and_a_post_runs_once(proxy, upstreams):
    """Headers that fill the upstream tier's buffer (8k) but for the bytes the upstream tier adds:
    the proxy's buffer is larger, so the answer passes and nothing is retried."""
    token = _token("big-header")
    response = curl(proxy, "http://127.0.0.1:8080/%s?header_bytes=7900" % token, "-X", "POST", "-d", "pay=1")
    assert response.status == 200, response.body
    time.sleep(1)
    assert len(_executions(upstreams, token)) == 1


def test_an_answer_too_big_for_the_upstream_tier_is_a_clear_error_and_a_post_runs_once(proxy, upstreams):
    token = _token("too-big-header")
    response = curl(proxy, "http://127.0.0.1:8080/%s?header_bytes=12000" % token, "-X", "POST", "-d", "pay=1")
    assert response.status == 502, response.body
    time.sleep(1)
    assert len(_executions(upstreams, token)) == 1


def test_a_post_whose_upstream_worker_is_killed_runs_once_and_gets_a_clear_error(proxy, upstreams):
    token = _token("killed-post")
    base = _start(proxy, token, "http://127.0.0.1:8080/%s?sleep=6" % token, "-X", "POST", "-d", "pay=1")
    victim = _executing(upstreams, token)
    victim.run_expect([0], "pkill -KILL -f '^nginx: worker process'")
    status, body = _finished(proxy, base)
    assert status == 502, body
    assert json.loads(body)["error"] == "bad_gateway", body
    time.sleep(7)  # the retry, if any, would have reached a backend by now
    assert len(_executions(upstreams, token)) == 1, _executions(upstreams, token)


def test_a_get_whose_upstream_worker_is_killed_is_retried_with_the_same_request_id(proxy, upstreams):
    token = _token("killed-get")
    base = _start(proxy, token, "http://127.0.0.1:8080/%s?sleep=4" % token)
    victim = _executing(upstreams, token)
    victim.run_expect([0], "pkill -KILL -f '^nginx: worker process'")
    status, body = _finished(proxy, base)
    assert status == 200, body
    executions = _executions(upstreams, token)
    assert len(executions) == 2, executions
    ids = {request_id for _host, _method, request_id in executions}
    assert len(ids) == 1 and re.fullmatch(r"[0-9a-f]{32}", ids.pop()), executions


def test_a_restart_of_both_tiers_during_an_8_second_post_lets_it_finish_once(proxy, upstreams):
    token = _token("restart-post")
    base = _start(proxy, token, "http://127.0.0.1:8080/%s?sleep=8" % token, "-X", "POST", "-d", "pay=1")
    serving = _executing(upstreams, token)
    for host in (serving, proxy):
        host.run_expect([0], "systemctl --no-block restart nginx")
    status, body = _finished(proxy, base)
    assert status == 200, body
    assert json.loads(body)["path"].startswith("/" + token)
    assert len(_executions(upstreams, token)) == 1
    for host in (serving, proxy):
        deadline = time.monotonic() + 60
        while host.run("systemctl is-active nginx").stdout.strip() != "active" and time.monotonic() < deadline:
            time.sleep(1)
        assert host.run("systemctl is-active nginx").stdout.strip() == "active", name_of(host)
    assert curl(proxy, "http://127.0.0.1:8080/after-restart").status == 200


# --- identity computed once for known callers, the same bytes as nginx's own --------------------

def test_known_callers_get_the_same_identity_headers_byte_for_byte_as_nginx_computes(proxy, upstreams):
    """The proxy host's certificate is a known caller of every upstream host (its identity values
    are in the file the upstream's config includes, looked up by fingerprint); a certificate made
    now is not. With the lookup and without it (nginx computing every value), every identity
    header the backend receives is the same, for both."""
    upstream = upstreams[0]
    fingerprint = fingerprint_sha1(proxy, "%s/client.pem" % PROXY_PKI)
    for each in upstreams:
        assert fingerprint in known_fingerprints(each), name_of(each)
    cert, key = make_client(PKI, "not-a-known-caller")

    def observed():
        return {"known, through the proxy": identity_of(curl(proxy, "http://127.0.0.1:8080/identity")),
                "known, straight": identity_of(as_proxy(proxy, upstream)),
                "unknown": identity_of(with_client(proxy, upstream, "not-a-known-caller", cert, key))}

    looked_up = observed()
    assert looked_up["known, straight"]["X-Client-DN"] == "CN=" + name_of(proxy)
    assert looked_up["known, straight"]["X-Client-Fingerprint"] == fingerprint
    computed = without_lookup(upstreams, observed)
    assert fingerprint in known_fingerprints(upstream)
    for case, headers in computed.items():
        for name in IDENTITY_HEADERS:
            assert looked_up[case][name] == headers[name], (case, name, looked_up[case][name], headers[name])
