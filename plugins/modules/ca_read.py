#!/usr/bin/python
# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: ca_read
short_description: Read what the hosts need from the CA's directory, where the CA lives
version_added: 0.2.0
description:
  - Reads the CA's directory where it is (the controller, or the CA host of
    C(mtls_pki_ca_host)), so that only certificates and CRLs travel from it - the generations
    of a CA rollover, the bundle of CA certificates every host trusts, the bundle of the CRLs of
    every CA that issues host certificates, the signing CA's chain, the serials that
    C(revoked.txt) lists and those its issuance ledger knows.
  - Reads only; never reads or returns a private key.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - mtls.nginx.attributes.no_diff
options:
  path:
    description: The CA's directory (C(mtls_pki_dir)).
    type: path
    required: true
  intermediate:
    description: Whether an issuing intermediate below each root signs host certificates (its CRL belongs in the bundle).
    type: bool
    default: false
  make_next:
    description: Count the coming CA of a rollover's phase 1 as a generation before it exists.
    type: bool
    default: false
author:
  - mtls.nginx contributors (@mtls-nginx)
"""

EXAMPLES = r"""
- name: Read the CA's bundles on the CA host
  mtls.nginx.ca_read:
    path: /var/lib/mtls-nginx/pki
    intermediate: true
  delegate_to: ca-1.internal
  register: ca
"""

RETURN = r"""
exists:
  description: Whether the CA's certificate (C(ca.pem)) exists.
  type: bool
  returned: always
generation:
  description: How many CAs have signed so far (1 before the first rollover).
  type: int
  returned: always
generations:
  description: The CA generations, oldest first, each C(suffix) (C(-previous), empty, C(-next)) and C(generation).
  type: list
  elements: dict
  returned: always
has_next:
  description: Whether a rollover's coming CA (C(ca-next.pem)) exists.
  type: bool
  returned: always
has_previous:
  description: Whether a rollover's retiring CA (C(ca-previous.pem)) exists.
  type: bool
  returned: always
revoked_file_serials:
  description: The serials of C(revoked.txt) (kept from versions before the ledger).
  type: list
  elements: str
  returned: always
anchor_bundle:
  description: The CA certificate of every generation, in one PEM bundle, as every host trusts them.
  type: str
  returned: always
crl_bundle:
  description: The CRL of every CA of every generation that issues host certificates, in one PEM file.
  type: str
  returned: always
issuer_chain:
  description: The signing CA's certificate and its parents, PEM.
  type: str
  returned: always
issuer_path:
  description: Where the signing CA's chain is, on the side that holds the CA.
  type: str
  returned: always
certificates:
  description: The PEM of C(ca-next.pem), C(ca-previous.pem) and C(intermediate-previous.pem), empty where absent (the rollover phases check them).
  type: dict
  returned: always
issued:
  description:
    - The valid certificates of the CA's issuance ledger (public), each C(host), C(tier) and C(pem),
      from which the upstream tiers pre-compute their known callers' identities (P(mtls.nginx.identity_map#filter)).
  type: list
  elements: dict
  returned: always
revoked_tiers:
  description:
    - The tiers, each C(host) and C(tier) (its config name), whose certificates the CA's issuance
      ledger holds revoked with none valid (revoked by host or service, and not rotated since).
      The rotation gate of an upstream tier does not ask such a caller.
  type: list
  elements: dict
  returned: always
ledger_serials:
  description: Every serial the CA's issuance ledger knows.
  type: list
  elements: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mtls.nginx.plugins.module_utils._crypto import PKIError
from ansible_collections.mtls.nginx.plugins.module_utils._rollover import read_state


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            intermediate=dict(type="bool", default=False),
            make_next=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    try:
        state = read_state(module.params["path"], module.params["intermediate"], module.params["make_next"])
    except (PKIError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **state)


if __name__ == "__main__":
    main()
