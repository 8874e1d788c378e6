# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One nginx tier on one host, resolved: a *tier record*.

A tier is either the upstream tier of a service (``kind`` ``upstream``: TLS server, client
certificates verified, a backend behind it) or a proxy tier (``kind`` ``proxy``: plain HTTP from
local clients, forwarded over mTLS). Its record holds everything the roles, the templates and the
day-2 playbooks need, with every default applied: its config name and nginx identifier, every
file path, its identity (purpose, common name, SANs, SPIFFE ID), its key source, the CA it trusts
and whether a CRL is checked, its listen addresses, TLS and keep-alive settings. Nothing else
decides them: :func:`record` is the one place that turns settings into a record, for the
single-service model (the roles' variables) and the service mesh (``mtls_mesh``) alike.

Settings are given by suffix (``listen`` for ``mtls_upstream_listen``), with the roles' defaults
already applied; a ``None`` value means "derived" (``server_name``: the host's name, and so on).
Secrets never enter a record: a key's passphrase and a token's PIN stay in their variables.

Pure Python, data in and data out: the filters ``mtls.nginx.plan`` and ``mtls.nginx.tier_record``
run it on the controller.
"""

from __future__ import annotations

import difflib
import hashlib
import posixpath
import re

from ansible_collections.mtls.nginx.plugins.module_utils import _values

UPSTREAM = "upstream"
PROXY = "proxy"
KINDS = (UPSTREAM, PROXY)
KEY_SOURCES = ("managed", "files", "pkcs11")
# Key sources whose certificate the collection's CA issues (and so can rotate and revoke).
MANAGED_SOURCES = ("managed", "pkcs11")
IDENTITY_FIELDS = ("certificate", "verify", "subject_dn", "issuer_dn", "serial", "fingerprint", "spiffe_id")
# Identity header names added after the first release, for an inventory's older dict of names.
_ADDED_IDENTITY_HEADERS = {"issuer_dn": "X-Client-Issuer-DN", "spiffe_id": "X-Client-SPIFFE-ID"}
# What each kind is called in the certificate and in its files.
_PURPOSE = {UPSTREAM: "server", PROXY: "client"}
_STEM = {UPSTREAM: "server", PROXY: "client"}
_CA_STEM = {UPSTREAM: "client-ca", PROXY: "upstream-ca"}
_CA_VARIABLE = {UPSTREAM: "client_ca_file", PROXY: "trusted_ca_file"}
_LOOPBACK = ("127.", "localhost", "[::1]", "::1")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
# Forwarding and routing headers a client could use to mislead the backend: the upstream tier sends them empty.
DROPPED_FORWARDING_HEADERS = (
    "Forwarded", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Prefix",
    "X-Original-URL", "X-Rewrite-URL", "X-Original-Forwarded-For", "True-Client-IP", "X-Client-IP",
    "CF-Connecting-IP",
)
# The inventory groups of the single service, unless mtls_upstream_group / mtls_proxy_group name others.
DEFAULT_GROUPS = {UPSTREAM: "mtls_upstreams", PROXY: "mtls_proxies"}
# The identity headers of other products and conventions, as a rule rather than a list: any name of
# a vendor's prefix (X-SSL-, SSL-, X-Forwarded-Tls-, X-Amzn-Mtls-, ...), optionally "Client-", then
# a certificate field; or X- or nothing, then "Client-", then such a field. A client could use any
# of them to claim an identity to a backend that reads it: both tiers send every one of them empty.
_LOOKALIKE_PREFIXES = ("X-SSL-", "SSL-", "X-TLS-", "TLS-", "X-MTLS-", "MTLS-", "X-Forwarded-", "X-Forwarded-Tls-",
                       "X-Amzn-Mtls-", "X-ARR-", "X-Envoy-Peer-")
_LOOKALIKE_FIELDS = ("Cert", "Certificate", "Clientcert", "Cert-Chain", "Certificate-Chain", "Chain", "Subject",
                     "Subject-DN", "S-DN", "DN", "Issuer", "Issuer-DN", "I-DN", "Verify", "Verified", "Serial",
                     "Fingerprint", "SPIFFE-ID", "SAN", "URI", "CN", "Identity", "Cert-Info", "Principal")


def identity_lookalikes():
    """Every header name the rule above makes, in a stable order."""
    names = []
    for prefix in _LOOKALIKE_PREFIXES:
        for client in ("Client-", ""):
            names.extend(prefix + client + field for field in _LOOKALIKE_FIELDS)
    for prefix in ("X-", ""):
        names.extend(prefix + "Client-" + field for field in _LOOKALIKE_FIELDS)
    return _unique(names, case_sensitive=False)


# Variables that share a role's prefix but belong to the playbooks, not to the role.
PLAYBOOK_VARIABLES = {"upstream": ("group", "record"), "proxy": ("group", "record")}


def identifier(name):
    """An nginx identifier for a config name: nginx variables and upstream names may not contain '-'."""
    return re.sub(r"[^A-Za-z0-9_]", "_", str(name))


# nginx refuses to start when a variable's name is longer than its hash bucket holds: 46 characters
# with the default variables_hash_bucket_size of 64 (8-byte pointers), an http-level setting that a
# drop-in cannot own. The tiers' variables are named __mtls_<u|p>_<what>_<variable id>[_<n>], with
# <what> at most 12 characters and a variable id of at most 16.
VARIABLE_ID_MAX = 16
VARIABLE_NAME_MAX = 46


def variable_id(name):
    """The part of a tier's nginx variable names that names the tier: its identifier when short
    enough, else its start and a digest of the whole name (unique, and the same every run)."""
    ident = identifier(name)
    if len(ident) <= VARIABLE_ID_MAX:
        return ident
    return "%s_%s" % (ident[:VARIABLE_ID_MAX - 9], hashlib.sha256(str(name).encode()).hexdigest()[:8])


def files(pki_dir, name, kind):
    """Every file of a tier, named from its directory: <stem>.key/.pem/-chain.pem/.pass for its own
    identity, <ca stem>.pem/.crl for the CA it checks its peers against."""
    directory = "%s/%s" % (str(pki_dir).rstrip("/"), name)
    stem, ca_stem = _STEM[kind], _CA_STEM[kind]
    return {
        "dir": directory,
        "key": "%s/%s.key" % (directory, stem),
        "certificate": "%s/%s.pem" % (directory, stem),
        "chain": "%s/%s-chain.pem" % (directory, stem),
        "passphrase": "%s/%s.pass" % (directory, stem),
        "ca": "%s/%s.pem" % (directory, ca_stem),
        "crl": "%s/%s.crl" % (directory, ca_stem),
        # The placeholder CA name told to clients where the upstream tier withholds its CA list.
        "withheld": "%s/ca-list-withheld.pem" % directory,
        # An upstream tier's maps of its known callers' identities (nginx_common known_callers.yml).
        "known_callers": "%s/known-callers.conf" % directory,
    }


def default_subject_alt_names(server_name, host):
    """The server certificate's names when none are set: the server name, and the host's own name."""
    names = ["DNS:%s" % server_name]
    if host != server_name:
        names.append("DNS:%s" % host)
    return names


def port_of(listen):
    """The port of an nginx listen address (``8443``, ``127.0.0.1:8443``, ``[::1]:8443``), or None
    for a unix socket or a value that is not one."""
    text = str(listen)
    if text.startswith("unix:"):
        return None
    match = re.search(r"(?:^|:)([0-9]{1,5})\Z", text)
    return int(match.group(1)) if match else None


def port_of_url(url):
    match = re.match(r"^https?://(?:\[[^\]]*\]|[^/:]*):([0-9]{1,5})/?\Z", str(url))
    return int(match.group(1)) if match else None


def is_loopback_url(url):
    match = re.match(r"^https?://(\[[^\]]*\]|[^/:]*)", str(url))
    return bool(match) and match.group(1).lower().startswith(_LOOPBACK)


def near(name, known, prefix=""):
    """" (did you mean <prefix>X?)" for the known name X closest to ``name``, or ""."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return " (did you mean %s%s?)" % (prefix, close[0]) if close else ""


class _Settings:
    """The settings of one tier, read with the checks every reader needs: lists given as a string
    (``-e mtls_upstream_listen=8443``) are one-element lists, booleans and counts given as text are
    converted, and every problem is noted under the variable's name."""

    def __init__(self, values, name_of, problems):
        self.values = values
        self.name_of = name_of
        self.problems = problems

    def get(self, key, default=None):
        value = self.values.get(key, default)
        return default if value is None else value

    def text(self, key, default=""):
        value = self.get(key, default)
        return value if isinstance(value, str) else str(value)

    def list(self, key, default=None):
        value = self.values.get(key)
        if value is None:
            return list(default or [])
        if isinstance(value, str):
            # A single value where a list is expected, as -e key=value gives it.
            return [value]
        if isinstance(value, (list, tuple)):
            return list(value)
        self.problems.append("%s: %s is not a list" % (self.name_of(key), _values.show(value)))
        return list(default or [])

    def flag(self, key, default=False):
        value = self.values.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, (str, int)) and str(value).lower() in _TRUE + _FALSE:
            return str(value).lower() in _TRUE
        self.problems.append("%s: %s is not true or false" % (self.name_of(key), _values.show(value)))
        return default

    def number(self, key, default=0):
        value = self.values.get(key)
        if value is None:
            return default
        message = _values.check(self.name_of(key), "count", value)
        if message:
            self.problems.append(message)
            return default
        return int(value)

    def dict(self, key, default=None):
        value = self.values.get(key)
        if value is None:
            return dict(default or {})
        if isinstance(value, dict):
            return dict(value)
        self.problems.append("%s: %s is not a dict" % (self.name_of(key), _values.show(value)))
        return dict(default or {})


def _nginx(nginx, problems):
    """The settings every tier of a host shares (mtls_nginx_*), as a record's ``nginx`` part."""
    read = _Settings(nginx, lambda key: "mtls_nginx_" + key, problems)
    problems.extend(_values.problems([
        ["mtls_nginx_pki_dir", "absolute_path", nginx.get("pki_dir")],
        ["mtls_nginx_dropin_dir", "absolute_path", nginx.get("dropin_dir")],
        ["mtls_nginx_access_log_buffer", "nginx_size?", nginx.get("access_log_buffer")],
        ["mtls_nginx_access_log_flush", "nginx_time", nginx.get("access_log_flush")],
    ]))
    buffer = read.text("access_log_buffer")
    return {
        "pki_dir": read.text("pki_dir").rstrip("/") or "/",
        "dropin_dir": read.text("dropin_dir").rstrip("/") or "/",
        "access_log": read.flag("access_log", True),
        # The access_log directive's parameters after the format.
        "access_log_buffering": (" buffer=%s flush=%s" % (buffer, read.text("access_log_flush"))) if buffer else "",
        "verify_depth": read.number("verify_depth", 2),
        "ssl_protocols": read.list("ssl_protocols"),
        "ssl_ciphers": read.list("ssl_ciphers"),
        "identity_headers": read.dict("identity_headers"),
        "pkcs11": {
            "module": read.text("pkcs11_module"),
            "token": read.text("pkcs11_token"),
            # Only whether it is set: the PIN itself stays in its variable.
            "pin_set": bool(nginx.get("pkcs11_pin")),
        },
    }


def _key(kind, read, name, problems):
    """The key source of a tier, one of KEY_SOURCES, with what that source needs."""
    source = read.text("certificate_source", "managed")
    label = read.text("pkcs11_key_label") or name
    key = {
        "source": source,
        "label": label,
        "certificate_file": read.text("certificate_file"),
        "private_key_file": read.text("private_key_file"),
        # Only whether the key is encrypted: the passphrase stays in its variable.
        "encrypted": bool(read.values.get("private_key_passphrase")),
        "passphrase_variable": read.name_of("private_key_passphrase"),
    }
    if source not in KEY_SOURCES:
        problems.append("%s: %s is not one of %s" % (
            read.name_of("certificate_source"), _values.show(source), ", ".join(KEY_SOURCES)))
    return key


def _trust(kind, read, key, problems):
    """The CA bundle a tier checks its peers against, and its CRL: the collection's CA (and its
    CRL) unless files of the user's own are given."""
    ca_file, crl_file = read.text(_CA_VARIABLE[kind]), read.text("crl_file")
    managed_crl = key["source"] in MANAGED_SOURCES and not ca_file and not crl_file
    return {
        "ca_file": ca_file,
        "crl_file": crl_file,
        "ca_variable": read.name_of(_CA_VARIABLE[kind]),
        # The collection's CA bundle (and every generation of it during a rollover).
        "managed_ca": not ca_file,
        "managed_crl": managed_crl,
        "use_crl": managed_crl or bool(crl_file),
    }


def _source_problems(kind, read, key, trust, nginx, problems):
    prefix = read.name_of("")
    if key["source"] == "files":
        missing = [read.name_of(option) for option, value in (
            ("certificate_file", key["certificate_file"]), ("private_key_file", key["private_key_file"]),
            (_CA_VARIABLE[kind], trust["ca_file"])) if not value]
        if missing:
            problems.append("%scertificate_source=files needs %s" % (prefix, ", ".join(missing)))
    if key["source"] == "pkcs11":
        token = nginx["pkcs11"]
        if not token["module"].startswith("/") or not token["token"] or not token["pin_set"] or key["encrypted"]:
            problems.append(
                "%scertificate_source=pkcs11 needs mtls_nginx_pkcs11_module (the absolute path of the token's "
                "PKCS#11 library on the host), mtls_nginx_pkcs11_token (the token's label), mtls_nginx_pkcs11_pin "
                "and %s, and takes no %s" % (prefix, read.name_of("pkcs11_key_label"), key["passphrase_variable"]))
    if kind == PROXY and trust["crl_file"] and not trust["ca_file"]:
        problems.append("%s needs %s, the CA bundle whose CRLs it holds"
                        % (read.name_of("crl_file"), trust["ca_variable"]))


TLS_PROTOCOLS = ("TLSv1.2", "TLSv1.3")


def _tls(read, nginx):
    protocols = read.list("ssl_protocols", nginx["ssl_protocols"])
    for index, protocol in enumerate(protocols):
        if protocol not in TLS_PROTOCOLS:
            read.problems.append("%s[%d]: %s is not one of %s; older versions are not allowed"
                                 % (read.name_of("ssl_protocols"), index, _values.show(protocol), ", ".join(TLS_PROTOCOLS)))
    if not protocols:
        read.problems.append("%s: at least one of %s is needed" % (read.name_of("ssl_protocols"), ", ".join(TLS_PROTOCOLS)))
    return {
        "protocols": protocols,
        "ciphers": read.list("ssl_ciphers", nginx["ssl_ciphers"]),
        "verify_depth": read.number("verify_depth", nginx["verify_depth"]),
    }


def _workload_identity_problems(model, read, common_name, sans, problems):
    """A subject CN=spiffe://... (or a spiffe:// URI SAN) is a service's workload identity, which
    the upstream tiers admit and forward by that alone: only the mesh declaration issues it."""
    if model == "mesh":
        return
    if str(common_name).lower().startswith("spiffe:"):
        problems.append("%s: %s is a workload identity, which only the service mesh declaration (mtls_mesh, "
                        "deployed by mtls.nginx.site) issues, so that no hand-set name can take a service's "
                        "identity; declare the service and its calls in mtls_mesh instead"
                        % (read.name_of("common_name"), _values.show(common_name)))
    for index, name in enumerate(sans):
        if isinstance(name, str) and re.match(r"(?i)^URI:spiffe:", name):
            problems.append("%s[%d]: %s is a workload identity, which only the service mesh declaration "
                            "(mtls_mesh) issues; declare the service in mtls_mesh instead"
                            % (read.name_of("subject_alt_names"), index, _values.show(name)))


def _base(kind, host, name, model, nginx, key, trust, identity, listen, read):
    tier_files = files(nginx["pki_dir"], name, kind)
    return {
        "kind": kind,
        "name": name,
        "id": identifier(name),
        "vid": variable_id(name),
        "host": host,
        "model": model,
        "dir": tier_files["dir"],
        "dropin": "%s/%s.conf" % (nginx["dropin_dir"], name),
        "files": tier_files,
        "identity": identity,
        "key": key,
        "trust": trust,
        "listen": listen,
        "access_log": {"enabled": nginx["access_log"], "buffering": nginx["access_log_buffering"],
                       "path": "/var/log/nginx/%s.access.log" % name},
        "error_log": "/var/log/nginx/%s.error.log" % name,
        "rotate": {"probe_path": read.text("rotate_probe_path", "/")},
    }


def _upstream(host, read, nginx, model, mesh, problems):
    values = read.values
    name = read.text("config_name", "mtls-upstream")
    server_name = read.text("server_name") or host
    sans = read.list("subject_alt_names", default_subject_alt_names(server_name, host))
    listen = [str(item) for item in read.list("listen", ["8443"])]
    headers = dict(_ADDED_IDENTITY_HEADERS, **nginx["identity_headers"])
    headers.update(read.dict("identity_headers"))
    fields = read.list("identity_fields", list(IDENTITY_FIELDS))
    forwarded = {"request_header": "", "backend_header": "X-Original-Client-Cert", "trusted_sources": [],
                 "trusted_subjects": []}
    forwarded.update(read.dict("forwarded_cert"))
    cleared = read.list("cleared_headers")
    expected = read.number("expected_concurrency", 128)
    problems.extend(_values.problems([
        [read.name_of("listen"), "listen", listen],
        [read.name_of("server_name"), "hostname", server_name],
        [read.name_of("subject_alt_names"), "san", sans],
        [read.name_of("backend_url"), "backend_url", values.get("backend_url")],
        [read.name_of("locations"), "locations", values.get("locations")],
        [read.name_of("ssl_ciphers"), "cipher", read.list("ssl_ciphers", nginx["ssl_ciphers"])],
        [read.name_of("ssl_ecdh_curve"), "curve", read.list("ssl_ecdh_curve")],
        [read.name_of("identity_headers"), "headers_map", headers],
        [read.name_of("cleared_headers"), "header_name", cleared],
        [read.name_of("forwarded_cert") + ".request_header", "header_name?", forwarded.get("request_header")],
        [read.name_of("forwarded_cert") + ".backend_header", "header_name", forwarded.get("backend_header")],
        [read.name_of("forwarded_cert") + ".trusted_sources", "cidr", forwarded.get("trusted_sources") or []],
        [read.name_of("forwarded_cert") + ".trusted_subjects", "dn", forwarded.get("trusted_subjects") or []],
        [read.name_of("config_name"), "config_name", name],
        [read.name_of("keepalive_timeout"), "nginx_time", values.get("keepalive_timeout")],
        [read.name_of("backend_keepalive_timeout"), "nginx_time", values.get("backend_keepalive_timeout")],
    ]))
    for field in fields:
        if field not in IDENTITY_FIELDS:
            problems.append("%s: %s is not one of %s" % (
                read.name_of("identity_fields"), _values.show(field), ", ".join(IDENTITY_FIELDS)))
    if forwarded.get("request_header"):
        sources = forwarded.get("trusted_sources") or []
        taken = [str(header).lower() for header in list(headers.values()) + cleared]
        everyone = any(str(source) in ("0.0.0.0/0", "::/0") for source in sources)
        if not sources or everyone or not forwarded.get("trusted_subjects") or \
                str(forwarded.get("backend_header")).lower() in taken:
            problems.append(
                "%s: passing request header %s to the backend needs trusted_sources (addresses or CIDR blocks, "
                "never 0.0.0.0/0 or ::/0), trusted_subjects (the verified subject DNs of the front ends that "
                "may set it) and a backend_header that is not one of the identity or cleared headers"
                % (read.name_of("forwarded_cert"), forwarded.get("request_header")))
    own = {str(header).lower() for header in headers.values()} | {
        str(forwarded.get("backend_header") or "").lower()}
    key = _key(UPSTREAM, read, name, problems)
    trust = _trust(UPSTREAM, read, key, problems)
    _source_problems(UPSTREAM, read, key, trust, nginx, problems)
    _workload_identity_problems(model, read, server_name, sans, problems)
    identity = {
        "purpose": _PURPOSE[UPSTREAM],
        "common_name": server_name,
        "subject_alt_names": sans,
        "spiffe_id": (mesh or {}).get("spiffe_id", ""),
        # The name a certificate brought as a file must carry.
        "expected_name": server_name,
    }
    record = _base(UPSTREAM, host, name, model, nginx, key, trust, identity, listen, read)
    trust["withhold_ca_list"] = not read.flag("advertise_client_ca", True)
    record.update({
        "server_name": server_name,
        # Where the rotation gate reaches it: the port of its first listen address.
        "port": port_of(listen[0]) if listen else None,
        # The names this server answers to: its server name and every DNS name its certificate carries.
        "server_names": _unique([server_name.lower()] + [
            str(san)[4:].lower() for san in sans if isinstance(san, str) and san.upper().startswith("DNS:")]),
        "default_server": read.flag("default_server", True),
        "backend_url": read.text("backend_url"),
        "backend": {
            "keepalive": read.number("backend_keepalive", expected),
            "keepalive_requests": read.number("backend_keepalive_requests", 100000),
            "keepalive_timeout": read.text("backend_keepalive_timeout", "4s"),
        },
        "keepalive": {"requests": read.number("keepalive_requests", 100000),
                      "timeout": read.text("keepalive_timeout", "75s")},
        "response_header_buffer": _size(read, "response_header_buffer", "8k", problems),
        "locations": [_location(item) for item in read.list("locations") if isinstance(item, dict)],
        "tls": dict(_tls(read, nginx), ecdh_curve=read.list("ssl_ecdh_curve")),
        "identity_headers": headers,
        "identity_fields": [field for field in IDENTITY_FIELDS if field in fields],
        # Whether the identity values of the declared callers' certificates are computed once
        # (from the CA's ledger) and looked up, instead of by nginx for every request.
        "known_callers": read.flag("known_callers", True),
        # The user's list, then every identity look-alike, less the names this tier sets itself.
        "cleared_headers": _unique([header for header in cleared + identity_lookalikes()
                                    if str(header).lower() not in own], case_sensitive=False),
        "dropped_forwarding_headers": list(DROPPED_FORWARDING_HEADERS),
        "forwarded_cert": forwarded,
        # Filled by the plan: the proxy tiers that call this one (the rotation gate's probes).
        "callers": [],
        "rotate": dict(record["rotate"], probe_from=read.values.get("rotate_probe_from")),
    })
    if mesh:
        record["service"] = mesh.get("service")
    return record


def _location(item):
    return {
        "path": item.get("path"),
        "allowed_subjects": list(item.get("allowed_subjects") or []),
        "allowed_fingerprints": list(item.get("allowed_fingerprints") or []),
        "listed_only": bool(item.get("listed_only", False)),
    }


def _unique(items, case_sensitive=True):
    seen, out = set(), []
    for item in items:
        key = item if case_sensitive else str(item).lower()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def ms_regex(limit):
    """A regex for nginx's "0.xyz" seconds up to ``limit`` ms (under 1000), and a list of them as
    $upstream_response_time shows several attempts ("0.000, 0.001")."""
    digits = "%03d" % limit
    a, b, c = (int(digit) for digit in digits)
    parts = []
    if a:
        parts.append("[0-%d][0-9][0-9]" % (a - 1))
    if b:
        parts.append("%d[0-%d][0-9]" % (a, b - 1))
    parts.append("%d%d[0-%d]" % (a, b, c))
    one = r"0\.(?:%s)" % "|".join(parts)
    return "%s(?:, %s)*" % (one, one)


def _milliseconds(read, key, default, problems):
    value = read.text(key, default)
    try:
        ms = _values.nginx_seconds(value) * 1000
    except ValueError:
        problems.append("%s: %s is not an nginx time such as 50ms" % (read.name_of(key), _values.show(value)))
        return 0
    if not 0 <= ms < 1000:
        problems.append("%s: %s must be under a second" % (read.name_of(key), _values.show(value)))
        return 0
    return int(ms)


def _size(read, key, default, problems):
    value = read.text(key, default)
    try:
        _values.nginx_bytes(value)
    except ValueError:
        problems.append("%s: %s is not an nginx size such as 16k" % (read.name_of(key), _values.show(value)))
        return default
    return value


def _probe(listen):
    """Where a request through a proxy's first listen address is sent from its own host."""
    first = str(listen[0]) if listen else "127.0.0.1:8080"
    if first.startswith("unix:"):
        return {"address": "localhost", "socket": first[len("unix:"):]}
    if re.match(r"^[0-9]+\Z", first):
        return {"address": "127.0.0.1:" + first, "socket": ""}
    address = re.sub(r"^(\*|0\.0\.0\.0):", "127.0.0.1:", first)
    return {"address": re.sub(r"^\[::\]:", "[::1]:", address), "socket": ""}


def _proxy(host, read, nginx, model, mesh, groups, options, problems):
    values = read.values
    name = read.text("config_name", "mtls-proxy")
    group = read.text("upstream_group") or options.get("upstream_group") or DEFAULT_GROUPS[UPSTREAM]
    group_hosts = list(groups.get(group) or [])
    port = read.text("upstream_port", "8443")
    servers = [str(server) for server in read.list("upstream_servers", ["%s:%s" % (h, port) for h in group_hosts])]
    upstream_name = read.text("upstream_name") or (group_hosts[0] if group_hosts else "")
    common_name = read.text("common_name") or host
    sans = read.list("subject_alt_names", ["DNS:%s" % host])
    listen = [str(item) for item in read.list("listen", ["127.0.0.1:8080"])]
    expected = read.number("expected_concurrency", 128)
    cleared = read.list("cleared_headers")
    problems.extend(_values.problems([
        [read.name_of("listen"), "listen", listen],
        [read.name_of("allowed_sources"), "cidr", read.list("allowed_sources")],
        [read.name_of("upstream_servers"), "host_port", servers],
        [read.name_of("upstream_name"), "host", upstream_name],
        [read.name_of("common_name"), "common_name", common_name],
        [read.name_of("subject_alt_names"), "san", sans],
        [read.name_of("fail_timeout"), "nginx_time", values.get("fail_timeout")],
        [read.name_of("connect_timeout"), "nginx_time", values.get("connect_timeout")],
        [read.name_of("keepalive_timeout"), "nginx_time", values.get("keepalive_timeout")],
        [read.name_of("ssl_ciphers"), "cipher", read.list("ssl_ciphers", nginx["ssl_ciphers"])],
        [read.name_of("cleared_headers"), "header_name", cleared],
        [read.name_of("next_upstream"), "next_upstream", read.list("next_upstream")],
        [read.name_of("config_name"), "config_name", name],
    ]))
    if not servers or not upstream_name:
        problems.append("%s and %s: set them, or put the upstream hosts in the inventory group '%s' (%s)"
                        % (read.name_of("upstream_servers"), read.name_of("upstream_name"), group,
                           read.name_of("upstream_group")))
    window = _milliseconds(read, "retry_window", "50ms", problems)
    key = _key(PROXY, read, name, problems)
    trust = _trust(PROXY, read, key, problems)
    trust["withhold_ca_list"] = False
    _source_problems(PROXY, read, key, trust, nginx, problems)
    _workload_identity_problems(model, read, common_name, sans, problems)
    identity = {
        "purpose": _PURPOSE[PROXY],
        "common_name": common_name,
        "subject_alt_names": sans,
        "spiffe_id": (mesh or {}).get("spiffe_id", ""),
        "expected_name": "",
    }
    record = _base(PROXY, host, name, model, nginx, key, trust, identity, listen, read)
    record.update({
        "allowed_sources": read.list("allowed_sources"),
        "upstream": {"group": group, "name": upstream_name, "servers": servers},
        "keepalive": {"size": read.number("keepalive", expected),
                      "requests": read.number("keepalive_requests", 100000),
                      "timeout": read.text("keepalive_timeout", "60s")},
        "max_fails": read.number("max_fails", 2),
        "fail_timeout": read.text("fail_timeout", "10s"),
        "next_upstream": read.list("next_upstream"),
        "connect_timeout": read.text("connect_timeout", "5s"),
        "retry_unanswered": read.flag("retry_unanswered", True),
        "retry_window_ms": window,
        "retry_window_regex": ms_regex(window),
        "response_header_buffer": _size(read, "response_header_buffer", "16k", problems),
        "tls": _tls(read, nginx),
        # Identity headers are the upstream tier's to set: the shared names, the user's list, every
        # identity look-alike, and (added by the plan) the names its upstream tiers use.
        "cleared_headers": _unique(list(nginx["identity_headers"].values()) + cleared + identity_lookalikes(),
                                   case_sensitive=False),
        "cross_tier_checks": read.flag("cross_tier_checks", True),
        "probe": _probe(listen),
        # Filled by the plan: the upstream tiers this proxy forwards to, as the plan knows them.
        "peers": [],
        "rotate": dict(record["rotate"], probe_status=[int(status) for status in read.list("rotate_probe_status", [200])
                                                       if str(status).isdigit()]),
    })
    if mesh:
        record.update({"service": mesh.get("caller"), "callee": mesh.get("callee")})
    # Who may call through it from its own host: with the declaration's local_group, only members
    # of that group (and root) may enter the directory of its unix socket.
    record["local_access"] = None
    if (mesh or {}).get("local_group") and (mesh or {}).get("socket"):
        group = mesh["local_group"]
        record["local_access"] = {
            "dir": posixpath.dirname(mesh["socket"]), "group": group,
            # What mtls.nginx.verify tries, as a local user of no service (nogroup) and of the
            # group itself; the plan adds the groups of the host's other services.
            "trials": [{"group": group, "expect": "connected"}, {"group": "nogroup", "expect": "refused"}]}
    return record


def record(kind, host, values, nginx, model="single", mesh=None, groups=None, options=None, name_of=None,
           known=None):
    """``(record, problems)`` for one tier. ``values`` are the tier's settings by suffix (the
    role's variables without ``mtls_<kind>_``), defaults applied; ``nginx`` the host's
    ``mtls_nginx_*`` settings by suffix, defaults applied; ``mesh`` what the declaration says
    of a mesh tier (``service``, ``caller``, ``callee``, ``spiffe_id``). ``name_of`` names a
    setting in messages (default ``mtls_<kind>_<suffix>``); ``known``, when given, the settings
    that exist: any other is reported with the closest known name."""
    if kind not in KINDS:
        raise ValueError("unknown tier kind %r" % (kind,))
    problems = []
    name_of = name_of or (lambda key, _kind=kind: "mtls_%s_%s" % (_kind, key))
    if known is not None:
        for key in sorted(values):
            if key not in known and key not in PLAYBOOK_VARIABLES[kind]:
                problems.append("%s: not a variable of the %s tier%s" % (name_of(key), kind, near(key, known, name_of(""))))
    read = _Settings(dict(values), name_of, problems)
    shared = _nginx(dict(nginx), problems)
    if kind == UPSTREAM:
        result = _upstream(host, read, shared, model, mesh, problems)
    else:
        result = _proxy(host, read, shared, model, mesh, groups or {}, options or {}, problems)
    result.setdefault("service", None)
    result["label"] = _label(result)
    # How messages name this tier's settings: mtls_proxy_ for the single service, the
    # declaration's place for a mesh tier.
    result["prefix"] = name_of("")
    return result, problems


def _label(tier):
    """How messages name a tier: its kind, its config name and its host."""
    return "%s tier %s on %s" % (tier["kind"], tier["name"], tier["host"])


# Headers the upstream tier adds to its backend's answer, and what its status line may grow by,
# with room to spare: measured about 100 bytes (Server, Date, Connection).
HEADER_MARGIN = 1024


def cross_tier_problems(proxy, upstreams):
    """What the proxy tier ``proxy`` would meet at the upstream tiers ``upstreams`` it forwards to
    (records, each with the ``server`` address it is reached at): a managed certificate that will
    not carry the name the proxy verifies, and an upstream that closes idle kept-alive connections
    before the proxy does (a POST written onto one as it closes would fail with 502)."""
    problems = []
    if not proxy.get("cross_tier_checks", True):
        return problems
    expected = proxy["upstream"]["name"]
    for upstream in upstreams:
        if upstream["key"]["source"] in MANAGED_SOURCES:
            sans = [str(name) for name in upstream["identity"]["subject_alt_names"]]
            if "DNS:%s" % expected not in sans and "IP:%s" % expected not in sans:
                problems.append(
                    "%supstream_name: the proxy expects the name %s, but the certificate of the %s will carry "
                    "only %s (its subject_alt_names); every handshake would fail with 502"
                    % (proxy["prefix"], expected, upstream["label"], ", ".join(sans)))
        mine, theirs = (_values.nginx_bytes(tier["response_header_buffer"]) for tier in (proxy, upstream))
        if mine < theirs + HEADER_MARGIN:
            problems.append(
                "%sresponse_header_buffer: %s is not at least %d bytes more than the response_header_buffer (%s) of "
                "the %s, which adds headers of its own to what its backend answered; an answer that tier accepts "
                "would fail here with 502 (upstream sent too big header). Make the proxy's larger."
                % (proxy["prefix"], proxy["response_header_buffer"], HEADER_MARGIN, upstream["response_header_buffer"],
                   upstream["label"]))
        if proxy["keepalive"]["size"] > 0:
            try:
                mine = _values.nginx_seconds(proxy["keepalive"]["timeout"])
                theirs = _values.nginx_seconds(upstream["keepalive"]["timeout"])
            except ValueError:
                continue  # a malformed value is named by the tier that sets it
            if mine >= theirs:
                problems.append(
                    "%skeepalive_timeout: %s is not shorter than the keepalive_timeout (%s) of the %s; that host "
                    "could close an idle connection just as this proxy sends a request on it, and a POST would "
                    "fail with 502. Make the proxy's shorter."
                    % (proxy["prefix"], proxy["keepalive"]["timeout"], upstream["keepalive"]["timeout"],
                       upstream["label"]))
    return problems
