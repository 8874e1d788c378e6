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
  - "Two flows. O(operation=issue) makes key and certificate where the CA key is. The flow in
    which a private key never leaves its host takes three tasks: O(operation=request) on the
    host makes the key (and a CSR) there and returns the CSR and the certificate currently
    installed; O(operation=sign), delegated to where the CA key is, signs the CSR, or returns
    the current certificate unchanged when it still fits; O(operation=install) on the host
    puts the certificate next to its key, after checking that it belongs to the key. Only
    the CSR and the certificate travel. See the examples."
  - Idempotent. A certificate is (re)issued only when it is missing or unreadable, does not
    belong to the key, was not signed by the given CA, when its common name, subject
    alternative names or purpose differ from what is asked, or when it expires within
    O(renew_before_days). The key is regenerated only when it is missing or of another type;
    a key that cannot be read or decrypted is an error, never replaced.
  - When signing a CSR only its public key is used (its signature proves the requester holds
    the key); subject, names and purpose come from this task's options, not from the CSR.
  - Private keys are written with mode O(privatekey_mode) (default C(0600)) before any byte
    of them lands on disk; diffs show only their size, and never a passphrase.
  - A passphrase change re-encrypts the key where nginx's password file, O(privatekey_passphrase_file),
    still holds the old passphrase, and rewrites that file after the key; without it, a key the
    passphrase does not decrypt is refused before anything changes.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - mtls.nginx.attributes
  - mtls.nginx.key_files
  - mtls.nginx.ca_state
options:
  operation:
    description:
      - V(issue) ensures key and certificate here, signed by the CA files here.
      - V(request) ensures the key (and, with O(csr_path), a CSR file) here and returns the CSR
        and the certificate at O(path), if any. Needs no CA.
      - V(sign) signs the CSR in O(csr_content) or O(csr_path) with the CA files here, unless the
        current certificate (O(certificate_content), or the file at O(path)) still fits.
        Needs no private key but the CA's.
      - V(install) writes O(certificate_content) to O(path) (and O(chain_path)) after checking
        that it belongs to the key at O(privatekey_path), fits O(purpose), is in order and,
        with O(ca_path), chains to that CA.
    type: str
    default: issue
    choices: [issue, request, sign, install]
  path:
    description:
      - Where the certificate (PEM, the leaf alone) is written. Required for V(issue) and V(install).
      - For V(request), the certificate currently in use, returned so that V(sign) can keep it.
      - For V(sign), optional; when given, the signed certificate is also written there.
    type: path
  privatekey_path:
    description: The private key (PEM, PKCS#8), kept or generated. Required for V(issue), V(request) and V(install).
    type: path
  privatekey_passphrase:
    description:
      - Passphrase that encrypts a generated private key and decrypts an existing one. nginx
        reads such a key with C(ssl_password_file) / C(proxy_ssl_password_file).
      - For V(issue) and V(request), an existing unencrypted key is encrypted with it; with
        O(privatekey_passphrase_file), a key it does not decrypt but the passphrase in that
        file does is re-encrypted with it (or written unencrypted when it is empty or omitted).
        Otherwise a key it does not decrypt is an error, and nothing is written.
    type: str
  privatekey_passphrase_file:
    description:
      - The password file nginx reads the key's passphrase from (C(ssl_password_file) /
        C(proxy_ssl_password_file)). The path is not secret; its content is never shown.
      - For V(issue) and V(request), the module owns this file. The passphrase it holds (one
        trailing newline stripped) opens a key encrypted with a previous passphrase. After the
        key, it is written with O(privatekey_passphrase) and a newline, with O(privatekey_mode),
        O(owner) and O(group), or removed when O(privatekey_passphrase) is empty, so key and
        password file change in one step and always match.
      - For V(install), only read, so that in check mode a key the V(request) task would
        re-encrypt still reads.
    type: path
  chain_path:
    description:
      - Optional file holding the certificate followed by its intermediate CAs, in order,
        for C(ssl_certificate) when the CA is an intermediate. A self-signed root is left out.
    type: path
  csr_path:
    description:
      - For V(request), where the CSR (PEM) is kept; it is rewritten only when the key,
        subject, names or purpose change. For V(sign), the CSR to sign.
    type: path
  csr_content:
    description: For V(sign), the CSR (PEM) to sign, typically RV(csr) of a V(request) task.
    type: str
  certificate_content:
    description:
      - For V(sign), the certificate now installed (RV(existing_certificate) of the V(request)
        task); it is returned unchanged when it still fits, so no new one is signed.
      - For V(install), the certificate to install (RV(certificate_pem) or RV(chain_pem) of the
        V(sign) task, or a file of your own), the leaf optionally followed by its intermediates.
    type: str
  ca_content:
    description:
      - For V(request), the certificate of the CA that will sign (then its own chain, as the
        O(ca_path) of the V(sign) task holds it). Public; no CA key is needed here.
      - With it, V(request) also returns RV(certificate_current). When that is true, the
        certificate at O(path) and the chain at O(chain_path) are exactly what V(sign) would
        keep and V(install) would write, so a play can skip both. The names, purpose, expiry
        margin (O(renew_before_days)) and issuer are checked as V(sign) checks them.
    type: str
  public_key_content:
    description:
      - For V(install), in place of O(privatekey_path), the public key (PEM) the certificate must
        belong to, for a key that stays in a PKCS#11 token (RV(mtls.nginx.pkcs11_key#module:public_key_pem)).
    type: str
  ca_path:
    description:
      - The signing CA's certificate (PEM), optionally followed by its own chain (its
        intermediates up to the root). Required for V(issue) and V(sign).
      - For V(install), optional; the CA bundle the certificate must chain to.
    type: path
  ca_privatekey_path:
    description:
      - The signing CA's private key (PEM). Required for V(issue) and V(sign), unless the key is
        in a PKCS#11 token (O(ca_privatekey_pkcs11)).
    type: path
  ca_privatekey_passphrase:
    description: Passphrase of the signing CA's private key.
    type: str
  ca_privatekey_pkcs11:
    description:
      - For V(issue) and V(sign), the signing CA's private key in a PKCS#11 token (an HSM, or
        SoftHSM2), in place of O(ca_privatekey_path), as M(mtls.nginx.ca) makes it with
        O(mtls.nginx.ca#module:privatekey_pkcs11). The token signs; the key must be there and
        belong to the certificate in O(ca_path).
      - Mutually exclusive with O(ca_privatekey_path) and O(ca_privatekey_passphrase).
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
        description: The label (C(CKA_LABEL)) of the CA's key pair in the token.
        type: str
        required: true
  purpose:
    description:
      - Which side of mTLS the certificate is for; sets (or, for V(install), checks) the extended key usage.
      - Required, except for V(request) with O(requests) (each item names its own).
    type: str
    choices: [server, client]
  requests:
    description:
      - For V(request) only, several keys of one host in one module run (a host running several
        tiers) - each item is what O(privatekey_path), O(privatekey_passphrase),
        O(privatekey_passphrase_file), O(path), O(chain_path), O(purpose), O(common_name),
        O(subject_alt_names), O(key_type), O(valid_days) and O(renew_before_days) say for one
        key, with the other options shared; each is ensured as a V(request) of its own would,
        and RV(requested) has the outcome of each, in order. A refused item fails the module,
        naming it.
      - Without it, the top-level options describe the one key.
    type: list
    elements: dict
    default: []
    suboptions:
      privatekey_path:
        description: As O(privatekey_path).
        type: path
        required: true
      privatekey_passphrase:
        description: As O(privatekey_passphrase).
        type: str
      privatekey_passphrase_file:
        description: As O(privatekey_passphrase_file).
        type: path
      path:
        description: As O(path).
        type: path
      chain_path:
        description: As O(chain_path).
        type: path
      purpose:
        description: As O(purpose).
        type: str
        required: true
        choices: [server, client]
      common_name:
        description: As O(common_name).
        type: str
        required: true
      subject_alt_names:
        description: As O(subject_alt_names).
        type: list
        elements: str
        default: []
      key_type:
        description: As O(key_type); the top-level one when left out.
        type: str
        choices: [ecdsa-p256, ecdsa-p384, rsa2048, rsa3072, rsa4096, ed25519]
      valid_days:
        description: As O(valid_days); the top-level one when left out.
        type: int
      renew_before_days:
        description: As O(renew_before_days); the top-level one when left out.
        type: int
  common_name:
    description:
      - Subject common name; the upstream tier passes the client's subject DN to its backend.
      - Required except for V(install). At most 64 printable characters, none of C(;{}"\).
    type: str
  subject_alt_names:
    description:
      - Subject alternative names as C(DNS:name), C(IP:address) or C(URI:uri) (for example
        C(URI:spiffe://example.org/service)). A bare entry is taken as an IP address when it
        parses as one, otherwise as a DNS name.
      - A DNS name must be a host name (RFC 1123; C(*.) allowed as its first label), a URI an
        ASCII absolute URI without whitespace or C(;{}"'\<>). Other names are refused before
        anything is written; with V(sign), so is a CSR that asks for such names.
      - A server certificate must carry the name the proxy tier verifies (C(proxy_ssl_name)).
    type: list
    elements: str
    default: []
  valid_days:
    description: Validity of a newly issued certificate, in days.
    type: int
    default: 365
  renew_before_days:
    description: Reissue when the certificate expires within this many days.
    type: int
    default: 30
  issued_to:
    description:
      - With V(sign) and O(ledger_path), whom the certificate is for, as the ledger records it.
      - With O(ledger_path), V(sign) refuses a CSR whose public key belongs to a certificate the
        ledger lists as revoked, naming it, before anything is signed; only a new key comes back.
        The certificate signed, or the current one kept, is recorded in the ledger under the lock
        of the CA's directory, in the same step.
    type: dict
    default: {}
    suboptions:
      host:
        description: The inventory host it is for.
        type: str
        default: ""
      tier:
        description: The config name of the tier it is for.
        type: str
        default: ""
      service:
        description: The service of the mesh it is for, if any.
        type: str
        default: ""
requirements:
  - With O(ca_privatekey_pkcs11), PyKCS11 >= 1.5.12 on the host the task runs on (Debian's
    C(python3-pykcs11)) and the token's PKCS#11 module library
seealso:
  - module: mtls.nginx.ca
  - module: mtls.nginx.ledger
author:
  - mtls.nginx contributors (@mtls-nginx)
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

# The private key never leaves the host: only the CSR and the certificate travel.
- name: Key and CSR on the host
  mtls.nginx.certificate:
    operation: request
    privatekey_path: /etc/nginx/mtls/client.key
    path: /etc/nginx/mtls/client.pem
    purpose: client
    common_name: "{{ inventory_hostname }}"
  register: request

- name: Sign the CSR on the controller (or keep the current certificate if it still fits)
  mtls.nginx.certificate:
    operation: sign
    csr_content: "{{ request.csr }}"
    certificate_content: "{{ request.existing_certificate | default(omit, true) }}"
    ca_path: "{{ pki_dir }}/ca.pem"
    ca_privatekey_path: "{{ pki_dir }}/ca.key"
    purpose: client
    common_name: "{{ inventory_hostname }}"
  delegate_to: localhost
  become: false
  register: signed

# Or with a CA whose key is in an HSM (mtls.nginx.ca's privatekey_pkcs11):
- name: Sign the CSR with the CA key in the token
  mtls.nginx.certificate:
    operation: sign
    csr_content: "{{ request.csr }}"
    ca_path: "{{ pki_dir }}/ca.pem"
    ca_privatekey_pkcs11:
      module_path: /usr/lib/softhsm/libsofthsm2.so
      token_label: ca
      pin: "{{ vault_ca_token_pin }}"
      key_label: mtls-root-ca
    purpose: client
    common_name: "{{ inventory_hostname }}"
  delegate_to: localhost
  become: false

- name: Install the certificate next to its key
  mtls.nginx.certificate:
    operation: install
    certificate_content: "{{ signed.chain_pem }}"
    path: /etc/nginx/mtls/client.pem
    chain_path: /etc/nginx/mtls/client-chain.pem
    privatekey_path: /etc/nginx/mtls/client.key
    purpose: client
  notify: Reload nginx

# nginx reads the passphrase from proxy_ssl_password_file; a new passphrase re-encrypts the key
# (opened with the old one still in that file) and then rewrites the file, in one task.
- name: Encrypted key and its password file on the host
  mtls.nginx.certificate:
    operation: request
    privatekey_path: /etc/nginx/mtls/client.key
    privatekey_passphrase: "{{ vault_client_key_passphrase }}"
    privatekey_passphrase_file: /etc/nginx/mtls/client.pass
    path: /etc/nginx/mtls/client.pem
    purpose: client
    common_name: "{{ inventory_hostname }}"
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
  description: Why the key, CSR or certificate was (or, in check mode, would be) made; empty when nothing changed.
  returned: always
  type: list
  elements: str
  sample: ["subject alt names are ['DNS:a'], ['DNS:a', 'DNS:b'] were asked", "private key re-encrypted with the new passphrase"]
requested:
  description:
    - With O(requests), what V(request) returns for each item (RV(reasons), RV(csr),
      RV(existing_certificate), RV(certificate), RV(certificate_reasons), RV(certificate_current)), in
      the order of O(requests).
  returned: O(operation=request) with O(requests)
  type: list
  elements: dict
csr:
  description: The certificate signing request (PEM) for the key. Public; safe to pass to the controller.
  returned: O(operation=request)
  type: str
existing_certificate:
  description: The certificate (PEM) now at O(path), or null; pass it to V(sign) as O(certificate_content).
  returned: O(operation=request)
  type: str
certificate_reasons:
  description: Why the certificate now at O(path) no longer fits what is asked (names, purpose, key, expiry); empty when it fits.
  returned: O(operation=request) when a certificate is at O(path)
  type: list
  elements: str
certificate_current:
  description:
    - Whether the certificate at O(path) still fits what is asked, was issued by the CA in O(ca_content),
      and the files at O(path) and O(chain_path) hold exactly what V(sign) and V(install) would leave there.
    - When true, the owner, group and mode of those files have been applied.
  returned: O(operation=request) with O(ca_content)
  type: bool
signed:
  description: Whether a new certificate was signed (false when the current one still fits).
  returned: O(operation=sign)
  type: bool
certificate_pem:
  description: The certificate (PEM), newly signed or the current one kept.
  returned: O(operation=sign)
  type: str
chain_pem:
  description: The certificate followed by the signing CA's intermediates (PEM), for O(operation=install).
  returned: O(operation=sign)
  type: str
certificate:
  description: >-
    The certificate now in O(path) (in check mode, the one that would be written); for
    V(request), the one currently installed, or null.
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

from ansible_collections.mtls.nginx.plugins.module_utils._argspec import (
    argument_spec,
    ca_state_options,
    file_options,
    key_type_option,
)
from ansible_collections.mtls.nginx.plugins.module_utils._crypto import (
    KEY_TYPES,
    LEAF_PURPOSES,
    PKIError,
    check_common_name,
    require_cryptography,
)
from ansible_collections.mtls.nginx.plugins.module_utils._files import FileWriter
from ansible_collections.mtls.nginx.plugins.module_utils._ledger import wait_messages, waits
from ansible_collections.mtls.nginx.plugins.module_utils._pkcs11 import token_key_argument_spec


def _request(writer, params, index, item):
    """One item of ``requests``: a request with the item's options over the shared ones; a refusal
    names the item."""
    from ansible_collections.mtls.nginx.plugins.module_utils._pki import ensure_leaf

    options = dict(params, **dict((name, value) for name, value in item.items() if value is not None))
    try:
        check_common_name(options["common_name"])
        return ensure_leaf(writer, **options)
    except PKIError as exc:
        raise PKIError("requests[%d] (%s): %s" % (index, item["privatekey_path"], exc))


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            file_options(),
            key_type_option(),
            ca_state_options(),
            issued_to=dict(type="dict", default={}, options=dict(
                host=dict(type="str", default=""), tier=dict(type="str", default=""),
                service=dict(type="str", default=""))),
            operation=dict(type="str", default="issue", choices=["issue", "request", "sign", "install"]),
            path=dict(type="path"),
            privatekey_path=dict(type="path", no_log=False),
            privatekey_passphrase=dict(type="str", no_log=True),
            privatekey_passphrase_file=dict(type="path", no_log=False),
            chain_path=dict(type="path"),
            csr_path=dict(type="path"),
            csr_content=dict(type="str"),
            certificate_content=dict(type="str"),
            public_key_content=dict(type="str"),
            ca_content=dict(type="str"),
            ca_path=dict(type="path"),
            ca_privatekey_path=dict(type="path", no_log=False),
            ca_privatekey_passphrase=dict(type="str", no_log=True),
            ca_privatekey_pkcs11=token_key_argument_spec(),
            purpose=dict(type="str", choices=list(LEAF_PURPOSES)),
            requests=dict(type="list", elements="dict", default=[], options=dict(
                privatekey_path=dict(type="path", required=True, no_log=False),
                privatekey_passphrase=dict(type="str", no_log=True),
                privatekey_passphrase_file=dict(type="path", no_log=False),
                path=dict(type="path"),
                chain_path=dict(type="path"),
                purpose=dict(type="str", required=True, choices=list(LEAF_PURPOSES)),
                common_name=dict(type="str", required=True),
                subject_alt_names=dict(type="list", elements="str", default=[]),
                key_type=dict(type="str", choices=list(KEY_TYPES)),
                valid_days=dict(type="int"),
                renew_before_days=dict(type="int"),
            )),
            common_name=dict(type="str"),
            subject_alt_names=dict(type="list", elements="str", default=[]),
            valid_days=dict(type="int", default=365),
            renew_before_days=dict(type="int", default=30),
        ),
        required_if=[
            ("operation", "issue", ("path", "privatekey_path", "ca_path", "common_name")),
            ("operation", "issue", ("ca_privatekey_path", "ca_privatekey_pkcs11"), True),
            ("operation", "sign", ("ca_path", "common_name")),
            ("operation", "sign", ("ca_privatekey_path", "ca_privatekey_pkcs11"), True),
            ("operation", "sign", ("csr_content", "csr_path"), True),
            ("operation", "install", ("path", "certificate_content")),
            ("operation", "install", ("privatekey_path", "public_key_content"), True),
        ],
        mutually_exclusive=[("csr_content", "csr_path"), ("privatekey_path", "public_key_content"),
                            ("ca_privatekey_path", "ca_privatekey_pkcs11"),
                            ("ca_privatekey_passphrase", "ca_privatekey_pkcs11")],
        supports_check_mode=True,
    )
    require_cryptography(module)
    from ansible_collections.mtls.nginx.plugins.module_utils._pki import ensure_leaf

    params = dict(module.params)
    requests = params.pop("requests")
    if requests and params["operation"] != "request":
        module.fail_json(msg="requests: only for operation=request, not %s" % params["operation"])
    if not requests and params["purpose"] is None:
        module.fail_json(msg="missing required arguments: purpose")
    missing = [name for name in ("privatekey_path", "common_name") if params[name] is None]
    if not requests and params["operation"] == "request" and missing:
        # What required_if said before requests: each key needs both, at the top or in each item.
        module.fail_json(msg="operation is request but these are missing: %s (or give requests)" % ", ".join(missing))
    writer = FileWriter(module)
    try:
        if requests:
            result = {"requested": [_request(writer, params, index, item) for index, item in enumerate(requests)]}
        else:
            if params["common_name"] is not None:
                # Checked here too: sign and issue keep a certificate that still fits without building a name.
                check_common_name(params["common_name"])
            result = ensure_leaf(writer, **params)
    except PKIError as exc:
        module.fail_json(msg=str(exc))
    # A newly signed certificate is a change even when sign writes no file.
    changed = writer.changed or bool(result.get("signed"))
    for message in wait_messages():
        module.warn(message)
    result["lock_waits"] = waits()
    module.exit_json(changed=changed, diff=writer.diff, **result)


if __name__ == "__main__":
    main()
