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

A service's identity is ``spiffe://<trust domain>/<name>``.
"""

from __future__ import annotations

import re

from ansible_collections.mtls.nginx.plugins.module_utils import _values

_SERVICE_KEYS = {"name", "group", "backend_url", "port", "calls"}
_CALL_KEYS = {"service", "port"}
# Lower case only: a service name is also a path segment of its SPIFFE ID, which is case-sensitive.
_SERVICE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")


def spiffe_id(trust_domain, service):
    return "spiffe://%s/%s" % (trust_domain, service)


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


def _calls(name, service, services, problems):
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
        return {"problems": ["mtls_mesh: must be a dict with trust_domain and services"], "edges": [], "hosts": {}}
    unknown = sorted(set(declaration) - {"trust_domain", "services"})
    if unknown:
        problems.append("mtls_mesh: unknown key(s) %s (allowed: services, trust_domain)" % ", ".join(map(str, unknown)))
    trust_domain = declaration.get("trust_domain")
    reason = _problem_of(_values.hostname, trust_domain)
    if reason or not isinstance(trust_domain, str) or trust_domain != trust_domain.lower():
        problems.append("mtls_mesh.trust_domain: %r must be a lower-case DNS name%s"
                        % (trust_domain, " (it %s)" % reason if reason else ""))
    services = _services(declaration, problems)
    hosts_of = {name: _check_service(name, service, groups, problems) for name, service in services.items()}
    calls_of = {name: _calls(name, service, services, problems) for name, service in services.items()}

    # Every port a host would listen on, and what for: a port used twice is a problem.
    users = {}
    for name, service in services.items():
        for host in hosts_of[name]:
            if _problem_of(_values.port, service.get("port")) is None:
                users.setdefault(host, {}).setdefault(int(service["port"]), []).append(
                    "the upstream tier of %s" % name)
            for call in calls_of[name]:
                users.setdefault(host, {}).setdefault(call["port"], []).append(
                    "%s calling %s" % (name, call["service"]))
    for host in sorted(users):
        for port_number, used_by in sorted(users[host].items()):
            if len(used_by) > 1:
                problems.append("host %s: port %d is used twice, by %s" % (host, port_number, " and by ".join(used_by)))

    if problems:
        return {"problems": problems, "edges": [], "hosts": {}}

    edges = [{"caller": name, "callee": call["service"], "port": call["port"]}
             for name in services for call in calls_of[name]]
    callers_of = {name: [edge["caller"] for edge in edges if edge["callee"] == name] for name in services}
    hosts = {}
    for name, service in services.items():
        for host in hosts_of[name]:
            entry = hosts.setdefault(host, {"upstreams": [], "proxies": []})
            entry["upstreams"].append({
                "service": name,
                "spiffe_id": spiffe_id(trust_domain, name),
                "server_name": "%s.%s" % (name, trust_domain),
                "port": int(service["port"]),
                "backend_url": service["backend_url"],
                "allowed_callers": [spiffe_id(trust_domain, caller) for caller in callers_of[name]],
            })
            for call in calls_of[name]:
                callee = services[call["service"]]
                entry["proxies"].append({
                    "caller": name,
                    "callee": call["service"],
                    "spiffe_id": spiffe_id(trust_domain, name),
                    "port": call["port"],
                    "upstream_name": "%s.%s" % (call["service"], trust_domain),
                    "upstream_servers": ["%s:%d" % (callee_host, int(callee["port"]))
                                         for callee_host in hosts_of[call["service"]]],
                })
    return {"problems": [], "edges": edges, "hosts": hosts}
