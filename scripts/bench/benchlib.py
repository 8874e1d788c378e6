"""The pure logic of scripts/bench/run: reading wrk's output and the counters the benchmark
takes from the containers, medians and per-round ratios, the Markdown report and the chart.

bench.py drives the containers and calls these; test_benchlib.py tests them without any.
Standard library only (matplotlib is imported by write_chart alone)."""

import re
import statistics

# --- wrk ---------------------------------------------------------------------------------------

# wrk prints times with these units (format_time_us in wrk's units.c), and request counts and
# rates with k/M/G suffixes (format_metric).
_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
_METRIC_SUFFIXES = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}


def time_ms(text):
    """A wrk time such as '485.00us', '1.10ms', '2.00s' or '1.00m', in milliseconds."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)\s*", text)
    if not match:
        raise ValueError("not a wrk time: %r" % text)
    return float(match.group(1)) * _TIME_UNITS_MS[match.group(2)]


def parse_wrk(text):
    """The numbers of one `wrk --latency` run: requests, duration, requests/s, the latency
    percentiles wrk prints (50, 75, 90, 99, in ms) and the errors it counts. Raises ValueError,
    naming what is missing, when the output is not a finished wrk run."""
    result = {}
    match = re.search(r"^\s*(\d+) requests in ([0-9.]+(?:us|ms|s|m|h)),", text, re.M)
    if not match:
        raise ValueError("wrk output has no 'N requests in T' line")
    result["requests"] = int(match.group(1))
    result["duration_s"] = time_ms(match.group(2)) / 1000.0
    match = re.search(r"^Requests/sec:\s*([0-9.]+)\s*$", text, re.M)
    if not match:
        raise ValueError("wrk output has no 'Requests/sec:' line")
    result["rps"] = float(match.group(1))

    latency = {}
    block = re.search(r"^\s*Latency Distribution\s*$(.*?)^\s*\d+ requests in", text, re.M | re.S)
    if not block:
        raise ValueError("wrk output has no 'Latency Distribution' (was --latency given?)")
    for percent, value in re.findall(r"^\s*([0-9.]+)%\s+(\S+)\s*$", block.group(1), re.M):
        latency[percent] = time_ms(value)
    for needed in ("50", "99"):
        if needed not in latency:
            raise ValueError("wrk output has no %s%% latency" % needed)
    result["latency_ms"] = latency
    result["p50_ms"] = latency["50"]
    result["p99_ms"] = latency["99"]

    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non_2xx_3xx": 0}
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if match:
        for key, value in zip(("connect", "read", "write", "timeout"), match.groups()):
            errors[key] = int(value)
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if match:
        errors["non_2xx_3xx"] = int(match.group(1))
    result["errors"] = errors
    result["errors_total"] = sum(errors.values())
    return result


# --- counters ----------------------------------------------------------------------------------

def parse_snmp(text):
    """/proc/net/snmp as {'Tcp': {'ActiveOpens': 12, ...}, 'Udp': {...}, ...}: each protocol
    has a line of names, then a line of values."""
    tables = {}
    lines = [line.split() for line in text.splitlines() if line.strip()]
    for names, values in zip(lines[0::2], lines[1::2]):
        if names[0] != values[0]:
            raise ValueError("unexpected /proc/net/snmp layout near %r" % " ".join(names))
        tables[names[0].rstrip(":")] = {name: int(value) for name, value in zip(names[1:], values[1:])}
    return tables


def parse_haproxy_stat(text, proxy, service="FRONTEND"):
    """One row of HAProxy's `show stat` CSV (the '# pxname,svname,...' header), as a dict of
    strings, for proxy `proxy` and service `service`."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise ValueError("not HAProxy `show stat` output")
    header = lines[0][2:].split(",")
    for line in lines[1:]:
        fields = line.split(",")
        if len(fields) >= 2 and fields[0] == proxy and fields[1] == service:
            return dict(zip(header, fields))
    raise ValueError("HAProxy `show stat` has no row %s/%s" % (proxy, service))


def parse_haproxy_info(text):
    """HAProxy's `show info` ('Name: value' lines) as a dict of strings."""
    found = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            found[key.strip()] = value.strip()
    return found


def count_stunnel_handshakes(text):
    """(full, resumed) TLS handshakes that stunnel accepted, from its log at debug = info."""
    full = len(re.findall(r"TLS accepted: new session negotiated", text))
    resumed = len(re.findall(r"TLS accepted: previous session reused", text))
    return full, resumed


def count_nginx_sessions(text):
    """From access log lines in the collection's upstream format ('conn=N reused=r|.'): the
    requests, the requests made on a resumed TLS session, and how many connection serials those
    carried. nginx's $connection counts per worker, so serials from two workers can coincide:
    the last number is a lower bound."""
    requests = 0
    resumed_requests = 0
    resumed_conns = set()
    for conn, reused in re.findall(r"\bconn=(\d+) reused=(\S)", text):
        requests += 1
        if reused == "r":
            resumed_requests += 1
            resumed_conns.add(conn)
    return {"requests": requests, "resumed_requests": resumed_requests,
            "resumed_connection_serials": len(resumed_conns)}


def count_lines(text):
    """The lines of a log excerpt (a last line without its newline counts too)."""
    return len([line for line in text.splitlines() if line.strip()])


def known_caller_fingerprints(text):
    """The certificate fingerprints (SHA-1, lower-case hex) that an upstream tier's
    known-callers.conf looks up: the keys of its maps ('    <40 hex> "value";')."""
    return set(re.findall(r"^\s+([0-9a-f]{40})\s+\"", text, re.M))


def pem_sha1(text):
    """The SHA-1 (lower-case hex) of the first certificate in PEM text: nginx's
    $ssl_client_fingerprint of that certificate, the key of the known callers' maps."""
    import base64
    import hashlib
    match = re.search(r"-----BEGIN CERTIFICATE-----\s*(.*?)\s*-----END CERTIFICATE-----", text, re.S)
    if not match:
        raise ValueError("no certificate in the PEM text")
    der = base64.b64decode("".join(match.group(1).split()))
    return hashlib.sha1(der).hexdigest()  # nosec - nginx's key, not a signature


def describe_known_callers(found):
    return "known callers: %d entr%s in %s, this path's certificate %s" % (
        found["entries"], "y" if found["entries"] == 1 else "ies", found["file"],
        "listed" if found["listed"] else "not listed")


def parse_cpu_stat(text):
    """cgroup v2 cpu.stat as {'usage': µs, 'user': µs, 'system': µs}."""
    values = dict(re.findall(r"^(\w+) (\d+)$", text, re.M))
    return {key: int(values[key + "_usec"]) for key in ("usage", "user", "system") if key + "_usec" in values}


def service_of(relative):
    """The unit a cgroup below a container's own names ('system.slice/nginx.service' ->
    'nginx.service'); '' for the container's cgroup itself."""
    parts = [part for part in relative.strip("/").split("/") if part and part != "."]
    return parts[-1] if parts else ""


def cpu_delta_by_service(before, after):
    """{unit: {'usage', 'user', 'system'} in ms} between two readings of a container's cgroups
    (each {relative cgroup path: parse_cpu_stat()}), for the leaf units (services, scopes),
    and 'other' for what the container spent outside them (its total less theirs)."""
    total = after.get("", {}).get("usage", 0) - before.get("", {}).get("usage", 0)
    found = {}
    paths = [path for path in after if path]
    leaves = [path for path in paths if not any(other != path and other.startswith(path + "/") for other in paths)]
    for path in leaves:
        name = service_of(path)
        if not name or path not in before:
            continue
        delta = {key: (after[path].get(key, 0) - before[path].get(key, 0)) / 1000.0 for key in ("usage", "user", "system")}
        entry = found.setdefault(name, {"usage": 0.0, "user": 0.0, "system": 0.0})
        for key in delta:
            entry[key] += delta[key]
    other = total / 1000.0 - sum(entry["usage"] for entry in found.values())
    found["other"] = {"usage": max(other, 0.0), "user": None, "system": None}
    return found


def cgroup_cpu_candidates(container_id, proc_cgroup):
    """Files that may hold a container's CPU time, best first: cgroup v2's cpu.stat (usage_usec)
    under the systemd or cgroupfs driver's path, on a pure or a hybrid (…/unified) hierarchy,
    then cgroup v1's cpuacct.usage (ns); and the same below the paths /proc/<pid>/cgroup
    names, cut after the container's own cgroup (systemd inside moves itself into init.scope)."""
    relative = ["system.slice/docker-%s.scope" % container_id, "docker/%s" % container_id]
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and container_id in parts[2]:
            segments = parts[2].strip("/").split("/")
            cut = next(i for i, segment in enumerate(segments) if container_id in segment)
            relative.append("/".join(segments[:cut + 1]))
    candidates = []
    for rel in dict.fromkeys(relative):
        for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
            candidates.append(("cpu.stat", "%s/%s/cpu.stat" % (base, rel)))
    for rel in dict.fromkeys(relative):
        for base in ("/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct"):
            candidates.append(("cpuacct.usage", "%s/%s/cpuacct.usage" % (base, rel)))
    return candidates


def nginx_directives(text, names):
    """The statements of nginx config `text` whose directive is in `names`, in order and each
    once, as "directive arguments"; one inside an upstream block says which, since the same
    directive means another hop there ("upstream NAME: keepalive_timeout 4s")."""
    text = re.sub(r"#[^\n]*", "", text)
    # Quoted strings (log formats, JSON answers) may hold ; { and }.
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "''", text)
    found, blocks = [], []
    for body, end in re.findall(r"([^;{}]*)([;{}])", text):
        words = body.split()
        if end == "{":
            blocks.append(words)
        elif end == "}":
            if blocks:
                blocks.pop()
        elif words and words[0] in names:
            line = " ".join(words)
            upstream = [block[1] for block in blocks if len(block) == 2 and block[0] == "upstream"]
            if upstream:
                line = "upstream %s: %s" % (upstream[-1], line)
            if line not in found:
                found.append(line)
    return found


def parse_recap(text):
    """Sums over the hosts of an ansible-playbook PLAY RECAP ('host : ok=3 changed=1 ...')."""
    totals = {}
    for line in text.splitlines():
        if re.match(r"^\S+\s+:\s+ok=\d+", line):
            for key, value in re.findall(r"(\w+)=(\d+)", line):
                totals[key] = totals.get(key, 0) + int(value)
    return totals


def parse_timer(text):
    """Seconds of ansible.posix.timer's 'Playbook run took 0 days, 0 hours, 1 minutes, 5
    seconds' lines, added up (one per playbook that ran); None when there is none."""
    found = re.findall(r"Playbook run took (\d+) days, (\d+) hours, (\d+) minutes, (\d+) seconds", text)
    if not found:
        return None
    return sum(int(d) * 86400 + int(h) * 3600 + int(m) * 60 + int(s) for d, h, m, s in found)


# --- statistics ----------------------------------------------------------------------------------

def median(values):
    """The median of the values that are not None; None when there are none."""
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def per_1k(count, requests):
    """count per 1,000 requests; None when either is unknown or no request was made."""
    if count is None or not requests:
        return None
    return count * 1000.0 / requests


def per_request(count, requests):
    """count per request; None when either is unknown or no request was made."""
    if count is None or not requests:
        return None
    return count / float(requests)


def ratio(value, baseline):
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


# What the summary reports per path and concurrency: (key, name of the run's field).
SUMMARY_METRICS = (
    ("rps", "rps"),
    ("p50_ms", "p50_ms"),
    ("p99_ms", "p99_ms"),
    ("cpu_ms_per_1k", "tier_cpu_ms_per_1k"),
    ("new_conns_per_1k", "mtls_new_connections_per_1k"),
    ("backend_conns_per_1k", "backend_new_connections_per_1k"),
    ("full_handshakes_per_1k", "full_handshakes_per_1k"),
    ("resumed_handshakes_per_1k", "resumed_handshakes_per_1k"),
    ("proxy_log_lines_per_request", "proxy_log_lines_per_request"),
    ("upstream_log_lines_per_request", "upstream_log_lines_per_request"),
    ("proxy_dropped_logs_per_request", "proxy_dropped_logs_per_request"),
    ("upstream_dropped_logs_per_request", "upstream_dropped_logs_per_request"),
)
# The metrics compared with a baseline path, round by round.
RATIO_METRICS = ("rps", "p99_ms", "tier_cpu_ms_per_1k")
BASELINES = ("haproxy", "seed")


def ratios_by_round(runs, path, baseline, concurrency, metric):
    """{round: metric(path) / metric(baseline)} for each round in which both ran at this
    concurrency and the ratio is defined: each ratio compares two runs of the same round, made
    minutes apart at most, so slow drifts of the machine (other load, thermal state) cancel out."""
    by_round = {}
    for run in runs:
        if run["concurrency"] == concurrency and run["path"] in (path, baseline):
            by_round.setdefault(run["round"], {})[run["path"]] = run.get(metric)
    found = {}
    for round_number in sorted(by_round):
        pair = by_round[round_number]
        if path in pair and baseline in pair:
            value = ratio(pair[path], pair[baseline])
            if value is not None:
                found[round_number] = value
    return found


def round_ratios(runs, path, baseline, concurrency, metric):
    """metric(path) / metric(baseline), one value per round in which both ran at this
    concurrency, in round order (ratios_by_round)."""
    return list(ratios_by_round(runs, path, baseline, concurrency, metric).values())


# The same-job comparisons the report shows first: (path, baseline, what they compare). The
# first two are the collection against HAProxy doing the same job (the same identity headers,
# both logging every request on each hop, or neither logging); the third what the known
# callers' looked-up identity saves the collection over computing it for every request.
SAME_JOB = (
    ("chain", "haproxy-log", "the same job, both logging every request on each hop"),
    ("quiet", "haproxy", "the same job, neither logging"),
    ("chain", "computed", "the known callers' identity looked up (the default) against computed "
                          "for every request (mtls_upstream_known_callers: false)"),
)
# The metrics of the same-job comparisons, and how the report names them.
SAME_JOB_METRICS = (("rps", "req/s"), ("p99_ms", "p99"), ("tier_cpu_ms_per_1k", "CPU/req"))


def same_job(runs, paths, concurrencies, comparisons=SAME_JOB):
    """For each comparison of `comparisons` whose two paths were measured: its per-round ratios
    and their median, by concurrency and metric:
    [{"path", "baseline", "what", "rows": [{"concurrency", "metric", "by_round": {round: ratio},
    "median"}]}]."""
    found = []
    for path, baseline, what in comparisons:
        if path not in paths or baseline not in paths:
            continue
        rows = []
        for concurrency in concurrencies:
            for metric, _label in SAME_JOB_METRICS:
                by_round = ratios_by_round(runs, path, baseline, concurrency, metric)
                rows.append({"concurrency": concurrency, "metric": metric, "by_round": by_round,
                             "median": median(by_round.values())})
        found.append({"path": path, "baseline": baseline, "what": what, "rows": rows})
    return found


def service_cpu(runs, path, concurrency):
    """Median CPU ms per 1,000 requests of each unit of each tier container ({container:
    {unit: {'usage', 'user', 'system'}}}) over the runs of a path at a concurrency, from the
    runs' service_cpu_ms."""
    mine = [run for run in runs if run["path"] == path and run["concurrency"] == concurrency and run.get("service_cpu_ms")]
    found = {}
    for run in mine:
        for container, units in run["service_cpu_ms"].items():
            for unit, values in units.items():
                for key, value in values.items():
                    found.setdefault(container, {}).setdefault(unit, {}).setdefault(key, []).append(
                        per_1k(value, run["requests"]))
    return {container: {unit: {key: median(values) for key, values in keys.items()} for unit, keys in units.items()}
            for container, units in found.items()}


def summarize(runs, paths, concurrencies):
    """One row per (path, concurrency): medians over the rounds, summed errors, and the medians
    of the per-round ratios against each baseline path."""
    rows = []
    for concurrency in concurrencies:
        for path in paths:
            mine = [run for run in runs if run["path"] == path and run["concurrency"] == concurrency]
            if not mine:
                continue
            row = {"path": path, "concurrency": concurrency, "rounds": len(mine),
                   "requests": sum(run["requests"] for run in mine),
                   "errors": sum(run["errors_total"] for run in mine)}
            for key, field in SUMMARY_METRICS:
                row[key] = median(run.get(field) for run in mine)
            row["service_cpu_per_1k"] = service_cpu(runs, path, concurrency)
            row["ratios"] = {}
            for baseline in BASELINES:
                if baseline == path or baseline not in paths:
                    continue
                row["ratios"][baseline] = {
                    metric: median(round_ratios(runs, path, baseline, concurrency, metric))
                    for metric in RATIO_METRICS}
            rows.append(row)
    return rows


def rotated(items, offset):
    """items rotated left by offset: round r of the benchmark runs the paths in the order
    rotated(paths, r), so that each path takes every position in turn."""
    if not items:
        return []
    offset %= len(items)
    return list(items[offset:]) + list(items[:offset])


# --- report ------------------------------------------------------------------------------------

def fmt(value, digits=1, suffix=""):
    if value is None:
        return "n/a"
    if isinstance(value, int) and not isinstance(value, bool):
        return "%d%s" % (value, suffix)
    return "%.*f%s" % (digits, value, suffix)


def fmt_ratio(value):
    return "n/a" if value is None else "%.2f×" % value


def markdown_table(header, rows, align=None):
    """A Markdown table; align has one letter per column, l or r (default: the first column
    left, the others right, as for a table of numbers)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report):
    """report.md from report.json's content."""
    settings = report["settings"]
    out = ["# mtls.nginx benchmark, %s" % report["started_utc"], ""]
    out.append("`%s`: %d round(s) of %s s per path and concurrency, each after a %s s warm-up "
               "(not counted), at %s client connection(s), the paths in a rotated order each round. "
               "Load: `%s` in mtls-bench-load. Medians over the rounds; ratios are medians of "
               "per-round ratios (each compares two runs of the same round)."
               % (" ".join(["scripts/bench/run"] + settings["argv"]), settings["rounds"], fmt(settings["duration_s"], 0),
                  fmt(settings["warmup_s"], 0), ", ".join(str(c) for c in settings["concurrencies"]),
                  settings.get("wrk", "wrk -t1 -c<N> -d<S>s --latency")))
    out.append("")
    out += render_same_job(report)
    out.append("## Paths")
    out.append("")
    out.append(markdown_table(
        ["path", "what", "listens", "mTLS hop"],
        [[name, info["description"], "%s:%s" % (info["host"], info["port"]),
          ":%s" % info["upstream_port"] if info.get("upstream_port") else "none"]
         for name, info in report["paths"].items() if name in settings["paths"]], "llll"))
    out.append("")

    rows = report["summary"]
    for concurrency in settings["concurrencies"]:
        out.append("## %d connections" % concurrency)
        out.append("")
        table = []
        for row in (r for r in rows if r["concurrency"] == concurrency):
            table.append([row["path"], fmt(row["rps"], 0), fmt(row["p50_ms"], 2), fmt(row["p99_ms"], 2),
                          fmt(row["cpu_ms_per_1k"], 1), fmt(row["new_conns_per_1k"], 2),
                          fmt(row["full_handshakes_per_1k"], 2), fmt(row["resumed_handshakes_per_1k"], 2),
                          fmt(row.get("backend_conns_per_1k"), 2), "%d / %d" % (row["errors"], row["requests"])])
        out.append(markdown_table(
            ["path", "req/s", "p50 ms", "p99 ms", "tier CPU ms / 1k req", "new mTLS conns / 1k req",
             "full handshakes / 1k req", "resumed / 1k req", "backend conns / 1k req", "errors / requests"], table))
        out.append("")
        ratio_rows = []
        for row in (r for r in rows if r["concurrency"] == concurrency):
            cells = [row["path"]]
            for baseline in BASELINES:
                if baseline not in settings["paths"]:
                    continue
                ratios = row["ratios"].get(baseline)
                for metric in RATIO_METRICS:
                    cells.append("1×" if ratios is None else fmt_ratio(ratios[metric]))
            ratio_rows.append(cells)
        header = ["path"]
        for baseline in BASELINES:
            if baseline in settings["paths"]:
                header += ["req/s vs %s" % baseline, "p99 vs %s" % baseline, "CPU/req vs %s" % baseline]
        if len(header) > 1:
            out.append(markdown_table(header, ratio_rows))
            out.append("")
        cpu_rows = [row for row in rows if row["concurrency"] == concurrency and row.get("service_cpu_per_1k")]
        if cpu_rows:
            out.append("Where the tiers' CPU goes: ms per 1,000 requests of each unit in the tier containers "
                       "(their systemd services' cgroups; user + system time, user in brackets; medians):")
            out.append("")
            out.append(markdown_table(
                ["path"] + ["%s" % container for container in TIER_CONTAINERS],
                [[row["path"]] + [describe_units(row["service_cpu_per_1k"].get(container) or {})
                                  for container in TIER_CONTAINERS] for row in cpu_rows], "lll"))
            out.append("")

    checks = report.get("checks") or {}
    if checks:
        out.append("## Checks before measuring")
        out.append("")
        out.append(markdown_table(
            ["path", "answer", "backend saw X-Client-DN (the client sent %s)" % report.get("spoofed_dn", "its own"),
             "mTLS hop without a client certificate", "known callers of the upstream tier"],
            [[name, check["status"], check.get("backend_saw_dn") or "(none)",
              check.get("mtls_hop_without_client_certificate", "n/a"),
              "%d, this path's certificate %s" % (
                  check["known_callers"]["entries"],
                  "among them" if check["known_callers"]["listed"] else "not among them")
              if check.get("known_callers") else "n/a"] for name, check in checks.items()], "lrlll"))
        out.append("")

    out.append("## Control plane (mtls.nginx.site on the bench scenario)")
    out.append("")
    control = report.get("control_plane") or []
    if control:
        table = []
        for step in control:
            if step.get("measured", True):
                table.append([step["label"], fmt(step.get("wall_s"), 1, " s"),
                              fmt(step.get("playbook_s"), 0, " s"), fmt(step.get("changed")),
                              step.get("command", "")])
            else:
                table.append([step["label"], "not measured (%s)" % step.get("reason", "?"), "", "", ""])
        out.append(markdown_table(["step", "wall", "playbook (ansible.posix.timer)", "changed", "command"], table, "lrrrl"))
    else:
        out.append("not measured")
    out.append("")

    machine = report["machine"]
    out.append("## Machine and versions")
    out.append("")
    out.append(markdown_table(["what", "value"], [[key, value] for key, value in machine.items()], "ll"))
    out.append("")
    out.append("## Notes")
    out.append("")
    out += ["- " + note for note in report["notes"]]
    out.append("")
    return "\n".join(out)


# The containers whose CPU is a path's cost, as the report names them.
TIER_CONTAINERS = ("mtls-bench-proxy", "mtls-bench-upstream")


def describe_units(units, limit=4):
    """'nginx.service 61.2 (41.0); rsyslog.service 3.1 (1.2); other 0.4' for a container's units
    (service_cpu()), the costliest first, those under 0.05 ms left out, the rest summed."""
    present = sorted(((name, values) for name, values in units.items() if (values.get("usage") or 0) >= 0.05),
                     key=lambda item: (item[0] == "other", -(item[1].get("usage") or 0)))
    shown, rest = [], 0.0
    for name, values in present:
        if len(shown) < limit or name == "other":
            user = values.get("user")
            shown.append("%s %.1f%s" % (name, values["usage"], " (%.1f)" % user if user is not None else ""))
        else:
            rest += values["usage"]
    if rest:
        shown.append("more %.1f" % rest)
    return "; ".join(shown) or "n/a"


def render_same_job(report):
    """The same-job section: for each comparison, its per-round ratios and their median, by
    concurrency and metric; then what each path logged."""
    settings = report["settings"]
    comparisons = report.get("same_job") or []
    out = []
    if not comparisons:
        return out
    rounds = list(range(1, settings["rounds"] + 1))
    out.append("## Same job, round by round")
    out.append("")
    out.append("Each ratio divides the first path's number by the second's, both measured in the same "
               "round at the same concurrency; the median is over the rounds. Above 1× for req/s, and "
               "below 1× for p99 latency and tier CPU per request, is better for the first path.")
    out.append("")
    labels = dict(SAME_JOB_METRICS)
    for comparison in comparisons:
        out.append("### %s ÷ %s: %s" % (comparison["path"], comparison["baseline"], comparison["what"]))
        out.append("")
        table = []
        for row in comparison["rows"]:
            by_round = {int(key): value for key, value in row["by_round"].items()}
            table.append([row["concurrency"], labels.get(row["metric"], row["metric"])]
                         + [fmt_ratio(by_round.get(number)) for number in rounds] + ["**%s**" % fmt_ratio(row["median"])])
        out.append(markdown_table(["conns", "metric"] + ["round %d" % number for number in rounds] + ["median"],
                                  table, "rl" + "r" * (len(rounds) + 1)))
        out.append("")
    logged = []
    for name in settings["paths"]:
        info = report["paths"].get(name) or {}
        if not info.get("upstream_port"):
            continue
        cells = [name]
        for concurrency in settings["concurrencies"]:
            row = next((r for r in report["summary"] if r["path"] == name and r["concurrency"] == concurrency), None)
            if not info.get("logs"):
                cells.append("off")
            elif row is None:
                cells.append("n/a")
            else:
                cell = "%s / %s" % (fmt(row.get("proxy_log_lines_per_request"), 2),
                                    fmt(row.get("upstream_log_lines_per_request"), 2))
                if row.get("proxy_dropped_logs_per_request") is not None:
                    cell += " (dropped %s / %s)" % (
                        fmt(row.get("proxy_dropped_logs_per_request"), 3),
                        fmt(row.get("upstream_dropped_logs_per_request"), 3))
                cells.append(cell)
        logged.append(cells)
    if logged:
        out.append("Log lines written per request during the measured runs, proxy hop / upstream hop (medians; "
                   "1.00 / 1.00 is a line per request on each hop; the requests wrk abandons at the end of a run "
                   "are logged too), and for HAProxy the lines it dropped per request because the syslog socket "
                   "was full:")
        out.append("")
        out.append(markdown_table(["path"] + ["%d conns" % c for c in settings["concurrencies"]], logged))
        out.append("")
    return out


def _short_number(value):
    return "%.0f" % value if value >= 10 else "%.2f" % value


def write_chart(report, filename):
    """Two grouped bar charts: requests/s and p99 latency, per concurrency (groups) and path
    (bars)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = report["settings"]
    paths = list(settings["paths"])
    concurrencies = settings["concurrencies"]
    values = {(row["path"], row["concurrency"]): row for row in report["summary"]}
    figure, axes = plt.subplots(1, 2, figsize=(13, 5))
    width = 0.8 / max(len(paths), 1)
    # Log scales: the direct path is an order of magnitude above the others, the seed's latency
    # one above theirs.
    for axis, key, title in ((axes[0], "rps", "requests/s (median, log scale)"),
                             (axes[1], "p99_ms", "p99 latency, ms (median, log scale)")):
        for index, path in enumerate(paths):
            heights = [(values.get((path, c)) or {}).get(key) or 0 for c in concurrencies]
            positions = [i + (index - (len(paths) - 1) / 2.0) * width for i in range(len(concurrencies))]
            bars = axis.bar(positions, heights, width, label=path)
            axis.bar_label(bars, fmt=_short_number, fontsize=7, rotation=90, padding=2)
        axis.set_yscale("log")
        axis.margins(y=0.25)
        axis.set_xticks(range(len(concurrencies)))
        axis.set_xticklabels(["%d conns" % c for c in concurrencies])
        axis.set_title(title)
        axis.grid(axis="y", alpha=0.3)
    axes[0].legend()
    figure.suptitle("mtls.nginx benchmark %s (%d round(s) × %s s)"
                    % (report["started_utc"], settings["rounds"], fmt(settings["duration_s"], 0)))
    figure.tight_layout()
    figure.savefig(filename, dpi=100)
    plt.close(figure)
