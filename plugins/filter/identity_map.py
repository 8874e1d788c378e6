# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: identity_map
short_description: The identity values of an upstream tier's known callers, computed once
version_added: 0.2.0
author:
  - mtls.nginx contributors (@mtls-nginx)
description:
  - Takes the valid certificates of the CA's issuance ledger (the C(issued) of
    M(mtls.nginx.ca_read)) and an upstream tier's callers (the C(callers) of its record in the
    plan), and returns, for each certificate those callers hold, the values nginx would compute
    for it on every request - C($ssl_client_fingerprint), C($ssl_client_escaped_cert),
    C($ssl_client_s_dn), C($ssl_client_i_dn), C($ssl_client_serial) - byte for byte.
  - The upstream tier writes them into maps keyed by the fingerprint, so that a known caller's
    identity headers are a hash lookup; any other certificate gets nginx's own values. A
    certificate whose names are not printable ASCII is left out (nginx's own values serve it).
positional: _input, callers
options:
  _input:
    description: The valid certificates of the ledger, each with C(host), C(tier) and C(pem).
    type: list
    elements: dict
    required: true
  callers:
    description: The tiers that call the upstream tier, each with C(host) and C(name) (its config name).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: The pre-computed identities of this upstream tier's callers
  ansible.builtin.set_fact:
    known: "{{ ca.issued | mtls.nginx.identity_map(mtls_nginx_tier.callers) }}"
"""

RETURN = r"""
_value:
  description: One entry per certificate, sorted by fingerprint.
  type: list
  elements: dict
  contains:
    fingerprint:
      description: The SHA-1 of the certificate, lower-case hexadecimal, as C($ssl_client_fingerprint).
      type: str
    certificate:
      description: The certificate's PEM, URL-escaped, as C($ssl_client_escaped_cert).
      type: str
    subject_dn:
      description: The subject, RFC 2253, as C($ssl_client_s_dn).
      type: str
    issuer_dn:
      description: The issuer, RFC 2253, as C($ssl_client_i_dn).
      type: str
    serial:
      description: The serial in hexadecimal, as C($ssl_client_serial).
      type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.nginx.plugins.module_utils._identity import gate_callers as _gate_callers
from ansible_collections.mtls.nginx.plugins.module_utils._identity import identity_map as _identity_map
from ansible_collections.mtls.nginx.plugins.module_utils._identity import known_callers_files as _known_callers_files
from ansible_collections.mtls.nginx.plugins.plugin_utils import _role_data


def identity_map(issued, callers):
    if not isinstance(issued, list) or not isinstance(callers, list):
        raise AnsibleFilterError("identity_map: expects the ledger's valid certificates (a list) and the tier's callers (a list)")
    return _identity_map(_role_data.plain(issued), _role_data.plain(callers))


def known_callers_files(tiers, issued):
    """The file of each upstream tier's known callers' maps (mtls.nginx.files entries)."""
    if not isinstance(tiers, list) or not isinstance(issued, list):
        raise AnsibleFilterError("known_callers_files: expects the tiers' records (a list) and the ledger's valid certificates (a list)")
    return _known_callers_files(_role_data.plain(tiers), _role_data.plain(issued))


def gate_callers(tier, revoked):
    """Whom an upstream tier's rotation gate asks: its planned callers, less those the CA's ledger
    holds revoked (``revoked``: the revoked_tiers of mtls.nginx.ca_read; None when it was not read)."""
    if not isinstance(tier, dict) or not (revoked is None or isinstance(revoked, list)):
        raise AnsibleFilterError("gate_callers: expects the tier's record (a dict) and the ledger's revoked tiers (a list, or none)")
    return _gate_callers(_role_data.plain(tier), None if revoked is None else _role_data.plain(revoked))


class FilterModule:
    def filters(self):
        return {"identity_map": identity_map, "known_callers_files": known_callers_files, "gate_callers": gate_callers}
