# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    """How the modules that make keys and certificates write their files; the argument spec
    is plugins/module_utils/_argspec.py's file_options()."""

    DOCUMENTATION = r"""
options:
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
"""
