# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: certificate_info
short_description: The names, serials, validity and key identity of every certificate in PEM text
version_added: 0.1.0
author:
  - mtls.nginx contributors (@mtls-nginx)
description:
  - Takes PEM text, such as a CA bundle or a leaf followed by its chain, and returns one dict
    per certificate in file order.
  - Blocks of other types, such as a C(X509 CRL), are skipped. A malformed block of any type
    fails the filter, as nginx refuses the whole file for it, and so does text without a
    certificate or a certificate that cannot be decoded.
  - Runs on the controller and needs the Python library C(cryptography) there.
positional: _input
options:
  _input:
    description: The PEM text, for example the content of a file read with P(ansible.builtin.file#lookup).
    type: str
    required: true
  source:
    description: The name of the file the text comes from, shown in error messages; C(input) when empty.
    type: str
    default: ""
requirements:
  - cryptography
seealso:
  - module: mtls.nginx.certificate_expiry
"""

EXAMPLES = r"""
- name: Read the chain a host serves
  ansible.builtin.slurp:
    src: /etc/nginx/mtls/mtls-upstream/server.pem
  register: __server_pem

- name: Show who issued each certificate of it
  ansible.builtin.debug:
    msg: >-
      {{ __server_pem.content | b64decode
         | mtls.nginx.certificate_info(source='server.pem')
         | map(attribute='issuer') | list }}

- name: Tell whether the key of the server certificate was replaced
  ansible.builtin.assert:
    that: __new[0].public_key_sha256 != __old[0].public_key_sha256
  vars:
    __old: "{{ lookup('ansible.builtin.file', 'old/server.pem') | mtls.nginx.certificate_info(source='old/server.pem') }}"
    __new: "{{ __server_pem.content | b64decode | mtls.nginx.certificate_info(source='server.pem') }}"
"""

RETURN = r"""
_value:
  description: One dict per certificate, in the order of the PEM text.
  type: list
  elements: dict
  contains:
    subject:
      description: The subject DN, RFC 4514.
      type: str
      sample: CN=orders,O=Example Corp
    issuer:
      description: The issuer DN, RFC 4514.
      type: str
      sample: CN=MyCA
    common_name:
      description: The first common name of the subject; null when it has none.
      type: str
      sample: orders
    issuer_common_name:
      description: The first common name of the issuer; null when it has none.
      type: str
      sample: MyCA
    serial:
      description:
        - The serial number in upper-case hexadecimal without colons or leading zeros, as
          M(mtls.nginx.certificate_expiry) shows it and the C(mtls_pki_revoked_serials) of the
          C(mtls.nginx.pki) role take it.
        - nginx's C($ssl_client_serial) writes every byte as two digits, so there it begins with
          one more C(0) when this value has an odd number of digits.
      type: str
      sample: 23CC84731B47BE311E47656341F91964048AE6E
    sha256:
      description: The SHA-256 fingerprint of the certificate (its DER), lower-case hexadecimal without colons.
      type: str
      sample: 5b1a4c0b8e9f2d3a6c7e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c
    not_before:
      description: The start of the validity period, ISO 8601 in UTC.
      type: str
      sample: "2025-01-01T12:00:00+00:00"
    not_after:
      description: The end of the validity period, ISO 8601 in UTC.
      type: str
      sample: "2026-01-01T12:00:00+00:00"
    is_ca:
      description: Whether the basic constraints extension marks the certificate as a CA; false without the extension.
      type: bool
      sample: false
    subject_key_id:
      description: The subject key identifier, lower-case hexadecimal; null without the extension.
      type: str
      sample: 9f3c2b1a0e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b
    authority_key_id:
      description: The key identifier of the authority key identifier extension, lower-case hexadecimal; null when absent.
      type: str
      sample: 1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d
    public_key_sha256:
      description:
        - The SHA-256 of the certificate's public key (its SubjectPublicKeyInfo DER), lower-case hexadecimal.
        - Equal for two certificates of the same key pair, so it tells whether a key was replaced.
      type: str
      sample: 0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d
"""

import hashlib

from ansible.errors import AnsibleFilterError
from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.mtls.nginx.plugins.module_utils import _crypto


def _unreadable():
    """What cryptography raises for a certificate whose extensions or key it cannot parse;
    it parses them only when asked."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.x509 import DuplicateExtension

    return (ValueError, UnsupportedAlgorithm, DuplicateExtension)


def _hex(value):
    return value.hex() if value is not None else None


def _info(cert):
    ski = _crypto.extension_value(cert, _crypto.x509.SubjectKeyIdentifier)
    aki = _crypto.extension_value(cert, _crypto.x509.AuthorityKeyIdentifier)
    issuer_cn = cert.issuer.get_attributes_for_oid(_crypto.NameOID.COMMON_NAME)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "common_name": _crypto.common_name_of(cert),
        "issuer_common_name": issuer_cn[0].value if issuer_cn else None,
        # The same form as _crypto.describe and the certificate_expiry items.
        "serial": format(cert.serial_number, "X"),
        "sha256": _crypto.fingerprint_sha256(cert).replace(":", "").lower(),
        "not_before": _crypto.not_before(cert).isoformat(),
        "not_after": _crypto.not_after(cert).isoformat(),
        "is_ca": bool(_crypto.is_ca(cert)),
        "subject_key_id": _hex(ski.digest if ski is not None else None),
        "authority_key_id": _hex(aki.key_identifier if aki is not None else None),
        "public_key_sha256": hashlib.sha256(_crypto.public_key_bytes(cert.public_key())).hexdigest(),
    }


def certificate_info(data, source=""):
    name = source or "input"
    if not _crypto.HAS_CRYPTOGRAPHY:
        raise AnsibleFilterError("certificate_info: %s" % missing_required_lib("cryptography"))
    if not isinstance(data, (str, bytes)):
        raise AnsibleFilterError("certificate_info: %s: expects PEM text, not %s" % (name, type(data).__name__))
    data = to_bytes(data, errors="surrogate_or_strict")
    try:
        certs = _crypto.load_certificates(data, name)
    except _crypto.PKIError as exc:
        raise AnsibleFilterError("certificate_info: %s" % exc)
    numbers = [block.number for block in _crypto.pem_blocks(data) if block.label == "CERTIFICATE"]
    out = []
    for number, cert in zip(numbers, certs):
        try:
            out.append(_info(cert))
        except _unreadable() as exc:
            raise AnsibleFilterError("certificate_info: %s: PEM block %d (CERTIFICATE) is not a readable "
                                     "certificate (%s)" % (name, number, exc))
    return out


class FilterModule:
    def filters(self):
        return {"certificate_info": certificate_info}
