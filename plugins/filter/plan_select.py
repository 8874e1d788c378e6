# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: plan_select
short_description: The tiers of the plan that a day-2 job acts on
version_added: 0.2.0
author:
  - mtls.nginx contributors (@mtls-nginx)
description:
  - Picks tiers of a plan (P(mtls.nginx.plan#filter)) by host, by service of the mesh (its upstream
    tiers and its listeners), by config name and by kind. Each criterion left out or empty selects
    everything, and they combine.
  - Each criterion may be a list or, as C(-e var=value) gives it on the command line, a single name.
  - A name that is in no tier of the plan is a problem, with the closest one that is, and so is a
    selection that picks no tier.
positional: _input
options:
  _input:
    description: The plan.
    type: dict
    required: true
  hosts:
    description: Inventory hosts.
    type: raw
  services:
    description: Services of the mesh (C(mtls_mesh)).
    type: raw
  tiers:
    description: Config names of tiers (C(mtls-upstream), C(mtls-mesh-orders), C(mtls-mesh-web-to-orders)).
    type: raw
  kinds:
    description: C(upstream), C(proxy).
    type: raw
  names:
    description: The variable that gave each criterion, for messages (C({hosts, services, tiers, kinds})).
    type: dict
  within:
    description:
      - The hosts of the run (C(ansible_play_hosts_all)); only their tiers are selected, none when
        it is empty, so that C(--limit) narrows every choice.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: The tiers of the service orders, on the hosts of this run
  ansible.builtin.set_fact:
    __chosen: "{{ mtls_nginx_plan | mtls.nginx.plan_select(services=['orders'], within=ansible_play_hosts_all) }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: The selection.
  type: dict
  contains:
    problems:
      description: One message per name that is in no tier of the plan, or for a selection that picks nothing.
      type: list
      elements: str
    hosts:
      description: Each host with a selected tier, its selected records by kind (C(upstream), C(proxy)).
      type: dict
    slots:
      description: The most selected tiers of each kind that any one host has.
      type: dict
    labels:
      description: How messages name each selected tier.
      type: list
      elements: str
    selectors:
      description: Each selected tier as C({host, tier}), as M(mtls.nginx.ledger) selects what the CA issued for it.
      type: list
      elements: dict
"""

from ansible_collections.mtls.nginx.plugins.module_utils._plan import select
from ansible_collections.mtls.nginx.plugins.plugin_utils._role_data import plain


def plan_select(planned, hosts=None, services=None, tiers=None, kinds=None, names=None, within=None):
    return select(plain(planned), hosts=plain(hosts), services=plain(services), tiers=plain(tiers),
                  kinds=plain(kinds), names=plain(names), within=plain(within))


class FilterModule:
    def filters(self):
        return {"plan_select": plan_select}
