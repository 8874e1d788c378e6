# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    """The private keys the modules generate; the argument spec is
    plugins/module_utils/_argspec.py's key_type_option()."""

    DOCUMENTATION = r"""
options:
  key_type:
    description: Type of a newly generated key. ECDSA P-256 makes handshakes cheapest.
    type: str
    default: ecdsa-p256
    choices: [ecdsa-p256, ecdsa-p384, rsa2048, rsa3072, rsa4096, ed25519]
"""
