"""The load generator of the rotation scenario (molecule/resources/files/mtls-loadgen.py), run
against real servers on 127.0.0.1: the echo backend, servers that close keep-alive connections
under it, answer 502 or forget the verification header."""

import contextlib
import hashlib
import importlib.util
import json
import os
import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FILES = os.path.join(os.path.dirname(__file__), "..", "..", "molecule", "resources", "files")


def _load(name, filename):
    spec = importlib.util.spec_from_file_location(name, os.path.join(FILES, filename))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


loadgen = _load("mtls_loadgen", "mtls-loadgen.py")
echo_backend = _load("mtls_echo_backend", "echo-backend.py")


class QuietEcho(echo_backend.Echo):
    def log_message(self, fmt, *args):
        pass


@contextlib.contextmanager
def http_server(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _read_request(conn, buffered):
    """(method, path, headers, body, rest) of the next request, or None at the end of the stream."""
    while b"\r\n\r\n" not in buffered:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffered += chunk
    head, buffered = buffered.split(b"\r\n\r\n", 1)
    lines = head.decode("iso-8859-1").split("\r\n")
    method, path = lines[0].split(" ")[:2]
    headers = dict(line.split(": ", 1) for line in lines[1:])
    length = int(headers.get("Content-Length", 0))
    while len(buffered) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffered += chunk
    return method, path, headers, buffered[:length], buffered[length:]


def _echo_answer(method, path, headers, body):
    headers = dict(headers, **{"X-Client-Verify": "SUCCESS"})  # what the proxy would add
    payload = json.dumps({"method": method, "path": path, "headers": headers, "body_bytes": len(body),
                          "body_sha256": hashlib.sha256(body).hexdigest()}).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)


@contextlib.contextmanager
def raw_server(respond):
    """A socket server: respond(number on the connection, method, path, headers, body) gives
    (bytes to send, whether to close the connection after them)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.05)
    done = threading.Event()

    def serve(conn):
        with conn:
            buffered = b""
            number = 0
            while True:
                request = _read_request(conn, buffered)
                if request is None:
                    return
                method, path, headers, body, buffered = request
                answer, close = respond(number, method, path, headers, body)
                number += 1
                conn.sendall(answer)
                if close:
                    return

    def accept():
        while not done.is_set():
            try:
                conn = listener.accept()[0]
            except socket.timeout:
                continue
            conn.settimeout(5)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        thread.join()
        listener.close()


def run(tmp_path, port, *extra, phase="test"):
    (tmp_path / "phase").write_text(phase + "\n")
    out = tmp_path / "out" / "result.json"
    argv = ["--url", "http://127.0.0.1:%d" % port, "--rate", "100", "--connections", "2", "--timeout", "3",
            "--phase-file", str(tmp_path / "phase"), "--stop-file", str(tmp_path / "stop"), "--out", str(out)]
    argv.extend(extra or ("--duration-max", "1"))
    assert loadgen.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["running"] is False
    totals = result["totals"]
    assert totals["sent"] == totals["ok"] + totals["failed"]
    for key in loadgen.COUNTERS:
        assert totals[key] == sum(phase[key] for phase in result["phases"]), key
    assert not [name for name in os.listdir(out.parent) if name != "result.json"], "temporary files left"
    return result


def test_through_the_echo_backend_every_request_succeeds_on_two_keepalive_connections(tmp_path):
    with http_server(QuietEcho) as port:
        timers = [threading.Timer(0.7, (tmp_path / "phase").write_text, ("two\n",)),
                  threading.Timer(1.5, (tmp_path / "stop").write_text, ("",))]
        for timer in timers:
            timer.start()
        try:
            result = run(tmp_path, port, "--duration-max", "10", "--header-verify", "host",
                         "--expect-verify", "127.0.0.1:%d" % port, phase="one")
        finally:
            for timer in timers:
                timer.cancel()
    totals = result["totals"]
    assert result["stop_reason"] == "stop-file"
    assert [p["name"] for p in result["phases"]] == ["one", "two"]
    assert totals["failed"] == 0, result["failures"]
    assert totals["sent"] >= 100, totals  # 150 planned
    assert totals["get"] > 0 and totals["post"] > 0
    assert totals["connections_opened"] == 2 and totals["stale_retries"] == 0
    assert 0 < totals["p50_ms"] <= totals["p99_ms"] <= totals["max_ms"]
    assert result["phases"][0]["last"] <= result["phases"][1]["first"]


def test_a_connection_the_server_closed_while_idle_is_replaced_before_reuse(tmp_path):
    def respond(number, method, path, headers, body):
        return _echo_answer(method, path, headers, body), True  # no Connection: close, closes anyway

    with raw_server(respond) as port:
        # 100 ms between a connection's requests (not 20): time enough for the server's close to
        # arrive first even on a loaded machine, which is the case this test is about.
        result = run(tmp_path, port, "--rate", "20", "--duration-max", "1")
    totals = result["totals"]
    assert totals["failed"] == 0, result["failures"]
    # Each thread's first request opens its connection; before every later one the generator
    # sees the server's end of stream on the idle connection and opens the next.
    assert totals["idle_closed"] == totals["sent"] - 2 > 0
    assert totals["stale_retries"] == 0
    assert totals["connections_opened"] == totals["sent"]


def test_a_request_written_as_the_server_closes_costs_a_retry_not_a_failure(tmp_path):
    def respond(number, method, path, headers, body):
        # The second request on a connection is read and dropped unanswered: what a client sees
        # when it writes onto a kept-alive connection at the moment the server closes it.
        if number == 1:
            return b"", True
        return _echo_answer(method, path, headers, body), False

    with raw_server(respond) as port:
        result = run(tmp_path, port)
    totals = result["totals"]
    assert totals["failed"] == 0, result["failures"]
    assert totals["stale_retries"] > 0
    assert totals["connections_opened"] == totals["stale_retries"] + 2


def test_a_connection_closed_after_part_of_the_answer_is_a_failure_not_a_retry(tmp_path):
    def respond(number, method, path, headers, body):
        if number == 0:
            return _echo_answer(method, path, headers, body), False
        return b"HTTP/1.", True  # a broken status line: the same error class as no answer at all

    with raw_server(respond) as port:
        result = run(tmp_path, port)
    totals = result["totals"]
    assert totals["stale_retries"] == 0
    assert totals["failed"] > 0 and totals["ok"] > 0
    assert "BadStatusLine" in result["failures"][0]["error"], result["failures"][0]


def test_a_fresh_connection_closed_without_an_answer_is_a_failure(tmp_path):
    with raw_server(lambda *request: (b"", True)) as port:
        result = run(tmp_path, port)
    totals = result["totals"]
    assert totals["sent"] > 0 and totals["failed"] == totals["sent"]
    assert totals["stale_retries"] == 0
    assert "RemoteDisconnected" in result["failures"][0]["error"]


class BadGateway(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"bad gateway\n"
        self.send_response(502)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, fmt, *args):
        pass


def test_every_502_is_a_failure(tmp_path):
    with http_server(BadGateway) as port:
        result = run(tmp_path, port)
    totals = result["totals"]
    assert totals["sent"] > 0 and totals["failed"] == totals["sent"] and totals["ok"] == 0
    assert len(result["failures"]) == min(totals["failed"], loadgen.MAX_FAILURE_DETAILS)
    failure = result["failures"][0]
    assert "502" in failure["error"] and failure["phase"] == "test"
    assert failure["path"].startswith("/loadgen/") and failure["method"] in ("GET", "POST")


def test_an_answer_without_the_verification_header_is_a_failure(tmp_path):
    with http_server(QuietEcho) as port:
        result = run(tmp_path, port)
    totals = result["totals"]
    assert totals["sent"] > 0 and totals["failed"] == totals["sent"]
    assert "X-Client-Verify: missing" in result["failures"][0]["error"]


def test_sigterm_stops_the_run_like_the_stop_file(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    with http_server(QuietEcho) as port:
        timer.start()
        try:
            result = run(tmp_path, port, "--duration-max", "10", "--header-verify", "Host",
                         "--expect-verify", "127.0.0.1:%d" % port)
        finally:
            timer.cancel()
    assert result["stop_reason"] == "sigterm"
    assert result["totals"]["sent"] > 0 and result["totals"]["failed"] == 0, result["failures"]
    assert signal.getsignal(signal.SIGTERM) == before
