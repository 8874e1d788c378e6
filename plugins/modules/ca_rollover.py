#!/usr/bin/python
# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: ca_rollover
short_description: Promote the coming CA, or retire the previous one, in a PKI directory of mtls.nginx.pki
version_added: 0.1.0
description:
  - The controller's file steps of a CA rollover (playbooks C(mtls.nginx.ca_reissue) and
    C(mtls.nginx.ca_retire)). The M(mtls.nginx.ca) tasks of the pki role keep the CA that signs as C(ca.*) (and
    C(intermediate.*)), the coming CA of phase 1 as C(ca-next.*), and the retiring CA as
    C(ca-previous.*); the file C(generation) counts the CAs that have signed.
  - O(phase=promote) (phase 2) makes the coming CA the signing one and the signing one the
    retiring one, and counts one generation more. It refuses when there is no coming CA (phase 1
    has not run) or when a retiring CA of an earlier rollover is still there.
  - O(phase=retire) (phase 3) moves the retiring CA into C(archive/generation-N/) (never deleting
    it). It refuses while a coming CA waits to be promoted (phase 2 has not run).
  - Every condition is checked before any file moves; a refusal changes nothing. It does not
    check the hosts; the playbooks C(mtls.nginx.ca_reissue) and C(mtls.nginx.ca_retire) do that
    before they call this module.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - mtls.nginx.attributes.no_diff
options:
  path:
    description: The PKI directory (C(mtls_pki_dir) of the pki role).
    type: path
    required: true
  phase:
    description: The rollover step to take.
    type: str
    required: true
    choices: [promote, retire]
  stems:
    description: The CAs of one generation, by file name stem; C(intermediate) when the pki role issues through one.
    type: list
    elements: str
    default: [ca]
  lock_timeout:
    description:
      - How long to wait, in seconds, for the exclusive lock of the CA's directory; when it runs
        out, the task fails naming who holds it, and nothing moves.
    type: float
    default: 300
  lock_holder:
    description: What this run is, for whoever waits for the lock.
    type: str
    default: ""
seealso:
  - module: mtls.nginx.ca
author:
  - mtls.nginx contributors (@mtls-nginx)
"""

EXAMPLES = r"""
- name: Phase 2 of a CA rollover, the coming CA signs from now on
  mtls.nginx.ca_rollover:
    path: ~/.mtls-nginx/pki
    phase: promote
    stems: [ca, intermediate]
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
lock_waits:
  description:
    - Each wait for the lock of the CA's directory, which another run held (also shown as a warning) -
      the directory, who held the lock when this run found it taken, and the seconds waited.
  type: list
  elements: dict
  returned: always
  sample: [{"path": "/var/lib/mtls-nginx/pki", "holder": "mtls.nginx.revoke (for web-1) on ctl-1 (pid 4242) since 2026-12-06T03:00:00Z", "seconds": 2.4}]
generation:
  description: The generation that signs after this step.
  returned: always
  type: int
  sample: 2
state:
  description: What was done, or why nothing needed doing.
  returned: always
  type: str
  sample: "promoted: generation 2 signs"
moves:
  description: Files moved (C(from), C(to)); C(from) is null for the generation file, which is written.
  returned: always
  type: list
  elements: dict
  contains:
    from:
      description: The file moved, or null for the generation file.
      type: str
    to:
      description: Where the file now is (or, in check mode, would be).
      type: str
  sample:
    - {"from": "/home/ops/.mtls-nginx/pki/ca.pem", "to": "/home/ops/.mtls-nginx/pki/ca-previous.pem"}
    - {"from": "/home/ops/.mtls-nginx/pki/ca-next.pem", "to": "/home/ops/.mtls-nginx/pki/ca.pem"}
    - {"from": null, "to": "/home/ops/.mtls-nginx/pki/generation"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mtls.nginx.plugins.module_utils._crypto import PKIError
from ansible_collections.mtls.nginx.plugins.module_utils._ledger import locked, wait_messages, waits
from ansible_collections.mtls.nginx.plugins.module_utils._rollover import Rollover


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            phase=dict(type="str", required=True, choices=["promote", "retire"]),
            stems=dict(type="list", elements="str", default=["ca"]),
            lock_timeout=dict(type="float", default=300.0),
            lock_holder=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    try:
        # The whole step under the CA directory's lock: no signature or CRL meets a half-moved CA.
        with locked(module.params["path"], module.params["lock_holder"] or "ca_rollover " + module.params["phase"],
                    module.params["lock_timeout"], module.check_mode):
            rollover = Rollover(module.params["path"], module.params["stems"], check_mode=module.check_mode)
            result = rollover.promote() if module.params["phase"] == "promote" else rollover.retire()
    except (PKIError, OSError) as exc:
        module.fail_json(msg=str(exc))
    for message in wait_messages():
        module.warn(message)
    result["lock_waits"] = waits()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
