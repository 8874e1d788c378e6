#!/usr/bin/python
# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: host_state
short_description: Read whether a host has the packages and running services its tiers need, changing nothing
version_added: 0.2.0
description:
  - One module run for what would otherwise take three - whether packages are installed (dpkg's
    database), whether services run and start at boot (systemd), and with O(distribution) the
    distribution facts that M(ansible.builtin.setup) reads, by its own code.
  - Changes nothing. The tier roles' set-up (C(mtls.nginx.nginx_common)) runs M(ansible.builtin.apt) only for a
    package this reports missing, and M(ansible.builtin.service) only for a service not both
    active and enabled; what it cannot tell (no C(dpkg-query), no running systemd, a package
    name with a version pin) is reported missing or unknown, so the real module runs and decides.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - mtls.nginx.attributes.no_diff
options:
  packages:
    description: Debian package names to look up.
    type: list
    elements: str
    default: []
  services:
    description: systemd units to look up (V(nginx) for C(nginx.service)).
    type: list
    elements: str
    default: []
  distribution:
    description: Also return the distribution facts, as C(ansible_facts) (C(distribution), C(distribution_major_version), ...).
    type: bool
    default: false
seealso:
  - module: ansible.builtin.setup
  - module: ansible.builtin.package_facts
  - module: ansible.builtin.service_facts
author:
  - mtls.nginx contributors (@mtls-nginx)
"""

EXAMPLES = r"""
- name: Read whether nginx is installed and running, and the distribution
  mtls.nginx.host_state:
    packages: [nginx, python3-cryptography, openssl]
    services: [nginx]
    distribution: true
  register: state

- name: Install what is missing, only then
  ansible.builtin.apt:
    name: "{{ state.missing_packages }}"
    update_cache: true
  when: state.missing_packages | length > 0
"""

RETURN = r"""
packages:
  description: Each package of O(packages) and its installed version, or V(null) when it is not installed (or cannot be told).
  returned: always
  type: dict
  sample: {"nginx": "1.22.1-9+deb12u1", "openssl": null}
missing_packages:
  description: The packages of O(packages) that are not installed, or cannot be told to be, in the order given.
  returned: always
  type: list
  elements: str
services:
  description:
    - Each service of O(services) - C(active) (V(true) for systemd's ActiveState C(active)), C(enabled)
      (V(true) for UnitFileState C(enabled)), and the two states as systemd names them; C(active) and
      C(enabled) are V(null) when systemd does not answer.
  returned: always
  type: dict
  sample: {"nginx": {"active": true, "enabled": true, "active_state": "active", "unit_file_state": "enabled"}}
ansible_facts:
  description: With O(distribution), the distribution facts as M(ansible.builtin.setup) returns them.
  returned: when O(distribution) is true
  type: dict
  sample: {"distribution": "Debian", "distribution_major_version": "12", "distribution_release": "bookworm", "os_family": "Debian"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mtls.nginx.plugins.module_utils._host import (
    distribution_facts,
    installed_packages,
    service_state,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            packages=dict(type="list", elements="str", default=[]),
            services=dict(type="list", elements="str", default=[]),
            distribution=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    packages = installed_packages(module, module.params["packages"])
    result = dict(
        changed=False,
        packages=packages,
        missing_packages=[name for name in module.params["packages"] if packages.get(name) is None],
        services=dict((name, service_state(module, name)) for name in module.params["services"]),
    )
    if module.params["distribution"]:
        result["ansible_facts"] = distribution_facts(module)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
