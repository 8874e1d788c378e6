"""Bounded HTTP/1.1 load generator for the mtls.nginx rotation tests.

It sends a steady stream of requests through the local nginx proxy while operators rotate
certificates and reload nginx, and accounts for every one of them, per phase. The phase is
whatever the phase file names when a request is sent (the operators write it before each step),
so the result says how many requests each step saw and whether any of them failed.

What it measures, per phase and in total: requests sent, answered correctly (ok) and failed,
GETs and POSTs, stale keep-alive retries, new connections opened, latency (p50, p99, max, in ms,
of the whole request including a retry) and the first and last send time. Every answer is
checked: status 200, the JSON from the echo backend parses, its method, path, body_bytes and
body_sha256 equal what was sent, and the header named by --header-verify (the client
certificate verification result the proxy forwards) equals --expect-verify. Anything else, or
any error, is a failure; the first 50 are kept with a short detail.

Each thread keeps one persistent (keep-alive) connection, as real clients do, and paces itself on
absolute deadlines so that together the threads send --rate requests per second.

Before reusing an idle connection the generator looks whether the server has closed it (the
socket is readable), as urllib3 does, and then opens a new one (counted as idle_closed). So a
stale retry below counts only true races.

The one retry: a server may close an idle keep-alive connection at the moment a client writes
the next request on it (nginx does this on reload, when old workers close their idle
connections). Clients such as curl and browsers handle this race the same way: a request
written on a REUSED connection (one that already carried a complete response) that fails
with not a single byte of answer received (connection reset, broken pipe, end of stream before
the status line) is sent once more on a new connection. The generator does exactly that and
counts it as a stale retry, not a failure. If the retry fails too, if the connection was fresh,
or if any byte of the answer had arrived, the request failed. There is no other retry.

Results go to --out as JSON (written atomically about once per second and on exit). The
generator stops, finishing the requests in flight, when the stop file appears, on SIGTERM or
after --duration-max seconds, and then exits 0 whatever the result: the caller judges it.
"""

import argparse
import functools
import hashlib
import select
import http.client
import io
import json
import math
import os
import random
import signal
import sys
import tempfile
import threading
import time
import urllib.parse

MAX_FAILURE_DETAILS = 50
PHASE_REREAD = 0.05  # seconds between two reads of the phase file
WRITE_EVERY = 1.0  # seconds between two writes of the result
POLL = 0.05  # seconds between two looks at the stop file
JITTER = 0.1  # each send is delayed by up to this fraction of a thread's interval
MAX_BACKLOG = 1.0  # seconds a thread may run behind its schedule before it skips slots

# What a dead keep-alive connection raises when it took the request but gave no answer;
# http.client.RemoteDisconnected (end of stream before the status line) is a ConnectionResetError.
STALE_ERRORS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.BadStatusLine)

COUNTERS = ("sent", "ok", "failed", "stale_retries", "idle_closed", "connections_opened", "get", "post")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="proxy to send through (http only)")
    parser.add_argument("--rate", type=float, default=60.0, help="total requests per second")
    parser.add_argument("--connections", type=int, default=4, help="persistent connections (one thread each)")
    parser.add_argument("--post-ratio", type=float, default=0.5, help="fraction of requests that are POSTs")
    parser.add_argument("--max-body", type=int, default=8192, help="POST bodies are 1..MAX_BODY random bytes")
    parser.add_argument("--duration-max", type=float, default=1800.0, help="stop after this many seconds at most")
    parser.add_argument("--phase-file", default="/run/mtls-loadgen/phase", help="names the current phase")
    parser.add_argument("--stop-file", default="/run/mtls-loadgen/stop", help="stop when this file exists")
    parser.add_argument("--out", default="/run/mtls-loadgen/result.json", help="where the result JSON goes")
    parser.add_argument("--timeout", type=float, default=10.0, help="socket timeout per request, seconds")
    parser.add_argument("--header-verify", default="X-Client-Verify", help="echoed request header to check")
    parser.add_argument("--expect-verify", default="SUCCESS", help="value --header-verify must have")
    args = parser.parse_args(argv)
    url = urllib.parse.urlsplit(args.url)
    if url.scheme != "http" or not url.hostname:
        parser.error("--url must be an http:// URL with a host")
    if args.rate <= 0 or args.connections < 1 or args.max_body < 1 or args.timeout <= 0 or args.duration_max < 0:
        parser.error("--rate, --timeout, --connections and --max-body must be positive, --duration-max not negative")
    if not 0.0 <= args.post_ratio <= 1.0:
        parser.error("--post-ratio must be between 0 and 1")
    args.host = url.hostname
    args.port = url.port or 80
    args.prefix = url.path.rstrip("/")
    return args


# --- phase ---------------------------------------------------------------------------------------

class PhaseReader:
    """The current phase: the stripped content of the phase file, re-read at most every 50 ms."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.value = "idle"
        self.read_at = None

    def get(self):
        with self.lock:
            now = time.monotonic()
            if self.read_at is None or now - self.read_at >= PHASE_REREAD:
                self.value = self._read()
                self.read_at = now
            return self.value

    def _read(self):
        try:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                name = handle.read(256).strip()
        except OSError:
            return "idle"
        return name or "idle"


# --- accounting ----------------------------------------------------------------------------------

def _percentile(ordered, fraction):
    """Nearest-rank percentile of a sorted list."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _summary(counts, latencies, first, last):
    ordered = sorted(latencies)
    summary = dict(counts)
    summary.update({
        "p50_ms": _ms(_percentile(ordered, 0.50)),
        "p99_ms": _ms(_percentile(ordered, 0.99)),
        "max_ms": _ms(ordered[-1] if ordered else None),
        "first": _stamp(first),
        "last": _stamp(last),
    })
    return summary


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000.0, 3)


def _stamp(when):
    return None if when is None else round(when, 3)


class Phase:
    def __init__(self, name):
        self.name = name
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.latencies = []
        self.first = None
        self.last = None


class Recorder:
    """Every request's outcome, per phase (in first-seen order), plus the first failure details.

    A request is counted (sent, and ok or failed) when its outcome is known, so sent equals
    ok + failed. Requests still in flight when the threads are given up count as failed."""

    def __init__(self):
        self.lock = threading.Lock()
        self.phases = {}
        self.failures = []
        self.inflight = {}
        self.closed = False

    def _phase(self, name):
        phase = self.phases.get(name)
        if phase is None:
            phase = self.phases[name] = Phase(name)
        return phase

    def begin(self, worker, phase, method, path, sent_at):
        with self.lock:
            self._phase(phase)  # the phase order is the order phases were first sent in
            self.inflight[worker] = (phase, method, path, sent_at, time.monotonic())

    def finish(self, worker, outcome):
        with self.lock:
            if self.closed:
                return
            phase, method, path, sent_at = self.inflight.pop(worker)[:4]
            self._count(worker, phase, method, path, sent_at, outcome)

    def _count(self, worker, phase_name, method, path, sent_at, outcome):
        phase = self._phase(phase_name)
        counts = phase.counts
        counts["sent"] += 1
        counts["get" if method == "GET" else "post"] += 1
        counts["stale_retries"] += outcome["stale_retries"]
        counts["idle_closed"] += outcome.get("idle_closed", 0)
        counts["connections_opened"] += outcome["connections_opened"]
        phase.latencies.append(outcome["latency"])
        phase.first = sent_at if phase.first is None else min(phase.first, sent_at)
        phase.last = sent_at if phase.last is None else max(phase.last, sent_at)
        if outcome["error"] is None:
            counts["ok"] += 1
            return
        counts["failed"] += 1
        if len(self.failures) < MAX_FAILURE_DETAILS:
            self.failures.append({
                "time": _stamp(sent_at),
                "phase": phase_name,
                "thread": worker,
                "method": method,
                "path": path,
                "error": outcome["error"],
            })

    def close(self):
        """No more outcomes are taken; requests still in flight are counted as failed."""
        with self.lock:
            now = time.monotonic()
            for worker, (phase, method, path, sent_at, started) in sorted(self.inflight.items()):
                self._count(worker, phase, method, path, sent_at, {
                    "stale_retries": 0, "idle_closed": 0, "connections_opened": 0, "latency": now - started,
                    "error": "no answer before the generator had to exit",
                })
            self.inflight.clear()
            self.closed = True

    def snapshot(self):
        with self.lock:
            copies = [(p.name, dict(p.counts), list(p.latencies), p.first, p.last) for p in self.phases.values()]
            failures = [dict(f) for f in self.failures]
        phases = []
        totals = dict.fromkeys(COUNTERS, 0)
        all_latencies = []
        firsts, lasts = [], []
        for name, counts, latencies, first, last in copies:
            entry = {"name": name}
            entry.update(_summary(counts, latencies, first, last))
            phases.append(entry)
            for key in COUNTERS:
                totals[key] += counts[key]
            all_latencies.extend(latencies)
            if first is not None:
                firsts.append(first)
                lasts.append(last)
        totals = _summary(totals, all_latencies, min(firsts) if firsts else None, max(lasts) if lasts else None)
        return phases, totals, failures


# --- HTTP ----------------------------------------------------------------------------------------

class _ByteCounter:
    def __init__(self):
        self.received = 0


class _CountingReader(io.RawIOBase):
    """Counts the bytes read from the socket, so a failure can tell whether any answer arrived."""

    def __init__(self, raw, counter):
        super().__init__()
        self.raw = raw
        self.counter = counter

    def readable(self):
        return True

    def readinto(self, buffer):
        count = self.raw.readinto(buffer)
        if count:
            self.counter.received += count
        return count

    def close(self):
        if not self.closed:
            self.raw.close()
        super().close()


class _CountingResponse(http.client.HTTPResponse):
    def __init__(self, sock, debuglevel=0, method=None, url=None, counter=None):
        super().__init__(sock, debuglevel, method, url)
        self.fp.close()
        self.fp = io.BufferedReader(_CountingReader(sock.makefile("rb", buffering=0), counter))


class Connection(http.client.HTTPConnection):
    """One TCP connection (never reopened behind our back) that counts the answer bytes."""

    auto_open = 0

    def __init__(self, host, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self.counter = _ByteCounter()
        self.response_class = functools.partial(_CountingResponse, counter=self.counter)


class Worker(threading.Thread):
    def __init__(self, index, args, phases, recorder, stop, start):
        super().__init__(name="loadgen-%d" % index, daemon=True)
        self.index = index
        self.args = args
        self.phases = phases
        self.recorder = recorder
        self.stop = stop
        self.start_at = start
        self.rng = random.Random()
        self.conn = None  # open only while it may carry another request
        self.sent = 0

    def run(self):
        interval = self.args.connections / self.args.rate
        base = self.start_at + self.index / self.args.rate
        slot = 0
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                due = base + slot * interval
                if now - due > max(MAX_BACKLOG, 2 * interval):
                    slot = math.ceil((now - base) / interval)  # hopelessly late: skip the missed slots
                    continue
                due += self.rng.uniform(0.0, JITTER) * interval
                if due > now and self.stop.wait(due - now):
                    break
                self.one_request()
                slot += 1
        finally:
            self._close()

    def one_request(self):
        self.sent += 1
        path = "%s/loadgen/%d/%d" % (self.args.prefix, self.index, self.sent)
        headers = {"User-Agent": "mtls-loadgen", "Accept": "application/json"}
        if self.rng.random() < self.args.post_ratio:
            method = "POST"
            body = os.urandom(self.rng.randint(1, self.args.max_body))
            headers["Content-Type"] = "application/octet-stream"
        else:
            method = "GET"
            body = b""
        phase = self.phases.get()
        self.recorder.begin(self.index, phase, method, path, time.time())
        outcome = {"stale_retries": 0, "idle_closed": 0, "connections_opened": 0, "error": None}
        started = time.monotonic()
        try:
            status, reason, data = self.exchange(method, path, body or None, headers, outcome)
        except Exception as exc:  # any error is this request's failure, never the thread's end
            status = None
            error = "%s: %s" % (type(exc).__name__, exc)
            if outcome["stale_retries"]:
                error = "retry on a new connection after a stale keep-alive one failed: " + error
            outcome["error"] = error
        outcome["latency"] = time.monotonic() - started
        if status is not None:
            try:
                outcome["error"] = self.check(method, path, body, status, reason, data)
            except Exception as exc:  # a check that cannot run is a failure too
                outcome["error"] = "cannot check the answer: %s: %s" % (type(exc).__name__, exc)
        self.recorder.finish(self.index, outcome)

    def exchange(self, method, path, body, headers, outcome):
        """Sends the request and reads the whole answer, retrying once on a stale connection."""
        while True:
            if self.conn is not None and _closed_by_peer(self.conn.sock):
                # Closed while idle (what a reload does): like urllib3, check before reuse.
                self._close()
                outcome["idle_closed"] += 1
            reused = self.conn is not None
            if not reused:
                conn = Connection(self.args.host, self.args.port, self.args.timeout)
                conn.connect()
                self.conn = conn
                outcome["connections_opened"] += 1
            conn = self.conn
            conn.counter.received = 0
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except STALE_ERRORS:
                self._close()
                if reused and conn.counter.received == 0 and not outcome["stale_retries"]:
                    outcome["stale_retries"] += 1
                    continue
                raise
            except BaseException:
                self._close()
                raise
            if response.will_close or conn.sock is None:
                self._close()  # Connection: close (or an answer that ends with the connection)
            return response.status, response.reason, data

    def _close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def check(self, method, path, body, status, reason, data):
        """None when the answer is right, else what differed."""
        if status != 200:
            snippet = data[:80].decode("utf-8", "replace").replace("\n", " ").strip()
            return "status %d %s: %s" % (status, reason, snippet)
        try:
            echo = json.loads(data)
        except ValueError as exc:
            return "answer is not JSON (%s): %r" % (exc, data[:80])
        if not isinstance(echo, dict):
            return "answer is not a JSON object: %r" % data[:80]
        wrong = []
        expected = {
            "method": method,
            "path": path,
            "body_bytes": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        for key, value in expected.items():
            if echo.get(key) != value:
                wrong.append("%s: sent %r, echoed %r" % (key, value, echo.get(key)))
        echoed = echo.get("headers")
        name = self.args.header_verify
        values = [v for k, v in echoed.items() if k.lower() == name.lower()] if isinstance(echoed, dict) else []
        if not values:
            wrong.append("%s: missing, expected %r" % (name, self.args.expect_verify))
        elif any(v != self.args.expect_verify for v in values):
            wrong.append("%s: %r, expected %r" % (name, values if len(values) > 1 else values[0], self.args.expect_verify))
        return "; ".join(wrong) or None


# --- output --------------------------------------------------------------------------------------

def _closed_by_peer(sock):
    """True when an idle kept-alive socket has something to read: the server's end of stream
    (or a reset). A healthy idle HTTP/1.1 connection has nothing to read between answers."""
    if sock is None:
        return True
    try:
        readable, _w, _x = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def write_atomically(path, document):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o644)
            json.dump(document, handle, indent=1)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def result(args, recorder, started, running, stop_reason):
    phases, totals, failures = recorder.snapshot()
    return {
        "url": args.url,
        "rate": args.rate,
        "connections": args.connections,
        "started": _stamp(started),
        "updated": _stamp(time.time()),
        "running": running,
        "stop_reason": stop_reason,
        "phases": phases,
        "totals": totals,
        "failures": failures,
    }


def _write(args, recorder, started, running, stop_reason):
    try:
        write_atomically(args.out, result(args, recorder, started, running, stop_reason))
        return True
    except OSError as exc:
        sys.stderr.write("mtls-loadgen: cannot write %s: %s\n" % (args.out, exc))
        return False


# --- main ----------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    start = time.monotonic()
    recorder = Recorder()
    phases = PhaseReader(args.phase_file)
    stop = threading.Event()
    terminated = threading.Event()
    if os.path.exists(args.stop_file):
        sys.stderr.write("mtls-loadgen: %s exists already: stopping at once\n" % args.stop_file)

    def on_sigterm(signum, frame):
        terminated.set()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if in_main_thread else None
    try:
        _write(args, recorder, started, True, None)
        workers = [Worker(i, args, phases, recorder, stop, start) for i in range(args.connections)]
        for worker in workers:
            worker.start()
        stop_reason = None
        next_write = start + WRITE_EVERY
        while stop_reason is None:
            now = time.monotonic()
            if terminated.is_set():
                stop_reason = "sigterm"
            elif os.path.exists(args.stop_file):
                stop_reason = "stop-file"
            elif now - start >= args.duration_max:
                stop_reason = "duration-max"
            elif now >= next_write:
                _write(args, recorder, started, True, None)
                next_write = now + WRITE_EVERY
            else:
                terminated.wait(min(POLL, next_write - now, max(0.0, start + args.duration_max - now)))
        stop.set()
        # Let the requests in flight finish. One that is still busy after twice --timeout (the
        # socket timeout bounds each connect, send and read, not the whole request) is given up
        # and counted as failed.
        deadline = time.monotonic() + 2 * args.timeout + 2
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        recorder.close()
        written = _write(args, recorder, started, False, stop_reason)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
