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
