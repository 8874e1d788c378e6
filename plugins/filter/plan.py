# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: plan
short_description: Every tier of every host, from the whole inventory, checked as a whole
version_added: 0.2.0
author:
  - mtls.nginx contributors (@mtls-nginx)
description:
  - Turns the inventory into the plan that C(mtls.nginx.site), C(mtls.nginx.verify) and every
    day-2 playbook work from. For every host, the list of its tiers, each a resolved record -
    its kind (C(upstream) or C(proxy)), config name, listen addresses, every file path, its
    identity (common name, SANs, SPIFFE ID), its key source, the CA it trusts, the peers it
    calls or is called by, and its TLS and keep-alive settings with every default applied.
  - "Two ways to say what runs where, in one inventory or together: one service (the hosts of the
    groups C(mtls_upstreams) and C(mtls_proxies), or of C(mtls_upstream_group) and
    C(mtls_proxy_group), with the roles' variables) and a service mesh (C(mtls_mesh), see
    P(mtls.nginx.mesh_plan#filter)). Mesh tiers take their settings from the declaration
    (C(mtls_mesh.upstream), C(mtls_mesh.proxy), and the same keys per service) and the roles'
    defaults, never from the single service's variables."
  - The defaults are the roles' own (their C(defaults/main.yml)), read from the collection.
  - Every problem is found at once, each naming the host and the variable or the service - the
    values of each tier, the declaration, two tiers of one host on one port or under one config
    name, a backend URL that is another tier's listener on the same host, a proxy whose upstream
    certificate will not carry the name it verifies or that would close idle connections after
    its upstream does, a workload identity (C(spiffe://)) set outside the declaration, CA
    settings (C(mtls_pki_*)) that differ between hosts, and a C(mtls_*) variable that no role has
    (with the closest known name).
positional: _input, hostvars
options:
  _input:
    description: The inventory's groups, C(groups) in a play.
    type: dict
    required: true
  hostvars:
    description: C(hostvars); the plan reads each host's C(mtls_*) variables, nothing else.
    type: dict
    required: true
  focus:
    description:
      - The hosts of this run (C(ansible_play_hosts_all)). A problem of a host outside them is
        a warning, so that C(--limit) runs are not refused for hosts they do not touch.
    type: list
    elements: str
  unknown_variables:
    description:
      - Whether a misspelt C(mtls_*) variable is a problem (C(error)) or a warning; by default
        what C(mtls_nginx_unknown_variables) says (C(error) unless set).
    type: str
    choices: [error, warning]
  playbook:
    description:
      - The collection's playbook that plans (C(rotate), C(revoke), ...), whose own variables
        (C(mtls_<playbook>_*), documented in C(playbooks/vars/argument_specs.yml)) are checked too -
        the type of each, and any of its prefix that it does not have (with the closest name).
    type: str
"""

EXAMPLES = r"""
- name: Plan every tier of every host, and refuse a wrong inventory before any host changes
  ansible.builtin.set_fact:
    mtls_nginx_plan: "{{ groups | mtls.nginx.plan(hostvars, focus=ansible_play_hosts_all) }}"
  run_once: true

- name: The tiers of this host, upstream tiers first
  ansible.builtin.debug:
    msg: "{{ mtls_nginx_plan.hosts[inventory_hostname].tiers | default([]) }}"
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    problems:
      description: One message per problem; nothing may be deployed from a plan with any.
      type: list
      elements: str
    warnings:
      description: Problems of hosts outside O(focus), and misspelt variables with O(unknown_variables=warning).
      type: list
      elements: str
    hosts:
      description:
        - For each host with a tier, C(upstream) and C(proxy) (its tier records, in the order they
          are deployed) and C(tiers) (their config names).
        - "A record holds C(kind), C(name) (the config name), C(id) (the nginx identifier),
          C(host), C(model) (C(single) or C(mesh)), C(service), C(label) (how messages name it),
          C(dir), C(dropin), C(files) (C(key), C(certificate), C(chain), C(passphrase), C(ca),
          C(crl), C(withheld)), C(identity) (C(purpose), C(common_name), C(subject_alt_names),
          C(spiffe_id), C(expected_name)), C(key) (C(source), C(label), C(certificate_file),
          C(private_key_file), C(encrypted)), C(trust) (C(ca_file), C(crl_file), C(managed_ca),
          C(managed_crl), C(use_crl), C(withhold_ca_list)), C(listen), C(tls), C(keepalive),
          C(access_log) and C(rotate), and by kind: an upstream tier its C(server_name),
          C(server_names), C(backend_url), C(backend), C(locations), C(identity_headers),
          C(identity_fields), C(cleared_headers), C(forwarded_cert) and C(callers) (the proxy tiers
          that call it); a proxy tier its C(upstream) (C(name), C(servers), C(group)),
          C(allowed_sources), C(cleared_headers), C(retry_unanswered), C(probe) and C(peers) (the
          upstream tiers it forwards to)."
      type: dict
    slots:
      description: The most upstream tiers (C(upstream)) and proxy tiers (C(proxy)) any one host has.
      type: dict
    options:
      description: The groups of the single service, C(upstream_group) and C(proxy_group).
      type: dict
    pki:
      description: The CA's settings (the C(mtls_pki_*) variables by suffix, such as C(dir)), the same for every host.
      type: dict
    mesh:
      description: The service mesh's own plan (P(mtls.nginx.mesh_plan#filter)), or null without C(mtls_mesh).
      type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.nginx.plugins.module_utils._plan import plan as _plan
from ansible_collections.mtls.nginx.plugins.plugin_utils import _role_data


def plan(groups, hostvars, focus=None, unknown_variables=None, playbook=None):
    if not isinstance(groups, dict) and not hasattr(groups, "keys"):
        raise AnsibleFilterError("plan expects the inventory's groups (a dict), not %s" % type(groups).__name__)
    if unknown_variables not in (None, "error", "warning"):
        raise AnsibleFilterError("plan: unknown_variables must be error or warning, not %r" % (unknown_variables,))
    inventory = _role_data.inventory(groups, hostvars)
    # A value of the wrong type is named with what its role expects, and planning stops there:
    # nothing would read it right.
    # One message per mistake, naming the hosts it is on (a group_vars mistake is on many).
    focused = set(_role_data.plain(focus)) if focus is not None else None
    hosts_of = {}
    for host in sorted(inventory["hosts"]):
        if focused is None or host in focused:
            for message in _role_data.type_problems(inventory["hosts"][host]):
                hosts_of.setdefault(message, []).append(host)
    # The playbook's own variables (-e, or the inventory), as its argument specs document them.
    unknown_playbook = []
    if playbook:
        for host in sorted(inventory["hosts"]):
            if focused is None or host in focused:
                mistyped_here, unknown_here = _role_data.playbook_problems(playbook, inventory["hosts"][host])
                for message in mistyped_here:
                    hosts_of.setdefault(message, []).append(host)
                unknown_playbook.extend(message for message in unknown_here if message not in unknown_playbook)
    if hosts_of:
        mistyped = ["%s: %s" % (", ".join(hosts) if len(hosts) <= 3 else "%s and %d other hosts" % (
            ", ".join(hosts[:3]), len(hosts) - 3), message) for message, hosts in hosts_of.items()]
        return {"problems": inventory["problems"] + mistyped, "warnings": [], "hosts": {}, "slots": {},
                "options": {}, "pki": {}, "mesh": {}}
    result = _plan(inventory, _role_data.defaults(), known=_role_data.known(),
                   focus=_role_data.plain(focus) if focus is not None else None, unknown_as=unknown_variables)
    result["problems"] = inventory["problems"] + result["problems"]
    if unknown_playbook:
        target = result["warnings"] if result.get("unknown_as") == "warning" else result["problems"]
        target.extend(unknown_playbook)
    return result


class FilterModule:
    def filters(self):
        return {"plan": plan}
