"""Echo backend for the mtls.nginx tests: answers with what it received, as JSON (the body as its
length and SHA-256).

What a test asks in the query: ``sleep=S`` answers after S seconds (a long request, for
restarts and killed workers), ``header_bytes=N`` adds a header X-Big of N bytes to the answer
(for the tiers' header buffers). Every request is counted in the journal, one line
"executed <method> <path> <X-Request-ID>" once the backend has read it, before it sleeps or
answers, so a test can tell how many times a request was executed."""

import hashlib
import json
import socket
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keepalive from nginx works only with 1.1

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length) if length else b""
        asked = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        sys.stderr.write("executed %s %s %s\n" % (self.command, self.path, self.headers.get("X-Request-ID", "-")))
        sys.stderr.flush()
        if asked.get("sleep"):
            time.sleep(float(asked["sleep"][0]))
        body = json.dumps({
            "backend": self.server.server_address[0] + ":" + str(self.server.server_address[1]),
            "method": self.command,
            "path": self.path,
            "headers": dict(self.headers.items()),
            "body_bytes": len(received),
            "body_sha256": hashlib.sha256(received).hexdigest(),
        }, indent=2).encode()
        self.send_response(200)
        if asked.get("header_bytes"):
            self.send_header("X-Big", "x" * int(asked["header_bytes"][0]))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def setup(self):
        super().setup()
        # Headers and body leave in two writes; without this, Nagle's algorithm and delayed
        # ACKs hold every kept-alive answer back by about 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        sys.stderr.write("echo-backend: " + (fmt % args) + "\n")


if __name__ == "__main__":
    ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Echo).serve_forever()
