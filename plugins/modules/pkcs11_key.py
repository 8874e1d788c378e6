#!/usr/bin/python
# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: pkcs11_key
short_description: A private key that lives in a PKCS#11 token (HSM), and a CSR signed by it
version_added: 0.1.0
description:
  - Finds the token labelled O(token_label) through the PKCS#11 module library O(module_path),
    logs in with O(pin), and looks for the key pair labelled O(key_label). With
    O(state=present) a missing key pair is made inside the token (EC P-256; the private half
    sensitive and never extractable) and, with O(common_name), a CSR is signed by the token
    through OpenSSL's C(pkcs11) engine, the engine nginx loads the key with
    (C(ssl_certificate_key engine:pkcs11:<uri>)). Only the public key and the CSR come out.
  - With O(state=check) the module only looks, and reports the problems that would stop nginx
    from using the key (a missing or foreign library, no token with that label (the labels
    present are named), a wrong or locked PIN, a key that could leave the token, an OpenSSL
    that cannot load the engine with that library and PIN, an nginx not built with OpenSSL). A
    play can run it before it changes anything. Until PyKCS11 is installed (and unless
    O(engine_required)) it checks only the library, as it skips a missing engine, and the play
    checks again once both are installed.
  - With O(user), every step runs as that user (nginx's worker user), since nginx's workers
    are the ones that use the key during handshakes. The module must then run as root.
  - The token is reached through PyKCS11 (Debian's C(python3-pykcs11)); the CSR needs the
    C(openssl) command and the engine (Debian's C(libengine-pkcs11-openssl)), and every state but
    V(check) the Python C(cryptography) library. The roles install them with the engine
    (C(mtls_nginx_pkcs11_packages) of P(mtls.nginx.nginx_common#role)).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - mtls.nginx.attributes.no_diff
  - mtls.nginx.cryptography
attributes:
  check_mode:
    details: Looks at the token and reports whether a key would be made or removed; makes no key and no CSR.
options:
  module_path:
    description: Absolute path of the token's PKCS#11 module library (SoftHSM2 on Debian, C(/usr/lib/softhsm/libsofthsm2.so)).
    type: path
    required: true
  token_label:
    description: The label of the token (C(softhsm2-util --show-slots), C(pkcs11-tool --list-token-slots)).
    type: str
    required: true
  pin:
    description: The user PIN of the token. Never logged; kept out of the CSR command's arguments.
    type: str
    required: true
  key_label:
    description: The label (C(CKA_LABEL)) of the key pair; the key's URI is C(pkcs11:token=<token_label>;object=<key_label>;type=private).
    type: str
    required: true
  state:
    description:
      - V(present) makes the key pair when it is missing; V(check) only looks; V(absent) removes
        the key pair (both halves; only the pair O(key_id) when given).
      - V(staged) is a key rotation's first step; a new key pair under the same O(key_label),
        beside the live one (their C(CKA_ID)s tell them apart; nginx names its key by C(CKA_ID)),
        and with O(common_name) a CSR signed by it. A new key left by a rotation that stopped is
        removed first. No key that nginx's workers use is written to by any step of a rotation
        (a token that rewrites an object to relabel it, such as SoftHSM2, makes a worker that
        reads it meanwhile fail its handshakes).
      - V(pruned) is a rotation's last step (or its undoing); every key pair under O(key_label)
        but O(key_id) is removed. Nothing changes when it is the only one.
      - While a rotation's new key stands beside the live one, the live one (for V(present),
        V(check) and V(staged)) is the key the certificate at O(certificate_path) belongs to.
      - Key pairs under C(<key_label>.next), where earlier versions staged a rotation's new key, are
        removed by V(staged) and V(pruned).
    type: str
    default: present
    choices: [present, check, absent, staged, pruned]
  key_id:
    description:
      - The C(CKA_ID), in hex as RV(key_id) returns it, of the key pair that V(pruned) keeps, or
        that V(absent) removes.
    type: str
  common_name:
    description: With O(state=present), make a CSR with this subject common name, signed by the token's key.
    type: str
  engine_path:
    description:
      - OpenSSL's pkcs11 engine, for the CSR and the engine check.
      - When omitted, C(pkcs11.so) in the engines directory of the host's OpenSSL
        (C(openssl version -e)), which is where Debian's C(libengine-pkcs11-openssl) puts it on
        every architecture. The path used is returned as RV(engine_path).
    type: path
  user:
    description: Run every step as this user, nginx's worker user (C(www-data) on Debian), so that what works here works for nginx.
    type: str
  groups:
    description: With O(user), the extra groups it runs with, those nginx's worker user is given to reach the token.
    type: list
    elements: str
    default: []
  engine_required:
    description:
      - With O(state=check), fail when O(engine_path) is missing. Without it, a missing engine
        is not checked (a play that installs it checks again afterwards).
    type: bool
    default: false
  nginx_path:
    description:
      - With O(state=check), the nginx binary, which must be built with OpenSSL (BoringSSL and
        LibreSSL have no engines); not checked when omitted or not installed yet.
    type: path
  certificate_path:
    description:
      - The certificate now installed for the key, returned as RV(existing_certificate) for M(mtls.nginx.certificate)'s V(sign).
      - While a rotation's new key stands beside the live one under O(key_label), the live one is the key this certificate belongs to.
    type: path
notes:
  - A wrong PIN counts against the token's retry limit, as any login does; the module logs in once per run.
requirements:
  - PyKCS11 >= 1.5.12 on the host (Debian's C(python3-pykcs11), PyPI's C(PyKCS11)), for every state
    but a V(check) that runs before it is installed
  - The token's PKCS#11 module library (the HSM vendor's, or SoftHSM2's)
  - For the CSR and the engine check, the C(openssl) command and OpenSSL's pkcs11 engine (Debian's
    C(libengine-pkcs11-openssl))
seealso:
  - module: mtls.nginx.certificate
  - name: RFC 7512, the PKCS#11 URI
    description: The URI nginx and the engine use to name the key.
    link: https://www.rfc-editor.org/rfc/rfc7512
author:
  - mtls.nginx contributors (@mtls-nginx)
"""

EXAMPLES = r"""
- name: Make the upstream tier's key inside the token, and a CSR signed by it
  mtls.nginx.pkcs11_key:
    module_path: /usr/lib/softhsm/libsofthsm2.so
    token_label: mtls
    pin: "{{ vault_token_pin }}"
    key_label: mtls-upstream
    common_name: upstream.example.internal
    user: www-data
  become: true
  register: token_key

- name: Check the token before anything changes (wrong PIN, missing token or library)
  mtls.nginx.pkcs11_key:
    module_path: /usr/lib/softhsm/libsofthsm2.so
    token_label: mtls
    pin: "{{ vault_token_pin }}"
    key_label: mtls-upstream
    state: check
    user: www-data
  become: true
"""

RETURN = r"""
exists:
  description: Whether the key pair is in the token after the task (in check mode, before it).
  returned: always
  type: bool
key_id:
  description: The key's C(CKA_ID), in hex; empty when there is no key.
  returned: always
  type: str
  sample: 3f0a9c1d2b4e5f60
uri:
  description:
    - The private key's PKCS#11 URI, for nginx's C(ssl_certificate_key engine:pkcs11:<uri>); by
      C(CKA_ID) when the key has one, which tells a rotation's new key from the live one under the same label.
  returned: always
  type: str
  sample: pkcs11:token=mtls;id=%3f%0a%9c%1d%2b%4e%5f%60;type=private
public_key_pem:
  description: The key's public half (PEM), empty when there is no key.
  returned: with O(state=present), O(state=check) or O(state=staged)
  type: str
existing_certificate:
  description: The first certificate in O(certificate_path), or empty when there is none.
  returned: with O(state=present), O(state=check) or O(state=staged)
  type: str
csr:
  description: The CSR (PEM) signed by the token's key, with O(state=present) or O(state=staged) and O(common_name); else empty.
  returned: with O(state=present), O(state=check) or O(state=staged)
  type: str
removed:
  description: The C(CKA_ID)s of the key pairs V(staged) or V(pruned) removed (with V(pruned) in check mode, those it would remove).
  returned: with O(state=present), O(state=check), O(state=staged) or O(state=pruned)
  type: list
  elements: str
engine_path:
  description:
    - The pkcs11 engine used, O(engine_path) or the one found in OpenSSL's engines directory;
      empty when no openssl was there to ask (before the run installs it) and nothing needed
      the engine, as in a check or when a key is made without O(common_name).
  returned: always
  type: str
  sample: /usr/lib/aarch64-linux-gnu/engines-3/pkcs11.so
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mtls.nginx.plugins.module_utils._argspec import argument_spec
from ansible_collections.mtls.nginx.plugins.module_utils._crypto import require_cryptography


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            module_path=dict(type="path", required=True),
            token_label=dict(type="str", required=True, no_log=False),
            pin=dict(type="str", required=True, no_log=True),
            key_label=dict(type="str", required=True, no_log=False),
            state=dict(type="str", default="present", choices=["present", "check", "absent", "staged", "pruned"]),
            key_id=dict(type="str", no_log=False),
            common_name=dict(type="str"),
            engine_path=dict(type="path"),
            user=dict(type="str"),
            groups=dict(type="list", elements="str", default=[]),
            certificate_path=dict(type="path"),
            engine_required=dict(type="bool", default=False),
            nginx_path=dict(type="path"),
        ),
        required_if=[("state", "pruned", ("key_id",))],
        supports_check_mode=True,
    )
    if module.params["state"] != "check":
        require_cryptography(module)
    from ansible_collections.mtls.nginx.plugins.module_utils._pkcs11 import TokenError, ensure_key

    try:
        result = ensure_key(check_mode=module.check_mode, **module.params)
    except TokenError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
