"""The key-stays-home flow: keys exist only on their hosts, the certificates they carry work in
real handshakes, and a changed name in the inventory reissues a certificate and reloads nginx
(with the main playbook, mtls.nginx.site, on the hosts the scenario's own playbook set up).

The tests run in file order; the last one changes the inventory."""

import hashlib
import os
import re
import stat
import tempfile

import pytest
from mtls_testing import EPHEMERAL, PKI, PROXY_PKI, UPSTREAM_PKI, curl, extra_inventory, probe, run_playbook

VVV_LOG = os.path.join(EPHEMERAL, "ansible-vvv.log")
# Where a key could have landed on the controller: the PKI directory (inside the ephemeral
# directory), Ansible's own temporary and cache directories, and the temporary directory.
CONTROLLER_DIRS = [EPHEMERAL, os.path.expanduser("~/.ansible"), tempfile.gettempdir()]


def _keys(proxy, upstream):
    """The private keys as their hosts hold them: {label: (sha256 hex, PEM body lines)}."""
    out = {}
    for host, path in ((upstream, UPSTREAM_PKI + "/server.key"), (proxy, PROXY_PKI + "/client.key")):
        pem = host.file(path).content
        body = [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]
        assert len(body) >= 2, "%s on %s is not a PEM key" % (path, host.backend.get_hostname())
        out["%s:%s" % (host.backend.get_hostname(), path)] = (hashlib.sha256(pem).hexdigest(), body)
    return out


def _controller_files():
    for top in CONTROLLER_DIRS:
        for root, dirs, files in os.walk(top):
            # Other engines' storage and virtualenvs hold no Ansible output.
            dirs[:] = [d for d in dirs if not d.startswith(("docker", ".venv")) and d != "site-packages"]
            for name in files:
                path = os.path.join(root, name)
                try:
                    # Regular files only: opening a FIFO (other tests make some) would block.
                    info = os.lstat(path)
                    if not stat.S_ISREG(info.st_mode) or info.st_size > 4 * 1024 * 1024:
                        continue
                    with open(path, "rb") as handle:
                        yield path, handle.read()
                except OSError:
                    continue


def test_keys_are_private_on_their_hosts(proxy, upstream):
    for host, path in ((upstream, UPSTREAM_PKI + "/server.key"), (proxy, PROXY_PKI + "/client.key")):
        key = host.file(path)
        assert key.mode == 0o600 and key.user == "root" and key.group == "root"


def test_controller_holds_the_ca_but_no_host_key(proxy, upstream):
    # The root, the intermediate that issues host certificates (mtls_pki_intermediate_common_name),
    # and the ledger of what they signed; no lock is left behind.
    assert sorted(os.listdir(PKI)) == ["ca.crl", "ca.key", "ca.pem", "intermediate-chain.pem", "intermediate.crl",
                                       "intermediate.key", "intermediate.pem", "ledger.json"]
    keys = _keys(proxy, upstream)
    searched = 0
    for path, data in _controller_files():
        searched += 1
        digest = hashlib.sha256(data).hexdigest()
        for label, (key_digest, body) in keys.items():
            assert digest != key_digest, "%s is a copy of %s" % (path, label)
            # Any two consecutive base64 lines of the key would be a leak, however wrapped.
            assert body[0].encode() not in data and body[1].encode() not in data, \
                "%s holds part of %s" % (path, label)
    assert searched > 10


def test_no_key_or_its_digest_in_the_vvv_output(proxy, upstream):
    with open(VVV_LOG, encoding="utf-8", errors="replace") as handle:
        log = handle.read()
    # The log really is the -vvv output of the converge and idempotence runs, which made and
    # then checked the keys: connection details are printed only from -vvv on.
    assert "<mtls-keyhome-upstream> ESTABLISH DOCKER CONNECTION" in log
    assert log.count("TASK [mtls.nginx.pki : Ensure the private key on the host, and a CSR for it") >= 4
    assert "BEGIN CERTIFICATE REQUEST" in log  # the CSRs did travel, visibly
    for label, (digest, body) in _keys(proxy, upstream).items():
        assert digest not in log.lower(), "SHA-256 of %s appears in the output" % label
        for line in body:
            assert line not in log, "a line of %s appears in the output" % label
    assert "PRIVATE KEY-----" not in log


def _probe_upstream(proxy, upstream, client=PROXY_PKI + "/client-chain.pem", client_key=PROXY_PKI + "/client.key",
                    **args):
    """mtls.nginx.tls_probe from the proxy host to the upstream host's mTLS site, presenting the
    client certificate ``client`` (by default the proxy host's own)."""
    name = upstream.backend.get_hostname()
    return probe(proxy, host=name, port=8443, server_name=name, ca_path=PROXY_PKI + "/upstream-ca.pem",
                 certificate_path=client, privatekey_path=client_key, http_path="/", **args)


def test_probe_from_proxy_with_its_certificate_succeeds(proxy, upstream):
    name = upstream.backend.get_hostname()
    result = _probe_upstream(proxy, upstream)
    assert not result.get("failed"), result.get("msg")
    assert result["accepted"] is True and result["http_status"] == 200
    assert result["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert result["peer_chain"][0]["subject"] == "CN=" + name


@pytest.fixture(scope="module")
def rogue_client(proxy):
    """A client certificate from a CA the upstream does not trust, made on the proxy host."""
    base = "/root/rogue"
    proxy.run_expect([0], "install -d -m 0700 " + base)
    ca = proxy.ansible("mtls.nginx.ca", "path=%s/ca.pem privatekey_path=%s/ca.key common_name='Rogue CA'"
                       % (base, base), check=False, become=False)
    assert not ca.get("failed"), ca.get("msg")
    leaf = proxy.ansible("mtls.nginx.certificate",
                         "path=%s/client.pem privatekey_path=%s/client.key ca_path=%s/ca.pem "
                         "ca_privatekey_path=%s/ca.key purpose=client common_name=%s"
                         % (base, base, base, base, proxy.backend.get_hostname()), check=False, become=False)
    assert not leaf.get("failed"), leaf.get("msg")
    return base


def test_probe_with_a_certificate_from_another_ca_reports_failure(proxy, upstream, rogue_client):
    result = _probe_upstream(proxy, upstream, rogue_client + "/client.pem", rogue_client + "/client.key",
                             expect="failure")
    assert not result.get("failed"), result.get("msg")
    assert result["accepted"] is False and result["http_status"] == 400
    assert "HTTP 400" in result["error"]
    # Asked to expect success, the module fails and says why.
    failing = _probe_upstream(proxy, upstream, rogue_client + "/client.pem", rogue_client + "/client.key")
    assert failing.get("failed") and "HTTP 400" in failing["msg"]


def _served_names(proxy, upstream):
    result = _probe_upstream(proxy, upstream)
    assert result["accepted"] is True, result.get("error")
    return result["peer_chain"][0]["subject_alt_names"]


def test_a_san_added_in_the_inventory_reissues_and_reloads_then_nothing_changes(proxy, upstream, tmp_path):
    name = upstream.backend.get_hostname()
    key_before = upstream.file(UPSTREAM_PKI + "/server.key").content
    assert "DNS:orders.internal" not in _served_names(proxy, upstream)

    # A second inventory source, as an operator would add host_vars.
    sans = ["DNS:" + name, "DNS:orders.internal"]
    args = ["-i", extra_inventory(tmp_path, hosts={name: {"mtls_upstream_subject_alt_names": sans}})]
    rc, out, recap = run_playbook("mtls.nginx.site", *args)
    assert rc == 0, out[-3000:]
    assert recap[name]["changed"] >= 2, out[-3000:]
    assert recap[proxy.backend.get_hostname()]["changed"] == 0, out[-3000:]
    install = re.search(r"TASK \[mtls\.nginx\.pki : Install the certificate next to its key; purpose server\]"
                        r"[^\n]*\n(\w+): \[%s\]" % re.escape(name), out)
    assert install and install.group(1) == "changed", out[-3000:]
    assert re.search(r"RUNNING HANDLER \[mtls\.nginx\.nginx_common : Reload nginx[^\]]*\][^\n]*\nchanged: \[%s\]"
                     % re.escape(name), out), out[-3000:]

    # nginx serves the new certificate, with the same key.
    assert "DNS:orders.internal" in _served_names(proxy, upstream)
    assert upstream.file(UPSTREAM_PKI + "/server.key").content == key_before

    rc, out, recap = run_playbook("mtls.nginx.site", *args)
    assert rc == 0, out[-3000:]
    assert all(counts["changed"] == 0 for counts in recap.values()), out[-3000:]
    # The reload left the other nginx site serving.
    assert curl(upstream, "http://127.0.0.1:8090/").body == "the existing site\n"
