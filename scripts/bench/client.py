"""Runs inside the proxy container: times requests through the proxy tier (upstream
keepalive and TLS session reuse) against requests straight to the upstream tier that each
pay a full TCP + TLS handshake. Prints one JSON object."""

import http.client
import json
import socket
import ssl
import statistics
import sys
import time

UPSTREAM, REQUESTS = sys.argv[1], int(sys.argv[2])
PKI = "/etc/nginx/mtls/mtls-proxy"


def summary(durations):
    durations = sorted(durations)
    total = sum(durations)
    return {
        "requests": len(durations),
        "requests_per_second": round(len(durations) / total, 1),
        "p50_ms": round(statistics.median(durations) * 1000, 2),
        "p95_ms": round(durations[int(len(durations) * 0.95) - 1] * 1000, 2),
    }


def through_proxy():
    conn = http.client.HTTPConnection("127.0.0.1", 8080)
    out = []
    for i in range(REQUESTS):
        start = time.perf_counter()
        conn.request("GET", "/bench/proxy/%d" % i)
        response = conn.getresponse()
        response.read()
        out.append(time.perf_counter() - start)
        assert response.status == 200, response.status
    return out


def straight_new_handshake():
    ctx = ssl.create_default_context(cafile=PKI + "/upstream-ca.pem")
    ctx.load_cert_chain(PKI + "/client-chain.pem", PKI + "/client.key")
    out = []
    for i in range(REQUESTS):
        start = time.perf_counter()
        with socket.create_connection((UPSTREAM, 8443)) as raw:
            with ctx.wrap_socket(raw, server_hostname=UPSTREAM) as tls:
                tls.sendall(b"GET /bench/direct/%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (i, UPSTREAM.encode()))
                data = b""
                while True:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        out.append(time.perf_counter() - start)
        assert data.startswith(b"HTTP/1.1 200"), data[:40]
    return out


through_proxy()  # warm up: the proxy opens its kept-alive upstream connections
print(json.dumps({"through_proxy_keepalive": summary(through_proxy()),
                  "straight_new_tls_handshake_each": summary(straight_new_handshake())}))
