"""tls_probe logic against a real TLS server on loopback that demands a client certificate."""

import socket
import ssl
import threading

import pytest

from pkifactory import issue, write
from ansible_collections.mtls.nginx.plugins.module_utils._probe import probe


@pytest.fixture
def server(tmp_path):
    ca = issue("Probe CA", ca=True)
    srv = issue("srv", issuer=ca, eku=("server",), sans=("DNS:srv.test",))
    files = {
        "ca": write(tmp_path, "ca.pem", ca.pem), "srv": write(tmp_path, "srv.pem", srv.pem),
        "srv_key": write(tmp_path, "srv.key", srv.key_pem()), "dir": tmp_path, "ca_obj": ca,
    }
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files["srv"], files["srv_key"])
    ctx.load_verify_locations(files["ca"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn = listener.accept()[0]
            except (socket.timeout, OSError):
                continue
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(4096)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    files["port"] = listener.getsockname()[1]
    yield files
    stop.set()
    listener.close()
    thread.join(timeout=6)


def client(server, ca=None, name="client"):
    cert = issue(name, issuer=ca or server["ca_obj"], eku=("client",), sans=())
    return (write(server["dir"], name + ".pem", cert.pem), write(server["dir"], name + ".key", cert.key_pem()))


def run(server, **kw):
    args = dict(host="127.0.0.1", port=server["port"], server_name="srv.test", ca_path=server["ca"], http_path="/")
    args.update(kw)
    return probe(**args)


def test_valid_client_certificate_is_accepted(server):
    cert, key = client(server)
    result = run(server, certificate_path=cert, privatekey_path=key)
    assert result["accepted"] and result["error"] is None
    assert result["http_status"] == 200
    assert result["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert result["peer_chain"][0]["subject"] == "CN=srv"


def test_certificate_from_another_ca_is_refused(server):
    cert, key = client(server, ca=issue("Stranger CA", ca=True), name="stranger")
    result = run(server, certificate_path=cert, privatekey_path=key)
    assert not result["accepted"]
    assert "TLS error" in result["error"]


def test_no_client_certificate_is_refused(server):
    result = run(server)
    assert not result["accepted"]


def test_wrong_server_name_is_reported(server):
    cert, key = client(server)
    result = run(server, certificate_path=cert, privatekey_path=key, server_name="other.test")
    assert not result["handshake"]
    assert "server certificate not accepted" in result["error"] and "other.test" in result["error"]


def test_untrusted_server_is_reported(server, tmp_path):
    other = write(tmp_path, "other-ca.pem", issue("Other CA", ca=True).pem)
    result = run(server, ca_path=other)
    assert not result["handshake"]
    assert "server certificate not accepted" in result["error"]


def test_closed_port_is_reported(server):
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    result = run(server, port=port)
    assert not result["accepted"] and "connection to 127.0.0.1" in result["error"]
