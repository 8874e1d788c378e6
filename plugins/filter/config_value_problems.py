# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: config_value_problems
short_description: Every role variable value that could not be written safely into nginx configs or certificates
version_added: 0.1.0
author:
  - mtls.nginx contributors (@mtls-nginx)
description:
  - Takes a list of checks, each C([variable name, kind, value]), and returns one message per
    value that is not what it must be, so that a play can refuse the run before anything on a
    host changes. An empty list means every value is good. The plan (P(mtls.nginx.plan#filter))
    checks every value of the collection's tiers with the same code.
  - Role variables are written into nginx configs verbatim. Without this check a backend URL
    such as C(http://127.0.0.1;server evil:8000) adds a server of its own, a location path with
    braces opens a block, and a subject beginning with C(~) becomes a regular expression.
  - >-
    Each message names the variable (C(name[i]) for an item of a list, C(name[i].key) inside
    items of kind C(locations), C(name.key) for kind C(headers_map)) and shows the value
    quoted, with control characters escaped, then says what it must be and why it is not.
    For example, mtls_upstream_backend_url: 'http://127.0.0.1;server x:8000' is not a URL of
    the form http(s)://host:port (';' is not allowed).
positional: _input
options:
  _input:
    description:
      - The checks, each a list of three items, C([variable name, kind, value]).
      - A value that is a list is checked item by item.
      - "Kinds: C(hostname) (RFC 1123), C(hostname_wildcard) (also C(*.name)), C(ip), C(host)
        (host name, IPv4 address or C([IPv6])), C(port), C(listen) (C(8443), C(127.0.0.1:8443),
        C([::1]:8443), C(*:8443) or C(unix:/path), without parameters such as C(ssl)),
        C(host_port), C(backend_url) (C(http://host:port) or C(https://host:port)),
        C(location_path), C(header_name) (letters, digits and C(-)), C(dn) (a literal subject DN as
        C($ssl_client_s_dn) shows it), C(sha1_fingerprint), C(cidr) (never C(0.0.0.0/0) or
        C(::/0)), C(nginx_time), C(nginx_size), C(cipher), C(curve), C(config_name),
        C(absolute_path), C(uri), C(san) (C(DNS:), C(IP:) or C(URI:) entry), C(common_name),
        C(next_upstream), C(count)."
      - "Two kinds take a structure: C(locations), the upstream role's C(mtls_upstream_locations)
        (dicts with C(path), C(allowed_subjects) and C(allowed_fingerprints) only, no two with
        the same path), and C(headers_map), a dict whose values are header names, no two alike."
      - A kind ending in C(?) also accepts an empty or unset value; without it, an empty value
        is a problem.
    type: list
    elements: list
    required: true
seealso:
  - plugin: mtls.nginx.nginx_exact_regex
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Refuse values that would change the meaning of the nginx config, before anything changes
  vars:
    __problems: >-
      {{ [
           ['mtls_upstream_listen', 'listen', mtls_upstream_listen],
           ['mtls_upstream_server_name', 'hostname', mtls_upstream_server_name],
           ['mtls_upstream_backend_url', 'backend_url', mtls_upstream_backend_url],
           ['mtls_upstream_locations', 'locations', mtls_upstream_locations],
           ['mtls_upstream_identity_headers', 'headers_map', mtls_upstream_identity_headers],
           ['mtls_upstream_forwarded_cert.request_header', 'header_name?',
            mtls_upstream_forwarded_cert.request_header],
         ] | mtls.nginx.config_value_problems }}
  ansible.builtin.assert:
    that: __problems | length == 0
    fail_msg: "{{ __problems }}"
    quiet: true

# ['mtls_proxy_upstream_servers[1]: ''up2;'' is not a host:port address ('';'' is not allowed)']
- ansible.builtin.debug:
    msg: "{{ [['mtls_proxy_upstream_servers', 'host_port', ['up1:8443', 'up2;']]] | mtls.nginx.config_value_problems }}"
"""

RETURN = r"""
_value:
  description: One message per problem, in the order of the checks; empty when every value is good.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.nginx.plugins.module_utils._values import problems


def config_value_problems(checks):
    if not isinstance(checks, (list, tuple)):
        raise AnsibleFilterError("config_value_problems expects a list of [variable name, kind, value], not %s"
                                 % type(checks).__name__)
    try:
        return problems(checks)
    except ValueError as exc:
        # A mistake in the role's list of checks, not in the user's values.
        raise AnsibleFilterError("config_value_problems: %s" % exc)


class FilterModule:
    def filters(self):
        return {"config_value_problems": config_value_problems}
