# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service graph of a fleet (``mtls_mesh``): checked as a whole, then turned into what each
host runs. Pure data in, pure data out, so that the controller computes it once per run and
every problem is found before any host changes.

The declaration::

    trust_domain: mesh.internal
    services:
      - name: orders                    # a DNS label: the service's identity and its names
        group: orders                   # the inventory group whose hosts run it
        backend_url: http://127.0.0.1:8000
        port: 8443                      # where its upstream tier listens
        calls:                          # the services it calls, each on a loopback port
          - service: billing
            port: 9001

A service's identity is ``spiffe://<trust domain>/<name>``. Its certificates carry it as a URI
SAN and, since nginx 1.22 and 1.26 expose no URI SAN to the config, as their only subject field
(``CN=spiffe://...``), which the upstream tiers allow-list and forward. The collection issues such
a subject only from the declaration (the tiers' preflights refuse it anywhere else).
"""

from __future__ import annotations

import re

from ansible_collections.mtls.nginx.plugins.module_utils import _values

# upstream / proxy: settings of the service's upstream tiers and of its listeners (checked by the plan, _plan).
_SERVICE_KEYS = {"name", "group", "backend_url", "port", "calls", "upstream", "proxy", "local_group"}
_DECLARATION_KEYS = {"trust_domain", "services", "upstream", "proxy"}
_CALL_KEYS = {"service", "port"}
# Lower case only: a service name is also a path segment of its SPIFFE ID, which is case-sensitive.
_SERVICE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
# The identity is a certificate's common name too, which X.509 limits to 64 characters.
_COMMON_NAME_MAX = 64
# The prefix of every file, directory and nginx name that the declaration makes on a host.
CONFIG_PREFIX = "mtls-mesh-"
# Where the listeners of a service with a local_group are: unix sockets in a directory per service
# that only that group (and root) may enter, so no other local user can call as that service.
SOCKET_DIR = "/run/mtls-nginx"
# A POSIX user or group name, as Debian's adduser takes them.
_UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")


def socket_path(caller, callee):
    return "%s/%s/%s.sock" % (SOCKET_DIR, caller, callee)


def spiffe_id(trust_domain, service):
    return "spiffe://%s/%s" % (trust_domain, service)


def subject(trust_domain, service):
    """The subject DN of a service certificate, as nginx's ``$ssl_client_s_dn`` shows it."""
    return "CN=" + spiffe_id(trust_domain, service)


def subject_alt_names(trust_domain, service):
    return ["DNS:%s.%s" % (service, trust_domain), "URI:" + spiffe_id(trust_domain, service)]


def upstream_config_name(service):
    return CONFIG_PREFIX + service


def proxy_config_name(caller, callee):
    return "%s%s-to-%s" % (CONFIG_PREFIX, caller, callee)


def _problem_of(check, value):
    """Why ``value`` fails one of _values' checks (which take strings), or None."""
    if value is None or value == "":
        return "is missing"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return "must be a string or a number"
    reason = check(str(value))
    return "is wrong: %s" % reason if reason else None


def _services(declaration, problems):
    """The well-formed service entries, by name, in declaration order."""
    services = declaration.get("services")
    if not isinstance(services, list) or not services:
        problems.append("mtls_mesh.services: must be a non-empty list of services")
        return {}
    found = {}
    for index, service in enumerate(services):
        where = "mtls_mesh.services[%d]" % index
        if not isinstance(service, dict):
            problems.append("%s: must be a dict with name, group, backend_url, port and calls" % where)
            continue
        name = service.get("name")
        if isinstance(name, str) and name:
            where = "service %s" % name
        unknown = sorted(set(service) - _SERVICE_KEYS)
        if unknown:
            allowed = ", ".join(sorted(_SERVICE_KEYS))
            problems.append("%s: unknown key(s) %s (allowed: %s)" % (where, ", ".join(map(str, unknown)), allowed))
        if not isinstance(name, str) or not _SERVICE_NAME.match(name):
            problems.append("%s: the name %r is not a valid DNS label (lower-case letters, digits and "
                            "'-', at most 63, not starting or ending with '-')" % (where, name))
            continue
        if name in found:
            problems.append("service %s: declared twice" % name)
            continue
        found[name] = service
    return found


def _check_service(name, service, groups, problems):
    group = service.get("group")
    if not isinstance(group, str) or not group:
        problems.append("service %s: group must name the inventory group whose hosts run it" % name)
        hosts = []
    else:
        hosts = list(groups.get(group) or [])
        if not hosts:
            problems.append("service %s has no hosts: the inventory group %r %s" % (
                name, group, "is empty" if group in groups else "does not exist"))
    reason = _problem_of(_values.backend_url, service.get("backend_url"))
    if reason:
        problems.append("service %s: backend_url %r %s" % (name, service.get("backend_url"), reason))
    reason = _problem_of(_values.port, service.get("port"))
    if reason:
        problems.append("service %s: port %r %s" % (name, service.get("port"), reason))
    return hosts


def _local_group(name, service, problems):
    group = service.get("local_group")
    if group is None:
        return None
    if not isinstance(group, str) or not _UNIX_NAME.match(group):
        problems.append("service %s: local_group %r is not a unix group name (lower-case letters, digits, '_' and '-', "
                        "at most 32)" % (name, group))
        return None
    return group


def _calls(name, service, services, problems, sockets=False):
    calls = service.get("calls", [])
    if calls is None:
        calls = []
    if not isinstance(calls, list):
        problems.append("service %s: calls must be a list of {service, port}" % name)
        return []
    good, seen = [], set()
    for index, call in enumerate(calls):
        where = "service %s: calls[%d]" % (name, index)
        if not isinstance(call, dict):
            problems.append("%s: must be a dict with service and port" % where)
            continue
        unknown = sorted(set(call) - _CALL_KEYS)
        if unknown:
            problems.append("%s: unknown key(s) %s (allowed: port, service)" % (where, ", ".join(map(str, unknown))))
        callee = call.get("service")
        if callee not in services:
            problems.append("service %s calls %r, which is not a declared service" % (name, callee))
            continue
        if callee in seen:
            problems.append("service %s calls %s twice" % (name, callee))
            continue
        seen.add(callee)
        if sockets:
            # Its callers reach the listener through a unix socket that only its group may open.
            if call.get("port") is not None:
                problems.append("service %s: calls[%d] takes no port: with local_group, its listeners are unix "
                                "sockets (%s)" % (name, index, socket_path(name, callee)))
                continue
            good.append({"service": callee, "port": None, "socket": socket_path(name, callee)})
            continue
        reason = _problem_of(_values.port, call.get("port"))
        if reason:
            problems.append("service %s: the port %r for calling %s %s" % (name, call.get("port"), callee, reason))
            continue
        good.append({"service": callee, "port": int(call["port"])})
    return good


def plan(declaration, groups):
    """``{"problems": [...], "edges": [...], "hosts": {host: {...}}}`` for the declaration and
    the inventory's ``groups``. With problems, edges and hosts are empty: nothing may be
    deployed from a declaration that is wrong anywhere."""
    problems = []
    if not isinstance(declaration, dict):
        return {"problems": ["mtls_mesh: must be a dict with trust_domain and services"], "trust_domain": None,
                "edges": [], "services": {}, "hosts": {},
                "slots": {"upstreams": 0, "proxies": 0}}
    unknown = sorted(set(declaration) - _DECLARATION_KEYS)
    if unknown:
        problems.append("mtls_mesh: unknown key(s) %s (allowed: %s)"
                        % (", ".join(map(str, unknown)), ", ".join(sorted(_DECLARATION_KEYS))))
    trust_domain = declaration.get("trust_domain")
    reason = _problem_of(_values.hostname, trust_domain)
    if reason or not isinstance(trust_domain, str) or trust_domain != trust_domain.lower():
        problems.append("mtls_mesh.trust_domain: %r must be a lower-case DNS name%s"
                        % (trust_domain, " (it %s)" % reason if reason else ""))
    services = _services(declaration, problems)
    if not reason and isinstance(trust_domain, str):
        for name in services:
            identity = spiffe_id(trust_domain, name)
            if len(identity) > _COMMON_NAME_MAX:
                problems.append("service %s: its identity %s is %d characters, and a certificate's common name "
                                "holds at most %d; shorten the service name or the trust domain"
                                % (name, identity, len(identity), _COMMON_NAME_MAX))
    hosts_of = {name: _check_service(name, service, groups, problems) for name, service in services.items()}
    local_groups = {name: _local_group(name, service, problems) for name, service in services.items()}
    calls_of = {name: _calls(name, service, services, problems, "local_group" in service)
                for name, service in services.items()}

    # Every port a host would listen on, and what for: a port used twice is a problem.
    users = {}
    for name, service in services.items():
        for host in hosts_of[name]:
            if _problem_of(_values.port, service.get("port")) is None:
                users.setdefault(host, {}).setdefault(int(service["port"]), []).append(
                    "the upstream tier of %s" % name)
            for call in calls_of[name]:
                if call["port"] is not None:
                    users.setdefault(host, {}).setdefault(call["port"], []).append(
                        "%s calling %s" % (name, call["service"]))
    for host in sorted(users):
        for port_number, used_by in sorted(users[host].items()):
            if len(used_by) > 1:
                problems.append("host %s: port %d is used twice, by %s" % (host, port_number, " and by ".join(used_by)))

    if problems:
        return {"problems": problems, "trust_domain": trust_domain, "edges": [], "services": {}, "hosts": {},
                "slots": {"upstreams": 0, "proxies": 0}}

    edges = [dict({"caller": name, "callee": call["service"], "port": call["port"]},
                  **({"socket": call["socket"]} if call.get("socket") else {}))
             for name in services for call in calls_of[name]]
    callers_of = {name: [edge["caller"] for edge in edges if edge["callee"] == name] for name in services}
    summary = {name: {"spiffe_id": spiffe_id(trust_domain, name),
                      "server_name": "%s.%s" % (name, trust_domain),
                      "group": service["group"],
                      "hosts": hosts_of[name],
                      "port": int(service["port"]),
                      "calls": [call["service"] for call in calls_of[name]],
                      "callers": callers_of[name]}
               for name, service in services.items()}
    hosts = {}
    for name, service in services.items():
        for host in hosts_of[name]:
            entry = hosts.setdefault(host, {"upstreams": [], "proxies": []})
            entry["upstreams"].append({
                "service": name,
                "config_name": upstream_config_name(name),
                "spiffe_id": spiffe_id(trust_domain, name),
                "server_name": summary[name]["server_name"],
                "subject_alt_names": subject_alt_names(trust_domain, name),
                "port": int(service["port"]),
                "backend_url": service["backend_url"],
                "allowed_callers": [spiffe_id(trust_domain, caller) for caller in callers_of[name]],
                "allowed_subjects": [subject(trust_domain, caller) for caller in callers_of[name]],
            })
            for call in calls_of[name]:
                callee = call["service"]
                entry["proxies"].append({
                    "caller": name,
                    "callee": callee,
                    "config_name": proxy_config_name(name, callee),
                    "spiffe_id": spiffe_id(trust_domain, name),
                    "common_name": spiffe_id(trust_domain, name),
                    "subject_alt_names": subject_alt_names(trust_domain, name),
                    "port": call["port"],
                    "socket": call.get("socket"),
                    "local_group": local_groups[name],
                    "upstream_group": services[callee]["group"],
                    "upstream_name": summary[callee]["server_name"],
                    "upstream_servers": ["%s:%d" % (callee_host, summary[callee]["port"])
                                         for callee_host in hosts_of[callee]],
                })
    # What a caller host can try beyond its declared edges: each caller service with a listener
    # (and so a certificate) here, against every service it does not call (itself included).
    for host, entry in hosts.items():
        first_listener = {}
        for proxy in entry["proxies"]:
            first_listener.setdefault(proxy["caller"], proxy["config_name"])
        entry["undeclared"] = [
            {"caller": caller, "callee": other, "config_name": config_name,
             "host": summary[other]["hosts"][0], "port": summary[other]["port"],
             "server_name": summary[other]["server_name"]}
            for caller, config_name in first_listener.items()
            for other in services if other not in summary[caller]["calls"]]
    # The most upstream tiers and listeners any one host has: a play loops over as many slots on
    # every host (the same loop everywhere keeps Ansible's hosts in step, see playbooks/site.yml).
    slots = {kind: max([len(entry[kind]) for entry in hosts.values()] or [0]) for kind in ("upstreams", "proxies")}
    return {"problems": [], "trust_domain": trust_domain, "edges": edges, "services": summary, "hosts": hosts,
            "slots": slots}


def _cell(expected, observed):
    shown = {expected} | set(observed)
    if shown == {expected}:
        return str(expected)
    return "%s!%s" % (expected, "/".join(sorted(str(value) for value in shown - {expected})))


def edge_of(item):
    """``(caller, callee, identity)`` of what ``mtls.nginx.verify`` tried a declared edge through: a
    proxy tier's record (a mesh caller's listener, or a single service's proxy tier, whose caller is
    its config name and callee its upstream name) or a listener of :func:`plan`. The identity is
    what the callee's backend must see: the SPIFFE ID of a mesh caller, the subject DN of a
    certificate of the collection's CA, nothing for one brought as a file."""
    if "kind" not in item:
        return item.get("caller"), item.get("callee"), item.get("spiffe_id")
    identity = item["identity"]["spiffe_id"]
    if not identity and item["key"]["source"] in ("managed", "pkcs11"):
        identity = "CN=" + item["identity"]["common_name"]
    return (item.get("service") or item["name"], item.get("callee") or item["upstream"]["name"], identity)


def observations(tried, expect_identity=True):
    """What each request of ``mtls.nginx.verify`` observed. ``tried``: per caller host,
    ``{host, declared, undeclared}``, the results of its ``uri`` requests through its proxy tiers
    (each item a tier record, :func:`edge_of`) and of its ``tls_probe`` requests over the
    undeclared pairs. A declared edge observes its HTTP status, or ``id`` when it answered 200
    without the caller's identity, or ``none`` without an answer; an undeclared pair its
    status, or ``tls`` when the handshake failed."""
    seen = []
    for entry in tried:
        host = entry.get("host")
        for result in entry.get("declared") or []:
            caller, callee, identity = edge_of(result.get("item", {}))
            status = result.get("status", -1)
            observed, detail = status, ""
            if not isinstance(status, int) or status <= 0:
                observed, detail = "none", result.get("msg", "")
            elif status == 200 and expect_identity and identity and \
                    ('"%s"' % identity) not in (result.get("content") or ""):
                observed, detail = "id", "the answer does not carry %s" % identity
            seen.append({"caller": caller, "callee": callee, "host": host,
                         "expected": 200, "observed": observed, "detail": detail})
        for result in entry.get("undeclared") or []:
            item = result.get("item", {})
            status = result.get("http_status")
            seen.append({"caller": item.get("caller"), "callee": item.get("callee"), "host": host,
                         "expected": 403, "observed": status if status is not None else "tls",
                         "detail": "" if status is not None else (result.get("error") or "")})
    return seen


def local_differences(tried):
    """What ``mtls.nginx.verify`` found wrong when it opened each listener kept to one service (a
    mesh service's local_group) as local users: one message per user that connected where it
    should be refused, or was refused where it should connect (its own group)."""
    differences = []
    for entry in tried:
        for result in entry.get("local") or []:
            record, trial = result.get("item", [{}, {}])
            observed = "connected" if result.get("rc") == 0 else "refused"
            if observed != trial.get("expect"):
                differences.append("%s -> %s on %s: a local user of the group %s%s was %s by %s, expected %s%s" % (
                    record.get("service"), record.get("callee"), entry.get("host"), trial.get("group"),
                    " (service %s)" % trial["service"] if trial.get("service") else "", observed,
                    (record.get("probe") or {}).get("socket"), trial.get("expect"),
                    " (%s)" % result.get("stdout", "").strip() if observed == "refused" else ""))
    return differences


def matrix(plan_result, tried, expect_identity=True):
    """The caller x callee matrix of what ``mtls.nginx.verify`` expected and observed
    (``observations``). Returns ``{"lines": [...], "differences": [...]}``: the table, and one
    message per request whose observation differs from what the declaration expects, naming
    the edge and the host."""
    found = observations(tried, expect_identity)
    # The services of a mesh plan (also within a whole plan, mtls.nginx.plan) as rows and columns,
    # then the single service's proxy tiers as rows and its upstream names as columns.
    declared = list((plan_result.get("mesh") or {}).get("services") or plan_result.get("services") or {})
    services, callers = list(declared), list(declared)
    for seen in found:
        if seen["callee"] not in services:
            services.append(seen["callee"])
        if seen["caller"] not in callers:
            callers.append(seen["caller"])
    cells = {}
    differences = []
    for seen in found:
        key = (seen["caller"], seen["callee"])
        expected = seen["expected"]
        cells.setdefault(key, (expected, []))
        if str(seen["observed"]) != str(expected):
            cells[key][1].append(seen["observed"])
            differences.append("%s -> %s from %s: expected %s, observed %s%s" % (
                seen["caller"], seen["callee"], seen["host"], expected, seen["observed"],
                " (%s)" % seen["detail"] if seen.get("detail") else ""))
    callers = [name for name in callers if any(key[0] == name for key in cells)]
    width = max([len(name) for name in callers] + [len("caller \\ callee")])
    rows = [[_cell(*cells[(caller, callee)]) if (caller, callee) in cells else "-" for callee in services]
            for caller in callers]
    column = max([len(name) for name in services] + [len(cell) for row in rows for cell in row] + [3])
    lines = ["%-*s  %s" % (width, "caller \\ callee", "  ".join("%-*s" % (column, name) for name in services))]
    for caller, row in zip(callers, rows):
        lines.append("%-*s  %s" % (width, caller, "  ".join("%-*s" % (column, cell) for cell in row)))
    lines.append("200: a declared edge answered with the caller's identity at the backend; 403: refused, "
                 "as undeclared; expected!observed where they differ; -: no listener or certificate to try")
    dot = graph(declared, found)
    local = local_differences(tried)
    tried_local = sum(len(entry.get("local") or []) for entry in tried)
    if tried_local:
        lines.append("Listeners kept to their service's local group: %d local users tried, %d as expected"
                     % (tried_local, tried_local - len(local)))
    return {"lines": lines, "differences": differences + local, "dot": dot}


def _quoted(text):
    return '"%s"' % str(text).replace("\\", "\\\\").replace('"', '\\"')


def graph(services, found):
    """What ``mtls.nginx.verify`` observed as a Graphviz DOT graph: the services (and the single
    service's callers and callees) as nodes; each declared edge green when every caller host got
    its 200, red with what was observed otherwise; each pair that is not declared but answered
    something else than 403 (reachable) red and dashed. Pairs refused as expected are not drawn."""
    nodes = list(services)
    edges = {}
    for seen in found:
        for name in (seen["caller"], seen["callee"]):
            if name not in nodes:
                nodes.append(name)
        key = (seen["caller"], seen["callee"])
        entry = edges.setdefault(key, {"expected": seen["expected"], "observed": [], "hosts": []})
        if str(seen["observed"]) != str(seen["expected"]):
            entry["observed"].append((seen["host"], "%s from %s" % (seen["observed"], seen["host"])))
        entry["hosts"].append(seen["host"])
    # By host, whatever order the hosts' results came in (the play's hosts are in the order they
    # joined the plan's group, which is the order their tasks ended).
    for entry in edges.values():
        entry["observed"] = [text for dummy, text in sorted(entry["observed"])]
    lines = ["digraph mtls_nginx_verify {",
             '  graph [rankdir=LR, label="mtls.nginx.verify: green, declared and answered; red, declared and '
             'failing; red dashed, not declared but reachable", labelloc=t, fontname="sans-serif"];',
             '  node [shape=box, style="rounded,filled", fillcolor="#f4f4f4", fontname="sans-serif"];',
             '  edge [fontname="sans-serif", fontsize=10];']
    lines.extend("  %s;" % _quoted(name) for name in nodes)
    for (caller, callee), entry in sorted(edges.items()):
        if entry["expected"] == 200:
            if entry["observed"]:
                lines.append("  %s -> %s [color=red, penwidth=2, label=%s];" % (
                    _quoted(caller), _quoted(callee), _quoted("; ".join(entry["observed"]))))
            else:
                lines.append("  %s -> %s [color=green4, penwidth=2];" % (_quoted(caller), _quoted(callee)))
        elif entry["observed"]:
            lines.append("  %s -> %s [color=red, style=dashed, label=%s];" % (
                _quoted(caller), _quoted(callee), _quoted("not declared: " + "; ".join(entry["observed"]))))
    lines.append("}")
    return "\n".join(lines) + "\n"
