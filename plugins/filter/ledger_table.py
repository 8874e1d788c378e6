# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: ledger_table
short_description: The CA's issuance ledger as a table
version_added: 0.2.0
author:
  - mtls.nginx contributors (@mtls-nginx)
description:
  - One line per certificate of the CA's ledger (the C(certificates) of M(mtls.nginx.ledger)),
    valid ones first, soonest expiry first - serial, status (and the reason of a revocation), host,
    tier, subject, expiry and days left.
positional: _input
options:
  _input:
    description: The ledger's entries.
    type: list
    elements: dict
    required: true
  statuses:
    description: Only entries of these statuses (C(valid), C(superseded), C(revoked)); all when empty.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Show every valid certificate the CA issued
  ansible.builtin.debug:
    msg: "{{ mtls_pki_ledger | mtls.nginx.ledger_table(statuses=['valid']) }}"
"""

RETURN = r"""
_value:
  description: The lines of the table, a header first.
  type: list
  elements: str
"""

from ansible_collections.mtls.nginx.plugins.module_utils._ledger import table
from ansible_collections.mtls.nginx.plugins.plugin_utils._role_data import plain


def ledger_table(entries, statuses=None):
    return table(plain(entries), plain(statuses) or ())


class FilterModule:
    def filters(self):
        return {"ledger_table": ledger_table}
