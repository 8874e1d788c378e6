#!/usr/bin/python
# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: certificate_check
short_description: Validate mTLS certificate, key, CA and CRL files the way nginx will use them
version_added: 0.1.0
description:
  - Reads a certificate file (leaf, optionally followed by its intermediates), and optionally
    its private key, the CA bundle it must chain to and a CRL, and checks everything nginx
    will need from them, before nginx ever loads them.
  - "Checks: the files exist, are files and are PEM (a DER file is named as DER and can be
    converted); the key belongs to the certificate, is not encrypted without a passphrase,
    is not accessible to others and is not weak (RSA below 2048 bits); the chain is in order
    and builds to the CA bundle through CA certificates only; the leaf is neither a CA nor
    self-signed; the extended key usage fits O(purpose); O(expected_name) is among the
    certificate's names; the chain fits O(verify_depth); the certificates are valid now and
    for O(min_days_remaining) more days; the CRL covers every CA of the chain, is not expired
    and does not revoke the certificate."
  - Accepts everything nginx accepts, such as CRLF line endings, text before the PEM block and a
    leaf followed by its chain.
  - Refuses a file when any of its PEM blocks is cut short (BEGIN without END), ends with
    another label's END or has a corrupt body, as nginx refuses the whole file; each message
    names the file and the block number. A private key in a CA bundle or CRL file, and a
    certificate in a CRL file (nginx would trust it as a CA), are problems too.
  - Fails with one message listing every problem found, each naming its file. The facts about
    the certificate come back either way, so a playbook can report on expiry.
  - Changes nothing, except a DER certificate converted to PEM with O(convert_der=true).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - mtls.nginx.attributes
  - mtls.nginx.cryptography
options:
  path:
    description: The certificate file (PEM), leaf first, then its intermediates in order.
    type: path
    required: true
  privatekey_path:
    description: The certificate's private key; checked to match, to be readable and to be private.
    type: path
  privatekey_passphrase:
    description: Passphrase of an encrypted private key (as nginx's C(ssl_password_file) holds it).
    type: str
  ca_path:
    description: CA bundle (PEM) the certificate must chain to, as given to C(ssl_client_certificate) or C(proxy_ssl_trusted_certificate).
    type: path
  purpose:
    description:
      - Which side of mTLS presents the certificate; its extended key usage must allow
        C(serverAuth) (V(server)) or C(clientAuth) (V(client)).
      - V(ca) checks O(path) as a CA bundle instead, as C(ssl_client_certificate) and
        C(proxy_ssl_trusted_certificate) read it; every certificate in it must be a valid CA.
    type: str
    choices: [server, client, ca]
  expected_name:
    description: A DNS name, IP address or URI the certificate must carry, such as the proxy tier's C(proxy_ssl_name).
    type: str
  verify_depth:
    description: The C(ssl_verify_depth) / C(proxy_ssl_verify_depth) in use; the chain must fit it.
    type: int
  min_days_remaining:
    description: Fail when the certificate expires within this many days (0 checks only that it has not expired).
    type: int
    default: 0
  crl_path:
    description:
      - CRL file (PEM) as given to C(ssl_crl); needs a current CRL from every CA of the chain.
        Requires O(ca_path), except with O(purpose=ca), where it must hold a current CRL for
        every CA of the bundle in O(path).
    type: path
  convert_der:
    description: When O(path) holds a DER certificate and nothing else is wrong, rewrite it as PEM.
    type: bool
    default: false
seealso:
  - module: mtls.nginx.certificate
author:
  - mtls.nginx contributors (@mtls-nginx)
"""

EXAMPLES = r"""
- name: Check the upstream tier's certificate before it goes live
  mtls.nginx.certificate_check:
    path: /etc/nginx/mtls/mtls-upstream/server.pem
    privatekey_path: /etc/nginx/mtls/mtls-upstream/server.key
    ca_path: /etc/nginx/mtls/mtls-proxy/upstream-ca.pem
    purpose: server
    expected_name: orders.internal
    verify_depth: 2

- name: Check a client certificate against the upstream's client CA and CRL
  mtls.nginx.certificate_check:
    path: /etc/nginx/mtls/mtls-proxy/client.pem
    ca_path: /etc/nginx/mtls/mtls-upstream/client-ca.pem
    crl_path: /etc/nginx/mtls/mtls-upstream/ca.crl
    purpose: client

- name: Report certificates that expire within 30 days, without failing the play
  mtls.nginx.certificate_check:
    path: "{{ item }}"
    min_days_remaining: 30
  loop: "{{ certificate_files }}"
  register: expiry
  ignore_errors: true

- name: Accept a DER certificate by converting it to PEM
  mtls.nginx.certificate_check:
    path: /srv/incoming/partner.cer
    convert_der: true
"""

RETURN = r"""
problems:
  description: Every problem found, each starting with the file it concerns; empty on success.
  returned: always
  type: list
  elements: str
  sample: ["/etc/nginx/mtls/client.pem: extended key usage allows server, not clientAuth"]
subject:
  description: Subject DN of the certificate (RFC 4514).
  returned: when the certificate could be read
  type: str
issuer:
  description: Issuer DN (RFC 4514).
  returned: when the certificate could be read
  type: str
serial:
  description: Serial number, hexadecimal.
  returned: when the certificate could be read
  type: str
fingerprint_sha256:
  description: SHA-256 fingerprint, colon-separated hex.
  returned: when the certificate could be read
  type: str
not_before:
  description: Start of validity (ISO 8601, UTC).
  returned: when the certificate could be read
  type: str
not_after:
  description: End of validity (ISO 8601, UTC).
  returned: when the certificate could be read
  type: str
days_remaining:
  description: Whole days until the certificate expires (negative once expired).
  returned: when the certificate could be read
  type: int
subject_alt_names:
  description: Subject alternative names as C(DNS:x), C(IP:x), C(URI:x).
  returned: when the certificate could be read
  type: list
  elements: str
purposes:
  description: The mTLS purposes (C(server), C(client)) its extended key usage allows; empty when it has none.
  returned: when the certificate could be read
  type: list
  elements: str
chain:
  description: Subjects of the intermediates that follow the leaf in O(path).
  returned: when the certificate could be read
  type: list
  elements: str
verified_chain:
  description: Subjects from the leaf to the root, as built with O(ca_path).
  returned: when the chain builds
  type: list
  elements: str
"""

import os
import stat

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mtls.nginx.plugins.module_utils._crypto import PURPOSES, require_cryptography
from ansible_collections.mtls.nginx.plugins.module_utils._files import FileWriter


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            privatekey_path=dict(type="path", no_log=False),
            privatekey_passphrase=dict(type="str", no_log=True),
            ca_path=dict(type="path"),
            purpose=dict(type="str", choices=list(PURPOSES)),
            expected_name=dict(type="str"),
            verify_depth=dict(type="int"),
            min_days_remaining=dict(type="int", default=0),
            crl_path=dict(type="path"),
            convert_der=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if module.params["crl_path"] and not module.params["ca_path"] and module.params["purpose"] != "ca":
        module.fail_json(msg="crl_path needs ca_path (the CAs whose CRLs it holds), or purpose=ca")
    require_cryptography(module)
    from ansible_collections.mtls.nginx.plugins.module_utils._check import check

    params = dict(module.params)
    passphrase = params.pop("privatekey_passphrase")
    problems, facts, converted = check(
        privatekey_passphrase=passphrase.encode() if passphrase else None, **params)
    if problems:
        module.fail_json(msg="%d problem(s) with the files nginx would use:\n- %s" % (len(problems), "\n- ".join(problems)),
                         problems=list(problems), **facts)
    writer = FileWriter(module)
    if converted is not None:
        path = module.params["path"]
        writer.write(path, converted, "%04o" % stat.S_IMODE(os.stat(path).st_mode))
    module.exit_json(changed=writer.changed, diff=writer.diff, problems=[], **facts)


if __name__ == "__main__":
    main()
