"""Values that reach nginx configs or certificates: hostile ones are refused with a message that
names the variable and shows the value, good ones pass, and the PKI flows refuse hostile names
before any file changes."""

import ipaddress
import os
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from fakemodule import FakeModule
from ansible_collections.mtls.nginx.plugins.module_utils import _crypto
from ansible_collections.mtls.nginx.plugins.module_utils._crypto import PKIError
from ansible_collections.mtls.nginx.plugins.module_utils._files import FileWriter
from ansible_collections.mtls.nginx.plugins.module_utils._pki import CertificateAuthority, ensure_leaf
from ansible_collections.mtls.nginx.plugins.module_utils._values import problems

# (kind, value, part of the reason)
HOSTILE = [
    ("backend_url", "http://127.0.0.1;server evil:8000", "';' is not allowed"),
    ("backend_url", "http://127.0.0.1:8000 ", "whitespace"),
    ("backend_url", "http://user@127.0.0.1:8000", "'@' is not allowed"),
    ("backend_url", "http://127.0.0.1:8000/api", "a path is not allowed"),
    ("backend_url", "https://backend", "no port"),
    ("backend_url", "ftp://backend:21", "http:// or https://"),
    ("backend_url", "http://127.0.0.1:8000?x=1", "'?' is not allowed"),
    ("backend_url", "http://127.0.0.1:8000#top", "'#' is not allowed"),
    ("listen", "8443 ssl default_server", "whitespace"),
    ("listen", "127.0.0.1:8443;", "';' is not allowed"),
    ("listen", "0", "out of range"),
    ("listen", "unix:run/nginx.sock", "absolute"),
    ("listen", "::1:8443", "brackets"),
    ("host_port", "up1:8443 backup", "whitespace"),
    ("host_port", "up1", "no port"),
    ("hostname", "a.example;", "';' is not allowed"),
    ("hostname", "evil.example { return 200; }", "whitespace"),
    ("hostname", "-bad.example", "starts or ends with '-'"),
    ("hostname", "a..example", "empty label"),
    ("hostname", "x" * 64 + ".example", "longer than 63"),
    ("hostname", "*.example.com", "'*' is not allowed"),
    ("hostname", "web_1", "'_' is not allowed"),
    ("location_path", "/api { return 200; } location /x", "whitespace"),
    ("location_path", "/a{b", "'{' is not allowed"),
    ("location_path", "api", "start with '/'"),
    ("location_path", "/a/../admin", "'..' never matches"),
    ("location_path", "//admin", "'//' never matches"),
    ("location_path", "/a;b", "';' is not allowed"),
    ("location_path", "/a/.", "'.' never matches"),
    ("header_name", "X-Client DN", "whitespace"),
    ("header_name", "X_Client_DN", "'_' is not allowed"),
    ("header_name", "X-Client:DN", "':' is not allowed"),
    ("header_name", "X-A\r\nX-B", "'\\r' is not allowed"),
    ("dn", "~.*", "leading '~'"),
    ("dn", "CN=a\nO=b", "control character '\\n'"),
    ("dn", "CN=a;O=b", "';' must be escaped"),
    ("dn", 'CN=admin"', "'\"' must be escaped"),
    ("dn", "cn=admin", "nginx shows cn as CN"),
    ("dn", "CN=", "empty value"),
    ("dn", "admin", "not attribute=value"),
    ("dn", "CN=a, O=b", "space after ','"),
    ("dn", "CN=\u202egnp.exe", "non-ASCII"),
    ("sha1_fingerprint", "zz" * 20, "'z' is not a hex digit"),
    ("sha1_fingerprint", "ab" * 32, "SHA-256"),
    ("cidr", "0.0.0.0/0", "every address"),
    ("cidr", "::/0", "every address"),
    ("cidr", "10.0.0.1; allow all", "not an IP address or network"),
    ("cidr", "10.0.0.5/24", "host bits are set; the network is 10.0.0.0/24"),
    ("nginx_time", "10s; proxy_pass http://evil", "optional unit"),
    ("nginx_size", "10m;", "optional unit"),
    ("cipher", "ALL:eNULL", "':' is not allowed"),
    ("cipher", "AES;x", "';' is not allowed"),
    ("curve", "X25519:prime256v1", "':' is not allowed"),
    ("config_name", "../etc/passwd", "start with a letter or digit"),
    ("config_name", "mtls upstream", "whitespace"),
    ("absolute_path", "/etc/nginx;x", "';' is not allowed"),
    ("absolute_path", "relative/path", "start with '/'"),
    ("absolute_path", "/etc/$host", "'$' is not allowed"),
    ("san", "DNS:a; {", "';' is not allowed"),
    ("san", "DNS:a.*.example", "whole first label"),
    ("san", "IP:10.0.0.999", "not an IPv4 or IPv6 address"),
    ("san", "URI:spiffe://x/y z", "whitespace"),
    ("san", 'URI:spiffe://x/"y', "'\"' is not allowed"),
    ("san", "email:ops@example.org", "unknown type 'email'"),
    ("common_name", "svc; evil", "';' is not allowed"),
    ("common_name", "a\x00b", "'\\x00'"),
    ("common_name", "x" * 65, "longer than 64"),
    ("common_name", "a{b}", "'{' is not allowed"),
    ("port", "70000", "out of range"),
    ("port", "80;", "';' is not allowed"),
    ("ip", "fe80::1%eth0", "zone index"),
    ("host", "::1", "brackets"),
    ("next_upstream", "error; x", "choose from"),
    ("count", "-1", "negative"),
]

GOOD = [
    ("backend_url", "http://127.0.0.1:8000"),
    ("backend_url", "https://backend.internal:8443/"),
    ("backend_url", "http://[::1]:8000"),
    ("listen", "8443"),
    ("listen", "127.0.0.1:8080"),
    ("listen", "[::]:8443"),
    ("listen", "*:443"),
    ("listen", "unix:/run/mtls-proxy.sock"),
    ("listen", "upstream-1.example:8443"),
    ("host_port", "up1.example:8443"),
    ("host_port", "[2001:db8::1]:8443"),
    ("hostname", "upstream-1.example.org"),
    ("hostname_wildcard", "*.example.org"),
    ("host", "10.0.0.1"),
    ("host", "[::1]"),
    ("location_path", "/"),
    ("location_path", "/api/v1.2/~users-x_y"),
    ("header_name", "X-Client-DN"),
    ("dn", "CN=ops-console,O=Example Corp"),
    ("dn", "CN=a\\,b+OU=x\\2Cy,DC=example,DC=org"),
    ("dn", "emailAddress=ops@example.org,CN=\\C3\\A9t\\C3\\A9"),
    ("dn", "1.2.3.4=#0403414243"),
    ("sha1_fingerprint", "A1" * 20),
    ("sha1_fingerprint", ":".join(["a1"] * 20)),
    ("cidr", "10.0.0.0/24"),
    ("cidr", "10.0.0.5"),
    ("cidr", "2001:db8::/32"),
    ("nginx_time", "10s"),
    ("nginx_time", "500ms"),
    ("nginx_size", "10m"),
    ("cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ("cipher", "!aNULL"),
    ("curve", "X25519"),
    ("config_name", "mtls-upstream"),
    ("absolute_path", "/etc/nginx/mtls"),
    ("san", "DNS:upstream-1.example.org"),
    ("san", "DNS:*.example.org"),
    ("san", "IP:10.0.0.1"),
    ("san", "IP:2001:db8::1"),
    ("san", "URI:spiffe://example.org/ns/prod/sa/billing"),
    ("san", "svc"),
    ("san", "10.0.0.1"),
    ("common_name", "mtls.nginx CA"),
    ("common_name", "O'Brien's service"),
    ("common_name", "Zürich billing"),
    ("port", 8443),
    ("next_upstream", "http_502"),
    ("count", 16),
]


@pytest.mark.parametrize("kind,value,reason", HOSTILE, ids=["%s-%d" % (h[0], i) for i, h in enumerate(HOSTILE)])
def test_hostile_value_is_refused_naming_variable_and_value(kind, value, reason):
    found = problems([["my_variable", kind, value]])
    assert len(found) == 1, found
    message = found[0]
    assert message.startswith("my_variable: %r is not " % value), message
    assert reason in message, message
    # Shown escaped: a control character never reaches the log as itself.
    assert "\n" not in message and "\r" not in message and "\x00" not in message


@pytest.mark.parametrize("kind,value", GOOD, ids=["%s-%d" % (g[0], i) for i, g in enumerate(GOOD)])
def test_good_value_passes(kind, value):
    assert problems([["my_variable", kind, value]]) == []


@pytest.mark.parametrize("kind,value", GOOD, ids=["%s-%d" % (g[0], i) for i, g in enumerate(GOOD)])
@pytest.mark.parametrize("tail", ["\n", ";", "\n}"], ids=["newline", "semicolon", "brace"])
def test_good_value_with_a_directive_end_after_it_is_refused(kind, value, tail):
    # Regex anchors that allow a trailing newline would let a value end its nginx directive.
    assert len(problems([["my_variable", kind, "%s%s" % (value, tail)]])) == 1


def test_the_message_of_the_finding():
    assert problems([["mtls_upstream_backend_url", "backend_url", "http://127.0.0.1;server x:8000"]]) == [
        "mtls_upstream_backend_url: 'http://127.0.0.1;server x:8000' is not a URL of the form "
        "http(s)://host:port (';' is not allowed)"]


def test_every_problem_is_reported_at_once_with_list_indexes():
    found = problems([
        ["mtls_proxy_listen", "listen", ["127.0.0.1:8080", "8080 ssl", "[::1]:8080", "x;"]],
        ["mtls_upstream_server_name", "hostname", "a;b"],
        ["mtls_upstream_ssl_ciphers", "cipher", ["ECDHE-RSA-AES128-GCM-SHA256"]],
    ])
    assert [m.split(":")[0] for m in found] == ["mtls_proxy_listen[1]", "mtls_proxy_listen[3]",
                                                "mtls_upstream_server_name"]


def test_empty_and_unset_values():
    assert problems([["a", "header_name?", ""], ["b", "header_name?", None], ["c", "cidr?", []]]) == []
    assert problems([["a", "header_name", ""], ["b", "header_name", None]]) == [
        "a: '' is not an HTTP header name of letters, digits and '-' (it is empty)",
        "b: None is not an HTTP header name of letters, digits and '-' (it is not set)"]


def test_wrong_types_are_problems_not_crashes():
    found = problems([["p", "port", True], ["h", "hostname", {"a": 1}], ["n", "port", 8443]])
    assert found == ["p: True is not a port number (a boolean is given)",
                     "h: {'a': 1} is not a host name (a dict is given)"]


def test_a_long_value_is_shown_cut_short():
    message = problems([["x", "hostname", "a;" * 500]])[0]
    assert "... (1000 characters)" in message and len(message) < 400


def test_a_mistake_in_the_checks_is_an_error_not_a_problem():
    with pytest.raises(ValueError, match="unknown kind 'hostnam'"):
        problems([["x", "hostnam", "a"]])
    with pytest.raises(ValueError, match="each check is"):
        problems([["x", "hostname"]])


def test_headers_map_names_each_key_and_finds_the_same_header_twice():
    found = problems([["mtls_upstream_identity_headers", "headers_map",
                       {"certificate": "X-Client-Cert", "verify": "X_Client_Verify", "subject_dn": "x-client-cert",
                        "serial": "X-Client-Serial; more"}]])
    assert found[0].startswith("mtls_upstream_identity_headers.verify: 'X_Client_Verify' is not")
    assert found[1] == ("mtls_upstream_identity_headers.subject_dn: 'x-client-cert' is also the header of "
                        "mtls_upstream_identity_headers.certificate")
    assert found[2].startswith("mtls_upstream_identity_headers.serial: 'X-Client-Serial; more' is not")
    assert len(found) == 3
    assert problems([["m", "headers_map", ["X-A"]]]) == ["m: ['X-A'] is not a dict of header names"]


def test_locations_are_checked_key_by_key():
    found = problems([["mtls_upstream_locations", "locations", [
        {"path": "/", "allowed_subjects": [], "allowed_fingerprints": []},
        {"path": "/api", "allowed_subjects": ["CN=ops,O=Example", "~CN=.*"], "allowed_fingerprints": ["ab" * 20]},
        {"path": "/api", "allowed_fingerprints": ["ab" * 19], "allow": ["CN=x"]},
        {"path": "/x{", "allowed_subjects": "CN=x"},
        "/y",
        {"allowed_subjects": None},
    ]]])
    assert found == [
        "mtls_upstream_locations[1].allowed_subjects[1]: '~CN=.*' is not a subject DN as nginx's "
        "$ssl_client_s_dn shows it, such as CN=client,O=Example (a leading '~' would make it a regular "
        "expression in an nginx map)",
        "mtls_upstream_locations[2]: unknown key 'allow'; a location has path, allowed_subjects, "
        "allowed_fingerprints, listed_only",
        "mtls_upstream_locations[2].path: '/api' is also the path of mtls_upstream_locations[1]; nginx "
        "refuses a duplicate location",
        "mtls_upstream_locations[2].allowed_fingerprints[0]: '%s' is not a SHA-1 fingerprint of 40 hex digits "
        "(38 hex digits, 40 are needed)" % ("ab" * 19),
        "mtls_upstream_locations[3].path: '/x{' is not a location prefix path such as /api/ ('{' is not allowed)",
        "mtls_upstream_locations[3].allowed_subjects: 'CN=x' is not a list (each item must be a subject DN as "
        "nginx's $ssl_client_s_dn shows it, such as CN=client,O=Example)",
        "mtls_upstream_locations[4]: '/y' is not a location (a dict with path, allowed_subjects, "
        "allowed_fingerprints, listed_only)",
        "mtls_upstream_locations[5].path: None is not a location prefix path such as /api/ (it is not set)",
    ]


def test_locations_that_are_not_a_list():
    assert problems([["l", "locations", {"path": "/"}]]) == ["l: {'path': '/'} is not a list of locations"]
    assert problems([["l", "locations?", None]]) == []


# --- certificate names ---------------------------------------------------------------------------

def listing(directory):
    return sorted(os.listdir(str(directory)))


@pytest.mark.parametrize("entry", ["DNS:a; {", "DNS:a\nb", "URI:spiffe://x/}", "IP:1.2.3.4;", "a b", "DNS:*"])
def test_parse_san_refuses_names_that_could_inject(entry):
    with pytest.raises(PKIError, match=re.escape("subject_alt_names: %r is not a subject alternative name" % entry)):
        _crypto.parse_san(entry)


def test_parse_san_keeps_accepting_what_it_accepted():
    names = [_crypto.parse_san(e) for e in ("DNS:*.svc.internal", "svc", "10.0.0.1", "IP:::1", "URI:spiffe://x/y")]
    assert _crypto.san_strings(names) == ["DNS:*.svc.internal", "DNS:svc", "IP:10.0.0.1", "IP:::1",
                                          "URI:spiffe://x/y"]


def test_name_from_cn_refuses_nginx_syntax():
    with pytest.raises(PKIError, match=re.escape("common_name: 'svc\"; evil' is not a certificate common name")):
        _crypto.name_from_cn('svc"; evil')


@pytest.fixture
def ca_dir(tmp_path):
    directory = tmp_path / "controller"
    directory.mkdir()
    CertificateAuthority(FileWriter(FakeModule()), str(directory / "ca.pem"), str(directory / "ca.key"),
                         "Test CA").ensure()
    return directory


def leaf(operation, **kw):
    args = dict(purpose="server", common_name="svc", subject_alt_names=["DNS:svc"], operation=operation)
    args.update(kw)
    return ensure_leaf(FileWriter(FakeModule()), **args)


def test_ca_with_a_hostile_common_name_writes_nothing(tmp_path):
    with pytest.raises(PKIError, match=re.escape("common_name: 'CA {' is not")):
        CertificateAuthority(FileWriter(FakeModule()), str(tmp_path / "ca.pem"), str(tmp_path / "ca.key"),
                             "CA {").ensure()
    assert listing(tmp_path) == []


@pytest.mark.parametrize("asked,message", [
    ({"subject_alt_names": ["DNS:svc", "DNS:a; {"]}, "subject_alt_names: 'DNS:a; {'"),
    ({"common_name": "svc;"}, "common_name: 'svc;'"),
], ids=["san", "common-name"])
def test_issue_refuses_hostile_names_before_any_file_changes(ca_dir, tmp_path, asked, message):
    before = listing(ca_dir)
    with pytest.raises(PKIError, match=re.escape(message)):
        leaf("issue", path=str(tmp_path / "svc.pem"), privatekey_path=str(tmp_path / "svc.key"),
             ca_path=str(ca_dir / "ca.pem"), ca_privatekey_path=str(ca_dir / "ca.key"), **asked)
    assert listing(ca_dir) == before and listing(tmp_path) == ["controller"]


@pytest.mark.parametrize("asked,message", [
    ({"subject_alt_names": ["URI:spiffe://x/a b"]}, "subject_alt_names: 'URI:spiffe://x/a b'"),
    ({"common_name": "svc\n"}, "common_name: 'svc\\n'"),
], ids=["san", "common-name"])
def test_request_refuses_hostile_names_before_the_key_is_written(tmp_path, asked, message):
    with pytest.raises(PKIError, match=re.escape(message)):
        leaf("request", privatekey_path=str(tmp_path / "svc.key"), csr_path=str(tmp_path / "svc.csr"), **asked)
    assert listing(tmp_path) == []


def csr_asking_for(names):
    """A well-signed CSR whose own subject alternative names are ``names`` (GeneralNames)."""
    key = _crypto.generate_private_key("ecdsa-p256")
    builder = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "svc")]))
               .add_extension(x509.SubjectAlternativeName(names), critical=False))
    return _crypto.csr_pem(builder.sign(key, hashes.SHA256())).decode("ascii")


def test_sign_refuses_hostile_names_asked_of_it(ca_dir):
    csr = csr_asking_for([x509.DNSName("svc")])
    before = listing(ca_dir)
    with pytest.raises(PKIError, match=re.escape("subject_alt_names: 'DNS:svc}'")):
        leaf("sign", csr_content=csr, ca_path=str(ca_dir / "ca.pem"), ca_privatekey_path=str(ca_dir / "ca.key"),
             subject_alt_names=["DNS:svc}"])
    assert listing(ca_dir) == before


@pytest.mark.parametrize("names,shown", [
    ([x509.DNSName("svc"), x509.DNSName("a; {")], "'DNS:a; {'"),
    ([x509.UniformResourceIdentifier("spiffe://x/y\"; z")], "'URI:spiffe://x/y\"; z'"),
], ids=["dns", "uri"])
def test_sign_refuses_a_csr_that_asks_for_hostile_names(ca_dir, tmp_path, names, shown):
    before = listing(ca_dir)
    with pytest.raises(PKIError, match=re.escape("csr_content: the request's subject_alt_names: %s is not" % shown)):
        leaf("sign", csr_content=csr_asking_for(names), path=str(tmp_path / "svc.pem"),
             ca_path=str(ca_dir / "ca.pem"), ca_privatekey_path=str(ca_dir / "ca.key"))
    assert listing(ca_dir) == before and not (tmp_path / "svc.pem").exists()


def test_sign_still_signs_a_csr_with_good_names_of_its_own(ca_dir):
    csr = csr_asking_for([x509.DNSName("other.example"), x509.IPAddress(ipaddress.ip_address("::1")),
                          x509.RFC822Name("ops@example.org")])
    result = leaf("sign", csr_content=csr, ca_path=str(ca_dir / "ca.pem"), ca_privatekey_path=str(ca_dir / "ca.key"))
    assert result["signed"] and result["certificate"]["subject_alt_names"] == ["DNS:svc"]


def test_listed_only_is_true_or_false():
    assert problems([["l", "locations", [{"path": "/", "allowed_subjects": [], "listed_only": True}]]]) == []
    assert problems([["l", "locations", [{"path": "/", "listed_only": "yes"}]]]) == [
        "l[0].listed_only: 'yes' is not true or false"]
