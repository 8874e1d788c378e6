# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    """The modules that read or make keys, certificates and CRLs with the Python library cryptography."""

    DOCUMENTATION = r"""
options: {}
requirements:
  - cryptography >= 3.4 on the host the task runs on (Debian's C(python3-cryptography) will do)
"""
