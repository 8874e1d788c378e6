"""The walking skeleton: a request crosses both tiers over mTLS; what must be refused is."""

from mtls_testing import PROXY_PKI, UPSTREAM_PKI, curl


def test_request_through_proxy_reaches_backend_with_verified_identity(proxy):
    response = curl(proxy, "http://127.0.0.1:8080/hello")
    assert response.status == 200
    seen = response.json()["headers"]
    assert seen["X-Client-Verify"] == "SUCCESS"
    assert seen["X-Client-DN"] == "CN=" + proxy.backend.get_hostname()
    assert "BEGIN%20CERTIFICATE" in seen["X-Client-Cert"]


def test_upstream_refuses_a_request_without_client_certificate(proxy, upstream):
    name = upstream.backend.get_hostname()
    response = curl(proxy, "https://%s:8443/" % name, "--cacert", PROXY_PKI + "/upstream-ca.pem")
    assert response.status == 400
    assert response.json() == {"error": "client_certificate_refused", "reason": "no client certificate was sent"}


def test_forged_identity_from_a_local_client_never_reaches_backend(proxy):
    response = curl(proxy, "http://127.0.0.1:8080/", "-H", "X-Client-DN: CN=admin",
                    "-H", "X-Client-Verify: SUCCESS-forged", "-H", "X-SSL-Client-Cert: forged")
    seen = response.json()["headers"]
    assert seen["X-Client-DN"] == "CN=" + proxy.backend.get_hostname()
    assert seen["X-Client-Verify"] == "SUCCESS"
    assert "X-SSL-Client-Cert" not in seen


def test_forged_identity_sent_straight_to_upstream_is_overwritten(proxy, upstream):
    name = upstream.backend.get_hostname()
    response = curl(proxy, "https://%s:8443/" % name, "--cacert", PROXY_PKI + "/upstream-ca.pem",
                    "--cert", PROXY_PKI + "/client.pem", "--key", PROXY_PKI + "/client.key",
                    "-H", "X-Client-DN: CN=admin", "-H", "X-Client-Cert: forged")
    assert response.status == 200
    seen = response.json()["headers"]
    assert seen["X-Client-DN"] == "CN=" + proxy.backend.get_hostname()
    assert seen["X-Client-Cert"] != "forged"


def test_nginx_config_is_valid_and_warns_of_nothing_on_every_host(proxy, upstream):
    for host in (proxy, upstream):
        result = host.run("nginx -t")
        assert result.rc == 0, result.stderr
        # nginx prints a warning at every config test and reload, into the error log too.
        assert "[warn]" not in result.stderr, result.stderr


def test_private_keys_are_root_only(proxy, upstream):
    for host, key in ((proxy, PROXY_PKI + "/client.key"), (upstream, UPSTREAM_PKI + "/server.key")):
        f = host.file(key)
        assert f.is_file
        assert f.mode == 0o600
        assert (f.user, f.group) == ("root", "root")
        directory = host.file(key.rsplit("/", 1)[0])
        assert directory.mode & 0o007 == 0


def test_distribution_config_is_untouched(proxy, upstream):
    for host in (proxy, upstream):
        assert host.run("dpkg --verify nginx-common").stdout == ""
        assert host.file("/etc/nginx/sites-enabled/default").exists
