# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    """What the modules support, on top of ansible.builtin.action_common_attributes (which
    describes the attributes): check mode always, diffs where files change, POSIX hosts."""

    # The modules that write files: check mode and diffs both.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
"""

    # The modules without diffs (tls_probe, ca_rollover).
    NO_DIFF = r"""
options: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""
