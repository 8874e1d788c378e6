"""The measuring half of scripts/bench/run (see its usage text), run with .venv-bench's Python.

  bench.py timed --out DIR --label LABEL -- COMMAND...
      runs a control-plane command (molecule create / converge), timing it, into DIR/*.log and
      DIR/control-plane.json; --not-measured REASON records a step that was not run.
  bench.py measure --out DIR [--rounds N --duration S --warmup S --concurrency 8,32,128
                    --paths chain,haproxy-log,quiet,haproxy,... --latest LINK]
      checks every path, measures in interleaved rounds (each run: warmup.py in the load
      container, then wrk), and writes DIR/runs.jsonl (as it goes), DIR/report.json,
      DIR/report.md and DIR/chart.png, then prints report.md: the same-job ratios round by
      round first, then the tables per concurrency.

The paths, their ports and what bench.py reads of each (logs, known callers, handshake
counters) are in paths.json.

Only containers named mtls-bench-* are read or sent traffic. Counters are read from the host
(cgroup CPU accounting, /proc/<pid>/net/snmp, files and HAProxy's stats socket under
/proc/<pid>/root), so that taking them starts no process in the containers whose CPU is
measured; the one command run in a tier container, `nginx -s reopen` to flush buffered access
logs, runs between measured runs. Exits 1 with a message naming the path and the problem when
something does not work; asserts no timing."""

import argparse
import datetime
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time

import benchlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LOAD = "mtls-bench-load"
PROXY = "mtls-bench-proxy"
UPSTREAM = "mtls-bench-upstream"
BACKEND = "mtls-bench-backend"
# The containers whose CPU is the cost of a path: both tiers, not the load generator or backend.
TIERS = (PROXY, UPSTREAM)
ALL = (LOAD, PROXY, UPSTREAM, BACKEND)
# Which container holds each hop's files (paths.json's "logs").
HOPS = (("proxy", PROXY), ("upstream", UPSTREAM))

# Where stunnel's upstream side says how its TLS handshakes went (read on mtls-bench-upstream).
STUNNEL_LOG = "/var/log/mtls-bench-stunnel.log"
HAPROXY_SOCKET = "/run/mtls-bench-haproxy.sock"
# The collection's drop-ins (the roles' default mtls_*_config_name), for the settings in force.
DROPINS = {PROXY: "/etc/nginx/conf.d/mtls-proxy.conf", UPSTREAM: "/etc/nginx/conf.d/mtls-upstream.conf"}
# The directives that decide what a request costs, reported as the collection deployed them.
COST_DIRECTIVES = ("keepalive", "keepalive_requests", "keepalive_timeout", "access_log",
                   "ssl_session_cache", "ssl_session_tickets", "proxy_ssl_session_reuse",
                   "proxy_http_version")
SPOOFED_DN = "CN=spoofed-by-the-client"

# How each path's full and resumed handshakes are counted (paths.json's "handshakes").
HANDSHAKE_METHODS = {
    "nginx_log": "new connections (upstream PassiveOpens); the upstream tier turns TLS session "
                 "resumption off, so each is a full handshake (its access log's $ssl_session_reused "
                 "is checked: resumed ones would be subtracted)",
    "passive_opens": "new connections (upstream PassiveOpens); its access log is off, so full and "
                     "resumed handshakes are not told apart (its upstream tier turns resumption off, "
                     "as the chain's does)",
    "haproxy_stats": "HAProxy's counters of the path's upstream frontend, ssl_sess (new sessions: full "
                     "handshakes) and ssl_reused_sess (resumed), from `show stat` on its stats socket",
    "stunnel_log": "the upstream stunnel's log at debug = info ('new session negotiated' / "
                   "'previous session reused')",
    "seed_log": "new connections (upstream PassiveOpens), less the requests its access log shows "
                "on a resumed session ($ssl_session_reused = r; one request per connection)",
    None: "no mTLS hop",
}


class BenchError(Exception):
    """Something does not work: the message names what and where."""


def say(message):
    print("==> bench: %s" % message, flush=True)


def run(argv, check=True, timeout=600, stdin_text=None):
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, input=stdin_text)
    except FileNotFoundError as error:
        raise BenchError("%s is not installed (%s)" % (argv[0], error))
    except subprocess.TimeoutExpired:
        raise BenchError("%s did not finish within %d s" % (" ".join(argv), timeout))
    if check and result.returncode != 0:
        output = (result.stderr or result.stdout).strip()[-2000:]
        raise BenchError("%s failed (exit %d): %s" % (" ".join(argv), result.returncode, output))
    return result


def docker_exec(container, *argv, check=True, timeout=600, stdin_text=None):
    interactive = ["-i"] if stdin_text is not None else []
    return run(["docker", "exec"] + interactive + [container] + list(argv), check=check, timeout=timeout,
               stdin_text=stdin_text)


# --- containers and their counters ----------------------------------------------------------------

class Container:
    def __init__(self, name):
        result = run(["docker", "inspect", "-f", "{{.Id}} {{.State.Pid}} {{.State.Running}} {{.Config.Image}}", name], check=False)
        if result.returncode != 0:
            raise BenchError("container %s does not exist (scripts/bench/run deploys it)" % name)
        self.name = name
        self.id, pid, running, self.image = result.stdout.split()
        if running != "true":
            raise BenchError("container %s is not running" % name)
        self.pid = int(pid)
        with open("/proc/%d/cgroup" % self.pid, encoding="utf-8") as handle:
            proc_cgroup = handle.read()
        for kind, path in benchlib.cgroup_cpu_candidates(self.id, proc_cgroup):
            if os.path.exists(path):
                self.cpu_kind, self.cpu_file = kind, path
                break
        else:
            raise BenchError("no CPU accounting found for container %s (looked for cpu.stat and "
                             "cpuacct.usage under /sys/fs/cgroup for %s)" % (name, self.id))

    def cpu_usec(self):
        with open(self.cpu_file, encoding="utf-8") as handle:
            text = handle.read()
        if self.cpu_kind == "cpu.stat":
            return int(re.search(r"^usage_usec (\d+)$", text, re.M).group(1))
        return int(text.strip()) // 1000

    def cgroup_stats(self):
        """{cgroup relative to the container's: its cpu.stat} for the container's cgroup and
        every one below it (the units systemd runs in the container: nginx.service,
        mtls-bench-haproxy.service, rsyslog.service, ...); empty without cgroup v2."""
        if self.cpu_kind != "cpu.stat":
            return {}
        base = os.path.dirname(self.cpu_file)
        found = {}
        for directory, _subdirs, files in os.walk(base):
            if "cpu.stat" not in files:
                continue
            relative = os.path.relpath(directory, base)
            try:
                with open(os.path.join(directory, "cpu.stat"), encoding="utf-8") as handle:
                    found["" if relative == "." else relative] = benchlib.parse_cpu_stat(handle.read())
            except OSError:
                continue
        return found

    def host_path(self, path):
        """The container's file as the host sees it, without entering the container."""
        return "/proc/%d/root%s" % (self.pid, path)

    def tcp(self):
        """TCP counters of the container's network namespace."""
        with open("/proc/%d/net/snmp" % self.pid, encoding="utf-8") as handle:
            return benchlib.parse_snmp(handle.read())["Tcp"]

    def size(self, path):
        try:
            return os.path.getsize(self.host_path(path))
        except FileNotFoundError:
            return 0

    def read_from(self, path, offset):
        """What was appended to a file since it had `offset` bytes (all of it if it shrank:
        rotated or truncated)."""
        try:
            with open(self.host_path(path), "rb") as handle:
                handle.seek(0, os.SEEK_END)
                if handle.tell() < offset:
                    offset = 0
                handle.seek(offset)
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def unix_command(self, path, command):
        """A command to a unix socket of the container (HAProxy's stats socket)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(self.host_path(path))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")


# --- control plane -----------------------------------------------------------------------------

def control_plane_file(out):
    return os.path.join(out, "control-plane.json")


def record_step(out, step):
    steps = []
    if os.path.exists(control_plane_file(out)):
        with open(control_plane_file(out), encoding="utf-8") as handle:
            steps = json.load(handle)
    steps.append(step)
    with open(control_plane_file(out), "w", encoding="utf-8") as handle:
        json.dump(steps, handle, indent=2)


def timed(args):
    """Runs a control-plane command, timed, with ansible.posix.timer for the playbook's own
    time; its output goes to a log in the results folder."""
    if args.not_measured:
        record_step(args.out, {"label": args.label, "measured": False, "reason": args.not_measured})
        say("%s: not measured (%s)" % (args.label, args.not_measured))
        return
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise BenchError("timed: no command given")
    log = os.path.join(args.out, re.sub(r"[^a-z0-9]+", "-", args.label.lower()).strip("-") + ".log")
    env = dict(os.environ)
    callbacks = [c for c in env.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c]
    env["ANSIBLE_CALLBACKS_ENABLED"] = ",".join(callbacks + ["ansible.posix.timer"])
    say("%s: %s (log: %s)" % (args.label, " ".join(command), os.path.relpath(log, ROOT)))
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as handle:
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT, check=False)
    wall = time.monotonic() - started
    with open(log, encoding="utf-8") as handle:
        text = handle.read()
    if result.returncode != 0:
        sys.stderr.write("".join(text.splitlines(True)[-40:]))
        raise BenchError("%s: %s failed (exit %d); full log: %s"
                         % (args.label, " ".join(command), result.returncode, log))
    recap = benchlib.parse_recap(text)
    step = {"label": args.label, "measured": True, "command": " ".join(command), "wall_s": round(wall, 1),
            "playbook_s": benchlib.parse_timer(text), "changed": recap.get("changed"),
            "recap": recap, "log": os.path.basename(log)}
    record_step(args.out, step)
    say("%s: %.1f s (playbook %s s), changed=%s" % (args.label, wall, step["playbook_s"], step["changed"]))


# --- paths ---------------------------------------------------------------------------------------

def load_paths():
    with open(os.path.join(HERE, "paths.json"), encoding="utf-8") as handle:
        return json.load(handle)["bench_paths"]


# Every path, in paths.json's order (scripts/bench/run's --paths lists the same names).
ALL_PATHS = tuple(load_paths())


def url_of(info):
    return "http://%s:%s/" % (info["host"], info["port"])


def check_paths(paths, info, containers):
    """One request over each path must get 200 from the backend; where the path carries the
    identity, the backend must have seen the proxy's verified certificate subject (not the one
    the client sent); the mTLS hop must refuse a client without a certificate; and where the
    path is the collection's chain with a known-callers file, the certificate its proxy tier
    presented must be a known caller of its upstream tier (or, for known_callers false, not)."""
    expected_dn = "CN=%s" % PROXY
    checks = {}
    for name in paths:
        path = info[name]
        url = url_of(path) + "bench-check"
        result = docker_exec(LOAD, "curl", "-sS", "-o", "/dev/null", "-D", "-", "--max-time", "10",
                             "-H", "X-Client-DN: %s" % SPOOFED_DN, url, check=False)
        if result.returncode != 0:
            raise BenchError("path %s (%s): no answer: %s" % (name, url, result.stderr.strip()))
        lines = result.stdout.replace("\r", "").split("\n")
        status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        headers = {}
        for line in lines[1:]:
            key, sep, value = line.partition(":")
            if sep:
                headers[key.strip().lower()] = value.strip()
        if status != 200:
            raise BenchError("path %s (%s): answered %s, expected 200" % (name, url, status or lines[0]))
        check = {"url": url, "status": status,
                 "backend_saw_dn": headers.get("x-seen-x-client-dn"),
                 "backend_saw_verify": headers.get("x-seen-x-client-verify"),
                 "backend_saw_fingerprint": headers.get("x-seen-x-client-fingerprint")}
        if path["identity"]:
            if check["backend_saw_dn"] != expected_dn or check["backend_saw_verify"] != "SUCCESS":
                raise BenchError("path %s (%s): the backend saw X-Client-DN %r and X-Client-Verify %r, expected "
                                 "%r and 'SUCCESS' (the client sent X-Client-DN %r)"
                                 % (name, url, check["backend_saw_dn"], check["backend_saw_verify"],
                                    expected_dn, SPOOFED_DN))
        if path.get("known_callers_file"):
            check["known_callers"] = check_known_callers(name, path, check["backend_saw_fingerprint"], containers)
        if path.get("upstream_port"):
            hop = "https://%s:%s/" % (UPSTREAM, path["upstream_port"])
            refused = docker_exec(LOAD, "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                                  "--max-time", "10", hop, check=False)
            code = refused.stdout.strip() or "000"
            if code.startswith("2"):
                raise BenchError("path %s: its mTLS hop %s answered %s to a client without a certificate"
                                 % (name, hop, code))
            check["mtls_hop"] = hop
            check["mtls_hop_without_client_certificate"] = "refused in the handshake" if code == "000" else "HTTP %s" % code
        checks[name] = check
        say("path %s: 200 from %s%s%s" % (
            name, url, "; backend saw %s" % check["backend_saw_dn"] if check["backend_saw_dn"] else "",
            "; %s" % benchlib.describe_known_callers(check["known_callers"]) if "known_callers" in check else ""))
    return checks


def check_known_callers(name, path, saw_fingerprint, containers):
    """The known-callers file of the path's upstream tier, as the upstream container holds it:
    its entries, and whether the certificate of the path's proxy tier (its fingerprint, from the
    file on the proxy container) is one of them, as the path expects (paths.json's
    known_callers). Where the backend saw the fingerprint header, it must be that certificate's."""
    filename, certificate = path["known_callers_file"], path["proxy_certificate"]
    texts = {}
    for container, wanted in ((UPSTREAM, filename), (PROXY, certificate)):
        try:
            with open(containers[container].host_path(wanted), encoding="utf-8") as handle:
                texts[wanted] = handle.read()
        except FileNotFoundError:
            raise BenchError("path %s: %s is missing on %s" % (name, wanted, container))
    try:
        fingerprint = benchlib.pem_sha1(texts[certificate])
    except ValueError as error:
        raise BenchError("path %s: %s on %s: %s" % (name, certificate, PROXY, error))
    if saw_fingerprint and saw_fingerprint.lower() != fingerprint:
        raise BenchError("path %s: the backend saw X-Client-Fingerprint %s, but the proxy tier's certificate %s is %s"
                         % (name, saw_fingerprint, certificate, fingerprint))
    known = benchlib.known_caller_fingerprints(texts[filename])
    found = {"file": filename, "entries": len(known), "expected": bool(path["known_callers"]),
             "certificate": certificate, "fingerprint": fingerprint, "listed": fingerprint in known}
    if found["listed"] != found["expected"]:
        raise BenchError("path %s: the proxy tier's certificate %s (SHA-1 %s) is %s among the %d known caller(s) of "
                         "%s on %s, expected %s" % (name, certificate, fingerprint,
                                                    "listed" if found["listed"] else "not listed", len(known),
                                                    filename, UPSTREAM, "listed" if found["expected"] else "not listed"))
    return found


# --- one measured run ------------------------------------------------------------------------------

def settle(container, filename, seconds=3.0):
    """Waits until the file stops growing (a log that a writer, nginx or rsyslog, is still
    writing); returns its size."""
    last = -1
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        size = container.size(filename)
        if size == last:
            return size
        last = size
        time.sleep(0.2)
    return container.size(filename)


def flush_logs(path, containers):
    """The path's logs on both hops, complete: nginx buffers its access logs when the collection
    says so (access_log ... buffer=), and `nginx -s reopen` makes every worker write what it
    holds; rsyslog writes HAProxy's lines as they come. Then wait until each file stops growing.
    Returns each hop's log size. Only between measured runs, never inside one."""
    logs = path.get("logs") or {}
    if not logs:
        return {}
    sizes = {}
    for hop, container in HOPS:
        if path.get("log_flush") == "nginx":
            docker_exec(container, "nginx", "-s", "reopen", check=False)
    for hop, container in HOPS:
        sizes[hop] = settle(containers[container], logs[hop])
    return sizes


def haproxy_ssl_counters(upstream, frontend):
    row = benchlib.parse_haproxy_stat(upstream.unix_command(HAPROXY_SOCKET, "show stat"), frontend)
    return {"ssl_sess": int(row.get("ssl_sess") or 0), "ssl_reused_sess": int(row.get("ssl_reused_sess") or 0)}


def haproxy_dropped_logs(path, containers):
    """HAProxy's count of log lines it dropped (DroppedLogs of `show info`: the syslog socket
    was full, and HAProxy never waits for it), per hop, for the HAProxy paths that log."""
    if not (path.get("haproxy") and path.get("logs")):
        return {}
    found = {}
    for hop, container in HOPS:
        info = benchlib.parse_haproxy_info(containers[container].unix_command(HAPROXY_SOCKET, "show info"))
        found[hop] = int(info.get("DroppedLogs") or 0)
    return found


def handshake_marks(path, upstream):
    """What to remember before a run to count its handshakes afterwards (the logs' sizes are
    taken by flush_logs)."""
    method = path.get("handshakes")
    if method == "stunnel_log":
        return {"offset": upstream.size(STUNNEL_LOG)}
    if method == "haproxy_stats":
        return haproxy_ssl_counters(upstream, path["haproxy"]["upstream"])
    return {}


def count_handshakes(path, upstream, marks, upstream_log_text, new_connections, requests):
    """(full, resumed, details) for the run that followed `marks`; upstream_log_text is what
    the path's upstream log gained in the run."""
    method = path.get("handshakes")
    if method in ("nginx_log", "seed_log"):
        sessions = benchlib.count_nginx_sessions(upstream_log_text)
        if requests and not sessions["requests"]:
            # No access log (turned off): resumed handshakes cannot be told from full ones.
            return None, None, sessions
        resumed = sessions["resumed_connection_serials" if method == "nginx_log" else "resumed_requests"]
        full = None if new_connections is None else max(new_connections - resumed, 0)
        return full, resumed, sessions
    if method == "stunnel_log":
        full, resumed = benchlib.count_stunnel_handshakes(upstream.read_from(STUNNEL_LOG, marks["offset"]))
        return full, resumed, {}
    if method == "haproxy_stats":
        # ssl_sess counts new sessions only: a resumed one counts in ssl_reused_sess alone.
        after = haproxy_ssl_counters(upstream, path["haproxy"]["upstream"])
        full = after["ssl_sess"] - marks["ssl_sess"]
        resumed = after["ssl_reused_sess"] - marks["ssl_reused_sess"]
        return full, resumed, {"ssl_sess": full, "ssl_reused_sess": resumed}
    return None, None, {}


def measure_one(name, info, concurrency, duration, containers):
    upstream = containers[UPSTREAM]
    proxy = containers[PROXY]
    path = info[name]
    has_hop = bool(path.get("upstream_port"))
    log_before = flush_logs(path, containers)
    dropped_before = haproxy_dropped_logs(path, containers)
    marks = handshake_marks(path, upstream)
    # Counters as close to the run as possible: the slower reads (logs, stats) come first.
    units_before = {c: containers[c].cgroup_stats() for c in TIERS} if has_hop else {}
    cpu_before = {c: containers[c].cpu_usec() for c in ALL}
    upstream_tcp = upstream.tcp()
    active_before = proxy.tcp()["ActiveOpens"]
    started = datetime.datetime.now(datetime.timezone.utc)
    result = docker_exec(LOAD, "wrk", "-t1", "-c%d" % concurrency, "-d%ds" % duration, "--latency",
                         "--timeout", "10s", url_of(path), check=False, timeout=duration + 120)
    upstream_tcp_after = upstream.tcp()
    active_after = proxy.tcp()["ActiveOpens"]
    cpu_after = {c: containers[c].cpu_usec() for c in ALL}
    units_after = {c: containers[c].cgroup_stats() for c in TIERS} if has_hop else {}
    if result.returncode != 0:
        raise BenchError("path %s at %d connections: wrk failed (exit %d): %s"
                         % (name, concurrency, result.returncode, (result.stderr or result.stdout).strip()))
    try:
        numbers = benchlib.parse_wrk(result.stdout)
    except ValueError as error:
        raise BenchError("path %s at %d connections: %s:\n%s" % (name, concurrency, error, result.stdout))
    cpu_ms = {c: (cpu_after[c] - cpu_before[c]) / 1000.0 for c in ALL}
    tier_cpu_ms = sum(cpu_ms[c] for c in TIERS)
    new_connections = upstream_tcp_after["PassiveOpens"] - upstream_tcp["PassiveOpens"] if has_hop else None
    # The upstream side's connections to the backend: what its backend keep-alive saves.
    backend_connections = upstream_tcp_after["ActiveOpens"] - upstream_tcp["ActiveOpens"] if has_hop else None
    # What each hop logged during the run (the lines of wrk's requests still in flight at its
    # end included): one line per request when the path logs every request.
    flush_logs(path, containers)
    dropped_after = haproxy_dropped_logs(path, containers)
    dropped = {hop: dropped_after[hop] - dropped_before[hop] for hop in dropped_after}
    logged = {hop: containers[container].read_from(path["logs"][hop], log_before[hop])
              for hop, container in HOPS} if path.get("logs") else {}
    log_lines = {hop: benchlib.count_lines(text) for hop, text in logged.items()}
    full, resumed, details = count_handshakes(path, upstream, marks, logged.get("upstream", ""),
                                              new_connections, numbers["requests"])
    run_record = {
        "path": name, "concurrency": concurrency, "started_utc": started.isoformat(timespec="seconds"),
        "cpu_ms": cpu_ms, "tier_cpu_ms": tier_cpu_ms,
        # Without an mTLS hop (direct) the tiers are not on the path: no cost to compare.
        "tier_cpu_ms_per_1k": benchlib.per_1k(tier_cpu_ms, numbers["requests"]) if has_hop else None,
        "mtls_new_connections": new_connections,
        "proxy_active_opens": active_after - active_before if has_hop else None,
        "mtls_new_connections_per_1k": benchlib.per_1k(new_connections, numbers["requests"]),
        "backend_new_connections": backend_connections,
        "backend_new_connections_per_1k": benchlib.per_1k(backend_connections, numbers["requests"]),
        "full_handshakes": full, "resumed_handshakes": resumed,
        "full_handshakes_per_1k": benchlib.per_1k(full, numbers["requests"]),
        "resumed_handshakes_per_1k": benchlib.per_1k(resumed, numbers["requests"]),
        "handshake_details": details,
        # Each tier container's CPU by systemd unit (nginx, HAProxy, rsyslog, ...): where it goes.
        "service_cpu_ms": {c: benchlib.cpu_delta_by_service(units_before[c], units_after[c])
                           for c in TIERS if units_before.get(c) and units_after.get(c)},
        "log_lines": log_lines,
        "proxy_log_lines_per_request": benchlib.per_request(log_lines.get("proxy"), numbers["requests"]),
        "upstream_log_lines_per_request": benchlib.per_request(log_lines.get("upstream"), numbers["requests"]),
        "dropped_log_lines": dropped,
        "proxy_dropped_logs_per_request": benchlib.per_request(dropped.get("proxy"), numbers["requests"]),
        "upstream_dropped_logs_per_request": benchlib.per_request(dropped.get("upstream"), numbers["requests"]),
        "wrk_output": result.stdout,
    }
    run_record.update(numbers)
    return run_record


def warm_up(name, info, concurrency, seconds):
    """warmup.py in the load container: the same path and concurrency, ended without abandoning
    a request, so that the keep-alive pools are full when the measured run starts."""
    if seconds <= 0:
        return None
    with open(os.path.join(HERE, "warmup.py"), encoding="utf-8") as handle:
        script = handle.read()
    path = info[name]
    result = docker_exec(LOAD, "python3", "-", path["host"], str(path["port"]), str(concurrency), str(seconds),
                         check=False, timeout=seconds + 120, stdin_text=script)
    try:
        counts = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError("path %s at %d connections: the warm-up failed (exit %d): %s"
                         % (name, concurrency, result.returncode, (result.stderr or result.stdout).strip()[-2000:]))
    if not counts.get("requests"):
        raise BenchError("path %s at %d connections: no request of the warm-up got an answer (%s)"
                         % (name, concurrency, counts))
    return counts


# --- machine and versions --------------------------------------------------------------------------

def first_line(text):
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def machine_facts(containers):
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        cpuinfo = handle.read()
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    cpus = len(re.findall(r"^processor\s*:", cpuinfo, re.M))
    with open("/proc/meminfo", encoding="utf-8") as handle:
        mem_kb = int(re.search(r"^MemTotal:\s*(\d+) kB", handle.read(), re.M).group(1))
    facts = {
        "CPU": "%s × %d" % (models[0] if models else platform.processor() or "unknown", cpus),
        "RAM": "%.1f GiB" % (mem_kb / 1048576.0),
        "kernel": platform.release(),
        "CPU accounting": "%s (%s)" % (containers[PROXY].cpu_kind, os.path.dirname(containers[PROXY].cpu_file)),
    }

    def tool(label, container, *argv):
        result = docker_exec(container, *argv, check=False)
        facts[label] = first_line(result.stdout + "\n" + result.stderr) or "unknown"

    with open(containers[PROXY].host_path("/etc/debian_version"), encoding="utf-8") as handle:
        facts["containers"] = "Debian %s (%s)" % (handle.read().strip(), containers[PROXY].image)
    facts["docker"] = run(["docker", "version", "--format", "{{.Server.Version}}"], check=False).stdout.strip()
    tool("nginx", PROXY, "nginx", "-v")
    tool("HAProxy", PROXY, "haproxy", "-v")
    facts["HAProxy"] = facts["HAProxy"].split(" - ")[0]
    stunnel = docker_exec(PROXY, "stunnel4", "-version", check=False)
    stunnel_text = stunnel.stdout + stunnel.stderr
    version = re.search(r"^.*?(stunnel \d\S*.*)$", stunnel_text, re.M)
    facts["stunnel"] = version.group(1).strip() if version else "unknown"
    openssl = re.search(r"Running\s+with (OpenSSL [^\n]+)", stunnel_text)
    tool("OpenSSL", PROXY, "openssl", "version")
    if openssl:
        facts["OpenSSL"] += " (stunnel runs with %s)" % openssl.group(1).strip()
    tool("rsyslog", PROXY, "rsyslogd", "-v")
    facts["rsyslog"] = facts["rsyslog"].split(",")[0].strip()
    tool("wrk", LOAD, "wrk", "-v")
    facts["wrk"] = facts["wrk"].split(" Copyright")[0]
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        version = re.search(r"^version:\s*(\S+)", handle.read(), re.M)
    facts["mtls.nginx"] = version.group(1) if version else "unknown"
    facts["ansible-core"] = first_line(run(["ansible", "--version"], check=False).stdout)
    return facts


def collection_settings(containers):
    """The directives of COST_DIRECTIVES in the collection's drop-ins as deployed, per tier."""
    settings = {}
    for name, path in DROPINS.items():
        with open(containers[name].host_path(path), encoding="utf-8") as handle:
            settings[name] = benchlib.nginx_directives(handle.read(), COST_DIRECTIVES)
    return settings


def other_containers():
    result = run(["docker", "ps", "--format", "{{.Names}}"], check=False)
    return sorted(n for n in result.stdout.split() if not n.startswith("mtls-bench"))


# --- the whole measurement ---------------------------------------------------------------------------

def notes(settings, info, checks, cpus, deployed, others_before, others_after):
    out = [
        "%d CPU(s) shared by everything: the load generator (wrk), both tiers and the backend run "
        "on the same cores, so a path that costs less CPU also leaves more to wrk and the backend. "
        "Expect noise; compare ratios within rounds rather than absolute numbers." % cpus,
        "Tier CPU is the CPU time of mtls-bench-proxy plus mtls-bench-upstream during the measured "
        "run, from the containers' cgroup accounting (everything in them: nginx, HAProxy, stunnel, "
        "rsyslog, systemd; the alternatives sit idle while another path runs); the load generator and the "
        "backend are recorded in report.json but not counted, and direct has no tier CPU. The "
        "tables of where it goes split it by the cgroups systemd makes in each container for its "
        "units (nginx.service, mtls-bench-haproxy.service, rsyslog.service, ...); other is the "
        "rest (the commands the benchmark runs between runs, systemd itself).",
        "Steady state: each measured run follows a %s s warm-up on the same path and concurrency "
        "(scripts/bench/warmup.py: kept-alive connections that finish their last request before "
        "closing, so the keep-alive pools stay full; wrk would abandon its requests in flight, "
        "and nginx closes the upstream connection of an abandoned request), and only the measured "
        "part is counted. wrk opens its connections anew at the start of each run: stunnel turns "
        "each into one mTLS connection, so its new mTLS connections per run are about the "
        "concurrency, and at high concurrency its p99 includes those handshakes queued at the "
        "start; nginx keeps a pool per worker, and wrk's connections may spread over the "
        "workers differently than the warm-up's did." % benchlib.fmt(settings["warmup_s"], 0),
        "New mTLS connections: the upstream container's TCP PassiveOpens during the run (its "
        "network namespace's /proc/net/snmp, read from the host); only the path under test carries "
        "traffic then. Backend connections: the upstream container's ActiveOpens (to the backend) "
        "in the same run.",
        "Full and resumed handshakes: " + "; ".join(
            "%s: %s" % (name, HANDSHAKE_METHODS[info[name].get("handshakes")]) for name in settings["paths"]) + ".",
        "The chain runs with the roles' defaults; what decides the cost of a request, as "
        "deployed: proxy tier: %s; upstream tier: %s. HAProxy, stunnel and the seed keep their "
        "own TLS session defaults (resumption allowed)."
        % ("; ".join("`%s`" % d for d in deployed.get(PROXY, [])) or "n/a",
           "; ".join("`%s`" % d for d in deployed.get(UPSTREAM, [])) or "n/a"),
        "Logging: chain, computed and seed write one access log line per request on each hop (the "
        "seed with the collection's formats and access_log parameters, read from its deployed "
        "drop-ins), through the buffer of the deployed access_log directive above; haproxy-log one line "
        "per request on each hop as a Debian host with rsyslog does: HAProxy (chrooted) sends each "
        "to the local syslog socket, rsyslog writes it to /var/log/haproxy.log (option httplog's "
        "format; on the upstream hop also the verify result, subject DN, serial, TLS version and "
        "cipher, as the chain's upstream log has them); quiet and lean log nothing "
        "(mtls_nginx_access_log: false), haproxy nothing (no log); stunnel a few lines per "
        "connection (info level on the upstream side, for the handshake count). Before and after "
        "each run the logs are flushed (nginx -s reopen) and read until they stop growing, outside "
        "the measured part; the lines each hop wrote are counted. HAProxy never waits for the "
        "syslog socket: when rsyslog lags and the socket is full, it drops the line and counts it "
        "(DroppedLogs of `show info`, read before and after each run and shown beside the lines "
        "written); nginx writes every line.",
        "Revocation: the collection's paths (chain, quiet, computed, lean), both HAProxy paths and "
        "stunnel check the private CA's CRL on both hops; the seed, as the classic configuration, "
        "checks none.",
        "Identity: chain, quiet, computed, HAProxy (both paths) and seed hand the backend the "
        "verified client identity in six headers and replace what the client sent (HAProxy's "
        "X-Client-Cert is base64 DER, nginx's URL-encoded PEM); lean sends X-Client-Verify and "
        "X-Client-DN and the other four empty (mtls_upstream_identity_fields: [verify, "
        "subject_dn]). The collection's upstream tiers look the certificate, DNs and serial of "
        "their known callers up by the certificate's fingerprint (mtls_upstream_known_callers, "
        "the default; the checks confirm that each path's proxy certificate is among them), "
        "except computed, where nginx computes them for every request. quiet, computed and lean "
        "are the roles planned by mtls.nginx.plan as more services beside the chain, each from "
        "the inventory and its variables in paths.json (scripts/bench/alternatives.yml). stunnel "
        "is TCP only: no identity headers; the check's client-sent X-Client-DN reached the "
        "backend as %r." % (checks.get("stunnel", {}).get("backend_saw_dn") or "n/a"),
        "Backend: one nginx (mtls-bench-backend) for every path, answering 200 with a 3-byte body "
        "and never closing a kept-alive connection. It echoes the identity headers it received only "
        "at /bench-check, where the checks above ask; the measured requests get the plain answer, "
        "so no path carries identity headers back through the tiers.",
        "Errors are wrk's: responses other than 2xx/3xx, and socket errors (connect, read, write, "
        "timeout at 10 s).",
    ]
    if others_before or others_after:
        out.append("Other containers were running on this machine during the measurement "
                   "(before: %s; after: %s): their load is part of the noise."
                   % (", ".join(others_before) or "none", ", ".join(others_after) or "none"))
    return out


def measure(args):
    info = load_paths()
    paths = [p for p in args.paths.split(",") if p]
    unknown = [p for p in paths if p not in info]
    if unknown or not paths:
        raise BenchError("unknown path(s) %s; choose from %s" % (", ".join(unknown) or "(none)", ",".join(ALL_PATHS)))
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    if not concurrencies or min(concurrencies) < 1:
        raise BenchError("--concurrency needs positive numbers, as 8,32,128")
    if args.rounds < 1 or args.duration < 1 or args.warmup < 0:
        raise BenchError("--rounds and --duration must be at least 1, --warmup at least 0")

    containers = {name: Container(name) for name in ALL}
    if docker_exec(LOAD, "sh", "-c", "command -v wrk", check=False).returncode != 0:
        raise BenchError("wrk is not installed in %s (scripts/bench/alternatives.yml installs it)" % LOAD)
    if docker_exec(LOAD, "sh", "-c", "command -v curl", check=False).returncode != 0:
        raise BenchError("curl is not installed in %s" % LOAD)

    started = datetime.datetime.now(datetime.timezone.utc)
    say("checking that every path answers and does mTLS: %s" % ", ".join(paths))
    checks = check_paths(paths, info, containers)
    machine = machine_facts(containers)
    deployed = collection_settings(containers)
    others_before = other_containers()
    total = len(paths) * len(concurrencies) * args.rounds
    say("measuring: %d round(s) × %d concurrency(ies) × %d path(s) = %d runs of %d s (+%d s warm-up), about %d min"
        % (args.rounds, len(concurrencies), len(paths), total, args.duration, args.warmup,
           round(total * (args.duration + args.warmup + 1.5) / 60.0 + 0.49)))
    runs = []
    number = 0
    for round_number in range(1, args.rounds + 1):
        for index, concurrency in enumerate(concurrencies):
            for position, name in enumerate(benchlib.rotated(paths, round_number - 1 + index)):
                number += 1
                warmup = warm_up(name, info, concurrency, args.warmup)
                record = measure_one(name, info, concurrency, args.duration, containers)
                record.update({"round": round_number, "position": position, "warmup": warmup})
                runs.append(record)
                # Raw runs as they come, so that a run that fails later leaves what was measured.
                with open(os.path.join(args.out, "runs.jsonl"), "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
                say("run %d/%d: round %d, %d conns, %-11s %8.0f req/s  p50 %7.2f ms  p99 %8.2f ms  "
                    "tier CPU %s ms/1k  new mTLS conns %s/1k  backend conns %s/1k  errors %d"
                    % (number, total, round_number, concurrency, name, record["rps"], record["p50_ms"],
                       record["p99_ms"], benchlib.fmt(record["tier_cpu_ms_per_1k"], 1),
                       benchlib.fmt(record["mtls_new_connections_per_1k"], 2),
                       benchlib.fmt(record["backend_new_connections_per_1k"], 2), record["errors_total"]))
    others_after = other_containers()

    settings = {"argv": args.argv.split() if args.argv else [], "rounds": args.rounds,
                "duration_s": args.duration, "warmup_s": args.warmup, "concurrencies": concurrencies,
                "paths": paths, "wrk": "wrk -t1 -c<N> -d<S>s --latency --timeout 10s"}
    control = []
    if os.path.exists(control_plane_file(args.out)):
        with open(control_plane_file(args.out), encoding="utf-8") as handle:
            control = json.load(handle)
    report = {
        "started_utc": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "finished_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "settings": settings, "paths": info, "checks": checks, "machine": machine,
        "collection_settings": deployed, "spoofed_dn": SPOOFED_DN,
        "control_plane": control,
        "summary": benchlib.summarize(runs, paths, concurrencies),
        "same_job": benchlib.same_job(runs, paths, concurrencies),
        "runs": runs,
    }
    report["notes"] = notes(settings, info, checks, os.cpu_count() or 0, deployed, others_before, others_after)
    for step in control:
        if step.get("label") == "idempotent rerun" and step.get("changed"):
            report["notes"].insert(0, "The idempotent rerun of mtls.nginx.site changed %d task(s), expected 0: "
                                      "see %s in this folder." % (step["changed"], step.get("log")))
    with open(os.path.join(args.out, "report.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    markdown = benchlib.render_markdown(report)
    with open(os.path.join(args.out, "report.md"), "w", encoding="utf-8") as handle:
        handle.write(markdown)
    benchlib.write_chart(report, os.path.join(args.out, "chart.png"))
    print()
    print(markdown)
    say("results: %s (report.json, report.md, chart.png)" % os.path.relpath(args.out, ROOT))
    if args.latest:
        # A relative link, so that the results folder can move as a whole.
        if os.path.islink(args.latest):
            os.unlink(args.latest)
        if not os.path.exists(args.latest):
            os.symlink(os.path.relpath(os.path.abspath(args.out), os.path.dirname(os.path.abspath(args.latest))),
                       args.latest)
            say("latest: %s" % os.path.relpath(args.latest, ROOT))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    timed_parser = sub.add_parser("timed")
    timed_parser.add_argument("--out", required=True)
    timed_parser.add_argument("--label", required=True)
    timed_parser.add_argument("--not-measured", metavar="REASON")
    timed_parser.add_argument("command", nargs=argparse.REMAINDER)
    measure_parser = sub.add_parser("measure")
    measure_parser.add_argument("--out", required=True)
    measure_parser.add_argument("--rounds", type=int, default=5)
    measure_parser.add_argument("--duration", type=int, default=8)
    measure_parser.add_argument("--warmup", type=int, default=2)
    measure_parser.add_argument("--concurrency", default="8,32,128")
    measure_parser.add_argument("--paths", default=",".join(ALL_PATHS))
    measure_parser.add_argument("--argv", default="", help="the options scripts/bench/run was given, for the report")
    measure_parser.add_argument("--latest", help="a symbolic link to point at the results folder")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    try:
        if args.action == "timed":
            timed(args)
        else:
            measure(args)
    except BenchError as error:
        sys.stderr.write("bench: %s\n" % error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
