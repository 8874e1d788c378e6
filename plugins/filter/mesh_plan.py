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
    and service that one calls) it needs. The C(mtls.nginx.site) playbook deploys them.
  - Problems are found for the whole declaration at once, each naming the service and what is
    wrong, so that a play can refuse the run before any host changes.
  - "A problem is: a service name that is not a lower-case DNS label, a service declared twice,
    a service whose group is missing or empty, a call to a service that is not declared or
    declared twice, a port or backend URL that is not valid, and a port that one host would
    use twice (an upstream port or the loopback port of a call), and an identity longer than
    the 64 characters of a certificate's common name."
  - A service's workload identity is C(spiffe://<trust domain>/<service>). Its certificates
    carry it as a URI SAN and as their only subject field, C(CN=spiffe://<trust domain>/<service>),
    which the upstream tiers allow-list and forward (nginx 1.22 and 1.26 expose no URI SAN).
positional: _input, groups
options:
  _input:
    description:
      - "The declaration: a dict with C(trust_domain) (a lower-case DNS name) and C(services), a
        list of dicts with C(name), C(group), C(backend_url) (C(http://host:port)), C(port) (the
        upstream tier's port), C(calls), a list of dicts with C(service) and C(port) (the
        loopback port its callers use), and optionally C(local_group), a unix group: its calls
        then take no port and its listeners are unix sockets under C(/run/mtls-nginx/<service>/)
        that only that group may open."
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
  description: The plan. With any problem, RV(_value.edges), RV(_value.services) and RV(_value.hosts) are empty.
  type: dict
  contains:
    problems:
      description: One message per problem, each naming the service (or host) and the problem.
      type: list
      elements: str
    trust_domain:
      description: The declaration's trust domain.
      type: str
    edges:
      description: The declared calls, each C({caller, callee, port}).
      type: list
      elements: dict
    services:
      description:
        - For each service, its C(spiffe_id), C(server_name) (C(<service>.<trust domain>)),
          C(group), C(hosts), C(port), C(calls) (the services it calls) and C(callers).
      type: dict
    hosts:
      description:
        - For each host of a service, C(upstreams) (each C(service), C(config_name),
          C(spiffe_id), C(server_name), C(subject_alt_names), C(port), C(backend_url),
          C(allowed_callers) and C(allowed_subjects), the callers' subject DNs) and C(proxies)
          (each C(caller), C(callee), C(config_name), C(spiffe_id) and C(common_name) of the
          caller, C(subject_alt_names), C(port), C(upstream_group), C(upstream_name),
          C(upstream_servers)).
        - And C(undeclared), the pairs its caller services can try beyond their declared edges
          (each C(caller), C(callee), C(config_name) of a listener of the caller on this host,
          and the C(host), C(port) and C(server_name) of the callee's first host), for the
          C(mtls.nginx.verify) playbook.
      type: dict
    slots:
      description: The most upstream tiers (C(upstreams)) and listeners (C(proxies)) that any one host has.
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
