# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    """The Python library the modules that read or make certificates need where they run
    (mtls.nginx.key_files says the same for the modules that make keys)."""

    DOCUMENTATION = r"""
options: {}
requirements:
  - cryptography >= 35.0 on the host the task runs on (Debian's C(python3-cryptography) will do)
"""
