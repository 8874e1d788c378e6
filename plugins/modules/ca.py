#!/usr/bin/python
# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: ca
short_description: Ensure a private certificate authority for mTLS, and its CRL
version_added: 0.1.0
description:
  - Ensures a CA (private key and certificate) that signs the server and client certificates
    of an mTLS deployment (see M(mtls.nginx.certificate)), either a self-signed root or an
    intermediate signed by a parent CA given by its files (O(parent_path)). Its certificate is
    what the upstream tier trusts for clients (C(ssl_client_certificate)) and what the proxy
    tier trusts for upstreams (C(proxy_ssl_trusted_certificate)).
  - Idempotent. The certificate is re-signed, with the same key, subject and subject key
    identifier so that issued certificates stay valid, when it is missing, does not belong to
    the key, is not a CA, carries another common name or path length, was not signed by the
    parent asked (or, for a root, is not self-signed), or expires within O(renew_before_days).
    The key is regenerated only when it is missing or of another type (which invalidates
    issued certificates); a key that cannot be read or decrypted is an error, never replaced.
  - With O(crl_path), also ensures a certificate revocation list signed by this CA listing
    O(revoked_serials) and O(revoked_certificates), for nginx's C(ssl_crl). nginx rejects every
    client once the CRL's next update has passed, so the CRL is regenerated when its next
    update is within O(crl_renew_before_days); run this module more often than that (and
    reload nginx when it reports a change), for example from a timer.
  - Every input (parent CA, certificates to revoke, serials) is checked before any file is written.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - mtls.nginx.attributes
  - mtls.nginx.key_files
  - mtls.nginx.ca_state
options:
  path:
    description: Where the CA certificate (PEM) is written.
    type: path
    required: true
  privatekey_path:
    description:
      - Where the CA private key (PEM, PKCS#8) is kept or generated.
      - Required unless the key is in a PKCS#11 token (O(privatekey_pkcs11)).
    type: path
  privatekey_passphrase:
    description: Passphrase that encrypts the CA private key (when generated) and decrypts it.
    type: str
  privatekey_pkcs11:
    description:
      - The CA's private key in a PKCS#11 token (an HSM, or SoftHSM2), in place of O(privatekey_path),
        so that it never exists as a file. The key pair labelled O(privatekey_pkcs11.key_label) is made
        inside the token when it is missing (not in check mode), sensitive and never extractable,
        of O(key_type) (V(ecdsa-p256), V(ecdsa-p384) or an RSA type); the token signs the CA
        certificate (a root's, with the key's own public half) and the CRL. A key of another type
        than O(key_type), or one that could leave the token, is an error, never replaced.
      - Mutually exclusive with O(privatekey_path) and O(privatekey_passphrase).
    type: dict
    version_added: 0.2.0
    suboptions:
      module_path:
        description: Absolute path of the token's PKCS#11 module library (the HSM vendor's, or SoftHSM2's C(/usr/lib/softhsm/libsofthsm2.so)).
        type: path
        required: true
      token_label:
        description: The label of the token (C(softhsm2-util --show-slots), C(pkcs11-tool --list-token-slots)).
        type: str
        required: true
      pin:
        description: The user PIN of the token. Never logged.
        type: str
        required: true
      key_label:
        description: The label (C(CKA_LABEL)) of the key pair in the token.
        type: str
        required: true
  common_name:
    description: Subject common name of the CA; at most 64 printable characters, none of C(;{}"\).
    type: str
    required: true
  valid_days:
    description: Validity of a newly signed CA certificate, in days.
    type: int
    default: 3650
  renew_before_days:
    description: Re-sign when the CA certificate expires within this many days.
    type: int
    default: 90
  path_length:
    description: Maximum number of intermediate CAs below this one; unlimited when omitted.
    type: int
  parent_path:
    description:
      - Certificate of the parent CA that signs this one, making it an intermediate CA. The
        file may hold the parent followed by its own chain up to the root.
      - Omit for a self-signed root CA.
    type: path
  parent_privatekey_path:
    description: Private key of the parent CA. Required with O(parent_path), unless O(parent_privatekey_pkcs11) is given.
    type: path
  parent_privatekey_passphrase:
    description: Passphrase of the parent CA's private key.
    type: str
  parent_privatekey_pkcs11:
    description:
      - The parent CA's private key in a PKCS#11 token, in place of O(parent_privatekey_path); it
        must be there already (it is never made here) and belong to the certificate in O(parent_path).
      - Mutually exclusive with O(parent_privatekey_path) and O(parent_privatekey_passphrase).
    type: dict
    version_added: 0.2.0
    suboptions:
      module_path:
        description: Absolute path of the token's PKCS#11 module library (the HSM vendor's, or SoftHSM2's C(/usr/lib/softhsm/libsofthsm2.so)).
        type: path
        required: true
      token_label:
        description: The label of the token (C(softhsm2-util --show-slots), C(pkcs11-tool --list-token-slots)).
        type: str
        required: true
      pin:
        description: The user PIN of the token. Never logged.
        type: str
        required: true
      key_label:
        description: The label (C(CKA_LABEL)) of the key pair in the token.
        type: str
        required: true
  chain_path:
    description:
      - Optional file holding this CA's certificate followed by the certificates in
        O(parent_path). It is the bundle for C(ssl_client_certificate) or
        C(proxy_ssl_trusted_certificate) when clients or servers present leaf certificates
        signed by this intermediate, and the O(mtls.nginx.certificate#module:ca_path) that
        gives issued certificates their full chain.
    type: path
  crl_path:
    description: Where the CRL (PEM) signed by this CA is written, for nginx's C(ssl_crl).
    type: path
  revoked_serials:
    description:
      - Serial numbers to list in the CRL, hexadecimal as C(openssl x509 -serial) prints them
        and as M(mtls.nginx.certificate) returns them (colons and a C(0x) prefix are allowed).
    type: list
    elements: str
    default: []
  revoked_certificates:
    description: Certificate files to list in the CRL; each must have been issued by this CA.
    type: list
    elements: path
    default: []
  crl_valid_days:
    description: Days from the CRL's last update to its next update.
    type: int
    default: 7
  crl_renew_before_days:
    description: Regenerate the CRL when its next update is this many days away or fewer.
    type: int
    default: 2
notes:
  - Keep the CA key on the controller or in a vault; it never needs to reach an nginx host.
    The roles of this collection sign on the controller; only CSRs and certificates travel.
  - With O(privatekey_pkcs11) or O(parent_privatekey_pkcs11), each signature logs in to the token
    once (a wrong PIN counts against the token's retry limit, as any login does).
requirements:
  - With O(privatekey_pkcs11) or O(parent_privatekey_pkcs11), PyKCS11 >= 1.5.12 on the host the task
    runs on (Debian's C(python3-pykcs11)) and the token's PKCS#11 module library
  - With O(ledger_path), the CRL also lists every certificate the ledger holds as revoked. The whole
    step (the CA, its CRL and its number) runs under the lock of the CA's directory.
seealso:
  - module: mtls.nginx.certificate
author:
  - mtls.nginx contributors (@mtls-nginx)
"""

EXAMPLES = r"""
- name: Private CA for the service mesh, kept on the controller
  mtls.nginx.ca:
    path: "{{ pki_dir }}/ca.pem"
    privatekey_path: "{{ pki_dir }}/ca.key"
    common_name: Example services CA
    path_length: 0
  delegate_to: localhost
  run_once: true

- name: Offline root, and an intermediate that signs the clients
  block:
    - name: Root CA, its key encrypted
      mtls.nginx.ca:
        path: "{{ pki_dir }}/root.pem"
        privatekey_path: "{{ pki_dir }}/root.key"
        privatekey_passphrase: "{{ vault_root_ca_passphrase }}"
        common_name: Example root CA
        path_length: 1
    - name: Intermediate CA for client certificates, with its CRL
      mtls.nginx.ca:
        path: "{{ pki_dir }}/clients-ca.pem"
        privatekey_path: "{{ pki_dir }}/clients-ca.key"
        chain_path: "{{ pki_dir }}/clients-ca-chain.pem"
        common_name: Example clients CA
        path_length: 0
        parent_path: "{{ pki_dir }}/root.pem"
        parent_privatekey_path: "{{ pki_dir }}/root.key"
        parent_privatekey_passphrase: "{{ vault_root_ca_passphrase }}"
        crl_path: "{{ pki_dir }}/clients-ca.crl"
        revoked_serials:
          - 4F:2A:91:0C:7B:33:10:6E
        revoked_certificates:
          - "{{ pki_dir }}/retired/billing.pem"
  delegate_to: localhost
  run_once: true

- name: Root CA whose key is made and kept in an HSM, never in a file
  mtls.nginx.ca:
    path: "{{ pki_dir }}/ca.pem"
    privatekey_pkcs11:
      module_path: /usr/lib/softhsm/libsofthsm2.so
      token_label: ca
      pin: "{{ vault_ca_token_pin }}"
      key_label: mtls-root-ca
    common_name: Example services CA
    crl_path: "{{ pki_dir }}/ca.crl"
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
  sample: [{"path": "/var/lib/mtls-nginx/pki", "holder": "mtls.nginx.revoke (for web-1) on ca-1 (pid 4242) since 2026-12-06T03:00:00Z", "seconds": 2.4}]
reasons:
  description: Why the key or certificate was (or, in check mode, would be) made; empty when nothing changed.
  returned: always
  type: list
  elements: str
certificate:
  description:
    - The CA certificate now in O(path).
    - The same keys as RV(mtls.nginx.certificate#module:certificate) describe a leaf
      certificate with, made by the same code. For a root CA, C(issuer) equals C(subject);
      C(subject_alt_names) is usually empty for a CA.
  returned: success
  type: dict
  sample:
    subject: CN=Example services CA
    issuer: CN=Example services CA
    serial: 5C0F3A19D2B7E4816A0C33F1D9E2B07A41C6D8E5
    fingerprint_sha256: "3E:1B:...:9A"
    not_before: "2026-01-05T09:12:44+00:00"
    not_after: "2036-01-03T09:12:44+00:00"
    days_remaining: 3324
    subject_alt_names: []
crl:
  description: The CRL now in O(crl_path) (in check mode, the one that would be written).
  returned: when O(crl_path) is set
  type: dict
  contains:
    path:
      description: The CRL file.
      type: str
    last_update:
      description: When the CRL was issued (ISO 8601, UTC).
      type: str
    next_update:
      description: When the CRL expires; nginx rejects every client after it (ISO 8601, UTC).
      type: str
    days_remaining:
      description: Whole days until the next update.
      type: int
    crl_number:
      description: The CRL number, one higher on each regeneration.
      type: int
    revoked_serials:
      description: Serial numbers the CRL lists, hexadecimal.
      type: list
      elements: str
      sample: ["4F2A910C7B33106E"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mtls.nginx.plugins.module_utils._argspec import (
    argument_spec,
    ca_state_options,
    file_options,
    key_type_option,
)
from ansible_collections.mtls.nginx.plugins.module_utils._crypto import PKIError, require_cryptography
from ansible_collections.mtls.nginx.plugins.module_utils._files import FileWriter
from ansible_collections.mtls.nginx.plugins.module_utils._ledger import wait_messages, waits
from ansible_collections.mtls.nginx.plugins.module_utils._pkcs11 import token_key_argument_spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            file_options(),
            key_type_option(),
            ca_state_options(),
            path=dict(type="path", required=True),
            privatekey_path=dict(type="path", no_log=False),
            privatekey_pkcs11=token_key_argument_spec(),
            common_name=dict(type="str", required=True),
            valid_days=dict(type="int", default=3650),
            renew_before_days=dict(type="int", default=90),
            path_length=dict(type="int"),
            privatekey_passphrase=dict(type="str", no_log=True),
            parent_path=dict(type="path"),
            parent_privatekey_path=dict(type="path", no_log=False),
            parent_privatekey_passphrase=dict(type="str", no_log=True),
            parent_privatekey_pkcs11=token_key_argument_spec(),
            chain_path=dict(type="path"),
            crl_path=dict(type="path"),
            revoked_serials=dict(type="list", elements="str", default=[]),
            revoked_certificates=dict(type="list", elements="path", default=[]),
            crl_valid_days=dict(type="int", default=7),
            crl_renew_before_days=dict(type="int", default=2),
        ),
        # parent_path without a parent key is refused by CertificateAuthority, naming both options.
        required_one_of=[("privatekey_path", "privatekey_pkcs11")],
        required_by={"parent_privatekey_path": "parent_path", "parent_privatekey_pkcs11": "parent_path"},
        mutually_exclusive=[("privatekey_path", "privatekey_pkcs11"), ("privatekey_passphrase", "privatekey_pkcs11"),
                            ("parent_privatekey_path", "parent_privatekey_pkcs11"),
                            ("parent_privatekey_passphrase", "parent_privatekey_pkcs11")],
        supports_check_mode=True,
    )
    require_cryptography(module)
    from ansible_collections.mtls.nginx.plugins.module_utils._pki import CertificateAuthority

    writer = FileWriter(module)
    try:
        result = CertificateAuthority(writer, **module.params).ensure()
    except PKIError as exc:
        module.fail_json(msg=str(exc))
    for message in wait_messages():
        module.warn(message)
    result["lock_waits"] = waits()
    module.exit_json(changed=writer.changed, diff=writer.diff, **result)


if __name__ == "__main__":
    main()
