# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real TLS handshake, optionally presenting a client certificate: ``openssl s_client
-cert -key -CAfile -servername`` with a result a playbook can read."""

import socket
import ssl

from ._crypto import describe

try:
    from cryptography import x509
except ImportError:  # reported by require_cryptography()
    pass


_PEER_FIELDS = ("subject", "issuer", "serial", "fingerprint_sha256", "not_after", "days_remaining", "subject_alt_names")


def _chain_of(tls):
    """The peer's certificates as sent; Python before 3.13 exposes only the leaf."""
    # Python 3.13+ gives the whole chain as DER bytes.
    getter = getattr(tls, "get_unverified_chain", None)
    ders = list(getter() or []) if getter is not None else []
    if not ders:
        leaf = tls.getpeercert(binary_form=True)
        ders = [leaf] if leaf else []
    out = []
    for der in ders:
        info = describe(x509.load_der_x509_certificate(der))
        out.append({k: info[k] for k in _PEER_FIELDS})
    return out


def probe(host, port, server_name=None, ca_path=None, certificate_path=None, privatekey_path=None,
          verify=True, http_path=None, timeout=10.0):
    result = {"handshake": False, "accepted": False, "error": None, "protocol": None, "cipher": None,
              "peer_chain": [], "http_status": None}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if verify:
        if ca_path:
            ctx.load_verify_locations(cafile=ca_path)
        else:
            ctx.load_default_certs()
        ctx.check_hostname = bool(server_name)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if certificate_path:
        ctx.load_cert_chain(certificate_path, privatekey_path)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_name or None) as tls:
                result["handshake"] = True
                result["protocol"] = tls.version()
                result["cipher"] = tls.cipher()[0]
                result["peer_chain"] = _chain_of(tls)
                if http_path is not None:
                    result["http_status"] = _http_status(tls, server_name or host, http_path)
                else:
                    _await_rejection(tls)
    except ssl.SSLCertVerificationError as exc:
        result["error"] = "server certificate not accepted: %s" % (exc.verify_message or exc.reason)
    except ssl.SSLError as exc:
        # With TLS 1.3 a server's verdict on the client certificate arrives after the handshake.
        result["error"] = "TLS error: %s" % (exc.reason or exc)
    except (OSError, ValueError) as exc:
        result["error"] = "connection to %s:%s failed: %s" % (host, port, exc)
    if result["error"] is None:
        status = result["http_status"]
        result["accepted"] = status is None or status < 400
        if not result["accepted"]:
            result["error"] = "HTTP %s from %s (nginx answers 400 for a missing or refused client certificate)" % (status, host)
    return result


def _http_status(tls, host, path):
    tls.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: mtls.nginx.tls_probe\r\n\r\n"
                 % (path, host)).encode())
    head = b""
    while b"\r\n" not in head:
        chunk = tls.recv(4096)
        if not chunk:
            raise ssl.SSLError("connection closed before an HTTP status line")
        head += chunk
    parts = head.split(b"\r\n", 1)[0].split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def _await_rejection(tls):
    # A server that refuses the client certificate under TLS 1.3 says so right after the
    # handshake; one that accepts it says nothing until asked.
    tls.settimeout(0.5)
    try:
        tls.recv(1)
    except (socket.timeout, TimeoutError):
        pass
