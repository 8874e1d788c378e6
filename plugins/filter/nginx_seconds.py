# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: nginx_seconds
short_description: The seconds of an nginx time value such as 75s, 500ms or 2m
version_added: 0.1.0
author:
  - mtls.nginx contributors (@mtls-nginx)
description:
  - Turns a time as nginx directives take it (a number with an optional unit C(ms), C(s), C(m),
    C(h), C(d), C(w), C(M) or C(y); no unit means seconds; a month is 30 days and a year 365,
    as nginx counts them) into seconds, so that two settings of different tiers can be
    compared.
  - A value that is not such a time is an error naming it.
positional: _input
options:
  _input:
    description: The nginx time, such as C(75s).
    type: raw
    required: true
"""

EXAMPLES = r"""
# 0.5
- ansible.builtin.debug:
    msg: "{{ '500ms' | mtls.nginx.nginx_seconds }}"

- name: The proxy tier closes idle connections before the upstream tier does
  ansible.builtin.assert:
    that: (mtls_proxy_keepalive_timeout | mtls.nginx.nginx_seconds) < ('75s' | mtls.nginx.nginx_seconds)
"""

RETURN = r"""
_value:
  description: The seconds, an integer or, below a second, a float.
  type: float
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.nginx.plugins.module_utils._values import nginx_seconds as _nginx_seconds


def nginx_seconds(value):
    try:
        return _nginx_seconds(value)
    except ValueError as exc:
        raise AnsibleFilterError("nginx_seconds: %s" % exc)


class FilterModule:
    def filters(self):
        return {"nginx_seconds": nginx_seconds}
