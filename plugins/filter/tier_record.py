# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: tier_record
short_description: The record of one tier, made from a tier role's own variables
version_added: 0.2.0
author:
  - mtls.nginx contributors (@mtls-nginx)
description:
  - What the roles P(mtls.nginx.upstream#role) and P(mtls.nginx.proxy#role) deploy when they are
    used on their own, in a playbook of yours, rather than handed a record of the plan
    (P(mtls.nginx.plan#filter)) by C(mtls.nginx.site) - the same record, made by the same code,
    from the role's variables as they stand where the role runs.
  - For a proxy tier, the upstream tiers it forwards to are planned from the inventory (their
    hosts' variables and the roles' defaults), so that the cross-tier checks see them.
  - Returns C({record, problems}); nothing may be deployed from a record with problems.
positional: _input, host, variables
options:
  _input:
    description: The tier's kind.
    type: str
    required: true
    choices: [upstream, proxy]
  host:
    description: The host it runs on, C(inventory_hostname).
    type: str
    required: true
  variables:
    description:
      - The variables in scope (names and values of every C(mtls_<kind>_*) and C(mtls_nginx_*)
        variable); a name the role does not have is a problem, with the closest known name.
    type: dict
    required: true
  groups:
    description: The inventory's groups, for a proxy tier's default upstream servers and its peers.
    type: dict
  hostvars:
    description: C(hostvars), for a proxy tier's cross-tier checks against the upstream hosts of the inventory.
    type: dict
"""

EXAMPLES = r"""
- name: The record of this upstream tier, from the role's variables
  ansible.builtin.set_fact:
    __tier: >-
      {{ 'upstream' | mtls.nginx.tier_record(inventory_hostname,
           dict(__names | zip(query('ansible.builtin.vars', *__names))), groups=groups, hostvars=hostvars) }}
  vars:
    __names: "{{ query('ansible.builtin.varnames', '^mtls_(upstream|nginx)_') }}"
"""

RETURN = r"""
_value:
  description: The record (see P(mtls.nginx.plan#filter)) and every problem of it.
  type: dict
  contains:
    record:
      description: The tier record.
      type: dict
    problems:
      description: One message per problem, each naming the variable.
      type: list
      elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.nginx.plugins.module_utils import _plan, _tier
from ansible_collections.mtls.nginx.plugins.plugin_utils import _role_data


def tier_record(kind, host, variables, groups=None, hostvars=None):
    if kind not in _tier.KINDS:
        raise AnsibleFilterError("tier_record: the kind must be upstream or proxy, not %r" % (kind,))
    variables = _role_data.plain(variables)
    defaults = _role_data.defaults()
    known = _role_data.known()
    # A value of the wrong type is named with what its role expects, before anything reads it.
    mistyped = _role_data.type_problems(variables)
    if mistyped:
        prefix = "mtls_%s_" % kind
        suffixes = [name[len(prefix):] for name in sorted(variables) if name.startswith(prefix)]
        allowed = set(known[kind]) | set(_tier.PLAYBOOK_VARIABLES[kind])
        unknown = ["%s%s: not a variable of the %s tier%s" % (prefix, suffix, kind, _tier.near(suffix, known[kind], prefix))
                   for suffix in suffixes if suffix not in allowed]
        return {"record": {}, "problems": mistyped + unknown}
    values = dict(defaults[kind])
    values.update(_plan._prefixed(variables, kind))
    for key in _tier.PLAYBOOK_VARIABLES[kind]:
        values.pop(key, None)
    nginx = dict(defaults["nginx"])
    nginx.update(_plan._prefixed(variables, "nginx"))
    groups = _role_data.plain(groups or {})
    options = _plan._options({str(host): variables})
    record, problems = _tier.record(kind, str(host), values, nginx, groups=groups, options=options,
                                    known=known[kind])
    for key in sorted(_plan._prefixed(variables, "nginx")):
        if key not in known["nginx"]:
            problems.append("mtls_nginx_%s: not a variable of mtls.nginx.nginx_common%s" % (key, _tier.near(key, known["nginx"], "mtls_nginx_")))
    if kind == "proxy" and hostvars is not None and record["cross_tier_checks"]:
        named = {str(server).rpartition(":")[0] for server in record["upstream"]["servers"]}
        targets = sorted(named.intersection(groups.get("all") or []))
        inventory = _role_data.inventory(groups, hostvars, hosts=targets)
        peers = _plan.plan(inventory, defaults)
        listeners = {}
        for entry in peers["hosts"].values():
            for upstream in entry["upstream"]:
                for listen in upstream["listen"]:
                    listeners.setdefault((upstream["host"], _tier.port_of(listen)), []).append(upstream)
        problems.extend(_plan.link_proxy(record, listeners))
    return {"record": record, "problems": problems}


class FilterModule:
    def filters(self):
        return {"tier_record": tier_record}
