#!/usr/bin/python
# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: ledger
short_description: Read and revoke in the CA's issuance ledger
version_added: 0.2.0
description:
  - The issuance ledger is the CA's own record of every certificate it signed (serial, issuer,
    subject, names, the SHA-256 of the public key, the host and the tier it was issued for, its
    validity) and of its status - C(valid), C(superseded) (a newer certificate for the same key
    replaced it) or C(revoked) (with the reason and the time). M(mtls.nginx.certificate)'s
    C(sign) writes it in the same locked step as each signature, and refuses a key the ledger
    lists as revoked; M(mtls.nginx.ca) lists every revoked certificate in the CRL.
  - O(state=query) reads it. O(state=revoked) revokes the certificates that O(select) names, by
    host, tier, service or serial, reading nothing but the ledger (never a file on a host, which a
    compromised host could change); a serial the ledger does not know is recorded as revoked.
    O(state=superseded) revokes, with reason C(superseded), every certificate of one host's tier
    but those O(keep) names, once a rotation put a new one in service.
  - Runs where the CA is (the controller, or the CA host). Writes hold the lock of the CA's
    directory; a refusal or a timeout changes nothing.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - mtls.nginx.attributes.no_diff
options:
  path:
    description: The ledger (C(ledger.json) in the CA's directory); a missing one is empty.
    type: path
    required: true
  state:
    description: Read (V(query)), revoke what O(select) names (V(revoked)), or revoke what a rotation replaced (V(superseded)).
    type: str
    default: query
    choices: [query, revoked, superseded]
  select:
    description:
      - Which certificates; each item names some of C(host), C(tier), C(service), C(serial), and
        selects the certificates that match all it names. An empty list selects every
        certificate (V(query) only).
      - With O(state=superseded), one item with C(host) and C(tier).
    type: list
    elements: dict
    default: []
  serials:
    description:
      - With O(state=revoked), serials to revoke besides O(select) (hexadecimal, as nginx logs them);
        one the ledger does not know (signed by hand with the CA's key, or before the ledger) is
        recorded as revoked.
    type: list
    elements: str
    default: []
  statuses:
    description: With O(state=query), only certificates of these statuses.
    type: list
    elements: str
    choices: [valid, superseded, revoked]
    default: []
  keep:
    description: With O(state=superseded), the serials of the tier's certificates that stay in service.
    type: list
    elements: str
    default: []
  reason:
    description: Why they are revoked, RFC 5280's reason; with O(state=superseded) always V(superseded).
    type: str
    default: unspecified
    choices: [unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation,
              certificateHold, privilegeWithdrawn, aACompromise]
  lock_timeout:
    description:
      - How long to wait, in seconds, for the exclusive lock of the CA's directory; when it runs
        out, the task fails naming who holds it (host, process, what runs, since when), and
        changes nothing.
    type: float
    default: 300
  lock_holder:
    description: What this run is, recorded with each revocation and shown to whoever waits for the lock.
    type: str
    default: ""
seealso:
  - module: mtls.nginx.certificate
  - module: mtls.nginx.ca
author:
  - mtls.nginx contributors (@mtls-nginx)
"""

EXAMPLES = r"""
- name: Revoke every certificate the CA issued for a compromised host, whatever that host says
  mtls.nginx.ledger:
    path: ~/.mtls-nginx/pki/ledger.json
    state: revoked
    select:
      - host: billing-1
    reason: keyCompromise
    lock_holder: revoke billing-1
  delegate_to: localhost
  run_once: true

- name: Revoke a service's certificates on every host, and one certificate by serial
  mtls.nginx.ledger:
    path: ~/.mtls-nginx/pki/ledger.json
    state: revoked
    select:
      - service: reports
    serials: [4F1A90C2E7]
  delegate_to: localhost
  run_once: true

- name: What is still valid
  mtls.nginx.ledger:
    path: ~/.mtls-nginx/pki/ledger.json
    statuses: [valid]
  delegate_to: localhost
  register: valid
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
certificates:
  description:
    - With O(state=query), the certificates selected; with V(revoked) and V(superseded), those this
      run revoked (in check mode, would revoke).
    - Each has C(serial), C(issuer), C(subject), C(subject_alt_names), C(public_key_sha256),
      C(host), C(tier), C(service), C(not_before), C(not_after), C(fingerprint_sha256),
      C(signed_at), C(status), and once revoked C(reason), C(revoked_at) and C(revoked_by).
  returned: always
  type: list
  elements: dict
unmatched:
  description: With O(state=revoked), the items of O(select) that matched no certificate of the ledger.
  returned: always
  type: list
  elements: dict
serials:
  description: The serial of every certificate in the ledger, hexadecimal.
  returned: always
  type: list
  elements: str
revoked_serials:
  description: The serial of every certificate the ledger lists as revoked (after this run).
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mtls.nginx.plugins.module_utils._crypto import PKIError
from ansible_collections.mtls.nginx.plugins.module_utils._files import FileWriter
from ansible_collections.mtls.nginx.plugins.module_utils._ledger import REASONS, Ledger, locked, wait_messages, waits


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", default="query", choices=["query", "revoked", "superseded"]),
            select=dict(type="list", elements="dict", default=[]),
            serials=dict(type="list", elements="str", default=[]),
            statuses=dict(type="list", elements="str", default=[], choices=["valid", "superseded", "revoked"]),
            keep=dict(type="list", elements="str", default=[]),
            reason=dict(type="str", default="unspecified", choices=list(REASONS)),
            lock_timeout=dict(type="float", default=300.0),
            lock_holder=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    params = module.params
    writer = FileWriter(module)
    try:
        if params["state"] == "query":
            ledger = Ledger(params["path"])
            chosen = _chosen(ledger, params["select"], params["statuses"])[0]
            module.exit_json(changed=False, certificates=chosen, unmatched=[], serials=_serials(ledger),
                             revoked_serials=ledger.revoked_serials())
        directory = os.path.dirname(params["path"])
        with locked(directory, params["lock_holder"] or "ledger " + params["state"], params["lock_timeout"],
                    module.check_mode):
            ledger = Ledger(params["path"])
            if params["state"] == "revoked":
                revoked, unmatched = _revoke(ledger, params)
            else:
                revoked, unmatched = _supersede(ledger, params), []
            if ledger.changed:
                ledger.save(writer)
    except PKIError as exc:
        module.fail_json(msg=str(exc))
    for message in wait_messages():
        module.warn(message)
    module.exit_json(changed=bool(revoked), certificates=revoked, unmatched=unmatched, serials=_serials(ledger),
                     revoked_serials=ledger.revoked_serials(), lock_waits=waits())


def _serials(ledger):
    return sorted(entry["serial"] for entry in ledger.entries)


def _matches(entry, item):
    for key in ("host", "tier", "service"):
        if item.get(key) and entry.get(key) != item[key]:
            return False
    if item.get("serial") and entry["serial"] != str(item["serial"]).replace(":", "").upper().lstrip("0"):
        return False
    return True


def _chosen_one(entry, select, statuses):
    if statuses and entry["status"] not in statuses:
        return False
    return not select or any(_matches(entry, item) for item in select)


def _chosen(ledger, select, statuses=()):
    """The entries any item of ``select`` matches (every entry for an empty list), and the items that match none."""
    for index, item in enumerate(select):
        unknown = sorted(set(item) - {"host", "tier", "service", "serial"})
        if unknown or not any(item.get(key) for key in ("host", "tier", "service", "serial")):
            raise PKIError("select[%d]: %r must name some of host, tier, service and serial, and nothing else"
                           % (index, item))
    entries = [entry for entry in ledger.entries if _chosen_one(entry, select, statuses)]
    unmatched = [item for item in select if not any(_matches(entry, item) for entry in ledger.entries)]
    return entries, unmatched


def _revoke(ledger, params):
    if not params["select"] and not params["serials"]:
        raise PKIError("select or serials: name what to revoke (host, tier, service or serial); revoking everything "
                       "is not offered")
    select = params["select"] + [{"serial": serial} for serial in params["serials"]]
    entries, unmatched = _chosen(ledger, select)
    revoked = ledger.revoke(entries, params["reason"], params["lock_holder"])
    # A serial the ledger does not know (signed by hand with the CA's key, or before the ledger).
    serials = [item["serial"] for item in unmatched if item.get("serial") and set(item) == {"serial"}]
    revoked += ledger.revoke_serials(serials, params["reason"], params["lock_holder"])
    unmatched = [item for item in unmatched if not (item.get("serial") and set(item) == {"serial"})]
    return revoked, unmatched


def _supersede(ledger, params):
    select = params["select"]
    if len(select) != 1 or not select[0].get("host") or not select[0].get("tier"):
        raise PKIError("select: with state=superseded, one item with host and tier")
    keep = {str(serial).replace(":", "").upper().lstrip("0") for serial in params["keep"]}
    if not keep:
        raise PKIError("keep: the serials of the certificates that stay in service are needed")
    replaced = [entry for entry in ledger.select(hosts=[select[0]["host"]], tiers=[select[0]["tier"]])
                if entry["serial"] not in keep]
    return ledger.revoke(replaced, "superseded", params["lock_holder"])


if __name__ == "__main__":
    main()
