# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each value that reaches an nginx config file or a certificate must look like.

Role variables are written into nginx configs verbatim, so a value such as
``http://127.0.0.1;server evil:8000`` would add directives of its own. Every validator here
takes one value and returns None when it is what it must be, or a short reason why not.
:func:`problems` runs a whole list of checks and returns every problem at once, each naming
its variable and showing its value, so the roles can refuse a run before anything changes.

Pure Python (no ``cryptography``): the filter plugin ``mtls.nginx.config_value_problems``
runs it on the controller, and ``_crypto`` uses it for certificate names.
"""

import ipaddress
import re

# --- building blocks ----------------------------------------------------------------------------

# \Z, never $: $ also matches before a trailing newline, which would end an nginx directive.
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\Z")
_PORT = re.compile(r"^[0-9]{1,5}\Z")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*\Z")
_DN_ATTRIBUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9.-]*|[0-9]+(?:\.[0-9]+)*)\Z")
_HEX = re.compile(r"^[0-9A-Fa-f]+\Z")
_NGINX_TIME = re.compile(r"^[0-9]+(?:ms|s|m|h|d|w|M|y)?\Z")
_NGINX_SIZE = re.compile(r"^[0-9]+[kKmMgG]?\Z")
_CIPHER = re.compile(r"^[A-Za-z0-9_+!@=.-]+\Z")
_CURVE = re.compile(r"^[A-Za-z0-9_-]+\Z")
_CONFIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")

# Characters that end or open an nginx directive or block, quote, or escape.
_CONFIG_SYNTAX = ';{}"\'\\'
# RFC 4514: the characters a DN value must escape, and those a backslash may escape.
_DN_MUST_ESCAPE = '";<>'
_DN_ESCAPABLE = ' "#+,;<=>\\'

# How OpenSSL (and so nginx's $ssl_client_s_dn) spells common attributes; the match is exact.
_DN_SPELLING = dict((name.lower(), name) for name in (
    "CN", "O", "OU", "C", "L", "ST", "DC", "UID", "SN", "GN", "emailAddress", "serialNumber",
    "street", "title", "initials", "pseudonym", "generationQualifier", "dnQualifier", "name",
    "postalCode", "businessCategory", "jurisdictionC", "jurisdictionST", "jurisdictionL",
    "organizationIdentifier",
))

NEXT_UPSTREAM_CONDITIONS = (
    "error", "timeout", "denied", "invalid_header", "http_500", "http_502", "http_503", "http_504",
    "http_403", "http_404", "http_429", "non_idempotent", "off",
)


def _first_not(value, allowed):
    """The first character of ``value`` outside ``allowed``, the inside of a regex character class."""
    found = re.search("[^%s]" % allowed, value)
    return found.group() if found else None


def _not_allowed(char):
    if char.isspace():
        return "whitespace %s is not allowed" % repr(char)
    return "%s is not allowed" % repr(char)


def _control(value):
    for char in value:
        if ord(char) < 32 or 127 <= ord(char) < 160:
            return char
    return None


# --- one function per kind: None when the value is good, else a short reason --------------------

def hostname(value, wildcard=False):
    """An RFC 1123 host name; with ``wildcard``, ``*.`` may stand as its whole first label."""
    if wildcard and value.startswith("*."):
        value = value[2:]
    bad = _first_not(value, "A-Za-z0-9.-")
    if bad == "*":
        return "'*' is allowed only as the whole first label (*.example.com)" if wildcard else "'*' is not allowed"
    if bad is not None:
        return _not_allowed(bad)
    if len(value) > 253:
        return "longer than 253 characters"
    labels = value.split(".")
    for label in labels:
        if not label:
            return "it has an empty label (a leading, trailing or doubled '.')"
        if len(label) > 63:
            return "label %r is longer than 63 characters" % label
        if not _LABEL.match(label):
            return "label %r starts or ends with '-'" % label
    if labels[-1].isdigit():
        # 999.0.0.1 and the like: neither a name nor an address, so nginx and OpenSSL disagree on it.
        return "its last label is all digits, so it looks like an IP address but is not one"
    return None


def hostname_wildcard(value):
    return hostname(value, wildcard=True)


def ip(value):
    if "%" in value:
        # A zone index (fe80::1%eth0) is free text that nginx and certificates cannot take.
        return "an IPv6 zone index ('%') is not allowed"
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "not an IPv4 or IPv6 address"
    return None


def host(value):
    """A host name, an IPv4 address, or an IPv6 address in brackets (as in URLs and nginx)."""
    if value.startswith("["):
        if not value.endswith("]"):
            return "'[' without a closing ']'"
        inner = value[1:-1]
        if ip(inner) or ":" not in inner:
            return "%r in brackets is not an IPv6 address" % inner
        return None
    if ip(value) is None:
        return "IPv6 addresses go in brackets, as [%s]" % value if ":" in value else None
    return hostname(value)


def port(value):
    if not _PORT.match(value):
        bad = _first_not(value, "0-9")
        return _not_allowed(bad) if bad else "too many digits"
    if not 1 <= int(value) <= 65535:
        return "out of range 1-65535"
    return None


def _split_host_port(value):
    """(host, port) of ``host:port`` or ``[v6]:port``; port is "" when there is none."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or not value[end + 1:].startswith(":"):
            return value, ""
        return value[:end + 1], value[end + 2:]
    name, sep, number = value.rpartition(":")
    return (name, number) if sep else (value, "")


def _port_of(number):
    reason = port(number)
    return "port %s" % reason if reason else None


def host_port(value):
    """``host:port`` (host name, IPv4 or [IPv6]); the port is required."""
    bad = _first_not(value, r"A-Za-z0-9.:\[\]-")
    if bad is not None:
        return _not_allowed(bad)
    if value.count(":") > 1 and not value.startswith("["):
        return "IPv6 addresses go in brackets, as [address]:port"
    name, number = _split_host_port(value)
    if not number:
        return "no port"
    return host(name) or _port_of(number)


def listen(value):
    """What follows nginx's ``listen``: PORT, HOST:PORT, [IPv6]:PORT, *:PORT or unix:/path.

    Parameters such as ``ssl`` or ``default_server`` are the role's to add, never the value's."""
    if value.startswith("unix:"):
        path = value[len("unix:"):]
        if not path.startswith("/"):
            return "a unix socket path must be absolute"
        bad = _first_not(path, "A-Za-z0-9._/-")
        return _not_allowed(bad) if bad is not None else None
    bad = _first_not(value, r"A-Za-z0-9.:\[\]*-")
    if bad is not None:
        if bad.isspace():
            return "whitespace is not allowed: listen parameters such as ssl are the role's to add"
        return _not_allowed(bad)
    if value.isdigit():
        return port(value)
    if value.startswith("*:"):
        return _port_of(value[2:])
    if "*" in value:
        return "'*' is allowed only as *:PORT"
    return host_port(value)


def backend_url(value):
    """``http://host:port`` or ``https://host:port``, an optional ``/`` and nothing else."""
    bad = _first_not(value, r"A-Za-z0-9.:/\[\]-")
    if bad is not None:
        return _not_allowed(bad)
    for scheme in ("http://", "https://"):
        if value.startswith(scheme):
            rest = value[len(scheme):]
            break
    else:
        return "it must start with http:// or https://"
    if rest.endswith("/"):
        rest = rest[:-1]
    if "/" in rest:
        return "a path is not allowed"
    if not rest:
        return "no host"
    if not _split_host_port(rest)[1]:
        # nginx's upstream server would default to port 80, whatever the scheme.
        return "no port"
    return host_port(rest)


def location_path(value):
    """A location prefix that nginx can match: it compares against the normalized URI."""
    if not value.startswith("/"):
        return "it must start with '/'"
    bad = _first_not(value, "A-Za-z0-9._~/-")
    if bad is not None:
        return _not_allowed(bad)
    if "//" in value:
        return "'//' never matches: nginx merges slashes before it matches locations"
    for segment in ("/./", "/../"):
        if segment in value + "/":
            return "the segment %r never matches: nginx resolves dot segments first" % segment.strip("/")
    return None


def header_name(value):
    if _HEADER_NAME.match(value):
        return None
    if "_" in value:
        return ("'_' is not allowed: nginx drops such headers by default and WSGI backends "
                "cannot tell '_' from '-'")
    if value.startswith("-"):
        return "it must start with a letter or digit"
    return _not_allowed(_first_not(value, "A-Za-z0-9-"))


def _dn_tokens(value):
    """RDN pieces of a DN: a list per attribute of (text, escaped) tokens, or a reason string."""
    pieces, current, i = [], [], 0
    while i < len(value):
        char = value[i]
        if char == "\\":
            following = value[i + 1:i + 2]
            if following and following in _DN_ESCAPABLE:
                current.append((following, True))
                i += 2
                continue
            pair = value[i + 1:i + 3]
            if len(pair) == 2 and _HEX.match(pair):
                current.append((value[i:i + 3], True))
                i += 3
                continue
            return "'\\' must escape a special character (such as ',' or '+') or two hex digits"
        if char in ",+":
            pieces.append(current)
            current = []
        elif char in _DN_MUST_ESCAPE:
            return "%s must be escaped with '\\'" % repr(char)
        elif ord(char) > 126:
            escaped = "".join("\\%02X" % b for b in char.encode("utf-8"))
            return "non-ASCII %s: nginx shows it as %s" % (repr(char), escaped)
        else:
            current.append((char, False))
        i += 1
    pieces.append(current)
    return pieces


def _joined(tokens):
    return "".join(text for text, escaped in tokens)


def dn(value):
    """A literal subject DN as nginx's ``$ssl_client_s_dn`` prints it (RFC 4514/2253),
    such as ``CN=ops-console,O=Example Corp``."""
    if value.startswith("~"):
        return "a leading '~' would make it a regular expression in an nginx map"
    bad = _control(value)
    if bad is not None:
        return "control character %s is not allowed" % repr(bad)
    pieces = _dn_tokens(value)
    if isinstance(pieces, str):
        return pieces
    for tokens in pieces:
        if not tokens:
            return "an empty RDN (a doubled or trailing ',' or '+')"
        if tokens[0] == (" ", False):
            return "a space after ',' or '+', which nginx does not print"
        equals = next((i for i, token in enumerate(tokens) if token == ("=", False)), None)
        if equals is None:
            return "%r is not attribute=value" % _joined(tokens)
        attribute = _joined(tokens[:equals])
        body = tokens[equals + 1:]
        if not _DN_ATTRIBUTE.match(attribute):
            return "%r is not an attribute name such as CN or O" % attribute
        if _DN_SPELLING.get(attribute.lower(), attribute) != attribute:
            return "nginx shows %s as %s, and the match is case-sensitive" % (attribute, _DN_SPELLING[attribute.lower()])
        if not body:
            return "%s has an empty value" % attribute
        if body[0] == (" ", False) or body[-1] == (" ", False):
            return "the value of %s starts or ends with a space that nginx would show as '\\ '" % attribute
        if body[0] == ("#", False) and not re.match(r"^#(?:[0-9A-Fa-f]{2})+\Z", _joined(body)):
            return "the value of %s starts with '#' but is not #hex" % attribute
    return None


def sha1_fingerprint(value):
    """40 hex digits, as ``$ssl_client_fingerprint`` shows them; colons between pairs allowed."""
    digits = value.replace(":", "")
    bad = _first_not(digits, "0-9A-Fa-f")
    if bad is not None:
        return "%s is not a hex digit" % repr(bad)
    if len(digits) != 40:
        hint = "; that is a SHA-256 fingerprint, nginx compares SHA-1" if len(digits) == 64 else ""
        return "%d hex digits, 40 are needed%s" % (len(digits), hint)
    if ":" in value and not re.match(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){19}\Z", value):
        return "colons go between pairs of hex digits"
    return None


def cidr(value, allow_everything=False):
    """An IP address or network; ``0.0.0.0/0`` and ``::/0`` only with ``allow_everything``."""
    if "%" in value:
        return "an IPv6 zone index ('%') is not allowed"
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return "not an IP address or network"
    if network.prefixlen == 0 and not allow_everything:
        return "it is every address; name the networks to trust"
    try:
        ipaddress.ip_network(value)
    except ValueError:
        # nginx's geo accepts it with a warning, but the writer meant some other network.
        return "host bits are set; the network is %s" % network
    return None


def nginx_time(value):
    return None if _NGINX_TIME.match(value) else "a number with an optional unit ms, s, m, h, d, w, M or y"


# nginx's time units (ngx_parse_time): a month is 30 days, a year 365.
_NGINX_TIME_UNITS = {"ms": 0.001, "": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800,
                     "M": 2592000, "y": 31536000}


def nginx_seconds(value):
    """The seconds of an nginx time such as ``75s``, ``500ms`` or ``2m``; ValueError for anything
    nginx_time refuses."""
    match = _NGINX_TIME.match(str(value))
    if isinstance(value, bool) or not match:
        raise ValueError("%r is not an nginx time (%s)" % (value, nginx_time("")))
    text = str(value)
    digits = text.rstrip("msMhdwy")
    return int(digits) * _NGINX_TIME_UNITS[text[len(digits):]]


def nginx_bytes(value):
    """The bytes of an nginx size such as ``16k`` or ``1m``; ValueError for anything else."""
    text = str(value).strip()
    if not _NGINX_SIZE.match(text):
        raise ValueError("%r is not an nginx size such as 16k" % (value,))
    factor = {"k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}.get(text[-1].lower(), 1)
    return int(text.rstrip("kKmMgG")) * factor


def nginx_size(value):
    return None if _NGINX_SIZE.match(value) else "a number with an optional unit k, m or g"


def cipher(value):
    if _CIPHER.match(value):
        return None
    if ":" in value:
        return "one cipher per item; ':' is not allowed"
    return _not_allowed(_first_not(value, "A-Za-z0-9_+!@=.-"))


def curve(value):
    if _CURVE.match(value):
        return None
    if ":" in value:
        return "one group per item; ':' is not allowed"
    return _not_allowed(_first_not(value, "A-Za-z0-9_-"))


def config_name(value):
    if len(value) > 64:
        return "longer than 64 characters"
    if _CONFIG_NAME.match(value):
        return None
    if not re.match(r"^[A-Za-z0-9]", value):
        return "it must start with a letter or digit"
    return _not_allowed(_first_not(value, "A-Za-z0-9_.-"))


def absolute_path(value):
    if not value.startswith("/"):
        return "it must start with '/'"
    bad = _control(value)
    if bad is not None:
        return "control character %s is not allowed" % repr(bad)
    for char in value:
        if char.isspace() or char in _CONFIG_SYNTAX or char == "$":
            return _not_allowed(char)
    return None


def uri(value):
    """An absolute URI (with a scheme) as certificates carry them: ASCII, nothing that quotes,
    escapes or ends an nginx directive."""
    if not _URI_SCHEME.match(value):
        return "no scheme such as spiffe: or https:"
    bad = _control(value)
    if bad is not None:
        return "control character %s is not allowed" % repr(bad)
    for char in value:
        if char.isspace() or char in _CONFIG_SYNTAX or char in "<>":
            return _not_allowed(char)
        if ord(char) > 126:
            return "non-ASCII %s is not allowed; percent-encode it" % repr(char)
    if value.endswith(":"):
        return "nothing after the scheme"
    return None


def san(value):
    """A subject alternative name as the collection writes them: ``DNS:name`` (``*.`` allowed
    as the first label), ``IP:address`` or ``URI:uri``; a bare name or address as DNS or IP."""
    kind, sep, rest = value.partition(":")
    if sep and kind.upper() in ("DNS", "IP", "URI"):
        kind = kind.upper()
    elif ip(value) is None:
        return None
    elif sep and re.match(r"^[A-Za-z]+\Z", kind):
        return "unknown type %r; use DNS:, IP: or URI:" % kind
    else:
        kind, rest = "DNS", value
    if not rest:
        return "no value after %s:" % kind
    return {"DNS": hostname_wildcard, "IP": ip, "URI": uri}[kind](rest)


def common_name(value):
    """A certificate common name: 1 to 64 printable characters, none that ends or quotes a directive."""
    if len(value) > 64:
        return "longer than 64 characters"
    for char in value:
        if char in ';{}"\\':
            return _not_allowed(char)
        if not char.isprintable():
            return "control or invisible character %s is not allowed" % repr(char)
    return None


def next_upstream(value):
    if value in NEXT_UPSTREAM_CONDITIONS:
        return None
    return "choose from %s" % ", ".join(NEXT_UPSTREAM_CONDITIONS)


def count(value):
    if value.isdigit() and value.isascii():
        return None
    return "it is negative" if value.startswith("-") and value[1:].isdigit() else "not a whole number"


# --- checking role variables --------------------------------------------------------------------

KINDS = {
    "hostname": (hostname, "a host name"),
    "hostname_wildcard": (hostname_wildcard, "a host name or *.name"),
    "ip": (ip, "an IP address"),
    "host": (host, "a host name, IPv4 address or [IPv6] address"),
    "port": (port, "a port number"),
    "listen": (listen, "an nginx listen address such as 8443, 127.0.0.1:8443, [::1]:8443, *:8443 or unix:/path"),
    "host_port": (host_port, "a host:port address"),
    "backend_url": (backend_url, "a URL of the form http(s)://host:port"),
    "location_path": (location_path, "a location prefix path such as /api/"),
    "header_name": (header_name, "an HTTP header name of letters, digits and '-'"),
    "dn": (dn, "a subject DN as nginx's $ssl_client_s_dn shows it, such as CN=client,O=Example"),
    "sha1_fingerprint": (sha1_fingerprint, "a SHA-1 fingerprint of 40 hex digits"),
    "cidr": (cidr, "an IP address or CIDR network"),
    "nginx_time": (nginx_time, "an nginx time such as 10s or 500ms"),
    "nginx_size": (nginx_size, "an nginx size such as 10m or 512k"),
    "cipher": (cipher, "an OpenSSL cipher name"),
    "curve": (curve, "a key exchange group name such as X25519"),
    "config_name": (config_name, "a name of letters, digits, '.', '_' and '-'"),
    "absolute_path": (absolute_path, "an absolute path"),
    "uri": (uri, "an absolute URI"),
    "san": (san, "a subject alternative name DNS:name, IP:address or URI:uri"),
    "common_name": (common_name, "a certificate common name"),
    "next_upstream": (next_upstream, "a proxy_next_upstream condition"),
    "count": (count, "a whole number, 0 or more"),
}
SPECIAL_KINDS = ("locations", "headers_map")
LOCATION_KEYS = ("path", "allowed_subjects", "allowed_fingerprints", "listed_only")
_SHOWN_CHARS = 200


def show(value):
    """A value as problem messages quote it: repr-like, so control characters show, and cut short."""
    if isinstance(value, str):
        # A plain str: Ansible's str subclasses may show themselves otherwise.
        value = str.__str__(value)
        if len(value) > _SHOWN_CHARS:
            return "%r... (%d characters)" % (value[:_SHOWN_CHARS], len(value))
    return repr(value)


def _text(value):
    """The text a scalar value is rendered as, or (None, reason) for a value of the wrong type."""
    if isinstance(value, bool):
        return None, "a boolean is given"
    if isinstance(value, (str, int, float)):
        return str(value), None
    if isinstance(value, dict):
        return None, "a dict is given"
    if isinstance(value, (list, tuple)):
        return None, "a list is given"
    return None, "a %s is given" % type(value).__name__


def check(name, kind, value):
    """The problem message for one scalar value, or None. ``kind`` may end in ``?`` (may be empty)."""
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if kind not in KINDS:
        raise ValueError("unknown kind %r; known kinds: %s" % (kind, ", ".join(sorted(KINDS) + list(SPECIAL_KINDS))))
    validator, description = KINDS[kind]
    if value is None or value == "":
        if optional:
            return None
        reason = "it is not set" if value is None else "it is empty"
    else:
        text, reason = _text(value)
        if text is not None:
            reason = validator(text)
    if reason is None:
        return None
    return "%s: %s is not %s (%s)" % (name, show(value), description, reason)


def _each(name, kind, values, out):
    for index, value in enumerate(values):
        message = check("%s[%d]" % (name, index), kind, value)
        if message:
            out.append(message)


def _list_of(name, kind, value, out):
    """Check a value that must be a list (or unset) of ``kind``."""
    if value is None:
        return
    if not isinstance(value, (list, tuple)):
        out.append("%s: %s is not a list (each item must be %s)" % (name, show(value), KINDS[kind][1]))
        return
    _each(name, kind, value, out)


def _locations(name, value, out):
    if not isinstance(value, (list, tuple)):
        out.append("%s: %s is not a list of locations" % (name, show(value)))
        return
    seen = {}
    for index, location in enumerate(value):
        here = "%s[%d]" % (name, index)
        if not isinstance(location, dict):
            out.append("%s: %s is not a location (a dict with %s)" % (here, show(location), ", ".join(LOCATION_KEYS)))
            continue
        for key in location:
            if key not in LOCATION_KEYS:
                out.append("%s: unknown key %s; a location has %s" % (here, show(key), ", ".join(LOCATION_KEYS)))
        message = check(here + ".path", "location_path", location.get("path"))
        if message:
            out.append(message)
        elif location["path"] in seen:
            out.append("%s.path: %s is also the path of %s; nginx refuses a duplicate location"
                       % (here, show(location["path"]), seen[location["path"]]))
        else:
            seen[location["path"]] = here
        _list_of(here + ".allowed_subjects", "dn", location.get("allowed_subjects"), out)
        _list_of(here + ".allowed_fingerprints", "sha1_fingerprint", location.get("allowed_fingerprints"), out)
        if not isinstance(location.get("listed_only", False), bool):
            out.append("%s.listed_only: %s is not true or false" % (here, show(location.get("listed_only"))))


def _headers_map(name, value, out):
    if not isinstance(value, dict):
        out.append("%s: %s is not a dict of header names" % (name, show(value)))
        return
    seen = {}
    for key, header in value.items():
        here = "%s.%s" % (name, key)
        message = check(here, "header_name", header)
        if message:
            out.append(message)
        elif str(header).lower() in seen:
            # Header names are case-insensitive: the second proxy_set_header would replace the first.
            out.append("%s: %s is also the header of %s" % (here, show(header), seen[str(header).lower()]))
        else:
            seen[str(header).lower()] = here


def problems(checks):
    """Every problem of ``checks``, a list of ``[variable name, kind, value]``, as messages.

    A list value is checked item by item (reported as ``name[i]``). ``kind`` is one of
    :data:`KINDS`, optionally ending in ``?`` when an empty or unset value is allowed, or
    ``locations`` (the upstream role's ``mtls_upstream_locations``) or ``headers_map`` (a dict
    whose values are header names, reported as ``name.key``)."""
    out = []
    for item in checks:
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            raise ValueError("each check is [variable name, kind, value], not %r" % (item,))
        name, kind, value = item
        if kind.rstrip("?") in SPECIAL_KINDS and kind.endswith("?") and value in (None, "", [], {}):
            continue
        if kind.rstrip("?") == "locations":
            _locations(name, value, out)
        elif kind.rstrip("?") == "headers_map":
            _headers_map(name, value, out)
        elif isinstance(value, (list, tuple)):
            _each(name, kind, value, out)
        else:
            message = check(name, kind, value)
            if message:
                out.append(message)
    return out
