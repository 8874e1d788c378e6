#!/usr/bin/python
# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: ca
short_description: Ensure a private certificate authority for mTLS
version_added: 0.1.0
description:
  - Ensures a self-signed root CA (private key and certificate) that signs the server and
    client certificates of an mTLS deployment (see M(mtls.nginx.certificate)). Its
    certificate is what the upstream tier trusts for clients (C(ssl_client_certificate)) and
    what the proxy tier trusts for upstreams (C(proxy_ssl_trusted_certificate)).
  - Idempotent. The certificate is re-signed, with the same key and subject so that issued
    certificates stay valid, when it is missing, does not belong to the key, is not a CA,
    carries another common name, or expires within O(renew_before_days). The key is
    regenerated only when it is missing or of another type (which invalidates issued certificates).
  - Keep the CA key on the controller or in a vault; it never needs to reach an nginx host.
author:
  - mtls.nginx contributors (@mtls-nginx)
requirements:
  - cryptography >= 3.4
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
options:
  path:
    description: Where the CA certificate (PEM) is written.
    type: path
    required: true
  privatekey_path:
    description: Where the CA private key (PEM, PKCS#8, unencrypted) is kept or generated.
    type: path
    required: true
  common_name:
    description: Subject common name of the CA.
    type: str
    required: true
  key_type:
    description: Type of a newly generated key.
    type: str
    default: ecdsa-p256
    choices: [ecdsa-p256, ecdsa-p384, rsa2048, rsa3072, rsa4096, ed25519]
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
  mode:
    description: Mode of the certificate file.
    type: raw
    default: "0644"
  privatekey_mode:
    description: Mode of the private key file.
    type: raw
    default: "0600"
  owner:
    description: Owner of the files written; unchanged when omitted.
    type: str
  group:
    description: Group of the files written; unchanged when omitted.
    type: str
seealso:
  - module: mtls.nginx.certificate
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
"""

RETURN = r"""
reasons:
  description: Why the key or certificate was (or, in check mode, would be) made; empty when nothing changed.
  returned: always
  type: list
  elements: str
certificate:
  description: The CA certificate now in O(path).
  returned: success
  type: dict
  contains:
    subject:
      description: Subject DN (RFC 4514).
      type: str
      sample: CN=Example services CA
    issuer:
      description: Issuer DN (RFC 4514); the subject for a root CA.
      type: str
    serial:
      description: Serial number, hexadecimal.
      type: str
    fingerprint_sha256:
      description: SHA-256 fingerprint, colon-separated hex.
      type: str
    not_before:
      description: Start of validity (ISO 8601, UTC).
      type: str
    not_after:
      description: End of validity (ISO 8601, UTC).
      type: str
    days_remaining:
      description: Whole days until the CA certificate expires.
      type: int
    subject_alt_names:
      description: Subject alternative names (usually none for a CA).
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mtls.nginx.plugins.module_utils._crypto import KEY_TYPES, PKIError, require_cryptography
from ansible_collections.mtls.nginx.plugins.module_utils._files import FileWriter


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            privatekey_path=dict(type="path", required=True, no_log=False),
            common_name=dict(type="str", required=True),
            key_type=dict(type="str", default="ecdsa-p256", choices=list(KEY_TYPES)),
            valid_days=dict(type="int", default=3650),
            renew_before_days=dict(type="int", default=90),
            path_length=dict(type="int"),
            mode=dict(type="raw", default="0644"),
            privatekey_mode=dict(type="raw", default="0600", no_log=False),
            owner=dict(type="str"),
            group=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    require_cryptography(module)
    from ansible_collections.mtls.nginx.plugins.module_utils._pki import CertificateAuthority

    writer = FileWriter(module)
    try:
        result = CertificateAuthority(writer, **module.params).ensure()
    except PKIError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=writer.changed, diff=writer.diff, **result)


if __name__ == "__main__":
    main()
