# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: default_subject_alt_names
short_description: The names an upstream host's managed server certificate carries unless told otherwise
version_added: 0.1.0
author:
  - mtls.nginx contributors (@mtls-nginx)
description:
  - >-
    The one rule for the default of the P(mtls.nginx.upstream#role) role's
    C(mtls_upstream_subject_alt_names): C(DNS:) the server name, then C(DNS:) the inventory
    host name when it is another name.
  - The plan (P(mtls.nginx.plan#filter)) applies the same rule, the same code, to every upstream
    tier that does not set C(mtls_upstream_subject_alt_names), so the proxies' cross-tier checks
    know the names an upstream tier will answer to before anything changes.
positional: _input, inventory_hostname
options:
  _input:
    description: The server name (C(mtls_upstream_server_name)).
    type: str
    required: true
  inventory_hostname:
    description: The upstream host's inventory name.
    type: str
    required: true
"""

EXAMPLES = r"""
# ['DNS:orders.internal', 'DNS:orders-1']
- ansible.builtin.debug:
    msg: "{{ 'orders.internal' | mtls.nginx.default_subject_alt_names('orders-1') }}"
"""

RETURN = r"""
_value:
  description: The subject alternative names, without repeats.
  type: list
  elements: str
  sample: ["DNS:orders.internal", "DNS:orders-1"]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.nginx.plugins.module_utils._tier import default_subject_alt_names as _names


def default_subject_alt_names(server_name, inventory_hostname):
    # Empty or malformed names pass through: the plan names the variable and the problem.
    for name, value in (("the server name (mtls_upstream_server_name)", server_name), ("inventory_hostname", inventory_hostname)):
        if not isinstance(value, str):
            raise AnsibleFilterError("default_subject_alt_names: %s must be a string, not %r" % (name, value))
    return _names(server_name, inventory_hostname)


class FilterModule:
    def filters(self):
        return {"default_subject_alt_names": default_subject_alt_names}
