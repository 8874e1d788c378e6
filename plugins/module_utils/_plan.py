# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan: every tier of every host, from the whole inventory, checked as a whole.

Two ways to say what runs where, and both may be used in one inventory:

- one service: the hosts of the groups ``mtls_upstreams`` and ``mtls_proxies`` (or those named
  by ``mtls_upstream_group`` / ``mtls_proxy_group``), configured by the roles' variables;
- a service mesh: ``mtls_mesh`` declares the services, the group of each and who calls whom
  (:mod:`_mesh`); each host gets the upstream tier of every service it runs and a loopback
  listener for every service those call. Mesh tiers take their settings from the declaration
  and the roles' defaults, never from the single service's variables.

:func:`plan` turns the inventory into one record per tier (:mod:`_tier`) and every problem at
once: each tier's values, a declaration's mistakes, two tiers of a host on one port or under one
name, a backend that is another tier's listener, a proxy that will not meet its upstream's
certificate name or keep-alive, CA settings that differ between hosts. ``mtls.nginx.site``,
``mtls.nginx.verify`` and every day-2 playbook work from these records, never from group names.

Pure Python, data in and data out (the filter ``mtls.nginx.plan`` reads the inventory and the
roles' defaults and calls it).
"""

from __future__ import annotations

import json

from ansible_collections.mtls.nginx.plugins.module_utils import _mesh, _tier, _values

# The roles whose variables the plan reads, by prefix, and the role of each prefix.
ROLES = ("upstream", "proxy", "nginx", "pki")
_ROLE_NAMES = {"upstream": "upstream", "proxy": "proxy", "nginx": "nginx_common", "pki": "pki"}
# What the mesh declaration decides for its tiers; the rest may be tuned in mtls_mesh.upstream /
# mtls_mesh.proxy and per service, and otherwise comes from the roles' defaults.
MESH_OWNED = {
    "upstream": {"config_name", "listen", "server_name", "subject_alt_names", "backend_url", "locations",
                 "default_server", "certificate_file", "private_key_file", "private_key_passphrase",
                 "client_ca_file", "crl_file", "forwarded_cert", "rotate_probe_from", "pkcs11_key_label"},
    "proxy": {"config_name", "listen", "upstream_group", "upstream_port", "upstream_servers", "upstream_name",
              "common_name", "subject_alt_names", "certificate_file", "private_key_file",
              "private_key_passphrase", "trusted_ca_file", "crl_file", "cross_tier_checks", "pkcs11_key_label"},
}
MESH_KEY_SOURCES = ("managed", "pkcs11")


def _prefixed(variables, role):
    """A host's variables of one role, by suffix."""
    prefix = "mtls_%s_" % role
    return {name[len(prefix):]: value for name, value in variables.items() if name.startswith(prefix)}


def _shared(hosts, name, default, problems):
    """A setting every host must agree on (the CA, the mesh declaration): its value, or a problem
    naming two hosts that disagree."""
    found = {}
    for host, variables in hosts.items():
        if name in variables:
            found.setdefault(json.dumps(variables[name], sort_keys=True, default=str), (host, variables[name]))
    if len(found) > 1:
        (first, _v1), (second, _v2) = list(found.values())[:2]
        problems.append("%s differs between hosts %s and %s: it is one setting for the whole inventory; set it "
                        "once, in group_vars/all" % (name, first, second))
    return list(found.values())[0][1] if found else default


def _options(hosts):
    """The groups of the single service: mtls_upstream_group and mtls_proxy_group where the
    inventory or -e names them."""
    options = {}
    for kind in _tier.KINDS:
        name = "%s_group" % kind
        values = [variables["mtls_" + name] for variables in hosts.values() if variables.get("mtls_" + name)]
        options[name] = str(values[0]) if values else _tier.DEFAULT_GROUPS[kind]
    return options


def _host_problem(host, message):
    return "%s: %s" % (host, message)


class _Planner:
    def __init__(self, inventory, defaults, known):
        self.groups = {name: list(members or []) for name, members in (inventory.get("groups") or {}).items()}
        self.hosts = inventory.get("hosts") or {}
        self.defaults = defaults
        self.known = known
        self.problems = []
        self.warnings = []
        self.options = _options(self.hosts)
        self.records = {host: [] for host in self.hosts}

    def nginx(self, host):
        values = dict(self.defaults.get("nginx") or {})
        values.update(_prefixed(self.hosts.get(host) or {}, "nginx"))
        return values

    def unknown(self, unknown_as):
        """Variables with a role's prefix that the role does not have: misspelt names."""
        out = self.problems if unknown_as == "error" else self.warnings
        seen = set()
        for host in sorted(self.hosts):
            for role in ROLES:
                known = self.known.get(role)
                if known is None:
                    continue
                for key in sorted(_prefixed(self.hosts[host], role)):
                    name = "mtls_%s_%s" % (role, key)
                    if key in known or key in _tier.PLAYBOOK_VARIABLES.get(role, ()) or name in seen:
                        continue
                    seen.add(name)
                    out.append("%s (set for %s): not a variable of mtls.nginx.%s%s"
                               % (name, host, _ROLE_NAMES[role], _tier.near(key, known, "mtls_%s_" % role)))

    def add(self, host, kind, values, model, mesh=None, name_of=None):
        record, problems = _tier.record(kind, host, values, self.nginx(host), model=model, mesh=mesh,
                                        groups=self.groups, options=self.options, name_of=name_of)
        for message in problems:
            message = _host_problem(host, message) if model == "single" else message
            if message not in self.problems:
                self.problems.append(message)
        self.records[host].append(record)
        return record

    def single(self):
        for kind, group in (("upstream", self.options["upstream_group"]), ("proxy", self.options["proxy_group"])):
            for host in self.groups.get(group) or []:
                if host not in self.hosts:
                    continue
                values = dict(self.defaults.get(kind) or {})
                values.update({key: value for key, value in _prefixed(self.hosts.get(host) or {}, kind).items()
                               if key not in _tier.PLAYBOOK_VARIABLES[kind]})
                self.add(host, kind, values, "single")

    def mesh(self):
        before = len(self.problems)
        declaration = _shared(self.hosts, "mtls_mesh", None, self.problems)
        if declaration is None:
            return None
        planned = _mesh.plan(declaration, self.groups)
        self.problems.extend(planned["problems"])
        tunables = {kind: self._tunables(declaration, kind, "mtls_mesh.%s" % kind) for kind in _tier.KINDS}
        per_service = {}
        for service in (declaration.get("services") if isinstance(declaration, dict) else None) or []:
            if isinstance(service, dict) and isinstance(service.get("name"), str):
                per_service[service["name"]] = {
                    kind: self._tunables(service, kind, "mtls_mesh service %s: %s" % (service["name"], kind))
                    for kind in _tier.KINDS}
        if len(self.problems) > before:
            return planned
        for host in sorted(planned["hosts"]):
            if host not in self.hosts:
                continue
            entry = planned["hosts"][host]
            for upstream in entry["upstreams"]:
                values = self._mesh_values("upstream", tunables, per_service, upstream["service"])
                values.update({
                    "config_name": upstream["config_name"],
                    "listen": [str(upstream["port"])],
                    "server_name": upstream["server_name"],
                    "subject_alt_names": upstream["subject_alt_names"],
                    "backend_url": upstream["backend_url"],
                    # Exactly the declared callers; an empty list admits no one.
                    "locations": [{"path": "/", "allowed_subjects": upstream["allowed_subjects"],
                                   "allowed_fingerprints": [], "listed_only": True}],
                })
                self.add(host, "upstream", values, "mesh", mesh=upstream,
                         name_of=self._mesh_name(upstream["service"], "upstream"))
            for proxy in entry["proxies"]:
                values = self._mesh_values("proxy", tunables, per_service, proxy["caller"])
                values.update({
                    "config_name": proxy["config_name"],
                    # A unix socket only the service's group may open, or a loopback port.
                    "listen": (["unix:%s" % proxy["socket"]] if proxy.get("socket")
                               else ["127.0.0.1:%d" % proxy["port"]]),
                    "upstream_group": proxy["upstream_group"],
                    "upstream_servers": proxy["upstream_servers"],
                    "upstream_name": proxy["upstream_name"],
                    # The caller service's identity, which the callee's upstream tier admits and forwards.
                    "common_name": proxy["common_name"],
                    "subject_alt_names": proxy["subject_alt_names"],
                })
                self.add(host, "proxy", values, "mesh", mesh=proxy,
                         name_of=self._mesh_name(proxy["caller"], "proxy"))
        return planned

    @staticmethod
    def _mesh_name(service, kind):
        return lambda key: "mtls_mesh service %s: %s.%s" % (service, kind, key)

    def _tunables(self, container, kind, where):
        value = container.get(kind) if isinstance(container, dict) else None
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problems.append("%s: %s is not a dict of %s tier settings" % (where, _values.show(value), kind))
            return {}
        known = self.known.get(kind)
        good = {}
        for key in sorted(value):
            if key in MESH_OWNED[kind]:
                self.problems.append("%s.%s: the declaration decides it for every mesh tier" % (where, key))
            elif known is not None and key not in known:
                self.problems.append("%s.%s: not a setting of the %s tier%s" % (where, key, kind, _tier.near(key, known)))
            elif key == "certificate_source" and value[key] not in MESH_KEY_SOURCES:
                self.problems.append("%s.certificate_source: %s is not one of %s (a mesh identity is issued by the "
                                     "collection's CA)" % (where, _values.show(value[key]), ", ".join(MESH_KEY_SOURCES)))
            else:
                good[key] = value[key]
        return good

    def _mesh_values(self, kind, tunables, per_service, service):
        values = dict(self.defaults.get(kind) or {})
        values.update(tunables[kind])
        values.update((per_service.get(service) or {}).get(kind) or {})
        return values

    def check_hosts(self):
        """Two tiers of one host under one name or on one port, and a backend that is a listener."""
        for host in sorted(self.records):
            names = {}
            ports = {}
            for record in self.records[host]:
                if record["name"] in names:
                    self.problems.append(_host_problem(host, "the config name %s is used twice, by the %s and by "
                                                             "the %s" % (record["name"], names[record["name"]],
                                                                         record["label"])))
                names.setdefault(record["name"], record["label"])
                for listen in record["listen"]:
                    port = _tier.port_of(listen)
                    if port is not None:
                        ports.setdefault(port, []).append(record)
            for port, users in sorted(ports.items()):
                defaults = [r for r in users if r["kind"] == "upstream" and r.get("default_server")]
                if (len(users) > 1 and any(r["kind"] == "proxy" for r in users)) or len(defaults) > 1:
                    self.problems.append(_host_problem(host, "port %d is used twice, by the %s" % (
                        port, " and by the ".join(_unique_labels(users)))))
            self._shared_callers(host)
            for record in self.records[host]:
                if record["kind"] != "upstream" or not _tier.is_loopback_url(record["backend_url"]):
                    continue
                port = _tier.port_of_url(record["backend_url"])
                for other in ports.get(port, []):
                    self.problems.append(_host_problem(host, "the backend_url %s of the %s is the listener of the %s "
                                                             "on this host: verified callers would be forwarded into "
                                                             "it" % (record["backend_url"], record["label"],
                                                                     other["label"])))

    def _shared_callers(self, host):
        """Two caller identities on one host whose listeners any local process may use: each
        could call as the other. A mesh service's local_group keeps its listeners to itself."""
        callers = {}
        for record in self.records[host]:
            if record["kind"] == "proxy":
                callers.setdefault(record.get("service") or record["name"], []).append(record)
        groups = {name: record["local_access"]["group"] for name, records in callers.items() for record in records
                  if record.get("local_access")}
        for name, records in callers.items():
            for record in records:
                if record.get("local_access"):
                    record["local_access"]["trials"].extend(
                        {"group": group, "expect": "refused", "service": other}
                        for other, group in sorted(groups.items()) if group != record["local_access"]["group"])
        open_to_all = sorted(name for name, records in callers.items()
                             if any(not record.get("local_access") for record in records))
        if len(callers) > 1 and open_to_all:
            self.warnings.append(_host_problem(host, "the listeners of %s are open to every local process, so a "
                                                     "process of %s can call as them; give each mesh service on a "
                                                     "shared host a local_group in mtls_mesh"
                                               % (", ".join(open_to_all), " or ".join(sorted(callers)))))

    def listeners(self):
        """The upstream tiers of every host, by (host, port) they listen on."""
        found = {}
        for host, records in self.records.items():
            for record in records:
                if record["kind"] == "upstream":
                    for listen in record["listen"]:
                        found.setdefault((host, _tier.port_of(listen)), []).append(record)
        return found

    def link(self):
        """Who calls whom, as records: each proxy tier's upstream tiers (those listening where it
        forwards to), each upstream tier's callers, and the checks between the two."""
        listeners = self.listeners()
        for host in sorted(self.records):
            for proxy in self.records[host]:
                if proxy["kind"] != "proxy":
                    continue
                for message in link_proxy(proxy, listeners):
                    message = _host_problem(host, message)
                    if message not in self.problems:
                        self.problems.append(message)
        for host in sorted(self.records):
            for upstream in self.records[host]:
                if upstream["kind"] == "upstream":
                    self._probe_from(upstream)

    def _probe_from(self, upstream):
        """The callers that send the rotation gate's request: the hosts rotate_probe_from names,
        else the first caller."""
        chosen = upstream["rotate"].get("probe_from")
        if chosen is None:
            upstream["rotate"]["probes"] = upstream["callers"][:1]
            return
        chosen = [chosen] if isinstance(chosen, str) else list(chosen)
        probes = []
        for host in chosen:
            found = [caller for caller in upstream["callers"] if caller["host"] == host]
            if not found:
                self.problems.append(_host_problem(upstream["host"], "mtls_upstream_rotate_probe_from: %s has no "
                                                                     "proxy tier that calls the %s"
                                                                     % (host, upstream["label"])))
            probes.extend(found[:1])
        upstream["rotate"]["probes"] = probes


def link_proxy(proxy, listeners):
    """Give the proxy tier ``proxy`` its peers, the upstream tiers listening where it forwards to
    (``listeners``, by host and port), add itself to their callers and the names of their identity
    headers to those it clears; returns the problems between them (:func:`_tier.cross_tier_problems`)."""
    peers = []
    for server in proxy["upstream"]["servers"]:
        target, _sep, port = str(server).rpartition(":")
        candidates = listeners.get((target, int(port) if port.isdigit() else None), [])
        for upstream in candidates:
            # Several upstream tiers may share a port by SNI: the one that serves the proxy's name.
            if len(candidates) > 1 and proxy["upstream"]["name"].lower() not in upstream["server_names"]:
                continue
            peers.append((server, upstream))
    proxy["peers"] = [_peer(server, upstream) for server, upstream in peers]
    proxy["cleared_headers"] = _tier._unique(
        proxy["cleared_headers"] + [header for _s, upstream in peers for header in upstream["identity_headers"].values()],
        case_sensitive=False)
    caller = _caller(proxy)
    for _server, upstream in peers:
        if all(known["host"] != caller["host"] or known["name"] != caller["name"] for known in upstream["callers"]):
            upstream["callers"].append(caller)
    return _tier.cross_tier_problems(proxy, [upstream for _s, upstream in peers])


def _unique_labels(records):
    return _tier._unique([record["label"] for record in records])


def _peer(server, upstream):
    """What a proxy tier needs to know of an upstream tier it forwards to (its preflight's file checks)."""
    return {
        "server": server,
        "host": upstream["host"],
        "name": upstream["name"],
        "label": upstream["label"],
        "key_source": upstream["key"]["source"],
        "certificate_file": upstream["key"]["certificate_file"],
        "client_ca_file": upstream["trust"]["ca_file"],
        "crl_file": upstream["trust"]["crl_file"],
        "verify_depth": upstream["tls"]["verify_depth"],
    }


def _caller(proxy):
    """What an upstream tier's rotation gate needs of a proxy tier that calls it."""
    return {
        "host": proxy["host"],
        "name": proxy["name"],
        "label": proxy["label"],
        "token": proxy["key"]["source"] == "pkcs11",
        "ca": proxy["files"]["ca"],
        "certificate": proxy["files"]["chain"],
        "key": proxy["files"]["key"],
        "probe": proxy["probe"],
        "probe_status": proxy["rotate"]["probe_status"],
    }


def _host_entry(records):
    entry = {"upstream": [r for r in records if r["kind"] == "upstream"],
             "proxy": [r for r in records if r["kind"] == "proxy"]}
    entry["tiers"] = [r["name"] for r in entry["upstream"] + entry["proxy"]]
    # Where the host keeps every tier's files (mtls_nginx_pki_dir).
    entry["pki_dir"] = records[0]["dir"].rsplit("/", 1)[0] or "/"
    return entry


def _as_list(value, name, problems):
    """A playbook variable that names things: a list, a single name as given by -e, or nothing."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(item, (str, int)) for item in value):
        return [str(item) for item in value]
    problems.append("%s: %s is not a list of names" % (name, _values.show(value)))
    return []


def select(planned, hosts=None, services=None, tiers=None, kinds=None, names=None, within=None):
    """The tiers of ``planned`` that a day-2 job acts on: ``hosts`` (inventory hosts), ``services``
    (services of the mesh: their upstream tiers and their listeners), ``tiers`` (config names),
    ``kinds`` (``upstream``, ``proxy``); each unset or empty selects everything, and they
    combine. Each may be a list or, as ``-e var=value`` gives it, one name. ``names`` maps each
    criterion to the variable that gave it, for messages. ``within``, when given, are the hosts of
    the run (``--limit``): only their tiers are selected, and none when it is empty.

    Returns ``{"problems", "hosts", "slots", "labels", "selectors", "groups"}``: each host with a
    selected tier, its selected records by kind (``upstream``, ``proxy``), and each selected tier as
    ``{host, tier}``; ``groups`` lists, by kind, the hosts with a selected tier of that kind in the
    order of ``within`` (the run's hosts, in inventory order), else of the plan, so that batches
    of a rolling job follow the inventory; a name that is in no tier of the plan is a problem, with the closest one that is."""
    names = dict({"hosts": "hosts", "services": "services", "tiers": "tiers", "kinds": "kinds"}, **(names or {}))
    problems = []
    wanted = {key: _as_list(value, names[key], problems)
              for key, value in (("hosts", hosts), ("services", services), ("tiers", tiers), ("kinds", kinds))}
    records = [record for entry in planned["hosts"].values() for kind in _tier.KINDS for record in entry[kind]]
    known = {
        "hosts": {record["host"] for record in records},
        "services": {record["service"] for record in records if record.get("service")},
        "tiers": {record["name"] for record in records},
        "kinds": set(_tier.KINDS),
    }
    for key, values in wanted.items():
        for value in values:
            if value not in known[key]:
                what = {"hosts": "a host with a tier", "services": "a service of the mesh",
                        "tiers": "the config name of a tier", "kinds": "upstream or proxy"}[key]
                problems.append("%s: %s is not %s in the plan%s" % (
                    names[key], _values.show(value), what, _tier.near(value, known[key])))

    def chosen(record):
        return all((within is None or record["host"] in within,
                    not wanted["hosts"] or record["host"] in wanted["hosts"],
                    not wanted["services"] or record.get("service") in wanted["services"],
                    not wanted["tiers"] or record["name"] in wanted["tiers"],
                    not wanted["kinds"] or record["kind"] in wanted["kinds"]))

    found = {}
    for host, entry in planned["hosts"].items():
        picked = {kind: [record for record in entry[kind] if chosen(record)] for kind in _tier.KINDS}
        if picked["upstream"] or picked["proxy"]:
            found[host] = picked
    slots = {kind: max([len(entry[kind]) for entry in found.values()] or [0]) for kind in _tier.KINDS}
    labels = [record["label"] for entry in found.values() for kind in _tier.KINDS for record in entry[kind]]
    # The selected tiers as the CA's ledger names what it issued for them (mtls.nginx.ledger's select).
    selectors = [{"host": record["host"], "tier": record["name"]}
                 for entry in found.values() for kind in _tier.KINDS for record in entry[kind]]
    if not found and not problems:
        given = ", ".join("%s=%s" % (names[key], ",".join(values)) for key, values in wanted.items() if values)
        problems.append("no tier of the plan is selected%s%s" % (
            " by " + given if given else "", " on the hosts of this run (--limit)" if within is not None else ""))
    order = [host for host in within if host in found] if within is not None else list(found)
    groups = {kind: [host for host in order if found[host][kind]] for kind in _tier.KINDS}
    return {"problems": problems, "hosts": found, "slots": slots, "labels": labels, "selectors": selectors,
            "groups": groups}


def table(planned):
    """The plan as text: one line per tier (host, kind, config name, listen, identity, key source,
    peers), and the problems and warnings after."""
    rows = [("HOST", "KIND", "TIER", "LISTEN", "IDENTITY", "KEY", "CALLS / CALLED BY")]
    for host in sorted(planned.get("hosts") or {}):
        entry = planned["hosts"][host]
        for record in entry["upstream"] + entry["proxy"]:
            if record["kind"] == "upstream":
                peers = ", ".join("%s@%s" % (caller["name"], caller["host"]) for caller in record["callers"]) or "-"
            else:
                peers = ", ".join(record["upstream"]["servers"]) or "-"
            rows.append((host, record["kind"], record["name"], ",".join(record["listen"]),
                         record["identity"]["spiffe_id"] or record["identity"]["common_name"], record["key"]["source"],
                         peers))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.extend("problem: " + problem for problem in planned.get("problems") or [])
    lines.extend("warning: " + warning for warning in planned.get("warnings") or [])
    return lines


def plan(inventory, defaults, known=None, focus=None, unknown_as=None):
    """The plan of an inventory: ``{"problems", "warnings", "hosts", "slots", "pki", "mesh"}``.

    ``inventory`` is ``{"groups": {...}, "hosts": {host: {variable: value}}}`` with each host's
    ``mtls_*`` variables; ``defaults`` the roles' defaults by role and suffix (``upstream``,
    ``proxy``, ``nginx``, ``pki``); ``known`` the variables each role has (unknown ones are
    reported, as problems or, with ``unknown_as`` ``warning``, as warnings; by default as
    ``mtls_nginx_unknown_variables`` says). ``focus``, the hosts
    of the run (``--limit``): a problem of a host outside it is a warning, not a refusal.

    ``hosts`` gives each host its records, ``upstream`` and ``proxy`` (upstream tiers first, the
    order they are deployed in) and ``tiers`` (their names). With any problem, ``hosts`` is
    still filled for the tiers that could be planned, but nothing may be deployed from it."""
    planner = _Planner(inventory, defaults, known or {})
    if unknown_as is None:
        unknown_as = _shared(planner.hosts, "mtls_nginx_unknown_variables",
                             (defaults.get("nginx") or {}).get("unknown_variables", "error"), planner.problems)
    if unknown_as not in ("error", "warning"):
        planner.problems.append("mtls_nginx_unknown_variables: %s is not error or warning" % _values.show(unknown_as))
        unknown_as = "error"
    if known:
        planner.unknown(unknown_as)
    pki = {key: value for key, value in (defaults.get("pki") or {}).items() if not key.startswith("host_")}
    for key in sorted({key for variables in planner.hosts.values() for key in _prefixed(variables, "pki")}):
        if not key.startswith("host_"):
            pki[key] = _shared(planner.hosts, "mtls_pki_" + key, pki.get(key), planner.problems)
    ca_host = pki.get("ca_host") or ""
    if ca_host and (not isinstance(ca_host, str) or ca_host not in planner.hosts):
        planner.problems.append("mtls_pki_ca_host: %s is not a host of the inventory; the CA lives there, so Ansible "
                                "must reach it like any other host (or leave it empty to keep the CA on the "
                                "controller)" % _values.show(ca_host))
    if isinstance(pki.get("ca_pkcs11"), dict) and pki["ca_pkcs11"]:
        missing = [name for name in ("module_path", "token_label", "pin", "key_label") if not pki["ca_pkcs11"].get(name)]
        if missing:
            planner.problems.append("mtls_pki_ca_pkcs11: %s missing (the token's library, its label, the PIN and the "
                                    "label of the CA's keys)" % ", ".join(missing))
    # The PIN stays in its variable: the plan says only whether the CA's keys are in a token.
    pki["ca_pkcs11"] = bool(pki.get("ca_pkcs11"))
    planner.single()
    mesh = planner.mesh()
    planner.check_hosts()
    planner.link()
    problems, warnings = [], list(planner.warnings)
    focus = set(focus) if focus is not None else None
    for message in planner.problems:
        host = message.split(": ", 1)[0]
        if focus is not None and host in planner.hosts and host not in focus:
            warnings.append("not in this run: " + message)
        else:
            problems.append(message)
    hosts = {host: _host_entry(records) for host, records in planner.records.items() if records}
    slots = {kind: max([len(entry[kind]) for entry in hosts.values()] or [0]) for kind in _tier.KINDS}
    return {
        "problems": problems,
        "warnings": warnings,
        "hosts": hosts,
        "slots": slots,
        "options": planner.options,
        "pki": pki,
        "mesh": mesh,
        # Whether a misspelt variable is an error or a warning (mtls_nginx_unknown_variables).
        "unknown_as": unknown_as,
    }
