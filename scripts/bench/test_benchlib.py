"""Unit tests of scripts/bench/benchlib.py: wrk's output, the counters, medians and per-round
ratios, the report. Run: (. scripts/env.sh && python -m pytest scripts/bench); pytest puts this
folder on sys.path, as running bench.py does."""

import pytest

import benchlib

WRK_CLEAN = """Running 2s test @ http://mtls-bench-proxy:8080/
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   649.96us  273.22us   5.54ms   83.58%
    Req/Sec    12.39k     1.24k   13.95k    66.67%
  Latency Distribution
     50%  605.00us
     75%  751.00us
     90%    0.92ms
     99%    1.54ms
  25871 requests in 2.10s, 6.98MB read
Requests/sec:  12320.41
Transfer/sec:      3.33MB
"""

WRK_ERRORS = """Running 8s test @ http://mtls-bench-proxy:8083/
  1 threads and 128 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   180.12ms  250.00ms   2.00s    90.00%
    Req/Sec   720.00    100.00     1.00k    70.00%
  Latency Distribution
     50%   95.31ms
     75%  200.00ms
     90%  500.00ms
     99%    1.20s
  5760 requests in 8.02s, 1.60MB read
  Socket errors: connect 3, read 2, write 1, timeout 4
  Non-2xx or 3xx responses: 12
Requests/sec:    718.20
Transfer/sec:    204.00KB
"""


def test_wrk_clean_run():
    result = benchlib.parse_wrk(WRK_CLEAN)
    assert result["requests"] == 25871
    assert result["duration_s"] == pytest.approx(2.10)
    assert result["rps"] == pytest.approx(12320.41)
    assert result["p50_ms"] == pytest.approx(0.605)
    assert result["p99_ms"] == pytest.approx(1.54)
    assert result["latency_ms"] == pytest.approx({"50": 0.605, "75": 0.751, "90": 0.92, "99": 1.54})
    assert result["errors_total"] == 0


def test_wrk_errors_and_seconds():
    result = benchlib.parse_wrk(WRK_ERRORS)
    assert result["p99_ms"] == pytest.approx(1200.0)
    assert result["errors"] == {"connect": 3, "read": 2, "write": 1, "timeout": 4, "non_2xx_3xx": 12}
    assert result["errors_total"] == 22


def test_wrk_without_latency_is_refused():
    text = "\n".join(line for line in WRK_CLEAN.splitlines()
                     if "%" not in line or "Thread" in line or "Latency " in line or "Req/Sec" in line)
    text = text.replace("  Latency Distribution\n", "")
    with pytest.raises(ValueError, match="Latency Distribution"):
        benchlib.parse_wrk(text)


def test_wrk_unfinished_is_refused():
    with pytest.raises(ValueError, match="requests in"):
        benchlib.parse_wrk("unable to connect to mtls-bench-proxy:8080 Connection refused\n")


@pytest.mark.parametrize("text, expected", [
    ("77.00us", 0.077), ("1.10ms", 1.1), ("2.00s", 2000.0), ("1.50m", 90000.0), ("3ms", 3.0)])
def test_time_units(text, expected):
    assert benchlib.time_ms(text) == pytest.approx(expected)


def test_time_garbage():
    with pytest.raises(ValueError):
        benchlib.time_ms("1.0 parsecs")


def test_snmp():
    text = ("Ip: Forwarding DefaultTTL\nIp: 1 64\n"
            "Tcp: RtoAlgorithm ActiveOpens PassiveOpens CurrEstab\nTcp: 1 12 345 -1\n")
    tables = benchlib.parse_snmp(text)
    assert tables["Tcp"]["PassiveOpens"] == 345
    assert tables["Tcp"]["CurrEstab"] == -1
    assert tables["Ip"]["DefaultTTL"] == 64


def test_haproxy_stat():
    text = ("# pxname,svname,scur,ssl_sess,ssl_reused_sess,\n"
            "mtls_bench_upstream,FRONTEND,0,17,5,\n"
            "backend,backend,0,,,\n")
    row = benchlib.parse_haproxy_stat(text, "mtls_bench_upstream")
    assert (row["ssl_sess"], row["ssl_reused_sess"]) == ("17", "5")
    with pytest.raises(ValueError, match="no row"):
        benchlib.parse_haproxy_stat(text, "elsewhere")


def test_stunnel_handshakes():
    text = ("LOG6[2]: TLS accepted: new session negotiated\n"
            "LOG6[3]: TLS accepted: previous session reused\n"
            "LOG6[4]: TLS accepted: previous session reused\n"
            "LOG5[4]: Connection closed\n")
    assert benchlib.count_stunnel_handshakes(text) == (1, 2)


def test_nginx_sessions():
    text = ('1.2.3.4 [x] "GET / HTTP/1.0" 200 verify=SUCCESS conn=4 reused=. TLSv1.3 rt=0.001\n'
            '1.2.3.4 [x] "GET / HTTP/1.0" 200 verify=SUCCESS conn=5 reused=r TLSv1.3 rt=0.001\n'
            '1.2.3.4 [x] "GET / HTTP/1.1" 200 verify=SUCCESS conn=6 reused=r TLSv1.3 rt=0.001\n'
            '1.2.3.4 [x] "GET / HTTP/1.1" 200 verify=SUCCESS conn=6 reused=r TLSv1.3 rt=0.001\n')
    assert benchlib.count_nginx_sessions(text) == {
        "requests": 4, "resumed_requests": 3, "resumed_connection_serials": 2}


def test_recap_and_timer():
    text = ("PLAY RECAP ****\n"
            "mtls-bench-proxy           : ok=27   changed=12   unreachable=0    failed=0    skipped=13\n"
            "mtls-bench-upstream        : ok=25   changed=1    unreachable=0    failed=0    skipped=12\n"
            "Playbook run took 0 days, 0 hours, 1 minutes, 5 seconds\n")
    assert benchlib.parse_recap(text)["changed"] == 13
    assert benchlib.parse_recap(text)["ok"] == 52
    assert benchlib.parse_timer(text) == 65
    assert benchlib.parse_timer("no timer here") is None


def test_median_and_per_1k():
    assert benchlib.median([3, None, 1, 2]) == 2
    assert benchlib.median([None]) is None
    assert benchlib.per_1k(5, 2500) == pytest.approx(2.0)
    assert benchlib.per_1k(None, 2500) is None
    assert benchlib.per_1k(5, 0) is None


def _run(path, round_number, rps, concurrency=8, p99=1.0, cpu=100.0, errors=0):
    return {"path": path, "round": round_number, "concurrency": concurrency, "rps": rps,
            "p50_ms": 0.5, "p99_ms": p99, "tier_cpu_ms_per_1k": cpu, "requests": int(rps * 8),
            "errors_total": errors, "mtls_new_connections_per_1k": 0.0, "backend_new_connections_per_1k": 0.25,
            "full_handshakes_per_1k": 0.0, "resumed_handshakes_per_1k": 0.0}


def test_ratios_are_taken_within_rounds():
    # The machine gets twice as fast in round 2: the medians of each path move, the per-round
    # ratio does not.
    runs = [_run("chain", 1, 1000), _run("haproxy", 1, 800), _run("chain", 2, 2000), _run("haproxy", 2, 1600),
            _run("chain", 3, 1100), _run("haproxy", 3, 1000)]
    ratios = benchlib.round_ratios(runs, "chain", "haproxy", 8, "rps")
    assert ratios == pytest.approx([1.25, 1.25, 1.1])
    assert benchlib.median(ratios) == pytest.approx(1.25)


def test_ratio_skips_rounds_without_the_baseline_and_other_concurrencies():
    runs = [_run("chain", 1, 1000), _run("haproxy", 1, 500), _run("chain", 2, 1000),
            _run("haproxy", 1, 100, concurrency=32)]
    assert benchlib.round_ratios(runs, "chain", "haproxy", 8, "rps") == [2.0]
    assert benchlib.round_ratios(runs, "chain", "haproxy", 32, "rps") == []


def test_summarize():
    runs = [_run("chain", r, rps, p99=p99, cpu=cpu, errors=1) for r, rps, p99, cpu in
            ((1, 1000, 2.0, 90.0), (2, 1200, 1.0, 80.0), (3, 900, 3.0, 100.0))]
    runs += [_run("haproxy", r, 1000, p99=2.0, cpu=100.0) for r in (1, 2, 3)]
    runs += [_run("seed", r, 100, p99=10.0, cpu=1000.0) for r in (1, 2, 3)]
    rows = benchlib.summarize(runs, ["chain", "haproxy", "seed"], [8])
    chain = rows[0]
    assert chain["path"] == "chain" and chain["rounds"] == 3
    assert chain["rps"] == 1000 and chain["p99_ms"] == 2.0 and chain["cpu_ms_per_1k"] == 90.0
    assert chain["errors"] == 3
    assert chain["ratios"]["haproxy"]["rps"] == pytest.approx(1.0)
    assert chain["ratios"]["seed"]["rps"] == pytest.approx(10.0)
    assert chain["ratios"]["seed"]["tier_cpu_ms_per_1k"] == pytest.approx(0.09)
    assert "haproxy" not in rows[1]["ratios"]
    assert rows[2]["ratios"]["haproxy"]["p99_ms"] == pytest.approx(5.0)


def test_summarize_without_baselines():
    rows = benchlib.summarize([_run("chain", 1, 1000)], ["chain"], [8])
    assert rows[0]["ratios"] == {}


def test_rotated():
    assert benchlib.rotated(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert benchlib.rotated(["a", "b", "c"], 4) == ["b", "c", "a"]
    assert benchlib.rotated([], 3) == []


def test_markdown_report():
    runs = [_run("chain", 1, 1000), _run("haproxy", 1, 800)]
    report = {
        "started_utc": "2026-01-01 00:00:00 UTC",
        "settings": {"argv": ["--smoke"], "rounds": 1, "duration_s": 2, "warmup_s": 2,
                     "concurrencies": [8], "paths": ["chain", "haproxy"]},
        "paths": {"chain": {"description": "the collection", "host": "p", "port": 8080, "upstream_port": 8443},
                  "haproxy": {"description": "HAProxy", "host": "p", "port": 8081, "upstream_port": 9443},
                  "direct": {"description": "limit", "host": "b", "port": 8000, "upstream_port": None}},
        "summary": benchlib.summarize(runs, ["chain", "haproxy"], [8]),
        "control_plane": [{"label": "first run", "measured": False, "reason": "containers existed"},
                          {"label": "idempotent rerun", "measured": True, "wall_s": 22.0, "playbook_s": 20,
                           "changed": 0, "command": "molecule converge -s bench"}],
        "machine": {"CPU": "AMD EPYC × 2"},
        "notes": ["2 CPUs shared"],
    }
    text = benchlib.render_markdown(report)
    assert "| chain | 1000 | 0.50 | 1.00 | 100.0 | 0.00 | 0.00 | 0.00 | 0.25 | 0 / 8000 |" in text
    assert "| chain | 1.25× | 1.00× | 1.00× |" in text
    assert "| haproxy | 1× | 1× | 1× |" in text
    assert "not measured (containers existed)" in text
    assert "| idempotent rerun | 22.0 s | 20 s | 0 | molecule converge -s bench |" in text
    assert "direct" not in text.split("## 8 connections", maxsplit=1)[0]
    assert "- 2 CPUs shared" in text


def test_cgroup_candidates_hybrid_host_with_systemd_inside():
    ident = "fe7f2d44"
    proc_cgroup = ("9:name=systemd:/docker/%s/init.scope\n2:cpuacct:/docker/%s\n"
                   "0::/docker/%s/init.scope\n" % (ident, ident, ident))
    candidates = benchlib.cgroup_cpu_candidates(ident, proc_cgroup)
    paths = [path for kind, path in candidates]
    assert candidates[0] == ("cpu.stat", "/sys/fs/cgroup/system.slice/docker-%s.scope/cpu.stat" % ident)
    assert "/sys/fs/cgroup/unified/docker/%s/cpu.stat" % ident in paths
    assert ("cpuacct.usage", "/sys/fs/cgroup/cpuacct/docker/%s/cpuacct.usage" % ident) in candidates
    # Never below the container's own cgroup (init.scope holds systemd alone).
    assert not any("init.scope" in path for path in paths)
    # cgroup v2 first: every cpu.stat candidate comes before any cpuacct.usage one.
    kinds = [kind for kind, path in candidates]
    assert kinds.index("cpuacct.usage") > max(i for i, kind in enumerate(kinds) if kind == "cpu.stat")


def test_cgroup_candidates_from_proc_for_other_layouts():
    ident = "abc123"
    candidates = benchlib.cgroup_cpu_candidates(ident, "0::/machine.slice/libpod-abc123.scope/container\n")
    assert ("cpu.stat", "/sys/fs/cgroup/machine.slice/libpod-abc123.scope/cpu.stat") in candidates


def test_nginx_directives_name_their_upstream_block():
    text = """# keepalive 1; in a comment
log_format x '$remote_addr;';
upstream backend {
    server 127.0.0.1:8000;
    keepalive 128;
    keepalive_timeout 4s;   # the backend hop
}
server {
    listen 8443 ssl;
    keepalive_timeout 75s;
    access_log /var/log/x.log x buffer=64k;
    location @refused { return 400 '{"error":"refused"}\\n'; }
    location / { proxy_http_version 1.1; }
    keepalive_timeout 75s;
}
"""
    names = ("keepalive", "keepalive_timeout", "access_log", "proxy_http_version")
    assert benchlib.nginx_directives(text, names) == [
        "upstream backend: keepalive 128",
        "upstream backend: keepalive_timeout 4s",
        "keepalive_timeout 75s",
        "access_log /var/log/x.log x buffer=64k",
        "proxy_http_version 1.1",
    ]


# --- same-job comparisons, logs, known callers, CPU by unit -----------------------------------------

def test_ratios_by_round_name_their_round():
    runs = [_run("chain", 1, 1100), _run("haproxy-log", 1, 1000), _run("chain", 2, 900),
            _run("chain", 3, 1300), _run("haproxy-log", 3, 1000)]
    assert benchlib.ratios_by_round(runs, "chain", "haproxy-log", 8, "rps") == pytest.approx({1: 1.1, 3: 1.3})
    # A baseline of 0 gives no ratio for that round, never a division by zero.
    runs.append(_run("chain", 4, 500))
    runs.append(dict(_run("haproxy-log", 4, 1000), rps=0))
    assert 4 not in benchlib.ratios_by_round(runs, "chain", "haproxy-log", 8, "rps")


def test_same_job_ratios_per_round_and_median():
    runs = []
    # Five rounds; the machine drifts (round 2 twice as fast), the ratios do not.
    for number, speed in zip(range(1, 6), (1.0, 2.0, 1.0, 1.0, 0.5)):
        runs += [_run("chain", number, 1200 * speed, p99=2.0, cpu=90.0),
                 _run("haproxy-log", number, 1000 * speed, p99=2.5, cpu=100.0),
                 _run("quiet", number, 1300 * speed, cpu=80.0),
                 _run("haproxy", number, 1100 * speed, cpu=88.0),
                 _run("computed", number, 1000 * speed, cpu=105.0)]
    # One round where the chain lost: the median is the middle ratio, not the mean.
    runs[0] = _run("chain", 1, 600, p99=2.0, cpu=90.0)
    paths = ["chain", "haproxy-log", "quiet", "haproxy", "computed"]
    found = benchlib.same_job(runs, paths, [8, 32])
    assert [(c["path"], c["baseline"]) for c in found] == [("chain", "haproxy-log"), ("quiet", "haproxy"),
                                                           ("chain", "computed")]
    both_log = found[0]
    row = next(r for r in both_log["rows"] if r["concurrency"] == 8 and r["metric"] == "rps")
    assert row["by_round"] == pytest.approx({1: 0.6, 2: 1.2, 3: 1.2, 4: 1.2, 5: 1.2})
    assert row["median"] == pytest.approx(1.2)
    p99 = next(r for r in both_log["rows"] if r["concurrency"] == 8 and r["metric"] == "p99_ms")
    assert p99["median"] == pytest.approx(0.8)
    cpu = next(r for r in found[1]["rows"] if r["concurrency"] == 8 and r["metric"] == "tier_cpu_ms_per_1k")
    assert cpu["median"] == pytest.approx(80.0 / 88.0)
    lookup = next(r for r in found[2]["rows"] if r["concurrency"] == 8 and r["metric"] == "rps")
    assert lookup["median"] == pytest.approx(1.2)
    # No run at 32 connections: the rows are there, empty.
    empty = next(r for r in both_log["rows"] if r["concurrency"] == 32 and r["metric"] == "rps")
    assert empty["by_round"] == {} and empty["median"] is None


def test_same_job_leaves_out_comparisons_not_measured():
    runs = [_run("chain", 1, 1000), _run("haproxy", 1, 900)]
    assert benchlib.same_job(runs, ["chain", "haproxy"], [8]) == []
    found = benchlib.same_job(runs, ["chain", "computed"], [8])
    assert [c["baseline"] for c in found] == ["computed"]
    assert all(row["median"] is None for row in found[0]["rows"])


def test_same_job_section_comes_first_in_the_report():
    runs = []
    for number in (1, 2, 3):
        runs += [dict(_run("chain", number, 1100), proxy_log_lines_per_request=1.0, upstream_log_lines_per_request=1.001),
                 dict(_run("haproxy-log", number, 1000), proxy_log_lines_per_request=0.99,
                      upstream_log_lines_per_request=1.0)]
    runs[2] = dict(_run("chain", 2, 1000), proxy_log_lines_per_request=1.0, upstream_log_lines_per_request=1.0)
    paths = ["chain", "haproxy-log"]
    report = {
        "started_utc": "2026-01-01 00:00:00 UTC",
        "settings": {"argv": [], "rounds": 3, "duration_s": 8, "warmup_s": 2, "concurrencies": [8], "paths": paths},
        "paths": {"chain": {"description": "the collection", "host": "p", "port": 8080, "upstream_port": 8443,
                            "logs": {"proxy": "a", "upstream": "b"}},
                  "haproxy-log": {"description": "HAProxy, logging", "host": "p", "port": 8085, "upstream_port": 9446,
                                  "logs": {"proxy": "c", "upstream": "c"}}},
        "summary": benchlib.summarize(runs, paths, [8]),
        "same_job": benchlib.same_job(runs, paths, [8]),
        "control_plane": [], "machine": {}, "notes": [],
    }
    text = benchlib.render_markdown(report)
    assert text.index("## Same job, round by round") < text.index("## Paths") < text.index("## 8 connections")
    assert "### chain ÷ haproxy-log: the same job, both logging every request on each hop" in text
    assert "| conns | metric | round 1 | round 2 | round 3 | median |" in text
    assert "| 8 | req/s | 1.10× | 1.00× | 1.10× | **1.10×** |" in text
    assert "| 8 | CPU/req | 1.00× | 1.00× | 1.00× | **1.00×** |" in text
    assert "| chain | 1.00 / 1.00 |" in text
    assert "| haproxy-log | 0.99 / 1.00 |" in text


def test_log_lines_and_per_request():
    assert benchlib.count_lines("a\nb\n\nc") == 3
    assert benchlib.count_lines("") == 0
    assert benchlib.per_request(1001, 1000) == pytest.approx(1.001)
    assert benchlib.per_request(None, 1000) is None
    assert benchlib.per_request(3, 0) is None


KNOWN_CALLERS = """# Managed by the mtls.nginx collection: ...
# 2 known certificate(s).
map $ssl_client_fingerprint $__mtls_u_cert_mtls_upstream {
    default $ssl_client_escaped_cert;
    0a1b2c3d4e5f60718293a4b5c6d7e8f901234567 "-----BEGIN%20CERTIFICATE-----%0A";
    ffeeddccbbaa99887766554433221100ffeeddcc "-----BEGIN%20CERTIFICATE-----%0A";
}
map $ssl_client_fingerprint $__mtls_u_s_dn_mtls_upstream {
    default $ssl_client_s_dn;
    0a1b2c3d4e5f60718293a4b5c6d7e8f901234567 "CN=mtls-bench-proxy";
    ffeeddccbbaa99887766554433221100ffeeddcc "CN=other";
}
"""


def test_known_caller_fingerprints():
    assert benchlib.known_caller_fingerprints(KNOWN_CALLERS) == {
        "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567", "ffeeddccbbaa99887766554433221100ffeeddcc"}
    empty = "map $ssl_client_fingerprint $__mtls_u_cert_x {\n    default $ssl_client_escaped_cert;\n}\n"
    assert benchlib.known_caller_fingerprints(empty) == set()
    found = {"entries": 1, "file": "/etc/nginx/mtls/mtls-upstream/known-callers.conf", "listed": True}
    assert benchlib.describe_known_callers(found) == (
        "known callers: 1 entry in /etc/nginx/mtls/mtls-upstream/known-callers.conf, this path's certificate listed")


def test_cpu_by_unit():
    assert benchlib.parse_cpu_stat("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n") == {
        "usage": 1500, "user": 1000, "system": 500}
    assert benchlib.service_of("system.slice/nginx.service") == "nginx.service"
    assert benchlib.service_of("") == ""

    def stat(usage, user):
        return {"usage": usage, "user": user, "system": usage - user}

    before = {"": stat(10000, 6000), "init.scope": stat(1000, 500), "system.slice": stat(9000, 5500),
              "system.slice/nginx.service": stat(8000, 5000), "system.slice/rsyslog.service": stat(1000, 500)}
    after = {"": stat(60000, 36000), "init.scope": stat(1000, 500), "system.slice": stat(57000, 35000),
             "system.slice/nginx.service": stat(50000, 30000), "system.slice/rsyslog.service": stat(7000, 5000),
             "system.slice/new.service": stat(500, 500)}
    delta = benchlib.cpu_delta_by_service(before, after)
    # The leaves only (system.slice holds nothing of its own), a unit that appeared since is
    # left to 'other', and other is the container's total less its units'.
    assert delta["nginx.service"] == pytest.approx({"usage": 42.0, "user": 25.0, "system": 17.0})
    assert delta["rsyslog.service"] == pytest.approx({"usage": 6.0, "user": 4.5, "system": 1.5})
    assert delta["init.scope"]["usage"] == pytest.approx(0.0)
    assert "system.slice" not in delta and "new.service" not in delta
    assert delta["other"]["usage"] == pytest.approx(50.0 - 42.0 - 6.0)

    runs = [dict(_run("chain", number, 1000), requests=requests,
                 service_cpu_ms={"mtls-bench-proxy": {"nginx.service": {"usage": usage, "user": usage / 2, "system": usage / 2}}})
            for number, requests, usage in ((1, 1000, 50.0), (2, 2000, 80.0), (3, 1000, 45.0))]
    per_1k = benchlib.service_cpu(runs, "chain", 8)
    assert per_1k["mtls-bench-proxy"]["nginx.service"]["usage"] == pytest.approx(45.0)
    assert benchlib.describe_units({"nginx.service": {"usage": 45.04, "user": 30.0, "system": 15.0},
                                    "other": {"usage": 0.5, "user": None, "system": None},
                                    "init.scope": {"usage": 0.0, "user": 0.0, "system": 0.0}}) == (
        "nginx.service 45.0 (30.0); other 0.5")


def test_paths_json_and_the_run_script_agree():
    """Every path of paths.json is one that scripts/bench/run's --paths takes, in the same order,
    and each says how bench.py counts what it reads."""
    import json
    import os
    import re
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "paths.json"), encoding="utf-8") as handle:
        paths = json.load(handle)["bench_paths"]
    with open(os.path.join(here, "run"), encoding="utf-8") as handle:
        listed = re.search(r"^all_paths=(\S+)$", handle.read(), re.M).group(1).split(",")
    assert listed == list(paths)
    for name, info in paths.items():
        assert (info.get("logs") is None) == (info.get("log_flush") is None), name
        if info.get("upstream_port"):
            assert info.get("handshakes") in ("nginx_log", "passive_opens", "haproxy_stats", "stunnel_log", "seed_log"), name
        if "variant" in info:
            assert info["tiers"]["upstream"] in info["known_callers_file"], name
    for path, baseline, _what in benchlib.SAME_JOB:
        assert path in paths and baseline in paths
    # The same job: the HAProxy pair differs only in logging, so do chain and quiet.
    assert "logs" in paths["haproxy-log"] and "logs" not in paths["haproxy"]
    assert "logs" in paths["chain"] and paths["quiet"]["variant"] == {"mtls_nginx_access_log": False}
    assert paths["computed"]["variant"] == {"mtls_upstream_known_callers": False}


def test_pem_sha1_is_nginx_fingerprint():
    import base64
    import hashlib
    der = bytes(range(256)) * 3
    body = base64.b64encode(der).decode()
    pem = "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % "\n".join(
        body[i:i + 64] for i in range(0, len(body), 64))
    # The first certificate of a chain file.
    other = pem.replace(body[:4], "AAAA", 1)
    assert benchlib.pem_sha1(pem + other) == hashlib.sha1(der).hexdigest()
    with pytest.raises(ValueError):
        benchlib.pem_sha1("no certificate")


def test_haproxy_info_and_dropped_logs_in_the_report():
    info = benchlib.parse_haproxy_info("Name: HAProxy\nVersion: 2.6.12\nDroppedLogs: 336\nUptime_sec: 253\n")
    assert info["DroppedLogs"] == "336" and info["Name"] == "HAProxy"
    runs = [dict(_run("haproxy-log", 1, 1000), proxy_log_lines_per_request=0.98, upstream_log_lines_per_request=0.97,
                 proxy_dropped_logs_per_request=0.02, upstream_dropped_logs_per_request=0.031),
            dict(_run("chain", 1, 1000), proxy_log_lines_per_request=1.0, upstream_log_lines_per_request=1.0)]
    paths = ["chain", "haproxy-log"]
    report = {"settings": {"rounds": 1, "concurrencies": [8], "paths": paths},
              "paths": {"chain": {"upstream_port": 1, "logs": {"proxy": "a"}},
                        "haproxy-log": {"upstream_port": 2, "logs": {"proxy": "b"}}},
              "summary": benchlib.summarize(runs, paths, [8]), "same_job": benchlib.same_job(runs, paths, [8])}
    text = "\n".join(benchlib.render_same_job(report))
    assert "| haproxy-log | 0.98 / 0.97 (dropped 0.020 / 0.031) |" in text
    assert "| chain | 1.00 / 1.00 |" in text
