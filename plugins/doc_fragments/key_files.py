# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    """The private keys the modules that make keys and certificates generate, how they write
    their files, and the library they need for it; the argument spec is
    plugins/module_utils/_argspec.py's key_type_option() and file_options()."""

    DOCUMENTATION = r"""
options:
  key_type:
    description: Type of a newly generated key. ECDSA P-256 makes handshakes cheapest.
    type: str
    default: ecdsa-p256
    choices: [ecdsa-p256, ecdsa-p384, rsa2048, rsa3072, rsa4096, ed25519]
  mode:
    description:
      - Mode of the files written other than the private key and its password file (the
        certificate, and the chain, CSR or CRL file when asked for).
    type: raw
    default: "0644"
  privatekey_mode:
    description: Mode of the private key file, and of a password file the module writes.
    type: raw
    default: "0600"
  owner:
    description: Owner of the files written; unchanged when omitted.
    type: str
  group:
    description: Group of the files written; unchanged when omitted.
    type: str
requirements:
  - cryptography >= 35.0 on the host the task runs on (Debian's C(python3-cryptography) will do)
"""
