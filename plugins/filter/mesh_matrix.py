# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: mesh_matrix
short_description: The caller x callee matrix of a service mesh, expected against observed
version_added: 0.1.0
author:
  - mtls.nginx contributors (@mtls-nginx)
description:
  - Takes the plan of a service mesh (the result of P(mtls.nginx.mesh_plan#filter)) and the
    requests that the C(mtls.nginx.verify) playbook tried, and returns the caller x
    callee table of what the declaration expects and what was observed, and every difference,
    each naming the edge and the caller host.
positional: _input, tried
options:
  _input:
    description: The plan, from P(mtls.nginx.mesh_plan#filter).
    type: dict
    required: true
  tried:
    description:
      - Per caller host, a dict with C(host), C(declared) (the results of its
        M(ansible.builtin.uri) requests over its declared edges, each item a listener of the
        plan) and C(undeclared) (the results of its M(mtls.nginx.tls_probe) requests over the
        pairs it does not call, each item an entry of the plan's C(undeclared)) and C(local)
        (the results of connecting to each listener kept to one service as local users, each item
        a pair of the listener's record and one of its C(local_access.trials), C(rc) 0 when the
        connection was made).
      - A listener kept to one service must refuse every local user outside its group and
        connect one of its group.
      - A declared edge must answer 200, with the caller's SPIFFE ID in the answer when
        O(expect_identity) is true; an undeclared pair must answer 403.
    type: list
    elements: dict
    required: true
  expect_identity:
    description: Whether the answer over a declared edge must carry the caller's SPIFFE ID (a backend that echoes the headers it received).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Print the matrix, and fail on any difference
  vars:
    __matrix: "{{ __plan | mtls.nginx.mesh_matrix(__tried) }}"
  ansible.builtin.assert:
    that: __matrix.differences | length == 0
    fail_msg: "{{ __matrix.differences | join('; ') }}"
    success_msg: "{{ __matrix.lines | join('\n') }}"
"""

RETURN = r"""
_value:
  description: The table and the differences.
  type: dict
  contains:
    lines:
      description: The caller x callee table, a line per caller service, then a legend.
      type: list
      elements: str
    differences:
      description: One message per request whose outcome differs from the declaration's, naming the edge and host.
      type: list
      elements: str
    dot:
      description:
        - The same result as a Graphviz DOT graph - the services as nodes, each declared edge green
          when every caller host got its answer and red (labelled with what was observed) when not,
          each pair not declared but reachable red and dashed; pairs refused as expected are not drawn.
      type: str
"""

from ansible.errors import AnsibleFilterError

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.mtls.nginx.plugins.module_utils._mesh import matrix


def mesh_matrix(plan_result, tried, expect_identity=True):
    if not isinstance(plan_result, dict) or not isinstance(tried, list):
        raise AnsibleFilterError("mesh_matrix: expects the plan (a dict) and what each host tried (a list)")
    # -e gives a string: "false" is false, as Ansible's bool filter reads it.
    if isinstance(expect_identity, str):
        expect_identity = boolean(expect_identity, strict=False)
    return matrix(plan_result, tried, bool(expect_identity))


class FilterModule:
    def filters(self):
        return {"mesh_matrix": mesh_matrix}
