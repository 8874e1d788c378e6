# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: mesh_plan
short_description: Check a fleet's service graph as a whole and derive what each host runs
version_added: 0.1.0
author:
  - mtls.nginx contributors (@mtls-nginx)
description:
  - Takes the service graph of a fleet (a trust domain, the services, the inventory group of
    each, and who calls whom on which loopback port) and the inventory's C(groups), and
    returns every problem of the declaration, the declared edges, and for each host the
    upstream tiers (one per service it runs) and the proxy listeners (one per service it runs
    and service that one calls) it needs.
  - Problems are found for the whole declaration at once, each naming the service and what is
    wrong, so that a play can refuse the run before any host changes.
  - "A problem is: a service name that is not a lower-case DNS label, a service declared twice,
    a service whose group is missing or empty, a call to a service that is not declared or
    declared twice, a port or backend URL that is not valid, and a port that one host would
    use twice (an upstream port or the loopback port of a call)."
  - A service's workload identity is C(spiffe://<trust domain>/<service>).
positional: _input, groups
options:
  _input:
    description:
      - "The declaration: a dict with C(trust_domain) (a lower-case DNS name) and C(services), a
        list of dicts with C(name), C(group), C(backend_url) (C(http://host:port)), C(port) (the
        upstream tier's port) and C(calls), a list of dicts with C(service) and C(port) (the
        loopback port its callers use)."
    type: dict
    required: true
  groups:
    description: The inventory's groups, C(groups) in a play.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Refuse a wrong service graph before anything changes
  vars:
    __plan: "{{ mtls_mesh | mtls.nginx.mesh_plan(groups) }}"
  ansible.builtin.assert:
    that: __plan.problems | length == 0
    fail_msg: "{{ __plan.problems | join('; ') }}"
    quiet: true

# ["service reports calls 'billing', which is not a declared service"]
- ansible.builtin.debug:
    msg: >-
      {{ ({'trust_domain': 'mesh.internal',
           'services': [{'name': 'reports', 'group': 'reports', 'backend_url': 'http://127.0.0.1:8000',
                         'port': 8443, 'calls': [{'service': 'billing', 'port': 9001}]}]}
          | mtls.nginx.mesh_plan({'reports': ['r1']})).problems }}
"""

RETURN = r"""
_value:
  description: The plan. With any problem, RV(_value.edges) and RV(_value.hosts) are empty.
  type: dict
  contains:
    problems:
      description: One message per problem, each naming the service (or host) and the problem.
      type: list
      elements: str
    edges:
      description: The declared calls, each C({caller, callee, port}).
      type: list
      elements: dict
    hosts:
      description:
        - For each host of a service, C(upstreams) (each C(service), C(spiffe_id),
          C(server_name), C(port), C(backend_url), C(allowed_callers)) and C(proxies) (each
          C(caller), C(callee), C(spiffe_id) of the caller, C(port), C(upstream_name),
          C(upstream_servers)).
      type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.nginx.plugins.module_utils._mesh import plan


def mesh_plan(declaration, groups):
    if not isinstance(groups, dict):
        raise AnsibleFilterError("mesh_plan expects the inventory's groups (a dict), not %s" % type(groups).__name__)
    return plan(declaration, groups)


class FilterModule:
    def filters(self):
        return {"mesh_plan": mesh_plan}
