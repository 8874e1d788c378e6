"""Day 2 under live traffic, shared by the scenarios that run the collection's day-2 playbooks while
load generators send requests through proxy tiers (rotation: one service; fleet: the mesh).

A ``Load`` runs molecule/resources/files/mtls-loadgen.py on each given host, through the proxy tier
listening at the given URL, for as long as the test module runs; ``phase(name)`` names what happens
next on every host, and the final account, per phase and in total, comes from ``stop()``."""

import datetime
import json
import os
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

LOADGEN = "/run/mtls-loadgen"
RESULT = LOADGEN + "/result.json"
SETTLE = 4  # seconds of traffic after each command, before the next phase
COUNTERS = ("sent", "get", "post", "failed", "stale_retries", "idle_closed", "connections_opened")


def name_of(host):
    return host.backend.get_hostname()


class Load:
    """The load generators on ``targets``, a list of (host, URL of the proxy tier to send through)."""

    def __init__(self, targets, rate, connections=4, duration_max=2400):
        self.hosts = [host for host, _url in targets]
        for host, url in targets:
            host.run("systemctl stop mtls-loadgen; systemctl reset-failed mtls-loadgen; rm -rf %s" % LOADGEN)
            host.run_expect([0], "install -d -m 0755 %s && echo warmup > %s/phase" % (LOADGEN, LOADGEN))
            host.run_expect([0], "systemd-run --unit=mtls-loadgen --collect /usr/bin/python3 /usr/local/bin/mtls-loadgen "
                                 "--url %s --rate %d --connections %d --duration-max %d --phase-file %s/phase "
                                 "--stop-file %s/stop --out %s" % (url, rate, connections, duration_max, LOADGEN,
                                                                   LOADGEN, RESULT))
        time.sleep(SETTLE)

    def phase(self, name):
        for host in self.hosts:
            host.run_expect([0], "echo %s > %s/phase" % (name, LOADGEN))

    def stop(self):
        """Stop every generator and return ``{host: result}`` once each has written its last account."""
        for host in self.hosts:
            host.run("touch %s/stop" % LOADGEN)
        results = {}
        for host in self.hosts:
            for _second in range(60):
                result = json.loads(host.file(RESULT).content_string)
                if not result["running"]:
                    break
                time.sleep(1)
            results[name_of(host)] = result
        return results


def account(results):
    """The per-phase account of one or several generators' results, summed, as lines of a table,
    and the totals: sent, POST, failed, stale (resent once after a kept-alive connection died under
    it), closed (idle connections found closed by nginx before reuse), conns (opened), p99 (the
    worst of the generators')."""
    phases, order = {}, []
    for result in results:
        for entry in result["phases"]:
            if entry["name"] not in phases:
                order.append(entry["name"])
                phases[entry["name"]] = dict.fromkeys(COUNTERS, 0, ) | {"p99_ms": 0.0}
            for key in COUNTERS:
                phases[entry["name"]][key] += entry[key]
            phases[entry["name"]]["p99_ms"] = max(phases[entry["name"]]["p99_ms"], entry["p99_ms"] or 0)
    totals = dict.fromkeys(COUNTERS, 0) | {"p99_ms": 0.0}
    for result in results:
        for key in COUNTERS:
            totals[key] += result["totals"][key]
        totals["p99_ms"] = max(totals["p99_ms"], result["totals"]["p99_ms"] or 0)
    row = "%-20s %6d %6d %6d %6d %6d %6d %8.1f"
    lines = ["%-20s %6s %6s %6s %6s %6s %6s %8s" % ("phase", "sent", "POST", "failed", "stale", "closed", "conns", "p99 ms")]
    for name in order + ["total"]:
        entry = totals if name == "total" else phases[name]
        lines.append(row % (name, entry["sent"], entry["post"], entry["failed"], entry["stale_retries"],
                            entry["idle_closed"], entry["connections_opened"], entry["p99_ms"]))
    return lines, order, totals


def age_controller_crl(pki, name):
    """Re-sign the controller's CRL ``name`` (in the CA directory ``pki``) as if it had been made six
    days ago: same number and revocations, next update in one day, so it is due for renewal
    (mtls_pki_crl_renew_before_days 2)."""
    stem = name[:-len(".crl")]
    with open(os.path.join(pki, name), "rb") as handle:
        crl = x509.load_pem_x509_crl(handle.read())
    with open(os.path.join(pki, stem + ".key"), "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(crl.issuer)
               .last_update(now - datetime.timedelta(days=6)).next_update(now + datetime.timedelta(days=1)))
    for extension in crl.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    for revoked in crl:
        builder = builder.add_revoked_certificate(revoked)
    with open(os.path.join(pki, name), "wb") as handle:
        handle.write(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def crl_number(crl):
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
