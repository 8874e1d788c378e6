#!/usr/bin/python
# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: certificate
short_description: Ensure an mTLS server or client certificate signed by a private CA
version_added: 0.1.0
description:
  - Ensures a private key and a certificate for one side of a mutual-TLS connection,
    signed by a CA given by its certificate and key files (see M(mtls.nginx.ca)).
  - O(purpose=server) sets the extended key usage C(serverAuth), which nginx's upstream tier
    presents; O(purpose=client) sets C(clientAuth), which the proxy tier presents.
    nginx refuses a client certificate without C(clientAuth) ("unsupported certificate purpose").
  - Idempotent. The certificate is reissued only when it is missing or unreadable, does not
    belong to the key, was not signed by the given CA, when its common name, subject
    alternative names or purpose differ from what is asked, or when it expires within
    O(renew_before_days). The key is regenerated only when it is missing or of another type.
  - Private keys are written with mode O(privatekey_mode) (default C(0600)) before any byte
    of them lands on disk; diffs show only their size.
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
    description: Where the certificate (PEM) is written.
    type: path
    required: true
  privatekey_path:
    description: Where the private key (PEM, PKCS#8, unencrypted) is kept or generated.
    type: path
    required: true
  chain_path:
    description:
      - Optional file holding the certificate followed by its intermediate CAs, in order,
        for C(ssl_certificate) when the CA is an intermediate. A self-signed root is left out.
    type: path
  ca_path:
    description: The signing CA's certificate (PEM).
    type: path
    required: true
  ca_privatekey_path:
    description: The signing CA's private key (PEM).
    type: path
    required: true
  purpose:
    description: Which side of mTLS the certificate is for; sets the extended key usage.
    type: str
    required: true
    choices: [server, client]
  common_name:
    description: Subject common name; the upstream tier passes the client's subject DN to its backend.
    type: str
    required: true
  subject_alt_names:
    description:
      - Subject alternative names as C(DNS:name), C(IP:address) or C(URI:uri) (for example
        C(URI:spiffe://example.org/service)). A bare entry is taken as an IP address when it
        parses as one, otherwise as a DNS name.
      - A server certificate must carry the name the proxy tier verifies (C(proxy_ssl_name)).
    type: list
    elements: str
    default: []
  key_type:
    description: Type of a newly generated key. ECDSA P-256 makes handshakes cheapest.
    type: str
    default: ecdsa-p256
    choices: [ecdsa-p256, ecdsa-p384, rsa2048, rsa3072, rsa4096, ed25519]
  valid_days:
    description: Validity of a newly issued certificate, in days.
    type: int
    default: 365
  renew_before_days:
    description: Reissue when the certificate expires within this many days.
    type: int
    default: 30
  mode:
    description: Mode of the certificate and chain files.
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
  - module: mtls.nginx.ca
"""

EXAMPLES = r"""
- name: Server certificate for the upstream tier, named as the proxy tier will verify it
  mtls.nginx.certificate:
    path: /etc/mtls/pki/upstream.pem
    privatekey_path: /etc/mtls/pki/upstream.key
    ca_path: /etc/mtls/pki/ca.pem
    ca_privatekey_path: /etc/mtls/pki/ca.key
    purpose: server
    common_name: orders.internal
    subject_alt_names:
      - DNS:orders.internal
      - IP:10.0.0.5

- name: Client certificate for the proxy tier, with a SPIFFE identity
  mtls.nginx.certificate:
    path: /etc/mtls/pki/billing-client.pem
    privatekey_path: /etc/mtls/pki/billing-client.key
    ca_path: /etc/mtls/pki/ca.pem
    ca_privatekey_path: /etc/mtls/pki/ca.key
    purpose: client
    common_name: billing
    subject_alt_names:
      - URI:spiffe://example.org/billing
    renew_before_days: 14
"""

RETURN = r"""
reasons:
  description: Why the key or certificate was (or, in check mode, would be) made; empty when nothing changed.
  returned: always
  type: list
  elements: str
  sample: ["subject alt names are ['DNS:a'], ['DNS:a', 'DNS:b'] were asked"]
certificate:
  description: The certificate now in O(path) (in check mode, the one that would be written).
  returned: success
  type: dict
  contains:
    subject:
      description: Subject DN (RFC 4514).
      type: str
      sample: CN=billing
    issuer:
      description: Issuer DN (RFC 4514).
      type: str
      sample: CN=mtls.nginx CA
    serial:
      description: Serial number, hexadecimal.
      type: str
    fingerprint_sha256:
      description: SHA-256 fingerprint of the certificate, colon-separated hex.
      type: str
    not_before:
      description: Start of validity (ISO 8601, UTC).
      type: str
    not_after:
      description: End of validity (ISO 8601, UTC).
      type: str
    days_remaining:
      description: Whole days until O(path) expires.
      type: int
    subject_alt_names:
      description: Subject alternative names as C(DNS:x), C(IP:x), C(URI:x).
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
            chain_path=dict(type="path"),
            ca_path=dict(type="path", required=True),
            ca_privatekey_path=dict(type="path", required=True, no_log=False),
            purpose=dict(type="str", required=True, choices=["server", "client"]),
            common_name=dict(type="str", required=True),
            subject_alt_names=dict(type="list", elements="str", default=[]),
            key_type=dict(type="str", default="ecdsa-p256", choices=list(KEY_TYPES)),
            valid_days=dict(type="int", default=365),
            renew_before_days=dict(type="int", default=30),
            mode=dict(type="raw", default="0644"),
            privatekey_mode=dict(type="raw", default="0600", no_log=False),
            owner=dict(type="str"),
            group=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    require_cryptography(module)
    from ansible_collections.mtls.nginx.plugins.module_utils._pki import LeafCertificate

    writer = FileWriter(module)
    try:
        result = LeafCertificate(writer, **module.params).ensure()
    except PKIError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=writer.changed, diff=writer.diff, **result)


if __name__ == "__main__":
    main()
