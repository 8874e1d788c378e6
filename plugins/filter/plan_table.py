# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: plan_table
short_description: A plan as a table, one line per tier
version_added: 0.2.0
author:
  - mtls.nginx contributors (@mtls-nginx)
description:
  - One line per tier of a plan (P(mtls.nginx.plan#filter)), host by host, upstream tiers first -
    its kind, config name, listen addresses, identity (SPIFFE ID or common name), key source, and
    the tiers that call it (an upstream tier) or the servers it calls (a proxy tier); then the
    plan's problems and warnings.
positional: _input
options:
  _input:
    description: The plan.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Show the plan
  ansible.builtin.debug:
    msg: "{{ mtls_nginx_plan | mtls.nginx.plan_table }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: The lines of the table.
  type: list
  elements: str
"""

from ansible_collections.mtls.nginx.plugins.module_utils._plan import table
from ansible_collections.mtls.nginx.plugins.plugin_utils._role_data import plain


def plan_table(planned):
    return table(plain(planned))


class FilterModule:
    def filters(self):
        return {"plan_table": plan_table}
